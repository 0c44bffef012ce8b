//! Measures SFace cosine similarities on every face in the fetched test photos, then fits a normal
//! distribution to the impostor scores and prints the cosine at false-accept rates 1e-3, 1e-4, 1e-5.
//! Pairs with known labels only: genuine = the three Obama photos; impostor = two faces in the same group
//! photo (people in one photo are different people), and any named person (Obama, Biden, the astronaut) with
//! anyone else. Pairs across two group photos are left out: the demo photos may show the same people twice.
//! docs/confidence.md explains how these numbers set the thresholds.
//!
//!   cargo run --release -p faceplate-engine --example score_distribution
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use faceplate_engine::embed::cosine;
use faceplate_engine::{DetectorSettings, Engine, EngineSettings, ImageLimits, ModelPaths};

fn models_dir() -> PathBuf {
    faceplate_engine::default_models_dir()
}

/// z such that P(Z > z) = p for a standard normal Z, for small p (the tail part of Acklam's approximation,
/// relative error below 1.2e-9).
fn normal_quantile_upper(p: f64) -> f64 {
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let q = (-2.0 * p.ln()).sqrt();
    -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
        / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
}

#[tokio::main]
async fn main() {
    let dir = models_dir();
    let engine = Engine::start(EngineSettings {
        models: ModelPaths::in_dir(&dir),
        workers: 2,
        queue_capacity: 64,
        detector: DetectorSettings::default(),
        image_limits: ImageLimits::default(),
        max_embedded_faces: 50,
    })
    .unwrap();
    let mut faces: Vec<(String, [f32; 128])> = Vec::new();
    let names = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png"]
        .into_iter()
        .map(String::from)
        .chain((1..=6).map(|n| format!("sample{n}.jpg")));
    for name in names {
        let bytes = std::fs::read(dir.join("testdata").join(&name)).expect("run scripts/fetch-models.sh");
        let analysis = engine.analyze(bytes).await.unwrap();
        for (i, face) in analysis.faces.iter().enumerate() {
            faces.push((format!("{name}#{i}"), face.embedding.unwrap()));
        }
    }
    enum Label {
        Genuine,
        Impostor,
        Unknown,
    }
    let photo = |face: &str| face.split('#').next().unwrap_or("").to_string();
    let label = |a: &str, b: &str| {
        let (pa, pb) = (photo(a), photo(b));
        let group = |p: &str| p.starts_with("sample");
        if pa.starts_with("obama") && pb.starts_with("obama") {
            Label::Genuine
        } else if pa == pb || !group(&pa) || !group(&pb) {
            Label::Impostor
        } else {
            Label::Unknown
        }
    };
    let (mut genuine, mut impostor, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..faces.len() {
        for j in i + 1..faces.len() {
            let c = cosine(&faces[i].1, &faces[j].1) as f64;
            match label(&faces[i].0, &faces[j].0) {
                Label::Genuine => genuine.push(c),
                Label::Impostor => {
                    impostor.push(c);
                    pairs.push((c, faces[i].0.clone(), faces[j].0.clone()));
                }
                Label::Unknown => {}
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("highest impostor pairs: {:?}", &pairs[..3]);
    let n = impostor.len() as f64;
    let mean = impostor.iter().sum::<f64>() / n;
    let sd = (impostor.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let max = impostor.iter().cloned().fold(f64::MIN, f64::max);
    println!("faces: {}", faces.len());
    println!("genuine pairs ({}): {:?}", genuine.len(), genuine.iter().map(|c| format!("{c:.3}")).collect::<Vec<_>>());
    println!("impostor pairs: {} mean {mean:.4} sd {sd:.4} max {max:.4}", impostor.len());
    for far in [1e-3, 1e-4, 1e-5] {
        let z = normal_quantile_upper(far);
        println!("FAR {far:e}: z {z:.3} -> cosine {:.3} (normal fit)", mean + z * sd);
    }
}
