//! `faceplate faceset import <dir>`: enrols every image under a directory into a FaceSet through the public API
//! (`POST /v1/facesets/{token}/enrol`), several at a time, with a progress bar.
//!
//! Resumable twice over: a journal (one JSON line per finished file) lets a re-run skip what is done, and each
//! image is sent with `external_image_id` = its SHA-256, so an image the server stored just before an
//! interruption (acknowledged or not) is recognised instead of enrolled twice.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp"];

#[derive(Args)]
pub struct ImportArgs {
    /// Directory of images (searched recursively): .jpg, .jpeg, .png, .webp, .bmp.
    pub dir: PathBuf,
    /// The FaceSet: its token, or its outer id.
    #[arg(long)]
    pub faceset: String,
    /// Create the FaceSet with this outer id if there is none.
    #[arg(long)]
    pub create: bool,
    /// Base URL of the Faceplate API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key with the `face` scope (fpk_....). Or set FACEPLATE_API_KEY.
    #[arg(long, env = "FACEPLATE_API_KEY", hide_env_values = true)]
    pub key: String,
    /// Where each image's user id comes from: its directory name (files directly in DIR use their name), its
    /// file name, or nowhere.
    #[arg(long, value_enum, default_value_t = UserIdFrom::Dirname)]
    pub user_id: UserIdFrom,
    /// The consent attestation (cns_...) the faces are enrolled under, for images whose user id is not in
    /// --consent-map.
    #[arg(long)]
    pub consent: Option<String>,
    /// A CSV file of `user_id,consent_id` lines: each person's faces are enrolled under their own consent.
    #[arg(long)]
    pub consent_map: Option<PathBuf>,
    /// An image with several faces: skip it, or enrol its largest face.
    #[arg(long)]
    pub largest_face: bool,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Retries per image when the server is busy or unreachable (with backoff), before it counts as failed.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Journal of finished files. Default: DIR/.faceplate-import-<faceset>.jsonl
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum UserIdFrom {
    Dirname,
    Filename,
    None,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Added,
    /// The set already held this image (a re-run after an interruption).
    AlreadyEnrolled,
    NoFace,
    MultipleFaces,
    /// The server refused the image (format, size) or kept failing; retried by the next run.
    Failed,
}

impl Outcome {
    /// Finished files are skipped by the next run; failed ones are tried again.
    fn is_final(self) -> bool {
        self != Outcome::Failed
    }
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    file: String,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    face_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Totals of one run.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub faceset_token: String,
    pub files: usize,
    /// Finished by an earlier run, so not sent again.
    pub skipped_done_earlier: usize,
    pub added: usize,
    pub already_enrolled: usize,
    pub skipped_no_face: usize,
    pub skipped_multiple_faces: usize,
    pub failed: usize,
    pub face_count: i64,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<ImportReport> {
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let api = Api { client, base: args.url.trim_end_matches('/').to_string(), key: args.key.clone() };
    let consents = read_consent_map(args.consent_map.as_deref())?;
    if args.consent.is_none() && consents.is_empty() {
        bail!("name the consent the faces are enrolled under: --consent cns_... or --consent-map FILE");
    }
    let faceset = api.resolve_faceset(&args.faceset, args.create).await?;

    let journal_path =
        args.journal.clone().unwrap_or_else(|| args.dir.join(format!(".faceplate-import-{faceset}.jsonl")));
    let done = read_journal(&journal_path)?;
    let mut files = Vec::new();
    collect_images(&args.dir, &mut files).with_context(|| format!("reading {}", args.dir.display()))?;
    files.sort();
    let mut report = ImportReport { faceset_token: faceset.clone(), files: files.len(), ..Default::default() };
    let todo: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| {
            let finished = done.get(&relative(&args.dir, f)).is_some_and(|o| o.is_final());
            report.skipped_done_earlier += usize::from(finished);
            !finished
        })
        .collect();

    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .with_context(|| format!("opening the journal {}", journal_path.display()))?;
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(todo.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut results = futures_util::stream::iter(todo.into_iter().map(|file| {
        let (api, faceset) = (&api, &faceset);
        let user_id = user_id_for(&args.dir, &file, args.user_id);
        let consent = user_id.as_ref().and_then(|u| consents.get(u)).or(args.consent.as_ref()).cloned();
        async move {
            let Some(consent) = consent else {
                let who = user_id.unwrap_or_default();
                return (file, Err(anyhow::anyhow!("no consent for user id `{who}`: add it to --consent-map")));
            };
            let result = api.enrol(faceset, &file, user_id.as_deref(), &consent, args.largest_face, args.retries).await;
            (file, result)
        }
    }))
    .buffer_unordered(args.concurrency.max(1));

    while let Some((file, result)) = results.next().await {
        let (outcome, face_token, error) = match result {
            Ok((outcome, token)) => (outcome, token, None),
            Err(e) => (Outcome::Failed, None, Some(format!("{e:#}"))),
        };
        match outcome {
            Outcome::Added => report.added += 1,
            Outcome::AlreadyEnrolled => report.already_enrolled += 1,
            Outcome::NoFace => report.skipped_no_face += 1,
            Outcome::MultipleFaces => report.skipped_multiple_faces += 1,
            Outcome::Failed => {
                report.failed += 1;
                bar.println(format!("failed: {}: {}", file.display(), error.as_deref().unwrap_or("")));
            }
        }
        // One line per file, flushed before the next: a crash loses at most the lines of requests in flight,
        // which the server then recognises by external_image_id.
        let line = JournalLine { file: relative(&args.dir, &file), outcome, face_token, error };
        writeln!(journal, "{}", serde_json::to_string(&line)?)?;
        journal.flush()?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.face_count = api.face_count(&faceset).await?;
    Ok(report)
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap_or(file).to_string_lossy().into_owned()
}

fn user_id_for(root: &Path, file: &Path, from: UserIdFrom) -> Option<String> {
    let stem = || file.file_stem().map(|s| s.to_string_lossy().into_owned());
    match from {
        UserIdFrom::None => None,
        UserIdFrom::Filename => stem(),
        UserIdFrom::Dirname => match file.parent() {
            Some(parent) if parent != root => parent.file_name().map(|s| s.to_string_lossy().into_owned()),
            _ => stem(),
        },
    }
}

/// The journal's latest outcome per file. A torn last line (a crash while writing it) is ignored.
/// `user_id,consent_id` lines (blank lines and `#` comments skipped).
fn read_consent_map(path: Option<&Path>) -> anyhow::Result<HashMap<String, String>> {
    let Some(path) = path else { return Ok(HashMap::new()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, consent)) = line.split_once(',') else {
            bail!("{}:{n}: expected `user_id,consent_id`", path.display());
        };
        map.insert(user.trim().to_string(), consent.trim().to_string());
    }
    Ok(map)
}

fn read_journal(path: &Path) -> anyhow::Result<HashMap<String, Outcome>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading the journal {}", path.display())),
    };
    Ok(text.lines().filter_map(|l| serde_json::from_str::<JournalLine>(l).ok()).map(|l| (l.file, l.outcome)).collect())
}

struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let resp = req.bearer_auth(&self.key).send().await?;
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn resolve_faceset(&self, name: &str, create: bool) -> anyhow::Result<String> {
        if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let (status, body) = self.call(self.client.get(format!("{}/v1/facesets/{name}", self.base))).await?;
            if status.is_success() {
                return Ok(name.to_string());
            }
            bail!("FaceSet {name}: {}", error_text(&body));
        }
        let url = format!("{}/v1/facesets", self.base);
        let (status, body) = self.call(self.client.get(&url).query(&[("outer_id", name)])).await?;
        if !status.is_success() {
            bail!("listing FaceSets: {}", error_text(&body));
        }
        if let Some(token) = body["facesets"][0]["faceset_token"].as_str() {
            return Ok(token.to_string());
        }
        if !create {
            bail!("no FaceSet has outer id `{name}` (add --create to create it)");
        }
        let (status, body) = self.call(self.client.post(&url).json(&json!({"outer_id": name}))).await?;
        match body["faceset"]["faceset_token"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_string()),
            _ => bail!("creating FaceSet `{name}`: {}", error_text(&body)),
        }
    }

    async fn face_count(&self, faceset: &str) -> anyhow::Result<i64> {
        let (_, body) = self.call(self.client.get(format!("{}/v1/facesets/{faceset}", self.base))).await?;
        body["faceset"]["face_count"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("reading the FaceSet: {}", error_text(&body)))
    }

    /// Enrols one image, retrying while the server is busy or unreachable.
    async fn enrol(
        &self,
        faceset: &str,
        file: &Path,
        user_id: Option<&str>,
        consent: &str,
        largest: bool,
        retries: u32,
    ) -> anyhow::Result<(Outcome, Option<String>)> {
        let bytes = tokio::fs::read(file).await.with_context(|| format!("reading {}", file.display()))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let url = format!("{}/v1/facesets/{faceset}/enrol", self.base);
        let mut attempt = 0;
        loop {
            let mut form = reqwest::multipart::Form::new()
                .part("image_file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("image"))
                .text("external_image_id", digest.clone())
                .text("multiple_faces", if largest { "largest" } else { "reject" })
                .text("consent_id", consent.to_string());
            if let Some(user_id) = user_id {
                form = form.text("user_id", user_id.to_string());
            }
            let retry_in = match self.call(self.client.post(&url).multipart(form)).await {
                Ok((status, body)) if status.is_success() => {
                    let outcome =
                        if body["added"].as_bool() == Some(false) { Outcome::AlreadyEnrolled } else { Outcome::Added };
                    return Ok((outcome, body["face_token"].as_str().map(str::to_string)));
                }
                Ok((status, body)) => match body["error"]["code"].as_str() {
                    Some("NO_FACE_FOUND") => return Ok((Outcome::NoFace, None)),
                    Some("MULTIPLE_FACES") => return Ok((Outcome::MultipleFaces, None)),
                    Some("SERVER_BUSY") | Some("SERVICE_UNAVAILABLE") => Duration::from_millis(500),
                    _ if status.is_server_error() => Duration::from_millis(500),
                    _ => bail!("{}", error_text(&body)),
                },
                // Unreachable (restarting?): back off and try again.
                Err(e) if attempt < retries => {
                    tracing::debug!(error = %e, "enrol request failed; retrying");
                    Duration::from_millis(500)
                }
                Err(e) => return Err(e),
            };
            attempt += 1;
            if attempt > retries {
                bail!("gave up after {retries} retries");
            }
            tokio::time::sleep(retry_in * 2u32.pow(attempt.min(5))).await;
        }
    }
}

fn error_text(body: &Value) -> String {
    body["error_message"].as_str().map(str::to_string).unwrap_or_else(|| body.to_string())
}
