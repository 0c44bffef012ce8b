//! The engine on real models and real photos (fetched by scripts/fetch-models.sh; see models/manifest.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use faceplate_engine::embed::cosine;
use faceplate_engine::{Analysis, DetectorSettings, Engine, EngineError, EngineSettings, ImageLimits, ModelPaths};

fn models_dir() -> PathBuf {
    faceplate_engine::default_models_dir()
}

fn image(name: &str) -> Vec<u8> {
    let path = models_dir().join("testdata").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-models.sh", path.display()))
}

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let settings = EngineSettings {
                models: ModelPaths::in_dir(models_dir()),
                workers: 2,
                queue_capacity: 16,
                detector: DetectorSettings::default(),
                image_limits: ImageLimits::default(),
                max_embedded_faces: 5,
            };
            Arc::new(Engine::start(settings).unwrap_or_else(|e| panic!("{e}")))
        })
        .clone()
}

async fn analyze(name: &str) -> Analysis {
    engine().analyze(image(name)).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn astronaut_has_exactly_one_face_where_expected() {
    let analysis = analyze("astronaut.png").await;
    assert_eq!(analysis.faces.len(), 1);
    let face = &analysis.faces[0];
    let b = face.detection.bbox;
    for (got, want) in [(b.x1, 179.0), (b.y1, 63.0), (b.x2, 269.0), (b.y2, 174.0)] {
        assert!((got - want).abs() < 6.0, "box {b:?} vs (179,63)-(269,174)");
    }
    assert!(face.detection.score > 0.9);
    let quality = face.quality.expect("quality");
    assert!(quality.yaw.abs() < 30.0 && quality.roll.abs() < 20.0, "{quality:?}");
    assert!(quality.sharpness > 50.0, "{quality:?}");
    let embedding = face.embedding.expect("embedding");
    let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
}

#[tokio::test]
async fn same_person_scores_high_and_different_people_low() {
    let mut embeddings = Vec::new();
    for name in ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"] {
        let analysis = analyze(name).await;
        assert_eq!(analysis.faces.len(), 1, "{name}");
        embeddings.push(analysis.faces[0].embedding.expect("embedding"));
    }
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let c = cosine(&embeddings[i], &embeddings[j]);
        assert!(c > 0.6, "obama pair {i},{j}: {c}");
    }
    for i in 0..3 {
        let c = cosine(&embeddings[i], &embeddings[3]);
        assert!(c < 0.35, "obama {i} vs biden: {c}");
    }
}

#[tokio::test]
async fn group_photos_give_plausible_counts() {
    let mut total = 0;
    for n in 1..=6 {
        let analysis = analyze(&format!("sample{n}.jpg")).await;
        assert!(!analysis.faces.is_empty(), "sample{n}");
        // Largest first; only the largest get embeddings.
        let areas: Vec<f32> = analysis.faces.iter().map(|f| f.detection.bbox.area()).collect();
        assert!(areas.windows(2).all(|w| w[0] >= w[1]));
        assert!(analysis.faces.iter().take(5).all(|f| f.embedding.is_some()));
        assert!(analysis.faces.iter().skip(5).all(|f| f.embedding.is_none()));
        total += analysis.faces.len();
    }
    // The six demo photos show 22 people.
    assert!((18..=26).contains(&total), "{total} faces");
}

#[tokio::test]
async fn bad_images_get_clear_errors() {
    let engine = engine();
    let err = engine.analyze(b"definitely not an image".to_vec()).await.unwrap_err();
    assert!(matches!(err, EngineError::UnsupportedFormat(_)), "{err}");

    let jpeg = image("obama.jpg");
    let err = engine.analyze(jpeg[..jpeg.len() / 3].to_vec()).await.unwrap_err();
    assert!(matches!(err, EngineError::CorruptImage(_)), "truncated: {err}");

    let tiny = encode(image::DynamicImage::new_rgb8(1, 1), image::ImageFormat::Png);
    let err = engine.analyze(tiny).await.unwrap_err();
    assert!(matches!(err, EngineError::BadDimensions { width: 1, height: 1, .. }), "{err}");

    let err = engine.analyze(huge_png_header(20_000, 20_000)).await.unwrap_err();
    assert!(matches!(err, EngineError::BadDimensions { width: 20_000, .. }), "{err}");

    let gif = encode(image::DynamicImage::new_rgb8(64, 64), image::ImageFormat::Gif);
    let err = engine.analyze(gif).await.unwrap_err();
    assert!(matches!(err, EngineError::UnsupportedFormat(_)), "{err}");

    let err = engine.analyze(vec![0xFF; 3 * 1024 * 1024]).await.unwrap_err();
    assert!(matches!(err, EngineError::FileTooLarge { .. }), "{err}");

    // 16-bit and grey-alpha images are converted, not refused.
    let astronaut = image::load_from_memory(&image("astronaut.png")).unwrap();
    let wide = encode(image::DynamicImage::ImageRgb16(astronaut.to_rgb16()), image::ImageFormat::Png);
    assert_eq!(engine.analyze(wide).await.unwrap().faces.len(), 1);
    let grey = encode(image::DynamicImage::ImageLumaA8(astronaut.to_luma_alpha8()), image::ImageFormat::Png);
    assert_eq!(engine.analyze(grey).await.unwrap().faces.len(), 1);

    // No face is a result, not an error.
    let blank = encode(image::DynamicImage::new_rgb8(200, 200), image::ImageFormat::Png);
    assert!(engine.analyze(blank).await.unwrap().faces.is_empty());
}

#[tokio::test]
async fn exif_orientation_is_honoured() {
    // obama.jpg rotated a quarter turn, with an EXIF tag saying how to turn it back.
    let original = image::load_from_memory(&image("obama.jpg")).unwrap();
    let rotated = original.rotate90();
    let mut jpeg = encode(rotated, image::ImageFormat::Jpeg);
    insert_exif_orientation(&mut jpeg, 8); // 8: rotate 270° clockwise to view
    let analysis = engine().analyze(jpeg).await.unwrap();
    assert_eq!((analysis.width, analysis.height), (original.width(), original.height()));
    assert_eq!(analysis.faces.len(), 1);
}

#[test]
fn engine_depends_on_neither_actix_nor_diesel() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-p", "faceplate-engine", "-e", "normal", "--prefix", "none", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("ort v"), "the tree is real: {tree}");
    for forbidden in ["actix", "diesel", "faceplate-store", "faceplate-api"] {
        assert!(!tree.lines().any(|l| l.starts_with(forbidden)), "engine depends on {forbidden}");
    }
}

fn encode(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A PNG whose header claims `width` x `height` (a decompression bomb as far as the header goes).
fn huge_png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(image::DynamicImage::new_rgb8(64, 64), image::ImageFormat::Png);
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Inserts an APP1 Exif segment with one Orientation entry right after the JPEG SOI marker.
fn insert_exif_orientation(jpeg: &mut Vec<u8>, orientation: u16) {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF header, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut segment = vec![0xFF, 0xE1];
    let len = (2 + 6 + tiff.len()) as u16;
    segment.extend_from_slice(&len.to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    jpeg.splice(2..2, segment);
}

#[tokio::test]
async fn concurrent_requests_give_the_same_vectors_as_single_runs() {
    let engine = engine();
    let names = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png", "sample2.jpg"];
    let alone: Vec<Analysis> = {
        let mut out = Vec::new();
        for name in names {
            out.push(analyze(name).await);
        }
        out
    };
    let runs_before = engine.stats().embedding_runs.load(std::sync::atomic::Ordering::Relaxed);
    let together = futures_join_all(names.iter().map(|n| engine.analyze(image(n)))).await;
    for ((name, a), b) in names.iter().zip(&alone).zip(together) {
        let b = b.unwrap();
        assert_eq!(a.faces.len(), b.faces.len(), "{name}");
        for (fa, fb) in a.faces.iter().zip(&b.faces) {
            match (fa.embedding, fb.embedding) {
                (Some(x), Some(y)) => assert!(cosine(&x, &y) > 0.9999, "{name}: batched and single runs agree"),
                (None, None) => {}
                _ => panic!("{name}: embedding presence differs"),
            }
        }
    }
    let runs = engine.stats().embedding_runs.load(std::sync::atomic::Ordering::Relaxed) - runs_before;
    let faces: usize = alone.iter().map(|a| a.faces.iter().filter(|f| f.embedding.is_some()).count()).sum();
    assert!(runs >= 1 && runs as usize <= faces, "{runs} embedding runs for {faces} faces");
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_with_busy() {
    let settings = EngineSettings {
        models: ModelPaths::in_dir(models_dir()),
        workers: 1,
        queue_capacity: 1,
        detector: DetectorSettings::default(),
        image_limits: ImageLimits::default(),
        max_embedded_faces: 5,
    };
    let engine = Engine::start(settings).unwrap();
    // All requests are submitted before the first (a detection of ~100 ms) can finish: one runs, one waits,
    // the rest are refused.
    let results = futures_join_all((0..6).map(|_| engine.analyze(image("sample1.jpg")))).await;
    let busy = results.iter().filter(|r| matches!(r, Err(EngineError::Busy))).count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(busy >= 4 && ok >= 1 && busy + ok == 6, "busy {busy}, ok {ok}");
}

#[test]
fn a_wrong_model_file_stops_start_up_with_the_fix() {
    let mut paths = ModelPaths::in_dir(models_dir());
    paths.embedder = paths.detector.clone(); // the detector where the embedder should be
    let settings = EngineSettings {
        models: paths,
        workers: 1,
        queue_capacity: 1,
        detector: DetectorSettings::default(),
        image_limits: ImageLimits::default(),
        max_embedded_faces: 5,
    };
    let message = Engine::start(settings).err().expect("refused").to_string();
    assert!(message.contains("yunet_2023mar.onnx") && message.contains("fetch-models.sh"), "{message}");
    let mut paths = ModelPaths::in_dir(models_dir());
    paths.detector = models_dir().join("no-such-model.onnx");
    let settings = EngineSettings { models: paths, ..EngineSettings::clone(&engine().settings().clone()) };
    let message = Engine::start(settings).err().expect("refused").to_string();
    assert!(message.contains("no-such-model.onnx") && message.contains("does not exist"), "{message}");
}

/// Runs the futures together; `join_all` polls each once in order first, so all are submitted before any ends.
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}
