//! Document and plate OCR benchmark: Faceplate's pipeline side by side with RapidOCR 1.4.4 (PyPI
//! `rapidocr-onnxruntime`, the same PP-OCRv4 ONNX files) on the same synthetic images, in one invocation.
//!
//! The images come from `faceplate-synth` (seeded: the same arguments give the same images): ID card fronts and
//! backs, MRZ pages, bank cards, driving licences and car scenes with plates, each as a clean and a distorted set
//! (perspective, any rotation, blur, noise, glare, JPEG). Our side runs the engine in-process exactly as the API
//! does (`read_text` and the `faceplate-documents` parsers; `read_plates` and the API's plate rules). RapidOCR
//! reads the same files; its lines go through the same parsers, so the accuracy columns compare the OCR, not the
//! parsing. RapidOCR has no plate detector: its plate column is the best valid plate among the lines it reads.
//!
//! Accuracy: per product and field, the share of images whose field is exactly the ground truth. Speed: both
//! read the images one at a time (p50 latency, images/s), and ours also with one image in flight per inference
//! thread (the server's steady state). RapidOCR runs its ONNX sessions with every core (its default).
//!
//! `cargo run --release -p faceplate-bench --bin faceplate-ocr-bench -- [--count 500] [--seed 2026]
//!  [--kinds id_front,id_back,mrz,bank_card,driver_licence,plate] [--no-peer] [--venv DIR] [--python PYTHON]`

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faceplate_api::routes::ocr::parser_lines;
use faceplate_api::routes::plates::plates as plate_views;
use faceplate_documents::plate::{PlateRegion, parse_plate};
use faceplate_documents::{self as documents, Field, Sex, TextLine};
use faceplate_engine::{
    DetectorSettings, Engine, EngineSettings, ImageLimits, ModelPaths, OcrOutput, OcrSettings, PlateSettings,
};
use faceplate_synth::{Distortion, Kind, Sample};
use futures_util::StreamExt;
use serde_json::Value;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const PEER_PY: &str = include_str!("../../python/rapidocr_peer.py");
const REQUIREMENTS: &str = include_str!("../../python/rapidocr-requirements.txt");

const USAGE: &str =
    "faceplate-ocr-bench [--count N] [--seed N] [--kinds LIST] [--no-peer] [--venv DIR] [--python PYTHON]
  --count N       images per product and set (default 500): accuracy, and ours with one image in flight per
                  inference thread
  --peer-count N  the first N of them (default 100) are also read one at a time by both, for the side-by-side
                  accuracy and speed (RapidOCR takes about half a second an image)
  --seed N        generator seed (default 2026)
  --kinds LIST    products (default id_front,id_back,mrz,bank_card,driver_licence,plate)
  --sets LIST     clean, distorted or both (default clean,distorted)
  --report FILE   also write the report so far to FILE after each product and set
  --no-peer       skip RapidOCR
  --failures N    print up to N wrong fields per product and set on stderr (ours)
  --inspect K:S:I read one image (e.g. mrz:clean:3) and print the rows and fields
  --venv DIR      the peer's Python environment (default ~/.cache/faceplate/ocr-bench-venv; created if missing)
  --python PY     interpreter that creates it (default python3)";

struct Args {
    count: u32,
    peer_count: u32,
    seed: u64,
    kinds: Vec<Kind>,
    peer: bool,
    failures: usize,
    sets: Vec<Distortion>,
    report: Option<PathBuf>,
    inspect: Option<(Kind, Distortion, u32)>,
    venv: PathBuf,
    python: String,
}

fn args() -> Res<Args> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()));
    let mut args = Args {
        count: 500,
        peer_count: 100,
        seed: 2026,
        kinds: Kind::ALL.to_vec(),
        peer: true,
        failures: 0,
        sets: Distortion::ALL.to_vec(),
        report: None,
        inspect: None,
        venv: home.join(".cache/faceplate/ocr-bench-venv"),
        python: "python3".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--count" => args.count = value("--count")?.parse()?,
            "--peer-count" => args.peer_count = value("--peer-count")?.parse()?,
            "--seed" => args.seed = value("--seed")?.parse()?,
            "--kinds" => {
                args.kinds = value("--kinds")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{e}"))?
            }
            "--no-peer" => args.peer = false,
            "--failures" => args.failures = value("--failures")?.parse()?,
            "--report" => args.report = Some(value("--report")?.into()),
            "--sets" => {
                args.sets =
                    value("--sets")?.split(',').map(str::parse).collect::<Result<_, _>>().map_err(|e| format!("{e}"))?
            }
            "--inspect" => {
                let spec = value("--inspect")?;
                let parts: Vec<&str> = spec.split(':').collect();
                let [kind, distortion, index] = parts[..] else { return Err("--inspect KIND:SET:INDEX".into()) };
                args.inspect = Some((
                    kind.parse().map_err(|e| format!("{e}"))?,
                    distortion.parse().map_err(|e| format!("{e}"))?,
                    index.parse()?,
                ));
            }
            "--venv" => args.venv = value("--venv")?.into(),
            "--python" => args.python = value("--python")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(args)
}

/// What one reader made of one image: field name -> value (only fields it could give).
type Fields = BTreeMap<String, String>;

/// A plate number without separators (`AB12 CDE` -> `AB12CDE`, `B-MW-1234` -> `BMW1234`), as the ground truth has it.
fn bare(plate: &str) -> String {
    plate.chars().filter(|c| c.is_alphanumeric()).collect()
}

fn put<T>(out: &mut Fields, name: &str, field: &Field<T>, render: impl Fn(&T) -> String) {
    if let Some(v) = field.value() {
        out.insert(name.to_string(), render(v));
    }
}

fn date(d: &chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn sex_cn(s: &Sex) -> String {
    match s {
        Sex::Male => "男",
        Sex::Female => "女",
        Sex::Unspecified => "",
    }
    .into()
}

fn sex_mrz(s: &Sex) -> String {
    match s {
        Sex::Male => "M",
        Sex::Female => "F",
        Sex::Unspecified => "X",
    }
    .into()
}

fn serde_name(v: impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn validity(out: &mut Fields, field: &Field<documents::china_id::ValidityPeriod>) {
    if let Some(v) = field.value() {
        out.insert("valid_from".into(), date(&v.start));
        out.insert(
            "valid_until".into(),
            if v.long_term { "long_term".into() } else { v.end.as_ref().map(date).unwrap_or_default() },
        );
    }
}

/// Runs the product's parser on OCR lines, as the API does, and renders its fields as the ground truth spells them.
fn parse(kind: Kind, lines: &[TextLine]) -> Fields {
    let mut out = Fields::new();
    match kind {
        Kind::IdFront => {
            if let Some(f) = documents::china_id::parse_id_card(lines).front {
                put(&mut out, "name", &f.name, String::clone);
                put(&mut out, "sex", &f.sex, sex_cn);
                put(&mut out, "ethnicity", &f.ethnicity, String::clone);
                put(&mut out, "birth_date", &f.birth_date, date);
                put(&mut out, "address", &f.address, String::clone);
                put(&mut out, "id_number", &f.id_number, |n| n.number.clone());
            }
        }
        Kind::IdBack => {
            if let Some(b) = documents::china_id::parse_id_card(lines).back {
                put(&mut out, "issuing_authority", &b.issuing_authority, String::clone);
                validity(&mut out, &b.validity);
            }
        }
        Kind::Mrz => {
            if let Some(m) = documents::mrz::parse_mrz(lines) {
                out.insert("format".into(), serde_name(m.format));
                put(&mut out, "document_code", &m.document_code, String::clone);
                put(&mut out, "issuing_state", &m.issuing_state, String::clone);
                put(&mut out, "surname", &m.surname, String::clone);
                put(&mut out, "given_names", &m.given_names, String::clone);
                put(&mut out, "document_number", &m.document_number, String::clone);
                put(&mut out, "nationality", &m.nationality, String::clone);
                put(&mut out, "birth_date", &m.birth_date, date);
                put(&mut out, "sex", &m.sex, sex_mrz);
                put(&mut out, "expiry_date", &m.expiry_date, date);
                put(&mut out, "optional_data", &m.optional_data, String::clone);
                out.insert("lines".into(), m.lines.join("\n"));
            }
        }
        Kind::BankCard => {
            let c = documents::bank_card::parse_bank_card(lines);
            put(&mut out, "number", &c.number, |n| n.digits().to_string());
            if c.number.value().is_some() {
                out.insert("network".into(), serde_name(c.network));
            }
            put(&mut out, "expiry", &c.expiry, ToString::to_string);
            put(&mut out, "holder_name", &c.holder_name, String::clone);
        }
        Kind::DriverLicence => {
            let d = documents::driver_licence::parse_driver_licence(lines);
            put(&mut out, "licence_number", &d.licence_number, String::clone);
            put(&mut out, "name", &d.name, String::clone);
            put(&mut out, "sex", &d.sex, sex_cn);
            put(&mut out, "nationality", &d.nationality, String::clone);
            put(&mut out, "address", &d.address, String::clone);
            put(&mut out, "birth_date", &d.birth_date, date);
            put(&mut out, "first_issue_date", &d.first_issue_date, date);
            put(&mut out, "class", &d.class, String::clone);
            validity(&mut out, &d.validity);
        }
        Kind::Plate => {
            // RapidOCR's lines: every line that is a valid plate (two-line plates are not joined).
            let mut plates: Vec<String> = lines
                .iter()
                .map(|l| parse_plate(&l.text, PlateRegion::Auto))
                .filter(|p| p.valid && !matches!(p.format, documents::plate::PlateFormat::UsGeneric))
                .map(|p| bare(&p.text))
                .collect();
            plates.sort();
            plates.dedup();
            out.insert("plates".into(), plates.join(" "));
        }
    }
    out
}

/// The fields a product is scored on (the ground truth's keys, less the bookkeeping ones).
fn scored_fields(kind: Kind, truth: &Fields) -> Vec<String> {
    if kind == Kind::Plate {
        return vec!["plates".into(), "colors".into()];
    }
    truth.keys().filter(|k| !matches!(k.as_str(), "lines" | "plates")).cloned().collect()
}

/// The ground truth as the scorer compares it: plates as their sorted texts and colours.
fn truth_fields(sample: &Sample) -> Fields {
    let mut fields = sample.truth.fields.clone();
    if sample.truth.kind == Kind::Plate {
        let mut texts: Vec<String> = sample.truth.plates.iter().map(|p| bare(&p.text)).collect();
        texts.sort_unstable();
        fields.insert("plates".into(), texts.join(" "));
        let mut colors: Vec<String> =
            sample.truth.plates.iter().map(|p| format!("{}:{}", bare(&p.text), p.color)).collect();
        colors.sort_unstable();
        fields.insert("colors".into(), colors.join(" "));
    }
    fields
}

struct Run {
    /// Per image, in order: what was read, and how long it took.
    results: Vec<(Fields, Duration)>,
    wall: Duration,
}

/// One image through our pipeline; an engine error counts as nothing read (and is logged).
async fn ours_one(engine: &Engine, kind: Kind, image: Vec<u8>) -> Res<(Fields, Duration)> {
    let started = Instant::now();
    match read_one(engine, kind, image).await {
        Ok(fields) => Ok((fields, started.elapsed())),
        Err(e) => {
            eprintln!("[bench] {}: {e}", kind.name());
            Ok((Fields::new(), started.elapsed()))
        }
    }
}

/// The OCR settings of the product's endpoint: `/v1/ocr/mrz` expects a machine-readable zone, ID and bank cards
/// are searched as cards, bank cards' text is embossed.
fn settings_for(kind: Kind) -> OcrSettings {
    match kind {
        Kind::Mrz => OcrSettings::machine_readable_page(),
        Kind::IdFront | Kind::IdBack => OcrSettings::card(),
        Kind::BankCard => OcrSettings::bank_card(),
        Kind::DriverLicence | Kind::Plate => OcrSettings::default(),
    }
}

async fn read_one(engine: &Engine, kind: Kind, image: Vec<u8>) -> Res<Fields> {
    let fields = if kind == Kind::Plate {
        let output = engine.read_plates(image, PlateSettings::default()).await?;
        let views = plate_views(&output, PlateRegion::Auto);
        let mut found: Vec<(String, String)> = views
            .iter()
            .filter_map(|v| v.number.as_deref().map(|n| (bare(n), v.color.map(serde_name).unwrap_or_default())))
            .collect();
        found.sort();
        let mut f = Fields::new();
        f.insert("plates".into(), found.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" "));
        f.insert("colors".into(), found.iter().map(|(n, c)| format!("{n}:{c}")).collect::<Vec<_>>().join(" "));
        f
    } else {
        let output: OcrOutput = engine.read_text_with(image, settings_for(kind)).await?;
        parse(kind, &parser_lines(&output))
    };
    Ok(fields)
}

async fn ours(engine: &Arc<Engine>, kind: Kind, samples: &[Sample], in_flight: usize) -> Res<Run> {
    let started = Instant::now();
    let results: Vec<Res<(Fields, Duration)>> = futures_util::stream::iter(samples.iter().map(|s| {
        let engine = Arc::clone(engine);
        let image = s.image.clone();
        async move { ours_one(&engine, kind, image).await }
    }))
    .buffered(in_flight)
    .collect()
    .await;
    Ok(Run { results: results.into_iter().collect::<Res<_>>()?, wall: started.elapsed() })
}

// The RapidOCR peer

struct Peer {
    python: PathBuf,
    script: PathBuf,
}

fn run_quietly(command: &mut Command, what: &str) -> Res<()> {
    let status = command.stdout(Stdio::from(std::io::stderr())).status().map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})").into());
    }
    Ok(())
}

impl Peer {
    fn prepare(args: &Args, scratch: &Path) -> Res<Peer> {
        let bin = args.venv.join("bin/python");
        if !bin.is_file() {
            eprintln!("[bench] creating RapidOCR's environment {}", args.venv.display());
            run_quietly(Command::new(&args.python).args(["-m", "venv"]).arg(&args.venv), "python -m venv")?;
        }
        let stamp = args.venv.join(".faceplate-ocr-bench-requirements");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(REQUIREMENTS) {
            eprintln!("[bench] installing bench/python/rapidocr-requirements.txt into {}", args.venv.display());
            let requirements = args.venv.join("rapidocr-requirements.txt");
            std::fs::write(&requirements, REQUIREMENTS)?;
            run_quietly(
                Command::new(&bin)
                    .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps", "-r"])
                    .arg(&requirements),
                "pip install",
            )?;
            std::fs::write(&stamp, REQUIREMENTS)?;
        }
        let script = scratch.join("rapidocr_peer.py");
        std::fs::write(&script, PEER_PY)?;
        Ok(Peer { python: bin, script })
    }

    fn run(&self, kind: Kind, files: &[PathBuf], scratch: &Path) -> Res<Run> {
        let list = scratch.join("list.txt");
        std::fs::write(&list, files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join("\n"))?;
        let output = Command::new(&self.python).arg(&self.script).arg(&list).stderr(Stdio::inherit()).output()?;
        if !output.status.success() {
            return Err(format!("the RapidOCR peer failed ({})", output.status).into());
        }
        let mut results = Vec::new();
        let mut wall = Duration::ZERO;
        for line in String::from_utf8(output.stdout)?.lines() {
            let v: Value = serde_json::from_str(line)?;
            if let Some(total) = v["total_s"].as_f64() {
                wall = Duration::from_secs_f64(total);
                continue;
            }
            let lines: Vec<TextLine> = v["lines"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .map(|l| {
                            let mut quad = [[0.0f32; 2]; 4];
                            for (k, p) in l["box"].as_array().into_iter().flatten().take(4).enumerate() {
                                quad[k] = [p[0].as_f64().unwrap_or(0.0) as f32, p[1].as_f64().unwrap_or(0.0) as f32];
                            }
                            TextLine {
                                text: l["text"].as_str().unwrap_or("").to_string(),
                                confidence: l["score"].as_f64().unwrap_or(0.0) as f32,
                                quad,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ms = v["ms"].as_f64().unwrap_or(0.0);
            results.push((parse(kind, &lines), Duration::from_secs_f64(ms / 1000.0)));
        }
        if results.len() != files.len() {
            return Err(format!("the peer answered for {} of {} images", results.len(), files.len()).into());
        }
        Ok(Run { results, wall })
    }
}

// Report

struct Measured {
    kind: Kind,
    distortion: Distortion,
    /// Every image's ground truth; `ours_parallel` covers them all, the other two runs the first ones.
    truths: Vec<Fields>,
    ours_parallel: Run,
    ours_sequential: Run,
    peer: Option<Run>,
}

fn accuracy(run: &Run, truths: &[Fields], field: &str) -> f64 {
    let right = run.results.iter().zip(truths).filter(|((got, _), truth)| got.get(field) == truth.get(field)).count();
    right as f64 / run.results.len().max(1) as f64
}

/// Share of images with every scored field right.
fn all_right(run: &Run, truths: &[Fields], fields: &[String]) -> f64 {
    let right = run
        .results
        .iter()
        .zip(truths)
        .filter(|((got, _), truth)| fields.iter().all(|f| got.get(f) == truth.get(f)))
        .count();
    right as f64 / run.results.len().max(1) as f64
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn p50(run: &Run) -> Duration {
    let mut times: Vec<Duration> = run.results.iter().map(|r| r.1).collect();
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn per_second(run: &Run) -> f64 {
    run.results.len() as f64 / run.wall.as_secs_f64().max(1e-9)
}

/// Appends one formatted line to a report.
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

/// The Markdown report of the sets measured so far.
fn report(measured: &[Measured], args: &Args, workers: usize) -> String {
    let mut out = String::new();
    line!(out, "# OCR benchmark: Faceplate vs RapidOCR 1.4.4\n");
    line!(
        out,
        "{} images per product and set, seed {}; {} inference threads; RapidOCR with ONNX Runtime's default threads.\n",
        args.count,
        args.seed,
        workers
    );
    line!(out, "## Accuracy: fields exactly right\n");
    line!(
        out,
        "Ours on all {} images of a set; ours and RapidOCR side by side on the first {} (the same images).\n",
        args.count,
        args.peer_count.min(args.count)
    );
    line!(
        out,
        "| product | field | clean: ours | clean: ours / RapidOCR, first {n} | distorted: ours | distorted: ours / RapidOCR, first {n} |",
        n = args.peer_count.min(args.count)
    );
    line!(out, "|---|---|---|---|---|---|");
    for kind in &args.kinds {
        let sets: Vec<&Measured> = measured.iter().filter(|m| m.kind == *kind).collect();
        let Some(first) = sets.first() else { continue };
        let fields = scored_fields(*kind, &first.truths[0]);
        let score = |run: &Run, m: &Measured, field: Option<&str>| {
            pct(field.map_or_else(|| all_right(run, &m.truths, &fields), |f| accuracy(run, &m.truths, f)))
        };
        let cells = |m: Option<&&Measured>, field: Option<&str>| -> (String, String) {
            let Some(m) = m else { return ("-".into(), "-".into()) };
            // RapidOCR reads text only: a plate's colour is not something it reports.
            let no_colour = m.kind == Kind::Plate && field != Some("plates");
            let peer =
                m.peer.as_ref().map_or("-".into(), |p| if no_colour { "n/a".into() } else { score(p, m, field) });
            (score(&m.ours_parallel, m, field), format!("{} / {peer}", score(&m.ours_sequential, m, field)))
        };
        let clean = sets.iter().find(|m| m.distortion == Distortion::Clean);
        let distorted = sets.iter().find(|m| m.distortion == Distortion::Distorted);
        for field in fields.iter().map(|f| Some(f.as_str())).chain([None]) {
            let (c_all, c_side) = cells(clean, field);
            let (d_all, d_side) = cells(distorted, field);
            line!(
                out,
                "| {} | {} | {c_all} | {c_side} | {d_all} | {d_side} |",
                kind.name(),
                field.unwrap_or("**all fields**"),
            );
        }
    }
    line!(
        out,
        "\n## Speed\n\nOne at a time: the first {} images of each set, the same for both. In flight: all {} images.\n",
        args.peer_count.min(args.count),
        args.count
    );
    line!(
        out,
        "| product | set | ours p50 | RapidOCR p50 | ours img/s, 1 at a time | RapidOCR img/s | ratio | ours img/s, {workers} in flight | ratio |"
    );
    line!(out, "|---|---|---|---|---|---|---|---|---|");
    let (mut ours_total, mut ours_par_total, mut peer_total) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut images, mut par_images) = (0usize, 0usize);
    for m in measured {
        let (seq, par) = (&m.ours_sequential, &m.ours_parallel);
        ours_total += seq.wall;
        ours_par_total += par.wall;
        images += seq.results.len();
        par_images += par.results.len();
        let (peer_p50, peer_rate, r1, r2) = match &m.peer {
            Some(p) => {
                peer_total += p.wall;
                (
                    format!("{:.0} ms", p50(p).as_secs_f64() * 1e3),
                    format!("{:.2}", per_second(p)),
                    format!("{:.2}x", per_second(seq) / per_second(p)),
                    format!("{:.2}x", per_second(par) / per_second(p)),
                )
            }
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        line!(
            out,
            "| {} | {} | {:.0} ms | {peer_p50} | {:.2} | {peer_rate} | {r1} | {:.2} | {r2} |",
            m.kind.name(),
            m.distortion.name(),
            p50(seq).as_secs_f64() * 1e3,
            per_second(seq),
            per_second(par),
        );
    }
    let rate = |d: Duration| images as f64 / d.as_secs_f64().max(1e-9);
    let par_rate = par_images as f64 / ours_par_total.as_secs_f64().max(1e-9);
    if peer_total > Duration::ZERO {
        line!(
            out,
            "\nAll images: ours {:.2} img/s one at a time, {:.2} img/s with {workers} in flight; RapidOCR {:.2} img/s. \
             Ratios {:.2}x and {:.2}x.",
            rate(ours_total),
            par_rate,
            rate(peer_total),
            rate(ours_total) / rate(peer_total),
            par_rate / rate(peer_total)
        );
    }
    out
}

fn generate(kind: Kind, distortion: Distortion, seed: u64, count: u32) -> Res<Vec<Sample>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per = count.div_ceil(threads as u32).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(per as usize)
            .map(|start| {
                scope.spawn(move || {
                    (start..(start + per).min(count))
                        .map(|i| faceplate_synth::generate(kind, distortion, seed, i).map_err(|e| e.to_string()))
                        .collect::<Result<Vec<_>, String>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| "a generator thread panicked")??);
        }
        Ok(all)
    })
}

fn main() -> Res<()> {
    let args = args()?;
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let settings = EngineSettings {
        models: ModelPaths::in_dir(faceplate_engine::default_models_dir()),
        workers,
        queue_capacity: 64,
        detector: DetectorSettings::default(),
        // The generator's noisy PNGs run past the API's default 2 MiB.
        image_limits: ImageLimits { max_file_bytes: 32 << 20, ..ImageLimits::default() },
        max_embedded_faces: 5,
    };
    let engine = Arc::new(Engine::start(settings)?);
    let scratch = tempfile::tempdir()?;
    let peer = if args.peer { Some(Peer::prepare(&args, scratch.path())?) } else { None };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some((kind, distortion, index)) = args.inspect {
        // One image: what OCR read, row by row, and what the parser made of it.
        let sample = faceplate_synth::generate(kind, distortion, args.seed, index)?;
        let path = std::env::temp_dir().join(format!(
            "ocr-bench-{}-{}-{index}.{}",
            kind.name(),
            distortion.name(),
            sample.extension
        ));
        std::fs::write(&path, &sample.image)?;
        println!("image: {}", path.display());
        println!("truth: {:?}", truth_fields(&sample));
        if kind == Kind::Plate {
            let output = runtime.block_on(engine.read_plates(sample.image.clone(), PlateSettings::default()))?;
            for p in &output.plates {
                println!("plate: {p:?}");
                if let Some(g) = &p.general_text {
                    println!(
                        "  general: {:?}",
                        g.text.chars().map(|c| format!("{c}U+{:04X}", c as u32)).collect::<Vec<_>>()
                    );
                }
            }
        } else {
            let output = runtime.block_on(engine.read_text_with(sample.image.clone(), settings_for(kind)))?;
            println!("rotation: {}", output.rotation);
            for row in &output.rows {
                println!("row: {:?} {:.3}", row.text, row.confidence);
            }
        }
        println!("ours: {:?}", runtime.block_on(read_one(&engine, kind, sample.image))?);
        return Ok(());
    }
    let mut measured = Vec::new();
    for distortion in args.sets.clone() {
        for &kind in &args.kinds {
            let started = Instant::now();
            let samples = generate(kind, distortion, args.seed, args.count)?;
            eprintln!(
                "[bench] {} {}: {} images generated in {:.1} s",
                kind.name(),
                distortion.name(),
                samples.len(),
                started.elapsed().as_secs_f64()
            );
            let dir = scratch.path().join(distortion.name()).join(kind.name());
            std::fs::create_dir_all(&dir)?;
            let mut files = Vec::new();
            for s in &samples {
                let file = dir.join(format!("{}.{}", s.truth.index, s.extension));
                std::fs::write(&file, &s.image)?;
                files.push(file);
            }
            // Warm-up: the first run of each model shape is slower.
            runtime.block_on(ours(&engine, kind, &samples[..samples.len().min(2)], 1))?;
            let side = (args.peer_count.min(args.count)) as usize;
            let ours_parallel = runtime.block_on(ours(&engine, kind, &samples, workers))?;
            let ours_sequential = runtime.block_on(ours(&engine, kind, &samples[..side], 1))?;
            let peer_run = peer.as_ref().map(|p| p.run(kind, &files[..side], scratch.path())).transpose()?;
            eprintln!(
                "[bench] {} {}: ours {:.1} s (all, {workers} in flight), RapidOCR {}",
                kind.name(),
                distortion.name(),
                ours_parallel.wall.as_secs_f64(),
                peer_run.as_ref().map_or("skipped".into(), |p| format!("{:.1} s", p.wall.as_secs_f64()))
            );
            let truths: Vec<Fields> = samples.iter().map(truth_fields).collect();
            let mut shown = 0;
            for (i, ((got, _), truth)) in ours_parallel.results.iter().zip(&truths).enumerate() {
                for field in scored_fields(kind, truth) {
                    if shown < args.failures && got.get(&field) != truth.get(&field) {
                        shown += 1;
                        eprintln!(
                            "[wrong] {} {} #{i} {field}: got {:?}, want {:?}",
                            kind.name(),
                            distortion.name(),
                            got.get(&field),
                            truth.get(&field)
                        );
                    }
                }
            }
            measured.push(Measured { kind, distortion, truths, ours_parallel, ours_sequential, peer: peer_run });
            if let Some(path) = &args.report {
                // The report so far, so a long run that is stopped still says what it measured.
                std::fs::write(path, report(&measured, &args, workers))?;
            }
            std::fs::remove_dir_all(&dir)?;
        }
    }
    print!("{}", report(&measured, &args, workers));
    Ok(())
}
