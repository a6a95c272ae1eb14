//! The ground truth (the primary's rows of the writer's packages) and the state of one ledger
//! entry against it and every node's read: stable, lost, stale, phantom, failed-but-applied,
//! recovered, not present or unreadable; and the entries still to read again until they
//! settle.

use std::collections::{BTreeMap, HashMap};

use scenarios::writes::{LedgerEntry, ReadBack, ReadOutcome, WriteOutcome};
use serde::Serialize;

/// One row of the primary's `packages` table among the writer's packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatabaseRow {
    /// The source's name (`pypi-local`, `cran-local`).
    pub source: String,
    pub name: String,
    pub filename: String,
    pub sha256: String,
    /// The transaction that added it.
    pub added_tx: i64,
}

/// What the database said about the writer's packages.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "read", content = "detail", rename_all = "kebab-case")]
pub enum GroundTruth {
    /// The current primary's rows of the writer's packages (removed rows left out).
    Rows(Vec<DatabaseRow>),
    /// The provider cannot read the database (a target without a database URL): the nodes are
    /// the only witnesses.
    NotRead(String),
    /// The provider could read it but the read failed: the verdict is at best unknown.
    Failed(String),
}

/// The state of one ledger entry (or of an unledgered row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryState {
    Stable,
    Lost,
    Stale,
    Phantom,
    FailedButApplied,
    Recovered,
    NotPresent,
    /// A node did not answer clearly: this entry decides nothing.
    Unreadable,
}

impl EntryState {
    /// The states that make a history invalid.
    pub fn is_anomaly(self) -> bool {
        matches!(
            self,
            Self::Lost | Self::Stale | Self::Phantom | Self::FailedButApplied
        )
    }

    /// The name in the evidence's counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Lost => "lost",
            Self::Stale => "stale",
            Self::Phantom => "phantom",
            Self::FailedButApplied => "failed-but-applied",
            Self::Recovered => "recovered",
            Self::NotPresent => "not-present",
            Self::Unreadable => "unreadable",
        }
    }
}

/// The database's row for each file name (rows with other bytes than the ledger's included:
/// the entry's bytes are then not stored).
pub(super) fn rows_by_file(database: &GroundTruth) -> Option<HashMap<&str, &DatabaseRow>> {
    match database {
        GroundTruth::Rows(rows) => Some(rows.iter().map(|r| (r.filename.as_str(), r)).collect()),
        GroundTruth::NotRead(_) | GroundTruth::Failed(_) => None,
    }
}

pub(super) fn reads_by_seq(reads: &[ReadBack]) -> BTreeMap<usize, Vec<&ReadBack>> {
    let mut by_seq: BTreeMap<usize, Vec<&ReadBack>> = BTreeMap::new();
    for read in reads {
        by_seq.entry(read.seq).or_default().push(read);
    }
    by_seq
}

/// One entry's state from its outcome, whether the database holds its bytes (`None`: the
/// database was not read) and every node's read.
pub fn classify(
    entry: &LedgerEntry,
    stored: Option<bool>,
    reads: &[&ReadBack],
    nodes: usize,
) -> EntryState {
    let right =
        |r: &&&ReadBack| matches!(r.outcome, ReadOutcome::Present | ReadOutcome::Duplicated);
    let all_right = reads.len() >= nodes && reads.iter().all(|r| right(&r));
    let some_bad = reads
        .iter()
        .any(|r| matches!(r.outcome, ReadOutcome::Missing | ReadOutcome::Corrupt));
    let served_anywhere = reads.iter().any(|r| {
        matches!(
            r.outcome,
            ReadOutcome::Present | ReadOutcome::Duplicated | ReadOutcome::Corrupt
        )
    });
    use EntryState::*;
    match (entry.outcome, stored) {
        (WriteOutcome::Ok, Some(false)) => Lost,
        (WriteOutcome::Ok | WriteOutcome::Unknown, Some(true)) if all_right => {
            if entry.outcome == WriteOutcome::Ok {
                Stable
            } else {
                Recovered
            }
        }
        (WriteOutcome::Ok | WriteOutcome::Unknown, Some(true)) if some_bad => Stale,
        (WriteOutcome::Ok | WriteOutcome::Unknown, Some(true)) => Unreadable,
        (WriteOutcome::Failed, Some(true)) => FailedButApplied,
        (_, Some(false)) if served_anywhere => Phantom,
        (_, Some(false)) => NotPresent,
        // The nodes as the only witnesses.
        (WriteOutcome::Ok, None) if all_right => Stable,
        (WriteOutcome::Ok, None) if some_bad => Lost,
        (WriteOutcome::Ok, None) => Unreadable,
        (WriteOutcome::Failed, None) if served_anywhere => FailedButApplied,
        (WriteOutcome::Unknown, None) if reads.iter().any(|r| right(&r)) => Recovered,
        (_, None) => NotPresent,
    }
}

/// Whether the database holds `entry`'s bytes, when it was read.
pub(super) fn stored(
    entry: &LedgerEntry,
    rows: Option<&HashMap<&str, &DatabaseRow>>,
) -> Option<bool> {
    rows.map(|rows| {
        rows.get(entry.file_name.as_str())
            .is_some_and(|row| row.sha256 == entry.sha256)
    })
}

/// The entries whose node reads do not (yet) agree with the database, or could not be read:
/// what the run reads again until they settle or the settle time passes. Without the
/// database, the entries some node does not serve.
pub fn unsettled(
    ledger: &[LedgerEntry],
    database: &GroundTruth,
    reads: &[ReadBack],
    nodes: usize,
) -> Vec<usize> {
    let rows = rows_by_file(database);
    let by_seq = reads_by_seq(reads);
    ledger
        .iter()
        .filter(|entry| {
            let reads = by_seq.get(&entry.seq).map(Vec::as_slice).unwrap_or(&[]);
            let state = classify(entry, stored(entry, rows.as_ref()), reads, nodes);
            match state {
                EntryState::Stale | EntryState::Phantom | EntryState::Unreadable => true,
                EntryState::Lost | EntryState::FailedButApplied => rows.is_none(),
                _ => false,
            }
        })
        .map(|entry| entry.seq)
        .collect()
}
