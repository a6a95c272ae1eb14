//! The cluster's tables: the definition (`cluster`, one row) and the members (`nodes`). These
//! queries run on PostgreSQL only — load balancing refuses SQLite — and take the time from the
//! database's clock, so a node with a wrong clock cannot make its own check-ins look fresh.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Store, StoreError};

/// The database's clock, epoch milliseconds.
const DB_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// Channel for membership events; the payload is `"<event> <node id>"` or `"reset"`.
pub const CLUSTER_CHANNEL: &str = "pkgnode_cluster";

/// What every node must match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterRow {
    /// sha256 of the secure key, hex.
    pub key_fingerprint: String,
    pub protocol: String,
    pub version: String,
    /// sha256 of the configuration without the node's own address options.
    pub config_digest: String,
    /// The uid of the node that defined it.
    pub defined_by: String,
    pub defined_at_ms: i64,
}

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub id: i64,
    pub uid: String,
    pub host: String,
    pub ipv4: String,
    pub port: i64,
    pub version: String,
    /// The status word (`Online`, `Clock skew`…).
    pub status: String,
    /// Why a node was refused, in words.
    pub reason: String,
    /// `online` or `offline`, as the operator last asked.
    pub desired: String,
    pub started_ms: i64,
    pub last_seen_ms: i64,
    /// 1-, 5- and 15-minute load averages, in thousandths.
    pub load_milli: [i64; 3],
    pub in_flight: i64,
    pub clock_offset_ms: i64,
}

/// A node's identity and address when it joins.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub uid: String,
    pub host: String,
    pub ipv4: String,
    pub port: i64,
    pub version: String,
}

/// How a join ended.
#[derive(Debug, Clone)]
pub enum Joined {
    /// The node's row is written: its id and what it decided.
    Joined { id: i64, decision: JoinDecision },
    /// A live node at `address` holds this node id; nothing was written.
    IdentityHeld { address: String },
}

/// What a joining node decided, inside the join transaction.
#[derive(Debug, Clone)]
pub struct JoinDecision {
    /// Write this definition (first node, or redefinition when no other node is online).
    pub define: Option<ClusterRow>,
    pub status: String,
    pub reason: String,
}

/// What a check-in writes.
#[derive(Debug, Clone)]
pub struct CheckIn {
    pub status: String,
    pub reason: String,
    pub load_milli: [i64; 3],
    pub in_flight: i64,
    pub clock_offset_ms: i64,
}

const NODE_COLUMNS: &str = "id, uid, host, ipv4, port, version, status, reason, desired, started_ms, \
                            last_seen_ms, load1_milli, load5_milli, load15_milli, in_flight, clock_offset_ms";

fn node_from_row(row: &AnyRow) -> Result<NodeRow, StoreError> {
    Ok(NodeRow {
        id: row.try_get("id")?,
        uid: row.try_get("uid")?,
        host: row.try_get("host")?,
        ipv4: row.try_get("ipv4")?,
        port: row.try_get("port")?,
        version: row.try_get("version")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
        desired: row.try_get("desired")?,
        started_ms: row.try_get("started_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        load_milli: [
            row.try_get("load1_milli")?,
            row.try_get("load5_milli")?,
            row.try_get("load15_milli")?,
        ],
        in_flight: row.try_get("in_flight")?,
        clock_offset_ms: row.try_get("clock_offset_ms")?,
    })
}

fn cluster_from_row(row: &AnyRow) -> Result<ClusterRow, StoreError> {
    Ok(ClusterRow {
        key_fingerprint: row.try_get("key_fingerprint")?,
        protocol: row.try_get("protocol")?,
        version: row.try_get("version")?,
        config_digest: row.try_get("config_digest")?,
        defined_by: row.try_get("defined_by")?,
        defined_at_ms: row.try_get("defined_at_ms")?,
    })
}

impl Store {
    fn require_postgres(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Postgres => Ok(()),
            Backend::Sqlite => Err(StoreError::Conflict(
                "load balancing needs PostgreSQL; this node uses SQLite".into(),
            )),
        }
    }

    /// The database's clock, epoch milliseconds.
    pub async fn db_now_ms(&self) -> Result<i64, StoreError> {
        self.require_postgres()?;
        Ok(sqlx::query(&format!("SELECT {DB_NOW_MS}"))
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// The cluster definition, if a node has defined one.
    pub async fn cluster(&self) -> Result<Option<ClusterRow>, StoreError> {
        self.require_postgres()?;
        let row = sqlx::query(
            "SELECT key_fingerprint, protocol, version, config_digest, defined_by, defined_at_ms \
             FROM cluster WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(cluster_from_row).transpose()
    }

    /// Every member, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.require_postgres()?;
        let rows = sqlx::query(&format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(node_from_row).collect()
    }

    pub async fn node(&self, id: i64) -> Result<Option<NodeRow>, StoreError> {
        self.require_postgres()?;
        let row = sqlx::query(&format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node_from_row).transpose()
    }

    pub async fn node_by_uid(&self, uid: &str) -> Result<Option<NodeRow>, StoreError> {
        self.require_postgres()?;
        let row = sqlx::query(&format!("SELECT {NODE_COLUMNS} FROM nodes WHERE uid = $1"))
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node_from_row).transpose()
    }

    /// Joins the cluster in one transaction that excludes other joins: reads the definition and
    /// whether another node is online (checked in within `live_within_ms`), lets `decide` judge,
    /// writes the definition it asks for and upserts the node's row. Returns the row id.
    pub async fn join_cluster(
        &self,
        node: &NewNode,
        live_within_ms: i64,
        decide: impl FnOnce(Option<&ClusterRow>, bool) -> JoinDecision,
    ) -> Result<Joined, StoreError> {
        self.require_postgres()?;
        let mut tx = self.pool.begin().await?;
        // Two first nodes must not both define the cluster; two processes with one id must not
        // both take its row (joins are serialised by this lock).
        sqlx::query("LOCK TABLE cluster IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        // A live row with this id at another address belongs to another process (a data dir
        // copied with a VM image, or shared): taking it over would hide that node.
        let held = sqlx::query(&format!(
            "SELECT ipv4, port FROM nodes WHERE uid = $1 AND last_seen_ms > {DB_NOW_MS} - $2 \
             AND (ipv4 <> $3 OR port <> $4) AND NOT (status = 'Offline' AND reason = 'stopped')"
        ))
        .bind(&node.uid)
        .bind(live_within_ms)
        .bind(&node.ipv4)
        .bind(node.port)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = held {
            let ipv4: String = row.try_get(0)?;
            let port: i64 = row.try_get(1)?;
            tx.rollback().await?;
            return Ok(Joined::IdentityHeld {
                address: format!("{ipv4}:{port}"),
            });
        }
        let existing = sqlx::query(
            "SELECT key_fingerprint, protocol, version, config_digest, defined_by, defined_at_ms \
             FROM cluster WHERE id = 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(cluster_from_row)
        .transpose()?;
        let others_online: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) FROM nodes WHERE uid <> $1 AND status = 'Online' \
             AND last_seen_ms > {DB_NOW_MS} - $2"
        ))
        .bind(&node.uid)
        .bind(live_within_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let decision = decide(existing.as_ref(), others_online > 0);
        if let Some(definition) = &decision.define {
            sqlx::query(&format!(
                "INSERT INTO cluster (id, key_fingerprint, protocol, version, config_digest, defined_by, defined_at_ms) \
                 VALUES (1, $1, $2, $3, $4, $5, {DB_NOW_MS}) \
                 ON CONFLICT (id) DO UPDATE SET key_fingerprint = excluded.key_fingerprint, \
                 protocol = excluded.protocol, version = excluded.version, \
                 config_digest = excluded.config_digest, defined_by = excluded.defined_by, \
                 defined_at_ms = excluded.defined_at_ms"
            ))
            .bind(&definition.key_fingerprint)
            .bind(&definition.protocol)
            .bind(&definition.version)
            .bind(&definition.config_digest)
            .bind(&definition.defined_by)
            .execute(&mut *tx)
            .await?;
        }
        let id: i64 = sqlx::query(&format!(
            "INSERT INTO nodes (uid, host, ipv4, port, version, status, reason, started_ms, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, {DB_NOW_MS}, {DB_NOW_MS}) \
             ON CONFLICT (uid) DO UPDATE SET host = excluded.host, ipv4 = excluded.ipv4, \
             port = excluded.port, version = excluded.version, status = excluded.status, \
             reason = excluded.reason, started_ms = excluded.started_ms, \
             last_seen_ms = excluded.last_seen_ms, in_flight = 0 \
             RETURNING id"
        ))
        .bind(&node.uid)
        .bind(&node.host)
        .bind(&node.ipv4)
        .bind(node.port)
        .bind(&node.version)
        .bind(&decision.status)
        .bind(&decision.reason)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        notify_in(&mut tx, &format!("arrived {id}")).await?;
        tx.commit().await?;
        Ok(Joined::Joined { id, decision })
    }

    /// Records a check-in; returns the row as it was before, or `None` when the row is gone.
    /// A status change is announced to the other nodes.
    pub async fn check_in(
        &self,
        id: i64,
        check_in: &CheckIn,
    ) -> Result<Option<NodeRow>, StoreError> {
        self.require_postgres()?;
        let mut tx = self.pool.begin().await?;
        let Some(before) = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(node_from_row)
        .transpose()?
        else {
            return Ok(None);
        };
        // A node being deleted keeps that status whatever it reports.
        let status = if before.status == "Deleting" {
            before.status.clone()
        } else {
            check_in.status.clone()
        };
        sqlx::query(&format!(
            "UPDATE nodes SET status = $1, reason = $2, last_seen_ms = {DB_NOW_MS}, load1_milli = $3, \
             load5_milli = $4, load15_milli = $5, in_flight = $6, clock_offset_ms = $7 WHERE id = $8"
        ))
        .bind(&status)
        .bind(&check_in.reason)
        .bind(check_in.load_milli[0])
        .bind(check_in.load_milli[1])
        .bind(check_in.load_milli[2])
        .bind(check_in.in_flight)
        .bind(check_in.clock_offset_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if status != before.status {
            notify_in(&mut tx, &status_event(&status, id)).await?;
        }
        tx.commit().await?;
        Ok(Some(before))
    }

    /// Sets a node's status (and announces it).
    pub async fn set_node_status(
        &self,
        id: i64,
        status: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.require_postgres()?;
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query("UPDATE nodes SET status = $1, reason = $2 WHERE id = $3")
            .bind(status)
            .bind(reason)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed > 0 {
            notify_in(&mut tx, &status_event(status, id)).await?;
        }
        tx.commit().await?;
        Ok(changed > 0)
    }

    /// Records what the operator wants (`online`/`offline`) and tells the node.
    pub async fn set_desired(&self, id: i64, desired: &str) -> Result<bool, StoreError> {
        self.require_postgres()?;
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query("UPDATE nodes SET desired = $1 WHERE id = $2")
            .bind(desired)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed > 0 {
            let event = if desired == "offline" {
                "drain"
            } else {
                "undrain"
            };
            notify_in(&mut tx, &format!("{event} {id}")).await?;
        }
        tx.commit().await?;
        Ok(changed > 0)
    }

    /// Removes a node's row; false when it was already gone.
    pub async fn delete_node_row(&self, id: i64) -> Result<bool, StoreError> {
        self.require_postgres()?;
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed > 0 {
            notify_in(&mut tx, &format!("deleted {id}")).await?;
        }
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Forgets the cluster: its definition and every member. Returns how many nodes were removed.
    pub async fn reset_cluster(&self) -> Result<u64, StoreError> {
        self.require_postgres()?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE cluster IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let removed = sqlx::query("DELETE FROM nodes")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM cluster").execute(&mut *tx).await?;
        notify_in(&mut tx, "reset").await?;
        tx.commit().await?;
        Ok(removed)
    }
}

/// The event announcing that a node now has `status`.
fn status_event(status: &str, id: i64) -> String {
    match status {
        "Online" => format!("online {id}"),
        "Offline" => format!("offline {id}"),
        "Deleting" => format!("deleting {id}"),
        _ => format!("status {id}"),
    }
}

/// Sends a membership event when the transaction commits. Payloads are built from fixed words
/// and integers only, so formatting them into the statement is safe.
async fn notify_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    payload: &str,
) -> Result<(), StoreError> {
    debug_assert!(
        payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ')
    );
    sqlx::query(&format!("NOTIFY {CLUSTER_CHANNEL}, '{payload}'"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
