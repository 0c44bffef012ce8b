//! Reading text (OCR) with PP-OCRv4 as RapidOCR 1.4.4 runs it: DBNet finds the text lines, each line is cut out
//! and straightened, an angle classifier turns upside-down lines, SVTR-LCNet reads them (greedy CTC over 6,623
//! Chinese, Latin and other characters), and the lines are put in reading order and grouped into rows.
//!
//! Deliberate differences from RapidOCR: regions are the connected components of the text map (RapidOCR also
//! scores the holes' contours, which only adds stray boxes), lines are cut from the full-resolution image (not
//! the copy shrunk to 2000 px), very wide images are not letterboxed (the detector input is capped at 2000 px a
//! side instead) and the reading order uses a tolerance relative to the text height (see [`order`]).

pub mod classify;
pub mod crop;
pub mod detect;
pub mod order;
pub mod recognize;
mod zone;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use ndarray::Array4;
use ort::environment::Environment;
use ort::session::Session;

use crate::error::{EngineError, EngineResult};
use crate::runtime;

/// A quadrilateral in image pixels, corners clockwise from top-left: top-left, top-right, bottom-right,
/// bottom-left (`[x, y]`).
pub type Quad = [[f32; 2]; 4];

/// One detected and recognised line of text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    pub text: String,
    /// Mean probability of the recognised characters, 0..=1.
    pub confidence: f32,
    pub quad: Quad,
}

/// Lines that sit side by side on one visual row (e.g. a label and its value).
#[derive(Debug, Clone, PartialEq)]
pub struct TextRow {
    /// The lines' texts, left to right, joined with a space.
    pub text: String,
    /// The lowest confidence of its lines.
    pub confidence: f32,
    /// The axis-aligned box around its lines.
    pub quad: Quad,
    /// Its lines: indices into [`OcrOutput::lines`].
    pub lines: Range<usize>,
}

/// The text found in an image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OcrOutput {
    /// The decoded (upright) image's size; quads are in its pixels.
    pub width: u32,
    pub height: u32,
    /// Every line read, in reading order: rows top to bottom, left to right within a row.
    pub lines: Vec<TextLine>,
    /// The rows, top to bottom; together their `lines` ranges cover `lines` in order.
    pub rows: Vec<TextRow>,
    /// How far most of the text is turned clockwise in the image, to the nearest quarter turn: 0, 90 (lines run
    /// top to bottom), 180 (upside down) or 270. Reading order is that of the page turned upright (by its exact
    /// angle, so a photo taken at a slant reads row by row); quads stay in image pixels.
    pub rotation: u16,
}

/// Time spent in each stage of one [`Ocr::read`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OcrTimings {
    /// Detection, including cutting the lines out.
    pub detect: Duration,
    pub classify: Duration,
    pub recognize: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct OcrSettings {
    /// The detector sees images larger than this shrunk to it (2000)...
    pub max_side: u32,
    /// ...and smaller ones with their short side scaled up to this (736)...
    pub limit_side: u32,
    /// ...as far as their long side stays within this (3584): bounds the work for elongated images.
    pub max_upscaled_side: u32,
    /// Text probability above which a pixel is text (0.3).
    pub binary_threshold: f32,
    /// Minimum mean text probability inside a box (0.5).
    pub box_threshold: f32,
    /// How far boxes are grown around the text core: offset = area * ratio / perimeter (1.6).
    pub unclip_ratio: f64,
    /// At most this many regions are considered (1000).
    pub max_candidates: usize,
    /// Whether to run the angle classifier (upside-down lines).
    pub classify_angle: bool,
    /// A line is turned when the classifier says 180° with more than this probability (0.9).
    pub angle_threshold: f32,
    /// Lines read with a lower confidence are dropped (RapidOCR's `text_score`, 0.5).
    pub min_confidence: f32,
    /// A page whose text runs more than this many degrees off a quarter turn is straightened and found again
    /// (5; 0 turns it off).
    pub straighten_above: f32,
    /// A straightened page is searched at the scale that makes its lines (their median box, found at the slant)
    /// this many pixels tall for the detector, where the size limits above would magnify it more (0: the limits
    /// alone; [`OcrSettings::card`]: 32).
    pub straightened_line_height: f32,
    /// The page should hold a machine-readable zone (the MRZ endpoint): when a straightened page's zone is
    /// not whole, the whole turned page is searched too, not only the part around the lines found first.
    pub machine_readable_zone: bool,
    /// The text is embossed (the bank card endpoints): a letter read from the neighbouring word at either end of
    /// a line is dropped (see [`recognize::without_shadow_letters`]).
    pub embossed: bool,
}

impl Default for OcrSettings {
    fn default() -> Self {
        OcrSettings {
            max_side: 2000,
            limit_side: 736,
            max_upscaled_side: 3584,
            binary_threshold: 0.3,
            box_threshold: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            classify_angle: true,
            angle_threshold: 0.9,
            min_confidence: 0.5,
            straighten_above: 5.0,
            straightened_line_height: 0.0,
            machine_readable_zone: false,
            embossed: false,
        }
    }
}

impl OcrSettings {
    /// For ID-1 cards (identity and bank cards): a straightened card is searched with its lines 32 pixels tall.
    /// The size limits alone magnified a distorted card's text to 40-50 pixels, which found no more of it: on 500
    /// distorted photos each, cards entirely right went from 96.4% to 98.2% (bank cards), 98.2% to 99.0% (ID
    /// fronts) and 97.6% to 99.0% (ID backs), at 4-16% more images/s. Driving licences' denser characters
    /// (92.8% against 94.2%) and MRZ pages (90.5% against 93.0% of 200) lost lines at that size, so the other
    /// documents keep the limits.
    pub fn card() -> OcrSettings {
        OcrSettings { straightened_line_height: 32.0, ..OcrSettings::default() }
    }

    /// For bank cards: a card whose text is embossed.
    pub fn bank_card() -> OcrSettings {
        OcrSettings { embossed: true, ..OcrSettings::card() }
    }

    /// For a page that should hold a machine-readable zone (the MRZ endpoint).
    pub fn machine_readable_page() -> OcrSettings {
        OcrSettings { machine_readable_zone: true, ..OcrSettings::default() }
    }
}

/// Where the three OCR models are.
#[derive(Debug, Clone)]
pub struct OcrModelPaths {
    pub detector: PathBuf,
    pub classifier: PathBuf,
    pub recognizer: PathBuf,
}

impl OcrModelPaths {
    /// The file names `scripts/fetch-models.sh` uses (the upstream ones).
    pub fn in_dir(dir: impl AsRef<Path>) -> OcrModelPaths {
        let dir = dir.as_ref();
        OcrModelPaths {
            detector: dir.join("ch_PP-OCRv4_det_infer.onnx"),
            classifier: dir.join("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
            recognizer: dir.join("ch_PP-OCRv4_rec_infer.onnx"),
        }
    }
}

/// The OCR models for one inference thread.
pub struct Ocr {
    detector: Session,
    classifier: Session,
    recognizer: Session,
    /// CTC classes: blank, the dictionary, space.
    charset: Vec<String>,
}

impl Ocr {
    /// Opens and checks the three models (names, shapes, the recogniser's dictionary).
    pub fn open(env: &Environment, paths: &OcrModelPaths) -> EngineResult<Ocr> {
        let detector = runtime::open_session(env, &paths.detector, &detect::SPEC)?;
        let classifier = runtime::open_session(env, &paths.classifier, &classify::SPEC)?;
        let recognizer = runtime::open_session(env, &paths.recognizer, &recognize::SPEC)?;
        let charset = recognize::charset(&recognizer).map_err(|problem| EngineError::Model {
            path: paths.recognizer.clone(),
            problem,
            fix: runtime::FETCH_FIX.to_string(),
        })?;
        Ok(Ocr { detector, classifier, recognizer, charset })
    }

    /// Reads the text in a decoded image (EXIF orientation already applied; the text itself may be turned).
    pub fn read(&mut self, image: &RgbImage, settings: &OcrSettings) -> EngineResult<OcrOutput> {
        Ok(self.read_timed(image, settings)?.0)
    }

    /// [`Ocr::read`], with the time each stage took.
    ///
    /// A page photographed at a slant (more than [`OcrSettings::straighten_above`] degrees off a quarter turn)
    /// is found again on a straightened copy: the detector and recogniser were trained on level text, and on
    /// slanted cards the detector missed whole rows. Quads are mapped back to the image as given. On a page
    /// turned a quarter, every line is cut out to read down the page, short words included (see [`crop::crop`]).
    /// (Turning such a page level instead read driving licences as well but bank cards worse: 90.0% vs 94.0%
    /// of 200 distorted cards entirely right.)
    pub fn read_timed(&mut self, image: &RgbImage, settings: &OcrSettings) -> EngineResult<(OcrOutput, OcrTimings)> {
        let (output, timings) = self.read_page(image, settings)?;
        tracing::debug!(
            lines = output.lines.len(),
            rotation = output.rotation,
            detect_ms = timings.detect.as_secs_f64() * 1e3,
            classify_ms = timings.classify.as_secs_f64() * 1e3,
            recognize_ms = timings.recognize.as_secs_f64() * 1e3,
            "ocr"
        );
        Ok((output, timings))
    }

    /// The work of [`Ocr::read_timed`], which logs it once an image (a page the MRZ endpoint reads twice included).
    fn read_page(&mut self, image: &RgbImage, settings: &OcrSettings) -> EngineResult<(OcrOutput, OcrTimings)> {
        let mut timings = OcrTimings::default();
        let mut found = self.find_lines(image, settings, false, &mut timings)?;
        let angle = page_angle(found.direction(|i| f64::from(found.crops[i].width())));
        let slant = off_quarter(angle);
        // Whether the text runs down the image (once straightened).
        let page_vertical = ((angle - slant) / 90.0).round().rem_euclid(2.0) == 1.0;
        if settings.straighten_above <= 0.0 || slant.abs() <= settings.straighten_above {
            let found = if page_vertical
                && (0..found.crops.len()).any(|i| !found.vertical[i] && crop::runs_down(&found.crops[i], true))
            {
                // Short words were cut out as if they ran across the page.
                self.cut_out(image, found.quads, settings, true, &mut timings)?
            } else {
                found
            };
            let output = self.read_found(image, found, None, settings, &mut timings)?;
            return Ok((output, timings));
        }
        if settings.machine_readable_zone
            && let Some(output) = self.read_zone_at_slant(image, &mut found, settings, &mut timings)?
        {
            return Ok((output, timings));
        }
        // Only the part of the turned page that holds the lines found, with a margin for rows missed.
        let whole_page = Turn::new(image.width(), image.height(), -slant);
        let near = whole_page.around(&found.quads);
        let line_height = median_line_height(&found.quads);
        let output = self.read_straightened(image, near, page_vertical, line_height, settings, &mut timings)?;
        let zone = zone_lines(&output.lines);
        if !settings.machine_readable_zone || zone.1 {
            return Ok((output, timings));
        }
        // The zone runs along the page's edge, and on a passport's data page the photo can stand between it and
        // the nearest text found, beyond the margin searched: the whole turned page is read too, and the reading
        // with more of the zone's lines kept. (Searching only the whole page's long lines not found before was
        // cheaper but found fewer zones: 90.0% against 92.0% of 200 distorted pages entirely right.)
        let again = self.read_straightened(image, whole_page, page_vertical, line_height, settings, &mut timings)?;
        let better = zone_lines(&again.lines) > zone;
        Ok((if better { again } else { output }, timings))
    }

    /// For the MRZ endpoint, a page at a slant is first read as found: its long lines (see
    /// [`Ocr::read_zone_first`]), and the zone's band searched where those lines are machine-readable but not a
    /// whole zone (see [`Ocr::search_machine_readable_zone`]). Each line is cut out along its own box and the
    /// band is cut out level, so neither needs the page straightened; when they make a whole zone, the second
    /// detector pass over the straightened page and the reading of its other lines are saved. `None` when they
    /// do not, and the page is straightened and read as any other.
    ///
    /// On the first 200 distorted MRZ pages of the benchmark, 124 of the 181 at a slant were read whole this
    /// way. With [`Ocr::read_zone_first`], on all 500: pages entirely right 93.0% -> 93.4% (every field as often
    /// right or more), and 1.18 -> 1.39 times RapidOCR's images/s (2 in flight).
    fn read_zone_at_slant(
        &mut self,
        image: &RgbImage,
        found: &mut Found,
        settings: &OcrSettings,
        timings: &mut OcrTimings,
    ) -> EngineResult<Option<OcrOutput>> {
        let started = Instant::now();
        let (read, whole) = self.read_zone_first(found, settings.min_confidence, false)?;
        timings.recognize += started.elapsed();
        if !whole && zone_seed_lines(&read, settings.min_confidence).is_empty() {
            return Ok(None);
        }
        let output = self.assemble(image, found, read, None, settings, timings)?;
        Ok(zone_lines(&output.lines).1.then_some(output))
    }

    /// Finds the lines again on the image turned by `turn` and reads them. The lines found at the slant give
    /// their height (`line_height`, source pixels), so the detector need not magnify the turned page more than
    /// [`OcrSettings::straightened_line_height`] asks: on distorted cards the size limits alone made it search
    /// the text at about 1.4 times that height, for no more lines found.
    fn read_straightened(
        &mut self,
        image: &RgbImage,
        turn: Turn,
        page_vertical: bool,
        line_height: Option<f32>,
        settings: &OcrSettings,
        timings: &mut OcrTimings,
    ) -> EngineResult<OcrOutput> {
        let started = Instant::now();
        let level = turn.apply(image);
        let mut scale = detect::input_scale(level.width(), level.height(), settings);
        if let Some(height) = line_height.filter(|&h| h > 0.0 && settings.straightened_line_height > 0.0) {
            scale = scale.min(f64::from(settings.straightened_line_height / height));
        }
        let quads = detect::detect_scaled(&mut self.detector, &level, settings, scale)?;
        timings.detect += started.elapsed();
        let found = self.cut_out(&level, quads, settings, page_vertical, timings)?;
        self.read_found(image, found, Some((turn, level)), settings, timings)
    }

    /// Reads the lines found in `image`, or in its straightened copy, and puts them in reading order.
    fn read_found(
        &mut self,
        image: &RgbImage,
        mut found: Found,
        straightened: Option<(Turn, RgbImage)>,
        settings: &OcrSettings,
        timings: &mut OcrTimings,
    ) -> EngineResult<OcrOutput> {
        let started = Instant::now();
        let read = if settings.machine_readable_zone {
            self.read_zone_first(&mut found, settings.min_confidence, true)?.0
        } else {
            let all: Vec<usize> = (0..found.crops.len()).collect();
            let mut read = if settings.embossed {
                let read = self.recognize_choices(&found.crops)?.into_iter().map(recognize::without_shadow_letters);
                read.map(|r| (r.text, r.confidence)).collect()
            } else {
                self.recognize(&found.crops)?
            };
            self.turn_over_machine_readable(&mut found, &mut read, &all, None)?;
            self.reread_machine_readable(&found.crops, &mut read, &all, settings.min_confidence, true)?;
            read
        };
        timings.recognize += started.elapsed();
        self.assemble(image, &found, read, straightened, settings, timings)
    }

    /// Puts the lines read in reading order, the zone searched again first where it is not whole (see
    /// [`Ocr::search_machine_readable_zone`]).
    fn assemble(
        &mut self,
        image: &RgbImage,
        found: &Found,
        read: Vec<(String, f32)>,
        straightened: Option<(Turn, RgbImage)>,
        settings: &OcrSettings,
        timings: &mut OcrTimings,
    ) -> EngineResult<OcrOutput> {
        let started = Instant::now();
        let frame = straightened.as_ref().map_or(image, |(_, level)| level);
        let zone = self.search_machine_readable_zone(frame, found, &read, settings)?;
        timings.recognize += started.elapsed();
        // Per cut-out line, the characters read from it (0 for a line dropped).
        let mut characters = vec![0.0f64; found.crops.len()];
        let mut lines = Vec::new();
        for (i, (text, confidence)) in read.into_iter().enumerate() {
            let text = text.trim();
            if text.is_empty() || confidence < settings.min_confidence {
                continue;
            }
            characters[i] = text.chars().count() as f64;
            // A line on the zone read again is replaced by its new reading.
            if zone.as_ref().is_some_and(|zone| zone.covers(quad_centre(&found.quads[i]))) {
                continue;
            }
            lines.push(TextLine { text: text.to_string(), confidence, quad: found.quads[i] });
        }
        lines.extend(zone.into_iter().flat_map(|zone| zone.lines));
        // Votes count characters, so a stray tall box around one letter does not outweigh a line.
        let angle = page_angle(found.direction(|i| characters[i]));
        let (width, height) = straightened.as_ref().map_or(image.dimensions(), |(t, _)| (t.width, t.height));
        let (mut lines, mut rows) = order::reading_order(lines, angle, width, height);
        let mut total = angle;
        if let Some((turn, _)) = &straightened {
            for line in &mut lines {
                line.quad = line.quad.map(|p| turn.back(p));
            }
            for row in &mut rows {
                row.quad = row.quad.map(|p| turn.back(p));
            }
            total = (angle + turn.degrees_back()).rem_euclid(360.0);
        }
        let rotation = ((total / 90.0).round() as u16 % 4) * 90;
        Ok(OcrOutput { width: image.width(), height: image.height(), lines, rows, rotation })
    }

    /// Reads the lines long enough to hold a machine-readable line first (see [`zone::long_enough`]), and the
    /// page's other lines only when those do not make a whole zone: the MRZ endpoint needs the zone, and the
    /// printed fields and labels of a passport's data page are most of its lines. Lines not read are left empty,
    /// so they are dropped from the output. (The parser checks an MRZ name against a printed one where the page's
    /// other lines were read; on 500 distorted pages every field was read right as often or more without them.)
    ///
    /// `thorough: false` is a first look: the long lines only, each read squeezed only where it was read at an
    /// invalid length. Returns the readings and whether they make a whole zone.
    fn read_zone_first(
        &mut self,
        found: &mut Found,
        min_confidence: f32,
        thorough: bool,
    ) -> EngineResult<(Vec<(String, f32)>, bool)> {
        let mut read = vec![(String::new(), 0.0); found.crops.len()];
        let (long, rest): (Vec<usize>, Vec<usize>) =
            (0..found.crops.len()).partition(|&i| zone::long_enough(&found.crops[i]));
        let groups = if thorough { vec![long, rest] } else { vec![long] };
        for lines in groups {
            let crops: Vec<RgbImage> = lines.iter().map(|&i| found.crops[i].clone()).collect();
            for (&i, reading) in lines.iter().zip(self.recognize(&crops)?) {
                read[i] = reading;
            }
            // Only the first look at a slanted page turns garbled long lines over (see
            // `Ocr::turn_over_machine_readable`).
            let garbled_below = (!thorough).then_some(min_confidence);
            self.turn_over_machine_readable(found, &mut read, &lines, garbled_below)?;
            self.reread_machine_readable(&found.crops, &mut read, &lines, min_confidence, thorough)?;
            if zone_read_whole(&read, min_confidence) {
                return Ok((read, true));
            }
        }
        Ok((read, false))
    }

    /// Turns over lines read as a run of `>`: an MRZ line upside down (its `<` fillers point the other way) that
    /// the classifier left as it was. Read the right way up, the reading is kept if it looks machine-readable.
    /// Only `lines` (indices) are looked at.
    ///
    /// With `garbled_below` (the MRZ endpoint's first look at a slanted page, see [`Ocr::read_zone_at_slant`]),
    /// so are lines long enough to be a zone line (see [`zone::long_enough`]) read with less confidence than it.
    /// The classifier sees a long line squeezed into 192 pixels, and at a slant it got many wrong: upside down, a
    /// zone line with few fillers reads as a handful of `0`, `6` and `9` (`000909`, confidence 0.35), the digits
    /// that look alike either way up. On the first 40 distorted pages, 11 had such a line, and only the band's
    /// search found it again. (On every read, 200 pages took 6.7% less time, but level pages lost a zone: a line
    /// turned there read short at another format's length, 30 of 44, and the band kept that reading.)
    fn turn_over_machine_readable(
        &mut self,
        found: &mut Found,
        read: &mut [(String, f32)],
        lines: &[usize],
        garbled_below: Option<f32>,
    ) -> EngineResult<()> {
        let garbled = |i: usize| {
            garbled_below.is_some_and(|below| read[i].1 < below && zone::long_enough(&found.crops[i]))
                && !looks_machine_readable(&read[i].0)
        };
        let lines: Vec<usize> = lines.iter().copied().filter(|&i| read[i].0.contains(">>>>") || garbled(i)).collect();
        if lines.is_empty() {
            return Ok(());
        }
        let turned: Vec<RgbImage> = lines.iter().map(|&i| image::imageops::rotate180(&found.crops[i])).collect();
        let again = self.recognize(&turned)?;
        for ((&i, crop), second) in lines.iter().zip(turned).zip(again) {
            if looks_machine_readable(&second.0) {
                found.crops[i] = crop;
                found.upside_down[i] = !found.upside_down[i];
                read[i] = second;
            }
        }
        Ok(())
    }

    /// Reads machine-readable-zone lines again, squeezed to 80% of their width, and keeps the better reading.
    /// OCR-B at ICAO's 10 characters per inch is spaced wider than the text the recogniser was trained on, and
    /// it dropped characters (`I<SGPUN2937962` read `I<SGPUN297962`); squeezed, 93 of 97 lines of 40 clean
    /// synthetic documents came out at a valid MRZ length, against 60 as cut. The better reading is the one of
    /// a valid length (30, 36 or 44), else the more confident.
    ///
    /// Only `lines` (indices) that look machine-readable are read again. Those read at an invalid length go
    /// first; the rest only when `valid_too` and the zone is still not whole. A line of a valid length may be a
    /// misread one of another format (a TD2 line of 36 read as 30), but where the zone is whole, rereading its
    /// lines (a more confident squeezed reading won) changed no field of 500 clean and 500 distorted MRZ pages,
    /// and took 13% of the clean pages' time.
    fn reread_machine_readable(
        &mut self,
        crops: &[RgbImage],
        read: &mut [(String, f32)],
        lines: &[usize],
        min_confidence: f32,
        valid_too: bool,
    ) -> EngineResult<()> {
        let lines: Vec<usize> = lines.iter().copied().filter(|&i| looks_machine_readable(&read[i].0)).collect();
        let (short, valid): (Vec<usize>, Vec<usize>) = lines.iter().partition(|&&i| !zone::valid_length(&read[i].0));
        self.reread_squeezed(crops, read, &short)?;
        if !valid_too || zone_read_whole(read, min_confidence) {
            return Ok(());
        }
        self.reread_squeezed(crops, read, &valid)
    }

    /// Reads the crops at `lines` squeezed (see [`Ocr::reread_machine_readable`]) and keeps the better readings.
    fn reread_squeezed(&mut self, crops: &[RgbImage], read: &mut [(String, f32)], lines: &[usize]) -> EngineResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let squeezed = lines.iter().map(|&i| zone::squeezed(&crops[i])).collect::<EngineResult<Vec<_>>>()?;
        let again = self.recognize(&squeezed)?;
        for (&i, second) in lines.iter().zip(again) {
            if zone::second_is_better(&read[i], &second) {
                read[i] = second;
            }
        }
        Ok(())
    }

    /// When some lines were read as machine-readable but not a whole zone, the lines read short are read
    /// again widened to the zone's width, and if that does not make the zone whole, it is searched again on
    /// its own (see [`zone`]). Widening alone made half the clean MRZ pages whole and read 100 clean pages
    /// 1.22 times as fast (1.24 -> 1.51 images/s, 2 in flight), with the same fields right on 100 clean and
    /// 100 distorted pages.
    fn search_machine_readable_zone(
        &mut self,
        frame: &RgbImage,
        found: &Found,
        read: &[(String, f32)],
        settings: &OcrSettings,
    ) -> EngineResult<Option<zone::Zone>> {
        let seeds: Vec<zone::Seed<'_>> = zone_seed_lines(read, settings.min_confidence)
            .into_iter()
            .map(|i| found.seed(i, read[i].0.trim(), read[i].1))
            .collect();
        let texts: Vec<&str> = seeds.iter().map(|s| s.text).collect();
        if seeds.is_empty() || zone::complete(&texts) {
            return Ok(None);
        }
        if let Some(zone) = self.read_widened(frame, &seeds)? {
            return Ok(Some(zone));
        }
        self.read_zone(frame, &seeds, settings)
    }

    /// Detects the lines, cuts them out and turns them the right way up (everything but recognition).
    fn find_lines(
        &mut self,
        image: &RgbImage,
        settings: &OcrSettings,
        page_vertical: bool,
        timings: &mut OcrTimings,
    ) -> EngineResult<Found> {
        let started = Instant::now();
        let quads = self.detect(image, settings)?;
        timings.detect += started.elapsed();
        self.cut_out(image, quads, settings, page_vertical, timings)
    }

    /// Cuts the lines at `quads` out and turns them the right way up (see [`crop::crop`] for `page_vertical`).
    fn cut_out(
        &mut self,
        image: &RgbImage,
        quads: Vec<Quad>,
        settings: &OcrSettings,
        page_vertical: bool,
        timings: &mut OcrTimings,
    ) -> EngineResult<Found> {
        let started = Instant::now();
        let mut found = Found::default();
        for quad in quads {
            if let Some((crop, turned_quarter)) = crop::crop(image, &quad, page_vertical) {
                found.quads.push(quad);
                found.crops.push(crop);
                found.vertical.push(turned_quarter);
            }
        }
        timings.detect += started.elapsed();
        found.upside_down = if settings.classify_angle {
            let started = Instant::now();
            let mut turned = self.classify(&mut found.crops, settings.angle_threshold)?;
            page_orientation(&mut found.crops, &mut turned, &found.vertical);
            timings.classify += started.elapsed();
            turned
        } else {
            vec![false; found.crops.len()]
        };
        Ok(found)
    }

    /// The text lines' quads (detection only).
    pub fn detect(&mut self, image: &RgbImage, settings: &OcrSettings) -> EngineResult<Vec<Quad>> {
        detect::detect(&mut self.detector, image, settings)
    }

    /// Turns upside-down crops the right way up; returns which it turned.
    pub fn classify(&mut self, crops: &mut [RgbImage], threshold: f32) -> EngineResult<Vec<bool>> {
        classify::classify(&mut self.classifier, crops, threshold)
    }

    /// Reads each crop (one text line): text and confidence.
    pub fn recognize(&mut self, crops: &[RgbImage]) -> EngineResult<Vec<(String, f32)>> {
        recognize::recognize(&mut self.recognizer, &self.charset, crops)
    }

    /// Reads each crop (one text line) with the recogniser's choices for every character.
    pub fn recognize_choices(&mut self, crops: &[RgbImage]) -> EngineResult<Vec<recognize::Recognized>> {
        recognize::recognize_choices(&mut self.recognizer, &self.charset, crops)
    }
}

/// Lines found and cut out, the right way up, not yet read.
#[derive(Default)]
struct Found {
    quads: Vec<Quad>,
    crops: Vec<RgbImage>,
    /// Straightening turned the crop a quarter counter-clockwise (the line runs down the image).
    vertical: Vec<bool>,
    /// The classifier turned the crop over.
    upside_down: Vec<bool>,
}

impl Found {
    /// Line `i` as a zone seed: its reading starts at the corner that became the crop's top-left (a quarter
    /// turn starts it one corner on, turning over two).
    fn seed<'a>(&self, i: usize, text: &'a str, confidence: f32) -> zone::Seed<'a> {
        let k = usize::from(self.vertical[i]) + if self.upside_down[i] { 2 } else { 0 };
        let corner = |j: usize| self.quads[i][(k + j) % 4];
        zone::Seed { text, confidence, start: corner(0), end: corner(1), below: corner(3) }
    }

    /// The sum of the lines' reading directions, each a unit vector times `weight(index)`. A line reads along its
    /// top edge, or down its left edge when straightening turned it a quarter, reversed when it was turned over.
    fn direction(&self, weight: impl Fn(usize) -> f64) -> [f64; 2] {
        let mut sum = [0.0f64; 2];
        for (i, quad) in self.quads.iter().enumerate() {
            let (from, to) = if self.vertical[i] { (quad[0], quad[3]) } else { (quad[0], quad[1]) };
            let (dx, dy) = (f64::from(to[0] - from[0]), f64::from(to[1] - from[1]));
            let length = dx.hypot(dy).max(f64::EPSILON);
            let w = weight(i) * if self.upside_down[i] { -1.0 } else { 1.0 };
            sum = [sum[0] + w * dx / length, sum[1] + w * dy / length];
        }
        sum
    }
}

/// A line of a machine-readable zone: 20 characters or more, nearly all `A-Z`, `0-9` and `<`, with a `<<`.
fn looks_machine_readable(text: &str) -> bool {
    let text = text.trim();
    let total = text.chars().count();
    let mrz = text.chars().filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '<').count();
    // A line of a valid length needs only one filler: a TD2 or TD3 second line whose optional data fills it
    // has a single `<` (`Z152088827GBR8112196F2912095012735<6`).
    let fillers = if zone::valid_length(text) && mrz == total { text.contains('<') } else { text.contains("<<") };
    total >= 20 && fillers && mrz * 10 >= total * 9
}

/// The lines read as machine-readable with at least `min_confidence`: the zone as far as it was read. Both the
/// squeezed rereading and the zone search judge whether the zone is whole from these.
fn zone_seed_lines(read: &[(String, f32)], min_confidence: f32) -> Vec<usize> {
    (0..read.len()).filter(|&i| looks_machine_readable(&read[i].0) && read[i].1 >= min_confidence).collect()
}

/// Whether the machine-readable lines read so far (see [`zone_seed_lines`]) make a whole zone.
fn zone_read_whole(read: &[(String, f32)], min_confidence: f32) -> bool {
    let texts: Vec<&str> = zone_seed_lines(read, min_confidence).into_iter().map(|i| read[i].0.trim()).collect();
    zone::complete(&texts)
}

/// How many of `lines` are machine-readable lines of a valid length, and whether they make a whole zone.
fn zone_lines(lines: &[TextLine]) -> (usize, bool) {
    let texts: Vec<&str> =
        lines.iter().map(|l| l.text.as_str()).filter(|t| looks_machine_readable(t) && zone::valid_length(t)).collect();
    (texts.len(), zone::complete(&texts))
}

pub(crate) fn quad_centre(quad: &Quad) -> [f32; 2] {
    [quad.iter().map(|p| p[0]).sum::<f32>() / 4.0, quad.iter().map(|p| p[1]).sum::<f32>() / 4.0]
}

/// The median of the quads' short sides (a line's height, its margin included), `None` for no quads.
fn median_line_height(quads: &[Quad]) -> Option<f32> {
    let mut heights: Vec<f32> =
        quads.iter().map(|q| detect::distance(q[0], q[3]).min(detect::distance(q[0], q[1]))).collect();
    heights.sort_by(f32::total_cmp);
    heights.get(heights.len() / 2).copied()
}

/// How far an angle is from the nearest quarter turn, in -45..45 degrees.
fn off_quarter(degrees: f32) -> f32 {
    degrees - (degrees / 90.0).round() * 90.0
}

/// Turning an image about its centre onto a canvas large enough to hold all of it, or onto a cut-out of that
/// canvas.
#[derive(Clone, Copy)]
struct Turn {
    /// Clockwise, degrees.
    degrees: f32,
    source: (u32, u32),
    /// The turned canvas's centre in the cut-out's pixels (the canvas's centre until [`Turn::around`]).
    centre: [f32; 2],
    width: u32,
    height: u32,
}

impl Turn {
    fn new(width: u32, height: u32, degrees: f32) -> Turn {
        let (sin, cos) = degrees.to_radians().sin_cos();
        let (w, h) = (width as f32, height as f32);
        let new_width = ((w * cos.abs() + h * sin.abs()).ceil() as u32).max(1);
        let new_height = ((w * sin.abs() + h * cos.abs()).ceil() as u32).max(1);
        let centre = [new_width as f32 / 2.0, new_height as f32 / 2.0];
        Turn { degrees, source: (width, height), centre, width: new_width, height: new_height }
    }

    /// The same turn onto the part of the canvas that holds `quads` (of the source image), grown on every side
    /// by three median line heights (rows the first look missed lie between or just beyond the rows it found;
    /// the rest of a photo is background the detector need not search again). No quads: the whole canvas.
    fn around(self, quads: &[Quad]) -> Turn {
        let Some(height) = median_line_height(quads) else { return self };
        let margin = (3.0 * height).max(16.0);
        let (source, _) = self.centres();
        let turned = quads.iter().flatten().map(|&p| Self::rotate(p, self.degrees, source, self.centre));
        let (mut low, mut high) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for [x, y] in turned {
            low = [low[0].min(x), low[1].min(y)];
            high = [high[0].max(x), high[1].max(y)];
        }
        let x0 = (low[0] - margin).floor().clamp(0.0, self.width as f32 - 1.0);
        let y0 = (low[1] - margin).floor().clamp(0.0, self.height as f32 - 1.0);
        let x1 = (high[0] + margin).ceil().clamp(x0 + 1.0, self.width as f32);
        let y1 = (high[1] + margin).ceil().clamp(y0 + 1.0, self.height as f32);
        Turn {
            centre: [self.centre[0] - x0, self.centre[1] - y0],
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
            ..self
        }
    }

    /// A point turned by `degrees` clockwise about `from` (a centre), placed about `to`.
    fn rotate(p: [f32; 2], degrees: f32, from: [f32; 2], to: [f32; 2]) -> [f32; 2] {
        let (sin, cos) = degrees.to_radians().sin_cos();
        let (x, y) = (p[0] - from[0], p[1] - from[1]);
        [to[0] + x * cos - y * sin, to[1] + x * sin + y * cos]
    }

    fn centres(&self) -> ([f32; 2], [f32; 2]) {
        ([self.source.0 as f32 / 2.0, self.source.1 as f32 / 2.0], self.centre)
    }

    /// A point of the turned image in the original.
    fn back(&self, p: [f32; 2]) -> [f32; 2] {
        let (source, turned) = self.centres();
        let [x, y] = Self::rotate(p, -self.degrees, turned, source);
        [x.clamp(0.0, self.source.0 as f32), y.clamp(0.0, self.source.1 as f32)]
    }

    /// The angle that undoes the turn.
    fn degrees_back(&self) -> f32 {
        -self.degrees
    }

    /// The turned image (bilinear; white where the original does not reach).
    fn apply(&self, image: &RgbImage) -> RgbImage {
        let (source, turned) = self.centres();
        let (max_x, max_y) = (image.width() as f32 - 1.0, image.height() as f32 - 1.0);
        // `rotate` by -degrees, with the sine and cosine taken once rather than per pixel.
        let (sin, cos) = (-self.degrees).to_radians().sin_cos();
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - turned[0], y as f32 + 0.5 - turned[1]);
            let (sx, sy) = (source[0] + dx * cos - dy * sin - 0.5, source[1] + dx * sin + dy * cos - 0.5);
            if sx < 0.0 || sy < 0.0 || sx > max_x || sy > max_y {
                return image::Rgb([255, 255, 255]);
            }
            let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
            let (x1, y1) = ((x0 + 1).min(image.width() - 1), (y0 + 1).min(image.height() - 1));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let (a, b, c, d) =
                (image.get_pixel(x0, y0), image.get_pixel(x1, y0), image.get_pixel(x0, y1), image.get_pixel(x1, y1));
            image::Rgb(std::array::from_fn(|k| {
                let top = f32::from(a[k]) * (1.0 - fx) + f32::from(b[k]) * fx;
                let bottom = f32::from(c[k]) * (1.0 - fx) + f32::from(d[k]) * fx;
                (top * (1.0 - fy) + bottom * fy).round() as u8
            }))
        })
    }
}

/// The page's text direction in degrees clockwise from the image's x axis, 0..360, from the sum of the lines'
/// weighted reading directions; within 3° of a quarter turn it is snapped to it (a straight scan stays exact).
fn page_angle([x, y]: [f64; 2]) -> f32 {
    if x == 0.0 && y == 0.0 {
        return 0.0;
    }
    let degrees = y.atan2(x).to_degrees().rem_euclid(360.0);
    let quarter = (degrees / 90.0).round() * 90.0;
    let snapped = if (degrees - quarter).abs() <= 3.0 { quarter } else { degrees };
    (snapped % 360.0) as f32
}

/// Makes the lines of a page agree on which way up they are. The classifier judges each line alone and
/// sometimes turns one the page around it does not share: an MRZ line of `<` fillers reads as `>` fillers
/// upside down and was turned, then read as garbage. Lines straightened the same way (across or down the page)
/// belong to one orientation; where a clear majority of their text (by width) says one way, the rest are turned
/// to match. A page whose lines are split evenly keeps the classifier's answers.
fn page_orientation(crops: &mut [RgbImage], turned: &mut [bool], vertical: &[bool]) {
    const MAJORITY: f64 = 0.7;
    for group in [false, true] {
        let members: Vec<usize> = (0..crops.len()).filter(|&i| vertical[i] == group).collect();
        let width = |i: &usize| f64::from(crops[*i].width());
        let total: f64 = members.iter().map(width).sum();
        let flipped: f64 = members.iter().filter(|&&i| turned[i]).map(width).sum();
        if total == 0.0 {
            continue;
        }
        let majority = if flipped / total >= MAJORITY {
            true
        } else if flipped / total <= 1.0 - MAJORITY {
            false
        } else {
            continue;
        };
        for i in members {
            if turned[i] != majority {
                crops[i] = image::imageops::rotate180(&crops[i]);
                turned[i] = majority;
            }
        }
    }
}

/// Crops per classifier and recogniser run (RapidOCR's `cls_batch_num` / `rec_batch_num`).
const BATCH: usize = 6;

/// Crop indices from narrowest to widest (by width / height), so a batch pads little.
fn by_aspect_ratio(crops: &[RgbImage]) -> Vec<usize> {
    let ratio = |i: usize| f64::from(crops[i].width()) / f64::from(crops[i].height().max(1));
    let mut order: Vec<usize> = (0..crops.len()).collect();
    order.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)));
    order
}

/// Bilinear resize without antialiasing, as OpenCV's `cv2.resize` (the models were trained on that).
pub(crate) fn resize(image: &RgbImage, width: u32, height: u32) -> EngineResult<RgbImage> {
    if image.dimensions() == (width, height) {
        return Ok(image.clone());
    }
    let src = ImageRef::new(image.width(), image.height(), image.as_raw(), PixelType::U8x3)
        .map_err(|e| EngineError::Runtime(format!("resize source: {e}")))?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear)))
        .map_err(|e| EngineError::Runtime(format!("resize: {e}")))?;
    RgbImage::from_raw(width, height, dst.into_vec()).ok_or_else(|| EngineError::Runtime("resize: bad buffer".into()))
}

/// Images as one NCHW float tensor of `width x height` planes, BGR, (x/255 - 0.5)/0.5, each image at the
/// top-left, padded with 0 (RapidOCR's padding: mid-grey after normalisation) to its right and below.
pub(crate) fn normalized_bgr(images: &[&RgbImage], width: u32, height: u32) -> EngineResult<Array4<f32>> {
    let (w, h) = (width as usize, height as usize);
    let plane = w * h;
    let mut data = vec![0.0f32; images.len() * 3 * plane];
    for (image, planes) in images.iter().zip(data.chunks_exact_mut(3 * plane)) {
        let (b, rest) = planes.split_at_mut(plane);
        let (g, r) = rest.split_at_mut(plane);
        let cols = (image.width() as usize).min(w);
        for (y, row) in image.as_raw().chunks_exact(image.width() as usize * 3).take(h).enumerate() {
            for (x, rgb) in row.chunks_exact(3).take(cols).enumerate() {
                let i = y * w + x;
                r[i] = f32::from(rgb[0]) / 127.5 - 1.0;
                g[i] = f32::from(rgb[1]) / 127.5 - 1.0;
                b[i] = f32::from(rgb[2]) / 127.5 - 1.0;
            }
        }
    }
    Array4::from_shape_vec((images.len(), 3, h, w), data).map_err(|e| EngineError::Runtime(format!("input: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OCR models fetched by scripts/fetch-models.sh, for one thread.
    fn ocr() -> Ocr {
        let paths = crate::ModelPaths::in_dir(crate::default_models_dir());
        let env = crate::runtime::environment(&paths.runtime_library).unwrap_or_else(|e| panic!("{e}"));
        let ocr = paths.ocr.as_ref().unwrap_or_else(|| panic!("no OCR models configured"));
        Ocr::open(env, ocr).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_slanted_pages_zone_line_the_classifier_turned_over_is_turned_back_at_the_first_look() {
        // Distorted benchmark page #121 (a TD3 passport at a slant): the classifier left the second zone line
        // upside down, where it reads as a few digits (`220466262402022022062`, confidence 0.24).
        let sample =
            faceplate_synth::generate(faceplate_synth::Kind::Mrz, faceplate_synth::Distortion::Distorted, 2026, 121)
                .unwrap_or_else(|e| panic!("{e}"));
        let image = image::load_from_memory(&sample.image).unwrap_or_else(|e| panic!("{e}")).to_rgb8();
        let mut ocr = ocr();
        let settings = OcrSettings::machine_readable_page();
        let mut found = ocr.find_lines(&image, &settings, false, &mut OcrTimings::default()).unwrap();
        let angle = page_angle(found.direction(|i| f64::from(found.crops[i].width())));
        assert!(off_quarter(angle).abs() > settings.straighten_above, "the page is at a slant ({angle})");
        let (read, whole) = ocr.read_zone_first(&mut found, settings.min_confidence, false).unwrap();
        let zone: Vec<&str> =
            read.iter().map(|(text, _)| text.as_str()).filter(|t| looks_machine_readable(t)).collect();
        assert!(whole, "the zone is whole as found: {zone:?}");
        assert_eq!(zone.len(), 2, "{zone:?}");
        assert!(zone.iter().all(|t| t.chars().count() == 44), "{zone:?}");
    }

    #[test]
    fn a_turned_image_holds_all_of_the_original_and_points_map_back() {
        let image = RgbImage::from_fn(200, 100, |x, y| image::Rgb([(x % 256) as u8, y as u8, 0]));
        let turn = Turn::new(200, 100, 30.0);
        // The canvas holds the turned rectangle: 200 cos 30 + 100 sin 30 wide.
        assert_eq!((turn.width, turn.height), (224, 187));
        let turned = turn.apply(&image);
        // The original's centre pixel lands at the canvas centre, and maps back there.
        let centre = turned.get_pixel(112, 93);
        assert!(centre[0].abs_diff(100) <= 2 && centre[1].abs_diff(50) <= 2, "{centre:?}");
        let [x, y] = turn.back([112.0, 93.5]);
        assert!((x - 100.0).abs() < 1.0 && (y - 50.0).abs() < 1.0, "{x} {y}");
        // A corner of the original: turned 30° clockwise about the centre, then back.
        let corner = Turn::rotate([0.0, 0.0], 30.0, [100.0, 50.0], [112.0, 93.5]);
        let [x, y] = turn.back(corner);
        assert!(x.abs() < 0.01 && y.abs() < 0.01, "{x} {y}");
        // Cut out around a line: the cut-out is its turned box plus the margin, and its points still map back.
        let line = [[80.0, 40.0], [120.0, 40.0], [120.0, 50.0], [80.0, 50.0]];
        let cut = Turn::new(200, 100, 30.0).around(&[line]);
        assert!(cut.width < 110 && cut.height < 100, "{} x {}", cut.width, cut.height);
        let cut_image = cut.apply(&image);
        let [x, y] = cut.back([cut.width as f32 / 2.0, cut.height as f32 / 2.0]);
        assert!((x - 100.0).abs() < 2.0 && (y - 45.0).abs() < 2.0, "{x} {y}");
        let pixel = cut_image.get_pixel(cut.width / 2, cut.height / 2);
        assert!(pixel[0].abs_diff(100) <= 2 && pixel[1].abs_diff(45) <= 2, "{pixel:?}");
        assert_eq!(off_quarter(100.0), 10.0);
        assert!(looks_machine_readable("I<SGPUN297962<<<<<<<<<<<<<<<"));
        assert!(looks_machine_readable("Z152088827GBR8112196F2912095012735<6"));
        assert!(!looks_machine_readable("Z152088827GBR8112196F2912095012735<"));
        assert!(!looks_machine_readable("Type Code of issuing State"));
        assert!(!looks_machine_readable("<<<<"));
        assert_eq!(off_quarter(-170.0), 10.0);
        assert_eq!(off_quarter(44.0), 44.0);
    }
}
