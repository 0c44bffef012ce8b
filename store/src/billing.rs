//! What billing through a payment provider (Stripe) keeps: each tenant's customer and subscription with the
//! statuses the provider last reported (control store), and the outbox of usage events still to be reported
//! (each region store, beside the events).
//!
//! The outbox is filled by the usage writer in the transaction that records an event, so every counted event
//! is either reported or still waiting; it is emptied only after the provider has accepted an event.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::Serialize;

use crate::db::{AnyConnection, Database, write_transaction};
use crate::error::StoreResult;
use crate::model::{Product, TenantId, now_millis};
use crate::schema::control::tenant_billing;
use crate::schema::region::billing_outbox;

/// A tenant's account at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenant_billing)]
pub struct TenantBilling {
    pub tenant_id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    /// As the provider names it: `active`, `past_due`, `canceled`, …
    pub subscription_status: Option<String>,
    /// The last invoice's outcome: `paid` or `payment_failed`.
    pub invoice_status: Option<String>,
    /// Creation time (ms) of the provider event that set the statuses.
    pub status_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One usage event waiting to be reported.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = billing_outbox)]
pub struct OutboxEntry {
    pub event_id: String,
    pub tenant_id: String,
    pub product: String,
    pub units: i64,
    pub occurred_at: i64,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl OutboxEntry {
    pub fn tenant(&self) -> TenantId {
        TenantId::from_db(self.tenant_id.clone())
    }
}

/// A tenant's unreported usage, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxBacklog {
    pub events: i64,
    pub oldest_occurred_at: Option<i64>,
    pub max_attempts: i32,
    pub last_error: Option<String>,
}

/// Queues a just-recorded event, in the usage writer's transaction.
pub(crate) fn enqueue(
    c: &mut AnyConnection,
    event_id: &str,
    tenant: &str,
    product: Product,
    units: i64,
    occurred_at: i64,
) -> StoreResult<()> {
    diesel::insert_into(billing_outbox::table)
        .values((
            billing_outbox::event_id.eq(event_id),
            billing_outbox::tenant_id.eq(tenant),
            billing_outbox::product.eq(product.as_str()),
            billing_outbox::units.eq(units),
            billing_outbox::occurred_at.eq(occurred_at),
            billing_outbox::attempts.eq(0),
            billing_outbox::next_attempt_at.eq(occurred_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Takes up to `limit` due entries, oldest first, and leases them for `lease_ms` (moves their next attempt
/// forward) so that another node does not send them at the same time. A node that dies holding a lease only
/// delays its entries; Stripe's dedupe makes the rare double send harmless.
pub async fn claim_outbox(db: &Database, limit: i64, lease_ms: i64) -> StoreResult<Vec<OutboxEntry>> {
    db.run(move |c| {
        write_transaction(c, |c| {
            let now = now_millis();
            let due: Vec<OutboxEntry> = billing_outbox::table
                .filter(billing_outbox::next_attempt_at.le(now))
                .order(billing_outbox::next_attempt_at.asc())
                .limit(limit)
                .select(OutboxEntry::as_select())
                .load(c)?;
            let mut claimed = Vec::with_capacity(due.len());
            for entry in due {
                // Only if no other node moved it meanwhile (PostgreSQL runs this at read committed).
                let taken = diesel::update(
                    billing_outbox::table
                        .find(&entry.event_id)
                        .filter(billing_outbox::next_attempt_at.eq(entry.next_attempt_at)),
                )
                .set(billing_outbox::next_attempt_at.eq(now + lease_ms))
                .execute(c)?;
                if taken == 1 {
                    claimed.push(entry);
                }
            }
            Ok(claimed)
        })
    })
    .await
}

/// Removes entries the provider accepted.
pub async fn outbox_delivered(db: &Database, event_ids: Vec<String>) -> StoreResult<()> {
    db.run(move |c| {
        write_transaction(c, |c| {
            for id in &event_ids {
                diesel::delete(billing_outbox::table.find(id)).execute(c)?;
            }
            Ok(())
        })
    })
    .await
}

/// Records a failed attempt and when to try again.
pub async fn outbox_retry_later(
    db: &Database,
    event_id: String,
    next_attempt_at: i64,
    error: String,
) -> StoreResult<()> {
    db.run(move |c| {
        diesel::update(billing_outbox::table.find(&event_id))
            .set((
                billing_outbox::attempts.eq(billing_outbox::attempts + 1),
                billing_outbox::next_attempt_at.eq(next_attempt_at),
                billing_outbox::last_error.eq(error),
            ))
            .execute(c)?;
        Ok(())
    })
    .await
}

/// A tenant's unreported events.
pub(crate) fn backlog(c: &mut AnyConnection, tenant: &str) -> StoreResult<OutboxBacklog> {
    let rows: Vec<(i64, i32, Option<String>)> = billing_outbox::table
        .filter(billing_outbox::tenant_id.eq(tenant))
        .order(billing_outbox::occurred_at.asc())
        .select((billing_outbox::occurred_at, billing_outbox::attempts, billing_outbox::last_error))
        .load(c)?;
    Ok(OutboxBacklog {
        events: rows.len() as i64,
        oldest_occurred_at: rows.first().map(|r| r.0),
        max_attempts: rows.iter().map(|r| r.1).max().unwrap_or(0),
        last_error: rows.iter().rev().find_map(|r| r.2.clone()),
    })
}

/// The tenant's account, if one was opened.
pub async fn get_tenant_billing(control: &Database, tenant: &TenantId) -> StoreResult<Option<TenantBilling>> {
    let tenant = tenant.to_string();
    control
        .run(move |c| Ok(tenant_billing::table.find(&tenant).select(TenantBilling::as_select()).first(c).optional()?))
        .await
}

/// Remembers the tenant's customer and subscription once they exist at the provider.
pub async fn put_tenant_billing(
    control: &Database,
    tenant: &TenantId,
    customer_id: String,
    subscription_id: Option<String>,
) -> StoreResult<TenantBilling> {
    let tenant = tenant.to_string();
    control
        .run(move |c| {
            write_transaction(c, |c| {
                let now = now_millis();
                let existing =
                    tenant_billing::table.find(&tenant).select(TenantBilling::as_select()).first(c).optional()?;
                match existing {
                    Some(_) => {
                        diesel::update(tenant_billing::table.find(&tenant))
                            .set((
                                tenant_billing::customer_id.eq(&customer_id),
                                tenant_billing::subscription_id.eq(&subscription_id),
                                tenant_billing::updated_at.eq(now),
                            ))
                            .execute(c)?;
                    }
                    None => {
                        diesel::insert_into(tenant_billing::table)
                            .values(TenantBilling {
                                tenant_id: tenant.clone(),
                                customer_id: customer_id.clone(),
                                subscription_id: subscription_id.clone(),
                                subscription_status: None,
                                invoice_status: None,
                                status_at: 0,
                                created_at: now,
                                updated_at: now,
                            })
                            .execute(c)?;
                    }
                }
                Ok(tenant_billing::table.find(&tenant).select(TenantBilling::as_select()).first(c)?)
            })
        })
        .await
}

/// A status change reported by the provider, for the customer's tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingStatus {
    Subscription { subscription_id: String, status: String },
    Invoice { status: String },
}

/// Applies a provider event once: a replayed event id, an unknown customer or an event older than the one that
/// set the current status changes nothing. Returns whether it changed a tenant.
pub async fn apply_billing_event(
    control: &Database,
    event_id: String,
    event_type: String,
    created_ms: i64,
    customer_id: String,
    status: BillingStatus,
) -> StoreResult<bool> {
    control
        .run(move |c| {
            write_transaction(c, |c| {
                let first_time = diesel::sql_query(
                    "INSERT INTO stripe_webhook_events (id, type, received_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind::<Text, _>(&event_id)
                .bind::<Text, _>(&event_type)
                .bind::<BigInt, _>(now_millis())
                .execute(c)?
                    == 1;
                if !first_time {
                    return Ok(false);
                }
                let target = tenant_billing::table
                    .filter(tenant_billing::customer_id.eq(&customer_id))
                    .filter(tenant_billing::status_at.le(created_ms));
                let now = now_millis();
                let changed = match status {
                    BillingStatus::Subscription { subscription_id, status } => diesel::update(target)
                        .set((
                            tenant_billing::subscription_id.eq(Some(subscription_id)),
                            tenant_billing::subscription_status.eq(Some(status)),
                            tenant_billing::status_at.eq(created_ms),
                            tenant_billing::updated_at.eq(now),
                        ))
                        .execute(c)?,
                    BillingStatus::Invoice { status } => diesel::update(target)
                        .set((
                            tenant_billing::invoice_status.eq(Some(status)),
                            tenant_billing::status_at.eq(created_ms),
                            tenant_billing::updated_at.eq(now),
                        ))
                        .execute(c)?,
                };
                Ok(changed == 1)
            })
        })
        .await
}

/// Forgets the tenant's account (the tenant is being deleted), in the caller's transaction.
pub(crate) fn delete_tenant_billing(c: &mut AnyConnection, tenant: &str) -> StoreResult<()> {
    diesel::delete(tenant_billing::table.find(tenant)).execute(c)?;
    Ok(())
}
