//! A real third-party Face++ client (PyPI `python-facepp`, pinned in tests/compat/requirements.txt and
//! installed by scripts/test.sh) against our server: only its base URL changes.

use std::path::PathBuf;

use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use serde_json::{Value, json};

#[tokio::test]
async fn python_facepp_client_works_unchanged() {
    let models = faceplate_api::config::EngineConfig::default().models_dir();
    let python = models.join("../compat-venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/test.sh (it installs the Face++ client)", python.display());
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let key = app
        .post(&format!("/admin/v1/tenants/{tenant}/keys"), OPERATOR_TOKEN, json!({"name": "py", "scopes": ["face"]}))
        .await
        .expect(201)
        .body;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat/facepp_client.py");
    let base_url = app.url("");
    let testdata = models.join("testdata");
    let args = [
        script.to_str().unwrap().to_string(),
        key["api_key"].as_str().unwrap().to_string(),
        key["api_secret"].as_str().unwrap().to_string(),
        base_url,
        testdata.to_str().unwrap().to_string(),
    ];
    // The client is synchronous: run it off the test's runtime so the server keeps serving.
    let output = tokio::task::spawn_blocking(move || std::process::Command::new(python).args(args).output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["faces"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["faces"][0]["left"], 179);
    let same = &result["same"];
    assert!(same["confidence"].as_f64().unwrap() > same["thresholds"]["1e-4"].as_f64().unwrap(), "{result}");
    let different = &result["different"];
    assert!(different["confidence"].as_f64().unwrap() < different["thresholds"]["1e-3"].as_f64().unwrap());
}
