//! OCR on the real PP-OCRv4 models (fetched by scripts/fetch-models.sh) and images rendered here with real fonts
//! (Debian `fonts-dejavu-core` and `fonts-wqy-zenhei`, installed by scripts/setup.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ab_glyph::{Font, FontVec, PxScale};
use faceplate_engine::{
    DetectorSettings, Engine, EngineError, EngineSettings, ImageLimits, ModelPaths, OcrOutput, OcrSettings,
};
use image::{ImageFormat, Rgb, RgbImage, imageops};
use imageproc::drawing::{draw_text_mut, text_size};

fn settings(workers: usize, queue_capacity: usize) -> EngineSettings {
    EngineSettings {
        models: ModelPaths::in_dir(faceplate_engine::default_models_dir()),
        workers,
        queue_capacity,
        detector: DetectorSettings::default(),
        image_limits: ImageLimits::default(),
        max_embedded_faces: 5,
    }
}

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| Arc::new(Engine::start(settings(2, 16)).unwrap_or_else(|e| panic!("{e}")))).clone()
}

struct Fonts {
    sans: FontVec,
    mono_bold: FontVec,
    cjk: FontVec,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| {
        let load = |path: &str| {
            let data = std::fs::read(path).unwrap_or_else(|e| {
                panic!("{path}: {e}; install fonts-dejavu-core and fonts-wqy-zenhei (scripts/setup.sh)")
            });
            FontVec::try_from_vec_and_index(data, 0).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        Fonts {
            sans: load("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
            mono_bold: load("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"),
            cjk: load("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
        }
    })
}

/// The scale for a font size in pixels per em (as PIL's `truetype(size)`); ab_glyph scales by line height.
fn em(font: &FontVec, size: f32) -> PxScale {
    PxScale::from(size * font.height_unscaled() / font.units_per_em().unwrap_or(1000.0))
}

fn draw(image: &mut RgbImage, font: &FontVec, size: f32, (x, y): (i32, i32), colour: [u8; 3], text: &str) {
    draw_text_mut(image, Rgb(colour), x, y, em(font, size), font, text);
}

/// One line of text with a 20 px margin.
fn line_image(text: &str, font: &FontVec, size: f32, fg: [u8; 3], bg: [u8; 3]) -> RgbImage {
    let (w, h) = text_size(em(font, size), font, text);
    let mut image = RgbImage::from_pixel(w + 40, h + 40, Rgb(bg));
    draw(&mut image, font, size, (20, 20), fg, text);
    image
}

/// A bank-card-like image (856 x 540, the ID-1 card aspect ratio).
fn bank_card() -> RgbImage {
    let f = fonts();
    let mut card = RgbImage::from_pixel(856, 540, Rgb([20, 40, 90]));
    draw(&mut card, &f.sans, 40.0, (50, 50), [255, 255, 255], "EXAMPLE BANK");
    draw(&mut card, &f.mono_bold, 56.0, (60, 290), [230, 230, 230], "6222 0212 3456 7890");
    draw(&mut card, &f.sans, 28.0, (60, 400), [230, 230, 230], "VALID THRU 12/29");
    draw(&mut card, &f.sans, 34.0, (60, 450), [230, 230, 230], "ZHANG SAN");
    card
}

const BANK_CARD_ROWS: [&str; 4] = ["EXAMPLE BANK", "6222 0212 3456 7890", "VALID THRU 12/29", "ZHANG SAN"];

/// The rows are the card's, in order. The recogniser keeps or drops a narrow space between words from one crop
/// to the next (RapidOCR too: "VALID THRU" and "VALIDTHRU" on the same card, upright and turned), so words are
/// compared without spaces; the card number's groups are detected as separate boxes, so it keeps its spaces.
fn assert_bank_card(output: &OcrOutput) {
    let rows = row_texts(output);
    let squeezed: Vec<String> = rows.iter().map(|r| without_spaces(r)).collect();
    assert_eq!(squeezed, BANK_CARD_ROWS.map(without_spaces), "{output:?}");
    assert_eq!(rows[1], "6222 0212 3456 7890", "{output:?}");
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

async fn read(image: &RgbImage) -> OcrOutput {
    engine().read_text(png(image)).await.unwrap_or_else(|e| panic!("{e}"))
}

fn row_texts(output: &OcrOutput) -> Vec<&str> {
    output.rows.iter().map(|r| r.text.as_str()).collect()
}

fn without_spaces(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Every quad lies in the image, corners clockwise from top-left.
fn assert_geometry(output: &OcrOutput) {
    let (w, h) = (output.width as f32, output.height as f32);
    for line in &output.lines {
        let q = line.quad;
        assert!(q.iter().all(|p| (0.0..=w).contains(&p[0]) && (0.0..=h).contains(&p[1])), "{line:?}");
        assert!(q[0][0] < q[1][0] && q[3][0] < q[2][0] && q[0][1] < q[3][1] && q[1][1] < q[2][1], "{line:?}");
        assert!((0.0..=1.0).contains(&line.confidence), "{line:?}");
    }
    let covered: Vec<usize> = output.rows.iter().flat_map(|r| r.lines.clone()).collect();
    assert_eq!(covered, (0..output.lines.len()).collect::<Vec<_>>());
}

#[tokio::test]
async fn reads_a_line_of_latin_text_and_digits() {
    let image = line_image("ABC 1234", &fonts().sans, 48.0, [0, 0, 0], [255, 255, 255]);
    let output = read(&image).await;
    assert_geometry(&output);
    assert_eq!((output.width, output.height), image.dimensions());
    assert_eq!(row_texts(&output), ["ABC 1234"], "{output:?}");
    assert!(output.rows[0].confidence > 0.9, "{output:?}");
    // The box surrounds the text (drawn from x = 20, y = 20) without running far past it.
    let q = output.rows[0].quad;
    assert!(q[0][0] <= 22.0 && q[0][1] <= 28.0 && q[2][0] >= image.width() as f32 - 24.0, "{q:?}");
}

#[tokio::test]
async fn reads_a_card_number_line_light_on_dark() {
    let image = line_image("6222 0212 3456 7890", &fonts().mono_bold, 44.0, [240, 240, 240], [30, 60, 120]);
    let output = read(&image).await;
    assert_geometry(&output);
    assert_eq!(row_texts(&output), ["6222 0212 3456 7890"], "{output:?}");
}

#[tokio::test]
async fn reads_a_bank_card_in_reading_order() {
    let output = read(&bank_card()).await;
    assert_geometry(&output);
    assert_bank_card(&output);
    assert_eq!(output.rotation, 0);
}

#[tokio::test]
async fn reads_a_chinese_id_card_layout() {
    let f = fonts();
    let mut card = RgbImage::from_pixel(860, 540, Rgb([235, 240, 245]));
    let black = [0, 0, 0];
    draw(&mut card, &f.cjk, 30.0, (40, 40), black, "姓名  张三");
    draw(&mut card, &f.cjk, 30.0, (40, 100), black, "性别  男    民族  汉");
    draw(&mut card, &f.cjk, 30.0, (40, 160), black, "出生  1990年3月7日");
    draw(&mut card, &f.cjk, 30.0, (40, 220), black, "住址  北京市东城区景山前街4号");
    draw(&mut card, &f.cjk, 30.0, (40, 420), black, "公民身份号码");
    draw(&mut card, &f.mono_bold, 32.0, (260, 418), black, "11010119900307123X");
    let output = read(&card).await;
    assert_geometry(&output);
    // Whether the detector splits a label from its value is its business; the text of each row is ours.
    let rows: Vec<String> = output.rows.iter().map(|r| without_spaces(&r.text)).collect();
    assert_eq!(
        rows,
        [
            "姓名张三",
            "性别男民族汉",
            "出生1990年3月7日",
            "住址北京市东城区景山前街4号",
            "公民身份号码11010119900307123X"
        ],
        "{output:?}"
    );
    // The number is read exactly, as its own line or at the end of the label's.
    let last = output.rows.last().unwrap();
    let number = output.lines[last.lines.clone()].last().unwrap();
    assert!(number.text.ends_with("11010119900307123X"), "{number:?}");
    assert!(number.confidence > 0.9, "{number:?}");
}

#[tokio::test]
async fn upside_down_text_is_turned_by_the_angle_classifier() {
    let card = imageops::rotate180(&bank_card());
    let output = read(&card).await;
    assert_geometry(&output);
    // Read as the card reads, from the image's bottom right.
    assert_bank_card(&output);
    assert_eq!(output.rotation, 180);
    assert!(output.lines[0].quad[0][1] > 400.0, "{output:?}");
    // Without the classifier the same crops are read upside down.
    let settings = OcrSettings { classify_angle: false, ..OcrSettings::default() };
    let unturned = engine().read_text_with(png(&card), settings).await.unwrap();
    assert!(!row_texts(&unturned).contains(&"6222 0212 3456 7890"), "{unturned:?}");
}

#[tokio::test]
async fn vertical_lines_are_read_whichever_way_they_run() {
    let line = line_image("6222 0212 3456 7890", &fonts().mono_bold, 44.0, [0, 0, 0], [255, 255, 255]);
    // Top to bottom (turned clockwise) and bottom to top (counter-clockwise: upside down once straightened).
    for (image, rotation) in [(imageops::rotate90(&line), 90), (imageops::rotate270(&line), 270)] {
        let output = read(&image).await;
        assert_geometry(&output);
        assert_eq!(row_texts(&output), ["6222 0212 3456 7890"], "{output:?}");
        assert_eq!(output.rotation, rotation);
        for q in output.lines.iter().map(|l| l.quad) {
            assert!(q[2][1] - q[0][1] > 1.5 * (q[2][0] - q[0][0]), "a tall box: {q:?}");
        }
    }
}

#[tokio::test]
async fn an_image_without_text_has_no_lines() {
    let image = RgbImage::from_fn(640, 480, |x, y| Rgb([(x / 3) as u8, (y / 2) as u8, 128]));
    let output = read(&image).await;
    assert_eq!((output.width, output.height), (640, 480));
    assert!(output.lines.is_empty() && output.rows.is_empty(), "{output:?}");
}

#[tokio::test]
async fn tiny_and_corrupt_images_are_refused() {
    let tiny = png(&RgbImage::from_pixel(20, 20, Rgb([255, 255, 255])));
    let result = engine().read_text(tiny).await;
    assert!(matches!(result, Err(EngineError::BadDimensions { width: 20, height: 20, .. })), "{result:?}");
    let mut corrupt = png(&bank_card());
    corrupt.truncate(corrupt.len() / 2);
    let result = engine().read_text(corrupt).await;
    assert!(matches!(result, Err(EngineError::CorruptImage(_))), "{result:?}");
    let result = engine().read_text(b"not an image at all".to_vec()).await;
    assert!(matches!(result, Err(EngineError::UnsupportedFormat(_))), "{result:?}");
}

#[tokio::test]
async fn ocr_shares_the_bounded_queue_and_refuses_at_once_when_full() {
    let engine = Engine::start(settings(1, 1)).unwrap();
    let card = png(&bank_card());
    // All are submitted before the first (hundreds of ms) can finish: one runs, one waits, the rest are refused.
    let results = futures_util::future::join_all((0..6).map(|_| engine.read_text(card.clone()))).await;
    let busy = results.iter().filter(|r| matches!(r, Err(EngineError::Busy))).count();
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(busy >= 4 && !ok.is_empty() && busy + ok.len() == 6, "busy {busy}, ok {}", ok.len());
    ok.iter().for_each(|o| assert_bank_card(o));
}

#[tokio::test]
async fn without_ocr_models_configured_faces_work_and_reading_text_says_why() {
    let mut no_ocr = settings(1, 4);
    no_ocr.models.ocr = None;
    let engine = Engine::start(no_ocr).unwrap();
    let message = engine.read_text(png(&bank_card())).await.expect_err("refused").to_string();
    assert!(message.contains("OCR is not configured"), "{message}");
    let photo = std::fs::read(faceplate_engine::default_models_dir().join("testdata/astronaut.png")).unwrap();
    assert_eq!(engine.analyze(photo).await.unwrap().faces.len(), 1);
}

#[test]
fn a_missing_or_wrong_ocr_model_stops_start_up_with_the_fix() {
    let mut missing = settings(1, 1);
    let paths = missing.models.ocr.as_mut().unwrap();
    paths.recognizer = PathBuf::from("/nonexistent/ch_PP-OCRv4_rec_infer.onnx");
    let message = Engine::start(missing).err().expect("refused").to_string();
    assert!(message.contains("ch_PP-OCRv4_rec_infer.onnx") && message.contains("does not exist"), "{message}");
    assert!(message.contains("fetch-models.sh"), "{message}");

    // The detector where the recogniser should be: the wrong outputs are named.
    let mut wrong = settings(1, 1);
    let paths = wrong.models.ocr.as_mut().unwrap();
    paths.recognizer = paths.detector.clone();
    let message = Engine::start(wrong).err().expect("refused").to_string();
    assert!(message.contains("softmax_11.tmp_0") && message.contains("fetch-models.sh"), "{message}");
}

/// Real photos: OpenCV's scene-text samples (Debian `opencv-doc`, fetched by scripts/fetch-models.sh). Signs at
/// an angle, in daylight, in several fonts: the words a person reads on them are found (case and spaces aside).
#[tokio::test]
async fn reads_the_signs_in_real_scene_text_photos() {
    let expected: [(&str, &[&str]); 5] = [
        ("scenetext01", &["NOTICE", "DOUBLE", "PARKING", "PROHIBITED"]),
        ("scenetext02", &["SPORTSCENTRE", "CONFERENCECENTRE", "CARPARKS"]),
        ("scenetext03", &["COPYCENTRE"]),
        ("scenetext05", &["NOPARKING"]),
        ("scenetext06", &["GALLERIES"]),
    ];
    for (name, words) in expected {
        let path = faceplate_engine::default_models_dir().join(format!("testdata/{name}.jpg"));
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-models.sh", path.display()));
        let output = engine().read_text(bytes).await.unwrap();
        let read: String = output.lines.iter().map(|l| l.text.to_uppercase()).collect::<Vec<_>>().join("|");
        let read = without_spaces(&read);
        for word in words {
            assert!(read.contains(word), "{name}: {word} not in {read}");
        }
    }
}

/// The cache holds the OCR models as `models/tools/fold_affine.py` rewrites them (fewer operators, the same
/// weights) and, under `upstream/`, as RapidOCR ships them. Both read the same lines, boxes and confidences from
/// a rendered card and the real scene photos.
#[test]
fn the_folded_ocr_models_read_what_the_upstream_ones_do() {
    let dir = faceplate_engine::default_models_dir();
    let paths = ModelPaths::in_dir(&dir);
    let env = faceplate_engine::runtime::environment(&paths.runtime_library).unwrap();
    let mut folded = faceplate_engine::ocr::Ocr::open(env, paths.ocr.as_ref().unwrap()).unwrap();
    let mut upstream =
        faceplate_engine::ocr::Ocr::open(env, &faceplate_engine::OcrModelPaths::in_dir(dir.join("upstream")))
            .unwrap_or_else(|e| panic!("{e}; run scripts/fetch-models.sh"));
    let mut images = vec![("bank card".to_string(), bank_card())];
    for n in [1, 2, 3, 5, 6] {
        let path = dir.join(format!("testdata/scenetext0{n}.jpg"));
        images.push((path.display().to_string(), image::open(&path).unwrap().to_rgb8()));
    }
    let settings = OcrSettings::default();
    for (name, image) in images {
        let (ours, theirs) = (folded.read(&image, &settings).unwrap(), upstream.read(&image, &settings).unwrap());
        assert!(!theirs.lines.is_empty(), "{name}");
        assert_eq!(ours.lines.len(), theirs.lines.len(), "{name}: {ours:?}\n{theirs:?}");
        for (a, b) in ours.lines.iter().zip(&theirs.lines) {
            assert_eq!(a.text, b.text, "{name}");
            assert!((a.confidence - b.confidence).abs() < 1e-3, "{name}: {a:?} {b:?}");
            let apart = a.quad.iter().zip(&b.quad).map(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs()));
            assert!(apart.fold(0.0, f32::max) <= 1.0, "{name}: {a:?} {b:?}");
        }
    }
}
