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

use reports::record::{CheckerResult, Validity};
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

impl CheckerKind {
    /// The checker's name in the run record.
    pub fn name(self) -> &'static str {
        match self {
            Self::LostWrites => lost_writes::NAME,
            Self::Availability => availability::NAME,
            Self::ClusterStatus => cluster::NAME,
            Self::Builds => builds::NAME,
        }
    }
}

/// One *unknown* result for each of `kinds`, when the run could not build what the checkers
/// read (`why`: e.g. the HTTP client for the final reads): a run that could not check must not
/// pass for want of checkers.
pub fn not_checked(kinds: &[CheckerKind], why: &str) -> Vec<CheckerResult> {
    kinds
        .iter()
        .map(|kind| CheckerResult {
            name: kind.name().into(),
            validity: Validity::Unknown,
            summary: format!("not checked: {why}"),
            evidence: serde_json::json!({ "error": why }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkers_that_could_not_run_leave_the_run_unknown_not_passed() {
        let kinds = [
            CheckerKind::LostWrites,
            CheckerKind::Availability,
            CheckerKind::ClusterStatus,
        ];
        let results = not_checked(&kinds, "the HTTP client could not be built: no TLS backend");
        let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["lost-writes", "availability", "cluster-status"]);
        assert!(results.iter().all(|r| r.validity == Validity::Unknown));
        // Combined with passing thresholds, the verdict is unknown: exit 5.
        let verdict = results
            .iter()
            .filter_map(|c| reports::Verdict::from_validity(c.validity))
            .fold(reports::Verdict::Pass, reports::Verdict::and);
        assert_eq!(verdict, reports::Verdict::Unknown);
        assert_eq!(crate::error::exit::of(verdict), crate::error::exit::UNKNOWN);
    }
}
