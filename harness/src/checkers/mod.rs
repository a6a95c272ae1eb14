//! Checkers: pure functions over a run's recorded history (requests, the upload ledger, the
//! nemesis's events) and the reads made after the cluster recovered, each returning a
//! three-valued [`CheckerResult`] with its evidence. Composed, invalid outranks unknown and
//! unknown outranks valid (`reports::Verdict::and`).
//!
//! **Architecture Invariant:** checkers do no I/O and know no provider; the run gathers what
//! they read. Each has a negative control in its tests: a checker that cannot fail is worthless.

pub mod availability;
pub mod builds;
pub mod cluster;
pub mod lost_writes;

use serde::Serialize;

/// The checkers a plan can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckerKind {
    /// Every acknowledged upload is read back from every node ([`lost_writes`]).
    LostWrites,
    /// Failed installs per fault window, time to recovery, time to first write
    /// ([`availability`]).
    Availability,
    /// Every fault injected and healed; every node Online at the end ([`cluster`]).
    ClusterStatus,
    /// Git builds: failed = broken commits exactly, no duplicates, nothing lost ([`builds`]).
    Builds,
}
