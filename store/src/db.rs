//! Connections, pools and migrations for both backends behind one connection type.

use std::path::{Path, PathBuf};

use std::time::Duration;

use deadpool::managed::{Hook, HookError};
use deadpool_diesel::{Manager, Pool, Runtime};
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::{StoreError, StoreResult};

/// One connection type for both backends; queries are written once against the shared schema.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    // PostgreSQL first: the derived `establish` tries variants in order, and libpq rejects a file path at once,
    // whereas SQLite would accept almost any string as a path. We also dispatch on the scheme ourselves.
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed database URL. The scheme decides the backend; a bare path must name an existing SQLite file, so a
/// typo never silently creates an empty database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> StoreResult<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() || path == ":memory:" {
                return Err(StoreError::BadUrl(format!(
                    "`{url}`: give a file path (sqlite://PATH); in-memory databases are not shared between connections"
                )));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(StoreError::BadUrl(format!(
                "`{}`: unsupported scheme; use postgres://USER@HOST/DB or sqlite://PATH",
                redact(url)
            )));
        }
        let path = Path::new(url);
        if path.is_file() {
            Ok(DatabaseUrl::Sqlite(path.to_path_buf()))
        } else {
            Err(StoreError::BadUrl(format!(
                "`{url}` is not an existing SQLite file; write sqlite://{url} to create a new database there, \
                 or postgres://USER@HOST/DB for PostgreSQL"
            )))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL with any password removed, safe for logs and CLI output.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => redact(u),
        }
    }
}

/// Removes the password from `scheme://user:password@host/...`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Opens one connection of the right backend, with the error the driver gave (the derived `establish` hides it).
pub fn connect(url: &DatabaseUrl) -> StoreResult<AnyConnection> {
    match url {
        DatabaseUrl::Postgres(u) => PgConnection::establish(u)
            .map(AnyConnection::Postgresql)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact(u)))),
        DatabaseUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
            }
            let path_str = path.to_str().ok_or_else(|| StoreError::BadUrl("SQLite path is not UTF-8".into()))?;
            let mut conn = SqliteConnection::establish(path_str)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
            configure_sqlite(&mut conn)?;
            // WAL is a property of the file: set once here, not on every pooled connection (switching needs a
            // lock, which would fail while another connection writes).
            diesel::sql_query("PRAGMA journal_mode = WAL").execute(&mut conn)?;
            Ok(AnyConnection::Sqlite(conn))
        }
    }
}

/// Per-connection settings. The busy timeout comes first: it turns brief lock contention into a wait, not an
/// error. FULL sync makes an acknowledged write survive power loss. WAL (set in `connect`) lets readers run
/// beside the writer, so the CLI and a running server can share the files.
fn configure_sqlite(conn: &mut SqliteConnection) -> StoreResult<()> {
    for pragma in ["PRAGMA busy_timeout = 10000", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"] {
        diesel::sql_query(pragma).execute(conn)?;
    }
    Ok(())
}

/// Runs `f` in a transaction that takes the write lock up front. On SQLite a plain (deferred) transaction that
/// reads and then writes fails at once with "database is locked" if another connection committed in between;
/// `BEGIN IMMEDIATE` waits for the lock instead (up to the busy timeout). PostgreSQL needs nothing special.
pub fn write_transaction<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> StoreResult<T>,
) -> StoreResult<T> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if !matches!(conn, AnyConnection::Sqlite(_)) {
        return conn.transaction(f);
    }
    fn sqlite(conn: &mut AnyConnection) -> &mut SqliteConnection {
        match conn {
            AnyConnection::Sqlite(c) => c,
            AnyConnection::Postgresql(_) => unreachable!("checked above"),
        }
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite(conn), "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite(conn))?;
            Ok(value)
        }
        Err(e) => {
            AnsiTransactionManager::rollback_transaction(sqlite(conn))?;
            Err(e)
        }
    }
}

/// Which schema a database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Control,
    Region,
}

const CONTROL_SQLITE: EmbeddedMigrations = embed_migrations!("migrations/control/sqlite");
const CONTROL_POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/control/postgres");
const REGION_SQLITE: EmbeddedMigrations = embed_migrations!("migrations/region/sqlite");
const REGION_POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/region/postgres");

/// Applies pending migrations; returns the versions applied (empty when already up to date).
pub fn migrate(conn: &mut AnyConnection, kind: StoreKind) -> StoreResult<Vec<String>> {
    let applied = match (conn, kind) {
        (AnyConnection::Sqlite(c), StoreKind::Control) => c.run_pending_migrations(CONTROL_SQLITE),
        (AnyConnection::Sqlite(c), StoreKind::Region) => c.run_pending_migrations(REGION_SQLITE),
        (AnyConnection::Postgresql(c), StoreKind::Control) => c.run_pending_migrations(CONTROL_POSTGRES),
        (AnyConnection::Postgresql(c), StoreKind::Region) => c.run_pending_migrations(REGION_POSTGRES),
    }
    .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// A pooled database: one control store or one region store.
#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager<AnyConnection>>,
    url: DatabaseUrl,
}

impl Database {
    /// Connects once (to fail fast with the driver's own message), applies migrations, then builds the pool.
    pub async fn open(url: DatabaseUrl, kind: StoreKind, max_connections: usize) -> StoreResult<(Self, Vec<String>)> {
        let probe_url = url.clone();
        let applied = tokio_blocking(move || {
            let mut conn = connect(&probe_url)?;
            migrate(&mut conn, kind)
        })
        .await?;

        let manager_url = match &url {
            DatabaseUrl::Sqlite(p) => p.to_string_lossy().into_owned(),
            DatabaseUrl::Postgres(u) => u.clone(),
        };
        // Bounded waits: an exhausted pool or an unreachable server becomes an error, never a hang.
        let mut builder = Pool::builder(Manager::<AnyConnection>::new(manager_url, Runtime::Tokio1))
            .max_size(max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)));
        if url.backend() == Backend::Sqlite {
            builder =
                builder.post_create(Hook::async_fn(|conn: &mut deadpool_diesel::Connection<AnyConnection>, _| {
                    Box::pin(async move {
                        let result = conn
                            .interact(|c: &mut AnyConnection| match c {
                                AnyConnection::Sqlite(c) => configure_sqlite(c),
                                AnyConnection::Postgresql(_) => Ok(()),
                            })
                            .await;
                        match result {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(HookError::message(e.to_string())),
                            Err(e) => Err(HookError::message(e.to_string())),
                        }
                    })
                }));
        }
        let pool = builder
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build pool for {}: {e}", url.redacted())))?;
        Ok((Database { pool, url }, applied))
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Runs blocking diesel code on a pooled connection, off the async workers.
    pub async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.pool.get().await?;
        conn.interact(f).await?
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        self.run(|c| {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                .execute(c)
                .map(|_| ())
                .map_err(StoreError::from)
        })
        .await
    }
}

async fn tokio_blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Unavailable(format!("database worker failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u:pw@h:5432/db").unwrap(),
            DatabaseUrl::Postgres("postgres://u:pw@h:5432/db".into())
        );
        assert_eq!(DatabaseUrl::parse("postgresql://h/db").unwrap().backend(), Backend::Postgres);
        assert_eq!(DatabaseUrl::parse("sqlite://data/x.db").unwrap(), DatabaseUrl::Sqlite("data/x.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite:/abs/x.db").unwrap(), DatabaseUrl::Sqlite("/abs/x.db".into()));
    }

    #[test]
    fn a_bare_path_must_be_an_existing_file() {
        let err = DatabaseUrl::parse("/no/such/file.db").unwrap_err().to_string();
        assert!(err.contains("not an existing SQLite file") && err.contains("sqlite:///no/such/file.db"), "{err}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        assert_eq!(DatabaseUrl::parse(path).unwrap(), DatabaseUrl::Sqlite(path.into()));
    }

    #[test]
    fn bad_urls_are_rejected_without_leaking_passwords() {
        let err = DatabaseUrl::parse("mysql://root:hunter2@h/db").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme") && !err.contains("hunter2"), "{err}");
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert_eq!(DatabaseUrl::parse("postgres://u:pw@h/db").unwrap().redacted(), "postgres://u:***@h/db");
    }
}
