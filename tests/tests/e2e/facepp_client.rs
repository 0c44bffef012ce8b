//! A real third-party Face++ client (PyPI `python-facepp`, pinned in tests/compat/requirements.txt and
//! installed by scripts/test.sh) against our server: only its base URL changes.

use std::path::PathBuf;

use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use serde_json::{Value, json};

/// A tenant with a `face` key: (api_key, api_secret). The tenant has accepted the DPA and recorded a consent,
/// and lets Face++ calls through without a `consent_id` (the unchanged client cannot send one).
async fn facepp_key(app: &TestApp) -> (String, String) {
    let tenant = app.create_tenant("acme", None).await;
    app.allow_biometrics(&tenant).await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let setting = json!({"facepp_without_consent": "allow"});
    app.call(reqwest::Method::PUT, "/v1/settings/consent", Some(&admin), Some(setting)).await.expect(200);
    let key = app
        .post(&format!("/admin/v1/tenants/{tenant}/keys"), OPERATOR_TOKEN, json!({"name": "py", "scopes": ["face"]}))
        .await
        .expect(201)
        .body;
    (key["api_key"].as_str().unwrap().to_string(), key["api_secret"].as_str().unwrap().to_string())
}

/// Runs one of the tests/compat scripts with the client against `app`; its JSON output.
async fn run_client(app: &TestApp, key: &(String, String), script: &str, extra: &[&str]) -> Value {
    let models = faceplate_api::config::EngineConfig::default().models_dir();
    let python = models.join("../compat-venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/test.sh (it installs the Face++ client)", python.display());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat").join(script);
    let mut args = vec![
        script.to_str().unwrap().to_string(),
        key.0.clone(),
        key.1.clone(),
        app.url(""),
        models.join("testdata").to_str().unwrap().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    // The client is synchronous: run it off the test's runtime so the server keeps serving.
    let output = tokio::task::spawn_blocking(move || std::process::Command::new(python).args(args).output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn python_facepp_client_works_unchanged() {
    let app = TestApp::spawn().await;
    let key = facepp_key(&app).await;
    let result = run_client(&app, &key, "facepp_client.py", &[]).await;
    assert_eq!(result["faces"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["faces"][0]["left"], 179);
    let same = &result["same"];
    assert!(same["confidence"].as_f64().unwrap() > same["thresholds"]["1e-4"].as_f64().unwrap(), "{result}");
    let different = &result["different"];
    assert!(different["confidence"].as_f64().unwrap() < different["thresholds"]["1e-3"].as_f64().unwrap());
}

/// The client's FaceSet idioms (create, face.save(outer_ids=..., user_id=...), search by outer_id) work, and
/// the set survives a restart.
#[tokio::test]
async fn python_facepp_client_builds_and_searches_a_faceset() {
    let app = TestApp::spawn().await;
    let key = facepp_key(&app).await;
    let check = |result: &Value| {
        let obama = &result["obama"];
        assert_eq!(obama["user_id"], "obama", "{result}");
        assert!(obama["confidence"].as_f64().unwrap() > obama["thresholds"]["1e-4"].as_f64().unwrap(), "{result}");
        let biden = &result["biden"];
        assert!(biden["confidence"].as_f64().unwrap() < biden["thresholds"]["1e-3"].as_f64().unwrap(), "{result}");
    };
    let result = run_client(&app, &key, "facepp_faceset.py", &["enrol"]).await;
    assert_eq!((result["face_count"].clone(), result["display_name"].clone()), (json!(3), json!("Friends")));
    check(&result);
    let app = app.restart().await;
    check(&run_client(&app, &key, "facepp_faceset.py", &["search"]).await);
}
