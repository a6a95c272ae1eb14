//! The HA checklist (`harness check`): the rules a load-balanced cluster must meet — same
//! version, same secure key, identical configuration, PostgreSQL, shared storage, synchronized
//! clocks, lock correctness, membership, a closed status endpoint, the balancer's health
//! checks — each verified from outside the nodes and judged valid | invalid | unknown with its
//! evidence, like the drill checkers.
//!
//! [`gather`] does the I/O (each node's `/__api__/status` on its own address, an upload through
//! the balancer read back from every node, `/load-balancer/status` from a non-member, the
//! balancer's stats, `pkgnode locktester` from two nodes on directory storage, one node
//! drained while the balancer is watched) and returns [`Facts`]; the rules in [`identity`],
//! [`backend`], [`storage`], [`clocks`], [`locks`] and [`membership`] are pure functions of
//! those facts.
//!
//! **Architecture Invariant:** the rules do no I/O and know no provider; each has a test with
//! broken facts it must call invalid and that names the rule.

pub mod backend;
pub mod clocks;
pub mod facts;
pub mod gather;
pub mod identity;
pub mod locks;
pub mod membership;
pub mod storage;

use std::time::Duration;

use reports::record::CheckerResult;
use serde::Serialize;

pub use facts::{Facts, MemberFact, NodeFacts, NodeStatusFacts};
pub use gather::gather;

/// The rules in the order the table shows them; each name is the checker's name in the run
/// record.
pub const RULES: [&str; 10] = [
    identity::SAME_VERSION,
    identity::SAME_SECURE_KEY,
    identity::IDENTICAL_CONFIG,
    backend::POSTGRESQL,
    storage::SHARED_STORAGE,
    clocks::SYNCHRONIZED_CLOCKS,
    locks::LOCK_CORRECTNESS,
    membership::CLUSTER_MEMBERSHIP,
    membership::STATUS_ENDPOINT_CLOSED,
    membership::BALANCER_HEALTH_CHECK,
];

/// What the checklist tolerates and how long it waits.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChecklistOptions {
    /// How long an upload through the balancer may take to be served by every node.
    #[serde(with = "seconds")]
    pub shared_storage_within: Duration,
    /// Largest clock offset from PostgreSQL's clock a node may have.
    #[serde(with = "seconds")]
    pub max_clock_offset: Duration,
    /// Timeout of each request the checklist makes.
    #[serde(with = "seconds")]
    pub request_timeout: Duration,
    /// How long the balancer is given to take a drained node out of rotation, and to return
    /// it once it is online again.
    #[serde(with = "seconds")]
    pub balancer_reacts_within: Duration,
    /// Upper bound of each `pkgnode locktester` run (the first instance may wait out a stale
    /// lock of a dead holder: twice the nodes' `locks.timeout_interval`).
    #[serde(with = "seconds")]
    pub lock_test_timeout: Duration,
}

impl Default for ChecklistOptions {
    fn default() -> Self {
        Self {
            shared_storage_within: Duration::from_secs(10),
            max_clock_offset: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            balancer_reacts_within: Duration::from_secs(10),
            lock_test_timeout: Duration::from_secs(120),
        }
    }
}

/// Durations as seconds (floating) in the report.
mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Every rule over `facts`, in [`RULES`] order.
pub fn evaluate(facts: &Facts, options: &ChecklistOptions) -> Vec<CheckerResult> {
    vec![
        identity::same_version(facts),
        identity::same_secure_key(facts),
        identity::identical_config(facts),
        backend::postgresql(facts),
        storage::shared_storage(facts),
        clocks::synchronized_clocks(facts, options.max_clock_offset),
        locks::lock_correctness(facts),
        membership::cluster_membership(facts),
        membership::status_endpoint_closed(facts),
        membership::balancer_health_check(facts),
    ]
}

#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use reports::record::Validity;

    use super::*;

    #[test]
    fn a_healthy_cluster_passes_every_rule_in_table_order() {
        let results = evaluate(&fixture::healthy(), &ChecklistOptions::default());
        let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, RULES);
        for result in &results {
            // The healthy fixture keeps package files in S3: no file locks to test.
            let expected = if result.name == locks::LOCK_CORRECTNESS {
                Validity::NotApplicable
            } else {
                Validity::Valid
            };
            assert_eq!(
                result.validity, expected,
                "{}: {}",
                result.name, result.summary
            );
        }
    }
}
