//! Usage events and their hourly aggregates, in each tenant's home region.
//!
//! A billable answer is recorded before it is sent. Requests hand their events to the region's [`UsageWriter`],
//! which commits whatever has queued up in one transaction (group commit: one sync to disk for many answers)
//! and then tells each request how its event fared. Recording is idempotent on `(tenant, dedup_key)`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::db::{AnyConnection, Database, write_transaction};
use crate::error::{StoreError, StoreResult};
use crate::model::{KeyId, Product, TenantId, millis_to_time, now_millis};
use crate::schema::region::{usage_events, usage_hourly};

/// At most this many events per transaction; more wait for the next one.
const MAX_BATCH: usize = 512;
/// Requests waiting to be recorded, per region; a full queue makes requests wait, never drops an event.
const QUEUE: usize = 4096;
const HOUR_MS: i64 = 3_600_000;

/// A billable answer about to be sent.
#[derive(Debug, Clone)]
pub struct NewUsageEvent {
    /// `req:<request id>`, or `idem:<Idempotency-Key>` when the caller sent one.
    pub dedup_key: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub key_id: KeyId,
    pub product: Product,
    /// The route, e.g. `POST /v1/faces/compare`.
    pub operation: String,
    pub units: i64,
    pub status: u16,
    /// Hex SHA-256 of the request (method, path, body) when it carries an Idempotency-Key.
    pub fingerprint: Option<String>,
}

/// What recording an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new event: counted.
    New { id: String },
    /// An event with the same dedup key was already recorded (a retry): not counted again.
    Duplicate { id: String, fingerprint: Option<String>, occurred_at: DateTime<Utc> },
}

/// A recorded event, as the usage API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct UsageEvent {
    pub id: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub key_id: String,
    pub product: String,
    pub operation: String,
    pub units: i64,
    pub status: i32,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = usage_events)]
struct UsageEventRow {
    id: String,
    tenant_id: String,
    dedup_key: String,
    request_id: String,
    idempotency_key: Option<String>,
    key_id: String,
    product: String,
    operation: String,
    units: i64,
    status: i32,
    fingerprint: Option<String>,
    occurred_at: i64,
}

/// Bucket sizes for usage totals (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
    Month,
}

impl Granularity {
    /// The start of the bucket holding `t`.
    pub fn bucket_start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let day = Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0).single().unwrap_or(t);
        match self {
            Granularity::Hour => day + chrono::Duration::hours(i64::from(t.hour())),
            Granularity::Day => day,
            Granularity::Month => month_start(t),
        }
    }
}

/// Midnight UTC on the first of `t`'s month.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single().unwrap_or(t)
}

/// Units and calls of one product in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageBucket {
    pub start: DateTime<Utc>,
    pub product: Product,
    pub units: i64,
    pub calls: i64,
}

struct Job {
    tenant: TenantId,
    event: NewUsageEvent,
    reply: oneshot::Sender<StoreResult<Recorded>>,
}

/// The queue in front of one region's usage tables, drained by one task.
#[derive(Clone)]
pub struct UsageWriter {
    jobs: mpsc::Sender<Job>,
}

impl UsageWriter {
    /// Starts the region's writer task; it ends when the last `UsageWriter` is dropped. With `outbox`, each new
    /// event is also queued for the payment provider (see [`crate::billing`]) in the same transaction.
    pub(crate) fn start(db: Database, outbox: bool) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH
                    && let Ok(job) = queue.try_recv()
                {
                    batch.push(job);
                }
                let (replies, events): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|job| (job.reply, (job.tenant, job.event))).unzip();
                match db.run(move |c| write_transaction(c, |c| record_batch(c, &events, outbox))).await {
                    Ok(results) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = replies.len(), "recording usage failed");
                        let message = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(StoreError::Unavailable(format!("usage not recorded: {message}"))));
                        }
                    }
                }
            }
        });
        UsageWriter { jobs }
    }

    /// Records one event; returns once it is committed (or known not to be).
    pub(crate) async fn record(&self, tenant: TenantId, event: NewUsageEvent) -> StoreResult<Recorded> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { tenant, event, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the usage writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the usage writer stopped before answering".into()))?
    }
}

/// Inserts the new events, adds them to the hourly totals and reports duplicates, in the caller's transaction.
fn record_batch(
    c: &mut AnyConnection,
    events: &[(TenantId, NewUsageEvent)],
    outbox: bool,
) -> StoreResult<Vec<Recorded>> {
    let now = now_millis();
    let hour = now - now.rem_euclid(HOUR_MS);
    let mut results = Vec::with_capacity(events.len());
    let mut hourly: BTreeMap<(&str, Product), (i64, i64)> = BTreeMap::new();
    for (tenant, event) in events {
        let id = uuid::Uuid::now_v7().to_string();
        let inserted = diesel::sql_query(
            "INSERT INTO usage_events (id, tenant_id, dedup_key, request_id, idempotency_key, key_id, product, \
             operation, units, status, fingerprint, occurred_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (tenant_id, dedup_key) DO NOTHING",
        )
        .bind::<Text, _>(&id)
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(&event.dedup_key)
        .bind::<Text, _>(&event.request_id)
        .bind::<diesel::sql_types::Nullable<Text>, _>(event.idempotency_key.as_deref())
        .bind::<Text, _>(event.key_id.as_str())
        .bind::<Text, _>(event.product.as_str())
        .bind::<Text, _>(&event.operation)
        .bind::<BigInt, _>(event.units)
        .bind::<diesel::sql_types::Integer, _>(i32::from(event.status))
        .bind::<diesel::sql_types::Nullable<Text>, _>(event.fingerprint.as_deref())
        .bind::<BigInt, _>(now)
        .execute(c)?;
        if inserted == 1 {
            let totals = hourly.entry((tenant.as_str(), event.product)).or_default();
            totals.0 += event.units;
            totals.1 += 1;
            if outbox {
                crate::billing::enqueue(c, &id, tenant.as_str(), event.product, event.units, now)?;
            }
            results.push(Recorded::New { id });
        } else {
            let (id, fingerprint, occurred_at) = usage_events::table
                .filter(usage_events::tenant_id.eq(tenant.as_str()))
                .filter(usage_events::dedup_key.eq(&event.dedup_key))
                .select((usage_events::id, usage_events::fingerprint, usage_events::occurred_at))
                .first::<(String, Option<String>, i64)>(c)?;
            results.push(Recorded::Duplicate { id, fingerprint, occurred_at: millis_to_time(occurred_at) });
        }
    }
    // In key order, so concurrent writers (several nodes on one PostgreSQL) lock rows in the same order.
    for ((tenant, product), (units, calls)) in hourly {
        diesel::sql_query(
            "INSERT INTO usage_hourly (tenant_id, product, hour, units, calls) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, product, hour) \
             DO UPDATE SET units = usage_hourly.units + excluded.units, calls = usage_hourly.calls + excluded.calls",
        )
        .bind::<Text, _>(tenant)
        .bind::<Text, _>(product.as_str())
        .bind::<BigInt, _>(hour)
        .bind::<BigInt, _>(units)
        .bind::<BigInt, _>(calls)
        .execute(c)?;
    }
    Ok(results)
}

/// Units of `product` the tenant has used since `since` (a month start), from the hourly totals.
pub(crate) fn units_since(c: &mut AnyConnection, tenant: &str, product: Product, since: i64) -> StoreResult<i64> {
    let rows: Vec<i64> = usage_hourly::table
        .filter(usage_hourly::tenant_id.eq(tenant))
        .filter(usage_hourly::product.eq(product.as_str()))
        .filter(usage_hourly::hour.ge(since))
        .select(usage_hourly::units)
        .load(c)?;
    Ok(rows.iter().sum())
}

/// Totals per bucket and product in `[from, to)`, oldest first.
pub(crate) fn buckets(
    c: &mut AnyConnection,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
    product: Option<Product>,
) -> StoreResult<Vec<UsageBucket>> {
    // Hours that start before `from` are left out: a bucket is counted whole or not at all.
    let mut query = usage_hourly::table
        .filter(usage_hourly::tenant_id.eq(tenant))
        .filter(usage_hourly::hour.ge(from.timestamp_millis()))
        .filter(usage_hourly::hour.lt(to.timestamp_millis()))
        .select((usage_hourly::product, usage_hourly::hour, usage_hourly::units, usage_hourly::calls))
        .into_boxed();
    if let Some(product) = product {
        query = query.filter(usage_hourly::product.eq(product.as_str()));
    }
    let rows: Vec<(String, i64, i64, i64)> = query.load(c)?;
    let mut totals: BTreeMap<(DateTime<Utc>, Product), (i64, i64)> = BTreeMap::new();
    for (product, hour, units, calls) in rows {
        let Ok(product) = product.parse::<Product>() else { continue };
        let start = granularity.bucket_start(millis_to_time(hour));
        let entry = totals.entry((start, product)).or_default();
        entry.0 += units;
        entry.1 += calls;
    }
    Ok(totals
        .into_iter()
        .map(|((start, product), (units, calls))| UsageBucket { start, product, units, calls })
        .collect())
}

/// Events in `[from, to)`, oldest first, `limit` after the cursor (an event id).
pub(crate) fn events(
    c: &mut AnyConnection,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<UsageEvent>> {
    let mut query = usage_events::table
        .filter(usage_events::tenant_id.eq(tenant))
        .filter(usage_events::occurred_at.ge(from.timestamp_millis()))
        .filter(usage_events::occurred_at.lt(to.timestamp_millis()))
        .select(UsageEventRow::as_select())
        .order(usage_events::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(usage_events::id.gt(after.to_string()));
    }
    Ok(query
        .load(c)?
        .into_iter()
        .map(|r| UsageEvent {
            id: r.id,
            request_id: r.request_id,
            idempotency_key: r.idempotency_key,
            key_id: r.key_id,
            product: r.product,
            operation: r.operation,
            units: r.units,
            status: r.status,
            occurred_at: millis_to_time(r.occurred_at),
        })
        .collect())
}
