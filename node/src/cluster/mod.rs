//! Load balancing after Posit Workbench's rules: the cluster is defined in PostgreSQL by the first
//! node to come online; every node must have the same secure key, version and configuration, checks
//! in every `heartbeat`, keeps its clock within `max_clock_skew` of the database's, and can be
//! listed, put offline, brought back and deleted by an operator.
//!
//! **Architecture Invariant:** the secure key never leaves the node: the database holds its
//! fingerprint, and members prove they hold it by signing requests (`signing`).

pub mod address;
pub mod admin;
pub mod clock;
pub mod definition;
pub mod events;
pub mod members;
pub mod membership;
pub mod report;
pub mod signing;
pub mod status;

use std::path::PathBuf;

pub use members::Members;
pub use membership::Membership;
pub use status::{NodeStatus, StatusCell};

use crate::config::Config;
use crate::store::{Store, StoreError};

/// What membership needs of the node it runs in. A narrow view, so that `cluster` knows nothing
/// of the HTTP layer that implements it.
pub trait NodeSide: Send + Sync {
    fn config(&self) -> &Config;
    fn store(&self) -> &Store;
    /// The fingerprint of the secure key (never the key).
    fn key_fingerprint(&self) -> String;
    fn status(&self) -> &StatusCell;
    fn members(&self) -> &Members;
    /// Whether the node takes traffic: false makes `/__ping__` answer 503.
    fn set_serving(&self, serving: bool);
    /// Requests being answered now (a draining node waits for none).
    fn in_flight(&self) -> i64;
    /// Records the id the node joined under.
    fn set_node_id(&self, id: String);
}

/// Errors of the cluster's operator commands.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "load balancing needs PostgreSQL: set [database] url = \"postgres://…\" in the configuration"
    )]
    NeedsPostgres,
    #[error("no node with ID {0}; `pkgnode list-nodes` shows the IDs")]
    NoSuchNode(i64),
    #[error(
        "this node ({uid}) is not in the cluster: start it with `pkgnode serve`, or name a node with --node ID"
    )]
    NotRegistered { uid: String },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Timeout(String),
}

fn uid_path(config: &Config) -> PathBuf {
    config.data_dir.join("node-id")
}

/// This node's stable identity, kept in its data directory; created on first use.
pub fn node_uid(config: &Config) -> String {
    if let Some(uid) = existing_node_uid(config) {
        return uid;
    }
    let uid = uuid::Uuid::new_v4().to_string();
    if std::fs::create_dir_all(&config.data_dir).is_ok()
        && let Err(e) = std::fs::write(uid_path(config), &uid)
    {
        tracing::warn!(error = %e, "cannot save the node id; it will change at the next start");
    }
    uid
}

/// This node's identity if it has one (operator commands never create it).
pub fn existing_node_uid(config: &Config) -> Option<String> {
    std::fs::read_to_string(uid_path(config))
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}
