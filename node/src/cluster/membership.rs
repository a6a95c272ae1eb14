//! A running node's life in the cluster: it joins (checking its key, address, version and
//! configuration against the definition, or writing the definition when it is first), checks in
//! every `heartbeat` with its clock offset and load, follows the operator's offline/online
//! requests (draining in-flight requests first), and leaves on shutdown.
//!
//! **Architecture Invariant:** a node that does not match never exits on its own: it records why
//! in its row, answers `/__ping__` with 503 and keeps checking in, so the operator sees the reason
//! in `list-nodes`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::NodeSide;
use super::address::{self, NodeAddress};
use super::clock;
use super::definition::{self, node_version};
use super::events::{self, ClusterEvent};
use super::status::NodeStatus;
use crate::store::StoreError;
use crate::store::cluster::{CheckIn, JoinDecision, Joined, NewNode};

/// How often a draining node looks at its in-flight requests.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// A problem that keeps the node out of the cluster.
pub type Refusal = (NodeStatus, String);

/// This node's membership.
pub struct Membership {
    state: Arc<dyn NodeSide>,
    uid: String,
    address: NodeAddress,
    /// Problems found on this machine (key file, address): fixed for the process's life.
    local_problem: Option<Refusal>,
    /// A mismatch with the cluster definition, found when joining.
    mismatch: Mutex<Option<Refusal>>,
    row_id: AtomicI64,
    /// Set when the node was deleted: leaving removes its row.
    deleted: AtomicBool,
    check_in_now: Notify,
    refresh_members: Notify,
    exit: Notify,
}

enum Next {
    Heartbeat,
    Soon,
    Exit,
}

/// The 1-, 5- and 15-minute load averages, in thousandths.
fn load_milli() -> [i64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|v| {
        v.parse::<f64>()
            .map(|f| (f * 1000.0).round() as i64)
            .unwrap_or(0)
    });
    [
        values.next().unwrap_or(0),
        values.next().unwrap_or(0),
        values.next().unwrap_or(0),
    ]
}

impl Membership {
    /// Resolves the address and joins. `key_problem` is set when the key file was refused.
    pub async fn join(
        state: Arc<dyn NodeSide>,
        uid: String,
        key_problem: Option<Refusal>,
    ) -> Result<Arc<Self>, StoreError> {
        let config = state.config();
        let (address, address_problem) =
            match address::resolve(config.cluster.www_host_name.as_deref(), config.listen).await {
                Ok(address) => (address, None),
                Err(e) => {
                    let host = config
                        .cluster
                        .www_host_name
                        .clone()
                        .unwrap_or_else(|| e.name.clone());
                    let address = NodeAddress {
                        host,
                        ipv4: String::new(),
                        port: config.listen.port(),
                    };
                    (address, Some((NodeStatus::FailedToResolve, e.to_string())))
                }
            };
        let local_problem = key_problem.or(address_problem);
        let mut membership = Self {
            state: state.clone(),
            uid,
            address,
            local_problem,
            mismatch: Mutex::new(None),
            row_id: AtomicI64::new(0),
            deleted: AtomicBool::new(false),
            check_in_now: Notify::new(),
            refresh_members: Notify::new(),
            exit: Notify::new(),
        };
        if let Some(holder) = membership.register().await? {
            // Another live process at another address holds this id (a data dir shared or
            // copied with an image): this process takes an id of its own, kept in memory only,
            // since the id file belongs to that process too.
            let fresh = uuid::Uuid::new_v4().to_string();
            tracing::warn!(
                held_by = %holder,
                node_id = %membership.uid,
                new_node_id = %fresh,
                "this node id is held by a live node at another address; joining under a new id \
                 (give every node its own data dir to keep ids across restarts)"
            );
            membership.uid = fresh.clone();
            state.set_node_id(fresh);
            if let Some(holder) = membership.register().await? {
                return Err(StoreError::Conflict(format!(
                    "a fresh node id is also held by the node at {holder}"
                )));
            }
        }
        Ok(Arc::new(membership))
    }

    /// The node's id in `list-nodes`.
    pub fn row_id(&self) -> i64 {
        self.row_id.load(Ordering::Acquire)
    }

    fn problem(&self) -> Option<Refusal> {
        if let Some(problem) = &self.local_problem {
            return Some(problem.clone());
        }
        self.mismatch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes the node's row, and the cluster definition when this node is the first. `Some`
    /// (the holder's address), with nothing written, when a live node at another address
    /// holds this node's id.
    async fn register(&self) -> Result<Option<String>, StoreError> {
        let state = &self.state;
        let config = state.config();
        let mine = definition::candidate(&state.key_fingerprint(), config, &self.uid);
        let local = self.local_problem.clone();
        let node = NewNode {
            uid: self.uid.clone(),
            host: self.address.host.clone(),
            ipv4: self.address.ipv4.clone(),
            port: i64::from(self.address.port),
            version: node_version(),
        };
        let live_within = config.cluster.missed_check_in_after.as_millis() as i64;
        let joined = state
            .store()
            .join_cluster(&node, live_within, |existing, others_online| {
                decide(&mine, local, existing, others_online)
            })
            .await?;
        let (id, decision) = match joined {
            Joined::Joined { id, decision } => (id, decision),
            Joined::IdentityHeld { address } => return Ok(Some(address)),
        };
        self.row_id.store(id, Ordering::Release);
        let status = NodeStatus::parse(&decision.status).unwrap_or(NodeStatus::Starting);
        let mismatch = if status.is_refusal() && self.local_problem.is_none() {
            Some((status, decision.reason.clone()))
        } else {
            None
        };
        *self.mismatch.lock().unwrap_or_else(|e| e.into_inner()) = mismatch;
        state.set_serving(false);
        state.status().set(status);
        if status.is_refusal() {
            tracing::error!(node = id, status = %status, reason = %decision.reason, "this node does not match the cluster and will not come online");
        } else if decision.define.is_some() {
            tracing::info!(node = id, host = %self.address.host, "defined the cluster: {}",
                if decision.reason.is_empty() { "first node" } else { decision.reason.as_str() });
        } else {
            tracing::info!(node = id, host = %self.address.host, "joined the cluster");
        }
        Ok(None)
    }

    /// Starts the check-in loop, the event listener and the member list refresher.
    pub fn spawn(self: &Arc<Self>) {
        let heartbeat = self.state.config().cluster.heartbeat;
        tokio::spawn(self.clone().check_in_loop());
        let weak: Weak<Self> = Arc::downgrade(self);
        events::spawn_listener(self.state.store().clone(), heartbeat, move |event| {
            if let Some(me) = weak.upgrade() {
                me.on_event(event);
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.refresh_member_list().await;
                tokio::select! {
                    _ = tokio::time::sleep(heartbeat) => {}
                    _ = me.refresh_members.notified() => {}
                }
            }
        });
    }

    fn on_event(&self, event: Option<ClusterEvent>) {
        let mine = self.row_id();
        match event {
            Some(ClusterEvent::Reset) => self.check_in_now.notify_one(),
            Some(
                event @ (ClusterEvent::Drain(_)
                | ClusterEvent::Undrain(_)
                | ClusterEvent::Deleting(_)),
            ) if event.node() == Some(mine) => {
                tracing::info!(?event, "operator request for this node");
                self.check_in_now.notify_one();
            }
            _ => {}
        }
        self.refresh_members.notify_one();
    }

    async fn refresh_member_list(&self) {
        let store = self.state.store();
        match (store.nodes().await, store.db_now_ms().await) {
            (Ok(nodes), Ok(now)) => self.state.members().replace(nodes, now),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "could not read the cluster's members")
            }
        }
    }

    async fn check_in_loop(self: Arc<Self>) {
        let heartbeat = self.state.config().cluster.heartbeat;
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.check_in_now.notified() => {}
            }
            wait = match self.check_in().await {
                Ok(Next::Heartbeat) => heartbeat,
                Ok(Next::Soon) => DRAIN_POLL.min(heartbeat),
                Ok(Next::Exit) => {
                    self.exit.notify_one();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "check-in failed; retrying at the next heartbeat");
                    heartbeat
                }
            };
        }
    }

    async fn check_in(&self) -> Result<Next, StoreError> {
        let state = &self.state;
        let config = &state.config().cluster;
        let problem = self.problem();
        let reading = match problem {
            None => Some(clock::measure(state.store()).await?),
            Some(_) => None,
        };
        let Some(row) = state.store().node(self.row_id()).await? else {
            tracing::warn!(
                "this node's row is gone (cluster reset, or deleted while unreachable); joining again"
            );
            if let Some(holder) = self.register().await? {
                tracing::error!(
                    held_by = %holder,
                    "this node's id was taken by a live node at another address while its row \
                     was gone; restart this node to join under an id of its own"
                );
            }
            return Ok(Next::Soon);
        };
        if row.status == NodeStatus::Deleting.word() {
            tracing::warn!(
                node = row.id,
                "this node is being deleted from the cluster; stopping"
            );
            state.set_serving(false);
            state.status().set(NodeStatus::Deleting);
            self.deleted.store(true, Ordering::Release);
            return Ok(Next::Exit);
        }
        let in_flight = state.in_flight();
        let before = NodeStatus::parse(&row.status).unwrap_or(NodeStatus::Starting);
        // (status recorded, status this node acts on, reason, serving, next)
        let (recorded, acting, reason, serving, next) = if let Some((status, reason)) = problem {
            (status, status, reason, false, Next::Heartbeat)
        } else if row.desired == "offline" {
            if in_flight > 0 && before != NodeStatus::Offline {
                // Draining: the load balancer already sees 503; requests in flight finish.
                (
                    before,
                    NodeStatus::Offline,
                    format!("draining: {in_flight} request(s) in flight"),
                    false,
                    Next::Soon,
                )
            } else {
                (
                    NodeStatus::Offline,
                    NodeStatus::Offline,
                    "put offline by an operator".into(),
                    false,
                    Next::Heartbeat,
                )
            }
        } else {
            let offset = reading.map(|r| r.offset_ms).unwrap_or(0);
            if reading.is_some_and(|r| r.is_skewed(config.max_clock_skew)) {
                let reason = format!(
                    "clock is {offset} ms off the database's; at most {} ms are allowed",
                    config.max_clock_skew.as_millis()
                );
                (
                    NodeStatus::ClockSkew,
                    NodeStatus::ClockSkew,
                    reason,
                    false,
                    Next::Heartbeat,
                )
            } else {
                (
                    NodeStatus::Online,
                    NodeStatus::Online,
                    String::new(),
                    true,
                    Next::Heartbeat,
                )
            }
        };
        state.set_serving(serving);
        state.status().set(acting);
        let written = state
            .store()
            .check_in(
                row.id,
                &CheckIn {
                    status: recorded.word().to_string(),
                    reason: reason.clone(),
                    load_milli: load_milli(),
                    in_flight,
                    clock_offset_ms: reading.map(|r| r.offset_ms).unwrap_or(0),
                },
            )
            .await?;
        if written.is_none() {
            return Ok(Next::Soon);
        }
        if recorded != before {
            match recorded {
                NodeStatus::Online => tracing::info!(node = row.id, "online"),
                NodeStatus::Offline => tracing::info!(node = row.id, %reason, "offline"),
                other => tracing::warn!(node = row.id, status = %other, %reason, "not serving"),
            }
        }
        Ok(next)
    }

    /// Resolves when the node must stop (it was deleted from the cluster).
    pub async fn exit_requested(&self) {
        self.exit.notified().await;
    }

    /// Marks the node Offline on a clean shutdown, or removes its row when it was deleted or
    /// `delete_node_on_exit` is set. A refused node keeps its status so the reason stays visible.
    pub async fn leave(&self) {
        let state = &self.state;
        state.set_serving(false);
        let id = self.row_id();
        let result =
            if self.deleted.load(Ordering::Acquire) || state.config().cluster.delete_node_on_exit {
                state
                    .store()
                    .delete_node_row(id)
                    .await
                    .map(|_| "removed this node from the cluster")
            } else if self.problem().is_none() {
                state
                    .store()
                    .set_node_status(id, NodeStatus::Offline.word(), "stopped")
                    .await
                    .map(|_| "marked this node Offline")
            } else {
                Ok("left the refused status in place")
            };
        match result {
            Ok(what) => tracing::info!(node = id, "{what}"),
            Err(e) => {
                tracing::warn!(node = id, error = %e, "could not record this node's departure")
            }
        }
    }
}

/// Judges a joining node against the definition, inside the join transaction.
fn decide(
    mine: &crate::store::cluster::ClusterRow,
    local_problem: Option<Refusal>,
    existing: Option<&crate::store::cluster::ClusterRow>,
    others_online: bool,
) -> JoinDecision {
    if let Some((status, reason)) = local_problem {
        return JoinDecision {
            define: None,
            status: status.word().to_string(),
            reason,
        };
    }
    let starting = |define: Option<crate::store::cluster::ClusterRow>, reason: &str| JoinDecision {
        define,
        status: NodeStatus::Starting.word().to_string(),
        reason: reason.to_string(),
    };
    match existing {
        None => starting(Some(mine.clone()), ""),
        Some(cluster) => match definition::mismatch(cluster, mine) {
            None => starting(None, ""),
            // Workbench: with every node offline, the first to come online redefines the cluster.
            Some((_, why)) if !others_online => starting(
                Some(mine.clone()),
                &format!("redefined, as no other node is online ({why})"),
            ),
            Some((status, reason)) => JoinDecision {
                define: None,
                status: status.word().to_string(),
                reason,
            },
        },
    }
}
