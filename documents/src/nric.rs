//! Singapore NRIC and FIN numbers: a prefix letter, 7 digits and a check letter.
//!
//! Check letter: the digits weighted 2 7 6 5 4 3 2 are summed, 4 is added for `T`/`G` and 3 for `M`, and the sum
//! modulo 11 (`r`) picks the letter:
//!
//! | prefix | letter for r = 0..10 |
//! |---|---|
//! | `S`, `T` | `JZIHGFEDCBA` |
//! | `F`, `G` | `XWUTRQPNMLK` |
//! | `M` | `XWUTRQPNJLK` (ICA publishes it as `KLJNPQRTUWX` indexed by `10 - r`) |
//!
//! Known samples: `S1234567D`, `T1234567J`, `F1234567N`, `G1234567X`, `M1234567K`.

use serde::Serialize;

use crate::text::{compact, digit_for, letter_for, normalize_width};
use crate::{Field, TextLine};

const WEIGHTS: [u32; 7] = [2, 7, 6, 5, 4, 3, 2];
const ST: [char; 11] = ['J', 'Z', 'I', 'H', 'G', 'F', 'E', 'D', 'C', 'B', 'A'];
const FG: [char; 11] = ['X', 'W', 'U', 'T', 'R', 'Q', 'P', 'N', 'M', 'L', 'K'];
const M: [char; 11] = ['X', 'W', 'U', 'T', 'R', 'Q', 'P', 'N', 'J', 'L', 'K'];

/// The prefix letter and what it says about the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NricPrefix {
    /// `S`: citizen or permanent resident registered before 2000.
    S,
    /// `T`: citizen or permanent resident registered from 2000.
    T,
    /// `F`: foreigner issued a FIN before 2000.
    F,
    /// `G`: foreigner issued a FIN from 2000 to 2021.
    G,
    /// `M`: foreigner issued a FIN from 2022.
    M,
}

impl NricPrefix {
    fn from_char(c: char) -> Option<Self> {
        Some(match c {
            'S' => Self::S,
            'T' => Self::T,
            'F' => Self::F,
            'G' => Self::G,
            'M' => Self::M,
            _ => return None,
        })
    }

    /// `true` for FINs (foreigners), `false` for NRICs (citizens and permanent residents).
    pub fn is_fin(self) -> bool {
        matches!(self, Self::F | Self::G | Self::M)
    }
}

/// A validated NRIC/FIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nric {
    /// The nine characters, uppercase (`S1234567D`).
    pub number: String,
    /// The prefix.
    pub prefix: NricPrefix,
    /// `true` when OCR confusions had to be fixed to make the check letter match.
    pub corrected: bool,
}

/// The check letter for a prefix and 7 digits, or `None` for an unknown prefix or non-digits.
pub fn nric_check_letter(prefix: char, digits: &str) -> Option<char> {
    let prefix = NricPrefix::from_char(prefix.to_ascii_uppercase())?;
    if digits.len() != 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = digits.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let offset = match prefix {
        NricPrefix::T | NricPrefix::G => 4,
        NricPrefix::M => 3,
        NricPrefix::S | NricPrefix::F => 0,
    };
    let table = match prefix {
        NricPrefix::S | NricPrefix::T => &ST,
        NricPrefix::F | NricPrefix::G => &FG,
        NricPrefix::M => &M,
    };
    table.get(((sum + offset) % 11) as usize).copied()
}

/// Validates an NRIC/FIN exactly (case-insensitive, spaces and full-width forms ignored).
pub fn validate_nric(text: &str) -> Option<Nric> {
    let s = compact(text).to_ascii_uppercase();
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 9 {
        return None;
    }
    let digits: String = chars[1..8].iter().collect();
    let prefix = NricPrefix::from_char(chars[0])?;
    (nric_check_letter(chars[0], &digits)? == chars[8]).then_some(Nric { number: s, prefix, corrected: false })
}

/// Reads text as an NRIC/FIN, fixing OCR confusions (`5`→S and `6`→G in the prefix, `O`→0 and `I`→1 in the
/// digits, `0`→D... in the check letter) only when the check letter then matches. `None` if it is not a valid
/// NRIC/FIN.
pub fn parse_nric(text: &str) -> Option<Nric> {
    if let Some(n) = validate_nric(text) {
        return Some(n);
    }
    let s = compact(text);
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 9 {
        return None;
    }
    let prefix = letter_for(chars[0])?;
    let digits: String = chars[1..8].iter().map(|c| digit_for(*c)).collect::<Option<_>>()?;
    let expected = nric_check_letter(prefix, &digits)?;
    let printed = chars[8].to_ascii_uppercase();
    let check_ok = printed == expected || check_confusion(printed) == Some(expected);
    check_ok.then(|| Nric {
        number: format!("{prefix}{digits}{expected}"),
        prefix: NricPrefix::from_char(prefix).unwrap_or(NricPrefix::S),
        corrected: true,
    })
}

/// Letters a character in the check position may have been misread from.
fn check_confusion(c: char) -> Option<char> {
    Some(match c {
        '0' | 'O' | 'Q' => 'D',
        '1' | 'l' | '|' => 'I',
        '2' => 'Z',
        '8' => 'B',
        '6' => 'G',
        '4' => 'A',
        '7' => 'T',
        _ => return None,
    })
}

/// NRIC-shaped 9-character windows of a line (spaces inside ignored): a prefix-like character, 7 digit-like ones
/// and an alphanumeric one, with at least 5 real digits. `bounded` says whether the window starts and ends at a
/// word boundary of the original text.
fn windows(text: &str) -> Vec<(String, bool)> {
    let mut chars = Vec::new();
    let mut break_before = Vec::new();
    let mut pending_break = true;
    for c in normalize_width(text).chars() {
        if c.is_whitespace() {
            pending_break = true;
            continue;
        }
        chars.push(c);
        break_before.push(pending_break || chars.len() < 2 || !chars[chars.len() - 2].is_ascii_alphanumeric());
        pending_break = false;
    }
    let mut out = Vec::new();
    if chars.len() < 9 {
        return out;
    }
    for start in 0..=chars.len() - 9 {
        let w = &chars[start..start + 9];
        let prefix_like = letter_for(w[0]).is_some_and(|p| NricPrefix::from_char(p).is_some());
        let digits_like = w[1..8].iter().all(|c| digit_for(*c).is_some());
        let real = w[1..8].iter().filter(|c| c.is_ascii_digit()).count();
        if prefix_like && digits_like && real >= 5 && w[8].is_ascii_alphanumeric() {
            let bounded = break_before[start]
                && (start + 9 == chars.len() || break_before[start + 9] || !chars[start + 9].is_ascii_alphanumeric());
            out.push((w.iter().collect(), bounded));
        }
    }
    out
}

/// Finds an NRIC/FIN in OCR lines (e.g. a Singapore IC: the number is printed under `IDENTITY CARD NO.`). A
/// valid one wins; an NRIC-shaped one that fails its check letter is reported unreadable.
pub fn find_nric(lines: &[TextLine]) -> Field<Nric> {
    let mut first_bad: Option<(String, f32)> = None;
    for line in lines {
        for (w, bounded) in windows(&line.text) {
            match parse_nric(&w) {
                Some(n) => {
                    let changed = n.corrected;
                    return Field::checked(n, w, line.clamped_confidence(), changed);
                }
                None if bounded => {
                    first_bad.get_or_insert((w, line.clamped_confidence()));
                }
                None => {}
            }
        }
    }
    match first_bad {
        Some((raw, conf)) => Field::unreadable(raw, conf),
        None => Field::missing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldStatus;
    use crate::testutil::lines;

    #[test]
    fn published_samples_validate() {
        // S1234567D is the usual documentation example; the others follow the same digits with each prefix.
        for s in ["S1234567D", "T1234567J", "F1234567N", "G1234567X", "M1234567K", "s1234567d", "S 123 4567 D"] {
            assert!(validate_nric(s).is_some(), "{s}");
        }
        assert_eq!(validate_nric("G1234567X").unwrap().prefix, NricPrefix::G);
        assert!(validate_nric("M1234567K").unwrap().prefix.is_fin());
    }

    #[test]
    fn m_series_table_is_indexed_from_the_end() {
        // Sum 106 + 3 = 109, r = 10: `KLJNPQRTUWX`[10 - 10] = K. Read forwards it would give X.
        assert_eq!(nric_check_letter('M', "1234567"), Some('K'));
        assert!(validate_nric("M1234567X").is_none());
        assert!(validate_nric("M1234567L").is_none());
        // r = 8 is where the M table differs from F/G (J instead of M): find such digits and check both.
        let digits = (0..10_000_000u32).map(|n| format!("{n:07}")).find(|d| {
            let sum: u32 = d.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
            (sum + 3) % 11 == 8
        });
        let digits = digits.unwrap();
        assert_eq!(nric_check_letter('M', &digits), Some('J'));
    }

    #[test]
    fn every_wrong_check_letter_and_single_digit_error_fails() {
        for letter in 'A'..='Z' {
            if letter != 'D' {
                assert!(validate_nric(&format!("S1234567{letter}")).is_none());
            }
        }
        let base: Vec<char> = "S1234567D".chars().collect();
        for pos in 1..8 {
            for d in '0'..='9' {
                if d == base[pos] {
                    continue;
                }
                let mut c = base.clone();
                c[pos] = d;
                let s: String = c.iter().collect();
                assert!(validate_nric(&s).is_none(), "{s}");
            }
        }
        assert!(validate_nric("X1234567D").is_none());
        assert!(validate_nric("S123456D").is_none());
    }

    #[test]
    fn ocr_confusions_are_fixed_only_with_a_matching_check() {
        let n = parse_nric("5I234567D").unwrap();
        assert_eq!(n.number, "S1234567D");
        assert!(n.corrected);
        assert_eq!(parse_nric("S12345670").unwrap().number, "S1234567D");
        assert_eq!(parse_nric("s1234567d").unwrap().number, "S1234567D");
        assert!(!parse_nric("S1234567D").unwrap().corrected);
        assert!(parse_nric("S1234568D").is_none());
        assert!(parse_nric("S12345B7D").is_none());
    }

    #[test]
    fn found_in_card_lines() {
        let f = find_nric(&lines(&["REPUBLIC OF SINGAPORE", "IDENTITY CARD NO. S1234567D", "Name", "TAN AH KOW"]));
        assert_eq!(f.status, FieldStatus::Valid);
        assert_eq!(f.value.unwrap().number, "S1234567D");
        let f = find_nric(&lines(&["FIN: G 1234 567 X"]));
        assert_eq!(f.value.unwrap().number, "G1234567X");
        let f = find_nric(&lines(&["IDENTITY CARD NO. S1234567E"]));
        assert_eq!(f.status, FieldStatus::Unreadable);
        assert_eq!(f.raw.as_deref(), Some("S1234567E"));
        assert_eq!(find_nric(&lines(&["nothing here 12345"])).status, FieldStatus::Missing);
    }
}
