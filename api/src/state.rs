//! What every handler can reach: the stores and the few settings that shape requests.

use std::sync::Arc;

use faceplate_engine::Engine;
use faceplate_store::{RegionName, Stores};

use crate::forms::FormLimits;
use crate::image_url::ImageFetcher;
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
    /// SHA-256 of the operator token: compared in constant time, and the token itself is not kept in memory.
    operator_token_digest: Option<[u8; 32]>,
}

impl AppState {
    pub fn new(
        stores: Stores,
        default_region: RegionName,
        operator_token: Option<&SecretString>,
        engine: Arc<Engine>,
        form_limits: FormLimits,
        image_fetcher: ImageFetcher,
        face_token_ttl: chrono::Duration,
    ) -> Self {
        AppState {
            stores,
            default_region,
            engine,
            form_limits,
            image_fetcher,
            face_token_ttl,
            operator_token_digest: operator_token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
        }
    }

    /// `None`: the operator API is disabled. Otherwise whether `token` is the operator token.
    pub fn check_operator_token(&self, token: &str) -> Option<bool> {
        use subtle::ConstantTimeEq;
        let expected = self.operator_token_digest?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        Some(presented.ct_eq(&expected).into())
    }
}
