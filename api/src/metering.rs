//! Quotas and usage metering for billable operations.
//!
//! - **What is billable**: a 2xx answer from an operation in [`BILLABLE`] (inference: detection, comparison,
//!   search, OCR, plates), on the native or the Face++-compatible API. Errors are not billed, whoever caused
//!   them: bad input, refusals (limits, quotas, auth), server trouble. Reads and management calls are free.
//! - **Quotas**: before a billable operation runs, the tenant's units this month (UTC) plus the ones in flight
//!   must stay within its plan's cap for the product, else 403 QUOTA_EXCEEDED (Face++ API:
//!   `AUTHORIZATION_ERROR:Insufficient Account Balance`). Each node keeps the month's count in memory, adds its
//!   own answers at once and re-reads the store every `quota_refresh_ms`; with several nodes a tenant may go
//!   over its cap by what the other nodes answered in that time.
//! - **Metering**: the answer's usage event is committed before the answer is sent (see `faceplate_store::usage`
//!   for the group commit). If it cannot be, the caller gets 503 instead of the answer, so no answer is given
//!   that is not counted. Recording is idempotent on the request id, or on the caller's `Idempotency-Key`: a
//!   retry of the same request (same method, path and body) within `idempotency_window_hours` is answered but
//!   not counted again; a key reused for another request is refused with 409 IDEMPOTENCY_KEY_REUSED.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::http::{Method, header::HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest, ResponseError};
use chrono::{DateTime, Utc};
use faceplate_store::usage::month_start;
use faceplate_store::{Authenticated, NewUsageEvent, Plan, Product, Recorded, TenantData, TenantId};
use futures_util::Stream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};

use crate::config::MeteringConfig;
use crate::error::{ApiError, ErrorCode};

/// Every billable operation and what it counts as. Anything not listed is free.
pub const BILLABLE: &[(&str, &str, Product)] = &[
    ("POST", "/v1/faces/detect", Product::FaceDetect),
    ("POST", "/v1/facesets/{faceset_token}/enrol", Product::FaceDetect),
    ("POST", "/facepp/v3/detect", Product::FaceDetect),
    ("POST", "/v1/faces/compare", Product::FaceCompare),
    ("POST", "/facepp/v3/compare", Product::FaceCompare),
    ("POST", "/v1/facesets/search", Product::FaceSearch),
    ("POST", "/facepp/v3/search", Product::FaceSearch),
    ("POST", "/v1/ocr/text", Product::OcrText),
    ("POST", "/imagepp/v1/recognizetext", Product::OcrText),
    ("POST", "/v1/ocr/idcard", Product::OcrIdcard),
    ("POST", "/cardpp/v1/ocridcard", Product::OcrIdcard),
    ("POST", "/v1/ocr/mrz", Product::OcrMrz),
    ("POST", "/v1/ocr/bankcard", Product::OcrBankcard),
    ("POST", "/cardpp/v1/ocrbankcard", Product::OcrBankcard),
    ("POST", "/v1/ocr/driverlicense", Product::OcrDriverlicense),
    ("POST", "/cardpp/v1/ocrdriverlicense", Product::OcrDriverlicense),
    ("POST", "/v1/plates/recognize", Product::PlateRecognize),
    ("POST", "/imagepp/v1/licenseplate", Product::PlateRecognize),
];

/// One call is one unit of its product.
const UNITS_PER_CALL: i64 = 1;
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The product a route bills, if any.
pub fn product_of(method: &Method, route: &str) -> Option<Product> {
    BILLABLE.iter().find(|(m, r, _)| *m == method.as_str() && *r == route).map(|(_, _, p)| *p)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    pub product: String,
    /// `counted`, `replayed` (an idempotent retry), `conflict` (a reused key) or `failed` (not recorded).
    pub result: &'static str,
}

#[derive(Clone, Default)]
pub struct MeteringMetrics {
    pub events: Family<UsageLabels, Counter>,
    pub quota_refusals: Family<UsageLabels, Counter>,
}

/// Quotas and the metering settings, shared by every request of a node.
pub struct Metering {
    config: MeteringConfig,
    quotas: Mutex<HashMap<(TenantId, Product), MonthToDate>>,
    metrics: MeteringMetrics,
}

/// A tenant's units of one product this month, as this node knows them.
struct MonthToDate {
    month: DateTime<Utc>,
    /// Counted in the store (as last read) plus what this node counted since.
    used: i64,
    /// Admitted on this node and not yet answered.
    in_flight: i64,
    read_at: Instant,
}

/// What a billable request carries from admission to its answer.
pub struct Billable {
    metering: Arc<Metering>,
    data: TenantData,
    key_id: faceplate_store::KeyId,
    product: Product,
    operation: String,
    idempotency_key: Option<String>,
    /// Holds the request's units against the quota until it is answered.
    reserved: Option<(TenantId, Product, i64)>,
}

impl Drop for Billable {
    fn drop(&mut self) {
        if let Some(key) = self.reserved.take() {
            self.metering.release(&key, false);
        }
    }
}

impl Metering {
    pub fn new(config: MeteringConfig, metrics: MeteringMetrics) -> Arc<Self> {
        Arc::new(Metering { config, quotas: Mutex::new(HashMap::new()), metrics })
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Admits a request to a billable route against its tenant's quota; the returned `Billable` goes into the
    /// request's extensions. `None`: the route is free or metering is off.
    pub async fn admit(
        self: &Arc<Self>,
        data: TenantData,
        authenticated: &Authenticated,
        req: &HttpRequest,
    ) -> Result<Option<Billable>, ApiError> {
        if !self.config.enabled {
            return Ok(None);
        }
        let route = req.match_pattern().unwrap_or_default();
        let Some(product) = product_of(req.method(), &route) else { return Ok(None) };
        let idempotency_key = idempotency_key(req)?;
        let mut billable = Billable {
            metering: self.clone(),
            data,
            key_id: authenticated.key.id.clone(),
            product,
            operation: format!("{} {route}", req.method()),
            idempotency_key,
            reserved: None,
        };
        billable.reserved = self.reserve(&billable.data, &authenticated.plan, product).await?;
        Ok(Some(billable))
    }

    /// Takes the request's units from the month's allowance, or refuses.
    async fn reserve(
        &self,
        data: &TenantData,
        plan: &Plan,
        product: Product,
    ) -> Result<Option<(TenantId, Product, i64)>, ApiError> {
        let refuse = |message: String| {
            self.metrics
                .quota_refusals
                .get_or_create(&UsageLabels { product: product.to_string(), result: "refused" })
                .inc();
            Err(ApiError::new(ErrorCode::QuotaExceeded, message))
        };
        let Some(terms) = plan.terms(product) else {
            return refuse(format!("the `{}` plan does not include `{product}`", plan.id));
        };
        let Some(cap) = terms.monthly_cap else { return Ok(None) };
        let key = (data.tenant().id.clone(), product);
        let month = month_start(Utc::now());
        let stale = {
            let quotas = self.lock();
            quotas.get(&key).is_none_or(|m| m.month != month || m.read_at.elapsed() >= self.refresh())
        };
        if stale {
            let stored = data.units_since(product, month).await?;
            let mut quotas = self.lock();
            let entry = quotas.entry(key.clone()).or_insert(MonthToDate {
                month,
                used: 0,
                in_flight: 0,
                read_at: Instant::now(),
            });
            if entry.month != month {
                *entry = MonthToDate { month, used: 0, in_flight: entry.in_flight, read_at: Instant::now() };
            }
            // Never below what this node has counted itself: the read may predate its latest answers.
            entry.used = entry.used.max(stored);
            entry.read_at = Instant::now();
        }
        let mut quotas = self.lock();
        let Some(entry) = quotas.get_mut(&key) else { return Ok(None) };
        if entry.used + entry.in_flight + UNITS_PER_CALL > cap {
            let used = entry.used;
            drop(quotas);
            return refuse(format!(
                "this tenant has used {used} of the {cap} `{product}` units its plan allows this month"
            ));
        }
        entry.in_flight += UNITS_PER_CALL;
        Ok(Some((key.0, key.1, UNITS_PER_CALL)))
    }

    /// Ends a reservation; `counted`: its units were recorded, so they join the month's count.
    fn release(&self, (tenant, product, units): &(TenantId, Product, i64), counted: bool) {
        let mut quotas = self.lock();
        if let Some(entry) = quotas.get_mut(&(tenant.clone(), *product)) {
            entry.in_flight -= units;
            if counted {
                entry.used += units;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, Product), MonthToDate>> {
        // The map holds counters only; a panic elsewhere cannot leave it inconsistent enough to matter.
        self.quotas.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refresh(&self) -> Duration {
        Duration::from_millis(self.config.quota_refresh_ms)
    }

    fn count(&self, product: Product, result: &'static str) {
        self.metrics.events.get_or_create(&UsageLabels { product: product.to_string(), result }).inc();
    }
}

/// The caller's `Idempotency-Key`, if it sent a valid one.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let value = value.to_str().unwrap_or_default();
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_arguments("Idempotency-Key must be 1-255 visible ASCII characters"));
    }
    Ok(Some(value.to_string()))
}

/// Records the usage of a billable answer before it is sent. Answers that are not 2xx are not billed; an
/// answer that cannot be recorded is replaced by 503.
pub async fn settle(http_req: &HttpRequest, mut response: HttpResponse) -> HttpResponse {
    let Some(mut billable) = http_req.extensions_mut().remove::<Billable>() else { return response };
    if !response.status().is_success() {
        return response;
    }
    let request_id = http_req
        .extensions()
        .get::<crate::context::RequestContext>()
        .map(|c| c.request_id.to_string())
        .unwrap_or_default();
    let fingerprint = http_req.extensions().get::<BodyDigest>().map(BodyDigest::finish);
    let dedup_key = match &billable.idempotency_key {
        Some(key) => format!("idem:{key}"),
        None => format!("req:{request_id}"),
    };
    let event = NewUsageEvent {
        dedup_key,
        request_id,
        idempotency_key: billable.idempotency_key.clone(),
        key_id: billable.key_id.clone(),
        product: billable.product,
        operation: billable.operation.clone(),
        units: UNITS_PER_CALL,
        status: response.status().as_u16(),
        fingerprint: fingerprint.clone(),
    };
    let metering = billable.metering.clone();
    let product = billable.product;
    match billable.data.record_usage(event).await {
        Ok(Recorded::New { .. }) => {
            metering.count(product, "counted");
            if let Some(reserved) = billable.reserved.take() {
                metering.release(&reserved, true);
            }
            response
        }
        Ok(Recorded::Duplicate { fingerprint: earlier, occurred_at, .. }) => {
            let window = chrono::Duration::hours(i64::try_from(metering.config.idempotency_window_hours).unwrap_or(24));
            if earlier.is_some() && earlier == fingerprint && Utc::now() - occurred_at < window {
                metering.count(product, "replayed");
                response.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
                    HeaderValue::from_static("true"),
                );
                response
            } else {
                metering.count(product, "conflict");
                ApiError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used for a different request, or too long ago; use a new key",
                )
                .error_response()
            }
        }
        Err(e) => {
            metering.count(product, "failed");
            ApiError {
                internal: Some(e.to_string()),
                ..ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the answer could not be metered, so it is withheld; retry later",
                )
            }
            .error_response()
        }
    }
}

/// SHA-256 of a request with an `Idempotency-Key`: method, path and query, then the body as the handler reads
/// it. A retry must match it to be answered free.
#[derive(Clone)]
pub struct BodyDigest(Arc<Mutex<Sha256>>);

impl BodyDigest {
    /// Starts hashing the request and routes its body through the hash.
    pub fn attach(req: &mut ServiceRequest) {
        if !req.headers().contains_key(IDEMPOTENCY_KEY) {
            return;
        }
        let mut hasher = Sha256::new();
        hasher.update(req.method().as_str().as_bytes());
        hasher.update(b" ");
        hasher.update(req.uri().to_string().as_bytes());
        hasher.update(b"\n");
        let digest = BodyDigest(Arc::new(Mutex::new(hasher)));
        let body = HashingBody { inner: req.take_payload(), digest: digest.clone() };
        req.set_payload(Payload::from(Box::pin(body) as Pin<Box<dyn Stream<Item = _>>>));
        req.extensions_mut().insert(digest);
    }

    fn finish(&self) -> String {
        let hasher = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        hex::encode(hasher.finalize())
    }
}

struct HashingBody {
    inner: Payload,
    digest: BodyDigest,
}

impl Stream for HashingBody {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            self.digest.0.lock().unwrap_or_else(|p| p.into_inner()).update(chunk);
        }
        next
    }
}
