//! What the checklist reads from outside the cluster, gathered once by [`super::gather`] and
//! judged by the rules: plain data, serializable as evidence.

use scenarios::writes::{LedgerEntry, ReadOutcome};
use serde::Serialize;

/// Everything the rules judge.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Facts {
    /// Each node as it describes itself on its own address.
    pub nodes: Vec<NodeFacts>,
    /// One upload through the balancer, read back from every node.
    pub shared_storage: SharedStorageFacts,
    /// `/load-balancer/status` asked by the harness (a non-member) of each node and of the
    /// balancer.
    pub status_endpoint: Vec<EndpointAnswer>,
    /// The balancer's view of its servers (server name, `UP`/`DOWN`…); `None` when the
    /// provider cannot read it, `Err` when reading it failed.
    pub balancer: Option<Result<Vec<(String, String)>, String>>,
    /// `pkgnode locktester` from two nodes against their lock directory.
    pub lock_test: LockTestFacts,
    /// One node drained while the balancer was watched.
    pub balancer_drain: DrainFacts,
}

/// `pkgnode locktester` run as Workbench prescribes: the first node's instance takes every
/// lock type in its lock directory and holds them; meanwhile each other node's instance, in
/// *its* lock directory, tries the same locks and reports which it could not take.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LockTestFacts {
    /// Why it was not run (package files in S3, a provider that runs no command on a node);
    /// `None` when it ran.
    pub not_run: Option<String>,
    /// The holder first, then one run per other node.
    pub runs: Vec<LockTesterRun>,
}

/// One `pkgnode locktester --dir DIR` on one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LockTesterRun {
    pub node: String,
    /// The lock directory as the node names it (`{storage dir}/.locks`).
    pub dir: String,
    /// What it printed, line by line.
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    /// `None`: ended by a signal (the holder, interrupted) or never ended.
    pub exit_code: Option<i32>,
    /// Why it could not be run or did not finish in time.
    pub error: Option<String>,
}

/// The balancer watched while one node's `/__ping__` fails: the node put offline (it drains,
/// then answers `/__ping__` 503 while it keeps running), the balancer's view read until the
/// node's server leaves rotation; the node put online again and watched until it returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DrainFacts {
    /// Why no node was drained (the balancer's view cannot be read, a server is not UP to
    /// begin with, no command can be run on a node); `None` when one was.
    pub not_run: Option<String>,
    /// The node drained.
    pub node: String,
    /// How long the balancer was given each way, seconds.
    pub within_s: f64,
    /// What `pkgnode offline` said, or why it failed.
    pub offline: Option<Result<String, String>>,
    /// The node's `/__ping__` status while drained (the health check's own question).
    pub ping_while_drained: Option<Result<u16, String>>,
    /// Seconds after the drain when the balancer first showed the node's server not UP, with
    /// that state; `None` if it kept it UP for `within_s`.
    pub out_of_rotation_after_s: Option<f64>,
    /// The server's last state seen while the node was drained.
    pub state_while_drained: String,
    /// What `pkgnode online` said, or why it failed.
    pub online: Option<Result<String, String>>,
    /// Seconds after `online` when the balancer showed the server UP again; `None` if not
    /// within `within_s`.
    pub back_in_rotation_after_s: Option<f64>,
}

/// One node's `/__api__/status`, read on the node's own URL.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeFacts {
    /// The provider's name for it (`node-1`).
    pub node: String,
    pub url: String,
    /// What it answered, or why it did not.
    pub status: Result<NodeStatusFacts, String>,
}

/// The fields of `/__api__/status` the rules read; `None` where the node does not say.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeStatusFacts {
    /// The node's uid (`node_id`), as members list it.
    pub node_id: String,
    pub version: Option<String>,
    /// sha256 of the secure key (never the key).
    pub key_fingerprint: Option<String>,
    /// sha256 of the configuration without the node's own address options.
    pub config_digest: Option<String>,
    /// `postgresql` or `sqlite`.
    pub database_backend: Option<String>,
    /// `s3:BUCKET` or `dir:PATH`.
    pub storage: Option<String>,
    /// The node's own cluster status word; `None` when clustering is off.
    pub cluster_status: Option<String>,
    pub serving: bool,
    /// The members as this node lists them.
    pub members: Vec<MemberFact>,
}

/// One member as a node lists it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemberFact {
    pub uid: String,
    /// `ip:port`.
    pub address: String,
    /// The status `list-nodes` shows (`Online`, `Missed check-in`…).
    pub status: String,
    /// Database clock minus the member's clock at its last check-in, milliseconds.
    pub clock_offset_ms: Option<i64>,
}

impl NodeFacts {
    /// The status, when the node answered.
    pub fn answered(&self) -> Option<&NodeStatusFacts> {
        self.status.as_ref().ok()
    }

    /// This node's own entry in its own member list.
    pub fn own_entry(&self) -> Option<&MemberFact> {
        let status = self.answered()?;
        status.members.iter().find(|m| m.uid == status.node_id)
    }
}

/// The shared-storage probe: one unique wheel uploaded through the balancer, then read from
/// every node directly until each serves it or the time is up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SharedStorageFacts {
    /// The upload as the writer recorded it; `None` when it could not be made at all.
    pub upload: Option<LedgerEntry>,
    /// Why there is no upload.
    pub upload_error: Option<String>,
    /// How long the nodes were given, seconds.
    pub within_s: f64,
    /// Each node's last read.
    pub reads: Vec<StorageRead>,
}

/// What one node served of the probe upload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StorageRead {
    pub node: String,
    pub outcome: ReadOutcome,
    pub detail: String,
    /// Seconds after the upload was acknowledged when the node first served the right bytes.
    pub present_after_s: Option<f64>,
}

/// An answer to `/load-balancer/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointAnswer {
    /// `node-1`…, or `balancer`.
    pub asked: String,
    pub url: String,
    /// The HTTP status, or why there was none.
    pub answer: Result<u16, String>,
}
