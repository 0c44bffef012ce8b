//! The machine-readable zone (MRZ) searched and read again on its own.
//!
//! On a photo the page-wide search finds an MRZ poorly: a run of `<` fillers fades into the background, so the
//! detector's box stops early or misses a whole line (on 60 distorted synthetic passports, 12 of the 25 read
//! wrong had lost a line). Once one line has been read as machine-readable, the zone's place is known: it runs
//! along that line, and its other lines lie within a few line heights above or below. That band is cut out
//! level and magnified so its text is about [`LINE_HEIGHT`] pixels tall, and searched again. Every line of a
//! zone is equally long and they start at the same place, so each machine-readable line found is widened to
//! the zone's full width before it is read.

use image::RgbImage;

use super::detect::distance;
use super::{Ocr, OcrSettings, Quad, TextLine, crop, looks_machine_readable, resize};
use crate::error::EngineResult;

/// The height, in band pixels, of a detected MRZ line (its box, text plus margin). The detector finds
/// lines best at this size; the zone's own pixels are at most [`MAX_MAGNIFY`] times magnified to reach it.
const LINE_HEIGHT: f32 = 36.0;
const MAX_MAGNIFY: f32 = 3.0;
/// Detector input is capped at this many pixels (a zone photographed huge is shrunk instead).
const MAX_BAND_PIXELS: f32 = 2_500_000.0;
/// The longest MRZ line (TD3), in characters.
const LONGEST_LINE: usize = 44;
/// How far above and below the lines already read the band reaches, in line heights: a TD1 zone has three
/// lines, so the one read may be the first or the last.
const REACH: f32 = 3.5;
/// A box this many times as long as it is tall, or less, cannot hold a machine-readable line (20 characters or
/// more): in the bands of 500 distorted MRZ pages, every line read as machine-readable was at least 14 times as
/// long, and 399 of the 487 other lines read there were under 6.
const MIN_LINE_ASPECT: f32 = 8.0;
/// Machine-readable lines are read again squeezed to this share of their width (see
/// [`Ocr::reread_machine_readable`]).
const SQUEEZE: f64 = 0.8;

/// A line's crop squeezed to [`SQUEEZE`] of its width.
pub(super) fn squeezed(crop: &RgbImage) -> EngineResult<RgbImage> {
    resize(crop, ((f64::from(crop.width()) * SQUEEZE).round() as u32).max(1), crop.height())
}

/// A line already read, in the frame it was found in, with its reading direction.
pub(super) struct Seed<'a> {
    pub text: &'a str,
    pub confidence: f32,
    /// Where reading starts (the text's top-left) and the line's top-right and bottom-left corners.
    pub start: [f32; 2],
    pub end: [f32; 2],
    pub below: [f32; 2],
}

impl Seed<'_> {
    /// The corner opposite the reading start (bottom-right of the text).
    fn far(&self) -> [f32; 2] {
        [self.end[0] + self.below[0] - self.start[0], self.end[1] + self.below[1] - self.start[1]]
    }

    /// The line's corners, reading start first.
    fn quad(&self) -> Quad {
        [self.start, self.end, self.far(), self.below]
    }

    fn centre(&self) -> [f32; 2] {
        let half = |k: usize| (self.end[k] - self.start[k] + self.below[k] - self.start[k]) / 2.0;
        [self.start[0] + half(0), self.start[1] + half(1)]
    }
}

/// The zone's lines as read from the band, in the frame's pixels.
pub(super) struct Zone {
    pub lines: Vec<TextLine>,
}

impl Zone {
    /// Whether a frame point lies on one of the zone's lines (so a line found there before is replaced).
    pub fn covers(&self, point: [f32; 2]) -> bool {
        self.lines.iter().any(|line| inside(&line.quad, point))
    }
}

/// Whether the machine-readable lines read so far already make a whole zone (two lines of 44 or 36
/// characters, three of 30), so there is nothing to search for.
pub(super) fn complete(texts: &[&str]) -> bool {
    let lengths: Vec<usize> = texts.iter().map(|t| t.trim().chars().count()).collect();
    match lengths.as_slice() {
        [a, b] => a == b && (*a == 44 || *a == 36),
        [a, b, c] => a == b && b == c && *a == 30,
        _ => false,
    }
}

/// A valid MRZ line length.
pub(super) fn valid_length(text: &str) -> bool {
    valid_length_n(text.trim().chars().count())
}

fn valid_length_n(n: usize) -> bool {
    matches!(n, 30 | 36 | 44)
}

/// Of two readings of one line, whether the second is better: the one of a valid MRZ length, else the more
/// confident.
pub(super) fn second_is_better(first: &(String, f32), second: &(String, f32)) -> bool {
    match (valid_length(&first.0), valid_length(&second.0)) {
        (false, true) => true,
        (true, false) => false,
        _ => second.1 > first.1,
    }
}

/// A level band of the frame: band pixel (x, y) is frame point `origin + (x / scale) u + (y / scale) v`.
struct Band {
    origin: [f32; 2],
    u: [f32; 2],
    v: [f32; 2],
    scale: f32,
    width: u32,
    height: u32,
}

impl Band {
    /// The band around `seeds` (the longest sets the direction and the line height), or `None` when the
    /// seeds are degenerate.
    fn around(seeds: &[Seed<'_>]) -> Option<Band> {
        let reference = seeds.iter().max_by_key(|s| s.text.trim().chars().count())?;
        let length = distance(reference.start, reference.end);
        let height = distance(reference.start, reference.below);
        let characters = reference.text.trim().chars().count();
        if length < 1.0 || height < 1.0 || characters == 0 {
            return None;
        }
        let u = [(reference.end[0] - reference.start[0]) / length, (reference.end[1] - reference.start[1]) / length];
        // Perpendicular, pointing down the page.
        let v = [-u[1], u[0]];
        let project = |p: [f32; 2]| {
            let d = [p[0] - reference.start[0], p[1] - reference.start[1]];
            (d[0] * u[0] + d[1] * u[1], d[0] * v[0] + d[1] * v[1])
        };
        let (mut low, mut high) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for seed in seeds {
            let corners = [seed.start, seed.end, seed.below];
            let projected: Vec<(f32, f32)> = corners.iter().map(|&p| project(p)).collect();
            // Lines of another zone, or turned another way, are not this zone's.
            let centre_v = projected.iter().map(|p| p.1).sum::<f32>() / 3.0;
            let seed_u = project(seed.end).0 - project(seed.start).0;
            if centre_v.abs() > 2.0 * REACH * height || seed_u < 0.9 * distance(seed.start, seed.end) {
                continue;
            }
            for (a, b) in projected {
                low = [low[0].min(a), low[1].min(b)];
                high = [high[0].max(a), high[1].max(b)];
            }
            // The fourth corner.
            let (a, b) = project(seed.far());
            low = [low[0].min(a), low[1].min(b)];
            high = [high[0].max(a), high[1].max(b)];
        }
        // A line cut short may have lost either end: reach as far as the longest line could go, plus a margin.
        let character = length / characters as f32;
        let reach_along = LONGEST_LINE.saturating_sub(characters) as f32 * character + height;
        let (a0, a1) = (low[0] - reach_along, high[0] + reach_along);
        let (b0, b1) = (low[1] - REACH * height, high[1] + REACH * height);
        let mut scale = (LINE_HEIGHT / height).clamp(1.0, MAX_MAGNIFY);
        let area = (a1 - a0) * (b1 - b0) * scale * scale;
        if area > MAX_BAND_PIXELS {
            scale *= (MAX_BAND_PIXELS / area).sqrt();
        }
        let origin = [reference.start[0] + a0 * u[0] + b0 * v[0], reference.start[1] + a0 * u[1] + b0 * v[1]];
        let width = ((a1 - a0) * scale).round().max(1.0) as u32;
        let height = ((b1 - b0) * scale).round().max(1.0) as u32;
        Some(Band { origin, u, v, scale, width, height })
    }

    /// A band pixel in the frame.
    fn to_frame(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let (a, b) = (x / self.scale, y / self.scale);
        [self.origin[0] + a * self.u[0] + b * self.v[0], self.origin[1] + a * self.u[1] + b * self.v[1]]
    }

    /// The band's corners in the frame.
    fn quad(&self) -> Quad {
        let (w, h) = (self.width as f32, self.height as f32);
        [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]].map(|p| self.to_frame(p))
    }
}

/// When every line of a zone was found but some were read short (a filler or a digit lost at an end), the
/// short ones widened to the zone's full width, in the frame; `None` when lines are missing or the lines read
/// whole disagree on the zone's format. Every line of a zone is equally long and starts at the same place, so
/// the widened quad holds the whole line, and reading it again costs a fraction of a search of the band.
fn widened_short_lines(seeds: &[Seed<'_>]) -> Option<Vec<Option<Quad>>> {
    let whole: Vec<usize> =
        seeds.iter().map(|s| s.text.trim().chars().count()).filter(|&n| valid_length_n(n)).collect();
    let length = *whole.first()?;
    let lines = if length == 30 { 3 } else { 2 };
    if whole.iter().any(|&n| n != length) || seeds.len() != lines {
        return None;
    }
    let reference = seeds.iter().find(|s| s.text.trim().chars().count() == length)?;
    let (along, height) = (distance(reference.start, reference.end), distance(reference.start, reference.below));
    if along < 1.0 || height < 1.0 {
        return None;
    }
    let u = [(reference.end[0] - reference.start[0]) / along, (reference.end[1] - reference.start[1]) / along];
    let position = |p: [f32; 2]| (p[0] - reference.start[0]) * u[0] + (p[1] - reference.start[1]) * u[1];
    let pad = 0.5 * height;
    let low = seeds.iter().map(|s| position(s.start).min(position(s.below))).fold(f32::INFINITY, f32::min) - pad;
    let high = seeds.iter().map(|s| position(s.end).max(position(s.far()))).fold(f32::NEG_INFINITY, f32::max) + pad;
    let mut quads = Vec::with_capacity(seeds.len());
    for seed in seeds {
        if valid_length(seed.text) {
            quads.push(None);
            continue;
        }
        let length = distance(seed.start, seed.end);
        let d = [(seed.end[0] - seed.start[0]) / length, (seed.end[1] - seed.start[1]) / length];
        let cosine = d[0] * u[0] + d[1] * u[1];
        // A line turned well away from the zone's direction is not one of its lines.
        if length < 1.0 || cosine < 0.9 {
            return None;
        }
        let at = |target: f32| {
            let t = (target - position(seed.start)) / cosine;
            [seed.start[0] + t * d[0], seed.start[1] + t * d[1]]
        };
        let (start, end) = (at(low), at(high));
        let h = [seed.below[0] - seed.start[0], seed.below[1] - seed.start[1]];
        quads.push(Some([start, end, [end[0] + h[0], end[1] + h[1]], [start[0] + h[0], start[1] + h[1]]]));
    }
    Some(quads)
}

impl Ocr {
    /// The zone read from the lines already found (see [`widened_short_lines`]) when that makes it whole;
    /// `None` otherwise, and the band is searched.
    pub(super) fn read_widened(&mut self, frame: &RgbImage, seeds: &[Seed<'_>]) -> EngineResult<Option<Zone>> {
        let Some(quads) = widened_short_lines(seeds) else { return Ok(None) };
        let short: Vec<Quad> = quads.iter().flatten().copied().collect();
        let mut again = self.read_both_ways(frame, &short)?.into_iter();
        let mut lines = Vec::with_capacity(seeds.len());
        for (seed, widened) in seeds.iter().zip(quads) {
            let (text, confidence, quad) = match widened {
                None => (seed.text.trim().to_string(), seed.confidence, seed.quad()),
                Some(quad) => {
                    let (text, confidence) = again.next().unwrap_or_default();
                    (text.trim().to_string(), confidence, quad)
                }
            };
            if !valid_length(&text) || !looks_machine_readable(&text) {
                return Ok(None);
            }
            lines.push(TextLine { text, confidence, quad });
        }
        Ok(Some(Zone { lines }))
    }

    /// Searches the band around the machine-readable lines read so far (`seeds`, in `frame`) and reads the
    /// zone's lines there. `None` when the band holds no machine-readable line, or fewer whole lines than
    /// `seeds`.
    pub(super) fn read_zone(
        &mut self,
        frame: &RgbImage,
        seeds: &[Seed<'_>],
        settings: &OcrSettings,
    ) -> EngineResult<Option<Zone>> {
        let Some(band) = Band::around(seeds) else { return Ok(None) };
        let Some(image) = crop::warp_to(frame, &band.quad(), band.width, band.height) else { return Ok(None) };
        // Searched at the band's own size: it is already magnified.
        let band_settings = OcrSettings { max_side: band.width.max(band.height) + 32, limit_side: 32, ..*settings };
        let quads: Vec<Quad> = self
            .detect(&image, &band_settings)?
            .into_iter()
            .filter(|q| distance(q[0], q[1]) > distance(q[0], q[3]))
            .collect();
        // A line read before at a valid length (both as cut and squeezed: the zone was not whole, see
        // `Ocr::reread_machine_readable`) keeps that reading; the rest long enough to be a zone's line are read
        // both ways, and compared with how they were read before.
        let seed_on = |quad: &Quad| {
            let quad = quad.map(|p| band.to_frame(p));
            seeds.iter().find(|s| inside(&quad, s.centre())).map(|s| (s.text.to_string(), s.confidence))
        };
        let before: Vec<Option<(String, f32)>> = quads.iter().map(seed_on).collect();
        let unread: Vec<usize> = (0..quads.len())
            .filter(|&i| !before[i].as_ref().is_some_and(|b| valid_length(&b.0)))
            .filter(|&i| may_hold_zone_line(&quads[i]))
            .collect();
        let fresh = self.read_both_ways(&image, &unread.iter().map(|&i| quads[i]).collect::<Vec<_>>())?;
        let mut read: Vec<(String, f32)> = before.iter().map(|b| b.clone().unwrap_or_default()).collect();
        for (&i, reading) in unread.iter().zip(fresh) {
            if before[i].as_ref().is_none_or(|b| second_is_better(b, &reading)) {
                read[i] = reading;
            }
        }
        let (quads, mut read): (Vec<Quad>, Vec<(String, f32)>) =
            quads.into_iter().zip(read).filter(|(_, r)| looks_machine_readable(&r.0)).unzip();
        if quads.is_empty() {
            return Ok(None);
        }
        let mut frame_quads: Vec<Quad> = quads.iter().map(|q| q.map(|p| band.to_frame(p))).collect();
        // The zone's full width: from the leftmost start to the rightmost end of its lines, and half a line
        // height beyond (every line may have lost its last filler). A line not yet of a valid length is widened
        // to it and read again.
        let pad = 0.5 * quads.iter().map(|q| distance(q[0], q[3])).fold(0.0, f32::max);
        let left = quads.iter().map(|q| q[0][0].min(q[3][0])).fold(f32::INFINITY, f32::min) - pad;
        let right = quads.iter().map(|q| q[1][0].max(q[2][0])).fold(f32::NEG_INFINITY, f32::max) + pad;
        let short: Vec<usize> = (0..quads.len()).filter(|&i| !valid_length(&read[i].0)).collect();
        let widened: Vec<Quad> = short.iter().map(|&i| widen(&quads[i], left, right)).collect();
        let again = self.read_both_ways(&image, &widened)?;
        for ((&i, quad), second) in short.iter().zip(widened).zip(again) {
            if second_is_better(&read[i], &second) {
                read[i] = second;
                frame_quads[i] = quad.map(|p| band.to_frame(p));
            }
        }
        let lines: Vec<TextLine> = frame_quads
            .into_iter()
            .zip(read)
            .filter(|(_, (text, _))| looks_machine_readable(text))
            .map(|(quad, (text, confidence))| TextLine { text: text.trim().to_string(), confidence, quad })
            .collect();
        let whole = |texts: &mut dyn Iterator<Item = &str>| texts.filter(|t| valid_length(t)).count();
        if lines.is_empty()
            || whole(&mut lines.iter().map(|l| l.text.as_str())) < whole(&mut seeds.iter().map(|s| s.text))
        {
            return Ok(None);
        }
        Ok(Some(Zone { lines }))
    }

    /// Reads the lines at `quads` of `image` as cut and squeezed to [`SQUEEZE`] of their width, and keeps the
    /// better reading of each (see [`Ocr::reread_machine_readable`]).
    fn read_both_ways(&mut self, image: &RgbImage, quads: &[Quad]) -> EngineResult<Vec<(String, f32)>> {
        let mut crops = Vec::with_capacity(2 * quads.len());
        for quad in quads {
            let crop = crop::warp(image, quad).unwrap_or_else(|| RgbImage::new(1, 1));
            let squeezed = squeezed(&crop)?;
            crops.push(crop);
            crops.push(squeezed);
        }
        let mut read = self.recognize(&crops)?.into_iter();
        let mut best = Vec::with_capacity(quads.len());
        while let (Some(first), Some(second)) = (read.next(), read.next()) {
            best.push(if second_is_better(&first, &second) { second } else { first });
        }
        Ok(best)
    }
}

/// Whether a level box (corners from the top-left, clockwise) is long enough to hold a machine-readable line.
fn may_hold_zone_line(quad: &Quad) -> bool {
    long_enough_shape(distance(quad[0], quad[1]), distance(quad[0], quad[3]))
}

/// Whether a line's crop is long enough to hold a machine-readable line.
pub(super) fn long_enough(crop: &RgbImage) -> bool {
    long_enough_shape(crop.width() as f32, crop.height() as f32)
}

/// Whether a line `length` long and `height` tall can hold a machine-readable line (see [`MIN_LINE_ASPECT`]).
fn long_enough_shape(length: f32, height: f32) -> bool {
    length > MIN_LINE_ASPECT * height
}

/// A line's quad (nearly level, corners top-left, top-right, bottom-right, bottom-left) stretched along its
/// top and bottom edges to run from x = `left` to x = `right`.
fn widen(quad: &Quad, left: f32, right: f32) -> Quad {
    let along = |a: [f32; 2], b: [f32; 2], x: f32| {
        let dx = b[0] - a[0];
        let t = if dx.abs() < f32::EPSILON { 0.0 } else { (x - a[0]) / dx };
        [x, a[1] + t * (b[1] - a[1])]
    };
    [
        along(quad[0], quad[1], left),
        along(quad[0], quad[1], right),
        along(quad[3], quad[2], right),
        along(quad[3], quad[2], left),
    ]
}

/// Whether a point lies inside a convex quad.
fn inside(quad: &Quad, p: [f32; 2]) -> bool {
    let sides = (0..4).map(|i| {
        let (a, b) = (quad[i], quad[(i + 1) % 4]);
        (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    });
    let (mut positive, mut negative) = (false, false);
    for cross in sides {
        positive |= cross > 0.0;
        negative |= cross < 0.0;
    }
    !(positive && negative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_complete_with_two_long_lines_or_three_short_ones() {
        let td3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
        assert!(complete(&[td3, td3]));
        assert!(!complete(&[td3]));
        let td1 = "I<UTOD231458907<<<<<<<<<<<<<<<";
        assert!(complete(&[td1, td1, td1]));
        assert!(!complete(&[td1, td1]));
        assert!(!complete(&[td3, &td3[..40]]));
    }

    #[test]
    fn a_band_reaches_along_a_short_line_and_above_and_below_it() {
        // A 20-character line, 200 px long and 20 px high, level at (100, 100).
        let text = "P<UTOERIKSSON<<ANNA<";
        let seed = Seed { text, confidence: 1.0, start: [100.0, 100.0], end: [300.0, 100.0], below: [100.0, 120.0] };
        let band = Band::around(&[seed]).unwrap();
        let [top_left, top_right, bottom_right, _] = band.quad();
        // 24 characters (240 px) plus a line height (20 px) either side; 3.5 line heights above and below.
        assert!((top_left[0] - (100.0 - 260.0)).abs() < 0.5 && (top_left[1] - (100.0 - 70.0)).abs() < 0.5);
        assert!((top_right[0] - (300.0 + 260.0)).abs() < 0.5);
        assert!((bottom_right[1] - (120.0 + 70.0)).abs() < 0.5);
        // Magnified to 36 px line height.
        assert!((band.scale - 1.8).abs() < 1e-4);
        assert_eq!(band.height, (160.0f32 * 1.8).round() as u32);
    }

    #[test]
    fn a_band_follows_a_line_read_upside_down() {
        // Read from right to left: the band's first corner is beyond the line's right end, below it.
        let text = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
        let seed = Seed { text, confidence: 1.0, start: [540.0, 120.0], end: [100.0, 120.0], below: [540.0, 100.0] };
        let band = Band::around(&[seed]).unwrap();
        let origin = band.to_frame([0.0, 0.0]);
        assert!(origin[0] > 540.0 && origin[1] > 120.0, "{origin:?}");
        let far = band.to_frame([band.width as f32, band.height as f32]);
        assert!(far[0] < 100.0 && far[1] < 100.0, "{far:?}");
    }

    #[test]
    fn a_short_line_of_a_whole_zone_is_widened_to_the_zone() {
        // A TD3 zone read upside down (right to left): the second line lost its first characters.
        let first = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
        let second = "99<5UTO7408122F1204159ZE184226B<<<<<10";
        let seeds = [
            Seed { text: first, confidence: 1.0, start: [540.0, 220.0], end: [100.0, 220.0], below: [540.0, 200.0] },
            Seed { text: second, confidence: 1.0, start: [480.0, 250.0], end: [100.0, 250.0], below: [480.0, 230.0] },
        ];
        let quads = widened_short_lines(&seeds).unwrap();
        assert!(quads[0].is_none());
        // From the zone's start less half a line height, to its end plus as much, along the second line.
        let [start, end, _, below] = quads[1].unwrap();
        assert!((start[0] - 550.0).abs() < 1e-3 && (start[1] - 250.0).abs() < 1e-3, "{start:?}");
        assert!((end[0] - 90.0).abs() < 1e-3 && (below[1] - 230.0).abs() < 1e-3, "{end:?} {below:?}");
        // A missing line is searched for instead.
        assert!(widened_short_lines(&seeds[1..]).is_none());
        assert!(widened_short_lines(&seeds[..1]).is_none());
    }

    #[test]
    fn only_long_boxes_may_hold_a_zone_line() {
        // 300 x 20: 15 times as long as tall, like the shortest zone line found (14).
        assert!(may_hold_zone_line(&[[0.0, 0.0], [300.0, 0.0], [300.0, 20.0], [0.0, 20.0]]));
        // A printed field or label: 5 times.
        assert!(!may_hold_zone_line(&[[0.0, 0.0], [100.0, 0.0], [100.0, 20.0], [0.0, 20.0]]));
    }

    #[test]
    fn widening_follows_a_slanted_edge() {
        let quad = [[10.0, 10.0], [20.0, 11.0], [20.0, 21.0], [10.0, 20.0]];
        let wide = widen(&quad, 0.0, 40.0);
        assert_eq!(wide, [[0.0, 9.0], [40.0, 13.0], [40.0, 23.0], [0.0, 19.0]]);
        assert!(inside(&wide, [30.0, 16.0]) && !inside(&wide, [30.0, 5.0]));
    }
}
