//! Faceplate storage.
//!
//! Two kinds of database, each on SQLite or PostgreSQL:
//! - the **control store** (`control`): tenants and API keys, shared by all regions;
//! - one **region store** per configured region (`tenant_data`): everything a tenant owns, reachable only
//!   through a [`TenantData`] bound to one tenant and its home region.
//!
//! This crate knows nothing of HTTP.

pub mod alerts;
pub mod audit;
pub mod billing;
pub mod consents;
pub mod control;
pub mod credentials;
pub mod crypto;
pub mod db;
pub mod deletion;
pub mod error;
pub mod facesets;
pub mod model;
pub mod schema;
pub mod stores;
pub mod tenant_data;
pub mod transparency;
pub mod usage;

pub use audit::{AuditProblem, AuditVerification};
pub use consents::{Consent, ConsentGrant, DeletionReceipt, LegalBasis, NewConsent, Purpose};
pub use control::{AuthRejection, Authenticated, ControlStore};
pub use db::{AnyConnection, Backend, DatabaseUrl, StoreKind};
pub use error::{Entity, StoreError, StoreResult};
pub use facesets::{
    Enrolment, FaceSet, FaceSetChanges, FaceSetRef, FaceSetTask, Failure, FailureReason, Member, MembershipChange,
    NewFaceSet, Selection, TaskKind,
};
pub use model::*;
pub use stores::{MigrationReport, RegionRows, Stores, StoresConfig};
pub use tenant_data::{KeyRotation, TenantData};
pub use usage::{Granularity, NewUsageEvent, Recorded, UsageBucket, UsageEvent};
