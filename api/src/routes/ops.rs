//! Operational endpoints: liveness, readiness, metrics.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::context::RequestContext;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[serde(flatten)]
    pub meta: crate::context::Meta,
    /// `ok` (live) or `ready` (every store reachable).
    pub status: String,
    /// Stores checked, for `/readyz`.
    pub stores: Vec<String>,
}

/// Liveness: the process is up and answering.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Live", body = Health)))]
#[get("/healthz")]
pub async fn healthz(ctx: RequestContext) -> HttpResponse {
    HttpResponse::Ok().json(Health { meta: ctx.meta(), status: "ok".into(), stores: Vec::new() })
}

/// Readiness: the control store and every region store answer a query.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "SERVICE_UNAVAILABLE: a store is unreachable (named in the message)", body = crate::error::ErrorEnvelope),
    )
)]
#[get("/readyz")]
pub async fn readyz(ctx: RequestContext, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let results = state.stores.ping_all().await;
    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    if !failed.is_empty() {
        let names: Vec<_> = failed.iter().map(|(name, _)| name.as_str()).collect();
        let causes: Vec<_> =
            failed.iter().filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}"))).collect();
        return Err(ApiError {
            internal: Some(causes.join("; ")),
            ..ApiError::new(ErrorCode::ServiceUnavailable, format!("not ready: {} unreachable", names.join(", ")))
        });
    }
    let stores = results.into_iter().map(|(name, _)| name).collect();
    Ok(HttpResponse::Ok().json(Health { meta: ctx.meta(), status: "ready".into(), stores }))
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String))
)]
#[get("/metrics")]
pub async fn metrics(metrics: web::Data<Metrics>, state: web::Data<AppState>) -> HttpResponse {
    metrics.set_index_stats(state.indexes.stats());
    HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(metrics.render())
}
