//! Stripe webhooks: the signature check and the few events that change a tenant's billing state.
//!
//! Stripe signs `"{t}.{body}"` with HMAC-SHA256 under the endpoint's secret and sends
//! `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>…]` (several `v1` while a secret is being rolled).
//! We check it by hand rather than through async-stripe's webhook crate, which would compile every event type
//! Stripe has for the four we read.

use faceplate_store::billing::BillingStatus;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the Stripe-Signature header is missing or malformed")]
    MalformedHeader,
    #[error("no signature matches the endpoint's secret")]
    BadSignature,
    #[error("the signature is {age} s old, more than the {tolerance} s allowed")]
    TooOld { age: i64, tolerance: i64 },
    #[error("the body is not a Stripe event: {0}")]
    BadEvent(String),
}

/// The HMAC-SHA256 of `<t>.<body>` under `secret`, hex: Stripe's `v1` webhook signature. Faceplate signs the
/// alerts it sends tenants the same way (`t=<t>,v1=<this>`).
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks that `body` was signed by Stripe with `secret` no more than `tolerance` seconds before `now`.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex_sig)) => signatures.push(hex::decode(hex_sig).map_err(|_| WebhookError::MalformedHeader)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedHeader)?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedHeader);
    }
    let matches = signatures.iter().any(|sig| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(sig).is_ok() // constant-time
    });
    if !matches {
        return Err(WebhookError::BadSignature);
    }
    let age = now_secs - timestamp;
    if age > tolerance_secs {
        return Err(WebhookError::TooOld { age, tolerance: tolerance_secs });
    }
    Ok(())
}

/// A verified event that changes a tenant's billing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEvent {
    pub id: String,
    pub kind: String,
    pub created_ms: i64,
    pub customer_id: String,
    pub status: BillingStatus,
}

/// Reads an event. `Ok(None)`: a well-formed event of a type we do not act on (acknowledged, ignored).
pub fn parse_event(body: &[u8]) -> Result<Option<BillingEvent>, WebhookError> {
    let event: serde_json::Value = serde_json::from_slice(body).map_err(|e| WebhookError::BadEvent(e.to_string()))?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let (Some(id), Some(kind), Some(created)) = (text(&event["id"]), text(&event["type"]), event["created"].as_i64())
    else {
        return Err(WebhookError::BadEvent("needs id, type and created".into()));
    };
    let object = &event["data"]["object"];
    // `customer` is an id, or the expanded object.
    let customer = text(&object["customer"]).or_else(|| text(&object["customer"]["id"]));
    let status = match kind.as_str() {
        "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
            let (Some(subscription_id), Some(status)) = (text(&object["id"]), text(&object["status"])) else {
                return Err(WebhookError::BadEvent("a subscription event needs data.object.id and status".into()));
            };
            BillingStatus::Subscription { subscription_id, status }
        }
        "invoice.paid" | "invoice.payment_succeeded" => BillingStatus::Invoice { status: "paid".into() },
        "invoice.payment_failed" => BillingStatus::Invoice { status: "payment_failed".into() },
        _ => return Ok(None),
    };
    let customer_id = customer.ok_or_else(|| WebhookError::BadEvent("data.object.customer is missing".into()))?;
    Ok(Some(BillingEvent { id, kind, created_ms: created.saturating_mul(1000), customer_id, status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        signature(secret, t, body)
    }

    #[test]
    fn a_signature_is_accepted_only_for_its_secret_body_and_time() {
        let body = br#"{"id":"evt_1"}"#;
        let good = format!("t=1000,v1={}", sign(b"whsec_a", 1000, body));
        assert_eq!(verify_signature(b"whsec_a", &good, body, 1010, 300), Ok(()));
        assert_eq!(verify_signature(b"whsec_b", &good, body, 1010, 300), Err(WebhookError::BadSignature));
        assert_eq!(verify_signature(b"whsec_a", &good, b"{}", 1010, 300), Err(WebhookError::BadSignature));
        assert_eq!(
            verify_signature(b"whsec_a", &good, body, 1400, 300),
            Err(WebhookError::TooOld { age: 400, tolerance: 300 })
        );
        // While a secret is rolled Stripe sends one signature per secret.
        let rolled = format!("t=1000,v1={},v1={}", sign(b"old", 1000, body), sign(b"whsec_a", 1000, body));
        assert_eq!(verify_signature(b"whsec_a", &rolled, body, 1000, 300), Ok(()));
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=zz"] {
            assert!(verify_signature(b"whsec_a", bad, body, 1000, 300).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscription_and_invoice_events_are_read_and_others_ignored() {
        let sub = br#"{"id":"evt_1","type":"customer.subscription.updated","created":1700000000,
            "data":{"object":{"id":"sub_1","status":"past_due","customer":"cus_1"}}}"#;
        let event = parse_event(sub).ok().flatten();
        assert_eq!(
            event,
            Some(BillingEvent {
                id: "evt_1".into(),
                kind: "customer.subscription.updated".into(),
                created_ms: 1_700_000_000_000,
                customer_id: "cus_1".into(),
                status: BillingStatus::Subscription { subscription_id: "sub_1".into(), status: "past_due".into() },
            })
        );
        let invoice = br#"{"id":"evt_2","type":"invoice.payment_failed","created":1,
            "data":{"object":{"id":"in_1","customer":{"id":"cus_2"}}}}"#;
        let event = parse_event(invoice).ok().flatten();
        assert_eq!(
            event.map(|e| (e.customer_id, e.status)),
            Some(("cus_2".into(), BillingStatus::Invoice { status: "payment_failed".into() }))
        );
        let other = br#"{"id":"evt_3","type":"charge.succeeded","created":1,"data":{"object":{}}}"#;
        assert_eq!(parse_event(other), Ok(None));
        assert!(parse_event(b"not json").is_err());
        assert!(parse_event(br#"{"type":"invoice.paid"}"#).is_err());
    }
}
