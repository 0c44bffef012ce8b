use std::fmt;

/// Everything that can go wrong in the store. The API maps each variant to an error code with an exhaustive
/// match, so adding a variant forces a decision about what the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing does not exist *for this tenant* (another tenant's resource is indistinguishable from none).
    #[error("{0} not found")]
    NotFound(Entity),
    /// A uniqueness rule was violated (e.g. a tenant name already taken).
    #[error("{0}")]
    Conflict(String),
    /// A configured limit would be exceeded (sets per tenant, faces per set).
    #[error("{0}")]
    LimitReached(String),
    /// The thing still holds other things (a FaceSet with faces, deleted with `only_if_empty`).
    #[error("{0}")]
    NotEmpty(String),
    /// A caller-supplied value broke a rule the store enforces.
    #[error("{0}")]
    Invalid(String),
    /// A consent that is missing, revoked, expired or does not cover the operation.
    #[error("{0}")]
    ConsentRefused(String),
    /// Processing is restricted (for the data subject the operation concerns).
    #[error("{0}")]
    Restricted(String),
    /// The tenant's home region is not served by this configuration.
    #[error("region `{0}` is not configured on this node")]
    RegionNotConfigured(String),
    /// A configured database URL is unusable (bad scheme, missing file).
    #[error("{0}")]
    BadUrl(String),
    /// The database could not be reached or a connection could not be made.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed for a reason other than the ones above.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
}

/// Kinds of records, for `NotFound` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Tenant,
    ApiKey,
    AuditEvent,
    Face,
    FaceSet,
    Task,
    LegalRequest,
    DeletionCertificate,
    Consent,
    Subject,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Tenant => "tenant",
            Entity::ApiKey => "API key",
            Entity::AuditEvent => "audit event",
            Entity::Face => "face",
            Entity::FaceSet => "FaceSet",
            Entity::Task => "task",
            Entity::LegalRequest => "legal request",
            Entity::DeletionCertificate => "deletion certificate",
            Entity::Consent => "consent",
            Entity::Subject => "data subject",
        })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<deadpool_diesel::PoolError> for StoreError {
    fn from(e: deadpool_diesel::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<deadpool_diesel::InteractError> for StoreError {
    fn from(e: deadpool_diesel::InteractError) -> Self {
        StoreError::Unavailable(format!("database worker failed: {e}"))
    }
}

/// Turns a unique-constraint violation into `Conflict` with a readable message; other errors pass through.
pub(crate) fn conflict_on_unique(e: diesel::result::Error, message: impl FnOnce() -> String) -> StoreError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Conflict(message()),
        other => StoreError::Database(other),
    }
}
