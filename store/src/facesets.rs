//! FaceSets: a tenant's named collections of faces, searched 1:N.
//!
//! Every membership change runs in one transaction that first bumps the set's `version`, which locks the set's
//! row (PostgreSQL) or the database (SQLite `BEGIN IMMEDIATE`). Changes to one set therefore commit in the
//! order their member keys were handed out, which is what lets an in-memory index catch up from two facts:
//! members with a key above the highest it holds, and `faceset_removals` newer than the version it has seen.

use chrono::{DateTime, Duration, Utc};
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::{AnyConnection, Database, write_transaction};
use crate::error::{Entity, StoreError, StoreResult, conflict_on_unique};
use crate::model::{ConsentId, FaceRecord, FaceSetToken, FaceToken, TaskId, TenantId, millis_to_time, now_millis};
use crate::schema::region::{faces, faceset_faces, faceset_removals, faceset_tasks, facesets};
use crate::tenant_data::{FaceRow, TenantData, open_embedding};

/// A FaceSet as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceSet {
    pub token: FaceSetToken,
    pub outer_id: Option<String>,
    pub display_name: String,
    pub tags: Vec<String>,
    pub user_data: String,
    pub face_count: i64,
    /// Bumped by every membership change.
    pub version: i64,
    /// Highest member key handed out so far (0: none).
    pub max_key: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How callers name a set: by token, or by the tenant's own `outer_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaceSetRef {
    Token(FaceSetToken),
    OuterId(String),
}

#[derive(Debug, Clone, Default)]
pub struct NewFaceSet {
    pub outer_id: Option<String>,
    pub display_name: String,
    pub tags: Vec<String>,
    pub user_data: String,
}

/// Fields to change; `None` leaves a field as it is. `outer_id: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct FaceSetChanges {
    pub outer_id: Option<Option<String>>,
    pub display_name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub user_data: Option<String>,
}

impl FaceSetChanges {
    pub fn is_empty(&self) -> bool {
        self.outer_id.is_none() && self.display_name.is_none() && self.tags.is_none() && self.user_data.is_none()
    }
}

/// Why one face of a batch was not added or removed (Face++ `failure_detail` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// Malformed, unknown, expired or another tenant's token; or, on removal, not in the set.
    InvalidFaceToken,
    /// The set is at its capacity.
    QuotaExceeded,
    /// The face was made under the consent of another data subject than the one it is being added under.
    ConsentRequired,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::InvalidFaceToken => "INVALID_FACE_TOKEN",
            FailureReason::QuotaExceeded => "QUOTA_EXCEEDED",
            FailureReason::ConsentRequired => "CONSENT_REQUIRED",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub face_token: String,
    pub reason: FailureReason,
}

/// The outcome of adding or removing faces: the set afterwards, how many changed, and what failed.
#[derive(Debug, Clone)]
pub struct MembershipChange {
    pub faceset: FaceSet,
    pub changed: usize,
    pub failures: Vec<Failure>,
}

/// Which faces to remove.
#[derive(Debug, Clone)]
pub enum Selection {
    Tokens(Vec<String>),
    All,
}

/// A face in a set.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The face's key in the set's index; increases in the order faces were added.
    pub key: i64,
    pub face_token: FaceToken,
    pub user_id: Option<String>,
    pub added_at: DateTime<Utc>,
    /// The consent the face was enrolled under.
    pub consent_id: Option<ConsentId>,
}

/// The result of enrolling a face from an image.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub face_token: FaceToken,
    /// The set already held a face for this `external_image_id`; nothing was added.
    pub already_enrolled: bool,
    pub faceset: FaceSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    AddFaces,
    RemoveFaces,
}

impl TaskKind {
    fn as_str(self) -> &'static str {
        match self {
            TaskKind::AddFaces => "add_faces",
            TaskKind::RemoveFaces => "remove_faces",
        }
    }
}

/// An asynchronous add or remove (Face++ `faceset/async/*`). `result` is set when done.
#[derive(Debug, Clone)]
pub struct FaceSetTask {
    pub id: TaskId,
    pub faceset_token: FaceSetToken,
    pub kind: TaskKind,
    pub face_tokens: Vec<String>,
    pub result: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The consent the faces are added under (an add task).
    pub consent_id: Option<ConsentId>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = facesets)]
struct FaceSetRow {
    token: String,
    tenant_id: String,
    outer_id: Option<String>,
    display_name: String,
    tags: String,
    user_data: String,
    face_count: i64,
    version: i64,
    next_key: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<FaceSetRow> for FaceSet {
    type Error = StoreError;
    fn try_from(r: FaceSetRow) -> StoreResult<FaceSet> {
        Ok(FaceSet {
            token: FaceSetToken::parse(&r.token)
                .ok_or_else(|| StoreError::Invalid(format!("corrupt faceset token {}", r.token)))?,
            outer_id: r.outer_id,
            display_name: r.display_name,
            tags: serde_json::from_str(&r.tags).map_err(|e| StoreError::Invalid(format!("corrupt tags: {e}")))?,
            user_data: r.user_data,
            face_count: r.face_count,
            version: r.version,
            max_key: r.next_key - 1,
            created_at: millis_to_time(r.created_at),
            updated_at: millis_to_time(r.updated_at),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = faceset_tasks)]
struct TaskRow {
    id: String,
    tenant_id: String,
    faceset_token: String,
    kind: String,
    face_tokens: String,
    status: String,
    result: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
    consent_id: Option<String>,
}

impl TryFrom<TaskRow> for FaceSetTask {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> StoreResult<FaceSetTask> {
        let corrupt = |what: &str| StoreError::Invalid(format!("corrupt task {}: {what}", r.id));
        Ok(FaceSetTask {
            faceset_token: FaceSetToken::parse(&r.faceset_token).ok_or_else(|| corrupt("faceset token"))?,
            kind: match r.kind.as_str() {
                "add_faces" => TaskKind::AddFaces,
                "remove_faces" => TaskKind::RemoveFaces,
                _ => return Err(corrupt("kind")),
            },
            face_tokens: serde_json::from_str(&r.face_tokens).map_err(|_| corrupt("face tokens"))?,
            result: r.result.as_deref().map(serde_json::from_str).transpose().map_err(|_| corrupt("result"))?,
            created_at: millis_to_time(r.created_at),
            finished_at: r.finished_at.map(millis_to_time),
            consent_id: r.consent_id.map(ConsentId::from_db),
            id: TaskId::from_db(r.id),
        })
    }
}

/// The set's token, if the tenant has such a set.
fn resolve(c: &mut AnyConnection, tenant: &str, set: &FaceSetRef) -> StoreResult<String> {
    let query = facesets::table.filter(facesets::tenant_id.eq(tenant)).select(facesets::token);
    let found = match set {
        FaceSetRef::Token(token) => query.filter(facesets::token.eq(token.as_str())).first::<String>(c).optional()?,
        FaceSetRef::OuterId(outer) => query.filter(facesets::outer_id.eq(outer)).first::<String>(c).optional()?,
    };
    found.ok_or(StoreError::NotFound(Entity::FaceSet))
}

fn load_set(c: &mut AnyConnection, token: &str) -> StoreResult<FaceSet> {
    facesets::table.find(token).select(FaceSetRow::as_select()).first(c)?.try_into()
}

/// Starts a membership change: bumps the version (taking the set's row lock) and returns the set as locked.
fn lock_for_change(c: &mut AnyConnection, tenant: &str, set: &FaceSetRef) -> StoreResult<FaceSet> {
    let token = resolve(c, tenant, set)?;
    diesel::update(facesets::table.find(&token))
        .set((facesets::version.eq(facesets::version + 1), facesets::updated_at.eq(now_millis())))
        .execute(c)?;
    load_set(c, &token)
}

fn finish_change(c: &mut AnyConnection, set: &FaceSet, face_count: i64, max_key: i64) -> StoreResult<FaceSet> {
    diesel::update(facesets::table.find(set.token.as_str()))
        .set((facesets::face_count.eq(face_count), facesets::next_key.eq(max_key + 1)))
        .execute(c)?;
    load_set(c, set.token.as_str())
}

/// Gives a face that no set holds any more its original expiry back (72 h from detection by default).
fn release_if_orphaned(c: &mut AnyConnection, tenant: &str, face: &str, ttl: Duration) -> StoreResult<()> {
    let held =
        faceset_faces::table.filter(faceset_faces::tenant_id.eq(tenant)).filter(faceset_faces::face_token.eq(face));
    diesel::update(faces::table.find(face).filter(faces::tenant_id.eq(tenant)).filter(not(exists(held))))
        .set(faces::expires_at.eq((faces::created_at + ttl.num_milliseconds()).nullable()))
        .execute(c)?;
    Ok(())
}

/// Removes one member: logs its key for index catch-up and releases the face if no other set holds it.
fn remove_member(c: &mut AnyConnection, tenant: &str, set: &FaceSet, face: &str, ttl: Duration) -> StoreResult<bool> {
    let member = faceset_faces::table.find((set.token.as_str(), face));
    let Some(key) = member.select(faceset_faces::member_key).first::<i64>(c).optional()? else {
        return Ok(false);
    };
    diesel::delete(member).execute(c)?;
    diesel::insert_into(faceset_removals::table)
        .values((
            faceset_removals::faceset_token.eq(set.token.as_str()),
            faceset_removals::member_key.eq(key),
            faceset_removals::tenant_id.eq(tenant),
            faceset_removals::version.eq(set.version),
        ))
        .execute(c)?;
    release_if_orphaned(c, tenant, face, ttl)?;
    Ok(true)
}

/// Removes every member of a set in a few statements (a set may hold a million faces).
fn remove_all_members(c: &mut AnyConnection, tenant: &str, set: &FaceSet, ttl: Duration) -> StoreResult<usize> {
    diesel::sql_query(
        "INSERT INTO faceset_removals (faceset_token, member_key, tenant_id, version) \
         SELECT faceset_token, member_key, tenant_id, $1 FROM faceset_faces WHERE faceset_token = $2",
    )
    .bind::<BigInt, _>(set.version)
    .bind::<Text, _>(set.token.as_str())
    .execute(c)?;
    diesel::sql_query(
        "UPDATE faces SET expires_at = created_at + $1 WHERE tenant_id = $2 \
         AND token IN (SELECT face_token FROM faceset_faces WHERE faceset_token = $3) \
         AND NOT EXISTS (SELECT 1 FROM faceset_faces f WHERE f.tenant_id = faces.tenant_id \
             AND f.face_token = faces.token AND f.faceset_token <> $3)",
    )
    .bind::<BigInt, _>(ttl.num_milliseconds())
    .bind::<Text, _>(tenant)
    .bind::<Text, _>(set.token.as_str())
    .execute(c)?;
    Ok(diesel::delete(faceset_faces::table.filter(faceset_faces::faceset_token.eq(set.token.as_str()))).execute(c)?)
}

/// Adds one stored face to a locked set. `Ok(None)`: it was already a member.
fn add_member(
    c: &mut AnyConnection,
    tenant: &str,
    set: &FaceSet,
    face: &str,
    key: i64,
    external_image_id: Option<&str>,
    consent: Option<&str>,
) -> StoreResult<Option<i64>> {
    if is_member(c, set, face)? {
        return Ok(None);
    }
    diesel::insert_into(faceset_faces::table)
        .values((
            faceset_faces::faceset_token.eq(set.token.as_str()),
            faceset_faces::face_token.eq(face),
            faceset_faces::tenant_id.eq(tenant),
            faceset_faces::member_key.eq(key),
            faceset_faces::external_image_id.eq(external_image_id),
            faceset_faces::added_at.eq(now_millis()),
            faceset_faces::consent_id.eq(consent),
        ))
        .execute(c)?;
    // Kept by a set: the face no longer expires.
    diesel::update(faces::table.find(face)).set(faces::expires_at.eq(None::<i64>)).execute(c)?;
    Ok(Some(key))
}

fn is_member(c: &mut AnyConnection, set: &FaceSet, face: &str) -> StoreResult<bool> {
    Ok(faceset_faces::table.find((set.token.as_str(), face)).count().get_result::<i64>(c)? > 0)
}

fn live_face_exists(c: &mut AnyConnection, tenant: &str, face: &str) -> StoreResult<bool> {
    Ok(faces::table
        .find(face)
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::expires_at.is_null().or(faces::expires_at.gt(now_millis())))
        .count()
        .get_result::<i64>(c)?
        > 0)
}

/// Deletes a face from every set holding it (logged for the indexes) and from the store, in the caller's
/// transaction. Returns the sets it was removed from.
pub(crate) fn delete_face_everywhere(
    c: &mut AnyConnection,
    tenant: &str,
    face: &str,
    ttl: Duration,
) -> StoreResult<Vec<FaceSetToken>> {
    let sets: Vec<String> = faceset_faces::table
        .filter(faceset_faces::tenant_id.eq(tenant))
        .filter(faceset_faces::face_token.eq(face))
        .select(faceset_faces::faceset_token)
        .load(c)?;
    let mut removed_from = Vec::new();
    for token in sets {
        let Some(token) = FaceSetToken::parse(&token) else { continue };
        let set = lock_for_change(c, tenant, &FaceSetRef::Token(token.clone()))?;
        if remove_member(c, tenant, &set, face, ttl)? {
            finish_change(c, &set, set.face_count - 1, set.max_key)?;
        }
        removed_from.push(token);
    }
    diesel::delete(faces::table.find(face).filter(faces::tenant_id.eq(tenant))).execute(c)?;
    Ok(removed_from)
}

impl TenantData {
    fn tenant_key(&self) -> String {
        self.tenant.id.to_string()
    }

    /// Creates a set. An `outer_id` the tenant already uses is a `Conflict`; so is going over `max_sets`.
    pub async fn create_faceset(&self, new: NewFaceSet, max_sets: i64) -> StoreResult<FaceSet> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let count: i64 = facesets::table.filter(facesets::tenant_id.eq(&tenant)).count().get_result(c)?;
                    if count >= max_sets {
                        return Err(StoreError::LimitReached(format!("a tenant may have at most {max_sets} FaceSets")));
                    }
                    let now = now_millis();
                    let row = FaceSetRow {
                        token: FaceSetToken::generate().to_string(),
                        tenant_id: tenant.clone(),
                        outer_id: new.outer_id.clone(),
                        display_name: new.display_name,
                        tags: serde_json::to_string(&new.tags).map_err(|e| StoreError::Invalid(e.to_string()))?,
                        user_data: new.user_data,
                        face_count: 0,
                        version: 0,
                        next_key: 1,
                        created_at: now,
                        updated_at: now,
                    };
                    diesel::insert_into(facesets::table).values(&row).execute(c).map_err(|e| {
                        conflict_on_unique(e, || {
                            format!("outer_id `{}` is already used", new.outer_id.unwrap_or_default())
                        })
                    })?;
                    row.try_into()
                })
            })
            .await
    }

    pub async fn get_faceset(&self, set: FaceSetRef) -> StoreResult<FaceSet> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                let token = resolve(c, &tenant, &set)?;
                load_set(c, &token)
            })
            .await
    }

    /// The tenant's sets ordered by token, `limit` after the cursor, with every tag in `tags`.
    pub async fn list_facesets(
        &self,
        after: Option<FaceSetToken>,
        offset: i64,
        limit: i64,
        tags: Vec<String>,
    ) -> StoreResult<Vec<FaceSet>> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                let mut query = facesets::table
                    .filter(facesets::tenant_id.eq(tenant))
                    .select(FaceSetRow::as_select())
                    .order(facesets::token.asc())
                    .into_boxed();
                if let Some(after) = after {
                    query = query.filter(facesets::token.gt(after.to_string()));
                }
                for tag in &tags {
                    // Tags are stored as a JSON array; the API forbids `"`, `%`, `_` and `\` in tags.
                    query = query.filter(facesets::tags.like(format!("%{}%", serde_json::json!(tag))));
                }
                query.offset(offset).limit(limit).load(c)?.into_iter().map(FaceSet::try_from).collect()
            })
            .await
    }

    pub async fn update_faceset(&self, set: FaceSetRef, changes: FaceSetChanges) -> StoreResult<FaceSet> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let token = resolve(c, &tenant, &set)?;
                    let target = facesets::table.find(&token);
                    if let Some(outer_id) = &changes.outer_id {
                        diesel::update(target).set(facesets::outer_id.eq(outer_id)).execute(c).map_err(|e| {
                            conflict_on_unique(e, || {
                                format!("outer_id `{}` is already used", outer_id.clone().unwrap_or_default())
                            })
                        })?;
                    }
                    if let Some(name) = &changes.display_name {
                        diesel::update(target).set(facesets::display_name.eq(name)).execute(c)?;
                    }
                    if let Some(tags) = &changes.tags {
                        let tags = serde_json::to_string(tags).map_err(|e| StoreError::Invalid(e.to_string()))?;
                        diesel::update(target).set(facesets::tags.eq(tags)).execute(c)?;
                    }
                    if let Some(user_data) = &changes.user_data {
                        diesel::update(target).set(facesets::user_data.eq(user_data)).execute(c)?;
                    }
                    diesel::update(target).set(facesets::updated_at.eq(now_millis())).execute(c)?;
                    load_set(c, &token)
                })
            })
            .await
    }

    /// Deletes a set and its memberships. With `only_if_empty`, a set holding faces is a `Conflict`. Faces no
    /// other set holds get their original expiry back; `ttl` is the face-token lifetime.
    pub async fn delete_faceset(&self, set: FaceSetRef, only_if_empty: bool, ttl: Duration) -> StoreResult<FaceSet> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let set = lock_for_change(c, &tenant, &set)?;
                    if only_if_empty && set.face_count > 0 {
                        return Err(StoreError::NotEmpty(format!("the FaceSet holds {} faces", set.face_count)));
                    }
                    remove_all_members(c, &tenant, &set, ttl)?;
                    let token = set.token.as_str();
                    diesel::delete(faceset_removals::table.filter(faceset_removals::faceset_token.eq(token)))
                        .execute(c)?;
                    diesel::delete(faceset_tasks::table.filter(faceset_tasks::faceset_token.eq(token))).execute(c)?;
                    diesel::delete(facesets::table.find(token)).execute(c)?;
                    Ok(set)
                })
            })
            .await
    }

    /// Adds stored faces (by token) to a set of at most `capacity` faces. Faces already in the set are left
    /// alone and count neither as added nor as failed.
    pub async fn add_faces(
        &self,
        set: FaceSetRef,
        tokens: Vec<String>,
        capacity: i64,
        consent: Option<ConsentId>,
    ) -> StoreResult<MembershipChange> {
        let tenant = self.tenant_key();
        let consent = consent.map(|c| c.to_string());
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    crate::consents::hold(c, &tenant, consent.as_deref())?;
                    let subject = match &consent {
                        Some(consent) => crate::consents::subject_of(c, &tenant, consent)?,
                        None => None,
                    };
                    let set = lock_for_change(c, &tenant, &set)?;
                    let (mut count, mut max_key, mut added) = (set.face_count, set.max_key, 0);
                    let mut failures = Vec::new();
                    let mut fail = |face_token: &str, reason| {
                        failures.push(Failure { face_token: face_token.to_string(), reason })
                    };
                    for raw in &tokens {
                        let Some(face) = FaceToken::parse(raw.trim()) else {
                            fail(raw, FailureReason::InvalidFaceToken);
                            continue;
                        };
                        if !live_face_exists(c, &tenant, face.as_str())? {
                            fail(raw, FailureReason::InvalidFaceToken);
                        } else if let Some(subject) = &subject
                            && !crate::consents::face_of_subject(c, &tenant, face.as_str(), subject)?
                        {
                            fail(raw, FailureReason::ConsentRequired);
                        } else if count >= capacity {
                            if !is_member(c, &set, face.as_str())? {
                                fail(raw, FailureReason::QuotaExceeded);
                            }
                        } else if let Some(key) =
                            add_member(c, &tenant, &set, face.as_str(), max_key + 1, None, consent.as_deref())?
                        {
                            (max_key, count, added) = (key, count + 1, added + 1);
                        }
                    }
                    let faceset = finish_change(c, &set, count, max_key)?;
                    Ok(MembershipChange { faceset, changed: added, failures })
                })
            })
            .await
    }

    /// Stores a newly detected face and adds it to a set in one transaction, so a crash leaves either both or
    /// neither. With an `external_image_id` the set already holds, nothing is stored and the earlier face is
    /// returned: enrolment can be retried safely.
    pub async fn enrol_face(
        &self,
        set: FaceSetRef,
        mut face: FaceRecord,
        external_image_id: Option<String>,
        capacity: i64,
    ) -> StoreResult<Enrolment> {
        let tenant = self.tenant_key();
        face.expires_at = None;
        let token = face.token.clone();
        let consent = face.consent_id.as_ref().map(ConsentId::to_string);
        let row = FaceRow::new(&tenant, face, &*self.cipher_for_write().await?)?;
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    crate::consents::hold(c, &tenant, consent.as_deref())?;
                    let set = lock_for_change(c, &tenant, &set)?;
                    if let Some(external) = &external_image_id {
                        let earlier = faceset_faces::table
                            .filter(faceset_faces::faceset_token.eq(set.token.as_str()))
                            .filter(faceset_faces::external_image_id.eq(external))
                            .select(faceset_faces::face_token)
                            .first::<String>(c)
                            .optional()?;
                        if let Some(earlier) = earlier.as_deref().and_then(FaceToken::parse) {
                            return Ok(Enrolment { face_token: earlier, already_enrolled: true, faceset: set });
                        }
                    }
                    if set.face_count >= capacity {
                        return Err(StoreError::LimitReached(format!("the FaceSet is full ({capacity} faces)")));
                    }
                    diesel::insert_into(faces::table).values(&row).execute(c)?;
                    let key = set.max_key + 1;
                    add_member(
                        c,
                        &tenant,
                        &set,
                        token.as_str(),
                        key,
                        external_image_id.as_deref(),
                        consent.as_deref(),
                    )?;
                    let faceset = finish_change(c, &set, set.face_count + 1, key)?;
                    Ok(Enrolment { face_token: token, already_enrolled: false, faceset })
                })
            })
            .await
    }

    /// Removes faces from a set. Tokens that are malformed or not in the set are reported as failures.
    pub async fn remove_faces(
        &self,
        set: FaceSetRef,
        which: Selection,
        ttl: Duration,
    ) -> StoreResult<MembershipChange> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let set = lock_for_change(c, &tenant, &set)?;
                    let mut failures = Vec::new();
                    let removed = match which {
                        Selection::All => remove_all_members(c, &tenant, &set, ttl)?,
                        Selection::Tokens(tokens) => {
                            let mut removed = 0;
                            for raw in tokens {
                                let face = FaceToken::parse(raw.trim());
                                match face {
                                    Some(face) if remove_member(c, &tenant, &set, face.as_str(), ttl)? => removed += 1,
                                    _ => failures
                                        .push(Failure { face_token: raw, reason: FailureReason::InvalidFaceToken }),
                                }
                            }
                            removed
                        }
                    };
                    let faceset = finish_change(c, &set, set.face_count - removed as i64, set.max_key)?;
                    Ok(MembershipChange { faceset, changed: removed, failures })
                })
            })
            .await
    }

    /// Members in key order: after `after_key`, or from `offset` (Face++ `start`), `limit` at a time.
    pub async fn list_members(
        &self,
        set: FaceSetRef,
        after_key: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(FaceSet, Vec<Member>)> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                let token = resolve(c, &tenant, &set)?;
                let faceset = load_set(c, &token)?;
                let rows: Vec<MemberRow> = faceset_faces::table
                    .inner_join(faces::table)
                    .filter(faceset_faces::faceset_token.eq(&token))
                    .filter(faceset_faces::member_key.gt(after_key.unwrap_or(0)))
                    .order(faceset_faces::member_key.asc())
                    .select((
                        faceset_faces::member_key,
                        faceset_faces::face_token,
                        faces::user_id,
                        faceset_faces::added_at,
                        faceset_faces::consent_id,
                    ))
                    .offset(offset)
                    .limit(limit)
                    .load(c)?;
                Ok((faceset, members(rows)))
            })
            .await
    }

    /// The members behind index keys (some may have been removed since the index was read).
    pub async fn members_by_key(&self, set: &FaceSetToken, keys: Vec<i64>) -> StoreResult<Vec<Member>> {
        let (tenant, token) = (self.tenant_key(), set.to_string());
        self.db
            .run(move |c| {
                let rows: Vec<MemberRow> = faceset_faces::table
                    .inner_join(faces::table)
                    .filter(faceset_faces::tenant_id.eq(tenant))
                    .filter(faceset_faces::faceset_token.eq(token))
                    .filter(faceset_faces::member_key.eq_any(keys))
                    .select((
                        faceset_faces::member_key,
                        faceset_faces::face_token,
                        faces::user_id,
                        faceset_faces::added_at,
                        faceset_faces::consent_id,
                    ))
                    .load(c)?;
                Ok(members(rows))
            })
            .await
    }

    /// Members' embeddings in key order after `after_key`: how an index loads and catches up.
    pub async fn member_embeddings(
        &self,
        set: &FaceSetToken,
        after_key: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Vec<f32>)>> {
        let (tenant, token) = (self.tenant_key(), set.to_string());
        let rows: Vec<(i64, String, Option<i32>, Vec<u8>)> = self
            .db
            .run(move |c| {
                Ok(faceset_faces::table
                    .inner_join(faces::table)
                    .filter(faceset_faces::tenant_id.eq(tenant))
                    .filter(faceset_faces::faceset_token.eq(token))
                    .filter(faceset_faces::member_key.gt(after_key))
                    .order(faceset_faces::member_key.asc())
                    .select((faceset_faces::member_key, faces::token, faces::key_version, faces::embedding))
                    .limit(limit)
                    .load(c)?)
            })
            .await?;
        let newest = rows.iter().filter_map(|r| r.2).max();
        let cipher = self.cipher(newest).await?;
        rows.into_iter()
            .map(|(key, face, version, bytes)| Ok((key, open_embedding(&cipher, version, &face, &bytes)?)))
            .collect()
    }

    /// Keys removed from a set after `version`.
    pub async fn removed_keys_since(&self, set: &FaceSetToken, version: i64) -> StoreResult<Vec<i64>> {
        let (tenant, token) = (self.tenant_key(), set.to_string());
        self.db
            .run(move |c| {
                Ok(faceset_removals::table
                    .filter(faceset_removals::tenant_id.eq(tenant))
                    .filter(faceset_removals::faceset_token.eq(token))
                    .filter(faceset_removals::version.gt(version))
                    .select(faceset_removals::member_key)
                    .load(c)?)
            })
            .await
    }

    /// The sets holding a face.
    pub async fn facesets_of(&self, face: &FaceToken) -> StoreResult<Vec<FaceSetToken>> {
        let (tenant, face) = (self.tenant_key(), face.to_string());
        self.db
            .run(move |c| {
                let tokens: Vec<String> = faceset_faces::table
                    .filter(faceset_faces::tenant_id.eq(tenant))
                    .filter(faceset_faces::face_token.eq(face))
                    .order(faceset_faces::faceset_token.asc())
                    .select(faceset_faces::faceset_token)
                    .load(c)?;
                Ok(tokens.iter().filter_map(|t| FaceSetToken::parse(t)).collect())
            })
            .await
    }

    /// Sets (or with `None` clears) a face's user id.
    pub async fn set_user_id(&self, face: &FaceToken, user_id: Option<String>) -> StoreResult<()> {
        let (tenant, face) = (self.tenant_key(), face.to_string());
        self.db
            .run(move |c| {
                let updated = diesel::update(
                    faces::table
                        .find(face)
                        .filter(faces::tenant_id.eq(tenant))
                        .filter(faces::expires_at.is_null().or(faces::expires_at.gt(now_millis()))),
                )
                .set(faces::user_id.eq(user_id))
                .execute(c)?;
                if updated == 0 { Err(StoreError::NotFound(Entity::Face)) } else { Ok(()) }
            })
            .await
    }

    /// Deletes a face everywhere: from every set holding it (logged for the indexes) and from the store.
    /// Returns the sets it was removed from.
    pub async fn delete_face(&self, face: &FaceToken, ttl: Duration) -> StoreResult<Vec<FaceSetToken>> {
        let (tenant, face) = (self.tenant_key(), face.to_string());
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    if faces::table.find(&face).filter(faces::tenant_id.eq(&tenant)).count().get_result::<i64>(c)? == 0
                    {
                        return Err(StoreError::NotFound(Entity::Face));
                    }
                    delete_face_everywhere(c, &tenant, &face, ttl)
                })
            })
            .await
    }

    /// Records an asynchronous add or remove, to be run by `run_task`-style workers.
    pub async fn create_task(
        &self,
        set: FaceSetRef,
        kind: TaskKind,
        tokens: Vec<String>,
        consent: Option<ConsentId>,
    ) -> StoreResult<FaceSetTask> {
        let tenant = self.tenant_key();
        self.db
            .run(move |c| {
                let token = resolve(c, &tenant, &set)?;
                let row = TaskRow {
                    id: TaskId::generate().to_string(),
                    tenant_id: tenant,
                    faceset_token: token,
                    kind: kind.as_str().to_string(),
                    face_tokens: serde_json::to_string(&tokens).map_err(|e| StoreError::Invalid(e.to_string()))?,
                    status: "pending".to_string(),
                    result: None,
                    created_at: now_millis(),
                    finished_at: None,
                    consent_id: consent.map(|c| c.to_string()),
                };
                diesel::insert_into(faceset_tasks::table).values(&row).execute(c)?;
                row.try_into()
            })
            .await
    }

    pub async fn get_task(&self, id: &TaskId) -> StoreResult<FaceSetTask> {
        let (tenant, id) = (self.tenant_key(), id.to_string());
        self.db
            .run(move |c| {
                faceset_tasks::table
                    .find(id)
                    .filter(faceset_tasks::tenant_id.eq(tenant))
                    .select(TaskRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::Task))?
                    .try_into()
            })
            .await
    }

    pub async fn finish_task(&self, id: &TaskId, result: serde_json::Value) -> StoreResult<()> {
        let (tenant, id) = (self.tenant_key(), id.to_string());
        self.db
            .run(move |c| {
                diesel::update(faceset_tasks::table.find(id).filter(faceset_tasks::tenant_id.eq(tenant)))
                    .set((
                        faceset_tasks::status.eq("done"),
                        faceset_tasks::result.eq(Some(result.to_string())),
                        faceset_tasks::finished_at.eq(Some(now_millis())),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .await
    }
}

type MemberRow = (i64, String, Option<String>, i64, Option<String>);

fn members(rows: Vec<MemberRow>) -> Vec<Member> {
    rows.into_iter()
        .filter_map(|(key, token, user_id, added_at, consent)| {
            Some(Member {
                key,
                face_token: FaceToken::parse(&token)?,
                user_id,
                added_at: millis_to_time(added_at),
                consent_id: consent.map(ConsentId::from_db),
            })
        })
        .collect()
}

/// Tasks not finished in one region store, oldest first (all tenants: resumed by the server at start-up).
pub(crate) async fn pending_tasks(db: &Database) -> StoreResult<Vec<(TenantId, TaskId)>> {
    db.run(|c| {
        let rows: Vec<(String, String)> = faceset_tasks::table
            .filter(faceset_tasks::status.eq("pending"))
            .order(faceset_tasks::id.asc())
            .select((faceset_tasks::tenant_id, faceset_tasks::id))
            .load(c)?;
        Ok(rows.into_iter().map(|(t, id)| (TenantId::from_db(t), TaskId::from_db(id))).collect())
    })
    .await
}
