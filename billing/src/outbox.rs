//! Reports the billing outbox to Stripe: takes due events from every region store, opens a tenant's Stripe
//! account when its first event goes out, sends each event as a meter event and removes it once Stripe has
//! accepted it. A failed send stays in the outbox and is retried with exponential backoff, so an outage delays
//! usage but never loses it; Stripe's dedupe on the event id means a resend never doubles it.

use std::collections::BTreeMap;

use chrono::Utc;
use faceplate_store::billing::{self, OutboxEntry, TenantBilling};
use faceplate_store::{Product, StoreError, Stores, TenantId};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rand::Rng;

use crate::stripe::{Stripe, StripeFailure};

/// Sends within one round, at most this many at a time.
const CONCURRENT_SENDS: usize = 8;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
    pub accounts_opened: usize,
}

impl Round {
    pub fn is_idle(&self) -> bool {
        self.delivered == 0 && self.failed == 0
    }
}

pub struct Dispatcher {
    stores: Stores,
    stripe: Stripe,
}

impl Dispatcher {
    pub fn new(stores: Stores, stripe: Stripe) -> Self {
        Dispatcher { stores, stripe }
    }

    /// One pass over every region: what was due is sent or rescheduled.
    pub async fn run_once(&self) -> Result<Round, StoreError> {
        let config = self.stripe.config();
        // A lease long enough for a round of timeouts; an entry whose node died is retried after it.
        let lease_ms = (config.request_timeout_secs as i64 * 1000).saturating_mul(4);
        let mut round = Round::default();
        for (_, db) in self.stores.region_databases() {
            let entries = billing::claim_outbox(db, config.batch_size, lease_ms).await?;
            let mut by_tenant: BTreeMap<String, Vec<OutboxEntry>> = BTreeMap::new();
            for entry in entries {
                by_tenant.entry(entry.tenant_id.clone()).or_default().push(entry);
            }
            for entries in by_tenant.into_values() {
                let Some(tenant) = entries.first().map(OutboxEntry::tenant) else { continue };
                let account = match self.account(&tenant, &mut round).await {
                    Ok(Some(account)) => account,
                    // The tenant is gone: its usage went with it.
                    Ok(None) => {
                        billing::outbox_delivered(db, entries.into_iter().map(|e| e.event_id).collect()).await?;
                        continue;
                    }
                    Err(failure) => {
                        tracing::warn!(tenant = %tenant, error = %failure, "opening the Stripe account failed");
                        for entry in entries {
                            round.failed += 1;
                            self.retry_later(db, entry, &failure).await?;
                        }
                        continue;
                    }
                };
                let mut delivered = Vec::new();
                let mut sends = FuturesUnordered::new();
                let mut pending = entries.into_iter();
                loop {
                    while sends.len() < CONCURRENT_SENDS {
                        let Some(entry) = pending.next() else { break };
                        let customer = account.customer_id.clone();
                        sends.push(async move {
                            let outcome = self.send(&customer, &entry).await;
                            (entry, outcome)
                        });
                    }
                    let Some((entry, outcome)) = sends.next().await else { break };
                    match outcome {
                        Ok(()) => delivered.push(entry.event_id),
                        Err(failure) => {
                            round.failed += 1;
                            tracing::warn!(event = %entry.event_id, error = %failure, "reporting usage to Stripe failed");
                            self.retry_later(db, entry, &failure).await?;
                        }
                    }
                }
                round.delivered += delivered.len();
                billing::outbox_delivered(db, delivered).await?;
            }
        }
        Ok(round)
    }

    async fn send(&self, customer: &str, entry: &OutboxEntry) -> Result<(), StripeFailure> {
        let Ok(product) = entry.product.parse::<Product>() else {
            return Err(StripeFailure { message: format!("unknown product `{}`", entry.product), transient: false });
        };
        match self.stripe.report_usage(customer, &entry.event_id, product, entry.units, entry.occurred_at / 1000).await
        {
            Some(result) => result,
            None => Ok(()), // no price for this product: nothing is billed through Stripe
        }
    }

    /// The tenant's Stripe account, opened now if it has none. `None` if the tenant no longer exists.
    async fn account(&self, tenant: &TenantId, round: &mut Round) -> Result<Option<TenantBilling>, StripeFailure> {
        let control = self.stores.control().database();
        let store_failure = |e: StoreError| StripeFailure { message: e.to_string(), transient: true };
        let existing = billing::get_tenant_billing(control, tenant).await.map_err(store_failure)?;
        if let Some(account) = &existing
            && account.subscription_id.is_some()
        {
            return Ok(existing);
        }
        let found = match self.stores.control().get_tenant(tenant).await {
            Ok(t) => t,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(store_failure(e)),
        };
        let customer = match existing {
            Some(account) => account.customer_id,
            None => {
                let customer = self.stripe.create_customer(tenant.as_str(), &found.name).await?;
                // Kept before subscribing, so the subscription's webhooks find the tenant.
                billing::put_tenant_billing(control, tenant, customer.clone(), None).await.map_err(store_failure)?;
                customer
            }
        };
        let subscription = self.stripe.create_subscription(tenant.as_str(), &customer).await?;
        let account =
            billing::put_tenant_billing(control, tenant, customer, Some(subscription)).await.map_err(store_failure)?;
        round.accounts_opened += 1;
        tracing::info!(tenant = %tenant, customer = %account.customer_id, "opened the tenant's Stripe account");
        Ok(Some(account))
    }

    async fn retry_later(
        &self,
        db: &faceplate_store::db::Database,
        entry: OutboxEntry,
        failure: &StripeFailure,
    ) -> Result<(), StoreError> {
        let config = self.stripe.config();
        let delay = if failure.transient {
            backoff_ms(config.retry_initial_ms, config.retry_max_ms, entry.attempts)
        } else {
            config.retry_max_ms
        };
        let next = Utc::now().timestamp_millis() + delay as i64;
        billing::outbox_retry_later(db, entry.event_id, next, failure.message.clone()).await
    }
}

/// Exponential backoff with ±20% jitter, so many events that failed together do not retry together.
pub fn backoff_ms(initial_ms: u64, max_ms: u64, attempts: i32) -> u64 {
    let exponent = attempts.clamp(0, 30) as u32;
    let base = initial_ms.saturating_mul(1u64 << exponent).min(max_ms);
    let jitter = rand::rng().random_range(0.8..1.2);
    ((base as f64) * jitter).min(max_ms as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        for attempts in 0..40 {
            let ms = backoff_ms(1_000, 300_000, attempts);
            let base = (1_000u64 << attempts.min(30)).min(300_000) as f64;
            assert!(ms as f64 >= base * 0.8 - 1.0 && ms <= 300_000, "{attempts}: {ms}");
        }
    }
}
