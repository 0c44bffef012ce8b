//! China motor vehicle driving licence (中华人民共和国机动车驾驶证), main page.
//!
//! Labels may be Chinese, English (bilingual cards: `姓名 Name`) or both, glued to their values or on lines of their
//! own. The licence number (证号) of a Chinese national is the citizen ID number and is validated as one
//! (check character, birth date and sex against the printed ones); for other nationalities any 6-20 letters and
//! digits are accepted. The validity period is printed either as `有效期限 2016-05-20 至 2026-05-20` (or
//! `...至长期`), or as `有效起始日期 2016-05-20` plus `有效期限 6年` / `10年` / `长期`; a period must be 6 or 10
//! years, or long-term.

use chrono::NaiveDate;
use serde::Serialize;

use crate::china_id::{
    self, Issue, ValidityPeriod, address_field, cross_check, date_field, id_number_field, name_field, sex_field,
};
use crate::dates::{self, Piece};
use crate::segment::{self, Found};
use crate::text::{digit_for, is_cjk, letter_for, to_digits};
use crate::{Field, FieldStatus, Sex, TextLine};

/// Licence classes (准驾车型 codes) of the 2022 regulations.
pub const LICENCE_CLASSES: [&str; 17] =
    ["A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "C4", "C5", "C6", "D", "E", "F", "M", "N", "P"];

/// A parsed driving licence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverLicence {
    /// 证号: the citizen ID number for Chinese nationals.
    pub licence_number: Field<String>,
    /// 姓名.
    pub name: Field<String>,
    /// 性别.
    pub sex: Field<Sex>,
    /// 国籍 (e.g. `中国`).
    pub nationality: Field<String>,
    /// 住址, lines joined.
    pub address: Field<String>,
    /// 出生日期.
    pub birth_date: Field<NaiveDate>,
    /// 初次领证日期.
    pub first_issue_date: Field<NaiveDate>,
    /// 准驾车型, normalised (`C1`, `A2E`, `C1D`).
    pub class: Field<String>,
    /// 有效期限.
    pub validity: Field<ValidityPeriod>,
    /// Cross-check failures (licence number against birth date and sex).
    pub issues: Vec<Issue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L {
    Number,
    Name,
    Sex,
    Nationality,
    Address,
    Birth,
    FirstIssue,
    Class,
    ValidFrom,
    ValidFor,
    Title,
}

const LABELS: &[(L, &[&str])] = &[
    (L::Number, &["证号", "LicenseNo", "LicenceNo", "License No.", "Licence No."]),
    (L::Name, &["姓名", "Name"]),
    (L::Sex, &["性别", "Sex"]),
    (L::Nationality, &["国籍", "Nationality"]),
    (L::Address, &["住址", "Address"]),
    (L::Birth, &["出生日期", "DateofBirth"]),
    (L::FirstIssue, &["初次领证日期", "初次领证", "DateofFirstIssue", "FirstIssue"]),
    (L::Class, &["准驾车型", "Class"]),
    (L::ValidFrom, &["有效起始日期", "起始日期", "ValidFrom"]),
    (L::ValidFor, &["有效期限", "ValidFor", "ValidPeriod", "ValidityPeriod"]),
    (
        L::Title,
        &[
            "中华人民共和国机动车驾驶证",
            "机动车驾驶证",
            "DrivingLicenseofthePeople'sRepublicofChina",
            "DrivingLicense",
            "DrivingLicence",
        ],
    ),
];

/// Parses the OCR lines of a licence's main page.
pub fn parse_driver_licence(lines: &[TextLine]) -> DriverLicence {
    let segs = segment::segment(lines, LABELS);
    let value = |l: L| segment::value_of(&segs, l);

    let mut nationality = nationality_field(value(L::Nationality).as_ref());
    let chinese = nationality.value.as_deref().is_none_or(|n| n == "中国" || n == "CHN");
    let number_found = value(L::Number);
    let mut id = id_number_field(number_found.as_ref(), lines);
    let mut birth_date = date_field(value(L::Birth).as_ref());
    let mut sex = sex_field(value(L::Sex).as_ref());
    let mut issues = Vec::new();
    cross_check(&mut id, &mut birth_date, &mut sex, &mut issues);
    let licence_number = match (&id.value, number_found) {
        (Some(number), _) => Field {
            value: Some(number.number.clone()),
            raw: id.raw.clone(),
            confidence: id.confidence,
            status: id.status,
        },
        // Other nationalities: any plausible number, unless it is an ID number that failed a cross-check.
        (None, Some(found)) if !chinese && issues.is_empty() => foreign_number(&found),
        _ => Field { value: None, raw: id.raw.clone(), confidence: id.confidence, status: id.status },
    };
    if !nationality.is_ok()
        && let Some(number) = &id.value
        && is_mainland_region(&number.region_code)
    {
        nationality.derive("中国".to_string(), id.confidence);
    }
    let stop = |t: &str| t.chars().filter(char::is_ascii_digit).count() >= 8 || t.contains("公安");
    DriverLicence {
        licence_number,
        name: name_or_latin(value(L::Name).as_ref()),
        sex,
        nationality,
        address: address_field(segment::continued_value(&segs, L::Address, stop).as_ref()),
        birth_date,
        first_issue_date: date_field(value(L::FirstIssue).as_ref()),
        class: class_field(value(L::Class).as_ref()),
        validity: validity_field(value(L::ValidFrom).as_ref(), value(L::ValidFor).as_ref()),
        issues,
    }
}

/// Whether a valid citizen ID number was registered in a mainland province (region codes 11-65). Only Chinese
/// nationals hold one: residence permits of Hong Kong, Macao and Taiwan residents use 81-83, and foreigners'
/// permanent residence cards start with 9.
fn is_mainland_region(region_code: &str) -> bool {
    region_code.get(..2).and_then(|p| p.parse::<u8>().ok()).is_some_and(|p| (11..=65).contains(&p))
}

fn foreign_number(found: &Found) -> Field<String> {
    let text = found.text.trim_matches(|c: char| c == ':' || c == '.').to_ascii_uppercase();
    if (6..=20).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Field::valid(text, &found.text, found.confidence)
    } else {
        Field::unreadable(&found.text, found.confidence)
    }
}

/// Chinese names as on the ID card; foreign holders' Latin names (spaces lost to OCR compaction) accepted too.
fn name_or_latin(found: Option<&Found>) -> Field<String> {
    let field = name_field(found);
    match found {
        Some(f) if !field.is_ok() && f.text.len() >= 2 && f.text.chars().all(|c| c.is_ascii_uppercase()) => {
            Field::valid(f.text.clone(), &f.text, f.confidence)
        }
        _ => field,
    }
}

fn nationality_field(found: Option<&Found>) -> Field<String> {
    let Some(found) = found else { return Field::missing() };
    let text = found.text.trim_matches(|c: char| c == ':' || c == '.');
    let ok = (1..=20).contains(&text.chars().count())
        && (text.chars().all(is_cjk) || text.chars().all(|c| c.is_ascii_uppercase()));
    if ok {
        Field::valid(text.to_string(), &found.text, found.confidence)
    } else {
        Field::unreadable(&found.text, found.confidence)
    }
}

/// Reads a 准驾车型 value: a sequence of class codes (`C1`, `A1A2`, `C1E`, `B2D`), with `I`/`l` read as 1 and `8`
/// as B where that makes a code. Returns the normalised codes and whether a confusion was fixed.
pub fn parse_licence_class(text: &str) -> Option<(String, bool)> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = String::new();
    let mut changed = false;
    let mut seen: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let letter = letter_for(chars[i])?;
        let two = chars.get(i + 1).and_then(|c| digit_for(*c)).map(|d| format!("{letter}{d}"));
        let (code, used) = match two {
            Some(code) if LICENCE_CLASSES.contains(&code.as_str()) => (code, 2),
            _ if LICENCE_CLASSES.contains(&letter.to_string().as_str()) => (letter.to_string(), 1),
            _ => return None,
        };
        let original: String = chars[i..i + used].iter().collect();
        changed |= original != code;
        if seen.contains(&code) {
            return None;
        }
        seen.push(code.clone());
        out.push_str(&code);
        i += used;
    }
    (!out.is_empty()).then_some((out, changed))
}

fn class_field(found: Option<&Found>) -> Field<String> {
    let Some(found) = found else { return Field::missing() };
    let text = found.text.trim_matches(|c: char| c == ':' || c == '.');
    // Codes are capitals and digits: a leading word with a small letter is a misread sub-label (`ciass C1`),
    // but a single letter is a code's letter read small (`c1`).
    let word = text.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(text.len());
    let text = match text[..word].rfind(|c: char| c.is_ascii_lowercase()) {
        Some(_) if word == 1 => text.to_ascii_uppercase(),
        Some(last) => text[last + 1..].to_string(),
        None => text.to_string(),
    };
    match parse_licence_class(&text) {
        Some((class, changed)) => Field::checked(class, &found.text, found.confidence, changed),
        None => Field::unreadable(&found.text, found.confidence),
    }
}

const VALID_YEARS: [i32; 2] = [6, 10];

fn validity_field(from: Option<&Found>, for_: Option<&Found>) -> Field<ValidityPeriod> {
    let read = validity_as_read(from, for_);
    if read.is_ok() {
        return read;
    }
    let (from_rest, for_rest) = (from.and_then(Found::without_stray_mark), for_.and_then(Found::without_stray_mark));
    if from_rest.is_none() && for_rest.is_none() {
        return read;
    }
    let retried = validity_as_read(from_rest.as_ref().or(from), for_rest.as_ref().or(for_));
    match retried.value {
        Some(period) if retried.is_ok() => Field { value: Some(period), status: FieldStatus::Corrected, ..read },
        _ => read,
    }
}

fn validity_as_read(from: Option<&Found>, for_: Option<&Found>) -> Field<ValidityPeriod> {
    match (from, for_) {
        (Some(from), Some(for_)) => {
            let confidence = from.confidence.min(for_.confidence);
            let raw = format!("{} {}", from.text, for_.text);
            let bad = || Field::unreadable(&raw, confidence);
            let Some(dates::DateRead { date: Some(start), changed }) = dates::first_date(&from.text) else {
                return bad();
            };
            if for_.text.contains("长期") {
                let period = ValidityPeriod { start, end: None, long_term: true };
                return Field::checked(period, &raw, confidence, changed);
            }
            // `6年` / `10年`, or an end date.
            if let Some(years) = years_of(&for_.text) {
                let (years, years_changed) = years;
                if !VALID_YEARS.contains(&years) {
                    return bad();
                }
                let Some(end) = dates::add_years(start, years) else { return bad() };
                let period = ValidityPeriod { start, end: Some(end), long_term: false };
                return Field::checked(period, &raw, confidence, changed || years_changed);
            }
            match dates::scan(&for_.text).first() {
                Some(Piece::Date(dates::DateRead { date: Some(end), changed: end_changed }))
                    if VALID_YEARS.iter().any(|y| dates::add_years(start, *y) == Some(*end)) =>
                {
                    let period = ValidityPeriod { start, end: Some(*end), long_term: false };
                    Field::checked(period, &raw, confidence, changed || *end_changed)
                }
                _ => bad(),
            }
        }
        (None, Some(for_)) => china_id::period_field(for_, &VALID_YEARS),
        (Some(from), None) => Field::unreadable(&from.text, from.confidence),
        (None, None) => Field::missing(),
    }
}

/// `6年` → 6 (digits may be confusable letters).
fn years_of(text: &str) -> Option<(i32, bool)> {
    let before = text.split('年').next().filter(|_| text.contains('年'))?;
    let tail: String = before.chars().rev().take_while(|c| digit_for(*c).is_some()).collect();
    let tail: String = tail.chars().rev().collect();
    let (digits, changed) = to_digits(&tail)?;
    digits.parse().ok().map(|y| (y, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldStatus;
    use crate::china_id::id_check_char;
    use crate::testutil::lines;

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", id_check_char(first17).unwrap())
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn classes() {
        for (input, out) in
            [("C1", "C1"), ("A1A2", "A1A2"), ("C1E", "C1E"), ("B2D", "B2D"), ("A2 E", "A2E"), ("D", "D")]
        {
            assert_eq!(parse_licence_class(input), Some((out.to_string(), false)), "{input}");
        }
        assert_eq!(parse_licence_class("CI"), Some(("C1".to_string(), true)));
        assert_eq!(parse_licence_class("82"), Some(("B2".to_string(), true)));
        assert_eq!(parse_licence_class("c1"), Some(("C1".to_string(), true)));
        for bad in ["C7", "B", "X1", "C1C1", "", "小型汽车"] {
            assert_eq!(parse_licence_class(bad), None, "{bad}");
        }
    }

    #[test]
    fn old_style_licence_with_period() {
        let number = with_check("11010819900307123");
        let ls = vec![
            TextLine::new("中华人民共和国机动车驾驶证", 0.9),
            TextLine::new(format!("证号 {number}"), 0.92),
            TextLine::new("姓名 王小明 性别 男 国籍 中国", 0.9),
            TextLine::new("住址 北京市海淀区中关村", 0.88),
            TextLine::new("大街27号", 0.86),
            TextLine::new("北京市公安局公安交通管理局", 0.6),
            TextLine::new("出生日期 1990-03-07", 0.9),
            TextLine::new("初次领证日期 2010-05-20", 0.9),
            TextLine::new("准驾车型 C1", 0.95),
            TextLine::new("有效期限 2016-05-20 至 2026-05-20", 0.9),
        ];
        let dl = parse_driver_licence(&ls);
        assert_eq!(dl.licence_number.value.as_deref(), Some(number.as_str()));
        assert_eq!(dl.name.value.as_deref(), Some("王小明"));
        assert_eq!(dl.sex.value, Some(Sex::Male));
        assert_eq!(dl.nationality.value.as_deref(), Some("中国"));
        assert_eq!(dl.address.value.as_deref(), Some("北京市海淀区中关村大街27号"));
        assert_eq!(dl.birth_date.value, Some(date(1990, 3, 7)));
        assert_eq!(dl.first_issue_date.value, Some(date(2010, 5, 20)));
        assert_eq!(dl.class.value.as_deref(), Some("C1"));
        let v = dl.validity.value.unwrap();
        assert_eq!((v.start, v.end), (date(2016, 5, 20), Some(date(2026, 5, 20))));
        assert!(dl.issues.is_empty());
    }

    #[test]
    fn misread_english_labels_and_a_stray_mark_before_a_value() {
        // Rows as read from synthetic distorted photos.
        let number = with_check("31011519710523681");
        let ls = lines(&[
            &format!("证号 uicense No. {number}"),
            "姓名Name欧阳勇飞 性别 sex 男国籍 Nationalty 中国",
            "初次领证日期 Date of First ssue 1992-11-23",
            "有效期限validPeriod2 2008-11-23至长期",
        ]);
        let dl = parse_driver_licence(&ls);
        assert_eq!(dl.licence_number.value.as_deref(), Some(number.as_str()));
        assert_eq!(dl.nationality.value.as_deref(), Some("中国"));
        assert_eq!(dl.first_issue_date.value, Some(date(1992, 11, 23)));
        let v = dl.validity.value.unwrap();
        assert_eq!((v.start, v.long_term), (date(2008, 11, 23), true));
        assert_eq!(dl.validity.status, FieldStatus::Corrected);
        // A sub-label too short to match one letter off, misread before the code.
        assert_eq!(class_field(Some(&Found::new("ciassC1".into(), 0.9))).value.as_deref(), Some("C1"));
        assert_eq!(class_field(Some(&Found::new("ClasA2".into(), 0.9))).value.as_deref(), Some("A2"));
    }

    #[test]
    fn new_style_bilingual_licence_with_years() {
        let number = with_check("32010219880808456");
        let sex_label = if number.as_bytes()[16] % 2 == 1 { "男" } else { "女" };
        let ls = lines(&[
            "中华人民共和国机动车驾驶证",
            "Driving License of the People's Republic of China",
            &format!("证号 License No. {number}"),
            "姓名 Name",
            "李华",
            &format!("性别 Sex {sex_label}"),
            "国籍 Nationality 中国",
            "住址 Address 江苏省南京市玄武区",
            "出生日期 Date of Birth 1988-08-08",
            "初次领证日期 Date of First Issue 2008-1O-0l",
            "准驾车型 Class CIE",
            "有效起始日期 Valid From 2018-10-01",
            "有效期限 Valid For 10年",
        ]);
        let dl = parse_driver_licence(&ls);
        assert_eq!(dl.licence_number.value.as_deref(), Some(number.as_str()));
        assert_eq!(dl.name.value.as_deref(), Some("李华"));
        assert_eq!(dl.address.value.as_deref(), Some("江苏省南京市玄武区"));
        assert_eq!(dl.first_issue_date.value, Some(date(2008, 10, 1)));
        assert_eq!(dl.first_issue_date.status, FieldStatus::Corrected);
        assert_eq!(dl.class.value.as_deref(), Some("C1E"));
        assert_eq!(dl.class.status, FieldStatus::Corrected);
        let v = dl.validity.value.unwrap();
        assert_eq!((v.start, v.end, v.long_term), (date(2018, 10, 1), Some(date(2028, 10, 1)), false));
        assert!(dl.issues.is_empty(), "{:?}", dl.issues);
    }

    #[test]
    fn long_term_and_invalid_periods() {
        let dl = parse_driver_licence(&lines(&["有效起始日期 2020-01-15", "有效期限 长期"]));
        let v = dl.validity.value.unwrap();
        assert!(v.long_term && v.end.is_none());
        let dl = parse_driver_licence(&lines(&["有效期限 2015-03-01至长期"]));
        assert!(dl.validity.value.unwrap().long_term);
        let dl = parse_driver_licence(&lines(&["有效起始日期 2020-01-15", "有效期限 7年"]));
        assert_eq!(dl.validity.status, FieldStatus::Unreadable);
        let dl = parse_driver_licence(&lines(&["有效期限 2016-05-20 至 2027-05-20"]));
        assert_eq!(dl.validity.status, FieldStatus::Unreadable);
        let dl = parse_driver_licence(&lines(&["有效期限 6年"]));
        assert_eq!(dl.validity.status, FieldStatus::Unreadable);
        assert_eq!(parse_driver_licence(&lines(&["姓名张三"])).validity.status, FieldStatus::Missing);
    }

    #[test]
    fn licence_number_misread_and_mismatch() {
        let number = with_check("11010819900307123");
        // One digit wrong: unreadable, never a wrong number.
        let wrong = format!("{}9{}", &number[..5], &number[6..]);
        let dl = parse_driver_licence(&lines(&[&format!("证号{wrong}"), "出生日期1990-03-07"]));
        assert_eq!(dl.licence_number.status, FieldStatus::Unreadable);
        assert_eq!(dl.licence_number.value, None);
        // Valid number, different printed birth date: both unreadable.
        let dl = parse_driver_licence(&lines(&[&format!("证号{number}"), "出生日期1990-03-17"]));
        assert_eq!(dl.issues, vec![Issue::BirthDateMismatch]);
        assert_eq!(dl.licence_number.status, FieldStatus::Unreadable);
        assert_eq!(dl.birth_date.status, FieldStatus::Unreadable);
    }

    #[test]
    fn a_stray_character_apart_from_the_number_is_left_out() {
        // Benchmark clean #138 and #173: a character read after the label, apart from the number.
        for row in ["证号 License No、2 210102196312276570", "证号License No.3 310115196304223810"] {
            let number = row.rsplit(' ').next().unwrap_or_default();
            let dl = parse_driver_licence(&lines(&[row]));
            assert_eq!(dl.licence_number.value.as_deref(), Some(number), "{row}");
        }
        // Glued to it, the extra digit makes no valid number: unreadable, not guessed.
        let dl = parse_driver_licence(&lines(&["证号 License No 2210102196312276570"]));
        assert_eq!(dl.licence_number.value, None);
    }

    #[test]
    fn a_class_letter_read_small_is_a_class() {
        // Benchmark clean #2.
        let dl = parse_driver_licence(&lines(&["准驾车型 c1"]));
        assert_eq!(dl.class.value.as_deref(), Some("C1"));
        let dl = parse_driver_licence(&lines(&["准驾车型 ciass C1"]));
        assert_eq!(dl.class.value.as_deref(), Some("C1"));
    }

    #[test]
    fn nationality_not_read_is_derived_from_a_mainland_citizen_id_number() {
        let number = with_check("11010819900307123");
        let dl = parse_driver_licence(&lines(&[&format!("证号{number}"), "姓名张三"]));
        assert_eq!(dl.nationality.value.as_deref(), Some("中国"));
        assert_eq!(dl.nationality.status, FieldStatus::Derived);
        // A Hong Kong resident's permit number (region 81) says nothing about nationality.
        let permit = with_check("81000019900307123");
        let dl = parse_driver_licence(&lines(&[&format!("证号{permit}")]));
        assert_eq!((dl.nationality.value, dl.nationality.status), (None, FieldStatus::Missing));
        // A number that failed its check derives nothing.
        let wrong = format!("{}9{}", &number[..5], &number[6..]);
        let dl = parse_driver_licence(&lines(&[&format!("证号{wrong}")]));
        assert_eq!(dl.nationality.value, None);
        // A nationality read stays as read.
        let dl = parse_driver_licence(&lines(&[&format!("证号{number}"), "国籍 中国"]));
        assert_eq!(dl.nationality.status, FieldStatus::Valid);
    }

    #[test]
    fn foreign_holder() {
        let dl = parse_driver_licence(&lines(&["证号 E12345678", "姓名 JOHNSMITH", "国籍 USA", "准驾车型 C1"]));
        assert_eq!(dl.licence_number.value.as_deref(), Some("E12345678"));
        assert_eq!(dl.name.value.as_deref(), Some("JOHNSMITH"));
        assert_eq!(dl.nationality.value.as_deref(), Some("USA"));
        // A Chinese national's number must be an ID number.
        let dl = parse_driver_licence(&lines(&["证号 E12345678", "国籍 中国"]));
        assert_eq!(dl.licence_number.status, FieldStatus::Unreadable);
    }
}
