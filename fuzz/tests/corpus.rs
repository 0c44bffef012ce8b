//! The `decode` target as a plain test on stable Rust, without cargo-fuzz: every seed must decode and
//! preprocess (so the fuzzer starts from inputs that reach the pixels), and every file in corpus/decode, plus
//! cheap deterministic mutations of the seeds (truncations, byte flips, header fields set to extremes), must run
//! through the harness without a panic.

use std::path::{Path, PathBuf};

use faceplate_engine::ImageLimits;
use faceplate_engine::imaging::decode;
use faceplate_fuzz::decode_and_preprocess;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("corpus/decode").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

#[test]
fn every_seed_decodes_and_preprocesses() {
    let seeds: Vec<PathBuf> = corpus()
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")))
        .collect();
    assert!(seeds.len() >= 8, "only {} seeds: run `cargo run --example gen_seeds`", seeds.len());
    for path in seeds {
        let bytes = std::fs::read(&path).expect("read seed");
        let image = decode(&bytes, &ImageLimits::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(image.width() >= 48 && image.height() >= 48, "{}", path.display());
        // The EXIF seeds carry a quarter turn, which decode applies.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "seed-png-exif6-48x96.png" {
            assert_eq!(image.dimensions(), (96, 48), "{name}");
        }
        if name == "seed-jpeg-exif8-64x48.jpg" {
            assert_eq!(image.dimensions(), (48, 64), "{name}");
        }
        decode_and_preprocess(&bytes);
    }
}

#[test]
fn corpus_and_mutations_do_not_panic() {
    for path in corpus() {
        let bytes = std::fs::read(&path).expect("read corpus file");
        decode_and_preprocess(&bytes);
        for cut in [0, 1, 8, 16, 33, bytes.len() / 2, bytes.len().saturating_sub(2)] {
            decode_and_preprocess(&bytes[..cut.min(bytes.len())]);
        }
        // Each header byte set to 0x00, 0xFF and 0x7F in turn: sizes, depths, counts and offsets at extremes.
        for i in 0..bytes.len().min(64) {
            for v in [0x00, 0xFF, 0x7F] {
                let mut m = bytes.clone();
                m[i] = v;
                decode_and_preprocess(&m);
            }
        }
    }
}
