//! Billing through Stripe end to end, against a local Stripe (localstripe plus meter events, in its own
//! process) with the real async-stripe client: every usage event reaches Stripe exactly once, through an outage;
//! Stripe's signed webhooks update the tenant's billing state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use faceplate_tests::stripe_fake::{STRIPE_WEBHOOK_SECRET, StripeFake};
use faceplate_tests::{OPERATOR_TOKEN, Resp, TestApp, test_image};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const PRICES: &[(&str, &str)] = &[("face_detect", "price_face_detect"), ("face_compare", "price_face_compare")];

async fn billed_app(stripe: &StripeFake) -> TestApp {
    for (product, price) in PRICES {
        stripe.create_metered_price(price, product, 1).await;
    }
    let app = TestApp::spawn_with(&["local"], &stripe.config(PRICES)).await;
    stripe.register_webhook(&app.url("/webhooks/stripe"), STRIPE_WEBHOOK_SECRET).await;
    app
}

/// A pay-as-you-go tenant, ready for biometric calls, with a face+admin key: (tenant id, token, consent id).
async fn tenant(app: &TestApp, name: &str) -> (String, String, String) {
    let body = json!({"name": name, "plan": "pay_as_you_go"});
    let id = app.post("/admin/v1/tenants", OPERATOR_TOKEN, body).await.expect(201).body["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = app
        .post(
            &format!("/admin/v1/tenants/{id}/keys"),
            OPERATOR_TOKEN,
            json!({"name": "k", "scopes": ["face", "admin"]}),
        )
        .await
        .expect(201);
    let consent = app.allow_biometrics(&id).await;
    (id, key.body["token"].as_str().unwrap().to_string(), consent)
}

async fn detect(app: &TestApp, token: &str, consent: &str) -> String {
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let body = json!({"image_base64": image, "consent_id": consent});
    let body = app.post("/v1/faces/detect", token, body).await.expect(200).body;
    body["faces"][0]["face_token"].as_str().unwrap().to_string()
}

async fn compare(app: &TestApp, token: &str, consent: &str, face: &str) {
    let body = json!({"face_token1": face, "face_token2": face, "consent_id": consent});
    app.post("/v1/faces/compare", token, body).await.expect(200);
}

async fn billing(app: &TestApp, tenant: &str) -> Value {
    app.get(&format!("/admin/v1/tenants/{tenant}/billing"), OPERATOR_TOKEN).await.expect(200).body
}

/// Polls the tenant's billing view until `done` holds (up to 30 s).
async fn wait_billing(app: &TestApp, tenant: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = billing(app, tenant).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never happened; last billing view: {last}");
}

/// The ids of the tenant's usage events.
async fn usage_event_ids(app: &TestApp, token: &str) -> BTreeSet<String> {
    let body = app.get("/v1/usage/events?limit=1000", token).await.expect(200).body;
    body["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

/// The customer's meter events at the fake: identifiers, and value per event name.
async fn meter_events(stripe: &StripeFake, customer: &str) -> (BTreeSet<String>, BTreeMap<String, i64>) {
    let (events, _) = stripe.meter_events().await;
    let mut ids = BTreeSet::new();
    let mut totals = BTreeMap::new();
    for e in events.iter().filter(|e| e["payload"]["stripe_customer_id"] == customer) {
        ids.insert(e["identifier"].as_str().unwrap().to_string());
        let value: i64 = e["payload"]["value"].as_str().unwrap().parse().unwrap();
        *totals.entry(e["event_name"].as_str().unwrap().to_string()).or_default() += value;
    }
    (ids, totals)
}

#[tokio::test]
async fn usage_reaches_stripe_exactly_once_through_an_outage() {
    let mut stripe = StripeFake::start().await;
    let app = billed_app(&stripe).await;
    let (tenant_id, token, consent) = tenant(&app, "metered").await;
    let face = detect(&app, &token, &consent).await;
    for _ in 0..5 {
        compare(&app, &token, &consent, &face).await;
    }

    // The first report opens the tenant's customer and subscription, then sends the six events.
    let view = wait_billing(&app, &tenant_id, "usage reported", |b| {
        b["stripe_customer_id"].is_string() && b["unreported_events"] == 0
    })
    .await;
    assert_eq!(view["provider"], "stripe");
    let customer = view["stripe_customer_id"].as_str().unwrap().to_string();
    let subscription = view["stripe_subscription_id"].as_str().unwrap().to_string();
    let at_stripe = stripe.get(&format!("v1/subscriptions/{subscription}")).await;
    assert_eq!(at_stripe["customer"], customer.as_str());
    let subscribed: BTreeSet<&str> =
        at_stripe["items"]["data"].as_array().unwrap().iter().map(|i| i["plan"]["id"].as_str().unwrap()).collect();
    assert_eq!(subscribed, BTreeSet::from(["price_face_compare", "price_face_detect"]));
    let (ids, totals) = meter_events(&stripe, &customer).await;
    assert_eq!(ids, usage_event_ids(&app, &token).await, "one meter event per usage event, keyed by its id");
    assert_eq!(totals, BTreeMap::from([("faceplate_face_compare".into(), 5), ("faceplate_face_detect".into(), 1)]));

    // Stripe's subscription webhook (signed) sets the tenant's subscription status.
    wait_billing(&app, &tenant_id, "subscription webhook applied", |b| b["subscription_status"] == "active").await;

    // Stripe goes down: answers are still served and counted, and the events wait in the outbox.
    stripe.stop();
    for _ in 0..4 {
        compare(&app, &token, &consent, &face).await;
    }
    let view = wait_billing(&app, &tenant_id, "sends fail and are kept", |b| {
        b["unreported_events"] == 4 && b["max_attempts"].as_i64().unwrap() >= 2
    })
    .await;
    assert!(view["last_error"].as_str().unwrap().contains("communicating"), "{view}");
    let usage = app.get("/v1/usage?granularity=month", &token).await.expect(200).body;
    assert_eq!(usage["totals"].as_array().unwrap().iter().map(|t| t["units"].as_i64().unwrap()).sum::<i64>(), 10);

    // Back up: the backlog drains, and Stripe holds every event once.
    stripe.resume().await;
    wait_billing(&app, &tenant_id, "backlog drained", |b| b["unreported_events"] == 0).await;
    let (ids, totals) = meter_events(&stripe, &customer).await;
    assert_eq!(ids, usage_event_ids(&app, &token).await);
    assert_eq!(totals, BTreeMap::from([("faceplate_face_compare".into(), 9), ("faceplate_face_detect".into(), 1)]));
}

fn sign(body: &str, t: i64, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn webhook(app: &TestApp, body: &str, signature: Option<String>) -> Resp {
    let mut req = app.client.post(app.url("/webhooks/stripe")).header("Content-Type", "application/json");
    if let Some(signature) = signature {
        req = req.header("Stripe-Signature", signature);
    }
    faceplate_tests::read(req.body(body.to_string()).send().await.unwrap()).await
}

fn subscription_event(id: &str, created: i64, customer: &str, status: &str) -> String {
    json!({"id": id, "object": "event", "type": "customer.subscription.updated", "created": created,
        "data": {"object": {"id": "sub_x", "object": "subscription", "customer": customer, "status": status}}})
    .to_string()
}

#[tokio::test]
async fn webhooks_must_be_signed_and_apply_once_in_order() {
    let stripe = StripeFake::start().await;
    let app = billed_app(&stripe).await;
    let (tenant_id, token, consent) = tenant(&app, "hooks").await;
    detect(&app, &token, &consent).await;
    // Let the fake's own webhooks for the new subscription arrive first; ours are dated after them.
    let view = wait_billing(&app, &tenant_id, "account opened", |b| b["subscription_status"] == "active").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let customer = view["stripe_customer_id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp() + 10;

    let body = subscription_event("evt_past_due", now, &customer, "past_due");
    let refused = webhook(&app, &body, None).await.expect(401);
    assert_eq!(refused.error_code(), "INVALID_SIGNATURE");
    assert!(refused.header("x-request-id").is_some());
    let wrong_secret = webhook(&app, &body, Some(sign(&body, now, "whsec_other"))).await.expect(401);
    assert_eq!(wrong_secret.error_code(), "INVALID_SIGNATURE");
    let stale = webhook(&app, &body, Some(sign(&body, now - 3600, STRIPE_WEBHOOK_SECRET))).await.expect(401);
    assert!(stale.body["error"]["message"].as_str().unwrap().contains("old"), "{}", stale.text);
    assert_eq!(stale.error_code(), "INVALID_SIGNATURE");
    let tampered = body.replace("past_due", "active");
    webhook(&app, &tampered, Some(sign(&body, now, STRIPE_WEBHOOK_SECRET))).await.expect(401);
    let not_json = webhook(&app, "nope", Some(sign("nope", now, STRIPE_WEBHOOK_SECRET))).await.expect(400);
    assert_eq!(not_json.error_code(), "BAD_ARGUMENTS");
    assert_ne!(billing(&app, &tenant_id).await["subscription_status"], "past_due");

    // Signed: applied once; its replay, and an older event arriving late, change nothing.
    let applied = webhook(&app, &body, Some(sign(&body, now, STRIPE_WEBHOOK_SECRET))).await.expect(200);
    assert_eq!(applied.body["result"], "applied");
    let replay = webhook(&app, &body, Some(sign(&body, now, STRIPE_WEBHOOK_SECRET))).await.expect(200);
    assert_eq!(replay.body["result"], "ignored");
    let older = subscription_event("evt_older", now - 60, &customer, "active");
    let late = webhook(&app, &older, Some(sign(&older, now, STRIPE_WEBHOOK_SECRET))).await.expect(200);
    assert_eq!(late.body["result"], "ignored");
    let view = billing(&app, &tenant_id).await;
    assert_eq!(
        (view["subscription_status"].as_str(), view["stripe_subscription_id"].as_str()),
        (Some("past_due"), Some("sub_x"))
    );

    let invoice = json!({"id": "evt_invoice", "type": "invoice.payment_failed", "created": now + 1,
        "data": {"object": {"id": "in_1", "customer": customer}}})
    .to_string();
    webhook(&app, &invoice, Some(sign(&invoice, now, STRIPE_WEBHOOK_SECRET))).await.expect(200);
    assert_eq!(billing(&app, &tenant_id).await["invoice_status"], "payment_failed");

    // Another customer's events and other event types are acknowledged and ignored.
    let foreign = subscription_event("evt_foreign", now + 2, "cus_unknown", "canceled");
    let ignored = webhook(&app, &foreign, Some(sign(&foreign, now, STRIPE_WEBHOOK_SECRET))).await.expect(200);
    assert_eq!(ignored.body["result"], "ignored");
    let other =
        json!({"id": "evt_charge", "type": "charge.succeeded", "created": now, "data": {"object": {}}}).to_string();
    webhook(&app, &other, Some(sign(&other, now, STRIPE_WEBHOOK_SECRET))).await.expect(200);
}

#[tokio::test]
async fn without_stripe_the_ledger_is_the_bill_and_webhooks_are_refused() {
    let app = TestApp::spawn().await;
    let (tenant_id, token, consent) = tenant(&app, "ledger").await;
    detect(&app, &token, &consent).await;
    let view = billing(&app, &tenant_id).await;
    assert_eq!((view["provider"].as_str(), view["unreported_events"].as_i64()), (Some("ledger"), Some(0)));
    assert!(view["stripe_customer_id"].is_null());
    let now = chrono::Utc::now().timestamp();
    let body = subscription_event("evt_1", now, "cus_1", "active");
    let refused = webhook(&app, &body, Some(sign(&body, now, STRIPE_WEBHOOK_SECRET))).await.expect(401);
    assert_eq!(refused.error_code(), "INVALID_SIGNATURE");
    // A tenant that is not there is a 404, as everywhere in the operator API.
    let missing = app.get("/admin/v1/tenants/ten_0000000000000000000000000000/billing", OPERATOR_TOKEN).await;
    assert_eq!(missing.status, 404);
}
