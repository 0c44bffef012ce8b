//! Data residency: where a tenant's data is. `GET /v1/residency` (admin scope) and the operator's
//! `GET /admin/v1/tenants/{tenant_id}/residency` count the tenant's rows in every region store the answering
//! node serves: everything in the home region, nothing anywhere else.

use actix_web::{HttpResponse, delete, get, post, put, web};
use faceplate_store::Tenant;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AdminScope, Caller, Operator};
use crate::context::{Meta, RequestContext};
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct RegionRowsView {
    pub region: String,
    /// The tenant's home region.
    pub home: bool,
    /// Rows per table (tables without rows left out).
    #[schema(value_type = Object)]
    pub tables: std::collections::BTreeMap<String, i64>,
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ResidencyReport {
    #[serde(flatten)]
    pub meta: Meta,
    pub tenant_id: String,
    pub home_region: String,
    /// Every region store this node serves, the home region first.
    pub regions: Vec<RegionRowsView>,
    /// Rows of the tenant found outside its home region: 0 unless something is wrong.
    pub rows_outside_home: i64,
    /// The regions this node does not serve were not checked by this answer; ask a node that serves them.
    pub regions_not_served_here: bool,
}

async fn report(state: &AppState, tenant: &Tenant, ctx: &RequestContext) -> Result<HttpResponse, ApiError> {
    let mut regions = state.stores.residency(tenant).await?;
    regions.sort_by_key(|r| !r.home);
    let rows_outside_home = regions.iter().filter(|r| !r.home).map(|r| r.total).sum();
    let serves_home = regions.iter().any(|r| r.home);
    Ok(HttpResponse::Ok().json(ResidencyReport {
        meta: ctx.meta(),
        tenant_id: tenant.id.to_string(),
        home_region: tenant.home_region.to_string(),
        regions: regions
            .into_iter()
            .map(|r| RegionRowsView { region: r.region, home: r.home, tables: r.tables, total: r.total })
            .collect(),
        rows_outside_home,
        regions_not_served_here: !serves_home,
    }))
}

/// Where the tenant's data is stored.
#[utoipa::path(
    tag = "privacy",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "Rows per region store", body = ResidencyReport))
)]
#[get("/residency")]
pub async fn get_residency(caller: Caller<AdminScope>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    report(&state, &caller.tenant, &caller.ctx).await
}

/// Where a tenant's data is stored.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "Rows per region store", body = ResidencyReport),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[get("/tenants/{tenant_id}/residency")]
pub async fn get_tenant_residency(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = crate::routes::admin::load_tenant_for_access(&state, &path, &operator, "residency").await?;
    report(&state, &tenant, &operator.ctx).await
}

/// Request the deletion of the tenant's whole account. After the grace period (30 days unless configured)
/// everything it holds is purged, its data keys are destroyed and a deletion certificate is issued. From now on
/// its keys are refused; the operator can cancel the deletion until the purge starts.
#[utoipa::path(
    tag = "privacy",
    security(("api_key" = ["admin"])),
    responses((status = 202, description = "Scheduled", body = crate::routes::admin::TenantDeleted))
)]
#[delete("/account")]
pub async fn delete_account(caller: Caller<AdminScope>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tenant = state.stores.request_deletion(&caller.tenant.id, state.deletion_grace, &caller.provenance()).await?;
    Ok(HttpResponse::Accepted().json(crate::routes::admin::TenantDeleted::scheduled(caller.ctx.meta(), &tenant)))
}

#[derive(Serialize, ToSchema)]
pub struct ProcessingState {
    #[serde(flatten)]
    pub meta: Meta,
    /// While true no biometric operation runs for the tenant (`403 PROCESSING_RESTRICTED`).
    pub processing_restricted: bool,
    pub restricted_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Restrict the processing of the tenant's data (GDPR Art. 18): from now on no biometric operation runs for it
/// (detect, compare, search, enrolment, adding faces to FaceSets); its data is kept and can still be read,
/// exported and deleted. Audited.
#[utoipa::path(
    tag = "privacy",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "Restricted", body = ProcessingState))
)]
#[post("/processing/restrict")]
pub async fn restrict_processing(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_restricted(caller, state, true).await
}

/// Lift a restriction of processing. Audited.
#[utoipa::path(
    tag = "privacy",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "Processing resumed", body = ProcessingState))
)]
#[post("/processing/resume")]
pub async fn resume_processing(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_restricted(caller, state, false).await
}

async fn set_restricted(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    restricted: bool,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.stores.set_processing_restricted(&caller.tenant.id, restricted, &caller.provenance()).await?;
    Ok(HttpResponse::Ok().json(ProcessingState {
        meta: caller.ctx.meta(),
        processing_restricted: tenant.processing_restricted_at.is_some(),
        restricted_since: tenant.processing_restricted_at,
    }))
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// How long a face token lives unless a FaceSet keeps it, 1 to 8760 hours; null: the server's default.
    pub face_token_ttl_hours: Option<i32>,
    /// How long any template is kept at all, FaceSet members included, 1 to 36500 days; null: until deleted.
    /// Older ones are deleted by a background job (from every FaceSet and index too).
    pub template_retention_days: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct RetentionResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub face_token_ttl_hours: Option<i32>,
    /// The TTL in force (the tenant's, else the server's).
    pub effective_face_token_ttl_hours: i64,
    pub template_retention_days: Option<i32>,
}

fn retention(state: &AppState, tenant: &Tenant, ctx: &RequestContext) -> HttpResponse {
    HttpResponse::Ok().json(RetentionResponse {
        meta: ctx.meta(),
        face_token_ttl_hours: tenant.face_token_ttl_hours,
        effective_face_token_ttl_hours: state.token_ttl(tenant).num_hours(),
        template_retention_days: tenant.template_retention_days,
    })
}

/// The tenant's retention settings.
#[utoipa::path(
    tag = "privacy",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "Retention", body = RetentionResponse))
)]
#[get("/settings/retention")]
pub async fn get_retention(caller: Caller<AdminScope>, state: web::Data<AppState>) -> HttpResponse {
    retention(&state, &caller.tenant, &caller.ctx)
}

/// Set the tenant's retention (both fields; null clears one). Audited.
#[utoipa::path(
    tag = "privacy",
    security(("api_key" = ["admin"])),
    request_body = RetentionSettings,
    responses((status = 200, description = "Retention", body = RetentionResponse))
)]
#[put("/settings/retention")]
pub async fn put_retention(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    body: web::Json<RetentionSettings>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state
        .stores
        .set_retention(&caller.tenant.id, body.face_token_ttl_hours, body.template_retention_days, &caller.provenance())
        .await?;
    Ok(retention(&state, &tenant, &caller.ctx))
}
