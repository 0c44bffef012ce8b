//! Billing through Stripe on this node: the task that reports the usage outbox, and its counters.

use std::time::Duration;

use faceplate_billing::outbox::Dispatcher;
use faceplate_billing::stripe::{Stripe, StripeConfig};
use faceplate_store::Stores;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Default)]
pub struct BillingMetrics {
    /// Meter events sent to Stripe: `delivered` or `failed` (kept and retried).
    pub meter_events: Family<ResultLabels, Counter>,
    /// Webhooks received: `applied`, `ignored` or `rejected`.
    pub webhooks: Family<ResultLabels, Counter>,
}

/// What the webhook endpoint needs.
pub struct WebhookSettings {
    pub secret: secrecy::SecretString,
    pub tolerance_secs: i64,
}

impl WebhookSettings {
    pub fn from_config(config: &StripeConfig) -> Self {
        WebhookSettings { secret: config.webhook_secret.clone(), tolerance_secs: config.webhook_tolerance_secs }
    }
}

/// Reports the outbox until aborted: a round right after a busy one, a pause after an idle one. Every node
/// runs one; the outbox's leases keep them from sending the same events at once.
pub fn spawn_usage_reporter(
    stores: Stores,
    config: StripeConfig,
    metrics: BillingMetrics,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let idle = Duration::from_millis(config.poll_interval_ms);
    let stripe = Stripe::new(config).map_err(anyhow::Error::msg)?;
    let dispatcher = Dispatcher::new(stores, stripe);
    Ok(tokio::spawn(async move {
        loop {
            match dispatcher.run_once().await {
                Ok(round) => {
                    metrics
                        .meter_events
                        .get_or_create(&ResultLabels { result: "delivered" })
                        .inc_by(round.delivered as u64);
                    metrics.meter_events.get_or_create(&ResultLabels { result: "failed" }).inc_by(round.failed as u64);
                    if round.is_idle() {
                        tokio::time::sleep(idle).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the billing outbox failed; will retry");
                    tokio::time::sleep(idle).await;
                }
            }
        }
    }))
}
