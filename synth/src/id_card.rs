//! China resident identity card (居民身份证), both sides, 856 x 540 (85.6 x 54 mm at 10 px/mm).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use faceplate_documents::china_id::id_check_char;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_circle_mut, draw_polygon_mut};
use imageproc::point::Point;

use crate::draw::{self, Fonts, gradient, guilloche, photo, spaced_on, text_on};
use crate::pools::{GIVEN_FEMALE, GIVEN_MALE, REGIONS, Region, STREETS, SURNAMES};
use crate::random::Rand;
use crate::scene::with_round_corners;
use crate::{Flat, fields};

pub(crate) const CARD: (u32, u32) = (856, 540);

const LABEL: [u8; 3] = [40, 105, 165];
const INK: [u8; 3] = [18, 18, 22];

pub(crate) fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// A Chinese citizen: the data printed on the ID card and the driving licence, all consistent with the number.
pub(crate) struct Person {
    pub name: String,
    pub male: bool,
    pub ethnicity: &'static str,
    pub birth: NaiveDate,
    pub address: String,
    pub id_number: String,
}

/// Surname and one or two given characters.
pub(crate) fn chinese_name(rng: &mut Rand, male: bool) -> String {
    let pool = if male { GIVEN_MALE } else { GIVEN_FEMALE };
    let mut name = rng.pick(SURNAMES).to_string();
    let given = if rng.chance(0.7) { 2 } else { 1 };
    for _ in 0..given {
        name.push_str(rng.pick(pool));
    }
    name
}

/// Display width in em: Chinese characters are full-width, digits and Latin half-width.
pub(crate) fn em_width(s: &str) -> f32 {
    s.chars().map(|c| if c.is_ascii() { 0.5 } else { 1.0 }).sum()
}

/// Splits `s` into lines of at most `max_em` em.
pub(crate) fn wrap(s: &str, max_em: f32) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut used = 0.0;
    for c in s.chars() {
        let w = if c.is_ascii() { 0.5 } else { 1.0 };
        if used + w > max_em {
            lines.push(String::new());
            used = 0.0;
        }
        used += w;
        if let Some(line) = lines.last_mut() {
            line.push(c);
        }
    }
    lines
}

/// Region, street and house number, with sometimes a building and flat; at most `max_em` wide.
pub(crate) fn address(rng: &mut Rand, region: &Region, max_em: f32) -> String {
    let base = format!("{}{}{}号", region.address_prefix(), rng.pick(STREETS), rng.range(1..=399));
    let tail = match rng.range(0..4) {
        0 => format!("{}号楼{}单元{}室", rng.range(1..=30), rng.range(1..=6), rng.range(101..=2404)),
        1 => format!("{}栋{}室", rng.range(1..=40), rng.range(101..=1806)),
        2 => format!("{}号院", rng.range(1..=20)),
        _ => String::new(),
    };
    let full = format!("{base}{tail}");
    if em_width(&full) <= max_em { full } else { base }
}

/// The 18-character number: region, birth date, sequence (odd last digit for men), MOD 11-2 check.
pub(crate) fn id_number(rng: &mut Rand, region: &Region, birth: NaiveDate, male: bool) -> String {
    let parity = if male { rng.range(0..5u32) * 2 + 1 } else { rng.range(0..5u32) * 2 };
    let first17 = format!("{}{}{}{}", region.code, birth.format("%Y%m%d"), rng.digits(2), parity);
    let check = id_check_char(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

impl Person {
    pub fn random(rng: &mut Rand, born_from: NaiveDate, born_to: NaiveDate, address_em: f32) -> Person {
        let male = rng.chance(0.5);
        let ethnicity = rng.weighted(&[
            ("汉", 85),
            ("回", 2),
            ("满", 2),
            ("壮", 2),
            ("苗", 1),
            ("维吾尔", 2),
            ("藏", 1),
            ("蒙古", 2),
            ("土家", 1),
            ("朝鲜", 1),
            ("彝", 1),
        ]);
        let region = rng.pick_ref(REGIONS);
        let birth = rng.date(born_from, born_to);
        Person {
            name: chinese_name(rng, male),
            male,
            ethnicity,
            birth,
            address: address(rng, region, address_em),
            id_number: id_number(rng, region, birth, male),
        }
    }

    pub fn sex(&self) -> &'static str {
        if self.male { "男" } else { "女" }
    }

    /// The ID card front's truth.
    fn front_fields(&self) -> BTreeMap<String, String> {
        fields([
            ("name", self.name.clone()),
            ("sex", self.sex().to_string()),
            ("ethnicity", self.ethnicity.to_string()),
            ("birth_date", self.birth.format("%Y-%m-%d").to_string()),
            ("address", self.address.clone()),
            ("id_number", self.id_number.clone()),
        ])
    }
}

/// A card holder: born 1950-2008, address at most two lines of 11 characters.
fn front_person(rng: &mut Rand) -> Person {
    Person::random(rng, ymd(1950, 1, 1), ymd(2008, 12, 31), 21.5)
}

/// The pale security background both sides share.
fn background(rng: &mut Rand) -> RgbImage {
    let mut card = RgbImage::new(CARD.0, CARD.1);
    let blue = [rng.range(222..=232u8), rng.range(233..=241u8), rng.range(240..=248u8)];
    let beige = [rng.range(243..=249u8), rng.range(236..=242u8), rng.range(218..=228u8)];
    gradient(&mut card, blue, beige, rng.f32(-0.4, 0.4));
    let line = draw::lerp(blue, [150, 180, 210], 0.35);
    guilloche(&mut card, line, rng);
    card
}

/// The photo side.
pub(crate) fn front(fonts: &Fonts, rng: &mut Rand) -> Flat {
    let person = front_person(rng);
    let mut card = background(rng);
    let (cjk, label_size, value_size) = (&fonts.cjk, 26.0, 30.0);
    let label = |card: &mut RgbImage, x: f32, y: f32, s: &str| spaced_on(card, cjk, label_size, (x, y), LABEL, s, 14.0);
    let value_x = 170.0;

    label(&mut card, 55.0, 82.0, "姓名");
    text_on(&mut card, cjk, value_size, (value_x, 82.0), INK, &person.name);

    label(&mut card, 55.0, 150.0, "性别");
    text_on(&mut card, cjk, value_size, (value_x, 150.0), INK, person.sex());
    label(&mut card, 275.0, 150.0, "民族");
    text_on(&mut card, cjk, value_size, (390.0, 150.0), INK, person.ethnicity);

    label(&mut card, 55.0, 218.0, "出生");
    let b = person.birth;
    let mut x = value_x;
    for (number, unit) in [(b.year().to_string(), "年"), (b.month().to_string(), "月"), (b.day().to_string(), "日")]
    {
        x = text_on(&mut card, cjk, value_size, (x, 218.0), INK, &number) + 10.0;
        x = text_on(&mut card, cjk, label_size, (x, 218.0), LABEL, unit) + 16.0;
    }

    label(&mut card, 55.0, 286.0, "住址");
    for (i, line) in wrap(&person.address, 11.0).iter().enumerate() {
        text_on(&mut card, cjk, value_size, (value_x, 286.0 + 46.0 * i as f32), INK, line);
    }

    text_on(&mut card, cjk, label_size, (55.0, 468.0), LABEL, "公民身份号码");
    spaced_on(&mut card, &fonts.mono_bold, 34.0, (290.0, 470.0), INK, &person.id_number, 3.0);

    photo(&mut card, (590.0, 60.0, 215.0, 270.0), rng);
    Flat { image: with_round_corners(&card, 28.0), fields: person.front_fields() }
}

/// A five-pointed star centred at `(cx, cy)`.
fn star(img: &mut RgbImage, (cx, cy): (f32, f32), r: f32, rotation: f32, colour: [u8; 3]) {
    let points: Vec<Point<i32>> = (0..10)
        .map(|i| {
            let radius = if i % 2 == 0 { r } else { r * 0.4 };
            let a = rotation - std::f32::consts::FRAC_PI_2 + i as f32 * std::f32::consts::PI / 5.0;
            Point::new((cx + radius * a.cos()).round() as i32, (cy + radius * a.sin()).round() as i32)
        })
        .collect();
    draw_polygon_mut(img, &points, Rgb(colour));
}

/// What the emblem side says.
struct Back {
    authority: String,
    from: NaiveDate,
    /// `None`: long-term (长期).
    until: Option<NaiveDate>,
}

impl Back {
    fn random(rng: &mut Rand) -> Back {
        let region = rng.pick_ref(REGIONS);
        let from = rng.date(ymd(2006, 1, 1), ymd(2025, 12, 31));
        // The 29th of February has no anniversary (the parser expects the 28th): avoid it.
        let from = if from.month() == 2 && from.day() == 29 { ymd(from.year(), 2, 28) } else { from };
        let years = rng.weighted(&[(5, 10), (10, 35), (20, 35), (0, 20)]);
        let until = (years > 0).then(|| ymd(from.year() + years, from.month(), from.day()));
        Back { authority: region.authority(), from, until }
    }

    /// `2015.03.01-2035.03.01` or `2015.03.01-长期`.
    fn period(&self) -> String {
        let end = self.until.map_or_else(|| "长期".to_string(), |u| u.format("%Y.%m.%d").to_string());
        format!("{}-{end}", self.from.format("%Y.%m.%d"))
    }

    fn fields(&self) -> BTreeMap<String, String> {
        fields([
            ("issuing_authority", self.authority.clone()),
            ("valid_from", self.from.format("%Y-%m-%d").to_string()),
            ("valid_until", self.until.map_or_else(|| "long_term".to_string(), |u| u.format("%Y-%m-%d").to_string())),
        ])
    }
}

/// The emblem side.
pub(crate) fn back(fonts: &Fonts, rng: &mut Rand) -> Flat {
    let content = Back::random(rng);
    let mut card = background(rng);
    // The national emblem, simplified: a red disc with gold stars in a gold ring.
    let (ex, ey) = (120.0, 130.0);
    draw_filled_circle_mut(&mut card, (ex as i32, ey as i32), 78, Rgb([200, 30, 35]));
    for r in [78, 77, 72] {
        draw_hollow_circle_mut(&mut card, (ex as i32, ey as i32), r, Rgb([220, 170, 40]));
    }
    star(&mut card, (ex - 22.0, ey - 18.0), 24.0, 0.0, [245, 200, 40]);
    for (i, (dx, dy)) in [(14.0, -46.0), (32.0, -28.0), (34.0, -2.0), (18.0, 18.0)].iter().enumerate() {
        star(&mut card, (ex + dx, ey + dy), 8.0, 0.3 * i as f32, [245, 200, 40]);
    }
    let red = [170, 20, 30];
    spaced_on(&mut card, &fonts.cjk, 40.0, (250.0, 110.0), INK, "中华人民共和国", 10.0);
    // No bold face in the collection: draw twice, one pixel apart.
    for dx in [0.0, 1.2] {
        spaced_on(&mut card, &fonts.cjk, 66.0, (250.0 + dx, 210.0), red, "居民身份证", 24.0);
    }
    let label = |card: &mut RgbImage, y: f32, s: &str| spaced_on(card, &fonts.cjk, 26.0, (150.0, y), LABEL, s, 4.0);
    label(&mut card, 405.0, "签发机关");
    text_on(&mut card, &fonts.cjk, 29.0, (300.0, 405.0), INK, &content.authority);
    label(&mut card, 468.0, "有效期限");
    text_on(&mut card, &fonts.cjk, 29.0, (300.0, 468.0), INK, &content.period());
    Flat { image: with_round_corners(&card, 28.0), fields: content.fields() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, content_rng};
    use faceplate_documents::china_id::{parse_id_card, validate_id_number};
    use faceplate_documents::{Sex, TextLine};

    pub(crate) fn lines(texts: &[String]) -> Vec<TextLine> {
        texts.iter().map(|t| TextLine::new(t.as_str(), 0.99)).collect()
    }

    fn sex(s: Option<Sex>) -> &'static str {
        match s {
            Some(Sex::Male) => "男",
            Some(Sex::Female) => "女",
            _ => "?",
        }
    }

    /// What a perfect OCR reads off the rendered front (each printed line), parsed, gives the truth.
    #[test]
    fn fronts_parse_to_their_truth() {
        for i in 0..300 {
            let p = front_person(&mut content_rng(Kind::IdFront, 9, i));
            let truth = p.front_fields();
            let b = p.birth;
            let address = wrap(&p.address, 11.0);
            assert!(address.len() <= 2, "{address:?}");
            let mut printed = vec![
                format!("姓 名 {}", p.name),
                format!("性 别 {}  民 族 {}", p.sex(), p.ethnicity),
                format!("出 生 {} 年 {} 月 {} 日", b.year(), b.month(), b.day()),
                format!("住 址 {}", address[0]),
            ];
            printed.extend(address[1..].iter().cloned());
            printed.push(format!("公民身份号码 {}", p.id_number));
            let card = parse_id_card(&lines(&printed));
            let f = card.front.unwrap();
            assert!(f.issues.is_empty(), "{printed:?}");
            assert_eq!(f.name.value.as_deref(), Some(truth["name"].as_str()));
            assert_eq!(sex(f.sex.value), truth["sex"]);
            assert_eq!(f.ethnicity.value.as_deref(), Some(truth["ethnicity"].as_str()));
            assert_eq!(
                f.birth_date.value.map(|d| d.format("%Y-%m-%d").to_string()).as_ref(),
                Some(&truth["birth_date"])
            );
            assert_eq!(f.address.value.as_deref(), Some(truth["address"].as_str()), "{printed:?}");
            assert_eq!(f.id_number.value.map(|n| n.number).as_ref(), Some(&truth["id_number"]));
            let id = validate_id_number(&truth["id_number"]).unwrap();
            assert_eq!(id.birth_date, p.birth);
        }
    }

    #[test]
    fn backs_parse_to_their_truth() {
        let mut long_term = 0;
        for i in 0..300 {
            let back = Back::random(&mut content_rng(Kind::IdBack, 9, i));
            let truth = back.fields();
            let printed = [format!("签发机关 {}", back.authority), format!("有效期限 {}", back.period())];
            let b = parse_id_card(&lines(&printed)).back.unwrap();
            assert_eq!(b.issuing_authority.value.as_deref(), Some(truth["issuing_authority"].as_str()));
            let v = b.validity.value.unwrap();
            assert_eq!(v.start.format("%Y-%m-%d").to_string(), truth["valid_from"]);
            match v.end {
                Some(end) => assert_eq!(end.format("%Y-%m-%d").to_string(), truth["valid_until"]),
                None => {
                    assert_eq!(truth["valid_until"], "long_term");
                    long_term += 1;
                }
            }
        }
        assert!(long_term > 20);
    }

    #[test]
    fn addresses_wrap_into_at_most_two_lines() {
        assert_eq!(wrap("北京市东城区景山前街4号", 11.0), ["北京市东城区景山前街4", "号"]);
        assert_eq!(em_width("景山前街4号"), 5.5);
    }
}
