//! The one table of error codes, the JSON envelope every error is sent in, and the exhaustive mapping from
//! every internal error to a code. Internal detail goes to the logs, never to the caller.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use faceplate_engine::EngineError;
use faceplate_store::{Entity, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// Declares the error-code table once: variant, wire name (Face++'s where Face++ has the error), HTTP status
/// and meaning.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal => $status:ident,)+) => {
        /// Stable, machine-readable error codes. Clients branch on these, never on messages.
        /// (The wire names come from `rename_all`; a unit test checks they equal the names in the table.)
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }

            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!($($doc),+).trim_ascii(),)+
                }
            }
        }
    };
}

error_codes! {
    /// No credentials, malformed credentials, or a key that is unknown, revoked or expired.
    AuthenticationError = "AUTHENTICATION_ERROR" => UNAUTHORIZED,
    /// The key is valid but lacks the scope this endpoint needs.
    AuthorizationError = "AUTHORIZATION_ERROR" => FORBIDDEN,
    /// The tenant is suspended by the operator; its keys are refused until it is resumed.
    TenantSuspended = "TENANT_SUSPENDED" => FORBIDDEN,
    /// The tenant's account is scheduled for deletion; its keys are refused (the operator can cancel the
    /// deletion until its purge starts).
    TenantPendingDeletion = "TENANT_PENDING_DELETION" => FORBIDDEN,
    /// The tenant has restricted the processing of its data: no biometric operation (detect, compare, search,
    /// enrolment, adding faces to a FaceSet) runs until it lifts the restriction.
    ProcessingRestricted = "PROCESSING_RESTRICTED" => FORBIDDEN,
    /// A biometric operation without a consent attestation that allows it: `consent_id` is missing, unknown,
    /// revoked or expired, does not cover the operation's purpose, or names a different data subject than the
    /// face token used.
    ConsentRequired = "CONSENT_REQUIRED" => FORBIDDEN,
    /// The tenant has not accepted the current data processing terms (`POST /v1/dpa/acceptance`), which it must
    /// before its first biometric operation.
    DpaNotAccepted = "DPA_NOT_ACCEPTED" => FORBIDDEN,
    /// A required argument is missing.
    MissingArguments = "MISSING_ARGUMENTS" => BAD_REQUEST,
    /// An argument is malformed or out of range, or the body is not valid JSON.
    BadArguments = "BAD_ARGUMENTS" => BAD_REQUEST,
    /// The uploaded image is larger than the configured limit.
    ImageFileTooLarge = "IMAGE_FILE_TOO_LARGE" => BAD_REQUEST,
    /// The image cannot be used: not JPEG, PNG, WebP or BMP, or damaged.
    ImageErrorUnsupportedFormat = "IMAGE_ERROR_UNSUPPORTED_FORMAT" => BAD_REQUEST,
    /// The image's width or height is outside the allowed range.
    InvalidImageSize = "INVALID_IMAGE_SIZE" => BAD_REQUEST,
    /// `image_url` cannot be used: not an http(s) URL, a host off the allow-list, or a failed download.
    InvalidImageUrl = "INVALID_IMAGE_URL" => BAD_REQUEST,
    /// Downloading `image_url` took longer than the server allows.
    ImageDownloadTimeout = "IMAGE_DOWNLOAD_TIMEOUT" => PRECONDITION_FAILED,
    /// Face++ API: the face token is unknown, expired or not this tenant's.
    InvalidFaceToken = "INVALID_FACE_TOKEN" => BAD_REQUEST,
    /// Face++ API: the faceset_token is unknown or not this tenant's.
    InvalidFacesetToken = "INVALID_FACESET_TOKEN" => BAD_REQUEST,
    /// Face++ API: no FaceSet of this tenant has this outer_id.
    InvalidOuterId = "INVALID_OUTER_ID" => BAD_REQUEST,
    /// Face++ API: the outer_id is already used by another FaceSet (create without force_merge).
    FacesetExist = "FACESET_EXIST" => BAD_REQUEST,
    /// Face++ API: new_outer_id is already used by another FaceSet.
    NewOuterIdExist = "NEW_OUTER_ID_EXIST" => BAD_REQUEST,
    /// Face++ API: the FaceSet still holds faces (delete with check_empty=1).
    FacesetNotEmpty = "FACESET_NOT_EMPTY" => BAD_REQUEST,
    /// Face++ API: the FaceSet searched holds no faces.
    EmptyFaceset = "EMPTY_FACESET" => BAD_REQUEST,
    /// Face++ API: the tenant has as many FaceSets as it may have.
    FacesetQuotaExceeded = "FACESET_QUOTA_EXCEEDED" => BAD_REQUEST,
    /// Enrolment: no face was found in the image.
    NoFaceFound = "NO_FACE_FOUND" => UNPROCESSABLE_ENTITY,
    /// Enrolment: the image shows several faces (send one, or ask for the largest).
    MultipleFaces = "MULTIPLE_FACES" => UNPROCESSABLE_ENTITY,
    /// Face++ API: more face tokens than the call accepts.
    InvalidFaceTokensSize = "INVALID_FACE_TOKENS_SIZE" => BAD_REQUEST,
    /// Face++ API: no such asynchronous task for this tenant.
    InvalidTaskId = "INVALID_TASK_ID" => BAD_REQUEST,
    /// Face++ API: an update that changes nothing.
    VoidRequest = "VOID_REQUEST" => BAD_REQUEST,
    /// Face++ API: two arguments that exclude each other were both given (faceset_token and outer_id).
    CoexistenceArguments = "COEXISTENCE_ARGUMENTS" => BAD_REQUEST,
    /// Document reading: no document of the requested kind was found in the image.
    NoCardFound = "NO_CARD_FOUND" => UNPROCESSABLE_ENTITY,
    /// Plate reading: no licence plate was found in the image.
    NoLicensePlateFound = "NO_LICENSE_PLATE_FOUND" => UNPROCESSABLE_ENTITY,
    /// A configured limit would be exceeded: FaceSets per tenant, or faces per FaceSet.
    LimitReached = "LIMIT_REACHED" => CONFLICT,
    /// No such endpoint.
    ApiNotFound = "API_NOT_FOUND" => NOT_FOUND,
    /// No such tenant.
    TenantNotFound = "TENANT_NOT_FOUND" => NOT_FOUND,
    /// No such API key for this tenant.
    KeyNotFound = "KEY_NOT_FOUND" => NOT_FOUND,
    /// No such audit event for this tenant.
    AuditEventNotFound = "AUDIT_EVENT_NOT_FOUND" => NOT_FOUND,
    /// No such face token for this tenant (unknown or expired).
    FaceNotFound = "FACE_NOT_FOUND" => NOT_FOUND,
    /// No such FaceSet for this tenant.
    FacesetNotFound = "FACESET_NOT_FOUND" => NOT_FOUND,
    /// No such consent attestation for this tenant.
    ConsentNotFound = "CONSENT_NOT_FOUND" => NOT_FOUND,
    /// No consent attestation names this data subject.
    SubjectNotFound = "SUBJECT_NOT_FOUND" => NOT_FOUND,
    /// No such asynchronous task for this tenant.
    TaskNotFound = "TASK_NOT_FOUND" => NOT_FOUND,
    /// No legal request with this id.
    LegalRequestNotFound = "LEGAL_REQUEST_NOT_FOUND" => NOT_FOUND,
    /// No deletion of this tenant has started.
    DeletionCertificateNotFound = "DELETION_CERTIFICATE_NOT_FOUND" => NOT_FOUND,
    /// The endpoint exists but not with this HTTP method; see the Allow header.
    MethodNotAllowed = "METHOD_NOT_ALLOWED" => METHOD_NOT_ALLOWED,
    /// The request conflicts with the current state (a name already taken, a revoked key).
    Conflict = "CONFLICT" => CONFLICT,
    /// The request body is larger than this endpoint accepts.
    RequestEntityTooLarge = "REQUEST_ENTITY_TOO_LARGE" => PAYLOAD_TOO_LARGE,
    /// The request body has a content type this endpoint does not accept.
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE" => UNSUPPORTED_MEDIA_TYPE,
    /// The tenant's data lives in a region this node does not serve.
    WrongRegion = "WRONG_REGION" => MISDIRECTED_REQUEST,
    /// An unexpected server-side failure; the request id identifies it in the logs.
    InternalError = "INTERNAL_ERROR" => INTERNAL_SERVER_ERROR,
    /// A dependency (a database) is unavailable; retry later.
    ServiceUnavailable = "SERVICE_UNAVAILABLE" => SERVICE_UNAVAILABLE,
    /// Every inference worker is busy and the queue is full; retry after the `Retry-After` seconds.
    ServerBusy = "SERVER_BUSY" => SERVICE_UNAVAILABLE,
    /// Over a limit of the key or its tenant: requests per second, or requests in flight at once. Retry after
    /// the `Retry-After` seconds; the `RateLimit-Policy` and `RateLimit` headers say which limit and how long.
    RateLimited = "RATE_LIMITED" => TOO_MANY_REQUESTS,
    /// Face++ API: over the key's or its tenant's requests per second or requests in flight (Face++ answers
    /// both this way); `error_message` is the bare code, as Face++ sends it.
    ConcurrencyLimitExceeded = "CONCURRENCY_LIMIT_EXCEEDED" => FORBIDDEN,
    /// The tenant has used all the units of this product its plan allows this month (or the plan does not
    /// include the product). The Face++-compatible API answers `AUTHORIZATION_ERROR:Insufficient Account Balance`.
    QuotaExceeded = "QUOTA_EXCEEDED" => FORBIDDEN,
    /// The `Idempotency-Key` was already used for a different request (or longer ago than the retry window).
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED" => CONFLICT,
    /// A payment-provider webhook whose signature is missing, wrong or too old (or billing through the provider
    /// is not configured on this node).
    InvalidSignature = "INVALID_SIGNATURE" => UNAUTHORIZED,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names the tenant's home region on a `421 WRONG_REGION` answer (with `faceplate-region-endpoint`, its API's
/// base URL, when the node knows it).
pub const HOME_REGION_HEADER: &str = "faceplate-home-region";
pub const REGION_ENDPOINT_HEADER: &str = "faceplate-region-endpoint";

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Identifies this request in our logs; also in the `X-Request-Id` header.
    pub request_id: String,
    /// Milliseconds spent on the request.
    pub time_used: u64,
    pub error: ErrorBody,
    /// `CODE: message`, the form Face++ clients read.
    pub error_message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// Human-readable explanation; may change between versions.
    pub message: String,
}

/// An error on its way to the caller. The envelope (request id, time used) is filled in by the request
/// middleware, which sees every response; `internal` is logged there and never sent.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub internal: Option<String>,
    /// Extra headers, e.g. `Allow` for 405.
    pub headers: Vec<(&'static str, String)>,
    /// `error_message` exactly as Face++ words it, where it differs from `CODE: message`.
    pub facepp_message: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), internal: None, headers: Vec::new(), facepp_message: None }
    }

    pub fn internal(detail: impl fmt::Display) -> Self {
        ApiError {
            internal: Some(detail.to_string()),
            ..ApiError::new(ErrorCode::InternalError, "internal error; quote the request id when reporting it")
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::AuthenticationError, message)
    }

    pub fn bad_arguments(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadArguments, message)
    }

    pub fn envelope(&self, request_id: &str, time_used: u64) -> ErrorEnvelope {
        ErrorEnvelope {
            request_id: request_id.to_string(),
            time_used,
            error: ErrorBody { code: self.code, message: self.message.clone() },
            error_message: match (self.facepp_message, self.code) {
                (Some(message), _) => message.to_string(),
                (None, ErrorCode::ConcurrencyLimitExceeded) => self.code.to_string(),
                (None, _) => format!("{}: {}", self.code, self.message),
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    /// The body is rendered by the middleware (it knows the request id); here we only attach the error.
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        for (name, value) in &self.headers {
            response.insert_header((*name, value.clone()));
        }
        let mut response = response.finish();
        response.extensions_mut().insert(self.clone());
        response
    }
}

/// Every store error has exactly one meaning for the caller. No catch-all arm: a new variant must be mapped.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(entity) => {
                let code = match entity {
                    Entity::Tenant => ErrorCode::TenantNotFound,
                    Entity::ApiKey => ErrorCode::KeyNotFound,
                    Entity::AuditEvent => ErrorCode::AuditEventNotFound,
                    Entity::Face => ErrorCode::FaceNotFound,
                    Entity::FaceSet => ErrorCode::FacesetNotFound,
                    Entity::Task => ErrorCode::TaskNotFound,
                    Entity::LegalRequest => ErrorCode::LegalRequestNotFound,
                    Entity::DeletionCertificate => ErrorCode::DeletionCertificateNotFound,
                    Entity::Consent => ErrorCode::ConsentNotFound,
                    Entity::Subject => ErrorCode::SubjectNotFound,
                };
                ApiError::new(code, format!("{entity} not found"))
            }
            StoreError::Conflict(message) | StoreError::NotEmpty(message) => {
                ApiError::new(ErrorCode::Conflict, message)
            }
            StoreError::LimitReached(message) => ApiError::new(ErrorCode::LimitReached, message),
            StoreError::Invalid(message) => ApiError::new(ErrorCode::BadArguments, message),
            StoreError::ConsentRefused(message) => ApiError::new(ErrorCode::ConsentRequired, message),
            StoreError::Restricted(message) => ApiError::new(ErrorCode::ProcessingRestricted, message),
            StoreError::RegionNotConfigured(region) => ApiError::new(
                ErrorCode::WrongRegion,
                format!("this tenant's data lives in region `{region}`, which this node does not serve"),
            )
            .with_header(HOME_REGION_HEADER, region),
            e @ (StoreError::Unavailable(_) | StoreError::Migration(_)) => ApiError {
                internal: Some(e.to_string()),
                ..ApiError::new(ErrorCode::ServiceUnavailable, "a database is unavailable; retry later")
            },
            e @ (StoreError::BadUrl(_) | StoreError::Database(_)) => ApiError::internal(e),
        }
    }
}

/// Every engine error has exactly one meaning for the caller.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            e @ (EngineError::UnsupportedFormat(_) | EngineError::CorruptImage(_)) => {
                ApiError::new(ErrorCode::ImageErrorUnsupportedFormat, e.to_string())
            }
            e @ EngineError::FileTooLarge { .. } => ApiError::new(ErrorCode::ImageFileTooLarge, e.to_string()),
            e @ EngineError::BadDimensions { .. } => ApiError::new(ErrorCode::InvalidImageSize, e.to_string()),
            EngineError::Busy => ApiError::new(ErrorCode::ServerBusy, "all inference workers are busy; retry shortly")
                .with_header("retry-after", "1".into()),
            e @ (EngineError::Model { .. } | EngineError::Runtime(_)) => ApiError::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_unique_wire_names_and_error_statuses() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).expect("serialises"), code.as_str(), "serde and table agree");
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
            assert!(!code.description().is_empty());
        }
        assert_eq!(ErrorCode::AuthenticationError.as_str(), "AUTHENTICATION_ERROR");
        assert_eq!(ErrorCode::ImageFileTooLarge.as_str(), "IMAGE_FILE_TOO_LARGE");
    }
}
