//! Encryption at rest of biometric templates (face embeddings).
//!
//! Each tenant has data keys (AES-256-GCM, 32 random bytes), numbered by version. They are stored only wrapped
//! by a [`KeyProvider`] (the built-in one encrypts them under a master key from the configuration; a KMS can
//! take its place) in the control store. An embedding is sealed under its tenant's current key with the
//! tenant and face token as associated data, so a ciphertext moved to another row or tenant does not open.
//! Deleting a tenant's keys leaves every remaining copy of its embeddings, backups included, unreadable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use diesel::prelude::*;
use rand::Rng;

use crate::db::{AnyConnection, Database, write_transaction};
use crate::error::{StoreError, StoreResult};
use crate::model::{TenantId, now_millis};
use crate::schema::control::tenant_keys;

const NONCE: usize = 12;
/// How long a node keeps a tenant's keys before reading them again (so a rotation made on another node
/// becomes the current key here too).
const KEY_CACHE: Duration = Duration::from_secs(60);

/// The master key of the built-in key provider: 32 bytes, never printed.
#[derive(Clone)]
pub struct MasterKey(pub [u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Without a configured master key: one derived from the server secret (which then must be kept as safe).
    pub fn derived_from(server_secret: &[u8]) -> MasterKey {
        Self::derived_from_labelled(server_secret, b"faceplate master key v1")
    }

    /// A key for one purpose, derived from the server secret (HMAC-SHA256 of the label).
    pub fn derived_from_labelled(server_secret: &[u8], label: &[u8]) -> MasterKey {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(server_secret)
            .unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(label);
        MasterKey(mac.finalize().into_bytes().into())
    }
}

/// Wraps and unwraps tenants' data keys.
pub trait KeyProvider: Send + Sync {
    /// Stored beside each wrapped key, so a key wrapped by another provider is recognised.
    fn name(&self) -> &str;
    fn wrap(&self, context: &str, key: &[u8; 32]) -> StoreResult<Vec<u8>>;
    fn unwrap(&self, context: &str, wrapped: &[u8]) -> StoreResult<[u8; 32]>;
}

/// Wraps data keys with AES-256-GCM under a master key held by this process.
pub struct LocalKeyProvider {
    master: Aes256Gcm,
}

impl LocalKeyProvider {
    pub fn new(master_key: &[u8; 32]) -> Self {
        LocalKeyProvider { master: Aes256Gcm::new(master_key.into()) }
    }
}

impl KeyProvider for LocalKeyProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn wrap(&self, context: &str, key: &[u8; 32]) -> StoreResult<Vec<u8>> {
        seal(&self.master, context.as_bytes(), key)
    }

    fn unwrap(&self, context: &str, wrapped: &[u8]) -> StoreResult<[u8; 32]> {
        let key = open(&self.master, context.as_bytes(), wrapped)
            .map_err(|_| StoreError::Invalid("a data key does not open with this master key".into()))?;
        key.try_into().map_err(|_| StoreError::Invalid("a data key has the wrong length".into()))
    }
}

/// `nonce || ciphertext+tag`, with a fresh random nonce.
fn seal(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> StoreResult<Vec<u8>> {
    let mut nonce = [0u8; NONCE];
    rand::rng().fill(&mut nonce);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| StoreError::Invalid("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open(cipher: &Aes256Gcm, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, ()> {
    if data.len() < NONCE {
        return Err(());
    }
    let (nonce, sealed) = data.split_at(NONCE);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad }).map_err(|_| ())
}

/// One tenant's data keys, unwrapped, in memory.
pub struct TenantCipher {
    tenant: String,
    current: i32,
    keys: HashMap<i32, Aes256Gcm>,
}

impl TenantCipher {
    pub fn current_version(&self) -> i32 {
        self.current
    }

    fn aad(&self, row: &str) -> Vec<u8> {
        format!("faceplate-embedding|{}|{row}", self.tenant).into_bytes()
    }

    /// Seals `plaintext` for the row named `row` (a face token) under the current key.
    pub fn seal(&self, row: &str, plaintext: &[u8]) -> StoreResult<(i32, Vec<u8>)> {
        let key = self.keys.get(&self.current).ok_or_else(|| StoreError::Invalid("no current data key".into()))?;
        Ok((self.current, seal(key, &self.aad(row), plaintext)?))
    }

    /// Opens what `seal` made. A destroyed key, another tenant's or row's ciphertext, or a changed byte fail.
    pub fn open(&self, version: i32, row: &str, data: &[u8]) -> StoreResult<Vec<u8>> {
        let key = self
            .keys
            .get(&version)
            .ok_or_else(|| StoreError::Invalid(format!("data key version {version} of this tenant does not exist")))?;
        open(key, &self.aad(row), data).map_err(|_| StoreError::Invalid(format!("template {row} does not decrypt")))
    }
}

/// Encrypts a tenant's other copies of its templates (FaceSet index snapshots on a node's disk) with its
/// current data key. Plain methods, for use on a blocking thread.
pub struct SnapshotSealer {
    cipher: Arc<TenantCipher>,
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"FPSEAL1\0";

impl SnapshotSealer {
    pub(crate) fn new(cipher: Arc<TenantCipher>) -> Self {
        SnapshotSealer { cipher }
    }

    /// `magic, key version, nonce, ciphertext` of `bytes`, bound to `name` (the set's token).
    pub fn seal(&self, name: &str, bytes: &[u8]) -> StoreResult<Vec<u8>> {
        let (version, sealed) = self.cipher.seal(&format!("snapshot:{name}"), bytes)?;
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// What `seal` sealed; fails for another name or tenant, a destroyed key or a changed byte.
    pub fn open(&self, name: &str, file: &[u8]) -> StoreResult<Vec<u8>> {
        if file.len() < 12 || &file[..8] != SNAPSHOT_MAGIC {
            return Err(StoreError::Invalid("not a sealed snapshot".into()));
        }
        let version = i32::from_le_bytes([file[8], file[9], file[10], file[11]]);
        self.cipher.open(version, &format!("snapshot:{name}"), &file[12..])
    }
}

/// The data keys of the tenants this node has seen, loaded from the control store on first use.
pub struct Keyring {
    provider: Arc<dyn KeyProvider>,
    control: Database,
    cache: Mutex<HashMap<String, (Instant, Arc<TenantCipher>)>>,
}

fn context(tenant: &str, version: i32) -> String {
    format!("faceplate-data-key|{tenant}|{version}")
}

impl Keyring {
    pub fn new(provider: Arc<dyn KeyProvider>, control: Database) -> Self {
        Keyring { provider, control, cache: Mutex::new(HashMap::new()) }
    }

    fn cached(&self, tenant: &str) -> Option<Arc<TenantCipher>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(tenant).filter(|(at, _)| at.elapsed() < KEY_CACHE).map(|(_, c)| c.clone())
    }

    pub(crate) fn forget(&self, tenant: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(tenant);
    }

    /// The tenant's keys; its first key is made now if it has none. `need` names a version the caller must be
    /// able to open (a row written with a key made on another node since this one loaded the tenant).
    pub async fn cipher(&self, tenant: &TenantId, need: Option<i32>) -> StoreResult<Arc<TenantCipher>> {
        if let Some(cipher) = self.cached(tenant.as_str())
            && need.is_none_or(|v| cipher.keys.contains_key(&v))
        {
            return Ok(cipher);
        }
        let cipher = match self.load(tenant.as_str(), true).await {
            // Another node made the tenant's first key at the same moment: use that one.
            Err(StoreError::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ))) => self.load(tenant.as_str(), true).await?,
            other => other?,
        };
        let cipher = Arc::new(cipher);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), (Instant::now(), cipher.clone()));
        Ok(cipher)
    }

    /// The tenant's keys for writing: its current version is read from the control store every time, so a
    /// rotation on any node takes effect at once everywhere (a rotation destroys keys no row uses; a node
    /// still writing with an older key would otherwise write rows nobody could read).
    pub async fn cipher_for_write(&self, tenant: &TenantId) -> StoreResult<Arc<TenantCipher>> {
        let id = tenant.to_string();
        let latest: Option<i32> = self
            .control
            .run(move |c| {
                Ok(tenant_keys::table
                    .filter(tenant_keys::tenant_id.eq(id))
                    .select(diesel::dsl::max(tenant_keys::version))
                    .first(c)?)
            })
            .await?;
        if let (Some(latest), Some(cached)) = (latest, self.cached(tenant.as_str()))
            && cached.current == latest
        {
            return Ok(cached);
        }
        self.forget(tenant.as_str());
        self.cipher(tenant, latest).await
    }

    async fn load(&self, tenant: &str, create: bool) -> StoreResult<TenantCipher> {
        let (tenant, provider_name) = (tenant.to_string(), self.provider.name().to_string());
        let provider = self.provider.clone();
        self.control
            .run(move |c| {
                write_transaction(c, |c| {
                    let mut rows = stored_keys(c, &tenant)?;
                    if rows.is_empty() && create {
                        let mut key = [0u8; 32];
                        rand::rng().fill(&mut key);
                        insert_key(c, &tenant, 1, &provider_name, &provider.wrap(&context(&tenant, 1), &key)?)?;
                        rows = stored_keys(c, &tenant)?;
                    }
                    let mut keys = HashMap::new();
                    for (version, name, wrapped) in rows {
                        if name != provider_name {
                            return Err(StoreError::Invalid(format!(
                                "data key {version} of tenant {tenant} was wrapped by the `{name}` key provider"
                            )));
                        }
                        let wrapped = base64::engine::general_purpose::STANDARD
                            .decode(wrapped)
                            .map_err(|_| StoreError::Invalid("a wrapped data key is not base64".into()))?;
                        let key = provider.unwrap(&context(&tenant, version), &wrapped)?;
                        keys.insert(version, Aes256Gcm::new((&key).into()));
                    }
                    let current = keys.keys().copied().max().unwrap_or(0);
                    Ok(TenantCipher { tenant: tenant.clone(), current, keys })
                })
            })
            .await
    }

    /// Makes a new current key for the tenant; returns its version.
    pub async fn rotate(&self, tenant: &TenantId) -> StoreResult<i32> {
        let (tenant_id, name) = (tenant.to_string(), self.provider.name().to_string());
        let provider = self.provider.clone();
        let version = self
            .control
            .run(move |c| {
                write_transaction(c, |c| {
                    let version = stored_keys(c, &tenant_id)?.iter().map(|k| k.0).max().unwrap_or(0) + 1;
                    let mut key = [0u8; 32];
                    rand::rng().fill(&mut key);
                    insert_key(c, &tenant_id, version, &name, &provider.wrap(&context(&tenant_id, version), &key)?)?;
                    Ok(version)
                })
            })
            .await?;
        self.forget(tenant.as_str());
        Ok(version)
    }

    /// Destroys the given versions of the tenant's keys (none may still be in use).
    pub async fn destroy(&self, tenant: &TenantId, versions: Vec<i32>) -> StoreResult<()> {
        let tenant_id = tenant.to_string();
        self.control
            .run(move |c| {
                for v in versions {
                    diesel::delete(tenant_keys::table.find((&tenant_id, v))).execute(c)?;
                }
                Ok(())
            })
            .await?;
        self.forget(tenant.as_str());
        Ok(())
    }

    /// The versions the tenant has.
    pub async fn versions(&self, tenant: &TenantId) -> StoreResult<Vec<i32>> {
        let tenant_id = tenant.to_string();
        self.control.run(move |c| Ok(stored_keys(c, &tenant_id)?.into_iter().map(|k| k.0).collect())).await
    }
}

fn stored_keys(c: &mut AnyConnection, tenant: &str) -> StoreResult<Vec<(i32, String, String)>> {
    Ok(tenant_keys::table
        .filter(tenant_keys::tenant_id.eq(tenant))
        .order(tenant_keys::version.asc())
        .select((tenant_keys::version, tenant_keys::provider, tenant_keys::wrapped_key))
        .load(c)?)
}

fn insert_key(c: &mut AnyConnection, tenant: &str, version: i32, provider: &str, wrapped: &[u8]) -> StoreResult<()> {
    diesel::insert_into(tenant_keys::table)
        .values((
            tenant_keys::tenant_id.eq(tenant),
            tenant_keys::version.eq(version),
            tenant_keys::provider.eq(provider),
            tenant_keys::wrapped_key.eq(base64::engine::general_purpose::STANDARD.encode(wrapped)),
            tenant_keys::created_at.eq(now_millis()),
        ))
        .execute(c)?;
    Ok(())
}

/// Deletes every key of a tenant being deleted, in the caller's transaction.
pub(crate) fn delete_tenant_keys(c: &mut AnyConnection, tenant: &str) -> StoreResult<()> {
    diesel::delete(tenant_keys::table.filter(tenant_keys::tenant_id.eq(tenant))).execute(c)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(tenant: &str, versions: &[(i32, [u8; 32])]) -> TenantCipher {
        TenantCipher {
            tenant: tenant.into(),
            current: versions.iter().map(|v| v.0).max().unwrap_or(0),
            keys: versions.iter().map(|(v, k)| (*v, Aes256Gcm::new(k.into()))).collect(),
        }
    }

    #[test]
    fn a_template_opens_only_for_its_tenant_row_and_key() {
        let plain = [7u8; 512];
        let a = cipher("ten_a", &[(1, [1; 32])]);
        let (version, sealed) = a.seal("face1", &plain).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version, 1);
        assert!(!sealed.windows(16).any(|w| w == &plain[..16]), "no plaintext in the ciphertext");
        assert_eq!(a.open(1, "face1", &sealed).ok(), Some(plain.to_vec()));
        assert!(a.open(1, "face2", &sealed).is_err(), "moved to another row");
        assert!(cipher("ten_b", &[(1, [1; 32])]).open(1, "face1", &sealed).is_err(), "another tenant");
        assert!(cipher("ten_a", &[(1, [2; 32])]).open(1, "face1", &sealed).is_err(), "a new key after destruction");
        assert!(a.open(2, "face1", &sealed).is_err(), "unknown version");
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(a.open(1, "face1", &flipped).is_err(), "a changed byte");
    }

    #[test]
    fn data_keys_unwrap_only_with_their_master_key_and_context() {
        let provider = LocalKeyProvider::new(&[9; 32]);
        let wrapped = provider.wrap("ctx|t|1", &[5; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(provider.unwrap("ctx|t|1", &wrapped).ok(), Some([5; 32]));
        assert!(provider.unwrap("ctx|t|2", &wrapped).is_err());
        assert!(LocalKeyProvider::new(&[8; 32]).unwrap("ctx|t|1", &wrapped).is_err());
    }
}
