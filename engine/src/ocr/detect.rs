//! Text detection: PP-OCRv4 DBNet. The model gives a per-pixel text probability; text lines are the connected
//! regions of the thresholded map, each turned into a rotated rectangle and grown ("unclipped") back to the full
//! text height, as RapidOCR 1.4.4 (`ch_ppocr_det`) does.

use image::{GrayImage, Luma, RgbImage};
use imageproc::point::Point;
use imageproc::region_labelling::{Connectivity, connected_components};
use ort::session::Session;
use ort::value::TensorRef;

use super::{OcrSettings, Quad, normalized_bgr, resize};
use crate::error::{EngineError, EngineResult};
use crate::runtime::{self, ModelSpec};

pub const SPEC: ModelSpec =
    ModelSpec { inputs: &[("x", &[-1, 3, -1, -1])], outputs: &[("sigmoid_0.tmp_0", &[-1, 1, -1, -1])] };

/// Detector inputs up to this many pixels leave their buffers in the session's memory arena for the next run;
/// larger ones give them back (about 0.4 GB per million input pixels; most photos are 0.5-1.5 million).
const KEEP_BUFFERS_UP_TO: u64 = 1_600 * 1_200;

/// The model's input size for an image, as RapidOCR sizes it: an image larger than `max_side` is first shrunk
/// to it, then a short side under `limit_side` is scaled up to it, the long side then capped at
/// `max_upscaled_side` (RapidOCR has no cap: a 48 x 4096 strip would become 736 x 62,805); each side rounded to
/// a multiple of 32 (at least 32).
pub fn input_size(width: u32, height: u32, settings: &OcrSettings) -> (u32, u32) {
    scaled_size(width, height, input_scale(width, height, settings))
}

/// The factor [`input_size`] scales an image by (before rounding to multiples of 32).
pub fn input_scale(width: u32, height: u32, settings: &OcrSettings) -> f64 {
    let (w, h) = (f64::from(width), f64::from(height));
    let (short, long) = (w.min(h), w.max(h));
    let mut ratio = (f64::from(settings.max_side) / long).min(1.0);
    let limit = f64::from(settings.limit_side);
    if short * ratio < limit {
        ratio = (limit / short).min(f64::from(settings.max_upscaled_side) / long);
    }
    ratio
}

/// An image's size scaled by `scale`, each side rounded to a multiple of 32 (at least 32).
fn scaled_size(width: u32, height: u32, scale: f64) -> (u32, u32) {
    let round32 = |v: u32| ((f64::from(v) * scale / 32.0).round() as u32).max(1) * 32;
    (round32(width), round32(height))
}

/// Finds the text lines in an image: quadrilaterals in image pixels, corners top-left, top-right, bottom-right,
/// bottom-left, in no particular order.
pub fn detect(session: &mut Session, image: &RgbImage, settings: &OcrSettings) -> EngineResult<Vec<Quad>> {
    detect_scaled(session, image, settings, input_scale(image.width(), image.height(), settings))
}

/// [`detect`] with the image scaled by `scale` for the model.
pub fn detect_scaled(
    session: &mut Session,
    image: &RgbImage,
    settings: &OcrSettings,
    scale: f64,
) -> EngineResult<Vec<Quad>> {
    let (w, h) = scaled_size(image.width(), image.height(), scale);
    let resized = resize(image, w, h)?;
    let input = normalized_bgr(&[&resized], w, h)?;
    let inputs = ort::inputs!["x" => TensorRef::from_array_view(&input)?];
    let shrinking;
    let outputs = if u64::from(w) * u64::from(h) > KEEP_BUFFERS_UP_TO {
        shrinking = runtime::shrinking_arena()?;
        session.run_with_options(inputs, &shrinking)?
    } else {
        session.run(inputs)?
    };
    let (shape, prob) = outputs[0].try_extract_tensor::<f32>()?;
    if shape[..] != [1, 1, i64::from(h), i64::from(w)] {
        return Err(EngineError::Runtime(format!("text detector output shape {shape:?}, expected [1, 1, {h}, {w}]")));
    }
    Ok(boxes_from_probabilities(prob, w, h, image.width(), image.height(), settings))
}

/// DB post-processing of a `width` x `height` probability map into quads in a `source_width` x `source_height`
/// image.
pub fn boxes_from_probabilities(
    prob: &[f32],
    width: u32,
    height: u32,
    source_width: u32,
    source_height: u32,
    settings: &OcrSettings,
) -> Vec<Quad> {
    let map = ProbabilityMap { prob, width: width as usize, height: height as usize };
    let mask = dilated_mask(&map, settings.binary_threshold);
    let mut quads = Vec::new();
    for region in regions(&mask).into_iter().take(settings.max_candidates) {
        let Some(rect) = min_area_rect(&convex_hull(region)) else { continue };
        if rect.short_side() < 3.0 {
            continue;
        }
        if map.mean_inside(&rect.corners()) < settings.box_threshold {
            continue;
        }
        let grown = rect.unclipped(settings.unclip_ratio);
        if grown.short_side() < 5.0 {
            continue;
        }
        let (sx, sy) = (f64::from(source_width) / f64::from(width), f64::from(source_height) / f64::from(height));
        let (max_x, max_y) = (source_width.saturating_sub(1) as f32, source_height.saturating_sub(1) as f32);
        let corners = grown.corners().map(|[x, y]| {
            // Scaled and rounded like RapidOCR, then kept on the image.
            [((x * sx).round() as f32).clamp(0.0, max_x), ((y * sy).round() as f32).clamp(0.0, max_y)]
        });
        let quad = order_corners(corners);
        let (top, left) = (distance(quad[0], quad[1]), distance(quad[0], quad[3]));
        if top.trunc() <= 3.0 || left.trunc() <= 3.0 {
            continue;
        }
        quads.push(quad);
    }
    quads
}

struct ProbabilityMap<'a> {
    prob: &'a [f32],
    width: usize,
    height: usize,
}

impl ProbabilityMap<'_> {
    /// The mean probability over the pixels a polygon covers, RapidOCR's "fast" box score: its vertices are
    /// truncated to whole pixels and filled like OpenCV's `fillPoly`, boundary included (here: pixel centres
    /// inside, or within half a pixel of an edge).
    fn mean_inside(&self, corners: &[[f64; 2]; 4]) -> f32 {
        let poly = corners.map(|[x, y]| [x.trunc(), y.trunc()]);
        let (w, h) = (self.width as f64, self.height as f64);
        let bound = |v: f64, max: f64| v.clamp(0.0, max - 1.0) as usize;
        let x0 = bound(poly.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min).floor(), w);
        let x1 = bound(poly.iter().map(|p| p[0]).fold(f64::NEG_INFINITY, f64::max).ceil(), w);
        let y0 = bound(poly.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min).floor(), h);
        let y1 = bound(poly.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max).ceil(), h);
        let (mut sum, mut count) = (0.0f64, 0usize);
        for y in y0..=y1 {
            let row = &self.prob[y * self.width..(y + 1) * self.width];
            for (x, &p) in row.iter().enumerate().take(x1 + 1).skip(x0) {
                if covers(&poly, [x as f64, y as f64]) {
                    sum += f64::from(p);
                    count += 1;
                }
            }
        }
        if count == 0 { 0.0 } else { (sum / count as f64) as f32 }
    }
}

/// Whether a convex polygon (possibly degenerate) covers a pixel centre, its outline counting half a pixel wide.
fn covers(poly: &[[f64; 2]; 4], p: [f64; 2]) -> bool {
    let (mut positive, mut negative) = (false, false);
    for i in 0..4 {
        let (a, b) = (poly[i], poly[(i + 1) % 4]);
        let cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
        positive |= cross > 0.0;
        negative |= cross < 0.0;
    }
    if !(positive && negative) {
        return true;
    }
    (0..4).any(|i| segment_distance(poly[i], poly[(i + 1) % 4], p) <= 0.5)
}

fn segment_distance(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2).clamp(0.0, 1.0) } else { 0.0 };
    (p[0] - a[0] - t * dx).hypot(p[1] - a[1] - t * dy)
}

/// `prob > threshold`, then a 2x2 dilation as OpenCV's `dilate` with a 2x2 kernel does it (anchor at the
/// kernel's bottom-right: a pixel is set when it or its left, upper or upper-left neighbour is).
fn dilated_mask(map: &ProbabilityMap<'_>, threshold: f32) -> GrayImage {
    let (w, h) = (map.width, map.height);
    let on = |x: usize, y: usize| map.prob[y * w + x] > threshold;
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let set = on(x, y) || (x > 0 && on(x - 1, y)) || (y > 0 && (on(x, y - 1) || (x > 0 && on(x - 1, y - 1))));
        Luma([if set { 255 } else { 0 }])
    })
}

/// The 8-connected regions of the mask, top to bottom by first pixel, each as the first and last pixel of every
/// run in each of its rows: enough for the convex hull (and far fewer points than the region has).
fn regions(mask: &GrayImage) -> Vec<Vec<Point<i32>>> {
    let labels = connected_components(mask, Connectivity::Eight, Luma([0u8]));
    let (w, h) = labels.dimensions();
    let mut regions: Vec<Vec<Point<i32>>> = Vec::new();
    for y in 0..h {
        let row = &labels.as_raw()[(y * w) as usize..((y + 1) * w) as usize];
        for (x, &label) in row.iter().enumerate() {
            if label == 0 {
                continue;
            }
            let starts = x == 0 || row[x - 1] != label;
            let ends = x + 1 == row.len() || row[x + 1] != label;
            if starts || ends {
                let index = label as usize - 1;
                if regions.len() <= index {
                    regions.resize_with(index + 1, Vec::new);
                }
                regions[index].push(Point::new(x as i32, y as i32));
            }
        }
    }
    regions.retain(|r| !r.is_empty());
    regions
}

fn convex_hull(points: Vec<Point<i32>>) -> Vec<[f64; 2]> {
    imageproc::geometry::convex_hull(points).into_iter().map(|p| [f64::from(p.x), f64::from(p.y)]).collect()
}

/// A rotated rectangle: centre, unit vector along its first side, half side lengths.
#[derive(Debug, Clone, Copy)]
struct RotatedRect {
    center: [f64; 2],
    axis: [f64; 2],
    half: [f64; 2],
}

impl RotatedRect {
    fn short_side(&self) -> f64 {
        2.0 * self.half[0].min(self.half[1])
    }

    fn corners(&self) -> [[f64; 2]; 4] {
        let [c, u] = [self.center, self.axis];
        let v = [-u[1], u[0]];
        let [a, b] = self.half;
        [[-a, -b], [a, -b], [a, b], [-a, b]].map(|[s, t]| [c[0] + s * u[0] + t * v[0], c[1] + s * u[1] + t * v[1]])
    }

    /// DB's "unclip": the polygon offset outward by d = area * ratio / perimeter with round joins (pyclipper),
    /// then the minimum-area rectangle around that. For a w x h rectangle the offset shape is the rectangle
    /// dilated by a disc of radius d (a rounded rectangle), whose width in a direction at angle t to the sides
    /// is w|cos t| + h|sin t| + 2d. A bounding rectangle at angle t has area
    /// (w c + h s + 2d)(w s + h c + 2d) = wh + (w² + h²)cs + 2d(c + s)(w + h) + 4d² (c, s = |cos t|, |sin t|),
    /// which is smallest at t = 0 (cs = 0 and c + s = 1 there, cs ≥ 0 and c + s ≥ 1 everywhere). So the result
    /// is the same rectangle with each side grown by 2d. pyclipper's integer, arc-approximated polygon (vertices
    /// on the arc, 0.25 px tolerance) moves it by less than a pixel.
    fn unclipped(&self, ratio: f64) -> RotatedRect {
        let [a, b] = self.half;
        let perimeter = 4.0 * (a + b);
        let d = if perimeter > 0.0 { 4.0 * a * b * ratio / perimeter } else { 0.0 };
        RotatedRect { half: [a + d, b + d], ..*self }
    }
}

/// The minimum-area rectangle around a convex polygon (rotating calipers: one side lies on a hull edge).
/// imageproc's `min_area_rect` rounds the corners outward to whole pixels and skips the closing edge, so the
/// few lines are written out here to follow OpenCV's `minAreaRect`.
fn min_area_rect(hull: &[[f64; 2]]) -> Option<RotatedRect> {
    let first = *hull.first()?;
    let mut best: Option<(f64, RotatedRect)> = None;
    for i in 0..hull.len() {
        let (p, q) = (hull[i], hull[(i + 1) % hull.len()]);
        let length = (q[0] - p[0]).hypot(q[1] - p[1]);
        if length == 0.0 {
            continue;
        }
        let u = [(q[0] - p[0]) / length, (q[1] - p[1]) / length];
        let v = [-u[1], u[0]];
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for point in hull {
            let d = [point[0] - first[0], point[1] - first[1]];
            for (k, axis) in [u, v].iter().enumerate() {
                let t = d[0] * axis[0] + d[1] * axis[1];
                lo[k] = lo[k].min(t);
                hi[k] = hi[k].max(t);
            }
        }
        let area = (hi[0] - lo[0]) * (hi[1] - lo[1]);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (s, t) = ((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0);
            let center = [first[0] + s * u[0] + t * v[0], first[1] + s * u[1] + t * v[1]];
            best = Some((area, RotatedRect { center, axis: u, half: [(hi[0] - lo[0]) / 2.0, (hi[1] - lo[1]) / 2.0] }));
        }
    }
    Some(best.map(|(_, r)| r).unwrap_or(RotatedRect { center: first, axis: [1.0, 0.0], half: [0.0, 0.0] }))
}

/// Corners as top-left, top-right, bottom-right, bottom-left: the two leftmost are the left side (the upper one
/// first), the two rightmost the right side (RapidOCR's `order_points_clockwise`).
pub fn order_corners(mut points: [[f32; 2]; 4]) -> Quad {
    points.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let [l0, l1, r0, r1] = points;
    let (tl, bl) = if l1[1] < l0[1] { (l1, l0) } else { (l0, l1) };
    let (tr, br) = if r1[1] < r0[1] { (r1, r0) } else { (r0, r1) };
    [tl, tr, br, bl]
}

pub(crate) fn distance(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn input_size_shrinks_large_images_and_scales_small_ones_up_to_736() {
        let settings = OcrSettings::default();
        assert_eq!(input_size(856, 540, &settings), (1152, 736));
        assert_eq!(input_size(736, 1000, &settings), (736, 992));
        assert_eq!(input_size(4000, 3000, &settings), (2016, 1504));
        assert_eq!(input_size(3000, 1000, &settings), (2208, 736));
        // A line image is scaled up to 736 high where its width allows...
        assert_eq!(input_size(574, 92, &settings), (3584, 576));
        assert_eq!(input_size(300, 100, &settings), (2208, 736));
        // ...a strip only as far as the cap.
        assert_eq!(input_size(4096, 48, &settings), (3584, 32));
    }

    #[test]
    fn min_area_rect_of_a_rotated_square_is_the_square() {
        let hull = [[0.0, 5.0], [5.0, 0.0], [10.0, 5.0], [5.0, 10.0]];
        let rect = min_area_rect(&hull).unwrap();
        assert!((rect.short_side() - 50f64.sqrt()).abs() < 1e-9, "{rect:?}");
        assert!((rect.center[0] - 5.0).abs() < 1e-9 && (rect.center[1] - 5.0).abs() < 1e-9);
    }

    #[test]
    fn unclip_grows_each_side_by_twice_the_offset() {
        // 100 x 20: d = 2000 * 1.6 / 240 = 13.33..., so 126.67 x 46.67.
        let rect = RotatedRect { center: [50.0, 10.0], axis: [1.0, 0.0], half: [50.0, 10.0] };
        let grown = rect.unclipped(1.6);
        assert!((grown.half[0] * 2.0 - (100.0 + 2.0 * 2000.0 * 1.6 / 240.0)).abs() < 1e-9);
        assert!((grown.half[1] * 2.0 - (20.0 + 2.0 * 2000.0 * 1.6 / 240.0)).abs() < 1e-9);
    }

    #[test]
    fn corners_are_ordered_clockwise_from_top_left() {
        let quad = order_corners([[10.0, 20.0], [0.0, 0.0], [0.0, 20.0], [10.0, 0.0]]);
        assert_eq!(quad, [[0.0, 0.0], [10.0, 0.0], [10.0, 20.0], [0.0, 20.0]]);
    }

    #[test]
    fn a_solid_block_becomes_one_box_grown_around_it() {
        // A 200 x 100 map with text probability 0.9 in x 40..160, y 40..60.
        let (w, h) = (200u32, 100u32);
        let prob: Vec<f32> = (0..w * h)
            .map(|i| if (40..160).contains(&(i % w)) && (40..60).contains(&(i / w)) { 0.9 } else { 0.0 })
            .collect();
        let quads = boxes_from_probabilities(&prob, w, h, w * 2, h * 2, &OcrSettings::default());
        assert_eq!(quads.len(), 1, "{quads:?}");
        let q = quads[0];
        // Region x 40..=160, y 40..=60 after dilation: 120 x 20, d = 2400 * 1.6 / 280 = 13.7; doubled in the source.
        for (got, want) in [(q[0][0], 2.0 * 26.3), (q[0][1], 2.0 * 26.3), (q[2][0], 2.0 * 173.7), (q[2][1], 2.0 * 73.7)]
        {
            assert!((got - want).abs() <= 1.5, "{q:?}");
        }
    }

    #[test]
    fn an_empty_map_has_no_boxes() {
        assert!(boxes_from_probabilities(&[0.0; 64 * 64], 64, 64, 64, 64, &OcrSettings::default()).is_empty());
    }
}
