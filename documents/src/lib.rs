//! Structured, validated document fields from OCR text lines.
//!
//! An OCR engine (elsewhere) turns an image into [`TextLine`]s in reading order; the parsers here turn those lines
//! into typed fields. Pure Rust: no models, no I/O, no clock except where a two-digit year needs a century
//! ([`mrz::parse_mrz`]; [`mrz::parse_mrz_with_year`] takes the year explicitly).
//!
//! # Products
//!
//! | module | document |
//! |---|---|
//! | [`china_id`] | China resident identity card, front and back, and the 18-character citizen ID number |
//! | [`driver_licence`] | China motor vehicle driving licence (中华人民共和国机动车驾驶证) |
//! | [`mrz`] | ICAO 9303 machine readable zones: TD1 (ID cards), TD2, TD3 (passports) |
//! | [`nric`] | Singapore NRIC/FIN numbers |
//! | [`bank_card`] | payment card number (Luhn, network), expiry, holder name |
//! | [`plate`] | licence plates: China, Singapore, UK, EU and US formats; Face++ plate colour codes |
//! | [`text`] | shared normalisation: full-width characters, spaces in numbers, OCR confusion maps |
//!
//! # Fields
//!
//! Every extracted value is a [`Field`]: the parsed `value`, the `raw` OCR text it came from, a `confidence`
//! (the minimum of the confidences of the lines used) and a [`FieldStatus`]. A value that fails validation (bad
//! check digit, impossible date, unknown code) is never returned: the field is [`FieldStatus::Unreadable`] with
//! `value: None` and the raw text kept for display. Fixes of typical OCR confusions (`O`→`0`, `I`→`1`, `S`→`5`,
//! ...) are reported as [`FieldStatus::Corrected`]; where a check digit protects the field, a fix is only kept
//! when it makes the check pass.
//!
//! Card numbers are sensitive: [`bank_card::CardNumber`] and [`bank_card::BankCard`] mask the number in `Debug`
//! and `Display`; only serialisation (the API response) and [`bank_card::CardNumber::digits`] expose it.

mod dates;
mod field;
mod segment;

pub mod bank_card;
pub mod china_id;
pub mod driver_licence;
pub mod mrz;
pub mod nric;
pub mod plate;
pub mod text;

pub use field::{Field, FieldStatus, Sex};

use serde::{Deserialize, Serialize};

/// One line of OCR output, in reading order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    /// The recognised text, as the engine produced it.
    pub text: String,
    /// Recognition confidence in `0..=1` (values outside are clamped when used).
    pub confidence: f32,
    /// Corners clockwise from top-left, in pixels.
    pub quad: [[f32; 2]; 4],
}

impl TextLine {
    /// A line without geometry (all corners at the origin): for callers and tests that only have text.
    pub fn new(text: impl Into<String>, confidence: f32) -> Self {
        Self { text: text.into(), confidence, quad: [[0.0; 2]; 4] }
    }

    /// The confidence clamped to `0..=1` (`NaN` counts as 0).
    pub fn clamped_confidence(&self) -> f32 {
        clamp_confidence(self.confidence)
    }
}

pub(crate) fn clamp_confidence(c: f32) -> f32 {
    if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) }
}

/// Minimum confidence over some lines (1.0 for none).
pub(crate) fn min_confidence<'a>(lines: impl IntoIterator<Item = &'a TextLine>) -> f32 {
    lines.into_iter().map(TextLine::clamped_confidence).fold(1.0, f32::min)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::TextLine;

    /// Lines from strings, all at confidence 0.95.
    pub fn lines(texts: &[&str]) -> Vec<TextLine> {
        texts.iter().map(|t| TextLine::new(*t, 0.95)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_clamped_and_nan_is_zero() {
        assert_eq!(TextLine::new("a", 1.5).clamped_confidence(), 1.0);
        assert_eq!(TextLine::new("a", -0.5).clamped_confidence(), 0.0);
        assert_eq!(TextLine::new("a", f32::NAN).clamped_confidence(), 0.0);
        let lines = [TextLine::new("a", 0.9), TextLine::new("b", 0.7)];
        assert!((min_confidence(&lines) - 0.7).abs() < 1e-6);
    }

    /// Every parser on thousands of random lines mixing the characters they look for: no panic, and nothing
    /// reported readable without a value.
    #[test]
    fn parsers_never_panic_on_noise() {
        const POOL: &[&str] = &[
            "0",
            "1",
            "7",
            "9",
            "X",
            "O",
            "l",
            "S",
            "B",
            "Z",
            "K",
            "<",
            "<<",
            "«",
            " ",
            "-",
            "/",
            ".",
            "年",
            "月",
            "日",
            "长期",
            "姓名",
            "性别",
            "男",
            "出生",
            "住址",
            "公民身份号码",
            "签发机关",
            "有效期限",
            "证号",
            "准驾车型",
            "C1",
            "P<",
            "UTO",
            "京",
            "A",
            "D",
            "警",
            "VALID THRU",
            "12/29",
            "DEBIT",
            "ZHANG",
            "Ｘ",
            "·",
            "é",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..400 {
            let line_count = 1 + next(6);
            let lines: Vec<TextLine> = (0..line_count)
                .map(|_| {
                    let len = next(50);
                    let text: String = (0..len).map(|_| POOL[next(POOL.len())]).collect();
                    TextLine::new(text, 0.5)
                })
                .collect();
            let id = china_id::parse_id_card(&lines);
            if let Some(front) = &id.front {
                assert!(front.id_number.value.is_some() == front.id_number.is_ok());
            }
            let dl = driver_licence::parse_driver_licence(&lines);
            assert!(dl.licence_number.value.is_some() == dl.licence_number.is_ok());
            if let Some(m) = mrz::parse_mrz_with_year(&lines, 2025) {
                assert!(!m.valid || m.checks.all_valid());
            }
            let card = bank_card::parse_bank_card(&lines);
            assert!(card.number.value.is_some() == card.number.is_ok());
            let _ = nric::find_nric(&lines);
            let _ = plate::parse_plate_lines(&lines, plate::PlateRegion::Auto);
            for line in &lines {
                let _ = nric::parse_nric(&line.text);
                let _ = china_id::read_id_number(&line.text);
                let _ = plate::parse_plate(&line.text, plate::PlateRegion::China);
                let _ = plate::parse_plate(&line.text, plate::PlateRegion::Singapore);
                let _ = driver_licence::parse_licence_class(&line.text);
            }
        }
    }

    #[test]
    fn text_line_round_trips_through_json() {
        let line = TextLine {
            text: "姓名张三".into(),
            confidence: 0.9,
            quad: [[1.0, 2.0], [3.0, 2.0], [3.0, 4.0], [1.0, 4.0]],
        };
        let json = serde_json::to_string(&line).unwrap();
        let back: TextLine = serde_json::from_str(&json).unwrap();
        assert_eq!(back, line);
    }
}
