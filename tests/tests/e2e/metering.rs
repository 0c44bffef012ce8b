//! Usage metering and quotas end to end: what the client saw answered is what the usage API counts, once;
//! retries with an Idempotency-Key are counted once; a tenant at its cap is refused; usage survives a crash.

use std::collections::BTreeSet;

use base64::Engine as _;
use faceplate_tests::{OPERATOR_TOKEN, Resp, TestApp, read, test_image};
use serde_json::{Value, json};

/// A tenant on `plan`, ready for biometric calls, with one key of scopes face and admin; returns (tenant id,
/// token, api_key, api_secret, consent id).
async fn tenant(app: &TestApp, name: &str, plan: &str) -> (String, String, String, String, String) {
    let body = json!({"name": name, "plan": plan});
    let created = app.post("/admin/v1/tenants", OPERATOR_TOKEN, body).await.expect(201);
    let id = created.body["tenant"]["id"].as_str().unwrap().to_string();
    let consent = app.allow_biometrics(&id).await;
    let key = app
        .post(
            &format!("/admin/v1/tenants/{id}/keys"),
            OPERATOR_TOKEN,
            json!({"name": "k", "scopes": ["face", "admin"]}),
        )
        .await
        .expect(201);
    let field = |f: &str| key.body[f].as_str().unwrap().to_string();
    (id, field("token"), field("api_key"), field("api_secret"), consent)
}

/// Detects the astronaut (one billable call); returns her face token.
async fn face_token(app: &TestApp, token: &str, consent: &str) -> String {
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let body = json!({"image_base64": image, "consent_id": consent});
    let body = app.post("/v1/faces/detect", token, body).await.expect(200).body;
    body["faces"][0]["face_token"].as_str().unwrap().to_string()
}

/// A cheap billable call: the face compared with itself.
async fn compare(app: &TestApp, token: &str, consent: &str, face: &str) -> Resp {
    app.post("/v1/faces/compare", token, json!({"face_token1": face, "face_token2": face, "consent_id": consent})).await
}

/// Units per product this month, from the usage API.
async fn usage_totals(app: &TestApp, token: &str) -> Value {
    let body = app.get("/v1/usage?granularity=month", token).await.expect(200).body;
    let mut totals = serde_json::Map::new();
    for t in body["totals"].as_array().unwrap() {
        totals.insert(t["product"].as_str().unwrap().to_string(), t["units"].clone());
    }
    Value::Object(totals)
}

/// Every usage event this month (all pages).
async fn usage_events(app: &TestApp, token: &str) -> Vec<Value> {
    let (mut events, mut after) = (Vec::new(), None::<String>);
    loop {
        let path = match &after {
            Some(a) => format!("/v1/usage/events?limit=7&after={a}"),
            None => "/v1/usage/events?limit=7".to_string(),
        };
        let body = app.get(&path, token).await.expect(200).body;
        events.extend(body["events"].as_array().unwrap().iter().cloned());
        match body["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return events,
        }
    }
}

#[tokio::test]
async fn usage_counts_each_billable_answer_the_client_saw_exactly_once() {
    let app = TestApp::spawn().await;
    let (_, token, _, _, consent) = tenant(&app, "acme", "enterprise").await;
    let (_, other, _, _, _) = tenant(&app, "globex", "enterprise").await;
    let face = face_token(&app, &token, &consent).await;

    // Concurrent billable calls, and calls that are not billed: errors of every kind and free reads.
    let calls = (0..24).map(|i| {
        let (app, token, face, consent) = (&app, &token, &face, &consent);
        async move {
            match i % 4 {
                0 => compare(app, token, consent, "ftk_00000000000000000000000000000000").await,
                1 => {
                    let body = json!({"image_base64": "bm90IGFuIGltYWdl", "consent_id": consent});
                    app.post("/v1/faces/detect", token, body).await
                }
                2 => app.get(&format!("/v1/faces/{face}"), token).await,
                _ => compare(app, token, consent, face).await,
            }
        }
    });
    let responses = futures_util::future::join_all(calls).await;
    // A refusal by the limits (429), should the machine be slow enough to cause one, is not billed either.
    let mut billed_ids = BTreeSet::new();
    for (i, resp) in responses.iter().enumerate() {
        let expected = [404, 400, 200, 200][i % 4];
        assert!(resp.status == expected || resp.status == 429, "{}: {}", resp.status, resp.text);
        if i % 4 == 3 && resp.status == 200 {
            billed_ids.insert(resp.header("x-request-id").unwrap().to_string());
        }
    }
    let compared = billed_ids.len() as i64;
    assert!(compared > 0);

    // Visible at once: the detection and the comparisons answered.
    assert_eq!(usage_totals(&app, &token).await, json!({"face_compare": compared, "face_detect": 1}));
    let events = usage_events(&app, &token).await;
    assert_eq!(events.len() as i64, compared + 1);
    let compare_ids: BTreeSet<String> = events
        .iter()
        .filter(|e| e["product"] == "face_compare")
        .map(|e| e["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(compare_ids, billed_ids, "the events are the answers the client saw");
    assert!(events.iter().all(|e| e["status"] == 200 && e["units"] == 1));
    assert_eq!(events[1]["operation"], "POST /v1/faces/compare");

    // Hourly and daily buckets add up to the same; CSV says the same.
    let hourly = app.get("/v1/usage?granularity=hour&product=face_compare", &token).await.expect(200).body;
    let sum: i64 = hourly["buckets"].as_array().unwrap().iter().map(|b| b["units"].as_i64().unwrap()).sum();
    assert_eq!(sum, compared);
    let csv = app.get("/v1/usage?granularity=day&format=csv", &token).await.expect(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "start,product,units,calls");
    assert!(lines.iter().any(|l| l.ends_with(&format!(",face_compare,{compared},{compared}"))), "{}", csv.text);
    assert_eq!(lines.len(), 3, "{}", csv.text);

    // The statement: all within the enterprise plan's included units, so only its fee.
    let statement = app.get("/v1/usage/statement", &token).await.expect(200).body;
    assert_eq!(statement["plan_id"], "enterprise");
    let compare_line = statement["lines"].as_array().unwrap().iter().find(|l| l["product"] == "face_compare").unwrap();
    assert_eq!((compare_line["units"].as_i64(), compare_line["billable_units"].as_i64()), (Some(compared), Some(0)));
    assert_eq!(statement["total_cents"], 100_000);

    // Another tenant sees none of it; the operator sees it per tenant.
    assert_eq!(usage_totals(&app, &other).await, json!({}));
    assert!(usage_events(&app, &other).await.is_empty());

    // Bad ranges are the caller's mistake.
    let bad = app.get("/v1/usage?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", &token).await;
    assert_eq!(bad.expect(400).error_code(), "BAD_ARGUMENTS");
    let bad = app.get("/v1/usage?granularity=hour&from=2025-01-01T00:00:00Z&to=2025-06-01T00:00:00Z", &token).await;
    assert_eq!(bad.expect(400).error_code(), "BAD_ARGUMENTS");
    assert_eq!(app.get("/v1/usage?product=nothing", &token).await.expect(400).error_code(), "BAD_ARGUMENTS");
    assert_eq!(app.get("/v1/usage/statement?month=2026-13", &token).await.expect(400).error_code(), "BAD_ARGUMENTS");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_is_answered_but_counted_once() {
    let app = TestApp::spawn().await;
    let (_, token, _, _, consent) = tenant(&app, "acme", "pay_as_you_go").await;
    let face = face_token(&app, &token, &consent).await;
    let send_to = |path: &'static str, key: &'static str, body: Value| {
        let req = app.client.post(app.url(path)).bearer_auth(&token).header("Idempotency-Key", key);
        async move { read(req.json(&body).send().await.unwrap()).await }
    };
    let send = |key: &'static str, body: Value| send_to("/v1/faces/compare", key, body);
    let body = json!({"face_token1": face, "face_token2": face, "consent_id": consent});

    let first = send("order-17", body.clone()).await.expect(200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = send("order-17", body.clone()).await.expect(200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["confidence"], first.body["confidence"]);

    // The same key for another request is refused, not served free.
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let reused = send_to("/v1/faces/detect", "order-17", json!({"image_base64": image, "consent_id": consent})).await;
    assert_eq!(reused.expect(409).error_code(), "IDEMPOTENCY_KEY_REUSED");
    // A new key is a new call.
    send("order-18", body.clone()).await.expect(200);
    let malformed = send("bad key with spaces", body).await;
    assert_eq!(malformed.expect(400).error_code(), "BAD_ARGUMENTS");

    assert_eq!(usage_totals(&app, &token).await, json!({"face_compare": 2, "face_detect": 1}));
    let keys: Vec<Value> = usage_events(&app, &token).await.iter().map(|e| e["idempotency_key"].clone()).collect();
    assert_eq!(keys, vec![Value::Null, json!("order-17"), json!("order-18")]);
}

#[tokio::test]
async fn a_tenant_at_its_monthly_cap_is_refused_on_both_apis_until_the_plan_allows_more() {
    let app = TestApp::spawn().await;
    let plan = |compare_cap: i64| {
        json!({
            "name": "Tiny", "tenant_qps": 100, "tenant_concurrency": 10, "key_qps": 100, "key_concurrency": 10,
            "base_fee_cents": 500,
            "products": {
                "face_detect": {"included_units": 1, "monthly_cap": 1, "unit_price_micros": 0},
                "face_compare": {"included_units": 2, "monthly_cap": compare_cap, "unit_price_micros": 1500},
            }
        })
    };
    let put = app.call(reqwest::Method::PUT, "/admin/v1/plans/tiny", Some(OPERATOR_TOKEN), Some(plan(3))).await;
    let stored = put.expect(200).body;
    assert_eq!(stored["plan"]["products"]["face_compare"]["monthly_cap"], 3);
    let (_, token, api_key, api_secret, consent) = tenant(&app, "acme", "tiny").await;

    let face = face_token(&app, &token, &consent).await;
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let second = app.post("/v1/faces/detect", &token, json!({"image_base64": image, "consent_id": consent})).await;
    assert_eq!(second.expect(403).error_code(), "QUOTA_EXCEEDED");
    for _ in 0..3 {
        compare(&app, &token, &consent, &face).await.expect(200);
    }
    let refused = compare(&app, &token, &consent, &face).await.expect(403);
    assert_eq!(refused.error_code(), "QUOTA_EXCEEDED");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("3 of the 3"), "{}", refused.text);

    // Face++ clients get Face++'s answer.
    let form = [
        ("api_key", &api_key),
        ("api_secret", &api_secret),
        ("face_token1", &face),
        ("face_token2", &face),
        ("consent_id", &consent),
    ];
    let resp = read(app.client.post(app.url("/facepp/v3/compare")).form(&form).send().await.unwrap()).await;
    assert_eq!(resp.expect(403).body["error_message"], "AUTHORIZATION_ERROR:Insufficient Account Balance");

    // A product the plan does not include is refused too.
    let search = json!({"face_token": face, "outer_id": "x", "consent_id": consent});
    let search = app.post("/v1/facesets/search", &token, search).await;
    assert_eq!(search.expect(403).error_code(), "QUOTA_EXCEEDED");

    // Refusals are not counted; raising the cap lets the tenant go on at once.
    assert_eq!(usage_totals(&app, &token).await, json!({"face_compare": 3, "face_detect": 1}));
    app.call(reqwest::Method::PUT, "/admin/v1/plans/tiny", Some(OPERATOR_TOKEN), Some(plan(4))).await.expect(200);
    compare(&app, &token, &consent, &face).await.expect(200);
    compare(&app, &token, &consent, &face).await.expect(403);

    // $5 fee, 2 of 4 comparisons included, 2 at $0.0015.
    let statement = app.get("/v1/usage/statement", &token).await.expect(200).body;
    assert_eq!(statement["total_cents"], 500);
    let line = statement["lines"].as_array().unwrap().iter().find(|l| l["product"] == "face_compare").unwrap().clone();
    assert_eq!((line["units"].as_i64(), line["billable_units"].as_i64()), (Some(4), Some(2)));
    assert_eq!(line["amount_micros"], 3000);

    // Bad plans are refused with the reason.
    let mut bad = plan(3);
    bad["products"]["face_teleport"] = json!({"included_units": 1, "unit_price_micros": 1});
    let resp = app.call(reqwest::Method::PUT, "/admin/v1/plans/tiny", Some(OPERATOR_TOKEN), Some(bad)).await;
    assert_eq!(resp.expect(400).error_code(), "BAD_ARGUMENTS");
    let resp = app.call(reqwest::Method::PUT, "/admin/v1/plans/Bad%20Id", Some(OPERATOR_TOKEN), Some(plan(3))).await;
    assert_eq!(resp.expect(400).error_code(), "BAD_ARGUMENTS");
}

#[tokio::test]
async fn usage_survives_a_crash_and_two_nodes_count_into_one_total() {
    let app = TestApp::spawn().await;
    let (tenant_id, token, _, _, consent) = tenant(&app, "acme", "pay_as_you_go").await;
    let face = face_token(&app, &token, &consent).await;
    let node2 = app.second_node().await;
    for i in 0..10 {
        let node = if i % 2 == 0 { &app } else { &node2 };
        compare(node, &token, &consent, &face).await.expect(200);
    }
    drop(node2);
    // Every answered call was committed before it was answered: nothing is lost when the node dies.
    let app = app.crash_and_restart().await;
    assert_eq!(usage_totals(&app, &token).await, json!({"face_compare": 10, "face_detect": 1}));
    let operator = app.get(&format!("/admin/v1/tenants/{tenant_id}/usage?granularity=month"), OPERATOR_TOKEN).await;
    assert_eq!(operator.expect(200).body["totals"].as_array().unwrap().len(), 2);
}
