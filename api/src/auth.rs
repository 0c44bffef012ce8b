//! Authentication and authorisation live in the extractor types: a handler that takes `Caller<AdminScope>`
//! cannot run for a key without the `admin` scope, and gets the authenticated tenant to scope every query by.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use faceplate_store::credentials::parse_bearer_token;
use faceplate_store::{ApiKey, AuthRejection, Authenticated, KeyId, Provenance, Scope, Tenant, TenantStatus};
use futures_util::future::LocalBoxFuture;

use crate::context::RequestContext;
use crate::error::{ApiError, ErrorCode};
use crate::limits::{RateState, Refusal};
use crate::state::AppState;

/// The scope an endpoint needs.
pub trait RequiredScope {
    const SCOPE: Option<Scope>;
}

/// Any valid key of an active tenant.
pub struct AnyScope;
impl RequiredScope for AnyScope {
    const SCOPE: Option<Scope> = None;
}

/// A key with the `admin` scope: manages the tenant's keys, reads its audit log.
pub struct AdminScope;
impl RequiredScope for AdminScope {
    const SCOPE: Option<Scope> = Some(Scope::Admin);
}

/// A key with the `face` scope: detection, comparison, face tokens.
pub struct FaceScope;
impl RequiredScope for FaceScope {
    const SCOPE: Option<Scope> = Some(Scope::Face);
}

/// A key with the `ocr` scope: text and document reading.
pub struct OcrScope;
impl RequiredScope for OcrScope {
    const SCOPE: Option<Scope> = Some(Scope::Ocr);
}

/// The authenticated tenant and key behind a request.
pub struct Caller<S: RequiredScope = AnyScope> {
    pub tenant: Tenant,
    pub key: ApiKey,
    pub ctx: RequestContext,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> Caller<S> {
    /// Provenance for audit entries made on this caller's behalf.
    pub fn provenance(&self) -> Provenance {
        Provenance {
            actor: faceplate_store::Actor::Key(self.key.id.clone()),
            request_id: Some(self.ctx.request_id.to_string()),
        }
    }
}

fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("missing credentials: send `Authorization: Bearer <api key>`"))?;
    let value = value.to_str().map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthenticated("use `Authorization: Bearer <api key>`"));
    }
    Ok(token.trim())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::internal("AppState missing"))
}

impl<S: RequiredScope + 'static> FromRequest for Caller<S> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = bearer_token(req).and_then(|token| {
            parse_bearer_token(token)
                .map(|(id, secret)| (id, secret.to_string()))
                .ok_or_else(|| ApiError::unauthenticated("invalid API key"))
        });
        let state = state(req);
        let req = req.clone();
        Box::pin(async move {
            let (key_id, secret) = parsed?;
            let state = state?;
            let authenticated = authorize(&state, &req, &key_id, &secret, S::SCOPE).await?;
            let ctx = req.extensions().get::<RequestContext>().cloned().unwrap_or_default();
            Ok(Caller { tenant: authenticated.tenant, key: authenticated.key, ctx, _scope: PhantomData })
        })
    }
}

/// Checks a key id and secret (from a bearer token or Face++ form fields), the tenant's status and the scope.
pub async fn authorize(
    state: &AppState,
    req: &HttpRequest,
    key_id: &KeyId,
    secret: &str,
    scope: Option<Scope>,
) -> Result<Authenticated, ApiError> {
    let authenticated = match state.stores.control().authenticate(key_id, secret).await? {
        Ok(authenticated) => authenticated,
        Err(AuthRejection::Invalid) => return Err(ApiError::unauthenticated("invalid API key")),
        Err(AuthRejection::Revoked) => return Err(ApiError::unauthenticated("this API key has been revoked")),
        Err(AuthRejection::Expired) => return Err(ApiError::unauthenticated("this API key has expired")),
    };
    req.extensions_mut().insert(authenticated.tenant.id.clone());
    if authenticated.tenant.status == TenantStatus::PendingDeletion {
        let when = authenticated.tenant.delete_after.map(|t| t.to_rfc3339()).unwrap_or_else(|| "now".into());
        return Err(ApiError::new(
            ErrorCode::TenantPendingDeletion,
            format!("this tenant is scheduled for deletion ({when}); the operator can cancel it until then"),
        ));
    }
    if authenticated.tenant.status == TenantStatus::Suspended {
        return Err(ApiError::new(ErrorCode::TenantSuspended, "this tenant is suspended; contact the operator"));
    }
    if let Some(scope) = scope
        && !authenticated.key.has_scope(scope)
    {
        return Err(ApiError::new(ErrorCode::AuthorizationError, format!("this API key lacks the `{scope}` scope")));
    }
    if is_biometric(req) {
        if authenticated.tenant.processing_restricted_at.is_some() {
            return Err(ApiError::new(
                ErrorCode::ProcessingRestricted,
                "this tenant has restricted the processing of its data; lift it with POST /v1/processing/resume",
            ));
        }
        if !crate::routes::consents::dpa_accepted(&authenticated.tenant) {
            return Err(ApiError::new(
                ErrorCode::DpaNotAccepted,
                format!(
                    "accept the data processing terms (version {}) before biometric calls: GET /v1/dpa, then POST \
                     /v1/dpa/acceptance with an admin key",
                    crate::routes::consents::DPA_VERSION
                ),
            ));
        }
    }
    let request_id = req.extensions().get::<RequestContext>().map(|c| c.request_id.to_string()).unwrap_or_default();
    match state.limits.admit(&authenticated, &request_id).await {
        // The admission lives in the request until it ends, holding the in-flight slots.
        Ok(Some(admission)) => {
            req.extensions_mut().insert(admission);
        }
        Ok(None) => {}
        Err(refusal) => return Err(refused(&refusal, is_facepp(req.path()))),
    }
    if state.metering.enabled() {
        let data = state.stores.tenant_data(&authenticated.tenant)?;
        match state.metering.admit(data, &authenticated, req).await {
            Ok(Some(billable)) => {
                req.extensions_mut().insert(billable);
            }
            Ok(None) => {}
            Err(error) if error.code == ErrorCode::QuotaExceeded && is_facepp(req.path()) => {
                return Err(ApiError {
                    code: ErrorCode::AuthorizationError,
                    facepp_message: Some("AUTHORIZATION_ERROR:Insufficient Account Balance"),
                    ..error
                });
            }
            Err(error) => return Err(error),
        }
    }
    Ok(authenticated)
}

/// Operations that create, store or match face templates: what a restriction of processing stops, and what
/// needs the data processing terms accepted and a consent.
pub(crate) const BIOMETRIC: &[(&str, &str)] = &[
    ("POST", "/v1/faces/detect"),
    ("POST", "/v1/faces/compare"),
    ("POST", "/v1/facesets/search"),
    ("POST", "/v1/facesets/{faceset_token}/enrol"),
    ("POST", "/v1/facesets/{faceset_token}/faces"),
    ("POST", "/facepp/v3/detect"),
    ("POST", "/facepp/v3/compare"),
    ("POST", "/facepp/v3/search"),
    ("POST", "/facepp/v3/faceset/addface"),
    ("POST", "/facepp/v3/faceset/async/addface"),
];

fn is_biometric(req: &HttpRequest) -> bool {
    let route = req.match_pattern().unwrap_or_default();
    BIOMETRIC.iter().any(|(method, pattern)| req.method().as_str() == *method && route == *pattern)
}

/// The Face++-compatible paths, whose clients expect Face++'s errors.
fn is_facepp(path: &str) -> bool {
    ["/facepp/", "/cardpp/", "/imagepp/"].iter().any(|prefix| path.starts_with(prefix))
}

/// The error for a refused request: 429 RATE_LIMITED with `Retry-After` and the RateLimit headers, or, on the
/// Face++ API, 403 CONCURRENCY_LIMIT_EXCEEDED as Face++ answers.
fn refused(refusal: &Refusal, facepp: bool) -> ApiError {
    let (message, retry_after) = match refusal {
        Refusal::Rate { subject, qps, retry_after } => (
            format!(
                "this {} may make {qps} requests per second; retry in {:.2} s",
                subject.as_str(),
                retry_after.as_secs_f64()
            ),
            retry_after.as_secs_f64().ceil().max(1.0) as u64,
        ),
        Refusal::Concurrency { subject, limit } => {
            (format!("this {} already has {limit} requests in flight, its limit", subject.as_str()), 1)
        }
        Refusal::Unavailable => {
            return ApiError {
                internal: Some(
                    "the shared rate limiter (Redis) is unavailable and limits.on_redis_failure = closed".into(),
                ),
                ..ApiError::new(ErrorCode::ServiceUnavailable, "the rate limiter is unavailable; retry later")
            }
            .with_header("retry-after", "1".into());
        }
    };
    let code = if facepp { ErrorCode::ConcurrencyLimitExceeded } else { ErrorCode::RateLimited };
    let mut error = ApiError::new(code, message).with_header("retry-after", retry_after.to_string());
    if let Refusal::Rate { subject, qps, .. } = refusal {
        let name = subject.as_str();
        error = error
            .with_header("ratelimit-policy", format!("\"{name}\";q={qps};w=1"))
            .with_header("ratelimit", format!("\"{name}\";r=0;t={retry_after}"));
    }
    error
}

/// The RateLimit headers of an admitted request (draft-ietf-httpapi-ratelimit-headers): the key's and the
/// tenant's policies, and how many more requests the key may send at once now.
pub fn rate_limit_headers(rate: &RateState) -> [(&'static str, String); 2] {
    [
        ("ratelimit-policy", format!("\"key\";q={};w=1, \"tenant\";q={};w=1", rate.key_qps, rate.tenant_qps)),
        ("ratelimit", format!("\"key\";r={};t={}", rate.remaining, rate.reset_secs)),
    ]
}

/// The platform operator, authenticated by the configured operator token.
pub struct Operator {
    pub ctx: RequestContext,
}

impl Operator {
    pub fn provenance(&self) -> Provenance {
        Provenance { actor: faceplate_store::Actor::Operator, request_id: Some(self.ctx.request_id.to_string()) }
    }
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = (|| {
            let state = state(req)?;
            let token = bearer_token(req)?;
            match state.check_operator_token(token) {
                None => Err(ApiError::unauthenticated(
                    "the operator API is disabled: set operator_token in the configuration",
                )),
                Some(false) => Err(ApiError::unauthenticated("invalid operator token")),
                Some(true) => {
                    Ok(Operator { ctx: req.extensions().get::<RequestContext>().cloned().unwrap_or_default() })
                }
            }
        })();
        std::future::ready(result)
    }
}
