//! The Face++-compatible card and text endpoints (`/cardpp/v1/ocridcard`, `ocrbankcard`, `ocrdriverlicense`,
//! `/imagepp/v1/recognizetext`), with Face++'s response shapes. As in Face++, an image without a card gives
//! an empty `cards` list; a field that fails its checks is left out rather than returned wrong.

use actix_web::{HttpRequest, HttpResponse, post, web};
use faceplate_documents::{self as documents, Field, Sex};
use faceplate_engine::OcrSettings;
use faceplate_store::Scope;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorEnvelope};
use crate::forms::Fields;
use crate::routes::facepp::{authenticate_for, context};
use crate::routes::ocr::{no_store, parser_lines};
use crate::state::AppState;

/// Face++ form fields for the card and text endpoints.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handlers read the fields themselves
pub struct FaceppOcrForm {
    api_key: String,
    api_secret: String,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    image_base64: Option<String>,
    image_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppCards {
    pub request_id: String,
    pub time_used: u64,
    /// One entry per card found (none: an empty list). Field names as in Face++.
    #[schema(value_type = Vec<Object>)]
    pub cards: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppBankCards {
    pub request_id: String,
    pub time_used: u64,
    #[schema(value_type = Vec<Object>)]
    pub bank_cards: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppText {
    pub request_id: String,
    pub time_used: u64,
    /// Text lines: `{type: "textline", value, position: [{x, y} x 4], child_objects: []}`.
    #[schema(value_type = Vec<Object>)]
    pub result: Vec<Value>,
}

/// Reads the text of the request's image with `settings` (the native endpoint's for the same document).
async fn read(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    settings: OcrSettings,
) -> Result<faceplate_engine::OcrOutput, ApiError> {
    let mut fields = Fields::read(req, payload, state.form_limits).await?;
    authenticate_for(state, req, &fields, Scope::Ocr).await?;
    let image = fields.require_image("image_file")?;
    Ok(state.engine.read_text_with(image.load(&state.image_fetcher).await?, settings).await?)
}

/// Adds `name: value` when the field was read and passed its checks.
fn put<T>(card: &mut Map<String, Value>, name: &str, field: &Field<T>, render: impl Fn(&T) -> String) {
    if let Some(value) = field.value() {
        card.insert(name.to_string(), Value::String(render(value)));
    }
}

fn sex(s: &Sex) -> String {
    match s {
        Sex::Male => "男",
        Sex::Female => "女",
        Sex::Unspecified => "",
    }
    .to_string()
}

fn period(p: &documents::china_id::ValidityPeriod) -> String {
    match p.end {
        Some(end) => format!("{}-{}", p.start.format("%Y.%m.%d"), end.format("%Y.%m.%d")),
        None => format!("{}-长期", p.start.format("%Y.%m.%d")),
    }
}

/// Face++ `cardpp/v1/ocridcard`: Chinese resident identity cards, front and back.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["ocr"])),
    request_body(content((FaceppOcrForm = "multipart/form-data"), (FaceppOcrForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "`cards`: `{type: 1, side: front, name, gender, race, birthday, address, id_card_number}` or `{type: 1, side: back, issued_by, valid_date}`", body = FaceppCards),
        (status = 400, description = "`MISSING_ARGUMENTS`, image errors", body = ErrorEnvelope),
    )
)]
#[post("/ocridcard")]
pub async fn facepp_ocr_id_card(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read(&state, &req, payload, OcrSettings::card()).await?;
    let card = documents::china_id::parse_id_card(&parser_lines(&output));
    let mut cards = Vec::new();
    if let Some(front) = &card.front {
        let mut c = Map::new();
        c.insert("type".into(), json!(1));
        c.insert("side".into(), json!("front"));
        put(&mut c, "name", &front.name, String::clone);
        put(&mut c, "gender", &front.sex, sex);
        put(&mut c, "race", &front.ethnicity, String::clone);
        put(&mut c, "birthday", &front.birth_date, |d| d.format("%Y-%m-%d").to_string());
        put(&mut c, "address", &front.address, String::clone);
        put(&mut c, "id_card_number", &front.id_number, |n| n.number.clone());
        cards.push(Value::Object(c));
    }
    if let Some(back) = &card.back {
        let mut c = Map::new();
        c.insert("type".into(), json!(1));
        c.insert("side".into(), json!("back"));
        put(&mut c, "issued_by", &back.issuing_authority, String::clone);
        put(&mut c, "valid_date", &back.validity, period);
        cards.push(Value::Object(c));
    }
    let meta = context(&req).meta();
    Ok(HttpResponse::Ok().json(FaceppCards { request_id: meta.request_id, time_used: meta.time_used, cards }))
}

/// Face++ `cardpp/v1/ocrbankcard`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["ocr"])),
    request_body(content((FaceppOcrForm = "multipart/form-data"), (FaceppOcrForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "`bank_cards`: `{number, organization, valid_date}` (a Luhn-valid number only)", body = FaceppBankCards),
        (status = 400, description = "`MISSING_ARGUMENTS`, image errors", body = ErrorEnvelope),
    )
)]
#[post("/ocrbankcard")]
pub async fn facepp_ocr_bank_card(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read(&state, &req, payload, OcrSettings::bank_card()).await?;
    let card = documents::bank_card::parse_bank_card(&parser_lines(&output));
    let mut bank_cards = Vec::new();
    if let Some(number) = card.number.value() {
        let mut c = Map::new();
        c.insert("number".into(), json!(number.digits()));
        c.insert("organization".into(), serde_json::to_value(card.network).map_err(ApiError::internal)?);
        put(&mut c, "valid_date", &card.expiry, ToString::to_string);
        bank_cards.push(Value::Object(c));
    }
    let meta = context(&req).meta();
    let response =
        HttpResponse::Ok().json(FaceppBankCards { request_id: meta.request_id, time_used: meta.time_used, bank_cards });
    Ok(no_store(response))
}

/// Face++ `cardpp/v1/ocrdriverlicense`: Chinese driving licences (main page).
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["ocr"])),
    request_body(content((FaceppOcrForm = "multipart/form-data"), (FaceppOcrForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "`cards`: `{type: 1, side: front, license_number, name, gender, nationality, address, birthday, issue_date, class, valid_date}`", body = FaceppCards),
        (status = 400, description = "`MISSING_ARGUMENTS`, image errors", body = ErrorEnvelope),
    )
)]
#[post("/ocrdriverlicense")]
pub async fn facepp_ocr_driver_licence(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read(&state, &req, payload, OcrSettings::default()).await?;
    let licence = documents::driver_licence::parse_driver_licence(&parser_lines(&output));
    let mut cards = Vec::new();
    if licence.licence_number.value().is_some() || licence.name.value().is_some() {
        let mut c = Map::new();
        c.insert("type".into(), json!(1));
        c.insert("side".into(), json!("front"));
        put(&mut c, "license_number", &licence.licence_number, String::clone);
        put(&mut c, "name", &licence.name, String::clone);
        put(&mut c, "gender", &licence.sex, sex);
        put(&mut c, "nationality", &licence.nationality, String::clone);
        put(&mut c, "address", &licence.address, String::clone);
        put(&mut c, "birthday", &licence.birth_date, |d| d.format("%Y-%m-%d").to_string());
        put(&mut c, "issue_date", &licence.first_issue_date, |d| d.format("%Y-%m-%d").to_string());
        put(&mut c, "class", &licence.class, String::clone);
        put(&mut c, "valid_date", &licence.validity, period);
        cards.push(Value::Object(c));
    }
    let meta = context(&req).meta();
    Ok(HttpResponse::Ok().json(FaceppCards { request_id: meta.request_id, time_used: meta.time_used, cards }))
}

/// Face++ `imagepp/v1/recognizetext`: every text line with its position.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["ocr"])),
    request_body(content((FaceppOcrForm = "multipart/form-data"), (FaceppOcrForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Text lines in reading order", body = FaceppText),
        (status = 400, description = "`MISSING_ARGUMENTS`, image errors", body = ErrorEnvelope),
    )
)]
#[post("/recognizetext")]
pub async fn facepp_recognize_text(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let output = read(&state, &req, payload, OcrSettings::default()).await?;
    let result = output
        .lines
        .iter()
        .map(|l| {
            let position: Vec<Value> = l.quad.iter().map(|[x, y]| json!({"x": x.round(), "y": y.round()})).collect();
            json!({"type": "textline", "value": l.text, "position": position, "child_objects": []})
        })
        .collect();
    let meta = context(&req).meta();
    Ok(HttpResponse::Ok().json(FaceppText { request_id: meta.request_id, time_used: meta.time_used, result }))
}
