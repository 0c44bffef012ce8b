use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use serde_json::json;

/// Each tenant's data lands only in its home region's store: checked by reading both stores directly.
#[tokio::test]
async fn tenant_data_stays_in_its_home_region() {
    let app = TestApp::spawn_with(&["eu", "us"], "").await;
    let eu = app.create_tenant("eu-tenant", Some("eu")).await;
    let us = app.create_tenant("us-tenant", Some("us")).await;
    let default = app.create_tenant("default-tenant", None).await; // default_region = eu (first)

    for tenant in [&eu, &us, &default] {
        let (_, admin) = app.create_key(tenant, &["admin"]).await;
        let created = app.post("/v1/keys", &admin, json!({"name": "k"})).await.expect(201);
        let id = created.body["key"]["id"].as_str().unwrap();
        app.post(&format!("/v1/keys/{id}/rotate"), &admin, json!({})).await.expect(200);
        app.delete(&format!("/v1/keys/{id}"), &admin).await.expect(200);
        let me = app.get("/v1/me", &admin).await.expect(200);
        assert!(app.get("/v1/audit-events", &admin).await.expect(200).body["events"].as_array().unwrap().len() >= 5);
        let home = me.body["tenant"]["home_region"].as_str().unwrap().to_string();
        let other = if home == "eu" { "us" } else { "eu" };
        assert!(app.dbs.tenant_rows_in_region(&home, tenant) >= 5, "{tenant} has rows at home");
        assert_eq!(app.dbs.tenant_rows_in_region(other, tenant), 0, "{tenant} has rows in {other}");
        // The residency report says the same, to the tenant and to the operator (once the key alerts are gone).
        app.dbs.settled_tenant_rows(&home, tenant).await;
        let report = app.get("/v1/residency", &admin).await.expect(200).body;
        assert_eq!(
            (report["home_region"].as_str(), report["rows_outside_home"].as_i64()),
            (Some(home.as_str()), Some(0))
        );
        assert_eq!(report["regions"][0]["region"], home.as_str());
        assert_eq!(report["regions"][0]["total"].as_i64(), Some(app.dbs.tenant_rows_in_region(&home, tenant)));
        assert!(report["regions"][0]["tables"]["audit_events"].as_i64().unwrap() >= 5, "{report}");
        assert_eq!(
            (report["regions"][1]["region"].as_str(), report["regions"][1]["total"].as_i64()),
            (Some(other), Some(0))
        );
        let by_operator = app.get(&format!("/admin/v1/tenants/{tenant}/residency"), OPERATOR_TOKEN).await.expect(200);
        // The operator's look is itself recorded in the tenant's audit log (one more row at home).
        let total = |r: &serde_json::Value, i: usize| r["regions"][i]["total"].as_i64().unwrap();
        assert_eq!(total(&by_operator.body, 0), total(&report, 0) + 1);
        assert_eq!(total(&by_operator.body, 1), 0);
        let audit = app.get("/v1/audit-events?limit=1000", &admin).await.expect(200).body;
        let access = audit["events"].as_array().unwrap().iter().find(|e| e["action"] == "operator.accessed").cloned();
        let access = access.expect("the operator's access is audited");
        assert_eq!(
            (access["actor"].as_str(), access["detail"]["what"].as_str()),
            (Some("operator"), Some("residency"))
        );
    }
    let got = app.get(&format!("/admin/v1/tenants/{default}"), OPERATOR_TOKEN).await.expect(200);
    assert_eq!(got.body["tenant"]["home_region"], "eu");

    // Unknown regions are refused, not defaulted.
    let resp = app.post("/admin/v1/tenants", OPERATOR_TOKEN, json!({"name": "x", "region": "mars"})).await.expect(400);
    assert_eq!(resp.error_code(), "BAD_ARGUMENTS");
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("mars"));
}

/// A node that does not serve a tenant's home region answers 421 WRONG_REGION instead of touching its data.
#[tokio::test]
async fn a_node_without_the_home_region_refuses_the_tenant() {
    let full = TestApp::spawn_with(&["eu", "us"], "").await;
    let us = full.create_tenant("us-tenant", Some("us")).await;
    let (_, admin) = full.create_key(&us, &["admin"]).await;
    let before = full.dbs.settled_tenant_rows("us", &us).await;

    // A second node on the same control store that serves only `eu`.
    let config = format!(
        "data_dir = {:?}\ncontrol_database_url = {:?}\nserver_secret = {:?}\nworkers = 1\n[regions.eu]\ndatabase_url = {:?}\n\
         [region_endpoints]\nus = \"https://us.faceplate.example\"\n",
        full.dbs.dir.path().join("node2").display().to_string(),
        full.dbs.control_url,
        faceplate_tests::SERVER_SECRET,
        full.dbs.region_urls["eu"],
    );
    let path = full.dbs.dir.path().join("node2.toml");
    std::fs::write(&path, config).unwrap();
    let config = faceplate_api::config::Config::load(Some(&path)).unwrap();
    let node2 = faceplate_api::server::start(&config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = node2.addr;
    tokio::spawn(node2.run);

    let resp = full.client.get(format!("http://{addr}/v1/audit-events")).bearer_auth(&admin).send().await.unwrap();
    let resp = faceplate_tests::read(resp).await.expect(421);
    assert_eq!(resp.error_code(), "WRONG_REGION");
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("`us`"));
    // It names where the tenant's requests go.
    assert_eq!(resp.header("faceplate-home-region"), Some("us"));
    assert_eq!(resp.header("faceplate-region-endpoint"), Some("https://us.faceplate.example"));
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("https://us.faceplate.example"), "{}", resp.text);
    let resp =
        full.client.post(format!("http://{addr}/v1/keys")).bearer_auth(&admin).json(&json!({"name": "x"})).send();
    assert_eq!(faceplate_tests::read(resp.await.unwrap()).await.expect(421).error_code(), "WRONG_REGION");
    assert_eq!(full.dbs.tenant_rows_in_region("eu", &us), 0);
    assert_eq!(full.dbs.tenant_rows_in_region("us", &us), before);
}
