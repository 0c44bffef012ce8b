//! The tenant's metered usage (`/v1/usage`, admin scope): totals per product and hour, day or month (JSON or
//! CSV), the recorded events themselves, and the monthly statement. The operator reads any tenant's usage under
//! `/admin/v1/tenants/{tenant_id}/usage`.

use std::collections::BTreeMap;
use std::fmt::Write;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use faceplate_billing::{Statement, StatementLine};
use faceplate_store::usage::month_start;
use faceplate_store::{Granularity, Product, Tenant, TenantData, UsageBucket, UsageEvent};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AdminScope, Caller, Operator};
use crate::context::{Meta, RequestContext};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::types::next_after;
use crate::state::AppState;

/// The longest range one request may cover: hours are read from the store one row each.
const MAX_HOURLY_RANGE_DAYS: i64 = 31;
const MAX_RANGE_DAYS: i64 = 400;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start of the range (RFC 3339), inclusive; default: the start of this month (UTC).
    pub from: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339), exclusive; default: now. At most 31 days after `from` by the hour, 400 days
    /// otherwise.
    pub to: Option<DateTime<Utc>>,
    /// Bucket size: `hour`, `day` (default) or `month`, in UTC.
    #[param(value_type = Option<String>)]
    pub granularity: Option<Granularity>,
    /// Only this product (`face_detect`, `ocr_idcard`, ...).
    pub product: Option<String>,
    /// `json` (default) or `csv` (also chosen by `Accept: text/csv`).
    pub format: Option<String>,
}

/// Units and calls of one product in one bucket.
#[derive(Serialize, ToSchema)]
pub struct UsageBucketView {
    /// Start of the bucket (UTC).
    pub start: DateTime<Utc>,
    pub product: String,
    pub units: i64,
    /// Billable answers counted (each is one unit today).
    pub calls: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ProductTotal {
    pub product: String,
    pub units: i64,
    pub calls: i64,
}

#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    #[serde(flatten)]
    pub meta: Meta,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[schema(value_type = String)]
    pub granularity: Granularity,
    /// Oldest first; buckets without usage are left out.
    pub buckets: Vec<UsageBucketView>,
    /// Per product over the whole range.
    pub totals: Vec<ProductTotal>,
}

struct Range {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
    product: Option<Product>,
    csv: bool,
}

impl UsageQuery {
    fn range(&self, req: &HttpRequest) -> Result<Range, ApiError> {
        let now = Utc::now();
        let from = self.from.unwrap_or_else(|| month_start(now));
        let to = self.to.unwrap_or(now);
        let granularity = self.granularity.unwrap_or(Granularity::Day);
        if to <= from {
            return Err(ApiError::bad_arguments("`to` must be after `from`"));
        }
        let max_days = if granularity == Granularity::Hour { MAX_HOURLY_RANGE_DAYS } else { MAX_RANGE_DAYS };
        if to - from > Duration::days(max_days) {
            return Err(ApiError::bad_arguments(format!(
                "a range may cover at most {max_days} days at this granularity; ask for several"
            )));
        }
        let product = self.product.as_deref().map(str::parse::<Product>).transpose()?;
        let accepts_csv =
            req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/csv"));
        let csv = match self.format.as_deref() {
            None => accepts_csv,
            Some("csv") => true,
            Some("json") => false,
            Some(other) => return Err(ApiError::bad_arguments(format!("unknown format `{other}`: use json or csv"))),
        };
        Ok(Range { from, to, granularity, product, csv })
    }
}

async fn usage_report(
    data: TenantData,
    ctx: &RequestContext,
    query: &UsageQuery,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let range = query.range(req)?;
    let buckets = data.usage(range.from, range.to, range.granularity, range.product).await?;
    if range.csv {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"usage.csv\""))
            .body(to_csv(&buckets)));
    }
    let mut totals: BTreeMap<Product, (i64, i64)> = BTreeMap::new();
    for b in &buckets {
        let t = totals.entry(b.product).or_default();
        t.0 += b.units;
        t.1 += b.calls;
    }
    Ok(HttpResponse::Ok().json(UsageReport {
        meta: ctx.meta(),
        from: range.from,
        to: range.to,
        granularity: range.granularity,
        buckets: buckets
            .into_iter()
            .map(|b| UsageBucketView { start: b.start, product: b.product.to_string(), units: b.units, calls: b.calls })
            .collect(),
        totals: totals
            .into_iter()
            .map(|(p, (units, calls))| ProductTotal { product: p.to_string(), units, calls })
            .collect(),
    }))
}

/// `start,product,units,calls`, one line per bucket; nothing in it needs quoting.
fn to_csv(buckets: &[UsageBucket]) -> String {
    let mut out = String::from("start,product,units,calls\n");
    for b in buckets {
        let _ = writeln!(out, "{},{},{},{}", b.start.to_rfc3339(), b.product, b.units, b.calls);
    }
    out
}

/// Usage totals per product and hour, day or month: JSON, or CSV with `format=csv`. Counted: every 2xx answer
/// of a billable operation (detection, comparison, search, OCR, plates), once, before it was sent.
#[utoipa::path(
    tag = "usage",
    security(("api_key" = ["admin"])),
    params(UsageQuery),
    responses((status = 200, description = "Usage totals (JSON, or `text/csv` with columns start,product,units,calls)",
        body = UsageReport))
)]
#[get("/usage")]
pub async fn get_usage(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    query: web::Query<UsageQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    usage_report(state.stores.tenant_data(&caller.tenant)?, &caller.ctx, &query, &req).await
}

/// Any tenant's usage totals, as the tenant sees them under `GET /v1/usage`.
#[utoipa::path(
    tag = "admin",
    security(("operator_token" = [])),
    params(("tenant_id" = String, Path, description = "`ten_...`"), UsageQuery),
    responses(
        (status = 200, description = "Usage totals", body = UsageReport),
        (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope),
    )
)]
#[get("/tenants/{tenant_id}/usage")]
pub async fn get_tenant_usage(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<UsageQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = crate::routes::admin::load_tenant_for_access(&state, &path, &operator, "usage").await?;
    usage_report(state.stores.tenant_data(&tenant)?, &operator.ctx, &query, &req).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageEventsQuery {
    /// Start (RFC 3339), inclusive; default: the start of this month (UTC).
    pub from: Option<DateTime<Utc>>,
    /// End (RFC 3339), exclusive; default: now.
    pub to: Option<DateTime<Utc>>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Return events after this event id.
    pub after: Option<String>,
}

/// One counted answer.
#[derive(Serialize, ToSchema)]
pub struct UsageEventView {
    /// The event id (time-ordered); also the identifier of the Stripe meter event.
    pub id: String,
    /// The `X-Request-Id` of the answer that was counted.
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub key_id: String,
    pub product: String,
    /// Method and route, e.g. `POST /v1/faces/compare`.
    pub operation: String,
    pub units: i64,
    /// HTTP status of the answer.
    pub status: i32,
    pub occurred_at: DateTime<Utc>,
}

impl From<UsageEvent> for UsageEventView {
    fn from(e: UsageEvent) -> Self {
        UsageEventView {
            id: e.id,
            request_id: e.request_id,
            idempotency_key: e.idempotency_key,
            key_id: e.key_id,
            product: e.product,
            operation: e.operation,
            units: e.units,
            status: e.status,
            occurred_at: e.occurred_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UsageEventList {
    #[serde(flatten)]
    pub meta: Meta,
    pub events: Vec<UsageEventView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// The counted answers themselves, oldest first: to reconcile your own records with what is billed.
#[utoipa::path(
    tag = "usage",
    security(("api_key" = ["admin"])),
    params(UsageEventsQuery),
    responses((status = 200, description = "A page of usage events", body = UsageEventList))
)]
#[get("/usage/events")]
pub async fn list_usage_events(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    query: web::Query<UsageEventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit.unwrap_or(100) {
        n @ 1..=1000 => n,
        _ => return Err(ApiError::bad_arguments("limit must be between 1 and 1000")),
    };
    let now = Utc::now();
    let (from, to) = (query.from.unwrap_or_else(|| month_start(now)), query.to.unwrap_or(now));
    if let Some(after) = &query.after
        && (after.len() > 64 || !after.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
    {
        return Err(ApiError::bad_arguments("`after` is not an id from a previous page"));
    }
    let data = state.stores.tenant_data(&caller.tenant)?;
    let events = data.usage_events(from, to, query.after.clone(), limit).await?;
    let next_after = next_after(&events, limit, |e| e.id.clone());
    Ok(HttpResponse::Ok().json(UsageEventList {
        meta: caller.ctx.meta(),
        events: events.into_iter().map(UsageEventView::from).collect(),
        next_after,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// The month, `YYYY-MM` (UTC); default: this month (so far).
    pub month: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatementLineView {
    pub product: String,
    pub units: i64,
    pub included_units: i64,
    /// Units beyond the included ones: what is charged.
    pub billable_units: i64,
    /// Millionths of the currency unit per unit.
    pub unit_price_micros: i64,
    pub amount_micros: i64,
}

#[derive(Serialize, ToSchema)]
pub struct StatementView {
    #[serde(flatten)]
    pub meta: Meta,
    /// `YYYY-MM`.
    pub month: String,
    /// The plan the statement is priced with: the tenant's current plan.
    pub plan_id: String,
    pub currency: String,
    pub base_fee_cents: i64,
    pub lines: Vec<StatementLineView>,
    /// Base fee plus every line, rounded half up to cents.
    pub total_cents: i64,
}

fn statement_view(meta: Meta, s: Statement) -> StatementView {
    StatementView {
        meta,
        month: format!("{:04}-{:02}", s.month.year(), s.month.month()),
        plan_id: s.plan_id,
        currency: s.currency,
        base_fee_cents: s.base_fee_cents,
        lines: s
            .lines
            .into_iter()
            .map(|l: StatementLine| StatementLineView {
                product: l.product.to_string(),
                units: l.units,
                included_units: l.included_units,
                billable_units: l.billable_units,
                unit_price_micros: l.unit_price_micros,
                amount_micros: l.amount_micros,
            })
            .collect(),
        total_cents: s.total_cents,
    }
}

/// The statement of one month: the plan's base fee and, per product, the units beyond the included ones at the
/// plan's price. This is the ledger when billing runs without Stripe.
#[utoipa::path(
    tag = "usage",
    security(("api_key" = ["admin"])),
    params(StatementQuery),
    responses((status = 200, description = "The month's statement", body = StatementView))
)]
#[get("/usage/statement")]
pub async fn get_statement(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    query: web::Query<StatementQuery>,
) -> Result<HttpResponse, ApiError> {
    let statement = monthly_statement(&state, &caller.tenant, query.month.as_deref()).await?;
    Ok(HttpResponse::Ok().json(statement_view(caller.ctx.meta(), statement)))
}

async fn monthly_statement(state: &AppState, tenant: &Tenant, month: Option<&str>) -> Result<Statement, ApiError> {
    let start = match month {
        None => month_start(Utc::now()),
        Some(text) => NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Utc.from_utc_datetime(&t))
            .ok_or_else(|| ApiError::bad_arguments("month is YYYY-MM"))?,
    };
    let end = month_start(start + Duration::days(32));
    let plan = state.stores.control().get_plan(&tenant.plan_id).await?;
    let buckets = state.stores.tenant_data(tenant)?.usage(start, end, Granularity::Month, None).await?;
    let units = buckets.into_iter().map(|b| (b.product, b.units)).collect();
    Ok(faceplate_billing::statement(&plan, start, &units))
}
