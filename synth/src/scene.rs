//! Putting a flat document into a photo: backgrounds, the perspective warp, and the camera's defects (blur,
//! noise, glare, exposure, JPEG).

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{GrayImage, ImageEncoder, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use imageproc::drawing::{draw_filled_ellipse_mut, draw_polygon_mut};
use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp_into};
use imageproc::point::Point;

use crate::draw::{gradient, lerp};
use crate::random::Rand;
use crate::{Distortion, Quad, SynthError};

/// `img` as premultiplied RGBA, with corners rounded to `radius` (anti-aliased): cards have round corners, and
/// premultiplied pixels interpolate correctly against the transparent border during the warp.
pub(crate) fn with_round_corners(img: &RgbImage, radius: f32) -> RgbaImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    RgbaImage::from_fn(img.width(), img.height(), |x, y| {
        let Rgb([r, g, b]) = *img.get_pixel(x, y);
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        let (cx, cy) = (px.clamp(radius, w - radius), py.clamp(radius, h - radius));
        if cx == px || cy == py {
            return Rgba([r, g, b, 255]);
        }
        let d = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt();
        let a = (radius - d + 0.5).clamp(0.0, 1.0);
        let pm = |v: u8| (f32::from(v) * a + 0.5) as u8;
        Rgba([pm(r), pm(g), pm(b), (a * 255.0 + 0.5) as u8])
    })
}

fn bbox(quad: &Quad) -> (f32, f32, f32, f32) {
    let xs = quad.iter().map(|p| p[0]);
    let ys = quad.iter().map(|p| p[1]);
    let min_x = xs.clone().fold(f32::INFINITY, f32::min);
    let max_x = xs.fold(f32::NEG_INFINITY, f32::max);
    let min_y = ys.clone().fold(f32::INFINITY, f32::min);
    let max_y = ys.fold(f32::NEG_INFINITY, f32::max);
    (min_x, min_y, max_x, max_y)
}

fn side(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Warps premultiplied `src` so that its corners (TL, TR, BR, BL) land on `quad` in `dst`, blending along the
/// anti-aliased edges.
pub(crate) fn composite(dst: &mut RgbImage, src: &RgbaImage, quad: &Quad) -> Result<(), SynthError> {
    let (min_x, min_y, max_x, max_y) = bbox(quad);
    let x0 = min_x.floor().max(0.0);
    let y0 = min_y.floor().max(0.0);
    let x1 = (max_x.ceil() + 1.0).min(dst.width() as f32);
    let y1 = (max_y.ceil() + 1.0).min(dst.height() as f32);
    if x1 <= x0 || y1 <= y0 {
        return Ok(());
    }
    // Upright at whole pixels and the same size (clean samples): a plain blend, no warp.
    let [[ax, ay], [bx, by], [cx, cy], [dx, dy]] = *quad;
    let upright = ay == by && bx == cx && cy == dy && dx == ax && ax.fract() == 0.0 && ay.fract() == 0.0;
    if upright && bx - ax == src.width() as f32 && cy - by == src.height() as f32 && ax >= 0.0 && ay >= 0.0 {
        blend_premultiplied(dst, src, (ax as u32, ay as u32));
        return Ok(());
    }
    // Bilinear sampling aliases when shrinking by more than ~1.3x (thin strokes vanish): shrink first with a
    // proper filter, then warp at about 1:1.
    let target_w = side(quad[0], quad[1]).max(side(quad[3], quad[2]));
    let target_h = side(quad[0], quad[3]).max(side(quad[1], quad[2]));
    let shrink = (target_w / src.width() as f32).max(target_h / src.height() as f32);
    let resized;
    let src = if shrink < 0.75 {
        let w = ((src.width() as f32 * shrink * 1.15).round() as u32).max(2);
        let h = ((src.height() as f32 * shrink * 1.15).round() as u32).max(2);
        resized = image::imageops::resize(src, w, h, image::imageops::FilterType::Triangle);
        &resized
    } else {
        src
    };
    let (sw, sh) = (src.width() as f32, src.height() as f32);
    let from = [(0.0, 0.0), (sw, 0.0), (sw, sh), (0.0, sh)];
    let to = quad.map(|p| (p[0] - x0, p[1] - y0));
    let projection = Projection::from_control_points(from, to).ok_or(SynthError::Geometry("degenerate quad"))?;
    // Warped in tiles, skipping those whose pre-image lies wholly outside the source: a rotated document covers
    // about half of its bounding box.
    const TILE: u32 = 64;
    let back = projection.invert();
    let outside = |x: f32, y: f32, w: f32, h: f32| {
        let pre = [(x, y), (x + w, y), (x, y + h), (x + w, y + h)].map(|p| back * p);
        pre.iter().all(|p| p.0 < 0.0)
            || pre.iter().all(|p| p.0 > sw)
            || pre.iter().all(|p| p.1 < 0.0)
            || pre.iter().all(|p| p.1 > sh)
    };
    let mut tile = RgbaImage::new(TILE, TILE);
    let (pw, ph) = ((x1 - x0) as u32, (y1 - y0) as u32);
    for ty in (0..ph).step_by(TILE as usize) {
        for tx in (0..pw).step_by(TILE as usize) {
            let (fx, fy) = (tx as f32, ty as f32);
            if outside(fx, fy, TILE as f32, TILE as f32) {
                continue;
            }
            let shifted = Projection::translate(-fx, -fy) * projection;
            warp_into(src, shifted, Interpolation::Bilinear, Border::Constant(Rgba([0, 0, 0, 0])), &mut tile);
            let w = TILE.min(pw - tx);
            let h = TILE.min(ph - ty);
            let view = image::imageops::crop_imm(&tile, 0, 0, w, h).to_image();
            blend_premultiplied(dst, &view, (x0 as u32 + tx, y0 as u32 + ty));
        }
    }
    Ok(())
}

/// Blends premultiplied `src` onto `dst` with its top-left corner at `at` (clipped to `dst`).
fn blend_premultiplied(dst: &mut RgbImage, src: &RgbaImage, (x0, y0): (u32, u32)) {
    for (x, y, p) in src.enumerate_pixels() {
        let (dx, dy) = (x + x0, y + y0);
        if p.0[3] == 0 || dx >= dst.width() || dy >= dst.height() {
            continue;
        }
        let d = dst.get_pixel_mut(dx, dy);
        if p.0[3] == 255 {
            d.0 = [p.0[0], p.0[1], p.0[2]];
            continue;
        }
        let a = f32::from(p.0[3]) / 255.0;
        for i in 0..3 {
            d.0[i] = (f32::from(d.0[i]) * (1.0 - a) + f32::from(p.0[i]) + 0.5) as u8;
        }
    }
}

/// A plain, soft background for clean samples: a light neutral gradient.
pub(crate) fn plain_background(w: u32, h: u32, rng: &mut Rand) -> RgbImage {
    let base = rng.range(215..=245u8);
    let tint = |r: &mut Rand| base.saturating_add_signed(r.range(-8..=8i8));
    let a = [tint(rng), tint(rng), tint(rng)];
    let b = a.map(|v| v.saturating_sub(rng.range(0..=14)));
    let mut img = RgbImage::new(w, h);
    gradient(&mut img, a, b, rng.f32(0.0, std::f32::consts::TAU));
    img
}

/// Smooth value noise: random values on a coarse grid of `cell_x` x `cell_y` pixels, bilinearly interpolated.
/// (Written out rather than `imageops::resize`, which is several times slower for this.)
pub(crate) fn value_noise(w: u32, h: u32, cell_x: f32, cell_y: f32, rng: &mut Rand) -> GrayImage {
    let gw = (w as f32 / cell_x).ceil() as usize + 2;
    let gh = (h as f32 / cell_y).ceil() as usize + 2;
    let grid: Vec<f32> = (0..gw * gh).map(|_| f32::from(rng.range(0..=255u8))).collect();
    let mut out = GrayImage::new(w, h);
    for y in 0..h {
        let fy = y as f32 / cell_y;
        let (gy, ty) = (fy as usize, fy.fract());
        let (row0, row1) = (&grid[gy * gw..(gy + 1) * gw], &grid[(gy + 1) * gw..(gy + 2) * gw]);
        for x in 0..w {
            let fx = x as f32 / cell_x;
            let (gx, tx) = (fx as usize, fx.fract());
            let top = row0[gx] + (row0[gx + 1] - row0[gx]) * tx;
            let bottom = row1[gx] + (row1[gx + 1] - row1[gx]) * tx;
            out.put_pixel(x, y, Luma([(top + (bottom - top) * ty) as u8]));
        }
    }
    out
}

/// A busy background for distorted samples: a desk, wood, fabric or a plain gradient, with a few objects.
pub(crate) fn busy_background(w: u32, h: u32, rng: &mut Rand) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    let dark = |c: [u8; 3], k: f32| c.map(|v| (f32::from(v) * k) as u8);
    match rng.range(0..4) {
        // Wood: long streaks of grain along one axis.
        0 => {
            let base = rng.pick(&[[150u8, 105, 65], [120, 80, 50], [185, 145, 100], [95, 65, 45], [200, 170, 130]]);
            let along_x = rng.chance(0.5);
            let (cx, cy) = if along_x { (rng.f32(120.0, 260.0), 6.0) } else { (6.0, rng.f32(120.0, 260.0)) };
            let grain = value_noise(w, h, cx, cy, rng);
            let blotch = value_noise(w, h, 90.0, 90.0, rng);
            for (x, y, p) in img.enumerate_pixels_mut() {
                let g = f32::from(grain.get_pixel(x, y).0[0]) / 255.0;
                let b = f32::from(blotch.get_pixel(x, y).0[0]) / 255.0;
                *p = Rgb(dark(base, 0.72 + 0.3 * g + 0.12 * b));
            }
        }
        // Desk or fabric: a colour with fine and coarse noise.
        1 | 2 => {
            let base = rng.pick(&[
                [90u8, 90, 95],
                [60, 65, 80],
                [200, 200, 195],
                [40, 45, 50],
                [110, 125, 140],
                [150, 60, 55],
                [60, 100, 80],
                [230, 225, 215],
            ]);
            let coarse = value_noise(w, h, 140.0, 140.0, rng);
            for (x, y, p) in img.enumerate_pixels_mut() {
                let c = f32::from(coarse.get_pixel(x, y).0[0]) / 255.0 - 0.5;
                *p = Rgb(base.map(|v| (f32::from(v) * (1.0 + 0.25 * c)) as u8));
            }
            // Fine grain of the surface.
            let grain = rng.f32(3.0, 7.0);
            rng.noise(img.as_mut(), grain);
        }
        _ => {
            let a = [rng.range(20..=235u8), rng.range(20..=235u8), rng.range(20..=235u8)];
            let b = lerp(a, [rng.range(0..=255u8), rng.range(0..=255u8), rng.range(0..=255u8)], 0.5);
            gradient(&mut img, a, b, rng.f32(0.0, std::f32::consts::TAU));
        }
    }
    // Objects lying around: papers, a phone, a mug seen from above.
    for _ in 0..rng.range(0..=4) {
        let colour = Rgb([rng.range(0..=255u8), rng.range(0..=255u8), rng.range(0..=255u8)]);
        let (cx, cy) = (rng.f32(0.0, w as f32), rng.f32(0.0, h as f32));
        let size = rng.f32(0.08, 0.35) * w.min(h) as f32;
        if rng.chance(0.5) {
            draw_filled_ellipse_mut(
                &mut img,
                (cx as i32, cy as i32),
                size as i32,
                (size * rng.f32(0.5, 1.0)) as i32,
                colour,
            );
        } else {
            let angle = rng.f32(0.0, std::f32::consts::PI);
            let (hw, hh) = (size, size * rng.f32(0.4, 1.4));
            let (s, c) = angle.sin_cos();
            let corners: Vec<Point<i32>> = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
                .iter()
                .map(|(x, y)| Point::new((cx + x * c - y * s) as i32, (cy + x * s + y * c) as i32))
                .collect();
            draw_polygon_mut(&mut img, &corners, colour);
        }
    }
    img
}

/// A soft drop shadow of `quad` (drawn at quarter resolution and blurred, which is plenty for a shadow).
fn shadow(img: &mut RgbImage, quad: &Quad, rng: &mut Rand) {
    let (w, h) = img.dimensions();
    let k = 4.0;
    let (mw, mh) = ((w as f32 / k).ceil() as u32, (h as f32 / k).ceil() as u32);
    let mut mask = GrayImage::new(mw, mh);
    let size = side(quad[0], quad[1]);
    let (dx, dy) = (rng.f32(-0.02, 0.03) * size, rng.f32(0.0, 0.035) * size);
    let points: Vec<Point<i32>> =
        quad.iter().map(|p| Point::new(((p[0] + dx) / k) as i32, ((p[1] + dy) / k) as i32)).collect();
    if points.first() == points.last() {
        return;
    }
    draw_polygon_mut(&mut mask, &points, Luma([255]));
    let sigma = rng.f32(1.5, 4.0);
    let mask = imageproc::filter::gaussian_blur_f32(&mask, sigma);
    let strength = rng.f32(0.2, 0.45);
    // Only around the document: the blurred mask is zero further out.
    let (min_x, min_y, max_x, max_y) = bbox(quad);
    let reach = 4.0 * sigma * k + dx.abs().max(dy.abs());
    let (x0, y0) = ((min_x - reach).max(0.0) as u32, (min_y - reach).max(0.0) as u32);
    let (x1, y1) = (((max_x + reach) as u32).min(w), ((max_y + reach) as u32).min(h));
    for y in y0..y1 {
        for x in x0..x1 {
            let m = f32::from(mask.get_pixel((x / 4).min(mw - 1), (y / 4).min(mh - 1)).0[0]) / 255.0;
            if m > 0.0 {
                let f = 1.0 - strength * m;
                let p = img.get_pixel_mut(x, y);
                p.0 = p.0.map(|v| (f32::from(v) * f) as u8);
            }
        }
    }
}

/// Places the flat document in a scene: a small margin on a plain background (clean), or a random perspective,
/// any rotation and a size of 500-1100 px on a busy background (distorted). Returns the scene and the
/// document's corners in it.
pub(crate) fn place_document(
    flat: &RgbaImage,
    distortion: Distortion,
    rng: &mut Rand,
) -> Result<(RgbImage, Quad), SynthError> {
    let (w0, h0) = (flat.width() as f32, flat.height() as f32);
    if distortion == Distortion::Clean {
        let margin = rng.range(16..=48u32) as f32;
        let mut scene = plain_background((w0 + 2.0 * margin) as u32, (h0 + 2.0 * margin) as u32, rng);
        let quad = [[margin, margin], [margin + w0, margin], [margin + w0, margin + h0], [margin, margin + h0]];
        composite(&mut scene, flat, &quad)?;
        return Ok((scene, quad));
    }
    let target_w = rng.f32(500.0, 1100.0);
    let (hw, hh) = (target_w / 2.0, target_w * h0 / w0 / 2.0);
    let mut corners = [[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]];
    // Perspective: one edge foreshortened (the card tilted away from the camera: its corners move inwards by up
    // to 8% of the side), plus independent corner jitter of up to 3% in x and y; together at most ~12%.
    let edge = rng.range(0..4usize);
    let shrink = rng.f32(0.0, 0.16);
    let (a, b) = (edge, (edge + 1) % 4);
    let mid = [(corners[a][0] + corners[b][0]) / 2.0, (corners[a][1] + corners[b][1]) / 2.0];
    for i in [a, b] {
        corners[i][0] += (mid[0] - corners[i][0]) * shrink;
        corners[i][1] += (mid[1] - corners[i][1]) * shrink;
    }
    for c in &mut corners {
        c[0] += rng.f32(-0.03, 0.03) * 2.0 * hw;
        c[1] += rng.f32(-0.03, 0.03) * 2.0 * hh;
    }
    let angle = rng.f32(-180.0, 180.0).to_radians();
    let (s, c) = angle.sin_cos();
    let rotated = corners.map(|[x, y]| [x * c - y * s, x * s + y * c]);
    let (min_x, min_y, max_x, max_y) = bbox(&rotated);
    let margin = |r: &mut Rand| r.f32(0.03, 0.14) * target_w;
    let (left, top, right, bottom) = (margin(rng), margin(rng), margin(rng), margin(rng));
    let (sw, sh) = ((max_x - min_x + left + right).ceil() as u32, (max_y - min_y + top + bottom).ceil() as u32);
    let quad = rotated.map(|[x, y]| [x - min_x + left, y - min_y + top]);
    let mut scene = busy_background(sw, sh, rng);
    if rng.chance(0.7) {
        shadow(&mut scene, &quad, rng);
    }
    composite(&mut scene, flat, &quad)?;
    Ok((scene, quad))
}

/// A point inside `quad` at relative position `(u, v)` (bilinear in the corners).
pub(crate) fn inside(quad: &Quad, u: f32, v: f32) -> (f32, f32) {
    let top = [quad[0][0] + (quad[1][0] - quad[0][0]) * u, quad[0][1] + (quad[1][1] - quad[0][1]) * u];
    let bottom = [quad[3][0] + (quad[2][0] - quad[3][0]) * u, quad[3][1] + (quad[2][1] - quad[3][1]) * u];
    (top[0] + (bottom[0] - top[0]) * v, top[1] + (bottom[1] - top[1]) * v)
}

/// The phone camera: exposure, a glare spot on the region of interest (`focus`: the document or a plate; glare
/// radius relative to `size`), defocus blur of sigma 0.5 to `blur_max` (callers bound it so that small text
/// stays legible), sensor noise.
pub(crate) fn camera(img: &mut RgbImage, focus: &Quad, size: f32, blur_max: f32, rng: &mut Rand) {
    if rng.chance(0.6) {
        let contrast = rng.f32(0.82, 1.12);
        let brightness = rng.f32(-22.0, 22.0);
        // Uneven light: the exposure drifts across the frame.
        let (gx, gy) = (rng.f32(-0.12, 0.12) / img.width() as f32, rng.f32(-0.12, 0.12) / img.height() as f32);
        for (x, y, p) in img.enumerate_pixels_mut() {
            let light = 1.0 + gx * x as f32 + gy * y as f32;
            p.0 = p.0.map(|v| ((f32::from(v) - 128.0) * contrast * light + 128.0 + brightness).clamp(0.0, 255.0) as u8);
        }
    }
    if rng.chance(0.3) {
        glare(img, focus, size, rng);
    }
    if rng.chance(0.5) {
        let sigma = rng.f32(0.5, blur_max.max(0.5));
        *img = imageproc::filter::gaussian_blur_f32(img, sigma);
    }
    if rng.chance(0.6) {
        let sigma = rng.f32(2.0, 8.0);
        rng.noise(img.as_mut(), sigma);
    }
}

/// A soft bright ellipse somewhere on the region of interest, never white-out: peak 25-50% towards white.
fn glare(img: &mut RgbImage, focus: &Quad, size: f32, rng: &mut Rand) {
    let (cx, cy) = inside(focus, rng.f32(0.15, 0.85), rng.f32(0.15, 0.85));
    let rx = size * rng.f32(0.08, 0.22);
    let ry = rx * rng.f32(0.4, 0.9);
    let angle = rng.f32(0.0, std::f32::consts::PI);
    let (s, c) = angle.sin_cos();
    let peak = rng.f32(0.25, 0.5);
    let reach = rx * 1.8;
    let x0 = (cx - reach).max(0.0) as u32;
    let y0 = (cy - reach).max(0.0) as u32;
    let x1 = ((cx + reach) as u32).min(img.width());
    let y1 = ((cy + reach) as u32).min(img.height());
    for y in y0..y1 {
        for x in x0..x1 {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let (u, v) = ((dx * c + dy * s) / rx, (-dx * s + dy * c) / ry);
            let a = peak * (-(u * u + v * v) * 1.2).exp();
            if a > 0.004 {
                let p = img.get_pixel_mut(x, y);
                p.0 = p.0.map(|v| (f32::from(v) + (255.0 - f32::from(v)) * a) as u8);
            }
        }
    }
}

/// Encodes the finished image: PNG for clean samples, mostly JPEG (quality 50-90) for distorted ones.
pub(crate) fn encode(
    img: &RgbImage,
    distortion: Distortion,
    rng: &mut Rand,
) -> Result<(Vec<u8>, &'static str), SynthError> {
    let mut out = Cursor::new(Vec::new());
    if distortion == Distortion::Distorted && rng.chance(0.85) {
        let quality = rng.range(50..=90u8);
        let (w, h) = (u16::try_from(img.width()), u16::try_from(img.height()));
        let (Ok(w), Ok(h)) = (w, h) else { return Err(SynthError::Geometry("image too large for JPEG")) };
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, quality)
            .encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| SynthError::Jpeg(e.to_string()))?;
        return Ok((jpeg, "jpg"));
    }
    // Fast compression: these are test fixtures, and encoding would otherwise dominate the run time.
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive).write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    Ok((out.into_inner(), "png"))
}
