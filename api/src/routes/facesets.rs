//! FaceSets and 1:N search, native (`/v1/facesets/...`, `face` scope), and the logic the Face++-compatible
//! endpoints share: argument rules, search over one or several sets, asynchronous tasks.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use faceplate_engine::confidence;
use faceplate_engine::embed::DIMENSIONS;
use faceplate_store::{
    ConsentGrant, FaceSet, FaceSetChanges, FaceSetRef, FaceSetTask, FaceSetToken, FaceToken, Failure, MembershipChange,
    NewFaceSet, Purpose, Selection, StoreError, TaskKind, Tenant, TenantData,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, FaceScope};
use crate::consent;
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::forms::Fields;
use crate::routes::faces::{DetectedFace, Thresholds, detect, detect_and_store, find_face, reject_unknown};
use crate::routes::types::next_after;
use crate::state::AppState;

/// Face tokens one native add or remove call may carry.
pub const MAX_TOKENS_PER_CALL: usize = 1000;
/// Results one native search may return.
pub const MAX_NATIVE_TOP_K: i64 = 100;
/// Face++'s `face_tokens` value for "every face" in removeface.
pub const REMOVE_ALL: &str = "RemoveAllFaceTokens";
/// Sets one search may cover.
pub const MAX_SETS_PER_SEARCH: usize = 10;

// ---- argument rules (Face++'s, which the native API keeps) ----

/// Characters Face++ forbids in outer ids, tags, display names and user ids.
const FORBIDDEN: &[char] = &['^', '@', ',', '&', '=', '*', '\'', '"'];

pub fn check_label(name: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.chars().count() > max_chars {
        return Err(ApiError::bad_arguments(format!("{name}: at most {max_chars} characters")));
    }
    if value.chars().any(|c| FORBIDDEN.contains(&c) || c.is_control()) {
        return Err(ApiError::bad_arguments(format!(
            "{name}: must not contain ^ @ , & = * ' \" or control characters"
        )));
    }
    Ok(())
}

pub fn check_outer_id(name: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_arguments(format!("{name}: must not be empty")));
    }
    check_label(name, value, 255)?;
    Ok(value.to_string())
}

pub fn check_tags(tags: &[String]) -> Result<(), ApiError> {
    if tags.len() > 100 {
        return Err(ApiError::bad_arguments("tags: at most 100"));
    }
    tags.iter().try_for_each(|t| check_label("tags", t, 255))
}

pub fn check_user_data(value: &str) -> Result<(), ApiError> {
    if value.len() > 16 * 1024 {
        return Err(ApiError::bad_arguments("user_data: at most 16 KB"));
    }
    Ok(())
}

pub fn check_user_id(value: &str) -> Result<(), ApiError> {
    check_label("user_id", value, 255)
}

// ---- shared operations ----

/// Why a search found nothing to search with.
pub struct SearchQuery {
    /// Faces detected in the query image (when the query was an image).
    pub faces: Vec<DetectedFace>,
    pub image_id: Option<String>,
    /// The vector searched with; `None` when the image had no face.
    pub embedding: Option<Vec<f32>>,
}

/// One match of a search.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchMatch {
    pub face_token: String,
    /// The tenant's id for the person (set with user_id on enrolment or face/setuserid); empty if none.
    pub user_id: String,
    pub faceset_token: String,
    /// 0-100, comparable with `thresholds`.
    pub confidence: f64,
}

/// The `k` best matches for `query` across `sets`, best first. A face in several of the sets appears once.
pub async fn search_sets(
    state: &AppState,
    data: &TenantData,
    sets: &[FaceSet],
    query: &[f32],
    k: usize,
) -> Result<Vec<SearchMatch>, ApiError> {
    let mut candidates = Vec::new();
    for set in sets {
        let found = state.indexes.search(data, set, query.to_vec(), k).await?;
        if found.is_empty() {
            continue;
        }
        let members = data.members_by_key(&set.token, found.iter().map(|(key, _)| *key).collect()).await?;
        for (key, cosine) in found {
            // A member removed since the index was read is simply not returned.
            if let Some(member) = members.iter().find(|m| m.key == key) {
                candidates.push((cosine, member.face_token.to_string(), member.user_id.clone(), set.token.to_string()));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.1.clone()));
    // Templates of subjects whose processing is restricted are never matched.
    if !candidates.is_empty() {
        let restricted = data.restricted_faces(candidates.iter().map(|c| c.1.clone()).collect()).await?;
        candidates.retain(|c| !restricted.contains(&c.1));
    }
    candidates.truncate(k);
    Ok(candidates
        .into_iter()
        .map(|(cosine, face_token, user_id, faceset_token)| SearchMatch {
            face_token,
            user_id: user_id.unwrap_or_default(),
            faceset_token,
            confidence: confidence::confidence(cosine),
        })
        .collect())
}

/// Parses a caller-supplied embedding: `DIMENSIONS` finite numbers, normalised to unit length.
pub fn parse_embedding(raw: &str) -> Result<Vec<f32>, ApiError> {
    let values: Result<Vec<f32>, _> = raw.split(',').map(|v| v.trim().parse::<f32>()).collect();
    let bad = || ApiError::bad_arguments(format!("embedding: must be {DIMENSIONS} finite numbers, not all zero"));
    let mut values = values.map_err(|_| bad())?;
    if values.len() != DIMENSIONS || values.iter().any(|v| !v.is_finite()) {
        return Err(bad());
    }
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm < 1e-6 {
        return Err(bad());
    }
    values.iter_mut().for_each(|v| *v /= norm);
    Ok(values)
}

/// Resolves what to search with, under `consent`: `face_token`, else an image (its largest face), else (native)
/// `embedding`.
pub async fn search_query(
    state: &AppState,
    tenant: &Tenant,
    fields: &mut Fields,
    allow_embedding: bool,
    consent: Option<&ConsentGrant>,
    unknown_token: impl Fn(&str) -> ApiError,
) -> Result<SearchQuery, ApiError> {
    if let Some(raw) = fields.text("face_token").map(str::to_string) {
        let face = find_face(state, tenant, &raw, unknown_token).await?;
        consent::check_face(state, tenant, consent, &face).await?;
        return Ok(SearchQuery { faces: Vec::new(), image_id: None, embedding: Some(face.embedding) });
    }
    if let Some(image) = fields.take_image("image_file", "image_base64", "image_url")? {
        let detected = detect_and_store(state, tenant, image.load(&state.image_fetcher).await?, consent).await?;
        let embedding = detected.largest_embedding();
        return Ok(SearchQuery { image_id: Some(detected.image_id.clone()), faces: detected.into_faces(), embedding });
    }
    if allow_embedding && let Some(raw) = fields.text("embedding") {
        return Ok(SearchQuery { faces: Vec::new(), image_id: None, embedding: Some(parse_embedding(raw)?) });
    }
    let what = if allow_embedding {
        "face_token, image_file, image_base64, image_url or embedding"
    } else {
        "face_token, image_file, image_base64 or image_url"
    };
    Err(ApiError::new(ErrorCode::MissingArguments, what))
}

/// The JSON summary of a finished add or remove, as Face++ task_status reports it.
pub fn change_summary(change: &MembershipChange, kind: TaskKind) -> serde_json::Value {
    let counted = match kind {
        TaskKind::AddFaces => "face_added",
        TaskKind::RemoveFaces => "face_removed",
    };
    json!({
        counted: change.changed,
        "face_count": change.faceset.face_count,
        "failure_detail": failure_detail(&change.failures),
    })
}

pub fn failure_detail(failures: &[Failure]) -> Vec<FailureDetail> {
    failures
        .iter()
        .map(|f| FailureDetail { face_token: f.face_token.clone(), reason: f.reason.as_str().to_string() })
        .collect()
}

/// Runs an asynchronous add or remove to the end and records its result. Both are idempotent, so a task
/// interrupted by a crash is simply run again at the next start.
pub async fn run_task(state: &AppState, tenant: &Tenant, task: FaceSetTask) -> Result<(), ApiError> {
    let data = state.stores.tenant_data(tenant)?;
    let set = FaceSetRef::Token(task.faceset_token.clone());
    let change = match task.kind {
        TaskKind::AddFaces => {
            let (tokens, consent) = (task.face_tokens.clone(), task.consent_id.clone());
            data.add_faces(set, tokens, state.facesets.max_faces_per_set, consent).await
        }
        TaskKind::RemoveFaces => {
            let which = if task.face_tokens == [REMOVE_ALL] {
                Selection::All
            } else {
                Selection::Tokens(task.face_tokens.clone())
            };
            data.remove_faces(set, which, state.token_ttl(data.tenant())).await
        }
    };
    let result = match change {
        Ok(change) => {
            state.indexes.refresh_soon(data.clone(), change.faceset.clone());
            change_summary(&change, task.kind)
        }
        // The set was deleted meanwhile: the task ends with nothing done.
        Err(StoreError::NotFound(_)) => json!({"task_failure_reason": "FACESET_DELETED"}),
        // The consent was revoked before the task ran: nothing may be added under it.
        Err(StoreError::ConsentRefused(_)) => json!({"task_failure_reason": "CONSENT_REVOKED"}),
        Err(e) => return Err(e.into()),
    };
    data.finish_task(&task.id, result).await?;
    Ok(())
}

/// Starts a task in the background; a failure leaves it pending for the next start-up.
pub fn spawn_task(state: web::Data<AppState>, tenant: Tenant, task: FaceSetTask) {
    tokio::spawn(async move {
        let id = task.id.clone();
        if let Err(e) = run_task(&state, &tenant, task).await {
            tracing::warn!(task = %id, error = %e.message, "FaceSet task failed; it will be retried at start-up");
        }
    });
}

// ---- wire types ----

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailureDetail {
    pub face_token: String,
    /// `INVALID_FACE_TOKEN` (unknown, expired, or not in the set), `QUOTA_EXCEEDED` (the set is full) or
    /// `CONSENT_REQUIRED` (the face is of another data subject than the consent it is added under).
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct FaceSetView {
    pub faceset_token: String,
    pub outer_id: Option<String>,
    pub display_name: String,
    pub tags: Vec<String>,
    pub user_data: String,
    pub face_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<FaceSet> for FaceSetView {
    fn from(s: FaceSet) -> Self {
        FaceSetView {
            faceset_token: s.token.to_string(),
            outer_id: s.outer_id,
            display_name: s.display_name,
            tags: s.tags,
            user_data: s.user_data,
            face_count: s.face_count,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FaceSetResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub faceset: FaceSetView,
}

#[derive(Serialize, ToSchema)]
pub struct FaceSetList {
    #[serde(flatten)]
    pub meta: Meta,
    pub facesets: Vec<FaceSetView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub face_token: String,
    pub user_id: Option<String>,
    pub added_at: DateTime<Utc>,
    /// The consent attestation the face was enrolled under; revoking it removes the entry.
    pub consent_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    #[serde(flatten)]
    pub meta: Meta,
    pub faceset_token: String,
    pub face_count: i64,
    pub faces: Vec<MemberView>,
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub faceset_token: String,
    /// Faces added (add) or removed (remove) by this call.
    pub changed: usize,
    pub face_count: i64,
    pub failure_detail: Vec<FailureDetail>,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub faceset_token: String,
    pub face_token: String,
    /// False when the set already held a face for this `external_image_id` (nothing was added).
    pub added: bool,
    pub face_count: i64,
    /// The enrolled face as detected (absent when `added` is false).
    pub face: Option<DetectedFace>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    #[serde(flatten)]
    pub meta: Meta,
    /// Set when the query was an image: its faces, largest first (the largest is searched).
    pub image_id: Option<String>,
    pub faces: Vec<DetectedFace>,
    /// Best first. Empty when nothing reaches `min_confidence`, or the image has no face.
    pub results: Vec<SearchMatch>,
    pub thresholds: Thresholds,
}

#[derive(Serialize, ToSchema)]
pub struct DeletedResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub deleted: String,
    /// FaceSet deletion: faces it held. Face deletion: sets it was removed from.
    pub removed: i64,
}

fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateFaceSetRequest {
    /// Your own unique id for the set (at most 255 characters, none of `^@,&=*'"`).
    pub outer_id: Option<String>,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Up to 16 KB of your own data.
    #[serde(default)]
    pub user_data: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateFaceSetRequest {
    /// A new outer id; null clears it.
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub outer_id: Option<Option<String>>,
    pub display_name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub user_data: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddFacesRequest {
    /// Up to 1000 face tokens from detect.
    pub face_tokens: Vec<String>,
    /// A consent attestation covering `face_enrolment`; the FaceSet entries record it.
    pub consent_id: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RemoveFacesRequest {
    /// Up to 1000 face tokens to remove.
    #[serde(default)]
    pub face_tokens: Vec<String>,
    /// Remove every face (instead of `face_tokens`).
    #[serde(default)]
    pub all: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFaceRequest {
    /// Your id for the person; null clears it.
    #[serde(deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<Option<String>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FaceSetListQuery {
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// Return sets after this token.
    pub after: Option<String>,
    /// Comma-separated: only sets carrying every one of these tags.
    pub tags: Option<String>,
    /// Only the set with this outer id.
    pub outer_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberPageQuery {
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// `next_after` from the previous page.
    pub after: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteFaceSetQuery {
    /// Delete even if the set holds faces (default false: a non-empty set is a 409 CONFLICT).
    #[serde(default)]
    pub force: bool,
}

/// Request body for enrol (multipart/form-data, x-www-form-urlencoded or JSON).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handler reads the fields itself
pub struct EnrolForm {
    /// A consent attestation covering `face_enrolment`; the template and its FaceSet entry record it.
    consent_id: String,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    image_base64: Option<String>,
    image_url: Option<String>,
    /// Your id for the person.
    user_id: Option<String>,
    /// Your id for the image (e.g. its SHA-256): enrolling the same id again returns the earlier face, so an
    /// interrupted import can simply be re-run.
    external_image_id: Option<String>,
    /// `reject` (default): an image with several faces is refused (MULTIPLE_FACES); `largest`: enrol the
    /// largest face.
    multiple_faces: Option<String>,
}

/// Request body for search (multipart/form-data, x-www-form-urlencoded or JSON).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SearchForm {
    /// A consent attestation covering `face_search` (of the person searched for).
    consent_id: String,
    /// Sets to search (comma-separated or a JSON list), up to 10; or `outer_ids`.
    faceset_tokens: Option<Vec<String>>,
    outer_ids: Option<Vec<String>>,
    /// Search with a stored face...
    face_token: Option<String>,
    /// ...or the largest face of an image...
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    image_base64: Option<String>,
    image_url: Option<String>,
    /// ...or a 128-number embedding (the SFace model's; normalised here).
    embedding: Option<Vec<f32>>,
    /// Matches to return, 1 to 100 (default 1).
    top_k: Option<i64>,
    /// Only matches with at least this confidence (0-100).
    min_confidence: Option<f64>,
    /// Only matches above the threshold for this false-accept rate: `1e-3`, `1e-4` or `1e-5`.
    threshold: Option<String>,
}

// ---- handlers ----

fn parse_set_token(raw: &str) -> Result<FaceSetToken, ApiError> {
    FaceSetToken::parse(raw).ok_or_else(|| ApiError::new(ErrorCode::FacesetNotFound, "FaceSet not found"))
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit.unwrap_or(100) {
        n @ 1..=1000 => Ok(n),
        _ => Err(ApiError::bad_arguments("limit must be between 1 and 1000")),
    }
}

fn check_token_count(tokens: &[String]) -> Result<(), ApiError> {
    if tokens.len() > MAX_TOKENS_PER_CALL {
        return Err(ApiError::bad_arguments(format!("face_tokens: at most {MAX_TOKENS_PER_CALL} per call")));
    }
    Ok(())
}

/// Create a FaceSet.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    request_body = CreateFaceSetRequest,
    responses(
        (status = 201, description = "The new set", body = FaceSetResponse),
        (status = 400, description = "`BAD_ARGUMENTS`", body = ErrorEnvelope),
        (status = 409, description = "`CONFLICT`: the outer_id is taken; `LIMIT_REACHED`: too many sets", body = ErrorEnvelope),
    )
)]
#[post("/facesets")]
pub async fn create_faceset(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateFaceSetRequest = crate::routes::keys::optional_json(&body)?;
    let outer_id = body.outer_id.as_deref().map(|o| check_outer_id("outer_id", o)).transpose()?;
    check_label("display_name", &body.display_name, 256)?;
    check_tags(&body.tags)?;
    check_user_data(&body.user_data)?;
    let new = NewFaceSet { outer_id, display_name: body.display_name, tags: body.tags, user_data: body.user_data };
    let set = state.stores.tenant_data(&caller.tenant)?.create_faceset(new, state.facesets.max_sets_per_tenant).await?;
    Ok(HttpResponse::Created().json(FaceSetResponse { meta: caller.ctx.meta(), faceset: set.into() }))
}

/// List FaceSets.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(FaceSetListQuery),
    responses((status = 200, description = "A page of sets, by token", body = FaceSetList))
)]
#[get("/facesets")]
pub async fn list_facesets(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    query: web::Query<FaceSetListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let sets = if let Some(outer) = &query.outer_id {
        match data.get_faceset(FaceSetRef::OuterId(outer.clone())).await {
            Ok(set) => vec![set],
            Err(StoreError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        let after = query
            .after
            .as_deref()
            .map(|a| FaceSetToken::parse(a).ok_or_else(|| ApiError::bad_arguments("`after` is not a faceset token")))
            .transpose()?;
        let tags: Vec<String> = query
            .tags
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        data.list_facesets(after, 0, limit, tags).await?
    };
    let next_after = next_after(&sets, limit, |s| s.token.to_string());
    Ok(HttpResponse::Ok().json(FaceSetList {
        meta: caller.ctx.meta(),
        facesets: sets.into_iter().map(FaceSetView::from).collect(),
        next_after,
    }))
}

/// Get a FaceSet.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(("faceset_token" = String, Path, description = "32 hex characters")),
    responses(
        (status = 200, description = "The set", body = FaceSetResponse),
        (status = 404, description = "`FACESET_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[get("/facesets/{faceset_token}")]
pub async fn get_faceset(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = parse_set_token(&path)?;
    let set = state.stores.tenant_data(&caller.tenant)?.get_faceset(FaceSetRef::Token(token)).await?;
    Ok(HttpResponse::Ok().json(FaceSetResponse { meta: caller.ctx.meta(), faceset: set.into() }))
}

/// Update a FaceSet's outer id, display name, tags or user data.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(("faceset_token" = String, Path, description = "32 hex characters")),
    request_body = UpdateFaceSetRequest,
    responses(
        (status = 200, description = "The set after the change", body = FaceSetResponse),
        (status = 400, description = "`BAD_ARGUMENTS`, `MISSING_ARGUMENTS` (nothing to change)", body = ErrorEnvelope),
        (status = 404, description = "`FACESET_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`CONFLICT`: the outer_id is taken", body = ErrorEnvelope),
    )
)]
#[patch("/facesets/{faceset_token}")]
pub async fn update_faceset(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<UpdateFaceSetRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = parse_set_token(&path)?;
    let body = body.into_inner();
    if let Some(Some(outer)) = &body.outer_id {
        check_outer_id("outer_id", outer)?;
    }
    if let Some(name) = &body.display_name {
        check_label("display_name", name, 256)?;
    }
    if let Some(tags) = &body.tags {
        check_tags(tags)?;
    }
    if let Some(data) = &body.user_data {
        check_user_data(data)?;
    }
    let changes = FaceSetChanges {
        outer_id: body.outer_id,
        display_name: body.display_name,
        tags: body.tags,
        user_data: body.user_data,
    };
    if changes.is_empty() {
        return Err(ApiError::new(ErrorCode::MissingArguments, "outer_id, display_name, tags or user_data"));
    }
    let set = state.stores.tenant_data(&caller.tenant)?.update_faceset(FaceSetRef::Token(token), changes).await?;
    Ok(HttpResponse::Ok().json(FaceSetResponse { meta: caller.ctx.meta(), faceset: set.into() }))
}

/// Delete a FaceSet. Its faces stay until their tokens expire, unless another set holds them.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(("faceset_token" = String, Path, description = "32 hex characters"), DeleteFaceSetQuery),
    responses(
        (status = 200, description = "Deleted", body = DeletedResponse),
        (status = 404, description = "`FACESET_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`CONFLICT`: the set holds faces and `force` is not set", body = ErrorEnvelope),
    )
)]
#[delete("/facesets/{faceset_token}")]
pub async fn delete_faceset(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<DeleteFaceSetQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = parse_set_token(&path)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let set = data.delete_faceset(FaceSetRef::Token(token), !query.force, state.token_ttl(data.tenant())).await?;
    state.indexes.forget(&caller.tenant.id, &set.token);
    Ok(HttpResponse::Ok().json(DeletedResponse {
        meta: caller.ctx.meta(),
        deleted: set.token.to_string(),
        removed: set.face_count,
    }))
}

/// List the faces in a FaceSet, in the order they were added.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(("faceset_token" = String, Path, description = "32 hex characters"), MemberPageQuery),
    responses(
        (status = 200, description = "A page of faces", body = MemberList),
        (status = 404, description = "`FACESET_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[get("/facesets/{faceset_token}/faces")]
pub async fn list_faceset_faces(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<MemberPageQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = parse_set_token(&path)?;
    let limit = page_limit(query.limit)?;
    let after = query
        .after
        .as_deref()
        .map(|a| a.parse::<i64>().map_err(|_| ApiError::bad_arguments("`after` is not from a previous page")))
        .transpose()?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let (set, members) = data.list_members(FaceSetRef::Token(token), after, 0, limit).await?;
    let next_after = next_after(&members, limit, |m| m.key.to_string());
    Ok(HttpResponse::Ok().json(MemberList {
        meta: caller.ctx.meta(),
        faceset_token: set.token.to_string(),
        face_count: set.face_count,
        faces: members
            .into_iter()
            .map(|m| MemberView {
                face_token: m.face_token.to_string(),
                user_id: m.user_id,
                added_at: m.added_at,
                consent_id: m.consent_id.map(|c| c.to_string()),
            })
            .collect(),
        next_after,
    }))
}

/// Add faces (by face token) to a FaceSet: up to 1000 per call. Faces already in the set are left alone.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(("faceset_token" = String, Path, description = "32 hex characters")),
    request_body = AddFacesRequest,
    responses(
        (status = 200, description = "What was added; `failure_detail` lists tokens that were not", body = MembershipResponse),
        (status = 404, description = "`FACESET_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[post("/facesets/{faceset_token}/faces")]
pub async fn add_faceset_faces(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<AddFacesRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = parse_set_token(&path)?;
    check_token_count(&body.face_tokens)?;
    let body = body.into_inner();
    let grant = consent::require_id(&state, &caller.tenant, body.consent_id.as_deref(), Purpose::FaceEnrolment).await?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let change = data
        .add_faces(FaceSetRef::Token(token), body.face_tokens, state.facesets.max_faces_per_set, Some(grant.consent_id))
        .await?;
    Ok(membership_response(&state, data, caller.ctx.meta(), change))
}

/// Brings the indexes of sets a deletion touched up to date now (a search would catch up anyway).
pub async fn refresh_sets(state: &AppState, data: &TenantData, sets: &[FaceSetToken]) {
    for token in sets {
        if let Ok(set) = data.get_faceset(FaceSetRef::Token(token.clone())).await {
            state.indexes.refresh_soon(data.clone(), set);
        }
    }
}

fn membership_response(state: &AppState, data: TenantData, meta: Meta, change: MembershipChange) -> HttpResponse {
    state.indexes.refresh_soon(data, change.faceset.clone());
    HttpResponse::Ok().json(MembershipResponse {
        meta,
        faceset_token: change.faceset.token.to_string(),
        changed: change.changed,
        face_count: change.faceset.face_count,
        failure_detail: failure_detail(&change.failures),
    })
}

/// Remove faces from a FaceSet: up to 1000 tokens, or all.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(("faceset_token" = String, Path, description = "32 hex characters")),
    request_body = RemoveFacesRequest,
    responses(
        (status = 200, description = "What was removed; `failure_detail` lists tokens not in the set", body = MembershipResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`: neither face_tokens nor all", body = ErrorEnvelope),
        (status = 404, description = "`FACESET_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[post("/facesets/{faceset_token}/faces/remove")]
pub async fn remove_faceset_faces(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<RemoveFacesRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = parse_set_token(&path)?;
    let body = body.into_inner();
    let which = match (body.all, body.face_tokens.is_empty()) {
        (true, true) => Selection::All,
        (false, false) => {
            check_token_count(&body.face_tokens)?;
            Selection::Tokens(body.face_tokens)
        }
        (true, false) => return Err(ApiError::bad_arguments("give face_tokens or all, not both")),
        (false, true) => return Err(ApiError::new(ErrorCode::MissingArguments, "face_tokens or all")),
    };
    let data = state.stores.tenant_data(&caller.tenant)?;
    let change = data.remove_faces(FaceSetRef::Token(token), which, state.token_ttl(data.tenant())).await?;
    Ok(membership_response(&state, data, caller.ctx.meta(), change))
}

/// Remove one face from a FaceSet.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(
        ("faceset_token" = String, Path, description = "32 hex characters"),
        ("face_token" = String, Path, description = "32 hex characters"),
    ),
    responses(
        (status = 200, description = "Removed", body = MembershipResponse),
        (status = 404, description = "`FACESET_NOT_FOUND`, or `FACE_NOT_FOUND`: the face is not in the set", body = ErrorEnvelope),
    )
)]
#[delete("/facesets/{faceset_token}/faces/{face_token}")]
pub async fn remove_faceset_face(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (set, face) = path.into_inner();
    let token = parse_set_token(&set)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let change = data
        .remove_faces(FaceSetRef::Token(token), Selection::Tokens(vec![face]), state.token_ttl(data.tenant()))
        .await?;
    if change.changed == 0 {
        return Err(ApiError::new(ErrorCode::FaceNotFound, "the face is not in this FaceSet"));
    }
    Ok(membership_response(&state, data, caller.ctx.meta(), change))
}

/// Enrol a face from an image: detect, embed and add it to the set in one step (one transaction).
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    params(("faceset_token" = String, Path, description = "32 hex characters")),
    request_body(content(
        (EnrolForm = "multipart/form-data"),
        (EnrolForm = "application/x-www-form-urlencoded"),
        (EnrolForm = "application/json")
    )),
    responses(
        (status = 200, description = "Enrolled (or already enrolled for this external_image_id)", body = EnrolResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 404, description = "`FACESET_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`LIMIT_REACHED`: the set is full", body = ErrorEnvelope),
        (status = 422, description = "`NO_FACE_FOUND`, `MULTIPLE_FACES`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/facesets/{faceset_token}/enrol")]
pub async fn enrol_face(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = parse_set_token(&path)?;
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    reject_unknown(
        &fields,
        &["image_file", "image_base64", "image_url", "user_id", "external_image_id", "multiple_faces", consent::FIELD],
    )?;
    let grant = consent::require(&state, &caller.tenant, &fields, Purpose::FaceEnrolment).await?;
    let user_id = fields.text("user_id").map(str::to_string).filter(|u| !u.is_empty());
    if let Some(user_id) = &user_id {
        check_user_id(user_id)?;
    }
    let external = fields.text("external_image_id").map(str::to_string).filter(|e| !e.is_empty());
    if let Some(external) = &external {
        check_label("external_image_id", external, 255)?;
    }
    let take_largest = match fields.text("multiple_faces").unwrap_or("reject") {
        "reject" => false,
        "largest" => true,
        _ => return Err(ApiError::bad_arguments("multiple_faces: `reject` or `largest`")),
    };
    let image = fields.require_image("image_file, image_base64 or image_url")?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let set = FaceSetRef::Token(token);
    // Fail before the (costly) detection when the set does not exist.
    data.get_faceset(set.clone()).await?;
    let detected = detect(&state, image.load(&state.image_fetcher).await?, state.token_ttl(&caller.tenant)).await?;
    if detected.faces.is_empty() {
        return Err(ApiError::new(ErrorCode::NoFaceFound, "no face found in the image"));
    }
    if detected.faces.len() > 1 && !take_largest {
        return Err(ApiError::new(
            ErrorCode::MultipleFaces,
            format!("{} faces found; send one face per image, or multiple_faces=largest", detected.faces.len()),
        ));
    }
    let Some((face, Some(mut record))) = detected.faces.into_iter().next() else {
        return Err(ApiError::new(ErrorCode::NoFaceFound, "no usable face found in the image"));
    };
    record.user_id = user_id;
    record.consent_id = Some(grant.consent_id);
    let enrolment = data.enrol_face(set, record, external, state.facesets.max_faces_per_set).await?;
    state.indexes.refresh_soon(data, enrolment.faceset.clone());
    Ok(HttpResponse::Ok().json(EnrolResponse {
        meta: caller.ctx.meta(),
        faceset_token: enrolment.faceset.token.to_string(),
        face_token: enrolment.face_token.to_string(),
        added: !enrolment.already_enrolled,
        face_count: enrolment.faceset.face_count,
        face: (!enrolment.already_enrolled).then_some(face),
    }))
}

/// The confidence a match must reach: `min_confidence`, or the threshold named by `threshold`.
fn min_confidence(fields: &Fields) -> Result<Option<f64>, ApiError> {
    let explicit = match fields.text("min_confidence") {
        None | Some("") => None,
        Some(raw) => Some(
            raw.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=100.0).contains(v))
                .ok_or_else(|| ApiError::bad_arguments("min_confidence: a number from 0 to 100"))?,
        ),
    };
    let named = match fields.text("threshold") {
        None | Some("") => None,
        Some(name) => Some(
            confidence::thresholds()
                .into_iter()
                .find(|(far, _)| *far == name.trim())
                .map(|(_, c)| c)
                .ok_or_else(|| ApiError::bad_arguments("threshold: `1e-3`, `1e-4` or `1e-5`"))?,
        ),
    };
    match (explicit, named) {
        (Some(_), Some(_)) => Err(ApiError::bad_arguments("give min_confidence or threshold, not both")),
        (a, b) => Ok(a.or(b)),
    }
}

/// The sets a search names (by token or outer id), each checked to be the tenant's.
async fn sets_to_search(data: &TenantData, fields: &Fields) -> Result<Vec<FaceSet>, ApiError> {
    let mut refs = Vec::new();
    for raw in fields.list("faceset_tokens") {
        refs.push(FaceSetRef::Token(parse_set_token(&raw)?));
    }
    for raw in fields.list("outer_ids") {
        refs.push(FaceSetRef::OuterId(raw));
    }
    if refs.is_empty() {
        return Err(ApiError::new(ErrorCode::MissingArguments, "faceset_tokens or outer_ids"));
    }
    if refs.len() > MAX_SETS_PER_SEARCH {
        return Err(ApiError::bad_arguments(format!("at most {MAX_SETS_PER_SEARCH} sets per search")));
    }
    let mut sets: Vec<FaceSet> = Vec::with_capacity(refs.len());
    for set in refs {
        let set = data.get_faceset(set).await?;
        if !sets.iter().any(|s| s.token == set.token) {
            sets.push(set);
        }
    }
    Ok(sets)
}

/// Search one or more FaceSets (1:N) with an image, a face token or an embedding.
///
/// Returns the best `top_k` matches with their confidence. With `min_confidence` or `threshold`, weaker matches
/// are left out, so "no match" is an empty list rather than a weak match.
#[utoipa::path(
    tag = "facesets",
    security(("api_key" = ["face"])),
    request_body(content(
        (SearchForm = "application/json"),
        (SearchForm = "multipart/form-data"),
        (SearchForm = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Matches, best first", body = SearchResponse),
        (status = 400, description = "`MISSING_ARGUMENTS`, `BAD_ARGUMENTS`, image errors", body = ErrorEnvelope),
        (status = 404, description = "`FACESET_NOT_FOUND`, `FACE_NOT_FOUND`", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/facesets/search")]
pub async fn search(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::read(&req, payload, state.form_limits).await?;
    reject_unknown(
        &fields,
        &[
            "faceset_tokens",
            "outer_ids",
            "face_token",
            "image_file",
            "image_base64",
            "image_url",
            "embedding",
            "top_k",
            "min_confidence",
            "threshold",
            consent::FIELD,
        ],
    )?;
    let grant = consent::require(&state, &caller.tenant, &fields, Purpose::FaceSearch).await?;
    let top_k = fields.int("top_k", 1, 1..=MAX_NATIVE_TOP_K)? as usize;
    let floor = min_confidence(&fields)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let sets = sets_to_search(&data, &fields).await?;
    let not_found = |_: &str| ApiError::new(ErrorCode::FaceNotFound, "face token not found (unknown or expired)");
    let query = search_query(&state, &caller.tenant, &mut fields, true, Some(&grant), not_found).await?;
    let mut results = match &query.embedding {
        Some(embedding) => search_sets(&state, &data, &sets, embedding, top_k).await?,
        None => Vec::new(),
    };
    if let Some(floor) = floor {
        results.retain(|r| r.confidence >= floor);
    }
    Ok(HttpResponse::Ok().json(SearchResponse {
        meta: caller.ctx.meta(),
        image_id: query.image_id,
        faces: query.faces,
        results,
        thresholds: Thresholds::current(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct FaceUserIdResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub face_token: String,
    pub user_id: Option<String>,
}

/// Set (or clear) a face's user id: your identifier for the person, returned by search.
#[utoipa::path(
    tag = "faces",
    security(("api_key" = ["face"])),
    params(("face_token" = String, Path, description = "32 hex characters")),
    request_body = UpdateFaceRequest,
    responses(
        (status = 200, description = "Updated", body = FaceUserIdResponse),
        (status = 400, description = "`BAD_ARGUMENTS`", body = ErrorEnvelope),
        (status = 404, description = "`FACE_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[patch("/faces/{face_token}")]
pub async fn update_face(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<UpdateFaceRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = FaceToken::parse(&path).ok_or_else(|| ApiError::new(ErrorCode::FaceNotFound, "face not found"))?;
    let Some(user_id) = body.into_inner().user_id else {
        return Err(ApiError::new(ErrorCode::MissingArguments, "user_id"));
    };
    let user_id = user_id.filter(|u| !u.is_empty());
    if let Some(user_id) = &user_id {
        check_user_id(user_id)?;
    }
    state.stores.tenant_data(&caller.tenant)?.set_user_id(&token, user_id.clone()).await?;
    Ok(HttpResponse::Ok().json(FaceUserIdResponse { meta: caller.ctx.meta(), face_token: token.to_string(), user_id }))
}

/// Delete a face: from every FaceSet holding it and from the store.
#[utoipa::path(
    tag = "faces",
    security(("api_key" = ["face"])),
    params(("face_token" = String, Path, description = "32 hex characters")),
    responses(
        (status = 200, description = "Deleted; `removed` counts the sets it was in", body = DeletedResponse),
        (status = 404, description = "`FACE_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[delete("/faces/{face_token}")]
pub async fn delete_face(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = FaceToken::parse(&path).ok_or_else(|| ApiError::new(ErrorCode::FaceNotFound, "face not found"))?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let sets = data.delete_face(&token, state.token_ttl(data.tenant())).await?;
    refresh_sets(&state, &data, &sets).await;
    Ok(HttpResponse::Ok().json(DeletedResponse {
        meta: caller.ctx.meta(),
        deleted: token.to_string(),
        removed: sets.len() as i64,
    }))
}
