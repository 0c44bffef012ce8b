//! Licence plates: `POST /v1/plates/recognize` and Face++'s `POST /imagepp/v1/licenseplate` (`ocr` scope).
//!
//! The engine finds each plate (with the plate detector, or as a line of text where it found none), its corners
//! and colour, and reads it with the plate recogniser and the general text recogniser; [`interpret`] keeps the
//! reading that passes the plate format rules of `faceplate-documents`. A plate whose text passes no rule is returned as
//! `unreadable` with its raw text, never as a number.

use actix_web::{HttpRequest, HttpResponse, post, web};
use faceplate_documents::FieldStatus;
use faceplate_documents::plate::{self, PlateColor, PlateFormat, PlateRegion};
use faceplate_engine::plate::Reading;
use faceplate_engine::{PlateColour, PlateOutput, PlateReading, PlateSettings};
use faceplate_store::Scope;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::{Caller, OcrScope};
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::forms::Fields;
use crate::routes::facepp::{authenticate_for, context};
use crate::routes::facepp_ocr::FaceppOcrForm;
use crate::routes::faces::reject_unknown;
use crate::state::AppState;

/// Request body of `POST /v1/plates/recognize` (multipart/form-data, x-www-form-urlencoded or JSON).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handler reads the fields itself
pub struct PlateForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    image_base64: Option<String>,
    image_url: Option<String>,
    /// Which plate formats to accept: `auto` (default: China, Singapore, UK, EU, US in that order), `china`,
    /// `singapore`, `uk`, `europe` or `us`.
    region: Option<String>,
}

/// A plate as read: the validated number, or `unreadable` with the raw text.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlateView {
    /// The plate number, normalised (`京A88888`, `SBA1234L`, `AB12CDE`); null when `status` is `unreadable`.
    pub number: Option<String>,
    /// What the recogniser read.
    pub raw: String,
    /// `valid`, `corrected` (an O/0-style confusion was fixed to fit the format) or `unreadable`.
    #[schema(value_type = String)]
    pub status: FieldStatus,
    /// `china_standard`, `china_new_energy_small`, `china_new_energy_large`, `china_special`, `singapore`,
    /// `united_kingdom`, `germany`, `france`, `italy`, `spain`, `us_california` (`7ABC123`), `us_letters_digits`
    /// (`ABC-1234`), `eu_generic`, `us_generic` or `unknown`. Every format but the generic ones has rules that
    /// vouch for the text.
    #[schema(value_type = String)]
    pub format: PlateFormat,
    /// Background colour: `blue`, `yellow`, `green`, `white`, `black`; null when none stands out.
    #[schema(value_type = Option<String>)]
    pub color: Option<PlateColor>,
    /// Recognition confidence, 0..1.
    pub confidence: f32,
    /// Detection confidence, 0..1. 0 for a plate the plate detector missed and the text detector found as a line
    /// of text (Singapore's and some European plates): such a line is a plate only when it reads as one of a
    /// specific format.
    pub detection_confidence: f32,
    /// The plate's corners clockwise from top-left (`[x, y]`, image pixels); for a plate found as a line of
    /// text, the corners of its text.
    pub corners: [[f32; 2]; 4],
}

#[derive(Serialize, ToSchema)]
pub struct PlatesResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub image_width: u32,
    pub image_height: u32,
    /// Largest first.
    pub plates: Vec<PlateView>,
}

fn region(name: &str) -> Result<PlateRegion, ApiError> {
    Ok(match name {
        "auto" => PlateRegion::Auto,
        "china" => PlateRegion::China,
        "singapore" => PlateRegion::Singapore,
        "uk" => PlateRegion::UnitedKingdom,
        "europe" => PlateRegion::Europe,
        "us" => PlateRegion::UnitedStates,
        other => {
            return Err(ApiError::bad_arguments(format!(
                "region: `{other}` is not one of auto, china, singapore, uk, europe, us"
            )));
        }
    })
}

fn colour(c: PlateColour) -> PlateColor {
    match c {
        PlateColour::Blue => PlateColor::Blue,
        PlateColour::Yellow => PlateColor::Yellow,
        PlateColour::Green => PlateColor::Green,
        PlateColour::White => PlateColor::White,
        PlateColour::Black => PlateColor::Black,
    }
}

/// Whether a format has rules that vouch for the text (the generic EU and US rules take almost any short string).
fn specific(format: PlateFormat) -> bool {
    !matches!(format, PlateFormat::EuGeneric | PlateFormat::UsGeneric | PlateFormat::Unknown)
}

/// Of the two readings (the plate recogniser's and the general text recogniser's), the one that passes the plate
/// rules for `region`: a specific format before a generic one, then the general recogniser's reading, then the
/// more confident. Neither: unreadable, with the plate recogniser's raw text.
///
/// The general recogniser comes first because it is the more accurate of the two wherever both read a plate:
/// on the 1,000 plates of the benchmark's two sets it alone was right 762 times and the plate recogniser alone 9
/// times. The plate recogniser, trained on photos from one province (CCPD, Anhui), reads other provinces as
/// 皖 or 苏 and often drops the province of a new-energy plate, with high confidence (docs/ocr.md).
pub fn interpret(reading: &PlateReading, region: PlateRegion) -> PlateView {
    let general = reading.general_text.as_ref().map(|r| (r, true));
    let parsed = std::iter::once((&reading.plate_text, false))
        .chain(general)
        .filter_map(|(r, general)| parse(r, region).map(|p| (r, general, p)))
        .max_by(|(ra, ga, pa), (rb, gb, pb)| {
            (specific(pa.format), *ga, ra.confidence)
                .partial_cmp(&(specific(pb.format), *gb, rb.confidence))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(r, _, p)| (r, p));
    let (raw, number, status, format, confidence) = match parsed {
        Some((r, p)) => {
            let status = if p.corrected { FieldStatus::Corrected } else { FieldStatus::Valid };
            (r.text.clone(), Some(p.text), status, p.format, r.confidence)
        }
        None => {
            let r = &reading.plate_text;
            (r.text.clone(), None, FieldStatus::Unreadable, PlateFormat::Unknown, r.confidence)
        }
    };
    let round = |v: f32| (v * 1000.0).round() / 1000.0;
    PlateView {
        number,
        raw,
        status,
        format,
        color: reading.colour.map(colour),
        confidence: round(confidence),
        detection_confidence: round(reading.detection.score),
        corners: reading.detection.quad.map(|[x, y]| [x.round(), y.round()]),
    }
}

/// The plate a reading gives, if it is valid: read with the mainland plate grammar's help where the recogniser
/// hesitated (a correction, see [`plate::china_reading`]) when that is valid, else as read.
fn parse(reading: &Reading, region: PlateRegion) -> Option<plate::Plate> {
    let helped = plate::china_reading(&reading.choices)
        .map(|text| plate::Plate { corrected: true, ..plate::parse_plate(&text, region) })
        .filter(|p| p.valid);
    helped.or_else(|| Some(plate::parse_plate(&reading.text, region)).filter(|p| p.valid))
}

/// Below this detection confidence a candidate counts as a plate only when its text is a valid plate of a
/// specific format (China, Singapore, UK): the detector scores plates on unusual backgrounds low, and the
/// generic EU and US rules accept almost any short string, so they cannot vouch for a doubtful box.
const SURE_DETECTION: f32 = 0.7;

/// The plates of an engine output as the API reports them, largest first.
pub fn plates(output: &PlateOutput, region: PlateRegion) -> Vec<PlateView> {
    output
        .plates
        .iter()
        .map(|p| interpret(p, region))
        .filter(|view| view.detection_confidence >= SURE_DETECTION || (view.number.is_some() && specific(view.format)))
        .collect()
}

/// Find and read the licence plates in an image: number (validated against the plate formats), colour and
/// corners. Chinese plates (including 8-character new-energy plates) are read by a plate recogniser; other
/// formats (Singapore with its check letter, UK, EU, US) by the general text recogniser on the plate.
#[utoipa::path(
    tag = "ocr",
    security(("api_key" = ["ocr"])),
    request_body(content((PlateForm = "multipart/form-data"), (PlateForm = "application/x-www-form-urlencoded"), (PlateForm = "application/json"))),
    responses(
        (status = 200, description = "The plates, largest first", body = PlatesResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 422, description = "`NO_LICENSE_PLATE_FOUND`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/plates/recognize")]
pub async fn recognize_plates(
    caller: Caller<OcrScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    reject_unknown(&fields, &["image_file", "image_base64", "image_url", "region"])?;
    let region = fields.text("region").map(|r| region(r.trim())).transpose()?.unwrap_or(PlateRegion::Auto);
    let image = fields.require_image("image_file, image_base64 or image_url")?;
    let output = read(&state, image.load(&state.image_fetcher).await?).await?;
    let plates = plates(&output, region);
    if plates.is_empty() {
        return Err(ApiError::new(ErrorCode::NoLicensePlateFound, "no licence plate found in the image"));
    }
    Ok(HttpResponse::Ok().json(PlatesResponse {
        meta: caller.ctx.meta(),
        image_width: output.width,
        image_height: output.height,
        plates,
    }))
}

async fn read(state: &AppState, image: Vec<u8>) -> Result<PlateOutput, ApiError> {
    Ok(state.engine.read_plates(image, PlateSettings::default()).await?)
}

#[derive(Serialize, ToSchema)]
pub struct FaceppPlates {
    pub request_id: String,
    pub time_used: u64,
    /// `{license_plate_number, color, bound: {left_top, right_top, right_bottom, left_bottom}}` per plate,
    /// largest first; an empty list when there is none.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Value>,
}

/// Face++ `imagepp/v1/licenseplate`. `color`: 0 blue, 1 yellow, 2 black, 3 white, 4 green, 5 small new-energy,
/// 6 large new-energy, 8 invalid (no colour stands out). Plates whose number fails the format rules are left out.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["ocr"])),
    request_body(content((FaceppOcrForm = "multipart/form-data"), (FaceppOcrForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The plates (none: an empty list)", body = FaceppPlates),
        (status = 400, description = "`MISSING_ARGUMENTS`, image errors", body = ErrorEnvelope),
    )
)]
#[post("/licenseplate")]
pub async fn facepp_license_plate(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    authenticate_for(&state, &req, &fields, Scope::Ocr).await?;
    let image = fields.require_image("image_file")?;
    let output = read(&state, image.load(&state.image_fetcher).await?).await?;
    let results = plates(&output, PlateRegion::Auto)
        .into_iter()
        .filter_map(|view| {
            let number = view.number?;
            let code = view.color.map_or(8, |c| plate::facepp_color_code(c, view.format));
            let point = |[x, y]: [f32; 2]| json!({"x": x, "y": y});
            let [tl, tr, br, bl] = view.corners;
            Some(json!({
                "license_plate_number": number,
                "color": code,
                "bound": {"left_top": point(tl), "right_top": point(tr), "right_bottom": point(br), "left_bottom": point(bl)},
            }))
        })
        .collect();
    let meta = context(&req).meta();
    Ok(HttpResponse::Ok().json(FaceppPlates { request_id: meta.request_id, time_used: meta.time_used, results }))
}

#[cfg(test)]
mod tests {
    use faceplate_engine::BoxF;
    use faceplate_engine::plate::PlateDetection;

    use super::*;

    fn reading(text: &str, confidence: f32) -> Reading {
        Reading { text: text.into(), confidence, choices: text.chars().map(|c| vec![(c, confidence)]).collect() }
    }

    fn plate(plate_text: Reading, general_text: Reading) -> PlateReading {
        let detection = PlateDetection {
            bbox: BoxF { x1: 0.0, y1: 0.0, x2: 100.0, y2: 30.0 },
            score: 0.99,
            quad: [[0.0, 0.0], [100.0, 0.0], [100.0, 30.0], [0.0, 30.0]],
        };
        PlateReading { detection, plate_text, general_text: Some(general_text), colour: Some(PlateColour::Blue) }
    }

    #[test]
    fn the_general_reading_wins_over_a_more_confident_plate_reading() {
        // The plate recogniser's province bias (benchmark clean #93).
        let view = interpret(&plate(reading("皖Z74B2B", 0.977), reading("琼Z·74B2B", 0.968)), PlateRegion::Auto);
        assert_eq!((view.number.as_deref(), view.status), (Some("琼Z74B2B"), FieldStatus::Valid));
        // The general reading helped by the grammar: 戴 is not a province, 藏 is its next choice.
        let mut general = reading("戴Z·D97939", 0.925);
        general.choices[0].push(('藏', 0.03));
        let view = interpret(&plate(reading("ZD97939", 0.994), general), PlateRegion::Auto);
        assert_eq!((view.number.as_deref(), view.status), (Some("藏ZD97939"), FieldStatus::Corrected));
        // A general reading that is no plate leaves the plate recogniser's.
        let view = interpret(&plate(reading("京A12345", 0.9), reading("京A12", 0.99)), PlateRegion::Auto);
        assert_eq!(view.number.as_deref(), Some("京A12345"));
        // Neither: unreadable, with the plate recogniser's text.
        let view = interpret(&plate(reading("A", 0.9), reading("@@", 0.99)), PlateRegion::Auto);
        assert_eq!((view.number, view.raw.as_str(), view.status), (None, "A", FieldStatus::Unreadable));
    }
}
