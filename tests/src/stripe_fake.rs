//! The local Stripe of the billing tests: tests/stripe-fake/server.py (localstripe plus Billing Meter events)
//! in a process of its own, which a test can stop and start again (a Stripe outage) without losing its state.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The secret key the fake accepts (any `sk_…`), and the webhook signing secret the tests configure.
pub const STRIPE_SECRET_KEY: &str = "sk_test_faceplate";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_faceplate_test";

pub struct StripeFake {
    pub port: u16,
    state: tempfile::TempDir,
    child: Option<Child>,
    client: reqwest::Client,
}

impl StripeFake {
    pub async fn start() -> StripeFake {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut fake = StripeFake {
            port,
            state: tempfile::tempdir().expect("tempdir"),
            child: None,
            client: reqwest::Client::new(),
        };
        fake.resume().await;
        fake
    }

    /// The Python of the venv scripts/test.sh installs localstripe into.
    fn python() -> PathBuf {
        let models = faceplate_api::config::EngineConfig::default().models_dir();
        let python = models.join("../compat-venv/bin/python");
        assert!(python.is_file(), "{} is missing: run scripts/test.sh (it installs localstripe)", python.display());
        python
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Kills the fake (SIGKILL): Stripe is unreachable until `resume`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the fake on its port with the state it had.
    pub async fn resume(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("stripe-fake").join("server.py");
        let child = Command::new(Self::python())
            .arg(script)
            .args(["--port", &self.port.to_string()])
            .arg("--state")
            .arg(self.state.path().join("stripe.pickle"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the Stripe fake starts");
        self.child = Some(child);
        for _ in 0..200 {
            if self.client.get(format!("{}_config/meter_events", self.url())).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the Stripe fake did not start");
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self
            .client
            .post(format!("{}{path}", self.url()))
            .basic_auth(STRIPE_SECRET_KEY, Some(""))
            .form(form)
            .send()
            .await
            .expect("Stripe fake answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// A monthly metered price of `unit_amount` cents, with id `id` (Stripe-compatible servers take it as plan).
    pub async fn create_metered_price(&self, id: &str, product_name: &str, unit_amount: u32) {
        let amount = unit_amount.to_string();
        self.post(
            "v1/plans",
            &[
                ("id", id),
                ("currency", "usd"),
                ("interval", "month"),
                ("usage_type", "metered"),
                ("amount", &amount),
                ("product[name]", product_name),
            ],
        )
        .await;
    }

    /// Makes the fake deliver its events, signed with `secret`, to `url`.
    pub async fn register_webhook(&self, url: &str, secret: &str) {
        self.post("_config/webhooks/faceplate", &[("url", url), ("secret", secret)]).await;
    }

    /// The meter events it has accepted (one per identifier) and how many it was sent in all.
    pub async fn meter_events(&self) -> (Vec<Value>, u64) {
        let body: Value = self
            .client
            .get(format!("{}_config/meter_events", self.url()))
            .send()
            .await
            .expect("Stripe fake answers")
            .json()
            .await
            .expect("JSON");
        (body["data"].as_array().cloned().unwrap_or_default(), body["received"].as_u64().unwrap_or(0))
    }

    pub async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.url()))
            .basic_auth(STRIPE_SECRET_KEY, Some(""))
            .send()
            .await
            .expect("Stripe fake answers")
            .json()
            .await
            .expect("JSON")
    }

    /// The `[billing.stripe]` table pointing Faceplate at this fake, with quick retries.
    pub fn config(&self, prices: &[(&str, &str)]) -> String {
        let mut toml = format!(
            "[billing.stripe]\nsecret_key = \"{STRIPE_SECRET_KEY}\"\nwebhook_secret = \"{STRIPE_WEBHOOK_SECRET}\"\n\
             api_base = \"{}\"\npoll_interval_ms = 100\nretry_initial_ms = 200\nretry_max_ms = 1000\n\
             request_timeout_secs = 3\n[billing.stripe.prices]\n",
            self.url()
        );
        for (product, price) in prices {
            toml.push_str(&format!("{product} = \"{price}\"\n"));
        }
        toml
    }
}

impl Drop for StripeFake {
    fn drop(&mut self) {
        self.stop();
    }
}
