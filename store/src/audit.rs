//! The audit log: append-only and sealed as a chain per tenant.
//!
//! Entry `seq` of a tenant stores `prev_hash` (the seal of entry `seq - 1`, empty for the first) and `hash`, an
//! HMAC-SHA256 of its fields and `prev_hash` under a key derived from the server secret. So an edited entry no
//! longer matches its seal, a removed one leaves a gap, an inserted one has no valid seal, and only a holder of
//! the server secret could re-seal a forged chain. The last seal of each tenant is also kept in the control
//! store (`audit_heads`): entries cut from the end leave the chain shorter than its head.

use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::crypto::MasterKey;
use crate::db::{AnyConnection, Database, write_transaction};
use crate::error::{StoreError, StoreResult};
use crate::model::{AuditEvent, AuditEventId, TenantId, millis_to_time, now_millis};
use crate::schema::control::audit_heads;
use crate::schema::region::audit_events;

/// Seals audit entries. The key is derived from the server secret, never the secret itself.
#[derive(Clone)]
pub struct AuditSealer {
    key: [u8; 32],
}

impl AuditSealer {
    pub(crate) fn new(server_secret: &[u8]) -> Self {
        AuditSealer { key: MasterKey::derived_from_labelled(server_secret, b"faceplate audit chain v1").0 }
    }

    /// The seal of an entry: every field, in a fixed order, as a JSON array (unambiguous), and its predecessor's.
    fn seal(&self, row: &AuditEventRow, seq: i64, prev_hash: &str) -> String {
        let canonical = serde_json::json!([
            row.tenant_id,
            seq,
            row.id,
            row.occurred_at,
            row.actor,
            row.action,
            row.target,
            row.request_id,
            row.detail,
            prev_hash
        ]);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("32-byte key"));
        mac.update(canonical.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub(crate) struct AuditEventRow {
    pub id: String,
    pub tenant_id: String,
    pub occurred_at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
    pub seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
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
            seq: r.seq,
            hash: r.hash,
        })
    }
}

/// The tenant's last sealed entry, if any.
fn chain_end(c: &mut AnyConnection, tenant: &str) -> StoreResult<Option<(i64, String)>> {
    let last: Option<(Option<i64>, Option<String>)> = audit_events::table
        .filter(audit_events::tenant_id.eq(tenant))
        .filter(audit_events::seq.is_not_null())
        .order(audit_events::seq.desc())
        .select((audit_events::seq, audit_events::hash))
        .first(c)
        .optional()?;
    Ok(last.and_then(|(seq, hash)| Some((seq?, hash?))))
}

/// Appends `row` to its tenant's chain, sealed. Two writers racing for the same `seq` (nodes sharing a
/// PostgreSQL) collide on the unique index; the loser reads the new end and tries again.
pub(crate) fn append(
    c: &mut AnyConnection,
    sealer: &AuditSealer,
    mut row: AuditEventRow,
) -> StoreResult<AuditEventRow> {
    for _ in 0..16 {
        let attempt = write_transaction(c, |c| {
            let (seq, prev) = match chain_end(c, &row.tenant_id)? {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, String::new()),
            };
            row.hash = Some(sealer.seal(&row, seq, &prev));
            row.seq = Some(seq);
            row.prev_hash = Some(prev);
            diesel::insert_into(audit_events::table).values(&row).execute(c)?;
            crate::alerts::enqueue_in(c, &row)?;
            Ok(())
        });
        match attempt {
            Ok(()) => return Ok(row),
            Err(StoreError::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ))) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable("the audit chain is too contended; try again".into()))
}

/// Moves the tenant's head forward to `(seq, hash)` (never back).
pub(crate) async fn advance_head(control: &Database, tenant: String, seq: i64, hash: String) -> StoreResult<()> {
    control
        .run(move |c| {
            write_transaction(c, |c| {
                let now = now_millis();
                let updated = diesel::update(audit_heads::table.find(&tenant).filter(audit_heads::seq.lt(seq)))
                    .set((audit_heads::seq.eq(seq), audit_heads::hash.eq(&hash), audit_heads::updated_at.eq(now)))
                    .execute(c)?;
                if updated == 0 {
                    let exists = audit_heads::table.find(&tenant).count().get_result::<i64>(c)? > 0;
                    if !exists {
                        diesel::insert_into(audit_heads::table)
                            .values((
                                audit_heads::tenant_id.eq(&tenant),
                                audit_heads::seq.eq(seq),
                                audit_heads::hash.eq(&hash),
                                audit_heads::updated_at.eq(now),
                            ))
                            .execute(c)?;
                    }
                }
                Ok(())
            })
        })
        .await
}

/// Forgets a deleted tenant's head, in the caller's transaction.
pub(crate) fn delete_head(c: &mut AnyConnection, tenant: &str) -> StoreResult<()> {
    diesel::delete(audit_heads::table.find(tenant)).execute(c)?;
    Ok(())
}

/// Seals the entries written before the chain existed, for tenants that have no sealed entry yet (an unsealed
/// entry in a sealed chain is never sealed afterwards: it is what `verify` reports as inserted). Returns the
/// (tenant, seq, hash) ends to record as heads.
pub(crate) fn seal_legacy(c: &mut AnyConnection, sealer: &AuditSealer) -> StoreResult<Vec<(String, i64, String)>> {
    let tenants: Vec<String> =
        audit_events::table.filter(audit_events::seq.is_null()).select(audit_events::tenant_id).distinct().load(c)?;
    let mut ends = Vec::new();
    for tenant in tenants {
        let end = write_transaction(c, |c| {
            if chain_end(c, &tenant)?.is_some() {
                return Ok(None);
            }
            let rows: Vec<AuditEventRow> = audit_events::table
                .filter(audit_events::tenant_id.eq(&tenant))
                .order(audit_events::id.asc())
                .select(AuditEventRow::as_select())
                .load(c)?;
            let mut prev = String::new();
            let mut seq = 0;
            for row in rows {
                seq += 1;
                let hash = sealer.seal(&row, seq, &prev);
                diesel::update(audit_events::table.find(&row.id))
                    .set((audit_events::seq.eq(seq), audit_events::prev_hash.eq(&prev), audit_events::hash.eq(&hash)))
                    .execute(c)?;
                prev = hash;
            }
            Ok(Some((seq, prev)))
        })?;
        if let Some((seq, hash)) = end {
            ends.push((tenant, seq, hash));
        }
    }
    Ok(ends)
}

/// What is wrong with a chain, at which entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditProblem {
    /// `edited`, `removed`, `inserted` or `truncated`.
    pub kind: String,
    pub seq: Option<i64>,
    pub entry_id: Option<String>,
    pub detail: String,
}

/// The outcome of checking one tenant's chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditVerification {
    pub tenant_id: String,
    pub entries: usize,
    pub head_seq: Option<i64>,
    pub problems: Vec<AuditProblem>,
}

impl AuditVerification {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Re-computes every seal of the tenant's chain and compares its end with the head.
pub(crate) async fn verify(
    region: &Database,
    control: &Database,
    sealer: &AuditSealer,
    tenant: &TenantId,
) -> StoreResult<AuditVerification> {
    let tenant_id = tenant.to_string();
    let head: Option<(i64, String)> = {
        let tenant_id = tenant_id.clone();
        control
            .run(move |c| {
                Ok(audit_heads::table
                    .find(&tenant_id)
                    .select((audit_heads::seq, audit_heads::hash))
                    .first(c)
                    .optional()?)
            })
            .await?
    };
    let rows: Vec<AuditEventRow> = {
        let tenant_id = tenant_id.clone();
        region
            .run(move |c| {
                Ok(audit_events::table
                    .filter(audit_events::tenant_id.eq(&tenant_id))
                    .order((audit_events::seq.asc(), audit_events::id.asc()))
                    .select(AuditEventRow::as_select())
                    .load(c)?)
            })
            .await?
    };
    let mut problems = Vec::new();
    let problem = |kind: &str, row: Option<&AuditEventRow>, detail: String| AuditProblem {
        kind: kind.into(),
        seq: row.and_then(|r| r.seq),
        entry_id: row.map(|r| r.id.clone()),
        detail,
    };
    let (mut expected_seq, mut prev) = (1i64, String::new());
    for row in &rows {
        let Some(seq) = row.seq else {
            problems.push(problem("inserted", Some(row), "an entry without a seal".into()));
            continue;
        };
        if seq != expected_seq {
            problems.push(problem("removed", Some(row), format!("entries {expected_seq} to {} are missing", seq - 1)));
        } else if row.prev_hash.as_deref() != Some(prev.as_str()) {
            problems.push(problem("removed", Some(row), "it does not follow the entry before it".into()));
        }
        if row.hash.as_deref() != Some(sealer.seal(row, seq, row.prev_hash.as_deref().unwrap_or_default()).as_str()) {
            // Past the last entry the platform wrote, a bad seal is a forgery rather than an edit.
            if head.as_ref().is_some_and(|(head_seq, _)| seq > *head_seq) {
                problems.push(problem("inserted", Some(row), "an entry the platform did not seal".into()));
            } else {
                problems.push(problem("edited", Some(row), "its content does not match its seal".into()));
            }
        }
        expected_seq = seq + 1;
        prev = row.hash.clone().unwrap_or_default();
    }
    if let Some((head_seq, head_hash)) = &head {
        let last = rows.iter().filter_map(|r| r.seq.map(|s| (s, r.hash.as_deref()))).max_by_key(|(s, _)| *s);
        match last {
            Some((seq, _)) if seq < *head_seq => problems.push(problem(
                "truncated",
                None,
                format!("the chain ends at entry {seq}; the head recorded entry {head_seq}"),
            )),
            None => problems.push(problem("truncated", None, format!("no entries; the head recorded {head_seq}"))),
            Some((seq, hash)) if seq == *head_seq && hash != Some(head_hash.as_str()) => {
                problems.push(problem("edited", None, format!("entry {seq} is not the one the head recorded")))
            }
            _ => {}
        }
    }
    Ok(AuditVerification { tenant_id, entries: rows.len(), head_seq: head.map(|h| h.0), problems })
}
