//! Transparency: the operator records legal and government requests; the public report aggregates them per
//! half-year and never shows one request, its authority or its notes.

use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

fn request(received_on: &str, kind: &str, jurisdiction: &str, accounts: i64, outcome: &str) -> Value {
    json!({"received_on": received_on, "kind": kind, "jurisdiction": jurisdiction,
        "authority": "Landeskriminalamt Berlin", "accounts_affected": accounts, "outcome": outcome,
        "notes": "checked the court order's signature"})
}

#[tokio::test]
async fn requests_are_recorded_privately_and_reported_in_aggregate() {
    let app = TestApp::spawn().await;
    let recorded = app
        .post("/admin/v1/legal-requests", OPERATOR_TOKEN, request("2026-08-03", "court_order", "DE", 2, "pending"))
        .await
        .expect(201)
        .body;
    let id = recorded["legal_request"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("lrq_"));
    for body in [
        request("2026-09-14", "subpoena", "US", 1, "rejected"),
        request("2026-10-01", "subpoena", "US", 3, "disclosed"),
        request("2026-11-20", "national_security", "US", 40, "disclosed"),
        request("2026-03-02", "emergency", "SG", 1, "disclosed"),
    ] {
        app.post("/admin/v1/legal-requests", OPERATOR_TOKEN, body).await.expect(201);
    }
    let updated = app
        .call(
            Method::PATCH,
            &format!("/admin/v1/legal-requests/{id}"),
            Some(OPERATOR_TOKEN),
            Some(json!({"outcome": "partially_disclosed"})),
        )
        .await
        .expect(200);
    assert_eq!(updated.body["legal_request"]["outcome"], "partially_disclosed");
    let listed = app.get("/admin/v1/legal-requests?limit=2", OPERATOR_TOKEN).await.expect(200).body;
    assert_eq!(listed["legal_requests"].as_array().unwrap().len(), 2);
    assert!(listed["next_after"].is_string());

    // Public: no credentials needed, newest half-year first, nothing of a single request.
    let report = app.client.get(app.url("/transparency/report")).send().await.unwrap();
    assert_eq!(report.status(), 200);
    let report: Value = report.json().await.unwrap();
    let text = report.to_string();
    assert!(!text.contains("Landeskriminalamt") && !text.contains("signature") && !text.contains(&id), "{text}");
    let periods = report["periods"].as_array().unwrap();
    assert_eq!(periods.iter().map(|p| p["period"].as_str().unwrap()).collect::<Vec<_>>(), ["2026-H2", "2026-H1"]);
    let h2 = &periods[0];
    assert_eq!((h2["requests"].as_i64(), h2["accounts_affected"].as_i64()), (Some(3), Some(6)));
    assert_eq!(h2["by_kind"], json!({"court_order": 1, "subpoena": 2}));
    assert_eq!(h2["by_jurisdiction"], json!({"DE": 1, "US": 2}));
    assert_eq!(h2["by_outcome"], json!({"disclosed": 1, "partially_disclosed": 1, "rejected": 1}));
    assert_eq!(
        (h2["national_security_requests"].as_str(), h2["national_security_accounts"].as_str()),
        (Some("0-249"), Some("0-249"))
    );
    let h1 = app.client.get(app.url("/transparency/report?period=2026-H1")).send().await.unwrap();
    let h1: Value = h1.json().await.unwrap();
    assert_eq!(h1["periods"][0]["by_kind"], json!({"emergency": 1}));
    let empty: Value =
        app.client.get(app.url("/transparency/report?period=2025-H1")).send().await.unwrap().json().await.unwrap();
    assert_eq!((empty["periods"][0]["requests"].as_i64(), empty["periods"].as_array().unwrap().len()), (Some(0), 1));
}

#[tokio::test]
async fn bad_requests_are_refused_and_only_the_operator_records() {
    let app = TestApp::spawn().await;
    for (body, fragment) in [
        (request("2026-08-03", "fishing", "DE", 1, "pending"), "kind must be one of"),
        (request("2026-08-03", "subpoena", "usa", 1, "pending"), "jurisdiction"),
        (request("2026-08-03", "subpoena", "US", -1, "pending"), "accounts_affected"),
        (request("2026-08-03", "subpoena", "US", 1, "maybe"), "outcome must be one of"),
        (request("2999-01-01", "subpoena", "US", 1, "pending"), "future"),
    ] {
        let refused = app.post("/admin/v1/legal-requests", OPERATOR_TOKEN, body).await.expect(400);
        assert_eq!(refused.error_code(), "BAD_ARGUMENTS");
        assert!(refused.text.contains(fragment), "{}", refused.text);
    }
    let missing = app
        .call(Method::PATCH, "/admin/v1/legal-requests/lrq_0000000000", Some(OPERATOR_TOKEN), Some(json!({})))
        .await
        .expect(404);
    assert_eq!(missing.error_code(), "LEGAL_REQUEST_NOT_FOUND");
    let tenant = app.create_tenant("acme", None).await;
    let (_, key) = app.create_key(&tenant, &["admin"]).await;
    app.post("/admin/v1/legal-requests", &key, request("2026-08-03", "subpoena", "US", 1, "pending")).await.expect(401);
    let bad_period = app.client.get(app.url("/transparency/report?period=2026-Q3")).send().await.unwrap();
    assert_eq!(bad_period.status(), 400);
}
