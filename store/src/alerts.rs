//! Security alerts: some audit entries (a key created or rotated) are also pushed to the tenant's own endpoint,
//! so a key made by someone else does not go unnoticed. The alert is queued in the transaction that appends
//! its audit entry and carries that entry's id; a dispatcher (the API crate) signs and delivers it.

use diesel::prelude::*;
use serde_json::json;

use crate::audit::AuditEventRow;
use crate::db::{AnyConnection, Database, write_transaction};
use crate::error::StoreResult;
use crate::model::{Provenance, TenantId, now_millis};
use crate::schema::control::alert_endpoints;
use crate::schema::region::alert_outbox;
use crate::stores::Stores;

/// The audit actions that are also alerts. (A portal sign-in from a new device joins them with the portal.)
pub const ALERTED_ACTIONS: &[&str] = &["key.created", "key.rotated"];

/// A tenant's alert endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = alert_endpoints)]
pub struct AlertEndpoint {
    pub tenant_id: String,
    pub url: String,
    /// Signs every delivery (HMAC-SHA256); shown to the tenant once, when set.
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One alert waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = alert_outbox)]
pub struct PendingAlert {
    /// The audit entry's id: receivers deduplicate on it.
    pub id: String,
    pub tenant_id: String,
    /// The JSON body to deliver.
    pub payload: String,
    pub created_at: i64,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl PendingAlert {
    pub fn tenant(&self) -> TenantId {
        TenantId::from_db(self.tenant_id.clone())
    }
}

/// Queues the alert for an audit entry being appended, in the same transaction (if its action is alerted).
pub(crate) fn enqueue_in(c: &mut AnyConnection, row: &AuditEventRow) -> StoreResult<()> {
    if !ALERTED_ACTIONS.contains(&row.action.as_str()) {
        return Ok(());
    }
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null);
    let payload = json!({
        "id": row.id,
        "type": row.action,
        "tenant_id": row.tenant_id,
        "occurred_at": crate::model::millis_to_time(row.occurred_at),
        "actor": row.actor,
        "target": row.target,
        "request_id": row.request_id,
        "detail": detail,
    });
    diesel::insert_into(alert_outbox::table)
        .values((
            alert_outbox::id.eq(&row.id),
            alert_outbox::tenant_id.eq(&row.tenant_id),
            alert_outbox::payload.eq(payload.to_string()),
            alert_outbox::created_at.eq(row.occurred_at),
            alert_outbox::attempts.eq(0),
            alert_outbox::next_attempt_at.eq(row.occurred_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Takes up to `limit` due alerts, oldest first, leased for `lease_ms` so another node does not send them at
/// the same time (a node that dies holding a lease only delays them).
pub async fn claim(db: &Database, limit: i64, lease_ms: i64) -> StoreResult<Vec<PendingAlert>> {
    db.run(move |c| {
        write_transaction(c, |c| {
            let now = now_millis();
            let due: Vec<PendingAlert> = alert_outbox::table
                .filter(alert_outbox::next_attempt_at.le(now))
                .order(alert_outbox::next_attempt_at.asc())
                .limit(limit)
                .select(PendingAlert::as_select())
                .load(c)?;
            let mut claimed = Vec::with_capacity(due.len());
            for alert in due {
                let taken = diesel::update(
                    alert_outbox::table.find(&alert.id).filter(alert_outbox::next_attempt_at.eq(alert.next_attempt_at)),
                )
                .set(alert_outbox::next_attempt_at.eq(now + lease_ms))
                .execute(c)?;
                if taken == 1 {
                    claimed.push(alert);
                }
            }
            Ok(claimed)
        })
    })
    .await
}

/// Removes an alert that was delivered (or that has nowhere to go).
pub async fn done(db: &Database, id: String) -> StoreResult<()> {
    db.run(move |c| Ok(diesel::delete(alert_outbox::table.find(id)).execute(c).map(|_| ())?)).await
}

/// Records a failed delivery and when to try again.
pub async fn retry_later(db: &Database, id: String, next_attempt_at: i64, error: String) -> StoreResult<()> {
    db.run(move |c| {
        diesel::update(alert_outbox::table.find(id))
            .set((
                alert_outbox::attempts.eq(alert_outbox::attempts + 1),
                alert_outbox::next_attempt_at.eq(next_attempt_at),
                alert_outbox::last_error.eq(Some(error)),
            ))
            .execute(c)?;
        Ok(())
    })
    .await
}

pub(crate) fn delete_endpoint(c: &mut AnyConnection, tenant: &str) -> StoreResult<()> {
    diesel::delete(alert_endpoints::table.find(tenant)).execute(c)?;
    Ok(())
}

impl Stores {
    /// The tenant's alert endpoint, if it set one.
    pub async fn alert_endpoint(&self, id: &TenantId) -> StoreResult<Option<AlertEndpoint>> {
        let key = id.to_string();
        self.control()
            .database()
            .run(move |c| {
                Ok(alert_endpoints::table.find(key).select(AlertEndpoint::as_select()).first(c).optional()?)
            })
            .await
    }

    /// Sets (or with `None` removes) the tenant's alert endpoint, with a new signing secret. Audited.
    pub async fn set_alert_endpoint(
        &self,
        id: &TenantId,
        url: Option<String>,
        by: &Provenance,
    ) -> StoreResult<Option<AlertEndpoint>> {
        let key = id.to_string();
        let now = now_millis();
        let endpoint = url.clone().map(|url| AlertEndpoint {
            tenant_id: key.clone(),
            url,
            secret: format!("whsec_{}", crate::credentials::generate_secret()),
            created_at: now,
            updated_at: now,
        });
        let row = endpoint.clone();
        self.control()
            .database()
            .run(move |c| {
                write_transaction(c, |c| {
                    delete_endpoint(c, &key)?;
                    if let Some(e) = row {
                        diesel::insert_into(alert_endpoints::table)
                            .values((
                                alert_endpoints::tenant_id.eq(&e.tenant_id),
                                alert_endpoints::url.eq(&e.url),
                                alert_endpoints::secret.eq(&e.secret),
                                alert_endpoints::created_at.eq(e.created_at),
                                alert_endpoints::updated_at.eq(e.updated_at),
                            ))
                            .execute(c)?;
                    }
                    Ok(())
                })
            })
            .await?;
        let tenant = self.control().get_tenant(id).await?;
        let action = if url.is_some() { "alerts.endpoint_set" } else { "alerts.endpoint_removed" };
        self.tenant_data(&tenant)?.record_audit(by, action, Some(id.as_str()), json!({"url": url})).await?;
        Ok(endpoint)
    }
}
