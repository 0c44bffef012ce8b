//! The operator's path from the README, with the real `faceplate` binary: serve, create a tenant and a key
//! from the CLI, call the API with that key, revoke it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use faceplate_tests::{TestDatabases, cli_json, faceplate_bin, read, run_cli};

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_until_healthy(client: &reqwest::Client, base: &str, server: &mut ServerProcess) {
    for _ in 0..300 {
        if let Ok(resp) = client.get(format!("{base}/healthz")).send().await
            && resp.status() == 200
        {
            return;
        }
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("server exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not become healthy");
}

#[tokio::test]
async fn operator_flow_with_the_real_binary() {
    let dbs = TestDatabases::create(&["local"]);
    let port = free_port();
    let config = dbs.write_config(&format!("listen = \"127.0.0.1:{port}\"\n[log]\nformat = \"json\""));
    let mut cmd = Command::new(faceplate_bin());
    cmd.arg("--config").arg(&config).arg("serve").stdout(Stdio::null()).stderr(Stdio::piped());
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("FACEPLATE_")) {
        cmd.env_remove(name);
    }
    let mut server = ServerProcess(cmd.spawn().unwrap());
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_healthy(&client, &base, &mut server).await;

    let tenant = cli_json(&run_cli(&config, &["tenant", "create", "--name", "acme", "--json"]));
    let tenant_id = tenant["id"].as_str().unwrap();
    assert!(tenant_id.starts_with("ten_"));
    assert_eq!(tenant["home_region"], "local");
    // Plans: the configured default, then another one; every plan listed with its limits.
    assert_eq!(tenant["plan"], "enterprise");
    let moved = cli_json(&run_cli(&config, &["tenant", "set-plan", "acme", "--plan", "pay_as_you_go", "--json"]));
    assert_eq!(moved["plan"], "pay_as_you_go");
    let plans = cli_json(&run_cli(&config, &["plan", "list", "--json"]));
    let ids: Vec<&str> = plans.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["enterprise", "free", "pay_as_you_go"]);
    assert_eq!(plans[1]["key_qps"], 5);
    assert!(!run_cli(&config, &["tenant", "set-plan", "acme", "--plan", "gold"]).status.success());
    let key = cli_json(&run_cli(&config, &["key", "create", "--tenant", tenant_id, "--name", "ci", "--json"]));
    let token = key["token"].as_str().unwrap();
    assert!(key["id"].as_str().unwrap().starts_with("fpk_"));
    assert_eq!(key["api_key"], key["id"]);
    assert_eq!(token, format!("{}.{}", key["api_key"].as_str().unwrap(), key["api_secret"].as_str().unwrap()));

    let me = read(client.get(format!("{base}/v1/me")).bearer_auth(token).send().await.unwrap()).await.expect(200);
    assert_eq!(me.body["tenant"]["name"], "acme");

    // Names work where ids do; human output is readable; secrets never appear in listings.
    let listed = run_cli(&config, &["key", "list", "--tenant", "acme"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(key["id"].as_str().unwrap()) && listed.contains("active"));
    assert!(!listed.contains(key["api_secret"].as_str().unwrap()));
    let shown = run_cli(&config, &["tenant", "show", "acme"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains(tenant_id));
    let tenants = cli_json(&run_cli(&config, &["--json", "tenant", "list"]));
    assert_eq!(tenants.as_array().unwrap().len(), 1);

    let revoked =
        cli_json(&run_cli(&config, &["key", "revoke", "--tenant", "acme", key["id"].as_str().unwrap(), "--json"]));
    assert_eq!(revoked["status"], "revoked");
    let resp = read(client.get(format!("{base}/v1/me")).bearer_auth(token).send().await.unwrap()).await.expect(401);
    assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");
    let revoked_request_id = resp.body["request_id"].clone();

    // Suspension through the CLI takes effect on the running server.
    let key2 = cli_json(&run_cli(&config, &["key", "create", "--tenant", "acme", "--name", "k2", "--json"]));
    let token2 = key2["token"].as_str().unwrap();
    assert!(run_cli(&config, &["tenant", "suspend", "acme"]).status.success());
    let resp = read(client.get(format!("{base}/v1/me")).bearer_auth(token2).send().await.unwrap()).await.expect(403);
    assert_eq!(resp.error_code(), "TENANT_SUSPENDED");
    assert!(run_cli(&config, &["tenant", "resume", "acme"]).status.success());
    read(client.get(format!("{base}/v1/me")).bearer_auth(token2).send().await.unwrap()).await.expect(200);

    // Deletion needs confirmation.
    let refused = run_cli(&config, &["tenant", "delete", "acme"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(run_cli(&config, &["tenant", "delete", "acme", "--yes"]).status.success());
    read(client.get(format!("{base}/v1/me")).bearer_auth(token2).send().await.unwrap()).await.expect(401);

    // SIGTERM: a graceful stop with a clean exit.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = server.0.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited.expect("server stops on SIGTERM").success());

    // Logs are JSON lines; each request is logged with its id, route and status, and no secret appears.
    let mut logs = String::new();
    std::io::Read::read_to_string(server.0.stderr.as_mut().unwrap(), &mut logs).unwrap();
    let lines: Vec<serde_json::Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let revoked_call = lines
        .iter()
        .find(|l| l["request_id"] == revoked_request_id)
        .unwrap_or_else(|| panic!("request log line: {logs}"));
    assert_eq!((&revoked_call["route"], &revoked_call["status"]), (&"/v1/me".into(), &401.into()));
    assert_eq!(revoked_call["code"], "AUTHENTICATION_ERROR");
    assert!(!logs.contains(key["api_secret"].as_str().unwrap()));
}

#[test]
fn configuration_mistakes_are_reported_clearly() {
    let dbs = TestDatabases::create(&["local"]);
    let check = |extra: &str| {
        let path = dbs.dir.path().join("check.toml");
        std::fs::write(&path, dbs.config_toml(extra)).unwrap();
        let out = run_cli(&path, &["config", "check"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = check("");
    assert!(ok, "{out}");
    assert!(
        out.contains("\"server_secret\": \"set\"") && !out.contains(faceplate_tests::SERVER_SECRET),
        "secrets hidden"
    );
    assert!(!out.contains(faceplate_tests::OPERATOR_TOKEN));

    let (ok, out) = check("listn = \"127.0.0.1:1\"");
    assert!(!ok && out.contains("listn"), "unknown keys are rejected: {out}");
    let (ok, out) = check("max_db_connections = \"many\"");
    assert!(!ok && out.contains("max_db_connections"), "{out}");

    let path = dbs.dir.path().join("bare.toml");
    std::fs::write(&path, "control_database_url = \"/nonexistent/faceplate.db\"\n").unwrap();
    let out = run_cli(&path, &["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not an existing SQLite file") && err.contains("sqlite://"), "{err}");

    std::fs::write(&path, "control_database_url = \"mysql://localhost/x\"\n").unwrap();
    let err = String::from_utf8_lossy(&run_cli(&path, &["config", "check"]).stderr).into_owned();
    assert!(err.contains("unsupported scheme"), "{err}");

    let out = run_cli(&dbs.dir.path().join("missing.toml"), &["config", "check"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    // The shipped example stays valid.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/faceplate.example.toml");
    let out = run_cli(&example, &["config", "check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Environment overrides win over the file, and typos there are caught too.
    let path = dbs.write_config("");
    let out = Command::new(faceplate_bin())
        .args(["--config", path.to_str().unwrap(), "--json", "config", "check"])
        .env("FACEPLATE_LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9999"));
    let out = Command::new(faceplate_bin())
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .env("FACEPLATE_LISTN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("FACEPLATE_LISTN"));
}
