//! The tenant's audit log (`/v1/audit-events`, admin scope), read from the tenant's home region.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use faceplate_store::{AuditEvent, AuditEventId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AdminScope, Caller};
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode};
use crate::routes::types::{PageQuery, next_after};
use crate::state::AppState;

/// One thing that happened to the tenant's account.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    /// `aud_...`
    pub id: String,
    pub occurred_at: DateTime<Utc>,
    /// `operator`, `cli` or `key:<key id>`.
    pub actor: String,
    /// e.g. `tenant.created`, `key.created`, `key.revoked`, `key.rotated`.
    pub action: String,
    /// The id of the record acted on.
    pub target: Option<String>,
    /// The request that caused it, when it came through the API.
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
    /// Position in the tenant's audit chain (1, 2, ...): no number is ever skipped.
    pub seq: Option<i64>,
    /// The entry's seal; the next entry is sealed over it, so a kept seal vouches for everything before it.
    pub hash: Option<String>,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        AuditEventView {
            id: e.id.to_string(),
            occurred_at: e.occurred_at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            request_id: e.request_id,
            detail: e.detail,
            seq: e.seq,
            hash: e.hash,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventList {
    #[serde(flatten)]
    pub meta: Meta,
    pub events: Vec<AuditEventView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub event: AuditEventView,
}

/// List audit events, oldest first.
#[utoipa::path(
    tag = "audit",
    security(("api_key" = ["admin"])),
    params(PageQuery),
    responses((status = 200, description = "A page of audit events", body = AuditEventList))
)]
#[get("/audit-events")]
pub async fn list_audit_events(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit()?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let events = data.list_audit(page.after(AuditEventId::parse)?, limit).await?;
    let next_after = next_after(&events, limit, |e| e.id.to_string());
    Ok(HttpResponse::Ok().json(AuditEventList {
        meta: caller.ctx.meta(),
        events: events.into_iter().map(AuditEventView::from).collect(),
        next_after,
    }))
}

/// Get one audit event.
#[utoipa::path(
    tag = "audit",
    security(("api_key" = ["admin"])),
    params(("event_id" = String, Path, description = "`aud_...`")),
    responses(
        (status = 200, description = "The event", body = AuditEventResponse),
        (status = 404, description = "AUDIT_EVENT_NOT_FOUND", body = crate::error::ErrorEnvelope),
    )
)]
#[get("/audit-events/{event_id}")]
pub async fn get_audit_event(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = AuditEventId::parse(&path)
        .ok_or_else(|| ApiError::new(ErrorCode::AuditEventNotFound, "audit event not found"))?;
    let event = state.stores.tenant_data(&caller.tenant)?.get_audit(&id).await?;
    Ok(HttpResponse::Ok().json(AuditEventResponse { meta: caller.ctx.meta(), event: event.into() }))
}

/// The outcome of re-checking a tenant's audit chain.
#[derive(Serialize, ToSchema)]
pub struct AuditVerificationResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub tenant_id: String,
    /// No entry was edited, removed or inserted.
    pub intact: bool,
    pub entries: usize,
    /// The last entry the control store recorded as written.
    pub head_seq: Option<i64>,
    pub problems: Vec<AuditProblemView>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditProblemView {
    /// `edited`, `removed`, `inserted` or `truncated`.
    pub kind: String,
    pub seq: Option<i64>,
    pub entry_id: Option<String>,
    pub detail: String,
}

/// Re-check every seal of a tenant's audit chain (the same check as `faceplate audit verify`).
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "The verification", body = AuditVerificationResponse),
        (status = 404, description = "TENANT_NOT_FOUND", body = crate::error::ErrorEnvelope),
    )
)]
#[get("/tenants/{tenant_id}/audit/verify")]
pub async fn verify_tenant_audit(
    operator: crate::auth::Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = crate::routes::admin::load_tenant(&state, &path).await?;
    let v = state.stores.tenant_data(&tenant)?.verify_audit().await?;
    Ok(HttpResponse::Ok().json(AuditVerificationResponse {
        meta: operator.ctx.meta(),
        tenant_id: v.tenant_id.clone(),
        intact: v.intact(),
        entries: v.entries,
        head_seq: v.head_seq,
        problems: v
            .problems
            .into_iter()
            .map(|p| AuditProblemView { kind: p.kind, seq: p.seq, entry_id: p.entry_id, detail: p.detail })
            .collect(),
    }))
}
