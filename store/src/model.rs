//! Domain records as the rest of the platform sees them (not the raw rows).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Generates an id `<prefix>_<32 hex>` from a UUIDv7-like value: time-ordered (so ids sort by creation and serve
/// as pagination cursors) with 74 random bits (so they cannot be guessed).
pub(crate) fn new_sortable_id(prefix: &str) -> String {
    use rand::RngCore;
    let millis = Utc::now().timestamp_millis() as u64 & 0xFFFF_FFFF_FFFF;
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut hex = format!("{millis:012x}");
    for b in random {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("{prefix}_{hex}")
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Accepts only well-formed ids, so garbage never reaches a query.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?.strip_prefix('_')?;
                (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .then(|| Self(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: one client business.
    TenantId,
    "ten"
);
id_type!(
    /// The public half of an API key; also the Face++ `api_key`.
    KeyId,
    "fpk"
);
id_type!(
    /// One audit log entry.
    AuditEventId,
    "aud"
);
id_type!(
    /// A legal or government request for data, as the operator recorded it.
    LegalRequestId,
    "lrq"
);
id_type!(
    /// A consent attestation recorded by a tenant.
    ConsentId,
    "cns"
);

id_type!(
    /// An asynchronous FaceSet task (Face++ `faceset/async/*`).
    TaskId,
    "task"
);

impl TaskId {
    pub(crate) fn generate() -> Self {
        Self(new_sortable_id(Self::PREFIX))
    }
    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl ConsentId {
    pub(crate) fn generate() -> Self {
        Self(new_sortable_id(Self::PREFIX))
    }
    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl TenantId {
    pub(crate) fn generate() -> Self {
        Self(new_sortable_id(Self::PREFIX))
    }
    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl KeyId {
    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl LegalRequestId {
    pub(crate) fn generate() -> Self {
        Self(new_sortable_id(Self::PREFIX))
    }
    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl AuditEventId {
    pub(crate) fn generate() -> Self {
        Self(new_sortable_id(Self::PREFIX))
    }
    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

macro_rules! hex_token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                use rand::RngCore;
                let mut bytes = [0u8; 16];
                rand::rng().fill_bytes(&mut bytes);
                $name(hex::encode(bytes))
            }

            pub fn parse(s: &str) -> Option<Self> {
                (s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
                    .then(|| Self(s.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

hex_token!(
    /// A detected face: 32 lower-case hex characters (128 random bits), as Face++ face tokens look.
    FaceToken
);
hex_token!(
    /// A FaceSet, in the same form as Face++ `faceset_token`s.
    FaceSetToken
);

/// A face as stored: what comparison and search need, never the image.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceRecord {
    pub token: FaceToken,
    pub image_id: String,
    /// Which embedder produced `embedding` (vectors of different models are not comparable).
    pub model: String,
    pub embedding: Vec<f32>,
    /// Face++ order: top, left, width, height.
    pub rect: FaceRect,
    pub score: f64,
    /// Model-specific landmark points and quality figures, as JSON.
    pub landmarks: serde_json::Value,
    pub quality: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// `None` once kept by a FaceSet.
    pub expires_at: Option<DateTime<Utc>>,
    /// The tenant's own identifier for the person (Face++ `face/setuserid`).
    pub user_id: Option<String>,
    /// The consent attestation the template was made under; `None`: a Face++-compatible call the tenant allows
    /// without one (its own attestation), or a template from before consents were recorded.
    pub consent_id: Option<ConsentId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FaceRect {
    pub top: i32,
    pub left: i32,
    pub width: i32,
    pub height: i32,
}

/// A region name as configured (`local`, `eu-west`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegionName(String);

impl RegionName {
    /// Lower-case letters, digits and dashes, 1–32 characters: safe in URLs, file names and logs.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        ok.then(|| Self(s.to_string())).ok_or_else(|| {
            StoreError::Invalid(format!("region name `{s}`: use 1-32 lower-case letters, digits and dashes"))
        })
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    /// Deletion requested: refused like a suspended tenant until it is purged (or the deletion is cancelled).
    PendingDeletion,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::PendingDeletion => "pending_deletion",
        }
    }
}

impl FromStr for TenantStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            "pending_deletion" => Ok(TenantStatus::PendingDeletion),
            other => Err(StoreError::Invalid(format!("unknown tenant status `{other}`"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Fixed at creation: all of the tenant's data lives in this region's store.
    pub home_region: RegionName,
    pub status: TenantStatus,
    /// The plan whose limits the tenant's requests are held to (see [`Plan`]).
    pub plan_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When a requested deletion purges the tenant (status `pending_deletion`).
    pub delete_after: Option<DateTime<Utc>>,
    /// Set while the tenant has restricted the processing of its data: no biometric operation runs.
    pub processing_restricted_at: Option<DateTime<Utc>>,
    /// How long this tenant's face tokens live unless a FaceSet keeps them; `None`: the server's default.
    pub face_token_ttl_hours: Option<i32>,
    /// How long any of its templates is kept, FaceSet members included; `None`: until deleted.
    pub template_retention_days: Option<i32>,
    /// The version of the data processing terms the tenant accepted, and when; no biometric call runs before
    /// it has accepted the current version.
    pub dpa_version: Option<String>,
    pub dpa_accepted_at: Option<DateTime<Utc>>,
    /// Whether Face++-compatible biometric calls without a `consent_id` run (under the tenant's own attestation).
    pub facepp_without_consent: FaceppWithoutConsent,
}

/// What a Face++-compatible biometric call without a `consent_id` gets. Face++ clients cannot send one unless
/// changed, so a tenant migrating unchanged clients may choose to attest consent itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FaceppWithoutConsent {
    /// 403 CONSENT_REQUIRED, as on the native API.
    #[default]
    Refuse,
    /// The call runs; its templates record no consent id (the tenant attests consent outside Faceplate).
    Allow,
}

impl FaceppWithoutConsent {
    pub fn as_str(self) -> &'static str {
        match self {
            FaceppWithoutConsent::Refuse => "refuse",
            FaceppWithoutConsent::Allow => "allow",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "refuse" => Some(FaceppWithoutConsent::Refuse),
            "allow" => Some(FaceppWithoutConsent::Allow),
            _ => None,
        }
    }
}

/// What a tenant may do per second and at once. The tenant's limits hold over all its keys together; each
/// key is held to the key limits, unless the key sets its own (`ApiKey::rate_limit_qps`, `max_concurrency`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// `free`, `pay_as_you_go`, `enterprise`, or one the operator added.
    pub id: String,
    pub name: String,
    /// Requests per second over all the tenant's keys (also the burst a quiet tenant may send at once).
    pub tenant_qps: u32,
    /// Requests in flight at once over all the tenant's keys.
    pub tenant_concurrency: u32,
    /// Requests per second per key, unless the key sets its own.
    pub key_qps: u32,
    /// Requests in flight at once per key, unless the key sets its own.
    pub key_concurrency: u32,
    /// ISO 4217 code, lower case (as Stripe writes it).
    pub currency: String,
    /// Charged every month whatever the usage, in cents.
    pub base_fee_cents: i64,
    /// What the plan offers per product; a product not listed is not available on the plan.
    pub products: std::collections::BTreeMap<Product, ProductTerms>,
}

impl Plan {
    pub fn terms(&self, product: Product) -> Option<&ProductTerms> {
        self.products.get(&product)
    }
}

/// A plan's terms for one product, per calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductTerms {
    /// Units covered by the plan's base fee.
    pub included_units: i64,
    /// At most this many units a month; `None`: no cap.
    pub monthly_cap: Option<i64>,
    /// Price of each unit beyond the included ones, in millionths of the currency unit.
    pub unit_price_micros: i64,
}

/// What a billable call is counted as. Each billable operation of the native and the Face++-compatible API
/// maps to one product (see the API's metering table); one call is one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    FaceDetect,
    FaceCompare,
    FaceSearch,
    OcrText,
    OcrIdcard,
    OcrMrz,
    OcrBankcard,
    OcrDriverlicense,
    PlateRecognize,
}

impl Product {
    pub const ALL: [Product; 9] = [
        Product::FaceDetect,
        Product::FaceCompare,
        Product::FaceSearch,
        Product::OcrText,
        Product::OcrIdcard,
        Product::OcrMrz,
        Product::OcrBankcard,
        Product::OcrDriverlicense,
        Product::PlateRecognize,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Product::FaceDetect => "face_detect",
            Product::FaceCompare => "face_compare",
            Product::FaceSearch => "face_search",
            Product::OcrText => "ocr_text",
            Product::OcrIdcard => "ocr_idcard",
            Product::OcrMrz => "ocr_mrz",
            Product::OcrBankcard => "ocr_bankcard",
            Product::OcrDriverlicense => "ocr_driverlicense",
            Product::PlateRecognize => "plate_recognize",
        }
    }
}

impl FromStr for Product {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Product::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = Product::ALL.iter().map(|p| p.as_str()).collect();
            StoreError::Invalid(format!("unknown product `{s}` (known: {})", known.join(", ")))
        })
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a key may do: one scope per product family, plus `admin` for managing the tenant's own keys and
/// reading its audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Admin,
    Face,
    Ocr,
    Plate,
    Object,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Admin, Scope::Face, Scope::Ocr, Scope::Plate, Scope::Object];
    /// New keys get every product scope but not `admin`, unless asked for.
    pub const PRODUCTS: [Scope; 4] = [Scope::Face, Scope::Ocr, Scope::Plate, Scope::Object];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Face => "face",
            Scope::Ocr => "ocr",
            Scope::Plate => "plate",
            Scope::Object => "object",
        }
    }
}

impl FromStr for Scope {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown scope `{s}` (known: admin, face, ocr, plate, object)")))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key as stored: never the secret, only its keyed hash (which never leaves the store crate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub rate_limit_qps: Option<i32>,
    pub max_concurrency: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    /// After a rotation with a grace period, the old secret keeps working until this time.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// What to create a key with.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_qps: Option<i32>,
    pub max_concurrency: Option<i32>,
}

/// A key together with its secret, returned only by create and rotate: the one time the secret is visible.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

impl IssuedKey {
    /// The bearer token for `Authorization: Bearer ...`: `<key id>.<secret>`.
    pub fn bearer_token(&self) -> String {
        format!("{}.{}", self.key.id, self.secret)
    }
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator, through the admin API.
    Operator,
    /// The operator, through the `faceplate` command line on the server.
    Cli,
    /// A tenant developer, through one of the tenant's keys.
    Key(KeyId),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator => f.write_str("operator"),
            Actor::Cli => f.write_str("cli"),
            Actor::Key(id) => write!(f, "key:{id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub tenant_id: TenantId,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
    /// Position in the tenant's sealed chain (1, 2, ...).
    pub seq: Option<i64>,
    /// The entry's seal (HMAC-SHA256, hex), which the next entry repeats: keep one to prove later that
    /// nothing before it changed.
    pub hash: Option<String>,
}

/// Where an audited action came from.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub actor: Actor,
    pub request_id: Option<String>,
}

impl Provenance {
    pub fn cli() -> Self {
        Provenance { actor: Actor::Cli, request_id: None }
    }
}

pub(crate) fn millis_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}
