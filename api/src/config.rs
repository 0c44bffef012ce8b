//! Configuration: a TOML file, then `FACEPLATE_*` environment variables on top (nested keys with `__`, e.g.
//! `FACEPLATE_REGIONS__EU__DATABASE_URL`). Unknown keys are errors, so a typo never silently falls back to a
//! default. Secrets are `SecretString`s: they print as `[REDACTED]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use faceplate_store::{DatabaseUrl, RegionName, StoresConfig};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "FACEPLATE_";
/// The environment variable naming the config file; read by the CLI, so not a config key itself.
pub const CONFIG_FILE_ENV: &str = "FACEPLATE_CONFIG";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the embedded default keeps its SQLite files and generated server secret.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Control-plane database (tenants, API keys). Default: `sqlite://<data_dir>/control.db`.
    #[serde(default)]
    pub control_database_url: Option<String>,
    /// Region data stores by name. Default: one region `local` at `sqlite://<data_dir>/region-local.db`.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionConfig>,
    /// The public base URL of each region's API, for regions this node may not serve (`us =
    /// "https://us.api.example.com"`): a request for a tenant homed elsewhere is answered `421 WRONG_REGION`
    /// naming its region's endpoint.
    #[serde(default)]
    pub region_endpoints: BTreeMap<String, String>,
    /// Region for new tenants when none is given. Default: `local` if configured, else the only region.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Keys the API-key hashes. Every node sharing a control database must use the same one. Default on
    /// SQLite: generated once into `<data_dir>/server.secret`.
    #[serde(default)]
    pub server_secret: Option<SecretString>,
    /// Bearer token for the operator admin API (`/admin/v1`). Unset: the admin API refuses every call.
    #[serde(default)]
    pub operator_token: Option<SecretString>,
    /// Connections per database pool.
    #[serde(default = "default_max_connections")]
    pub max_db_connections: usize,
    /// Largest JSON body accepted, in bytes.
    #[serde(default = "default_json_limit")]
    pub max_json_bytes: usize,
    /// HTTP worker threads. Default: one per CPU.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish on shutdown.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub faces: FacesConfig,
    #[serde(default)]
    pub facesets: FaceSetsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub metering: MeteringConfig,
    #[serde(default)]
    pub billing: BillingConfig,
    #[serde(default)]
    pub encryption: EncryptionConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// Security alerts pushed to tenants' own endpoints (`PUT /v1/settings/alerts`).
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Accept `http://` endpoints (development only: alerts then travel unencrypted). Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// How long the dispatcher waits after a round with nothing to send.
    #[serde(default = "default_alert_poll_ms")]
    pub poll_interval_ms: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { allow_http: false, poll_interval_ms: default_alert_poll_ms() }
    }
}

fn default_alert_poll_ms() -> u64 {
    1000
}

/// Tenant account deletion.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Days between a deletion request and the purge; the deletion can be cancelled meanwhile. Default 30.
    #[serde(default = "default_grace_days")]
    pub deletion_grace_days: u32,
    /// How often a node purges the tenants whose grace period is over (and resumes interrupted purges).
    #[serde(default = "default_tenant_purge_interval")]
    pub purge_interval_secs: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            deletion_grace_days: default_grace_days(),
            purge_interval_secs: default_tenant_purge_interval(),
        }
    }
}

fn default_grace_days() -> u32 {
    30
}
fn default_tenant_purge_interval() -> u64 {
    60
}

/// Encryption at rest of biometric templates (see `store/src/crypto.rs`).
#[derive(Debug, Deserialize, Serialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The master key that wraps every tenant's data keys: 32 random bytes, base64
    /// (`openssl rand -base64 32`); better given as `FACEPLATE_ENCRYPTION__MASTER_KEY`. Unset: derived from the
    /// server secret. Changing it makes every stored template unreadable.
    #[serde(default, serialize_with = "redacted_option")]
    pub master_key: Option<SecretString>,
}

fn redacted_option<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

impl EncryptionConfig {
    pub fn master_key(&self) -> anyhow::Result<Option<faceplate_store::crypto::MasterKey>> {
        use base64::Engine as _;
        let Some(key) = &self.master_key else { return Ok(None) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.expose_secret().trim())
            .map_err(|_| anyhow::anyhow!("encryption.master_key must be base64 (openssl rand -base64 32)"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("encryption.master_key must be 32 bytes (openssl rand -base64 32)"))?;
        Ok(Some(faceplate_store::crypto::MasterKey(key)))
    }
}

/// Billing. Without `[billing.stripe]` the monthly statements (`GET /v1/usage/statement`) are the bill.
#[derive(Debug, Deserialize, Serialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Report usage to Stripe (see the README's "Billing through Stripe").
    pub stripe: Option<faceplate_billing::stripe::StripeConfig>,
}

/// Usage metering and quotas (see `metering.rs`).
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MeteringConfig {
    /// Off: nothing is counted and no quota applies (to measure what metering costs). Default: on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A retry with the same Idempotency-Key and the same request is answered free within this many hours.
    #[serde(default = "default_idempotency_window")]
    pub idempotency_window_hours: u64,
    /// How often a node re-reads a tenant's month-to-date usage for its quota, in milliseconds.
    #[serde(default = "default_quota_refresh_ms")]
    pub quota_refresh_ms: u64,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        MeteringConfig {
            enabled: true,
            idempotency_window_hours: default_idempotency_window(),
            quota_refresh_ms: default_quota_refresh_ms(),
        }
    }
}

fn default_idempotency_window() -> u64 {
    24
}
fn default_quota_refresh_ms() -> u64 {
    1000
}

/// Rate and concurrency limits (see `limits.rs`). The numbers come from each tenant's plan and its keys.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Off: nothing is limited (to measure what limiting costs). Default: on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The plan of new tenants when none is named.
    #[serde(default = "default_plan")]
    pub default_plan: String,
    /// A Redis shared by every node (`redis://127.0.0.1:6379`), so the limits hold across nodes. Unset: each
    /// node limits on its own (the embedded default).
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several clusters (or test runs) can share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub redis_prefix: String,
    /// When Redis fails or does not answer in time: `open` limits on this node alone, `closed` refuses the
    /// request with 503 SERVICE_UNAVAILABLE.
    #[serde(default)]
    pub on_redis_failure: RedisFailure,
    /// How long a request waits for Redis before it counts as failed, in milliseconds.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
    /// A request's in-flight slot in Redis expires after this many seconds even if its node died holding it.
    #[serde(default = "default_concurrency_lease")]
    pub concurrency_lease_secs: u64,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    /// Keep serving, limited by this node's own limiter.
    #[default]
    Open,
    /// Refuse every limited request until Redis is back.
    Closed,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: true,
            default_plan: default_plan(),
            redis_url: None,
            redis_prefix: default_redis_prefix(),
            on_redis_failure: RedisFailure::Open,
            redis_timeout_ms: default_redis_timeout_ms(),
            concurrency_lease_secs: default_concurrency_lease(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_plan() -> String {
    "free".to_string()
}
fn default_redis_prefix() -> String {
    "faceplate".to_string()
}
fn default_redis_timeout_ms() -> u64 {
    100
}
fn default_concurrency_lease() -> u64 {
    300
}

/// Inference: where the models are and how much work to take on.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Directory filled by scripts/fetch-models.sh. Default: `$FACEPLATE_MODELS_DIR`, else
    /// `$XDG_CACHE_HOME/faceplate/models` (or `~/.cache/faceplate/models`).
    #[serde(default)]
    pub models_dir: Option<PathBuf>,
    /// Inference threads (default: one per CPU).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Requests that may wait for an inference thread; beyond that, 503 SERVER_BUSY with Retry-After.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Largest image file accepted, in bytes (Face++: 2 MB).
    #[serde(default = "default_max_image_bytes")]
    pub max_image_bytes: usize,
    /// Smallest and largest image side in pixels (Face++: 48 and 4096).
    #[serde(default = "default_min_image_side")]
    pub min_image_side: u32,
    #[serde(default = "default_max_image_side")]
    pub max_image_side: u32,
    /// Minimum detection score for a face.
    #[serde(default = "default_score_threshold")]
    pub detection_threshold: f32,
    /// Faces per image that get a face token and landmarks, largest first (Face++: 5).
    #[serde(default = "default_max_faces")]
    pub max_faces_per_image: usize,
    /// Hosts (`host` or `host:port`) that `image_url` may fetch from. Empty (the default): `image_url` is
    /// refused, since fetching arbitrary URLs would let callers probe the server's network.
    #[serde(default)]
    pub image_url_allowed_hosts: Vec<String>,
    /// Seconds a download from `image_url` may take.
    #[serde(default = "default_image_url_timeout")]
    pub image_url_timeout_secs: u64,
    /// Model files, relative to `models_dir` (or absolute): swap in another detector or embedder with the same
    /// inputs and outputs.
    #[serde(default = "default_detector_model")]
    pub detector_model: PathBuf,
    #[serde(default = "default_embedder_model")]
    pub embedder_model: PathBuf,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            models_dir: None,
            workers: None,
            queue_capacity: default_queue_capacity(),
            max_image_bytes: default_max_image_bytes(),
            min_image_side: default_min_image_side(),
            max_image_side: default_max_image_side(),
            detection_threshold: default_score_threshold(),
            max_faces_per_image: default_max_faces(),
            image_url_allowed_hosts: Vec::new(),
            image_url_timeout_secs: default_image_url_timeout(),
            detector_model: default_detector_model(),
            embedder_model: default_embedder_model(),
        }
    }
}

impl EngineConfig {
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(faceplate_engine::default_models_dir)
    }

    pub fn settings(&self) -> faceplate_engine::EngineSettings {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        faceplate_engine::EngineSettings {
            models: {
                let dir = self.models_dir();
                faceplate_engine::ModelPaths {
                    detector: dir.join(&self.detector_model),
                    embedder: dir.join(&self.embedder_model),
                    ..faceplate_engine::ModelPaths::in_dir(&dir)
                }
            },
            workers: self.workers.unwrap_or(cpus),
            queue_capacity: self.queue_capacity,
            detector: faceplate_engine::DetectorSettings {
                score_threshold: self.detection_threshold,
                ..Default::default()
            },
            image_limits: faceplate_engine::ImageLimits {
                max_file_bytes: self.max_image_bytes,
                min_side: self.min_image_side,
                max_side: self.max_image_side,
            },
            max_embedded_faces: self.max_faces_per_image,
        }
    }
}

/// Face tokens.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FacesConfig {
    /// Hours a face token lives unless a FaceSet keeps it (Face++: 72).
    #[serde(default = "default_token_ttl_hours")]
    pub token_ttl_hours: u64,
    /// Seconds between purges of expired face tokens.
    #[serde(default = "default_purge_interval")]
    pub purge_interval_secs: u64,
}

/// FaceSets and 1:N search.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FaceSetsConfig {
    /// Faces one FaceSet may hold (Face++: 10,000).
    #[serde(default = "default_max_faces_per_set")]
    pub max_faces_per_set: i64,
    /// FaceSets one tenant may have.
    #[serde(default = "default_max_sets_per_tenant")]
    pub max_sets_per_tenant: i64,
    /// Where this node keeps index snapshots, so a restart need not rebuild them. A cache: the database is the
    /// source of truth, and a missing or damaged snapshot is rebuilt from it. Default: `<data_dir>/index`.
    #[serde(default)]
    pub index_dir: Option<PathBuf>,
    /// Below this many faces a set is searched exactly; from it on, through an HNSW graph.
    #[serde(default = "default_exact_search_below")]
    pub exact_search_below: usize,
    /// HNSW search breadth: higher finds the true best match more often, more slowly.
    #[serde(default = "default_search_expansion")]
    pub search_expansion: usize,
    /// Seconds between snapshots of indexes that changed.
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval_secs: u64,
}

impl FaceSetsConfig {
    pub fn index_config(&self) -> faceplate_index::IndexConfig {
        faceplate_index::IndexConfig {
            exact_below: self.exact_search_below,
            expansion_search: self.search_expansion,
            ..faceplate_index::IndexConfig::default()
        }
    }
}

impl Default for FaceSetsConfig {
    fn default() -> Self {
        FaceSetsConfig {
            max_faces_per_set: default_max_faces_per_set(),
            max_sets_per_tenant: default_max_sets_per_tenant(),
            index_dir: None,
            exact_search_below: default_exact_search_below(),
            search_expansion: default_search_expansion(),
            snapshot_interval_secs: default_snapshot_interval(),
        }
    }
}

fn default_max_faces_per_set() -> i64 {
    1_000_000
}
fn default_max_sets_per_tenant() -> i64 {
    10_000
}
fn default_exact_search_below() -> usize {
    faceplate_index::IndexConfig::default().exact_below
}
fn default_search_expansion() -> usize {
    faceplate_index::IndexConfig::default().expansion_search
}
fn default_snapshot_interval() -> u64 {
    60
}

impl Default for FacesConfig {
    fn default() -> Self {
        FacesConfig { token_ttl_hours: default_token_ttl_hours(), purge_interval_secs: default_purge_interval() }
    }
}

fn default_queue_capacity() -> usize {
    64
}
fn default_max_image_bytes() -> usize {
    2 * 1024 * 1024
}
fn default_min_image_side() -> u32 {
    48
}
fn default_max_image_side() -> u32 {
    4096
}
fn default_score_threshold() -> f32 {
    0.75
}
fn default_max_faces() -> usize {
    5
}
fn default_image_url_timeout() -> u64 {
    5
}
fn default_detector_model() -> PathBuf {
    PathBuf::from("yunet_2023mar.onnx")
}
fn default_embedder_model() -> PathBuf {
    PathBuf::from("sface_2021dec.onnx")
}
fn default_token_ttl_hours() -> u64 {
    72
}
fn default_purge_interval() -> u64 {
    600
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub database_url: String,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `faceplate_api=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::default(), level: default_log_level() }
    }
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_max_connections() -> usize {
    8
}
fn default_json_limit() -> usize {
    64 * 1024
}
fn default_shutdown_timeout() -> u64 {
    30
}
fn default_log_level() -> String {
    "info".to_string()
}

impl Config {
    /// Loads the file (if given: it must exist) and the environment, then validates.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config", "models_dir", "api_key"]));
        let config: Config = figment.extract().map_err(|e| anyhow::anyhow!(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for name in self.regions.keys() {
            RegionName::parse(name)?;
        }
        for (name, endpoint) in &self.region_endpoints {
            RegionName::parse(name)?;
            match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "https" | "http") => {}
                _ => bail!("region_endpoints.{name}: an http(s) URL, e.g. https://{name}.api.example.com"),
            }
        }
        if self.max_db_connections == 0 || self.max_json_bytes == 0 {
            bail!("max_db_connections and max_json_bytes must be positive");
        }
        let e = &self.engine;
        if e.queue_capacity == 0 || e.max_image_bytes == 0 || e.max_faces_per_image == 0 || e.workers == Some(0) {
            bail!("engine.queue_capacity, max_image_bytes, max_faces_per_image and workers must be positive");
        }
        if e.min_image_side == 0 || e.min_image_side > e.max_image_side || e.max_image_side > 16384 {
            bail!("engine image sides: need 0 < min_image_side <= max_image_side <= 16384");
        }
        if !(0.0..1.0).contains(&e.detection_threshold) {
            bail!("engine.detection_threshold must be in [0, 1)");
        }
        if e.image_url_timeout_secs == 0 || e.image_url_timeout_secs > 60 {
            bail!("engine.image_url_timeout_secs must be between 1 and 60");
        }
        self.encryption.master_key()?;
        if self.privacy.purge_interval_secs == 0 || self.privacy.deletion_grace_days > 3650 {
            bail!("privacy.purge_interval_secs must be positive and deletion_grace_days at most 3650");
        }
        if let Some(stripe) = &self.billing.stripe {
            stripe.validate().map_err(anyhow::Error::msg)?;
        }
        if self.faces.token_ttl_hours == 0 || self.faces.purge_interval_secs == 0 {
            bail!("faces.token_ttl_hours and faces.purge_interval_secs must be positive");
        }
        if let Some(token) = &self.operator_token
            && token.expose_secret().len() < 16
        {
            bail!("operator_token must be at least 16 characters");
        }
        if let Some(secret) = &self.server_secret
            && secret.expose_secret().len() < 16
        {
            bail!("server_secret must be at least 16 characters");
        }
        self.stores()?;
        self.default_region()?;
        Ok(())
    }

    /// The database layout, with defaults filled in and every URL parsed.
    /// Where index snapshots are kept.
    pub fn index_dir(&self) -> PathBuf {
        self.facesets.index_dir.clone().unwrap_or_else(|| self.data_dir.join("index"))
    }

    pub fn stores(&self) -> anyhow::Result<StoresConfig> {
        let control = self
            .control_database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("control.db").display()));
        let control_url = DatabaseUrl::parse(&control).context("control_database_url")?;
        let mut regions = BTreeMap::new();
        if self.regions.is_empty() {
            let url = format!("sqlite://{}", self.data_dir.join("region-local.db").display());
            regions.insert(RegionName::parse("local")?, DatabaseUrl::parse(&url)?);
        }
        for (name, region) in &self.regions {
            let url =
                DatabaseUrl::parse(&region.database_url).with_context(|| format!("regions.{name}.database_url"))?;
            regions.insert(RegionName::parse(name)?, url);
        }
        Ok(StoresConfig {
            control_url,
            regions,
            max_connections: self.max_db_connections,
            billing_outbox: self.billing.stripe.is_some(),
            master_key: self.encryption.master_key()?,
        })
    }

    pub fn default_region(&self) -> anyhow::Result<RegionName> {
        let stores = self.stores()?;
        if let Some(name) = &self.default_region {
            let name = RegionName::parse(name)?;
            if !stores.regions.contains_key(&name) {
                bail!("default_region `{name}` is not among the configured regions");
            }
            return Ok(name);
        }
        let local = RegionName::parse("local")?;
        if stores.regions.contains_key(&local) {
            return Ok(local);
        }
        let mut names = stores.regions.into_keys();
        match (names.next(), names.next()) {
            (Some(only), None) => Ok(only),
            _ => bail!("several regions are configured and none is `local`: set default_region"),
        }
    }

    /// The server secret: configured, or (embedded default only) read from / created in the data directory.
    /// With a PostgreSQL control store several nodes share the keys, so a per-node file would break them.
    pub fn server_secret(&self) -> anyhow::Result<SecretString> {
        if let Some(secret) = &self.server_secret {
            return Ok(secret.clone());
        }
        if matches!(self.stores()?.control_url, DatabaseUrl::Postgres(_)) {
            bail!(
                "server_secret must be set when the control store is PostgreSQL (all nodes must share it): \
                 set FACEPLATE_SERVER_SECRET or server_secret in the config file"
            );
        }
        let path = self.data_dir.join("server.secret");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim().to_string();
            if existing.len() >= 16 {
                return Ok(SecretString::from(existing));
            }
            bail!("{} is too short; delete it to generate a new one (existing keys stop working)", path.display());
        }
        std::fs::create_dir_all(&self.data_dir).with_context(|| format!("creating {}", self.data_dir.display()))?;
        let secret = random_hex(32);
        write_private_file(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
        Ok(SecretString::from(secret))
    }

    /// A printable view of the effective configuration: defaults filled in, secrets shown only as set/unset.
    pub fn redacted(&self) -> anyhow::Result<serde_json::Value> {
        let stores = self.stores()?;
        let regions: BTreeMap<_, _> =
            stores.regions.iter().map(|(name, url)| (name.to_string(), url.redacted())).collect();
        let secret_state = |s: &Option<SecretString>| if s.is_some() { "set" } else { "unset" };
        Ok(serde_json::json!({
            "listen": self.listen.to_string(),
            "data_dir": self.data_dir,
            "control_database_url": stores.control_url.redacted(),
            "regions": regions,
            "default_region": self.default_region()?.to_string(),
            "server_secret": secret_state(&self.server_secret),
            "operator_token": secret_state(&self.operator_token),
            "max_db_connections": self.max_db_connections,
            "max_json_bytes": self.max_json_bytes,
            "workers": self.workers,
            "shutdown_timeout_secs": self.shutdown_timeout_secs,
            "log": self.log,
            "engine": {
                "models_dir": self.engine.models_dir(),
                "workers": self.engine.settings().workers,
                "queue_capacity": self.engine.queue_capacity,
                "max_image_bytes": self.engine.max_image_bytes,
                "min_image_side": self.engine.min_image_side,
                "max_image_side": self.engine.max_image_side,
                "detection_threshold": self.engine.detection_threshold,
                "max_faces_per_image": self.engine.max_faces_per_image,
                "image_url_allowed_hosts": self.engine.image_url_allowed_hosts,
                "image_url_timeout_secs": self.engine.image_url_timeout_secs,
                "detector_model": self.engine.detector_model,
                "embedder_model": self.engine.embedder_model,
            },
            "faces": self.faces,
        }))
    }
}

fn describe_figment_error(e: figment::Error) -> String {
    let mut lines = Vec::new();
    for error in e {
        let path = error.path.join(".");
        let source = match &error.metadata {
            Some(meta) if meta.name.contains("environment") => {
                format!(" (from the environment: {}{})", ENV_PREFIX, path.to_uppercase().replace('.', "__"))
            }
            Some(meta) => {
                format!(" (from {})", meta.source.as_ref().map(|s| s.to_string()).unwrap_or(meta.name.to_string()))
            }
            None => String::new(),
        };
        lines.push(format!("invalid configuration{source}: {}", error.kind));
    }
    lines.join("\n")
}

pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
