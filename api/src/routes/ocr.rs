//! Text and document reading (`/v1/ocr/...`, `ocr` scope): the engine reads the text lines (PP-OCRv4), the
//! `faceplate-documents` parsers turn them into validated fields. A field that fails its checks (a check digit,
//! a date, a known format) is reported with `status: "unreadable"` and no value, never as a wrong value.

use actix_web::{HttpRequest, HttpResponse, post, web};
use faceplate_documents::{self as documents, FieldStatus};
use faceplate_engine::ocr::{OcrOutput, OcrSettings};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, OcrScope};
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::forms::Fields;
use crate::routes::faces::reject_unknown;
use crate::state::AppState;

/// Request body for every OCR endpoint (multipart/form-data, x-www-form-urlencoded or JSON).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handlers read the fields themselves
pub struct OcrForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    image_base64: Option<String>,
    image_url: Option<String>,
}

/// One line of text: corners clockwise from top-left, in pixels of the (EXIF-upright) image.
#[derive(Serialize, ToSchema)]
pub struct TextLineView {
    pub text: String,
    /// 0..1.
    pub confidence: f32,
    pub quad: [[f32; 2]; 4],
}

#[derive(Serialize, ToSchema)]
pub struct TextRowView {
    /// The row's lines, left to right, joined by a space.
    pub text: String,
    pub confidence: f32,
    /// Indices into `lines`.
    pub lines: Vec<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct TextResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub image_width: u32,
    pub image_height: u32,
    /// How far the text is turned clockwise in the image: 0, 90, 180 or 270 degrees.
    pub rotation: u16,
    /// In reading order. Empty when the image has no text.
    pub lines: Vec<TextLineView>,
    /// Lines side by side on one visual row, top to bottom.
    pub rows: Vec<TextRowView>,
}

/// A parsed document. Every field is `{value, raw, confidence, status}`; `status` is `valid`, `corrected` (an
/// OCR confusion such as O/0 was fixed and the check passed, or an MRZ country code was taken from the zone's
/// other code), `derived` (illegible, taken from a field that encodes it and passed its check: an ID number's
/// birth date and sex, a driving licence's nationality from its licence number), `unreadable` or `missing`.
#[derive(Serialize, ToSchema)]
pub struct DocumentResponse {
    #[serde(flatten)]
    pub meta: Meta,
    /// `idcard`, `mrz`, `bankcard` or `driverlicense`.
    pub document: &'static str,
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// Every text line read, for fields the parser does not know. The MRZ endpoint reads a page's other text
    /// only where the zone's long lines alone do not make a whole zone, so its lines may be the zone's alone;
    /// `/v1/ocr/text` reads all of it.
    pub lines: Vec<TextLineView>,
}

/// Reads the text of the request's image.
async fn read(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<OcrOutput, ApiError> {
    read_with(state, req, payload, OcrSettings::default()).await
}

/// [`read`] with other OCR settings.
async fn read_with(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    settings: OcrSettings,
) -> Result<OcrOutput, ApiError> {
    let mut fields = Fields::read(req, payload, state.form_limits).await?;
    reject_unknown(&fields, &["image_file", "image_base64", "image_url"])?;
    let image = fields.require_image("image_file, image_base64 or image_url")?;
    Ok(state.engine.read_text_with(image.load(&state.image_fetcher).await?, settings).await?)
}

fn line_views(output: &OcrOutput) -> Vec<TextLineView> {
    output
        .lines
        .iter()
        .map(|l| TextLineView {
            text: l.text.clone(),
            confidence: (l.confidence * 1000.0).round() / 1000.0,
            quad: l.quad.map(|[x, y]| [x.round(), y.round()]),
        })
        .collect()
}

/// The engine's rows as the parsers take them: a row joins the pieces of one printed line that the detector
/// found apart (a card number's digit groups, a label and its value), but not text far apart on the same
/// height (a card holder's name and the network logo at the other edge): a row is cut where the gap between
/// two of its lines is over [`WIDE_GAP`] text heights.
pub fn parser_lines(output: &OcrOutput) -> Vec<documents::TextLine> {
    let mut out = Vec::new();
    for row in &output.rows {
        let lines = &output.lines[row.lines.clone()];
        let mut start = 0;
        for end in 1..=lines.len() {
            if end < lines.len() && !wide_gap(&lines[end - 1], &lines[end]) {
                continue;
            }
            let piece = &lines[start..end];
            out.push(if piece.len() == lines.len() {
                documents::TextLine { text: row.text.clone(), confidence: row.confidence, quad: row.quad }
            } else {
                documents::TextLine {
                    text: piece.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" "),
                    confidence: piece.iter().map(|l| l.confidence).fold(1.0, f32::min),
                    quad: bounding_quad(piece.iter().flat_map(|l| l.quad)),
                }
            });
            start = end;
        }
    }
    out
}

/// Text heights of empty space beyond which two lines of a row are separate items.
const WIDE_GAP: f32 = 3.0;

/// Centre, length (the longer side) and height (the shorter side) of a line's quad, whatever its rotation.
fn extent(quad: &[[f32; 2]; 4]) -> ([f32; 2], f32, f32) {
    let d = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let centre = [quad.iter().map(|p| p[0]).sum::<f32>() / 4.0, quad.iter().map(|p| p[1]).sum::<f32>() / 4.0];
    let (a, b) = ((d(quad[0], quad[1]) + d(quad[2], quad[3])) / 2.0, (d(quad[1], quad[2]) + d(quad[3], quad[0])) / 2.0);
    (centre, a.max(b), a.min(b))
}

fn wide_gap(a: &faceplate_engine::TextLine, b: &faceplate_engine::TextLine) -> bool {
    let ((ca, la, ha), (cb, lb, hb)) = (extent(&a.quad), extent(&b.quad));
    let distance = ((ca[0] - cb[0]).powi(2) + (ca[1] - cb[1]).powi(2)).sqrt();
    distance - (la + lb) / 2.0 > WIDE_GAP * ha.max(hb)
}

/// The axis-aligned box around some points, as a quad.
fn bounding_quad(points: impl Iterator<Item = [f32; 2]>) -> [[f32; 2]; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for [x, y] in points {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
}

fn document(
    meta: Meta,
    kind: &'static str,
    fields: impl Serialize,
    output: &OcrOutput,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DocumentResponse {
        meta,
        document: kind,
        fields: serde_json::to_value(fields).map_err(ApiError::internal)?,
        lines: line_views(output),
    }))
}

/// Bank card responses carry the card number: no cache may keep them.
pub(crate) fn no_store(mut response: HttpResponse) -> HttpResponse {
    use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn no_card(what: &str) -> ApiError {
    ApiError::new(ErrorCode::NoCardFound, format!("no {what} found in the image"))
}

fn found<T>(field: &documents::Field<T>) -> bool {
    field.status != FieldStatus::Missing
}

/// Read all the text in an image: lines with boxes and confidences, in reading order.
#[utoipa::path(
    tag = "ocr",
    security(("api_key" = ["ocr"])),
    request_body(content((OcrForm = "multipart/form-data"), (OcrForm = "application/x-www-form-urlencoded"), (OcrForm = "application/json"))),
    responses(
        (status = 200, description = "The text (none is not an error)", body = TextResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/ocr/text")]
pub async fn read_text(
    caller: Caller<OcrScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read(&state, &req, payload).await?;
    Ok(HttpResponse::Ok().json(TextResponse {
        meta: caller.ctx.meta(),
        image_width: output.width,
        image_height: output.height,
        rotation: output.rotation,
        lines: line_views(&output),
        rows: output
            .rows
            .iter()
            .map(|r| TextRowView { text: r.text.clone(), confidence: r.confidence, lines: r.lines.clone().collect() })
            .collect(),
    }))
}

/// Read a Chinese resident identity card (front: name, sex, ethnicity, birth date, address, ID number with its
/// check digit verified and cross-checked; back: issuing authority and validity).
#[utoipa::path(
    tag = "ocr",
    security(("api_key" = ["ocr"])),
    request_body(content((OcrForm = "multipart/form-data"), (OcrForm = "application/x-www-form-urlencoded"), (OcrForm = "application/json"))),
    responses(
        (status = 200, description = "The card's fields", body = DocumentResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 422, description = "`NO_CARD_FOUND`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/ocr/idcard")]
pub async fn read_id_card(
    caller: Caller<OcrScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read_with(&state, &req, payload, OcrSettings::card()).await?;
    let card = documents::china_id::parse_id_card(&parser_lines(&output));
    if card.side == documents::china_id::IdCardSide::Unknown {
        return Err(no_card("identity card"));
    }
    document(caller.ctx.meta(), "idcard", card, &output)
}

/// Read an ICAO 9303 machine-readable zone (passports TD3, ID cards TD1/TD2) with every check digit verified.
#[utoipa::path(
    tag = "ocr",
    security(("api_key" = ["ocr"])),
    request_body(content((OcrForm = "multipart/form-data"), (OcrForm = "application/x-www-form-urlencoded"), (OcrForm = "application/json"))),
    responses(
        (status = 200, description = "The MRZ's fields and check digits", body = DocumentResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 422, description = "`NO_CARD_FOUND`: no machine-readable zone", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/ocr/mrz")]
pub async fn read_mrz(
    caller: Caller<OcrScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read_with(&state, &req, payload, OcrSettings::machine_readable_page()).await?;
    let mrz = documents::mrz::parse_mrz(&parser_lines(&output)).ok_or_else(|| no_card("machine-readable zone"))?;
    document(caller.ctx.meta(), "mrz", mrz, &output)
}

/// Read a bank card: the number (Luhn-checked, grouped and masked), network, expiry and holder name.
#[utoipa::path(
    tag = "ocr",
    security(("api_key" = ["ocr"])),
    request_body(content((OcrForm = "multipart/form-data"), (OcrForm = "application/x-www-form-urlencoded"), (OcrForm = "application/json"))),
    responses(
        (status = 200, description = "The card's fields", body = DocumentResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 422, description = "`NO_CARD_FOUND`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/ocr/bankcard")]
pub async fn read_bank_card(
    caller: Caller<OcrScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read_with(&state, &req, payload, OcrSettings::bank_card()).await?;
    let card = documents::bank_card::parse_bank_card(&parser_lines(&output));
    if !found(&card.number) {
        return Err(no_card("bank card number"));
    }
    // The text lines would repeat the card number unmasked: a bank card response carries the fields only.
    let response = document(caller.ctx.meta(), "bankcard", card, &OcrOutput::default())?;
    Ok(no_store(response))
}

/// Read a Chinese driving licence: licence number (check digit verified), name, sex, nationality, address,
/// birth date, first issue date, vehicle class and validity.
#[utoipa::path(
    tag = "ocr",
    security(("api_key" = ["ocr"])),
    request_body(content((OcrForm = "multipart/form-data"), (OcrForm = "application/x-www-form-urlencoded"), (OcrForm = "application/json"))),
    responses(
        (status = 200, description = "The licence's fields", body = DocumentResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 422, description = "`NO_CARD_FOUND`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/ocr/driverlicense")]
pub async fn read_driver_licence(
    caller: Caller<OcrScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read(&state, &req, payload).await?;
    let licence = documents::driver_licence::parse_driver_licence(&parser_lines(&output));
    if !found(&licence.licence_number) && !found(&licence.name) {
        return Err(no_card("driving licence"));
    }
    document(caller.ctx.meta(), "driverlicense", licence, &output)
}
