//! Licence plates on procedurally drawn cars in a street scene.
//!
//! Mostly mainland Chinese plates (blue, yellow, green new-energy, white police, black), the rest Singapore, UK,
//! EU and US formats. The scene is drawn upright in a "world" image; a distorted photo is a mildly rotated
//! (±15°) and slanted view of it, since cars stand upright.

use faceplate_documents::plate::{CHINA_PROVINCES, singapore_check_letter};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_ellipse_mut, draw_polygon_mut};
use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp_into};
use imageproc::point::Point;

use crate::draw::{Fit, Fonts, frame, glyph_in_box, gradient, lerp, rect, text_on, width};
use crate::random::Rand;
use crate::scene::{self, composite, value_noise, with_round_corners};
use crate::{Distortion, PlateTruth, Quad, SynthError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    Blue,
    Yellow,
    Green,
    White,
    Black,
}

impl Colour {
    fn name(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Green => "green",
            Colour::White => "white",
            Colour::Black => "black",
        }
    }
}

/// How a plate is laid out.
enum Layout {
    /// Mainland: fixed character cells, a dot after the second character. `nev_large`: the yellow-green
    /// two-tone background of large new-energy vehicles.
    China { chars: Vec<char>, nev_large: bool },
    /// One line of Latin characters with separators as printed (`B-MW 1234`); `strip`: the EU country code on a
    /// blue band; `header`: a US state name above.
    Line { display: String, strip: Option<&'static str>, header: Option<(&'static str, [u8; 3])>, ink: [u8; 3] },
}

struct PlateSpec {
    /// Truth text: no separators.
    text: String,
    colour: Colour,
    region: &'static str,
    layout: Layout,
}

impl PlateSpec {
    /// Width over height of the physical plate.
    fn aspect(&self) -> f32 {
        match &self.layout {
            Layout::China { chars, .. } if chars.len() == 8 => 480.0 / 140.0,
            Layout::China { .. } => 440.0 / 140.0,
            Layout::Line { header: Some(_), .. } => 2.0,
            Layout::Line { .. } => 520.0 / 115.0,
        }
    }
}

/// Letters on mainland plates: no I or O (they read as 1 and 0).
const CN_NO: &str = "IO";

fn china_alnum(rng: &mut Rand, letters_left: &mut u32) -> char {
    if *letters_left > 0 && rng.chance(0.15) {
        *letters_left -= 1;
        rng.letter(CN_NO)
    } else {
        rng.digit()
    }
}

fn china(rng: &mut Rand) -> PlateSpec {
    let provinces: Vec<char> = CHINA_PROVINCES.chars().collect();
    let province = rng.pick(&provinces);
    let colour = rng.weighted(&[
        (Colour::Blue, 600),
        (Colour::Yellow, 150),
        (Colour::Green, 180),
        (Colour::White, 35),
        (Colour::Black, 35),
    ]);
    let mut chars = vec![province, rng.letter(CN_NO)];
    let mut letters = 2;
    let mut nev_large = false;
    match colour {
        Colour::Green if rng.chance(0.7) => {
            // Small new-energy: D (electric) or F (hybrid) third.
            chars.push(if rng.chance(0.7) { 'D' } else { 'F' });
            chars.push(if rng.chance(0.2) { rng.letter(CN_NO) } else { rng.digit() });
            chars.extend((0..4).map(|_| rng.digit()));
        }
        Colour::Green => {
            nev_large = true;
            chars.extend((0..5).map(|_| rng.digit()));
            chars.push(if rng.chance(0.7) { 'D' } else { 'F' });
        }
        Colour::White => {
            chars.extend((0..4).map(|_| rng.digit()));
            chars.push('警');
        }
        Colour::Black if rng.chance(0.6) => {
            chars = vec!['粤', 'Z'];
            chars.extend((0..4).map(|_| china_alnum(rng, &mut letters)));
            chars.push(if rng.chance(0.6) { '港' } else { '澳' });
        }
        _ => chars.extend((0..5).map(|_| china_alnum(rng, &mut letters))),
    }
    PlateSpec { text: chars.iter().collect(), colour, region: "china", layout: Layout::China { chars, nev_large } }
}

fn singapore(rng: &mut Rand) -> PlateSpec {
    let prefix = format!("S{}{}", rng.letter("IO"), rng.letter("IO"));
    let digits = rng.range(1..=9999u32).to_string();
    let check = singapore_check_letter(&prefix, &digits).unwrap_or('A');
    let colour = if rng.chance(0.6) { Colour::Black } else { Colour::White };
    let ink = if colour == Colour::Black { [235, 235, 235] } else { [15, 15, 15] };
    PlateSpec {
        text: format!("{prefix}{digits}{check}"),
        colour,
        region: "singapore",
        layout: Layout::Line { display: format!("{prefix} {digits} {check}"), strip: None, header: None, ink },
    }
}

fn uk(rng: &mut Rand) -> PlateSpec {
    let age = if rng.chance(0.5) { rng.range(2..=25u32) } else { rng.range(51..=75u32) };
    let memory = format!("{}{}", rng.letter("IQZ"), rng.letter("IQ"));
    let tail: String = (0..3).map(|_| rng.letter("IQ")).collect();
    let colour = if rng.chance(0.6) { Colour::White } else { Colour::Yellow };
    PlateSpec {
        text: format!("{memory}{age:02}{tail}"),
        colour,
        region: "uk",
        layout: Layout::Line {
            display: format!("{memory}{age:02} {tail}"),
            strip: None,
            header: None,
            ink: [10, 10, 10],
        },
    }
}

fn europe(rng: &mut Rand) -> PlateSpec {
    // Each country's own letters: France's SIV has no I, O, U; Italy's no I, O, Q, U; Spain's only consonants.
    let letters = |r: &mut Rand, n: usize, not: &str| (0..n).map(|_| r.letter(not)).collect::<String>();
    let (display, country) = match rng.range(0..4) {
        0 => {
            // At most eight characters: district, letters, a number without leading zero.
            let (n_city, n_mid) = (rng.range(1..=3), rng.range(1..=2));
            let city = letters(rng, n_city, "IOQ");
            let mid = letters(rng, n_mid, "IOQ");
            let digits = (8 - n_city - n_mid).min(4) as u32;
            (format!("{city}-{mid} {}", rng.range(1..10u32.pow(digits))), "D")
        }
        1 => (format!("{}-{}-{}", letters(rng, 2, "IOU"), rng.digits(3), letters(rng, 2, "IOU")), "F"),
        2 => (format!("{} {} {}", letters(rng, 2, "IOQU"), rng.digits(3), letters(rng, 2, "IOQU")), "I"),
        _ => (format!("{} {}", rng.digits(4), letters(rng, 3, "AEIOUQ")), "E"),
    };
    PlateSpec {
        text: display.chars().filter(char::is_ascii_alphanumeric).collect(),
        colour: Colour::White,
        region: "europe",
        layout: Layout::Line { display, strip: Some(country), header: None, ink: [15, 15, 15] },
    }
}

fn us(rng: &mut Rand) -> PlateSpec {
    let letters = |r: &mut Rand, n: usize| (0..n).map(|_| r.letter("IOQ")).collect::<String>();
    let (display, header, ink) = match rng.range(0..3) {
        0 => (
            format!("{}{}{}", rng.range(1..=9u32), letters(rng, 3), rng.digits(3)),
            ("California", [200, 30, 40]),
            [20, 30, 110],
        ),
        1 => (format!("{}-{}", letters(rng, 3), rng.digits(4)), ("NEW YORK", [20, 50, 130]), [20, 50, 130]),
        _ => (format!("{}-{}", letters(rng, 3), rng.digits(4)), ("TEXAS", [20, 20, 20]), [20, 20, 20]),
    };
    PlateSpec {
        text: display.chars().filter(char::is_ascii_alphanumeric).collect(),
        colour: Colour::White,
        region: "us",
        layout: Layout::Line { display, strip: None, header: Some(header), ink },
    }
}

fn random_plate(rng: &mut Rand) -> PlateSpec {
    match rng.range(0..100) {
        0..=84 => china(rng),
        85..=88 => singapore(rng),
        89..=92 => uk(rng),
        93..=96 => europe(rng),
        _ => us(rng),
    }
}

fn background_and_ink(colour: Colour) -> ([u8; 3], [u8; 3]) {
    match colour {
        Colour::Blue => ([12, 62, 188], [245, 246, 248]),
        Colour::Yellow => ([246, 192, 24], [18, 18, 18]),
        Colour::Green => ([90, 186, 104], [18, 18, 18]),
        Colour::White => ([238, 239, 236], [18, 18, 18]),
        Colour::Black => ([16, 16, 20], [240, 240, 240]),
    }
}

/// The plate face at its physical proportions (1 px per mm, 140 or ~115 px high).
fn render_plate(fonts: &Fonts, spec: &PlateSpec) -> RgbImage {
    let (bg, ink) = background_and_ink(spec.colour);
    match &spec.layout {
        Layout::China { chars, nev_large } => {
            let eight = chars.len() == 8;
            let (w, h) = (if eight { 480 } else { 440 }, 140);
            let mut img = RgbImage::from_pixel(w, h, Rgb(bg));
            if spec.colour == Colour::Green && !nev_large {
                // Small new-energy plates fade from green to white.
                gradient(&mut img, [80, 180, 96], [236, 246, 236], std::f32::consts::FRAC_PI_2);
            } else if *nev_large {
                rect(&mut img, (0.0, 0.0, 150.0, h as f32), [240, 200, 40]);
            } else {
                gradient(&mut img, bg, lerp(bg, [255, 255, 255], 0.12), std::f32::consts::FRAC_PI_2);
            }
            frame(&mut img, (6.0, 6.0, w as f32 - 12.0, h as f32 - 12.0), 3.0, ink);
            // Cells (mm): 45 wide, 12 apart, 34 around the dot; 43 / 9 / 30 on eight-character plates.
            let (cw, gap, dot_gap) = if eight { (43.0, 9.0, 30.0) } else { (45.0, 12.0, 34.0) };
            let total = chars.len() as f32 * cw + (chars.len() as f32 - 2.0) * gap + dot_gap;
            let mut x = (w as f32 - total) / 2.0;
            for (i, c) in chars.iter().enumerate() {
                let colour = if *c == '警' { [200, 20, 24] } else { ink };
                let cell = (x, 25.0, cw, 90.0);
                if c.is_ascii() {
                    glyph_in_box(
                        &mut img,
                        &fonts.sans_bold,
                        *c,
                        cell,
                        colour,
                        Fit::Cap { reference: 'H', condense: 0.6 },
                    );
                } else {
                    // Plate characters are heavy; the font has no bold: overprint, shifted by two pixels.
                    for (dx, dy) in [(0.0, 0.0), (2.0, 0.0), (0.0, 1.5), (2.0, 1.5)] {
                        let cell = (x + 1.0 + dx, 28.0 + dy, cw - 4.0, 82.0);
                        glyph_in_box(&mut img, &fonts.cjk, *c, cell, colour, Fit::Fill);
                    }
                }
                x += cw;
                if i == 1 {
                    draw_filled_circle_mut(&mut img, ((x + dot_gap / 2.0) as i32, 70), 5, Rgb(ink));
                    x += dot_gap;
                } else {
                    x += gap;
                }
            }
            img
        }
        Layout::Line { display, strip, header, ink } => {
            let (w, h) = if header.is_some() { (480, 240) } else { (520, 115) };
            let mut img = RgbImage::from_pixel(w, h, Rgb(bg));
            let (wf, hf) = (w as f32, h as f32);
            frame(&mut img, (4.0, 4.0, wf - 8.0, hf - 8.0), 3.0, *ink);
            let mut left = 14.0;
            if let Some(country) = strip {
                let sw = 0.085 * wf;
                rect(&mut img, (4.0, 4.0, sw, hf - 8.0), [0, 51, 153]);
                let (cx, cy, r) = (4.0 + sw / 2.0, 0.33 * hf, 0.14 * hf);
                for k in 0..12 {
                    let a = k as f32 * std::f32::consts::TAU / 12.0;
                    draw_filled_circle_mut(
                        &mut img,
                        ((cx + r * a.cos()) as i32, (cy + r * a.sin()) as i32),
                        2,
                        Rgb([255, 204, 0]),
                    );
                }
                let cell = (8.0, 0.58 * hf, sw - 8.0, 0.26 * hf);
                let cw = cell.2 / country.len() as f32;
                for (i, c) in country.chars().enumerate() {
                    let b = (cell.0 + cw * i as f32, cell.1, cw, cell.3);
                    glyph_in_box(
                        &mut img,
                        &fonts.sans_bold,
                        c,
                        b,
                        [255, 255, 255],
                        Fit::Cap { reference: 'H', condense: 1.0 },
                    );
                }
                left = sw + 16.0;
            }
            let (top, ch) = match header {
                Some((name, colour)) => {
                    let nw = width(&fonts.sans_bold, 30.0, name);
                    text_on(&mut img, &fonts.sans_bold, 30.0, ((wf - nw) / 2.0, 48.0), *colour, name);
                    (78.0, 0.5 * hf)
                }
                None => (0.17 * hf, 0.66 * hf),
            };
            // Character cells; separators narrower. Condensed further if the line is too wide.
            let unit = |c: char| match c {
                ' ' => 0.4,
                '-' => 0.6,
                _ => 1.0,
            };
            let units: f32 = display.chars().map(unit).sum();
            let avail = wf - left - 14.0;
            let cw = (ch * 0.62).min(avail / units);
            let mut x = left + (avail - cw * units) / 2.0;
            for c in display.chars() {
                match c {
                    ' ' => {}
                    '-' => rect(&mut img, (x + 0.15 * cw, top + ch * 0.46, 0.3 * cw, ch * 0.09), *ink),
                    _ => glyph_in_box(
                        &mut img,
                        &fonts.sans_bold,
                        c,
                        (x + 0.04 * cw, top, cw * 0.92, ch),
                        *ink,
                        Fit::Cap { reference: 'H', condense: 0.62 },
                    ),
                }
                x += cw * unit(c);
            }
            img
        }
    }
}

/// How a car looks (chosen with the plate, so the clean and distorted views of one index show the same car).
struct CarLook {
    body: [u8; 3],
    glass: [u8; 3],
}

fn car_look(rng: &mut Rand) -> CarLook {
    let body = rng.pick(&[
        [235u8, 235, 232],
        [190, 192, 196],
        [40, 40, 44],
        [150, 25, 30],
        [30, 60, 130],
        [110, 112, 118],
        [30, 80, 60],
        [200, 185, 150],
        [240, 240, 240],
        [15, 15, 18],
    ]);
    CarLook { body, glass: [rng.range(30..=60u8), rng.range(40..=65u8), rng.range(50..=75u8)] }
}

fn poly(img: &mut RgbImage, points: &[(f32, f32)], colour: [u8; 3]) {
    let pts: Vec<Point<i32>> = points.iter().map(|(x, y)| Point::new(x.round() as i32, y.round() as i32)).collect();
    let mut dedup = pts.clone();
    dedup.dedup();
    if dedup.len() >= 3 && dedup.first() != dedup.last() {
        draw_polygon_mut(img, &dedup, Rgb(colour));
    }
}

/// A car seen from the front, its plate centred at `(px, py)`, `pw` wide (a plate is ~44 cm: one unit `u` is
/// 10 cm).
fn draw_car(img: &mut RgbImage, (px, py): (f32, f32), pw: f32, ph: f32, look: &CarLook) {
    let u = pw / 4.4;
    let x = |k: f32| px + k * u;
    let y = |k: f32| py + k * u;
    let body = look.body;
    let dark = body.map(|v| (f32::from(v) * 0.72) as u8);
    let light = lerp(body, [255, 255, 255], 0.18);
    let tyre = [24, 24, 27];
    draw_filled_ellipse_mut(img, (px as i32, y(4.7) as i32), (11.0 * u) as i32, (1.3 * u) as i32, Rgb([28, 28, 30]));
    rect(img, (x(-8.9), y(1.5), 2.8 * u, 3.4 * u), tyre);
    rect(img, (x(6.1), y(1.5), 2.8 * u, 3.4 * u), tyre);
    // Windscreen and roof.
    poly(img, &[(x(-5.6), y(-13.1)), (x(5.6), y(-13.1)), (x(6.0), y(-12.4)), (x(-6.0), y(-12.4))], body);
    poly(img, &[(x(-6.0), y(-12.4)), (x(6.0), y(-12.4)), (x(7.6), y(-8.0)), (x(-7.6), y(-8.0))], look.glass);
    poly(
        img,
        &[(x(-4.0), y(-12.2)), (x(-2.6), y(-12.2)), (x(-4.4), y(-8.2)), (x(-5.8), y(-8.2))],
        lerp(look.glass, [255, 255, 255], 0.15),
    );
    poly(img, &[(x(-9.8), y(-8.8)), (x(-8.0), y(-8.8)), (x(-7.9), y(-7.6)), (x(-9.6), y(-7.6))], dark);
    poly(img, &[(x(8.0), y(-8.8)), (x(9.8), y(-8.8)), (x(9.6), y(-7.6)), (x(7.9), y(-7.6))], dark);
    // Bonnet, face and bumper.
    poly(img, &[(x(-7.7), y(-8.1)), (x(7.7), y(-8.1)), (x(9.0), y(-5.6)), (x(-9.0), y(-5.6))], light);
    rect(img, (x(-9.1), y(-5.7), 18.2 * u, 3.95 * u), body);
    rect(img, (x(-9.3), y(-1.8), 18.6 * u, 4.1 * u), lerp(body, dark, 0.4));
    rect(img, (x(-9.3), y(2.0), 18.6 * u, 0.4 * u), dark);
    // Headlights.
    for s in [-1.0f32, 1.0] {
        let pts = [(x(8.7 * s), y(-5.3)), (x(4.9 * s), y(-5.0)), (x(5.1 * s), y(-3.9)), (x(8.5 * s), y(-4.3))];
        poly(img, &pts, [205, 210, 216]);
        draw_filled_ellipse_mut(
            img,
            (x(6.8 * s) as i32, y(-4.6) as i32),
            (1.0 * u) as i32,
            (0.35 * u) as i32,
            Rgb([250, 250, 244]),
        );
        draw_filled_circle_mut(img, (x(7.0 * s) as i32, y(1.0) as i32), (0.45 * u) as i32, Rgb([200, 200, 192]));
    }
    // Grille with slats and a badge.
    rect(img, (x(-4.3), y(-5.2), 8.6 * u, 2.8 * u), [28, 28, 32]);
    let mut k = -4.9;
    while k < -2.5 {
        rect(img, (x(-4.1), y(k), 8.2 * u, (0.12 * u).max(1.0)), [72, 72, 78]);
        k += 0.5;
    }
    draw_filled_ellipse_mut(
        img,
        (px as i32, y(-3.8) as i32),
        (0.7 * u) as i32,
        (0.45 * u) as i32,
        Rgb([200, 202, 208]),
    );
    rect(img, (x(-5.5), y(1.2), 11.0 * u, 0.7 * u), [30, 30, 34]);
    // The recess the plate is mounted in.
    let m = 0.3 * u;
    rect(
        img,
        (px - pw / 2.0 - m, py - ph / 2.0 - m, pw + 2.0 * m, ph + 2.0 * m),
        dark.map(|v| (f32::from(v) * 0.7) as u8),
    );
}

/// Sky, buildings or trees, and a road, for the world image; `horizon` in world pixels.
fn street(w: u32, h: u32, horizon: f32, rng: &mut Rand) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    let (wf, hf) = (w as f32, h as f32);
    let sky_top = rng.pick(&[[110u8, 160, 220], [170, 180, 190], [200, 210, 225], [80, 100, 140]]);
    let mut sky = RgbImage::new(w, horizon.clamp(1.0, hf) as u32);
    gradient(&mut sky, sky_top, lerp(sky_top, [240, 240, 240], 0.6), std::f32::consts::FRAC_PI_2);
    image::imageops::replace(&mut img, &sky, 0, 0);
    // Buildings and trees along the horizon.
    let mut x = -rng.f32(0.0, 100.0);
    while x < wf {
        let bw = rng.f32(80.0, 260.0);
        let bh = rng.f32(0.2, 0.6) * horizon;
        if rng.chance(0.3) {
            let green = [rng.range(40..=80u8), rng.range(90..=130u8), rng.range(40..=70u8)];
            draw_filled_ellipse_mut(
                &mut img,
                ((x + bw / 2.0) as i32, (horizon - bh * 0.5) as i32),
                (bw / 2.0) as i32,
                (bh * 0.5) as i32,
                Rgb(green),
            );
        } else {
            let tone = rng.range(120..=210u8);
            let wall = [tone, tone.saturating_sub(rng.range(0..=20)), tone.saturating_sub(rng.range(0..=30))];
            rect(&mut img, (x, horizon - bh, bw, bh), wall);
            let window = lerp(wall, [60, 80, 100], 0.6);
            let mut wy = horizon - bh + 12.0;
            while wy < horizon - 20.0 {
                let mut wx = x + 10.0;
                while wx < x + bw - 22.0 {
                    rect(&mut img, (wx, wy, 14.0, 18.0), window);
                    wx += 26.0;
                }
                wy += 32.0;
            }
        }
        x += bw + rng.f32(0.0, 30.0);
    }
    // Road: grey asphalt with texture, lighter near the camera.
    let tone = rng.range(70..=120u8);
    let noise = value_noise(w, h, 4.0, 4.0, rng);
    let start = horizon.clamp(0.0, hf) as u32;
    for yy in start..h {
        let t = (yy as f32 - horizon) / (hf - horizon).max(1.0);
        for xx in 0..w {
            let n = f32::from(noise.get_pixel(xx, yy).0[0]) / 255.0 - 0.5;
            let v = (f32::from(tone) * (0.85 + 0.3 * t) + 18.0 * n).clamp(0.0, 255.0) as u8;
            img.put_pixel(xx, yy, Rgb([v, v, v.saturating_add(3)]));
        }
    }
    // Lane markings converging on a vanishing point.
    let (vx, vy) = (wf * rng.f32(0.3, 0.7), horizon);
    for lane in [-1.2f32, 1.2] {
        let bottom = vx + lane * wf;
        let mut t = 0.05f32;
        while t < 1.0 {
            let t2 = (t + 0.06).min(1.0);
            let at = |t: f32| (vx + (bottom - vx) * t, vy + (hf - vy) * t);
            let (a, b) = (at(t), at(t2));
            let half = 2.0 + 10.0 * t;
            poly(
                &mut img,
                &[(a.0 - half, a.1), (a.0 + half, a.1), (b.0 + half, b.1), (b.0 - half, b.1)],
                [220, 220, 210],
            );
            t += 0.12;
        }
    }
    img
}

/// Where the camera looks and where the plates are.
struct View {
    /// World to image.
    to_image: Projection,
    world_size: (u32, u32),
    /// Per plate: centre and size in the world.
    placed: Vec<(f32, f32, f32, f32)>,
}

impl View {
    /// The plates' corners in the image.
    fn quads(&self) -> Vec<Quad> {
        self.placed
            .iter()
            .map(|&(x, y, pw, ph)| {
                let corners = [
                    (x - pw / 2.0, y - ph / 2.0),
                    (x + pw / 2.0, y - ph / 2.0),
                    (x + pw / 2.0, y + ph / 2.0),
                    (x - pw / 2.0, y + ph / 2.0),
                ];
                corners.map(|p| {
                    let (u, v) = self.to_image * p;
                    [u, v]
                })
            })
            .collect()
    }
}

/// Chooses the view of a `w` x `h` photo and places plates of the given aspect ratios in it.
fn view(distortion: Distortion, (w, h): (u32, u32), aspects: &[f32], photo: &mut Rand) -> Result<View, SynthError> {
    let (wf, hf) = (w as f32, h as f32);
    let distorted = distortion == Distortion::Distorted;
    let count = aspects.len();

    // The view: world -> image. Clean: identity. Distorted: a slightly scaled, rotated (±15°) and slanted crop of
    // a larger world.
    let (to_image, world_size) = if distorted {
        let scale = photo.f32(0.9, 1.1);
        let angle = (photo.gauss() * 6.0).clamp(-15.0, 15.0).to_radians();
        let (s, c) = angle.sin_cos();
        let (hw, hh) = (wf / 2.0 / scale, hf / 2.0 / scale);
        let corners: Vec<(f32, f32)> = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
            .iter()
            .map(|(x, y)| {
                let (x, y) = (x * (1.0 + photo.f32(-0.04, 0.04)), y * (1.0 + photo.f32(-0.04, 0.04)));
                (x * c - y * s, x * s + y * c)
            })
            .collect();
        let min_x = corners.iter().map(|p| p.0).fold(f32::INFINITY, f32::min);
        let min_y = corners.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
        let max_x = corners.iter().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max);
        let max_y = corners.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
        let from = [0, 1, 2, 3].map(|i| (corners[i].0 - min_x + 2.0, corners[i].1 - min_y + 2.0));
        let to = [(0.0, 0.0), (wf, 0.0), (wf, hf), (0.0, hf)];
        let projection = Projection::from_control_points(from, to).ok_or(SynthError::Geometry("plate view"))?;
        (projection, ((max_x - min_x + 4.0).ceil() as u32, (max_y - min_y + 4.0).ceil() as u32))
    } else {
        (Projection::scale(1.0, 1.0), (w, h))
    };
    let to_world = to_image.invert();

    // Plate centres and widths in the image; the world position follows.
    let (min_w, max_w): (f32, f32) = if distorted { (110.0, 300.0) } else { (120.0, 320.0) };
    let mut placed = Vec::new();
    for (i, aspect) in aspects.iter().enumerate() {
        // A car is about four plates wide: plates of an eighth to a quarter of the frame show most of the car.
        let (lo, hi) = if count == 1 { (0.12 * wf, 0.25 * wf) } else { (0.0, 0.12 * wf) };
        let pw = photo.f32(lo.max(min_w), hi.min(max_w).max(lo.max(min_w)));
        let ph = pw / aspect;
        // Far enough from the edges that a rotated plate stays inside.
        let margin = 0.62 * pw + 4.0;
        let cx = if count == 1 {
            photo.f32(0.25, 0.75) * wf
        } else {
            (0.27 + 0.46 * i as f32 + photo.f32(-0.04, 0.04)) * wf
        };
        let cy = photo.f32(0.55, 0.85) * hf;
        let cx = cx.clamp(margin, wf - margin);
        let cy = cy.clamp(margin.min(hf / 2.0), hf - margin.min(hf / 2.0));
        let (wx, wy) = to_world * (cx, cy);
        // World size of the plate: image size over the local scale of the view.
        let (ax, ay) = to_world * (cx + 1.0, cy);
        let local = 1.0 / (ax - wx).hypot(ay - wy).max(1e-3);
        placed.push((wx, wy, pw / local, ph / local));
    }

    Ok(View { to_image, world_size, placed })
}

/// A finished plate scene.
pub(crate) struct Scene {
    pub image: RgbImage,
    pub plates: Vec<PlateTruth>,
}

const SIZES: &[(u32, u32)] = &[(640, 480), (800, 600), (960, 540), (1024, 768), (1280, 720)];

/// Renders the scene; plate text, colours and cars come from `content`, framing and camera from `photo`.
pub(crate) fn scene(
    fonts: &Fonts,
    distortion: Distortion,
    content: &mut Rand,
    photo: &mut Rand,
) -> Result<Scene, SynthError> {
    let count = if content.chance(0.15) { 2 } else { 1 };
    let specs: Vec<PlateSpec> = (0..count).map(|_| random_plate(content)).collect();
    let looks: Vec<CarLook> = (0..count).map(|_| car_look(content)).collect();
    // Two cars side by side need a wide frame to keep their plates over 110 px.
    let sizes = if count == 2 { &SIZES[3..] } else { SIZES };
    let (w, h) = photo.pick(sizes);
    let aspects: Vec<f32> = specs.iter().map(PlateSpec::aspect).collect();
    let view = view(distortion, (w, h), &aspects, photo)?;
    let placed = &view.placed;

    let horizon = placed.iter().map(|p| p.1 - p.2 * 2.0).fold(f32::INFINITY, f32::min);
    let mut world = street(view.world_size.0, view.world_size.1, horizon, content);
    // Farther car (higher in the picture) first.
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_by(|a, b| placed[*a].1.total_cmp(&placed[*b].1));
    for &i in &order {
        let (x, y, pw, ph) = placed[i];
        draw_car(&mut world, (x, y), pw, ph, &looks[i]);
        let face = render_plate(fonts, &specs[i]);
        let (l, t, r, b) = (x - pw / 2.0, y - ph / 2.0, x + pw / 2.0, y + ph / 2.0);
        composite(&mut world, &with_round_corners(&face, 8.0), &[[l, t], [r, t], [r, b], [l, b]])?;
    }

    let distorted = distortion == Distortion::Distorted;
    let mut image = if distorted {
        let mut out = RgbImage::new(w, h);
        warp_into(&world, view.to_image, Interpolation::Bilinear, Border::Replicate, &mut out);
        out
    } else {
        world
    };
    let (wf, hf) = (w as f32, h as f32);
    let plates: Vec<PlateTruth> = specs
        .iter()
        .zip(view.quads())
        .map(|(spec, quad)| PlateTruth {
            text: spec.text.clone(),
            color: spec.colour.name().to_string(),
            // Placement keeps plates inside (tested); the clamp only guards against float rounding at the edge.
            quad: quad.map(|[x, y]| [x.clamp(0.0, wf), y.clamp(0.0, hf)]),
            region: spec.region.to_string(),
        })
        .collect();
    if distorted {
        let first = plates.first().map(|p| p.quad).unwrap_or([[0.0; 2]; 4]);
        let pw = (first[1][0] - first[0][0]).hypot(first[1][1] - first[0][1]);
        let blur_max = 0.5 + 0.5 * ((pw - 110.0) / 190.0).clamp(0.0, 1.0);
        scene::camera(&mut image, &first, pw * 1.5, blur_max, photo);
    }
    Ok(Scene { image, plates })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faceplate_documents::plate::{PlateRegion, parse_plate};

    /// Many views with random plate shapes: every plate inside the frame, 110-320 px wide, never rotated past
    /// 15 degrees.
    #[test]
    fn views_keep_plates_inside_and_upright() {
        for i in 0..600 {
            let distortion = if i % 2 == 0 { Distortion::Clean } else { Distortion::Distorted };
            let mut rng = Rand::new(8, i, *b"view");
            let count = 1 + (i as usize / 2) % 2;
            let size = if count == 2 { SIZES[3 + (i as usize / 4) % 2] } else { SIZES[(i as usize / 4) % SIZES.len()] };
            let aspects: Vec<f32> =
                (0..count).map(|k| [440.0 / 140.0, 480.0 / 140.0, 520.0 / 115.0, 2.0][(i as usize + k) % 4]).collect();
            let v = view(distortion, size, &aspects, &mut rng).unwrap();
            for q in v.quads() {
                for [x, y] in q {
                    assert!(x >= 0.0 && y >= 0.0 && x <= size.0 as f32 && y <= size.1 as f32, "{i} {q:?} {size:?}");
                }
                let (dx, dy) = (q[1][0] - q[0][0], q[1][1] - q[0][1]);
                let width = dx.hypot(dy);
                assert!((105.0..=330.0).contains(&width), "{i} {width}");
                assert!(dy.atan2(dx).to_degrees().abs() <= 16.0, "{i} {q:?}");
            }
        }
    }

    #[test]
    fn plate_texts_validate_in_their_region() {
        let mut rng = Rand::new(5, 0, *b"test");
        let mut chinese = 0;
        for _ in 0..2000 {
            let spec = random_plate(&mut rng);
            let region = match spec.region {
                "china" => {
                    chinese += 1;
                    PlateRegion::China
                }
                "singapore" => PlateRegion::Singapore,
                "uk" => PlateRegion::UnitedKingdom,
                "europe" => PlateRegion::Europe,
                _ => PlateRegion::UnitedStates,
            };
            let shown = match &spec.layout {
                Layout::Line { display, .. } => display.clone(),
                Layout::China { .. } => spec.text.clone(),
            };
            let parsed = parse_plate(&shown, region);
            assert!(parsed.valid && !parsed.corrected, "{shown} {:?}", parsed);
            let compact: String = parsed.text.chars().filter(|c| c.is_alphanumeric()).collect();
            assert_eq!(compact, spec.text);
        }
        assert!(chinese >= 1600, "{chinese}");
    }
}
