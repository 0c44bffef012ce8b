//! Deleting a tenant account: a request starts a grace period (cancellable; the tenant's keys are refused),
//! then a purge removes every row of the tenant in its region, destroys its data keys and removes it from the
//! control store, and completes a deletion certificate.
//!
//! The purge can be interrupted anywhere (a node killed, a database down) and run again: the certificate row
//! is written first with the counts of what is about to be deleted, region rows go in batches (each its own
//! transaction), and the control-store records go last in one transaction that also completes the
//! certificate. A tenant whose certificate is incomplete is simply purged again.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::{AnyConnection, write_transaction};
use crate::error::{Entity, StoreError, StoreResult};
use crate::model::{Provenance, Tenant, TenantId, TenantStatus, millis_to_time, now_millis};
use crate::schema::control::{deletion_certificates, tenant_keys, tenants};
use crate::schema::region::{TENANT_TABLE_KEYS, TENANT_TABLES};
use crate::stores::Stores;

/// Rows deleted per region transaction.
const PURGE_BATCH: i64 = 2_000;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = deletion_certificates)]
struct CertificateRow {
    tenant_id: String,
    tenant_name: String,
    home_region: String,
    requested_at: i64,
    started_at: i64,
    rows: String,
    purged_at: Option<i64>,
    keys_destroyed: Option<i64>,
    sha256: Option<String>,
    seal: Option<String>,
}

/// Proof of a completed deletion: what was deleted and when, hashed, and sealed by this platform.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionCertificate {
    pub tenant_id: String,
    pub tenant_name: String,
    pub home_region: String,
    pub requested_at: DateTime<Utc>,
    pub purge_started_at: DateTime<Utc>,
    /// `None` while the purge has not finished.
    pub purged_at: Option<DateTime<Utc>>,
    /// Rows deleted from the region store, per table.
    pub rows_deleted: BTreeMap<String, i64>,
    /// Data keys destroyed: every remaining copy of the tenant's templates is unreadable.
    pub data_keys_destroyed: Option<i64>,
    /// SHA-256 (hex) of the certificate's canonical content (the fields above).
    pub sha256: Option<String>,
    /// HMAC-SHA256 of `sha256` under a key derived from the server secret: issued by this platform.
    pub seal: Option<String>,
}

impl TryFrom<CertificateRow> for DeletionCertificate {
    type Error = StoreError;
    fn try_from(r: CertificateRow) -> StoreResult<Self> {
        Ok(DeletionCertificate {
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name,
            home_region: r.home_region,
            requested_at: millis_to_time(r.requested_at),
            purge_started_at: millis_to_time(r.started_at),
            purged_at: r.purged_at.map(millis_to_time),
            rows_deleted: serde_json::from_str(&r.rows)
                .map_err(|e| StoreError::Invalid(format!("corrupt deletion certificate: {e}")))?,
            data_keys_destroyed: r.keys_destroyed,
            sha256: r.sha256,
            seal: r.seal,
        })
    }
}

/// The canonical content a certificate's hash covers.
fn canonical(r: &CertificateRow, purged_at: i64, keys: i64) -> String {
    json!([r.tenant_id, r.tenant_name, r.home_region, r.requested_at, r.started_at, r.rows, purged_at, keys])
        .to_string()
}

impl Stores {
    /// Schedules the tenant's deletion `grace` from now; its keys are refused from now on. Audited.
    pub async fn request_deletion(&self, id: &TenantId, grace: Duration, by: &Provenance) -> StoreResult<Tenant> {
        let tenant = self.control().get_tenant(id).await?;
        let after = now_millis() + grace.num_milliseconds().max(0);
        let key = id.to_string();
        self.control()
            .database()
            .run(move |c| {
                diesel::update(tenants::table.find(&key))
                    .set((tenants::delete_after.eq(Some(after)), tenants::updated_at.eq(now_millis())))
                    .execute(c)?;
                Ok(())
            })
            .await?;
        if tenant.status == TenantStatus::PendingDeletion {
            return Err(StoreError::Conflict("the tenant is already scheduled for deletion".into()));
        }
        let detail = json!({"delete_after": millis_to_time(after)});
        self.tenant_data(&tenant)?.record_audit(by, "tenant.deletion_requested", Some(id.as_str()), detail).await?;
        self.control().get_tenant(id).await
    }

    /// Cancels a scheduled deletion whose purge has not started; the tenant is active again. Audited.
    pub async fn cancel_deletion(&self, id: &TenantId, by: &Provenance) -> StoreResult<Tenant> {
        let tenant = self.control().get_tenant(id).await?;
        if tenant.status != TenantStatus::PendingDeletion {
            return Err(StoreError::Conflict("the tenant is not scheduled for deletion".into()));
        }
        let key = id.to_string();
        self.control()
            .database()
            .run(move |c| {
                write_transaction(c, |c| {
                    let started = deletion_certificates::table.find(&key).count().get_result::<i64>(c)? > 0;
                    if started {
                        return Err(StoreError::Conflict("the purge has started; it cannot be cancelled".into()));
                    }
                    diesel::update(tenants::table.find(&key))
                        .set((tenants::delete_after.eq(None::<i64>), tenants::updated_at.eq(now_millis())))
                        .execute(c)?;
                    Ok(())
                })
            })
            .await?;
        self.tenant_data(&tenant)?.record_audit(by, "tenant.deletion_cancelled", Some(id.as_str()), json!({})).await?;
        self.control().get_tenant(id).await
    }

    /// Purges the tenants whose grace period is over (and resumes interrupted purges); returns their
    /// certificates. Tenants homed in regions this node does not serve are left to a node that does.
    pub async fn purge_due(&self) -> StoreResult<Vec<DeletionCertificate>> {
        let now = now_millis();
        let due: Vec<String> = self
            .control()
            .database()
            .run(move |c| Ok(tenants::table.filter(tenants::delete_after.le(now)).select(tenants::id).load(c)?))
            .await?;
        let mut done = Vec::new();
        for id in due {
            let id = TenantId::from_db(id);
            match self.purge_tenant(&id).await {
                Ok(certificate) => done.push(certificate),
                Err(StoreError::RegionNotConfigured(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Purges one tenant now, whatever its grace period (the operator's immediate deletion). Resumable.
    pub async fn purge_tenant(&self, id: &TenantId) -> StoreResult<DeletionCertificate> {
        let tenant = self.control().get_tenant(id).await?;
        let data = self.tenant_data(&tenant)?;
        let region = data.db.clone();
        let key = id.to_string();

        // 1. The certificate, with the counts of what is about to go (kept if a purge already began).
        let existing = self.deletion_certificate_row(&key).await?;
        if existing.is_none() {
            let counts = {
                let key = key.clone();
                region.run(move |c| count_rows(c, &key)).await?
            };
            let row = CertificateRow {
                tenant_id: key.clone(),
                tenant_name: tenant.name.clone(),
                home_region: tenant.home_region.to_string(),
                requested_at: tenant.updated_at.timestamp_millis(),
                started_at: now_millis(),
                rows: serde_json::to_string(&counts).map_err(|e| StoreError::Invalid(e.to_string()))?,
                purged_at: None,
                keys_destroyed: None,
                sha256: None,
                seal: None,
            };
            let now = now_millis();
            self.control()
                .database()
                .run(move |c| {
                    write_transaction(c, |c| {
                        // An immediate deletion skips the grace period but still refuses the keys from here on.
                        diesel::update(tenants::table.find(&row.tenant_id).filter(tenants::delete_after.is_null()))
                            .set((tenants::delete_after.eq(Some(now)), tenants::updated_at.eq(now)))
                            .execute(c)?;
                        diesel::insert_into(deletion_certificates::table).values(&row).execute(c)?;
                        Ok(())
                    })
                })
                .await?;
        }

        // 2. The region rows, a batch per transaction.
        for (table, keys) in TENANT_TABLES.iter().zip(TENANT_TABLE_KEYS) {
            loop {
                let (key, sql) = (
                    key.clone(),
                    format!(
                        // Table and column names come from our own constants, never from input.
                        "DELETE FROM {table} WHERE tenant_id = $1 AND ({keys}) IN \
                     (SELECT {keys} FROM {table} WHERE tenant_id = $1 LIMIT {PURGE_BATCH})"
                    ),
                );
                let deleted = region
                    .run(move |c| Ok(diesel::sql_query(sql).bind::<diesel::sql_types::Text, _>(&key).execute(c)?))
                    .await?;
                if (deleted as i64) < PURGE_BATCH {
                    break;
                }
            }
        }

        // 3. The control store: keys, billing, audit head, data keys, the tenant; the certificate completed.
        let sealer = self.sealer_key();
        let certificate = self
            .control()
            .database()
            .run(move |c| {
                write_transaction(c, |c| {
                    let mut row: CertificateRow = deletion_certificates::table
                        .find(&key)
                        .select(CertificateRow::as_select())
                        .first(c)
                        .optional()?
                        .ok_or(StoreError::NotFound(Entity::Tenant))?;
                    if row.purged_at.is_some() {
                        return row.try_into();
                    }
                    let keys =
                        tenant_keys::table.filter(tenant_keys::tenant_id.eq(&key)).count().get_result::<i64>(c)?;
                    crate::control::delete_tenant_rows(c, &key)?;
                    let purged_at = now_millis();
                    let digest = hex::encode(Sha256::digest(canonical(&row, purged_at, keys).as_bytes()));
                    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&sealer)
                        .unwrap_or_else(|_| unreachable!("any key length"));
                    mac.update(digest.as_bytes());
                    row.purged_at = Some(purged_at);
                    row.keys_destroyed = Some(keys);
                    row.seal = Some(hex::encode(mac.finalize().into_bytes()));
                    row.sha256 = Some(digest);
                    diesel::update(deletion_certificates::table.find(&key))
                        .set((
                            deletion_certificates::purged_at.eq(row.purged_at),
                            deletion_certificates::keys_destroyed.eq(row.keys_destroyed),
                            deletion_certificates::sha256.eq(&row.sha256),
                            deletion_certificates::seal.eq(&row.seal),
                        ))
                        .execute(c)?;
                    row.try_into()
                })
            })
            .await?;
        self.forget_tenant_keys(id);
        Ok(certificate)
    }

    async fn deletion_certificate_row(&self, tenant: &str) -> StoreResult<Option<CertificateRow>> {
        let tenant = tenant.to_string();
        self.control()
            .database()
            .run(move |c| {
                Ok(deletion_certificates::table
                    .find(&tenant)
                    .select(CertificateRow::as_select())
                    .first(c)
                    .optional()?)
            })
            .await
    }

    /// The deletion certificate of a (deleted or being deleted) tenant.
    pub async fn deletion_certificate(&self, tenant: &str) -> StoreResult<DeletionCertificate> {
        self.deletion_certificate_row(tenant)
            .await?
            .ok_or(StoreError::NotFound(Entity::DeletionCertificate))?
            .try_into()
    }

    /// Whether a certificate's hash and seal are what this platform issued for its content.
    pub fn certificate_is_genuine(&self, certificate: &DeletionCertificate) -> bool {
        let (Some(purged_at), Some(keys), Some(sha256), Some(seal)) = (
            certificate.purged_at,
            certificate.data_keys_destroyed,
            certificate.sha256.as_deref(),
            certificate.seal.as_deref(),
        ) else {
            return false;
        };
        let Ok(rows) = serde_json::to_string(&certificate.rows_deleted) else { return false };
        let row = CertificateRow {
            tenant_id: certificate.tenant_id.clone(),
            tenant_name: certificate.tenant_name.clone(),
            home_region: certificate.home_region.clone(),
            requested_at: certificate.requested_at.timestamp_millis(),
            started_at: certificate.purge_started_at.timestamp_millis(),
            rows,
            purged_at: None,
            keys_destroyed: None,
            sha256: None,
            seal: None,
        };
        let digest = hex::encode(Sha256::digest(canonical(&row, purged_at.timestamp_millis(), keys).as_bytes()));
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.sealer_key()) else { return false };
        mac.update(digest.as_bytes());
        digest == sha256 && hex::decode(seal).is_ok_and(|s| mac.verify_slice(&s).is_ok())
    }
}

/// The tenant's rows per region table (all tables, zeros included): what a purge will delete, and what the
/// residency report shows.
pub(crate) fn count_rows(c: &mut AnyConnection, tenant: &str) -> StoreResult<BTreeMap<String, i64>> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut counts = BTreeMap::new();
    for table in TENANT_TABLES {
        let n = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = $1"))
            .bind::<diesel::sql_types::Text, _>(tenant)
            .get_result::<Count>(c)?
            .n;
        counts.insert(table.to_string(), n);
    }
    Ok(counts)
}
