use diesel::RunQueryDsl;
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
async fn deleting_a_tenant_waits_out_its_grace_period_and_issues_a_certificate() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let keep = app.create_tenant("globex", None).await;
    let (_, token) = app.create_key(&tenant, &["face", "admin"]).await;
    let (_, kept_token) = app.create_key(&keep, &["face"]).await;
    let rows_before = app.dbs.settled_tenant_rows("local", &tenant).await;
    assert!(rows_before > 0);

    // Requested: scheduled 30 days out, keys refused at once, data kept, cancellable.
    let scheduled = app.delete(&format!("/admin/v1/tenants/{tenant}"), OPERATOR_TOKEN).await.expect(202).body;
    assert_eq!(scheduled["status"], "pending_deletion");
    let after = chrono::DateTime::parse_from_rfc3339(scheduled["delete_after"].as_str().unwrap()).unwrap();
    let days = (after.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "{days} days");
    assert_eq!(app.get("/v1/me", &token).await.expect(403).error_code(), "TENANT_PENDING_DELETION");
    let shown = app.get(&format!("/admin/v1/tenants/{tenant}"), OPERATOR_TOKEN).await.expect(200).body;
    assert_eq!(shown["tenant"]["status"], "pending_deletion");
    app.post(&format!("/admin/v1/tenants/{tenant}/suspend"), OPERATOR_TOKEN, json!({})).await.expect(409);
    assert!(app.dbs.tenant_rows_in_region("local", &tenant) >= rows_before);
    let none = app.get(&format!("/admin/v1/deletion-certificates/{tenant}"), OPERATOR_TOKEN).await.expect(404);
    assert_eq!(none.error_code(), "DELETION_CERTIFICATE_NOT_FOUND");

    let cancelled = app.post(&format!("/admin/v1/tenants/{tenant}/cancel-deletion"), OPERATOR_TOKEN, json!({})).await;
    assert_eq!(cancelled.expect(200).body["tenant"]["status"], "active");
    app.get("/v1/me", &token).await.expect(200);
    app.post(&format!("/admin/v1/tenants/{tenant}/cancel-deletion"), OPERATOR_TOKEN, json!({})).await.expect(409);
    let audit = app.get("/v1/audit-events", &token).await.expect(200).body;
    let actions: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"tenant.deletion_requested") && actions.contains(&"tenant.deletion_cancelled"));

    // Immediately: purged now, with a sealed certificate of what went.
    let rows_before = app.dbs.settled_tenant_rows("local", &tenant).await;
    let deleted = app.delete(&format!("/admin/v1/tenants/{tenant}?immediately=true"), OPERATOR_TOKEN).await.expect(200);
    let certificate = &deleted.body["certificate"];
    assert_eq!(deleted.body["status"], "deleted");
    let counted: i64 = certificate["rows_deleted"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(counted, rows_before);
    assert_eq!(
        (certificate["genuine"].as_bool(), certificate["sha256"].as_str().map(str::len)),
        (Some(true), Some(64))
    );
    assert!(certificate["purged_at"].is_string());
    assert_eq!(app.dbs.tenant_rows_in_region("local", &tenant), 0);
    assert_eq!(app.get("/v1/me", &token).await.expect(401).error_code(), "AUTHENTICATION_ERROR");
    let gone = app.get(&format!("/admin/v1/tenants/{tenant}"), OPERATOR_TOKEN).await.expect(404);
    assert_eq!(gone.error_code(), "TENANT_NOT_FOUND");

    // The certificate outlives the tenant, and a doctored one is told apart.
    let kept = app.get(&format!("/admin/v1/deletion-certificates/{tenant}"), OPERATOR_TOKEN).await.expect(200).body;
    assert_eq!(kept["certificate"]["sha256"], certificate["sha256"]);
    assert_eq!(kept["certificate"]["genuine"], true);
    let url = faceplate_store::db::DatabaseUrl::parse(&app.dbs.control_url).unwrap();
    diesel::sql_query("UPDATE deletion_certificates SET rows = '{}' WHERE tenant_id = $1")
        .bind::<diesel::sql_types::Text, _>(&tenant)
        .execute(&mut faceplate_store::db::connect(&url).unwrap())
        .unwrap();
    let doctored = app.get(&format!("/admin/v1/deletion-certificates/{tenant}"), OPERATOR_TOKEN).await.expect(200);
    assert_eq!(doctored.body["certificate"]["genuine"], false);

    // The other tenant is untouched.
    app.get("/v1/me", &kept_token).await.expect(200);
    assert!(app.dbs.tenant_rows_in_region("local", &keep) > 0);
}

#[tokio::test]
async fn a_tenant_deletes_its_account_and_the_purge_runs_when_the_grace_period_ends() {
    let app = TestApp::spawn_with(&["local"], "[privacy]\ndeletion_grace_days = 0\npurge_interval_secs = 1\n").await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, face) = app.create_key(&tenant, &["face"]).await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    assert_eq!(app.delete("/v1/account", &face).await.expect(403).error_code(), "AUTHORIZATION_ERROR");
    let scheduled = app.delete("/v1/account", &admin).await.expect(202).body;
    assert_eq!(scheduled["status"], "pending_deletion");
    for _ in 0..100 {
        if app.get(&format!("/admin/v1/tenants/{tenant}"), OPERATOR_TOKEN).await.status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.dbs.tenant_rows_in_region("local", &tenant), 0);
    let certificate = app.get(&format!("/admin/v1/deletion-certificates/{tenant}"), OPERATOR_TOKEN).await.expect(200);
    assert_eq!(certificate.body["certificate"]["genuine"], true);
}

/// A purge killed with SIGKILL part-way resumes when the node starts again, and its certificate still counts
/// every row that was there.
#[tokio::test]
async fn a_purge_killed_midway_resumes_to_completion() {
    let dbs = faceplate_tests::TestDatabases::create(&["local"]);
    let config = dbs.write_config("[privacy]\ndeletion_grace_days = 0\npurge_interval_secs = 1\n");
    let mut server = faceplate_tests::ServerProcess::start(&config).await;
    let client = faceplate_tests::test_client();
    let created = faceplate_tests::read(
        client
            .post(server.url("/admin/v1/tenants"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"name": "big"}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(201);
    let tenant = created.body["tenant"]["id"].as_str().unwrap().to_string();
    // Enough rows that the purge takes many batches.
    diesel::sql_query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000) \
         INSERT INTO usage_events (id, tenant_id, dedup_key, request_id, key_id, product, operation, units, status, \
         occurred_at) SELECT 'bulk-' || i, $1, 'req:bulk-' || i, 'bulk-' || i, 'fpk_x', 'face_detect', 'x', 1, 200, 0 \
         FROM n",
    )
    .bind::<diesel::sql_types::Text, _>(&tenant)
    .execute(&mut dbs.region_connection("local"))
    .unwrap();
    let rows_before = dbs.settled_tenant_rows("local", &tenant).await;

    let scheduled = client
        .delete(server.url(&format!("/admin/v1/tenants/{tenant}")))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(scheduled.status(), 202);
    // Kill as soon as the purge has begun (its certificate row exists), before it can finish.
    let url = faceplate_store::db::DatabaseUrl::parse(&dbs.control_url).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let started = |id: &str| {
        diesel::sql_query("SELECT COUNT(*) AS n FROM deletion_certificates WHERE tenant_id = $1")
            .bind::<diesel::sql_types::Text, _>(id)
            .get_result::<Count>(&mut faceplate_store::db::connect(&url).unwrap())
            .unwrap()
            .n
            > 0
    };
    for _ in 0..500 {
        if started(&tenant) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.kill();
    let left = dbs.tenant_rows_in_region("local", &tenant);
    eprintln!("killed with {left} of {rows_before} rows left");

    let server = faceplate_tests::ServerProcess::start(&config).await;
    let mut certificate = serde_json::Value::Null;
    for _ in 0..300 {
        let got = client
            .get(server.url(&format!("/admin/v1/deletion-certificates/{tenant}")))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        certificate = got.json().await.unwrap();
        if certificate["certificate"]["purged_at"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(certificate["certificate"]["purged_at"].is_string(), "{certificate}");
    assert_eq!(certificate["certificate"]["genuine"], true);
    assert_eq!(dbs.tenant_rows_in_region("local", &tenant), 0);
    let counted: i64 =
        certificate["certificate"]["rows_deleted"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(counted, rows_before + 1, "the rows, and the audit entry of the deletion request");
}
