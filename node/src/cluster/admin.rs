//! The operator commands behind `pkgnode list-nodes`, `node-status`, `delete-node`,
//! `reset-cluster`, `offline` and `online`. They work on the database directly; a running node
//! hears what concerns it through a notification (or at its next check-in) and acts.

use std::time::{Duration, Instant};

use super::report;
use super::status::{self, NodeStatus};
use super::{ClusterError, existing_node_uid};
use crate::config::Config;
use crate::store::Store;
use crate::store::cluster::NodeRow;

/// How long to wait for a TCP connection when asking whether a node is reachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);

/// The operator's handle on the cluster.
pub struct Admin {
    store: Store,
    config: Config,
}

fn address(node: &NodeRow) -> String {
    let host = if node.ipv4.is_empty() {
        &node.host
    } else {
        &node.ipv4
    };
    format!("{host}:{}", node.port)
}

/// Whether something accepts connections at the node's address (its process is running).
pub async fn reachable(node: &NodeRow) -> bool {
    let target = address(node);
    matches!(
        tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(&target)).await,
        Ok(Ok(_))
    )
}

impl Admin {
    /// Opens the configured database, which must be PostgreSQL.
    pub async fn open(config: &Config) -> Result<Self, ClusterError> {
        if !config.is_postgres() {
            return Err(ClusterError::NeedsPostgres);
        }
        let store = Store::open(config).await?;
        Ok(Self {
            store,
            config: config.clone(),
        })
    }

    fn missed_after_ms(&self) -> i64 {
        self.config.cluster.missed_check_in_after.as_millis() as i64
    }

    /// The `list-nodes` table.
    pub async fn list_nodes(&self) -> Result<String, ClusterError> {
        let cluster = self.store.cluster().await?;
        let nodes = self.store.nodes().await?;
        let now = self.store.db_now_ms().await?;
        Ok(report::list_nodes(
            cluster.as_ref(),
            &nodes,
            now,
            self.missed_after_ms(),
        ))
    }

    /// The `node-status` JSON.
    pub async fn node_status(&self) -> Result<serde_json::Value, ClusterError> {
        let cluster = self.store.cluster().await?;
        let nodes = self.store.nodes().await?;
        let now = self.store.db_now_ms().await?;
        Ok(report::node_status(
            cluster.as_ref(),
            &nodes,
            now,
            self.missed_after_ms(),
        ))
    }

    /// The named node, or this node (found by the id in its data directory).
    pub async fn target(&self, id: Option<i64>) -> Result<NodeRow, ClusterError> {
        match id {
            Some(id) => self
                .store
                .node(id)
                .await?
                .ok_or(ClusterError::NoSuchNode(id)),
            None => {
                let uid =
                    existing_node_uid(&self.config).unwrap_or_else(|| "no node id yet".into());
                self.store
                    .node_by_uid(&uid)
                    .await?
                    .ok_or(ClusterError::NotRegistered { uid })
            }
        }
    }

    async fn fresh(&self, node: &NodeRow) -> Result<bool, ClusterError> {
        let now = self.store.db_now_ms().await?;
        Ok(now - node.last_seen_ms <= self.missed_after_ms())
    }

    async fn displayed(&self, node: &NodeRow) -> Result<String, ClusterError> {
        let now = self.store.db_now_ms().await?;
        Ok(status::displayed(
            &node.status,
            node.last_seen_ms,
            now,
            self.missed_after_ms(),
        ))
    }

    /// Waits until `done` holds for the node's row (`None` when the row is gone).
    async fn wait_for(
        &self,
        id: i64,
        timeout: Duration,
        done: impl Fn(Option<&NodeRow>) -> bool,
    ) -> Result<Option<NodeRow>, Option<NodeRow>> {
        let deadline = Instant::now() + timeout;
        loop {
            let row = self.store.node(id).await.ok().flatten();
            if done(row.as_ref()) {
                return Ok(row);
            }
            if Instant::now() >= deadline {
                return Err(row);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Deletes a node. An Online, reachable node is refused unless `force`; a running node is
    /// told (status Deleting) and removes itself, then stops.
    pub async fn delete_node(
        &self,
        id: i64,
        force: bool,
        timeout: Duration,
    ) -> Result<String, ClusterError> {
        let node = self
            .store
            .node(id)
            .await?
            .ok_or(ClusterError::NoSuchNode(id))?;
        let shown = self.displayed(&node).await?;
        let running = reachable(&node).await;
        if shown == NodeStatus::Online.word() && running && !force {
            return Err(ClusterError::Refused(format!(
                "node {id} ({}) is Online and reachable: put it offline first (`pkgnode offline --node {id}`) or pass --force",
                address(&node)
            )));
        }
        self.store
            .set_node_status(id, NodeStatus::Deleting.word(), "deleted by an operator")
            .await?;
        if running {
            // The node hears it, drains, removes its row and stops.
            let _ = self.wait_for(id, timeout, |row| row.is_none()).await;
        }
        self.store.delete_node_row(id).await?;
        Ok(format!("deleted node {id} ({})", address(&node)))
    }

    /// Removes the cluster definition and every node. Refused while a node is online unless
    /// `force` (running nodes then rejoin, and the first redefines the cluster).
    pub async fn reset(&self, force: bool) -> Result<String, ClusterError> {
        let nodes = self.store.nodes().await?;
        let now = self.store.db_now_ms().await?;
        let mut online = Vec::new();
        for node in &nodes {
            let shown =
                status::displayed(&node.status, node.last_seen_ms, now, self.missed_after_ms());
            if shown == NodeStatus::Online.word() && reachable(node).await {
                online.push(format!("{} ({})", node.id, address(node)));
            }
        }
        if !online.is_empty() && !force {
            return Err(ClusterError::Refused(format!(
                "node(s) {} are online: stop every node first, or pass --force",
                online.join(", ")
            )));
        }
        let removed = self.store.reset_cluster().await?;
        Ok(format!(
            "removed the cluster definition and {removed} node(s); the next node to come online defines the cluster"
        ))
    }

    /// Puts a node offline: `/__ping__` answers 503 at once, requests in flight finish, then the
    /// node records Offline. Waits up to `timeout` for that.
    pub async fn offline(
        &self,
        id: Option<i64>,
        timeout: Duration,
    ) -> Result<String, ClusterError> {
        let node = self.target(id).await?;
        self.store.set_desired(node.id, "offline").await?;
        if self.fresh(&node).await? && reachable(&node).await {
            let offline = NodeStatus::Offline.word();
            match self
                .wait_for(node.id, timeout, |row| {
                    row.is_none_or(|r| r.status == offline)
                })
                .await
            {
                Ok(_) => Ok(format!("node {} ({}) is offline", node.id, address(&node))),
                Err(row) => Err(ClusterError::Timeout(format!(
                    "node {} ({}) has not finished draining after {}: {} request(s) still in flight; it goes Offline when they finish",
                    node.id,
                    address(&node),
                    humantime::format_duration(timeout),
                    row.map(|r| r.in_flight).unwrap_or(0)
                ))),
            }
        } else {
            self.store
                .set_node_status(
                    node.id,
                    NodeStatus::Offline.word(),
                    "put offline by an operator",
                )
                .await?;
            Ok(format!(
                "node {} ({}) is not running; it is marked offline and stays offline when it starts",
                node.id,
                address(&node)
            ))
        }
    }

    /// Brings a node back online and waits up to `timeout` for it to leave Offline.
    pub async fn online(&self, id: Option<i64>, timeout: Duration) -> Result<String, ClusterError> {
        let node = self.target(id).await?;
        self.store.set_desired(node.id, "online").await?;
        if !(self.fresh(&node).await? && reachable(&node).await) {
            return Ok(format!(
                "node {} ({}) is not running; it comes online when it starts",
                node.id,
                address(&node)
            ));
        }
        let offline = NodeStatus::Offline.word();
        match self
            .wait_for(node.id, timeout, |row| {
                row.is_none_or(|r| r.status != offline)
            })
            .await
        {
            Ok(Some(row)) if row.status == NodeStatus::Online.word() => {
                Ok(format!("node {} ({}) is online", node.id, address(&node)))
            }
            Ok(Some(row)) => Err(ClusterError::Refused(format!(
                "node {} ({}) left Offline but is {}: {}",
                node.id,
                address(&node),
                row.status,
                row.reason
            ))),
            Ok(None) => Err(ClusterError::NoSuchNode(node.id)),
            Err(_) => Err(ClusterError::Timeout(format!(
                "node {} ({}) did not come online within {}",
                node.id,
                address(&node),
                humantime::format_duration(timeout)
            ))),
        }
    }
}
