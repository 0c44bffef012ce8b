//! The tenant's own API keys (`/v1/keys`, admin scope) and `/v1/me` (any key).

use actix_web::{HttpResponse, delete, get, post, web};
use faceplate_store::KeyId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AdminScope, AnyScope, Caller};
use crate::context::Meta;
use crate::error::{ApiError, ErrorCode};
use crate::routes::types::{
    CreateKeyRequest, IssuedKeyView, KeyView, PageQuery, RotateKeyRequest, TenantView, next_after,
};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub tenant: TenantView,
    pub key: KeyView,
}

#[derive(Serialize, ToSchema)]
pub struct KeyResponse {
    #[serde(flatten)]
    pub meta: Meta,
    pub key: KeyView,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    #[serde(flatten)]
    pub meta: Meta,
    pub keys: Vec<KeyView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// A JSON body that may be left out entirely (then the defaults apply); present but malformed is an error.
pub(crate) fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_arguments(format!("invalid JSON body: {e}")))
}

/// A malformed key id cannot name an existing key: answer as for any unknown key.
pub(crate) fn parse_key_id(raw: &str) -> Result<KeyId, ApiError> {
    KeyId::parse(raw).ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, "API key not found"))
}

/// Who am I: the tenant and key behind the credentials.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = [])),
    responses((status = 200, description = "The caller's tenant and key", body = MeResponse))
)]
#[get("/me")]
pub async fn get_me(caller: Caller<AnyScope>) -> HttpResponse {
    HttpResponse::Ok().json(MeResponse {
        meta: caller.ctx.meta(),
        tenant: caller.tenant.into(),
        key: caller.key.into(),
    })
}

/// List the tenant's keys (revoked ones included), oldest first.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    params(PageQuery),
    responses((status = 200, description = "A page of keys", body = KeyList))
)]
#[get("/keys")]
pub async fn list_keys(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit()?;
    let keys = state.stores.control().list_keys(&caller.tenant.id, page.after(KeyId::parse)?, limit).await?;
    let next_after = next_after(&keys, limit, |k| k.id.to_string());
    Ok(HttpResponse::Ok().json(KeyList {
        meta: caller.ctx.meta(),
        keys: keys.into_iter().map(KeyView::from).collect(),
        next_after,
    }))
}

/// Create a key. The response holds the secret: the only time it is shown.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The new key and its secret", body = IssuedKeyView),
        (status = 409, description = "CONFLICT: the tenant holds the maximum number of keys", body = crate::error::ErrorEnvelope),
    )
)]
#[post("/keys")]
pub async fn create_key(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().into_new_key()?;
    let issued = state.stores.create_key(&caller.tenant, new, &caller.provenance()).await?;
    Ok(HttpResponse::Created().json(IssuedKeyView::new(caller.ctx.meta(), issued)))
}

/// Get one key.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    params(("key_id" = String, Path, description = "`fpk_...`")),
    responses(
        (status = 200, description = "The key", body = KeyResponse),
        (status = 404, description = "KEY_NOT_FOUND", body = crate::error::ErrorEnvelope),
    )
)]
#[get("/keys/{key_id}")]
pub async fn get_key(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = state.stores.control().get_key(&caller.tenant.id, &parse_key_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(KeyResponse { meta: caller.ctx.meta(), key: key.into() }))
}

/// Revoke a key. It stops working at once; the record stays for the audit trail. Idempotent.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    params(("key_id" = String, Path, description = "`fpk_...`")),
    responses(
        (status = 200, description = "The revoked key", body = KeyResponse),
        (status = 404, description = "KEY_NOT_FOUND", body = crate::error::ErrorEnvelope),
    )
)]
#[delete("/keys/{key_id}")]
pub async fn revoke_key(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = state.stores.revoke_key(&caller.tenant, &parse_key_id(&path)?, &caller.provenance()).await?;
    Ok(HttpResponse::Ok().json(KeyResponse { meta: caller.ctx.meta(), key: key.into() }))
}

/// Rotate a key's secret. The key id (and Face++ `api_key`) stays; the old secret works for the grace period.
#[utoipa::path(
    tag = "keys",
    security(("api_key" = ["admin"])),
    params(("key_id" = String, Path, description = "`fpk_...`")),
    request_body(content = RotateKeyRequest, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "The key and its new secret", body = IssuedKeyView),
        (status = 404, description = "KEY_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "CONFLICT: the key is revoked", body = crate::error::ErrorEnvelope),
    )
)]
#[post("/keys/{key_id}/rotate")]
pub async fn rotate_key(
    caller: Caller<AdminScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let grace = optional_json::<RotateKeyRequest>(&body)?.grace()?;
    let issued = state.stores.rotate_key(&caller.tenant, &parse_key_id(&path)?, grace, &caller.provenance()).await?;
    Ok(HttpResponse::Ok().json(IssuedKeyView::new(caller.ctx.meta(), issued)))
}
