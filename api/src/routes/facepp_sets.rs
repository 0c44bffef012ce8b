//! The Face++-compatible FaceSet and search endpoints (`/facepp/v3/faceset/...`, `face/setuserid`, `search`),
//! with Face++'s argument names, limits (5 face tokens per addface, 1,000 per removeface, 1 to 5 search
//! results), `failure_detail` and error codes.

use actix_web::{HttpRequest, HttpResponse, post, web};
use faceplate_store::{
    Authenticated, FaceSet, FaceSetChanges, FaceSetRef, FaceSetToken, FaceToken, NewFaceSet, Purpose, Selection,
    StoreError, TaskId, TaskKind, TenantData,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::consent;
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::forms::Fields;
use crate::routes::facepp::{FaceppFace, authenticate, context};
use crate::routes::faces::Thresholds;
use crate::routes::facesets::{
    FailureDetail, REMOVE_ALL, SearchMatch, check_label, check_outer_id, check_tags, check_user_data, check_user_id,
    failure_detail, search_query, search_sets, spawn_task,
};
use crate::state::AppState;

/// Face++ limits.
const MAX_ADD_TOKENS: usize = 5;
const MAX_REMOVE_TOKENS: usize = 1000;
/// Asynchronous addface takes more per call than Face++'s 5: it exists for bulk enrolment.
const MAX_ASYNC_ADD_TOKENS: usize = 1000;
const MAX_SEARCH_RESULTS: i64 = 5;
const PAGE: i64 = 100;

async fn read(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<(Fields, Authenticated), ApiError> {
    let fields = Fields::read(req, payload, state.form_limits).await?;
    let caller = authenticate(state, req, &fields).await?;
    Ok((fields, caller))
}

/// `faceset_token` or `outer_id` (not both), mapped to Face++'s errors when the set does not exist.
struct SetArg {
    set: FaceSetRef,
}

impl SetArg {
    fn from_fields(fields: &Fields) -> Result<SetArg, ApiError> {
        let token = fields.text("faceset_token").map(str::trim).filter(|t| !t.is_empty());
        let outer = fields.text("outer_id").filter(|o| !o.is_empty());
        match (token, outer) {
            (Some(_), Some(_)) => Err(ApiError::new(ErrorCode::CoexistenceArguments, "faceset_token,outer_id")),
            (Some(token), None) => FaceSetToken::parse(token)
                .map(|t| SetArg { set: FaceSetRef::Token(t) })
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidFacesetToken, token.to_string())),
            (None, Some(outer)) => Ok(SetArg { set: FaceSetRef::OuterId(outer.to_string()) }),
            (None, None) => Err(ApiError::new(ErrorCode::MissingArguments, "faceset_token")),
        }
    }

    /// Store errors as Face++ reports them.
    fn error(&self, e: StoreError) -> ApiError {
        match (e, &self.set) {
            (StoreError::NotFound(_), FaceSetRef::Token(t)) => {
                ApiError::new(ErrorCode::InvalidFacesetToken, t.to_string())
            }
            (StoreError::NotFound(_), FaceSetRef::OuterId(o)) => ApiError::new(ErrorCode::InvalidOuterId, o.clone()),
            (e, _) => e.into(),
        }
    }
}

fn face_tokens(fields: &Fields, max: usize) -> Result<Vec<String>, ApiError> {
    let tokens = fields.list("face_tokens");
    if tokens.is_empty() {
        return Err(ApiError::new(ErrorCode::MissingArguments, "face_tokens"));
    }
    if tokens.len() > max {
        return Err(ApiError::new(ErrorCode::InvalidFaceTokensSize, format!("face_tokens: at most {max}")));
    }
    Ok(tokens)
}

#[derive(Serialize, ToSchema)]
pub struct FaceppSetChange {
    #[serde(flatten)]
    pub meta: Meta,
    pub faceset_token: String,
    pub outer_id: String,
    /// addface / create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_added: Option<usize>,
    /// removeface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_removed: Option<usize>,
    pub face_count: i64,
    pub failure_detail: Vec<FailureDetail>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppSetRef {
    #[serde(flatten)]
    pub meta: Meta,
    pub faceset_token: String,
    pub outer_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppTaskStarted {
    #[serde(flatten)]
    pub meta: Meta,
    pub task_id: String,
    pub faceset_token: String,
    pub outer_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppTaskStatus {
    #[serde(flatten)]
    pub meta: Meta,
    pub task_id: String,
    /// 0: running; 1: done.
    pub status: u8,
    pub faceset_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_added: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_removed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FailureDetail>>)]
    pub failure_detail: Option<serde_json::Value>,
    /// Set when the task could not run (the set was deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_failure_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppSetDetail {
    #[serde(flatten)]
    pub meta: Meta,
    pub faceset_token: String,
    pub outer_id: String,
    pub display_name: String,
    pub user_data: String,
    /// Comma-separated.
    pub tags: String,
    pub face_count: i64,
    /// Up to 100, from `start`.
    pub face_tokens: Vec<String>,
    /// The `start` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppSetSummary {
    pub faceset_token: String,
    pub outer_id: String,
    pub display_name: String,
    pub tags: String,
}

impl From<&FaceSet> for FaceppSetSummary {
    fn from(s: &FaceSet) -> Self {
        FaceppSetSummary {
            faceset_token: s.token.to_string(),
            outer_id: s.outer_id.clone().unwrap_or_default(),
            display_name: s.display_name.clone(),
            tags: s.tags.join(","),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FaceppSetList {
    #[serde(flatten)]
    pub meta: Meta,
    pub facesets: Vec<FaceppSetSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppUserId {
    #[serde(flatten)]
    pub meta: Meta,
    pub face_token: String,
    pub user_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppSearchResult {
    pub face_token: String,
    pub confidence: f64,
    pub user_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct FaceppSearchResponse {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub faces: Vec<FaceppFace>,
    /// Absent when the image has no face.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<FaceppSearchResult>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
}

/// Face++ form fields naming a FaceSet (one of the two).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handlers read the fields themselves
pub struct FaceppSetForm {
    api_key: String,
    api_secret: String,
    /// Faceplate extension: a consent attestation covering the purpose (adding faces: `face_enrolment`); required
    /// unless the tenant allows Face++ calls without one (`PUT /v1/settings/consent`).
    consent_id: Option<String>,
    faceset_token: Option<String>,
    outer_id: Option<String>,
    /// addface/removeface: comma-separated (removeface also takes `RemoveAllFaceTokens`).
    face_tokens: Option<String>,
}

fn set_change(meta: Meta, change: &faceplate_store::MembershipChange, kind: TaskKind) -> FaceppSetChange {
    FaceppSetChange {
        meta,
        faceset_token: change.faceset.token.to_string(),
        outer_id: change.faceset.outer_id.clone().unwrap_or_default(),
        face_added: (kind == TaskKind::AddFaces).then_some(change.changed),
        face_removed: (kind == TaskKind::RemoveFaces).then_some(change.changed),
        face_count: change.faceset.face_count,
        failure_detail: failure_detail(&change.failures),
    }
}

/// Face++ `faceset/create` (with `force_merge=1`, an existing outer_id gets the faces instead).
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The new (or merged) set", body = FaceppSetChange),
        (status = 400, description = "`FACESET_EXIST`, `FACESET_QUOTA_EXCEEDED`, `INVALID_FACE_TOKENS_SIZE`, `BAD_ARGUMENTS`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/create")]
pub async fn facepp_faceset_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let outer_id =
        fields.text("outer_id").filter(|o| !o.is_empty()).map(|o| check_outer_id("outer_id", o)).transpose()?;
    let display_name = fields.text("display_name").unwrap_or("").to_string();
    check_label("display_name", &display_name, 256)?;
    let tags = fields.list("tags");
    check_tags(&tags)?;
    let user_data = fields.text("user_data").unwrap_or("").to_string();
    check_user_data(&user_data)?;
    let force_merge = fields.int("force_merge", 0, 0..=1)? == 1;
    let tokens = if fields.has("face_tokens") { face_tokens(&fields, MAX_ADD_TOKENS)? } else { Vec::new() };
    let grant = match tokens.is_empty() {
        true => None,
        false => consent::require_facepp(&state, &caller.tenant, &fields, Purpose::FaceEnrolment).await?,
    };
    let data = state.stores.tenant_data(&caller.tenant)?;
    let new = NewFaceSet { outer_id: outer_id.clone(), display_name, tags, user_data };
    let set = match data.create_faceset(new, state.facesets.max_sets_per_tenant).await {
        Ok(set) => FaceSetRef::Token(set.token),
        Err(StoreError::Conflict(_)) if force_merge => FaceSetRef::OuterId(outer_id.unwrap_or_default()),
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(ErrorCode::FacesetExist, outer_id.unwrap_or_default()));
        }
        Err(StoreError::LimitReached(m)) => return Err(ApiError::new(ErrorCode::FacesetQuotaExceeded, m)),
        Err(e) => return Err(e.into()),
    };
    let change = data.add_faces(set, tokens, state.facesets.max_faces_per_set, grant.map(|g| g.consent_id)).await?;
    state.indexes.refresh_soon(data, change.faceset.clone());
    Ok(HttpResponse::Ok().json(set_change(context(&req).meta(), &change, TaskKind::AddFaces)))
}

/// Face++ `faceset/addface`: up to 5 face tokens.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "What was added", body = FaceppSetChange),
        (status = 400, description = "`INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`, `INVALID_FACE_TOKENS_SIZE`, `MISSING_ARGUMENTS`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/addface")]
pub async fn facepp_faceset_addface(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let grant = consent::require_facepp(&state, &caller.tenant, &fields, Purpose::FaceEnrolment).await?;
    let arg = SetArg::from_fields(&fields)?;
    let tokens = face_tokens(&fields, MAX_ADD_TOKENS)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let change = data
        .add_faces(arg.set.clone(), tokens, state.facesets.max_faces_per_set, grant.map(|g| g.consent_id))
        .await
        .map_err(|e| arg.error(e))?;
    state.indexes.refresh_soon(data, change.faceset.clone());
    Ok(HttpResponse::Ok().json(set_change(context(&req).meta(), &change, TaskKind::AddFaces)))
}

/// The face tokens of a removeface call: a list, or every face with `RemoveAllFaceTokens`.
fn removal(fields: &Fields) -> Result<(Selection, Vec<String>), ApiError> {
    if fields.text("face_tokens").map(str::trim) == Some(REMOVE_ALL) {
        return Ok((Selection::All, Vec::new()));
    }
    let tokens = face_tokens(fields, MAX_REMOVE_TOKENS)?;
    Ok((Selection::Tokens(tokens.clone()), tokens))
}

/// Face++ `faceset/removeface`: up to 1,000 face tokens, or `RemoveAllFaceTokens`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "What was removed", body = FaceppSetChange),
        (status = 400, description = "`INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`, `INVALID_FACE_TOKENS_SIZE`, `MISSING_ARGUMENTS`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/removeface")]
pub async fn facepp_faceset_removeface(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let arg = SetArg::from_fields(&fields)?;
    let (which, _) = removal(&fields)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let change =
        data.remove_faces(arg.set.clone(), which, state.token_ttl(data.tenant())).await.map_err(|e| arg.error(e))?;
    state.indexes.refresh_soon(data, change.faceset.clone());
    Ok(HttpResponse::Ok().json(set_change(context(&req).meta(), &change, TaskKind::RemoveFaces)))
}

async fn start_task(
    state: web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
    kind: TaskKind,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, req, payload).await?;
    let grant = match kind {
        TaskKind::AddFaces => consent::require_facepp(&state, &caller.tenant, &fields, Purpose::FaceEnrolment).await?,
        TaskKind::RemoveFaces => None,
    };
    let arg = SetArg::from_fields(&fields)?;
    let tokens = match kind {
        TaskKind::AddFaces => face_tokens(&fields, MAX_ASYNC_ADD_TOKENS)?,
        // Removing all is one statement: there is nothing to run in the background for it, but the task
        // keeps the Face++ shape, so it is recorded and run like the others.
        TaskKind::RemoveFaces => match removal(&fields)? {
            (Selection::All, _) => vec![REMOVE_ALL.to_string()],
            (_, tokens) => tokens,
        },
    };
    let data = state.stores.tenant_data(&caller.tenant)?;
    let set = data.get_faceset(arg.set.clone()).await.map_err(|e| arg.error(e))?;
    let task =
        data.create_task(FaceSetRef::Token(set.token.clone()), kind, tokens, grant.map(|g| g.consent_id)).await?;
    let response = FaceppTaskStarted {
        meta: context(req).meta(),
        task_id: task.id.to_string(),
        faceset_token: set.token.to_string(),
        outer_id: set.outer_id.unwrap_or_default(),
    };
    spawn_task(state.clone(), caller.tenant, task);
    Ok(HttpResponse::Ok().json(response))
}

/// Face++ `faceset/async/addface`: like addface, run in the background (up to 1,000 tokens); poll
/// `faceset/async/task_status`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The task", body = FaceppTaskStarted),
        (status = 400, description = "`INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`, `INVALID_FACE_TOKENS_SIZE`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/async/addface")]
pub async fn facepp_faceset_async_addface(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    start_task(state, &req, payload, TaskKind::AddFaces).await
}

/// Face++ `faceset/async/removeface`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The task", body = FaceppTaskStarted),
        (status = 400, description = "`INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`, `INVALID_FACE_TOKENS_SIZE`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/async/removeface")]
pub async fn facepp_faceset_async_removeface(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    start_task(state, &req, payload, TaskKind::RemoveFaces).await
}

/// Face++ `faceset/async/task_status`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Status 0 (running) or 1 (done, with the outcome)", body = FaceppTaskStatus),
        (status = 400, description = "`INVALID_TASK_ID`, `MISSING_ARGUMENTS`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/async/task_status")]
pub async fn facepp_faceset_task_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let raw = fields.text("task_id").ok_or_else(|| ApiError::new(ErrorCode::MissingArguments, "task_id"))?;
    let invalid = || ApiError::new(ErrorCode::InvalidTaskId, raw.to_string());
    let id = TaskId::parse(raw.trim()).ok_or_else(invalid)?;
    let task = match state.stores.tenant_data(&caller.tenant)?.get_task(&id).await {
        Err(StoreError::NotFound(_)) => return Err(invalid()),
        other => other?,
    };
    let result = task.result.unwrap_or_default();
    let number = |name: &str| result.get(name).and_then(serde_json::Value::as_u64);
    Ok(HttpResponse::Ok().json(FaceppTaskStatus {
        meta: context(&req).meta(),
        task_id: task.id.to_string(),
        status: u8::from(task.finished_at.is_some()),
        faceset_token: task.faceset_token.to_string(),
        face_added: number("face_added"),
        face_removed: number("face_removed"),
        face_count: result.get("face_count").and_then(serde_json::Value::as_i64),
        failure_detail: result.get("failure_detail").cloned(),
        task_failure_reason: result.get("task_failure_reason").and_then(|r| r.as_str()).map(str::to_string),
    }))
}

/// Face++ `faceset/update`: new_outer_id, display_name, user_data, tags.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Updated", body = FaceppSetRef),
        (status = 400, description = "`NEW_OUTER_ID_EXIST`, `VOID_REQUEST`, `INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/update")]
pub async fn facepp_faceset_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let arg = SetArg::from_fields(&fields)?;
    let mut changes = FaceSetChanges::default();
    if let Some(new) = fields.text("new_outer_id") {
        changes.outer_id = Some(Some(check_outer_id("new_outer_id", new)?));
    }
    if let Some(name) = fields.text("display_name") {
        check_label("display_name", name, 256)?;
        changes.display_name = Some(name.to_string());
    }
    if let Some(user_data) = fields.text("user_data") {
        check_user_data(user_data)?;
        changes.user_data = Some(user_data.to_string());
    }
    if fields.has("tags") {
        let tags = fields.list("tags");
        check_tags(&tags)?;
        changes.tags = Some(tags);
    }
    if changes.is_empty() {
        return Err(ApiError::new(ErrorCode::VoidRequest, "nothing to update"));
    }
    let new_outer = changes.outer_id.clone().flatten();
    let data = state.stores.tenant_data(&caller.tenant)?;
    let set = match data.update_faceset(arg.set.clone(), changes).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(ErrorCode::NewOuterIdExist, new_outer.unwrap_or_default()));
        }
        other => other.map_err(|e| arg.error(e))?,
    };
    Ok(HttpResponse::Ok().json(FaceppSetRef {
        meta: context(&req).meta(),
        faceset_token: set.token.to_string(),
        outer_id: set.outer_id.unwrap_or_default(),
    }))
}

/// Face++ `faceset/getdetail`: the set and 100 of its face tokens from `start` (1-based).
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The set", body = FaceppSetDetail),
        (status = 400, description = "`INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`, `BAD_ARGUMENTS`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/getdetail")]
pub async fn facepp_faceset_getdetail(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let arg = SetArg::from_fields(&fields)?;
    let start = fields.int("start", 1, 1..=i64::from(i32::MAX))?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let (set, members) = data.list_members(arg.set.clone(), None, start - 1, PAGE).await.map_err(|e| arg.error(e))?;
    let next =
        (start - 1 + (members.len() as i64) < set.face_count && members.len() as i64 == PAGE).then_some(start + PAGE);
    Ok(HttpResponse::Ok().json(FaceppSetDetail {
        meta: context(&req).meta(),
        faceset_token: set.token.to_string(),
        outer_id: set.outer_id.unwrap_or_default(),
        display_name: set.display_name,
        user_data: set.user_data,
        tags: set.tags.join(","),
        face_count: set.face_count,
        face_tokens: members.into_iter().map(|m| m.face_token.to_string()).collect(),
        next,
    }))
}

/// Face++ `faceset/delete` (`check_empty=1`, the default, refuses a set that holds faces).
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Deleted", body = FaceppSetRef),
        (status = 400, description = "`FACESET_NOT_EMPTY`, `INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`", body = ErrorEnvelope),
    )
)]
#[post("/faceset/delete")]
pub async fn facepp_faceset_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let arg = SetArg::from_fields(&fields)?;
    let check_empty = fields.int("check_empty", 1, 0..=1)? == 1;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let set = match data.delete_faceset(arg.set.clone(), check_empty, state.token_ttl(data.tenant())).await {
        Err(StoreError::NotEmpty(m)) => return Err(ApiError::new(ErrorCode::FacesetNotEmpty, m)),
        other => other.map_err(|e| arg.error(e))?,
    };
    state.indexes.forget(&caller.tenant.id, &set.token);
    Ok(HttpResponse::Ok().json(FaceppSetRef {
        meta: context(&req).meta(),
        faceset_token: set.token.to_string(),
        outer_id: set.outer_id.unwrap_or_default(),
    }))
}

/// Face++ `faceset/getfacesets`: the tenant's sets, 100 from `start` (1-based), optionally with all `tags`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "A page of sets", body = FaceppSetList))
)]
#[post("/faceset/getfacesets")]
pub async fn facepp_faceset_list(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let start = fields.int("start", 1, 1..=i64::from(i32::MAX))?;
    let tags = fields.list("tags");
    let data = state.stores.tenant_data(&caller.tenant)?;
    let sets = data.list_facesets(None, start - 1, PAGE, tags).await?;
    let next = (sets.len() as i64 == PAGE).then_some(start + PAGE);
    Ok(HttpResponse::Ok().json(FaceppSetList {
        meta: context(&req).meta(),
        facesets: sets.iter().map(FaceppSetSummary::from).collect(),
        next,
    }))
}

/// Face++ `face/setuserid`.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSetForm = "multipart/form-data"), (FaceppSetForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Set", body = FaceppUserId),
        (status = 400, description = "`INVALID_FACE_TOKEN`, `MISSING_ARGUMENTS`, `BAD_ARGUMENTS`", body = ErrorEnvelope),
    )
)]
#[post("/face/setuserid")]
pub async fn facepp_set_user_id(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (fields, caller) = read(&state, &req, payload).await?;
    let raw = fields.text("face_token").ok_or_else(|| ApiError::new(ErrorCode::MissingArguments, "face_token"))?;
    let user_id = fields.text("user_id").ok_or_else(|| ApiError::new(ErrorCode::MissingArguments, "user_id"))?;
    check_user_id(user_id)?;
    let invalid = || ApiError::new(ErrorCode::InvalidFaceToken, raw.to_string());
    let token = FaceToken::parse(raw.trim()).ok_or_else(invalid)?;
    let stored = (!user_id.is_empty()).then(|| user_id.to_string());
    match state.stores.tenant_data(&caller.tenant)?.set_user_id(&token, stored).await {
        Err(StoreError::NotFound(_)) => return Err(invalid()),
        other => other?,
    }
    Ok(HttpResponse::Ok().json(FaceppUserId {
        meta: context(&req).meta(),
        face_token: token.to_string(),
        user_id: user_id.to_string(),
    }))
}

/// Face++ form fields for search.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaceppSearchForm {
    api_key: String,
    api_secret: String,
    /// Faceplate extension: a consent attestation covering the purpose (adding faces: `face_enrolment`); required
    /// unless the tenant allows Face++ calls without one (`PUT /v1/settings/consent`).
    consent_id: Option<String>,
    face_token: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image_file: Option<String>,
    image_base64: Option<String>,
    image_url: Option<String>,
    faceset_token: Option<String>,
    outer_id: Option<String>,
    /// 1 to 5 (default 1).
    return_result_count: Option<i32>,
}

/// Face++ `search`: the largest face of the image (or a face token) against one FaceSet.
#[utoipa::path(
    tag = "facepp",
    security(("facepp_api_key" = [], "facepp_api_secret" = []), ("api_key" = ["face"])),
    request_body(content((FaceppSearchForm = "multipart/form-data"), (FaceppSearchForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Best matches with confidences; compare them with `thresholds`", body = FaceppSearchResponse),
        (status = 400, description = "`EMPTY_FACESET`, `INVALID_FACESET_TOKEN`, `INVALID_OUTER_ID`, `INVALID_FACE_TOKEN`, image errors", body = ErrorEnvelope),
        (status = 503, description = "`SERVER_BUSY` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
#[post("/search")]
pub async fn facepp_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (mut fields, caller) = read(&state, &req, payload).await?;
    let grant = consent::require_facepp(&state, &caller.tenant, &fields, Purpose::FaceSearch).await?;
    let arg = SetArg::from_fields(&fields)?;
    let count = fields.int("return_result_count", 1, 1..=MAX_SEARCH_RESULTS)? as usize;
    if fields.has("face_rectangle") {
        return Err(ApiError::bad_arguments("face_rectangle: not supported; the largest face is searched"));
    }
    let data: TenantData = state.stores.tenant_data(&caller.tenant)?;
    let set = data.get_faceset(arg.set.clone()).await.map_err(|e| arg.error(e))?;
    if set.face_count == 0 {
        return Err(ApiError::new(ErrorCode::EmptyFaceset, set.token.to_string()));
    }
    let invalid = |raw: &str| ApiError::new(ErrorCode::InvalidFaceToken, raw.to_string());
    let query = search_query(&state, &caller.tenant, &mut fields, false, grant.as_ref(), invalid).await?;
    let results = match &query.embedding {
        Some(embedding) => Some(search_sets(&state, &data, std::slice::from_ref(&set), embedding, count).await?),
        None => None,
    };
    let to_result = |m: SearchMatch| FaceppSearchResult {
        face_token: m.face_token,
        confidence: (m.confidence * 1000.0).round() / 1000.0,
        user_id: m.user_id,
    };
    Ok(HttpResponse::Ok().json(FaceppSearchResponse {
        meta: context(&req).meta(),
        image_id: query.image_id,
        faces: query
            .faces
            .into_iter()
            .map(|f| FaceppFace { face_token: f.face_token, face_rectangle: f.face_rectangle, attributes: None })
            .collect(),
        thresholds: results.as_ref().map(|_| Thresholds::current()),
        results: results.map(|r| r.into_iter().map(to_result).collect()),
    }))
}

/// Face++ `face/getdetail` lists the face's sets in this shape.
pub async fn face_sets(data: &TenantData, face: &FaceToken) -> Result<Vec<FaceppSetSummary>, ApiError> {
    let mut sets = Vec::new();
    for token in data.facesets_of(face).await? {
        if let Ok(set) = data.get_faceset(FaceSetRef::Token(token)).await {
            sets.push(FaceppSetSummary::from(&set));
        }
    }
    Ok(sets)
}
