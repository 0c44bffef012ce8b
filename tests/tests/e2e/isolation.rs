use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use serde_json::json;

/// Tenant A's admin key gets 404 for every one of tenant B's resources, exactly as for ids that never existed.
#[tokio::test]
async fn another_tenants_resources_are_not_found() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("tenant-a", None).await;
    let b = app.create_tenant("tenant-b", None).await;
    let (_, a_admin) = app.create_key(&a, &["admin"]).await;
    let (b_key, b_admin) = app.create_key(&b, &["admin"]).await;
    let b_events = app.get("/v1/audit-events", &b_admin).await.expect(200);
    let b_event = b_events.body["events"][0]["id"].as_str().unwrap().to_string();

    let cases = [
        app.get(&format!("/v1/keys/{b_key}"), &a_admin).await,
        app.delete(&format!("/v1/keys/{b_key}"), &a_admin).await,
        app.post(&format!("/v1/keys/{b_key}/rotate"), &a_admin, json!({})).await,
    ];
    for resp in cases {
        assert_eq!(resp.expect(404).error_code(), "KEY_NOT_FOUND");
    }
    let resp = app.get(&format!("/v1/audit-events/{b_event}"), &a_admin).await.expect(404);
    assert_eq!(resp.error_code(), "AUDIT_EVENT_NOT_FOUND");

    // Same answer as for ids that do not exist at all.
    let never = app.get("/v1/keys/fpk_0123456789abcdef0123456789abcdef", &a_admin).await.expect(404);
    assert_eq!(never.error_code(), "KEY_NOT_FOUND");

    // Lists show only the caller's own records, even when paging from the other tenant's cursor.
    let keys = app.get("/v1/keys", &a_admin).await.expect(200);
    assert!(keys.body["keys"].as_array().unwrap().iter().all(|k| k["tenant_id"] == a.as_str()));
    assert!(!keys.text.contains(&b_key));
    let after_b = app.get(&format!("/v1/keys?after={b_key}"), &a_admin).await.expect(200);
    assert!(!after_b.text.contains(&b_key));
    let events = app.get("/v1/audit-events", &a_admin).await.expect(200);
    assert!(!events.text.contains(&b) && !events.text.contains(&b_event));

    // B's key still works: A's attempts changed nothing.
    let me = app.get("/v1/me", &b_admin).await.expect(200);
    assert_eq!(me.body["key"]["status"], "active");
    // The operator sees both.
    let all = app.get("/admin/v1/tenants", OPERATOR_TOKEN).await.expect(200);
    assert_eq!(all.body["tenants"].as_array().unwrap().len(), 2);
    // And the operator's key routes are scoped by tenant too.
    let cross = app.delete(&format!("/admin/v1/tenants/{a}/keys/{b_key}"), OPERATOR_TOKEN).await.expect(404);
    assert_eq!(cross.error_code(), "KEY_NOT_FOUND");
}
