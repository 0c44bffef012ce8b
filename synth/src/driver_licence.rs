//! China motor vehicle driving licence (中华人民共和国机动车驾驶证), main page, 880 x 600.
//!
//! Printed as the parser reads it: `证号` followed by the holder's citizen ID number, dates as `YYYY-MM-DD`, and
//! the validity as `有效期限 2016-05-20 至 2026-05-20` (6 years from the first licence, then 10, then `至长期`).
//! Half the licences carry the English sub-labels of the bilingual layout (`姓名 Name`), in the exact words the
//! parser knows.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_circle_mut};

use crate::draw::{Fonts, frame, gradient, guilloche, lerp, photo, rect, text_on, width};
use crate::id_card::{Person, wrap, ymd};
use crate::random::Rand;
use crate::scene::with_round_corners;
use crate::{Flat, fields};

const PAGE: (u32, u32) = (880, 600);

/// Class codes and how often they are issued.
const CLASSES: &[(&str, u32)] =
    &[("C1", 55), ("C2", 15), ("B2", 8), ("A1", 4), ("A2", 4), ("B1", 3), ("C1E", 4), ("A2E", 2), ("C1D", 2), ("D", 3)];

/// `date` plus `years`, the 29th of February falling back to the 28th (as the parser's rule).
fn add_years(date: NaiveDate, years: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(date.year() + years, date.month(), date.day())
        .unwrap_or_else(|| ymd(date.year() + years, date.month(), 28))
}

/// What the licence says.
struct Licence {
    person: Person,
    first: NaiveDate,
    /// Start of the current validity period.
    from: NaiveDate,
    /// `None`: long-term.
    until: Option<NaiveDate>,
    class: &'static str,
    /// With the English sub-labels.
    bilingual: bool,
}

impl Licence {
    fn random(rng: &mut Rand) -> Licence {
        let person = Person::random(rng, ymd(1955, 1, 1), ymd(2005, 12, 31), 30.0);
        // First licence at 18-40, no later than 2025.
        let earliest = add_years(person.birth, 18).max(ymd(1990, 1, 1));
        let latest = add_years(person.birth, 40).min(ymd(2025, 12, 31)).max(earliest);
        let first = rng.date(earliest, latest);
        let first = if first.month() == 2 && first.day() == 29 { ymd(first.year(), 2, 28) } else { first };
        // Renewals: 6 years, then 10, then long-term; the current period is the latest one started by 2025.
        let mut from = first;
        let mut years = Some(6);
        for next in [Some(10), None] {
            let Some(y) = years else { break };
            let renewal = add_years(from, y);
            if renewal > ymd(2025, 12, 31) || rng.chance(0.15) {
                break;
            }
            from = renewal;
            years = next;
        }
        Licence {
            person,
            first,
            from,
            until: years.map(|y| add_years(from, y)),
            class: rng.weighted(CLASSES),
            bilingual: rng.chance(0.5),
        }
    }

    /// `2016-05-20 至 2026-05-20` or `2016-05-20 至 长期`.
    fn period(&self) -> String {
        let end = self.until.map_or_else(|| "长期".to_string(), |u| u.format("%Y-%m-%d").to_string());
        format!("{} 至 {end}", self.from.format("%Y-%m-%d"))
    }

    fn fields(&self) -> BTreeMap<String, String> {
        let p = &self.person;
        fields([
            ("licence_number", p.id_number.clone()),
            ("name", p.name.clone()),
            ("sex", p.sex().to_string()),
            ("nationality", "中国".to_string()),
            ("address", p.address.clone()),
            ("birth_date", p.birth.format("%Y-%m-%d").to_string()),
            ("first_issue_date", self.first.format("%Y-%m-%d").to_string()),
            ("class", self.class.to_string()),
            ("valid_from", self.from.format("%Y-%m-%d").to_string()),
            ("valid_until", self.until.map_or_else(|| "long_term".to_string(), |u| u.format("%Y-%m-%d").to_string())),
        ])
    }
}

/// Characters per address line: the column ends before the photo.
const ADDRESS_EM: f32 = 15.5;

pub(crate) fn licence(fonts: &Fonts, rng: &mut Rand) -> Flat {
    let content = Licence::random(rng);
    let Licence { person, first, class, bilingual, .. } = &content;
    let bilingual = *bilingual;
    let mut page = RgbImage::new(PAGE.0, PAGE.1);
    let tint = rng.pick(&[[238u8, 244, 236], [244, 240, 246], [236, 242, 248], [246, 244, 236]]);
    gradient(&mut page, tint, lerp(tint, [252, 252, 250], 0.7), rng.f32(-0.6, 0.6));
    guilloche(&mut page, lerp(tint, [140, 170, 150], 0.25), rng);
    let ink = [20, 20, 26];
    let line = [90, 110, 100];
    let label_colour = [35, 45, 60];

    let title = "中华人民共和国机动车驾驶证";
    let tw = width(&fonts.cjk, 36.0, title);
    text_on(&mut page, &fonts.cjk, 36.0, ((PAGE.0 as f32 - tw) / 2.0, 58.0), ink, title);
    if bilingual {
        let sub = "Driving License of the People's Republic of China";
        let sw = width(&fonts.sans, 16.0, sub);
        text_on(&mut page, &fonts.sans, 16.0, ((PAGE.0 as f32 - sw) / 2.0, 86.0), ink, sub);
    }
    let (left, top, right) = (30.0, 100.0, PAGE.0 as f32 - 30.0);
    frame(&mut page, (left, top, right - left, PAGE.1 as f32 - 20.0 - top), 2.0, line);

    // Rows of label (and English sub-label) then value, on a common baseline.
    let row_h = 58.0;
    let baseline = |i: f32| top + 40.0 + row_h * i;
    let label = |page: &mut RgbImage, x: f32, y: f32, cn: &str, en: &str| -> f32 {
        let end = text_on(page, &fonts.cjk, 24.0, (x, y), label_colour, cn);
        if bilingual && !en.is_empty() {
            text_on(page, &fonts.sans, 15.0, (end + 6.0, y), label_colour, en)
        } else {
            end
        }
    };
    let value = |page: &mut RgbImage, x: f32, y: f32, s: &str| text_on(page, &fonts.cjk, 27.0, (x, y), ink, s);

    let col = 150.0;
    let y = baseline(0.0);
    let end = label(&mut page, left + 14.0, y, "证号", "License No.");
    value(&mut page, (end + 14.0).max(col + 60.0), y, &person.id_number);

    let y = baseline(1.0);
    let end = label(&mut page, left + 14.0, y, "姓名", "Name");
    value(&mut page, (end + 14.0).max(col), y, &person.name);
    let end = label(&mut page, 330.0, y, "性别", "Sex");
    value(&mut page, (end + 14.0).max(410.0), y, person.sex());
    let end = label(&mut page, 470.0, y, "国籍", "Nationality");
    value(&mut page, (end + 14.0).max(550.0), y, "中国");

    let y = baseline(2.0);
    let end = label(&mut page, left + 14.0, y, "住址", "Address");
    // The address column ends before the photo.
    let lines = wrap(&person.address, ADDRESS_EM);
    for (i, l) in lines.iter().enumerate() {
        value(&mut page, (end + 14.0).max(col), y + 40.0 * i as f32, l);
    }
    let extra = 40.0 * (lines.len().max(1) - 1) as f32;

    let rows: [(&str, &str, String); 4] = [
        ("出生日期", "Date of Birth", person.birth.format("%Y-%m-%d").to_string()),
        ("初次领证日期", "Date of First Issue", first.format("%Y-%m-%d").to_string()),
        ("准驾车型", "Class", class.to_string()),
        ("有效期限", "Valid Period", content.period()),
    ];
    for (i, (cn, en, v)) in rows.iter().enumerate() {
        let y = baseline(3.0 + i as f32) + extra;
        let end = label(&mut page, left + 14.0, y, cn, en);
        value(&mut page, (end + 16.0).max(col + 100.0), y, v);
        rect(&mut page, (left, y - 44.0, 560.0, 1.0), lerp(line, tint, 0.5));
    }

    photo(&mut page, (640.0, 230.0, 190.0, 240.0), rng);
    // The issuing office's seal, without its (illegible) ring text.
    let seal = Rgb([200, 40, 45]);
    let (sx, sy) = (735, 520);
    for r in [52, 51, 50, 46] {
        draw_hollow_circle_mut(&mut page, (sx, sy), r, seal);
    }
    draw_filled_circle_mut(&mut page, (sx, sy), 12, seal);

    Flat { image: with_round_corners(&page, 10.0), fields: content.fields() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id_card::em_width;
    use crate::{Kind, content_rng};
    use faceplate_documents::driver_licence::parse_driver_licence;
    use faceplate_documents::{Sex, TextLine};

    /// The printed rows, read line by line by a perfect OCR, parse to the truth.
    #[test]
    fn licences_parse_to_their_truth() {
        let mut long_term = 0;
        for i in 0..300 {
            let l = Licence::random(&mut content_rng(Kind::DriverLicence, 4, i));
            let truth = l.fields();
            let p = &l.person;
            let en = |s: &str| if l.bilingual { format!(" {s} ") } else { " ".to_string() };
            let address = wrap(&p.address, ADDRESS_EM);
            assert!(address.len() <= 2 && em_width(&p.address) <= 31.0, "{address:?}");
            let mut printed = vec![
                "中华人民共和国机动车驾驶证".to_string(),
                format!("证号{}{}", en("License No."), p.id_number),
                format!("姓名{}{} 性别{}{} 国籍{}中国", en("Name"), p.name, en("Sex"), p.sex(), en("Nationality")),
                format!("住址{}{}", en("Address"), address[0]),
            ];
            printed.extend(address[1..].iter().cloned());
            printed.push(format!("出生日期{}{}", en("Date of Birth"), p.birth.format("%Y-%m-%d")));
            printed.push(format!("初次领证日期{}{}", en("Date of First Issue"), l.first.format("%Y-%m-%d")));
            printed.push(format!("准驾车型{}{}", en("Class"), l.class));
            printed.push(format!("有效期限{}{}", en("Valid Period"), l.period()));
            let lines: Vec<TextLine> = printed.iter().map(|t| TextLine::new(t.as_str(), 0.99)).collect();
            let dl = parse_driver_licence(&lines);
            assert!(dl.issues.is_empty(), "{printed:?}");
            let date = |d: Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string());
            assert_eq!(dl.licence_number.value.as_ref(), Some(&truth["licence_number"]), "{printed:?}");
            assert_eq!(dl.name.value.as_ref(), Some(&truth["name"]), "{printed:?}");
            let sex = match dl.sex.value {
                Some(Sex::Male) => "男",
                Some(Sex::Female) => "女",
                _ => "?",
            };
            assert_eq!(sex, truth["sex"]);
            assert_eq!(dl.nationality.value.as_ref(), Some(&truth["nationality"]));
            assert_eq!(dl.address.value.as_ref(), Some(&truth["address"]), "{printed:?}");
            assert_eq!(date(dl.birth_date.value).as_ref(), Some(&truth["birth_date"]));
            assert_eq!(date(dl.first_issue_date.value).as_ref(), Some(&truth["first_issue_date"]));
            assert_eq!(dl.class.value.as_ref(), Some(&truth["class"]));
            let v = dl.validity.value.unwrap();
            assert_eq!(v.start.format("%Y-%m-%d").to_string(), truth["valid_from"]);
            match v.end {
                Some(end) => assert_eq!(end.format("%Y-%m-%d").to_string(), truth["valid_until"]),
                None => {
                    assert_eq!(truth["valid_until"], "long_term");
                    long_term += 1;
                }
            }
            assert!(l.first >= add_years(p.birth, 18) && l.from <= ymd(2025, 12, 31));
        }
        assert!(long_term > 10, "{long_term}");
    }
}
