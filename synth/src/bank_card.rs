//! Payment card fronts, 856 x 540: network-correct, Luhn-valid numbers, expiry and an embossed-looking holder
//! name.

use std::collections::BTreeMap;

use faceplate_documents::bank_card::luhn_valid;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_ellipse_mut, draw_polygon_mut};
use imageproc::point::Point;

use crate::draw::{Fonts, gradient, lerp, rect, spaced_on, text_on, width};
use crate::pools::{LATIN_GIVEN_FEMALE, LATIN_GIVEN_MALE, LATIN_SURNAMES, PINYIN_GIVEN, PINYIN_SURNAMES};
use crate::random::Rand;
use crate::scene::with_round_corners;
use crate::{Flat, fields};

const CARD: (u32, u32) = (856, 540);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    Visa,
    Mastercard,
    UnionPay,
    Amex,
    Jcb,
    Discover,
}

impl Network {
    /// As `faceplate_documents::bank_card::CardNetwork` serialises.
    fn name(self) -> &'static str {
        match self {
            Network::Visa => "visa",
            Network::Mastercard => "mastercard",
            Network::UnionPay => "union_pay",
            Network::Amex => "amex",
            Network::Jcb => "jcb",
            Network::Discover => "discover",
        }
    }
}

/// A number of the network's length and IIN range, completed with its Luhn digit.
fn card_number(network: Network, rng: &mut Rand) -> String {
    let (prefix, len) = match network {
        Network::Visa => ("4".to_string(), 16),
        Network::Mastercard if rng.chance(0.7) => (rng.range(51..=55).to_string(), 16),
        Network::Mastercard => (rng.range(2221..=2720).to_string(), 16),
        Network::UnionPay => ("62".to_string(), 16),
        Network::Amex => (if rng.chance(0.5) { "34" } else { "37" }.to_string(), 15),
        Network::Jcb => (rng.range(3528..=3589).to_string(), 16),
        Network::Discover => (if rng.chance(0.5) { "6011" } else { "65" }.to_string(), 16),
    };
    let body = format!("{prefix}{}", rng.digits(len - 1 - prefix.len()));
    let check = (b'0'..=b'9').map(char::from).find(|d| luhn_valid(&format!("{body}{d}"))).unwrap_or('0');
    format!("{body}{check}")
}

/// 4-4-4-4, or 4-6-5 for 15 digits.
fn grouped(number: &str) -> String {
    let cuts: &[usize] = if number.len() == 15 { &[4, 10] } else { &[4, 8, 12] };
    let mut out = String::new();
    for (i, c) in number.chars().enumerate() {
        if cuts.contains(&i) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn holder(rng: &mut Rand) -> String {
    if rng.chance(0.5) {
        format!("{} {}", rng.pick(PINYIN_SURNAMES), rng.pick(PINYIN_GIVEN))
    } else {
        let given = if rng.chance(0.5) { LATIN_GIVEN_MALE } else { LATIN_GIVEN_FEMALE };
        format!("{} {}", rng.pick(given), rng.pick(LATIN_SURNAMES))
    }
}

const BANKS: &[(&str, &str)] = &[
    ("UTOPIA BANK", "乌托邦银行"),
    ("NORTHWIND BANK", ""),
    ("CONTOSO BANK", ""),
    ("EXAMPLE BANK", "示例银行"),
    ("FABRIKAM BANK", ""),
    ("EASTERN EXAMPLE BANK", "东方示例银行"),
    ("HARBOUR BANK", "海港银行"),
];

/// Relative luminance 0-255.
fn luma(c: [u8; 3]) -> f32 {
    0.299 * f32::from(c[0]) + 0.587 * f32::from(c[1]) + 0.114 * f32::from(c[2])
}

fn polygon(img: &mut RgbImage, points: &[(f32, f32)], colour: [u8; 3]) {
    let pts: Vec<Point<i32>> = points.iter().map(|(x, y)| Point::new(x.round() as i32, y.round() as i32)).collect();
    if pts.first() != pts.last() {
        draw_polygon_mut(img, &pts, Rgb(colour));
    }
}

fn logo(img: &mut RgbImage, fonts: &Fonts, network: Network, light_text: [u8; 3]) {
    let (x, y) = (640.0, 420.0);
    match network {
        Network::Visa => {
            text_on(img, &fonts.sans_bold, 62.0, (x, y + 78.0), light_text, "VISA");
        }
        Network::Mastercard => {
            draw_filled_circle_mut(img, (x as i32 + 60, y as i32 + 45), 42, Rgb([235, 0, 27]));
            draw_filled_circle_mut(img, (x as i32 + 115, y as i32 + 45), 42, Rgb([247, 158, 27]));
            text_on(img, &fonts.sans_bold, 15.0, (x + 42.0, y + 108.0), light_text, "mastercard");
        }
        Network::UnionPay => {
            let colours = [[225, 25, 50], [0, 75, 145], [0, 140, 130]];
            for (i, c) in colours.iter().enumerate() {
                let x0 = x + 10.0 + 56.0 * i as f32;
                polygon(img, &[(x0 + 12.0, y), (x0 + 66.0, y), (x0 + 54.0, y + 92.0), (x0, y + 92.0)], *c);
            }
            text_on(img, &fonts.cjk, 28.0, (x + 62.0, y + 40.0), [255, 255, 255], "银联");
            text_on(img, &fonts.sans_bold, 20.0, (x + 34.0, y + 80.0), [255, 255, 255], "UnionPay");
        }
        Network::Amex => {
            rect(img, (x, y, 170.0, 90.0), [0, 111, 207]);
            text_on(img, &fonts.sans_bold, 22.0, (x + 14.0, y + 38.0), [255, 255, 255], "AMERICAN");
            text_on(img, &fonts.sans_bold, 22.0, (x + 22.0, y + 70.0), [255, 255, 255], "EXPRESS");
        }
        Network::Jcb => {
            for (i, c) in [[0, 90, 170], [220, 30, 50], [0, 150, 70]].iter().enumerate() {
                rect(img, (x + 20.0 + 50.0 * i as f32, y, 44.0, 88.0), *c);
            }
            text_on(img, &fonts.sans_bold, 34.0, (x + 42.0, y + 60.0), [255, 255, 255], "JCB");
        }
        Network::Discover => {
            let end = text_on(img, &fonts.sans_bold, 30.0, (x - 20.0, y + 60.0), light_text, "DISC");
            draw_filled_circle_mut(img, (end as i32 + 16, y as i32 + 49), 14, Rgb([240, 120, 30]));
            text_on(img, &fonts.sans_bold, 30.0, (end + 32.0, y + 60.0), light_text, "VER");
        }
    }
}

fn chip(img: &mut RgbImage, (x, y): (f32, f32)) {
    let (w, h) = (112.0, 86.0);
    let mut panel = RgbImage::new(w as u32, h as u32);
    gradient(&mut panel, [226, 196, 120], [170, 135, 60], 0.8);
    let line = [120, 95, 45];
    for i in 1..3 {
        rect(&mut panel, (0.0, h * i as f32 / 3.0, w, 2.0), line);
    }
    rect(&mut panel, (w * 0.36, 0.0, 2.0, h), line);
    rect(&mut panel, (w * 0.64, 0.0, 2.0, h), line);
    rect(&mut panel, (w * 0.36, h * 0.33, w * 0.28, h * 0.34), [215, 185, 105]);
    image::imageops::replace(img, &panel, x as i64, y as i64);
}

/// What the card says.
struct Card {
    network: Network,
    number: String,
    /// `MM/YY`.
    expiry: String,
    holder: String,
    bank: (&'static str, &'static str),
    /// `DEBIT`, `PLATINUM`, ... or nothing.
    tier: &'static str,
}

impl Card {
    fn random(rng: &mut Rand) -> Card {
        let network = rng.weighted(&[
            (Network::UnionPay, 35),
            (Network::Visa, 25),
            (Network::Mastercard, 20),
            (Network::Amex, 8),
            (Network::Jcb, 6),
            (Network::Discover, 6),
        ]);
        let number = card_number(network, rng);
        let (month, year) = (rng.range(1..=12u32), rng.range(26..=33u32));
        Card {
            network,
            number,
            expiry: format!("{month:02}/{year:02}"),
            holder: holder(rng),
            bank: rng.pick(BANKS),
            tier: rng.pick(&["DEBIT", "CREDIT", "PLATINUM", "GOLD", ""]),
        }
    }

    fn fields(&self) -> BTreeMap<String, String> {
        fields([
            ("number", self.number.clone()),
            ("network", self.network.name().to_string()),
            ("expiry", self.expiry.clone()),
            ("holder_name", self.holder.clone()),
        ])
    }
}

pub(crate) fn card(fonts: &Fonts, rng: &mut Rand) -> Flat {
    let content = Card::random(rng);
    let (bank, bank_cn) = content.bank;
    // Dark cards with light print, or light cards with dark print: never mid-grey on mid-grey.
    let dark = rng.chance(0.65);
    let colour = |r: &mut Rand| -> [u8; 3] {
        loop {
            let c = [r.range(0..=255u8), r.range(0..=255u8), r.range(0..=255u8)];
            let l = luma(c);
            if (dark && l < 85.0) || (!dark && l > 195.0) {
                return c;
            }
        }
    };
    let (a, b) = (colour(rng), colour(rng));
    let mut img = RgbImage::new(CARD.0, CARD.1);
    gradient(&mut img, a, b, rng.f32(0.0, std::f32::consts::TAU));
    // Design swooshes: large soft ellipses a shade off the background.
    for _ in 0..rng.range(1..=3) {
        let shade = lerp(a, if dark { [255, 255, 255] } else { [0, 0, 0] }, rng.f32(0.04, 0.1));
        let (cx, cy) = (rng.f32(0.0, CARD.0 as f32), rng.f32(0.0, CARD.1 as f32));
        let r = rng.f32(150.0, 420.0);
        draw_filled_ellipse_mut(&mut img, (cx as i32, cy as i32), r as i32, (r * rng.f32(0.4, 1.0)) as i32, Rgb(shade));
    }
    let ink = if dark {
        rng.pick(&[[240u8, 240, 236], [232, 214, 160], [220, 225, 232]])
    } else {
        rng.pick(&[[25u8, 28, 35], [60, 40, 25], [20, 40, 80]])
    };
    let shadow = if dark { [0, 0, 0] } else { [255, 255, 255] };

    let mut x = 60.0;
    if !bank_cn.is_empty() {
        x = text_on(&mut img, &fonts.cjk, 38.0, (x, 82.0), ink, bank_cn) + 18.0;
    }
    text_on(&mut img, &fonts.sans_bold, if x > 60.0 { 24.0 } else { 36.0 }, (x, 80.0), ink, bank);
    let tier = content.tier;
    let tier_w = width(&fonts.sans_bold, 22.0, tier);
    text_on(&mut img, &fonts.sans_bold, 22.0, (CARD.0 as f32 - 50.0 - tier_w, 130.0), ink, tier);
    chip(&mut img, (90.0, 175.0));

    // Embossed characters: a dark shadow below right, a highlight above left, then the face.
    let emboss = |img: &mut RgbImage, font, size: f32, at: (f32, f32), s: &str, spacing: f32| {
        spaced_on(img, font, size, (at.0 + 2.0, at.1 + 2.0), lerp(ink, shadow, 0.7), s, spacing);
        spaced_on(img, font, size, at, ink, s, spacing);
    };
    let digits = grouped(&content.number);
    let size = if content.number.len() == 15 { 60.0 } else { 56.0 };
    let number_w = width(&fonts.mono_bold, size, &digits);
    let nx = ((CARD.0 as f32 - number_w) / 2.0 - 20.0).max(50.0);
    emboss(&mut img, &fonts.mono_bold, size, (nx, 350.0), &digits, 0.0);
    let label_end = text_on(&mut img, &fonts.sans_bold, 15.0, (nx + 150.0, 402.0), ink, "VALID THRU");
    emboss(&mut img, &fonts.mono_bold, 34.0, (label_end + 16.0, 410.0), &content.expiry, 0.0);
    emboss(&mut img, &fonts.mono_bold, 32.0, (nx, 478.0), &content.holder, 0.0);
    logo(&mut img, fonts, content.network, ink);
    Flat { image: with_round_corners(&img, 34.0), fields: content.fields() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, content_rng};
    use faceplate_documents::TextLine;
    use faceplate_documents::bank_card::{CardNumber, card_network, parse_bank_card};

    /// The printed lines, read by a perfect OCR, parse to the truth.
    #[test]
    fn cards_parse_to_their_truth() {
        for i in 0..300 {
            let card = Card::random(&mut content_rng(Kind::BankCard, 2, i));
            let truth = card.fields();
            let mut printed = vec![format!("{} {}", card.bank.1, card.bank.0), card.tier.to_string()];
            printed.push(grouped(&card.number));
            printed.push(format!("VALID THRU {}", card.expiry));
            printed.push(card.holder.clone());
            let lines: Vec<TextLine> = printed.iter().map(|t| TextLine::new(t.as_str(), 0.99)).collect();
            let parsed = parse_bank_card(&lines);
            let number = parsed.number.value.unwrap();
            assert_eq!(number.digits(), truth["number"]);
            assert_eq!(serde_json::to_value(parsed.network).unwrap(), truth["network"].as_str());
            assert_eq!(parsed.expiry.value.unwrap().to_string(), truth["expiry"]);
            assert_eq!(parsed.holder_name.value.as_ref(), Some(&truth["holder_name"]), "{printed:?}");
        }
    }

    #[test]
    fn numbers_are_valid_for_their_network() {
        let mut rng = Rand::new(3, 0, *b"test");
        for network in
            [Network::Visa, Network::Mastercard, Network::UnionPay, Network::Amex, Network::Jcb, Network::Discover]
        {
            for _ in 0..50 {
                let n = card_number(network, &mut rng);
                let parsed = CardNumber::parse(&n).unwrap();
                let json = serde_json::to_value(card_network(&n)).unwrap();
                assert_eq!(json, network.name(), "{n}");
                assert_eq!(parsed.grouped(), grouped(&n));
            }
        }
    }
}
