use faceplate_store::{Stores, db::StoreKind};
use faceplate_tests::{SERVER_SECRET, TestDatabases, cli_json, run_cli};

/// Applying migrations a second time changes nothing; the CLI says so.
#[tokio::test]
async fn migrations_applied_twice_are_a_no_op() {
    let dbs = TestDatabases::create(&["local", "eu"]);
    let config = dbs.write_config("");
    let first = cli_json(&run_cli(&config, &["--json", "migrate"]));
    for store in ["control", "region:local", "region:eu"] {
        assert!(!first["applied"][store].as_array().unwrap().is_empty(), "{store} migrated: {first}");
    }
    let second = cli_json(&run_cli(&config, &["--json", "migrate"]));
    for store in ["control", "region:local", "region:eu"] {
        assert_eq!(second["applied"][store], serde_json::json!([]), "{store} already up to date");
    }

    // Opening the stores (as the server does at start-up) applies nothing either, and the data is intact.
    let loaded = faceplate_api::config::Config::load(Some(&config)).unwrap();
    let (stores, report) = Stores::open(&loaded.stores().unwrap(), SERVER_SECRET.as_bytes()).await.unwrap();
    assert!(report.iter().all(|(_, applied)| applied.is_empty()), "{report:?}");
    assert!(stores.control().list_tenants(None, 10).await.unwrap().is_empty());
    let human = run_cli(&config, &["migrate"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("control: up to date"));
}

/// Both backends have the same migrations, by name, for each store kind.
#[test]
fn backends_have_identical_migration_names() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/migrations");
    for kind in [StoreKind::Control, StoreKind::Region] {
        let dir = match kind {
            StoreKind::Control => "control",
            StoreKind::Region => "region",
        };
        let names = |backend: &str| {
            let mut names: Vec<_> = std::fs::read_dir(root.join(dir).join(backend))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names("sqlite"), names("postgres"), "{dir}");
        assert!(!names("sqlite").is_empty());
    }
}
