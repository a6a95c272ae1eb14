//! The transaction history: which snapshots exist and what each one changed, newest first — what
//! a user needs to pick a pinned URL (`/{repo}/{txid}/…`), like Posit Package Manager's snapshot
//! list.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// One committed transaction, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransactionSummary {
    /// The snapshot id: `/{repo}/{id}/…` serves the repo exactly as this transaction left it.
    pub id: i64,
    /// Commit time, milliseconds since the Unix epoch (UTC).
    pub created_at_ms: i64,
    /// Commit time as RFC 3339 (UTC).
    pub time: String,
    /// What kind of change: `create-source`, `create-repo`, `subscribe`, `upload`…
    pub kind: String,
    pub description: String,
    /// The package files this transaction added (to the repo's sources, when listed for a repo).
    pub added: Vec<AddedFile>,
}

/// A package file added by a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddedFile {
    pub source: String,
    pub name: String,
    pub version: String,
    pub filename: String,
}

impl Store {
    /// Transactions newest first. With `repo_id`, only those that changed that repo: its creation,
    /// its subscriptions, and files added to or removed from a source it subscribed to at the time.
    pub async fn transactions(
        &self,
        repo_id: Option<i64>,
    ) -> Result<Vec<TransactionSummary>, StoreError> {
        let (tx_sql, files_sql) = match repo_id {
            None => (
                "SELECT id, created_at_ms, kind, description FROM transactions ORDER BY id DESC",
                "SELECT p.added_tx, s.name AS source, p.name, p.version, p.filename \
                 FROM packages p JOIN sources s ON s.id = p.source_id ORDER BY p.added_tx, p.id",
            ),
            Some(_) => (
                // One pass over the repo's subscriptions and its sources' files (no per-transaction
                // scan): a file counts when its source was subscribed at the time.
                "SELECT t.id, t.created_at_ms, t.kind, t.description FROM transactions t \
                 WHERE t.id IN ( \
                     SELECT created_tx FROM repos WHERE id = $1 \
                     UNION SELECT added_tx FROM subscriptions WHERE repo_id = $1 \
                     UNION SELECT removed_tx FROM subscriptions WHERE repo_id = $1 AND removed_tx IS NOT NULL \
                     UNION SELECT p.added_tx FROM packages p JOIN subscriptions s ON s.source_id = p.source_id \
                       WHERE s.repo_id = $1 AND s.added_tx <= p.added_tx \
                         AND (s.removed_tx IS NULL OR s.removed_tx > p.added_tx) \
                     UNION SELECT p.removed_tx FROM packages p JOIN subscriptions s ON s.source_id = p.source_id \
                       WHERE s.repo_id = $1 AND p.removed_tx IS NOT NULL AND s.added_tx <= p.removed_tx \
                         AND (s.removed_tx IS NULL OR s.removed_tx > p.removed_tx)) \
                 ORDER BY t.id DESC",
                "SELECT p.added_tx, src.name AS source, p.name, p.version, p.filename \
                 FROM packages p JOIN subscriptions s ON s.source_id = p.source_id \
                 JOIN sources src ON src.id = p.source_id \
                 WHERE s.repo_id = $1 AND s.added_tx <= p.added_tx \
                   AND (s.removed_tx IS NULL OR s.removed_tx > p.added_tx) \
                 ORDER BY p.added_tx, p.id",
            ),
        };
        // Files are read after the transactions: a listed transaction's files committed with it,
        // so they are all seen; files of a change committed in between belong to no listed id
        // and are left out. (PostgreSQL's READ COMMITTED gives each statement its own snapshot.)
        let mut db = self.pool.begin().await?;
        let mut query = sqlx::query(tx_sql);
        let mut files_query = sqlx::query(files_sql);
        if let Some(id) = repo_id {
            query = query.bind(id);
            files_query = files_query.bind(id);
        }
        let rows = query.fetch_all(&mut *db).await?;
        let file_rows = files_query.fetch_all(&mut *db).await?;
        db.commit().await?;

        let mut added: BTreeMap<i64, Vec<AddedFile>> = BTreeMap::new();
        for row in &file_rows {
            added
                .entry(row.try_get("added_tx")?)
                .or_default()
                .push(AddedFile {
                    source: row.try_get("source")?,
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    filename: row.try_get("filename")?,
                });
        }
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                let created_at_ms: i64 = row.try_get(1)?;
                let time = chrono::DateTime::from_timestamp_millis(created_at_ms)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "transaction {id} has time {created_at_ms} ms, out of range"
                        ))
                    })?
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                Ok(TransactionSummary {
                    id,
                    created_at_ms,
                    time,
                    kind: row.try_get(2)?,
                    description: row.try_get(3)?,
                    added: added.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }
}
