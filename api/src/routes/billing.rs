//! Billing through Stripe: the webhook Stripe calls (`POST /webhooks/stripe`, authenticated by its signature,
//! not an API key) and the operator's view of a tenant's billing (`GET /admin/v1/tenants/{tenant_id}/billing`).

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use faceplate_store::billing;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Operator;
use crate::billing::{BillingMetrics, ResultLabels};
use crate::context::{Meta, RequestContext};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct WebhookReceipt {
    #[serde(flatten)]
    pub meta: Meta,
    /// `applied` (a tenant's billing state changed), or `ignored` (a replay, an older event, an event type or a
    /// customer we do not track).
    pub result: String,
}

/// Stripe's webhook: subscription and invoice events update the tenant's billing state. The body must carry a
/// valid `Stripe-Signature` for the configured signing secret.
#[utoipa::path(
    tag = "billing",
    security(("stripe_signature" = [])),
    request_body(content = Object, description = "A Stripe event, as Stripe sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted", body = WebhookReceipt),
        (status = 400, description = "`BAD_ARGUMENTS`: the body is not a Stripe event", body = ErrorEnvelope),
        (status = 401, description = "`INVALID_SIGNATURE`: the signature is missing, wrong or too old, or billing \
            through Stripe is not configured here", body = ErrorEnvelope),
    )
)]
#[post("/webhooks/stripe")]
pub async fn stripe_webhook(
    ctx: RequestContext,
    state: web::Data<AppState>,
    metrics: web::Data<crate::metrics::Metrics>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let metrics = metrics.billing();
    let result = receive(&state, &req, &body).await;
    let label = match &result {
        Ok(true) => "applied",
        Ok(false) => "ignored",
        Err(_) => "rejected",
    };
    metrics_inc(&metrics, label);
    let applied = result?;
    Ok(HttpResponse::Ok()
        .json(WebhookReceipt { meta: ctx.meta(), result: if applied { "applied" } else { "ignored" }.into() }))
}

fn metrics_inc(metrics: &BillingMetrics, result: &'static str) {
    metrics.webhooks.get_or_create(&ResultLabels { result }).inc();
}

async fn receive(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<bool, ApiError> {
    use faceplate_billing::webhook::{parse_event, verify_signature};
    let Some(settings) = &state.stripe_webhook else {
        return Err(ApiError::new(ErrorCode::InvalidSignature, "billing through Stripe is not configured here"));
    };
    let header = req
        .headers()
        .get("Stripe-Signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidSignature, "the Stripe-Signature header is missing"))?;
    verify_signature(
        settings.secret.expose_secret().as_bytes(),
        header,
        body,
        Utc::now().timestamp(),
        settings.tolerance_secs,
    )
    .map_err(|e| ApiError::new(ErrorCode::InvalidSignature, e.to_string()))?;
    let Some(event) = parse_event(body).map_err(|e| ApiError::bad_arguments(e.to_string()))? else {
        return Ok(false);
    };
    let applied = billing::apply_billing_event(
        state.stores.control().database(),
        event.id.clone(),
        event.kind.clone(),
        event.created_ms,
        event.customer_id.clone(),
        event.status,
    )
    .await?;
    tracing::info!(event = %event.id, kind = %event.kind, customer = %event.customer_id, applied, "Stripe webhook");
    Ok(applied)
}

/// A tenant's billing: its Stripe account and statuses, and the usage not yet reported to Stripe.
#[derive(Serialize, ToSchema)]
pub struct TenantBillingView {
    #[serde(flatten)]
    pub meta: Meta,
    pub tenant_id: String,
    /// `stripe` when this node reports usage to Stripe, `ledger` when the monthly statements are the bill.
    pub provider: String,
    /// Absent until the tenant's first usage has been reported.
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    /// As Stripe last reported it: `active`, `past_due`, `canceled`, …
    pub subscription_status: Option<String>,
    /// The last invoice: `paid` or `payment_failed`.
    pub invoice_status: Option<String>,
    /// Usage events recorded but not yet accepted by Stripe.
    pub unreported_events: i64,
    pub oldest_unreported_at: Option<DateTime<Utc>>,
    /// Failed sends of the most-tried unreported event.
    pub max_attempts: i32,
    pub last_error: Option<String>,
}

/// A tenant's billing account and reporting backlog.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`")),
    responses(
        (status = 200, description = "The tenant's billing", body = TenantBillingView),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[get("/tenants/{tenant_id}/billing")]
pub async fn get_tenant_billing(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = crate::routes::admin::load_tenant_for_access(&state, &path, &operator, "billing").await?;
    let account = billing::get_tenant_billing(state.stores.control().database(), &tenant.id).await?;
    let backlog = state.stores.tenant_data(&tenant)?.billing_backlog().await?;
    Ok(HttpResponse::Ok().json(TenantBillingView {
        meta: operator.ctx.meta(),
        tenant_id: tenant.id.to_string(),
        provider: if state.stripe_webhook.is_some() { "stripe" } else { "ledger" }.into(),
        stripe_customer_id: account.as_ref().map(|a| a.customer_id.clone()),
        stripe_subscription_id: account.as_ref().and_then(|a| a.subscription_id.clone()),
        subscription_status: account.as_ref().and_then(|a| a.subscription_status.clone()),
        invoice_status: account.as_ref().and_then(|a| a.invoice_status.clone()),
        unreported_events: backlog.events,
        oldest_unreported_at: backlog.oldest_occurred_at.and_then(DateTime::from_timestamp_millis),
        max_attempts: backlog.max_attempts,
        last_error: backlog.last_error,
    }))
}
