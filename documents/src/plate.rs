//! Licence plates: validation and normalisation of recognised plate text, and plate colours as Face++ codes.
//!
//! | format | rule | normalised |
//! |---|---|---|
//! | China standard | province + letter (not I/O) + 5 letters/digits (letters not I/O) | `京A12345` |
//! | China new-energy, small | province + letter + `D`/`F` + letter/digit + 4 digits | `京AD12345` |
//! | China new-energy, large | province + letter + 5 digits + `D`/`F` | `京A12345D` |
//! | China special | province + letter + 4 letters/digits + `学警挂港澳领试超` | `粤Z1234港` |
//! | Singapore | 1-3 letters + 1-4 digits (no leading 0) + check letter | `SBS3229P` |
//! | UK (2001 format) | 2 letters + 2-digit age identifier + 3 letters | `AB12 CDE` |
//! | Germany | district (1-3 letters) `-` 1-2 letters, 1-4 digits (no leading 0), `E`/`H`; 8 at most | `M-AB 1234` |
//! | France (SIV) | 2 letters `-` 3 digits `-` 2 letters (not I, O, U; not `000`), as read with hyphens | `AB-123-CD` |
//! | Italy | 2 letters, 3 digits, 2 letters (not I, O, Q, U), read without hyphens | `AB 123 CD` |
//! | Spain | 4 digits, 3 consonants (not Ñ, Q) | `1234 BCD` |
//! | US, California | a digit 1-9, 3 letters, 3 digits | `7ABC123` |
//! | US, three letters and four digits (New York, Texas, ...) | 3 letters, 4 digits | `ABC-1234` |
//! | EU generic | letter/digit groups joined by `-`, 4-10 characters, letters and digits | `M-AB-1234` |
//! | US generic | 2-8 letters/digits | `7ABC12` |
//!
//! The national formats are "specific": like China, Singapore and the UK, their rules vouch for a plate the
//! detector is unsure of (the generic EU and US rules accept almost any short string).
//!
//! Singapore check letter: the last two prefix letters (A=1..Z=26; a single letter is preceded by 0) and the four
//! digits (zero-padded) are weighted 9 4 5 4 3 2; the sum modulo 19 indexes `AZYXUTSRPMLKJHGEDCB`.

use serde::Serialize;

use crate::text::{digit_for, is_cjk, letter_for, normalize_width};
use crate::{TextLine, min_confidence};

/// The 31 provincial abbreviations that start a mainland plate.
pub const CHINA_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// Suffixes of special-use plates: driving school, police, trailer, Hong Kong, Macau, consulate, test, oversized.
pub const CHINA_SPECIAL_SUFFIXES: &str = "学警挂港澳领试超";

const SG_CHECK: [char; 19] =
    ['A', 'Z', 'Y', 'X', 'U', 'T', 'S', 'R', 'P', 'M', 'L', 'K', 'J', 'H', 'G', 'E', 'D', 'C', 'B'];
const SG_WEIGHTS: [u32; 6] = [9, 4, 5, 4, 3, 2];

/// Where a plate is expected to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateRegion {
    /// Try China, Singapore, UK, EU (only with a separator), then US, and take the first that validates.
    Auto,
    /// Mainland China.
    China,
    /// Singapore.
    Singapore,
    /// United Kingdom (2001 format).
    UnitedKingdom,
    /// Generic European.
    Europe,
    /// Generic US.
    UnitedStates,
}

/// The recognised plate format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateFormat {
    /// 7 characters: province, letter, 5 alphanumerics.
    ChinaStandard,
    /// 8 characters, `D`/`F` third (small new-energy vehicles).
    ChinaNewEnergySmall,
    /// 8 characters, `D`/`F` last (large new-energy vehicles).
    ChinaNewEnergyLarge,
    /// A special-use suffix (`学警挂港澳领试超`).
    ChinaSpecial,
    /// Singapore, with check letter.
    Singapore,
    /// UK current format.
    UnitedKingdom,
    /// Germany.
    Germany,
    /// France (SIV, since 2009).
    France,
    /// Italy (since 1994).
    Italy,
    /// Spain (since 2000).
    Spain,
    /// US, California's digit, three letters, three digits.
    UsCalifornia,
    /// US, three letters and four digits (New York, Texas and others).
    UsLettersDigits,
    /// Generic European.
    EuGeneric,
    /// Generic US.
    UsGeneric,
    /// Nothing matched.
    Unknown,
}

/// A validated (or not) plate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plate {
    /// Normalised text (uppercase, separators as in the table above).
    pub text: String,
    /// The format matched, or for an explicit region the region's format even when invalid.
    pub format: PlateFormat,
    /// The text satisfies the format's rules (and check letter).
    pub valid: bool,
    /// `true` when OCR confusions (`O`→0, `I`→1, ...) were fixed to make it valid.
    pub corrected: bool,
    /// Minimum confidence of the lines used (1 for [`parse_plate`]).
    pub confidence: f32,
}

/// Validates and normalises plate text.
pub fn parse_plate(text: &str, region: PlateRegion) -> Plate {
    let cleaned: String = normalize_width(text)
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '.' | '-' | '_' | ':'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let separated = separated_groups(text);
    let result = match region {
        PlateRegion::China => china(&cleaned),
        PlateRegion::Singapore => singapore(&cleaned),
        PlateRegion::UnitedKingdom => uk(&cleaned),
        PlateRegion::Europe => {
            let national = europe(text, &cleaned, &separated);
            if national.valid { national } else { eu(&separated) }
        }
        PlateRegion::UnitedStates => {
            let national = united_states(&cleaned);
            if national.valid { national } else { us(&cleaned) }
        }
        PlateRegion::Auto => {
            let tries = [
                china(&cleaned),
                singapore(&cleaned),
                uk(&cleaned),
                europe(text, &cleaned, &separated),
                united_states(&cleaned),
                if separated.len() > 1 { eu(&separated) } else { invalid(PlateFormat::EuGeneric, &cleaned) },
                us(&cleaned),
            ];
            // A specific format read as is beats one that needed a confusion fixed (`FG 412 EM` is Italian, not
            // the UK's `FG41 ZEM`); the generic formats come last.
            let generic = |p: &Plate| matches!(p.format, PlateFormat::EuGeneric | PlateFormat::UsGeneric);
            let exact = tries.iter().position(|p| p.valid && !p.corrected && !generic(p));
            match exact.or_else(|| tries.iter().position(|p| p.valid)) {
                Some(i) => tries[i].clone(),
                None => invalid(PlateFormat::Unknown, &cleaned),
            }
        }
    };
    Plate { confidence: 1.0, ..result }
}

/// Letters of mainland plates that the text recogniser reads as their look-alike digit, with the probability it
/// gives the letter at or above which the letter is taken: `(digit read, letter, threshold)`. Measured on the
/// benchmark's 1,000 plates: a 1 that was a 1 never had J above 0.0005 (470 of them) and a J read as 1 had it
/// at 0.021-0.35 (6); a 0 that was a 0 had Q at 0.032 at most (476) and a Q read as 0 had it at 0.012-0.47 (9),
/// so Q needs a clear margin and is taken at 0.1 (4 of the 9).
const LOOK_ALIKES: [(char, char, f32); 2] = [('1', 'J', 0.015), ('0', 'Q', 0.1)];

/// A mainland plate read with the plate grammar's help where the recogniser hesitated, from its choices for each
/// character (most probable first, as the engine's recogniser gives them):
/// - a first character that is a Chinese character but not a province becomes the likeliest province among its
///   choices (藏 read as 戴, 冀 as 黄);
/// - after the province and its letter, a `1` or `0` becomes `J` or `Q` when the recogniser gave the letter
///   [`LOOK_ALIKES`]' probability.
///
/// `None` when the reading does not start with a province (then or after the fix) or nothing changed.
pub fn china_reading(choices: &[Vec<(char, f32)>]) -> Option<String> {
    let read: Vec<char> = choices.iter().filter_map(|c| c.first().map(|(ch, _)| *ch)).collect();
    let first = choices.first()?;
    let province = match read.first() {
        Some(c) if CHINA_PROVINCES.contains(*c) => *c,
        Some(c) if is_cjk(*c) => first.iter().map(|(c, _)| *c).find(|c| CHINA_PROVINCES.contains(*c))?,
        _ => return None,
    };
    let mut text = vec![province];
    for (k, (ch, options)) in read.iter().zip(choices).enumerate().skip(1) {
        let letter = LOOK_ALIKES.iter().find(|(digit, letter, threshold)| {
            k >= 2 && digit == ch && options.iter().any(|(c, p)| c == letter && p >= threshold)
        });
        text.push(letter.map_or(*ch, |(_, letter, _)| *letter));
    }
    (text != read).then(|| text.into_iter().collect())
}

/// Joins the lines (two-row plates: `京A` over `12345`) and parses the text; the confidence is the minimum.
pub fn parse_plate_lines(lines: &[TextLine], region: PlateRegion) -> Plate {
    let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let plate = parse_plate(&text.join(" "), region);
    Plate { confidence: if lines.is_empty() { 0.0 } else { min_confidence(lines) }, ..plate }
}

fn invalid(format: PlateFormat, text: &str) -> Plate {
    Plate { text: text.to_string(), format, valid: false, corrected: false, confidence: 1.0 }
}

fn ok(format: PlateFormat, text: String, corrected: bool) -> Plate {
    Plate { text, format, valid: true, corrected, confidence: 1.0 }
}

/// A letter allowed on mainland plates (A-Z without I and O).
fn cn_letter(c: char) -> bool {
    c.is_ascii_uppercase() && c != 'I' && c != 'O'
}

/// The letter in a mainland plate's second place, where only a letter can be. The recogniser reads the J of a
/// plate's typeface as `1`, `]` or `」`; `I` is never used, so a `1` there is a J.
fn cn_letter_for(c: char) -> Option<char> {
    match c {
        '1' | ']' | '」' => Some('J'),
        c => letter_for(c).filter(|c| cn_letter(*c)),
    }
}

/// A mainland alphanumeric, reading `O` as 0 and `I` as 1 (neither letter is used).
fn cn_alnum(c: char) -> Option<char> {
    match c {
        'O' => Some('0'),
        'I' => Some('1'),
        c if c.is_ascii_digit() || cn_letter(c) => Some(c),
        _ => None,
    }
}

fn china(s: &str) -> Plate {
    let chars: Vec<char> = s.chars().collect();
    let bad = || invalid(PlateFormat::ChinaStandard, s);
    let Some(&province) = chars.first().filter(|c| CHINA_PROVINCES.contains(**c)) else { return bad() };
    let Some(letter) = chars.get(1).and_then(|c| cn_letter_for(*c)) else { return bad() };
    let tail: Vec<char> = chars[2..].iter().map(|&c| if matches!(c, ']' | '」') { 'J' } else { c }).collect();
    let tail = tail.as_slice();
    let mut changed = chars[1] != letter;
    let mut fix = |c: char, want: fn(char) -> Option<char>| -> Option<char> {
        let f = want(c)?;
        changed |= f != c;
        Some(f)
    };
    let digit = |c: char| digit_for(c).filter(|_| c.is_ascii_digit() || matches!(c, 'O' | 'I'));
    let d_or_f = |c: char| match c {
        'D' | 'F' => Some(c),
        '0' => Some('D'),
        _ => None,
    };
    let (format, fixed): (PlateFormat, Option<Vec<char>>) = match tail.len() {
        5 if tail.last().is_some_and(|c| CHINA_SPECIAL_SUFFIXES.contains(*c)) => (PlateFormat::ChinaSpecial, None),
        5 => (PlateFormat::ChinaStandard, tail.iter().map(|c| fix(*c, cn_alnum)).collect()),
        6 if matches!(tail[0], 'D' | 'F') || (tail[0] == '0' && !matches!(tail[5], 'D' | 'F')) => {
            let mut v = vec![fix(tail[0], d_or_f)];
            v.push(fix(tail[1], cn_alnum));
            v.extend(tail[2..].iter().map(|c| fix(*c, digit)));
            (PlateFormat::ChinaNewEnergySmall, v.into_iter().collect())
        }
        6 => {
            let mut v: Vec<Option<char>> = tail[..5].iter().map(|c| fix(*c, digit)).collect();
            v.push(fix(tail[5], d_or_f));
            (PlateFormat::ChinaNewEnergyLarge, v.into_iter().collect())
        }
        _ => return bad(),
    };
    let fixed = match format {
        PlateFormat::ChinaSpecial => {
            let body: Option<Vec<char>> = tail[..4].iter().map(|c| fix(*c, cn_alnum)).collect();
            body.map(|mut b| {
                b.push(tail[4]);
                b
            })
        }
        _ => fixed,
    };
    match fixed {
        Some(rest) => {
            let text: String = [province, letter].into_iter().chain(rest).collect();
            ok(format, text, changed)
        }
        None => invalid(format, s),
    }
}

/// The Singapore check letter for a prefix (1-3 letters) and 1-4 digits; `None` if they are not that.
pub fn singapore_check_letter(prefix: &str, digits: &str) -> Option<char> {
    if !(1..=3).contains(&prefix.len())
        || !prefix.bytes().all(|b| b.is_ascii_uppercase())
        || !(1..=4).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let letters: Vec<u32> = prefix.bytes().map(|b| u32::from(b - b'A' + 1)).collect();
    let two = match letters.as_slice() {
        [a] => [0, *a],
        [a, b] => [*a, *b],
        [_, a, b] => [*a, *b],
        _ => return None,
    };
    let padded = format!("{digits:0>4}");
    let values = two.into_iter().chain(padded.bytes().map(|b| u32::from(b - b'0')));
    let sum: u32 = values.zip(SG_WEIGHTS).map(|(v, w)| v * w).sum();
    SG_CHECK.get((sum % 19) as usize).copied()
}

fn singapore(s: &str) -> Plate {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut shaped = None;
    let mut corrected_match = None;
    if (3..=8).contains(&n) {
        for prefix_len in 1..=3usize {
            if prefix_len + 2 > n || n - prefix_len - 1 > 4 {
                continue;
            }
            let (p, rest) = chars.split_at(prefix_len);
            let (d, c) = rest.split_at(rest.len() - 1);
            let exact = p.iter().all(char::is_ascii_uppercase)
                && d.iter().all(char::is_ascii_digit)
                && c[0].is_ascii_uppercase();
            let prefix: Option<String> = p.iter().map(|x| letter_for(*x).filter(|l| *l != 'I' && *l != 'O')).collect();
            let digits: Option<String> = d.iter().map(|x| digit_for(*x)).collect();
            let check = letter_for(c[0]);
            let (Some(prefix), Some(digits), Some(check)) = (prefix, digits, check) else { continue };
            // Plates print no leading zeros; a zero-padded reading (`SCW0241P`) is normalised.
            let digits = digits.trim_start_matches('0').to_string();
            if digits.is_empty() {
                continue;
            }
            let text = format!("{prefix}{digits}{check}");
            if singapore_check_letter(&prefix, &digits) == Some(check) {
                if exact {
                    return ok(PlateFormat::Singapore, text, false);
                }
                corrected_match.get_or_insert(text);
            } else if exact {
                shaped.get_or_insert(text);
            }
        }
    }
    match (corrected_match, shaped) {
        (Some(text), _) => ok(PlateFormat::Singapore, text, true),
        (None, Some(text)) => invalid(PlateFormat::Singapore, &text),
        (None, None) => invalid(PlateFormat::Singapore, s),
    }
}

fn uk(s: &str) -> Plate {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 7 {
        return invalid(PlateFormat::UnitedKingdom, s);
    }
    let letters: Option<Vec<char>> = [0, 1, 4, 5, 6].iter().map(|&i| letter_for(chars[i])).collect();
    let digits: Option<Vec<char>> = [2, 3].iter().map(|&i| digit_for(chars[i])).collect();
    let (Some(l), Some(d)) = (letters, digits) else { return invalid(PlateFormat::UnitedKingdom, s) };
    let age: String = d.iter().collect();
    let rules = !matches!(l[0], 'I' | 'Q' | 'Z')
        && !matches!(l[1], 'I' | 'Q')
        && l[2..].iter().all(|c| !matches!(c, 'I' | 'Q'))
        && !matches!(age.as_str(), "00" | "01" | "50");
    let text = format!("{}{}{} {}{}{}", l[0], l[1], age, l[2], l[3], l[4]);
    if !rules {
        return invalid(PlateFormat::UnitedKingdom, &text);
    }
    let corrected = text.replace(' ', "") != s;
    ok(PlateFormat::UnitedKingdom, text, corrected)
}

/// Whether `s` has the shape of `pattern`: `L` an upper-case letter not in `not`, `D` a digit.
fn shaped(s: &str, pattern: &str, not: &str) -> bool {
    s.is_ascii()
        && s.len() == pattern.len()
        && s.chars().zip(pattern.chars()).all(|(c, p)| match p {
            'L' => c.is_ascii_uppercase() && !not.contains(c),
            _ => c.is_ascii_digit(),
        })
}

/// The German, French, Italian and Spanish formats (`text` as read, for its hyphens).
fn europe(text: &str, cleaned: &str, groups: &[String]) -> Plate {
    if let Some(plate) = germany(groups) {
        return plate;
    }
    let hyphens = text.contains('-');
    if shaped(cleaned, "LLDDDLL", "IOU") && hyphens && &cleaned[2..5] != "000" {
        return ok(PlateFormat::France, format!("{}-{}-{}", &cleaned[..2], &cleaned[2..5], &cleaned[5..]), false);
    }
    if shaped(cleaned, "LLDDDLL", "IOQU") && !hyphens {
        return ok(PlateFormat::Italy, format!("{} {} {}", &cleaned[..2], &cleaned[2..5], &cleaned[5..]), false);
    }
    if shaped(cleaned, "DDDDLLL", "AEIOUQ") {
        return ok(PlateFormat::Spain, format!("{} {}", &cleaned[..4], &cleaned[4..]), false);
    }
    invalid(PlateFormat::EuGeneric, cleaned)
}

/// A German plate, read with the hyphen after the district: `M-AB 1234`, `DV-Y105`, `B-XY 12E`.
fn germany(groups: &[String]) -> Option<Plate> {
    let (district, rest) = groups.split_first()?;
    let rest = rest.concat();
    let letters = rest.chars().take_while(char::is_ascii_uppercase).count();
    let (middle, number) = rest.split_at(letters);
    let number = number.strip_suffix(['E', 'H']).unwrap_or(number);
    let suffix = &rest[letters + number.len()..];
    let valid = (1..=3).contains(&district.len())
        && district.chars().all(|c| c.is_ascii_uppercase())
        && (1..=2).contains(&middle.len())
        && (1..=4).contains(&number.len())
        && number.chars().all(|c| c.is_ascii_digit())
        && !number.starts_with('0')
        && district.len() + middle.len() + number.len() <= 8;
    valid.then(|| ok(PlateFormat::Germany, format!("{district}-{middle} {number}{suffix}"), false))
}

/// The two most common US formats: California's `7ABC123`, and three letters and four digits.
fn united_states(cleaned: &str) -> Plate {
    if shaped(cleaned, "DLLLDDD", "") && !cleaned.starts_with('0') {
        return ok(PlateFormat::UsCalifornia, cleaned.to_string(), false);
    }
    if shaped(cleaned, "LLLDDDD", "") {
        return ok(PlateFormat::UsLettersDigits, format!("{}-{}", &cleaned[..3], &cleaned[3..]), false);
    }
    invalid(PlateFormat::UsGeneric, cleaned)
}

/// Upper-case alphanumeric groups split at spaces, hyphens and dots.
fn separated_groups(text: &str) -> Vec<String> {
    normalize_width(text)
        .split(|c: char| c.is_whitespace() || matches!(c, '-' | '·' | '.' | '_'))
        .filter(|g| !g.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

fn eu(groups: &[String]) -> Plate {
    let text = groups.join("-");
    let all: String = groups.concat();
    let valid = (1..=4).contains(&groups.len())
        && (4..=10).contains(&all.len())
        && all.bytes().all(|b| b.is_ascii_alphanumeric())
        && all.bytes().any(|b| b.is_ascii_digit())
        && all.bytes().any(|b| b.is_ascii_uppercase());
    if valid { ok(PlateFormat::EuGeneric, text, false) } else { invalid(PlateFormat::EuGeneric, &text) }
}

fn us(s: &str) -> Plate {
    let valid = (2..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if valid { ok(PlateFormat::UsGeneric, s.to_string(), false) } else { invalid(PlateFormat::UsGeneric, s) }
}

/// Plate background colour.
///
/// Face++ `licenseplate` reports `color` as 0 blue, 1 yellow, 2 black, 3 white, 4 green, 5 small new-energy
/// (the gradient green, `渐变绿`), 6 large new-energy (yellow-green, `黄绿双拼`); see [`facepp_color_code`].
/// Mainland colours: blue (ordinary small cars), yellow (large vehicles, learner cars), white (police,
/// military), black (foreign-owned, Hong Kong/Macau cross-border), green (new-energy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateColor {
    /// 蓝.
    Blue,
    /// 黄.
    Yellow,
    /// 白.
    White,
    /// 黑.
    Black,
    /// 绿, 渐变绿, 黄绿.
    Green,
}

impl PlateColor {
    /// From a colour name as a plate model or a person reports it: Chinese (`蓝`, `蓝牌`, `黄色`, `渐变绿`,
    /// `黄绿双拼`, `黑底白字`...) or English (`blue`, `Green`...). Any name with 绿/green is green (new-energy);
    /// otherwise the first colour named (the background) wins.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.trim().to_lowercase();
        if lower.contains('绿') || lower.contains("green") {
            return Some(Self::Green);
        }
        for c in lower.chars() {
            match c {
                '蓝' => return Some(Self::Blue),
                '黄' => return Some(Self::Yellow),
                '白' => return Some(Self::White),
                '黑' => return Some(Self::Black),
                _ => {}
            }
        }
        match lower.as_str() {
            "blue" => Some(Self::Blue),
            "yellow" => Some(Self::Yellow),
            "white" => Some(Self::White),
            "black" => Some(Self::Black),
            _ => None,
        }
    }
}

/// The Face++ `color` code of a plate: the colour, except that a green new-energy plate is told apart by its
/// format (5 small, 6 large) when the text says which.
pub fn facepp_color_code(color: PlateColor, format: PlateFormat) -> u8 {
    match (color, format) {
        (PlateColor::Blue, _) => 0,
        (PlateColor::Yellow, _) => 1,
        (PlateColor::Black, _) => 2,
        (PlateColor::White, _) => 3,
        (PlateColor::Green, PlateFormat::ChinaNewEnergySmall) => 5,
        (PlateColor::Green, PlateFormat::ChinaNewEnergyLarge) => 6,
        (PlateColor::Green, _) => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, region: PlateRegion) -> Plate {
        parse_plate(text, region)
    }

    #[test]
    fn provinces_are_the_31_mainland_ones() {
        assert_eq!(CHINA_PROVINCES.chars().count(), 31);
        let mut v: Vec<char> = CHINA_PROVINCES.chars().collect();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 31);
    }

    #[test]
    fn china_standard_and_separators() {
        for (input, text) in
            [("京A12345", "京A12345"), ("京A·12345", "京A12345"), ("沪 B 7Z9X8", "沪B7Z9X8"), ("粤b12345", "粤B12345")]
        {
            let plate = p(input, PlateRegion::China);
            assert!(plate.valid, "{input}");
            assert_eq!(plate.format, PlateFormat::ChinaStandard);
            assert_eq!(plate.text, text);
        }
        let auto = p("川A·D5X38", PlateRegion::Auto);
        assert_eq!(auto.format, PlateFormat::ChinaStandard);
        assert!(auto.valid);
    }

    #[test]
    fn china_confusions_and_invalid() {
        // O and I are never used on mainland plates: read as 0 and 1.
        let plate = p("京AO12I5", PlateRegion::China);
        assert!(plate.valid && plate.corrected);
        assert_eq!(plate.text, "京A01215");
        // 8 in the letter place reads as B.
        assert_eq!(p("京812345", PlateRegion::China).text, "京B12345");
        assert!(!p("京I12345", PlateRegion::China).valid);
        // J, read as 1 in the letter place (I is never used there) or as a bracket anywhere.
        let plate = p("陕」·14991", PlateRegion::China);
        assert_eq!((plate.text.as_str(), plate.corrected), ("陕J14991", true));
        assert_eq!(p("陕114991", PlateRegion::China).text, "陕J14991");
        assert_eq!(p("鲁G·488]5", PlateRegion::China).text, "鲁G488J5");
        assert!(!p("港A12345", PlateRegion::China).valid);
        assert!(!p("京A1234", PlateRegion::China).valid);
        assert!(!p("京A123456789", PlateRegion::China).valid);
        assert!(!p("京A12#45", PlateRegion::China).valid);
    }

    #[test]
    fn china_new_energy() {
        let small = p("京AD12345", PlateRegion::China);
        assert_eq!((small.format, small.valid), (PlateFormat::ChinaNewEnergySmall, true));
        assert!(p("京AF12345", PlateRegion::Auto).valid);
        assert!(p("沪AFA1234", PlateRegion::China).valid);
        let large = p("京A12345D", PlateRegion::China);
        assert_eq!((large.format, large.valid), (PlateFormat::ChinaNewEnergyLarge, true));
        assert!(p("粤B12345F", PlateRegion::China).valid);
        // 0 misread for D in the new-energy place.
        let fixed = p("京A012345", PlateRegion::China);
        assert_eq!((fixed.text.as_str(), fixed.valid, fixed.corrected), ("京AD12345", true, true));
        // Small new-energy plates need four digits at the end; large ones five digits first.
        assert!(!p("京ADA1B34", PlateRegion::China).valid);
        assert!(!p("京A1234AD", PlateRegion::China).valid);
        assert!(!p("京AX12345", PlateRegion::China).valid);
    }

    #[test]
    fn china_special_suffixes() {
        for s in
            ["粤Z1234港", "粤Z1234澳", "京A1234警", "苏E1234学", "鲁A1234挂", "沪A1234领", "京A1234试", "京A1234超"]
        {
            let plate = p(s, PlateRegion::Auto);
            assert_eq!((plate.format, plate.valid), (PlateFormat::ChinaSpecial, true), "{s}");
        }
        assert!(!p("京A123警", PlateRegion::China).valid);
    }

    #[test]
    fn singapore_check_letters_match_published_plates() {
        // From a published list of valid plates (prefix, digits and check letter as printed), covering 1-, 2- and
        // 3-letter prefixes; plus SBS3229P and SBA1234G.
        for s in [
            "E75H", "EL1A", "E115B", "GY55C", "GY8822C", "GY9831U", "PA9707R", "EA4254T", "SCY79G", "SBS9683X",
            "SCW0241P", "GBA1511G", "SGA4137A", "SGF2306R", "SGM6322E", "SJK6655U", "SHA9587P", "SHB1703T", "SJF5759L",
            "XD3634X", "SBS3229P", "SBA1234G", "SKV6201B", "SNX6835B",
        ] {
            let plate = p(s, PlateRegion::Singapore);
            assert!(plate.valid, "{s}");
            assert_eq!(plate.format, PlateFormat::Singapore);
        }
        assert_eq!(singapore_check_letter("SBS", "3229"), Some('P'));
        // Zero-padded digits are printed without the zeros.
        assert_eq!(p("SCW0241P", PlateRegion::Singapore).text, "SCW241P");
        assert_eq!(singapore_check_letter("E", "1"), singapore_check_letter("E", "0001"));
    }

    #[test]
    fn singapore_wrong_check_letter_and_confusions() {
        let plate = p("SBS3229A", PlateRegion::Singapore);
        assert_eq!((plate.format, plate.valid), (PlateFormat::Singapore, false));
        let plate = p("SBS 3Z29 P", PlateRegion::Singapore);
        assert_eq!((plate.text.as_str(), plate.valid, plate.corrected), ("SBS3229P", true, true));
        let plate = p("5BS3229P", PlateRegion::Auto);
        assert_eq!((plate.format, plate.text.as_str()), (PlateFormat::Singapore, "SBS3229P"));
        assert_eq!(p("SBS3229P", PlateRegion::Auto).format, PlateFormat::Singapore);
        assert!(!p("SBS32290P", PlateRegion::Singapore).valid);
    }

    #[test]
    fn uk_current_format() {
        let plate = p("AB12 CDE", PlateRegion::UnitedKingdom);
        assert_eq!((plate.text.as_str(), plate.valid, plate.corrected), ("AB12 CDE", true, false));
        let plate = p("ab51cde", PlateRegion::Auto);
        assert_eq!((plate.format, plate.text.as_str()), (PlateFormat::UnitedKingdom, "AB51 CDE"));
        let plate = p("AB1Z CDE", PlateRegion::UnitedKingdom);
        assert_eq!((plate.text.as_str(), plate.corrected), ("AB12 CDE", true));
        assert!(!p("QB12 CDE", PlateRegion::UnitedKingdom).valid);
        assert!(!p("AB50 CDE", PlateRegion::UnitedKingdom).valid);
        assert!(!p("AB12 CDQ", PlateRegion::UnitedKingdom).valid);
        assert!(!p("AB12 CD", PlateRegion::UnitedKingdom).valid);
    }

    #[test]
    fn european_national_formats() {
        for (input, format, text) in [
            ("M-AB 1234", PlateFormat::Germany, "M-AB 1234"),
            ("D-DB 4717", PlateFormat::Germany, "D-DB 4717"),
            ("DV-Y105", PlateFormat::Germany, "DV-Y 105"),
            ("ZGZ-K 6217", PlateFormat::Germany, "ZGZ-K 6217"),
            ("B-XY 12E", PlateFormat::Germany, "B-XY 12E"),
            ("AB-123-CD", PlateFormat::France, "AB-123-CD"),
            ("ZX 941 JW", PlateFormat::Italy, "ZX 941 JW"),
            ("ZX941JW", PlateFormat::Italy, "ZX 941 JW"),
            ("1234 BCD", PlateFormat::Spain, "1234 BCD"),
            // Read as a UK plate only with a 2 taken for a Z.
            ("FG 412 EM", PlateFormat::Italy, "FG 412 EM"),
        ] {
            let plate = p(input, PlateRegion::Auto);
            assert_eq!((plate.format, plate.text.as_str(), plate.valid), (format, text, true), "{input}");
            assert_eq!(p(input, PlateRegion::Europe).format, format, "{input}");
        }
        // A German number never starts with 0, nor has it more than eight characters; French SIV letters
        // exclude I, O and U; Spanish letters are consonants.
        assert_ne!(p("M-AB 0123", PlateRegion::Auto).format, PlateFormat::Germany);
        assert_ne!(p("ABC-DE 1234", PlateRegion::Auto).format, PlateFormat::Germany);
        assert_ne!(p("AO-123-CD", PlateRegion::Auto).format, PlateFormat::France);
        assert_ne!(p("1234 BCA", PlateRegion::Auto).format, PlateFormat::Spain);
        // Shapes are matched on ASCII only (a CJK character is three bytes of seven).
        assert_eq!(p("1234京", PlateRegion::Europe).format, PlateFormat::EuGeneric);
        assert!(!p("京B-12 3", PlateRegion::Europe).valid);
    }

    #[test]
    fn us_formats() {
        let plate = p("7ABC123", PlateRegion::Auto);
        assert_eq!((plate.format, plate.valid), (PlateFormat::UsCalifornia, true));
        let plate = p("abc-1234", PlateRegion::UnitedStates);
        assert_eq!((plate.format, plate.text.as_str()), (PlateFormat::UsLettersDigits, "ABC-1234"));
    }

    #[test]
    fn eu_and_us_generic() {
        let plate = p("M-A1B 1234", PlateRegion::Europe);
        assert_eq!((plate.text.as_str(), plate.valid), ("M-A1B-1234", true));
        assert_eq!(p("AB-12-CD", PlateRegion::Auto).format, PlateFormat::EuGeneric);
        assert!(!p("ABCD-EFGH", PlateRegion::Europe).valid);
        assert!(!p("A-1", PlateRegion::Europe).valid);
        let plate = p("7ABC12", PlateRegion::Auto);
        assert_eq!((plate.format, plate.valid), (PlateFormat::UsGeneric, true));
        assert!(p("HELLO", PlateRegion::UnitedStates).valid);
        assert!(!p("TOOLONG123", PlateRegion::UnitedStates).valid);
        let unknown = p("##", PlateRegion::Auto);
        assert_eq!((unknown.format, unknown.valid), (PlateFormat::Unknown, false));
    }

    /// Choices as the recogniser gives them: the character read with 0.9, then the others given.
    fn choices(text: &str, others: &[(usize, char, f32)]) -> Vec<Vec<(char, f32)>> {
        text.chars()
            .enumerate()
            .map(|(k, c)| {
                let mut options = vec![(c, 0.9)];
                options.extend(others.iter().filter(|(at, _, _)| *at == k).map(|&(_, o, p)| (o, p)));
                options
            })
            .collect()
    }

    #[test]
    fn china_reading_takes_the_likeliest_province_and_hesitant_letters() {
        // Seen in the benchmark: 藏 read as 戴 (藏 the third choice), J read as 1, Q read as 0.
        let read = choices("戴Z·D97939", &[(0, '蔵', 0.04), (0, '藏', 0.03)]);
        assert_eq!(china_reading(&read).as_deref(), Some("藏Z·D97939"));
        assert_eq!(parse_plate("藏Z·D97939", PlateRegion::Auto).text, "藏ZD97939");
        let read = choices("鲁T·81276", &[(4, 'J', 0.05)]);
        assert_eq!(china_reading(&read).as_deref(), Some("鲁T·8J276"));
        let read = choices("沪A·88109", &[(6, 'Q', 0.38), (5, 'J', 0.0004)]);
        assert_eq!(china_reading(&read).as_deref(), Some("沪A·881Q9"));
        // Below the thresholds, a province read as one, and a second-place 1 (only a letter fits there, which
        // the parser fixes): nothing to change.
        assert_eq!(china_reading(&choices("沪A·88109", &[(6, 'Q', 0.03), (5, 'J', 0.001)])), None);
        assert_eq!(china_reading(&choices("皖A·12345", &[(0, '琼', 0.3)])), None);
        assert_eq!(china_reading(&choices("沪1·88109", &[(1, 'J', 0.3)])), None);
        // Not a mainland plate, or no province among the choices.
        assert_eq!(china_reading(&choices("NK100XZ", &[(4, 'Q', 0.5)])), None);
        assert_eq!(china_reading(&choices("戴Z·D97939", &[(0, '载', 0.05)])), None);
        assert_eq!(china_reading(&[]), None);
    }

    #[test]
    fn two_row_plate_from_lines() {
        let plate = parse_plate_lines(&[TextLine::new("鲁A", 0.9), TextLine::new("12345", 0.8)], PlateRegion::Auto);
        assert_eq!(plate.text, "鲁A12345");
        assert!(plate.valid);
        assert!((plate.confidence - 0.8).abs() < 1e-6);
    }

    #[test]
    fn colours_map_to_facepp_codes() {
        let standard = PlateFormat::ChinaStandard;
        let cases =
            [("蓝", 0), ("蓝牌", 0), ("blue", 0), ("黄色", 1), ("黑底白字", 2), ("白", 3), ("绿", 4), ("Green", 4)];
        for (name, code) in cases {
            let colour = PlateColor::from_name(name).unwrap();
            assert_eq!(facepp_color_code(colour, standard), code, "{name}");
        }
        assert_eq!(PlateColor::from_name("紫"), None);
        let green = PlateColor::from_name("渐变绿").unwrap();
        assert_eq!(facepp_color_code(green, p("京AD12345", PlateRegion::China).format), 5);
        assert_eq!(facepp_color_code(green, p("京A12345D", PlateRegion::China).format), 6);
    }
}
