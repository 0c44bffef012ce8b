//! The consent rule of biometric operations: each names, in its `consent_id` field, a consent attestation that
//! covers its purpose. Templates it makes record that consent, so revoking it deletes them.

use faceplate_store::{ConsentGrant, FaceRecord, FaceppWithoutConsent, Purpose, Tenant};

use crate::error::{ApiError, ErrorCode};
use crate::forms::Fields;
use crate::state::AppState;

/// The form or JSON field every biometric operation carries.
pub const FIELD: &str = "consent_id";

/// The consent a native biometric call runs under: `consent_id` must allow `purpose`.
pub async fn require(
    state: &AppState,
    tenant: &Tenant,
    fields: &Fields,
    purpose: Purpose,
) -> Result<ConsentGrant, ApiError> {
    require_id(state, tenant, fields.text(FIELD), purpose).await
}

/// Like [`require`], for a `consent_id` read from a JSON body.
pub async fn require_id(
    state: &AppState,
    tenant: &Tenant,
    consent_id: Option<&str>,
    purpose: Purpose,
) -> Result<ConsentGrant, ApiError> {
    let Some(raw) = consent_id.filter(|v| !v.trim().is_empty()) else {
        return Err(ApiError::new(
            ErrorCode::ConsentRequired,
            format!(
                "send consent_id: the id of a consent attestation (POST /v1/consents) covering {}",
                purpose.as_str()
            ),
        ));
    };
    Ok(state.stores.tenant_data(tenant)?.check_consent(raw, purpose).await?)
}

/// The consent a Face++-compatible call runs under: as on the native API, except that a call without
/// `consent_id` runs with none when the tenant allows it (`PUT /v1/settings/consent`).
pub async fn require_facepp(
    state: &AppState,
    tenant: &Tenant,
    fields: &Fields,
    purpose: Purpose,
) -> Result<Option<ConsentGrant>, ApiError> {
    let absent = fields.text(FIELD).is_none_or(|v| v.trim().is_empty());
    if absent && tenant.facepp_without_consent == FaceppWithoutConsent::Allow {
        return Ok(None);
    }
    require(state, tenant, fields, purpose).await.map(Some)
}

/// A stored face used under `grant` (compare or search by token) must be of the consent's data subject: a
/// consent of one person does not license matching another's template. Without a grant (a Face++ call the
/// tenant allows without consent) the face's subject must not be restricted.
pub async fn check_face(
    state: &AppState,
    tenant: &Tenant,
    grant: Option<&ConsentGrant>,
    face: &FaceRecord,
) -> Result<(), ApiError> {
    let Some(made_under) = &face.consent_id else { return Ok(()) };
    let Some(grant) = grant else {
        // A Face++ call the tenant lets run without consent still cannot match a restricted subject's template.
        let data = state.stores.tenant_data(tenant)?;
        if data.restricted_faces(vec![face.token.to_string()]).await?.is_empty() {
            return Ok(());
        }
        return Err(ApiError::new(
            ErrorCode::ProcessingRestricted,
            format!("processing for the data subject of face token {} is restricted", face.token),
        ));
    };
    if *made_under == grant.consent_id {
        return Ok(());
    }
    let subject = state.stores.tenant_data(tenant)?.consent_subject(made_under).await?;
    if subject.as_ref() == Some(&grant.subject_ref) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::ConsentRequired,
        format!("face token {} belongs to another data subject than consent {}", face.token, grant.consent_id),
    ))
}
