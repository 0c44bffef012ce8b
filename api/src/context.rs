//! Per-request context: the request id and the clock, set by the `observe` middleware before any handler runs.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Instant;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    pub started: Instant,
}

impl RequestContext {
    pub fn new() -> Self {
        // UUIDv7: unique, and sorts by time in log searches.
        RequestContext { request_id: uuid::Uuid::now_v7().to_string().into(), started: Instant::now() }
    }

    pub fn time_used_ms(&self) -> u64 {
        self.started.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
    }

    /// The common fields of every JSON response body.
    pub fn meta(&self) -> Meta {
        Meta { request_id: self.request_id.to_string(), time_used: self.time_used_ms() }
    }
}

impl Default for RequestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl FromRequest for RequestContext {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req.extensions().get::<RequestContext>().cloned().unwrap_or_default()))
    }
}

/// Fields present in every JSON response (success and error), as in Face++.
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    /// Identifies this request in our logs; also in the `X-Request-Id` header.
    pub request_id: String,
    /// Milliseconds spent on the request.
    pub time_used: u64,
}
