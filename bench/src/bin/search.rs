//! FaceSet search benchmark: `faceplate-index` (exact scan and USearch HNSW) side by side with faiss-cpu
//! (IndexFlatIP, IndexHNSWFlat) on the very same vectors, in one invocation.
//!
//! The data are face-like 128-d unit embeddings generated from a seed: many identities, each a cluster (a few
//! photos per identity), identity centres at cosine ~0.2 to each other, photos of one identity at cosine ~0.75 to
//! each other (the measured means are printed). When the models are present, the real SFace embeddings of the
//! test photos are added to every set, and obama3.jpg is searched for among them (its best match must be one of
//! the other two Obama photos).
//!
//! Per set size: build time, memory, search latency p50/p99 with 1 and 2 closed-loop client threads, recall@1 and
//! recall@10 against exact search, snapshot save/load time; for ours exact, ours HNSW at several `efSearch`,
//! ours exact over the HNSW graph's vectors, faiss flat and faiss HNSW (same M / efConstruction / efSearch).
//! Prints one Markdown report on stdout (progress on stderr). Nothing is asserted.
//!
//! `cargo run --release -p faceplate-bench --bin faceplate-search-bench -- [--sizes 10000,100000,1000000]
//!  [--queries N] [--quick] [--ef 16,32,64,128,256,512,1024] [--no-faiss] [--exact-budget SECS] [--seed N]`

use std::collections::HashSet;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use faceplate_index::{FaceIndex, IndexConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const DIMS: usize = 128;
const K: usize = 10;
const PEER_PY: &str = include_str!("../../python/faiss_peer.py");
const REQUIREMENTS: &str = include_str!("../../python/faiss-requirements.txt");
/// Identity centres: `normalise(sqrt(SHARED) * s + sqrt(1 - SHARED) * g)` with one shared unit direction `s` and
/// a random unit `g`: two centres meet at cosine SHARED +- 0.07.
const SHARED: f32 = 0.2;
/// A photo is `normalise(centre + t * n)` with a random unit `n` and `t^2` uniform in this range: two photos of
/// one identity meet at cosine ~ 1 / (1 + t^2) ~ 0.75.
const NOISE_SQ: (f32, f32) = (0.15, 0.55);
const MATED_FRACTION: f64 = 0.8;

const USAGE: &str = "\
usage: faceplate-search-bench [--sizes 10000,100000,1000000] [--queries N] [--quick] [--ef 16,32,64,128,256,512,1024]
                              [--exact-budget SECS] [--seed N] [--connectivity M] [--expansion-add N]
                              [--no-faiss] [--venv DIR] [--python PYTHON]

  --sizes LIST        set sizes (default 10000,100000,1000000)
  --queries N         queries per size (default 1000): 80% new photos of enrolled identities, 20% strangers
  --quick             --sizes 10000,100000
  --ef LIST           HNSW efSearch values to measure, ours and faiss (default 16,32,64,128,256,512,1024)
  --exact-budget S    one-client exact runs stop after S seconds, at least 50 queries (default 15)
  --seed N            data seed (default 42)
  --connectivity M    HNSW M for ours and faiss (default: IndexConfig::default())
  --expansion-add N   HNSW efConstruction for ours and faiss (default: IndexConfig::default())
  --no-faiss          skip the faiss peer
  --venv DIR          Python environment of the peer (default ~/.cache/faceplate/bench-venv; created if missing)
  --python PYTHON     interpreter that creates the environment (default python3)";

struct Args {
    sizes: Vec<usize>,
    queries: usize,
    efs: Vec<usize>,
    exact_budget: Duration,
    seed: u64,
    /// Ours with these HNSW parameters (the defaults unless overridden).
    config: IndexConfig,
    faiss: bool,
    venv: PathBuf,
    python: String,
}

fn parse_args() -> Res<Args> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let mut args = Args {
        sizes: vec![10_000, 100_000, 1_000_000],
        queries: 1_000,
        efs: vec![16, 32, 64, 128, 256, 512, 1024],
        exact_budget: Duration::from_secs(15),
        seed: 42,
        config: IndexConfig::default(),
        faiss: true,
        venv: home.join(".cache/faceplate/bench-venv"),
        python: "python3".into(),
    };
    let mut it = std::env::args().skip(1);
    let list = |flag: &str, value: Option<String>| -> Res<Vec<usize>> {
        let value = value.ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let items: Vec<usize> =
            value.split(',').map(|s| s.trim().replace('_', "").parse()).collect::<Result<_, _>>()?;
        if items.is_empty() || items.contains(&0) {
            return Err(format!("{flag} needs positive numbers").into());
        }
        Ok(items)
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sizes" => args.sizes = list("--sizes", it.next())?,
            "--queries" => args.queries = list("--queries", it.next())?[0],
            "--ef" => args.efs = list("--ef", it.next())?,
            "--quick" => args.sizes = vec![10_000, 100_000],
            "--exact-budget" => args.exact_budget = Duration::from_secs(list("--exact-budget", it.next())?[0] as u64),
            "--seed" => args.seed = list("--seed", it.next())?[0] as u64,
            "--connectivity" => args.config.connectivity = list("--connectivity", it.next())?[0],
            "--expansion-add" => args.config.expansion_add = list("--expansion-add", it.next())?[0],
            "--no-faiss" => args.faiss = false,
            "--venv" => args.venv = it.next().map(PathBuf::from).ok_or("--venv needs a directory")?,
            "--python" => args.python = it.next().ok_or("--python needs an interpreter")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    args.sizes.sort_unstable();
    args.sizes.dedup();
    Ok(args)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("faceplate-search-bench: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------------------------------------------------
// Data

/// Row-major unit vectors: the real faces (if any) first, then the synthetic ones. A vector's key is its row.
struct Dataset {
    vectors: Vec<f32>,
    /// Synthetic identity of each synthetic row (row - real.len()).
    identity_of: Vec<u32>,
    /// Synthetic identity centres, row-major.
    centres: Vec<f32>,
    /// First row (synthetic numbering) of each identity.
    first_row: Vec<usize>,
    real: Vec<RealFace>,
    /// obama3.jpg's largest face, the real query.
    real_query: Option<Vec<f32>>,
}

struct RealFace {
    photo: &'static str,
}

impl Dataset {
    fn rows(&self) -> usize {
        self.vectors.len() / DIMS
    }

    fn row(&self, row: usize) -> &[f32] {
        &self.vectors[row * DIMS..(row + 1) * DIMS]
    }
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A random unit vector (normalised standard normal, by Box-Muller).
fn random_unit(rng: &mut StdRng) -> [f32; DIMS] {
    let mut v = [0.0f32; DIMS];
    for pair in v.chunks_exact_mut(2) {
        let u1: f32 = 1.0 - rng.random::<f32>(); // (0, 1]
        let u2: f32 = rng.random::<f32>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
        pair[0] = r * c;
        pair[1] = r * s;
    }
    normalise(&mut v);
    v
}

fn identity_centre(rng: &mut StdRng, shared: &[f32; DIMS]) -> [f32; DIMS] {
    let g = random_unit(rng);
    let (a, b) = (SHARED.sqrt(), (1.0 - SHARED).sqrt());
    let mut c = [0.0f32; DIMS];
    for i in 0..DIMS {
        c[i] = a * shared[i] + b * g[i];
    }
    normalise(&mut c);
    c
}

fn photo_of(rng: &mut StdRng, centre: &[f32]) -> [f32; DIMS] {
    let t = rng.random_range(NOISE_SQ.0..NOISE_SQ.1).sqrt();
    let n = random_unit(rng);
    let mut x = [0.0f32; DIMS];
    for i in 0..DIMS {
        x[i] = centre[i] + t * n[i];
    }
    normalise(&mut x);
    x
}

fn generate(rows: usize, seed: u64, real: Vec<(&'static str, Vec<f32>)>, real_query: Option<Vec<f32>>) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let shared = random_unit(&mut rng);
    let synthetic = rows.saturating_sub(real.len());
    let mut data = Dataset {
        vectors: Vec::with_capacity(rows * DIMS),
        identity_of: Vec::with_capacity(synthetic),
        centres: Vec::new(),
        first_row: Vec::new(),
        real: Vec::new(),
        real_query,
    };
    for (photo, vector) in real {
        data.vectors.extend_from_slice(&vector);
        data.real.push(RealFace { photo });
    }
    let mut row = 0;
    while row < synthetic {
        let identity = data.first_row.len() as u32;
        let centre = identity_centre(&mut rng, &shared);
        data.centres.extend_from_slice(&centre);
        data.first_row.push(row);
        let photos = rng.random_range(1..=5usize).min(synthetic - row);
        for _ in 0..photos {
            data.vectors.extend_from_slice(&photo_of(&mut rng, &centre));
            data.identity_of.push(identity);
        }
        row += photos;
    }
    data
}

/// Mean cosine of photos of the same identity and of different identities, over a sample.
fn cosine_stats(data: &Dataset, seed: u64) -> (f64, f64, f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let offset = data.real.len();
    let mut same = Vec::new();
    for (identity, &first) in data.first_row.iter().enumerate().take(20_000) {
        let next = data.first_row.get(identity + 1).copied().unwrap_or(data.identity_of.len());
        for a in first..next {
            for b in a + 1..next {
                same.push(f64::from(faceplate_index::dot(data.row(offset + a), data.row(offset + b))));
            }
        }
    }
    let mut different = Vec::new();
    let synthetic = data.identity_of.len();
    while different.len() < 20_000 && synthetic > 1 {
        let (a, b) = (rng.random_range(0..synthetic), rng.random_range(0..synthetic));
        if data.identity_of[a] != data.identity_of[b] {
            different.push(f64::from(faceplate_index::dot(data.row(offset + a), data.row(offset + b))));
        }
    }
    let mut centres = Vec::new();
    let identities = data.first_row.len();
    while centres.len() < 20_000 && identities > 1 {
        let (a, b) = (rng.random_range(0..identities), rng.random_range(0..identities));
        if a != b {
            let (ca, cb) = (&data.centres[a * DIMS..(a + 1) * DIMS], &data.centres[b * DIMS..(b + 1) * DIMS]);
            centres.push(f64::from(faceplate_index::dot(ca, cb)));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let sd = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    (mean(&same), sd(&same), mean(&different), mean(&centres))
}

/// Queries for a set of `n` rows: new photos of enrolled identities (mated) and of strangers; then the real
/// query (obama3), if any. Returns row-major vectors and, for each synthetic mated query, its identity.
fn make_queries(data: &Dataset, n: usize, count: usize, seed: u64) -> (Vec<f32>, Vec<Option<u32>>) {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let shared = {
        let mut base = StdRng::seed_from_u64(seed);
        random_unit(&mut base)
    };
    let synthetic_rows = n.saturating_sub(data.real.len());
    let enrolled = data.first_row.partition_point(|&first| first < synthetic_rows);
    let mut vectors = Vec::with_capacity((count + 1) * DIMS);
    let mut mated = Vec::with_capacity(count + 1);
    for _ in 0..count {
        if enrolled > 0 && rng.random_bool(MATED_FRACTION) {
            let identity = rng.random_range(0..enrolled);
            vectors.extend_from_slice(&photo_of(&mut rng, &data.centres[identity * DIMS..(identity + 1) * DIMS]));
            mated.push(Some(identity as u32));
        } else {
            let stranger = identity_centre(&mut rng, &shared);
            vectors.extend_from_slice(&photo_of(&mut rng, &stranger));
            mated.push(None);
        }
    }
    if let Some(real) = &data.real_query {
        vectors.extend_from_slice(real);
        mated.push(None);
    }
    (vectors, mated)
}

/// (photo, embedding) of each enrolled real face.
type RealFaces = Vec<(&'static str, Vec<f32>)>;

/// One client's run: start, end, (query, latency ms, keys) per query.
type ClientRun = (Instant, Instant, Vec<(usize, f64, Vec<u64>)>);

/// The real SFace embeddings of the test photos, when the models are there. obama3's largest face is kept apart
/// as a query. Returns (faces, query, note).
fn real_embeddings() -> (RealFaces, Option<Vec<f32>>, String) {
    const PHOTOS: [&str; 11] = [
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "biden.jpg",
        "astronaut.png",
        "sample1.jpg",
        "sample2.jpg",
        "sample3.jpg",
        "sample4.jpg",
        "sample5.jpg",
        "sample6.jpg",
    ];
    let dir = faceplate_engine::default_models_dir();
    let paths = faceplate_engine::ModelPaths::in_dir(&dir);
    if ![&paths.runtime_library, &paths.detector, &paths.embedder].iter().all(|p| p.is_file()) {
        return (
            Vec::new(),
            None,
            format!("no models in {} (scripts/fetch-models.sh): real faces skipped", dir.display()),
        );
    }
    let settings = faceplate_engine::EngineSettings {
        models: paths,
        workers: 2,
        queue_capacity: 16,
        detector: faceplate_engine::DetectorSettings::default(),
        image_limits: faceplate_engine::ImageLimits::default(),
        max_embedded_faces: 5,
    };
    let result = (|| -> Res<(RealFaces, Option<Vec<f32>>)> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let engine = faceplate_engine::Engine::start(settings)?;
        let mut faces = Vec::new();
        let mut query = None;
        for photo in PHOTOS {
            let bytes = std::fs::read(dir.join("testdata").join(photo))?;
            let analysis = runtime.block_on(engine.analyze(bytes))?;
            // Faces come sorted by area, largest first.
            for (i, embedding) in analysis.faces.iter().filter_map(|f| f.embedding).enumerate() {
                if photo == "obama3.jpg" {
                    if i == 0 {
                        query = Some(embedding.to_vec());
                    }
                } else {
                    faces.push((photo, embedding.to_vec()));
                }
            }
        }
        Ok((faces, query))
    })();
    match result {
        Ok((faces, query)) => {
            let note = format!("{} real faces from {}/testdata enrolled in every set", faces.len(), dir.display());
            (faces, query, note)
        }
        Err(e) => (Vec::new(), None, format!("real faces skipped: {e}")),
    }
}

// ------------------------------------------------------------------------------------------------------------
// Measurement

/// One closed-loop run: client c takes queries c, c + clients, ...; each waits for its answer before the next.
struct Run {
    latencies_ms: Vec<f64>,
    /// Top-k keys per query (None: not run, when a time budget cut the run short).
    results: Vec<Option<Vec<u64>>>,
    wall_s: f64,
}

impl Run {
    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }

    fn qps(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.wall_s
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn closed_loop<F>(queries: &[f32], clients: usize, budget: Option<Duration>, warmup: usize, search: F) -> Res<Run>
where
    F: Fn(&[f32]) -> Res<Vec<u64>> + Sync,
{
    let count = queries.len() / DIMS;
    let query = |i: usize| &queries[i * DIMS..(i + 1) * DIMS];
    for i in 0..warmup.min(count) {
        search(query(i))?;
    }
    let barrier = Barrier::new(clients);
    let outcomes: Vec<Res<ClientRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (barrier, search) = (&barrier, &search);
                scope.spawn(move || -> Res<ClientRun> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut done = Vec::new();
                    for i in (c..count).step_by(clients) {
                        if budget.is_some_and(|b| done.len() >= 50 && start.elapsed() > b) {
                            break;
                        }
                        let begin = Instant::now();
                        let keys = search(query(i))?;
                        done.push((i, begin.elapsed().as_secs_f64() * 1e3, keys));
                    }
                    Ok((start, Instant::now(), done))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("client thread panicked".into()))).collect()
    });
    let mut run = Run { latencies_ms: Vec::new(), results: vec![None; count], wall_s: 0.0 };
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for outcome in outcomes {
        let (start, end, done) = outcome?;
        first = Some(first.map_or(start, |f| f.min(start)));
        last = Some(last.map_or(end, |l| l.max(end)));
        for (i, ms, keys) in done {
            run.latencies_ms.push(ms);
            run.results[i] = Some(keys);
        }
    }
    if let (Some(first), Some(last)) = (first, last) {
        run.wall_s = (last - first).as_secs_f64();
    }
    Ok(run)
}

/// Recall of `results` against `truth`, over the queries both have: mean recall@1, recall@10, and recall@1 of the
/// mated queries alone (`mated[i]`: query i is a new photo of an enrolled identity).
fn recall(results: &[Option<Vec<u64>>], truth: &[Vec<u64>], mated: &[bool]) -> Recall {
    let (mut at1, mut at10, mut n, mut mated_at1, mut mated_n) = (0.0, 0.0, 0usize, 0.0, 0usize);
    for ((got, want), &is_mated) in results.iter().zip(truth).zip(mated) {
        let Some(got) = got else { continue };
        if want.is_empty() {
            continue;
        }
        n += 1;
        let hit = f64::from(u8::from(got.first() == want.first()));
        at1 += hit;
        if is_mated {
            mated_at1 += hit;
            mated_n += 1;
        }
        let want10: HashSet<u64> = want.iter().take(K).copied().collect();
        at10 += got.iter().take(K).filter(|k| want10.contains(k)).count() as f64 / want10.len() as f64;
    }
    Recall { at1: at1 / n.max(1) as f64, at10: at10 / n.max(1) as f64, mated_at1: mated_at1 / mated_n.max(1) as f64 }
}

#[derive(Clone, Copy)]
struct Recall {
    at1: f64,
    at10: f64,
    mated_at1: f64,
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn keys_of(results: Vec<(u64, f32)>) -> Vec<u64> {
    results.into_iter().map(|(k, _)| k).collect()
}

// ------------------------------------------------------------------------------------------------------------
// Report rows

/// One search measurement.
struct SearchRow {
    size: usize,
    system: String,
    clients: usize,
    queries: usize,
    p50: f64,
    p99: f64,
    qps: f64,
    recall: Option<Recall>,
    ef: Option<usize>,
}

/// One build / snapshot measurement.
struct BuildRow {
    size: usize,
    system: String,
    build_s: f64,
    memory_bytes: Option<usize>,
    rss_delta: usize,
    save_s: Option<f64>,
    load_s: Option<f64>,
    file_bytes: Option<u64>,
}

/// Exact top-k keys per query, and which queries are mated (a new photo of an enrolled face, real or synthetic).
struct Truth {
    keys: Vec<Vec<u64>>,
    mated: Vec<bool>,
}

struct SizeReport {
    size: usize,
    searches: Vec<SearchRow>,
    builds: Vec<BuildRow>,
    identification: f64,
    real_check: Option<String>,
    faiss_versions: Option<Value>,
}

fn search_row(size: usize, system: &str, clients: usize, run: &Run, truth: &Truth) -> SearchRow {
    SearchRow {
        size,
        system: system.into(),
        clients,
        queries: run.latencies_ms.len(),
        p50: run.percentile(50.0),
        p99: run.percentile(99.0),
        qps: run.qps(),
        recall: Some(recall(&run.results, &truth.keys, &truth.mated)),
        ef: None,
    }
}

// ------------------------------------------------------------------------------------------------------------
// One size

fn measure_size(args: &Args, data: &Dataset, n: usize, peer: Option<&Peer>) -> Res<SizeReport> {
    let default = args.config.clone();
    let (queries, mated) = make_queries(data, n, args.queries, args.seed);
    let items: Vec<(u64, &[f32])> = (0..n).map(|row| (row as u64, data.row(row))).collect();
    let mut report = SizeReport {
        size: n,
        searches: Vec::new(),
        builds: Vec::new(),
        identification: 0.0,
        real_check: None,
        faiss_versions: None,
    };
    let scratch = tempfile::tempdir()?;

    // Ours, exact: a flat index whatever the size.
    eprintln!("[bench] {n}: ours exact (flat scan)");
    let rss0 = rss_bytes();
    let started = Instant::now();
    let flat = FaceIndex::new(IndexConfig { exact_below: usize::MAX, ..default.clone() })?;
    flat.add(&items)?;
    let build_s = started.elapsed().as_secs_f64();
    let (memory, rss_delta) = (flat.memory_bytes(), rss_bytes().saturating_sub(rss0));
    let search_flat = |q: &[f32]| -> Res<Vec<u64>> { Ok(keys_of(flat.exact_search(q, K)?)) };
    // The two-client run covers every query: it is the ground truth.
    let exact2 = closed_loop(&queries, 2, None, 20, search_flat)?;
    let truth = Truth {
        keys: exact2.results.iter().map(|r| r.clone().unwrap_or_default()).collect(),
        mated: mated.iter().enumerate().map(|(i, m)| m.is_some() || i == args.queries).collect(),
    };
    let exact1 = closed_loop(&queries, 1, Some(args.exact_budget), 20, search_flat)?;
    report.searches.push(search_row(n, "ours exact (flat scan)", 1, &exact1, &truth));
    report.searches.push(search_row(n, "ours exact (flat scan)", 2, &exact2, &truth));
    let (save_s, load_s, file_bytes) = snapshot(&flat, &scratch.path().join("flat.idx"), &queries, &default)?;
    report.builds.push(BuildRow {
        size: n,
        system: "ours exact (flat)".into(),
        build_s,
        memory_bytes: Some(memory),
        rss_delta,
        save_s: Some(save_s),
        load_s: Some(load_s),
        file_bytes: Some(file_bytes),
    });
    drop(flat);

    // Sanity of the data: a mated query's exact best match is a photo of the same identity.
    let offset = data.real.len();
    let (mut right, mut total) = (0usize, 0usize);
    for (best, identity) in truth.keys.iter().zip(&mated) {
        let (Some(&best), Some(identity)) = (best.first(), identity) else { continue };
        total += 1;
        let row = (best as usize).checked_sub(offset);
        right += usize::from(row.and_then(|r| data.identity_of.get(r)) == Some(identity));
    }
    report.identification = right as f64 / total.max(1) as f64;

    // Ours, HNSW from the first vector (exact_below 0, so that 10k gets a graph too): a bulk add into the graph,
    // in chunks inserted on all cores.
    eprintln!("[bench] {n}: ours HNSW (usearch), build");
    let rss0 = rss_bytes();
    let started = Instant::now();
    let hnsw = FaceIndex::new(IndexConfig { exact_below: 0, ..default.clone() })?;
    hnsw.add(&items)?;
    let build_s = started.elapsed().as_secs_f64();
    let (memory, rss_delta) = (hnsw.memory_bytes(), rss_bytes().saturating_sub(rss0));
    let search_hnsw = |q: &[f32]| -> Res<Vec<u64>> { Ok(keys_of(hnsw.search(q, K)?)) };
    for &ef in &args.efs {
        eprintln!("[bench] {n}: ours HNSW efSearch {ef}");
        hnsw.set_expansion_search(ef);
        for clients in [1, 2] {
            let run = closed_loop(&queries, clients, None, 100, search_hnsw)?;
            let mut row = search_row(n, "ours HNSW (usearch)", clients, &run, &truth);
            row.ef = Some(ef);
            report.searches.push(row);
        }
    }
    hnsw.set_expansion_search(default.expansion_search);
    if let Some(q) = data.real_query.as_ref() {
        let best = hnsw.search(q, 1)?;
        let exact = hnsw.exact_search(q, 1)?;
        let name = |r: &[(u64, f32)]| {
            r.first().map_or("nothing".to_string(), |(k, s)| match data.real.get(*k as usize) {
                Some(face) => format!("{} (cosine {s:.3})", face.photo),
                None => format!("synthetic face {k} (cosine {s:.3})"),
            })
        };
        report.real_check = Some(format!("obama3.jpg -> HNSW: {}, exact: {}", name(&best), name(&exact)));
    }
    eprintln!("[bench] {n}: ours exact over the HNSW graph's vectors (usearch exact search)");
    let search_graph_exact = |q: &[f32]| -> Res<Vec<u64>> { Ok(keys_of(hnsw.exact_search(q, K)?)) };
    let run = closed_loop(&queries, 1, Some(args.exact_budget), 20, search_graph_exact)?;
    report.searches.push(search_row(n, "ours exact (usearch brute force)", 1, &run, &truth));
    let (save_s, load_s, file_bytes) = snapshot(&hnsw, &scratch.path().join("hnsw.idx"), &queries, &default)?;
    report.builds.push(BuildRow {
        size: n,
        system: format!("ours HNSW (M {}, efC {})", default.connectivity, default.expansion_add),
        build_s,
        memory_bytes: Some(memory),
        rss_delta,
        save_s: Some(save_s),
        load_s: Some(load_s),
        file_bytes: Some(file_bytes),
    });
    drop(hnsw);

    if let Some(peer) = peer {
        eprintln!("[bench] {n}: faiss");
        let out = peer.run(scratch.path(), data, n, &queries, args)?;
        faiss_rows(&mut report, &out, &truth)?;
    }
    Ok(report)
}

/// Save, then load; checks the loaded index answers like the original. Returns (save s, load s, file bytes).
fn snapshot(index: &FaceIndex, path: &Path, queries: &[f32], config: &IndexConfig) -> Res<(f64, f64, u64)> {
    let started = Instant::now();
    index.save(path, br#"{"bench":true}"#)?;
    let save_s = started.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(path)?.len();
    let started = Instant::now();
    let config = IndexConfig { exact_below: index.config().exact_below, ..config.clone() };
    let (loaded, _) = FaceIndex::load(path, config)?;
    let load_s = started.elapsed().as_secs_f64();
    loaded.set_expansion_search(index.config().expansion_search);
    for q in queries.chunks_exact(DIMS).take(20) {
        if loaded.search(q, K)? != index.search(q, K)? {
            return Err("the loaded snapshot answers differently".into());
        }
    }
    std::fs::remove_file(path)?;
    Ok((save_s, load_s, file_bytes))
}

// ------------------------------------------------------------------------------------------------------------
// The faiss peer

struct Peer {
    python: PathBuf,
    script: PathBuf,
}

impl Peer {
    fn prepare(args: &Args, scratch: &Path) -> Res<Peer> {
        let bin = args.venv.join("bin/python");
        if !bin.is_file() {
            eprintln!(
                "[bench] creating the faiss peer's environment {} ({} -m venv)",
                args.venv.display(),
                args.python
            );
            run_quietly(Command::new(&args.python).args(["-m", "venv"]).arg(&args.venv), "python -m venv")?;
        }
        let stamp = args.venv.join(".faceplate-search-bench-requirements");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(REQUIREMENTS) {
            eprintln!("[bench] installing bench/python/faiss-requirements.txt into {}", args.venv.display());
            let requirements = args.venv.join("faiss-requirements.txt");
            std::fs::write(&requirements, REQUIREMENTS)?;
            run_quietly(
                Command::new(&bin)
                    .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r"])
                    .arg(&requirements),
                "pip install",
            )?;
            std::fs::write(&stamp, REQUIREMENTS)?;
        }
        let script = scratch.join("faiss_peer.py");
        std::fs::write(&script, PEER_PY)?;
        Ok(Peer { python: bin, script })
    }

    fn run(&self, dir: &Path, data: &Dataset, n: usize, queries: &[f32], args: &Args) -> Res<Value> {
        write_f32(&dir.join("base.f32"), &data.vectors[..n * DIMS])?;
        write_f32(&dir.join("queries.f32"), queries)?;
        let mut keys = std::io::BufWriter::new(std::fs::File::create(dir.join("keys.u64"))?);
        for key in 0..n as u64 {
            keys.write_all(&key.to_le_bytes())?;
        }
        keys.flush()?;
        drop(keys);
        let default = &args.config;
        let efs: Vec<String> = args.efs.iter().map(usize::to_string).collect();
        let build_threads = std::thread::available_parallelism().map_or(1, usize::from);
        let output = Command::new(&self.python)
            .arg(&self.script)
            .arg("--data")
            .arg(dir)
            .args(["--dims", &DIMS.to_string(), "--k", &K.to_string()])
            .args(["--m", &default.connectivity.to_string()])
            .args(["--ef-construction", &default.expansion_add.to_string()])
            .args(["--ef-search", &efs.join(",")])
            .args(["--clients", "1,2", "--build-threads", &build_threads.to_string()])
            .args(["--exact-budget", &args.exact_budget.as_secs().to_string()])
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .stderr(Stdio::inherit())
            .output()?;
        for file in ["base.f32", "queries.f32", "keys.u64"] {
            std::fs::remove_file(dir.join(file))?;
        }
        if !output.status.success() {
            return Err(format!("the faiss peer failed ({})", output.status).into());
        }
        Ok(serde_json::from_slice(&output.stdout).map_err(|e| format!("the faiss peer's output: {e}"))?)
    }
}

fn write_f32(path: &Path, values: &[f32]) -> Res<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for v in values {
        out.write_all(&v.to_le_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn run_quietly(command: &mut Command, what: &str) -> Res<()> {
    let status = command.stdout(Stdio::from(std::io::stderr())).status().map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})").into());
    }
    Ok(())
}

fn faiss_rows(report: &mut SizeReport, out: &Value, truth: &Truth) -> Res<()> {
    let n = report.size;
    let results = |run: &Value| -> Vec<Option<Vec<u64>>> {
        run["results"]
            .as_array()
            .map(|rows| {
                rows.iter().map(|r| r.as_array().map(|ids| ids.iter().filter_map(Value::as_u64).collect())).collect()
            })
            .unwrap_or_default()
    };
    let row = |system: &str, run: &Value| -> SearchRow {
        let res = results(run);
        SearchRow {
            size: n,
            system: system.into(),
            clients: run["clients"].as_u64().unwrap_or(0) as usize,
            queries: run["queries"].as_u64().unwrap_or(0) as usize,
            p50: run["p50_ms"].as_f64().unwrap_or(f64::NAN),
            p99: run["p99_ms"].as_f64().unwrap_or(f64::NAN),
            qps: run["qps"].as_f64().unwrap_or(f64::NAN),
            recall: (!res.is_empty()).then(|| recall(&res, &truth.keys, &truth.mated)),
            ef: run["ef"].as_u64().map(|e| e as usize),
        }
    };
    let runs = out["flat"]["runs"].as_array().ok_or("faiss peer: no flat runs")?;
    let mut flat_rows: Vec<SearchRow> = runs.iter().map(|r| row("faiss IndexFlatIP", r)).collect();
    flat_rows.sort_by_key(|r| r.clients);
    // The exact recall comes from the run that covered every query (2 clients); show it on both.
    let full = flat_rows.iter().find_map(|r| r.recall);
    for r in &mut flat_rows {
        r.recall = r.recall.or(full);
    }
    report.searches.extend(flat_rows);
    let runs = out["hnsw"]["runs"].as_array().ok_or("faiss peer: no HNSW runs")?;
    let mut hnsw_rows: Vec<SearchRow> = runs.iter().map(|r| row("faiss IndexHNSWFlat", r)).collect();
    // Recall from the one-client run of the same efSearch.
    let by_ef: Vec<(Option<usize>, Option<Recall>)> =
        hnsw_rows.iter().filter(|r| r.recall.is_some()).map(|r| (r.ef, r.recall)).collect();
    for r in &mut hnsw_rows {
        if r.recall.is_none() {
            r.recall = by_ef.iter().find(|(ef, _)| *ef == r.ef).and_then(|(_, rec)| *rec);
        }
    }
    report.searches.extend(hnsw_rows);
    for key in ["flat", "hnsw"] {
        let part = &out[key];
        let system = match key {
            "flat" => "faiss IndexFlatIP".to_string(),
            _ => format!("faiss IndexHNSWFlat (M {}, efC {})", part["m"], part["ef_construction"]),
        };
        report.builds.push(BuildRow {
            size: n,
            system,
            build_s: part["build_s"].as_f64().unwrap_or(f64::NAN),
            memory_bytes: None,
            rss_delta: part["rss_delta_bytes"].as_i64().unwrap_or(0).max(0) as usize,
            save_s: part["snapshot"]["save_s"].as_f64(),
            load_s: part["snapshot"]["load_s"].as_f64(),
            file_bytes: part["snapshot"]["file_bytes"].as_u64(),
        });
    }
    report.faiss_versions = Some(out["versions"].clone());
    Ok(())
}

// ------------------------------------------------------------------------------------------------------------
// Main and report

fn run() -> Res<()> {
    let args = parse_args()?;
    let load_before = load_average();
    let started = Instant::now();
    let (real, real_query, real_note) = real_embeddings();
    let real_stats = real_cosines(&real, real_query.as_deref());
    let max = args.sizes.iter().copied().max().unwrap_or(0);
    eprintln!("[bench] generating {max} face-like embeddings (seed {})", args.seed);
    let t = Instant::now();
    let data = generate(max, args.seed, real, real_query);
    eprintln!("[bench] generated in {:.1} s", t.elapsed().as_secs_f64());
    let stats = cosine_stats(&data, args.seed);
    let scratch = tempfile::tempdir()?;
    let peer = if args.faiss { Some(Peer::prepare(&args, scratch.path())?) } else { None };
    let mut reports = Vec::new();
    for &n in &args.sizes {
        if n > data.rows() {
            return Err(format!("size {n} is larger than the data set").into());
        }
        reports.push(measure_size(&args, &data, n, peer.as_ref())?);
    }
    print_report(&args, &reports, stats, &real_note, real_stats.as_deref(), &load_before, started.elapsed());
    Ok(())
}

/// Same-person (the Obama photos) and different-person cosines of the real faces.
fn real_cosines(real: &[(&'static str, Vec<f32>)], query: Option<&[f32]>) -> Option<String> {
    let query = query?;
    let obama: Vec<&Vec<f32>> = real.iter().filter(|(p, _)| p.starts_with("obama")).map(|(_, v)| v).collect();
    // The largest face of obama.jpg and obama2.jpg come first for their photos.
    let firsts: Vec<&Vec<f32>> = ["obama.jpg", "obama2.jpg"]
        .iter()
        .filter_map(|name| real.iter().find(|(p, _)| p == name).map(|(_, v)| v))
        .collect();
    let mut same: Vec<f32> = firsts.iter().map(|v| faceplate_index::dot(query, v)).collect();
    if firsts.len() == 2 {
        same.push(faceplate_index::dot(firsts[0], firsts[1]));
    }
    let others: Vec<&Vec<f32>> = real.iter().filter(|(p, _)| !p.starts_with("obama")).map(|(_, v)| v).collect();
    let mut different = Vec::new();
    for (i, a) in others.iter().enumerate() {
        for b in &others[i + 1..] {
            different.push(faceplate_index::dot(a, b));
        }
        for o in &obama {
            different.push(faceplate_index::dot(a, o));
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    Some(format!(
        "real SFace embeddings of the test photos: same person (3 Obama photos) mean cosine {:.3} ({} pairs), \
         different people mean {:.3} ({} pairs; the group photos contain different people, assumed distinct)",
        mean(&same),
        same.len(),
        mean(&different),
        different.len()
    ))
}

fn fmt_recall(r: Option<Recall>) -> (String, String, String) {
    match r {
        Some(r) => (format!("{:.4}", r.at1), format!("{:.4}", r.mated_at1), format!("{:.4}", r.at10)),
        None => ("-".into(), "-".into(), "-".into()),
    }
}

fn print_report(
    args: &Args,
    reports: &[SizeReport],
    stats: (f64, f64, f64, f64),
    real_note: &str,
    real_stats: Option<&str>,
    load_before: &str,
    elapsed: Duration,
) {
    let default = &args.config;
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let faiss_versions = reports.iter().find_map(|r| r.faiss_versions.clone());
    println!("### FaceSet search: faceplate-index vs faiss\n");
    println!(
        "Machine: {cpus} CPUs ({cpu_model}), SIMD {}; load average {load_before} before, {} after; {:.0} s in all. \
         Data: seed {}, {} queries per size ({:.0}% new photos of enrolled identities, the rest strangers).",
        faceplate_index::simd_capabilities(),
        load_average(),
        elapsed.as_secs_f64(),
        args.seed,
        args.queries,
        MATED_FRACTION * 100.0
    );
    println!(
        "Synthetic embeddings: same identity mean cosine {:.3} (sd {:.3}), different identities {:.3}, identity \
         centres {:.3}.",
        stats.0, stats.1, stats.2, stats.3
    );
    println!("{real_note}.");
    if let Some(real) = real_stats {
        println!("{real}.");
    }
    match &faiss_versions {
        Some(v) => println!(
            "Peer: faiss-cpu {} (numpy {}, Python {}), one query per `search` call, OpenMP 1 thread while searching, \
             client threads = Python threads (faiss releases the GIL); build with {cpus} OpenMP threads.",
            v["faiss"].as_str().unwrap_or("?"),
            v["numpy"].as_str().unwrap_or("?"),
            v["python"].as_str().unwrap_or("?")
        ),
        None => println!("Peer: faiss skipped (--no-faiss)."),
    }
    println!(
        "Ours: IndexConfig (M {}, efConstruction {}, efSearch {} unless the row says otherwise, f32), \
         build on {cpus} threads. Latency = one `search(query, k = {K})` call, closed loop per client thread; \
         p50/p99 nearest-rank. Recall against the exact flat scan.\n",
        default.connectivity, default.expansion_add, default.expansion_search
    );

    println!("#### Search\n");
    println!(
        "| faces | system | efSearch | clients | queries | p50 ms | p99 ms | QPS | recall@1 | recall@1 mated | recall@10 |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for report in reports {
        for r in &report.searches {
            let (r1, r1m, r10) = fmt_recall(r.recall);
            println!(
                "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.0} | {r1} | {r1m} | {r10} |",
                r.size,
                r.system,
                r.ef.map_or("-".into(), |e| e.to_string()),
                r.clients,
                r.queries,
                r.p50,
                r.p99,
                r.qps
            );
        }
    }

    println!("\n#### Build, memory, snapshots\n");
    println!(
        "| faces | system | build s | vectors/s | memory_bytes MB | bytes/face | RSS delta MB | save s | load s | file MB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mb = |b: usize| b as f64 / 1048576.0;
    for report in reports {
        for b in &report.builds {
            let per_face = b.memory_bytes.unwrap_or(b.rss_delta) as f64 / b.size as f64;
            println!(
                "| {} | {} | {:.2} | {:.0} | {} | {:.0}{} | {:.0} | {} | {} | {} |",
                b.size,
                b.system,
                b.build_s,
                b.size as f64 / b.build_s,
                b.memory_bytes.map_or("-".into(), |m| format!("{:.1}", mb(m))),
                per_face,
                if b.memory_bytes.is_none() { " (RSS)" } else { "" },
                mb(b.rss_delta),
                b.save_s.map_or("-".into(), |s| format!("{s:.3}")),
                b.load_s.map_or("-".into(), |s| format!("{s:.3}")),
                b.file_bytes.map_or("-".into(), |f| format!("{:.1}", f as f64 / 1048576.0)),
            );
        }
    }

    println!("\n#### Data checks\n");
    for report in reports {
        println!(
            "- {} faces: exact rank-1 identification of mated queries {:.4}{}",
            report.size,
            report.identification,
            report.real_check.as_ref().map_or(String::new(), |r| format!("; {r}"))
        );
    }

    println!("\n#### Ours / faiss HNSW at equal recall\n");
    println!(
        "For each faiss efSearch: faiss's recall@10 and latency, and ours at the same recall@10 (linear \
         interpolation between our efSearch points; `n/a` when it lies outside our measured range). Ratio < 1: ours \
         is faster.\n"
    );
    println!(
        "| faces | clients | faiss efSearch | recall@10 | faiss p50 | ours p50 | p50 ratio | faiss p99 | ours p99 | p99 ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst_ratio: Option<f64> = None;
    for report in reports {
        for clients in [1, 2] {
            let ours: Vec<&SearchRow> = report
                .searches
                .iter()
                .filter(|r| r.system.starts_with("ours HNSW") && r.clients == clients && r.recall.is_some())
                .collect();
            let faiss: Vec<&SearchRow> = report
                .searches
                .iter()
                .filter(|r| r.system.starts_with("faiss IndexHNSW") && r.clients == clients && r.recall.is_some())
                .collect();
            for f in faiss {
                let Some(target) = f.recall.map(|r| r.at10) else { continue };
                let ours50 = interpolate(&ours, target, |r| r.p50);
                let ours99 = interpolate(&ours, target, |r| r.p99);
                let ratio = |o: Option<f64>, f: f64| o.map_or("n/a".to_string(), |o| format!("{:.2}", o / f));
                if let Some(o) = ours50 {
                    worst_ratio = Some(worst_ratio.map_or(o / f.p50, |w: f64| w.max(o / f.p50)));
                }
                println!(
                    "| {} | {clients} | {} | {target:.4} | {:.3} | {} | {} | {:.3} | {} | {} |",
                    report.size,
                    f.ef.unwrap_or(0),
                    f.p50,
                    ours50.map_or("n/a".into(), |o| format!("{o:.3}")),
                    ratio(ours50, f.p50),
                    f.p99,
                    ours99.map_or("n/a".into(), |o| format!("{o:.3}")),
                    ratio(ours99, f.p99),
                );
            }
        }
    }

    println!("\n#### Targets\n");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(report) = reports.iter().find(|r| r.size == 1_000_000) {
        let row = report
            .searches
            .iter()
            .find(|r| r.system.starts_with("ours HNSW") && r.clients == 1 && r.ef == Some(default.expansion_search));
        if let Some(row) = row {
            let r1 = row.recall.map_or(0.0, |r| r.at1);
            let mated = row.recall.map_or(0.0, |r| r.mated_at1);
            println!(
                "- 1M faces, ours HNSW at the default efSearch {}: p99 {:.3} ms (target <= 5), recall@1 {r1:.4} \
                 over all queries, {mated:.4} over mated queries (target >= 0.99): {}",
                default.expansion_search,
                row.p99,
                verdict(row.p99 <= 5.0 && r1 >= 0.99)
            );
        }
        // The cheapest measured efSearch that reaches the recall target, over all queries and over mated ones.
        for (what, pick) in [("all queries", 0usize), ("mated queries", 1)] {
            let best = report
                .searches
                .iter()
                .filter(|r| r.system.starts_with("ours HNSW") && r.clients == 1)
                .filter(|r| r.recall.is_some_and(|rc| if pick == 0 { rc.at1 } else { rc.mated_at1 } >= 0.99))
                .min_by_key(|r| r.ef.unwrap_or(usize::MAX));
            match best {
                Some(r) => println!(
                    "- 1M faces, ours HNSW: the smallest measured efSearch with recall@1 >= 0.99 over {what} is {}: \
                     p50 {:.3} ms, p99 {:.3} ms (target <= 5): {}",
                    r.ef.unwrap_or(0),
                    r.p50,
                    r.p99,
                    verdict(r.p99 <= 5.0)
                ),
                None => {
                    println!("- 1M faces, ours HNSW: no measured efSearch reaches recall@1 >= 0.99 over {what}: MISSED")
                }
            }
        }
    } else {
        println!("- 1M faces: not measured in this run (use the default --sizes)");
    }
    if let Some(report) = reports.iter().find(|r| r.size == 100_000)
        && let Some(row) = report.searches.iter().find(|r| r.system == "ours exact (flat scan)" && r.clients == 1)
    {
        println!(
            "- 100k faces, ours exact: p50 {:.3} ms, p99 {:.3} ms (target <= 10): {}",
            row.p50,
            row.p99,
            verdict(row.p99 <= 10.0)
        );
    }
    match worst_ratio {
        Some(w) => println!(
            "- ours vs faiss HNSW latency (p50) at equal recall: worst ratio {w:.2} (target <= 1.00): {}",
            verdict(w <= 1.0)
        ),
        None => println!("- ours vs faiss HNSW at equal recall: not measured"),
    }
}

/// Our latency at recall@10 `target`, interpolated linearly over our (recall@10, latency) points.
fn interpolate(ours: &[&SearchRow], target: f64, latency: impl Fn(&SearchRow) -> f64) -> Option<f64> {
    let mut points: Vec<(f64, f64)> = ours.iter().filter_map(|r| r.recall.map(|rc| (rc.at10, latency(r)))).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    if let Some(exact) = points.iter().find(|p| (p.0 - target).abs() < 1e-9) {
        return Some(exact.1);
    }
    points.windows(2).find(|w| w[0].0 <= target && target <= w[1].0).map(|w| {
        let f = (target - w[0].0) / (w[1].0 - w[0].0);
        w[0].1 + f * (w[1].1 - w[0].1)
    })
}
