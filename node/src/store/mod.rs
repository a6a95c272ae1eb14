//! Metadata in PostgreSQL or SQLite through sqlx's `Any` driver: one set of queries, two migration
//! sets (the DDL differs only in key generation).
//!
//! **Invariant:** transactions commit in id order. On PostgreSQL every change takes an exclusive
//! lock on `transactions` before drawing its id, so `max(id)` never overtakes a commit in flight
//! and a snapshot `≤ max(id)` never changes afterwards.

pub mod claims;
pub mod cluster;
pub mod head_read;
pub mod health;
pub mod history;
pub mod model;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use claims::ContentClaim;
pub use head_read::HeadConnection;
pub use history::{AddedFile, TransactionSummary};
pub use model::*;
pub use tokens::{Revoked, TokenRecord};

/// Errors from the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    /// The connection failed while the commit was under way: the change may or may not have
    /// been committed, and only reading the database again can tell.
    #[error("the database connection was lost during a commit; its outcome is unknown: {0}")]
    CommitOutcomeUnknown(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether the database is away (unreachable, shutting down, read-only) rather than the
    /// request being wrong: the caller should answer "retry later".
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Db(e) => health::is_unavailable(e),
            Self::CommitOutcomeUnknown(_) => true,
            _ => false,
        }
    }
}

/// Channel a committing transaction announces itself on (PostgreSQL `NOTIFY`); the payload is
/// the transaction id. `head` listens on it.
pub const NOTIFY_CHANNEL: &str = "pkgnode_tx";

/// How the connection pool behaves when the database goes away and comes back.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a query waits for a live connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The schema's version: the newest migration this build applies. A saved database (the
/// harness's corpus cache) is only restored into a node of the same schema version.
pub fn schema_version() -> i64 {
    PG_MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The metadata store: a connection pool plus the backend it talks to.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    health: Arc<health::Health>,
    /// SQLite's in-process content claims (PostgreSQL's are advisory locks).
    claims: Arc<claims::Stripes>,
}

/// An open change: one database transaction that owns a fresh transaction id.
pub struct Change {
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    /// The transaction id this change publishes when committed.
    pub id: i64,
    backend: Backend,
    /// SQLite's content claims this change publishes under, released with it.
    _claims: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

/// A transaction's place and identity: its id, and a random uid that no server hands out twice.
/// Ids come from a sequence that a promoted standby lacking the old primary's newest commits
/// draws again; (id, uid) names one transaction of one history for good.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxMark {
    pub id: i64,
    pub uid: String,
}

/// One read of the database's head, with whether the transaction a node holds as its head is
/// still part of the database's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadRead {
    pub head: TxMark,
    /// False when the held transaction is gone, or its id now names another transaction: the
    /// history the node built on was rolled back (a failover lost its newest commits).
    pub holds_held: bool,
}

/// A fresh transaction uid: 128 random bits, hex.
fn new_tx_uid() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

const PACKAGE_COLUMNS: &str = "id, source_id, name, normalized, version, filename, file_kind, \
                               sha256, md5, size_bytes, metadata, added_tx";

/// [`PACKAGE_COLUMNS`], each qualified by a table alias (`p.id, p.source_id, …`) for joins.
fn package_columns_of(alias: &str) -> String {
    PACKAGE_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects, prepares SQLite for concurrent readers, and runs the migrations.
    ///
    /// Every connection is checked before it is handed out, so connections to a database that went
    /// away (or to a server the database endpoint no longer points at) are dropped and replaced
    /// instead of failing a request; `acquire_timeout` bounds the wait for a live one.
    /// Connects to the database `config` names with its pool settings; a SQLite database's
    /// directory (the data dir) is created first.
    pub async fn open(config: &crate::config::Config) -> Result<Self, StoreError> {
        if !config.is_postgres() {
            std::fs::create_dir_all(&config.data_dir).map_err(sqlx::Error::Io)?;
        }
        Self::connect(
            &config.database_url(),
            PoolSettings {
                max_connections: config.database.max_connections.unwrap_or(16),
                acquire_timeout: config.database.acquire_timeout,
            },
        )
        .await
    }

    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(true)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
        } else {
            PG_MIGRATIONS.run(&pool).await?;
        }
        Ok(Self {
            pool,
            backend,
            url: url.to_string(),
            health: Arc::default(),
            claims: Arc::default(),
        })
    }

    /// The database's state as this store last observed it.
    pub fn health(&self) -> &health::Health {
        &self.health
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN IMMEDIATE`, where
    /// `busy_timeout` makes concurrent writers (other requests, the admin CLI) wait their turn: a
    /// deferred transaction that reads first and writes later cannot wait, and fails with
    /// "database is locked" when another writer committed in between (issue 10 defect 7).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Postgres => self.pool.begin().await?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    /// Opens a change: locks the transaction sequence (PostgreSQL) and draws the next id.
    pub async fn begin_change(&self, kind: &str, description: &str) -> Result<Change, StoreError> {
        let tx = self.begin_write().await?;
        self.open_change(tx, kind, description, Vec::new()).await
    }

    /// [`Store::begin_change`] in an open write transaction `tx`.
    async fn open_change(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        kind: &str,
        description: &str,
        claims: Vec<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Result<Change, StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE transactions IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        // Keep creation times monotonic with ids even if clocks step backwards.
        let last: Option<i64> = sqlx::query("SELECT MAX(created_at_ms) FROM transactions")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let created = now_ms().max(last.unwrap_or(0));
        let id: i64 = sqlx::query(
            "INSERT INTO transactions (created_at_ms, kind, description, uid) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(created)
        .bind(kind)
        .bind(description)
        .bind(new_tx_uid())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        Ok(Change {
            tx,
            id,
            backend: self.backend,
            _claims: claims,
        })
    }

    /// The newest committed transaction id (0 for an empty store).
    /// Every call records whether the database answered (`health`).
    pub async fn head(&self) -> Result<i64, StoreError> {
        let began = std::time::Instant::now();
        let row = sqlx::query("SELECT MAX(id) FROM transactions")
            .fetch_one(&self.pool)
            .await;
        self.health.observe_begun(&row, began);
        let head: Option<i64> = row?.try_get(0)?;
        Ok(head.unwrap_or(0))
    }

    /// The identity of transaction `tx`, if the database holds it.
    pub async fn tx_uid(&self, tx: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT uid FROM transactions WHERE id = $1")
            .bind(tx)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get::<Option<String>, _>(0)?.unwrap_or_default()),
            None => None,
        })
    }

    /// The last transaction that committed before `end_ms` (exclusive), if any.
    pub async fn last_tx_before(&self, end_ms: i64) -> Result<Option<i64>, StoreError> {
        let id: Option<i64> =
            sqlx::query("SELECT MAX(id) FROM transactions WHERE created_at_ms < $1")
                .bind(end_ms)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(id)
    }

    pub async fn sources(&self) -> Result<Vec<Source>, StoreError> {
        let rows = sqlx::query("SELECT id, name, kind FROM sources ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(source_from_row).collect()
    }

    pub async fn source_by_name(&self, name: &str) -> Result<Option<Source>, StoreError> {
        let row = sqlx::query("SELECT id, name, kind FROM sources WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(source_from_row).transpose()
    }

    pub async fn repos(&self) -> Result<Vec<Repo>, StoreError> {
        let rows = sqlx::query("SELECT id, name, kind, authenticated FROM repos ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(repo_from_row).collect()
    }

    pub async fn repo_by_name(&self, name: &str) -> Result<Option<Repo>, StoreError> {
        let row = sqlx::query("SELECT id, name, kind, authenticated FROM repos WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(repo_from_row).transpose()
    }

    /// Creates a source in its own transaction.
    pub async fn create_source(&self, name: &str, kind: SourceKind) -> Result<Source, StoreError> {
        if self.source_by_name(name).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "source {name:?} already exists"
            )));
        }
        let mut change = self.begin_change("create-source", name).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO sources (name, kind, created_tx) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(kind.as_str())
        .bind(change.id)
        .fetch_one(&mut *change.tx)
        .await?
        .try_get(0)?;
        change.commit().await?;
        Ok(Source {
            id,
            name: name.to_string(),
            kind,
        })
    }

    /// Creates a repository in its own transaction.
    pub async fn create_repo(
        &self,
        name: &str,
        kind: RepoKind,
        authenticated: bool,
    ) -> Result<Repo, StoreError> {
        if self.repo_by_name(name).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "repo {name:?} already exists"
            )));
        }
        let mut change = self.begin_change("create-repo", name).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO repos (name, kind, authenticated, created_tx) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(kind.as_str())
        .bind(i64::from(authenticated))
        .bind(change.id)
        .fetch_one(&mut *change.tx)
        .await?
        .try_get(0)?;
        change.commit().await?;
        Ok(Repo {
            id,
            name: name.to_string(),
            kind,
            authenticated,
        })
    }

    /// Subscribes `repo` to `source`; a lower priority number wins when both sources hold a name.
    /// Without a priority the source goes after the existing ones.
    pub async fn subscribe(
        &self,
        repo: &Repo,
        source: &Source,
        priority: Option<i64>,
    ) -> Result<i64, StoreError> {
        if source.kind.repo_kind() != repo.kind {
            return Err(StoreError::Conflict(format!(
                "a {} repo cannot subscribe to {} source {:?}",
                repo.kind.as_str(),
                source.kind.as_str(),
                source.name
            )));
        }
        let existing: i64 = sqlx::query(
            "SELECT COUNT(*) FROM subscriptions WHERE repo_id = $1 AND source_id = $2 AND removed_tx IS NULL",
        )
        .bind(repo.id)
        .bind(source.id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        if existing > 0 {
            return Err(StoreError::Conflict(format!(
                "repo {:?} is already subscribed to source {:?}",
                repo.name, source.name
            )));
        }
        let mut change = self
            .begin_change("subscribe", &format!("{} <- {}", repo.name, source.name))
            .await?;
        let priority = match priority {
            Some(p) => p,
            None => {
                let max: Option<i64> = sqlx::query(
                    "SELECT MAX(priority) FROM subscriptions WHERE repo_id = $1 AND removed_tx IS NULL",
                )
                .bind(repo.id)
                .fetch_one(&mut *change.tx)
                .await?
                .try_get(0)?;
                max.unwrap_or(0) + 1
            }
        };
        sqlx::query("INSERT INTO subscriptions (repo_id, source_id, priority, added_tx) VALUES ($1, $2, $3, $4)")
            .bind(repo.id)
            .bind(source.id)
            .bind(priority)
            .bind(change.id)
            .execute(&mut *change.tx)
            .await?;
        let id = change.id;
        change.commit().await?;
        Ok(id)
    }

    /// The live file of `source` with this file name, if any.
    pub async fn find_file(
        &self,
        source_id: i64,
        filename: &str,
    ) -> Result<Option<PackageFile>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PACKAGE_COLUMNS} FROM packages WHERE source_id = $1 AND filename = $2 AND removed_tx IS NULL"
        ))
        .bind(source_id)
        .bind(filename)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(package_from_row).transpose()
    }

    /// Every file of every source `repo` subscribed to, as of transaction `tx`, with the
    /// subscription priority (lower wins).
    pub async fn repo_files_at(
        &self,
        repo_id: i64,
        tx: i64,
    ) -> Result<Vec<(PackageFile, i64)>, StoreError> {
        let columns = package_columns_of("p");
        let rows = sqlx::query(&format!(
            "SELECT {columns}, s.priority FROM packages p \
             JOIN subscriptions s ON s.source_id = p.source_id \
             WHERE s.repo_id = $1 AND s.added_tx <= $2 AND (s.removed_tx IS NULL OR s.removed_tx > $2) \
               AND p.added_tx <= $2 AND (p.removed_tx IS NULL OR p.removed_tx > $2) \
             ORDER BY s.priority, p.normalized, p.id"
        ))
        .bind(repo_id)
        .bind(tx)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((package_from_row(row)?, row.try_get::<i64, _>("priority")?)))
            .collect()
    }

    /// The files that the transactions in `(after, upto]` added to `repo`'s sources, with their
    /// subscription priority, in the order of [`Store::repo_files_at`] — or `None` when one of
    /// those transactions did anything else to the repo (subscribed or unsubscribed a source,
    /// removed a file): only additions can be applied to the view at `after`.
    pub async fn repo_additions(
        &self,
        repo_id: i64,
        after: i64,
        upto: i64,
    ) -> Result<Option<Vec<(PackageFile, i64)>>, StoreError> {
        let others: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM subscriptions WHERE repo_id = $1 \
                       AND ((added_tx > $2 AND added_tx <= $3) OR (removed_tx > $2 AND removed_tx <= $3))) \
                  + (SELECT COUNT(*) FROM packages p JOIN subscriptions s ON s.source_id = p.source_id \
                       WHERE s.repo_id = $1 AND p.removed_tx > $2 AND p.removed_tx <= $3)",
        )
        .bind(repo_id)
        .bind(after)
        .bind(upto)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        if others > 0 {
            return Ok(None);
        }
        let columns = package_columns_of("p");
        let rows = sqlx::query(&format!(
            "SELECT {columns}, s.priority FROM packages p \
             JOIN subscriptions s ON s.source_id = p.source_id \
             WHERE s.repo_id = $1 AND s.added_tx <= $3 AND (s.removed_tx IS NULL OR s.removed_tx > $3) \
               AND p.added_tx > $2 AND p.added_tx <= $3 AND (p.removed_tx IS NULL OR p.removed_tx > $3) \
             ORDER BY s.priority, p.normalized, p.id"
        ))
        .bind(repo_id)
        .bind(after)
        .bind(upto)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((package_from_row(row)?, row.try_get::<i64, _>("priority")?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }

    /// Every live file of one source.
    pub async fn source_files(&self, source_id: i64) -> Result<Vec<PackageFile>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PACKAGE_COLUMNS} FROM packages WHERE source_id = $1 AND removed_tx IS NULL ORDER BY normalized, id"
        ))
        .bind(source_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(package_from_row).collect()
    }

    /// Adds batched download counts.
    pub async fn add_downloads(&self, counts: &[(i64, u64)]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (package_id, count) in counts {
            sqlx::query(
                "INSERT INTO download_counts (package_id, count) VALUES ($1, $2) \
                 ON CONFLICT (package_id) DO UPDATE SET count = download_counts.count + excluded.count",
            )
            .bind(*package_id)
            .bind(*count as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Download counts per file, most downloaded first.
    pub async fn download_counts(&self) -> Result<Vec<DownloadCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.name AS source, p.name, p.version, p.filename, d.count FROM download_counts d \
             JOIN packages p ON p.id = d.package_id JOIN sources s ON s.id = p.source_id \
             ORDER BY d.count DESC, p.filename",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DownloadCount {
                    source: row.try_get("source")?,
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    filename: row.try_get("filename")?,
                    downloads: row.try_get("count")?,
                })
            })
            .collect()
    }
}

/// One line of `/__api__/metrics/packages`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DownloadCount {
    pub source: String,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub downloads: i64,
}

impl Change {
    /// Inserts a package file row under this change.
    pub async fn insert_file(&mut self, file: &NewPackageFile) -> Result<i64, StoreError> {
        let metadata = serde_json::to_string(&file.metadata)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id: i64 = sqlx::query(
            "INSERT INTO packages (source_id, name, normalized, version, filename, file_kind, sha256, md5, \
             size_bytes, metadata, added_tx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(file.source_id)
        .bind(&file.name)
        .bind(&file.normalized)
        .bind(&file.version)
        .bind(&file.filename)
        .bind(file.kind.as_str())
        .bind(&file.sha256)
        .bind(&file.md5)
        .bind(file.size_bytes)
        .bind(metadata)
        .bind(self.id)
        .fetch_one(&mut *self.tx)
        .await?
        .try_get(0)?;
        Ok(id)
    }

    /// Rolls back, ending the change's content claims with it.
    pub async fn rollback(self) {
        if let Err(e) = self.tx.rollback().await {
            tracing::debug!(error = %e, "rollback failed (the connection is dropped instead)");
        }
    }

    /// Commits; on PostgreSQL the other nodes hear of the new transaction at commit.
    ///
    /// A connection lost while `COMMIT` is under way leaves the outcome unknown
    /// (`StoreError::CommitOutcomeUnknown`): it is reported as such and never retried here, since
    /// only a fresh read can tell whether the change landed.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query(&format!("NOTIFY {}, '{}'", NOTIFY_CHANNEL, self.id))
                .execute(&mut *self.tx)
                .await?;
        }
        match self.tx.commit().await {
            Ok(()) => Ok(()),
            Err(e) if health::is_unavailable(&e) => Err(StoreError::CommitOutcomeUnknown(e)),
            Err(e) => Err(e.into()),
        }
    }
}

fn source_from_row(row: &AnyRow) -> Result<Source, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(Source {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: SourceKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("source kind {kind:?}")))?,
    })
}

fn repo_from_row(row: &AnyRow) -> Result<Repo, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(Repo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: RepoKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("repo kind {kind:?}")))?,
        authenticated: row.try_get::<i64, _>("authenticated")? != 0,
    })
}

fn package_from_row(row: &AnyRow) -> Result<PackageFile, StoreError> {
    let kind: String = row.try_get("file_kind")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(PackageFile {
        id: row.try_get("id")?,
        source_id: row.try_get("source_id")?,
        name: row.try_get("name")?,
        normalized: row.try_get("normalized")?,
        version: row.try_get("version")?,
        filename: row.try_get("filename")?,
        kind: FileKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("file kind {kind:?}")))?,
        sha256: row.try_get("sha256")?,
        md5: row.try_get("md5")?,
        size_bytes: row.try_get("size_bytes")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        added_tx: row.try_get("added_tx")?,
    })
}
