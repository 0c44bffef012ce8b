//! Seeded, reproducible synthetic document and licence-plate photos with ground truth.
//!
//! No real card photos exist in any package, so documents are rendered with real Debian fonts (DejaVu, WenQuanYi
//! Zen Hei) and then, for [`Distortion::Distorted`], put into a phone-photo-like scene: busy background, random
//! perspective and rotation, blur, noise, glare, exposure and JPEG. Every number on a document passes its check
//! (ID MOD 11-2, MRZ 7-3-1, Luhn, Singapore check letter) and every field is printed in a form the
//! `faceplate-documents` parsers read, so the [`Truth`] is what a perfect OCR + parser pipeline returns.
//!
//! [`generate`] is a pure function of `(kind, distortion, seed, index)`: the same arguments give byte-identical
//! images on every machine (ChaCha8 streams, no threads or clock inside). The document's content comes from a
//! stream keyed by `(seed, kind, index)` and its photo from one keyed by `(seed, kind, distortion, index)`, so the
//! clean and distorted samples of one index show the same document: accuracy on the two can be compared pair by
//! pair.
//!
//! # Truth fields
//!
//! Dates are `YYYY-MM-DD`; a long-term validity (`长期`) is `long_term`.
//!
//! | kind | fields |
//! |---|---|
//! | `id_front` | `name`, `sex` (`男`/`女`), `ethnicity` (without `族`), `birth_date`, `address` (lines joined, no spaces), `id_number` (18 characters) |
//! | `id_back` | `issuing_authority` (`北京市公安局东城分局`), `valid_from`, `valid_until` |
//! | `mrz` | `format` (`td1`/`td2`/`td3`), `document_code` (fillers removed: `P`, `ID`, `I`), `issuing_state` and `nationality` (`D`, `UTO`), `surname` and `given_names` (words space-separated), `document_number` (fillers removed), `birth_date`, `sex` (`M`/`F`/`X`), `expiry_date`, `optional_data` (TD3 personal number, TD1 line-1 or TD2 optional data; may be empty), `lines` (the zone, lines joined with `\n`) |
//! | `bank_card` | `number` (digits), `network` (`visa`, `mastercard`, `amex`, `union_pay`, `jcb`, `discover`: `CardNetwork`'s serde names), `expiry` (`MM/YY`), `holder_name` |
//! | `driver_licence` | `licence_number` (the ID number), `name`, `sex`, `nationality` (`中国`), `address`, `birth_date`, `first_issue_date`, `class` (`C1`, `A2E`), `valid_from`, `valid_until` |
//! | `plate` | `plates` (the count); each plate in [`Truth::plates`] |
//!
//! Quads are corners in image pixels in the document's own order (top-left of the printed page first, then
//! clockwise), so a document rotated by 180° has its first corner at the bottom right of the image.

mod bank_card;
mod draw;
mod driver_licence;
mod id_card;
mod mrz;
mod plate;
mod pools;
mod random;
mod scene;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::random::Rand;

/// Corners TL, TR, BR, BL in image pixels.
pub type Quad = [[f32; 2]; 4];

/// What to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// China resident identity card, photo side.
    IdFront,
    /// China resident identity card, emblem side.
    IdBack,
    /// Passport data page (TD3), ID card (TD1) or TD2 document with its machine readable zone.
    Mrz,
    /// Payment card front.
    BankCard,
    /// China motor vehicle driving licence, main page.
    DriverLicence,
    /// A street scene with one or two cars and their licence plates.
    Plate,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 6] =
        [Kind::IdFront, Kind::IdBack, Kind::Mrz, Kind::BankCard, Kind::DriverLicence, Kind::Plate];

    /// The snake_case name (`id_front`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::IdFront => "id_front",
            Kind::IdBack => "id_back",
            Kind::Mrz => "mrz",
            Kind::BankCard => "bank_card",
            Kind::DriverLicence => "driver_licence",
            Kind::Plate => "plate",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Kind::IdFront => 1,
            Kind::IdBack => 2,
            Kind::Mrz => 3,
            Kind::BankCard => 4,
            Kind::DriverLicence => 5,
            Kind::Plate => 6,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = SynthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| SynthError::UnknownKind(s.to_string()))
    }
}

/// How photo-like the sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distortion {
    /// The flat document upright on a plain background with a small margin (plates: an upright, frontal scene);
    /// PNG.
    Clean,
    /// A phone photo: busy background, perspective, any rotation (plates: within ±15°), scale, blur, noise,
    /// glare, exposure; mostly JPEG.
    Distorted,
}

impl Distortion {
    /// Both levels.
    pub const ALL: [Distortion; 2] = [Distortion::Clean, Distortion::Distorted];

    /// `clean` or `distorted`.
    pub fn name(self) -> &'static str {
        match self {
            Distortion::Clean => "clean",
            Distortion::Distorted => "distorted",
        }
    }
}

impl fmt::Display for Distortion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Distortion {
    type Err = SynthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Distortion::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| SynthError::UnknownDistortion(s.to_string()))
    }
}

/// One licence plate in a [`Kind::Plate`] scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateTruth {
    /// The characters without separators or spaces (`京A88888`, `SBA1234X`, `AB12CDE`, `BMW1234`).
    pub text: String,
    /// Background colour: `blue`, `yellow`, `green`, `white` or `black`.
    pub color: String,
    /// The plate's corners in the image.
    pub quad: Quad,
    /// `china`, `singapore`, `uk`, `europe` or `us`.
    pub region: String,
}

/// What is on a sample, in the canonical forms of the crate documentation's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub kind: Kind,
    /// The sample's index and seed, as passed to [`generate`].
    pub index: u32,
    pub seed: u64,
    pub distortion: Distortion,
    /// Image size in pixels.
    pub width: u32,
    pub height: u32,
    /// Field name to canonical value.
    pub fields: BTreeMap<String, String>,
    /// The plates of a [`Kind::Plate`] scene (empty for documents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plates: Vec<PlateTruth>,
    /// The document's corners in the image; for plate scenes, the whole image.
    pub document_quad: Quad,
}

/// A generated image and its truth.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The encoded image (PNG or JPEG, see `extension`).
    pub image: Vec<u8>,
    /// `png` or `jpg`.
    pub extension: &'static str,
    pub truth: Truth,
}

/// Why a sample could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A font file is missing or unreadable.
    #[error("fonts: {0}")]
    Fonts(String),
    /// PNG encoding failed.
    #[error("encoding the PNG: {0}")]
    Encode(#[from] image::ImageError),
    /// JPEG encoding failed.
    #[error("encoding the JPEG: {0}")]
    Jpeg(String),
    /// A degenerate geometric transform (should not happen).
    #[error("geometry: {0}")]
    Geometry(&'static str),
    #[error("unknown kind {0:?} (one of id_front, id_back, mrz, bank_card, driver_licence, plate)")]
    UnknownKind(String),
    #[error("unknown distortion {0:?} (clean or distorted)")]
    UnknownDistortion(String),
}

/// A rendered flat document, before it is photographed.
pub(crate) struct Flat {
    /// Premultiplied RGBA (transparent outside rounded corners).
    pub image: image::RgbaImage,
    pub fields: BTreeMap<String, String>,
}

/// Field map from pairs.
pub(crate) fn fields<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The stream that decides what is on the document (shared by both distortion levels of an index).
pub(crate) fn content_rng(kind: Kind, seed: u64, index: u32) -> Rand {
    Rand::new(seed, index, [b'c', kind.tag(), 0, 0])
}

fn photo_rng(kind: Kind, distortion: Distortion, seed: u64, index: u32) -> Rand {
    let d = match distortion {
        Distortion::Clean => 1,
        Distortion::Distorted => 2,
    };
    Rand::new(seed, index, [b'p', kind.tag(), d, 0])
}

/// Generates sample `index` of `kind` at `distortion` level from `seed`. Deterministic: the same arguments always
/// give the same bytes, independently of other indexes.
pub fn generate(kind: Kind, distortion: Distortion, seed: u64, index: u32) -> Result<Sample, SynthError> {
    let fonts = draw::fonts()?;
    let mut content = content_rng(kind, seed, index);
    let mut photo = photo_rng(kind, distortion, seed, index);
    let (img, fields, plates, quad) = if kind == Kind::Plate {
        let scene = plate::scene(fonts, distortion, &mut content, &mut photo)?;
        let fields = fields([("plates", scene.plates.len().to_string())]);
        let (w, h) = (scene.image.width() as f32, scene.image.height() as f32);
        (scene.image, fields, scene.plates, [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    } else {
        let flat = match kind {
            Kind::IdFront => id_card::front(fonts, &mut content),
            Kind::IdBack => id_card::back(fonts, &mut content),
            Kind::Mrz => mrz::document(fonts, &mut content),
            Kind::BankCard => bank_card::card(fonts, &mut content),
            Kind::DriverLicence => driver_licence::licence(fonts, &mut content),
            Kind::Plate => return Err(SynthError::Geometry("plates are scenes")),
        };
        let (mut img, quad) = scene::place_document(&flat.image, distortion, &mut photo)?;
        if distortion == Distortion::Distorted {
            let width = (quad[1][0] - quad[0][0]).hypot(quad[1][1] - quad[0][1]);
            // Blur up to 0.6 on the smallest documents (500 px), 1.5 on the largest (1100 px).
            let blur_max = 0.6 + 0.9 * ((width - 500.0) / 600.0).clamp(0.0, 1.0);
            scene::camera(&mut img, &quad, width, blur_max, &mut photo);
        }
        (img, flat.fields, Vec::new(), quad)
    };
    let (image, extension) = scene::encode(&img, distortion, &mut photo)?;
    let truth = Truth {
        kind,
        index,
        seed,
        distortion,
        width: img.width(),
        height: img.height(),
        fields,
        plates,
        document_quad: quad,
    };
    Ok(Sample { image, extension, truth })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(quad: &Quad, w: u32, h: u32) -> bool {
        quad.iter().all(|[x, y]| (0.0..=w as f32).contains(x) && (0.0..=h as f32).contains(y))
    }

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.to_string().parse::<Kind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        for d in Distortion::ALL {
            assert_eq!(d.to_string().parse::<Distortion>().unwrap(), d);
        }
        assert!("passport".parse::<Kind>().is_err());
        assert!("blurry".parse::<Distortion>().is_err());
    }

    #[test]
    fn same_arguments_same_bytes_other_index_other_image() {
        let a = generate(Kind::Plate, Distortion::Distorted, 42, 7).unwrap();
        let b = generate(Kind::Plate, Distortion::Distorted, 42, 7).unwrap();
        assert_eq!(a.image, b.image);
        assert_eq!(a.truth, b.truth);
        let c = generate(Kind::Plate, Distortion::Distorted, 42, 8).unwrap();
        assert_ne!(a.image, c.image);
        assert_ne!(a.truth.plates, c.truth.plates);
        // Clean and distorted samples of one index show the same plates (and documents).
        let clean = generate(Kind::Plate, Distortion::Clean, 42, 7).unwrap();
        let what = |t: &Truth| t.plates.iter().map(|p| (p.text.clone(), p.color.clone())).collect::<Vec<_>>();
        assert_eq!(what(&clean.truth), what(&a.truth));
    }

    #[test]
    fn every_kind_makes_a_sane_clean_image() {
        every_kind_makes_a_sane_image(Distortion::Clean);
    }

    #[test]
    fn every_kind_makes_a_sane_distorted_image() {
        every_kind_makes_a_sane_image(Distortion::Distorted);
    }

    /// Every kind: a decodable image of the stated size and format, the document or plates inside it, and the
    /// fields of the kind.
    fn every_kind_makes_a_sane_image(distortion: Distortion) {
        let keys: [(Kind, &[&str]); 6] = [
            (Kind::IdFront, &["address", "birth_date", "ethnicity", "id_number", "name", "sex"]),
            (Kind::IdBack, &["issuing_authority", "valid_from", "valid_until"]),
            (
                Kind::Mrz,
                &[
                    "birth_date",
                    "document_code",
                    "document_number",
                    "expiry_date",
                    "format",
                    "given_names",
                    "issuing_state",
                    "lines",
                    "nationality",
                    "optional_data",
                    "sex",
                    "surname",
                ],
            ),
            (Kind::BankCard, &["expiry", "holder_name", "network", "number"]),
            (
                Kind::DriverLicence,
                &[
                    "address",
                    "birth_date",
                    "class",
                    "first_issue_date",
                    "licence_number",
                    "name",
                    "nationality",
                    "sex",
                    "valid_from",
                    "valid_until",
                ],
            ),
            (Kind::Plate, &["plates"]),
        ];
        for (kind, expected) in keys {
            let s = generate(kind, distortion, 5, 1).unwrap();
            let t = &s.truth;
            let img = image::load_from_memory(&s.image).unwrap();
            assert_eq!((img.width(), img.height()), (t.width, t.height), "{kind} {distortion}");
            let format = image::guess_format(&s.image).unwrap();
            match s.extension {
                "png" => assert_eq!(format, image::ImageFormat::Png),
                _ => assert_eq!(format, image::ImageFormat::Jpeg),
            }
            if distortion == Distortion::Clean {
                assert_eq!(s.extension, "png");
            }
            assert_eq!(t.fields.keys().map(String::as_str).collect::<Vec<_>>(), expected, "{kind}");
            assert!(inside(&t.document_quad, t.width, t.height), "{kind} {distortion} {:?}", t.document_quad);
            let doc_w =
                (t.document_quad[1][0] - t.document_quad[0][0]).hypot(t.document_quad[1][1] - t.document_quad[0][1]);
            match (kind, distortion) {
                (Kind::Plate, _) => {
                    assert!((640..=1280).contains(&t.width) && (480..=768).contains(&t.height));
                    assert_eq!(t.fields["plates"], t.plates.len().to_string());
                    for p in &t.plates {
                        assert!(inside(&p.quad, t.width, t.height), "{p:?}");
                        let pw = (p.quad[1][0] - p.quad[0][0]).hypot(p.quad[1][1] - p.quad[0][1]);
                        assert!((100.0..=340.0).contains(&pw), "{pw}");
                    }
                }
                (_, Distortion::Clean) => {
                    assert!((850.0..=1110.0).contains(&doc_w), "{kind} {doc_w}");
                    assert!(t.width < doc_w as u32 + 100);
                }
                (_, Distortion::Distorted) => {
                    assert!((440.0..=1160.0).contains(&doc_w), "{kind} {doc_w}");
                    assert!(t.width.max(t.height) < 2400);
                }
            }
        }
    }
}
