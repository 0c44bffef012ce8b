//! Native face endpoints (`/v1/faces/...`, `face` scope) and the detection/comparison logic the Face++-compatible
//! endpoints share.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use faceplate_engine::{Face, confidence};
use faceplate_store::{ConsentGrant, FaceRecord, FaceRect, FaceToken, Purpose, Tenant};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::{Caller, FaceScope};
use crate::consent;
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::forms::Fields;
use crate::state::AppState;

/// The embedder whose vectors face tokens hold; vectors of different models are never compared.
pub const EMBEDDING_MODEL: &str = "sface-2021dec";

/// Face++ order and names: top, left, width, height in pixels.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct FaceRectangle {
    pub top: i32,
    pub left: i32,
    pub width: i32,
    pub height: i32,
}

impl From<FaceRect> for FaceRectangle {
    fn from(r: FaceRect) -> Self {
        FaceRectangle { top: r.top, left: r.left, width: r.width, height: r.height }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct PointView {
    pub x: f32,
    pub y: f32,
}

/// Five landmarks, named from the subject's point of view (the subject's left eye appears on the image right).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Landmarks {
    pub left_eye: PointView,
    pub right_eye: PointView,
    pub nose_tip: PointView,
    pub mouth_left_corner: PointView,
    pub mouth_right_corner: PointView,
}

impl Landmarks {
    /// From the detector's order: image-left eye (the subject's right), image-right eye, nose, image-left mouth
    /// corner, image-right mouth corner.
    fn from_points(p: &[[f32; 2]; 5]) -> Self {
        let v = |i: usize| PointView { x: (p[i][0] * 10.0).round() / 10.0, y: (p[i][1] * 10.0).round() / 10.0 };
        Landmarks { right_eye: v(0), left_eye: v(1), nose_tip: v(2), mouth_right_corner: v(3), mouth_left_corner: v(4) }
    }
}

/// Signals for rejecting poor enrolments.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QualityView {
    /// Shorter side of the face box in pixels.
    pub face_size: f32,
    /// Variance of the Laplacian of the aligned face; below about 100 the face is usually blurred.
    pub sharpness: f32,
    /// Head turn, nod and tilt in degrees, estimated from the landmarks (0 = frontal).
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
}

/// A face found in an image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetectedFace {
    /// Identifies the face for compare (and FaceSets) for 72 hours. Absent for faces beyond the per-image limit
    /// (the largest faces get tokens).
    pub face_token: Option<String>,
    pub face_rectangle: FaceRectangle,
    /// Detector confidence, 0..1.
    pub score: f32,
    pub landmark: Landmarks,
    pub quality: Option<QualityView>,
}

/// The faces of one image, largest first; each face that got a token comes with the record to store.
pub struct DetectedImage {
    pub image_id: String,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<(DetectedFace, Option<FaceRecord>)>,
}

impl DetectedImage {
    /// The embedding of the largest face with one.
    pub fn largest_embedding(&self) -> Option<Vec<f32>> {
        self.faces.first().and_then(|(_, r)| r.as_ref().map(|r| r.embedding.clone()))
    }

    pub fn into_faces(self) -> Vec<DetectedFace> {
        self.faces.into_iter().map(|(f, _)| f).collect()
    }
}

/// Detects and embeds the faces of one image. Nothing is stored; the image itself is never kept.
pub async fn detect(state: &AppState, image: Vec<u8>, ttl: chrono::Duration) -> Result<DetectedImage, ApiError> {
    let analysis = state.engine.analyze(image).await?;
    let image_id = FaceToken::generate().to_string();
    let now = Utc::now();
    let faces = analysis
        .faces
        .into_iter()
        .map(|face: Face| {
            let b = face.detection.bbox;
            let rect = FaceRect {
                top: b.y1.round() as i32,
                left: b.x1.round() as i32,
                width: b.width().round() as i32,
                height: b.height().round() as i32,
            };
            let landmark = Landmarks::from_points(&face.detection.landmarks);
            let quality = face.quality.map(|q| QualityView {
                face_size: q.face_size.round(),
                sharpness: q.sharpness.round(),
                yaw: (q.yaw * 10.0).round() / 10.0,
                pitch: (q.pitch * 10.0).round() / 10.0,
                roll: (q.roll * 10.0).round() / 10.0,
            });
            let record = face.embedding.map(|embedding| FaceRecord {
                token: FaceToken::generate(),
                image_id: image_id.clone(),
                model: EMBEDDING_MODEL.to_string(),
                embedding: embedding.to_vec(),
                rect,
                score: face.detection.score as f64,
                landmarks: json!(landmark),
                quality: json!(quality),
                created_at: now,
                expires_at: Some(now + ttl),
                user_id: None,
                consent_id: None,
            });
            let detected = DetectedFace {
                face_token: record.as_ref().map(|r| r.token.to_string()),
                face_rectangle: rect.into(),
                score: (face.detection.score * 1000.0).round() / 1000.0,
                landmark,
                quality,
            };
            (detected, record)
        })
        .collect();
    Ok(DetectedImage { image_id, width: analysis.width, height: analysis.height, faces })
}

/// Detects, embeds and stores the faces of one image for the tenant (tokens that expire), under `consent`.
pub async fn detect_and_store(
    state: &AppState,
    tenant: &Tenant,
    image: Vec<u8>,
    consent: Option<&ConsentGrant>,
) -> Result<DetectedImage, ApiError> {
    let data = state.stores.tenant_data(tenant)?;
    let mut detected = detect(state, image, state.token_ttl(tenant)).await?;
    for record in detected.faces.iter_mut().filter_map(|(_, r)| r.as_mut()) {
        record.consent_id = consent.map(|c| c.consent_id.clone());
    }
    data.insert_faces(detected.faces.iter().filter_map(|(_, r)| r.clone()).collect()).await?;
    Ok(detected)
}

/// Looks up one of the tenant's faces by a caller-supplied token. Malformed, unknown, expired and other
/// tenants' tokens all give the caller's `unknown` error (native: 404 FACE_NOT_FOUND; Face++: 400
/// INVALID_FACE_TOKEN).
pub async fn find_face(
    state: &AppState,
    tenant: &Tenant,
    raw: &str,
    unknown: impl Fn(&str) -> ApiError,
) -> Result<FaceRecord, ApiError> {
    let token = FaceToken::parse(raw.trim()).ok_or_else(|| unknown(raw))?;
    match state.stores.tenant_data(tenant)?.get_face(&token).await {
        Err(faceplate_store::StoreError::NotFound(_)) => Err(unknown(raw)),
        other => Ok(other?),
    }
}

/// One side of a comparison: a stored face, or the largest face of a new image.
pub struct CompareSide {
    pub image_id: Option<String>,
    pub faces: Vec<DetectedFace>,
    pub embedding: Option<Vec<f32>>,
}

/// Resolves `face_token<n>` (which wins, as in Face++) or the image fields `image_file<n>` / `image_base64<n>`,
/// under `consent`.
pub async fn compare_side(
    state: &AppState,
    tenant: &Tenant,
    fields: &mut Fields,
    n: u8,
    consent: Option<&ConsentGrant>,
    unknown_token: impl Fn(&str) -> ApiError,
) -> Result<CompareSide, ApiError> {
    let token_field = format!("face_token{n}");
    if let Some(raw) = fields.text(&token_field).map(str::to_string) {
        let record = find_face(state, tenant, &raw, unknown_token).await?;
        consent::check_face(state, tenant, consent, &record).await?;
        let face = DetectedFace {
            face_token: Some(record.token.to_string()),
            face_rectangle: record.rect.into(),
            score: record.score as f32,
            landmark: serde_json::from_value(record.landmarks.clone()).map_err(ApiError::internal)?,
            quality: serde_json::from_value(record.quality.clone()).map_err(ApiError::internal)?,
        };
        return Ok(CompareSide { image_id: None, faces: vec![face], embedding: Some(record.embedding) });
    }
    let (file, base64, url) = (format!("image_file{n}"), format!("image_base64_{n}"), format!("image_url{n}"));
    let Some(image) = fields.take_image(&file, &base64, &url)? else {
        return Err(ApiError::new(ErrorCode::MissingArguments, format!("{token_field}, {file} or {base64}")));
    };
    let detected = detect_and_store(state, tenant, image.load(&state.image_fetcher).await?, consent).await?;
    let embedding = detected.largest_embedding();
    Ok(CompareSide { image_id: Some(detected.image_id.clone()), faces: detected.into_faces(), embedding })
}

/// Confidence that two faces are the same person (0-100), when both sides have a face.
pub fn compare_embeddings(a: &CompareSide, b: &CompareSide) -> Option<f64> {
    let (Some(a), Some(b)) = (&a.embedding, &b.embedding) else { return None };
    if a.len() != b.len() {
        return None;
    }
    let cosine: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    Some(confidence::confidence(cosine))
}

/// Confidence a match must exceed for a false-accept rate of 1e-3, 1e-4, 1e-5.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Thresholds {
    #[serde(rename = "1e-3")]
    pub far_1e3: f64,
    #[serde(rename = "1e-4")]
    pub far_1e4: f64,
    #[serde(rename = "1e-5")]
    pub far_1e5: f64,
}

impl Thresholds {
    pub fn current() -> Self {
        let [a, b, c] = confidence::thresholds();
        Thresholds { far_1e3: a.1, far_1e4: b.1, far_1e5: c.1 }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DetectResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub image_id: String,
    pub image_width: u32,
    pub image_height: u32,
    pub face_num: usize,
    /// Largest first.
    pub faces: Vec<DetectedFace>,
}

#[derive(Serialize, ToSchema)]
pub struct CompareResponse {
    #[serde(flatten)]
    pub meta: Meta,
    /// 0-100; null when either side has no face.
    pub confidence: Option<f64>,
    pub thresholds: Option<Thresholds>,
    pub image_id1: Option<String>,
    pub image_id2: Option<String>,
    pub faces1: Vec<DetectedFace>,
    pub faces2: Vec<DetectedFace>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceDetail {
    #[serde(flatten)]
    pub meta: Meta,
    pub face_token: String,
    pub image_id: String,
    pub face_rectangle: FaceRectangle,
    pub score: f64,
    pub landmark: serde_json::Value,
    pub quality: serde_json::Value,
    /// The embedder that produced the stored vector.
    pub model: String,
    pub created_at: DateTime<Utc>,
    /// When the token expires; null once a FaceSet keeps it.
    pub expires_at: Option<DateTime<Utc>>,
    /// The consent attestation the template was made under (null: a Face++ call the tenant allowed without one).
    pub consent_id: Option<String>,
}

/// Request body for detect (multipart/form-data, x-www-form-urlencoded or JSON).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handler reads the fields itself
pub struct DetectForm {
    /// The image as an uploaded file (multipart).
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    /// The image, base64-encoded (a data: URL is accepted).
    image_base64: Option<String>,
    /// An http(s) URL to fetch the image from; only hosts on the server's allow-list (off by default).
    image_url: Option<String>,
    /// A consent attestation (`POST /v1/consents`) covering `face_detection`; the face tokens record it.
    consent_id: String,
}

/// Request body for compare: for each side a face token (wins) or an image.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CompareForm {
    face_token1: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file1: Option<String>,
    image_base64_1: Option<String>,
    face_token2: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file2: Option<String>,
    image_base64_2: Option<String>,
    /// A consent attestation covering `face_compare`; face tokens used must be of its data subject.
    consent_id: String,
}

const DETECT_FIELDS: &[&str] = &["image_file", "image_base64", "image_url", consent::FIELD];
const COMPARE_FIELDS: &[&str] = &[
    "face_token1",
    "image_file1",
    "image_base64_1",
    "image_url1",
    "face_token2",
    "image_file2",
    "image_base64_2",
    "image_url2",
    consent::FIELD,
];

pub fn reject_unknown(fields: &Fields, known: &[&str]) -> Result<(), ApiError> {
    match fields.unknown(known).first() {
        Some(name) => Err(ApiError::bad_arguments(format!("unknown argument `{name}`"))),
        None => Ok(()),
    }
}

/// Detect faces: boxes, five landmarks, quality and a face token for each of the largest faces.
#[utoipa::path(
    tag = "faces",
    security(("api_key" = ["face"])),
    request_body(content(
        (DetectForm = "multipart/form-data"),
        (DetectForm = "application/x-www-form-urlencoded"),
        (DetectForm = "application/json")
    )),
    responses(
        (status = 200, description = "The faces, largest first (an image without faces is not an error)", body = DetectResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, `IMAGE_ERROR_UNSUPPORTED_FORMAT`, `INVALID_IMAGE_SIZE`, `IMAGE_FILE_TOO_LARGE`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` (retry after `Retry-After` seconds) or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/faces/detect")]
pub async fn detect_faces(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    reject_unknown(&fields, DETECT_FIELDS)?;
    let grant = consent::require(&state, &caller.tenant, &fields, Purpose::FaceDetection).await?;
    let image = fields.require_image("image_file, image_base64 or image_url")?;
    let detected =
        detect_and_store(&state, &caller.tenant, image.load(&state.image_fetcher).await?, Some(&grant)).await?;
    let (image_id, image_width, image_height) = (detected.image_id.clone(), detected.width, detected.height);
    let faces = detected.into_faces();
    Ok(HttpResponse::Ok().json(DetectResponse {
        meta: caller.ctx.meta(),
        image_id,
        image_width,
        image_height,
        face_num: faces.len(),
        faces,
    }))
}

/// Compare two faces (tokens or images; from an image the largest face is used).
#[utoipa::path(
    tag = "faces",
    security(("api_key" = ["face"])),
    request_body(content(
        (CompareForm = "multipart/form-data"),
        (CompareForm = "application/x-www-form-urlencoded"),
        (CompareForm = "application/json")
    )),
    responses(
        (status = 200, description = "Confidence 0-100 and the thresholds for false-accept rates 1e-3, 1e-4, 1e-5", body = CompareResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, `IMAGE_ERROR_UNSUPPORTED_FORMAT`, `INVALID_IMAGE_SIZE`, `IMAGE_FILE_TOO_LARGE`", body = ErrorEnvelope),
        (status = 404, description = "`FACE_NOT_FOUND`: a face token is unknown or expired", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` (retry after `Retry-After` seconds) or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/faces/compare")]
pub async fn compare_faces(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    reject_unknown(&fields, COMPARE_FIELDS)?;
    let grant = consent::require(&state, &caller.tenant, &fields, Purpose::FaceCompare).await?;
    let not_found = |_: &str| ApiError::new(ErrorCode::FaceNotFound, "face token not found (unknown or expired)");
    let one = compare_side(&state, &caller.tenant, &mut fields, 1, Some(&grant), not_found).await?;
    let two = compare_side(&state, &caller.tenant, &mut fields, 2, Some(&grant), not_found).await?;
    let confidence = compare_embeddings(&one, &two);
    Ok(HttpResponse::Ok().json(CompareResponse {
        meta: caller.ctx.meta(),
        thresholds: confidence.map(|_| Thresholds::current()),
        confidence,
        image_id1: one.image_id,
        image_id2: two.image_id,
        faces1: one.faces,
        faces2: two.faces,
    }))
}

/// Get a stored face (never the image, which is not kept, nor the embedding).
#[utoipa::path(
    tag = "faces",
    security(("api_key" = ["face"])),
    params(("face_token" = String, Path, description = "32 hex characters")),
    responses(
        (status = 200, description = "The face", body = FaceDetail),
        (status = 404, description = "`FACE_NOT_FOUND`: unknown or expired", body = ErrorEnvelope),
    )
)]
#[get("/faces/{face_token}")]
pub async fn get_face(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = |_: &str| ApiError::new(ErrorCode::FaceNotFound, "face not found");
    let face = find_face(&state, &caller.tenant, &path, not_found).await?;
    Ok(HttpResponse::Ok().json(FaceDetail {
        meta: caller.ctx.meta(),
        face_token: face.token.to_string(),
        image_id: face.image_id,
        face_rectangle: face.rect.into(),
        score: face.score,
        landmark: face.landmarks,
        quality: face.quality,
        model: face.model,
        created_at: face.created_at,
        expires_at: face.expires_at,
        consent_id: face.consent_id.map(|c| c.to_string()),
    }))
}
