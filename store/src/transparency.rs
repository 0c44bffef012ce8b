//! Legal and government requests for data, as the operator records them, and the aggregated transparency
//! report published from them. Individual requests (authority, notes) are never published.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::Database;
use crate::error::{Entity, StoreError, StoreResult};
use crate::model::{LegalRequestId, millis_to_time, now_millis};
use crate::schema::control::legal_requests;

/// What was asked for, in the categories transparency reports use.
pub const KINDS: &[&str] =
    &["subpoena", "court_order", "search_warrant", "emergency", "preservation", "national_security", "other"];
/// What came of it.
pub const OUTCOMES: &[&str] = &["pending", "rejected", "partially_disclosed", "disclosed"];
/// National-security requests are published only in bands of this width (as the law that allows publishing
/// them at all usually requires).
pub const NATIONAL_SECURITY_BAND: i64 = 250;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = legal_requests)]
struct Row {
    id: String,
    received_on: i64,
    kind: String,
    jurisdiction: String,
    authority: String,
    accounts_affected: i64,
    outcome: String,
    notes: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// One recorded request (operator only).
#[derive(Debug, Clone, Serialize)]
pub struct LegalRequest {
    pub id: LegalRequestId,
    pub received_on: NaiveDate,
    pub kind: String,
    /// ISO 3166-1 alpha-2 code of the requesting jurisdiction.
    pub jurisdiction: String,
    pub authority: String,
    pub accounts_affected: i64,
    pub outcome: String,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Row> for LegalRequest {
    fn from(r: Row) -> Self {
        LegalRequest {
            id: LegalRequestId::from_db(r.id),
            received_on: millis_to_time(r.received_on).date_naive(),
            kind: r.kind,
            jurisdiction: r.jurisdiction,
            authority: r.authority,
            accounts_affected: r.accounts_affected,
            outcome: r.outcome,
            notes: r.notes,
            created_at: millis_to_time(r.created_at),
            updated_at: millis_to_time(r.updated_at),
        }
    }
}

/// A request to record.
#[derive(Debug, Clone)]
pub struct NewLegalRequest {
    pub received_on: NaiveDate,
    pub kind: String,
    pub jurisdiction: String,
    pub authority: String,
    pub accounts_affected: i64,
    pub outcome: String,
    pub notes: Option<String>,
}

/// What an update may change.
#[derive(Debug, Clone, Default)]
pub struct LegalRequestChanges {
    pub outcome: Option<String>,
    pub accounts_affected: Option<i64>,
    pub notes: Option<String>,
}

fn check_kind(kind: &str) -> StoreResult<()> {
    KINDS
        .contains(&kind)
        .then_some(())
        .ok_or_else(|| StoreError::Invalid(format!("kind must be one of {}", KINDS.join(", "))))
}

fn check_outcome(outcome: &str) -> StoreResult<()> {
    OUTCOMES
        .contains(&outcome)
        .then_some(())
        .ok_or_else(|| StoreError::Invalid(format!("outcome must be one of {}", OUTCOMES.join(", "))))
}

fn check_accounts(n: i64) -> StoreResult<()> {
    (0..=1_000_000_000)
        .contains(&n)
        .then_some(())
        .ok_or_else(|| StoreError::Invalid("accounts_affected must be between 0 and 1000000000".into()))
}

fn check_text(field: &str, value: &str, max: usize) -> StoreResult<()> {
    (value.chars().count() <= max && !value.chars().any(char::is_control)).then_some(()).ok_or_else(|| {
        StoreError::Invalid(format!("{field} must be at most {max} characters, without control characters"))
    })
}

fn validate(new: &NewLegalRequest) -> StoreResult<()> {
    check_kind(&new.kind)?;
    check_outcome(&new.outcome)?;
    check_accounts(new.accounts_affected)?;
    if new.jurisdiction.len() != 2 || !new.jurisdiction.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(StoreError::Invalid("jurisdiction must be an ISO 3166-1 alpha-2 code such as DE or SG".into()));
    }
    if new.authority.trim().is_empty() {
        return Err(StoreError::Invalid("authority must name who asked".into()));
    }
    check_text("authority", &new.authority, 200)?;
    if let Some(notes) = &new.notes {
        check_text("notes", notes, 4000)?;
    }
    if new.received_on > Utc::now().date_naive() {
        return Err(StoreError::Invalid("received_on is in the future".into()));
    }
    Ok(())
}

fn day_millis(day: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default()).timestamp_millis()
}

pub async fn record(control: &Database, new: NewLegalRequest) -> StoreResult<LegalRequest> {
    validate(&new)?;
    let now = now_millis();
    let row = Row {
        id: LegalRequestId::generate().to_string(),
        received_on: day_millis(new.received_on),
        kind: new.kind,
        jurisdiction: new.jurisdiction,
        authority: new.authority.trim().to_string(),
        accounts_affected: new.accounts_affected,
        outcome: new.outcome,
        notes: new.notes,
        created_at: now,
        updated_at: now,
    };
    control
        .run(move |c| {
            diesel::insert_into(legal_requests::table).values(&row).execute(c)?;
            Ok(row.into())
        })
        .await
}

pub async fn update(
    control: &Database,
    id: &LegalRequestId,
    changes: LegalRequestChanges,
) -> StoreResult<LegalRequest> {
    if let Some(outcome) = &changes.outcome {
        check_outcome(outcome)?;
    }
    if let Some(n) = changes.accounts_affected {
        check_accounts(n)?;
    }
    if let Some(notes) = &changes.notes {
        check_text("notes", notes, 4000)?;
    }
    let id = id.to_string();
    control
        .run(move |c| {
            let mut row: Row = legal_requests::table
                .find(&id)
                .select(Row::as_select())
                .first(c)
                .optional()?
                .ok_or(StoreError::NotFound(Entity::LegalRequest))?;
            if let Some(outcome) = changes.outcome {
                row.outcome = outcome;
            }
            if let Some(n) = changes.accounts_affected {
                row.accounts_affected = n;
            }
            if changes.notes.is_some() {
                row.notes = changes.notes;
            }
            row.updated_at = now_millis();
            diesel::update(legal_requests::table.find(&id))
                .set((
                    legal_requests::outcome.eq(&row.outcome),
                    legal_requests::accounts_affected.eq(row.accounts_affected),
                    legal_requests::notes.eq(&row.notes),
                    legal_requests::updated_at.eq(row.updated_at),
                ))
                .execute(c)?;
            Ok(row.into())
        })
        .await
}

/// Recorded requests, oldest first, `limit` after the cursor.
pub async fn list(control: &Database, after: Option<LegalRequestId>, limit: i64) -> StoreResult<Vec<LegalRequest>> {
    control
        .run(move |c| {
            let mut query = legal_requests::table.select(Row::as_select()).order(legal_requests::id.asc()).into_boxed();
            if let Some(after) = after {
                query = query.filter(legal_requests::id.gt(after.to_string()));
            }
            Ok(query.limit(limit).load(c)?.into_iter().map(LegalRequest::from).collect())
        })
        .await
}

/// A half-year of the public report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportPeriod {
    /// `2026-H2`.
    pub period: String,
    pub from: NaiveDate,
    /// Exclusive.
    pub to: NaiveDate,
    /// Requests other than national-security ones.
    pub requests: i64,
    pub accounts_affected: i64,
    pub by_kind: BTreeMap<String, i64>,
    pub by_jurisdiction: BTreeMap<String, i64>,
    pub by_outcome: BTreeMap<String, i64>,
    /// National-security requests and the accounts they named, as bands (`0-249`), never exact.
    pub national_security_requests: String,
    pub national_security_accounts: String,
}

/// `2026-H2` → (1 July 2026, 1 January 2027).
pub fn period_bounds(period: &str) -> Option<(NaiveDate, NaiveDate)> {
    let (year, half) = period.split_once("-H")?;
    let year: i32 = year.parse().ok().filter(|y| (2000..=2100).contains(y))?;
    match half {
        "1" => Some((NaiveDate::from_ymd_opt(year, 1, 1)?, NaiveDate::from_ymd_opt(year, 7, 1)?)),
        "2" => Some((NaiveDate::from_ymd_opt(year, 7, 1)?, NaiveDate::from_ymd_opt(year + 1, 1, 1)?)),
        _ => None,
    }
}

fn period_of(day: NaiveDate) -> String {
    format!("{}-H{}", day.year(), if day.month() <= 6 { 1 } else { 2 })
}

fn band(n: i64) -> String {
    let low = n / NATIONAL_SECURITY_BAND * NATIONAL_SECURITY_BAND;
    format!("{low}-{}", low + NATIONAL_SECURITY_BAND - 1)
}

/// The public report: one entry per half-year with requests (or just `period`), newest first.
pub async fn report(control: &Database, period: Option<&str>) -> StoreResult<Vec<ReportPeriod>> {
    let bounds = match period {
        Some(p) => Some(period_bounds(p).ok_or_else(|| StoreError::Invalid("period must look like 2026-H2".into()))?),
        None => None,
    };
    let rows: Vec<Row> = control
        .run(move |c| {
            let mut query = legal_requests::table.select(Row::as_select()).into_boxed();
            if let Some((from, to)) = bounds {
                query = query
                    .filter(legal_requests::received_on.ge(day_millis(from)))
                    .filter(legal_requests::received_on.lt(day_millis(to)));
            }
            Ok(query.load(c)?)
        })
        .await?;
    let mut periods: BTreeMap<String, (ReportPeriod, i64, i64)> = BTreeMap::new();
    if let Some(p) = period {
        periods.insert(p.to_string(), (empty_period(p), 0, 0));
    }
    for row in rows {
        let name = period_of(millis_to_time(row.received_on).date_naive());
        let (entry, ns_requests, ns_accounts) =
            periods.entry(name.clone()).or_insert_with(|| (empty_period(&name), 0, 0));
        if row.kind == "national_security" {
            *ns_requests += 1;
            *ns_accounts += row.accounts_affected;
            continue;
        }
        entry.requests += 1;
        entry.accounts_affected += row.accounts_affected;
        *entry.by_kind.entry(row.kind).or_default() += 1;
        *entry.by_jurisdiction.entry(row.jurisdiction).or_default() += 1;
        *entry.by_outcome.entry(row.outcome).or_default() += 1;
    }
    Ok(periods
        .into_values()
        .rev()
        .map(|(mut p, ns_requests, ns_accounts)| {
            p.national_security_requests = band(ns_requests);
            p.national_security_accounts = band(ns_accounts);
            p
        })
        .collect())
}

fn empty_period(name: &str) -> ReportPeriod {
    let (from, to) = period_bounds(name).unwrap_or_default();
    ReportPeriod {
        period: name.to_string(),
        from,
        to,
        requests: 0,
        accounts_affected: 0,
        by_kind: BTreeMap::new(),
        by_jurisdiction: BTreeMap::new(),
        by_outcome: BTreeMap::new(),
        national_security_requests: band(0),
        national_security_accounts: band(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_bands() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        assert_eq!(period_bounds("2026-H2"), Some((d(2026, 7, 1), d(2027, 1, 1))));
        assert_eq!(period_bounds("2026-H1"), Some((d(2026, 1, 1), d(2026, 7, 1))));
        for bad in ["2026", "2026-H3", "26-H1", "2026-h1", "x-H1"] {
            assert_eq!(period_bounds(bad), None, "{bad}");
        }
        assert_eq!(period_of(d(2026, 6, 30)), "2026-H1");
        assert_eq!(period_of(d(2026, 7, 1)), "2026-H2");
        assert_eq!(
            (band(0), band(249), band(250), band(600)),
            ("0-249".into(), "0-249".into(), "250-499".into(), "500-749".into())
        );
    }
}
