//! The tenant's security-alert endpoint (`/v1/settings/alerts`, admin scope): where Faceplate posts an alert
//! when one of its keys is created or rotated. Deliveries are signed; see `crate::alerts`.

use actix_web::{HttpResponse, delete, get, put, web};
use chrono::{DateTime, Utc};
use faceplate_store::alerts::{ALERTED_ACTIONS, AlertEndpoint};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AdminScope, Caller};
use crate::context::Meta;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertEndpointRequest {
    /// An https URL that accepts JSON POSTs.
    pub url: String,
}

#[derive(Serialize, ToSchema)]
pub struct AlertEndpointResponse {
    #[serde(flatten)]
    pub meta: Meta,
    /// Null when no endpoint is set.
    pub url: Option<String>,
    /// Verify each delivery's `Faceplate-Signature: t=<unix time>,v1=<hex>` header: HMAC-SHA256 of `<t>.<body>`
    /// under this secret. Returned only when the endpoint is set; setting it again makes a new one.
    pub signing_secret: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The events delivered: the audit actions they report.
    pub events: Vec<String>,
}

fn response(meta: Meta, endpoint: Option<AlertEndpoint>, with_secret: bool) -> HttpResponse {
    HttpResponse::Ok().json(AlertEndpointResponse {
        meta,
        url: endpoint.as_ref().map(|e| e.url.clone()),
        signing_secret: endpoint.as_ref().filter(|_| with_secret).map(|e| e.secret.clone()),
        created_at: endpoint.as_ref().and_then(|e| DateTime::from_timestamp_millis(e.created_at)),
        events: ALERTED_ACTIONS.iter().map(|a| a.to_string()).collect(),
    })
}

/// The tenant's alert endpoint (without its secret).
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "The endpoint", body = AlertEndpointResponse))
)]
#[get("/settings/alerts")]
pub async fn get_alert_endpoint(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state.stores.alert_endpoint(&caller.tenant.id).await?;
    Ok(response(caller.ctx.meta(), endpoint, false))
}

/// Set the endpoint that receives security alerts (a key created or rotated); returns its signing secret, once.
/// Audited.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    request_body = AlertEndpointRequest,
    responses((status = 200, description = "Set; keep the signing secret", body = AlertEndpointResponse))
)]
#[put("/settings/alerts")]
pub async fn put_alert_endpoint(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    body: web::Json<AlertEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let url = crate::alerts::check_url(&body.url, &state.alerts)?;
    let endpoint = state.stores.set_alert_endpoint(&caller.tenant.id, Some(url), &caller.provenance()).await?;
    Ok(response(caller.ctx.meta(), endpoint, true))
}

/// Stop sending security alerts. Audited.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "Removed", body = AlertEndpointResponse))
)]
#[delete("/settings/alerts")]
pub async fn delete_alert_endpoint(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.stores.set_alert_endpoint(&caller.tenant.id, None, &caller.provenance()).await?;
    Ok(response(caller.ctx.meta(), None, false))
}
