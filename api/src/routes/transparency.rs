//! Transparency: the operator records every legal or government request for data
//! (`/admin/v1/legal-requests`), and anyone can read the aggregated report (`GET /transparency/report`), which
//! never shows a single request, its authority or its notes.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use faceplate_store::LegalRequestId;
use faceplate_store::transparency::{self, LegalRequest, LegalRequestChanges, NewLegalRequest, ReportPeriod};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Operator;
use crate::context::{Meta, RequestContext};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::routes::types::{PageQuery, next_after};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordLegalRequest {
    /// The day it arrived (`2026-11-03`).
    pub received_on: NaiveDate,
    /// `subpoena`, `court_order`, `search_warrant`, `emergency`, `preservation`, `national_security` or `other`.
    pub kind: String,
    /// ISO 3166-1 alpha-2 code of the requesting jurisdiction, e.g. `DE`.
    pub jurisdiction: String,
    /// Who asked (kept private).
    pub authority: String,
    /// Tenant accounts the request named.
    pub accounts_affected: i64,
    /// `pending` (default), `rejected`, `partially_disclosed` or `disclosed`.
    #[serde(default = "pending")]
    pub outcome: String,
    /// Private notes: the legal basis checked, what was disclosed.
    pub notes: Option<String>,
}

fn pending() -> String {
    "pending".into()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLegalRequest {
    pub outcome: Option<String>,
    pub accounts_affected: Option<i64>,
    pub notes: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LegalRequestView {
    /// `lrq_...`
    pub id: String,
    pub received_on: NaiveDate,
    pub kind: String,
    pub jurisdiction: String,
    pub authority: String,
    pub accounts_affected: i64,
    pub outcome: String,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<LegalRequest> for LegalRequestView {
    fn from(r: LegalRequest) -> Self {
        LegalRequestView {
            id: r.id.to_string(),
            received_on: r.received_on,
            kind: r.kind,
            jurisdiction: r.jurisdiction,
            authority: r.authority,
            accounts_affected: r.accounts_affected,
            outcome: r.outcome,
            notes: r.notes,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LegalRequestResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub legal_request: LegalRequestView,
}

#[derive(Serialize, ToSchema)]
pub struct LegalRequestList {
    #[serde(flatten)]
    pub meta: Meta,
    pub legal_requests: Vec<LegalRequestView>,
    pub next_after: Option<String>,
}

/// Record a legal or government request for data.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    request_body = RecordLegalRequest,
    responses((status = 201, description = "Recorded", body = LegalRequestResponse))
)]
#[post("/legal-requests")]
pub async fn record_legal_request(
    operator: Operator,
    state: web::Data<AppState>,
    body: web::Json<RecordLegalRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewLegalRequest {
        received_on: body.received_on,
        kind: body.kind,
        jurisdiction: body.jurisdiction,
        authority: body.authority,
        accounts_affected: body.accounts_affected,
        outcome: body.outcome,
        notes: body.notes,
    };
    let recorded = transparency::record(state.stores.control().database(), new).await?;
    Ok(HttpResponse::Created().json(LegalRequestResponse { meta: operator.ctx.meta(), legal_request: recorded.into() }))
}

/// List recorded requests, oldest first.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(PageQuery),
    responses((status = 200, description = "A page of requests", body = LegalRequestList))
)]
#[get("/legal-requests")]
pub async fn list_legal_requests(
    operator: Operator,
    state: web::Data<AppState>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit()?;
    let requests =
        transparency::list(state.stores.control().database(), page.after(LegalRequestId::parse)?, limit).await?;
    let next_after = next_after(&requests, limit, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(LegalRequestList {
        meta: operator.ctx.meta(),
        legal_requests: requests.into_iter().map(LegalRequestView::from).collect(),
        next_after,
    }))
}

/// Record what came of a request.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("request_id" = String, Path, description = "`lrq_...`")),
    request_body = UpdateLegalRequest,
    responses(
        (status = 200, description = "Updated", body = LegalRequestResponse),
        (status = 404, description = "LEGAL_REQUEST_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[patch("/legal-requests/{request_id}")]
pub async fn update_legal_request(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<UpdateLegalRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = LegalRequestId::parse(&path)
        .ok_or_else(|| ApiError::new(ErrorCode::LegalRequestNotFound, "legal request not found"))?;
    let body = body.into_inner();
    let changes =
        LegalRequestChanges { outcome: body.outcome, accounts_affected: body.accounts_affected, notes: body.notes };
    let updated = transparency::update(state.stores.control().database(), &id, changes).await?;
    Ok(HttpResponse::Ok().json(LegalRequestResponse { meta: operator.ctx.meta(), legal_request: updated.into() }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// One half-year, e.g. `2026-H2`; default: every half-year with requests.
    pub period: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TransparencyPeriod {
    /// `2026-H2`.
    pub period: String,
    pub from: NaiveDate,
    /// Exclusive.
    pub to: NaiveDate,
    /// Requests received, national-security requests aside.
    pub requests: i64,
    /// Tenant accounts those requests named.
    pub accounts_affected: i64,
    #[schema(value_type = Object)]
    pub by_kind: std::collections::BTreeMap<String, i64>,
    /// Per ISO 3166-1 alpha-2 jurisdiction.
    #[schema(value_type = Object)]
    pub by_jurisdiction: std::collections::BTreeMap<String, i64>,
    /// `pending`, `rejected`, `partially_disclosed`, `disclosed`.
    #[schema(value_type = Object)]
    pub by_outcome: std::collections::BTreeMap<String, i64>,
    /// In bands of 250 (`0-249`), as the law that allows publishing them requires.
    pub national_security_requests: String,
    pub national_security_accounts: String,
}

impl From<ReportPeriod> for TransparencyPeriod {
    fn from(p: ReportPeriod) -> Self {
        TransparencyPeriod {
            period: p.period,
            from: p.from,
            to: p.to,
            requests: p.requests,
            accounts_affected: p.accounts_affected,
            by_kind: p.by_kind,
            by_jurisdiction: p.by_jurisdiction,
            by_outcome: p.by_outcome,
            national_security_requests: p.national_security_requests,
            national_security_accounts: p.national_security_accounts,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TransparencyReport {
    #[serde(flatten)]
    pub meta: Meta,
    /// Newest first.
    pub periods: Vec<TransparencyPeriod>,
}

/// The public transparency report: legal and government requests for data, per half-year.
#[utoipa::path(
    tag = "transparency",
    params(ReportQuery),
    responses((status = 200, description = "The report", body = TransparencyReport))
)]
#[get("/transparency/report")]
pub async fn transparency_report(
    ctx: RequestContext,
    state: web::Data<AppState>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let periods = transparency::report(state.stores.control().database(), query.period.as_deref()).await?;
    Ok(HttpResponse::Ok()
        .json(TransparencyReport { meta: ctx.meta(), periods: periods.into_iter().map(Into::into).collect() }))
}
