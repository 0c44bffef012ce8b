//! Tenant-owned data in the tenant's home region. A `TenantData` is bound to one tenant and one region store
//! when it is made (`Stores::tenant_data`); every query below filters by that tenant, and there is no other way
//! to reach the region databases.

use diesel::prelude::*;

use crate::db::Database;
use crate::error::{Entity, StoreError, StoreResult};
use crate::model::{AuditEvent, AuditEventId, Provenance, Tenant, TenantId, millis_to_time, now_millis};
use crate::schema::region::{TENANT_TABLES, audit_events};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
struct AuditEventRow {
    id: String,
    tenant_id: String,
    occurred_at: i64,
    actor: String,
    action: String,
    target: Option<String>,
    request_id: Option<String>,
    detail: String,
}

impl TryFrom<AuditEventRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(r: AuditEventRow) -> StoreResult<AuditEvent> {
        Ok(AuditEvent {
            id: AuditEventId::from_db(r.id),
            tenant_id: TenantId::from_db(r.tenant_id),
            occurred_at: millis_to_time(r.occurred_at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            request_id: r.request_id,
            detail: serde_json::from_str(&r.detail)
                .map_err(|e| StoreError::Invalid(format!("corrupt audit detail: {e}")))?,
        })
    }
}

#[derive(Clone)]
pub struct TenantData {
    db: Database,
    tenant: Tenant,
}

impl TenantData {
    pub(crate) fn new(db: Database, tenant: Tenant) -> Self {
        TenantData { db, tenant }
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Appends an audit entry.
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
        };
        self.db
            .run(move |c| {
                diesel::insert_into(audit_events::table).values(&row).execute(c)?;
                row.try_into()
            })
            .await
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
                c.transaction(|c| {
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
