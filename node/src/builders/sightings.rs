//! What the polls saw, kept apart from what they queued: the first time a check of a builder's
//! remote saw each commit (`git_tip_sightings`). A check writes its sightings as soon as
//! `git ls-remote` answers and before it queues anything, in a statement of its own, so a commit
//! a poll saw and then failed to queue is still on record; the harness's builds checker reads
//! the table to tell such a commit (lost) from one pushed over before any poll (superseded).
//! Only the first sighting of a (builder, commit) is kept: the table never outgrows the commits.

use std::collections::BTreeSet;

use sqlx::Row;

use crate::store::{Store, StoreError, now_ms};

/// Who looked when the check was not a node's (`pkgnode run git-builder` from a shell).
pub const CLI_OBSERVER: &str = "cli";

/// The first time a check saw a commit of a builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub builder_id: i64,
    pub builder: String,
    pub commit_sha: String,
    /// The looking node's clock, epoch milliseconds.
    pub first_seen_at_ms: i64,
    /// The node that looked, or [`CLI_OBSERVER`].
    pub node_id: String,
}

/// Commits per statement: far below SQLite's and PostgreSQL's limits on bound parameters, so a
/// remote with thousands of tags still records them all.
const COMMITS_PER_STATEMENT: usize = 500;

/// Records that `node_id` saw `commits` on the remote of builder `builder_id` now; commits seen
/// before keep their first sighting. One statement per 500 commits, committed on its own (not in
/// the queueing's transaction); returns how many commits were new.
pub async fn record(
    store: &Store,
    builder_id: i64,
    commits: &[String],
    node_id: &str,
) -> Result<u64, StoreError> {
    // Tags may share a commit: one row each.
    let commits: Vec<&str> = commits
        .iter()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let seen_at_ms = now_ms();
    let mut new = 0;
    for chunk in commits.chunks(COMMITS_PER_STATEMENT) {
        // $1 builder, $2 time, $3 node, then one bind per commit.
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, $2, $3)", i + 4))
            .collect();
        let sql = format!(
            "INSERT INTO git_tip_sightings (builder_id, commit_sha, first_seen_at_ms, node_id) \
             VALUES {} ON CONFLICT (builder_id, commit_sha) DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(builder_id)
            .bind(seen_at_ms)
            .bind(node_id);
        for sha in chunk {
            query = query.bind(*sha);
        }
        new += query.execute(store.pool()).await?.rows_affected();
    }
    Ok(new)
}

/// The sightings of a source's builders (of one builder when `builder` is given), oldest first.
pub async fn of_source(
    store: &Store,
    source: &str,
    builder: Option<&str>,
) -> Result<Vec<Sighting>, StoreError> {
    const SELECT: &str = "SELECT t.builder_id, g.name AS builder, t.commit_sha, \
         t.first_seen_at_ms, t.node_id FROM git_tip_sightings t \
         JOIN git_builders g ON g.id = t.builder_id JOIN sources s ON s.id = g.source_id \
         WHERE s.name = $1";
    const ORDER: &str = "ORDER BY t.first_seen_at_ms, g.name, t.commit_sha";
    let rows = match builder {
        Some(name) => {
            sqlx::query(&format!("{SELECT} AND g.name = $2 {ORDER}"))
                .bind(source)
                .bind(name)
                .fetch_all(store.pool())
                .await?
        }
        None => {
            sqlx::query(&format!("{SELECT} {ORDER}"))
                .bind(source)
                .fetch_all(store.pool())
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            Ok(Sighting {
                builder_id: row.try_get("builder_id")?,
                builder: row.try_get("builder")?,
                commit_sha: row.try_get("commit_sha")?,
                first_seen_at_ms: row.try_get("first_seen_at_ms")?,
                node_id: row.try_get("node_id")?,
            })
        })
        .collect()
}
