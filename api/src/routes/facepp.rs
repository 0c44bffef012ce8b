//! The Face++-compatible API (`/facepp/v3/...`): Face++ paths, form fields, credentials (`api_key` and
//! `api_secret` in the form or the query string) and response shapes, so existing Face++ clients only change
//! the base URL. Errors keep Face++'s `error_message` (`CODE: argument`), which our envelope always carries.
//! Like Face++, these endpoints ignore arguments they do not know (clients send extras such as `start`); the
//! native API refuses them.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, post, web};
use faceplate_store::credentials::parse_bearer_token;
use faceplate_store::{Authenticated, KeyId, Purpose, Scope};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::authorize;
use crate::consent;
use crate::context::{Meta, RequestContext};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::forms::Fields;
use crate::routes::faces::{FaceRectangle, Thresholds, compare_embeddings, compare_side, detect_and_store, find_face};
use crate::state::AppState;

/// Authenticates from `api_key` + `api_secret` (form, then query string), or a bearer token.
pub(crate) async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    fields: &Fields,
) -> Result<Authenticated, ApiError> {
    authenticate_for(state, req, fields, Scope::Face).await
}

/// Like `authenticate`, for an endpoint that needs `scope`.
pub(crate) async fn authenticate_for(
    state: &AppState,
    req: &HttpRequest,
    fields: &Fields,
    scope: Scope,
) -> Result<Authenticated, ApiError> {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let lookup = |name: &str| {
        fields.text(name).map(str::to_string).or_else(|| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let (key, secret) = match (lookup("api_key"), lookup("api_secret")) {
        (Some(key), Some(secret)) => (key, secret),
        (None, _) if req.headers().contains_key("authorization") => {
            let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            let token = header.strip_prefix("Bearer ").unwrap_or("");
            let (id, secret) = parse_bearer_token(token).ok_or_else(|| ApiError::unauthenticated("invalid API key"))?;
            return authorize(state, req, &id, secret, Some(scope)).await;
        }
        (None, _) => return Err(ApiError::new(ErrorCode::MissingArguments, "api_key")),
        (Some(_), None) => return Err(ApiError::new(ErrorCode::MissingArguments, "api_secret")),
    };
    let id = KeyId::parse(key.trim()).ok_or_else(|| ApiError::unauthenticated("invalid api_key"))?;
    authorize(state, req, &id, secret.trim(), Some(scope)).await
}

pub(crate) fn context(req: &HttpRequest) -> RequestContext {
    req.extensions().get::<RequestContext>().cloned().unwrap_or_default()
}

#[derive(Serialize, ToSchema)]
pub struct FaceppFace {
    /// Absent for faces beyond the five largest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_token: Option<String>,
    pub face_rectangle: FaceRectangle,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<FaceppAttributes>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppAttributes {
    pub headpose: HeadPose,
}

#[derive(Serialize, ToSchema)]
pub struct HeadPose {
    pub pitch_angle: f32,
    pub roll_angle: f32,
    pub yaw_angle: f32,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppDetectResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub image_id: String,
    pub face_num: usize,
    pub faces: Vec<FaceppFace>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppCompareResponse {
    #[serde(flatten)]
    pub meta: Meta,
    /// Absent when either image has no face.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id2: Option<String>,
    pub faces1: Vec<FaceppFace>,
    pub faces2: Vec<FaceppFace>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppFaceDetail {
    #[serde(flatten)]
    pub meta: Meta,
    pub face_token: String,
    pub image_id: String,
    pub face_rectangle: FaceRectangle,
    /// Set with face/setuserid; empty until then.
    pub user_id: String,
    /// The FaceSets holding this face.
    pub facesets: Vec<crate::routes::facepp_sets::FaceppSetSummary>,
}

/// Face++ form fields for detect.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handler reads the fields itself
pub struct FaceppDetectForm {
    api_key: String,
    api_secret: String,
    /// Faceplate extension: a consent attestation covering the purpose; required unless the tenant allows Face++
    /// calls without one (`PUT /v1/settings/consent`).
    consent_id: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    image_base64: Option<String>,
    /// Only 0: the 83/106-point landmarks need a model this server does not have.
    return_landmark: Option<i32>,
    /// `none` or `headpose`; other Face++ attributes are refused (no model here produces them).
    return_attributes: Option<String>,
    calculate_all: Option<i32>,
}

/// Face++ form fields for compare.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaceppCompareForm {
    api_key: String,
    api_secret: String,
    /// Faceplate extension: a consent attestation covering the purpose; required unless the tenant allows Face++
    /// calls without one (`PUT /v1/settings/consent`).
    consent_id: Option<String>,
    face_token1: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file1: Option<String>,
    image_base64_1: Option<String>,
    face_token2: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file2: Option<String>,
    image_base64_2: Option<String>,
}

/// Face++ form fields for face/getdetail.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaceppGetDetailForm {
    api_key: String,
    api_secret: String,
    face_token: String,
}

fn to_facepp(face: crate::routes::faces::DetectedFace, headpose: bool) -> FaceppFace {
    let attributes = if headpose {
        face.quality.as_ref().map(|q| FaceppAttributes {
            headpose: HeadPose { pitch_angle: q.pitch, roll_angle: q.roll, yaw_angle: q.yaw },
        })
    } else {
        None
    };
    FaceppFace { face_token: face.face_token, face_rectangle: face.face_rectangle, attributes }
}

/// Face++ `detect`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content(
        (FaceppDetectForm = "multipart/form-data"),
        (FaceppDetectForm = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Face++ detect result", body = FaceppDetectResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, `IMAGE_ERROR_UNSUPPORTED_FORMAT`, `INVALID_IMAGE_SIZE`, `IMAGE_FILE_TOO_LARGE`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/detect")]
pub async fn facepp_detect(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    let caller = authenticate(&state, &req, &fields).await?;
    let grant = consent::require_facepp(&state, &caller.tenant, &fields, Purpose::FaceDetection).await?;
    if fields.int("return_landmark", 0, 0..=2)? != 0 {
        return Err(ApiError::bad_arguments("return_landmark"));
    }
    fields.int("calculate_all", 0, 0..=1)?;
    if fields.has("face_rectangle") {
        return Err(ApiError::bad_arguments("face_rectangle"));
    }
    let mut headpose = false;
    for attribute in fields.text("return_attributes").unwrap_or("none").split(',').map(str::trim) {
        match attribute {
            "none" | "" => {}
            "headpose" => headpose = true,
            other => return Err(ApiError::bad_arguments(format!("return_attributes: {other} is not available"))),
        }
    }
    let image = fields.require_image("image_file")?;
    let detected =
        detect_and_store(&state, &caller.tenant, image.load(&state.image_fetcher).await?, grant.as_ref()).await?;
    let image_id = detected.image_id.clone();
    let faces: Vec<FaceppFace> = detected.into_faces().into_iter().map(|f| to_facepp(f, headpose)).collect();
    Ok(HttpResponse::Ok().json(FaceppDetectResponse {
        meta: context(&req).meta(),
        image_id,
        face_num: faces.len(),
        faces,
    }))
}

/// Face++ `compare`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content(
        (FaceppCompareForm = "multipart/form-data"),
        (FaceppCompareForm = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Face++ compare result", body = FaceppCompareResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, `INVALID_FACE_TOKEN`, image errors", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/compare")]
pub async fn facepp_compare(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    let caller = authenticate(&state, &req, &fields).await?;
    let grant = consent::require_facepp(&state, &caller.tenant, &fields, Purpose::FaceCompare).await?;
    let invalid = |raw: &str| ApiError::new(ErrorCode::InvalidFaceToken, raw.to_string());
    let one = compare_side(&state, &caller.tenant, &mut fields, 1, grant.as_ref(), invalid).await?;
    let two = compare_side(&state, &caller.tenant, &mut fields, 2, grant.as_ref(), invalid).await?;
    let confidence = compare_embeddings(&one, &two);
    Ok(HttpResponse::Ok().json(FaceppCompareResponse {
        meta: context(&req).meta(),
        thresholds: confidence.map(|_| Thresholds::current()),
        confidence,
        image_id1: one.image_id,
        image_id2: two.image_id,
        faces1: one.faces.into_iter().map(|f| to_facepp(f, false)).collect(),
        faces2: two.faces.into_iter().map(|f| to_facepp(f, false)).collect(),
    }))
}

/// Face++ `face/getdetail`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content(
        (FaceppGetDetailForm = "multipart/form-data"),
        (FaceppGetDetailForm = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Face++ face detail", body = FaceppFaceDetail),
        (status = 400, description = "`MISSING_ARGUMENTS`, `INVALID_FACE_TOKEN`", body = ErrorEnvelope),
    )
)]
#[post("/face/getdetail")]
pub async fn facepp_get_detail(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fields = Fields::read(&req, payload, state.form_limits).await?;
    let caller = authenticate(&state, &req, &fields).await?;
    let raw = fields.text("face_token").ok_or_else(|| ApiError::new(ErrorCode::MissingArguments, "face_token"))?;
    let invalid = |raw: &str| ApiError::new(ErrorCode::InvalidFaceToken, raw.to_string());
    let face = find_face(&state, &caller.tenant, raw, invalid).await?;
    let facesets =
        crate::routes::facepp_sets::face_sets(&state.stores.tenant_data(&caller.tenant)?, &face.token).await?;
    Ok(HttpResponse::Ok().json(FaceppFaceDetail {
        meta: context(&req).meta(),
        face_token: face.token.to_string(),
        image_id: face.image_id,
        face_rectangle: face.rect.into(),
        user_id: face.user_id.unwrap_or_default(),
        facesets,
    }))
}
