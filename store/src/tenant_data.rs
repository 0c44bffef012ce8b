//! Tenant-owned data in the tenant's home region. A `TenantData` is bound to one tenant and one region store
//! when it is made (`Stores::tenant_data`); every query below filters by that tenant, and there is no other way
//! to reach the region databases. FaceSet operations are in `facesets.rs`.

use diesel::prelude::*;

use crate::audit::{self, AuditEventRow, AuditSealer, AuditVerification};
use crate::db::{Database, write_transaction};
use crate::error::{Entity, StoreError, StoreResult};
use crate::model::{
    AuditEvent, AuditEventId, FaceRecord, FaceRect, FaceToken, Product, Provenance, Tenant, millis_to_time, now_millis,
};
use crate::schema::region::{TENANT_TABLES, audit_events, faces};
use crate::usage::{self, Granularity, NewUsageEvent, Recorded, UsageBucket, UsageEvent, UsageWriter};
use chrono::{DateTime, Utc};

#[derive(Clone)]
pub struct TenantData {
    pub(crate) db: Database,
    usage: UsageWriter,
    /// The control store, for the head of the audit chain.
    control: Database,
    sealer: AuditSealer,
    pub(crate) tenant: Tenant,
}

impl TenantData {
    pub(crate) fn new(
        db: Database,
        usage: UsageWriter,
        control: Database,
        sealer: AuditSealer,
        tenant: Tenant,
    ) -> Self {
        TenantData { db, usage, control, sealer, tenant }
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

    /// Deletes every row the tenant owns in this region; returns how many.
    pub(crate) async fn purge(&self) -> StoreResult<usize> {
        let tenant = self.tenant.id.to_string();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let mut deleted = 0;
                    for table in TENANT_TABLES {
                        // Table names come from our own constant list, never from input.
                        deleted += diesel::sql_query(format!("DELETE FROM {table} WHERE tenant_id = $1"))
                            .bind::<diesel::sql_types::Text, _>(&tenant)
                            .execute(c)?;
                    }
                    Ok(deleted)
                })
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
}

impl FaceRow {
    pub(crate) fn new(tenant: &str, f: FaceRecord) -> FaceRow {
        FaceRow {
            token: f.token.to_string(),
            tenant_id: tenant.to_string(),
            image_id: f.image_id,
            model: f.model,
            embedding: embedding_bytes(&f.embedding),
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
        }
    }
}

/// Embeddings are stored as little-endian f32 bytes.
pub(crate) fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn embedding_from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    b.len().is_multiple_of(4).then(|| b.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

impl TryFrom<FaceRow> for FaceRecord {
    type Error = StoreError;
    fn try_from(r: FaceRow) -> StoreResult<FaceRecord> {
        let embedding = embedding_from_bytes(&r.embedding)
            .ok_or_else(|| StoreError::Invalid(format!("corrupt embedding for face {}", r.token)))?;
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
        })
    }
}

impl TenantData {
    /// Stores detected faces in one transaction (all or none).
    pub async fn insert_faces(&self, faces: Vec<FaceRecord>) -> StoreResult<()> {
        let tenant = self.tenant.id.to_string();
        let rows: Vec<FaceRow> = faces.into_iter().map(|f| FaceRow::new(&tenant, f)).collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.db
            .run(move |c| {
                // Row by row: multi-row inserts do not compile for the multi-backend connection.
                write_transaction(c, |c| {
                    for row in &rows {
                        diesel::insert_into(faces::table).values(row).execute(c)?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// One of the tenant's faces; unknown, expired and other tenants' tokens are all `NotFound`.
    pub async fn get_face(&self, token: &FaceToken) -> StoreResult<FaceRecord> {
        let (tenant, token) = (self.tenant.id.to_string(), token.to_string());
        self.db
            .run(move |c| {
                faces::table
                    .find(token)
                    .filter(faces::tenant_id.eq(tenant))
                    .filter(faces::expires_at.is_null().or(faces::expires_at.gt(now_millis())))
                    .select(FaceRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::Face))?
                    .try_into()
            })
            .await
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
