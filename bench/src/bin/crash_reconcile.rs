//! Crash and reconcile: under load, `faceplate serve` is killed with SIGKILL and restarted, and the Stripe fake
//! is stopped and restarted; afterwards the usage the server recorded and the meter events Stripe holds are
//! compared with the billable answers the load client received.
//!
//! The client sends `POST /v1/faces/compare` with a fresh `Idempotency-Key` per call and retries the same key
//! after a connection error or a 503 until it gets a definite answer, as a careful Face++ or SDK client does.
//! A 2xx (first answer or replay) is a billable answer the client will pay for.
//!
//! Prints `lost=<n> duplicated=<n>` for the usage events and the same for Stripe, and exits non-zero unless all
//! are zero. Run with `scripts/crash-reconcile.sh` (SQLite; `TEST_BACKEND=postgres` as for the tests).

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faceplate_tests::stripe_fake::{STRIPE_WEBHOOK_SECRET, StripeFake};
use faceplate_tests::{OPERATOR_TOKEN, TestDatabases, test_image};
use serde_json::{Value, json};
use tokio::sync::Mutex;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const PRICES: &[(&str, &str)] = &[("face_detect", "price_face_detect"), ("face_compare", "price_face_compare")];

struct Args {
    seconds: u64,
    clients: usize,
    faceplate: PathBuf,
}

fn parse_args() -> Res<Args> {
    let exe = std::env::current_exe()?;
    let sibling = exe.parent().ok_or("no exe dir")?.join("faceplate");
    let mut args = Args { seconds: 20, clients: 8, faceplate: sibling };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse()?,
            "--clients" => args.clients = value.parse()?,
            "--faceplate" => args.faceplate = value.into(),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if !args.faceplate.is_file() {
        return Err(
            format!("{} is missing: build it (scripts/crash-reconcile.sh does)", args.faceplate.display()).into()
        );
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// `faceplate serve` in its own process.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    async fn start(bin: &Path, config: &Path, port: u16, log: &Path) -> Res<Node> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let mut command = Command::new(bin);
        for (name, _) in std::env::vars() {
            if name.starts_with("FACEPLATE_") {
                command.env_remove(name);
            }
        }
        let child = command
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let node = Node { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client.get(format!("{}/healthz", node.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(node);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("faceplate serve did not answer /healthz".into())
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the load client saw: the Idempotency-Key of every billable (2xx) answer.
#[derive(Default)]
struct Seen {
    billed: BTreeSet<String>,
    retries: usize,
    replays: usize,
}

/// Sends one call until it gets a definite answer; records it if billable.
async fn call_until_answered(client: &reqwest::Client, base: &str, token: &str, body: &Value, seen: &Mutex<Seen>) {
    let key = uuid::Uuid::new_v4().to_string();
    loop {
        let sent = client
            .post(format!("{base}/v1/faces/compare"))
            .bearer_auth(token)
            .header("Idempotency-Key", &key)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let replayed = response.headers().contains_key("idempotent-replayed");
                if response.bytes().await.is_ok() {
                    let mut seen = seen.lock().await;
                    seen.billed.insert(key);
                    seen.replays += usize::from(replayed);
                    return;
                }
            }
            // Not billable and definite (a 4xx): nothing to count. 503 and 429 are retried.
            Ok(response) if response.status().is_client_error() && response.status() != 429 => return,
            _ => {}
        }
        seen.lock().await.retries += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn json_of(response: reqwest::Response) -> Res<Value> {
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        return Err(format!("{status}: {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

async fn run() -> Res<bool> {
    let args = parse_args()?;
    let mut stripe = StripeFake::start().await;
    for (product, price) in PRICES {
        stripe.create_metered_price(price, product, 1).await;
    }
    let dbs = TestDatabases::create(&["local"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dbs.write_config(&stripe.config(PRICES));
    let log = dbs.dir.path().join("faceplate.log");
    let mut node = Node::start(&args.faceplate, &config, port, &log).await?;
    let base = node.base.clone();
    stripe.register_webhook(&format!("{base}/webhooks/stripe"), STRIPE_WEBHOOK_SECRET).await;

    // A tenant whose plan no limit or quota of the load reaches.
    let client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(1)).build()?;
    let products: serde_json::Map<String, Value> = PRICES
        .iter()
        .map(|(p, _)| (p.to_string(), json!({"included_units": 0, "monthly_cap": null, "unit_price_micros": 1000})))
        .collect();
    let plan = json!({"name": "Crash", "tenant_qps": 100_000, "tenant_concurrency": 1000, "key_qps": 100_000,
        "key_concurrency": 1000, "products": products});
    json_of(client.put(format!("{base}/admin/v1/plans/crash")).bearer_auth(OPERATOR_TOKEN).json(&plan).send().await?)
        .await?;
    let tenant = json_of(
        client
            .post(format!("{base}/admin/v1/tenants"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"name": "crash", "plan": "crash"}))
            .send()
            .await?,
    )
    .await?;
    let tenant_id = tenant["tenant"]["id"].as_str().ok_or("tenant id")?.to_string();
    let consent = faceplate_tests::allow_biometrics(&client, &base, &tenant_id).await;
    let key = json_of(
        client
            .post(format!("{base}/admin/v1/tenants/{tenant_id}/keys"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"name": "load", "scopes": ["face", "admin"]}))
            .send()
            .await?,
    )
    .await?;
    let token = key["token"].as_str().ok_or("token")?.to_string();
    use base64::Engine as _;
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let detected = json_of(
        client
            .post(format!("{base}/v1/faces/detect"))
            .bearer_auth(&token)
            .json(&json!({"image_base64": image, "consent_id": consent}))
            .send()
            .await?,
    )
    .await?;
    let face = detected["faces"][0]["face_token"].as_str().ok_or("no face")?.to_string();
    let body = json!({"face_token1": face, "face_token2": face, "consent_id": consent});

    // The load: clients in closed loops until the end.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..args.clients {
        let (client, base, token, body, seen, stop) =
            (client.clone(), base.clone(), token.clone(), body.clone(), seen.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                call_until_answered(&client, &base, &token, &body, &seen).await;
            }
        }));
    }

    // The faults, at fixed fractions of the run: a crash, Stripe down, a crash while Stripe is down, Stripe up.
    let started = Instant::now();
    let at = |fraction: f64| Duration::from_secs_f64(args.seconds as f64 * fraction);
    let wait_until = |t: Duration| async move {
        let now = started.elapsed();
        if t > now {
            tokio::time::sleep(t - now).await;
        }
    };
    wait_until(at(0.2)).await;
    println!("{:>5.1}s kill -9 faceplate", started.elapsed().as_secs_f64());
    node.kill();
    node = Node::start(&args.faceplate, &config, port, &log).await?;
    println!("{:>5.1}s faceplate restarted", started.elapsed().as_secs_f64());
    wait_until(at(0.4)).await;
    println!("{:>5.1}s Stripe fake stopped", started.elapsed().as_secs_f64());
    stripe.stop();
    wait_until(at(0.6)).await;
    println!("{:>5.1}s kill -9 faceplate (Stripe still down)", started.elapsed().as_secs_f64());
    node.kill();
    node = Node::start(&args.faceplate, &config, port, &log).await?;
    println!("{:>5.1}s faceplate restarted", started.elapsed().as_secs_f64());
    wait_until(at(0.8)).await;
    stripe.resume().await;
    println!("{:>5.1}s Stripe fake restarted", started.elapsed().as_secs_f64());
    wait_until(at(1.0)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await?;
    }
    println!("{:>5.1}s load stopped", started.elapsed().as_secs_f64());

    // Let the outbox drain.
    let billing_url = format!("{base}/admin/v1/tenants/{tenant_id}/billing");
    let mut backlog = Value::Null;
    let draining = Instant::now();
    for _ in 0..3000 {
        backlog = json_of(client.get(&billing_url).bearer_auth(OPERATOR_TOKEN).send().await?).await?;
        if backlog["unreported_events"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{:>5.1}s outbox drained ({:.1}s after the load)",
        started.elapsed().as_secs_f64(),
        draining.elapsed().as_secs_f64()
    );
    let customer = backlog["stripe_customer_id"].as_str().ok_or("no Stripe customer")?.to_string();

    // Reconcile the compares (the detect above is billed too, but was not under load).
    let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new(); // idempotency key → usage event ids
    let mut all_ids = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/usage/events?limit=1000");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page = json_of(client.get(&url).bearer_auth(&token).send().await?).await?;
        for e in page["events"].as_array().ok_or("events")? {
            let id = e["id"].as_str().ok_or("id")?.to_string();
            all_ids.insert(id.clone());
            if e["product"] == "face_compare" {
                let key = e["idempotency_key"].as_str().ok_or("a compare without its key")?.to_string();
                events.entry(key).or_default().push(id);
            }
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let seen = seen.lock().await;
    let lost = seen.billed.iter().filter(|k| !events.contains_key(*k)).count();
    let duplicated: usize =
        events.iter().map(|(key, ids)| if seen.billed.contains(key) { ids.len() - 1 } else { ids.len() }).sum();

    let (meter_events, received) = stripe.meter_events().await;
    let mut at_stripe: BTreeMap<String, usize> = BTreeMap::new();
    for e in meter_events.iter().filter(|e| e["payload"]["stripe_customer_id"] == customer.as_str()) {
        *at_stripe.entry(e["identifier"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    let stripe_lost = all_ids.iter().filter(|id| !at_stripe.contains_key(*id)).count();
    let stripe_duplicated: usize = at_stripe.iter().map(|(id, n)| if all_ids.contains(id) { n - 1 } else { *n }).sum();

    println!(
        "\nbillable answers seen by the client: {} ({} replays of a retried key, {} retries after errors)",
        seen.billed.len(),
        seen.replays,
        seen.retries
    );
    println!("usage events recorded: {} compares ({} in all with the detect)", events.len(), all_ids.len());
    println!(
        "meter events at Stripe: {} ({} sends received, resends deduplicated on the event id); backlog: {}",
        at_stripe.len(),
        received,
        backlog["unreported_events"]
    );
    println!("usage: lost={lost} duplicated={duplicated}");
    println!("stripe: lost={stripe_lost} duplicated={stripe_duplicated}");
    node.kill();
    let all_zero = lost + duplicated + stripe_lost + stripe_duplicated == 0;
    println!("lost={} duplicated={}", lost + stripe_lost, duplicated + stripe_duplicated);
    if !all_zero {
        eprintln!("server log: {}", log.display());
        std::mem::forget(dbs); // keep the databases and the log for a look
    }
    Ok(all_zero)
}
