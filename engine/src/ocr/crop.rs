//! Cutting a detected line out of the image, straightened: the quad is warped onto an upright rectangle.
//!
//! The warp follows OpenCV's `warpPerspective` with `INTER_CUBIC` and `BORDER_REPLICATE` (what PP-OCR and
//! RapidOCR crop with): Keys' cubic kernel with a = -0.75 at the exact source position (OpenCV 5; OpenCV 4
//! rounds positions to 1/32 px). imageproc's projective warp is Catmull-Rom (a = -0.5) and rounds between its
//! two passes; on a slanted line that moved pixels by up to 20 levels from OpenCV's, enough to change the
//! recogniser's confidence on a hard line from 0.999 to 0.90, so the few lines are written out here.

use image::RgbImage;
use image::imageops;

use super::Quad;
use super::detect::distance;

/// The quad's pixels as an upright `w x h` image (w, h: its longest top/bottom and left/right edges, truncated).
/// A crop at least 1.5 times taller than wide is vertical text and is turned a quarter counter-clockwise
/// (`np.rot90`, as RapidOCR does); the angle classifier fixes those that end up upside down. On a page whose
/// text runs down the image (`page_vertical`) every crop is turned unless it is 1.5 times wider than tall: a
/// short word there (`C2`) has a nearly square box and was read sideways (as `3`). The flag says whether it
/// was turned. `None` for a degenerate quad.
pub fn crop(image: &RgbImage, quad: &Quad, page_vertical: bool) -> Option<(RgbImage, bool)> {
    let out = warp(image, quad)?;
    Some(if runs_down(&out, page_vertical) { (imageops::rotate270(&out), true) } else { (out, false) })
}

/// Whether an upright cut-out line is text running down the image, so [`crop`] turns it.
pub fn runs_down(out: &RgbImage, page_vertical: bool) -> bool {
    let tall = out.height() as f32 / out.width() as f32;
    if page_vertical { tall > 1.0 / 1.5 } else { tall >= 1.5 }
}

/// The quad's pixels as an upright `w x h` image (w, h: its longest top/bottom and left/right edges, truncated),
/// never turned. `None` for a degenerate quad.
pub fn warp(image: &RgbImage, quad: &Quad) -> Option<RgbImage> {
    let w = distance(quad[0], quad[1]).max(distance(quad[2], quad[3])) as u32;
    let h = distance(quad[0], quad[3]).max(distance(quad[1], quad[2])) as u32;
    warp_to(image, quad, w, h)
}

/// The quad's pixels as an upright `w x h` image, whatever the quad's own size (magnified or shrunk). `None`
/// for a degenerate quad or size.
pub fn warp_to(image: &RgbImage, quad: &Quad, w: u32, h: u32) -> Option<RgbImage> {
    if w == 0 || h == 0 {
        return None;
    }
    let homography = Homography::rectangle_to_quad(f64::from(w), f64::from(h), quad)?;
    Some(RgbImage::from_fn(w, h, |x, y| {
        let (sx, sy) = homography.map(f64::from(x), f64::from(y));
        image::Rgb(sample_cubic(image, sx, sy))
    }))
}

/// A projective map from the crop's pixel grid to the image.
struct Homography {
    m: [f64; 8],
}

impl Homography {
    /// The map taking (0,0), (w,0), (w,h), (0,h) to the quad's corners (Heckbert's square-to-quad, scaled).
    fn rectangle_to_quad(w: f64, h: f64, quad: &Quad) -> Option<Homography> {
        let [p0, p1, p2, p3] = quad.map(|[x, y]| [f64::from(x), f64::from(y)]);
        let (dx1, dx2, dx3) = (p1[0] - p2[0], p3[0] - p2[0], p0[0] - p1[0] + p2[0] - p3[0]);
        let (dy1, dy2, dy3) = (p1[1] - p2[1], p3[1] - p2[1], p0[1] - p1[1] + p2[1] - p3[1]);
        let det = dx1 * dy2 - dx2 * dy1;
        let (g, hh) = if dx3 == 0.0 && dy3 == 0.0 {
            (0.0, 0.0)
        } else if det != 0.0 {
            ((dx3 * dy2 - dx2 * dy3) / det, (dx1 * dy3 - dx3 * dy1) / det)
        } else {
            return None;
        };
        let m = [
            (p1[0] - p0[0] + g * p1[0]) / w,
            (p3[0] - p0[0] + hh * p3[0]) / h,
            p0[0],
            (p1[1] - p0[1] + g * p1[1]) / w,
            (p3[1] - p0[1] + hh * p3[1]) / h,
            p0[1],
            g / w,
            hh / h,
        ];
        m.iter().all(|v| v.is_finite()).then_some(Homography { m })
    }

    /// The image position of crop pixel (x, y).
    fn map(&self, x: f64, y: f64) -> (f64, f64) {
        let m = &self.m;
        let d = m[6] * x + m[7] * y + 1.0;
        let d = if d == 0.0 { 0.0 } else { 1.0 / d };
        ((m[0] * x + m[1] * y + m[2]) * d, (m[3] * x + m[4] * y + m[5]) * d)
    }
}

/// Keys' cubic convolution weights for the four taps around a fraction `t` (OpenCV's `interpolateCubic`).
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let w2 = ((A + 2.0) * (1.0 - t) - (A + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// Bicubic sample at (x, y), the image's edge pixels repeated outside it.
fn sample_cubic(image: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (x0, y0) = (x.floor(), y.floor());
    let (wx, wy) = (cubic_weights(x - x0), cubic_weights(y - y0));
    let (max_x, max_y) = (i64::from(image.width()) - 1, i64::from(image.height()) - 1);
    let mut sum = [0.0f64; 3];
    for (j, wy) in wy.iter().enumerate() {
        let sy = (y0 as i64 - 1 + j as i64).clamp(0, max_y) as u32;
        for (i, wx) in wx.iter().enumerate() {
            let sx = (x0 as i64 - 1 + i as i64).clamp(0, max_x) as u32;
            let p = image.get_pixel(sx, sy).0;
            for c in 0..3 {
                sum[c] += wy * wx * f64::from(p[c]);
            }
        }
    }
    sum.map(|v| v.round().clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use image::Rgb;

    #[test]
    fn an_axis_aligned_quad_is_a_plain_crop() {
        let image = RgbImage::from_fn(40, 30, |x, y| Rgb([x as u8, y as u8, 7]));
        let (out, vertical) = crop(&image, &[[10.0, 5.0], [30.0, 5.0], [30.0, 15.0], [10.0, 15.0]], false).unwrap();
        assert!(!vertical);
        assert_eq!(out.dimensions(), (20, 10));
        assert_eq!(out.get_pixel(0, 0), &Rgb([10, 5, 7]));
        assert_eq!(out.get_pixel(19, 9), &Rgb([29, 14, 7]));
    }

    #[test]
    fn a_slanted_quad_is_straightened() {
        // A parallelogram leaning right by one pixel per row: its rows start one pixel further right each.
        let image = RgbImage::from_fn(60, 30, |x, y| Rgb([(x as i64 - y as i64).rem_euclid(256) as u8, 0, 0]));
        let quad = [[10.0, 5.0], [40.0, 5.0], [50.0, 15.0], [20.0, 15.0]];
        let (out, _) = crop(&image, &quad, false).unwrap();
        for y in 0..out.height() {
            assert!(out.get_pixel(0, y)[0].abs_diff(5) <= 1, "row {y}: {:?}", out.get_pixel(0, y));
        }
    }

    #[test]
    fn a_tall_crop_is_turned_counter_clockwise() {
        let image = RgbImage::from_fn(40, 40, |x, y| Rgb([x as u8, y as u8, 0]));
        let (out, vertical) = crop(&image, &[[0.0, 0.0], [10.0, 0.0], [10.0, 30.0], [0.0, 30.0]], false).unwrap();
        assert!(vertical);
        assert_eq!(out.dimensions(), (30, 10));
        // np.rot90: the top row is the original right column, top to bottom.
        assert_eq!(out.get_pixel(0, 0), &Rgb([9, 0, 0]));
        assert_eq!(out.get_pixel(29, 0), &Rgb([9, 29, 0]));
    }

    #[test]
    fn on_a_page_turned_a_quarter_a_short_word_is_turned_too() {
        // 10 x 13: a two-letter word running down the page.
        let image = RgbImage::from_fn(40, 40, |x, y| Rgb([x as u8, y as u8, 0]));
        let quad = [[0.0, 0.0], [10.0, 0.0], [10.0, 13.0], [0.0, 13.0]];
        assert!(!crop(&image, &quad, false).unwrap().1);
        let (out, vertical) = crop(&image, &quad, true).unwrap();
        assert!(vertical && out.dimensions() == (13, 10));
        // A line clearly across the page stays as it is.
        assert!(!crop(&image, &[[0.0, 0.0], [15.0, 0.0], [15.0, 10.0], [0.0, 10.0]], true).unwrap().1);
    }

    #[test]
    fn a_degenerate_quad_has_no_crop() {
        let image = RgbImage::new(10, 10);
        assert!(crop(&image, &[[1.0, 1.0], [1.0, 1.0], [1.0, 5.0], [1.0, 5.0]], false).is_none());
    }
}
