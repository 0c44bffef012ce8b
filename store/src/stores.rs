//! All the databases a node uses: the control store and one data store per configured region. Operations that
//! change a tenant or its keys live here because they touch both: the change in the control store and the audit
//! entry in the tenant's home region.

use std::collections::BTreeMap;

use chrono::Duration;
use serde_json::json;

use std::sync::Arc;

use crate::audit::AuditSealer;
use crate::control::{ControlStore, validate_key, validate_tenant_name};
use crate::credentials::KeyHasher;
use crate::crypto::{Keyring, LocalKeyProvider, MasterKey};
use crate::db::{Database, DatabaseUrl, StoreKind};
use crate::error::{StoreError, StoreResult};
use crate::model::{ApiKey, IssuedKey, KeyId, NewKey, Provenance, RegionName, Tenant, TenantId, TenantStatus};
use crate::tenant_data::{Resealed, TenantData, store_resealed};
use crate::usage::UsageWriter;

/// Where the databases are.
#[derive(Debug, Clone)]
pub struct StoresConfig {
    pub control_url: DatabaseUrl,
    pub regions: BTreeMap<RegionName, DatabaseUrl>,
    pub max_connections: usize,
    /// Queue every new usage event for the payment provider (billing through Stripe is configured).
    pub billing_outbox: bool,
    /// The master key that wraps tenants' data keys; `None`: derived from the server secret.
    pub master_key: Option<MasterKey>,
}

/// Migrations applied when opening, per store (`control`, `region:<name>`).
pub type MigrationReport = Vec<(String, Vec<String>)>;

#[derive(Clone)]
pub struct Stores {
    control: ControlStore,
    sealer: AuditSealer,
    keyring: Arc<Keyring>,
    /// Seals deletion certificates (derived from the server secret).
    certificate_key: [u8; 32],
    regions: BTreeMap<RegionName, Region>,
}

/// One region's data store and the queue that records usage into it.
#[derive(Clone)]
struct Region {
    db: Database,
    usage: UsageWriter,
}

impl Stores {
    /// Connects to every store and applies pending migrations.
    pub async fn open(config: &StoresConfig, server_secret: &[u8]) -> StoreResult<(Stores, MigrationReport)> {
        if config.regions.is_empty() {
            return Err(StoreError::Invalid("at least one region must be configured".into()));
        }
        let mut report = Vec::new();
        let (control_db, applied) =
            Database::open(config.control_url.clone(), StoreKind::Control, config.max_connections).await?;
        report.push(("control".to_string(), applied));
        let mut regions = BTreeMap::new();
        for (name, url) in &config.regions {
            let (db, applied) = Database::open(url.clone(), StoreKind::Region, config.max_connections).await?;
            report.push((format!("region:{name}"), applied));
            let usage = UsageWriter::start(db.clone(), config.billing_outbox);
            regions.insert(name.clone(), Region { db, usage });
        }
        let sealer = AuditSealer::new(server_secret);
        for region in regions.values() {
            let legacy_sealer = sealer.clone();
            let ends = region.db.run(move |c| crate::audit::seal_legacy(c, &legacy_sealer)).await?;
            for (tenant, seq, hash) in ends {
                crate::audit::advance_head(&control_db, tenant, seq, hash).await?;
            }
        }
        let master = config.master_key.clone().unwrap_or_else(|| MasterKey::derived_from(server_secret));
        let keyring = Arc::new(Keyring::new(Arc::new(LocalKeyProvider::new(&master.0)), control_db.clone()));
        for region in regions.values() {
            let sealed = encrypt_legacy_faces(&region.db, &keyring).await?;
            if sealed > 0 {
                tracing::info!(faces = sealed, "embeddings stored before encryption at rest are now encrypted");
            }
        }
        let control = ControlStore::new(control_db, KeyHasher::new(server_secret));
        let certificate_key = MasterKey::derived_from_labelled(server_secret, b"faceplate deletion certificates v1").0;
        Ok((Stores { control, sealer, keyring, certificate_key, regions }, report))
    }

    pub(crate) fn sealer_key(&self) -> [u8; 32] {
        self.certificate_key
    }

    pub(crate) fn forget_tenant_keys(&self, id: &TenantId) {
        self.keyring.forget(id.as_str());
    }

    pub fn control(&self) -> &ControlStore {
        &self.control
    }

    pub fn region_names(&self) -> impl Iterator<Item = &RegionName> {
        self.regions.keys()
    }

    /// The tenant's data, in its home region. The only way to reach a region store.
    pub fn tenant_data(&self, tenant: &Tenant) -> StoreResult<TenantData> {
        let region = self
            .regions
            .get(&tenant.home_region)
            .ok_or_else(|| StoreError::RegionNotConfigured(tenant.home_region.to_string()))?;
        Ok(TenantData::new(
            region.db.clone(),
            region.usage.clone(),
            self.control.database().clone(),
            self.sealer.clone(),
            self.keyring.clone(),
            tenant.clone(),
        ))
    }

    /// Each region's data store, for work that spans tenants (the billing outbox).
    pub fn region_databases(&self) -> impl Iterator<Item = (&RegionName, &Database)> {
        self.regions.iter().map(|(name, region)| (name, &region.db))
    }

    /// Checks every store with a round trip; one entry per store, in a stable order.
    pub async fn ping_all(&self) -> Vec<(String, StoreResult<()>)> {
        let mut results = vec![("control".to_string(), self.control.database().ping().await)];
        for (name, region) in &self.regions {
            results.push((format!("region:{name}"), region.db.ping().await));
        }
        results
    }

    /// Deletes expired faces in every region this node serves; returns how many.
    pub async fn purge_expired_faces(&self) -> StoreResult<usize> {
        let mut total = 0;
        for region in self.regions.values() {
            total += crate::tenant_data::purge_expired_faces(&region.db).await?;
        }
        Ok(total)
    }

    /// Unfinished asynchronous FaceSet tasks in every region this node serves, with their tenants.
    pub async fn pending_faceset_tasks(&self) -> StoreResult<Vec<(TenantId, crate::model::TaskId)>> {
        let mut all = Vec::new();
        for region in self.regions.values() {
            all.extend(crate::facesets::pending_tasks(&region.db).await?);
        }
        Ok(all)
    }

    /// Creates a tenant homed in `region` (which must be configured here); the home region never changes
    /// afterwards except through an explicit migration.
    pub async fn create_tenant(
        &self,
        name: &str,
        region: &RegionName,
        plan: &str,
        by: &Provenance,
    ) -> StoreResult<Tenant> {
        validate_tenant_name(name)?;
        if !self.regions.contains_key(region) {
            let known: Vec<_> = self.regions.keys().map(|r| r.as_str()).collect();
            return Err(StoreError::Invalid(format!("unknown region `{region}` (configured: {})", known.join(", "))));
        }
        let tenant = self.control.insert_tenant(name, region.clone(), plan).await?;
        self.tenant_data(&tenant)?
            .record_audit(
                by,
                "tenant.created",
                Some(tenant.id.as_str()),
                json!({"name": tenant.name, "home_region": tenant.home_region, "plan": tenant.plan_id}),
            )
            .await?;
        Ok(tenant)
    }

    /// Puts a tenant on another plan; audited as `tenant.plan_changed`.
    pub async fn set_tenant_plan(&self, id: &TenantId, plan: &str, by: &Provenance) -> StoreResult<Tenant> {
        let before = self.control.get_tenant(id).await?;
        let tenant = self.control.update_tenant_plan(id, plan).await?;
        if before.plan_id != tenant.plan_id {
            self.tenant_data(&tenant)?
                .record_audit(
                    by,
                    "tenant.plan_changed",
                    Some(tenant.id.as_str()),
                    json!({"from": before.plan_id, "to": tenant.plan_id}),
                )
                .await?;
        }
        Ok(tenant)
    }

    pub async fn set_tenant_status(&self, id: &TenantId, status: TenantStatus, by: &Provenance) -> StoreResult<Tenant> {
        let before = self.control.get_tenant(id).await?;
        if before.status == TenantStatus::PendingDeletion || status == TenantStatus::PendingDeletion {
            return Err(StoreError::Conflict(
                "the tenant is scheduled for deletion: cancel the deletion to change its status".into(),
            ));
        }
        let tenant = self.control.update_tenant_status(id, status).await?;
        if before.status != status {
            let action = match status {
                TenantStatus::Active => "tenant.resumed",
                _ => "tenant.suspended",
            };
            self.tenant_data(&tenant)?.record_audit(by, action, Some(tenant.id.as_str()), json!({})).await?;
        }
        Ok(tenant)
    }

    /// Deletes a tenant now, without a grace period: everything it owns in its region, then its keys, data keys
    /// (any copy of its templates left anywhere no longer decrypts) and record. See [`crate::deletion`].
    pub async fn delete_tenant(&self, id: &TenantId) -> StoreResult<crate::deletion::DeletionCertificate> {
        self.purge_tenant(id).await
    }

    pub async fn create_key(&self, tenant: &Tenant, new: NewKey, by: &Provenance) -> StoreResult<IssuedKey> {
        validate_key(&new)?;
        let data = self.tenant_data(tenant)?;
        let issued = self.control.insert_key(&tenant.id, new).await?;
        let key = &issued.key;
        data.record_audit(
            by,
            "key.created",
            Some(key.id.as_str()),
            json!({"name": key.name, "scopes": key.scopes, "expires_at": key.expires_at}),
        )
        .await?;
        Ok(issued)
    }

    pub async fn revoke_key(&self, tenant: &Tenant, id: &KeyId, by: &Provenance) -> StoreResult<ApiKey> {
        let data = self.tenant_data(tenant)?;
        let before = self.control.get_key(&tenant.id, id).await?;
        let key = self.control.revoke_key(&tenant.id, id).await?;
        if before.revoked_at.is_none() {
            data.record_audit(by, "key.revoked", Some(key.id.as_str()), json!({"name": key.name})).await?;
        }
        Ok(key)
    }

    pub async fn rotate_key(
        &self,
        tenant: &Tenant,
        id: &KeyId,
        grace: Duration,
        by: &Provenance,
    ) -> StoreResult<IssuedKey> {
        let data = self.tenant_data(tenant)?;
        let issued = self.control.rotate_key(&tenant.id, id, grace).await?;
        data.record_audit(
            by,
            "key.rotated",
            Some(id.as_str()),
            json!({"old_secret_valid_until": issued.key.previous_secret_expires_at}),
        )
        .await?;
        Ok(issued)
    }
}

/// Encrypts the embeddings written before encryption at rest (`key_version` NULL), a batch per transaction.
async fn encrypt_legacy_faces(db: &Database, keyring: &Keyring) -> StoreResult<usize> {
    use crate::schema::region::faces;
    use diesel::prelude::*;
    let mut done = 0;
    loop {
        let rows: Vec<(String, String, Vec<u8>)> = db
            .run(|c| {
                Ok(faces::table
                    .filter(faces::key_version.is_null())
                    .select((faces::token, faces::tenant_id, faces::embedding))
                    .limit(500)
                    .load(c)?)
            })
            .await?;
        if rows.is_empty() {
            return Ok(done);
        }
        // One key lookup per tenant in the batch, not per row.
        let mut ciphers = BTreeMap::new();
        let mut sealed = Vec::with_capacity(rows.len());
        for (token, tenant, plain) in rows {
            let cipher = match ciphers.get(&tenant) {
                Some(cipher) => Arc::clone(cipher),
                None => {
                    let cipher = keyring.cipher_for_write(&TenantId::from_db(tenant.clone())).await?;
                    ciphers.insert(tenant, Arc::clone(&cipher));
                    cipher
                }
            };
            let (version, bytes) = cipher.seal(&token, &plain)?;
            sealed.push(Resealed { token, old: None, version, bytes });
        }
        done += sealed.len();
        store_resealed(db, sealed).await?;
    }
}

/// Where a tenant's rows are, per region store this node serves.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionRows {
    pub region: String,
    pub home: bool,
    /// Rows per table (only tables with rows).
    pub tables: BTreeMap<String, i64>,
    pub total: i64,
}

impl Stores {
    /// Counts the tenant's rows in every region store this node serves: its home region, and (to prove they
    /// hold nothing of it) all the others. Counts only; nothing of another region's content is read.
    pub async fn residency(&self, tenant: &Tenant) -> StoreResult<Vec<RegionRows>> {
        let mut report = Vec::new();
        for (name, region) in &self.regions {
            let id = tenant.id.to_string();
            let mut tables = region.db.run(move |c| crate::deletion::count_rows(c, &id)).await?;
            tables.retain(|_, n| *n > 0);
            report.push(RegionRows {
                region: name.to_string(),
                home: *name == tenant.home_region,
                total: tables.values().sum(),
                tables,
            });
        }
        Ok(report)
    }
}

impl Stores {
    /// Restricts (or lifts the restriction on) the processing of the tenant's data. Audited.
    pub async fn set_processing_restricted(
        &self,
        id: &TenantId,
        restricted: bool,
        by: &Provenance,
    ) -> StoreResult<Tenant> {
        use crate::schema::control::tenants;
        use diesel::prelude::*;
        let before = self.control.get_tenant(id).await?;
        if before.processing_restricted_at.is_some() == restricted {
            return Ok(before);
        }
        let key = id.to_string();
        let at = restricted.then(crate::model::now_millis);
        self.control
            .database()
            .run(move |c| {
                diesel::update(tenants::table.find(&key))
                    .set((tenants::processing_restricted_at.eq(at), tenants::updated_at.eq(crate::model::now_millis())))
                    .execute(c)?;
                Ok(())
            })
            .await?;
        let tenant = self.control.get_tenant(id).await?;
        let action = if restricted { "tenant.processing_restricted" } else { "tenant.processing_resumed" };
        self.tenant_data(&tenant)?.record_audit(by, action, Some(id.as_str()), json!({})).await?;
        Ok(tenant)
    }
}

/// Retention: per-tenant settings and the purge of templates past them.
impl Stores {
    /// Sets the tenant's retention (`None` clears a setting). Audited as `tenant.retention_changed`.
    pub async fn set_retention(
        &self,
        id: &TenantId,
        face_token_ttl_hours: Option<i32>,
        template_retention_days: Option<i32>,
        by: &Provenance,
    ) -> StoreResult<Tenant> {
        use crate::schema::control::tenants;
        use diesel::prelude::*;
        if face_token_ttl_hours.is_some_and(|h| !(1..=8760).contains(&h)) {
            return Err(StoreError::Invalid("face_token_ttl_hours must be between 1 and 8760 (a year)".into()));
        }
        if template_retention_days.is_some_and(|d| !(1..=36500).contains(&d)) {
            return Err(StoreError::Invalid("template_retention_days must be between 1 and 36500".into()));
        }
        let key = id.to_string();
        let updated = self
            .control
            .database()
            .run(move |c| {
                Ok(diesel::update(tenants::table.find(&key))
                    .set((
                        tenants::face_token_ttl_hours.eq(face_token_ttl_hours),
                        tenants::template_retention_days.eq(template_retention_days),
                        tenants::updated_at.eq(crate::model::now_millis()),
                    ))
                    .execute(c)?)
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(crate::error::Entity::Tenant));
        }
        let tenant = self.control.get_tenant(id).await?;
        let detail =
            json!({"face_token_ttl_hours": face_token_ttl_hours, "template_retention_days": template_retention_days});
        self.tenant_data(&tenant)?.record_audit(by, "tenant.retention_changed", Some(id.as_str()), detail).await?;
        Ok(tenant)
    }

    /// Deletes templates older than their tenant's retention (from every FaceSet too, as `delete_face` does),
    /// up to `limit` per tenant a call; returns how many. Tenants in regions this node does not serve are skipped.
    pub async fn purge_retained_templates(&self, ttl: Duration, limit: i64) -> StoreResult<usize> {
        use crate::schema::control::tenants;
        use crate::schema::region::faces;
        use diesel::prelude::*;
        let ids: Vec<String> = self
            .control
            .database()
            .run(|c| {
                Ok(tenants::table.filter(tenants::template_retention_days.is_not_null()).select(tenants::id).load(c)?)
            })
            .await?;
        let mut purged = 0;
        for id in ids {
            let tenant = match self.control.get_tenant(&TenantId::from_db(id)).await {
                Ok(t) => t,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let Some(days) = tenant.template_retention_days else { continue };
            let data = match self.tenant_data(&tenant) {
                Ok(data) => data,
                Err(StoreError::RegionNotConfigured(_)) => continue,
                Err(e) => return Err(e),
            };
            let cutoff = crate::model::now_millis() - i64::from(days) * 86_400_000;
            let tenant_id = tenant.id.to_string();
            let old: Vec<String> = data
                .db
                .run(move |c| {
                    Ok(faces::table
                        .filter(faces::tenant_id.eq(tenant_id))
                        .filter(faces::created_at.lt(cutoff))
                        .select(faces::token)
                        .limit(limit)
                        .load(c)?)
                })
                .await?;
            for token in old {
                let Some(token) = crate::model::FaceToken::parse(&token) else { continue };
                match data.delete_face(&token, ttl).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => purged += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(purged)
    }
}

/// Consent terms: the data processing terms a tenant accepts, and its rule for Face++ calls without consent.
impl Stores {
    /// Records that the tenant accepted version `version` (whose text hashes to `sha256`) of the data processing
    /// terms. Audited as `dpa.accepted`, which keeps every acceptance.
    pub async fn accept_dpa(&self, id: &TenantId, version: &str, sha256: &str, by: &Provenance) -> StoreResult<Tenant> {
        use crate::schema::control::tenants;
        use diesel::prelude::*;
        let (key, accepted) = (id.to_string(), version.to_string());
        let now = crate::model::now_millis();
        self.control
            .database()
            .run(move |c| {
                diesel::update(tenants::table.find(&key))
                    .set((
                        tenants::dpa_version.eq(Some(accepted)),
                        tenants::dpa_accepted_at.eq(Some(now)),
                        tenants::updated_at.eq(now),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .await?;
        let tenant = self.control.get_tenant(id).await?;
        let detail = json!({"version": version, "sha256": sha256});
        self.tenant_data(&tenant)?.record_audit(by, "dpa.accepted", Some(id.as_str()), detail).await?;
        Ok(tenant)
    }

    /// Sets whether Face++-compatible biometric calls without a `consent_id` run. Audited.
    pub async fn set_facepp_without_consent(
        &self,
        id: &TenantId,
        setting: crate::model::FaceppWithoutConsent,
        by: &Provenance,
    ) -> StoreResult<Tenant> {
        use crate::schema::control::tenants;
        use diesel::prelude::*;
        let key = id.to_string();
        self.control
            .database()
            .run(move |c| {
                diesel::update(tenants::table.find(&key))
                    .set((
                        tenants::facepp_without_consent.eq(setting.as_str()),
                        tenants::updated_at.eq(crate::model::now_millis()),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .await?;
        let tenant = self.control.get_tenant(id).await?;
        let detail = json!({"facepp_without_consent": setting.as_str()});
        self.tenant_data(&tenant)?
            .record_audit(by, "tenant.consent_settings_changed", Some(id.as_str()), detail)
            .await?;
        Ok(tenant)
    }
}
