//! YuNet (2023mar) face detection: letterbox to 640x640, run, decode the three stride levels, NMS.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use ndarray::Array4;
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{EngineError, EngineResult};
use crate::geometry::{BoxF, Point, nms};
use crate::runtime::ModelSpec;

pub const INPUT_SIZE: u32 = 640;
const STRIDES: [u32; 3] = [8, 16, 32];

pub const SPEC: ModelSpec = ModelSpec {
    inputs: &[("input", &[1, 3, 640, 640])],
    outputs: &[
        ("cls_8", &[1, 6400, 1]),
        ("cls_16", &[1, 1600, 1]),
        ("cls_32", &[1, 400, 1]),
        ("obj_8", &[1, 6400, 1]),
        ("obj_16", &[1, 1600, 1]),
        ("obj_32", &[1, 400, 1]),
        ("bbox_8", &[1, 6400, 4]),
        ("bbox_16", &[1, 1600, 4]),
        ("bbox_32", &[1, 400, 4]),
        ("kps_8", &[1, 6400, 10]),
        ("kps_16", &[1, 1600, 10]),
        ("kps_32", &[1, 400, 10]),
    ],
};

/// A detected face in source-image pixels. Landmarks: eye, eye, nose tip, mouth corner, mouth corner, in
/// image-left to image-right order for each pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: BoxF,
    pub score: f32,
    pub landmarks: [Point; 5],
}

#[derive(Debug, Clone, Copy)]
pub struct DetectorSettings {
    /// Minimum face score (sqrt(cls*obj)). 0.6 let a false face through on group photos; 0.75 did not.
    pub score_threshold: f32,
    pub nms_threshold: f32,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings { score_threshold: 0.75, nms_threshold: 0.3 }
    }
}

/// Resizes keeping the aspect ratio into the top-left of a 640x640 canvas and lays it out as the model's
/// BGR float NCHW input (0..255, no normalisation). Returns the tensor and the scale applied.
pub fn preprocess(image: &RgbImage) -> EngineResult<(Array4<f32>, f32)> {
    let (w, h) = image.dimensions();
    let scale = (INPUT_SIZE as f32 / w as f32).min(INPUT_SIZE as f32 / h as f32);
    let nw = ((w as f32 * scale).round() as u32).clamp(1, INPUT_SIZE);
    let nh = ((h as f32 * scale).round() as u32).clamp(1, INPUT_SIZE);
    let src = ImageRef::new(w, h, image.as_raw(), PixelType::U8x3)
        .map_err(|e| EngineError::Runtime(format!("resize source: {e}")))?;
    let mut dst = Image::new(nw, nh, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(fast_image_resize::FilterType::Bilinear)),
        )
        .map_err(|e| EngineError::Runtime(format!("resize: {e}")))?;
    let pixels = dst.buffer();
    let side = INPUT_SIZE as usize;
    let plane = side * side;
    let mut data = vec![0.0f32; 3 * plane];
    let (b, rest) = data.split_at_mut(plane);
    let (g, r) = rest.split_at_mut(plane);
    for (y, row) in pixels.chunks_exact(nw as usize * 3).enumerate() {
        let offset = y * side;
        for (x, rgb) in row.chunks_exact(3).enumerate() {
            // RGB in, planar BGR out.
            r[offset + x] = rgb[0] as f32;
            g[offset + x] = rgb[1] as f32;
            b[offset + x] = rgb[2] as f32;
        }
    }
    let tensor = Array4::from_shape_vec((1, 3, side, side), data)
        .map_err(|e| EngineError::Runtime(format!("input tensor: {e}")))?;
    Ok((tensor, scale))
}

/// Runs the detector and decodes every face above the threshold, best first.
pub fn detect(session: &mut Session, image: &RgbImage, settings: &DetectorSettings) -> EngineResult<Vec<Detection>> {
    let (input, scale) = preprocess(image)?;
    let outputs = session.run(ort::inputs!["input" => TensorRef::from_array_view(&input)?])?;
    let mut boxes = Vec::new();
    let mut scores = Vec::new();
    let mut landmarks = Vec::new();
    for stride in STRIDES {
        let cols = (INPUT_SIZE / stride) as usize;
        let get = |name: String| -> EngineResult<&[f32]> {
            let value = outputs.get(&name).ok_or_else(|| EngineError::Runtime(format!("missing output {name}")))?;
            Ok(value.try_extract_tensor::<f32>()?.1)
        };
        let cls = get(format!("cls_{stride}"))?;
        let obj = get(format!("obj_{stride}"))?;
        let bbox = get(format!("bbox_{stride}"))?;
        let kps = get(format!("kps_{stride}"))?;
        let s = stride as f32;
        for i in 0..cls.len() {
            let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
            if score <= settings.score_threshold {
                continue;
            }
            let (col, row) = ((i % cols) as f32, (i / cols) as f32);
            let b = &bbox[i * 4..i * 4 + 4];
            let (cx, cy) = ((col + b[0]) * s, (row + b[1]) * s);
            let (bw, bh) = (b[2].exp() * s, b[3].exp() * s);
            let k = &kps[i * 10..i * 10 + 10];
            let mut points = [[0.0f32; 2]; 5];
            for (j, point) in points.iter_mut().enumerate() {
                *point = [(k[2 * j] + col) * s / scale, (k[2 * j + 1] + row) * s / scale];
            }
            boxes.push(BoxF {
                x1: (cx - bw / 2.0) / scale,
                y1: (cy - bh / 2.0) / scale,
                x2: (cx + bw / 2.0) / scale,
                y2: (cy + bh / 2.0) / scale,
            });
            scores.push(score);
            landmarks.push(points);
        }
    }
    let (w, h) = (image.width() as f32, image.height() as f32);
    Ok(nms(&boxes, &scores, settings.nms_threshold)
        .into_iter()
        .map(|i| {
            let b = boxes[i];
            Detection {
                bbox: BoxF {
                    x1: b.x1.clamp(0.0, w),
                    y1: b.y1.clamp(0.0, h),
                    x2: b.x2.clamp(0.0, w),
                    y2: b.y2.clamp(0.0, h),
                },
                score: scores[i],
                landmarks: landmarks[i],
            }
        })
        .collect())
}
