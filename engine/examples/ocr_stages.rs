//! Prints where OCR time goes per image: detection, classification, recognition.
//!   cargo run --release -p faceplate-engine --example ocr_stages -- [--settings NAME] IMAGE...
//! NAME picks the endpoint's settings: `text` (the default), `card`, `bank-card` or `mrz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use faceplate_engine::ocr::Ocr;
use faceplate_engine::{ModelPaths, OcrSettings};

fn main() {
    let paths = ModelPaths::in_dir(faceplate_engine::default_models_dir());
    let env = faceplate_engine::runtime::environment(&paths.runtime_library).unwrap();
    let mut ocr = Ocr::open(env, paths.ocr.as_ref().unwrap()).unwrap();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut settings = OcrSettings::default();
    if args.first().is_some_and(|a| a == "--settings") {
        settings = match args.get(1).map(String::as_str) {
            Some("text") => OcrSettings::default(),
            Some("card") => OcrSettings::card(),
            Some("bank-card") => OcrSettings::bank_card(),
            Some("mrz") => OcrSettings::machine_readable_page(),
            other => panic!("--settings takes text, card, bank-card or mrz, not {other:?}"),
        };
        args.drain(..2);
    }
    let mut total = [0.0f64; 3];
    for path in args {
        let image = image::open(&path).unwrap().to_rgb8();
        let (out, t) = ocr.read_timed(&image, &settings).unwrap();
        let ms = [t.detect, t.classify, t.recognize].map(|d| d.as_secs_f64() * 1e3);
        if std::env::var_os("LINES").is_some() {
            for line in &out.lines {
                println!("   {:?} {:.2} {:?}", line.text, line.confidence, line.quad[0]);
            }
        }
        for k in 0..3 {
            total[k] += ms[k];
        }
        println!(
            "{path} {}x{} lines {} det {:.0} cls {:.0} rec {:.0}",
            image.width(),
            image.height(),
            out.lines.len(),
            ms[0],
            ms[1],
            ms[2]
        );
    }
    println!("total det {:.0} cls {:.0} rec {:.0}", total[0], total[1], total[2]);
}
