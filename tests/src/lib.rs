//! Test harness: a real Faceplate server on a random port with fresh databases per test, spoken to over real
//! HTTP. The backend is SQLite by default; `TEST_BACKEND=postgres` with `TEST_POSTGRES_URL` (an admin
//! connection, e.g. `postgres://postgres@127.0.0.1:5432/postgres`) runs the same tests on PostgreSQL, each
//! test in databases of its own that are dropped afterwards.

pub mod render;
pub mod stripe_fake;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use diesel::RunQueryDsl;
use faceplate_api::config::Config;
use faceplate_store::db::{AnyConnection, DatabaseUrl, connect};
use faceplate_store::schema::region::TENANT_TABLES;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const OPERATOR_TOKEN: &str = "operator-token-for-tests-0123456789";
pub const SERVER_SECRET: &str = "server-secret-for-tests-0123456789";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

/// The backend this test run uses, from `TEST_BACKEND` (sqlite when unset).
pub fn backend() -> Backend {
    match std::env::var("TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres {
            admin_url: std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| panic!("TEST_BACKEND=postgres needs TEST_POSTGRES_URL")),
        },
        Ok(other) => panic!("TEST_BACKEND must be sqlite or postgres, not {other}"),
    }
}

/// Fresh databases for one test: SQLite files in a temporary directory, or new PostgreSQL databases.
pub struct TestDatabases {
    pub dir: tempfile::TempDir,
    pub control_url: String,
    pub region_urls: BTreeMap<String, String>,
    pg_cleanup: Option<(String, Vec<String>)>,
}

impl TestDatabases {
    /// A placeholder owning nothing (what a restarted `TestApp` leaves behind).
    fn none() -> TestDatabases {
        TestDatabases {
            dir: tempfile::tempdir().expect("temp dir"),
            control_url: String::new(),
            region_urls: BTreeMap::new(),
            pg_cleanup: None,
        }
    }

    pub fn create(regions: &[&str]) -> TestDatabases {
        Self::create_on(backend(), regions)
    }

    /// Like `create`, on the given backend (benchmarks compare both in one run).
    pub fn create_on(backend: Backend, regions: &[&str]) -> TestDatabases {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let file = |name: &str| format!("sqlite://{}", dir.path().join(format!("{name}.db")).display());
                TestDatabases {
                    control_url: file("control"),
                    region_urls: regions.iter().map(|r| (r.to_string(), file(&format!("region-{r}")))).collect(),
                    pg_cleanup: None,
                    dir,
                }
            }
            Backend::Postgres { admin_url } => {
                let prefix = format!("fp_test_{}", uuid::Uuid::new_v4().simple());
                let mut names = vec![format!("{prefix}_control")];
                names.extend(regions.iter().map(|r| format!("{prefix}_{}", r.replace('-', "_"))));
                let mut admin = pg_admin(&admin_url);
                for name in &names {
                    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).expect("create database");
                }
                let url_for = |db: &str| pg_url_with_database(&admin_url, db);
                TestDatabases {
                    control_url: url_for(&names[0]),
                    region_urls: regions.iter().zip(&names[1..]).map(|(r, db)| (r.to_string(), url_for(db))).collect(),
                    pg_cleanup: Some((admin_url.clone(), names)),
                    dir,
                }
            }
        }
    }

    /// A connection straight to one region's database, bypassing the platform (for residency checks).
    pub fn region_connection(&self, region: &str) -> AnyConnection {
        let url = DatabaseUrl::parse(&self.region_urls[region]).expect("region url");
        connect(&url).expect("connect to region store")
    }

    /// Rows a tenant has in one region store, over every tenant table.
    pub fn tenant_rows_in_region(&self, region: &str, tenant_id: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.region_connection(region);
        TENANT_TABLES
            .iter()
            .map(|table| {
                diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = $1"))
                    .bind::<diesel::sql_types::Text, _>(tenant_id)
                    .get_result::<Count>(&mut conn)
                    .expect("count rows")
                    .n
            })
            .sum()
    }

    /// Like [`Self::tenant_rows_in_region`], once the tenant's security alerts have left the outbox (delivered, or
    /// dropped for want of an endpoint), so the count stays put.
    pub async fn settled_tenant_rows(&self, region: &str, tenant_id: &str) -> i64 {
        let pending = format!("SELECT COUNT(*) AS n FROM alert_outbox WHERE tenant_id = '{tenant_id}'");
        for _ in 0..600 {
            if self.count_in_region(region, &pending) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.tenant_rows_in_region(region, tenant_id)
    }

    /// The single number a `SELECT COUNT(*) AS n ...` returns in one region store.
    pub fn count_in_region(&self, region: &str, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql).get_result::<Count>(&mut self.region_connection(region)).expect("count rows").n
    }

    /// A TOML configuration for these databases; `extra` holds top-level keys.
    pub fn config_toml(&self, extra: &str) -> String {
        self.config_toml_with(extra, "")
    }

    /// Like `config_toml`, with `engine_extra` added to the `[engine]` table.
    pub fn config_toml_with(&self, extra: &str, engine_extra: &str) -> String {
        let mut toml = format!(
            "data_dir = {:?}\ncontrol_database_url = {:?}\nserver_secret = {:?}\noperator_token = {:?}\nworkers = 1\n\
             max_db_connections = 4\n",
            self.dir.path().join("data").display().to_string(),
            self.control_url,
            SERVER_SECRET,
            OPERATOR_TOKEN,
        );
        if self.region_urls.len() > 1 || !self.region_urls.contains_key("local") {
            toml.push_str(&format!("default_region = {:?}\n", self.region_urls.keys().next().expect("a region")));
        }
        toml.push_str(extra);
        toml.push('\n');
        let models = faceplate_api::config::EngineConfig::default().models_dir();
        toml.push_str(&format!(
            "[engine]\nmodels_dir = {:?}\nworkers = 1\n{engine_extra}\n",
            models.display().to_string()
        ));
        for (name, url) in &self.region_urls {
            toml.push_str(&format!("[regions.{name}]\ndatabase_url = {url:?}\n"));
        }
        // Tests that do not test limits put their tenants on the roomiest plan, so a quick test is not refused.
        if !extra.contains("[limits]") {
            toml.push_str("[limits]\ndefault_plan = \"enterprise\"\n");
        }
        toml
    }

    /// Writes the configuration into the test directory and returns its path.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        self.write_config_with(extra, "")
    }

    pub fn write_config_with(&self, extra: &str, engine_extra: &str) -> PathBuf {
        let path = self.dir.path().join("faceplate.toml");
        std::fs::write(&path, self.config_toml_with(extra, engine_extra)).expect("write config");
        path
    }
}

impl Drop for TestDatabases {
    fn drop(&mut self) {
        if let Some((admin_url, names)) = self.pg_cleanup.take() {
            let mut admin = pg_admin(&admin_url);
            for name in names {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
            }
        }
    }
}

fn pg_admin(admin_url: &str) -> AnyConnection {
    let url = DatabaseUrl::parse(admin_url).expect("TEST_POSTGRES_URL must be a postgres:// URL");
    connect(&url).unwrap_or_else(|e| panic!("cannot reach TEST_POSTGRES_URL: {e}"))
}

fn pg_url_with_database(admin_url: &str, db: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of an error envelope, after checking the envelope is complete and consistent.
    pub fn error_code(&self) -> &str {
        let request_id = self.body["request_id"].as_str().unwrap_or_else(|| panic!("no request_id in {}", self.text));
        assert_eq!(Some(request_id), self.header("x-request-id"), "body and header request ids differ");
        assert!(self.body["time_used"].is_u64(), "time_used missing: {}", self.text);
        let code =
            self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error envelope: {}", self.text));
        assert!(!self.body["error"]["message"].as_str().unwrap_or_default().is_empty());
        assert!(self.body["error_message"].as_str().unwrap_or_default().starts_with(code));
        code
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self
    }
}

/// A running server with its own databases.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dbs: TestDatabases,
    pub config_path: PathBuf,
    handle: actix_web::dev::ServerHandle,
    stores: faceplate_store::Stores,
    background: faceplate_api::server::Background,
}

impl TestApp {
    /// One region, `local`.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&["local"], "").await
    }

    /// The given regions (the first is the default) and extra top-level config lines.
    pub async fn spawn_with(regions: &[&str], extra_config: &str) -> TestApp {
        Self::spawn_configured(regions, extra_config, "").await
    }

    /// Like `spawn_with`, plus lines for the `[engine]` table.
    pub async fn spawn_configured(regions: &[&str], extra_config: &str, engine_config: &str) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            faceplate_api::telemetry::init(&Default::default());
        }
        let dbs = TestDatabases::create(regions);
        let config_path = dbs.write_config_with(extra_config, engine_config);
        Self::start(dbs, config_path).await
    }

    /// One region, `local`, on the given backend, with extra top-level config lines.
    pub async fn spawn_on(backend: Backend, extra_config: &str) -> TestApp {
        let dbs = TestDatabases::create_on(backend, &["local"]);
        let config_path = dbs.write_config_with(extra_config, "");
        Self::start(dbs, config_path).await
    }

    /// The server's stores, for benchmarks that drive the store directly.
    pub fn stores(&self) -> &faceplate_store::Stores {
        &self.stores
    }

    async fn start(dbs: TestDatabases, config_path: PathBuf) -> TestApp {
        let config = Config::load(Some(&config_path)).expect("test config is valid");
        let server =
            faceplate_api::server::start(&config, "127.0.0.1:0".parse().expect("addr")).await.expect("server starts");
        let handle = server.handle.clone();
        let (addr, stores, background) = (server.addr, server.stores.clone(), server.background);
        tokio::spawn(server.run);
        TestApp { addr, client: test_client(), dbs, config_path, handle, stores, background }
    }

    /// Stops the server as `faceplate serve` does on SIGTERM (in-flight requests finish, index snapshots are
    /// written) and starts a new one on the same databases and data directory, on a new port.
    pub async fn restart(mut self) -> TestApp {
        self.handle.stop(true).await;
        self.background.shut_down(&self.stores).await;
        let (dbs, config_path) = self.take_databases();
        Self::start(dbs, config_path).await
    }

    /// Stops the server abruptly, writing nothing more (as a crash would), and starts a new one on the same
    /// databases and data directory.
    pub async fn crash_and_restart(mut self) -> TestApp {
        self.handle.stop(false).await;
        self.background.abort();
        let (dbs, config_path) = self.take_databases();
        Self::start(dbs, config_path).await
    }

    /// Another server on the same databases, with index snapshots of its own: a second node of a cluster.
    pub async fn second_node(&self) -> TestApp {
        self.second_node_with("").await
    }

    /// Like `second_node`, with extra configuration (top-level keys, or tables) before its own.
    pub async fn second_node_with(&self, extra_config: &str) -> TestApp {
        let dir = self.dbs.dir.path().join("node2");
        let extra = format!("{extra_config}\n[facesets]\nindex_dir = {:?}\n", dir.join("index").display().to_string());
        let config_path = self.dbs.dir.path().join("node2.toml");
        std::fs::write(&config_path, self.dbs.config_toml(&extra)).expect("write config");
        Self::start(TestDatabases::none(), config_path).await
    }

    fn take_databases(&mut self) -> (TestDatabases, PathBuf) {
        let dbs = std::mem::replace(&mut self.dbs, TestDatabases::none());
        (dbs, self.config_path.clone())
    }

    /// This server's directory of index snapshots.
    pub fn index_dir(&self) -> PathBuf {
        self.dbs.dir.path().join("data").join("index")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates a tenant through the operator API; returns its id.
    pub async fn create_tenant(&self, name: &str, region: Option<&str>) -> String {
        let body = match region {
            Some(r) => json!({"name": name, "region": r}),
            None => json!({"name": name}),
        };
        let resp = self.post("/admin/v1/tenants", OPERATOR_TOKEN, body).await.expect(201);
        resp.body["tenant"]["id"].as_str().expect("tenant id").to_string()
    }

    /// Creates a key through the operator API; returns (key id, bearer token).
    pub async fn create_key(&self, tenant_id: &str, scopes: &[&str]) -> (String, String) {
        let resp = self
            .post(
                &format!("/admin/v1/tenants/{tenant_id}/keys"),
                OPERATOR_TOKEN,
                json!({"name": "test", "scopes": scopes}),
            )
            .await
            .expect(201);
        (resp.body["key"]["id"].as_str().expect("id").into(), resp.body["token"].as_str().expect("token").into())
    }

    /// See [`allow_biometrics`]: accepts the DPA for the tenant and returns a consent id covering every purpose.
    pub async fn allow_biometrics(&self, tenant_id: &str) -> String {
        allow_biometrics(&self.client, &self.url(""), tenant_id).await
    }

    /// Runs the real `faceplate` binary against this app's configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(&self.config_path, args)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting and let the runtime wind down; databases are removed by `TestDatabases`.
        drop(self.handle.stop(false));
        self.background.abort();
    }
}

/// Makes a tenant ready for biometric calls as a real client would: an admin key accepts the current data
/// processing terms, and a consent covering every biometric purpose is recorded for one test subject. Returns
/// the consent id, to send as the `consent_id` field of every biometric call.
pub async fn allow_biometrics(client: &reqwest::Client, base: &str, tenant_id: &str) -> String {
    let keys = format!("{base}/admin/v1/tenants/{tenant_id}/keys");
    let key = client
        .post(keys)
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"name": "compliance", "scopes": ["admin", "face"]}))
        .send()
        .await
        .expect("request sent");
    let token = read(key).await.expect(201).body["token"].as_str().expect("token").to_string();
    let dpa = read(client.get(format!("{base}/v1/dpa")).bearer_auth(&token).send().await.expect("sent")).await;
    let version = dpa.expect(200).body["current_version"].as_str().expect("DPA version").to_string();
    let accept =
        client.post(format!("{base}/v1/dpa/acceptance")).bearer_auth(&token).json(&json!({"version": version}));
    read(accept.send().await.expect("sent")).await.expect(200);
    let consent = client
        .post(format!("{base}/v1/consents"))
        .bearer_auth(&token)
        .json(&json!({
            "subject_ref": "test-subject",
            "purposes": ["face_detection", "face_compare", "face_search", "face_enrolment"],
            "legal_basis": "explicit_consent",
            "jurisdiction": "EU",
            "collected_at": chrono::Utc::now().to_rfc3339(),
            "evidence_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "collected_by": "test harness",
        }))
        .send()
        .await
        .expect("sent");
    read(consent).await.expect(201).body["consent_id"].as_str().expect("consent id").to_string()
}

/// An HTTP client that drops idle connections well before the server's 5 s keep-alive closes them, so a test
/// that pauses between requests never writes into a connection the server is closing.
pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(2)).build().expect("client")
}

/// The real `faceplate serve` in a process of its own, for tests that kill it (`kill -9`).
pub struct ServerProcess {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl ServerProcess {
    /// Starts `faceplate serve` on a free port and waits until it answers `/healthz`.
    pub async fn start(config: &Path) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut cmd = std::process::Command::new(faceplate_bin());
        for (name, _) in std::env::vars() {
            if name.starts_with("FACEPLATE_") {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", &addr.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("faceplate serve starts");
        let mut server = ServerProcess { addr, child };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client.get(format!("http://{addr}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("faceplate serve exited: {status}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        server.kill();
        panic!("faceplate serve did not answer /healthz");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn read(response: reqwest::Response) -> Resp {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, headers, text, body }
}

/// A test photo fetched by scripts/fetch-models.sh (see models/manifest.toml).
pub fn test_image(name: &str) -> Vec<u8> {
    let path = faceplate_api::config::EngineConfig::default().models_dir().join("testdata").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-models.sh", path.display()))
}

/// The `faceplate` binary of this build (cargo builds it for the api crate's integration tests).
pub fn faceplate_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("faceplate");
    assert!(bin.is_file(), "{} is missing: build it with `cargo build -p faceplate-api`", bin.display());
    bin
}

/// Runs `faceplate --config <config> <args>` with no FACEPLATE_* variables inherited.
pub fn run_cli(config: &Path, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(faceplate_bin());
    for (name, _) in std::env::vars() {
        if name.starts_with("FACEPLATE_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--config").arg(config).args(args).output().expect("faceplate runs")
}

/// Stdout of a successful CLI run, parsed as JSON.
#[track_caller]
pub fn cli_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "faceplate failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout));
    })
}
