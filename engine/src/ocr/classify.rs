//! Text-line orientation: PP-OCR's mobile angle classifier (upright or turned 180°).

use image::RgbImage;
use image::imageops;
use ort::session::Session;
use ort::value::TensorRef;

use super::{BATCH, by_aspect_ratio, normalized_bgr, resize};
use crate::error::{EngineError, EngineResult};
use crate::runtime::ModelSpec;

pub const SPEC: ModelSpec =
    ModelSpec { inputs: &[("x", &[-1, 3, -1, -1])], outputs: &[("save_infer_model/scale_0.tmp_1", &[-1, 2])] };

const HEIGHT: u32 = 48;
const WIDTH: u32 = 192;

/// Turns the crops the classifier finds upside down (probability above `threshold`) the right way up.
/// Returns which were turned.
pub fn classify(session: &mut Session, crops: &mut [RgbImage], threshold: f32) -> EngineResult<Vec<bool>> {
    let mut turned = vec![false; crops.len()];
    for batch in by_aspect_ratio(crops).chunks(BATCH) {
        let resized = batch
            .iter()
            .map(|&i| {
                let (w, h) = crops[i].dimensions();
                let width = ((f64::from(HEIGHT) * f64::from(w) / f64::from(h)).ceil() as u32).clamp(1, WIDTH);
                resize(&crops[i], width, HEIGHT)
            })
            .collect::<EngineResult<Vec<_>>>()?;
        let input = normalized_bgr(&resized.iter().collect::<Vec<_>>(), WIDTH, HEIGHT)?;
        let outputs = session.run(ort::inputs!["x" => TensorRef::from_array_view(&input)?])?;
        let (shape, probs) = outputs[0].try_extract_tensor::<f32>()?;
        if shape[..] != [batch.len() as i64, 2] {
            return Err(EngineError::Runtime(format!("angle classifier output shape {shape:?}")));
        }
        for (&i, p) in batch.iter().zip(probs.chunks_exact(2)) {
            if p[1] > p[0] && p[1] > threshold {
                imageops::rotate180_in_place(&mut crops[i]);
                turned[i] = true;
            }
        }
    }
    Ok(turned)
}
