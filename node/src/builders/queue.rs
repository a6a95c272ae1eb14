//! The builders and the build queue in the database, shared by every node.
//!
//! A worker claims the oldest queued build with a lease: on PostgreSQL the row is picked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims from many nodes never wait on each other nor take
//! the same build; on SQLite (one node) the claim runs in a `BEGIN IMMEDIATE` transaction. The
//! claim writes a fresh `lease_token`; every later write of the worker (renewal, failure, success)
//! names that token, so a worker whose lease expired and whose build was claimed again can no
//! longer change it. Times are the nodes' clocks in epoch milliseconds (a cluster keeps them
//! within `[cluster] max_clock_skew` of the database's).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{BuildState, BuildTrigger, BuilderError, NewBuilder};
use crate::store::{Backend, Change, Source, SourceKind, Store, StoreError, now_ms};

/// A build whose lease expired this many times fails instead of going back to the queue: a
/// commit that kills every node building it must not block the queue forever.
pub const MAX_ATTEMPTS: i64 = 3;

/// One builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    pub id: i64,
    pub source_id: i64,
    pub source: String,
    pub source_kind: SourceKind,
    pub name: String,
    pub url: String,
    pub branch: Option<String>,
    pub build_trigger: BuildTrigger,
    pub sub_dir: Option<String>,
    pub clone_depth: i64,
    pub created_at_ms: i64,
    pub last_polled_at_ms: Option<i64>,
    pub last_poll_error: Option<String>,
}

/// One build, without its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub id: i64,
    pub builder_id: i64,
    pub builder: String,
    pub source: String,
    pub commit_sha: String,
    pub tag: Option<String>,
    pub version: Option<String>,
    pub state: BuildState,
    pub attempts: i64,
    pub node_id: Option<String>,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub transaction_id: Option<i64>,
    pub error: Option<String>,
}

const BUILDER_COLUMNS: &str = "g.id, g.source_id, s.name AS source, s.kind AS source_kind, g.name, \
     g.url, g.branch, g.build_trigger, g.sub_dir, g.clone_depth, g.created_at_ms, \
     g.last_polled_at_ms, g.last_poll_error";
const BUILDER_FROM: &str = "git_builders g JOIN sources s ON s.id = g.source_id";
const BUILD_COLUMNS: &str = "b.id, b.builder_id, g.name AS builder, s.name AS source, b.commit_sha, \
     b.tag, b.version, b.state, b.attempts, b.node_id, b.queued_at_ms, b.started_at_ms, \
     b.finished_at_ms, b.transaction_id, b.error";
const BUILD_FROM: &str =
    "git_builds b JOIN git_builders g ON g.id = b.builder_id JOIN sources s ON s.id = g.source_id";

fn builder_from_row(row: &AnyRow) -> Result<Builder, StoreError> {
    let trigger: String = row.try_get("build_trigger")?;
    let kind: String = row.try_get("source_kind")?;
    Ok(Builder {
        id: row.try_get("id")?,
        source_id: row.try_get("source_id")?,
        source: row.try_get("source")?,
        source_kind: SourceKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("source kind {kind:?}")))?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        branch: row.try_get("branch")?,
        build_trigger: BuildTrigger::parse(&trigger)
            .ok_or_else(|| StoreError::Corrupt(format!("build trigger {trigger:?}")))?,
        sub_dir: row.try_get("sub_dir")?,
        clone_depth: row.try_get("clone_depth")?,
        created_at_ms: row.try_get("created_at_ms")?,
        last_polled_at_ms: row.try_get("last_polled_at_ms")?,
        last_poll_error: row.try_get("last_poll_error")?,
    })
}

fn build_from_row(row: &AnyRow) -> Result<Build, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(Build {
        id: row.try_get("id")?,
        builder_id: row.try_get("builder_id")?,
        builder: row.try_get("builder")?,
        source: row.try_get("source")?,
        commit_sha: row.try_get("commit_sha")?,
        tag: row.try_get("tag")?,
        version: row.try_get("version")?,
        state: BuildState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("build state {state:?}")))?,
        attempts: row.try_get("attempts")?,
        node_id: row.try_get("node_id")?,
        queued_at_ms: row.try_get("queued_at_ms")?,
        started_at_ms: row.try_get("started_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        transaction_id: row.try_get("transaction_id")?,
        error: row.try_get("error")?,
    })
}

/// Creates a builder for a `git` or `git-python` source.
pub async fn create_builder(
    store: &Store,
    source: &Source,
    new: &NewBuilder,
) -> Result<Builder, BuilderError> {
    new.validate()?;
    if !source.kind.is_git() {
        return Err(BuilderError::Invalid(format!(
            "source {:?} is a {} source; git builders need a git or git-python source",
            source.name,
            source.kind.as_str()
        )));
    }
    if builder(store, &source.name, &new.name).await?.is_some() {
        return Err(BuilderError::Conflict(format!(
            "source {:?} already has a git builder named {:?}",
            source.name, new.name
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO git_builders (source_id, name, url, branch, build_trigger, sub_dir, clone_depth, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(source.id)
    .bind(&new.name)
    .bind(&new.url)
    .bind(new.branch.as_deref())
    .bind(new.build_trigger.as_str())
    .bind(new.sub_dir.as_deref())
    .bind(new.clone_depth)
    .bind(now_ms())
    .fetch_one(store.pool())
    .await;
    let id: i64 = match inserted {
        Ok(row) => row.try_get(0).map_err(StoreError::from)?,
        // A concurrent create of the same name won.
        Err(e) => {
            if builder(store, &source.name, &new.name).await?.is_some() {
                return Err(BuilderError::Conflict(format!(
                    "source {:?} already has a git builder named {:?}",
                    source.name, new.name
                )));
            }
            return Err(StoreError::from(e).into());
        }
    };
    builder_by_id(store, id)
        .await?
        .ok_or_else(|| BuilderError::NotFound(format!("git builder {id} vanished")))
}

pub async fn builder_by_id(store: &Store, id: i64) -> Result<Option<Builder>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {BUILDER_COLUMNS} FROM {BUILDER_FROM} WHERE g.id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(builder_from_row).transpose()
}

pub async fn builder(
    store: &Store,
    source: &str,
    name: &str,
) -> Result<Option<Builder>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {BUILDER_COLUMNS} FROM {BUILDER_FROM} WHERE s.name = $1 AND g.name = $2"
    ))
    .bind(source)
    .bind(name)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(builder_from_row).transpose()
}

/// The builders of one source, by name.
pub async fn builders(store: &Store, source: &str) -> Result<Vec<Builder>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {BUILDER_COLUMNS} FROM {BUILDER_FROM} WHERE s.name = $1 ORDER BY g.name"
    ))
    .bind(source)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(builder_from_row).collect()
}

/// Queues a build of `commit_sha` unless the builder already has one for that commit (the
/// unique (builder, commit) key makes re-polls and concurrent pollers harmless). Returns the new
/// build's id.
pub async fn enqueue(
    store: &Store,
    builder_id: i64,
    commit_sha: &str,
    tag: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "INSERT INTO git_builds (builder_id, commit_sha, tag, state, queued_at_ms) VALUES ($1, $2, $3, 'queued', $4) \
         ON CONFLICT (builder_id, commit_sha) DO NOTHING RETURNING id",
    )
    .bind(builder_id)
    .bind(commit_sha)
    .bind(tag)
    .bind(now_ms())
    .fetch_optional(store.pool())
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}

/// What a worker claimed: the build, its builder, and the token its later writes must name.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub build: Build,
    pub builder: Builder,
    pub lease_token: String,
}

/// Claims the oldest queued build for `node_id`, leased until `now + lease_ms`.
pub async fn claim(
    store: &Store,
    node_id: &str,
    lease_ms: i64,
) -> Result<Option<Claimed>, StoreError> {
    let token = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let skip_locked = match store.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&format!(
        "UPDATE git_builds SET state = 'running', node_id = $1, lease_token = $2, \
         lease_expires_at_ms = $3, started_at_ms = $4, attempts = attempts + 1, error = NULL \
         WHERE id = (SELECT q.id FROM git_builds q WHERE q.state = 'queued' \
                     ORDER BY q.queued_at_ms, q.id LIMIT 1{skip_locked}) \
         AND state = 'queued' RETURNING id, builder_id"
    ))
    .bind(node_id)
    .bind(&token)
    .bind(now + lease_ms)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (id, builder_id): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let build = build(store, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("claimed build {id} vanished")))?;
    let builder = builder_by_id(store, builder_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("builder {builder_id} vanished")))?;
    Ok(Some(Claimed {
        build,
        builder,
        lease_token: token,
    }))
}

/// Extends a lease; false when the lease is no longer this worker's (it expired and the build
/// went back to the queue, or was claimed by another node).
pub async fn renew(
    store: &Store,
    build_id: i64,
    lease_token: &str,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE git_builds SET lease_expires_at_ms = $1 WHERE id = $2 AND lease_token = $3 AND state = 'running'",
    )
    .bind(now_ms() + lease_ms)
    .bind(build_id)
    .bind(lease_token)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Puts builds whose lease expired back in the queue (or fails those that used up their
/// attempts). Any node may run it; it is idempotent. Returns (re-queued, failed).
pub async fn reap_expired(store: &Store) -> Result<(u64, u64), StoreError> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let failed = sqlx::query(
        "UPDATE git_builds SET state = 'failed', finished_at_ms = $1, lease_token = NULL, \
         lease_expires_at_ms = NULL, error = $2 \
         WHERE state = 'running' AND lease_expires_at_ms < $1 AND attempts >= $3",
    )
    .bind(now)
    .bind(format!(
        "the build's lease expired {MAX_ATTEMPTS} times (the nodes building it stopped or lost the database); rerun it to try again"
    ))
    .bind(MAX_ATTEMPTS)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let requeued = sqlx::query(
        "UPDATE git_builds SET state = 'queued', node_id = NULL, lease_token = NULL, \
         lease_expires_at_ms = NULL, started_at_ms = NULL \
         WHERE state = 'running' AND lease_expires_at_ms < $1",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok((requeued, failed))
}

/// Ends a build as failed, with its log kept; false when the lease was no longer this worker's.
pub async fn fail(
    store: &Store,
    build_id: i64,
    lease_token: &str,
    version: Option<&str>,
    error: &str,
    log: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE git_builds SET state = 'failed', finished_at_ms = $1, error = $2, log = $3, \
         version = $4, lease_token = NULL, lease_expires_at_ms = NULL \
         WHERE id = $5 AND lease_token = $6 AND state = 'running'",
    )
    .bind(now_ms())
    .bind(error)
    .bind(log)
    .bind(version)
    .bind(build_id)
    .bind(lease_token)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Marks a build succeeded inside the change that publishes its files; false when the lease was
/// no longer this worker's, and then the change must not commit.
pub async fn mark_succeeded(
    change: &mut Change,
    build_id: i64,
    lease_token: &str,
    version: &str,
    log: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE git_builds SET state = 'succeeded', finished_at_ms = $1, transaction_id = $2, \
         version = $3, log = $4, error = NULL, lease_token = NULL, lease_expires_at_ms = NULL \
         WHERE id = $5 AND lease_token = $6 AND state = 'running'",
    )
    .bind(now_ms())
    .bind(change.id)
    .bind(version)
    .bind(log)
    .bind(build_id)
    .bind(lease_token)
    .execute(&mut *change.tx)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Re-queues a build this worker holds and will not finish (the node is shutting down). The
/// attempt it used is given back.
pub async fn hand_back(
    store: &Store,
    build_id: i64,
    lease_token: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE git_builds SET state = 'queued', node_id = NULL, lease_token = NULL, \
         lease_expires_at_ms = NULL, started_at_ms = NULL, attempts = attempts - 1 \
         WHERE id = $1 AND lease_token = $2 AND state = 'running'",
    )
    .bind(build_id)
    .bind(lease_token)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// What a rerun did.
#[derive(Debug, Clone)]
pub enum Rerun {
    /// A new build, or a failed one queued again.
    Queued(Build),
    /// The commit's build is already queued or running.
    Pending(Build),
}

/// Builds `commit_sha` again: a failed build goes back to the queue, a commit never built is
/// queued, a queued or running one is left alone. A succeeded build is refused: a commit is
/// published once, and a published version never changes.
pub async fn rerun(
    store: &Store,
    builder: &Builder,
    commit_sha: &str,
    tag: Option<&str>,
) -> Result<Rerun, BuilderError> {
    let existing = build_of_commit(store, builder.id, commit_sha).await?;
    let id = match existing {
        None => match enqueue(store, builder.id, commit_sha, tag).await? {
            Some(id) => id,
            // Queued by a poll a moment ago.
            None => {
                let build = build_of_commit(store, builder.id, commit_sha)
                    .await?
                    .ok_or_else(|| BuilderError::NotFound("the build vanished".into()))?;
                return Ok(Rerun::Pending(build));
            }
        },
        Some(build) => match build.state {
            BuildState::Queued | BuildState::Running => return Ok(Rerun::Pending(build)),
            BuildState::Succeeded => {
                return Err(BuilderError::Conflict(format!(
                    "commit {commit_sha} of builder {:?} was built and published in transaction {}; \
                     a commit is published once: push a commit with a new version instead",
                    builder.name,
                    build.transaction_id.unwrap_or_default()
                )));
            }
            BuildState::Failed => {
                sqlx::query(
                    "UPDATE git_builds SET state = 'queued', attempts = 0, node_id = NULL, \
                     lease_token = NULL, lease_expires_at_ms = NULL, queued_at_ms = $1, \
                     started_at_ms = NULL, finished_at_ms = NULL, error = NULL, log = NULL \
                     WHERE id = $2 AND state = 'failed'",
                )
                .bind(now_ms())
                .bind(build.id)
                .execute(store.pool())
                .await
                .map_err(StoreError::from)?;
                build.id
            }
        },
    };
    let build = self::build(store, id)
        .await?
        .ok_or_else(|| BuilderError::NotFound("the build vanished".into()))?;
    Ok(Rerun::Queued(build))
}

/// A value bound to a build lookup's placeholder.
enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// The builds `filter` selects: the `WHERE` condition over `b` (the build), `g` (its builder)
/// and `s` (its source), with any `ORDER BY`/`LIMIT`, its `$1…` bound to `binds` in order.
async fn builds_where(
    store: &Store,
    filter: &str,
    binds: &[Bind<'_>],
) -> Result<Vec<Build>, StoreError> {
    let sql = format!("SELECT {BUILD_COLUMNS} FROM {BUILD_FROM} WHERE {filter}");
    let mut query = sqlx::query(&sql);
    for bind in binds {
        query = match bind {
            Bind::Int(value) => query.bind(*value),
            Bind::Text(value) => query.bind(*value),
        };
    }
    let rows = query.fetch_all(store.pool()).await?;
    rows.iter().map(build_from_row).collect()
}

/// The first build `filter` selects (see [`builds_where`]).
async fn build_where(
    store: &Store,
    filter: &str,
    binds: &[Bind<'_>],
) -> Result<Option<Build>, StoreError> {
    Ok(builds_where(store, filter, binds).await?.into_iter().next())
}

pub async fn build(store: &Store, id: i64) -> Result<Option<Build>, StoreError> {
    build_where(store, "b.id = $1", &[Bind::Int(id)]).await
}

pub async fn build_of_commit(
    store: &Store,
    builder_id: i64,
    commit_sha: &str,
) -> Result<Option<Build>, StoreError> {
    build_where(
        store,
        "b.builder_id = $1 AND b.commit_sha = $2",
        &[Bind::Int(builder_id), Bind::Text(commit_sha)],
    )
    .await
}

/// The newest build of a builder, if any.
pub async fn latest_build(store: &Store, builder_id: i64) -> Result<Option<Build>, StoreError> {
    build_where(
        store,
        "b.builder_id = $1 ORDER BY b.id DESC LIMIT 1",
        &[Bind::Int(builder_id)],
    )
    .await
}

/// The build that published transaction `tx`, if any.
pub async fn build_of_transaction(store: &Store, tx: i64) -> Result<Option<Build>, StoreError> {
    build_where(store, "b.transaction_id = $1", &[Bind::Int(tx)]).await
}

/// A build's log, when one was kept.
pub async fn build_log(store: &Store, id: i64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT log FROM git_builds WHERE id = $1")
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    Ok(match row {
        Some(row) => row.try_get("log")?,
        None => None,
    })
}

/// Builds of a source (of one builder when `builder` is given), newest first, one page.
pub async fn builds(
    store: &Store,
    source: &str,
    builder: Option<&str>,
    count: i64,
    page: i64,
) -> Result<Vec<Build>, StoreError> {
    let offset = (page.max(1) - 1).saturating_mul(count);
    match builder {
        Some(name) => {
            builds_where(
                store,
                "s.name = $1 AND g.name = $2 ORDER BY b.id DESC LIMIT $3 OFFSET $4",
                &[
                    Bind::Text(source),
                    Bind::Text(name),
                    Bind::Int(count),
                    Bind::Int(offset),
                ],
            )
            .await
        }
        None => {
            builds_where(
                store,
                "s.name = $1 ORDER BY b.id DESC LIMIT $2 OFFSET $3",
                &[Bind::Text(source), Bind::Int(count), Bind::Int(offset)],
            )
            .await
        }
    }
}

/// Queued builds in the whole cluster.
pub async fn queued_count(store: &Store) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM git_builds WHERE state = 'queued'")
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get(0)?)
}

/// Takes the poll lease of up to `limit` builders whose next poll is due and whose lease is free:
/// one node polls a given builder at a time.
pub async fn claim_polls(
    store: &Store,
    node_id: &str,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Builder>, StoreError> {
    let now = now_ms();
    let skip_locked = match store.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let mut tx = store.begin_write().await?;
    let rows = sqlx::query(&format!(
        "UPDATE git_builders SET poll_owner = $1, poll_lease_until_ms = $2 \
         WHERE id IN (SELECT p.id FROM git_builders p WHERE p.next_poll_at_ms <= $3 \
                      AND p.poll_lease_until_ms < $3 ORDER BY p.next_poll_at_ms, p.id \
                      LIMIT $4{skip_locked}) \
         AND poll_lease_until_ms < $3 RETURNING id"
    ))
    .bind(node_id)
    .bind(now + lease_ms)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get(0)?;
        if let Some(builder) = builder_by_id(store, id).await? {
            claimed.push(builder);
        }
    }
    Ok(claimed)
}

/// Records a poll's outcome, schedules the next one and frees the poll lease.
pub async fn finish_poll(
    store: &Store,
    builder_id: i64,
    node_id: &str,
    next_poll_in_ms: i64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "UPDATE git_builders SET next_poll_at_ms = $1, poll_lease_until_ms = 0, poll_owner = NULL, \
         last_polled_at_ms = $2, last_poll_error = $3 WHERE id = $4 AND poll_owner = $5",
    )
    .bind(now + next_poll_in_ms)
    .bind(now)
    .bind(error)
    .bind(builder_id)
    .bind(node_id)
    .execute(store.pool())
    .await?;
    Ok(())
}
