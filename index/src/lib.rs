//! Per-FaceSet nearest-neighbour index over L2-normalised face embeddings (SFace: 128 `f32`), similarity = dot
//! product (= cosine for unit vectors).
//!
//! # Two modes
//!
//! * **Exact** (below [`IndexConfig::exact_below`] faces): keys plus one contiguous `Vec<f32>` of vectors, searched
//!   by a full scan (a 16-accumulator dot product that LLVM vectorises, a bounded top-k heap). Exact, no build
//!   cost, no graph memory, and fast at this size (the scan is memory-bound: ~512 bytes read per face).
//! * **HNSW** (from `exact_below` faces on): an approximate graph index from [USearch](https://github.com/unum-cloud/USearch)
//!   (the `usearch` crate). When a set reaches the threshold, the graph is built from the flat vectors (on
//!   [`IndexConfig::build_threads`] threads) while searches keep using the flat copy; then the mode switches and
//!   the flat copy is dropped. Once HNSW, an index stays HNSW even if removals shrink it (hysteresis: no rebuild
//!   storms around the threshold).
//!
//! # Why USearch
//!
//! * It is a single C++ header library compiled by the crate's build script (no system library, no CMake, no
//!   BLAS/OpenMP), exposed through a safe Rust API (`cxx`), so the workspace keeps `unsafe_code = "forbid"`.
//! * It supports everything a FaceSet needs: concurrent insertion and search from many threads (each operation
//!   takes one of the index's reserved "thread contexts"), removal (tombstones whose slots are reused by later
//!   inserts), `u64` keys, `f32` or `f16` storage, exact (brute-force) search over the stored vectors, and
//!   serialisation to a buffer.
//! * Alternatives considered: `hnsw_rs` (no removal, no f16, serde-based dumps), `instant-distance` (immutable
//!   after build), faiss through bindings (needs a system faiss/BLAS build) and a home-grown HNSW (weeks of
//!   tuning for what USearch already does).
//! * Measured cost of the choice (`faceplate-search-bench`, BENCHMARKS.md, 2-vCPU AMD EPYC with AVX2): at equal
//!   recall USearch 2.26 searches about 2-2.5x slower than faiss 1.15 `IndexHNSWFlat` and builds about 2.8x slower
//!   (1M faces: 479 vs 1,356 vectors/s on 2 threads). Profiles show why: its `f32` inner product (NumKong's
//!   `nk_dot_f32_haswell`) accumulates in `f64` on one dependency chain, and graph traversal does not prefetch
//!   neighbour vectors. Neither can be changed from safe Rust (a custom metric takes raw pointers).
//!
//! # Recall on face embeddings
//!
//! Face embeddings are trained to spread identities evenly over the sphere, so apart from each identity's own
//! photos every face sits at about the same low cosine from a query. That is the hardest case for graph search: on
//! the bench's synthetic SFace-like data (same identity 0.75, different 0.15, as for the real test photos) a
//! new photo of an enrolled person is found as the best match (recall@1 of mated queries) 0.995 of the time at
//! 100k faces with `efSearch` 512 (p50 3.8 ms), but only 0.87 at 1M faces (faiss: 0.73). Hence the defaults: exact
//! scans up to 50k faces (where they cost no more than a graph search of equal recall), `efSearch` 512 above. 1M
//! faces at recall 0.99 needs a denser graph (`connectivity` 32+, `expansion_add` 256+; slower to build) or
//! real embeddings to re-measure on.
//!
//! # Concurrency
//!
//! [`FaceIndex`] is `Send + Sync`. Searches take a shared lock. Mutations (`add`, `remove`) are serialised by a
//! writer mutex; in HNSW mode an add inserts under the *shared* lock (USearch supports concurrent insert and
//! search), in chunks, so a bulk add of 100k faces never blocks searches; only growing the graph's capacity
//! (geometric, rare) and removals take the exclusive lock, briefly. The mode switch builds the graph beside the
//! flat store and swaps it in under the exclusive lock. Every USearch call holds one of
//! [`IndexConfig::max_concurrency`] permits (USearch fails an operation when it has no free thread context, so
//! callers beyond that number wait for a permit instead).
//!
//! # Memory per face (128 dims, `memory_bytes` measured by `faceplate-search-bench`)
//!
//! * Exact mode: 512 bytes of vector + 8 of key + ~20 of key→row map: 539 bytes at 100k, 551 at 1M faces.
//! * HNSW, `f32`, connectivity 16: 857 bytes at 100k, 813 at 1M faces (512 vector, ~200 graph: 32 base-layer
//!   neighbours of 4 bytes plus upper layers and the node header, ~100 of key tables: USearch's and ours). The
//!   process RSS grew by 791 MiB for 1M faces. `f16` storage saves 256 bytes per face.
//! * Snapshots: 496 MiB (exact) and 638 MiB (HNSW) for 1M faces; `save` 3-4 s, `load` 2.3 s (HNSW; checksum
//!   verified, graph copied into memory).
//!
//! # Snapshots
//!
//! [`FaceIndex::save`] writes one file atomically (temporary file in the same directory, fsync, rename, fsync of
//! the directory): a header (magic, format version, mode, quantization, dimensions, count, lengths), the caller's
//! opaque `meta`, the keys, the payload (flat vectors, or USearch's serialised graph with its vectors), and a
//! CRC-32 of all of it. [`FaceIndex::load`] checks all of that before it hands anything to USearch, so a
//! truncated, corrupt or foreign file is an `Err` (the caller rebuilds from its database), never a panic.

use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// How the HNSW graph stores vectors. The exact (flat) mode always keeps `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// 4 bytes per dimension: no loss.
    F32,
    /// 2 bytes per dimension: half the vector memory; similarities change in the 3rd-4th decimal.
    F16,
}

impl Quantization {
    fn scalar_kind(self) -> ScalarKind {
        match self {
            Quantization::F32 => ScalarKind::F32,
            Quantization::F16 => ScalarKind::F16,
        }
    }

    fn code(self) -> u8 {
        match self {
            Quantization::F32 => 1,
            Quantization::F16 => 2,
        }
    }

    fn from_code(code: u8) -> Option<Quantization> {
        match code {
            1 => Some(Quantization::F32),
            2 => Some(Quantization::F16),
            _ => None,
        }
    }
}

/// Configuration of one index. [`IndexConfig::default`] suits SFace embeddings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    /// Length of every vector.
    pub dimensions: usize,
    /// Below this many vectors the index scans exactly; on reaching it, it builds the HNSW graph and stays HNSW.
    /// 0: HNSW from the start.
    pub exact_below: usize,
    /// HNSW `M`: neighbours per node on the upper layers (twice that on the base layer).
    pub connectivity: usize,
    /// HNSW `efConstruction`: candidate list size while inserting.
    pub expansion_add: usize,
    /// HNSW `efSearch`: candidate list size while searching (at least `k` is used).
    pub expansion_search: usize,
    /// Vector storage of the HNSW graph.
    pub quantization: Quantization,
    /// Threads that insert into the graph during a bulk add or the switch to HNSW. 0: all available cores.
    pub build_threads: usize,
    /// Most USearch operations (searches plus insert threads) at once; more callers wait for a permit.
    pub max_concurrency: usize,
}

impl Default for IndexConfig {
    /// 128 dimensions; exact below 50,000 faces; `M` 16, `efConstruction` 128, `efSearch` 512; `f32`.
    ///
    /// Measured with `faceplate-search-bench` (BENCHMARKS.md, one core per client): the exact scan costs ~0.05 ms
    /// per 1,000 faces (10k: 0.37 ms p50, 100k: 4.9 ms p50 / 10 ms p99, 1M: 41 ms) and is exact, while HNSW on
    /// face embeddings needs `efSearch` ~512 to find a mated face 99% of the time (100k: 3.8 ms p50): below ~50k
    /// faces the scan is as fast as a graph search of that recall, needs no build and ~300 fewer bytes per face.
    /// `M` 16 / `efConstruction` 128 are the usual HNSW defaults (faiss's too); denser graphs recall better but
    /// build slower (1M faces already take 35 min on 2 cores).
    fn default() -> Self {
        IndexConfig {
            dimensions: 128,
            exact_below: 50_000,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 512,
            quantization: Quantization::F32,
            build_threads: 0,
            max_concurrency: 64,
        }
    }
}

/// The SIMD instruction sets USearch found on this CPU (for reports).
pub fn simd_capabilities() -> String {
    usearch::hardware_acceleration_available()
}

/// What can go wrong. Bad input is an error, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("invalid index configuration: {0}")]
    Config(&'static str),
    #[error("vector has {got} dimensions, the index {expected}")]
    Dimensions { expected: usize, got: usize },
    #[error("vector {} contains NaN or infinity", match .key { Some(k) => format!("for key {k}"), None => "(query)".into() })]
    NonFinite { key: Option<u64> },
    #[error("key {0} is reserved and cannot be stored")]
    ReservedKey(u64),
    #[error("vector index engine: {0}")]
    Engine(String),
    #[error("snapshot {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("snapshot {path} is corrupt or not an index snapshot: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("snapshot {path} does not fit this index: {reason}")]
    Incompatible { path: PathBuf, reason: String },
}

fn engine_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Engine(e.to_string())
}

/// USearch marks free slots with the all-ones key.
const RESERVED_KEY: u64 = u64::MAX;
/// Adds in HNSW mode go in chunks of this many vectors, each under its own shared lock.
pub const ADD_CHUNK: usize = 4_096;
/// Below this many vectors an insert runs on the caller's thread only.
const PARALLEL_MIN: usize = 512;
/// Removals in HNSW mode take the exclusive lock for this many keys at a time.
const REMOVE_CHUNK: usize = 4_096;

/// A nearest-neighbour index for one FaceSet. See the crate documentation.
pub struct FaceIndex {
    config: IndexConfig,
    state: RwLock<State>,
    /// Serialises mutations (and snapshots, which must not see a half-done add).
    writer: Mutex<()>,
    /// HNSW mode: exact scans (shared) exclude inserts (exclusive, per chunk), which USearch makes visible to a
    /// full scan before they are complete; approximate searches only reach nodes once they are linked.
    scans: RwLock<()>,
    gate: Gate,
}

enum State {
    Flat(Flat),
    Hnsw(Hnsw),
}

/// Exact mode: row `i` of `vectors` belongs to `keys[i]`.
struct Flat {
    dimensions: usize,
    keys: Vec<u64>,
    vectors: Vec<f32>,
    rows: HashMap<u64, usize>,
}

struct Hnsw {
    index: Index,
    /// USearch cannot list its keys; this set can (for `keys()` and snapshots).
    keys: Mutex<HashSet<u64>>,
    /// Removed vectors whose slots USearch has not reused yet (they still count against its capacity).
    tombstones: usize,
}

impl FaceIndex {
    /// An empty index.
    pub fn new(config: IndexConfig) -> Result<Self, IndexError> {
        validate(&config)?;
        let state = if config.exact_below == 0 {
            State::Hnsw(Hnsw::new(&config, 0)?)
        } else {
            State::Flat(Flat::new(config.dimensions))
        };
        Ok(FaceIndex {
            gate: Gate::new(config.max_concurrency),
            state: RwLock::new(state),
            writer: Mutex::new(()),
            scans: RwLock::new(()),
            config,
        })
    }

    /// The configuration the index was created (or loaded) with; `expansion_search` as last set.
    pub fn config(&self) -> IndexConfig {
        let mut config = self.config.clone();
        if let State::Hnsw(h) = &*self.read() {
            config.expansion_search = h.index.expansion_search();
        }
        config
    }

    /// Adds vectors. Idempotent: a key already present (or repeated in `items`) is skipped, its vector unchanged.
    /// Every vector is checked first (length, finite values, key): on any error nothing is added.
    pub fn add(&self, items: &[(u64, &[f32])]) -> Result<(), IndexError> {
        for (key, vector) in items {
            self.check_vector(vector, Some(*key))?;
            if *key == RESERVED_KEY {
                return Err(IndexError::ReservedKey(*key));
            }
        }
        let _writer = lock(&self.writer);
        let mut seen = HashSet::with_capacity(items.len());
        let fresh: Vec<(u64, &[f32])> = {
            let state = self.read();
            items.iter().filter(|(key, _)| seen.insert(*key) && !state.contains(*key)).copied().collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let switch = match &*self.read() {
            State::Flat(flat) => flat.keys.len() + fresh.len() >= self.config.exact_below,
            State::Hnsw(_) => false,
        };
        if switch {
            return self.switch_to_hnsw(&fresh);
        }
        if let State::Flat(flat) = &mut *self.write() {
            flat.extend(&fresh);
            return Ok(());
        }
        self.add_to_graph(&fresh)
    }

    /// Builds the graph from the flat vectors plus `fresh` while searches keep scanning the flat store, then
    /// swaps it in. Called with the writer lock held.
    fn switch_to_hnsw(&self, fresh: &[(u64, &[f32])]) -> Result<(), IndexError> {
        let hnsw = {
            let state = self.read();
            let State::Flat(flat) = &*state else {
                return Err(IndexError::Engine("switch to HNSW from HNSW".into()));
            };
            let mut all: Vec<(u64, &[f32])> = flat.rows().collect();
            all.extend_from_slice(fresh);
            let hnsw = Hnsw::new(&self.config, all.len())?;
            let added = add_parallel(&hnsw.index, &self.gate, &all, self.build_threads());
            added?;
            lock(&hnsw.keys).extend(all.iter().map(|(key, _)| *key));
            hnsw
        };
        *self.write() = State::Hnsw(hnsw);
        Ok(())
    }

    /// HNSW-mode insert: grow the capacity once (exclusive lock), then insert chunk by chunk under the shared
    /// lock so that searches run alongside. Called with the writer lock held.
    fn add_to_graph(&self, mut fresh: &[(u64, &[f32])]) -> Result<(), IndexError> {
        if let State::Hnsw(h) = &mut *self.write() {
            let needed = h.index.size() + h.tombstones + fresh.len();
            let capacity = h.index.capacity();
            if needed > capacity {
                let target = needed.max(capacity + capacity / 2);
                h.index.reserve_capacity_and_threads(target, self.config.max_concurrency).map_err(engine_error)?;
            }
            // The very first node of a graph becomes its entry point before it is fully written: insert it
            // while no search runs.
            if h.index.size() + h.tombstones == 0
                && let Some(((key, vector), rest)) = fresh.split_first()
            {
                h.index.add(*key, vector).map_err(engine_error)?;
                lock(&h.keys).insert(*key);
                fresh = rest;
            }
            // USearch fills removed slots first.
            h.tombstones = h.tombstones.saturating_sub(fresh.len());
        }
        for chunk in fresh.chunks(ADD_CHUNK) {
            let state = self.read();
            // USearch counts a node before it is written: exact scans (which visit every slot) wait.
            let _no_scans = self.scans.write().unwrap_or_else(PoisonError::into_inner);
            let State::Hnsw(h) = &*state else {
                return Err(IndexError::Engine("index left HNSW mode during an add".into()));
            };
            let result = add_parallel(&h.index, &self.gate, chunk, self.build_threads());
            let mut keys = lock(&h.keys);
            match result {
                Ok(()) => keys.extend(chunk.iter().map(|(key, _)| *key)),
                Err(e) => {
                    keys.extend(chunk.iter().map(|(key, _)| *key).filter(|key| h.index.contains(*key)));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Removes keys; missing keys are ignored. Returns how many were removed.
    pub fn remove(&self, keys: &[u64]) -> Result<usize, IndexError> {
        let _writer = lock(&self.writer);
        let mut removed = 0;
        for chunk in keys.chunks(REMOVE_CHUNK) {
            match &mut *self.write() {
                State::Flat(flat) => removed += chunk.iter().filter(|key| flat.remove(**key)).count(),
                State::Hnsw(h) => {
                    for key in chunk {
                        let n = h.index.remove(*key).map_err(engine_error)?;
                        if n > 0 {
                            removed += 1;
                            h.tombstones += n;
                            lock(&h.keys).remove(key);
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Whether `key` is in the index.
    pub fn contains(&self, key: u64) -> bool {
        self.read().contains(key)
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        match &*self.read() {
            State::Flat(flat) => flat.keys.len(),
            State::Hnsw(h) => h.index.size(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best `k` matches, highest similarity first: `(key, cosine similarity)`. Approximate in HNSW mode.
    /// An empty index or `k == 0` gives an empty list.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        self.search_graph(query, k, false)
    }

    /// Exact search whatever the mode (ground truth; what small sets always use). In HNSW mode it scans the
    /// graph's stored vectors (in `f16` when quantized) with USearch's brute-force search, and waits for an
    /// insert chunk in progress (at most [`ADD_CHUNK`] vectors) to finish.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        self.search_graph(query, k, true)
    }

    /// [`FaceIndex::search`] and [`FaceIndex::exact_search`]: the flat store is always scanned exactly; the graph
    /// is walked, or with `exact` brute-forced.
    fn search_graph(&self, query: &[f32], k: usize, exact: bool) -> Result<Vec<(u64, f32)>, IndexError> {
        self.check_vector(query, None)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        match &*self.read() {
            State::Flat(flat) => Ok(flat.search(query, k)),
            State::Hnsw(h) => {
                let k = k.min(h.index.size());
                if k == 0 {
                    return Ok(Vec::new());
                }
                if exact {
                    let _no_inserts = self.scans.read().unwrap_or_else(PoisonError::into_inner);
                    let _permit = self.gate.enter();
                    h.index.exact_search(query, k).map(matches).map_err(engine_error)
                } else {
                    let _permit = self.gate.enter();
                    h.index.search(query, k).map(matches).map_err(engine_error)
                }
            }
        }
    }

    /// All keys, in no particular order.
    pub fn keys(&self) -> Vec<u64> {
        match &*self.read() {
            State::Flat(flat) => flat.keys.clone(),
            State::Hnsw(h) => lock(&h.keys).iter().copied().collect(),
        }
    }

    /// Whether the index is in HNSW mode (else exact).
    pub fn is_hnsw(&self) -> bool {
        matches!(&*self.read(), State::Hnsw(_))
    }

    /// Changes `efSearch` of the HNSW graph (no effect in exact mode, but kept for the switch).
    pub fn set_expansion_search(&self, expansion: usize) {
        if let State::Hnsw(h) = &*self.write() {
            h.index.change_expansion_search(expansion.max(1));
        }
    }

    /// Memory held by the index, in bytes (vectors, graph, key tables; reserved capacity included).
    pub fn memory_bytes(&self) -> usize {
        match &*self.read() {
            State::Flat(flat) => {
                flat.vectors.capacity() * 4 + flat.keys.capacity() * 8 + flat.rows.capacity() * (8 + 8 + 1)
            }
            State::Hnsw(h) => h.index.memory_usage() + lock(&h.keys).capacity() * (8 + 1),
        }
    }

    /// Writes a snapshot atomically: a temporary file in the same directory, fsync, rename over `path`, fsync of
    /// the directory. `meta` is stored as is (e.g. a JSON sync watermark) and returned by [`FaceIndex::load`].
    pub fn save(&self, path: &Path, meta: &[u8]) -> Result<(), IndexError> {
        write_file_atomically(path, &self.to_bytes(meta)?)
    }

    /// The snapshot [`FaceIndex::save`] writes, as bytes (for a caller that encrypts it before writing it with
    /// [`write_file_atomically`]).
    pub fn to_bytes(&self, meta: &[u8]) -> Result<Vec<u8>, IndexError> {
        let _writer = lock(&self.writer);
        let state = self.read();
        let (mode, count, keys, payload) = match &*state {
            State::Flat(flat) => {
                let mut payload = Vec::with_capacity(flat.vectors.len() * 4);
                payload.extend(flat.vectors.iter().flat_map(|v| v.to_le_bytes()));
                (MODE_FLAT, flat.keys.len(), flat.keys.clone(), payload)
            }
            State::Hnsw(h) => {
                let mut keys: Vec<u64> = lock(&h.keys).iter().copied().collect();
                keys.sort_unstable();
                let mut payload = vec![0u8; h.index.serialized_length()];
                h.index.save_to_buffer(&mut payload).map_err(engine_error)?;
                (MODE_HNSW, keys.len(), keys, payload)
            }
        };
        let header = Header {
            mode,
            quantization: self.config.quantization,
            dimensions: self.config.dimensions,
            count,
            meta_len: meta.len(),
            payload_len: payload.len(),
        };
        let key_bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
        drop(state);
        let header = header.encode();
        let parts: [&[u8]; 4] = [&header, meta, &key_bytes, &payload];
        let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 4);
        for part in parts {
            bytes.extend_from_slice(part);
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        Ok(bytes)
    }

    /// Loads a snapshot written by [`FaceIndex::save`]; returns the index and the caller's `meta`. The snapshot's
    /// mode is kept (HNSW stays HNSW), except that an exact snapshot at or above `config.exact_below` is turned
    /// into HNSW. The graph's connectivity is the one it was built with; `expansion_*` come from `config`.
    /// A truncated, corrupt or foreign file, or one for other dimensions or quantization, is an `Err`.
    pub fn load(path: &Path, config: IndexConfig) -> Result<(FaceIndex, Vec<u8>), IndexError> {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, config, path)
    }

    /// Like [`FaceIndex::load`], from the bytes of a snapshot; `path` names where they came from in errors.
    pub fn from_bytes(bytes: &[u8], config: IndexConfig, path: &Path) -> Result<(FaceIndex, Vec<u8>), IndexError> {
        validate(&config)?;
        let corrupt = |reason: &str| IndexError::Corrupt { path: path.to_path_buf(), reason: reason.to_string() };
        let incompatible = |reason: String| IndexError::Incompatible { path: path.to_path_buf(), reason };
        if bytes.len() < HEADER_LEN + 4 {
            return Err(corrupt("too short"));
        }
        if bytes[..8] != MAGIC {
            return Err(corrupt("no faceplate index header"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt("checksum mismatch (truncated or damaged)"));
        }
        let header = Header::decode(body).map_err(|reason| match reason {
            HeaderError::Corrupt(r) => corrupt(r),
            HeaderError::Incompatible(r) => incompatible(r),
        })?;
        if header.dimensions != config.dimensions {
            return Err(incompatible(format!("{} dimensions, the index {}", header.dimensions, config.dimensions)));
        }
        let keys_len = header.count.checked_mul(8).ok_or_else(|| corrupt("count overflows"))?;
        let expected = [HEADER_LEN, header.meta_len, keys_len, header.payload_len]
            .into_iter()
            .try_fold(0usize, usize::checked_add)
            .ok_or_else(|| corrupt("lengths overflow"))?;
        if expected != body.len() {
            return Err(corrupt("lengths do not add up to the file size"));
        }
        let (meta, rest) = body[HEADER_LEN..].split_at(header.meta_len);
        let (key_bytes, payload) = rest.split_at(keys_len);
        let keys: Vec<u64> = key_bytes.chunks_exact(8).map(|b| u64::from_le_bytes(le_array(b))).collect();
        let state = match header.mode {
            MODE_FLAT => {
                if Some(payload.len()) != header.count.checked_mul(config.dimensions * 4) {
                    return Err(corrupt("vector data has the wrong length"));
                }
                let mut flat = Flat::new(config.dimensions);
                flat.vectors = payload.chunks_exact(4).map(|b| f32::from_le_bytes(le_array(b))).collect();
                for (row, key) in keys.iter().enumerate() {
                    if *key == RESERVED_KEY || flat.rows.insert(*key, row).is_some() {
                        return Err(corrupt("duplicate or reserved key"));
                    }
                }
                if flat.vectors.iter().any(|v| !v.is_finite()) {
                    return Err(corrupt("non-finite vector value"));
                }
                flat.keys = keys;
                State::Flat(flat)
            }
            _ => {
                if header.quantization != config.quantization {
                    return Err(incompatible(format!(
                        "quantization {:?}, the index {:?}",
                        header.quantization, config.quantization
                    )));
                }
                let info = Index::metadata_from_buffer(payload).map_err(|e| corrupt(&e.to_string()))?;
                if info.dimensions != config.dimensions as u64
                    || info.metric != MetricKind::IP
                    || info.quantization != config.quantization.scalar_kind()
                    || info.multi
                    || info.count_present != header.count as u64
                {
                    return Err(corrupt("graph header does not match the snapshot header"));
                }
                let hnsw = Hnsw::new(&config, 0)?;
                hnsw.index.load_from_buffer(payload).map_err(|e| corrupt(&e.to_string()))?;
                hnsw.index
                    .reserve_capacity_and_threads(hnsw.index.size(), config.max_concurrency)
                    .map_err(engine_error)?;
                hnsw.index.change_expansion_add(config.expansion_add.max(1));
                hnsw.index.change_expansion_search(config.expansion_search.max(1));
                if hnsw.index.size() != header.count || keys.iter().any(|key| !hnsw.index.contains(*key)) {
                    return Err(corrupt("keys do not match the graph"));
                }
                let set: HashSet<u64> = keys.into_iter().collect();
                if set.len() != header.count {
                    return Err(corrupt("duplicate keys"));
                }
                *lock(&hnsw.keys) = set;
                State::Hnsw(Hnsw { tombstones: info.count_deleted as usize, ..hnsw })
            }
        };
        let index = FaceIndex {
            gate: Gate::new(config.max_concurrency),
            state: RwLock::new(state),
            writer: Mutex::new(()),
            scans: RwLock::new(()),
            config,
        };
        let convert = match &*index.read() {
            State::Flat(flat) => flat.keys.len() >= index.config.exact_below,
            State::Hnsw(_) => false,
        };
        if convert {
            let _writer = lock(&index.writer);
            index.switch_to_hnsw(&[])?;
        }
        Ok((index, meta.to_vec()))
    }

    fn check_vector(&self, vector: &[f32], key: Option<u64>) -> Result<(), IndexError> {
        if vector.len() != self.config.dimensions {
            return Err(IndexError::Dimensions { expected: self.config.dimensions, got: vector.len() });
        }
        if !vector.iter().all(|v| v.is_finite()) {
            return Err(IndexError::NonFinite { key });
        }
        Ok(())
    }

    fn build_threads(&self) -> usize {
        match self.config.build_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        .min(self.config.max_concurrency)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for FaceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceIndex").field("len", &self.len()).field("hnsw", &self.is_hnsw()).finish()
    }
}

fn validate(config: &IndexConfig) -> Result<(), IndexError> {
    if config.dimensions == 0 {
        return Err(IndexError::Config("dimensions must be positive"));
    }
    if config.max_concurrency == 0 {
        return Err(IndexError::Config("max_concurrency must be positive"));
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn matches(m: usearch::ffi::Matches) -> Vec<(u64, f32)> {
    // IP distance = 1 - dot.
    m.keys.into_iter().zip(m.distances).map(|(key, distance)| (key, 1.0 - distance)).collect()
}

/// Inserts `items` on up to `threads` threads, each holding a permit (a USearch thread context).
fn add_parallel(index: &Index, gate: &Gate, items: &[(u64, &[f32])], threads: usize) -> Result<(), IndexError> {
    let insert = |part: &mut dyn Iterator<Item = &(u64, &[f32])>| -> Result<(), IndexError> {
        let _permit = gate.enter();
        for (key, vector) in part {
            index.add(*key, vector).map_err(engine_error)?;
        }
        Ok(())
    };
    if threads <= 1 || items.len() < PARALLEL_MIN {
        return insert(&mut items.iter());
    }
    std::thread::scope(|scope| {
        let insert = &insert;
        let workers: Vec<_> =
            (0..threads).map(|t| scope.spawn(move || insert(&mut items.iter().skip(t).step_by(threads)))).collect();
        let mut result = Ok(());
        for worker in workers {
            let outcome = worker.join().unwrap_or_else(|_| Err(IndexError::Engine("insert thread panicked".into())));
            result = result.and(outcome);
        }
        result
    })
}

impl State {
    fn contains(&self, key: u64) -> bool {
        match self {
            State::Flat(flat) => flat.rows.contains_key(&key),
            State::Hnsw(h) => h.index.contains(key),
        }
    }
}

impl Hnsw {
    fn new(config: &IndexConfig, capacity: usize) -> Result<Hnsw, IndexError> {
        let options = IndexOptions {
            dimensions: config.dimensions,
            metric: MetricKind::IP,
            quantization: config.quantization.scalar_kind(),
            connectivity: config.connectivity,
            expansion_add: config.expansion_add,
            expansion_search: config.expansion_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(engine_error)?;
        index.reserve_capacity_and_threads(capacity.max(16), config.max_concurrency).map_err(engine_error)?;
        Ok(Hnsw { index, keys: Mutex::new(HashSet::with_capacity(capacity)), tombstones: 0 })
    }
}

impl Flat {
    fn new(dimensions: usize) -> Flat {
        Flat { dimensions, keys: Vec::new(), vectors: Vec::new(), rows: HashMap::new() }
    }

    fn rows(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.keys.iter().copied().zip(self.vectors.chunks_exact(self.dimensions))
    }

    /// `items` are new, distinct keys.
    fn extend(&mut self, items: &[(u64, &[f32])]) {
        self.keys.reserve(items.len());
        self.vectors.reserve(items.len() * self.dimensions);
        for (key, vector) in items {
            if let Entry::Vacant(slot) = self.rows.entry(*key) {
                slot.insert(self.keys.len());
                self.keys.push(*key);
                self.vectors.extend_from_slice(vector);
            }
        }
    }

    /// Swap-remove: the last row moves into the hole.
    fn remove(&mut self, key: u64) -> bool {
        let Some(row) = self.rows.remove(&key) else {
            return false;
        };
        let last = self.keys.len() - 1;
        if row != last {
            let d = self.dimensions;
            self.vectors.copy_within(last * d..(last + 1) * d, row * d);
            let moved = self.keys[last];
            self.keys[row] = moved;
            self.rows.insert(moved, row);
        }
        self.keys.truncate(last);
        self.vectors.truncate(last * self.dimensions);
        true
    }

    /// Full scan with a bounded min-heap of the best `k`.
    fn search(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let k = k.min(self.keys.len());
        if k == 0 {
            return Vec::new();
        }
        let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
        let mut floor = f32::NEG_INFINITY;
        for (row, vector) in self.vectors.chunks_exact(self.dimensions).enumerate() {
            let score = dot(query, vector);
            if heap.len() < k {
                heap.push(Worst(score, row));
                if heap.len() == k {
                    floor = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0);
                }
            } else if score > floor {
                heap.pop();
                heap.push(Worst(score, row));
                floor = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0);
            }
        }
        let mut best: Vec<(u64, f32)> = heap.into_iter().map(|Worst(score, row)| (self.keys[row], score)).collect();
        best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        best
    }
}

/// Heap entry ordered so that the *lowest* score is on top.
struct Worst(f32, usize);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

/// Dot product with 16 independent accumulators: LLVM turns the inner loop into packed multiply-adds (4 SSE or
/// 2 AVX registers) without needing to reassociate floating-point sums.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// A counting semaphore: at most `n` USearch operations at once (USearch has `n` thread contexts).
struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a>(&'a Gate);

impl Gate {
    fn new(n: usize) -> Gate {
        Gate { free: Mutex::new(n), freed: Condvar::new() }
    }

    fn enter(&self) -> Permit<'_> {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

// ------------------------------------------------------------------------------------------------------------
// Snapshot file

const MAGIC: [u8; 8] = *b"FPINDEX\0";
const FORMAT_VERSION: u32 = 1;
const MODE_FLAT: u8 = 1;
const MODE_HNSW: u8 = 2;
/// magic 8, version 4, mode 1, quantization 1, reserved 2, dimensions 8, count 8, meta length 8, payload length 8.
const HEADER_LEN: usize = 48;

struct Header {
    mode: u8,
    quantization: Quantization,
    dimensions: usize,
    count: usize,
    meta_len: usize,
    payload_len: usize,
}

enum HeaderError {
    Corrupt(&'static str),
    Incompatible(String),
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&[self.mode, self.quantization.code(), 0, 0]);
        for n in [self.dimensions, self.count, self.meta_len, self.payload_len] {
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Header, HeaderError> {
        let word = |at: usize| -> Result<usize, HeaderError> {
            let value = u64::from_le_bytes(le_array(&bytes[at..at + 8]));
            usize::try_from(value).map_err(|_| HeaderError::Corrupt("length out of range"))
        };
        let version = u32::from_le_bytes(le_array(&bytes[8..12]));
        if version != FORMAT_VERSION {
            return Err(HeaderError::Incompatible(format!("format version {version}, expected {FORMAT_VERSION}")));
        }
        let mode = bytes[12];
        if mode != MODE_FLAT && mode != MODE_HNSW {
            return Err(HeaderError::Corrupt("unknown mode"));
        }
        let quantization = Quantization::from_code(bytes[13]).ok_or(HeaderError::Corrupt("unknown quantization"))?;
        Ok(Header {
            mode,
            quantization,
            dimensions: word(16)?,
            count: word(24)?,
            meta_len: word(32)?,
            payload_len: word(40)?,
        })
    }
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// Writes `bytes` to a temporary file next to `path`, fsyncs it, renames it over `path` and fsyncs the
/// directory. The temporary file is removed on failure.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let io = |source: std::io::Error| IndexError::Io { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| io(std::io::Error::other("no file name")))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let temp = dir.join(format!(".{}.{}.{nanos}.tmp", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&temp)?);
        file.write_all(bytes)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io(e)
    })
}
