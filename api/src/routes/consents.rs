//! Consent attestations (`/v1/consents`), data subjects' rights (`/v1/subjects/...`), the data processing terms
//! (`/v1/dpa`) and the tenant's consent settings. Every biometric operation names a consent in `consent_id`.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use faceplate_store::{
    Consent, ConsentId, DeletionReceipt, FaceppWithoutConsent, LegalBasis, NewConsent, Purpose, Tenant,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AdminScope, AnyScope, Caller, FaceScope};
use crate::context::{Meta, RequestContext};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::routes::facesets::refresh_sets;
use crate::routes::types::next_after;
use crate::state::AppState;

/// The version of the data processing terms (`docs/dpa.md`) tenants must have accepted.
pub const DPA_VERSION: &str = "2026-12-07";
const DPA_TEXT: &str = include_str!("../../../docs/dpa.md");

/// Records a consent attestation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// Your own pseudonymous reference for the person (1-128 characters); never a name.
    pub subject_ref: String,
    /// What the person agreed to: `face_detection`, `face_compare`, `face_search`, `face_enrolment`.
    pub purposes: Vec<String>,
    /// `explicit_consent` (GDPR Art. 9(2)(a)), `written_release` (BIPA), `employment_obligation`,
    /// `substantial_public_interest` or `vital_interests`.
    pub legal_basis: String,
    /// Where it was collected: ISO 3166 code such as `DE`, `US-IL`, or `EU`.
    pub jurisdiction: String,
    pub collected_at: DateTime<Utc>,
    /// When it lapses; null: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the evidence you keep: the signed form, the recording.
    pub evidence_sha256: String,
    /// Who collected it: a person, a kiosk, an app.
    pub collected_by: String,
}

/// What a revocation or erasure deleted.
#[derive(Serialize, ToSchema)]
pub struct ReceiptView {
    pub subject_ref: String,
    pub consents_revoked: Vec<String>,
    pub revoked_at: DateTime<Utc>,
    /// Templates (face tokens) deleted, FaceSet members among them.
    pub faces_deleted: usize,
    /// FaceSet entries removed (from sets and their search indexes).
    pub faceset_entries_deleted: usize,
    pub facesets: Vec<String>,
    /// SHA-256 of the deleted face tokens, sorted, one per line.
    pub deleted_sha256: String,
}

impl From<DeletionReceipt> for ReceiptView {
    fn from(r: DeletionReceipt) -> Self {
        ReceiptView {
            subject_ref: r.subject_ref,
            consents_revoked: r.consents_revoked.iter().map(ToString::to_string).collect(),
            revoked_at: r.revoked_at,
            faces_deleted: r.faces_deleted,
            faceset_entries_deleted: r.faceset_entries_deleted,
            facesets: r.facesets.iter().map(ToString::to_string).collect(),
            deleted_sha256: r.deleted_sha256,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConsentView {
    /// `cns_...`: send it as `consent_id` with biometric calls.
    pub consent_id: String,
    pub subject_ref: String,
    pub purposes: Vec<String>,
    pub legal_basis: String,
    pub jurisdiction: String,
    pub collected_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub evidence_sha256: String,
    pub collected_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the revocation deleted.
    pub receipt: Option<ReceiptView>,
}

impl From<Consent> for ConsentView {
    fn from(c: Consent) -> Self {
        ConsentView {
            consent_id: c.consent_id.to_string(),
            subject_ref: c.subject_ref,
            purposes: c.purposes.iter().map(|p| p.as_str().to_string()).collect(),
            legal_basis: c.legal_basis.as_str().to_string(),
            jurisdiction: c.jurisdiction,
            collected_at: c.collected_at,
            expires_at: c.expires_at,
            evidence_sha256: c.evidence_sha256,
            collected_by: c.collected_by,
            created_at: c.created_at,
            revoked_at: c.revoked_at,
            receipt: c.receipt.map(ReceiptView::from),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConsentResponse {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub consent: ConsentView,
}

#[derive(Serialize, ToSchema)]
pub struct ConsentList {
    #[serde(flatten)]
    pub meta: Meta,
    pub consents: Vec<ConsentView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReceiptResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub receipt: ReceiptView,
}

fn parse_consent(raw: &str) -> Result<ConsentId, ApiError> {
    ConsentId::parse(raw).ok_or_else(|| ApiError::new(ErrorCode::ConsentNotFound, "consent not found"))
}

fn parse_request(body: ConsentRequest) -> Result<NewConsent, ApiError> {
    let purposes = body
        .purposes
        .iter()
        .map(|p| {
            Purpose::parse(p).ok_or_else(|| {
                let all: Vec<_> = Purpose::ALL.iter().map(|p| p.as_str()).collect();
                ApiError::bad_arguments(format!("purposes: `{p}` is not one of {}", all.join(", ")))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let legal_basis = LegalBasis::parse(&body.legal_basis).ok_or_else(|| {
        let all: Vec<_> = LegalBasis::ALL.iter().map(|b| b.as_str()).collect();
        ApiError::bad_arguments(format!("legal_basis: one of {}", all.join(", ")))
    })?;
    Ok(NewConsent {
        subject_ref: body.subject_ref,
        purposes,
        legal_basis,
        jurisdiction: body.jurisdiction,
        collected_at: body.collected_at,
        expires_at: body.expires_at,
        evidence_sha256: body.evidence_sha256,
        collected_by: body.collected_by,
    })
}

/// Record a consent attestation; its id goes in the `consent_id` of biometric calls. Audited.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["face"])),
    request_body = ConsentRequest,
    responses((status = 201, description = "Recorded", body = ConsentResponse))
)]
#[post("/consents")]
pub async fn record_consent(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    body: web::Json<ConsentRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = parse_request(body.into_inner())?;
    let consent = state.stores.tenant_data(&caller.tenant)?.record_consent(new, &caller.provenance()).await?;
    Ok(HttpResponse::Created().json(ConsentResponse { meta: caller.ctx.meta(), consent: consent.into() }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsentQuery {
    /// Only this data subject's consents.
    pub subject_ref: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Return consents after this id.
    pub after: Option<String>,
}

/// List consent attestations, oldest first.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["face"])),
    params(ConsentQuery),
    responses((status = 200, description = "A page of consents", body = ConsentList))
)]
#[get("/consents")]
pub async fn list_consents(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    query: web::Query<ConsentQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = crate::routes::types::PageQuery { limit: query.limit, after: query.after };
    let limit = page.limit()?;
    let after = page.after(ConsentId::parse)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let consents = data.list_consents(query.subject_ref, after, limit).await?;
    let next_after = next_after(&consents, limit, |c| c.consent_id.to_string());
    Ok(HttpResponse::Ok().json(ConsentList {
        meta: caller.ctx.meta(),
        consents: consents.into_iter().map(ConsentView::from).collect(),
        next_after,
    }))
}

/// Get one consent attestation, with its revocation receipt once revoked.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["face"])),
    params(("consent_id" = String, Path, description = "`cns_...`")),
    responses(
        (status = 200, description = "The consent", body = ConsentResponse),
        (status = 404, description = "`CONSENT_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[get("/consents/{consent_id}")]
pub async fn get_consent(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let consent = state.stores.tenant_data(&caller.tenant)?.get_consent(&parse_consent(&path)?).await?;
    Ok(HttpResponse::Ok().json(ConsentResponse { meta: caller.ctx.meta(), consent: consent.into() }))
}

/// Revoke a consent: every template made under it (face tokens, FaceSet entries, index entries) is deleted in
/// this request, and the receipt says what. Audited.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["face"])),
    params(("consent_id" = String, Path, description = "`cns_...`")),
    responses(
        (status = 200, description = "Revoked; what was deleted", body = ReceiptResponse),
        (status = 404, description = "`CONSENT_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`CONFLICT`: already revoked", body = ErrorEnvelope),
    )
)]
#[post("/consents/{consent_id}/revoke")]
pub async fn revoke_consent(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_consent(&path)?;
    let data = state.stores.tenant_data(&caller.tenant)?;
    let receipt = data.revoke_consent(&id, state.token_ttl(&caller.tenant), &caller.provenance()).await?;
    refresh_sets(&state, &data, &receipt.facesets).await;
    Ok(HttpResponse::Ok().json(ReceiptResponse { meta: caller.ctx.meta(), receipt: receipt.into() }))
}

/// Names a data subject by your reference.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRequest {
    pub subject_ref: String,
}

#[derive(Serialize, ToSchema)]
pub struct SubjectRestrictionResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub subject_ref: String,
    pub processing_restricted: bool,
}

/// Erase a data subject (GDPR Art. 17): revoke all its consents and delete every template made under them, in
/// every FaceSet and index. Audited; the receipt says what was deleted.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["face"])),
    request_body = SubjectRequest,
    responses(
        (status = 200, description = "Erased; what was deleted", body = ReceiptResponse),
        (status = 404, description = "`SUBJECT_NOT_FOUND`: no consent names this subject", body = ErrorEnvelope),
    )
)]
#[post("/subjects/erase")]
pub async fn erase_subject(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    body: web::Json<SubjectRequest>,
) -> Result<HttpResponse, ApiError> {
    let data = state.stores.tenant_data(&caller.tenant)?;
    let receipt =
        data.erase_subject(body.subject_ref.trim(), state.token_ttl(&caller.tenant), &caller.provenance()).await?;
    refresh_sets(&state, &data, &receipt.facesets).await;
    Ok(HttpResponse::Ok().json(ReceiptResponse { meta: caller.ctx.meta(), receipt: receipt.into() }))
}

async fn restrict_subject(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    body: SubjectRequest,
    restricted: bool,
) -> Result<HttpResponse, ApiError> {
    let subject_ref = body.subject_ref.trim().to_string();
    let data = state.stores.tenant_data(&caller.tenant)?;
    let processing_restricted = data.restrict_subject(&subject_ref, restricted, &caller.provenance()).await?;
    Ok(HttpResponse::Ok().json(SubjectRestrictionResponse {
        meta: caller.ctx.meta(),
        subject_ref,
        processing_restricted,
    }))
}

/// Restrict processing for one data subject (GDPR Art. 18): its consents are refused with
/// `PROCESSING_RESTRICTED` and its templates are left out of search results; nothing is deleted. Audited.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["face"])),
    request_body = SubjectRequest,
    responses(
        (status = 200, description = "Restricted", body = SubjectRestrictionResponse),
        (status = 404, description = "`SUBJECT_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[post("/subjects/restrict")]
pub async fn restrict_subject_processing(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    body: web::Json<SubjectRequest>,
) -> Result<HttpResponse, ApiError> {
    restrict_subject(caller, state, body.into_inner(), true).await
}

/// Lift a data subject's restriction. Audited.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["face"])),
    request_body = SubjectRequest,
    responses(
        (status = 200, description = "Resumed", body = SubjectRestrictionResponse),
        (status = 404, description = "`SUBJECT_NOT_FOUND`", body = ErrorEnvelope),
    )
)]
#[post("/subjects/resume")]
pub async fn resume_subject_processing(
    caller: Caller<FaceScope>,
    state: web::Data<AppState>,
    body: web::Json<SubjectRequest>,
) -> Result<HttpResponse, ApiError> {
    restrict_subject(caller, state, body.into_inner(), false).await
}

/// The data processing terms and the tenant's acceptance.
#[derive(Serialize, ToSchema)]
pub struct DpaResponse {
    #[serde(flatten)]
    pub meta: Meta,
    /// The version that must be accepted before biometric calls.
    pub current_version: String,
    /// SHA-256 (hex) of `text`.
    pub sha256: String,
    /// The terms, in Markdown.
    pub text: String,
    pub accepted_version: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// The tenant accepted the current version: biometric calls may run.
    pub accepted: bool,
}

fn dpa_sha256() -> String {
    hex::encode(Sha256::digest(DPA_TEXT.as_bytes()))
}

fn dpa(tenant: &Tenant, ctx: &RequestContext) -> HttpResponse {
    HttpResponse::Ok().json(DpaResponse {
        meta: ctx.meta(),
        current_version: DPA_VERSION.to_string(),
        sha256: dpa_sha256(),
        text: DPA_TEXT.to_string(),
        accepted_version: tenant.dpa_version.clone(),
        accepted_at: tenant.dpa_accepted_at,
        accepted: tenant.dpa_version.as_deref() == Some(DPA_VERSION),
    })
}

/// The data processing terms, and which version the tenant accepted.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = [])),
    responses((status = 200, description = "The terms", body = DpaResponse))
)]
#[get("/dpa")]
pub async fn get_dpa(caller: Caller<AnyScope>) -> HttpResponse {
    dpa(&caller.tenant, &caller.ctx)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DpaAcceptance {
    /// The version read from `GET /v1/dpa`; only the current version can be accepted.
    pub version: String,
}

/// Accept the data processing terms (the current version). Audited, so every acceptance is kept.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["admin"])),
    request_body = DpaAcceptance,
    responses((status = 200, description = "Accepted", body = DpaResponse))
)]
#[post("/dpa/acceptance")]
pub async fn accept_dpa(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    body: web::Json<DpaAcceptance>,
) -> Result<HttpResponse, ApiError> {
    if body.version != DPA_VERSION {
        return Err(ApiError::bad_arguments(format!(
            "version: the current terms are version {DPA_VERSION}; read them with GET /v1/dpa"
        )));
    }
    let tenant = state.stores.accept_dpa(&caller.tenant.id, DPA_VERSION, &dpa_sha256(), &caller.provenance()).await?;
    Ok(dpa(&tenant, &caller.ctx))
}

/// Is the tenant's acceptance of the terms current? (Checked before every biometric operation.)
pub fn dpa_accepted(tenant: &Tenant) -> bool {
    tenant.dpa_version.as_deref() == Some(DPA_VERSION)
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentSettings {
    /// Face++-compatible biometric calls without a `consent_id`: `refuse` (403 CONSENT_REQUIRED, the default) or
    /// `allow` (they run, and their templates record no consent: you attest consent yourself).
    pub facepp_without_consent: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConsentSettingsResponse {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub settings: ConsentSettings,
}

fn settings(tenant: &Tenant, ctx: &RequestContext) -> HttpResponse {
    HttpResponse::Ok().json(ConsentSettingsResponse {
        meta: ctx.meta(),
        settings: ConsentSettings { facepp_without_consent: tenant.facepp_without_consent.as_str().to_string() },
    })
}

/// The tenant's consent settings.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "Settings", body = ConsentSettingsResponse))
)]
#[get("/settings/consent")]
pub async fn get_consent_settings(caller: Caller<AdminScope>) -> HttpResponse {
    settings(&caller.tenant, &caller.ctx)
}

/// Set the tenant's consent settings. Audited.
#[utoipa::path(
    tag = "consent",
    security(("api_key" = ["admin"])),
    request_body = ConsentSettings,
    responses((status = 200, description = "Settings", body = ConsentSettingsResponse))
)]
#[put("/settings/consent")]
pub async fn put_consent_settings(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    body: web::Json<ConsentSettings>,
) -> Result<HttpResponse, ApiError> {
    let setting = FaceppWithoutConsent::parse(&body.facepp_without_consent)
        .ok_or_else(|| ApiError::bad_arguments("facepp_without_consent: `refuse` or `allow`"))?;
    let tenant = state.stores.set_facepp_without_consent(&caller.tenant.id, setting, &caller.provenance()).await?;
    Ok(settings(&tenant, &caller.ctx))
}
