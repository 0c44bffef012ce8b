//! SFace (2021dec) face embedding: align to the ArcFace template, 112x112 RGB 0..255 in, 128-d out, L2-normalised.

use image::RgbImage;
use ndarray::Array4;
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{EngineError, EngineResult};
use crate::geometry::{ARCFACE_TEMPLATE, Point, Similarity};
use crate::runtime::ModelSpec;

pub const CROP: usize = 112;
pub const DIMENSIONS: usize = 128;

pub const SPEC: ModelSpec = ModelSpec { inputs: &[("data", &[-1, 3, 112, 112])], outputs: &[("fc1", &[-1, 128])] };

/// Warps the face so its landmarks land on the ArcFace template: 112x112 RGB, bilinear, black outside.
pub fn align(image: &RgbImage, landmarks: &[Point; 5]) -> RgbImage {
    let to_template = Similarity::estimate(landmarks, &ARCFACE_TEMPLATE);
    let to_source = to_template.inverse();
    let (w, h) = (image.width() as i64, image.height() as i64);
    let mut out = RgbImage::new(CROP as u32, CROP as u32);
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let [sx, sy] = to_source.apply([x as f32, y as f32]);
        let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let sample = |xx: i64, yy: i64| -> [f32; 3] {
            if xx < 0 || yy < 0 || xx >= w || yy >= h {
                return [0.0; 3];
            }
            let p = image.get_pixel(xx as u32, yy as u32).0;
            [p[0] as f32, p[1] as f32, p[2] as f32]
        };
        let (a, b, c, d) = (sample(x0, y0), sample(x0 + 1, y0), sample(x0, y0 + 1), sample(x0 + 1, y0 + 1));
        for ch in 0..3 {
            let top = a[ch] * (1.0 - fx) + b[ch] * fx;
            let bottom = c[ch] * (1.0 - fx) + d[ch] * fx;
            pixel.0[ch] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Embeds aligned crops in one batch; each result is unit length.
pub fn embed(session: &mut Session, crops: &[RgbImage]) -> EngineResult<Vec<[f32; DIMENSIONS]>> {
    if crops.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = Array4::<f32>::zeros((crops.len(), 3, CROP, CROP));
    for (n, crop) in crops.iter().enumerate() {
        for (x, y, p) in crop.enumerate_pixels() {
            for ch in 0..3 {
                input[[n, ch, y as usize, x as usize]] = p.0[ch] as f32;
            }
        }
    }
    let outputs = session.run(ort::inputs!["data" => TensorRef::from_array_view(&input)?])?;
    let (_, values) = outputs["fc1"].try_extract_tensor::<f32>()?;
    if values.len() != crops.len() * DIMENSIONS {
        return Err(EngineError::Runtime(format!(
            "embedder returned {} values for {} faces",
            values.len(),
            crops.len()
        )));
    }
    Ok(values
        .chunks_exact(DIMENSIONS)
        .map(|v| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            let mut out = [0.0; DIMENSIONS];
            for (o, x) in out.iter_mut().zip(v) {
                *o = x / norm;
            }
            out
        })
        .collect())
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32; DIMENSIONS], b: &[f32; DIMENSIONS]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
