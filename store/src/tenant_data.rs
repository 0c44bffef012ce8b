//! Tenant-owned data in the tenant's home region. A `TenantData` is bound to one tenant and one region store
//! when it is made (`Stores::tenant_data`); every query below filters by that tenant, and there is no other way
//! to reach the region databases. FaceSet operations are in `facesets.rs`.

use diesel::prelude::*;

use crate::audit::{self, AuditEventRow, AuditSealer, AuditVerification};
use crate::crypto::{Keyring, TenantCipher};
use crate::db::{Database, write_transaction};
use crate::error::{Entity, StoreError, StoreResult};
use crate::model::{
    AuditEvent, AuditEventId, FaceRecord, FaceRect, FaceToken, Product, Provenance, Tenant, millis_to_time, now_millis,
};
use crate::schema::region::{audit_events, faces};
use crate::usage::{self, Granularity, NewUsageEvent, Recorded, UsageBucket, UsageEvent, UsageWriter};
use chrono::{DateTime, Utc};

#[derive(Clone)]
pub struct TenantData {
    pub(crate) db: Database,
    usage: UsageWriter,
    /// The control store, for the head of the audit chain.
    control: Database,
    sealer: AuditSealer,
    keyring: std::sync::Arc<Keyring>,
    pub(crate) tenant: Tenant,
}

impl TenantData {
    pub(crate) fn new(
        db: Database,
        usage: UsageWriter,
        control: Database,
        sealer: AuditSealer,
        keyring: std::sync::Arc<Keyring>,
        tenant: Tenant,
    ) -> Self {
        TenantData { db, usage, control, sealer, keyring, tenant }
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Appends an audit entry to the tenant's sealed chain.
    pub async fn record_audit(
        &self,
        provenance: &Provenance,
        action: &str,
        target: Option<&str>,
        detail: serde_json::Value,
    ) -> StoreResult<AuditEvent> {
        let row = AuditEventRow {
            id: AuditEventId::generate().to_string(),
            tenant_id: self.tenant.id.to_string(),
            occurred_at: now_millis(),
            actor: provenance.actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            request_id: provenance.request_id.clone(),
            detail: detail.to_string(),
            seq: None,
            prev_hash: None,
            hash: None,
        };
        let sealer = self.sealer.clone();
        let row = self.db.run(move |c| audit::append(c, &sealer, row)).await?;
        if let (Some(seq), Some(hash)) = (row.seq, row.hash.clone()) {
            audit::advance_head(&self.control, row.tenant_id.clone(), seq, hash).await?;
        }
        row.try_into()
    }

    /// Re-checks every seal of the tenant's audit chain.
    pub async fn verify_audit(&self) -> StoreResult<AuditVerification> {
        audit::verify(&self.db, &self.control, &self.sealer, &self.tenant.id).await
    }

    /// Audit entries oldest first, `limit` at a time after the cursor.
    pub async fn list_audit(&self, after: Option<AuditEventId>, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        let tenant = self.tenant.id.to_string();
        self.db
            .run(move |c| {
                let mut query = audit_events::table
                    .filter(audit_events::tenant_id.eq(tenant))
                    .select(AuditEventRow::as_select())
                    .order(audit_events::id.asc())
                    .into_boxed();
                if let Some(after) = after {
                    query = query.filter(audit_events::id.gt(after.to_string()));
                }
                query.limit(limit).load(c)?.into_iter().map(AuditEvent::try_from).collect()
            })
            .await
    }

    pub async fn get_audit(&self, id: &AuditEventId) -> StoreResult<AuditEvent> {
        let (tenant, id) = (self.tenant.id.to_string(), id.to_string());
        self.db
            .run(move |c| {
                audit_events::table
                    .find(id)
                    .filter(audit_events::tenant_id.eq(tenant))
                    .select(AuditEventRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::AuditEvent))?
                    .try_into()
            })
            .await
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = faces)]
pub(crate) struct FaceRow {
    token: String,
    tenant_id: String,
    image_id: String,
    model: String,
    embedding: Vec<u8>,
    rect_left: i32,
    rect_top: i32,
    rect_width: i32,
    rect_height: i32,
    score: f64,
    landmarks: String,
    quality: String,
    created_at: i64,
    expires_at: Option<i64>,
    user_id: Option<String>,
    /// The tenant data key the embedding is sealed with; `None`: stored before encryption at rest.
    key_version: Option<i32>,
    consent_id: Option<String>,
}

impl FaceRow {
    /// The row of a face, its embedding sealed with the tenant's current data key.
    pub(crate) fn new(tenant: &str, f: FaceRecord, cipher: &TenantCipher) -> StoreResult<FaceRow> {
        let token = f.token.to_string();
        let (version, embedding) = cipher.seal(&token, &embedding_bytes(&f.embedding))?;
        Ok(FaceRow {
            token,
            tenant_id: tenant.to_string(),
            image_id: f.image_id,
            model: f.model,
            embedding,
            rect_left: f.rect.left,
            rect_top: f.rect.top,
            rect_width: f.rect.width,
            rect_height: f.rect.height,
            score: f.score,
            landmarks: f.landmarks.to_string(),
            quality: f.quality.to_string(),
            created_at: f.created_at.timestamp_millis(),
            expires_at: f.expires_at.map(|t| t.timestamp_millis()),
            user_id: f.user_id,
            key_version: Some(version),
            consent_id: f.consent_id.map(|c| c.to_string()),
        })
    }

    pub(crate) fn key_version(&self) -> Option<i32> {
        self.key_version
    }
}

/// The plaintext embedding of a stored row (sealed, or from before encryption at rest).
pub(crate) fn open_embedding(
    cipher: &TenantCipher,
    version: Option<i32>,
    token: &str,
    stored: &[u8],
) -> StoreResult<Vec<f32>> {
    let bytes = match version {
        Some(v) => cipher.open(v, token, stored)?,
        None => stored.to_vec(),
    };
    embedding_from_bytes(&bytes).ok_or_else(|| StoreError::Invalid(format!("corrupt embedding for face {token}")))
}

/// A template sealed again (a key rotation, or one stored before encryption at rest).
pub(crate) struct Resealed {
    pub token: String,
    /// The key version the row had when read: the row is rewritten only if it still has it.
    pub old: Option<i32>,
    pub version: i32,
    pub bytes: Vec<u8>,
}

/// Writes re-sealed templates in one transaction.
pub(crate) async fn store_resealed(db: &Database, sealed: Vec<Resealed>) -> StoreResult<()> {
    db.run(move |c| {
        write_transaction(c, |c| {
            for r in &sealed {
                let set = (faces::embedding.eq(&r.bytes), faces::key_version.eq(r.version));
                match r.old {
                    Some(v) => diesel::update(faces::table.find(&r.token).filter(faces::key_version.eq(v)))
                        .set(set)
                        .execute(c)?,
                    None => diesel::update(faces::table.find(&r.token).filter(faces::key_version.is_null()))
                        .set(set)
                        .execute(c)?,
                };
            }
            Ok(())
        })
    })
    .await
}

/// Embeddings are stored as little-endian f32 bytes.
pub(crate) fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn embedding_from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    b.len().is_multiple_of(4).then(|| b.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

impl FaceRow {
    pub(crate) fn into_record(self, cipher: &TenantCipher) -> StoreResult<FaceRecord> {
        let r = self;
        let embedding = open_embedding(cipher, r.key_version, &r.token, &r.embedding)?;
        let token =
            FaceToken::parse(&r.token).ok_or_else(|| StoreError::Invalid(format!("corrupt face token {}", r.token)))?;
        let json =
            |s: &str| serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("corrupt face JSON: {e}")));
        Ok(FaceRecord {
            token,
            image_id: r.image_id,
            model: r.model,
            embedding,
            rect: FaceRect { top: r.rect_top, left: r.rect_left, width: r.rect_width, height: r.rect_height },
            score: r.score,
            landmarks: json(&r.landmarks)?,
            quality: json(&r.quality)?,
            created_at: millis_to_time(r.created_at),
            expires_at: r.expires_at.map(millis_to_time),
            user_id: r.user_id,
            consent_id: r.consent_id.map(crate::model::ConsentId::from_db),
        })
    }
}

impl TenantData {
    /// Stores detected faces in one transaction (all or none).
    pub async fn insert_faces(&self, faces: Vec<FaceRecord>) -> StoreResult<()> {
        let tenant = self.tenant.id.to_string();
        let cipher = self.keyring.cipher_for_write(&self.tenant.id).await?;
        let rows = faces.into_iter().map(|f| FaceRow::new(&tenant, f, &cipher)).collect::<StoreResult<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut consents: Vec<String> = rows.iter().filter_map(|r| r.consent_id.clone()).collect();
        consents.dedup();
        self.db
            .run(move |c| {
                // Row by row: multi-row inserts do not compile for the multi-backend connection.
                write_transaction(c, |c| {
                    for consent in &consents {
                        crate::consents::hold(c, &tenant, Some(consent))?;
                    }
                    for row in &rows {
                        diesel::insert_into(faces::table).values(row).execute(c)?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// The tenant's faces (expired ones included until purged), by token, `limit` after the cursor.
    pub async fn list_faces(&self, after: Option<String>, limit: i64) -> StoreResult<Vec<FaceRecord>> {
        let tenant = self.tenant.id.to_string();
        let rows: Vec<FaceRow> = self
            .db
            .run(move |c| {
                let mut query = faces::table
                    .filter(faces::tenant_id.eq(tenant))
                    .order(faces::token.asc())
                    .select(FaceRow::as_select())
                    .limit(limit)
                    .into_boxed();
                if let Some(after) = after {
                    query = query.filter(faces::token.gt(after));
                }
                Ok(query.load(c)?)
            })
            .await?;
        let newest = rows.iter().filter_map(FaceRow::key_version).max();
        let cipher = self.cipher(newest).await?;
        rows.into_iter().map(|row| row.into_record(&cipher)).collect()
    }

    /// One of the tenant's faces; unknown, expired and other tenants' tokens are all `NotFound`.
    pub async fn get_face(&self, token: &FaceToken) -> StoreResult<FaceRecord> {
        let (tenant, token) = (self.tenant.id.to_string(), token.to_string());
        let row = self
            .db
            .run(move |c| {
                faces::table
                    .find(token)
                    .filter(faces::tenant_id.eq(tenant))
                    .filter(faces::expires_at.is_null().or(faces::expires_at.gt(now_millis())))
                    .select(FaceRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::Face))
            })
            .await?;
        let cipher = self.cipher(row.key_version()).await?;
        row.into_record(&cipher)
    }

    pub(crate) async fn cipher_for_write(&self) -> StoreResult<std::sync::Arc<TenantCipher>> {
        self.keyring.cipher_for_write(&self.tenant.id).await
    }

    /// Seals and opens this tenant's index snapshots with its current data key.
    pub async fn snapshot_sealer(&self) -> StoreResult<crate::crypto::SnapshotSealer> {
        Ok(crate::crypto::SnapshotSealer::new(self.cipher_for_write().await?))
    }

    /// The tenant's data keys; `need`: a version that must be among them.
    pub(crate) async fn cipher(&self, need: Option<i32>) -> StoreResult<std::sync::Arc<TenantCipher>> {
        self.keyring.cipher(&self.tenant.id, need).await
    }
}

/// Usage: recording billable answers and reading them back.
impl TenantData {
    /// Records a billable answer; returns once it is durable. Idempotent on the event's `dedup_key`.
    pub async fn record_usage(&self, event: NewUsageEvent) -> StoreResult<Recorded> {
        self.usage.record(self.tenant.id.clone(), event).await
    }

    /// Units of `product` used since `since`.
    pub async fn units_since(&self, product: Product, since: DateTime<Utc>) -> StoreResult<i64> {
        let tenant = self.tenant.id.to_string();
        self.db.run(move |c| usage::units_since(c, &tenant, product, since.timestamp_millis())).await
    }

    /// Totals per bucket and product in `[from, to)`.
    pub async fn usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
        product: Option<Product>,
    ) -> StoreResult<Vec<UsageBucket>> {
        let tenant = self.tenant.id.to_string();
        self.db.run(move |c| usage::buckets(c, &tenant, from, to, granularity, product)).await
    }

    /// Recorded events in `[from, to)`, oldest first, `limit` after the cursor.
    pub async fn usage_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<String>,
        limit: i64,
    ) -> StoreResult<Vec<UsageEvent>> {
        let tenant = self.tenant.id.to_string();
        self.db.run(move |c| usage::events(c, &tenant, from, to, after.as_deref(), limit)).await
    }

    /// Usage events not yet reported to the payment provider.
    pub async fn billing_backlog(&self) -> StoreResult<crate::billing::OutboxBacklog> {
        let tenant = self.tenant.id.to_string();
        self.db.run(move |c| crate::billing::backlog(c, &tenant)).await
    }
}

/// Deletes every face past its expiry in one region store (all tenants: a maintenance job, not a tenant query).
pub(crate) async fn purge_expired_faces(db: &Database) -> StoreResult<usize> {
    db.run(|c| Ok(diesel::delete(faces::table.filter(faces::expires_at.le(now_millis()))).execute(c)?)).await
}

/// What rotating a tenant's data key did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyRotation {
    pub new_version: i32,
    /// Templates re-encrypted under the new key.
    pub reencrypted: usize,
    /// Older key versions destroyed (no template used them any more).
    pub destroyed: Vec<i32>,
}

/// Encryption at rest: rotating the tenant's data key.
impl TenantData {
    /// Makes a new data key, re-encrypts every template under it and destroys the keys no longer used.
    /// Audited as `tenant.data_key_rotated`. Safe to run again after an interruption.
    pub async fn rotate_data_key(&self, by: &Provenance) -> StoreResult<KeyRotation> {
        let new_version = self.keyring.rotate(&self.tenant.id).await?;
        let cipher = self.cipher(Some(new_version)).await?;
        let tenant = self.tenant.id.to_string();
        let mut reencrypted = 0;
        loop {
            let t = tenant.clone();
            let rows: Vec<(String, Option<i32>, Vec<u8>)> = self
                .db
                .run(move |c| {
                    Ok(faces::table
                        .filter(faces::tenant_id.eq(t))
                        .filter(faces::key_version.is_null().or(faces::key_version.lt(new_version)))
                        .select((faces::token, faces::key_version, faces::embedding))
                        .limit(500)
                        .load(c)?)
                })
                .await?;
            if rows.is_empty() {
                break;
            }
            let mut sealed = Vec::with_capacity(rows.len());
            for (token, old, stored) in rows {
                let plain = match old {
                    Some(v) => cipher.open(v, &token, &stored)?,
                    None => stored,
                };
                let (version, bytes) = cipher.seal(&token, &plain)?;
                sealed.push(Resealed { token, old, version, bytes });
            }
            reencrypted += sealed.len();
            store_resealed(&self.db, sealed).await?;
        }
        // Only versions no row still uses: a node that wrote with an older key meanwhile keeps it alive.
        let t = tenant.clone();
        let in_use: Vec<Option<i32>> = self
            .db
            .run(move |c| {
                Ok(faces::table.filter(faces::tenant_id.eq(t)).select(faces::key_version).distinct().load(c)?)
            })
            .await?;
        let destroyed: Vec<i32> = self
            .keyring
            .versions(&self.tenant.id)
            .await?
            .into_iter()
            .filter(|v| *v < new_version && !in_use.contains(&Some(*v)))
            .collect();
        self.keyring.destroy(&self.tenant.id, destroyed.clone()).await?;
        self.record_audit(
            by,
            "tenant.data_key_rotated",
            Some(self.tenant.id.as_str()),
            serde_json::json!({"version": new_version, "reencrypted": reencrypted, "destroyed": destroyed}),
        )
        .await?;
        Ok(KeyRotation { new_version, reencrypted, destroyed })
    }
}
