//! Routes and the OpenAPI document, built from the same handler list so they cannot drift apart.

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod billing;
pub mod consents;
pub mod export;
pub mod facepp;
pub mod facepp_ocr;
pub mod facepp_sets;
pub mod faces;
pub mod facesets;
pub mod keys;
pub mod ocr;
pub mod ops;
pub mod plates;
pub mod residency;
pub mod transparency;
pub mod types;
pub mod usage;

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::{App, HttpRequest, web};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{AppExt, scope};

use crate::error::{ApiError, ErrorBody, ErrorCode, ErrorEnvelope};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Faceplate API",
        description = "Face and document AI for your applications: a metered, multi-tenant REST API.\n\n\
            Authenticate with `Authorization: Bearer <key>` (tenant endpoints under `/v1`) or the operator token \
            (operator endpoints under `/admin/v1`). Every response carries `X-Request-Id`; every JSON body carries \
            `request_id` and `time_used` (milliseconds). Errors use one envelope with a stable `error.code`.\n\n\
            Each key and each tenant is limited in requests per second and requests in flight, by the tenant's plan \
            and the key's own `rate_limit_qps` and `max_concurrency`. Admitted responses carry `RateLimit-Policy` \
            and `RateLimit` (draft-ietf-httpapi-ratelimit-headers); a refused request gets 429 `RATE_LIMITED` with \
            `Retry-After` (the Face++-compatible API answers 403 `CONCURRENCY_LIMIT_EXCEEDED`, as Face++ does).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "faces", description = "Face detection, comparison and face tokens"),
        (name = "facesets", description = "FaceSets (collections of faces) and 1:N search"),
        (name = "ocr", description = "Text, documents (ID cards, MRZ, bank cards, driving licences) and licence plates"),
        (name = "facepp", description = "Face++-compatible API: change only the base URL of a Face++ client"),
        (name = "keys", description = "The tenant's API keys"),
        (name = "audit", description = "The tenant's audit log"),
        (name = "privacy", description = "Where the tenant's data is stored"),
        (name = "consent", description = "Consent attestations, data subjects' rights and the data processing terms: every biometric call names a consent in `consent_id`"),
        (name = "usage", description = "The tenant's metered usage, its events and its monthly statement"),
        (name = "billing", description = "Stripe's webhook (signed by Stripe, no API key)"),
        (name = "admin", description = "Operator: tenants, their plans and their keys"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "transparency", description = "The public report of legal and government requests for data"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build(),
            )
        };
        components.add_security_scheme(
            "api_key",
            bearer("A tenant API key `fpk_<id>.<secret>`. The listed scopes are what the key must hold."),
        );
        components.add_security_scheme("operator_token", bearer("The operator token from the server configuration."));
        // Face++ clients send the key's two halves as form fields; the query string works too, which is the
        // form OpenAPI can describe.
        components.add_security_scheme(
            "facepp_api_key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "api_key",
                "The key id (fpk_...), as a form field or query parameter",
            ))),
        );
        components.add_security_scheme(
            "stripe_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Stripe-Signature",
                "Stripe's signature of the body under the webhook signing secret: `t=<unix time>,v1=<hex>`",
            ))),
        );
        components.add_security_scheme(
            "facepp_api_secret",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "api_secret",
                "The key secret, as a form field or query parameter",
            ))),
        );
    }
}

/// Registers every API route. The server and the OpenAPI document both come from this one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(ops::healthz)
        .service(ops::readyz)
        .service(ops::metrics)
        .service(billing::stripe_webhook)
        .service(transparency::transparency_report);
    cfg.service(
        scope::scope("/v1")
            .service(keys::get_me)
            .service(faces::detect_faces)
            .service(faces::compare_faces)
            .service(faces::get_face)
            .service(facesets::update_face)
            .service(facesets::delete_face)
            .service(facesets::search)
            .service(facesets::create_faceset)
            .service(facesets::list_facesets)
            .service(facesets::get_faceset)
            .service(facesets::update_faceset)
            .service(facesets::delete_faceset)
            .service(facesets::list_faceset_faces)
            .service(facesets::add_faceset_faces)
            .service(facesets::remove_faceset_faces)
            .service(facesets::remove_faceset_face)
            .service(facesets::enrol_face)
            .service(ocr::read_text)
            .service(ocr::read_id_card)
            .service(ocr::read_mrz)
            .service(ocr::read_bank_card)
            .service(ocr::read_driver_licence)
            .service(plates::recognize_plates)
            .service(keys::list_keys)
            .service(keys::create_key)
            .service(keys::get_key)
            .service(keys::revoke_key)
            .service(keys::rotate_key)
            .service(audit::list_audit_events)
            .service(audit::get_audit_event)
            .service(usage::get_usage)
            .service(usage::list_usage_events)
            .service(usage::get_statement)
            .service(residency::get_residency)
            .service(residency::delete_account)
            .service(residency::restrict_processing)
            .service(residency::resume_processing)
            .service(residency::get_retention)
            .service(residency::put_retention)
            .service(export::export)
            .service(consents::record_consent)
            .service(consents::list_consents)
            .service(consents::get_consent)
            .service(consents::revoke_consent)
            .service(consents::erase_subject)
            .service(consents::restrict_subject_processing)
            .service(consents::resume_subject_processing)
            .service(consents::get_dpa)
            .service(consents::accept_dpa)
            .service(consents::get_consent_settings)
            .service(consents::put_consent_settings)
            .service(alerts::get_alert_endpoint)
            .service(alerts::put_alert_endpoint)
            .service(alerts::delete_alert_endpoint),
    );
    cfg.service(
        scope::scope("/facepp/v3")
            .service(facepp::facepp_detect)
            .service(facepp::facepp_compare)
            .service(facepp::facepp_get_detail)
            .service(facepp_sets::facepp_set_user_id)
            .service(facepp_sets::facepp_search)
            .service(facepp_sets::facepp_faceset_create)
            .service(facepp_sets::facepp_faceset_addface)
            .service(facepp_sets::facepp_faceset_removeface)
            .service(facepp_sets::facepp_faceset_async_addface)
            .service(facepp_sets::facepp_faceset_async_removeface)
            .service(facepp_sets::facepp_faceset_task_status)
            .service(facepp_sets::facepp_faceset_update)
            .service(facepp_sets::facepp_faceset_getdetail)
            .service(facepp_sets::facepp_faceset_delete)
            .service(facepp_sets::facepp_faceset_list),
    );
    cfg.service(
        scope::scope("/cardpp/v1")
            .service(facepp_ocr::facepp_ocr_id_card)
            .service(facepp_ocr::facepp_ocr_bank_card)
            .service(facepp_ocr::facepp_ocr_driver_licence),
    );
    cfg.service(
        scope::scope("/imagepp/v1").service(facepp_ocr::facepp_recognize_text).service(plates::facepp_license_plate),
    );
    cfg.service(
        scope::scope("/admin/v1")
            .service(admin::create_tenant)
            .service(admin::list_tenants)
            .service(admin::get_tenant)
            .service(admin::suspend_tenant)
            .service(admin::resume_tenant)
            .service(admin::delete_tenant)
            .service(admin::cancel_tenant_deletion)
            .service(admin::get_deletion_certificate)
            .service(admin::list_plans)
            .service(admin::put_plan)
            .service(admin::set_tenant_plan)
            .service(usage::get_tenant_usage)
            .service(billing::get_tenant_billing)
            .service(audit::verify_tenant_audit)
            .service(residency::get_tenant_residency)
            .service(transparency::record_legal_request)
            .service(transparency::list_legal_requests)
            .service(transparency::update_legal_request)
            .service(admin::create_tenant_key)
            .service(admin::list_tenant_keys)
            .service(admin::revoke_tenant_key),
    );
}

/// The OpenAPI 3.1 document of this build (what `/openapi.json` serves and `openapi/openapi.json` holds).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(configure).split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    add_standard_errors(&mut doc);
    document_error_codes(&mut doc);
    doc
}

/// Adds the errors every operation of a kind can produce (authentication, bad input, server trouble), so each
/// operation documents all of its errors without repeating them in every handler.
fn add_standard_errors(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let billable = crate::metering::BILLABLE.iter().any(|(_, route, _)| path == route);
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let schemes: Vec<String> = operation
                .security
                .iter()
                .flatten()
                .filter_map(|req| serde_json::to_value(req).ok())
                .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                .flatten()
                .collect();
            let has_body = operation.request_body.is_some();
            let has_input = has_body || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut add = |status: &str, codes: &[ErrorCode]| add_error_response(operation, status, codes);
            if !schemes.is_empty() {
                add("401", &[ErrorCode::AuthenticationError]);
            }
            // Biometric operations also stop while the tenant restricts processing.
            let biometric = crate::auth::BIOMETRIC.iter().any(|(_, route)| path == route);
            let mut forbidden = vec![ErrorCode::AuthorizationError];
            if biometric {
                forbidden.extend([
                    ErrorCode::ProcessingRestricted,
                    ErrorCode::DpaNotAccepted,
                    ErrorCode::ConsentRequired,
                ]);
            }
            if schemes.iter().any(|s| s == "api_key") {
                forbidden.extend([ErrorCode::TenantSuspended, ErrorCode::TenantPendingDeletion]);
                if billable {
                    forbidden.push(ErrorCode::QuotaExceeded);
                    add("409", &[ErrorCode::IdempotencyKeyReused]);
                }
                add("403", &forbidden);
                add("421", &[ErrorCode::WrongRegion]);
                add("429", &[ErrorCode::RateLimited]);
            }
            if schemes.iter().any(|s| s.starts_with("facepp")) {
                forbidden.push(ErrorCode::ConcurrencyLimitExceeded);
                add("403", &forbidden);
                if billable {
                    add("409", &[ErrorCode::IdempotencyKeyReused]);
                }
            }
            if has_input {
                add("400", &[ErrorCode::BadArguments, ErrorCode::MissingArguments]);
            }
            if has_body {
                add("413", &[ErrorCode::RequestEntityTooLarge]);
                add("415", &[ErrorCode::UnsupportedMediaType]);
            }
            add("500", &[ErrorCode::InternalError]);
            add("503", &[ErrorCode::ServiceUnavailable]);
        }
    }
}

fn add_error_response(operation: &mut Operation, status: &str, codes: &[ErrorCode]) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let description =
        codes.iter().map(|c| format!("`{}`: {}", c.as_str(), c.description())).collect::<Vec<_>>().join(" ");
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build())
        .build();
    operation.responses.responses.insert(status.to_string(), response.into());
}

/// Appends the error-code table to the document's description.
fn document_error_codes(doc: &mut utoipa::openapi::OpenApi) {
    let mut table = String::from("\n\n## Error codes\n\n| code | HTTP status | meaning |\n|---|---|---|\n");
    for code in ErrorCode::ALL {
        table.push_str(&format!("| `{}` | {} | {} |\n", code.as_str(), code.status().as_u16(), code.description()));
    }
    let description = doc.info.description.get_or_insert_with(String::new);
    description.push_str(&table);
}

/// The documented routes with their methods, to tell "no such endpoint" (404) from "wrong method" (405).
pub struct KnownRoutes(Vec<(ResourceDef, Vec<Method>)>);

impl KnownRoutes {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                let candidates = [
                    (Method::GET, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                ];
                for (method, present) in candidates {
                    if present {
                        methods.push(method);
                    }
                }
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        KnownRoutes(routes)
    }
}

/// Answers every request no route took: 405 with `Allow` when the path exists under other methods, else 404.
pub async fn unmatched(req: HttpRequest, known: web::Data<KnownRoutes>) -> Result<actix_web::HttpResponse, ApiError> {
    let path = req.path();
    if let Some((_, methods)) = known.0.iter().find(|(def, _)| def.is_match(path)) {
        let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} is not allowed here; use {allow}", req.method()),
        )
        .with_header("allow", allow));
    }
    Err(ApiError::new(ErrorCode::ApiNotFound, format!("no endpoint at {path}")))
}
