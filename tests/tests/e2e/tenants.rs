use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use serde_json::json;

#[tokio::test]
async fn operator_manages_tenants() {
    let app = TestApp::spawn().await;
    let id = app.create_tenant("acme", None).await;
    let other = app.create_tenant("globex", None).await;
    let dup = app.post("/admin/v1/tenants", OPERATOR_TOKEN, json!({"name": "acme"})).await.expect(409);
    assert_eq!(dup.error_code(), "CONFLICT");

    let got = app.get(&format!("/admin/v1/tenants/{id}"), OPERATOR_TOKEN).await.expect(200);
    assert_eq!(got.body["tenant"]["home_region"], "local");
    assert_eq!(got.body["tenant"]["status"], "active");

    // Paging: one per page, in creation order, then the end.
    let page1 = app.get("/admin/v1/tenants?limit=1", OPERATOR_TOKEN).await.expect(200);
    assert_eq!(page1.body["tenants"][0]["id"], id.as_str());
    let after = page1.body["next_after"].as_str().unwrap();
    let page2 = app.get(&format!("/admin/v1/tenants?limit=1&after={after}"), OPERATOR_TOKEN).await.expect(200);
    assert_eq!(page2.body["tenants"][0]["id"], other.as_str());
    let page3 = app
        .get(&format!("/admin/v1/tenants?limit=1&after={}", page2.body["next_after"].as_str().unwrap()), OPERATOR_TOKEN)
        .await
        .expect(200);
    assert_eq!(page3.body["tenants"], json!([]));
    assert!(page3.body["next_after"].is_null());

    let missing = app.get("/admin/v1/tenants/ten_00000000000000000000000000000000", OPERATOR_TOKEN).await;
    assert_eq!(missing.expect(404).error_code(), "TENANT_NOT_FOUND");
    let malformed = app.get("/admin/v1/tenants/not-an-id", OPERATOR_TOKEN).await;
    assert_eq!(malformed.expect(404).error_code(), "TENANT_NOT_FOUND");
}

#[tokio::test]
async fn suspended_tenants_are_refused_until_resumed() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    app.get("/v1/me", &token).await.expect(200);

    let suspended =
        app.post(&format!("/admin/v1/tenants/{tenant}/suspend"), OPERATOR_TOKEN, json!({})).await.expect(200);
    assert_eq!(suspended.body["tenant"]["status"], "suspended");
    assert_eq!(app.get("/v1/me", &token).await.expect(403).error_code(), "TENANT_SUSPENDED");

    app.post(&format!("/admin/v1/tenants/{tenant}/resume"), OPERATOR_TOKEN, json!({})).await.expect(200);
    app.get("/v1/me", &token).await.expect(200);
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_keys_and_region_data() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let keep = app.create_tenant("globex", None).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    let (_, kept_token) = app.create_key(&keep, &["face"]).await;
    assert!(app.dbs.tenant_rows_in_region("local", &tenant) > 0);

    let deleted = app.delete(&format!("/admin/v1/tenants/{tenant}"), OPERATOR_TOKEN).await.expect(200);
    assert!(deleted.body["region_rows_deleted"].as_u64().unwrap() >= 2);
    assert_eq!(app.dbs.tenant_rows_in_region("local", &tenant), 0);
    assert_eq!(app.get("/v1/me", &token).await.expect(401).error_code(), "AUTHENTICATION_ERROR");
    let gone = app.get(&format!("/admin/v1/tenants/{tenant}"), OPERATOR_TOKEN).await.expect(404);
    assert_eq!(gone.error_code(), "TENANT_NOT_FOUND");

    // The other tenant is untouched.
    app.get("/v1/me", &kept_token).await.expect(200);
    assert!(app.dbs.tenant_rows_in_region("local", &keep) > 0);
}
