//! The in-memory search indexes of this node, one per FaceSet, kept in step with the database.
//!
//! The database is the source of truth; an index is a cache that catches up before every search. A set's
//! `version` tells whether anything changed; if so, the index drops the keys logged as removed since the version
//! it has seen and adds the members whose key is above the highest it holds (see `faceplate_store::facesets`).
//! That also keeps several nodes in step, each with its own indexes.
//!
//! Indexes are loaded on first use, from a snapshot in `index_dir` when there is a usable one (so a restart does
//! not rebuild a large HNSW graph), else from the database. Snapshots of changed indexes are written now and
//! then and at shutdown; a stale one only means a longer catch-up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use faceplate_index::{FaceIndex, IndexConfig};
use faceplate_store::crypto::SnapshotSealer;
use faceplate_store::{FaceSet, FaceSetToken, StoreError, Stores, TenantData, TenantId};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::ApiError;
use crate::routes::faces::EMBEDDING_MODEL;

/// Members read from the database per round trip while loading or catching up.
const LOAD_BATCH: i64 = 20_000;

/// What a snapshot covers, stored inside it: a snapshot of another set or model is never used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct SyncState {
    faceset: String,
    tenant: String,
    model: String,
    /// The set's version the index has caught up with.
    version: i64,
    /// The highest member key in the index.
    max_key: i64,
}

struct Entry {
    index: FaceIndex,
    tenant: TenantId,
    snapshot: PathBuf,
    /// Serialises catch-ups and snapshots of this set.
    state: tokio::sync::Mutex<SyncState>,
    /// `state.version`, readable without the lock: the fast path of every search.
    synced_version: AtomicI64,
    saved_version: AtomicI64,
}

pub struct FaceSetIndexes {
    config: IndexConfig,
    dir: PathBuf,
    entries: Mutex<HashMap<FaceSetToken, Arc<OnceCell<Arc<Entry>>>>>,
}

/// What the loaded indexes hold, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexStats {
    pub sets: usize,
    pub faces: usize,
    pub bytes: usize,
}

/// One candidate from an index: the member key and the cosine similarity.
pub type Candidate = (i64, f32);

impl FaceSetIndexes {
    pub fn new(config: IndexConfig, dir: PathBuf) -> Self {
        FaceSetIndexes { config, dir, entries: Mutex::new(HashMap::new()) }
    }

    /// The `k` nearest members of `set` to `query` (unit length), best first, as of `set.version` or later.
    pub async fn search(
        &self,
        data: &TenantData,
        set: &FaceSet,
        query: Vec<f32>,
        k: usize,
    ) -> Result<Vec<Candidate>, ApiError> {
        let entry = self.synced(data, set).await?;
        let found = tokio::task::spawn_blocking(move || entry.index.search(&query, k))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        Ok(found.into_iter().map(|(key, score)| (key as i64, score)).collect())
    }

    /// Brings the set's index up to date in the background (after a change made through this node), so the
    /// next search does not pay for it. Only for indexes already loaded.
    pub fn refresh_soon(self: &Arc<Self>, data: TenantData, set: FaceSet) {
        if !self.is_loaded(&set.token) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.synced(&data, &set).await {
                tracing::warn!(faceset = %set.token, error = %e.message, "index refresh failed; the next search retries");
            }
        });
    }

    pub fn stats(&self) -> IndexStats {
        let entries = self.lock_entries();
        entries.values().filter_map(|cell| cell.get()).fold(IndexStats::default(), |s, e| IndexStats {
            sets: s.sets + 1,
            faces: s.faces + e.index.len(),
            bytes: s.bytes + e.index.memory_bytes(),
        })
    }

    fn is_loaded(&self, token: &FaceSetToken) -> bool {
        self.lock_entries().get(token).is_some_and(|cell| cell.initialized())
    }

    /// Drops a deleted set's index and snapshot.
    pub fn forget(&self, tenant: &TenantId, token: &FaceSetToken) {
        self.lock_entries().remove(token);
        remove_file_if_present(&self.snapshot_path(tenant, token));
    }

    /// Drops every index and snapshot of a deleted tenant.
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.lock_entries().retain(|_, cell| cell.get().is_none_or(|e| &e.tenant != tenant));
        let dir = self.dir.join(tenant.as_str());
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot delete index snapshots")
            }
            _ => {}
        }
    }

    /// Snapshots live under the tenant's directory, so deleting a tenant deletes them all at once.
    fn snapshot_path(&self, tenant: &TenantId, token: &FaceSetToken) -> PathBuf {
        self.dir.join(tenant.as_str()).join(format!("{token}.idx"))
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<FaceSetToken, Arc<OnceCell<Arc<Entry>>>>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts and removes).
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The set's index, loaded and caught up with `set.version` at least.
    async fn synced(&self, data: &TenantData, set: &FaceSet) -> Result<Arc<Entry>, ApiError> {
        let cell = Arc::clone(self.lock_entries().entry(set.token.clone()).or_default());
        let entry = cell.get_or_try_init(|| self.open(data, set)).await?.clone();
        if entry.synced_version.load(Ordering::Acquire) >= set.version {
            return Ok(entry);
        }
        let mut state = entry.state.lock().await;
        if state.version < set.version {
            catch_up(data, set, &entry, &mut state).await?;
            entry.synced_version.store(state.version, Ordering::Release);
        }
        drop(state);
        Ok(entry)
    }

    /// Loads the set's snapshot if it is usable, else starts empty (the catch-up then loads every member).
    async fn open(&self, data: &TenantData, set: &FaceSet) -> Result<Arc<Entry>, ApiError> {
        let path = self.snapshot_path(&data.tenant().id, &set.token);
        let wanted = SyncState {
            faceset: set.token.to_string(),
            tenant: data.tenant().id.to_string(),
            model: EMBEDDING_MODEL.to_string(),
            version: 0,
            max_key: 0,
        };
        let config = self.config.clone();
        // What the database says now bounds what a usable snapshot may hold.
        let limit = SyncState { version: set.version, max_key: set.max_key, ..wanted.clone() };
        let sealer = data.snapshot_sealer().await?;
        let (index, state) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match load_snapshot(&path, &limit, config.clone(), &sealer) {
                Some((index, state)) => {
                    tracing::info!(faceset = %wanted.faceset, faces = index.len(), version = state.version,
                        millis = started.elapsed().as_millis() as u64, "loaded index snapshot");
                    Ok((index, state))
                }
                None => FaceIndex::new(config).map(|index| (index, wanted)),
            }
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        Ok(Arc::new(Entry {
            index,
            tenant: data.tenant().id.clone(),
            snapshot: self.snapshot_path(&data.tenant().id, &set.token),
            synced_version: AtomicI64::new(state.version),
            saved_version: AtomicI64::new(state.version),
            state: tokio::sync::Mutex::new(state),
        }))
    }

    /// Writes snapshots of the indexes that changed since their last one, and drops indexes of sets that no
    /// longer exist (deleted through another node). Returns how many snapshots were written.
    pub async fn checkpoint(&self, stores: &Stores) -> usize {
        let entries: Vec<(FaceSetToken, Arc<Entry>)> = self
            .lock_entries()
            .iter()
            .filter_map(|(token, cell)| cell.get().map(|e| (token.clone(), Arc::clone(e))))
            .collect();
        let mut written = 0;
        for (token, entry) in entries {
            let data = match set_exists(stores, &entry.tenant, &token).await {
                Ok(None) => {
                    self.forget(&entry.tenant, &token);
                    continue;
                }
                Ok(Some(data)) => data,
                Err(e) => {
                    tracing::warn!(faceset = %token, error = %e, "cannot check FaceSet; snapshot skipped");
                    continue;
                }
            };
            if entry.saved_version.load(Ordering::Acquire) == entry.synced_version.load(Ordering::Acquire) {
                continue;
            }
            match save_snapshot(&entry, &data, &token).await {
                Ok(()) => written += 1,
                Err(e) => tracing::warn!(faceset = %token, error = %e, "writing index snapshot failed"),
            }
        }
        written
    }
}

/// The tenant's data if the set still exists.
async fn set_exists(
    stores: &Stores,
    tenant: &TenantId,
    token: &FaceSetToken,
) -> Result<Option<TenantData>, StoreError> {
    let tenant = match stores.control().get_tenant(tenant).await {
        Err(StoreError::NotFound(_)) => return Ok(None),
        other => other?,
    };
    let data = match stores.tenant_data(&tenant) {
        Err(StoreError::RegionNotConfigured(_)) => return Ok(None),
        other => other?,
    };
    match data.get_faceset(faceplate_store::FaceSetRef::Token(token.clone())).await {
        Ok(_) => Ok(Some(data)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Applies what changed in the database since `state` to the index.
async fn catch_up(data: &TenantData, set: &FaceSet, entry: &Arc<Entry>, state: &mut SyncState) -> Result<(), ApiError> {
    let removed = data.removed_keys_since(&set.token, state.version).await?;
    if !removed.is_empty() {
        let keys: Vec<u64> = removed.iter().map(|&k| k as u64).collect();
        let entry = Arc::clone(entry);
        tokio::task::spawn_blocking(move || entry.index.remove(&keys))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    }
    loop {
        let batch = data.member_embeddings(&set.token, state.max_key, LOAD_BATCH).await?;
        let Some(&(last, _)) = batch.last() else { break };
        let full = batch.len() as i64 == LOAD_BATCH;
        let entry = Arc::clone(entry);
        tokio::task::spawn_blocking(move || {
            let items: Vec<(u64, &[f32])> = batch.iter().map(|(k, v)| (*k as u64, v.as_slice())).collect();
            entry.index.add(&items)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        state.max_key = last;
        if !full {
            break;
        }
    }
    state.version = state.version.max(set.version);
    Ok(())
}

/// Snapshots hold the set's templates, so they are sealed with the tenant's data key like the database copy:
/// destroying the key (tenant deletion, rotation) makes every snapshot anywhere unreadable, and it is rebuilt
/// from the database.
fn load_snapshot(
    path: &Path,
    wanted: &SyncState,
    config: IndexConfig,
    sealer: &SnapshotSealer,
) -> Option<(FaceIndex, SyncState)> {
    if !path.exists() {
        return None;
    }
    let opened = std::fs::read(path)
        .map_err(anyhow::Error::from)
        .and_then(|file| sealer.open(&wanted.faceset, &file).map_err(anyhow::Error::from))
        .and_then(|bytes| FaceIndex::from_bytes(&bytes, config, path).map_err(anyhow::Error::from));
    match opened {
        Ok((index, meta)) => match serde_json::from_slice::<SyncState>(&meta) {
            Ok(state)
                if state.faceset == wanted.faceset && state.tenant == wanted.tenant && state.model == wanted.model =>
            {
                if state.version > wanted.version || state.max_key > wanted.max_key {
                    // Ahead of the database (restored from a backup?): its keys may now mean other faces.
                    tracing::warn!(path = %path.display(), "index snapshot is ahead of the database; rebuilding");
                    return None;
                }
                Some((index, state))
            }
            _ => {
                tracing::warn!(path = %path.display(), "index snapshot belongs to something else; rebuilding");
                None
            }
        },
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "index snapshot unusable; rebuilding from the database");
            None
        }
    }
}

async fn save_snapshot(entry: &Arc<Entry>, data: &TenantData, token: &FaceSetToken) -> anyhow::Result<()> {
    let sealer = data.snapshot_sealer().await?;
    // Holding the state lock keeps catch-ups out, so the snapshot and its version agree.
    let state = entry.state.lock().await;
    let meta = serde_json::to_vec(&*state)?;
    let version = state.version;
    let writer = Arc::clone(entry);
    let name = token.to_string();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = writer.snapshot.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let sealed = sealer.seal(&name, &writer.index.to_bytes(&meta)?)?;
        faceplate_index::write_file_atomically(&writer.snapshot, &sealed).map_err(anyhow::Error::from)
    })
    .await??;
    entry.saved_version.store(version, Ordering::Release);
    drop(state);
    Ok(())
}

fn remove_file_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot delete index snapshot"),
    }
}
