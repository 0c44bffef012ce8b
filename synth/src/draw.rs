//! Fonts (Debian `fonts-dejavu-core` and `fonts-wqy-zenhei`, loaded once) and the drawing helpers shared by the
//! document renderers.

use std::sync::OnceLock;

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_line_segment_mut, draw_text_mut};
use imageproc::rect::Rect;

use crate::SynthError;

pub(crate) struct Fonts {
    pub sans: FontVec,
    pub sans_bold: FontVec,
    pub mono_bold: FontVec,
    /// OCR-B, the typeface ICAO 9303 prescribes for machine-readable zones.
    pub ocr_b: FontVec,
    /// WenQuanYi Zen Hei (face 0 of the collection): Chinese text, with Latin and digits of its own.
    pub cjk: FontVec,
}

const DEJAVU: &str = "/usr/share/fonts/truetype/dejavu";

fn load(path: &str) -> Result<FontVec, String> {
    let data = std::fs::read(path).map_err(|e| {
        format!(
            "{path}: {e}; install the fonts with scripts/setup.sh (fonts-dejavu-core, fonts-wqy-zenhei, fonts-ocr-b)"
        )
    })?;
    FontVec::try_from_vec_and_index(data, 0).map_err(|e| format!("{path}: not a usable font: {e}"))
}

/// The fonts, loaded on first use.
pub(crate) fn fonts() -> Result<&'static Fonts, SynthError> {
    static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();
    let loaded = FONTS.get_or_init(|| {
        Ok(Fonts {
            sans: load(&format!("{DEJAVU}/DejaVuSans.ttf"))?,
            sans_bold: load(&format!("{DEJAVU}/DejaVuSans-Bold.ttf"))?,
            mono_bold: load(&format!("{DEJAVU}/DejaVuSansMono-Bold.ttf"))?,
            ocr_b: load("/usr/share/fonts/opentype/ocr-b/OCRB.otf")?,
            cjk: load("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")?,
        })
    });
    loaded.as_ref().map_err(|e| SynthError::Fonts(e.clone()))
}

/// The scale for `size` pixels per em, as PIL's `truetype(size)` (ab_glyph's `PxScale` is the line height).
pub(crate) fn scale(font: &FontVec, size: f32) -> PxScale {
    PxScale::from(size * font.height_unscaled() / font.units_per_em().unwrap_or(1000.0))
}

/// Advance width of `text`.
pub(crate) fn width(font: &FontVec, size: f32, text: &str) -> f32 {
    let f = font.as_scaled(scale(font, size));
    text.chars().map(|c| f.h_advance(f.glyph_id(c))).sum()
}

/// Draws `text` with its top (ascent line) at `y`.
pub(crate) fn text(img: &mut RgbImage, font: &FontVec, size: f32, (x, y): (f32, f32), colour: [u8; 3], text: &str) {
    draw_text_mut(img, Rgb(colour), x.round() as i32, y.round() as i32, scale(font, size), font, text);
}

/// Draws `text` with its baseline at `baseline`: labels and values of different fonts and sizes line up.
pub(crate) fn text_on(
    img: &mut RgbImage,
    font: &FontVec,
    size: f32,
    (x, baseline): (f32, f32),
    colour: [u8; 3],
    s: &str,
) -> f32 {
    let ascent = font.as_scaled(scale(font, size)).ascent();
    text(img, font, size, (x, baseline - ascent), colour, s);
    x + width(font, size, s)
}

/// Like [`text_on`] with `spacing` extra pixels after every character (letter-spaced titles and labels).
/// Returns the x after the text.
pub(crate) fn spaced_on(
    img: &mut RgbImage,
    font: &FontVec,
    size: f32,
    (x, baseline): (f32, f32),
    colour: [u8; 3],
    s: &str,
    spacing: f32,
) -> f32 {
    let mut x = x;
    let mut buf = [0u8; 4];
    for c in s.chars() {
        let one = c.encode_utf8(&mut buf);
        x = text_on(img, font, size, (x, baseline), colour, one) + spacing;
    }
    x - spacing
}

/// How [`glyph_in_box`] sizes a glyph.
#[derive(Clone, Copy)]
pub(crate) enum Fit {
    /// Capital height fills the box (the reference glyph's height, so all capitals and digits match), width
    /// `condense` times the natural width, sitting on the box's bottom edge; squeezed further if still too wide.
    Cap { reference: char, condense: f32 },
    /// The outline fills the box in both directions (Chinese characters on plates are tall and narrow).
    Fill,
}

/// Draws one glyph, centred horizontally in `(x, y, w, h)`, scaled per `fit`.
pub(crate) fn glyph_in_box(
    img: &mut RgbImage,
    font: &FontVec,
    c: char,
    (x, y, w, h): (f32, f32, f32, f32),
    colour: [u8; 3],
    fit: Fit,
) {
    let at_100 = |g: char| {
        font.outline_glyph(font.glyph_id(g).with_scale_and_position(PxScale::from(100.0), point(0.0, 0.0)))
            .map(|o| o.px_bounds())
    };
    let Some(own) = at_100(c) else { return };
    let (sx, sy, baseline) = match fit {
        Fit::Cap { reference, condense } => {
            let cap = at_100(reference).map_or(own.height(), |r| r.height()).max(1.0);
            let sy = 100.0 * h / cap;
            let sx = (sy * condense).min(100.0 * w / own.width().max(1.0));
            (sx, sy, Some(y + h))
        }
        Fit::Fill => (100.0 * w / own.width().max(1.0), 100.0 * h / own.height().max(1.0), None),
    };
    let glyph = font.glyph_id(c).with_scale_and_position(PxScale { x: sx, y: sy }, point(0.0, 0.0));
    let Some(outline) = font.outline_glyph(glyph) else { return };
    let b = outline.px_bounds();
    let left = x + (w - b.width()) / 2.0;
    let top = match baseline {
        Some(base) => base + b.min.y,
        None => y + (h - b.height()) / 2.0,
    };
    let (iw, ih) = (img.width() as i32, img.height() as i32);
    let (left, top) = (left.round() as i32, top.round() as i32);
    outline.draw(|gx, gy, cov| {
        let (px, py) = (left + gx as i32, top + gy as i32);
        if (0..iw).contains(&px) && (0..ih).contains(&py) {
            blend(img.get_pixel_mut(px as u32, py as u32), colour, cov.clamp(0.0, 1.0));
        }
    });
}

/// `p` moved towards `colour` by `alpha`.
pub(crate) fn blend(p: &mut Rgb<u8>, colour: [u8; 3], alpha: f32) {
    for (v, c) in p.0.iter_mut().zip(colour) {
        // `+ 0.5` and a saturating cast: `round()` is a libm call, too slow per pixel.
        *v = (f32::from(*v) * (1.0 - alpha) + f32::from(c) * alpha + 0.5) as u8;
    }
}

pub(crate) fn lerp(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    [0, 1, 2].map(|i| (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t + 0.5) as u8)
}

/// Fills the image with a gradient from `a` to `b` along `angle` (radians).
pub(crate) fn gradient(img: &mut RgbImage, a: [u8; 3], b: [u8; 3], angle: f32) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (dx, dy) = (angle.cos(), angle.sin());
    let span = (w * dx.abs() + h * dy.abs()).max(1.0);
    let offset = (if dx < 0.0 { -w * dx } else { 0.0 }) + (if dy < 0.0 { -h * dy } else { 0.0 });
    for (x, y, p) in img.enumerate_pixels_mut() {
        let t = (x as f32 * dx + y as f32 * dy + offset) / span;
        *p = Rgb(lerp(a, b, t));
    }
}

pub(crate) fn rect(img: &mut RgbImage, (x, y, w, h): (f32, f32, f32, f32), colour: [u8; 3]) {
    if w >= 1.0 && h >= 1.0 {
        let r = Rect::at(x.round() as i32, y.round() as i32).of_size(w.round() as u32, h.round() as u32);
        draw_filled_rect_mut(img, r, Rgb(colour));
    }
}

/// A rectangle outline `thickness` pixels wide, drawn inwards.
pub(crate) fn frame(img: &mut RgbImage, (x, y, w, h): (f32, f32, f32, f32), thickness: f32, colour: [u8; 3]) {
    rect(img, (x, y, w, thickness), colour);
    rect(img, (x, y + h - thickness, w, thickness), colour);
    rect(img, (x, y, thickness, h), colour);
    rect(img, (x + w - thickness, y, thickness, h), colour);
}

/// A polyline through `points`.
pub(crate) fn polyline(img: &mut RgbImage, points: &[(f32, f32)], colour: [u8; 3]) {
    for pair in points.windows(2) {
        draw_line_segment_mut(img, pair[0], pair[1], Rgb(colour));
    }
}

/// Soft security-print lines (guilloche): families of sine curves in a colour close to the background.
pub(crate) fn guilloche(img: &mut RgbImage, colour: [u8; 3], rng: &mut crate::random::Rand) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let families = rng.range(2..=3);
    for _ in 0..families {
        let amp = rng.f32(0.05, 0.14) * h;
        let period = rng.f32(0.25, 0.6) * w;
        let phase_step = rng.f32(0.15, 0.35);
        let y0 = rng.f32(0.2, 0.8) * h;
        let count = rng.range(8..=14);
        for k in 0..count {
            let phase = k as f32 * phase_step;
            let dy = (k as f32 - count as f32 / 2.0) * h * 0.012;
            let points: Vec<(f32, f32)> = (0..=60)
                .map(|i| {
                    let x = w * i as f32 / 60.0;
                    (x, y0 + dy + amp * (std::f32::consts::TAU * x / period + phase).sin())
                })
                .collect();
            polyline(img, &points, colour);
        }
    }
}

/// A grey photo placeholder: a light panel with a head-and-shoulders silhouette.
pub(crate) fn photo(img: &mut RgbImage, (x, y, w, h): (f32, f32, f32, f32), rng: &mut crate::random::Rand) {
    use imageproc::drawing::draw_filled_ellipse_mut;
    let base = rng.range(200..=228u8);
    // Drawn on its own panel so that the shoulders are clipped at the panel's edge.
    let mut panel = RgbImage::from_pixel(w.round() as u32, h.round() as u32, Rgb([base, base, base.saturating_add(5)]));
    let tone = rng.range(115..=165u8);
    let colour = Rgb([tone, tone, tone.saturating_add(3)]);
    let cx = (w / 2.0).round() as i32;
    draw_filled_ellipse_mut(&mut panel, (cx, (h * 1.02).round() as i32), (w * 0.46) as i32, (h * 0.33) as i32, colour);
    draw_filled_ellipse_mut(&mut panel, (cx, (h * 0.42).round() as i32), (w * 0.22) as i32, (h * 0.21) as i32, colour);
    image::imageops::replace(img, &panel, x.round() as i64, y.round() as i64);
}
