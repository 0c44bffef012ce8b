//! Delivers security alerts (see `faceplate_store::alerts`) to tenants' endpoints. Each delivery is a JSON POST
//! signed as Stripe signs webhooks, so tenants can reuse what they know: `Faceplate-Signature: t=<unix time>,
//! v1=<hex HMAC-SHA256 of "<t>.<body>" under the endpoint's secret>`. A failed delivery is retried with
//! backoff; every node runs a dispatcher, and the outbox's leases keep them from sending an alert twice at once.

use std::time::Duration;

use faceplate_store::Stores;
use faceplate_store::alerts::{self, PendingAlert};

use crate::config::AlertsConfig;
use crate::error::ApiError;

/// Alerts taken per store and round.
const BATCH: i64 = 100;
/// How long a claimed alert is held by one node.
const LEASE_MS: i64 = 60_000;
/// Backoff doubles from 2 s up to an hour; after this many failures (about a day) the alert is dropped (it
/// stays in the audit log).
const MAX_ATTEMPTS: i32 = 30;
const MAX_BACKOFF_SECS: i64 = 3600;

/// The `Faceplate-Signature` header for `body` sent at `t`: Stripe's webhook signature scheme.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let v1 = faceplate_billing::webhook::signature(secret.as_bytes(), t, body.as_bytes());
    format!("t={t},v1={v1}")
}

/// An endpoint URL a tenant may set: https (http only where the operator allows it), no credentials in it.
pub fn check_url(raw: &str, config: &AlertsConfig) -> Result<String, ApiError> {
    let bad = |m: &str| Err(ApiError::bad_arguments(format!("url: {m}")));
    if raw.len() > 2048 {
        return bad("at most 2048 characters");
    }
    let Ok(url) = url::Url::parse(raw.trim()) else { return bad("not a URL") };
    match url.scheme() {
        "https" => {}
        "http" if config.allow_http => {}
        _ => return bad("must be https"),
    }
    if url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() || url.password().is_some() {
        return bad("needs a host and no user name or password");
    }
    Ok(url.to_string())
}

/// Runs the dispatcher until aborted.
pub fn spawn_dispatcher(stores: Stores, config: AlertsConfig) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let idle = Duration::from_millis(config.poll_interval_ms.max(10));
    Ok(tokio::spawn(async move {
        loop {
            match run_once(&stores, &client).await {
                Ok(0) => tokio::time::sleep(idle).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the alert outbox failed; will retry");
                    tokio::time::sleep(idle).await;
                }
            }
        }
    }))
}

/// One round over every region store; returns how many alerts were handled.
async fn run_once(stores: &Stores, client: &reqwest::Client) -> anyhow::Result<usize> {
    let mut handled = 0;
    for (_, db) in stores.region_databases() {
        for alert in alerts::claim(db, BATCH, LEASE_MS).await? {
            handled += 1;
            let Some(endpoint) = stores.alert_endpoint(&alert.tenant()).await? else {
                // The tenant set no endpoint: the audit log has the event; nothing to deliver.
                alerts::done(db, alert.id).await?;
                continue;
            };
            match deliver(client, &endpoint.url, &endpoint.secret, &alert).await {
                Ok(()) => alerts::done(db, alert.id).await?,
                Err(error) if alert.attempts + 1 >= MAX_ATTEMPTS => {
                    tracing::warn!(alert = %alert.id, tenant = %alert.tenant_id, %error, "alert dropped after retries");
                    alerts::done(db, alert.id).await?;
                }
                Err(error) => {
                    let backoff = (2i64 << alert.attempts.min(20)).min(MAX_BACKOFF_SECS);
                    let next = chrono::Utc::now().timestamp_millis() + backoff * 1000;
                    alerts::retry_later(db, alert.id, next, error).await?;
                }
            }
        }
    }
    Ok(handled)
}

async fn deliver(client: &reqwest::Client, url: &str, secret: &str, alert: &PendingAlert) -> Result<(), String> {
    let t = chrono::Utc::now().timestamp();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("faceplate-event-id", &alert.id)
        .header("faceplate-signature", signature(secret, t, &alert.payload))
        .body(alert.payload.clone())
        .send()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    match response.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("the endpoint answered {s}")),
    }
}
