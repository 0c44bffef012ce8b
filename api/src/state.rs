//! What every handler can reach: the stores and the few settings that shape requests.

use std::sync::Arc;

use faceplate_engine::Engine;
use faceplate_store::{RegionName, Stores};

use crate::config::FaceSetsConfig;
use crate::forms::FormLimits;
use crate::image_url::ImageFetcher;
use crate::search_index::FaceSetIndexes;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub struct AppState {
    pub stores: Stores,
    /// Where new tenants live when the operator names no region.
    pub default_region: RegionName,
    pub engine: Arc<Engine>,
    pub form_limits: FormLimits,
    pub image_fetcher: ImageFetcher,
    /// How long a face token lives unless a FaceSet keeps it.
    pub face_token_ttl: chrono::Duration,
    pub facesets: FaceSetsConfig,
    /// This node's FaceSet search indexes.
    pub indexes: Arc<FaceSetIndexes>,
    /// Rate and in-flight limits per key and tenant.
    pub limits: crate::limits::Limits,
    /// Quotas and usage metering of billable operations.
    pub metering: std::sync::Arc<crate::metering::Metering>,
    /// Set when usage is billed through Stripe: what Stripe's webhook is checked with.
    pub stripe_webhook: Option<crate::billing::WebhookSettings>,
    /// How long a requested tenant deletion waits before the purge (cancellable meanwhile).
    pub deletion_grace: chrono::Duration,
    /// The plan of new tenants when none is named.
    pub default_plan: String,
    /// Public API base URL of each region, named in `421 WRONG_REGION` answers.
    pub region_endpoints: std::collections::BTreeMap<String, String>,
    /// Security alerts to tenants' endpoints.
    pub alerts: crate::config::AlertsConfig,
    /// SHA-256 of the operator token: compared in constant time, and the token itself is not kept in memory.
    pub operator_token_digest: Option<[u8; 32]>,
}

/// What is kept of the operator token: its SHA-256.
pub fn operator_token_digest(token: Option<&SecretString>) -> Option<[u8; 32]> {
    token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into())
}

impl AppState {
    /// How long the tenant's face tokens live unless a FaceSet keeps them: its own setting, else the server's.
    pub fn token_ttl(&self, tenant: &faceplate_store::Tenant) -> chrono::Duration {
        tenant.face_token_ttl_hours.map_or(self.face_token_ttl, |h| chrono::Duration::hours(i64::from(h)))
    }

    /// `None`: the operator API is disabled. Otherwise whether `token` is the operator token.
    pub fn check_operator_token(&self, token: &str) -> Option<bool> {
        use subtle::ConstantTimeEq;
        let expected = self.operator_token_digest?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        Some(presented.ct_eq(&expected).into())
    }
}
