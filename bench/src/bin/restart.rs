//! Start-up with a large FaceSet: how long the first search takes after a restart, through the real server.
//!
//! Loads N faces (synthetic embeddings) into one FaceSet directly through the store, then times the first
//! search over HTTP
//!
//! * (a) on a fresh server with no snapshot: the index is read from the database and built;
//! * (b) after a graceful restart: the snapshot written at shutdown is loaded;
//! * (c) after 1,000 more faces are added and the server crashes: the older snapshot is loaded, then the new
//!   faces are caught up from the database;
//!
//! and a warm search for comparison. SQLite by default; `TEST_BACKEND=postgres` as for the tests.
//!
//! `cargo run --release -p faceplate-bench --bin faceplate-restart-bench -- [--faces 1000000]`

use std::error::Error;
use std::time::Instant;

use faceplate_store::{FaceRecord, FaceRect, FaceSetRef, FaceToken, NewFaceSet, Stores};
use faceplate_tests::{OPERATOR_TOKEN, SERVER_SECRET, TestApp};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const DIMENSIONS: usize = 128;
const BATCH: usize = 20_000;

/// A small deterministic generator (no dependency needed for synthetic load).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn unit_vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIMENSIONS).map(|_| self.next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

fn record(embedding: Vec<f32>) -> FaceRecord {
    let now = chrono::Utc::now();
    FaceRecord {
        token: FaceToken::generate(),
        image_id: "bench".into(),
        model: "sface-2021dec".into(),
        embedding,
        rect: FaceRect { top: 0, left: 0, width: 100, height: 100 },
        score: 0.9,
        landmarks: json!({}),
        quality: json!({}),
        created_at: now,
        expires_at: Some(now + chrono::Duration::hours(1)),
        user_id: None,
        consent_id: None,
    }
}

/// Adds `n` synthetic faces to the set, in batches of one transaction each.
async fn load(stores: &Stores, tenant: &str, set: &str, n: usize, rng: &mut Lcg) -> Res<()> {
    let tenant = stores.control().find_tenant(tenant).await?;
    let data = stores.tenant_data(&tenant)?;
    let set = FaceSetRef::Token(faceplate_store::FaceSetToken::parse(set).ok_or("bad set token")?);
    let mut done = 0;
    while done < n {
        let batch: Vec<FaceRecord> = (0..BATCH.min(n - done)).map(|_| record(rng.unit_vector())).collect();
        let tokens = batch.iter().map(|r| r.token.to_string()).collect();
        data.insert_faces(batch).await?;
        let change = data.add_faces(set.clone(), tokens, i64::MAX, None).await?;
        done += change.changed;
        eprint!("\r  loaded {done}/{n} faces");
    }
    eprintln!();
    Ok(())
}

async fn search(app: &TestApp, key: &str, consent: &str, set: &str, query: &[f32]) -> Res<f64> {
    let started = Instant::now();
    let resp = app
        .client
        .post(app.url("/v1/facesets/search"))
        .bearer_auth(key)
        .json(&json!({"faceset_tokens": [set], "embedding": query, "top_k": 5, "consent_id": consent}))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(format!("search failed: {}", resp.text().await?).into());
    }
    let body: Value = resp.json().await?;
    if body["results"].as_array().is_none_or(|r| r.is_empty()) {
        return Err("search found nothing".into());
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut faces = 1_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--faces" => faces = args.next().ok_or("--faces N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut rng = Lcg(7);
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("bench", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, key) = app.create_key(&tenant, &["face"]).await;
    let config = faceplate_api::config::Config::load(Some(&app.config_path))?;
    let (stores, _) = Stores::open(&config.stores()?, SERVER_SECRET.as_bytes()).await?;
    let tenant_record = stores.control().find_tenant(&tenant).await?;
    let set = stores.tenant_data(&tenant_record)?.create_faceset(NewFaceSet::default(), 10).await?.token.to_string();

    eprintln!("loading {faces} faces into one FaceSet ({:?})", faceplate_tests::backend());
    let started = Instant::now();
    load(&stores, &tenant, &set, faces, &mut rng).await?;
    let load_secs = started.elapsed().as_secs_f64();
    let query = rng.unit_vector();

    let cold = search(&app, &key, &consent, &set, &query).await?;
    // Warm: the median of 21 searches with other queries.
    let mut warm_times = Vec::new();
    for _ in 0..21 {
        warm_times.push(search(&app, &key, &consent, &set, &rng.unit_vector()).await?);
    }
    warm_times.sort_by(f64::total_cmp);
    let warm = warm_times[warm_times.len() / 2];
    let app = app.restart().await;
    let snapshot_bytes: u64 = std::fs::read_dir(app.index_dir().join(&tenant))
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    let after_restart = search(&app, &key, &consent, &set, &query).await?;
    load(&stores, &tenant, &set, 1000, &mut rng).await?;
    let app = app.crash_and_restart().await;
    let after_crash = search(&app, &key, &consent, &set, &query).await?;
    let _ = OPERATOR_TOKEN;

    println!("FaceSet of {faces} faces, {:?}; loading the store took {load_secs:.0} s", faceplate_tests::backend());
    println!("| first search after                                   | ms |");
    println!("|---|---:|");
    println!("| (a) start with no snapshot (read + build from the database) | {cold:.0} |");
    println!(
        "| (b) graceful restart (snapshot of {:.0} MiB loaded)          | {after_restart:.0} |",
        snapshot_bytes as f64 / 1048576.0
    );
    println!("| (c) crash after 1,000 more faces (snapshot + catch-up)      | {after_crash:.0} |");
    println!("| warm search, for comparison                               | {warm:.1} |");
    println!("ratio (a)/(b): {:.0}x", cold / after_restart);
    Ok(())
}
