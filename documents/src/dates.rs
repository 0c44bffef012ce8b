//! Reading printed dates (`1990年1月1日`, `2015.03.01`, `2016-05-20`, `20150301`) and the `长期` (long-term)
//! marker out of OCR text, with digit confusions fixed.

use chrono::NaiveDate;

use crate::text::digit_for;

/// A date read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateRead {
    /// `None` when the numbers do not form a real calendar date.
    pub date: Option<NaiveDate>,
    /// A confusable letter was read as a digit.
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Date(DateRead),
    /// `长期`: no end date.
    LongTerm,
}

struct Group {
    digits: String,
    changed: bool,
    start: usize,
}

/// Numeric groups: maximal runs of digits and digit-confusable characters that contain at least one real digit.
fn groups(chars: &[char]) -> Vec<Group> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if digit_for(chars[i]).is_none() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        let mut changed = false;
        let mut real = false;
        while let Some(d) = chars.get(i).and_then(|c| digit_for(*c)) {
            real |= chars[i].is_ascii_digit();
            changed |= d != chars[i];
            digits.push(d);
            i += 1;
        }
        if real {
            out.push(Group { digits, changed, start });
        }
    }
    out
}

fn make(y: &str, m: &str, d: &str, changed: bool) -> DateRead {
    let date = match (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) {
        (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
        _ => None,
    };
    DateRead { date, changed }
}

/// Dates and `长期` markers in reading order.
pub(crate) fn scan(text: &str) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let gs = groups(&chars);
    let mut found: Vec<(usize, Piece)> = Vec::new();
    let mut i = 0;
    while i < gs.len() {
        let g = &gs[i];
        match g.digits.len() {
            8 => {
                found.push((g.start, Piece::Date(make(&g.digits[..4], &g.digits[4..6], &g.digits[6..], g.changed))));
                i += 1;
            }
            16 => {
                let (a, b) = g.digits.split_at(8);
                found.push((g.start, Piece::Date(make(&a[..4], &a[4..6], &a[6..], g.changed))));
                found.push((g.start + 8, Piece::Date(make(&b[..4], &b[4..6], &b[6..], g.changed))));
                i += 1;
            }
            4 if gs.get(i + 2).is_some_and(|_| {
                (1..=2).contains(&gs[i + 1].digits.len()) && (1..=2).contains(&gs[i + 2].digits.len())
            }) =>
            {
                let (m, d) = (&gs[i + 1], &gs[i + 2]);
                let changed = g.changed || m.changed || d.changed;
                found.push((g.start, Piece::Date(make(&g.digits, &m.digits, &d.digits, changed))));
                i += 3;
            }
            _ => i += 1,
        }
    }
    let mut from = 0;
    while let Some(pos) = text[from..].find("长期") {
        let char_pos = text[..from + pos].chars().count();
        found.push((char_pos, Piece::LongTerm));
        from += pos + "长期".len();
    }
    found.sort_by_key(|(pos, _)| *pos);
    found.into_iter().map(|(_, p)| p).collect()
}

/// The first date in `text`.
pub(crate) fn first_date(text: &str) -> Option<DateRead> {
    scan(text).into_iter().find_map(|p| match p {
        Piece::Date(d) => Some(d),
        Piece::LongTerm => None,
    })
}

/// `date` plus `years` calendar years; 29 February becomes 28 February in a common year.
pub(crate) fn add_years(date: NaiveDate, years: i32) -> Option<NaiveDate> {
    use chrono::Datelike;
    let y = date.year() + years;
    NaiveDate::from_ymd_opt(y, date.month(), date.day()).or_else(|| NaiveDate::from_ymd_opt(y, date.month(), 28))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }

    #[test]
    fn chinese_and_dotted_and_compact_dates() {
        assert_eq!(first_date("1990年1月1日").unwrap().date, d(1990, 1, 1));
        assert_eq!(first_date("出生1985年12月31日").unwrap().date, d(1985, 12, 31));
        assert_eq!(first_date("2016-05-20").unwrap().date, d(2016, 5, 20));
        assert_eq!(first_date("20160520").unwrap().date, d(2016, 5, 20));
        let r = first_date("2O16.O5.2O").unwrap();
        assert_eq!(r.date, d(2016, 5, 20));
        assert!(r.changed);
    }

    #[test]
    fn impossible_dates_have_no_value() {
        assert_eq!(first_date("1990年2月30日").unwrap().date, None);
        assert_eq!(first_date("19901301").unwrap().date, None);
    }

    #[test]
    fn periods_and_long_term() {
        let p = scan("2015.03.01-2035.03.01");
        assert_eq!(p.len(), 2);
        assert_eq!(p[1], Piece::Date(DateRead { date: d(2035, 3, 1), changed: false }));
        assert_eq!(scan("2015.03.01一长期")[1], Piece::LongTerm);
        assert_eq!(scan("2015030120350301").len(), 2);
        assert_eq!(add_years(NaiveDate::from_ymd_opt(2016, 2, 29).unwrap(), 10), d(2026, 2, 28));
    }
}
