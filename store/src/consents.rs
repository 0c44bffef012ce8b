//! Consent attestations: a tenant's record that a data subject agreed to biometric processing for named
//! purposes, under a legal basis, with a hash of the evidence. Every template names the consent it was made
//! under; revoking the consent (or erasing the subject) deletes those templates everywhere in one transaction
//! and leaves a receipt. A restricted subject's consents cannot be used and its templates are not matched.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{AnyConnection, write_transaction};
use crate::error::{Entity, StoreError, StoreResult};
use crate::model::{ConsentId, FaceSetToken, Provenance, millis_to_time, now_millis};
use crate::schema::region::{consents, faces, faceset_faces, restricted_subjects};
use crate::tenant_data::TenantData;

/// What a subject agreed to. Each biometric operation needs the purpose it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Finding faces in an image and keeping their templates as face tokens.
    FaceDetection,
    /// Comparing two faces (1:1 verification).
    FaceCompare,
    /// Searching FaceSets for a face (1:N identification).
    FaceSearch,
    /// Keeping a template in a FaceSet to be found by searches.
    FaceEnrolment,
}

impl Purpose {
    pub const ALL: [Purpose; 4] =
        [Purpose::FaceDetection, Purpose::FaceCompare, Purpose::FaceSearch, Purpose::FaceEnrolment];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::FaceDetection => "face_detection",
            Purpose::FaceCompare => "face_compare",
            Purpose::FaceSearch => "face_search",
            Purpose::FaceEnrolment => "face_enrolment",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Why the processing is lawful: GDPR Art. 9(2) grounds for biometric data, and BIPA's written release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// GDPR Art. 9(2)(a).
    ExplicitConsent,
    /// BIPA (740 ILCS 14/15(b)) and similar laws: a signed written release.
    WrittenRelease,
    /// GDPR Art. 9(2)(b): obligations of employment law.
    EmploymentObligation,
    /// GDPR Art. 9(2)(g).
    SubstantialPublicInterest,
    /// GDPR Art. 9(2)(c).
    VitalInterests,
}

impl LegalBasis {
    pub const ALL: [LegalBasis; 5] = [
        LegalBasis::ExplicitConsent,
        LegalBasis::WrittenRelease,
        LegalBasis::EmploymentObligation,
        LegalBasis::SubstantialPublicInterest,
        LegalBasis::VitalInterests,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::ExplicitConsent => "explicit_consent",
            LegalBasis::WrittenRelease => "written_release",
            LegalBasis::EmploymentObligation => "employment_obligation",
            LegalBasis::SubstantialPublicInterest => "substantial_public_interest",
            LegalBasis::VitalInterests => "vital_interests",
        }
    }

    pub fn parse(s: &str) -> Option<LegalBasis> {
        LegalBasis::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// An attestation as the tenant records it.
#[derive(Debug, Clone)]
pub struct NewConsent {
    /// The tenant's own pseudonymous reference for the person (never a name we could read).
    pub subject_ref: String,
    pub purposes: Vec<Purpose>,
    pub legal_basis: LegalBasis,
    /// Where it was collected: an ISO 3166-1 alpha-2 code, optionally with a subdivision (`US-IL`), or `EU`.
    pub jurisdiction: String,
    pub collected_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// SHA-256 of the evidence the tenant keeps (a signed form, a recording), lower-case hex.
    pub evidence_sha256: String,
    /// Who collected it (a person, a kiosk, an app).
    pub collected_by: String,
}

/// How far ahead of the server's clock `collected_at` may be (client clocks drift).
const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

impl NewConsent {
    fn validate(&self) -> StoreResult<()> {
        let invalid = |m: &str| Err(StoreError::Invalid(m.to_string()));
        let printable =
            |s: &str, max: usize| !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control);
        if !printable(&self.subject_ref, 128) {
            return invalid("subject_ref must be 1 to 128 printable characters");
        }
        if self.purposes.is_empty() {
            return invalid("purposes must name at least one purpose");
        }
        let j = self.jurisdiction.as_bytes();
        let country = j.len() >= 2 && j[..2].iter().all(u8::is_ascii_uppercase);
        let subdivision = j.len() == 2
            || (j.len() >= 4
                && j.len() <= 6
                && j[2] == b'-'
                && j[3..].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        if !(country && subdivision) {
            return invalid("jurisdiction must be an ISO 3166 code such as `DE`, `US-IL` or `EU`");
        }
        if self.collected_at.timestamp_millis() > now_millis() + CLOCK_SKEW_MS {
            return invalid("collected_at is in the future");
        }
        if self.expires_at.is_some_and(|e| e <= self.collected_at) {
            return invalid("expires_at must be after collected_at");
        }
        if self.evidence_sha256.len() != 64
            || !self.evidence_sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return invalid("evidence_sha256 must be 64 lower-case hex digits");
        }
        if !printable(&self.collected_by, 200) {
            return invalid("collected_by must be 1 to 200 printable characters");
        }
        Ok(())
    }
}

/// A recorded attestation.
#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    pub consent_id: ConsentId,
    pub subject_ref: String,
    pub purposes: Vec<Purpose>,
    pub legal_basis: LegalBasis,
    pub jurisdiction: String,
    pub collected_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub evidence_sha256: String,
    pub collected_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the revocation deleted.
    pub receipt: Option<DeletionReceipt>,
}

/// What revoking consents deleted, kept with each revoked consent and in the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeletionReceipt {
    pub subject_ref: String,
    pub consents_revoked: Vec<ConsentId>,
    pub revoked_at: DateTime<Utc>,
    /// Templates (face tokens) deleted, FaceSet entries among them included.
    pub faces_deleted: usize,
    /// FaceSet memberships removed.
    pub faceset_entries_deleted: usize,
    /// The sets they were removed from.
    pub facesets: Vec<FaceSetToken>,
    /// SHA-256 of the deleted face tokens, sorted, one per line: lets the tenant check a list it kept.
    pub deleted_sha256: String,
}

/// A consent that may be used for an operation now.
#[derive(Debug, Clone)]
pub struct ConsentGrant {
    pub consent_id: ConsentId,
    pub subject_ref: String,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
struct ConsentRow {
    id: String,
    tenant_id: String,
    subject_ref: String,
    purposes: String,
    legal_basis: String,
    jurisdiction: String,
    collected_at: i64,
    expires_at: Option<i64>,
    evidence_sha256: String,
    collected_by: String,
    created_at: i64,
    revoked_at: Option<i64>,
    receipt: Option<String>,
}

impl TryFrom<ConsentRow> for Consent {
    type Error = StoreError;
    fn try_from(r: ConsentRow) -> StoreResult<Consent> {
        let corrupt = |what: &str| StoreError::Invalid(format!("corrupt consent {}: {what}", r.id));
        Ok(Consent {
            purposes: r
                .purposes
                .split(',')
                .map(|p| Purpose::parse(p).ok_or_else(|| corrupt("purpose")))
                .collect::<Result<_, _>>()?,
            legal_basis: LegalBasis::parse(&r.legal_basis).ok_or_else(|| corrupt("legal basis"))?,
            receipt: r.receipt.as_deref().map(serde_json::from_str).transpose().map_err(|_| corrupt("receipt"))?,
            subject_ref: r.subject_ref,
            jurisdiction: r.jurisdiction,
            collected_at: millis_to_time(r.collected_at),
            expires_at: r.expires_at.map(millis_to_time),
            evidence_sha256: r.evidence_sha256,
            collected_by: r.collected_by,
            created_at: millis_to_time(r.created_at),
            revoked_at: r.revoked_at.map(millis_to_time),
            consent_id: ConsentId::from_db(r.id),
        })
    }
}

/// In a transaction that stores templates under `consent`: fails unless the consent is still unrevoked, and
/// holds it (a row lock on PostgreSQL; SQLite has one writer) so a revocation cannot slip in before the commit
/// and miss the new templates.
pub(crate) fn hold(c: &mut AnyConnection, tenant: &str, consent: Option<&str>) -> StoreResult<()> {
    let Some(consent) = consent else { return Ok(()) };
    let held = diesel::update(
        consents::table.find(consent).filter(consents::tenant_id.eq(tenant)).filter(consents::revoked_at.is_null()),
    )
    .set(consents::revoked_at.eq(None::<i64>))
    .execute(c)?;
    if held == 0 {
        return Err(StoreError::ConsentRefused(format!("consent {consent} has been revoked")));
    }
    Ok(())
}

/// The data subject of one of the tenant's consents, if it exists.
pub(crate) fn subject_of(c: &mut AnyConnection, tenant: &str, consent: &str) -> StoreResult<Option<String>> {
    Ok(consents::table
        .find(consent)
        .filter(consents::tenant_id.eq(tenant))
        .select(consents::subject_ref)
        .first::<String>(c)
        .optional()?)
}

/// Whether a stored face may be used for `subject`: it was made under a consent of that subject (or under none:
/// a Face++ call the tenant attested itself, or a template from before consents).
pub(crate) fn face_of_subject(c: &mut AnyConnection, tenant: &str, face: &str, subject: &str) -> StoreResult<bool> {
    let made_under: Option<String> =
        faces::table.find(face).filter(faces::tenant_id.eq(tenant)).select(faces::consent_id).first(c)?;
    let Some(made_under) = made_under else { return Ok(true) };
    Ok(subject_of(c, tenant, &made_under)?.as_deref() == Some(subject))
}

/// Revokes the given consents and deletes every template made under them, in the caller's transaction.
fn revoke_in(
    c: &mut AnyConnection,
    tenant: &str,
    subject_ref: &str,
    ids: &[String],
    ttl: Duration,
) -> StoreResult<DeletionReceipt> {
    let now = now_millis();
    diesel::update(consents::table.filter(consents::tenant_id.eq(tenant)).filter(consents::id.eq_any(ids)))
        .set(consents::revoked_at.eq(now))
        .execute(c)?;
    let mut tokens: BTreeSet<String> = faces::table
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::consent_id.eq_any(ids))
        .select(faces::token)
        .load::<String>(c)?
        .into_iter()
        .collect();
    tokens.extend(
        faceset_faces::table
            .filter(faceset_faces::tenant_id.eq(tenant))
            .filter(faceset_faces::consent_id.eq_any(ids))
            .select(faceset_faces::face_token)
            .load::<String>(c)?,
    );
    let (mut entries, mut sets) = (0, BTreeSet::new());
    for token in &tokens {
        let removed = crate::facesets::delete_face_everywhere(c, tenant, token, ttl)?;
        entries += removed.len();
        sets.extend(removed);
    }
    let mut hash = Sha256::new();
    for token in &tokens {
        hash.update(token.as_bytes());
        hash.update(b"\n");
    }
    let receipt = DeletionReceipt {
        subject_ref: subject_ref.to_string(),
        consents_revoked: ids.iter().cloned().map(ConsentId::from_db).collect(),
        revoked_at: millis_to_time(now),
        faces_deleted: tokens.len(),
        faceset_entries_deleted: entries,
        facesets: sets.into_iter().collect(),
        deleted_sha256: hex::encode(hash.finalize()),
    };
    let json = serde_json::to_string(&receipt).map_err(|e| StoreError::Invalid(e.to_string()))?;
    diesel::update(consents::table.filter(consents::tenant_id.eq(tenant)).filter(consents::id.eq_any(ids)))
        .set(consents::receipt.eq(json))
        .execute(c)?;
    Ok(receipt)
}

fn subject_restricted(c: &mut AnyConnection, tenant: &str, subject_ref: &str) -> StoreResult<bool> {
    Ok(restricted_subjects::table.find((tenant, subject_ref)).count().get_result::<i64>(c)? > 0)
}

impl TenantData {
    /// Records an attestation. Audited as `consent.recorded`.
    pub async fn record_consent(&self, new: NewConsent, by: &Provenance) -> StoreResult<Consent> {
        new.validate()?;
        let mut purposes = new.purposes.clone();
        purposes.sort();
        purposes.dedup();
        let row = ConsentRow {
            id: ConsentId::generate().to_string(),
            tenant_id: self.tenant.id.to_string(),
            subject_ref: new.subject_ref.trim().to_string(),
            purposes: purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
            legal_basis: new.legal_basis.as_str().to_string(),
            jurisdiction: new.jurisdiction,
            collected_at: new.collected_at.timestamp_millis(),
            expires_at: new.expires_at.map(|t| t.timestamp_millis()),
            evidence_sha256: new.evidence_sha256,
            collected_by: new.collected_by.trim().to_string(),
            created_at: now_millis(),
            revoked_at: None,
            receipt: None,
        };
        let consent: Consent = self
            .db
            .run(move |c| {
                diesel::insert_into(consents::table).values(&row).execute(c)?;
                row.try_into()
            })
            .await?;
        let detail = serde_json::json!({
            "subject_ref": consent.subject_ref,
            "purposes": consent.purposes,
            "legal_basis": consent.legal_basis,
            "jurisdiction": consent.jurisdiction,
            "evidence_sha256": consent.evidence_sha256,
        });
        self.record_audit(by, "consent.recorded", Some(consent.consent_id.as_str()), detail).await?;
        Ok(consent)
    }

    pub async fn get_consent(&self, id: &ConsentId) -> StoreResult<Consent> {
        let (tenant, id) = (self.tenant.id.to_string(), id.to_string());
        self.db
            .run(move |c| {
                consents::table
                    .find(id)
                    .filter(consents::tenant_id.eq(tenant))
                    .select(ConsentRow::as_select())
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound(Entity::Consent))?
                    .try_into()
            })
            .await
    }

    /// Consents oldest first, `limit` after the cursor; of one subject when given.
    pub async fn list_consents(
        &self,
        subject_ref: Option<String>,
        after: Option<ConsentId>,
        limit: i64,
    ) -> StoreResult<Vec<Consent>> {
        let tenant = self.tenant.id.to_string();
        self.db
            .run(move |c| {
                let mut query = consents::table
                    .filter(consents::tenant_id.eq(tenant))
                    .select(ConsentRow::as_select())
                    .order(consents::id.asc())
                    .limit(limit)
                    .into_boxed();
                if let Some(subject) = subject_ref {
                    query = query.filter(consents::subject_ref.eq(subject));
                }
                if let Some(after) = after {
                    query = query.filter(consents::id.gt(after.to_string()));
                }
                query.load(c)?.into_iter().map(Consent::try_from).collect()
            })
            .await
    }

    /// The consent named by a caller, if it may be used for `purpose` now: it exists for this tenant, is not
    /// revoked or expired, covers the purpose, and its subject is not restricted.
    pub async fn check_consent(&self, raw: &str, purpose: Purpose) -> StoreResult<ConsentGrant> {
        let refuse = |m: String| Err(StoreError::ConsentRefused(m));
        let Some(id) = ConsentId::parse(raw.trim()) else {
            let shown: String = raw.chars().take(64).collect();
            return refuse(format!("`{shown}` is not a consent id (they look like cns_…)"));
        };
        // The consent and whether its subject is restricted, in one round trip to the store.
        let (tenant, key) = (self.tenant.id.to_string(), id.to_string());
        let found = self
            .db
            .run(move |c| {
                let row = consents::table
                    .find(&key)
                    .filter(consents::tenant_id.eq(&tenant))
                    .select(ConsentRow::as_select())
                    .first(c)
                    .optional()?;
                let Some(row) = row else { return Ok(None) };
                let restricted = subject_restricted(c, &tenant, &row.subject_ref)?;
                Ok(Some((Consent::try_from(row)?, restricted)))
            })
            .await?;
        let Some((consent, restricted)) = found else {
            return refuse(format!("consent {id} does not exist"));
        };
        if let Some(at) = consent.revoked_at {
            return refuse(format!("consent {id} was revoked at {}", at.to_rfc3339()));
        }
        if let Some(at) = consent.expires_at.filter(|at| *at <= Utc::now()) {
            return refuse(format!("consent {id} expired at {}", at.to_rfc3339()));
        }
        if !consent.purposes.contains(&purpose) {
            let covered: Vec<_> = consent.purposes.iter().map(|p| p.as_str()).collect();
            return refuse(format!(
                "consent {id} does not cover {} (it covers {})",
                purpose.as_str(),
                covered.join(", ")
            ));
        }
        if restricted {
            return Err(StoreError::Restricted(format!(
                "processing for subject `{}` is restricted; resume it with POST /v1/subjects/resume",
                consent.subject_ref
            )));
        }
        Ok(ConsentGrant { consent_id: consent.consent_id, subject_ref: consent.subject_ref })
    }

    /// The data subject of one of the tenant's consents, if it exists.
    pub async fn consent_subject(&self, id: &ConsentId) -> StoreResult<Option<String>> {
        let (tenant, id) = (self.tenant.id.to_string(), id.to_string());
        self.db.run(move |c| subject_of(c, &tenant, &id)).await
    }

    /// Revokes one consent and deletes every template made under it (face tokens, FaceSet entries; the
    /// indexes drop them on their next catch-up, before any search answers). Audited as `consent.revoked`.
    pub async fn revoke_consent(&self, id: &ConsentId, ttl: Duration, by: &Provenance) -> StoreResult<DeletionReceipt> {
        let (tenant, key) = (self.tenant.id.to_string(), id.to_string());
        let receipt = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let row = consents::table
                        .find(&key)
                        .filter(consents::tenant_id.eq(&tenant))
                        .select(ConsentRow::as_select())
                        .first(c)
                        .optional()?
                        .ok_or(StoreError::NotFound(Entity::Consent))?;
                    if row.revoked_at.is_some() {
                        return Err(StoreError::Conflict(format!("consent {key} is already revoked")));
                    }
                    revoke_in(c, &tenant, &row.subject_ref, std::slice::from_ref(&key), ttl)
                })
            })
            .await?;
        self.record_audit(by, "consent.revoked", Some(id.as_str()), serde_json::json!(receipt)).await?;
        Ok(receipt)
    }

    /// Erases a data subject (GDPR Art. 17): revokes all its consents and deletes every template made under
    /// them. Audited as `subject.erased`. A subject with no consents is `NotFound`.
    pub async fn erase_subject(
        &self,
        subject_ref: &str,
        ttl: Duration,
        by: &Provenance,
    ) -> StoreResult<DeletionReceipt> {
        let (tenant, subject) = (self.tenant.id.to_string(), subject_ref.to_string());
        let receipt = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let ids: Vec<String> = consents::table
                        .filter(consents::tenant_id.eq(&tenant))
                        .filter(consents::subject_ref.eq(&subject))
                        .select(consents::id)
                        .load(c)?;
                    if ids.is_empty() {
                        return Err(StoreError::NotFound(Entity::Subject));
                    }
                    let receipt = revoke_in(c, &tenant, &subject, &ids, ttl)?;
                    diesel::delete(restricted_subjects::table.find((&tenant, &subject))).execute(c)?;
                    Ok(receipt)
                })
            })
            .await?;
        self.record_audit(by, "subject.erased", None, serde_json::json!(receipt)).await?;
        Ok(receipt)
    }

    /// Restricts (or resumes) processing for one subject (GDPR Art. 18): its consents cannot be used and its
    /// templates are left out of search results; nothing is deleted. Audited.
    pub async fn restrict_subject(&self, subject_ref: &str, restricted: bool, by: &Provenance) -> StoreResult<bool> {
        let (tenant, subject) = (self.tenant.id.to_string(), subject_ref.to_string());
        let changed = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let known = consents::table
                        .filter(consents::tenant_id.eq(&tenant))
                        .filter(consents::subject_ref.eq(&subject))
                        .count()
                        .get_result::<i64>(c)?;
                    if known == 0 {
                        return Err(StoreError::NotFound(Entity::Subject));
                    }
                    let was = subject_restricted(c, &tenant, &subject)?;
                    if restricted && !was {
                        diesel::insert_into(restricted_subjects::table)
                            .values((
                                restricted_subjects::tenant_id.eq(&tenant),
                                restricted_subjects::subject_ref.eq(&subject),
                                restricted_subjects::restricted_at.eq(now_millis()),
                            ))
                            .execute(c)?;
                    } else if !restricted && was {
                        diesel::delete(restricted_subjects::table.find((&tenant, &subject))).execute(c)?;
                    }
                    Ok(restricted != was)
                })
            })
            .await?;
        if changed {
            let action = if restricted { "subject.processing_restricted" } else { "subject.processing_resumed" };
            self.record_audit(by, action, None, serde_json::json!({"subject_ref": subject_ref})).await?;
        }
        Ok(restricted)
    }

    /// Of the given face tokens, those whose subject's processing is restricted (left out of search results).
    pub async fn restricted_faces(&self, tokens: Vec<String>) -> StoreResult<BTreeSet<String>> {
        let tenant = self.tenant.id.to_string();
        self.db
            .run(move |c| {
                let restricted = restricted_subjects::table
                    .filter(restricted_subjects::tenant_id.eq(&tenant))
                    .select(restricted_subjects::subject_ref);
                let under_restricted = consents::table
                    .filter(consents::tenant_id.eq(&tenant))
                    .filter(consents::subject_ref.eq_any(restricted))
                    .select(consents::id.nullable());
                let faces: Vec<String> = faces::table
                    .filter(faces::tenant_id.eq(&tenant))
                    .filter(faces::token.eq_any(&tokens))
                    .filter(faces::consent_id.eq_any(under_restricted))
                    .select(faces::token)
                    .load(c)?;
                let members: Vec<String> = faceset_faces::table
                    .filter(faceset_faces::tenant_id.eq(&tenant))
                    .filter(faceset_faces::face_token.eq_any(&tokens))
                    .filter(faceset_faces::consent_id.eq_any(under_restricted))
                    .select(faceset_faces::face_token)
                    .load(c)?;
                Ok(faces.into_iter().chain(members).collect())
            })
            .await
    }
}
