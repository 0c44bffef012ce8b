//! The outermost middleware. For every request it assigns the request id, and for every response it
//! - renders errors in the one JSON envelope (whoever produced them: a handler, an extractor, actix itself),
//! - sets `X-Request-Id`,
//! - records metrics and writes one log line (with the internal cause of server errors, which callers never see).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};

use crate::context::RequestContext;
use crate::error::{ApiError, ErrorCode, HOME_REGION_HEADER, REGION_ENDPOINT_HEADER};
use crate::limits::Admission;
use crate::metrics::Metrics;
use faceplate_store::TenantId;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let ctx = RequestContext::new();
    req.extensions_mut().insert(ctx.clone());
    let mut req = req;
    crate::metering::BodyDigest::attach(&mut req);
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();

    // Routing and handlers turn their errors into responses, so an `Err` here can only come from the service
    // stack itself (the request is consumed, so there is nothing to render an envelope for).
    let response = next.call(req).await.inspect_err(|e| {
        tracing::error!(request_id = %ctx.request_id, error = %e, "service failed");
    })?;
    let (http_req, response) = response.map_into_boxed_body().into_parts();
    // Before anything else: an answer that cannot be metered becomes an error.
    let response = crate::metering::settle(&http_req, response).await;
    let api_error = error_of(&response).map(|e| name_region_endpoint(e, &http_req));
    let mut response = match &api_error {
        Some(error) => render_error(error, &ctx, &response),
        None => response,
    };
    if let Ok(value) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    if let Some(admission) = http_req.extensions().get::<Admission>()
        && api_error.is_none()
    {
        for (name, value) in crate::auth::rate_limit_headers(&admission.rate) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(HeaderName::from_static(name), value);
            }
        }
    }

    let status = response.status();
    let route = http_req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let elapsed = ctx.started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe(http_req.method().as_str(), &route, status.as_u16(), elapsed.as_secs_f64());
    }
    let tenant = http_req.extensions().get::<TenantId>().map(|t| t.to_string());
    let code = api_error.as_ref().map(|e| e.code.as_str());
    let internal = api_error.as_ref().and_then(|e| e.internal.as_deref());
    let time_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(request_id = %ctx.request_id, method = %http_req.method(), %route, status = status.as_u16(),
            time_ms, tenant, code, internal, "request failed");
    } else {
        tracing::info!(request_id = %ctx.request_id, method = %http_req.method(), %route, status = status.as_u16(),
            time_ms, tenant, code, "request");
    }
    Ok(ServiceResponse::new(http_req, response))
}

/// The error a response carries: ours (attached by `ApiError::error_response`), or one inferred from the
/// status of a bare error response made by actix itself, so no error ever leaves without the envelope.
fn error_of(response: &HttpResponse) -> Option<ApiError> {
    if let Some(error) = response.extensions().get::<ApiError>() {
        return Some(error.clone());
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let detail = response.error().map(|e| e.to_string()).unwrap_or_default();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::ApiNotFound, "no such endpoint".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "method not allowed".to_string()),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::RequestEntityTooLarge, "request body too large".to_string()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (ErrorCode::UnsupportedMediaType, "unsupported content type".to_string()),
        StatusCode::UNAUTHORIZED => (ErrorCode::AuthenticationError, "authentication required".to_string()),
        StatusCode::FORBIDDEN => (ErrorCode::AuthorizationError, "not allowed".to_string()),
        s if s.is_client_error() => {
            (ErrorCode::BadArguments, if detail.is_empty() { "bad request".into() } else { detail.clone() })
        }
        _ => return Some(ApiError::internal(if detail.is_empty() { status.to_string() } else { detail })),
    };
    Some(ApiError::new(code, message))
}

/// A `421 WRONG_REGION` names the home region's endpoint, where the node knows it (`region_endpoints`).
fn name_region_endpoint(mut error: ApiError, req: &actix_web::HttpRequest) -> ApiError {
    if error.code != ErrorCode::WrongRegion {
        return error;
    }
    let Some(region) = error.headers.iter().find(|(n, _)| *n == HOME_REGION_HEADER).map(|(_, v)| v.clone()) else {
        return error;
    };
    let endpoint = req
        .app_data::<web::Data<crate::state::AppState>>()
        .and_then(|state| state.region_endpoints.get(&region).cloned());
    if let Some(endpoint) = endpoint {
        error.message = format!("{}; send its requests to {endpoint}", error.message);
        error.headers.push((REGION_ENDPOINT_HEADER, endpoint));
    }
    error
}

fn render_error(error: &ApiError, ctx: &RequestContext, original: &HttpResponse) -> HttpResponse {
    let mut response =
        HttpResponse::build(error.code.status()).json(error.envelope(&ctx.request_id, ctx.time_used_ms()));
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    // Headers added to the error after it was first rendered (see `name_region_endpoint`).
    for (name, value) in &error.headers {
        let name = HeaderName::from_static(name);
        if !response.headers().contains_key(&name)
            && let Ok(value) = HeaderValue::from_str(value)
        {
            response.headers_mut().insert(name, value);
        }
    }
    if error.code.status() == StatusCode::SERVICE_UNAVAILABLE && !response.headers().contains_key(header::RETRY_AFTER) {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}
