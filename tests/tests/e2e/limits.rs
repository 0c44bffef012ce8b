//! Rate and in-flight limits per key and per tenant, on one node and across two nodes sharing Redis.
//!
//! No test here depends on how fast the machine is: rate tests count the requests admitted against what the
//! rate allows in the time the test measured, and in-flight tests hold a request open (its body unfinished)
//! for as long as they need it.

use std::time::{Duration, Instant};

use faceplate_tests::{OPERATOR_TOKEN, Resp, TestApp};
use reqwest::Method;
use serde_json::json;

/// The Redis the tests share counts through: `TEST_REDIS_URL` (scripts/test.sh sets it), else the standard port.
fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A Redis key prefix of this test's own, so tests sharing the machine's Redis do not share counts.
fn redis_config(on_failure: &str, url: &str) -> String {
    let prefix = format!("faceplate-test-{}", uuid::Uuid::new_v4());
    // A timeout far above production's 100 ms: the tests share two cores with the rest of the suite.
    format!(
        "[limits]\nredis_url = {url:?}\nredis_prefix = {prefix:?}\non_redis_failure = {on_failure:?}\n\
         redis_timeout_ms = 3000\n"
    )
}

/// A tenant on `plan` with one key of the given own limits; returns (tenant id, bearer token).
async fn tenant_with_key(app: &TestApp, name: &str, plan: &str, key: serde_json::Value) -> (String, String) {
    let tenant = app
        .post("/admin/v1/tenants", OPERATOR_TOKEN, json!({"name": name, "plan": plan}))
        .await
        .expect(201)
        .body["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = json!({"name": "k", "scopes": ["face"]});
    body.as_object_mut().unwrap().extend(key.as_object().unwrap().clone());
    let created = app.post(&format!("/admin/v1/tenants/{tenant}/keys"), OPERATOR_TOKEN, body).await.expect(201);
    (tenant, created.body["token"].as_str().unwrap().to_string())
}

/// Sends `count` requests one after another (round robin over `apps` and `tokens`); returns the admitted
/// ones, the refusals and the seconds the whole run took.
async fn burst(apps: &[&TestApp], tokens: &[&str], count: usize) -> (usize, Vec<Resp>, f64) {
    let started = Instant::now();
    let (mut admitted, mut refused) = (0, Vec::new());
    for i in 0..count {
        let resp = apps[i % apps.len()].get("/v1/me", tokens[i % tokens.len()]).await;
        match resp.status.as_u16() {
            200 => admitted += 1,
            429 => refused.push(resp),
            other => panic!("unexpected status {other}: {}", resp.text),
        }
    }
    (admitted, refused, started.elapsed().as_secs_f64())
}

/// The most a GCRA limit of `qps` (burst `qps`) can admit in `seconds`.
fn most_admitted(qps: f64, seconds: f64) -> usize {
    (qps + (qps * seconds).ceil()) as usize
}

#[tokio::test]
async fn a_key_over_its_rate_is_refused_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::spawn().await;
    let (_, token) = tenant_with_key(&app, "acme", "free", json!({"rate_limit_qps": 2})).await;

    // An admitted request says its limits: the key's own rate and the plan's tenant rate.
    let started = Instant::now();
    let first = app.get("/v1/me", &token).await.expect(200);
    assert_eq!(first.header("ratelimit-policy"), Some("\"key\";q=2;w=1, \"tenant\";q=10;w=1"));
    assert_eq!(first.header("ratelimit"), Some("\"key\";r=1;t=1"));

    let (admitted, refused, _) = burst(&[&app], &[&token], 20).await;
    let seconds = started.elapsed().as_secs_f64();
    // The first request counts too.
    let admitted = admitted + 1;
    assert!(admitted <= most_admitted(2.0, seconds), "{admitted} admitted in {seconds:.2} s");
    let refusal = refused.first().expect("some requests are refused");
    assert_eq!(refusal.error_code(), "RATE_LIMITED");
    assert_eq!(refusal.header("retry-after"), Some("1"));
    assert_eq!(refusal.header("ratelimit-policy"), Some("\"key\";q=2;w=1"));
    assert_eq!(refusal.header("ratelimit"), Some("\"key\";r=0;t=1"));
    assert!(refusal.body["error"]["message"].as_str().unwrap().contains("2 requests per second"));

    // Limits hold per key: another tenant's key is not affected.
    let (_, other) = tenant_with_key(&app, "other", "free", json!({})).await;
    app.get("/v1/me", &other).await.expect(200);
}

#[tokio::test]
async fn a_tenant_is_held_to_its_plan_over_all_its_keys_and_a_new_plan_applies_at_once() {
    let app = TestApp::spawn().await;
    // Keys allowed far more than the free plan's 10 requests a second for the tenant.
    let (tenant, first) = tenant_with_key(&app, "acme", "free", json!({"rate_limit_qps": 1000})).await;
    let second = app
        .post(
            &format!("/admin/v1/tenants/{tenant}/keys"),
            OPERATOR_TOKEN,
            json!({"name": "second", "scopes": ["face"], "rate_limit_qps": 1000}),
        )
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (admitted, refused, seconds) = burst(&[&app], &[&first, &second], 40).await;
    assert!(admitted <= most_admitted(10.0, seconds), "{admitted} admitted in {seconds:.2} s");
    let refusal = refused.first().expect("the tenant's rate is reached");
    assert_eq!(refusal.error_code(), "RATE_LIMITED");
    assert_eq!(refusal.header("ratelimit-policy"), Some("\"tenant\";q=10;w=1"));

    // On enterprise (200 a second for the tenant) the same keys are admitted again, with no restart.
    let plan = app
        .call(
            Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/plan"),
            Some(OPERATOR_TOKEN),
            Some(json!({"plan": "enterprise"})),
        )
        .await
        .expect(200);
    assert_eq!(plan.body["tenant"]["plan"], "enterprise");
    let me = app.get("/v1/me", &first).await.expect(200);
    assert_eq!(me.header("ratelimit-policy"), Some("\"key\";q=1000;w=1, \"tenant\";q=200;w=1"));
    let unknown = app
        .call(
            Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/plan"),
            Some(OPERATOR_TOKEN),
            Some(json!({"plan": "gold"})),
        )
        .await
        .expect(400);
    assert_eq!(unknown.error_code(), "BAD_ARGUMENTS");

    // The change is in the tenant's audit log.
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let audit = app.get("/v1/audit-events", &admin).await.expect(200);
    let changed = audit.body["events"].as_array().unwrap().iter().find(|e| e["action"] == "tenant.plan_changed");
    assert_eq!(changed.expect("audited")["detail"], json!({"from": "free", "to": "enterprise"}));
}

#[tokio::test]
async fn the_facepp_api_answers_as_facepp_does() {
    let app = TestApp::spawn().await;
    let (_, token) = tenant_with_key(&app, "acme", "free", json!({"rate_limit_qps": 1})).await;
    let (key, secret) = token.split_once('.').unwrap();
    let form = [("api_key", key), ("api_secret", secret)];
    let mut refused = None;
    for _ in 0..20 {
        let resp = faceplate_tests::read(
            app.client.post(app.url("/facepp/v3/faceset/getfacesets")).form(&form).send().await.unwrap(),
        )
        .await;
        if resp.status.as_u16() != 200 {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.expect("a key of one request a second is refused within 20");
    assert_eq!(refused.status.as_u16(), 403);
    assert_eq!(refused.error_code(), "CONCURRENCY_LIMIT_EXCEEDED");
    assert_eq!(refused.body["error_message"], "CONCURRENCY_LIMIT_EXCEEDED");
}

/// Requests `app` admitted so far, from its metrics.
async fn admitted_so_far(app: &TestApp) -> f64 {
    let metrics = faceplate_tests::read(app.client.get(app.url("/metrics")).send().await.unwrap()).await;
    metrics
        .text
        .lines()
        .filter(|l| l.starts_with("faceplate_limit_decisions_total{") && l.contains("decision=\"allowed\""))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// A request held in flight on `app`: its body does not end until `release` is sent to (authentication and
/// limits come before the body, so the server admits it and holds its slots meanwhile). Returns once `app`
/// has admitted it. The body names the tenant's consent, so that once it ends it is refused for its missing
/// image (400), not for a missing consent.
struct Held {
    release: tokio::sync::oneshot::Sender<()>,
    response: tokio::task::JoinHandle<u16>,
}

async fn hold(app: &TestApp, token: &str, consent: &str) -> Held {
    let before = admitted_so_far(app).await;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let part = format!("--x\r\nContent-Disposition: form-data; name=\"consent_id\"\r\n\r\n{consent}\r\n");
    let start = futures_util::stream::once(async move { Ok::<_, std::io::Error>(part.into_bytes()) });
    let end = futures_util::stream::once(async move {
        let _ = released.await;
        Ok::<_, std::io::Error>(b"--x--\r\n".to_vec())
    });
    let body = reqwest::Body::wrap_stream(futures_util::StreamExt::chain(start, end));
    let request = app
        .client
        .post(app.url("/v1/faces/detect"))
        .bearer_auth(token)
        .header("content-type", "multipart/form-data; boundary=x")
        .body(body);
    let response = tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()).unwrap_or(0) });
    let deadline = Instant::now() + Duration::from_secs(10);
    while admitted_so_far(app).await < before + 1.0 {
        assert!(!response.is_finished(), "the held request ended before it was admitted");
        assert!(Instant::now() < deadline, "the held request was not admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Held { release, response }
}

impl Held {
    /// Ends the request; its status.
    async fn end(self) -> u16 {
        self.release.send(()).unwrap();
        self.response.await.unwrap()
    }
}

#[tokio::test]
async fn a_key_with_a_request_in_flight_at_its_limit_is_refused_until_it_ends() {
    let app = TestApp::spawn().await;
    let (tenant, token) =
        tenant_with_key(&app, "acme", "free", json!({"rate_limit_qps": 1000, "max_concurrency": 1})).await;
    let consent = app.allow_biometrics(&tenant).await;
    let held = hold(&app, &token, &consent).await;
    let refused = app.get("/v1/me", &token).await.expect(429);
    assert_eq!(refused.error_code(), "RATE_LIMITED");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("1 requests in flight"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(held.end().await, 400, "the held request ends (its form has no image)");
    // Its slot is free again.
    app.get("/v1/me", &token).await.expect(200);
}

#[tokio::test]
async fn two_nodes_sharing_redis_hold_one_limit() {
    let redis = redis_config("closed", &redis_url());
    let a = TestApp::spawn_with(&["local"], &redis).await;
    let b = a.second_node_with(&redis).await;
    let (tenant, token) =
        tenant_with_key(&a, "acme", "enterprise", json!({"rate_limit_qps": 1000, "max_concurrency": 1})).await;
    let consent = a.allow_biometrics(&tenant).await;

    // A request held open on node A fills the key's one slot on node B too.
    let held = hold(&a, &token, &consent).await;
    assert_eq!(b.get("/v1/me", &token).await.expect(429).error_code(), "RATE_LIMITED");
    assert_eq!(held.end().await, 400);
    // Freed on A, so B admits (the slot is given back a moment after the response).
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get("/v1/me", &token).await.status.as_u16() != 200 {
        assert!(Instant::now() < deadline, "the slot was not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A rate of 2 a second for the key, sent alternately to both nodes, is one rate.
    let (_, slow) = tenant_with_key(&a, "slow", "enterprise", json!({"rate_limit_qps": 2})).await;
    let (admitted, refused, seconds) = burst(&[&a, &b], &[&slow], 20).await;
    assert!(admitted <= most_admitted(2.0, seconds), "{admitted} admitted in {seconds:.2} s over two nodes");
    assert!(!refused.is_empty());
}

#[tokio::test]
async fn redis_down_fails_closed_or_open_as_configured() {
    // Nothing listens on port 1.
    let closed = TestApp::spawn_with(&["local"], &redis_config("closed", "redis://127.0.0.1:1")).await;
    let (_, token) = tenant_with_key(&closed, "acme", "enterprise", json!({})).await;
    let refused = closed.get("/v1/me", &token).await.expect(503);
    assert_eq!(refused.error_code(), "SERVICE_UNAVAILABLE");
    assert_eq!(refused.header("retry-after"), Some("1"));

    // Open: served, and held by this node's own limiter.
    let open = TestApp::spawn_with(&["local"], &redis_config("open", "redis://127.0.0.1:1")).await;
    let (_, token) = tenant_with_key(&open, "acme", "enterprise", json!({"rate_limit_qps": 1})).await;
    let (admitted, refused, seconds) = burst(&[&open], &[&token], 10).await;
    assert!(admitted >= 1 && admitted <= most_admitted(1.0, seconds), "{admitted} in {seconds:.2} s");
    assert!(!refused.is_empty());
    let metrics = faceplate_tests::read(open.client.get(open.url("/metrics")).send().await.unwrap()).await;
    let failures = metrics
        .text
        .lines()
        .find(|l| l.starts_with("faceplate_limiter_redis_failures_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the failure counter is exported");
    assert!(failures >= 1.0);
}
