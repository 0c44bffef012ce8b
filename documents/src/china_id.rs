//! China resident identity card (居民身份证): the 18-character citizen ID number and both sides of the card.
//!
//! The ID number is `RRRRRR YYYYMMDD SSS C`: a six-digit region code, the birth date, a sequence number whose last
//! digit is odd for men and even for women, and a check character (ISO 7064 MOD 11-2: the weighted sum of the first
//! 17 digits with weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, modulo 11, indexes `10X98765432`). The check
//! catches every single-digit misread and every swap of two adjacent different digits.
//!
//! On the card, the number's birth date and sex must agree with the printed ones; when they do not, both sides of
//! the disagreement are reported [`FieldStatus::Unreadable`](crate::FieldStatus::Unreadable) and an [`Issue`] says
//! why.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use thiserror::Error;

use crate::dates::{self, Piece};
use crate::segment::{self, Found, Segment};
use crate::text::{compact, digit_for, is_cjk, normalize_width, to_digits};
use crate::{Field, Sex, TextLine, min_confidence};

/// Weights of the 17 digits in the MOD 11-2 check.
pub const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

const CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The 56 officially recognised ethnic groups, as printed after `民族` (without `族`).
pub const ETHNIC_GROUPS: [&str; 56] = [
    "汉",
    "蒙古",
    "回",
    "藏",
    "维吾尔",
    "苗",
    "彝",
    "壮",
    "布依",
    "朝鲜",
    "满",
    "侗",
    "瑶",
    "白",
    "土家",
    "哈尼",
    "哈萨克",
    "傣",
    "黎",
    "傈僳",
    "佤",
    "畲",
    "高山",
    "拉祜",
    "水",
    "东乡",
    "纳西",
    "景颇",
    "柯尔克孜",
    "土",
    "达斡尔",
    "仫佬",
    "羌",
    "布朗",
    "撒拉",
    "毛南",
    "仡佬",
    "锡伯",
    "阿昌",
    "普米",
    "塔吉克",
    "怒",
    "乌孜别克",
    "俄罗斯",
    "鄂温克",
    "德昂",
    "保安",
    "裕固",
    "京",
    "塔塔尔",
    "独龙",
    "鄂伦春",
    "赫哲",
    "门巴",
    "珞巴",
    "基诺",
];

/// Why a string is not a valid citizen ID number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IdNumberError {
    /// Not 18 characters.
    #[error("an ID number has 18 characters, found {0}")]
    Length(usize),
    /// A character that is not a digit (or `X` in the last place).
    #[error("an ID number is 17 digits and a check character 0-9 or X")]
    Format,
    /// The region code does not start with 1-8.
    #[error("the region code must start with 1-8")]
    Region,
    /// Digits 7-14 are not a real date.
    #[error("digits 7-14 are not a real birth date")]
    BirthDate,
    /// The MOD 11-2 check character does not match.
    #[error("check character is {found}, expected {expected}")]
    CheckDigit {
        /// What the first 17 digits call for.
        expected: char,
        /// What was printed.
        found: char,
    },
}

/// A validated citizen ID number and what it encodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChineseIdNumber {
    /// The 18 characters, check character `X` uppercase.
    pub number: String,
    /// The first six digits (administrative division at registration).
    pub region_code: String,
    /// Digits 7-14.
    pub birth_date: NaiveDate,
    /// From the parity of digit 17.
    pub sex: Sex,
}

/// The check character for 17 digits, or `None` if `first17` is not 17 ASCII digits.
pub fn id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17.bytes().zip(ID_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    CHECK_CHARS.get((sum % 11) as usize).copied()
}

/// Validates an ID number exactly as given (only a lowercase `x` is accepted for `X`).
pub fn validate_id_number(s: &str) -> Result<ChineseIdNumber, IdNumberError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return Err(IdNumberError::Length(chars.len()));
    }
    let first17: String = chars[..17].iter().collect();
    if !first17.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdNumberError::Format);
    }
    let found = match chars[17] {
        'x' | 'X' => 'X',
        c if c.is_ascii_digit() => c,
        _ => return Err(IdNumberError::Format),
    };
    if !matches!(first17.as_bytes()[0], b'1'..=b'8') {
        return Err(IdNumberError::Region);
    }
    let birth_date = NaiveDate::parse_from_str(&first17[6..14], "%Y%m%d").map_err(|_| IdNumberError::BirthDate)?;
    let expected = id_check_char(&first17).ok_or(IdNumberError::Format)?;
    if expected != found {
        return Err(IdNumberError::CheckDigit { expected, found });
    }
    let sex = if (first17.as_bytes()[16] - b'0') % 2 == 1 { Sex::Male } else { Sex::Female };
    Ok(ChineseIdNumber { number: format!("{first17}{found}"), region_code: first17[..6].to_string(), birth_date, sex })
}

/// Validates OCR text as an ID number, first removing spaces and full-width forms and reading confusable letters in
/// the 17 digit places as digits (`O`→0, `l`→1, ...). Returns the number and whether anything was corrected; the
/// check character decides, so a correction never turns a wrong number into a valid one.
pub fn read_id_number(raw: &str) -> Result<(ChineseIdNumber, bool), IdNumberError> {
    let s: String = compact(raw).chars().filter(|c| *c != '-').collect();
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return Err(IdNumberError::Length(chars.len()));
    }
    let head: String = chars[..17].iter().collect();
    let (digits, mut changed) = to_digits(&head).ok_or(IdNumberError::Format)?;
    let last = match chars[17] {
        'X' => 'X',
        'x' | '×' | 'Х' | 'х' => {
            changed = true;
            'X'
        }
        c => {
            let d = digit_for(c).ok_or(IdNumberError::Format)?;
            changed |= d != c;
            d
        }
    };
    validate_id_number(&format!("{digits}{last}")).map(|id| (id, changed))
}

/// Runs of ID-like characters (digits, confusable letters, `X`) in `text`, trimmed to 18 characters when a stray
/// confusable letter is glued at either end. Only runs with at least 14 real digits count.
pub(crate) fn id_like_runs(text: &str) -> Vec<String> {
    let chars: Vec<char> = compact(text).chars().collect();
    let idish = |c: char| digit_for(c).is_some() || matches!(c, 'X' | 'x' | '×');
    let id_shaped = |run: &[char]| run.len() == 18 && run.iter().filter(|c| c.is_ascii_digit()).count() >= 14;
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !idish(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && idish(chars[i]) {
            i += 1;
        }
        let mut run = &chars[start..i];
        while run.len() > 18 && run.first().is_some_and(|c| !c.is_ascii_digit()) {
            run = &run[1..];
        }
        while run.len() > 18 && run.last().is_some_and(|c| !c.is_ascii_digit() && *c != 'X' && *c != 'x') {
            run = &run[..run.len() - 1];
        }
        if id_shaped(run) {
            out.push(run.iter().collect());
        }
    }
    // A stray character read beside the number, but apart from it (`证号 License No、2 210102196312276570`),
    // makes the joined run too long; the number's own group still counts.
    for word in normalize_width(text).split_whitespace() {
        let run: Vec<char> = word.chars().collect();
        let is_id = run.iter().all(|c| idish(*c)) && id_shaped(&run);
        let run: String = run.into_iter().collect();
        if is_id && !out.contains(&run) {
            out.push(run);
        }
    }
    out
}

/// Looks for an ID number anywhere in the lines (also split over two adjacent lines); a valid one wins, else the
/// first candidate is reported unreadable.
pub(crate) fn find_id_number(lines: &[TextLine]) -> Field<ChineseIdNumber> {
    let mut candidates: Vec<(String, f32)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        for run in id_like_runs(&line.text) {
            candidates.push((run, line.clamped_confidence()));
        }
        if let Some(next) = lines.get(i + 1) {
            let joined = format!("{}{}", compact(&line.text), compact(&next.text));
            for run in id_like_runs(&joined) {
                candidates.push((run, min_confidence([line, next])));
            }
        }
    }
    let mut first = None;
    for (raw, conf) in candidates {
        match read_id_number(&raw) {
            Ok((id, changed)) => return Field::checked(id, raw, conf, changed),
            Err(_) => {
                first.get_or_insert((raw, conf));
            }
        }
    }
    match first {
        Some((raw, conf)) => Field::unreadable(raw, conf),
        None => Field::missing(),
    }
}

/// The ID number field from a labelled value (`公民身份号码 ...`), falling back to a search of all lines.
pub(crate) fn id_number_field(found: Option<&Found>, lines: &[TextLine]) -> Field<ChineseIdNumber> {
    if let Some(found) = found {
        let runs = id_like_runs(&found.text);
        let raw = runs.first().cloned().unwrap_or_else(|| found.text.clone());
        match read_id_number(&raw) {
            Ok((id, changed)) => return Field::checked(id, raw, found.confidence, changed),
            Err(_) => {
                let searched = find_id_number(lines);
                if searched.is_ok() {
                    return searched;
                }
                return Field::unreadable(raw, found.confidence);
            }
        }
    }
    find_id_number(lines)
}

/// A problem found by cross-checking two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Issue {
    /// The birth date in the ID number differs from the printed one.
    BirthDateMismatch,
    /// The sex encoded in the ID number differs from the printed one.
    SexMismatch,
}

/// Which side of the card the lines came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdCardSide {
    /// Photo side: name, sex, ethnicity, birth date, address, ID number.
    Front,
    /// National emblem side: issuing authority and validity period.
    Back,
    /// Both sides (e.g. a scan of both on one page).
    Both,
    /// Neither side recognised.
    Unknown,
}

/// The photo side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdCardFront {
    /// 姓名.
    pub name: Field<String>,
    /// 性别.
    pub sex: Field<Sex>,
    /// 民族, without `族` (e.g. `汉`).
    pub ethnicity: Field<String>,
    /// 出生.
    pub birth_date: Field<NaiveDate>,
    /// 住址, lines joined.
    pub address: Field<String>,
    /// 公民身份号码.
    pub id_number: Field<ChineseIdNumber>,
    /// Cross-check failures.
    pub issues: Vec<Issue>,
}

/// A validity period. `end` is `None` for `长期` (long-term).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ValidityPeriod {
    /// First day of validity.
    pub start: NaiveDate,
    /// Last day, or `None` when long-term.
    pub end: Option<NaiveDate>,
    /// `true` for `长期`.
    pub long_term: bool,
}

/// The emblem side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdCardBack {
    /// 签发机关 (a public security bureau).
    pub issuing_authority: Field<String>,
    /// 有效期限: 5, 10 or 20 years from the start date, or long-term.
    pub validity: Field<ValidityPeriod>,
}

/// A parsed identity card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdCard {
    /// The side(s) detected.
    pub side: IdCardSide,
    /// Present when the front was detected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front: Option<IdCardFront>,
    /// Present when the back was detected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back: Option<IdCardBack>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L {
    Name,
    Sex,
    Ethnicity,
    Birth,
    Address,
    IdNumber,
    Authority,
    Validity,
    Title,
}

const LABELS: &[(L, &[&str])] = &[
    (L::Name, &["姓名"]),
    (L::Sex, &["性别"]),
    (L::Ethnicity, &["民族"]),
    (L::Birth, &["出生", "出生日期"]),
    (L::Address, &["住址"]),
    (L::IdNumber, &["公民身份号码", "公民身份号", "身份号码", "身份证号码", "身份证号"]),
    // The detector often cuts `签发机关` before its last character, which then leads the value (`关北京市...`).
    (L::Authority, &["签发机关", "签发机"]),
    (L::Validity, &["有效期限", "有效期"]),
    (L::Title, &["中华人民共和国", "居民身份证"]),
];

/// Parses the lines of either side (or both) of a resident identity card.
pub fn parse_id_card(lines: &[TextLine]) -> IdCard {
    let segs = segment::segment(lines, LABELS);
    let has = |l: L| segment::position(&segs, l).is_some();
    // The front needs two signs (labels or an ID-number-like run); the back one of its two labels.
    let front_labels = [L::Name, L::Sex, L::Ethnicity, L::Birth, L::Address, L::IdNumber];
    let has_number = lines.iter().any(|l| !id_like_runs(&l.text).is_empty());
    let front_hits = front_labels.iter().filter(|l| has(**l)).count() + usize::from(has_number);
    let back_hits = usize::from(has(L::Authority)) + usize::from(has(L::Validity));
    let side = match (front_hits >= 2, back_hits >= 1) {
        (true, true) => IdCardSide::Both,
        (true, false) => IdCardSide::Front,
        (false, true) => IdCardSide::Back,
        (false, false) => IdCardSide::Unknown,
    };
    let front = matches!(side, IdCardSide::Front | IdCardSide::Both).then(|| front_from(&segs, lines));
    let back = matches!(side, IdCardSide::Back | IdCardSide::Both).then(|| back_from(&segs));
    IdCard { side, front, back }
}

/// Parses the photo side.
pub fn parse_id_card_front(lines: &[TextLine]) -> IdCardFront {
    front_from(&segment::segment(lines, LABELS), lines)
}

/// Parses the emblem side.
pub fn parse_id_card_back(lines: &[TextLine]) -> IdCardBack {
    back_from(&segment::segment(lines, LABELS))
}

fn looks_like_number(text: &str) -> bool {
    text.chars().filter(char::is_ascii_digit).count() >= 12
}

/// An unlabeled segment just before the first segment with `label` (for labels the OCR dropped).
fn unlabeled_before(segs: &[Segment<L>], label: L) -> Option<Found> {
    let at = segment::position(segs, label)?;
    let prev = segs.get(at.checked_sub(1)?)?;
    (prev.label.is_none() && !prev.text.is_empty()).then(|| Found::new(prev.text.clone(), prev.confidence))
}

fn front_from(segs: &[Segment<L>], lines: &[TextLine]) -> IdCardFront {
    let name_found = segment::value_of(segs, L::Name).or_else(|| unlabeled_before(segs, L::Sex));
    let name = name_field(name_found.as_ref());
    let sex = sex_field(segment::value_of(segs, L::Sex).as_ref());
    let ethnicity = ethnicity_field(segment::value_of(segs, L::Ethnicity).as_ref());
    let birth_date = date_field(segment::value_of(segs, L::Birth).as_ref());
    let address_found = segment::continued_value(segs, L::Address, looks_like_number).or_else(|| {
        // Label dropped: the unlabeled text between the birth date and the ID number.
        let birth = segment::position(segs, L::Birth)?;
        let text: Vec<&Segment<L>> =
            segs[birth + 1..].iter().take_while(|s| s.label.is_none() && !looks_like_number(&s.text)).collect();
        (!text.is_empty()).then(|| {
            Found::new(
                text.iter().map(|s| s.text.as_str()).collect(),
                text.iter().map(|s| s.confidence).fold(1.0, f32::min),
            )
        })
    });
    let address = address_field(address_found.as_ref());
    let id_number = id_number_field(segment::value_of(segs, L::IdNumber).as_ref(), lines);
    let mut front = IdCardFront { name, sex, ethnicity, birth_date, address, id_number, issues: Vec::new() };
    cross_check(&mut front.id_number, &mut front.birth_date, &mut front.sex, &mut front.issues);
    front
}

/// Cross-checks the ID number against the printed birth date and sex, invalidating both sides of a mismatch.
/// A birth date or sex that could not be read is taken from a valid number (its check digit passed), as
/// `derived`.
pub(crate) fn cross_check(
    id: &mut Field<ChineseIdNumber>,
    birth: &mut Field<NaiveDate>,
    sex: &mut Field<Sex>,
    issues: &mut Vec<Issue>,
) {
    let Some(number) = id.value.clone() else { return };
    if birth.value.is_some_and(|b| b != number.birth_date) {
        issues.push(Issue::BirthDateMismatch);
        birth.invalidate();
        id.invalidate();
    }
    if sex.value.is_some_and(|s| s != number.sex) {
        issues.push(Issue::SexMismatch);
        sex.invalidate();
        id.invalidate();
    }
    if id.is_ok() {
        if !birth.is_ok() {
            birth.derive(number.birth_date, id.confidence);
        }
        if !sex.is_ok() {
            sex.derive(number.sex, id.confidence);
        }
    }
}

pub(crate) fn name_field(found: Option<&Found>) -> Field<String> {
    let Some(found) = found else { return Field::missing() };
    // Punctuation around the name (`「`) is read from the gap after the label; a letter or digit is not dropped.
    let name = found.text.trim_matches(|c: char| !(is_cjk(c) || c == '·' || c.is_alphanumeric()));
    // One character standing apart before a name of two or more is a mark read into the label's box (`姓名草
    // 韩莉梅`): names are printed without spaces.
    let name = match name.char_indices().nth(1) {
        Some((second, _)) if found.first_word == 1 && name.chars().count() >= 3 && found.text.starts_with(name) => {
            &name[second..]
        }
        _ => name,
    };
    let ok = (1..=20).contains(&name.chars().count())
        && name.chars().all(|c| is_cjk(c) || c == '·')
        && name.chars().any(is_cjk)
        && !name.starts_with('·')
        && !name.ends_with('·');
    if ok {
        Field::valid(name.to_string(), &found.text, found.confidence)
    } else {
        Field::unreadable(&found.text, found.confidence)
    }
}

pub(crate) fn sex_field(found: Option<&Found>) -> Field<Sex> {
    let Some(found) = found else { return Field::missing() };
    // Marks around the one character (`！男`) are read from the gap after the label.
    let text = found.text.trim_matches(|c: char| !c.is_alphanumeric());
    let sex = match text {
        "男" | "M" | "m" => Sex::Male,
        "女" | "F" | "f" => Sex::Female,
        _ => return Field::unreadable(&found.text, found.confidence),
    };
    Field::valid(sex, &found.text, found.confidence)
}

fn ethnicity_field(found: Option<&Found>) -> Field<String> {
    let Some(found) = found else { return Field::missing() };
    let text = found.text.trim_matches(|c: char| c == ':' || c == '.');
    let text = text.strip_suffix('族').unwrap_or(text);
    if ETHNIC_GROUPS.contains(&text) {
        Field::valid(text.to_string(), &found.text, found.confidence)
    } else {
        Field::unreadable(&found.text, found.confidence)
    }
}

pub(crate) fn date_field(found: Option<&Found>) -> Field<NaiveDate> {
    let Some(found) = found else { return Field::missing() };
    let read = |text: &str| match dates::first_date(text) {
        Some(dates::DateRead { date: Some(date), changed }) if date.year() >= 1900 => Some((date, changed)),
        _ => None,
    };
    let stray = || found.without_stray_mark().and_then(|rest| read(&rest.text));
    match read(&found.text) {
        Some((date, changed)) => Field::checked(date, &found.text, found.confidence, changed),
        None => match stray() {
            Some((date, _)) => Field::corrected(date, &found.text, found.confidence),
            None => Field::unreadable(&found.text, found.confidence),
        },
    }
}

pub(crate) fn address_field(found: Option<&Found>) -> Field<String> {
    let Some(found) = found else { return Field::missing() };
    let text = found.text.trim_matches(|c: char| c == ':' || c == '.');
    // A mainland address starts with a Chinese character: Latin letters before one are a misread English
    // sub-label (`Addrss辽宁省...` for `Address`), punctuation a mark of the label's box (`[山东省...`).
    let text = match text.find(is_cjk) {
        Some(start) if text[..start].chars().all(|c| c.is_ascii_alphabetic() || c.is_ascii_punctuation()) => {
            &text[start..]
        }
        _ => text,
    };
    // Nor does one start with 号 (it ends a house number, here one carried over from a line above) or 址 (the
    // label's last character).
    let text = text.trim_start_matches(['号', '址']);
    if text.chars().filter(|c| is_cjk(*c)).count() >= 4 {
        Field::valid(text.to_string(), &found.text, found.confidence)
    } else {
        Field::unreadable(&found.text, found.confidence)
    }
}

fn back_from(segs: &[Segment<L>]) -> IdCardBack {
    let issuing_authority = match segment::value_of(segs, L::Authority) {
        None => Field::missing(),
        Some(found) => {
            // Punctuation around it is read from the label's box or the gap (`签发机关－北京市…`).
            let text = found.text.trim_matches(|c: char| !(is_cjk(c) || c.is_alphanumeric()));
            // No authority's name starts with 关: it is the label's last character.
            let text = text.strip_prefix('关').unwrap_or(text);
            // Nor with a lone stroke: it is the gap, or a mark in it, read as one (`一西安市公安局雁塔分局`).
            let text = text.trim_start_matches(['一', '丶', '丿']);
            let ok = text.chars().count() >= 4
                && text.chars().all(is_cjk)
                && (text.contains("公安") || text.ends_with('局'));
            if ok {
                Field::valid(text.to_string(), &found.text, found.confidence)
            } else {
                Field::unreadable(&found.text, found.confidence)
            }
        }
    };
    let validity = match segment::value_of(segs, L::Validity) {
        None => Field::missing(),
        Some(found) => period_field(&found, &[5, 10, 20]),
    };
    IdCardBack { issuing_authority, validity }
}

/// A `start-end` or `start-长期` period whose end is `start` plus one of `allowed_years`.
pub(crate) fn period_field(found: &Found, allowed_years: &[i32]) -> Field<ValidityPeriod> {
    let pieces = dates::scan(&found.text);
    let bad = || Field::unreadable(&found.text, found.confidence);
    let (start, changed) = match pieces.first() {
        Some(Piece::Date(dates::DateRead { date: Some(d), changed })) => (*d, *changed),
        _ => return bad(),
    };
    match pieces.get(1) {
        Some(Piece::LongTerm) => {
            Field::checked(ValidityPeriod { start, end: None, long_term: true }, &found.text, found.confidence, changed)
        }
        Some(Piece::Date(dates::DateRead { date: Some(end), changed: end_changed })) => {
            let plausible = allowed_years.iter().any(|y| dates::add_years(start, *y) == Some(*end));
            if !plausible {
                return bad();
            }
            let period = ValidityPeriod { start, end: Some(*end), long_term: false };
            Field::checked(period, &found.text, found.confidence, changed || *end_changed)
        }
        _ => bad(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldStatus;
    use crate::testutil::lines;

    // Textbook example number (Beijing Chaoyang, 1949-12-31, female), and a constructed male one.
    const FEMALE: &str = "11010519491231002X";

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", id_check_char(first17).unwrap())
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn known_number_validates() {
        let id = validate_id_number(FEMALE).unwrap();
        assert_eq!(id.birth_date, date(1949, 12, 31));
        assert_eq!(id.sex, Sex::Female);
        assert_eq!(id.region_code, "110105");
        assert_eq!(validate_id_number("11010519491231002x").unwrap().number, FEMALE);
        let male = with_check("44030419900101123");
        assert_eq!(validate_id_number(&male).unwrap().sex, Sex::Male);
    }

    #[test]
    fn every_single_digit_misread_is_caught() {
        let valid = with_check("32010219880808456");
        assert!(validate_id_number(&valid).is_ok());
        let chars: Vec<char> = valid.chars().collect();
        for pos in 0..18 {
            for replacement in "0123456789X".chars() {
                if replacement == chars[pos] || (pos < 17 && replacement == 'X') {
                    continue;
                }
                let mut c = chars.clone();
                c[pos] = replacement;
                let s: String = c.iter().collect();
                assert!(validate_id_number(&s).is_err(), "{s} must not validate");
            }
        }
    }

    #[test]
    fn adjacent_swaps_are_caught() {
        let valid = with_check("32010219880808456");
        let chars: Vec<char> = valid.chars().collect();
        for pos in 0..16 {
            if chars[pos] == chars[pos + 1] {
                continue;
            }
            let mut c = chars.clone();
            c.swap(pos, pos + 1);
            let s: String = c.iter().collect();
            assert!(validate_id_number(&s).is_err(), "{s} must not validate");
        }
    }

    #[test]
    fn invalid_numbers_say_why() {
        assert_eq!(validate_id_number("1101051949123100"), Err(IdNumberError::Length(16)));
        assert_eq!(validate_id_number("11010519491231002Y"), Err(IdNumberError::Format));
        assert_eq!(validate_id_number("1101051949123100X2"), Err(IdNumberError::Format));
        assert_eq!(validate_id_number(&with_check("91010519491231002")), Err(IdNumberError::Region));
        assert_eq!(validate_id_number("110105194902300021"), Err(IdNumberError::BirthDate));
        assert_eq!(
            validate_id_number("110105194912310021"),
            Err(IdNumberError::CheckDigit { expected: 'X', found: '1' })
        );
    }

    #[test]
    fn ocr_confusions_are_fixed_only_when_the_check_passes() {
        let (id, changed) = read_id_number("11O1O5 l949 l23l OO2x").unwrap();
        assert_eq!(id.number, FEMALE);
        assert!(changed);
        let (_, changed) = read_id_number("１１０１０５１９４９１２３１００２Ｘ").unwrap();
        assert!(!changed);
        // B read as 8 where the printed digit was 3: the check character rejects it.
        assert!(read_id_number("11010519491B31002X").is_err());
    }

    #[test]
    fn id_like_runs_trim_glued_noise() {
        assert_eq!(id_like_runs("公民身份号码11010519491231002X"), vec![FEMALE.to_string()]);
        assert_eq!(id_like_runs("l11010519491231002X"), vec![FEMALE.to_string()]);
        assert!(id_like_runs("1990年1月1日").is_empty());
    }

    fn front_lines() -> Vec<TextLine> {
        lines(&[
            "姓名 王小明",
            "性别 男 民族 汉",
            "出生 1990 年 3 月 7 日",
            "住址 北京市海淀区中关村",
            "大街27号院3号楼",
            "公民身份号码 110108199003071238",
        ])
    }

    #[test]
    fn front_with_separate_labels() {
        let ls = front_lines();
        let number = with_check("11010819900307123");
        let mut ls = ls;
        ls[5] = TextLine::new(format!("公民身份号码 {number}"), 0.9);
        let card = parse_id_card(&ls);
        assert_eq!(card.side, IdCardSide::Front);
        let f = card.front.unwrap();
        assert_eq!(f.name.value.as_deref(), Some("王小明"));
        assert_eq!(f.sex.value, Some(Sex::Male));
        assert_eq!(f.ethnicity.value.as_deref(), Some("汉"));
        assert_eq!(f.birth_date.value, Some(date(1990, 3, 7)));
        assert_eq!(f.address.value.as_deref(), Some("北京市海淀区中关村大街27号院3号楼"));
        assert_eq!(f.id_number.value.as_ref().unwrap().number, number);
        assert_eq!(f.id_number.status, FieldStatus::Valid);
        assert!((f.id_number.confidence - 0.9).abs() < 1e-6);
        assert!(f.issues.is_empty());
    }

    #[test]
    fn front_glued_labels_noise_and_misreads() {
        let number = with_check("51010719851120562");
        let noisy: String = number.replacen('0', "O", 2);
        let ls = vec![
            TextLine::new("中华人民共和国", 0.5),
            TextLine::new("姓名李娜", 0.97),
            TextLine::new("性别女民族回", 0.96),
            TextLine::new("出生1985年11月20日", 0.95),
            TextLine::new("住址四川省成都市武侯区", 0.93),
            TextLine::new("人民南路四段1号", 0.8),
            TextLine::new(format!("公民身份号码{noisy}"), 0.91),
        ];
        let f = parse_id_card_front(&ls);
        assert_eq!(f.name.value.as_deref(), Some("李娜"));
        assert_eq!(f.sex.value, Some(Sex::Female));
        assert_eq!(f.ethnicity.value.as_deref(), Some("回"));
        assert_eq!(f.address.value.as_deref(), Some("四川省成都市武侯区人民南路四段1号"));
        assert!((f.address.confidence - 0.8).abs() < 1e-6);
        assert_eq!(f.id_number.status, FieldStatus::Corrected);
        assert_eq!(f.id_number.value.unwrap().number, number);
    }

    #[test]
    fn front_with_every_label_and_value_on_its_own_line() {
        let number = with_check("11010119800101001");
        let sex = if number.as_bytes()[16] % 2 == 1 { "男" } else { "女" };
        let ls = lines(&[
            "居民身份证",
            "姓 名",
            "张三",
            "性 别",
            sex,
            "民 族",
            "汉",
            "出 生",
            "1980 年 1 月 1 日",
            "住 址",
            "北京市东城区",
            "东华门街道1号",
            "公民身份号码",
            &number.chars().map(|c| format!("{c} ")).collect::<String>(),
        ]);
        let card = parse_id_card(&ls);
        assert_eq!(card.side, IdCardSide::Front);
        let f = card.front.unwrap();
        assert_eq!(f.name.value.as_deref(), Some("张三"));
        assert!(f.sex.is_ok());
        assert_eq!(f.ethnicity.value.as_deref(), Some("汉"));
        assert_eq!(f.birth_date.value, Some(date(1980, 1, 1)));
        assert_eq!(f.address.value.as_deref(), Some("北京市东城区东华门街道1号"));
        assert_eq!(f.id_number.value.unwrap().number, number);
        assert!(f.issues.is_empty());
    }

    #[test]
    fn front_without_name_and_address_labels() {
        let number = with_check("11010819900307123");
        let ls = lines(&["王小明", "性别男民族汉", "出生1990年3月7日", "北京市海淀区中关村大街27号", &number]);
        let f = parse_id_card_front(&ls);
        assert_eq!(f.name.value.as_deref(), Some("王小明"));
        assert_eq!(f.address.value.as_deref(), Some("北京市海淀区中关村大街27号"));
        assert_eq!(f.id_number.value.unwrap().number, number);
    }

    #[test]
    fn wrong_check_digit_is_unreadable_not_wrong() {
        let number = with_check("11010819900307123");
        let last = number.chars().last().unwrap();
        let wrong = format!("{}{}", &number[..17], if last == '1' { '2' } else { '1' });
        let mut ls = front_lines();
        ls[5] = TextLine::new(format!("公民身份号码{wrong}"), 0.9);
        let f = parse_id_card_front(&ls);
        assert_eq!(f.id_number.status, FieldStatus::Unreadable);
        assert_eq!(f.id_number.value, None);
        assert_eq!(f.id_number.raw.as_deref(), Some(wrong.as_str()));
    }

    #[test]
    fn birth_and_sex_mismatch_invalidate_both_sides() {
        let number = with_check("11010819900307123"); // male, 1990-03-07
        let ls = lines(&["姓名王小明", "性别女民族汉", "出生1990年3月8日", "住址北京市海淀区中关村大街", &number]);
        let f = parse_id_card_front(&ls);
        assert_eq!(f.issues, vec![Issue::BirthDateMismatch, Issue::SexMismatch]);
        assert_eq!(f.id_number.status, FieldStatus::Unreadable);
        assert_eq!(f.birth_date.status, FieldStatus::Unreadable);
        assert_eq!(f.sex.status, FieldStatus::Unreadable);
    }

    #[test]
    fn an_illegible_birth_date_or_sex_comes_from_a_valid_number() {
        // The single sex character and the birth row's label were lost (seen on slanted photos).
        let number = with_check("11010819900307123"); // male, 1990-03-07
        let id_row = format!("公民身份号码{number}");
        let ls = lines(&["姓名王小明", "性别 民族汉", "1990年3月7", "住址北京市海淀区中关村大街", &id_row]);
        let f = parse_id_card_front(&ls);
        assert_eq!((f.sex.value, f.sex.status), (Some(Sex::Male), FieldStatus::Derived));
        assert_eq!((f.birth_date.value, f.birth_date.status), (Some(date(1990, 3, 7)), FieldStatus::Derived));
        assert!(f.issues.is_empty());
        // Without a valid number nothing is derived.
        let wrong = lines(&["姓名王小明", "性别 民族汉", &format!("公民身份号码{}0", &number[..17])]);
        let f = parse_id_card_front(&wrong);
        assert!(!f.sex.is_ok() && !f.birth_date.is_ok());
    }

    #[test]
    fn bad_values_are_unreadable() {
        let ls = lines(&["姓名王小明1", "性别M男", "民族火星", "出生1990年2月30日", "住址 A1"]);
        let f = parse_id_card_front(&ls);
        assert_eq!(f.name.status, FieldStatus::Unreadable);
        assert_eq!(f.sex.status, FieldStatus::Unreadable);
        assert_eq!(f.ethnicity.status, FieldStatus::Unreadable);
        assert_eq!(f.birth_date.status, FieldStatus::Unreadable);
        assert_eq!(f.address.status, FieldStatus::Unreadable);
        assert_eq!(f.id_number.status, FieldStatus::Missing);
    }

    #[test]
    fn ethnic_groups_are_the_56_official_ones() {
        let mut sorted = ETHNIC_GROUPS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 56);
        let f = parse_id_card_front(&lines(&["民族 维吾尔族"]));
        assert_eq!(f.ethnicity.value.as_deref(), Some("维吾尔"));
    }

    #[test]
    fn minority_name_with_middle_dot() {
        let f = parse_id_card_front(&lines(&["姓名 阿依古丽•买买提", "性别女"]));
        assert_eq!(f.name.value.as_deref(), Some("阿依古丽·买买提"));
    }

    #[test]
    fn back_side_with_dates_and_long_term() {
        let card = parse_id_card(&lines(&[
            "中华人民共和国",
            "居民身份证",
            "签发机关 北京市公安局海淀分局",
            "有效期限 2015.03.01-2035.03.01",
        ]));
        assert_eq!(card.side, IdCardSide::Back);
        let b = card.back.unwrap();
        assert_eq!(b.issuing_authority.value.as_deref(), Some("北京市公安局海淀分局"));
        let v = b.validity.value.unwrap();
        assert_eq!((v.start, v.end, v.long_term), (date(2015, 3, 1), Some(date(2035, 3, 1)), false));

        let b = parse_id_card_back(&lines(&["签发机关－北京市公安局海淀分局"]));
        assert_eq!(b.issuing_authority.value.as_deref(), Some("北京市公安局海淀分局"));

        let b = parse_id_card_back(&lines(&["签发机关", "成都市公安局武侯分局", "有效期限", "2010.O8.12一长期"]));
        let v = b.validity.value.unwrap();
        assert!(v.long_term);
        assert_eq!(v.end, None);
        assert_eq!(b.validity.status, FieldStatus::Corrected);
    }

    #[test]
    fn a_stroke_read_in_the_gap_is_not_part_of_the_authority() {
        // Benchmark clean #196 and #443.
        for (row, want) in [
            ("签发机关 一西安市公安局雁塔分局", "西安市公安局雁塔分局"),
            ("签发机关丶哈尔滨市公安局南岗分局", "哈尔滨市公安局南岗分局"),
        ] {
            let b = parse_id_card_back(&lines(&[row, "有效期限2015.03.01-2025.03.01"]));
            assert_eq!(b.issuing_authority.value.as_deref(), Some(want), "{row}");
        }
    }

    #[test]
    fn an_address_starts_with_a_place_not_a_mark() {
        // Benchmark clean driving licences #157 and #192.
        for value in ["[山东省青岛市市南区青松路288号21号楼1单元1924室", "号安徽省合肥市蜀山区复兴路164号16栋1569室"]
        {
            let found = Found::new(value.to_string(), 0.9);
            let want = value.trim_start_matches(['[', '号']);
            assert_eq!(address_field(Some(&found)).value.as_deref(), Some(want), "{value}");
        }
    }

    #[test]
    fn back_side_implausible_period_is_unreadable() {
        // 2035 misread as 2036: not 5/10/20 years.
        let b = parse_id_card_back(&lines(&["签发机关北京市公安局", "有效期限2015.03.01-2036.03.01"]));
        assert_eq!(b.validity.status, FieldStatus::Unreadable);
        let b = parse_id_card_back(&lines(&["签发机关 12345", "有效期限 2015.03.01"]));
        assert_eq!(b.issuing_authority.status, FieldStatus::Unreadable);
        assert_eq!(b.validity.status, FieldStatus::Unreadable);
    }

    #[test]
    fn unknown_side_for_unrelated_text() {
        let card = parse_id_card(&lines(&["hello", "world"]));
        assert_eq!(card.side, IdCardSide::Unknown);
        assert!(card.front.is_none() && card.back.is_none());
        let json = serde_json::to_value(&card).unwrap();
        assert_eq!(json["side"], "unknown");
    }

    #[test]
    fn marks_read_into_the_label_box_are_not_part_of_the_value() {
        let f = parse_id_card_front(&lines(&["姓名草 韩莉梅", "性别！ 男 民族汉", "公民身份号码"]));
        assert_eq!(f.name.value.as_deref(), Some("韩莉梅"));
        assert_eq!(f.sex.value, Some(Sex::Male));
        let f = parse_id_card_front(&lines(&["姓名「 陶文家", "性别男 民族汉"]));
        assert_eq!(f.name.value.as_deref(), Some("陶文家"));
        // A two-character name keeps both, spaced or not; a name glued to its label is whole.
        assert_eq!(parse_id_card_front(&lines(&["姓名 李 娜", "性别女"])).name.value.as_deref(), Some("李娜"));
        assert_eq!(parse_id_card_front(&lines(&["姓名王小明", "性别男"])).name.value.as_deref(), Some("王小明"));
    }

    #[test]
    fn a_misread_english_label_is_not_part_of_the_address() {
        let f = parse_id_card_front(&lines(&["住址Addrss辽宁省沈阳市和平区青松路230号", "公民身份号码"]));
        assert_eq!(f.address.value.as_deref(), Some("辽宁省沈阳市和平区青松路230号"));
    }

    #[test]
    fn a_label_cut_before_its_last_character_still_labels_the_authority() {
        let card = parse_id_card(&lines(&["签发机 关郑州市公安局金水分局", "有效期限2014.05.21-2024.05.21"]));
        let back = card.back.unwrap();
        assert_eq!(back.issuing_authority.value.as_deref(), Some("郑州市公安局金水分局"));
    }
}
