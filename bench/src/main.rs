//! Face-detection benchmark: in one invocation, on the same photos,
//!
//! * (a) the engine in-process (`Engine::analyze`),
//! * (b) the full HTTP path: a real server on localhost, bearer-key auth, multipart upload, engine, face tokens
//!   stored in SQLite, JSON response,
//! * (c) a Python reference (bench/python/peer.py): the same ONNX files on the same onnxruntime version, OpenCV
//!   pre-processing, one process per client,
//!
//! each with 1 and 2 concurrent closed-loop clients. Prints images/s and p50/p99 latency, and the throughput
//! ratios (b)/(c) and (b)/(a). Performance is measured here, never asserted in tests.
//!
//! `cargo run --release -p faceplate-bench -- [--seconds N] [--warmup N] [--clients 1,2] [--quick] [--breakdown]`

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faceplate_engine::{Engine, EngineSettings, ModelPaths};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

macro_rules! fail {
    ($($arg:tt)*) => { return Err(format!($($arg)*).into()) };
}

/// The photos fetched by scripts/fetch-models.sh (models/manifest.toml), in round-robin order.
const IMAGES: [&str; 11] = [
    "astronaut.png",
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "sample1.jpg",
    "sample2.jpg",
    "sample3.jpg",
    "sample4.jpg",
    "sample5.jpg",
    "sample6.jpg",
];

const PEER_PY: &str = include_str!("../python/peer.py");
const REQUIREMENTS: &str = include_str!("../python/requirements.txt");
const FETCH_FIX: &str = "run scripts/fetch-models.sh";
const MAX_EMBEDDED_FACES: usize = 5;

struct Args {
    seconds: f64,
    warmup: f64,
    clients: Vec<usize>,
    breakdown: bool,
    python_threads: bool,
    venv: Option<PathBuf>,
    python: String,
}

const USAGE: &str = "\
usage: faceplate-bench [--seconds N] [--warmup N] [--clients 1,2] [--quick] [--breakdown] [--python-threads]
                       [--venv DIR] [--python PYTHON]

  --seconds N       measured seconds per system and client count (default 10)
  --warmup N        warm-up seconds per client, after one pass over every image (default 3)
  --clients LIST    concurrent clients to measure (default 1,2); inference workers = the largest
  --quick           --seconds 3 --warmup 1
  --breakdown       also time each stage (decode, letterbox, detector, align, embed) single-threaded
  --python-threads  Python clients as threads (own sessions each) instead of processes
  --venv DIR        Python environment for the peer (default <models dir>/bench-venv; created if missing)
  --python PYTHON   interpreter that creates the environment (default python3)

Models, runtime and photos come from the models cache (FACEPLATE_MODELS_DIR, else ~/.cache/faceplate/models).";

fn parse_args() -> Res<Args> {
    let mut args = Args {
        seconds: 10.0,
        warmup: 3.0,
        clients: vec![1, 2],
        breakdown: false,
        python_threads: false,
        venv: None,
        python: "python3".into(),
    };
    let mut it = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> Res<f64> {
        match value.as_deref().map(str::parse::<f64>) {
            Some(Ok(v)) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(format!("{flag} needs a number of seconds\n{USAGE}").into()),
        }
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => args.seconds = number("--seconds", it.next())?,
            "--warmup" => args.warmup = number("--warmup", it.next())?,
            "--quick" => (args.seconds, args.warmup) = (3.0, 1.0),
            "--breakdown" => args.breakdown = true,
            "--python-threads" => args.python_threads = true,
            "--venv" => args.venv = it.next().map(PathBuf::from),
            "--python" => args.python = it.next().ok_or("--python needs an interpreter")?,
            "--clients" => {
                let list = it.next().unwrap_or_default();
                args.clients = list.split(',').map(|c| c.trim().parse::<usize>()).collect::<Result<_, _>>()?;
                if args.clients.is_empty() || args.clients.contains(&0) {
                    fail!("--clients needs positive numbers, e.g. 1,2");
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.seconds <= 0.0 {
        fail!("--seconds must be positive");
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("faceplate-bench: {e}");
        std::process::exit(1);
    }
}

/// One photo, read once into memory.
struct Photo {
    name: &'static str,
    bytes: Vec<u8>,
}

/// What one system did at one client count.
struct Measurement {
    system: &'static str,
    clients: usize,
    requests: usize,
    elapsed: f64,
    latencies_ms: Vec<f64>,
}

impl Measurement {
    fn images_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed
    }

    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

async fn run() -> Res<()> {
    let args = parse_args()?;
    let models_dir = faceplate_api::config::EngineConfig::default().models_dir();
    let paths = ModelPaths::in_dir(&models_dir);
    for file in [&paths.runtime_library, &paths.detector, &paths.embedder] {
        if !file.is_file() {
            fail!("{} is missing: {FETCH_FIX}", file.display());
        }
    }
    let mut photos = Vec::new();
    for name in IMAGES {
        let path = models_dir.join("testdata").join(name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}; {FETCH_FIX}", path.display()))?;
        photos.push(Photo { name, bytes });
    }
    let photos = Arc::new(photos);
    let workers = args.clients.iter().copied().max().unwrap_or(1);
    let seconds = Duration::from_secs_f64(args.seconds);
    let warmup = Duration::from_secs_f64(args.warmup);

    let venv = args.venv.clone().unwrap_or_else(|| models_dir.join("bench-venv"));
    let python = python_environment(&args.python, &venv).await?;
    let scratch = faceplate_tests::TestDatabases::create(&["local"]);
    let peer = scratch.dir.path().join("peer.py");
    std::fs::write(&peer, PEER_PY)?;
    let peer_cmd = PeerCommand { python, script: peer, models_dir: models_dir.clone(), threads: args.python_threads };

    let total_kb: usize = photos.iter().map(|p| p.bytes.len()).sum::<usize>() / 1024;
    eprintln!("[bench] {} photos ({total_kb} KiB) from {}", photos.len(), models_dir.join("testdata").display());

    // Correctness first: the three must find the same faces, or the timings compare different work.
    let engine = Arc::new(start_engine(engine_settings(&paths, workers)).await?);
    let engine_check = check_engine(&engine, &photos).await?;
    let server = Server::start(&scratch, &models_dir, workers).await?;
    let http_check = server.check(&photos, &engine_check).await?;
    let peer_check = peer_cmd.check(&photos).await?;

    // For each client count (a), (b), (c) back to back, so that each ratio compares runs close in time. The
    // engine of (a) and the server's are both loaded; the one not measured sits idle, blocked on its queue.
    let load_before = load_average();
    let mut results = Vec::new();
    let mut versions = Value::Null;
    for &clients in &args.clients {
        eprintln!("[bench] (a) engine in-process, {clients} client(s)");
        let in_process = Arc::clone(&engine);
        let call: Call = Arc::new(move |photos: Arc<Photos>, i: usize| {
            let engine = Arc::clone(&in_process);
            Box::pin(async move {
                let analysis = engine.analyze(photos[i].bytes.clone()).await?;
                Ok(analysis.faces.len())
            })
        });
        results.push(closed_loop("(a) engine in-process", clients, &photos, warmup, seconds, call).await?);

        eprintln!("[bench] (b) HTTP + auth + storage, {clients} client(s)");
        let (client, url, token) = (server.client.clone(), server.url("/v1/faces/detect"), server.token.clone());
        let consent = server.consent.clone();
        let call: Call = Arc::new(move |photos: Arc<Photos>, i: usize| {
            let (client, url, token, consent) = (client.clone(), url.clone(), token.clone(), consent.clone());
            Box::pin(async move {
                let part = Part::bytes(photos[i].bytes.clone()).file_name(photos[i].name);
                let form = Form::new().text("consent_id", consent).part("image_file", part);
                let response = client.post(url).bearer_auth(token).multipart(form).send().await?;
                let status = response.status();
                let body: Value = response.json().await?;
                if !status.is_success() {
                    fail!("HTTP {status}: {body}");
                }
                Ok(body["face_num"].as_u64().unwrap_or(0) as usize)
            })
        });
        results.push(closed_loop("(b) HTTP + auth + storage", clients, &photos, warmup, seconds, call).await?);

        eprintln!("[bench] (c) Python reference, {clients} client(s)");
        let (measurement, v) = peer_cmd.measure(&photos, clients, args.warmup, args.seconds).await?;
        versions = v;
        results.push(measurement);
    }
    let load_after = load_average();
    server.stop().await;
    drop(engine);

    let breakdown = if args.breakdown { Some(breakdown(&paths, &photos, &peer_cmd).await?) } else { None };

    let checks = Checks { engine: engine_check, python: peer_check, http: http_check };
    let load = (load_before, load_after);
    report(&args, &photos, workers, &versions, &checks, &results, breakdown.as_ref(), load);
    Ok(())
}

fn engine_settings(paths: &ModelPaths, workers: usize) -> EngineSettings {
    EngineSettings {
        models: paths.clone(),
        workers,
        queue_capacity: 64,
        detector: faceplate_engine::DetectorSettings::default(),
        image_limits: faceplate_engine::ImageLimits::default(),
        max_embedded_faces: MAX_EMBEDDED_FACES,
    }
}

async fn start_engine(settings: EngineSettings) -> Res<Engine> {
    Ok(tokio::task::spawn_blocking(move || Engine::start(settings)).await??)
}

type Photos = Vec<Photo>;
type Call = Arc<dyn Fn(Arc<Photos>, usize) -> Pin<Box<dyn Future<Output = Res<usize>> + Send>> + Send + Sync>;

/// Closed-loop clients: each warms up (every photo once, then `warmup` of round-robin), all start together,
/// then each sends its next photo as soon as the previous answer arrives. Requests started before the deadline
/// count; the run ends when the last of them finishes. Client k starts at photo k*n/clients.
async fn closed_loop(
    system: &'static str,
    clients: usize,
    photos: &Arc<Photos>,
    warmup: Duration,
    seconds: Duration,
    call: Call,
) -> Res<Measurement> {
    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (photos, call, barrier) = (Arc::clone(photos), Arc::clone(&call), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let n = photos.len();
            for i in 0..n {
                call(Arc::clone(&photos), i).await?;
            }
            let first = k * n / clients;
            let warm_until = Instant::now() + warmup;
            let mut i = first;
            while Instant::now() < warm_until {
                call(Arc::clone(&photos), i % n).await?;
                i += 1;
            }
            barrier.wait().await;
            let start = Instant::now();
            let deadline = start + seconds;
            let mut latencies = Vec::new();
            let mut i = first;
            loop {
                let begin = Instant::now();
                if begin >= deadline {
                    break;
                }
                call(Arc::clone(&photos), i % n).await?;
                latencies.push(begin.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            Res::Ok((start, Instant::now(), latencies))
        }));
    }
    let mut runs = Vec::new();
    for task in tasks {
        runs.push(task.await??);
    }
    let start = runs.iter().map(|r| r.0).min().ok_or("no clients")?;
    let end = runs.iter().map(|r| r.1).max().ok_or("no clients")?;
    let latencies_ms: Vec<f64> = runs.into_iter().flat_map(|r| r.2).collect();
    Ok(Measurement {
        system,
        clients,
        requests: latencies_ms.len(),
        elapsed: (end - start).as_secs_f64(),
        latencies_ms,
    })
}

/// Per photo: faces found and the embeddings of those embedded (for the cross-check with the peer).
struct Found {
    faces: usize,
    embeddings: Vec<Vec<f32>>,
}

async fn check_engine(engine: &Engine, photos: &Photos) -> Res<Vec<Found>> {
    let mut found = Vec::new();
    for photo in photos {
        let analysis = engine.analyze(photo.bytes.clone()).await?;
        let embeddings = analysis.faces.iter().filter_map(|f| f.embedding).map(|e| e.to_vec()).collect();
        found.push(Found { faces: analysis.faces.len(), embeddings });
    }
    Ok(found)
}

// ------------------------------------------------------------------------------------------------------------
// (b): a real server

struct Server {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    token: String,
    /// The tenant's consent, named by every detection.
    consent: String,
    /// Stops accepting, lets in-flight requests finish, stops the purger.
    stop: Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>,
}

impl Server {
    /// A server like `faceplate serve`, on a random port, with fresh stores (SQLite unless TEST_BACKEND says
    /// otherwise) and `workers` inference workers; then a tenant and a key with the `face` scope through the
    /// operator API, the tenant having accepted the DPA and recorded a consent.
    async fn start(scratch: &faceplate_tests::TestDatabases, models_dir: &Path, workers: usize) -> Res<Server> {
        let mut toml = format!(
            "data_dir = {:?}\ncontrol_database_url = {:?}\nserver_secret = {:?}\noperator_token = {:?}\n\
             workers = {workers}\nmax_db_connections = 4\n",
            scratch.dir.path().join("data").display().to_string(),
            scratch.control_url,
            faceplate_tests::SERVER_SECRET,
            faceplate_tests::OPERATOR_TOKEN,
        );
        toml.push_str(&format!("[engine]\nmodels_dir = {:?}\nworkers = {workers}\n", models_dir.display().to_string()));
        for (name, url) in &scratch.region_urls {
            toml.push_str(&format!("[regions.{name}]\ndatabase_url = {url:?}\n"));
        }
        // Limits stay on (they are part of the path measured), on a plan roomy enough not to refuse the load.
        toml.push_str("[limits]\ndefault_plan = \"enterprise\"\n");
        let path = scratch.dir.path().join("bench.toml");
        std::fs::write(&path, toml)?;
        let config = faceplate_api::config::Config::load(Some(&path))?;
        if config.engine.workers != Some(workers) {
            fail!("FACEPLATE_ENGINE__WORKERS overrides the bench's engine.workers = {workers}; unset it");
        }
        let server = faceplate_api::server::start(&config, "127.0.0.1:0".parse()?).await?;
        let (addr, handle, background) = (server.addr, server.handle.clone(), server.background);
        tokio::spawn(server.run);
        let stop = Box::new(move || -> Pin<Box<dyn Future<Output = ()> + Send>> {
            Box::pin(async move {
                handle.stop(true).await;
                background.abort();
            })
        });
        let client = reqwest::Client::new();
        let admin = |path: &str, body: Value| {
            client.post(format!("http://{addr}{path}")).bearer_auth(faceplate_tests::OPERATOR_TOKEN).json(&body).send()
        };
        let tenant: Value =
            admin("/admin/v1/tenants", json!({"name": "bench"})).await?.error_for_status()?.json().await?;
        let tenant = tenant["tenant"]["id"].as_str().ok_or("no tenant id")?.to_string();
        let key: Value =
            admin(&format!("/admin/v1/tenants/{tenant}/keys"), json!({"name": "bench", "scopes": ["face"]}))
                .await?
                .error_for_status()?
                .json()
                .await?;
        let token = key["token"].as_str().ok_or("no key token")?.to_string();
        let consent = faceplate_tests::allow_biometrics(&client, &format!("http://{addr}"), &tenant).await;
        Ok(Server { addr, client, token, consent, stop })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Faces per photo over HTTP (face tokens included), compared with the engine's.
    async fn check(&self, photos: &Photos, engine: &[Found]) -> Res<Vec<usize>> {
        let mut counts = Vec::new();
        for (photo, found) in photos.iter().zip(engine) {
            let part = Part::bytes(photo.bytes.clone()).file_name(photo.name);
            let body: Value = self
                .client
                .post(self.url("/v1/faces/detect"))
                .bearer_auth(&self.token)
                .multipart(Form::new().text("consent_id", self.consent.clone()).part("image_file", part))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let faces = body["faces"].as_array().ok_or("no faces array")?;
            let tokens = faces.iter().filter(|f| f["face_token"].is_string()).count();
            if faces.len() != found.faces || tokens != found.faces.min(MAX_EMBEDDED_FACES) {
                fail!("{}: HTTP found {} faces ({tokens} tokens), the engine {}", photo.name, faces.len(), found.faces);
            }
            counts.push(faces.len());
        }
        Ok(counts)
    }

    async fn stop(self) {
        (self.stop)().await;
    }
}

// ------------------------------------------------------------------------------------------------------------
// (c): the Python reference

/// The peer's virtual environment with the pinned packages of bench/python/requirements.txt, created or
/// brought up to date (a stamp file records what was installed).
async fn python_environment(python: &str, venv: &Path) -> Res<PathBuf> {
    let bin = venv.join("bin/python");
    if !bin.is_file() {
        eprintln!("[bench] creating the Python peer's environment {} ({python} -m venv)", venv.display());
        let mut venv_cmd = tokio::process::Command::new(python);
        venv_cmd.args(["-m", "venv"]).arg(venv);
        run_quietly(venv_cmd, &format!("{python} -m venv")).await?;
    }
    let stamp = venv.join(".faceplate-bench-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(REQUIREMENTS) {
        eprintln!("[bench] installing the pinned packages of bench/python/requirements.txt into {}", venv.display());
        let requirements = venv.join("faceplate-bench-requirements.txt");
        std::fs::write(&requirements, REQUIREMENTS)?;
        let mut pip = tokio::process::Command::new(&bin);
        pip.args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r"]).arg(&requirements);
        run_quietly(pip, "pip install").await?;
        std::fs::write(&stamp, REQUIREMENTS)?;
    }
    Ok(bin)
}

/// Runs a set-up command with its output on stderr; fails with its name.
async fn run_quietly(mut command: tokio::process::Command, what: &str) -> Res<()> {
    let status = command.stdout(Stdio::from(std::io::stderr())).status().await.map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        fail!("{what} failed ({status})");
    }
    Ok(())
}

struct PeerCommand {
    python: PathBuf,
    script: PathBuf,
    models_dir: PathBuf,
    threads: bool,
}

impl PeerCommand {
    async fn run(&self, photos: &Photos, extra: &[String]) -> Res<Value> {
        let mut command = tokio::process::Command::new(&self.python);
        command.arg(&self.script).arg("--models").arg(&self.models_dir).args(extra);
        if self.threads {
            command.arg("--threads");
        }
        command.args(photos.iter().map(|p| self.models_dir.join("testdata").join(p.name)));
        let output = command.stderr(Stdio::inherit()).output().await.map_err(|e| format!("python peer: {e}"))?;
        if !output.status.success() {
            fail!("the Python peer failed ({})", output.status);
        }
        Ok(serde_json::from_slice(&output.stdout).map_err(|e| format!("the Python peer's output: {e}"))?)
    }

    async fn check(&self, photos: &Photos) -> Res<Vec<Found>> {
        let out = self.run(photos, &["--check".into()]).await?;
        let rows = out["check"].as_array().ok_or("the peer's check has no rows")?;
        Ok(rows
            .iter()
            .map(|row| Found {
                faces: row["faces"].as_u64().unwrap_or(0) as usize,
                embeddings: row["embeddings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| {
                        v.as_array().into_iter().flatten().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect()
                    })
                    .collect(),
            })
            .collect())
    }

    async fn measure(&self, photos: &Photos, clients: usize, warmup: f64, seconds: f64) -> Res<(Measurement, Value)> {
        let extra = [
            "--clients".into(),
            clients.to_string(),
            "--warmup".into(),
            warmup.to_string(),
            "--seconds".into(),
            seconds.to_string(),
        ];
        let out = self.run(photos, &extra).await?;
        let latencies_ms: Vec<f64> =
            out["latencies_ms"].as_array().ok_or("no latencies")?.iter().filter_map(Value::as_f64).collect();
        let measurement = Measurement {
            system: "(c) Python reference",
            clients,
            requests: latencies_ms.len(),
            elapsed: out["elapsed_s"].as_f64().ok_or("no elapsed_s")?,
            latencies_ms,
        };
        Ok((measurement, json!({"versions": out["versions"], "mode": out["mode"]})))
    }
}

// ------------------------------------------------------------------------------------------------------------
// Where the time goes: each stage timed alone, one thread, no concurrency.

const STAGES: [&str; 6] =
    ["decode", "letterbox", "detector run + decode/NMS", "align", "embed (batch/photo)", "quality"];
const BREAKDOWN_ROUNDS: usize = 3;

async fn breakdown(paths: &ModelPaths, photos: &Arc<Photos>, peer: &PeerCommand) -> Res<(Vec<f64>, Vec<f64>)> {
    eprintln!("[bench] stage breakdown");
    let (paths, photos_for_rust) = (paths.clone(), Arc::clone(photos));
    let rust = tokio::task::spawn_blocking(move || rust_stages(&paths, &photos_for_rust)).await??;
    let out = peer.run(photos, &["--breakdown".into(), BREAKDOWN_ROUNDS.to_string()]).await?;
    let python = STAGES.iter().map(|s| out["stages_ms"][*s].as_f64().unwrap_or(f64::NAN)).collect();
    Ok((rust, python))
}

/// Mean milliseconds per photo of each stage, with the engine's own functions.
fn rust_stages(paths: &ModelPaths, photos: &Photos) -> Res<Vec<f64>> {
    use faceplate_engine::{detect, embed, imaging, quality, runtime};
    let env = runtime::environment(&paths.runtime_library)?;
    let mut detector = runtime::open_session(env, &paths.detector, &detect::SPEC)?;
    let mut embedder = runtime::open_session(env, &paths.embedder, &embed::SPEC)?;
    let settings = faceplate_engine::DetectorSettings::default();
    let mut totals = [0.0f64; STAGES.len()];
    for round in 0..=BREAKDOWN_ROUNDS {
        for photo in photos {
            let t0 = Instant::now();
            let image = imaging::decode(&photo.bytes, &faceplate_engine::ImageLimits::default())?;
            let t1 = Instant::now();
            let _ = detect::preprocess(&image)?;
            let t2 = Instant::now();
            let mut faces = detect::detect(&mut detector, &image, &settings)?;
            let t3 = Instant::now();
            faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
            faces.truncate(MAX_EMBEDDED_FACES);
            let crops: Vec<_> = faces.iter().map(|f| embed::align(&image, &f.landmarks)).collect();
            let t4 = Instant::now();
            let _ = embed::embed(&mut embedder, &crops)?;
            let t5 = Instant::now();
            for (face, crop) in faces.iter().zip(&crops) {
                let _ = quality::assess(&face.bbox, &face.landmarks, crop);
            }
            let t6 = Instant::now();
            if round == 0 {
                continue; // warm-up
            }
            let letterbox = (t2 - t1).as_secs_f64();
            let stages = [
                (t1 - t0).as_secs_f64(),
                letterbox,
                (t3 - t2).as_secs_f64() - letterbox, // detect() letterboxes again
                (t4 - t3).as_secs_f64(),
                (t5 - t4).as_secs_f64(),
                (t6 - t5).as_secs_f64(),
            ];
            for (total, stage) in totals.iter_mut().zip(stages) {
                *total += stage;
            }
        }
    }
    let n = (BREAKDOWN_ROUNDS * photos.len()) as f64;
    Ok(totals.iter().map(|t| t * 1000.0 / n).collect())
}

// ------------------------------------------------------------------------------------------------------------
// Report (Markdown, so it can go into BENCHMARKS.md as is)

/// What each system found in each photo, before timing.
struct Checks {
    engine: Vec<Found>,
    python: Vec<Found>,
    http: Vec<usize>,
}

/// The 1-minute load average (other work on the machine skews every number).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    photos: &Photos,
    workers: usize,
    peer: &Value,
    checks: &Checks,
    results: &[Measurement],
    breakdown: Option<&(Vec<f64>, Vec<f64>)>,
    load: (String, String),
) {
    let (engine, python, http) = (&checks.engine, &checks.python, &checks.http);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let faces: usize = engine.iter().map(|f| f.faces).sum();
    println!("## Faceplate face-detection benchmark\n");
    println!(
        "- machine: {cpus} CPUs available ({cpu_model}); 1-minute load average {} before the timed runs, {} after",
        load.0, load.1
    );
    println!(
        "- photos: {} ({faces} faces in all), round-robin; {} s measured per row, after one pass over every photo and \
         {} s of warm-up per client",
        photos.len(),
        args.seconds,
        args.warmup
    );
    println!(
        "- (a) and (b): {workers} inference worker(s) with 1 intra-op thread each + as many embedding threads; \
         (b) on 127.0.0.1, {workers} HTTP worker(s), {} stores, multipart upload, face tokens stored",
        match faceplate_tests::backend() {
            faceplate_tests::Backend::Sqlite => "SQLite",
            faceplate_tests::Backend::Postgres { .. } => "PostgreSQL (TEST_BACKEND)",
        }
    );
    println!(
        "- (c): Python {} in {}, onnxruntime {}, opencv-python-headless {}, numpy {}; 1 intra-op thread per session, \
         cv2.setNumThreads(1)",
        peer["versions"]["python"].as_str().unwrap_or("?"),
        match peer["mode"].as_str() {
            Some("threads") => "one thread per client, own sessions",
            _ => "one process per client, own sessions",
        },
        peer["versions"]["onnxruntime"].as_str().unwrap_or("?"),
        peer["versions"]["opencv"].as_str().unwrap_or("?"),
        peer["versions"]["numpy"].as_str().unwrap_or("?"),
    );

    // Same work? Face counts per photo, and each embedded face of the engine against the peer's closest one
    // (faces of nearly equal size may be ordered differently).
    let mut mismatches = Vec::new();
    let mut min_cosine = f32::INFINITY;
    for ((photo, e), (p, h)) in photos.iter().zip(engine).zip(python.iter().zip(http)) {
        if e.faces != p.faces || e.faces != *h {
            mismatches.push(format!("{}: (a) {} (b) {h} (c) {}", photo.name, e.faces, p.faces));
        }
        for a in &e.embeddings {
            let best = p.embeddings.iter().map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum()).fold(f32::MIN, f32::max);
            min_cosine = min_cosine.min(best);
        }
    }
    if mismatches.is_empty() {
        println!(
            "- same work: (a), (b) and (c) find the same number of faces in every photo; embeddings (a) vs (c), \
             each face against its closest: cosine >= {min_cosine:.3}"
        );
    } else {
        println!(
            "- WARNING: face counts differ: {}; embeddings (a) vs (c): cosine >= {min_cosine:.3}",
            mismatches.join("; ")
        );
    }

    println!("\n| system | clients | images/s | p50 ms | p99 ms | requests |");
    println!("|---|---:|---:|---:|---:|---:|");
    for m in results {
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.1} | {} |",
            m.system,
            m.clients,
            m.images_per_second(),
            m.percentile(50.0),
            m.percentile(99.0),
            m.requests
        );
    }
    println!("\nRatios of throughput (images/s):\n");
    println!("| clients | (b)/(c) | target >= 1.3 | (b)/(a) | target >= 0.9 |");
    println!("|---:|---:|---|---:|---|");
    let find = |prefix: &str, clients: usize| {
        results
            .iter()
            .find(|m| m.system.starts_with(prefix) && m.clients == clients)
            .map(Measurement::images_per_second)
    };
    for &clients in &args.clients {
        if let (Some(a), Some(b), Some(c)) = (find("(a)", clients), find("(b)", clients), find("(c)", clients)) {
            let verdict = |ratio: f64, target: f64| if ratio >= target { "met" } else { "MISSED" };
            println!("| {clients} | {:.2} | {} | {:.2} | {} |", b / c, verdict(b / c, 1.3), b / a, verdict(b / a, 0.9));
        }
    }
    if let Some((rust, python)) = breakdown {
        println!(
            "\nWhere the time goes: mean ms per photo, one thread, each stage alone ({BREAKDOWN_ROUNDS} rounds over \
             the photos):\n"
        );
        println!("| stage | engine (Rust) | Python reference |");
        println!("|---|---:|---:|");
        for (i, stage) in STAGES.iter().enumerate() {
            println!("| {stage} | {:.2} | {:.2} |", rust[i], python[i]);
        }
        println!("| total | {:.2} | {:.2} |", rust.iter().sum::<f64>(), python.iter().sum::<f64>());
    }
}
