//! Every error path answers in the one envelope, with the right status and a request id.

use faceplate_tests::{OPERATOR_TOKEN, TestApp, read};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn routing_errors_use_the_envelope() {
    let app = TestApp::spawn().await;
    let resp = app.call(Method::GET, "/v2/nothing", None, None).await.expect(404);
    assert_eq!(resp.error_code(), "API_NOT_FOUND");
    let resp = app.call(Method::GET, "/", None, None).await.expect(404);
    assert_eq!(resp.error_code(), "API_NOT_FOUND");

    let resp = app.call(Method::PUT, "/v1/keys", None, None).await.expect(405);
    assert_eq!(resp.error_code(), "METHOD_NOT_ALLOWED");
    assert_eq!(resp.header("allow"), Some("GET, POST"));
    let resp = app.call(Method::PATCH, "/v1/keys/fpk_abc", None, None).await.expect(405);
    assert_eq!(resp.error_code(), "METHOD_NOT_ALLOWED");
    assert_eq!(resp.header("allow"), Some("GET, DELETE"));
    let resp = app.call(Method::POST, "/healthz", None, None).await.expect(405);
    assert_eq!(resp.error_code(), "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn body_errors_use_the_envelope() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let send = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut req = app.client.post(app.url("/v1/keys")).bearer_auth(&admin).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move { read(req.send().await.unwrap()).await }
    };

    let resp = send(b"{not json".to_vec(), Some("application/json")).await.expect(400);
    assert_eq!(resp.error_code(), "BAD_ARGUMENTS");
    let resp = send(b"[1,2]".to_vec(), Some("application/json")).await.expect(400);
    assert_eq!(resp.error_code(), "BAD_ARGUMENTS");
    let resp = send(b"{}".to_vec(), Some("application/json")).await.expect(400);
    assert_eq!(resp.error_code(), "MISSING_ARGUMENTS");
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("name"));
    let resp = send(br#"{"name":"x"}"#.to_vec(), Some("text/plain")).await.expect(415);
    assert_eq!(resp.error_code(), "UNSUPPORTED_MEDIA_TYPE");
    let resp = send(br#"{"name":"x"}"#.to_vec(), None).await.expect(415);
    assert_eq!(resp.error_code(), "UNSUPPORTED_MEDIA_TYPE");
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(200_000)).into_bytes();
    let resp = send(big, Some("application/json")).await.expect(413);
    assert_eq!(resp.error_code(), "REQUEST_ENTITY_TOO_LARGE");
    let resp = send(br#"{"name": 5}"#.to_vec(), Some("application/json")).await.expect(400);
    assert_eq!(resp.error_code(), "BAD_ARGUMENTS");

    // Optional bodies: absent is fine, malformed is not.
    let (key_id, _) = app.create_key(&tenant, &["face"]).await;
    let rotate = |body: &'static str| {
        let req = app.client.post(app.url(&format!("/v1/keys/{key_id}/rotate"))).bearer_auth(&admin).body(body);
        async move { read(req.send().await.unwrap()).await }
    };
    rotate("").await.expect(200);
    assert_eq!(rotate("{oops").await.expect(400).error_code(), "BAD_ARGUMENTS");
}

#[tokio::test]
async fn query_and_path_errors_use_the_envelope() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    for path in
        ["/v1/keys?limit=abc", "/v1/keys?limit=0", "/v1/keys?limit=5000", "/v1/keys?after=nonsense", "/v1/keys?bogus=1"]
    {
        let resp = app.get(path, &admin).await.expect(400);
        assert_eq!(resp.error_code(), "BAD_ARGUMENTS", "{path}");
    }
    let resp = app.get("/v1/keys/%00%ff", &admin).await.expect(404);
    assert_eq!(resp.error_code(), "KEY_NOT_FOUND");
    let resp = app.get("/v1/audit-events/x", &admin).await.expect(404);
    assert_eq!(resp.error_code(), "AUDIT_EVENT_NOT_FOUND");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/nope", "/v1/me"] {
        let resp = app.call(Method::GET, path, None, None).await;
        let id = resp.header("x-request-id").unwrap_or_else(|| panic!("{path}: no X-Request-Id")).to_string();
        assert!(seen.insert(id.clone()), "request ids are unique");
        if resp.body.is_object() && path != "/openapi.json" {
            assert_eq!(resp.body["request_id"], id.as_str(), "{path}: body and header agree");
        }
    }
}

#[tokio::test]
async fn operator_api_is_closed_without_a_token() {
    let app = TestApp::spawn().await;
    let resp = app.call(Method::GET, "/admin/v1/tenants", None, None).await.expect(401);
    assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");
    let resp = app.get("/admin/v1/tenants", "wrong-token-wrong-token").await.expect(401);
    assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");

    // A node configured without an operator token refuses every operator call.
    let dbs = faceplate_tests::TestDatabases::create(&["local"]);
    let toml = dbs.config_toml("").replace(&format!("operator_token = {OPERATOR_TOKEN:?}\n"), "");
    let path = dbs.dir.path().join("no-operator.toml");
    std::fs::write(&path, toml).unwrap();
    let config = faceplate_api::config::Config::load(Some(&path)).unwrap();
    assert!(config.operator_token.is_none());
    let server = faceplate_api::server::start(&config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.addr;
    tokio::spawn(server.run);
    let resp = app.client.post(format!("http://{addr}/admin/v1/tenants")).bearer_auth(OPERATOR_TOKEN);
    let resp = read(resp.json(&json!({"name": "x"})).send().await.unwrap()).await.expect(401);
    assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("disabled"));
}
