//! The API's own view of records. Kept apart from the store's types so the wire format changes only on purpose.

use chrono::{DateTime, Utc};
use faceplate_store::{ApiKey, IssuedKey, Scope, Tenant, TenantStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::context::Meta;
use crate::error::ApiError;

/// What a key may do. One scope per product family, plus `admin` (manage the tenant's keys, read its audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiScope {
    Admin,
    Face,
    Ocr,
    Plate,
    Object,
}

impl From<Scope> for ApiScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Admin => ApiScope::Admin,
            Scope::Face => ApiScope::Face,
            Scope::Ocr => ApiScope::Ocr,
            Scope::Plate => ApiScope::Plate,
            Scope::Object => ApiScope::Object,
        }
    }
}

impl From<ApiScope> for Scope {
    fn from(s: ApiScope) -> Self {
        match s {
            ApiScope::Admin => Scope::Admin,
            ApiScope::Face => Scope::Face,
            ApiScope::Ocr => Scope::Ocr,
            ApiScope::Plate => Scope::Plate,
            ApiScope::Object => Scope::Object,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    Active,
    Suspended,
    PendingDeletion,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// `ten_...`
    pub id: String,
    pub name: String,
    /// The region whose store holds all of this tenant's data. Fixed at creation.
    pub home_region: String,
    pub status: TenantState,
    /// The plan whose limits hold the tenant's requests (`GET /admin/v1/plans`).
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When a scheduled deletion purges the tenant.
    pub delete_after: Option<DateTime<Utc>>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        TenantView {
            id: t.id.to_string(),
            name: t.name,
            home_region: t.home_region.to_string(),
            status: match t.status {
                TenantStatus::Active => TenantState::Active,
                TenantStatus::Suspended => TenantState::Suspended,
                TenantStatus::PendingDeletion => TenantState::PendingDeletion,
            },
            plan: t.plan_id,
            created_at: t.created_at,
            updated_at: t.updated_at,
            delete_after: t.delete_after,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

/// An API key. The secret is never shown again after creation or rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// `fpk_...`: the public half of the key, also the Face++ `api_key`.
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scopes: Vec<ApiScope>,
    pub status: KeyState,
    /// Requests per second allowed for this key (overrides the plan); null: the plan's.
    pub rate_limit_qps: Option<i32>,
    /// Requests in flight allowed for this key (overrides the plan); null: the plan's.
    pub max_concurrency: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    /// After a rotation with a grace period, the previous secret works until then.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        let status = if k.revoked_at.is_some() {
            KeyState::Revoked
        } else if k.expires_at.is_some_and(|t| t <= Utc::now()) {
            KeyState::Expired
        } else {
            KeyState::Active
        };
        KeyView {
            id: k.id.to_string(),
            tenant_id: k.tenant_id.to_string(),
            name: k.name,
            scopes: k.scopes.into_iter().map(ApiScope::from).collect(),
            status,
            rate_limit_qps: k.rate_limit_qps,
            max_concurrency: k.max_concurrency,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            created_at: k.created_at,
            rotated_at: k.rotated_at,
            previous_secret_expires_at: k.previous_secret_expires_at,
        }
    }
}

/// A key with its secret: returned once, by create and rotate.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKeyView {
    #[serde(flatten)]
    pub meta: Meta,
    pub key: KeyView,
    /// For `Authorization: Bearer <token>`.
    pub token: String,
    /// Face++-compatible credentials for the same key: form fields `api_key` and `api_secret`.
    pub api_key: String,
    pub api_secret: String,
}

impl IssuedKeyView {
    pub fn new(meta: Meta, issued: IssuedKey) -> Self {
        IssuedKeyView {
            meta,
            token: issued.bearer_token(),
            api_key: issued.key.id.to_string(),
            api_secret: issued.secret,
            key: issued.key.into(),
        }
    }
}

/// Creates a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// What the key is for, e.g. `ci` or `mobile-app`.
    pub name: String,
    /// Default: every product scope (`face`, `ocr`, `plate`, `object`), not `admin`.
    pub scopes: Option<Vec<ApiScope>>,
    /// When the key stops working. Give this or `expires_in`, not both.
    pub expires_at: Option<DateTime<Utc>>,
    /// Seconds from now until the key stops working.
    #[schema(minimum = 1)]
    pub expires_in: Option<i64>,
    #[schema(minimum = 1)]
    pub rate_limit_qps: Option<i32>,
    #[schema(minimum = 1)]
    pub max_concurrency: Option<i32>,
}

impl CreateKeyRequest {
    pub fn into_new_key(self) -> Result<faceplate_store::NewKey, ApiError> {
        let expires_at = match (self.expires_at, self.expires_in) {
            (Some(_), Some(_)) => return Err(ApiError::bad_arguments("give expires_at or expires_in, not both")),
            (Some(at), None) => Some(at),
            (None, Some(seconds)) if (1..=100 * 365 * 86_400).contains(&seconds) => {
                Some(Utc::now() + chrono::Duration::seconds(seconds))
            }
            (None, Some(_)) => {
                return Err(ApiError::bad_arguments("expires_in must be between 1 second and 100 years"));
            }
            (None, None) => None,
        };
        let scopes = match self.scopes {
            Some(scopes) => scopes.into_iter().map(Scope::from).collect(),
            None => Scope::PRODUCTS.to_vec(),
        };
        Ok(faceplate_store::NewKey {
            name: self.name,
            scopes,
            expires_at,
            rate_limit_qps: self.rate_limit_qps,
            max_concurrency: self.max_concurrency,
        })
    }
}

/// Rotates a key's secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old secret keeps working, so clients can be redeployed (0 to 604800; default 0).
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_seconds: Option<i64>,
}

impl RotateKeyRequest {
    pub fn grace(&self) -> Result<chrono::Duration, ApiError> {
        match self.grace_seconds.unwrap_or(0) {
            s @ 0..=604_800 => Ok(chrono::Duration::seconds(s)),
            _ => Err(ApiError::bad_arguments("grace_seconds must be between 0 and 604800 (7 days)")),
        }
    }
}

/// Cursor paging: pass the last id of a page as `after` to get the next one.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Return items after this id.
    pub after: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit.unwrap_or(100) {
            n @ 1..=1000 => Ok(n),
            _ => Err(ApiError::bad_arguments("limit must be between 1 and 1000")),
        }
    }

    /// Parses the cursor; a malformed one is a caller error.
    pub fn after<T>(&self, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
        self.after
            .as_deref()
            .map(|s| parse(s).ok_or_else(|| ApiError::bad_arguments("`after` is not an id from a previous page")))
            .transpose()
    }
}

/// The cursor for the next page: the last item's id when the page was full.
pub fn next_after<T>(items: &[T], limit: i64, id: impl Fn(&T) -> String) -> Option<String> {
    (items.len() as i64 == limit).then(|| items.last().map(id)).flatten()
}
