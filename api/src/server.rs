//! Builds the actix-web application and runs it.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{App, HttpRequest, HttpServer, middleware, web};
use anyhow::Context;
use faceplate_store::Stores;
use secrecy::ExposeSecret;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use std::sync::Arc;

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::forms::FormLimits;
use crate::image_url::ImageFetcher;
use crate::metrics::Metrics;
use crate::observe::observe;
use crate::routes::{self, KnownRoutes};
use crate::search_index::FaceSetIndexes;
use crate::state::{AppState, operator_token_digest};

/// A server that is listening; await `run` (or spawn it) to serve, use `handle` to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
    pub run: actix_web::dev::Server,
    pub stores: Stores,
    pub background: Background,
}

/// What runs beside the HTTP server.
pub struct Background {
    /// Deletes expired face tokens.
    pub purger: tokio::task::JoinHandle<()>,
    /// Writes index snapshots.
    pub checkpointer: tokio::task::JoinHandle<()>,
    pub indexes: Arc<FaceSetIndexes>,
    /// Reports usage to Stripe, when billing through it is configured.
    pub usage_reporter: Option<tokio::task::JoinHandle<()>>,
    /// Purges tenants whose deletion grace period is over.
    pub tenant_purger: tokio::task::JoinHandle<()>,
    /// Delivers security alerts to tenants' endpoints.
    pub alert_dispatcher: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Aborts the background jobs.
    pub fn abort(&self) {
        self.purger.abort();
        self.checkpointer.abort();
        self.tenant_purger.abort();
        self.alert_dispatcher.abort();
        if let Some(reporter) = &self.usage_reporter {
            reporter.abort();
        }
    }

    /// After the server stopped: stops the background jobs and writes the last index snapshots, so the next
    /// start loads them instead of catching up.
    pub async fn shut_down(&self, stores: &Stores) {
        self.abort();
        let written = self.indexes.checkpoint(stores).await;
        tracing::info!(snapshots = written, "index snapshots written");
    }
}

/// Opens (and migrates) every store, binds the listener and builds the server. Nothing is served until
/// `run` is awaited; start-up errors (a database down, a port taken) surface here.
pub async fn start(config: &Config, listen: SocketAddr) -> anyhow::Result<RunningServer> {
    let server_secret = config.server_secret()?;
    let stores_config = config.stores()?;
    let (stores, report) =
        Stores::open(&stores_config, server_secret.expose_secret().as_bytes()).await.context("opening the stores")?;
    for (store, applied) in &report {
        if !applied.is_empty() {
            tracing::info!(store, migrations = ?applied, "applied migrations");
        }
    }
    let engine_settings = config.engine.settings();
    let engine = tokio::task::spawn_blocking(move || faceplate_engine::Engine::start(engine_settings))
        .await
        .context("starting the inference engine")?
        .context("starting the inference engine")?;
    let form_limits = FormLimits {
        max_image_bytes: config.engine.max_image_bytes,
        max_text_bytes: config.max_json_bytes,
        max_fields: 32,
    };
    let ttl = chrono::Duration::hours(i64::try_from(config.faces.token_ttl_hours).unwrap_or(i64::MAX / 3_600_000));
    let indexes = Arc::new(FaceSetIndexes::new(config.facesets.index_config(), config.index_dir()));
    let metrics = web::Data::new(Metrics::new());
    let limits = crate::limits::Limits::new(&config.limits, metrics.limits())?;
    limits.warm_up().await;
    let state = web::Data::new(AppState {
        stores: stores.clone(),
        default_region: config.default_region()?,
        operator_token_digest: operator_token_digest(config.operator_token.as_ref()),
        engine: Arc::new(engine),
        form_limits,
        image_fetcher: ImageFetcher::new(
            &config.engine.image_url_allowed_hosts,
            config.engine.max_image_bytes,
            Duration::from_secs(config.engine.image_url_timeout_secs),
        )?,
        face_token_ttl: ttl,
        facesets: config.facesets.clone(),
        indexes: indexes.clone(),
        limits,
        metering: crate::metering::Metering::new(config.metering.clone(), metrics.metering()),
        stripe_webhook: config.billing.stripe.as_ref().map(crate::billing::WebhookSettings::from_config),
        deletion_grace: chrono::Duration::days(i64::from(config.privacy.deletion_grace_days)),
        default_plan: config.limits.default_plan.clone(),
        alerts: config.alerts.clone(),
        region_endpoints: config.region_endpoints.clone(),
    });
    resume_faceset_tasks(state.clone()).await;
    let checkpointer = spawn_index_checkpointer(
        indexes.clone(),
        stores.clone(),
        Duration::from_secs(config.facesets.snapshot_interval_secs.max(1)),
    );
    let purger = spawn_face_purger(stores.clone(), Duration::from_secs(config.faces.purge_interval_secs), ttl);
    let tenant_purger =
        spawn_tenant_purger(stores.clone(), indexes.clone(), Duration::from_secs(config.privacy.purge_interval_secs));
    let alert_dispatcher = crate::alerts::spawn_dispatcher(stores.clone(), config.alerts.clone())?;
    let usage_reporter = match &config.billing.stripe {
        Some(stripe) => Some(crate::billing::spawn_usage_reporter(stores.clone(), stripe.clone(), metrics.billing())?),
        None => None,
    };
    let openapi = routes::openapi();
    let known = web::Data::new(KnownRoutes::from_openapi(&openapi));
    let json_limit = config.max_json_bytes;

    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let mut server = HttpServer::new(move || {
        let (app, _) = App::new().into_utoipa_app().configure(routes::configure).split_for_parts();
        app.app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(known.clone())
            .app_data(web::JsonConfig::default().limit(json_limit).error_handler(json_error))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PayloadConfig::default().limit(json_limit))
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
            .default_service(web::to(routes::unmatched))
            .wrap(middleware::from_fn(observe))
    })
    .shutdown_timeout(config.shutdown_timeout_secs)
    .client_request_timeout(Duration::from_secs(30))
    .listen(listener)?;
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let run = server.run();
    Ok(RunningServer {
        addr,
        handle: run.handle(),
        run,
        stores,
        background: Background { purger, checkpointer, indexes, usage_reporter, tenant_purger, alert_dispatcher },
    })
}

/// Deletes expired face tokens, and templates past their tenant's retention, now and then. Failures are logged
/// and retried on the next tick.
fn spawn_face_purger(stores: Stores, every: Duration, ttl: chrono::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match stores.purge_expired_faces().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired face tokens deleted"),
                Err(e) => tracing::warn!(error = %e, "purging expired face tokens failed; will retry"),
            }
            match stores.purge_retained_templates(ttl, 1000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "templates past their tenant's retention deleted"),
                Err(e) => tracing::warn!(error = %e, "purging templates past retention failed; will retry"),
            }
        }
    })
}

/// Purges the tenants whose deletion grace period is over, and finishes purges a crash interrupted (the first
/// pass runs at start-up). Failures are logged and retried on the next tick.
fn spawn_tenant_purger(stores: Stores, indexes: Arc<FaceSetIndexes>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match stores.purge_due().await {
                Ok(purged) => {
                    for certificate in purged {
                        if let Some(id) = faceplate_store::TenantId::parse(&certificate.tenant_id) {
                            indexes.forget_tenant(&id);
                        }
                        tracing::info!(tenant = %certificate.tenant_id, sha256 = ?certificate.sha256,
                            "tenant purged after its deletion grace period");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "purging deleted tenants failed; will retry"),
            }
        }
    })
}

/// Writes snapshots of changed indexes now and then.
fn spawn_index_checkpointer(
    indexes: Arc<FaceSetIndexes>,
    stores: Stores,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let written = indexes.checkpoint(&stores).await;
            if written > 0 {
                tracing::info!(snapshots = written, "index snapshots written");
            }
        }
    })
}

/// Runs again the asynchronous FaceSet tasks a previous run left unfinished (they are idempotent).
async fn resume_faceset_tasks(state: web::Data<AppState>) {
    let pending = match state.stores.pending_faceset_tasks().await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list unfinished FaceSet tasks; they stay pending");
            return;
        }
    };
    for (tenant_id, task_id) in pending {
        let found = async {
            let tenant = state.stores.control().get_tenant(&tenant_id).await?;
            let task = state.stores.tenant_data(&tenant)?.get_task(&task_id).await?;
            Ok::<_, faceplate_store::StoreError>((tenant, task))
        };
        match found.await {
            Ok((tenant, task)) => {
                tracing::info!(task = %task_id, "resuming FaceSet task");
                crate::routes::facesets::spawn_task(state.clone(), tenant, task);
            }
            Err(e) => tracing::warn!(task = %task_id, error = %e, "cannot resume FaceSet task"),
        }
    }
}

/// JSON bodies: wrong content type → 415, too large → 413, anything else → 400 with the parser's reason.
fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::new(ErrorCode::RequestEntityTooLarge, format!("the JSON body must be at most {limit} bytes"))
        }
        JsonPayloadError::Deserialize(e) if e.is_data() && e.to_string().starts_with("missing field") => {
            ApiError::new(ErrorCode::MissingArguments, e.to_string())
        }
        JsonPayloadError::Deserialize(e) => ApiError::bad_arguments(format!("invalid JSON body: {e}")),
        other => ApiError::bad_arguments(format!("unreadable body: {other}")),
    };
    error.into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_arguments(format!("invalid query string: {err}")).into()
}

/// Serves until SIGINT/SIGTERM, then lets in-flight requests finish (up to `shutdown_timeout_secs`).
pub async fn serve(config: &Config, listen: SocketAddr) -> anyhow::Result<()> {
    let server = start(config, listen).await?;
    tracing::info!(addr = %server.addr, docs = %format!("http://{}/docs/", server.addr), "Faceplate is listening");
    let result = server.run.await;
    server.background.shut_down(&server.stores).await;
    result?;
    tracing::info!("stopped");
    Ok(())
}
