//! What limits and metering cost, and how many usage events the store absorbs.
//!
//! 1. Overhead: the same cheap authenticated calls through two servers in this process, one with rate limits,
//!    quotas and metering on (the peer), one with all three off, in alternating rounds of the same closed-loop
//!    load. Calls: `POST /v1/faces/compare` by face token (billable: admission, quota, a usage event written
//!    before the answer) and `GET /v1/me` (not billable: limits only). Prints requests/s and on/off ratios.
//! 2. Consent: the same Face++ `compare` by face token (no inference) on one server, for a tenant that names its
//!    consent in `consent_id` (checked before the call: the consent and its subject's restriction read) against
//!    one that lets Face++ calls run without one (the peer, `facepp_without_consent = allow`). Prints the ratio.
//! 3. Sustained metering: usage events recorded through the store's group-committing writer by many concurrent
//!    callers, on SQLite and, when `TEST_POSTGRES_URL` is set, on PostgreSQL. Prints events/s.
//!
//! `cargo run --release -p faceplate-bench --bin faceplate-metering-bench -- [--requests 2000] [--rounds 3]
//!  [--concurrency 16,64] [--events 20000] [--writers 256] [--sections overhead,consent,sustained]`

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use faceplate_store::{KeyId, NewUsageEvent, Product};
use faceplate_tests::{Backend, OPERATOR_TOKEN, TestApp, test_image};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

struct Args {
    requests: usize,
    rounds: usize,
    /// Requests in flight: the overhead table has rows for each (latency-bound and CPU-bound load).
    concurrency: Vec<usize>,
    events: usize,
    writers: usize,
    /// Which parts to run: `overhead`, `consent`, `sustained` (default all).
    sections: Vec<String>,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        requests: 2000,
        rounds: 3,
        concurrency: vec![16, 64],
        events: 20_000,
        writers: 256,
        sections: ["overhead", "consent", "sustained"].map(String::from).to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let text = it.next().ok_or(format!("{flag} needs a value"))?;
        if flag == "--concurrency" {
            args.concurrency = text.split(',').map(str::parse).collect::<Result<_, _>>()?;
            continue;
        }
        if flag == "--sections" {
            args.sections = text.split(',').map(String::from).collect();
            continue;
        }
        let value: usize = text.parse()?;
        match flag.as_str() {
            "--requests" => args.requests = value,
            "--rounds" => args.rounds = value,
            "--events" => args.events = value,
            "--writers" => args.writers = value,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A tenant on a plan roomy enough that no limit or quota refuses the benchmark's load, so both servers do the
/// same work and only the bookkeeping differs; it has accepted the DPA and recorded a consent. Returns (token,
/// the body of a comparison of one face token with itself, naming the consent).
async fn prepare(app: &TestApp, name: &str) -> Res<(String, Value)> {
    let products: serde_json::Map<String, Value> = Product::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), json!({"included_units": 0, "monthly_cap": null, "unit_price_micros": 1000})))
        .collect();
    let plan = json!({"name": "Bench", "tenant_qps": 1_000_000, "tenant_concurrency": 10_000, "key_qps": 1_000_000,
        "key_concurrency": 10_000, "products": products});
    app.call(reqwest::Method::PUT, "/admin/v1/plans/bench", Some(OPERATOR_TOKEN), Some(plan)).await.expect(200);
    let tenant = app.post("/admin/v1/tenants", OPERATOR_TOKEN, json!({"name": name, "plan": "bench"})).await;
    let tenant = tenant.expect(201).body["tenant"]["id"].as_str().ok_or("tenant id")?.to_string();
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face", "admin"]).await;
    use base64::Engine as _;
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let detect = json!({"image_base64": image, "consent_id": consent});
    let detected = app.post("/v1/faces/detect", &token, detect).await.expect(200);
    let face = detected.body["faces"][0]["face_token"].as_str().ok_or("no face")?.to_string();
    Ok((token, json!({"face_token1": face, "face_token2": face, "consent_id": consent})))
}

#[derive(Clone, Copy)]
enum Call {
    Compare,
    Me,
    FaceppCompare,
}

/// `requests` calls with `concurrency` in flight; returns requests/s. Every answer must be a 200.
async fn closed_loop(
    app: &TestApp,
    token: &str,
    compare: &Value,
    call: Call,
    requests: usize,
    concurrency: usize,
) -> Res<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = FuturesUnordered::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let (client, url_compare, url_me) = (app.client.clone(), app.url("/v1/faces/compare"), app.url("/v1/me"));
        let url_facepp = app.url("/facepp/v3/compare");
        let body = compare.clone();
        let token = token.to_string();
        workers.push(async move {
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let request = match call {
                    Call::Compare => client.post(&url_compare).json(&body),
                    Call::Me => client.get(&url_me),
                    Call::FaceppCompare => client.post(&url_facepp).json(&body),
                };
                let response = request.bearer_auth(&token).send().await?;
                if response.status() != 200 {
                    return Err(format!("answered {}: {}", response.status(), response.text().await?).into());
                }
                response.bytes().await?;
            }
            Ok::<_, Box<dyn Error + Send + Sync>>(())
        });
    }
    while let Some(done) = workers.next().await {
        done?;
    }
    Ok(requests as f64 / started.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn overhead(args: &Args) -> Res<()> {
    let on = TestApp::spawn_on(Backend::Sqlite, "").await;
    let off = TestApp::spawn_on(Backend::Sqlite, "[limits]\nenabled = false\n[metering]\nenabled = false\n").await;
    let (on_token, on_compare) = prepare(&on, "bench").await?;
    let (off_token, off_compare) = prepare(&off, "bench").await?;
    println!(
        "## Overhead: limits + quotas + metering on vs off (SQLite, {} requests a round, median of {} rounds)\n",
        args.requests, args.rounds
    );
    println!("| call | in flight | on (req/s) | off (req/s) | on/off |");
    println!("|---|---|---|---|---|");
    for &concurrency in &args.concurrency {
        for (name, call) in [("POST /v1/faces/compare (billable)", Call::Compare), ("GET /v1/me", Call::Me)] {
            // Warm both (connections, caches), then alternate so drift on a noisy machine hits both alike.
            closed_loop(&on, &on_token, &on_compare, call, args.requests / 4, concurrency).await?;
            closed_loop(&off, &off_token, &off_compare, call, args.requests / 4, concurrency).await?;
            let (mut with, mut without) = (Vec::new(), Vec::new());
            for _ in 0..args.rounds {
                with.push(closed_loop(&on, &on_token, &on_compare, call, args.requests, concurrency).await?);
                without.push(closed_loop(&off, &off_token, &off_compare, call, args.requests, concurrency).await?);
            }
            let (with, without) = (median(with), median(without));
            println!("| {name} | {concurrency} | {with:.0} | {without:.0} | {:.2} |", with / without);
        }
    }
    // The metered server counted every compare it answered.
    let usage = on.get("/v1/usage?granularity=month&product=face_compare", &on_token).await.expect(200);
    let counted = usage.body["totals"][0]["units"].as_i64().unwrap_or(0);
    let answered = ((args.requests / 4 + args.requests * args.rounds) * args.concurrency.len()) as i64;
    println!("\ncompares answered by the metered server: {answered}; counted in its usage: {counted}");
    if counted != answered {
        return Err("usage does not match the answers".into());
    }
    Ok(())
}

async fn consent_cost(args: &Args) -> Res<()> {
    let app = TestApp::spawn_on(Backend::Sqlite, "[limits]\nenabled = false\n[metering]\nenabled = false\n").await;
    let (named, with_consent) = prepare(&app, "named").await?;
    let (attested, mut without) = prepare(&app, "attested").await?;
    without.as_object_mut().ok_or("body")?.remove("consent_id");
    let allow = json!({"facepp_without_consent": "allow"});
    app.call(reqwest::Method::PUT, "/v1/settings/consent", Some(&attested), Some(allow)).await.expect(200);
    println!(
        "\n## Consent: Face++ compare by token naming a consent vs without one (SQLite, limits and metering off, \
         {} requests a round, median of {} rounds)\n",
        args.requests, args.rounds
    );
    println!("| in flight | with consent_id (req/s) | without (req/s) | with/without |");
    println!("|---|---|---|---|");
    let call = Call::FaceppCompare;
    for &concurrency in &args.concurrency {
        closed_loop(&app, &named, &with_consent, call, args.requests / 4, concurrency).await?;
        closed_loop(&app, &attested, &without, call, args.requests / 4, concurrency).await?;
        let (mut with, mut bare) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            with.push(closed_loop(&app, &named, &with_consent, call, args.requests, concurrency).await?);
            bare.push(closed_loop(&app, &attested, &without, call, args.requests, concurrency).await?);
        }
        let (with, bare) = (median(with), median(bare));
        println!("| {concurrency} | {with:.0} | {bare:.0} | {:.2} |", with / bare);
    }
    Ok(())
}

async fn sustained(backend: Backend, label: &str, args: &Args) -> Res<()> {
    let app = TestApp::spawn_on(backend, "").await;
    let tenant_id = app.create_tenant("bench", None).await;
    let (key_id, _) = app.create_key(&tenant_id, &["face"]).await;
    let stores = app.stores();
    let tenant = stores.control().find_tenant(&tenant_id).await?;
    let data = stores.tenant_data(&tenant)?;
    let key = KeyId::parse(&key_id).ok_or("key id")?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut writers = FuturesUnordered::new();
    for _ in 0..args.writers {
        let (data, key, next) = (data.clone(), key.clone(), next.clone());
        let events = args.events;
        writers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    return Ok::<_, faceplate_store::StoreError>(());
                }
                data.record_usage(NewUsageEvent {
                    dedup_key: format!("req:bench-{n}"),
                    request_id: format!("bench-{n}"),
                    idempotency_key: None,
                    key_id: key.clone(),
                    product: Product::FaceCompare,
                    operation: "POST /v1/faces/compare".into(),
                    units: 1,
                    status: 200,
                    fingerprint: None,
                })
                .await?;
            }
        }));
    }
    while let Some(done) = writers.next().await {
        done??;
    }
    let rate = args.events as f64 / started.elapsed().as_secs_f64();
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    let stored = data.units_since(Product::FaceCompare, since).await?;
    println!("| {label} | {} | {} | {rate:.0} | {stored} |", args.events, args.writers);
    if stored != args.events as i64 {
        return Err(format!("{label}: {stored} events stored of {}", args.events).into());
    }
    Ok(())
}

async fn run() -> Res<()> {
    let args = parse_args()?;
    let run = |section: &str| args.sections.iter().any(|s| s == section);
    if run("overhead") {
        overhead(&args).await?;
    }
    if run("consent") {
        consent_cost(&args).await?;
    }
    if !run("sustained") {
        return Ok(());
    }
    println!("\n## Sustained metering: usage events the store absorbs\n");
    println!("| store | events | concurrent writers | events/s | counted |");
    println!("|---|---|---|---|---|");
    sustained(Backend::Sqlite, "SQLite", &args).await?;
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin_url) => sustained(Backend::Postgres { admin_url }, "PostgreSQL", &args).await?,
        Err(_) => println!("| PostgreSQL | skipped: set TEST_POSTGRES_URL | | | |"),
    }
    Ok(())
}
