//! The control-plane store: tenants and API keys. Shared by every region; holds no tenant-owned data.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use crate::credentials::{self, KeyHasher};
use crate::db::{Database, write_transaction};
use crate::error::{Entity, StoreError, StoreResult, conflict_on_unique};
use crate::model::{
    ApiKey, FaceppWithoutConsent, IssuedKey, KeyId, NewKey, Plan, Product, ProductTerms, RegionName, Scope, Tenant,
    TenantId, TenantStatus, millis_to_time, new_sortable_id, now_millis,
};
use crate::schema::control::{api_keys, plan_products, plans, tenants};

/// At most this many keys (revoked ones included) per tenant: bounds listing and stops runaway scripts.
pub const MAX_KEYS_PER_TENANT: i64 = 500;
/// `last_used_at` is written at most this often per key, so authentication is not a write per request.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
struct TenantRow {
    id: String,
    name: String,
    home_region: String,
    status: String,
    created_at: i64,
    updated_at: i64,
    plan_id: String,
    delete_after: Option<i64>,
    processing_restricted_at: Option<i64>,
    face_token_ttl_hours: Option<i32>,
    template_retention_days: Option<i32>,
    dpa_version: Option<String>,
    dpa_accepted_at: Option<i64>,
    facepp_without_consent: String,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> StoreResult<Tenant> {
        Ok(Tenant {
            id: TenantId::from_db(r.id),
            name: r.name,
            home_region: RegionName::parse(&r.home_region)?,
            // A scheduled deletion is the `delete_after` column (the status keeps what it was, so cancelling
            // restores it; SQLite cannot widen the status column's CHECK without rebuilding the table).
            status: if r.delete_after.is_some() { TenantStatus::PendingDeletion } else { r.status.parse()? },
            plan_id: r.plan_id,
            created_at: millis_to_time(r.created_at),
            updated_at: millis_to_time(r.updated_at),
            delete_after: r.delete_after.map(millis_to_time),
            processing_restricted_at: r.processing_restricted_at.map(millis_to_time),
            face_token_ttl_hours: r.face_token_ttl_hours,
            template_retention_days: r.template_retention_days,
            dpa_version: r.dpa_version,
            dpa_accepted_at: r.dpa_accepted_at.map(millis_to_time),
            facepp_without_consent: FaceppWithoutConsent::parse(&r.facepp_without_consent).unwrap_or_default(),
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = plans)]
struct PlanRow {
    id: String,
    name: String,
    tenant_qps: i32,
    tenant_concurrency: i32,
    key_qps: i32,
    key_concurrency: i32,
    currency: String,
    base_fee_cents: i64,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = plan_products)]
struct PlanProductRow {
    plan_id: String,
    product: String,
    included_units: i64,
    monthly_cap: Option<i64>,
    unit_price_micros: i64,
}

impl PlanRow {
    fn into_plan(self, products: Vec<PlanProductRow>) -> Plan {
        // The table's CHECK constraints keep these positive.
        let positive = |v: i32| u32::try_from(v).unwrap_or(1).max(1);
        Plan {
            id: self.id,
            name: self.name,
            tenant_qps: positive(self.tenant_qps),
            tenant_concurrency: positive(self.tenant_concurrency),
            key_qps: positive(self.key_qps),
            key_concurrency: positive(self.key_concurrency),
            currency: self.currency,
            base_fee_cents: self.base_fee_cents,
            // A product this build does not know (a newer node wrote it) is left out, not an error.
            products: products
                .into_iter()
                .filter_map(|p| {
                    let product = p.product.parse::<Product>().ok()?;
                    let terms = ProductTerms {
                        included_units: p.included_units,
                        monthly_cap: p.monthly_cap,
                        unit_price_micros: p.unit_price_micros,
                    };
                    Some((product, terms))
                })
                .collect(),
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
struct ApiKeyRow {
    id: String,
    tenant_id: String,
    name: String,
    scopes: String,
    secret_hash: String,
    previous_secret_hash: Option<String>,
    previous_secret_expires_at: Option<i64>,
    rate_limit_qps: Option<i32>,
    max_concurrency: Option<i32>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    created_at: i64,
    rotated_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> StoreResult<ApiKey> {
        Ok(ApiKey {
            id: KeyId::from_db(r.id),
            tenant_id: TenantId::from_db(r.tenant_id),
            name: r.name,
            scopes: r.scopes.split_whitespace().map(str::parse).collect::<StoreResult<_>>()?,
            rate_limit_qps: r.rate_limit_qps,
            max_concurrency: r.max_concurrency,
            expires_at: r.expires_at.map(millis_to_time),
            revoked_at: r.revoked_at.map(millis_to_time),
            last_used_at: r.last_used_at.map(millis_to_time),
            created_at: millis_to_time(r.created_at),
            rotated_at: r.rotated_at.map(millis_to_time),
            previous_secret_expires_at: r.previous_secret_expires_at.map(millis_to_time),
        })
    }
}

/// Why a presented credential was refused. Only reported after the secret matched, so it tells an attacker
/// nothing; a wrong secret and an unknown key are the same `Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRejection {
    Invalid,
    Revoked,
    Expired,
}

/// A successfully authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant: Tenant,
    pub key: ApiKey,
    /// The tenant's plan (its limits).
    pub plan: Plan,
}

pub(crate) fn validate_tenant_name(name: &str) -> StoreResult<String> {
    let name = name.trim();
    let ok = (1..=100).contains(&name.chars().count()) && !name.chars().any(char::is_control);
    ok.then(|| name.to_string())
        .ok_or_else(|| StoreError::Invalid("tenant name must be 1-100 printable characters".into()))
}

pub(crate) fn validate_key(new: &NewKey) -> StoreResult<()> {
    let name_ok = (1..=100).contains(&new.name.trim().chars().count()) && !new.name.chars().any(char::is_control);
    if !name_ok {
        return Err(StoreError::Invalid("key name must be 1-100 printable characters".into()));
    }
    if new.scopes.is_empty() {
        return Err(StoreError::Invalid("a key needs at least one scope".into()));
    }
    if new.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(StoreError::Invalid("expires_at must be in the future".into()));
    }
    if new.rate_limit_qps.is_some_and(|q| q <= 0) || new.max_concurrency.is_some_and(|c| c <= 0) {
        return Err(StoreError::Invalid("rate_limit_qps and max_concurrency must be positive".into()));
    }
    Ok(())
}

fn scopes_to_text(scopes: &[Scope]) -> String {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

#[derive(Clone)]
pub struct ControlStore {
    db: Database,
    hasher: KeyHasher,
}

impl ControlStore {
    pub(crate) fn new(db: Database, hasher: KeyHasher) -> Self {
        ControlStore { db, hasher }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) async fn insert_tenant(&self, name: &str, home_region: RegionName, plan: &str) -> StoreResult<Tenant> {
        let name = validate_tenant_name(name)?;
        let now = now_millis();
        let row = TenantRow {
            id: TenantId::generate().to_string(),
            name,
            home_region: home_region.to_string(),
            status: TenantStatus::Active.as_str().to_string(),
            created_at: now,
            updated_at: now,
            plan_id: plan.to_string(),
            delete_after: None,
            processing_restricted_at: None,
            face_token_ttl_hours: None,
            template_retention_days: None,
            dpa_version: None,
            dpa_accepted_at: None,
            facepp_without_consent: FaceppWithoutConsent::default().as_str().to_string(),
        };
        self.db
            .run(move |c| {
                load_plan(c, &row.plan_id)?;
                let name = row.name.clone();
                diesel::insert_into(tenants::table)
                    .values(&row)
                    .execute(c)
                    .map_err(|e| conflict_on_unique(e, || format!("a tenant named `{name}` already exists")))?;
                row.try_into()
            })
            .await
    }

    pub async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        let id = id.to_string();
        self.db
            .run(move |c| {
                tenants::table
                    .find(id)
                    .select(TenantRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::Tenant))?
                    .try_into()
            })
            .await
    }

    /// Finds a tenant by id or, failing that, by exact name (for the CLI).
    pub async fn find_tenant(&self, id_or_name: &str) -> StoreResult<Tenant> {
        if let Some(id) = TenantId::parse(id_or_name) {
            match self.get_tenant(&id).await {
                Err(StoreError::NotFound(_)) => {}
                other => return other,
            }
        }
        let name = id_or_name.to_string();
        self.db
            .run(move |c| {
                tenants::table
                    .filter(tenants::name.eq(name))
                    .select(TenantRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::Tenant))?
                    .try_into()
            })
            .await
    }

    /// Tenants in creation order, `limit` at a time, starting after the cursor.
    pub async fn list_tenants(&self, after: Option<TenantId>, limit: i64) -> StoreResult<Vec<Tenant>> {
        self.db
            .run(move |c| {
                let mut query = tenants::table.select(TenantRow::as_select()).order(tenants::id.asc()).into_boxed();
                if let Some(after) = after {
                    query = query.filter(tenants::id.gt(after.to_string()));
                }
                query.limit(limit).load(c)?.into_iter().map(Tenant::try_from).collect()
            })
            .await
    }

    pub(crate) async fn update_tenant_status(&self, id: &TenantId, status: TenantStatus) -> StoreResult<Tenant> {
        let key = id.to_string();
        let updated = self
            .db
            .run(move |c| {
                Ok(diesel::update(tenants::table.find(key))
                    .set((tenants::status.eq(status.as_str()), tenants::updated_at.eq(now_millis())))
                    .execute(c)?)
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(Entity::Tenant));
        }
        self.get_tenant(id).await
    }

    pub(crate) async fn update_tenant_plan(&self, id: &TenantId, plan: &str) -> StoreResult<Tenant> {
        let (key, plan) = (id.to_string(), plan.to_string());
        let updated = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    load_plan(c, &plan)?;
                    Ok(diesel::update(tenants::table.find(&key))
                        .set((tenants::plan_id.eq(&plan), tenants::updated_at.eq(now_millis())))
                        .execute(c)?)
                })
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(Entity::Tenant));
        }
        self.get_tenant(id).await
    }

    /// Every plan, by id.
    pub async fn list_plans(&self) -> StoreResult<Vec<Plan>> {
        self.db
            .run(|c| {
                let rows = plans::table.select(PlanRow::as_select()).order(plans::id.asc()).load(c)?;
                let mut products = plan_products::table.select(PlanProductRow::as_select()).load(c)?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let (own, rest) = products.drain(..).partition(|p| p.plan_id == row.id);
                        products = rest;
                        row.into_plan(own)
                    })
                    .collect())
            })
            .await
    }

    /// Creates a plan or replaces one (its limits, fee and every product's terms). Tenants on it get the new
    /// terms from their next request.
    pub async fn put_plan(&self, plan: Plan) -> StoreResult<Plan> {
        validate_plan(&plan)?;
        let id = plan.id.clone();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let count = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
                    let row = PlanRow {
                        id: plan.id.clone(),
                        name: plan.name.clone(),
                        tenant_qps: count(plan.tenant_qps),
                        tenant_concurrency: count(plan.tenant_concurrency),
                        key_qps: count(plan.key_qps),
                        key_concurrency: count(plan.key_concurrency),
                        currency: plan.currency.clone(),
                        base_fee_cents: plan.base_fee_cents,
                    };
                    let now = now_millis();
                    let updated =
                        diesel::update(plans::table.find(&row.id)).set((&row, plans::updated_at.eq(now))).execute(c)?;
                    if updated == 0 {
                        diesel::insert_into(plans::table)
                            .values((&row, plans::created_at.eq(now), plans::updated_at.eq(now)))
                            .execute(c)?;
                    }
                    diesel::delete(plan_products::table.filter(plan_products::plan_id.eq(&row.id))).execute(c)?;
                    let products: Vec<PlanProductRow> = plan
                        .products
                        .iter()
                        .map(|(product, terms)| PlanProductRow {
                            plan_id: row.id.clone(),
                            product: product.as_str().to_string(),
                            included_units: terms.included_units,
                            monthly_cap: terms.monthly_cap,
                            unit_price_micros: terms.unit_price_micros,
                        })
                        .collect();
                    // Row by row: multi-row inserts do not compile for the multi-backend connection.
                    for product in &products {
                        diesel::insert_into(plan_products::table).values(product).execute(c)?;
                    }
                    load_plan(c, &id)
                })
            })
            .await
    }

    pub async fn get_plan(&self, id: &str) -> StoreResult<Plan> {
        let id = id.to_string();
        self.db.run(move |c| load_plan(c, &id)).await
    }

    pub(crate) async fn insert_key(&self, tenant: &TenantId, new: NewKey) -> StoreResult<IssuedKey> {
        validate_key(&new)?;
        let secret = credentials::generate_secret();
        let row = ApiKeyRow {
            id: new_sortable_id(KeyId::PREFIX),
            tenant_id: tenant.to_string(),
            name: new.name.trim().to_string(),
            scopes: scopes_to_text(&new.scopes),
            secret_hash: self.hasher.hash(&secret),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            rate_limit_qps: new.rate_limit_qps,
            max_concurrency: new.max_concurrency,
            expires_at: new.expires_at.map(|t| t.timestamp_millis()),
            revoked_at: None,
            last_used_at: None,
            created_at: now_millis(),
            rotated_at: None,
        };
        let key: ApiKey = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let existing: i64 =
                        api_keys::table.filter(api_keys::tenant_id.eq(&row.tenant_id)).count().get_result(c)?;
                    if existing >= MAX_KEYS_PER_TENANT {
                        return Err(StoreError::Conflict(format!(
                            "a tenant may hold at most {MAX_KEYS_PER_TENANT} keys; delete the tenant's unused keys"
                        )));
                    }
                    diesel::insert_into(api_keys::table).values(&row).execute(c)?;
                    row.try_into()
                })
            })
            .await?;
        Ok(IssuedKey { key, secret })
    }

    /// Keys of one tenant in creation order, revoked ones included.
    pub async fn list_keys(&self, tenant: &TenantId, after: Option<KeyId>, limit: i64) -> StoreResult<Vec<ApiKey>> {
        let tenant = tenant.to_string();
        self.db
            .run(move |c| {
                let mut query = api_keys::table
                    .filter(api_keys::tenant_id.eq(tenant))
                    .select(ApiKeyRow::as_select())
                    .order(api_keys::id.asc())
                    .into_boxed();
                if let Some(after) = after {
                    query = query.filter(api_keys::id.gt(after.to_string()));
                }
                query.limit(limit).load(c)?.into_iter().map(ApiKey::try_from).collect()
            })
            .await
    }

    /// One key of one tenant; another tenant's key is `NotFound`.
    pub async fn get_key(&self, tenant: &TenantId, id: &KeyId) -> StoreResult<ApiKey> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.db.run(move |c| load_key(c, &tenant, &id)).await
    }

    /// Revokes a key (idempotent: revoking a revoked key keeps the first revocation time).
    pub(crate) async fn revoke_key(&self, tenant: &TenantId, id: &KeyId) -> StoreResult<ApiKey> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    load_key(c, &tenant, &id)?;
                    diesel::update(api_keys::table.find(&id).filter(api_keys::revoked_at.is_null()))
                        .set(api_keys::revoked_at.eq(now_millis()))
                        .execute(c)?;
                    load_key(c, &tenant, &id)
                })
            })
            .await
    }

    /// Issues a new secret for a key. The old secret keeps working for `grace` (zero: stops at once).
    pub(crate) async fn rotate_key(&self, tenant: &TenantId, id: &KeyId, grace: Duration) -> StoreResult<IssuedKey> {
        let secret = credentials::generate_secret();
        let new_hash = self.hasher.hash(&secret);
        let (tenant, id) = (tenant.to_string(), id.to_string());
        let key = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let current: ApiKeyRow = api_keys::table
                        .find(&id)
                        .filter(api_keys::tenant_id.eq(&tenant))
                        .select(ApiKeyRow::as_select())
                        .first(c)
                        .optional()?
                        .ok_or(StoreError::NotFound(Entity::ApiKey))?;
                    if current.revoked_at.is_some() {
                        return Err(StoreError::Conflict("a revoked key cannot be rotated".into()));
                    }
                    let now = now_millis();
                    let (previous_hash, previous_until) = if grace > Duration::zero() {
                        (Some(current.secret_hash), Some(now + grace.num_milliseconds()))
                    } else {
                        (None, None)
                    };
                    diesel::update(api_keys::table.find(&id))
                        .set((
                            api_keys::secret_hash.eq(new_hash),
                            api_keys::previous_secret_hash.eq(previous_hash),
                            api_keys::previous_secret_expires_at.eq(previous_until),
                            api_keys::rotated_at.eq(now),
                        ))
                        .execute(c)?;
                    load_key(c, &tenant, &id)
                })
            })
            .await?;
        Ok(IssuedKey { key, secret })
    }

    /// Checks a presented key id and secret. Database failures are errors, never a rejection: an outage must
    /// not look like a bad key.
    pub async fn authenticate(&self, id: &KeyId, secret: &str) -> StoreResult<Result<Authenticated, AuthRejection>> {
        let id = id.to_string();
        let secret = secret.to_string();
        let hasher = self.hasher.clone();
        self.db
            .run(move |c| {
                let Some(row) = api_keys::table.find(&id).select(ApiKeyRow::as_select()).first(c).optional()? else {
                    // Hash anyway so an unknown key costs the same time as a wrong secret.
                    hasher.verify(&secret, "");
                    return Ok(Err(AuthRejection::Invalid));
                };
                let now = now_millis();
                let current = hasher.verify(&secret, &row.secret_hash);
                let previous = match (&row.previous_secret_hash, row.previous_secret_expires_at) {
                    (Some(hash), Some(until)) if until > now => hasher.verify(&secret, hash),
                    _ => false,
                };
                if !current && !previous {
                    return Ok(Err(AuthRejection::Invalid));
                }
                if row.revoked_at.is_some() {
                    return Ok(Err(AuthRejection::Revoked));
                }
                if row.expires_at.is_some_and(|t| t <= now) {
                    return Ok(Err(AuthRejection::Expired));
                }
                if row.last_used_at.is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS) {
                    diesel::update(api_keys::table.find(&id)).set(api_keys::last_used_at.eq(now)).execute(c)?;
                }
                let tenant: Tenant = tenants::table
                    .find(&row.tenant_id)
                    .select(TenantRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::Tenant))?
                    .try_into()?;
                let plan = load_plan(c, &tenant.plan_id)?;
                let mut key = ApiKey::try_from(row)?;
                if key.last_used_at.is_none_or(|t| now - t.timestamp_millis() >= LAST_USED_RESOLUTION_MS) {
                    key.last_used_at = Some(millis_to_time(now));
                }
                Ok(Ok(Authenticated { tenant, key, plan }))
            })
            .await
    }
}

/// A plan by id; an unknown one is `Invalid` (the caller named it).
fn load_plan(c: &mut crate::db::AnyConnection, id: &str) -> StoreResult<Plan> {
    let row = plans::table
        .find(id)
        .select(PlanRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| StoreError::Invalid(format!("unknown plan `{id}` (see GET /admin/v1/plans)")))?;
    let products =
        plan_products::table.filter(plan_products::plan_id.eq(id)).select(PlanProductRow::as_select()).load(c)?;
    Ok(row.into_plan(products))
}

fn validate_plan(plan: &Plan) -> StoreResult<()> {
    let id_ok = !plan.id.is_empty()
        && plan.id.len() <= 64
        && plan.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(StoreError::Invalid("a plan id is 1-64 characters of a-z, 0-9, `_` and `-`".into()));
    }
    if plan.name.trim().is_empty() || plan.name.len() > 200 {
        return Err(StoreError::Invalid("a plan name is 1-200 characters".into()));
    }
    let limits = [plan.tenant_qps, plan.tenant_concurrency, plan.key_qps, plan.key_concurrency];
    if limits.iter().any(|&v| v == 0 || v > 1_000_000) {
        return Err(StoreError::Invalid("rate and in-flight limits are between 1 and 1000000".into()));
    }
    if plan.currency.len() != 3 || !plan.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(StoreError::Invalid("currency is a lower-case ISO 4217 code, such as `usd`".into()));
    }
    if plan.base_fee_cents < 0 {
        return Err(StoreError::Invalid("base_fee_cents must not be negative".into()));
    }
    for (product, terms) in &plan.products {
        if terms.included_units < 0 || terms.unit_price_micros < 0 || terms.monthly_cap.is_some_and(|c| c < 0) {
            return Err(StoreError::Invalid(format!("the terms of `{product}` must not be negative")));
        }
    }
    Ok(())
}

fn load_key(c: &mut crate::db::AnyConnection, tenant: &str, id: &str) -> StoreResult<ApiKey> {
    api_keys::table
        .find(id)
        .filter(api_keys::tenant_id.eq(tenant))
        .select(ApiKeyRow::as_select())
        .first(c)
        .optional()?
        .ok_or(StoreError::NotFound(Entity::ApiKey))?
        .try_into()
}

/// Converts an optional `DateTime` for callers that build `NewKey` from seconds.
pub fn expiry_after(seconds: i64) -> DateTime<Utc> {
    Utc::now() + Duration::seconds(seconds)
}

/// Removes the tenant from the control store, its data keys included, in the caller's transaction; returns
/// whether it was there (1) or not (0).
pub(crate) fn delete_tenant_rows(c: &mut crate::db::AnyConnection, id: &str) -> StoreResult<usize> {
    diesel::delete(api_keys::table.filter(api_keys::tenant_id.eq(id))).execute(c)?;
    crate::billing::delete_tenant_billing(c, id)?;
    crate::alerts::delete_endpoint(c, id)?;
    crate::audit::delete_head(c, id)?;
    crate::crypto::delete_tenant_keys(c, id)?;
    Ok(diesel::delete(tenants::table.find(id)).execute(c)?)
}
