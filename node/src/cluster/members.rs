//! What this node knows of the other members, kept fresh by cluster events and check-ins; it
//! answers `/load-balancer/status` and decides which addresses count as members.

use std::net::IpAddr;
use std::sync::RwLock;
use std::time::Instant;

use super::status::NodeStatus;
use crate::store::cluster::NodeRow;

#[derive(Debug)]
struct Snapshot {
    nodes: Vec<NodeRow>,
    db_now_ms: i64,
    taken: Instant,
}

/// The member list as last read from the database.
#[derive(Debug)]
pub struct Members {
    snapshot: RwLock<Snapshot>,
}

impl Default for Members {
    fn default() -> Self {
        Self {
            snapshot: RwLock::new(Snapshot {
                nodes: Vec::new(),
                db_now_ms: 0,
                taken: Instant::now(),
            }),
        }
    }
}

impl Members {
    /// Replaces the list with one read at database time `db_now_ms`.
    pub fn replace(&self, nodes: Vec<NodeRow>, db_now_ms: i64) {
        let mut snapshot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        *snapshot = Snapshot {
            nodes,
            db_now_ms,
            taken: Instant::now(),
        };
    }

    /// The members and the database time now, estimated from when the list was read.
    pub fn current(&self) -> (Vec<NodeRow>, i64) {
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let elapsed = snapshot.taken.elapsed().as_millis() as i64;
        (snapshot.nodes.clone(), snapshot.db_now_ms + elapsed)
    }

    /// Whether `ip` is the address of a node the cluster accepted (refused nodes are not members).
    pub fn is_member_address(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            v4 => v4,
        };
        let text = ip.to_string();
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        snapshot.nodes.iter().any(|node| {
            node.ipv4 == text
                && NodeStatus::parse(&node.status).is_some_and(|status| !status.is_refusal())
        })
    }
}
