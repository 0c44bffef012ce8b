//! The `faceplate` command line: run the server, migrate, and manage tenants and keys directly in the stores
//! (no server needed). Human output by default, `--json` for scripts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use faceplate_store::{
    ApiKey, IssuedKey, KeyId, NewKey, Provenance, RegionName, Scope, Stores, Tenant, TenantId, TenantStatus,
};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::{CONFIG_FILE_ENV, Config};

/// Prints a line to stdout. A closed pipe (`faceplate tenant list | head`) ends the program quietly instead of
/// panicking, as command-line tools are expected to.
macro_rules! emit {
    ($($arg:tt)*) => {
        write_line(format_args!($($arg)*))
    };
}

fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}").and_then(|_| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

#[derive(Parser)]
#[command(
    name = "faceplate",
    version,
    about = "Faceplate: a self-hosted face and document AI API platform",
    long_about = "Faceplate: a self-hosted face and document AI API platform.\n\n\
        Quick start on the embedded default (SQLite files under ./data):\n  \
        faceplate serve\n  \
        faceplate tenant create --name acme\n  \
        faceplate key create --tenant acme --name ci --scope admin --scope face\n  \
        curl -H 'Authorization: Bearer <token>' http://127.0.0.1:8080/v1/me"
)]
pub struct Cli {
    /// Configuration file (TOML). FACEPLATE_* environment variables override it.
    #[arg(long, short, global = true, env = CONFIG_FILE_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP API server (applies pending migrations first).
    Serve {
        /// Address to listen on (overrides `listen` in the config), e.g. 0.0.0.0:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Apply pending database migrations to the control store and every region store.
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the OpenAPI 3.1 document of this build.
    Openapi,
    /// Manage tenants (client businesses).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The plans tenants can be on.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Work with FaceSets through the API of a running server.
    #[command(subcommand)]
    Faceset(FacesetCommand),
    /// The tenants' audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Re-check every seal of the audit chains: exits non-zero if an entry was edited, removed or inserted.
    Verify {
        /// Only this tenant (id or name); default: every tenant whose home region this configuration serves.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum FacesetCommand {
    /// Enrol every image under a directory into a FaceSet (resumable: re-run it after an interruption).
    Import(crate::import::ImportArgs),
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// List the plans and their limits.
    List,
    /// Create a plan or replace its terms, from JSON: the body of `PUT /admin/v1/plans/{plan_id}`.
    Put {
        /// Plan id: 1-64 characters of a-z, 0-9, `_` and `-`.
        plan: String,
        /// JSON file with the plan's terms (`-` for standard input).
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, then print it with secrets hidden.
    Check,
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant. Its home region is fixed from now on.
    Create {
        /// Unique display name, e.g. acme.
        #[arg(long)]
        name: String,
        /// Home region (default: the configured default region).
        #[arg(long)]
        region: Option<String>,
        /// Plan (default: `limits.default_plan`, `free` unless configured); see `faceplate plan list`.
        #[arg(long)]
        plan: Option<String>,
    },
    /// Put a tenant on another plan (its rate and in-flight limits change at once).
    SetPlan {
        tenant: String,
        /// Plan id, e.g. pay_as_you_go.
        #[arg(long)]
        plan: String,
    },
    /// Rotate a tenant's data key: a new key encrypts every template again, and the old key is destroyed.
    RotateKey { tenant: String },
    /// List tenants, oldest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Continue after this tenant id.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one tenant.
    Show { tenant: String },
    /// Suspend a tenant: its keys are refused until it is resumed.
    Suspend { tenant: String },
    /// Resume a suspended tenant.
    Resume { tenant: String },
    /// Delete a tenant, its keys and everything it owns in its region. Irreversible.
    Delete {
        tenant: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints its secret (the only time it is shown).
    Create(CreateKeyArgs),
    /// List a tenant's keys.
    List {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key: it stops working at once.
    Revoke {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// The key id (fpk_...).
        key: String,
    },
    /// Issue a new secret for a key; the old one works for the grace period.
    Rotate {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// The key id (fpk_...).
        key: String,
        /// Seconds the old secret keeps working (max 604800).
        #[arg(long, default_value_t = 0)]
        grace_seconds: i64,
    },
}

#[derive(Args)]
pub struct CreateKeyArgs {
    /// Tenant id or name.
    #[arg(long)]
    tenant: String,
    /// What the key is for, e.g. ci.
    #[arg(long)]
    name: String,
    /// A scope to grant (repeat): admin, face, ocr, plate, object. Default: every product scope, not admin.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Seconds until the key expires.
    #[arg(long, value_name = "SECONDS")]
    expires_in: Option<i64>,
    /// Requests per second for this key (overrides the plan).
    #[arg(long)]
    rate_limit_qps: Option<i32>,
    /// Concurrent requests for this key (overrides the plan).
    #[arg(long)]
    max_concurrency: Option<i32>,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Serve { listen } => {
            crate::telemetry::init(&config.log);
            crate::server::serve(&config, listen.unwrap_or(config.listen)).await
        }
        Command::Config(ConfigCommand::Check) => {
            let view = config.redacted()?;
            if out.json {
                emit!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                emit!("configuration is valid\n{}", serde_json::to_string_pretty(&view)?);
            }
            Ok(())
        }
        Command::Faceset(FacesetCommand::Import(args)) => {
            let report = crate::import::run(args).await?;
            if out.json {
                emit!("{}", serde_json::to_string(&report)?);
            } else {
                emit!(
                    "FaceSet {}: {} added, {} already enrolled, skipped {} without a face and {} with several faces, \
                     {} failed ({} files, {} done by an earlier run); the set now holds {} faces",
                    report.faceset_token,
                    report.added,
                    report.already_enrolled,
                    report.skipped_no_face,
                    report.skipped_multiple_faces,
                    report.failed,
                    report.files,
                    report.skipped_done_earlier,
                    report.face_count
                );
            }
            if report.failed > 0 {
                bail!("{} images failed; run the command again to retry them", report.failed);
            }
            Ok(())
        }
        Command::Openapi => {
            emit!("{}", crate::routes::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Migrate => {
            let (_, report) = open_stores(&config).await?;
            if out.json {
                let applied: serde_json::Map<_, _> = report.into_iter().map(|(s, v)| (s, json!(v))).collect();
                emit!("{}", json!({ "applied": applied }));
            } else {
                for (store, applied) in report {
                    if applied.is_empty() {
                        emit!("{store}: up to date");
                    } else {
                        emit!("{store}: applied {}", applied.join(", "));
                    }
                }
            }
            Ok(())
        }
        Command::Tenant(command) => {
            let (stores, _) = open_stores(&config).await?;
            tenant_command(&stores, &config, command, &out).await
        }
        Command::Key(command) => {
            let (stores, _) = open_stores(&config).await?;
            key_command(&stores, command, &out).await
        }
        Command::Plan(PlanCommand::List) => {
            let (stores, _) = open_stores(&config).await?;
            let plans = stores.control().list_plans().await?;
            if out.json {
                emit!("{}", serde_json::to_string(&plans)?);
            } else {
                emit!(
                    "{:<16} {:>10} {:>12} {:>8} {:>10}  NAME",
                    "ID",
                    "TENANT QPS",
                    "TENANT FLIGHT",
                    "KEY QPS",
                    "KEY FLIGHT"
                );
                for p in &plans {
                    emit!(
                        "{:<16} {:>10} {:>12} {:>8} {:>10}  {}",
                        p.id,
                        p.tenant_qps,
                        p.tenant_concurrency,
                        p.key_qps,
                        p.key_concurrency,
                        p.name
                    );
                }
            }
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { tenant }) => {
            let (stores, _) = open_stores(&config).await?;
            verify_audit(&stores, tenant.as_deref(), &out).await
        }
        Command::Plan(PlanCommand::Put { plan, file }) => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let spec: crate::routes::admin::PlanSpec =
                serde_json::from_str(&text).with_context(|| format!("{} is not a plan", file.display()))?;
            let plan = spec.into_plan(plan).map_err(|e| anyhow::anyhow!(e.message))?;
            let (stores, _) = open_stores(&config).await?;
            let plan = stores.control().put_plan(plan).await?;
            if out.json {
                emit!("{}", serde_json::to_string(&plan)?);
            } else {
                emit!("plan {} stored ({} products)", plan.id, plan.products.len());
            }
            Ok(())
        }
    }
}

async fn open_stores(config: &Config) -> anyhow::Result<(Stores, faceplate_store::MigrationReport)> {
    let secret = config.server_secret()?;
    Stores::open(&config.stores()?, secret.expose_secret().as_bytes()).await.context("opening the stores")
}

async fn tenant_command(stores: &Stores, config: &Config, command: TenantCommand, out: &Output) -> anyhow::Result<()> {
    let by = Provenance::cli();
    match command {
        TenantCommand::Create { name, region, plan } => {
            let region = match region {
                Some(r) => RegionName::parse(&r)?,
                None => config.default_region()?,
            };
            let plan = plan.unwrap_or_else(|| config.limits.default_plan.clone());
            let tenant = stores.create_tenant(&name, &region, &plan, &by).await?;
            out.tenant(&tenant, "Created tenant");
        }
        TenantCommand::SetPlan { tenant, plan } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            let tenant = stores.set_tenant_plan(&tenant.id, &plan, &by).await?;
            out.tenant(&tenant, "Tenant");
        }
        TenantCommand::RotateKey { tenant } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            let rotation = stores.tenant_data(&tenant)?.rotate_data_key(&by).await?;
            if out.json {
                emit!("{}", serde_json::to_string(&rotation)?);
            } else {
                emit!(
                    "tenant {}: data key version {}; {} templates re-encrypted; versions destroyed: {:?}",
                    tenant.name,
                    rotation.new_version,
                    rotation.reencrypted,
                    rotation.destroyed
                );
            }
        }
        TenantCommand::List { limit, after } => {
            if !(1..=1000).contains(&limit) {
                bail!("--limit must be between 1 and 1000");
            }
            let after = after.map(|a| TenantId::parse(&a).context("--after must be a tenant id")).transpose()?;
            let tenants = stores.control().list_tenants(after, limit).await?;
            if out.json {
                emit!("{}", serde_json::to_string(&tenants.iter().map(tenant_json).collect::<Vec<_>>())?);
            } else if tenants.is_empty() {
                emit!("no tenants");
            } else {
                emit!("{:<40} {:<10} {:<12} NAME", "ID", "STATUS", "REGION");
                for t in &tenants {
                    emit!("{:<40} {:<10} {:<12} {}", t.id, t.status.as_str(), t.home_region, t.name);
                }
            }
        }
        TenantCommand::Show { tenant } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            out.tenant(&tenant, "Tenant");
        }
        TenantCommand::Suspend { tenant } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            let tenant = stores.set_tenant_status(&tenant.id, TenantStatus::Suspended, &by).await?;
            out.tenant(&tenant, "Suspended tenant");
        }
        TenantCommand::Resume { tenant } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            let tenant = stores.set_tenant_status(&tenant.id, TenantStatus::Active, &by).await?;
            out.tenant(&tenant, "Resumed tenant");
        }
        TenantCommand::Delete { tenant, yes } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            if !yes {
                bail!(
                    "deleting tenant {} ({}) removes its keys and all its data; add --yes to confirm",
                    tenant.name,
                    tenant.id
                );
            }
            let certificate = stores.delete_tenant(&tenant.id).await?;
            let removed: i64 = certificate.rows_deleted.values().sum();
            // This node's index snapshots of the tenant's FaceSets (a running server drops its copies when it
            // next checks them).
            match std::fs::remove_dir_all(config.index_dir().join(tenant.id.as_str())) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    eprintln!("warning: cannot delete index snapshots: {e}")
                }
                _ => {}
            }
            if out.json {
                emit!("{}", json!({"deleted": tenant.id, "region_rows_deleted": removed, "certificate": certificate}));
            } else {
                emit!(
                    "Deleted tenant {} ({}) and {removed} rows in region {}",
                    tenant.name,
                    tenant.id,
                    tenant.home_region
                );
            }
        }
    }
    Ok(())
}

async fn key_command(stores: &Stores, command: KeyCommand, out: &Output) -> anyhow::Result<()> {
    let by = Provenance::cli();
    match command {
        KeyCommand::Create(args) => {
            let tenant = stores.control().find_tenant(&args.tenant).await?;
            let scopes = if args.scopes.is_empty() {
                Scope::PRODUCTS.to_vec()
            } else {
                args.scopes.iter().map(|s| s.parse::<Scope>()).collect::<Result<Vec<_>, _>>()?
            };
            let expires_at = match args.expires_in {
                Some(s) if s > 0 => Some(faceplate_store::control::expiry_after(s)),
                Some(_) => bail!("--expires-in must be positive"),
                None => None,
            };
            let new = NewKey {
                name: args.name,
                scopes,
                expires_at,
                rate_limit_qps: args.rate_limit_qps,
                max_concurrency: args.max_concurrency,
            };
            let issued = stores.create_key(&tenant, new, &by).await?;
            out.issued(&tenant, &issued, "Created key");
        }
        KeyCommand::List { tenant } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            let keys =
                stores.control().list_keys(&tenant.id, None, faceplate_store::control::MAX_KEYS_PER_TENANT).await?;
            if out.json {
                emit!("{}", serde_json::to_string(&keys.iter().map(key_json).collect::<Vec<_>>())?);
            } else if keys.is_empty() {
                emit!("tenant {} has no keys", tenant.name);
            } else {
                emit!("{:<42} {:<8} {:<28} NAME", "ID", "STATUS", "SCOPES");
                for k in &keys {
                    emit!("{:<42} {:<8} {:<28} {}", k.id, key_status(k), scopes_text(&k.scopes), k.name);
                }
            }
        }
        KeyCommand::Revoke { tenant, key } => {
            let tenant = stores.control().find_tenant(&tenant).await?;
            let id = KeyId::parse(&key).context("not a key id (fpk_...)")?;
            let key = stores.revoke_key(&tenant, &id, &by).await?;
            if out.json {
                emit!("{}", key_json(&key));
            } else {
                emit!("Revoked key {} ({})", key.id, key.name);
            }
        }
        KeyCommand::Rotate { tenant, key, grace_seconds } => {
            if !(0..=604_800).contains(&grace_seconds) {
                bail!("--grace-seconds must be between 0 and 604800");
            }
            let tenant = stores.control().find_tenant(&tenant).await?;
            let id = KeyId::parse(&key).context("not a key id (fpk_...)")?;
            let issued = stores.rotate_key(&tenant, &id, chrono::Duration::seconds(grace_seconds), &by).await?;
            out.issued(&tenant, &issued, "Rotated key");
        }
    }
    Ok(())
}

struct Output {
    json: bool,
}

impl Output {
    fn tenant(&self, t: &Tenant, heading: &str) {
        if self.json {
            emit!("{}", tenant_json(t));
        } else {
            emit!(
                "{heading} {} ({})\n  status:      {}\n  home region: {}\n  plan:        {}\n  created:     {}",
                t.name,
                t.id,
                t.status.as_str(),
                t.home_region,
                t.plan_id,
                t.created_at.to_rfc3339()
            );
        }
    }

    fn issued(&self, tenant: &Tenant, issued: &IssuedKey, heading: &str) {
        let key = &issued.key;
        if self.json {
            let mut value = key_json(key);
            value["token"] = json!(issued.bearer_token());
            value["api_key"] = json!(key.id);
            value["api_secret"] = json!(issued.secret);
            emit!("{value}");
        } else {
            emit!(
                "{heading} {} for tenant {} ({})\n  name:       {}\n  scopes:     {}\n  expires:    {}\n  token:      {}\n  api_key:    {}\n  api_secret: {}\n\
                 Use `Authorization: Bearer <token>`, or the Face++ form fields api_key and api_secret.\n\
                 The secret is shown only now: store it safely.",
                key.id,
                tenant.name,
                tenant.id,
                key.name,
                scopes_text(&key.scopes),
                key.expires_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()),
                issued.bearer_token(),
                key.id,
                issued.secret,
            );
        }
    }
}

fn tenant_json(t: &Tenant) -> serde_json::Value {
    json!({
        "id": t.id, "name": t.name, "home_region": t.home_region, "status": t.status, "plan": t.plan_id,
        "created_at": t.created_at,
    })
}

fn key_json(k: &ApiKey) -> serde_json::Value {
    json!({
        "id": k.id, "tenant_id": k.tenant_id, "name": k.name, "scopes": k.scopes, "status": key_status(k),
        "expires_at": k.expires_at, "revoked_at": k.revoked_at, "last_used_at": k.last_used_at,
        "created_at": k.created_at, "rate_limit_qps": k.rate_limit_qps, "max_concurrency": k.max_concurrency,
    })
}

fn key_status(k: &ApiKey) -> &'static str {
    if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// `faceplate audit verify`: one line per tenant (or JSON), then an error if any chain is broken.
async fn verify_audit(stores: &Stores, tenant: Option<&str>, out: &Output) -> anyhow::Result<()> {
    let tenants = match tenant {
        Some(t) => vec![stores.control().find_tenant(t).await?],
        None => {
            let (mut all, mut after) = (Vec::new(), None);
            loop {
                let page = stores.control().list_tenants(after, 500).await?;
                after = page.last().map(|t| t.id.clone());
                let done = page.len() < 500;
                all.extend(page);
                if done {
                    break;
                }
            }
            all
        }
    };
    let (mut results, mut broken) = (Vec::new(), 0);
    for tenant in &tenants {
        let data = match stores.tenant_data(tenant) {
            Ok(data) => data,
            Err(faceplate_store::StoreError::RegionNotConfigured(region)) => {
                if !out.json {
                    emit!("{} ({}): skipped, region {region} is not configured here", tenant.name, tenant.id);
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let verification = data.verify_audit().await?;
        if !verification.intact() {
            broken += 1;
        }
        if !out.json {
            if verification.intact() {
                emit!("{} ({}): {} entries, intact", tenant.name, tenant.id, verification.entries);
            } else {
                emit!("{} ({}): {} entries, BROKEN", tenant.name, tenant.id, verification.entries);
                for p in &verification.problems {
                    let at = p.seq.map(|s| format!(" at entry {s}")).unwrap_or_default();
                    let id = p.entry_id.as_deref().map(|i| format!(" ({i})")).unwrap_or_default();
                    emit!("  {}{at}{id}: {}", p.kind, p.detail);
                }
            }
        }
        results.push(verification);
    }
    if out.json {
        emit!("{}", serde_json::to_string(&results)?);
    }
    if broken > 0 {
        anyhow::bail!("the audit log of {broken} tenant(s) was altered");
    }
    Ok(())
}
