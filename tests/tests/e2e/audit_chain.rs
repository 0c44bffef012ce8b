//! The audit log is a sealed chain per tenant: `faceplate audit verify` (and the operator's verify endpoint)
//! finds an edited, removed, inserted or cut-off entry, made straight in the database behind the platform's back.

use diesel::RunQueryDsl;
use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use serde_json::{Value, json};

/// A tenant with `keys` keys created and one revoked: 2 + keys audit entries (tenant.created, key.created…,
/// key.revoked). Returns its id.
async fn busy_tenant(app: &TestApp, name: &str, keys: usize) -> String {
    let tenant = app.create_tenant(name, None).await;
    let mut last = String::new();
    for _ in 0..keys {
        last = app.create_key(&tenant, &["face"]).await.0;
    }
    app.delete(&format!("/admin/v1/tenants/{tenant}/keys/{last}"), OPERATOR_TOKEN).await.expect(200);
    tenant
}

async fn verification(app: &TestApp, tenant: &str) -> Value {
    app.get(&format!("/admin/v1/tenants/{tenant}/audit/verify"), OPERATOR_TOKEN).await.expect(200).body
}

fn tamper(app: &TestApp, sql: &str) {
    let changed = diesel::sql_query(sql).execute(&mut app.dbs.region_connection("local")).expect("tamper");
    assert_eq!(changed, 1, "{sql}");
}

fn problems(v: &Value) -> Vec<(String, Option<i64>)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap().to_string(), p["seq"].as_i64()))
        .collect()
}

#[tokio::test]
async fn every_entry_is_sealed_in_order_and_the_chain_verifies() {
    let app = TestApp::spawn().await;
    let tenant = busy_tenant(&app, "acme", 3).await;
    let (_, token) = app.create_key(&tenant, &["admin"]).await;
    let events = app.get("/v1/audit-events", &token).await.expect(200).body["events"].as_array().unwrap().clone();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "created, 3 keys, revoked, the admin key: {events:?}");
    let hashes: std::collections::BTreeSet<&str> = events.iter().map(|e| e["hash"].as_str().unwrap()).collect();
    assert_eq!(hashes.len(), 6);
    assert!(hashes.iter().all(|h| h.len() == 64));

    let v = verification(&app, &tenant).await;
    assert_eq!((v["intact"].as_bool(), v["entries"].as_i64(), v["head_seq"].as_i64()), (Some(true), Some(6), Some(6)));
    let out = app.cli(&["audit", "verify", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 entries, intact"));

    // A restart does not re-seal anything, and the chain goes on where it was.
    let app = app.restart().await;
    app.create_key(&tenant, &["face"]).await;
    let v = verification(&app, &tenant).await;
    assert_eq!((v["intact"].as_bool(), v["entries"].as_i64()), (Some(true), Some(7)), "{v}");
}

#[tokio::test]
async fn edits_removals_insertions_and_truncation_are_detected() {
    let app = TestApp::spawn().await;
    let edited = busy_tenant(&app, "edited", 3).await;
    let removed = busy_tenant(&app, "removed", 3).await;
    let truncated = busy_tenant(&app, "truncated", 3).await;
    let inserted = busy_tenant(&app, "inserted", 3).await;
    let untouched = busy_tenant(&app, "untouched", 3).await;

    tamper(&app, &format!("UPDATE audit_events SET detail = '{{}}' WHERE tenant_id = '{edited}' AND seq = 2"));
    tamper(&app, &format!("DELETE FROM audit_events WHERE tenant_id = '{removed}' AND seq = 3"));
    tamper(&app, &format!("DELETE FROM audit_events WHERE tenant_id = '{truncated}' AND seq = 5"));
    // A forged entry copied from a real one, with the next number and a made-up seal.
    tamper(
        &app,
        &format!(
            "INSERT INTO audit_events (id, tenant_id, occurred_at, actor, action, target, request_id, detail, seq, \
             prev_hash, hash) SELECT 'aud_forged', tenant_id, occurred_at, actor, 'key.created', target, \
             request_id, detail, 6, hash, hash FROM audit_events WHERE tenant_id = '{inserted}' AND seq = 5"
        ),
    );

    assert_eq!(problems(&verification(&app, &edited).await), vec![("edited".into(), Some(2))]);
    assert_eq!(problems(&verification(&app, &removed).await), vec![("removed".into(), Some(4))]);
    assert_eq!(problems(&verification(&app, &truncated).await), vec![("truncated".into(), None)]);
    assert_eq!(problems(&verification(&app, &inserted).await), vec![("inserted".into(), Some(6))]);
    assert_eq!(verification(&app, &untouched).await["intact"], true);

    // The command line checks every tenant and fails, naming what it found.
    let out = app.cli(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the audit log of 4 tenant(s) was altered"));
    assert!(stdout.contains("edited at entry 2"), "{stdout}");
    assert!(stdout.contains("removed at entry 4"), "{stdout}");
    assert!(stdout.contains("untouched") && stdout.contains("5 entries, intact"), "{stdout}");
    let out = app.cli(&["--json", "audit", "verify", "--tenant", "untouched"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["problems"], json!([]));
}
