//! Travel and identity documents with an ICAO 9303 machine readable zone: TD3 passport data pages (2 x 44), TD1
//! cards (3 x 30) and TD2 documents (2 x 36), with the visual zone printed above. OCR-B is not packaged, so the
//! MRZ is set in DejaVu Sans Mono.

use chrono::{Datelike, Duration, NaiveDate};
use faceplate_documents::mrz::check_digit;
use image::RgbImage;

use crate::draw::{Fonts, gradient, guilloche, lerp, photo, rect, text_on, width};
use crate::id_card::ymd;
use crate::pools::{EN_MONTHS, LATIN_GIVEN_FEMALE, LATIN_GIVEN_MALE, LATIN_SURNAMES, PLACES_OF_BIRTH, STATES};
use crate::random::Rand;
use crate::scene::with_round_corners;
use crate::{Flat, fields};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Td1,
    Td2,
    Td3,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Td1 => "td1",
            Format::Td2 => "td2",
            Format::Td3 => "td3",
        }
    }

    /// Characters in the name field.
    fn name_len(self) -> usize {
        match self {
            Format::Td1 => 30,
            Format::Td2 => 31,
            Format::Td3 => 39,
        }
    }
}

struct Document {
    format: Format,
    /// Two characters, filler included (`P<`, `ID`).
    code: &'static str,
    state: &'static str,
    surname: &'static str,
    given: Vec<&'static str>,
    /// At most 9 characters.
    number: String,
    nationality: &'static str,
    birth: NaiveDate,
    /// `M`, `F` or `<`.
    sex: char,
    issue: NaiveDate,
    expiry: NaiveDate,
    /// Personal number (TD3) or optional data, without fillers.
    optional: String,
    place_of_birth: &'static str,
}

/// `s` padded with `<` to `n` characters.
fn pad(s: &str, n: usize) -> String {
    format!("{s:<<n$}")
}

fn check(data: &str) -> char {
    check_digit(data).and_then(|d| char::from_digit(d, 10)).unwrap_or('0')
}

fn yymmdd(d: NaiveDate) -> String {
    d.format("%y%m%d").to_string()
}

impl Document {
    fn random(rng: &mut Rand) -> Document {
        let format = rng.weighted(&[(Format::Td3, 50), (Format::Td1, 30), (Format::Td2, 20)]);
        let code = match format {
            Format::Td3 => rng.weighted(&[("P<", 90), ("PD", 5), ("PS", 5)]),
            Format::Td1 => rng.weighted(&[("I<", 50), ("ID", 40), ("IR", 10)]),
            // TD2 as an identity document or crew certificate: machine readable visas (MRV-B) have no composite
            // check digit, which the parser requires of every 2 x 36 zone.
            Format::Td2 => rng.weighted(&[("I<", 60), ("ID", 25), ("AC", 15)]),
        };
        let state = rng.pick(STATES).0;
        let nationality = if rng.chance(0.85) { state } else { rng.pick(STATES).0 };
        let sex = rng.weighted(&[('M', 47), ('F', 47), ('<', 6)]);
        let given_pool = match sex {
            'M' => LATIN_GIVEN_MALE,
            'F' => LATIN_GIVEN_FEMALE,
            _ => {
                if rng.chance(0.5) {
                    LATIN_GIVEN_MALE
                } else {
                    LATIN_GIVEN_FEMALE
                }
            }
        };
        let surname = rng.pick(LATIN_SURNAMES);
        let mut given = vec![rng.pick(given_pool)];
        if rng.chance(0.35) {
            let second = rng.pick(given_pool);
            if second != given[0] {
                given.push(second);
            }
        }
        // Names longer than the field are truncated on real documents; keep the truth exact instead.
        while given.len() > 1 && surname.len() + 2 + given.join("<").len() > format.name_len() {
            given.pop();
        }
        let number = match rng.range(0..10) {
            0..=3 => format!("{}{}{}", rng.letter("IO"), rng.letter("IO"), rng.digits(7)),
            4..=6 => format!("{}{}", rng.letter("IO"), rng.digits(8)),
            7 | 8 => rng.digits(9),
            _ => format!("{}{}", rng.letter("IO"), rng.digits(7)),
        };
        // Two-digit years: birth dates must not look like the future (the parser puts 20yy after this year in
        // the 1900s), expiry dates are 20xx.
        let birth = rng.date(ymd(1950, 1, 1), ymd(2015, 12, 31));
        let issue = rng.date(ymd(2016, 1, 1), ymd(2025, 12, 31));
        let years = if format == Format::Td3 || rng.chance(0.5) { 10 } else { 5 };
        let anniversary = ymd(issue.year() + years, issue.month(), issue.day().min(28));
        let expiry = anniversary - Duration::days(1);
        let optional = match format {
            Format::Td3 if rng.chance(0.5) => {
                let n = rng.range(8..=12);
                if rng.chance(0.5) {
                    rng.digits(n)
                } else {
                    format!("{}{}{}", rng.letter("IO"), rng.letter("IO"), rng.digits(n - 2))
                }
            }
            Format::Td1 if rng.chance(0.4) => {
                let n = rng.range(6..=12);
                rng.digits(n)
            }
            Format::Td2 if rng.chance(0.3) => {
                let n = rng.range(5..=7);
                rng.digits(n)
            }
            _ => String::new(),
        };
        Document {
            format,
            code,
            state,
            surname,
            given,
            number,
            nationality,
            birth,
            sex,
            issue,
            expiry,
            optional,
            place_of_birth: rng.pick(PLACES_OF_BIRTH),
        }
    }

    fn names(&self) -> String {
        pad(&format!("{}<<{}", self.surname.replace(' ', "<"), self.given.join("<")), self.format.name_len())
    }

    /// The zone, every check digit computed.
    fn lines(&self) -> Vec<String> {
        let number = pad(&self.number, 9);
        let doc = format!("{number}{}", check(&number));
        let birth = format!("{}{}", yymmdd(self.birth), check(&yymmdd(self.birth)));
        let expiry = format!("{}{}", yymmdd(self.expiry), check(&yymmdd(self.expiry)));
        let (state, nationality) = (pad(self.state, 3), pad(self.nationality, 3));
        match self.format {
            Format::Td3 => {
                let personal = pad(&self.optional, 14);
                // An empty personal number may carry `<` as its check digit.
                let personal_check = if self.optional.is_empty() { '<' } else { check(&personal) };
                let l1 = format!("{}{state}{}", self.code, self.names());
                let body = format!("{doc}{nationality}{birth}{}{expiry}{personal}{personal_check}", self.sex);
                let composite = format!("{}{}{}", &body[0..10], &body[13..20], &body[21..43]);
                vec![l1, format!("{body}{}", check(&composite))]
            }
            Format::Td2 => {
                let l1 = format!("{}{state}{}", self.code, self.names());
                let body = format!("{doc}{nationality}{birth}{}{expiry}{}", self.sex, pad(&self.optional, 7));
                let composite = format!("{}{}{}", &body[0..10], &body[13..20], &body[21..35]);
                vec![l1, format!("{body}{}", check(&composite))]
            }
            Format::Td1 => {
                let l1 = format!("{}{state}{doc}{}", self.code, pad(&self.optional, 15));
                let body = format!("{birth}{}{expiry}{nationality}{}", self.sex, pad("", 11));
                let composite = format!("{}{}{}{}", &l1[5..30], &body[0..7], &body[8..15], &body[18..29]);
                vec![l1, format!("{body}{}", check(&composite)), self.names()]
            }
        }
    }

    fn fields(&self) -> std::collections::BTreeMap<String, String> {
        let sex = if self.sex == '<' { 'X' } else { self.sex };
        fields([
            ("format", self.format.name().to_string()),
            ("document_code", self.code.replace('<', "")),
            ("issuing_state", self.state.to_string()),
            ("surname", self.surname.to_string()),
            ("given_names", self.given.join(" ")),
            ("document_number", self.number.clone()),
            ("nationality", self.nationality.to_string()),
            ("birth_date", self.birth.format("%Y-%m-%d").to_string()),
            ("sex", sex.to_string()),
            ("expiry_date", self.expiry.format("%Y-%m-%d").to_string()),
            ("optional_data", self.optional.clone()),
            ("lines", self.lines().join("\n")),
        ])
    }
}

/// `12 AUG 1974` or `12.08.1974`.
fn human_date(d: NaiveDate, dotted: bool) -> String {
    if dotted {
        d.format("%d.%m.%Y").to_string()
    } else {
        format!("{:02} {} {}", d.day(), EN_MONTHS[d.month0() as usize], d.year())
    }
}

fn state_name(code: &str) -> &'static str {
    STATES.iter().find(|(c, _)| *c == code).map_or("", |(_, n)| n)
}

/// Page geometry per format.
struct Layout {
    size: (u32, u32),
    photo: (f32, f32, f32, f32),
    /// x of the field columns.
    columns: [f32; 3],
    fields_top: f32,
    row: f32,
    mrz_size: f32,
    mrz_top: f32,
    mrz_pitch: f32,
}

fn layout(format: Format) -> Layout {
    match format {
        Format::Td3 => Layout {
            size: (1100, 774),
            photo: (40.0, 110.0, 250.0, 320.0),
            columns: [330.0, 640.0, 860.0],
            fields_top: 100.0,
            row: 60.0,
            mrz_size: 38.0,
            mrz_top: 560.0,
            mrz_pitch: 78.0,
        },
        Format::Td2 => Layout {
            size: (1050, 740),
            photo: (36.0, 110.0, 240.0, 300.0),
            columns: [310.0, 600.0, 820.0],
            fields_top: 100.0,
            row: 62.0,
            mrz_size: 44.0,
            mrz_top: 530.0,
            mrz_pitch: 82.0,
        },
        Format::Td1 => Layout {
            size: (856, 540),
            photo: (28.0, 92.0, 180.0, 225.0),
            columns: [235.0, 440.0, 620.0],
            fields_top: 78.0,
            row: 48.0,
            mrz_size: 40.0,
            mrz_top: 342.0,
            mrz_pitch: 58.0,
        },
    }
}

pub(crate) fn document(fonts: &Fonts, rng: &mut Rand) -> Flat {
    let doc = Document::random(rng);
    let lines = doc.lines();
    let l = layout(doc.format);
    let mut page = RgbImage::new(l.size.0, l.size.1);
    let tint = rng.pick(&[[232u8, 240, 228], [240, 230, 236], [228, 236, 244], [244, 238, 224]]);
    gradient(&mut page, tint, lerp(tint, [250, 250, 246], 0.6), rng.f32(-0.5, 0.5));
    guilloche(&mut page, lerp(tint, [150, 160, 170], 0.3), rng);
    // The zone is printed on a clear band.
    rect(&mut page, (0.0, l.mrz_top, l.size.0 as f32, l.size.1 as f32 - l.mrz_top), lerp(tint, [252, 252, 250], 0.8));

    let ink = [25, 25, 35];
    let grey = [95, 100, 110];
    let dotted = rng.chance(0.3);
    let title = match (doc.format, doc.code) {
        (Format::Td3, _) => "PASSPORT",
        (_, "AC") => "CREW MEMBER CERTIFICATE",
        (_, "IR") => "RESIDENCE PERMIT",
        _ => "IDENTITY CARD",
    };
    let title_end = text_on(&mut page, &fonts.sans_bold, 30.0, (l.photo.0, 56.0), ink, title);
    text_on(&mut page, &fonts.sans, 19.0, (title_end + 24.0, 56.0), grey, state_name(doc.state));
    photo(&mut page, l.photo, rng);

    let kind = match doc.format {
        Format::Td3 => "Passport No.",
        _ => "Document No.",
    };
    let head = vec![
        ("Type", doc.code.replace('<', "")),
        ("Code of issuing State", doc.state.to_string()),
        (kind, doc.number.clone()),
    ];
    let sex = doc.sex.to_string().replace('<', "X");
    let rows: Vec<Vec<(&str, String)>> = if doc.format == Format::Td1 {
        // A card has room for fewer rows: nationality as its code, no place of birth.
        vec![
            head,
            vec![("Surname", doc.surname.to_string())],
            vec![("Given names", doc.given.join(" "))],
            vec![
                ("Date of birth", human_date(doc.birth, dotted)),
                ("Sex", sex),
                ("Nationality", doc.nationality.to_string()),
            ],
            vec![("Date of issue", human_date(doc.issue, dotted)), ("Date of expiry", human_date(doc.expiry, dotted))],
        ]
    } else {
        vec![
            head,
            vec![("Surname", doc.surname.to_string())],
            vec![("Given names", doc.given.join(" "))],
            vec![("Nationality", state_name(doc.nationality).to_string())],
            vec![
                ("Date of birth", human_date(doc.birth, dotted)),
                ("Sex", sex),
                ("Place of birth", doc.place_of_birth.to_string()),
            ],
            vec![("Date of issue", human_date(doc.issue, dotted)), ("Date of expiry", human_date(doc.expiry, dotted))],
        ]
    };
    let value_size = if doc.format == Format::Td1 { 21.0 } else { 24.0 };
    let label_size = if doc.format == Format::Td1 { 13.0 } else { 15.0 };
    for (r, row) in rows.iter().enumerate() {
        let top = l.fields_top + l.row * r as f32;
        for (c, (label, value)) in row.iter().enumerate() {
            let x = l.columns[c];
            text_on(&mut page, &fonts.sans, label_size, (x, top + label_size), grey, label);
            let font = if r == 1 { &fonts.sans_bold } else { &fonts.sans };
            text_on(&mut page, font, value_size, (x, top + label_size + value_size + 4.0), ink, value);
        }
    }

    // ICAO 9303 prints the zone at 10 characters per inch: the lines span about 88% of the page's width.
    let natural = width(&fonts.ocr_b, l.mrz_size, &lines[0]);
    let size = l.mrz_size * (0.88 * l.size.0 as f32 / natural).min(1.0);
    let line_width = width(&fonts.ocr_b, size, &lines[0]);
    let x = (l.size.0 as f32 - line_width) / 2.0;
    let cap = size * 0.73;
    let block = l.mrz_pitch * (lines.len() as f32 - 1.0) + cap;
    let first = l.mrz_top + (l.size.1 as f32 - l.mrz_top - block) / 2.0 + cap;
    for (i, line) in lines.iter().enumerate() {
        text_on(&mut page, &fonts.ocr_b, size, (x, first + l.mrz_pitch * i as f32), [10, 10, 15], line);
    }
    let radius = if doc.format == Format::Td3 { 12.0 } else { 26.0 };
    Flat { image: with_round_corners(&page, radius), fields: doc.fields() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faceplate_documents::mrz::parse_mrz_text;

    #[test]
    fn icao_specimens_are_reproduced() {
        // ICAO 9303 Part 4 specimen.
        let doc = Document {
            format: Format::Td3,
            code: "P<",
            state: "UTO",
            surname: "ERIKSSON",
            given: vec!["ANNA", "MARIA"],
            number: "L898902C3".into(),
            nationality: "UTO",
            birth: ymd(1974, 8, 12),
            sex: 'F',
            issue: ymd(2002, 4, 16),
            expiry: ymd(2012, 4, 15),
            optional: "ZE184226B".into(),
            place_of_birth: "ZENITH",
        };
        assert_eq!(
            doc.lines(),
            ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
        );
        // Part 5 (TD1) specimen.
        let td1 =
            Document { format: Format::Td1, code: "I<", number: "D23145890".into(), optional: String::new(), ..doc };
        let lines = td1.lines();
        assert_eq!(lines[0], "I<UTOD231458907<<<<<<<<<<<<<<<");
        assert_eq!(lines[1], "7408122F1204159UTO<<<<<<<<<<<6");
        assert_eq!(lines[2], "ERIKSSON<<ANNA<MARIA<<<<<<<<<<");
    }

    #[test]
    fn random_documents_parse_back_exactly() {
        for i in 0..300 {
            let doc = Document::random(&mut crate::content_rng(crate::Kind::Mrz, 11, i));
            let f = doc.fields();
            let lines = doc.lines();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let m = parse_mrz_text(&refs, 2026).unwrap();
            assert!(m.valid, "{lines:?}");
            assert_eq!(m.document_number.value.as_deref(), Some(f["document_number"].as_str()), "{lines:?}");
            assert_eq!(m.optional_data.value.as_deref(), Some(f["optional_data"].as_str()), "{lines:?}");
            assert_eq!(m.given_names.value.as_deref(), Some(f["given_names"].as_str()), "{lines:?}");
        }
    }
}
