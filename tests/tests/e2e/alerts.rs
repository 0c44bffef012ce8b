//! Security alerts: when a key of a tenant is created (by the tenant or the operator) or rotated, the tenant's
//! endpoint gets a signed JSON POST carrying the audit entry's id, retried until it answers 2xx.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use faceplate_tests::{OPERATOR_TOKEN, TestApp};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// What the receiver saw: (status it answered, event id, signature header, body).
type Seen = Arc<Mutex<Vec<(u16, String, String, String)>>>;

/// A tenant's endpoint that fails its first delivery with 503 and accepts the rest.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let state = seen.clone();
    let server = HttpServer::new(move || {
        let seen = state.clone();
        App::new().route(
            "/hook",
            web::post().to(move |req: HttpRequest, body: String| {
                let seen = seen.clone();
                async move {
                    let header = |name: &str| {
                        req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                    };
                    let mut seen = seen.lock().unwrap();
                    let status = if seen.is_empty() { 503 } else { 200 };
                    seen.push((status, header("faceplate-event-id"), header("faceplate-signature"), body));
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    (format!("http://{addr}/hook"), seen)
}

/// The accepted deliveries about other keys than `except`, waiting (up to a minute) until there are `n`.
async fn delivered(seen: &Seen, n: usize, except: &str) -> Vec<(String, String, Value)> {
    for _ in 0..600 {
        let accepted: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.0 == 200)
            .map(|(_, id, sig, body)| (id.clone(), sig.clone(), serde_json::from_str::<Value>(body).unwrap()))
            .filter(|(_, _, body)| body["target"] != json!(except))
            .collect();
        if accepted.len() >= n {
            return accepted;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} alerts delivered: {:?}", seen.lock().unwrap());
}

fn verify(secret: &str, signature: &str, body: &Value) -> bool {
    let Some((t, v1)) = signature.strip_prefix("t=").and_then(|s| s.split_once(",v1=")) else { return false };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes()) == v1
}

#[tokio::test]
async fn key_creation_and_rotation_alert_the_tenant_with_signed_retried_deliveries() {
    let app = TestApp::spawn_with(&["local"], "[alerts]\nallow_http = true\npoll_interval_ms = 50\n").await;
    let tenant = app.create_tenant("acme", None).await;
    let (admin_key, admin) = app.create_key(&tenant, &["admin"]).await;
    let (url, seen) = receiver().await;

    // Only https (here also http, which this node allows), never credentials in the URL.
    for bad in ["ftp://example.com/x", "https://user:pw@example.com/x", "not a url"] {
        let resp = app.call(reqwest::Method::PUT, "/v1/settings/alerts", Some(&admin), Some(json!({"url": bad})));
        assert_eq!(resp.await.expect(400).error_code(), "BAD_ARGUMENTS", "{bad}");
    }
    let set = app.call(reqwest::Method::PUT, "/v1/settings/alerts", Some(&admin), Some(json!({"url": url})));
    let set = set.await.expect(200).body;
    let secret = set["signing_secret"].as_str().unwrap().to_string();
    assert_eq!(set["events"], json!(["key.created", "key.rotated"]));
    let read = app.get("/v1/settings/alerts", &admin).await.expect(200).body;
    assert_eq!((read["url"].clone(), read["signing_secret"].clone()), (json!(url), Value::Null));

    // The tenant creates a key; the operator creates another; the tenant rotates the first.
    let created = app.post("/v1/keys", &admin, json!({"name": "mobile", "scopes": ["face"]})).await.expect(201).body;
    let mobile = created["key"]["id"].as_str().unwrap().to_string();
    let new_secret = created["token"].as_str().unwrap().split_once('.').unwrap().1.to_string();
    let by_operator = app
        .post(&format!("/admin/v1/tenants/{tenant}/keys"), OPERATOR_TOKEN, json!({"name": "ops", "scopes": ["ocr"]}))
        .await
        .expect(201)
        .body["key"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(&format!("/v1/keys/{mobile}/rotate"), &admin, json!({})).await.expect(200);

    // (The admin key's own alert may have gone out before the endpoint was set, or been dropped.)
    let alerts = delivered(&seen, 3, &admin_key).await;
    let mut kinds: Vec<(String, String)> = alerts
        .iter()
        .map(|(_, _, body)| (body["type"].as_str().unwrap().into(), body["target"].as_str().unwrap().into()))
        .collect();
    kinds.sort();
    let mut expected = vec![
        ("key.created".to_string(), mobile.clone()),
        ("key.created".to_string(), by_operator.clone()),
        ("key.rotated".to_string(), mobile.clone()),
    ];
    expected.sort();
    assert_eq!(kinds, expected);
    for (id, signature, body) in &alerts {
        assert!(verify(&secret, signature, body), "signature of {body}");
        assert!(!verify("whsec_wrong", signature, body));
        assert_eq!(body["id"], json!(id), "the event id header is the body's id");
        assert_eq!(body["tenant_id"], json!(tenant));
        assert!(!body.to_string().contains(&new_secret), "an alert never carries a key secret");
    }
    // The id is the audit entry's: the alert can be looked up in the audit log.
    let event = app.get(&format!("/v1/audit-events/{}", alerts[0].0), &admin).await.expect(200).body;
    assert_eq!(event["event"]["action"], alerts[0].2["type"]);

    // The first delivery failed and was retried; each alert was accepted exactly once.
    let all = seen.lock().unwrap().clone();
    assert_eq!(all[0].0, 503);
    let mut accepted: Vec<&String> = all.iter().filter(|d| d.0 == 200).map(|d| &d.1).collect();
    accepted.sort();
    accepted.dedup();
    assert_eq!(accepted.len(), all.iter().filter(|d| d.0 == 200).count(), "no alert accepted twice");

    // Without an endpoint, nothing is sent (the audit log still has the event).
    let removed = app.delete("/v1/settings/alerts", &admin).await.expect(200).body;
    assert_eq!(removed["url"], Value::Null);
    app.post("/v1/keys", &admin, json!({"name": "later", "scopes": ["face"]})).await.expect(201);
    let outbox = "SELECT COUNT(*) AS n FROM alert_outbox";
    for _ in 0..600 {
        if app.dbs.count_in_region("local", outbox) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.dbs.count_in_region("local", outbox), 0, "the outbox drains");
    assert_eq!(seen.lock().unwrap().len(), all.len(), "nothing delivered without an endpoint");
}
