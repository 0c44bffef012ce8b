//! The operator admin API (`/admin/v1`), authenticated by the operator token: tenants and their keys.

use actix_web::{HttpResponse, delete, get, post, put, web};
use faceplate_store::{Plan, Product, ProductTerms, RegionName, Tenant, TenantId, TenantStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Operator;
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::routes::keys::{KeyList, KeyResponse, parse_key_id};
use crate::routes::types::{CreateKeyRequest, IssuedKeyView, KeyView, PageQuery, TenantView, next_after};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Unique, 1-100 characters.
    pub name: String,
    /// Home region; default: the configured default region. Cannot be changed later.
    pub region: Option<String>,
    /// Plan; default: the configured default plan (`free`).
    pub plan: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPlanRequest {
    /// A plan id from `GET /admin/v1/plans`.
    pub plan: String,
}

/// A plan: what a tenant may do per second and at once, and what it includes, caps and charges per product.
#[derive(Serialize, ToSchema)]
pub struct PlanView {
    /// `free`, `pay_as_you_go`, `enterprise`, or one the operator added.
    pub id: String,
    #[serde(flatten)]
    pub spec: PlanSpec,
}

/// A plan's terms (the body of `PUT /admin/v1/plans/{plan_id}`).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    pub name: String,
    /// Requests per second over all the tenant's keys (also the burst a quiet tenant may send at once).
    pub tenant_qps: u32,
    /// Requests in flight at once over all the tenant's keys.
    pub tenant_concurrency: u32,
    /// Requests per second per key, unless the key sets `rate_limit_qps`.
    pub key_qps: u32,
    /// Requests in flight per key, unless the key sets `max_concurrency`.
    pub key_concurrency: u32,
    /// Lower-case ISO 4217 code; default `usd`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Charged every month, in cents; default 0.
    #[serde(default)]
    pub base_fee_cents: i64,
    /// Terms per product (`face_detect`, `face_compare`, `face_search`, `ocr_text`, `ocr_idcard`, `ocr_mrz`,
    /// `ocr_bankcard`, `ocr_driverlicense`, `plate_recognize`); a product left out is not available on the plan.
    pub products: std::collections::BTreeMap<String, ProductTermsView>,
}

fn default_currency() -> String {
    "usd".into()
}

/// A plan's terms for one product, per calendar month (UTC).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductTermsView {
    /// Units covered by the base fee.
    pub included_units: i64,
    /// Hard cap: at most this many units a month (403 QUOTA_EXCEEDED beyond). Null or absent: no cap.
    #[serde(default)]
    pub monthly_cap: Option<i64>,
    /// Price of each unit beyond the included ones, in millionths of the currency unit (1000 = $0.001).
    pub unit_price_micros: i64,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        PlanView {
            id: p.id,
            spec: PlanSpec {
                name: p.name,
                tenant_qps: p.tenant_qps,
                tenant_concurrency: p.tenant_concurrency,
                key_qps: p.key_qps,
                key_concurrency: p.key_concurrency,
                currency: p.currency,
                base_fee_cents: p.base_fee_cents,
                products: p
                    .products
                    .into_iter()
                    .map(|(product, t)| {
                        let terms = ProductTermsView {
                            included_units: t.included_units,
                            monthly_cap: t.monthly_cap,
                            unit_price_micros: t.unit_price_micros,
                        };
                        (product.to_string(), terms)
                    })
                    .collect(),
            },
        }
    }
}

impl PlanSpec {
    pub fn into_plan(self, id: String) -> Result<Plan, ApiError> {
        let mut products = std::collections::BTreeMap::new();
        for (name, t) in self.products {
            let terms = ProductTerms {
                included_units: t.included_units,
                monthly_cap: t.monthly_cap,
                unit_price_micros: t.unit_price_micros,
            };
            products.insert(name.parse::<Product>()?, terms);
        }
        Ok(Plan {
            id,
            name: self.name,
            tenant_qps: self.tenant_qps,
            tenant_concurrency: self.tenant_concurrency,
            key_qps: self.key_qps,
            key_concurrency: self.key_concurrency,
            currency: self.currency,
            base_fee_cents: self.base_fee_cents,
            products,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlanResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub plan: PlanView,
}

#[derive(Serialize, ToSchema)]
pub struct PlanList {
    #[serde(flatten)]
    pub meta: Meta,
    pub plans: Vec<PlanView>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub tenant: TenantView,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    #[serde(flatten)]
    pub meta: Meta,
    pub tenants: Vec<TenantView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantDeleted {
    #[serde(flatten)]
    pub meta: Meta,
    pub tenant_id: String,
    /// `pending_deletion` (scheduled: purged at `delete_after` unless cancelled) or `deleted`.
    pub status: String,
    pub delete_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Set once the tenant is purged.
    pub certificate: Option<DeletionCertificateView>,
}

impl TenantDeleted {
    /// The answer to a deletion request: scheduled, purged at `delete_after` unless cancelled.
    pub fn scheduled(meta: Meta, tenant: &Tenant) -> Self {
        TenantDeleted {
            meta,
            tenant_id: tenant.id.to_string(),
            status: "pending_deletion".into(),
            delete_after: tenant.delete_after,
            certificate: None,
        }
    }
}

/// Proof of a completed deletion.
#[derive(Serialize, ToSchema)]
pub struct DeletionCertificateView {
    pub tenant_id: String,
    pub tenant_name: String,
    pub home_region: String,
    pub requested_at: chrono::DateTime<chrono::Utc>,
    pub purge_started_at: chrono::DateTime<chrono::Utc>,
    /// Null while the purge is under way.
    pub purged_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Rows deleted from the region store, per table.
    #[schema(value_type = Object)]
    pub rows_deleted: std::collections::BTreeMap<String, i64>,
    /// The tenant's data keys destroyed: copies of its templates left anywhere, backups included, are unreadable.
    pub data_keys_destroyed: Option<i64>,
    /// SHA-256 of the certificate's content.
    pub sha256: Option<String>,
    /// This platform's seal (HMAC-SHA256) over `sha256`.
    pub seal: Option<String>,
    /// Whether the hash and seal match the content (checked when this was served).
    pub genuine: bool,
}

impl DeletionCertificateView {
    pub fn new(c: faceplate_store::deletion::DeletionCertificate, genuine: bool) -> Self {
        DeletionCertificateView {
            tenant_id: c.tenant_id,
            tenant_name: c.tenant_name,
            home_region: c.home_region,
            requested_at: c.requested_at,
            purge_started_at: c.purge_started_at,
            purged_at: c.purged_at,
            rows_deleted: c.rows_deleted,
            data_keys_destroyed: c.data_keys_destroyed,
            sha256: c.sha256,
            seal: c.seal,
            genuine,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteTenantQuery {
    /// Purge now instead of after the grace period (`privacy.deletion_grace_days`, 30 by default).
    #[serde(default)]
    pub immediately: bool,
}

/// Loads a tenant whose data the operator is about to read, and records that access in the tenant's audit log
/// (`operator.accessed`, with what was read): a tenant can see every time the operator looked at its data.
pub(crate) async fn load_tenant_for_access(
    state: &AppState,
    raw: &str,
    operator: &Operator,
    what: &str,
) -> Result<Tenant, ApiError> {
    let tenant = load_tenant(state, raw).await?;
    state
        .stores
        .tenant_data(&tenant)?
        .record_audit(
            &operator.provenance(),
            "operator.accessed",
            Some(tenant.id.as_str()),
            serde_json::json!({"what": what}),
        )
        .await?;
    Ok(tenant)
}

pub(crate) async fn load_tenant(state: &AppState, raw: &str) -> Result<Tenant, ApiError> {
    let id = TenantId::parse(raw).ok_or_else(|| ApiError::new(ErrorCode::TenantNotFound, "tenant not found"))?;
    Ok(state.stores.control().get_tenant(&id).await?)
}

/// Create a tenant.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "The new tenant", body = TenantResponse),
        (status = 409, description = "CONFLICT: the name is taken", body = ErrorEnvelope),
    )
)]
#[post("/tenants")]
pub async fn create_tenant(
    operator: Operator,
    state: web::Data<AppState>,
    body: web::Json<CreateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let region = match &body.region {
        Some(name) => RegionName::parse(name)?,
        None => state.default_region.clone(),
    };
    let plan = body.plan.as_deref().unwrap_or(&state.default_plan);
    let tenant = state.stores.create_tenant(&body.name, &region, plan, &operator.provenance()).await?;
    Ok(HttpResponse::Created().json(TenantResponse { meta: operator.ctx.meta(), tenant: tenant.into() }))
}

/// List tenants, oldest first.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(PageQuery),
    responses((status = 200, description = "A page of tenants", body = TenantList))
)]
#[get("/tenants")]
pub async fn list_tenants(
    operator: Operator,
    state: web::Data<AppState>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit()?;
    let tenants = state.stores.control().list_tenants(page.after(TenantId::parse)?, limit).await?;
    let next_after = next_after(&tenants, limit, |t| t.id.to_string());
    Ok(HttpResponse::Ok().json(TenantList {
        meta: operator.ctx.meta(),
        tenants: tenants.into_iter().map(TenantView::from).collect(),
        next_after,
    }))
}

/// Get a tenant.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "The tenant", body = TenantResponse),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[get("/tenants/{tenant_id}")]
pub async fn get_tenant(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = load_tenant(&state, &path).await?;
    Ok(HttpResponse::Ok().json(TenantResponse { meta: operator.ctx.meta(), tenant: tenant.into() }))
}

async fn set_status(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    status: TenantStatus,
) -> Result<HttpResponse, ApiError> {
    let tenant = load_tenant(&state, &path).await?;
    let tenant = state.stores.set_tenant_status(&tenant.id, status, &operator.provenance()).await?;
    Ok(HttpResponse::Ok().json(TenantResponse { meta: operator.ctx.meta(), tenant: tenant.into() }))
}

/// List the plans and their limits.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    responses((status = 200, description = "Every plan", body = PlanList))
)]
#[get("/plans")]
pub async fn list_plans(operator: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let plans = state.stores.control().list_plans().await?;
    let plans = plans.into_iter().map(PlanView::from).collect();
    Ok(HttpResponse::Ok().json(PlanList { meta: operator.ctx.meta(), plans }))
}

/// Create a plan, or replace one's terms: tenants on it get them from their next request, on every node.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("plan_id" = String, Path, description = "1-64 characters of a-z, 0-9, `_` and `-`")),
    request_body = PlanSpec,
    responses(
        (status = 200, description = "The plan as stored", body = PlanResponse),
        (status = 400, description = "BAD_ARGUMENTS: a term out of range or an unknown product", body = ErrorEnvelope),
    )
)]
#[put("/plans/{plan_id}")]
pub async fn put_plan(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<PlanSpec>,
) -> Result<HttpResponse, ApiError> {
    let plan = body.into_inner().into_plan(path.into_inner())?;
    let plan = state.stores.control().put_plan(plan).await?;
    Ok(HttpResponse::Ok().json(PlanResponse { meta: operator.ctx.meta(), plan: plan.into() }))
}

/// Put a tenant on another plan: its limits change with its next request, on every node. Audited.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    request_body = SetPlanRequest,
    responses(
        (status = 200, description = "The tenant on its new plan", body = TenantResponse),
        (status = 400, description = "BAD_ARGUMENTS: no such plan", body = ErrorEnvelope),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[put("/tenants/{tenant_id}/plan")]
pub async fn set_tenant_plan(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<SetPlanRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant = load_tenant(&state, &path).await?;
    let tenant = state.stores.set_tenant_plan(&tenant.id, &body.plan, &operator.provenance()).await?;
    Ok(HttpResponse::Ok().json(TenantResponse { meta: operator.ctx.meta(), tenant: tenant.into() }))
}

/// Suspend a tenant: its keys are refused with TENANT_SUSPENDED until it is resumed. Idempotent.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "The suspended tenant", body = TenantResponse),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[post("/tenants/{tenant_id}/suspend")]
pub async fn suspend_tenant(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(operator, state, path, TenantStatus::Suspended).await
}

/// Resume a suspended tenant. Idempotent.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "The active tenant", body = TenantResponse),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[post("/tenants/{tenant_id}/resume")]
pub async fn resume_tenant(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(operator, state, path, TenantStatus::Active).await
}

/// Delete a tenant: scheduled after the grace period (its keys are refused from now on; the deletion can be
/// cancelled until then), or at once with `immediately=true`. Either way everything it owns is purged from its
/// region, its data keys are destroyed, and a deletion certificate is issued.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`"), DeleteTenantQuery),
    responses(
        (status = 200, description = "Purged now, with its certificate", body = TenantDeleted),
        (status = 202, description = "Scheduled for deletion", body = TenantDeleted),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[delete("/tenants/{tenant_id}")]
pub async fn delete_tenant(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<DeleteTenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = load_tenant(&state, &path).await?;
    if query.immediately {
        let certificate = state.stores.delete_tenant(&tenant.id).await?;
        state.indexes.forget_tenant(&tenant.id);
        tracing::info!(request_id = %operator.ctx.request_id, tenant = %tenant.id, "tenant purged");
        let genuine = state.stores.certificate_is_genuine(&certificate);
        return Ok(HttpResponse::Ok().json(TenantDeleted {
            meta: operator.ctx.meta(),
            tenant_id: tenant.id.to_string(),
            status: "deleted".into(),
            delete_after: None,
            certificate: Some(DeletionCertificateView::new(certificate, genuine)),
        }));
    }
    let tenant = state.stores.request_deletion(&tenant.id, state.deletion_grace, &operator.provenance()).await?;
    Ok(HttpResponse::Accepted().json(TenantDeleted::scheduled(operator.ctx.meta(), &tenant)))
}

/// Cancel a scheduled deletion (before its purge starts); the tenant is active again.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "The tenant, active", body = TenantResponse),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: not scheduled for deletion, or its purge has started", body = ErrorEnvelope),
    )
)]
#[post("/tenants/{tenant_id}/cancel-deletion")]
pub async fn cancel_tenant_deletion(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = load_tenant(&state, &path).await?;
    let tenant = state.stores.cancel_deletion(&tenant.id, &operator.provenance()).await?;
    Ok(HttpResponse::Ok().json(TenantResponse { meta: operator.ctx.meta(), tenant: tenant.into() }))
}

#[derive(Serialize, ToSchema)]
pub struct DeletionCertificateResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub certificate: DeletionCertificateView,
}

/// The deletion certificate of a deleted (or being purged) tenant; it outlives the tenant.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "The certificate", body = DeletionCertificateResponse),
        (status = 404, description = "DELETION_CERTIFICATE_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[get("/deletion-certificates/{tenant_id}")]
pub async fn get_deletion_certificate(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = TenantId::parse(&path)
        .ok_or_else(|| ApiError::new(ErrorCode::DeletionCertificateNotFound, "deletion certificate not found"))?;
    let certificate = state.stores.deletion_certificate(id.as_str()).await?;
    let genuine = state.stores.certificate_is_genuine(&certificate);
    Ok(HttpResponse::Ok().json(DeletionCertificateResponse {
        meta: operator.ctx.meta(),
        certificate: DeletionCertificateView::new(certificate, genuine),
    }))
}

/// Create a key for a tenant (e.g. its first `admin` key).
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The new key and its secret", body = IssuedKeyView),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the tenant holds the maximum number of keys", body = ErrorEnvelope),
    )
)]
#[post("/tenants/{tenant_id}/keys")]
pub async fn create_tenant_key(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant = load_tenant(&state, &path).await?;
    let issued = state.stores.create_key(&tenant, body.into_inner().into_new_key()?, &operator.provenance()).await?;
    Ok(HttpResponse::Created().json(IssuedKeyView::new(operator.ctx.meta(), issued)))
}

/// List a tenant's keys.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`"), PageQuery),
    responses(
        (status = 200, description = "A page of keys", body = KeyList),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[get("/tenants/{tenant_id}/keys")]
pub async fn list_tenant_keys(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = load_tenant_for_access(&state, &path, &operator, "keys").await?;
    let limit = page.limit()?;
    let keys = state.stores.control().list_keys(&tenant.id, page.after(faceplate_store::KeyId::parse)?, limit).await?;
    let next_after = next_after(&keys, limit, |k| k.id.to_string());
    Ok(HttpResponse::Ok().json(KeyList {
        meta: operator.ctx.meta(),
        keys: keys.into_iter().map(KeyView::from).collect(),
        next_after,
    }))
}

/// Revoke one of a tenant's keys. Idempotent.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`"), ("key_id" = String, Path, description = "`fpk_...`")),
    responses(
        (status = 200, description = "The revoked key", body = KeyResponse),
        (status = 404, description = "TENANT_NOT_FOUND or KEY_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[delete("/tenants/{tenant_id}/keys/{key_id}")]
pub async fn revoke_tenant_key(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, key_id) = path.into_inner();
    let tenant = load_tenant(&state, &tenant_id).await?;
    let key = state.stores.revoke_key(&tenant, &parse_key_id(&key_id)?, &operator.provenance()).await?;
    Ok(HttpResponse::Ok().json(KeyResponse { meta: operator.ctx.meta(), key: key.into() }))
}
