use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use serde_json::json;

#[tokio::test]
async fn key_lifecycle_create_use_rotate_revoke() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;

    // An admin key creates a product key; the secret appears only in this response.
    let created = app.post("/v1/keys", &admin, json!({"name": "mobile", "scopes": ["face", "ocr"]})).await.expect(201);
    let key_id = created.body["key"]["id"].as_str().unwrap().to_string();
    let token = created.body["token"].as_str().unwrap().to_string();
    assert_eq!(created.body["api_key"], key_id.as_str());
    assert_eq!(token, format!("{key_id}.{}", created.body["api_secret"].as_str().unwrap()));
    assert_eq!(created.body["key"]["scopes"], json!(["face", "ocr"]));

    let me = app.get("/v1/me", &token).await.expect(200);
    assert_eq!(me.body["tenant"]["id"], tenant.as_str());
    assert_eq!(me.body["key"]["id"], key_id.as_str());
    assert!(me.body["key"]["last_used_at"].is_string(), "last use is recorded");

    // Listing and reading never reveal secrets or hashes.
    let listed = app.get("/v1/keys", &admin).await.expect(200);
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 2);
    let secret = created.body["api_secret"].as_str().unwrap();
    assert!(!listed.text.contains(secret) && !listed.text.contains("hash"));
    let got = app.get(&format!("/v1/keys/{key_id}"), &admin).await.expect(200);
    assert_eq!(got.body["key"]["status"], "active");
    assert!(got.body["key"]["last_used_at"].is_string());

    // Rotation without grace: the old secret stops at once, the new one works, the id stays.
    let rotated = app.post(&format!("/v1/keys/{key_id}/rotate"), &admin, json!({})).await.expect(200);
    let new_token = rotated.body["token"].as_str().unwrap().to_string();
    assert_ne!(new_token, token);
    assert_eq!(rotated.body["key"]["id"], key_id.as_str());
    assert_eq!(app.get("/v1/me", &token).await.expect(401).error_code(), "AUTHENTICATION_ERROR");
    app.get("/v1/me", &new_token).await.expect(200);

    // Rotation with grace: both secrets work until the grace period ends.
    let graced =
        app.post(&format!("/v1/keys/{key_id}/rotate"), &admin, json!({"grace_seconds": 3600})).await.expect(200);
    let newest = graced.body["token"].as_str().unwrap().to_string();
    app.get("/v1/me", &new_token).await.expect(200);
    app.get("/v1/me", &newest).await.expect(200);
    assert!(graced.body["key"]["previous_secret_expires_at"].is_string());

    // Revocation: refused with 401 AUTHENTICATION_ERROR, both secrets; revoking again is harmless.
    let revoked = app.delete(&format!("/v1/keys/{key_id}"), &admin).await.expect(200);
    assert_eq!(revoked.body["key"]["status"], "revoked");
    for t in [&newest, &new_token] {
        let resp = app.get("/v1/me", t).await.expect(401);
        assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");
        assert!(resp.body["error"]["message"].as_str().unwrap().contains("revoked"));
    }
    let again = app.delete(&format!("/v1/keys/{key_id}"), &admin).await.expect(200);
    assert_eq!(again.body["key"]["revoked_at"], revoked.body["key"]["revoked_at"]);
    let resp = app.post(&format!("/v1/keys/{key_id}/rotate"), &admin, json!({})).await.expect(409);
    assert_eq!(resp.error_code(), "CONFLICT");

    // Every change is in the tenant's audit log, attributed to the admin key and its request.
    let audit = app.get("/v1/audit-events", &admin).await.expect(200);
    let actions: Vec<_> =
        audit.body["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["tenant.created", "key.created", "key.created", "key.rotated", "key.rotated", "key.revoked"]);
    let revoke_event = &audit.body["events"][5];
    assert_eq!(revoke_event["request_id"], revoked.body["request_id"]);
    assert!(revoke_event["actor"].as_str().unwrap().starts_with("key:fpk_"));
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let created = app.post("/v1/keys", &admin, json!({"name": "short", "expires_in": 1})).await.expect(201);
    let token = created.body["token"].as_str().unwrap();
    // Wait past the expiry (a correctness wait, not a performance threshold).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let resp = app.get("/v1/me", token).await.expect(401);
    assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("expired"));
    let key = app.get(&format!("/v1/keys/{}", created.body["key"]["id"].as_str().unwrap()), &admin).await.expect(200);
    assert_eq!(key.body["key"]["status"], "expired");

    let past = app.post("/v1/keys", &admin, json!({"name": "past", "expires_at": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(past.expect(400).error_code(), "BAD_ARGUMENTS");
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, product) = app.create_key(&tenant, &["face"]).await;
    app.get("/v1/me", &product).await.expect(200);
    for resp in [
        app.get("/v1/keys", &product).await,
        app.post("/v1/keys", &product, json!({"name": "escalate", "scopes": ["admin"]})).await,
        app.get("/v1/audit-events", &product).await,
    ] {
        assert_eq!(resp.expect(403).error_code(), "AUTHORIZATION_ERROR");
    }
    // Default scopes: every product, not admin.
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let created = app.post("/v1/keys", &admin, json!({"name": "defaults"})).await.expect(201);
    assert_eq!(created.body["key"]["scopes"], json!(["face", "ocr", "plate", "object"]));
    let bad = app.post("/v1/keys", &admin, json!({"name": "x", "scopes": ["superuser"]})).await.expect(400);
    assert_eq!(bad.error_code(), "BAD_ARGUMENTS");
    let none = app.post("/v1/keys", &admin, json!({"name": "x", "scopes": []})).await.expect(400);
    assert_eq!(none.error_code(), "BAD_ARGUMENTS");
}

#[tokio::test]
async fn bad_credentials_are_refused_alike() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (key_id, token) = app.create_key(&tenant, &["face"]).await;
    let wrong_secret = format!("{key_id}.{}", "A".repeat(40));
    let unknown_key = format!("fpk_{}.{}", "0".repeat(32), "A".repeat(40));
    for bad in ["", "garbage", "fpk_x", wrong_secret.as_str(), unknown_key.as_str(), OPERATOR_TOKEN] {
        let resp = app.get("/v1/me", bad).await.expect(401);
        assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR", "token {bad:?}");
    }
    let basic =
        app.client.get(app.url("/v1/me")).header("authorization", format!("Basic {token}")).send().await.unwrap();
    assert_eq!(faceplate_tests::read(basic).await.expect(401).error_code(), "AUTHENTICATION_ERROR");
    let no_auth = app.call(reqwest::Method::GET, "/v1/me", None, None).await.expect(401);
    assert_eq!(no_auth.error_code(), "AUTHENTICATION_ERROR");
    // Tenant keys do not open the operator API.
    let resp = app.get("/admin/v1/tenants", &token).await.expect(401);
    assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");
}

#[tokio::test]
async fn key_settings_are_validated_and_stored() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let created = app
        .post("/v1/keys", &admin, json!({"name": "limited", "rate_limit_qps": 5, "max_concurrency": 2}))
        .await
        .expect(201);
    assert_eq!(created.body["key"]["rate_limit_qps"], 5);
    assert_eq!(created.body["key"]["max_concurrency"], 2);
    for body in [
        json!({"name": "", "scopes": ["face"]}),
        json!({"name": "x", "rate_limit_qps": 0}),
        json!({"name": "x", "expires_in": -5}),
        json!({"name": "x", "expires_in": 10, "expires_at": "2099-01-01T00:00:00Z"}),
        json!({"name": "x", "unexpected": true}),
    ] {
        let resp = app.post("/v1/keys", &admin, body.clone()).await.expect(400);
        assert_eq!(resp.error_code(), "BAD_ARGUMENTS", "body {body}");
    }
    let key_id = created.body["key"]["id"].as_str().unwrap();
    let resp = app.post(&format!("/v1/keys/{key_id}/rotate"), &admin, json!({"grace_seconds": 10_000_000})).await;
    assert_eq!(resp.expect(400).error_code(), "BAD_ARGUMENTS");
}
