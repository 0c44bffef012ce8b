//! `faceplate-synth --out DIR [--seed 42] [--count 500] [--kinds id_front,mrz,...] [--distortion clean|distorted|both]
//! [--threads N]`: writes `DIR/<distortion>/<kind>/<index>.<ext>` and `DIR/<distortion>/truth.jsonl` (one line per
//! sample, in kind then index order, with the image's path relative to `DIR/<distortion>`).
//!
//! Samples are generated on a few threads; every sample is a pure function of its arguments and the truth lines
//! are written in a fixed order, so the output does not depend on the thread count.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use faceplate_synth::{Distortion, Kind, Truth, generate};
use serde::Serialize;

const USAGE: &str = "usage: faceplate-synth --out DIR [--seed 42] [--count 500] \
[--kinds id_front,id_back,mrz,bank_card,driver_licence,plate] [--distortion clean|distorted|both] [--threads N]";

struct Args {
    out: PathBuf,
    seed: u64,
    count: u32,
    kinds: Vec<Kind>,
    distortions: Vec<Distortion>,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut seed = 42;
    let mut count = 500;
    let mut kinds = Kind::ALL.to_vec();
    let mut distortions = Distortion::ALL.to_vec();
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(&value)),
            "--seed" => seed = value.parse().map_err(|e| bad(&e))?,
            "--count" => count = value.parse().map_err(|e| bad(&e))?,
            "--threads" => threads = value.parse::<usize>().map_err(|e| bad(&e))?.max(1),
            "--kinds" => {
                kinds = value.split(',').map(str::parse).collect::<Result<_, _>>().map_err(|e| bad(&e))?;
            }
            "--distortion" => {
                distortions = match value.as_str() {
                    "both" => Distortion::ALL.to_vec(),
                    one => vec![one.parse().map_err(|e| bad(&e))?],
                }
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("--out is required\n{USAGE}"))?;
    Ok(Args { out, seed, count, kinds, distortions, threads })
}

/// One line of truth.jsonl.
#[derive(Serialize)]
struct Line<'a> {
    file: String,
    #[serde(flatten)]
    truth: &'a Truth,
}

/// Generates and writes every sample of one distortion level; returns the number written.
fn run_level(args: &Args, distortion: Distortion) -> Result<usize, String> {
    let dir = args.out.join(distortion.name());
    for kind in &args.kinds {
        let d = dir.join(kind.name());
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let jobs: Vec<(Kind, u32)> = args.kinds.iter().flat_map(|k| (0..args.count).map(move |i| (*k, i))).collect();
    let lines: Vec<Mutex<Option<String>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..args.threads.min(jobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(kind, index)) = jobs.get(j) else { break };
                    let result = generate(kind, distortion, args.seed, index)
                        .map_err(|e| format!("{kind} {index}: {e}"))
                        .and_then(|sample| {
                            let file = format!("{}/{index}.{}", kind.name(), sample.extension);
                            let path = dir.join(&file);
                            std::fs::write(&path, &sample.image).map_err(|e| format!("{}: {e}", path.display()))?;
                            serde_json::to_string(&Line { file, truth: &sample.truth }).map_err(|e| e.to_string())
                        });
                    match result {
                        Ok(line) => {
                            if let Ok(mut slot) = lines[j].lock() {
                                *slot = Some(line);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            // Stop the other workers too.
                            next.store(jobs.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut jsonl = String::new();
    for slot in lines {
        let line = slot.into_inner().ok().flatten().ok_or("a sample was not generated")?;
        jsonl.push_str(&line);
        jsonl.push('\n');
    }
    let path = dir.join("truth.jsonl");
    std::fs::write(&path, jsonl).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(jobs.len())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let mut total = 0;
    for &distortion in &args.distortions {
        match run_level(&args, distortion) {
            Ok(n) => total += n,
            Err(e) => {
                eprintln!("faceplate-synth: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let levels: Vec<&str> = args.distortions.iter().map(|d| d.name()).collect();
    println!(
        "faceplate-synth: {total} samples ({} kinds x {} x {}) seed {} in {secs:.1} s ({:.1} ms/sample on {} threads) -> {}",
        args.kinds.len(),
        args.count,
        levels.join("+"),
        args.seed,
        1000.0 * secs / total.max(1) as f64,
        args.threads,
        args.out.display()
    );
    ExitCode::SUCCESS
}
