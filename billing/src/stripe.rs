//! Stripe, through the async-stripe client: one customer per tenant, subscribed to one metered price per
//! product, and each usage event reported as a Billing Meter event whose identifier is the usage event id
//! (Stripe drops a second event with the same identifier, so resending is always safe).
//!
//! Responses are read into our own minimal types (the ids and statuses we keep) rather than async-stripe's full
//! objects: fields we do not use cannot break us when Stripe adds or changes them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use faceplate_store::Product;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_billing::subscription::{CreateSubscription, CreateSubscriptionItems};
use stripe_core::customer::CreateCustomer;

/// `[billing.stripe]`: present means usage is billed through Stripe.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// A secret key (`sk_test_…` while trying it out). Better given as `FACEPLATE_BILLING__STRIPE__SECRET_KEY`.
    #[serde(serialize_with = "redacted")]
    pub secret_key: SecretString,
    /// The signing secret of the webhook endpoint (`whsec_…`), from the Stripe dashboard or `stripe listen`.
    #[serde(serialize_with = "redacted")]
    pub webhook_secret: SecretString,
    /// Stripe's API; tests point it at a local fake.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The recurring metered price of each billed product (`price_…`); a product without one is not reported.
    pub prices: BTreeMap<Product, String>,
    /// Meter event names are this prefix and the product: `faceplate_face_compare`.
    #[serde(default = "default_meter_prefix")]
    pub meter_event_prefix: String,
    /// How often an idle node looks for usage to report, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Events taken per round.
    #[serde(default = "default_batch")]
    pub batch_size: i64,
    /// First retry delay after a failed send; it doubles up to `retry_max_ms`.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Per request to Stripe.
    #[serde(default = "default_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Largest age of a webhook's signature timestamp that is accepted (replay protection).
    #[serde(default = "default_webhook_tolerance")]
    pub webhook_tolerance_secs: i64,
}

fn redacted<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[redacted]")
}
fn default_api_base() -> String {
    "https://api.stripe.com/".into()
}
fn default_meter_prefix() -> String {
    "faceplate_".into()
}
fn default_poll_ms() -> u64 {
    500
}
fn default_batch() -> i64 {
    200
}
fn default_retry_initial_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    300_000
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_webhook_tolerance() -> i64 {
    300
}

impl StripeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.secret_key.expose_secret().trim().is_empty() || self.webhook_secret.expose_secret().trim().is_empty() {
            return Err("billing.stripe.secret_key and webhook_secret must be set".into());
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://")) {
            return Err("billing.stripe.api_base must be an http(s) URL".into());
        }
        if self.prices.is_empty() {
            return Err("billing.stripe.prices must name the price of at least one product".into());
        }
        if self.batch_size <= 0 || self.poll_interval_ms == 0 || self.retry_initial_ms == 0 {
            return Err("billing.stripe.batch_size, poll_interval_ms and retry_initial_ms must be positive".into());
        }
        if self.retry_max_ms < self.retry_initial_ms || self.request_timeout_secs == 0 {
            return Err("billing.stripe: need retry_initial_ms <= retry_max_ms and a positive timeout".into());
        }
        Ok(())
    }

    /// The meter event name of a product.
    pub fn meter_event(&self, product: Product) -> String {
        format!("{}{}", self.meter_event_prefix, product.as_str())
    }
}

/// Why a call to Stripe failed, and whether trying again later can help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StripeFailure {
    pub message: String,
    /// Network trouble, a timeout, 429 or 5xx: Stripe may take it later. Anything else needs a person (a wrong
    /// price or key), but the event is kept and retried at the longest interval all the same.
    pub transient: bool,
}

impl From<StripeError> for StripeFailure {
    fn from(e: StripeError) -> Self {
        let transient = match &e {
            StripeError::Stripe(_, status) => *status == 429 || *status == 409 || *status >= 500,
            StripeError::ClientError(_) | StripeError::Timeout => true,
            StripeError::JSONDeserialize(_) | StripeError::ConfigError(_) => false,
        };
        let message = match &e {
            StripeError::Stripe(errors, status) => {
                format!("Stripe answered {status}: {}", errors.message.as_deref().unwrap_or("no message"))
            }
            other => other.to_string(),
        };
        StripeFailure { message, transient }
    }
}

#[derive(miniserde::Deserialize)]
struct Created {
    id: String,
}

/// A tenant's customer and subscription, as just created.
#[derive(Debug, Clone)]
pub struct Account {
    pub customer_id: String,
    pub subscription_id: String,
}

/// A configured Stripe client.
pub struct Stripe {
    client: Client,
    config: StripeConfig,
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Result<Stripe, String> {
        config.validate()?;
        // async-stripe joins the base and `v1/…` without a separator.
        let mut base = config.api_base.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let client = ClientBuilder::new(config.secret_key.expose_secret())
            .url(base)
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .build()
            .map_err(|e| format!("billing.stripe: {e}"))?;
        Ok(Stripe { client, config })
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// Creates the tenant's customer. The idempotency key makes a retry after a crash return the same customer
    /// (Stripe keeps keys for 24 hours).
    pub async fn create_customer(&self, tenant_id: &str, tenant_name: &str) -> Result<String, StripeFailure> {
        let metadata = HashMap::from([("faceplate_tenant_id".to_string(), tenant_id.to_string())]);
        let created: Created = CreateCustomer::new()
            .name(tenant_name)
            .metadata(metadata)
            .build()
            .customize()
            .request_strategy(idempotent(&format!("faceplate-customer-{tenant_id}"))?)
            .send(&self.client)
            .await?;
        Ok(created.id)
    }

    /// Subscribes the customer to every configured metered price.
    pub async fn create_subscription(&self, tenant_id: &str, customer_id: &str) -> Result<String, StripeFailure> {
        let items: Vec<CreateSubscriptionItems> = self
            .config
            .prices
            .values()
            .map(|price| {
                let mut item = CreateSubscriptionItems::new();
                // `plan` takes a price id too, and is what Stripe-compatible test servers understand.
                item.plan = Some(price.clone());
                item
            })
            .collect();
        let metadata = HashMap::from([("faceplate_tenant_id".to_string(), tenant_id.to_string())]);
        let created: Created = CreateSubscription::new()
            .customer(customer_id)
            .items(items)
            .metadata(metadata)
            .build()
            .customize()
            .request_strategy(idempotent(&format!("faceplate-subscription-{tenant_id}-{customer_id}"))?)
            .send(&self.client)
            .await?;
        Ok(created.id)
    }

    /// Reports one usage event. `None`: the product has no configured price (nothing to report).
    pub async fn report_usage(
        &self,
        customer_id: &str,
        event_id: &str,
        product: Product,
        units: i64,
        occurred_at_secs: i64,
    ) -> Option<Result<(), StripeFailure>> {
        self.config.prices.get(&product)?;
        let payload = HashMap::from([
            ("stripe_customer_id".to_string(), customer_id.to_string()),
            ("value".to_string(), units.to_string()),
        ]);
        let sent = CreateBillingMeterEvent::new(self.config.meter_event(product), payload)
            .identifier(event_id)
            .timestamp(occurred_at_secs)
            .build()
            .customize::<MeterEventAccepted>()
            .send(&self.client)
            .await;
        Some(sent.map(|_| ()).map_err(StripeFailure::from))
    }
}

#[derive(miniserde::Deserialize)]
struct MeterEventAccepted {
    #[allow(dead_code)]
    identifier: String,
}

fn idempotent(key: &str) -> Result<RequestStrategy, StripeFailure> {
    let key = IdempotencyKey::new(key)
        .map_err(|e| StripeFailure { message: format!("idempotency key: {e:?}"), transient: false })?;
    Ok(RequestStrategy::Idempotent(key))
}
