//! Jepsen's `set-full` over the upload ledger, with the database as the ground truth: whether
//! an upload happened is decided by the current primary's `packages` rows, and every node's
//! index and bytes are then judged *against* them. Each ledger entry is one of
//!
//! - **stable**: in the database, served with the right sha256 by every node;
//! - **lost**: acknowledged, not in the database (whatever the nodes still serve);
//! - **stale**: in the database, a node still does not serve it (or serves other bytes) after
//!   the run's settle time;
//! - **phantom**: not in the database, served by a node; a row of the writer's packages that no
//!   upload invoked is a phantom too;
//! - **failed-but-applied**: a definite failure (4xx, 500, a refused connection) that is stored;
//! - **recovered**: an *unknown* outcome that is stored and served everywhere (allowed: only
//!   unknown outcomes may resolve either way); **not-present**: failed or unknown, stored nowhere.
//!
//! Lost, stale, phantom and failed-but-applied make the history invalid. Without the database
//! (a target with no database URL) the nodes are the only witnesses and the evidence says so.
//! Minimum evidence: acknowledged uploads invoked before, during and after each fault window,
//! else *unknown*.
//!
//! `states.rs` classifies one entry against the database and the nodes, `windows.rs` counts the
//! evidence around each fault.

mod states;
mod windows;

use std::collections::BTreeMap;

use reports::record::{CheckerResult, Validity};
use scenarios::writes::{LedgerEntry, ReadBack, ReadOutcome, WriteOutcome};
use serde::Serialize;
use serde_json::{Value, json};

pub use states::{DatabaseRow, EntryState, GroundTruth, classify, unsettled};
use states::{reads_by_seq, rows_by_file, stored};
pub use windows::FaultWindow;
use windows::{WindowEvidence, window_evidence};

/// The checker's name in the run record.
pub const NAME: &str = "lost-writes";

/// How long the final reads waited for the nodes to agree with the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Settling {
    /// The most the reads may wait (`--settle`).
    pub settle_s: f64,
    /// How long they waited.
    pub waited_s: f64,
    /// Reads of the entries that disagreed, after the first full read.
    pub rereads: usize,
}

/// Everything the checker judges.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub ledger: &'a [LedgerEntry],
    pub database: &'a GroundTruth,
    /// The final reads of every entry from every node.
    pub reads: &'a [ReadBack],
    /// Nodes that should have been read.
    pub nodes: usize,
    pub faults: &'a [FaultWindow],
    pub settling: Settling,
}

fn reads_json(reads: &[&ReadBack]) -> Vec<Value> {
    reads
        .iter()
        .map(|r| json!({"node": r.node, "outcome": r.outcome, "detail": r.detail}))
        .collect()
}

/// Judges the ledger against the database and the nodes' final reads.
pub fn check(input: &Input<'_>) -> CheckerResult {
    let Input {
        ledger,
        database,
        reads,
        nodes,
        faults,
        settling,
    } = *input;
    let rows = rows_by_file(database);
    let by_seq = reads_by_seq(reads);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut undecided = Vec::new();
    let mut stable_latencies_ms = Vec::new();
    for entry in ledger {
        let reads = by_seq.get(&entry.seq).map(Vec::as_slice).unwrap_or(&[]);
        *counts
            .entry(match entry.outcome {
                WriteOutcome::Ok => "acknowledged",
                WriteOutcome::Failed => "failed",
                WriteOutcome::Unknown => "unknown",
            })
            .or_default() += 1;
        if reads.iter().any(|r| r.outcome == ReadOutcome::Duplicated) {
            *counts.entry("duplicated").or_default() += 1;
        }
        let stored = stored(entry, rows.as_ref());
        let state = classify(entry, stored, reads, nodes);
        *counts.entry(state.as_str()).or_default() += 1;
        if state == EntryState::Stable {
            stable_latencies_ms.push((entry.completed_s - entry.invoked_s) * 1000.0);
        }
        if state.is_anomaly() || state == EntryState::Unreadable {
            let database_said = match (&rows, stored) {
                (Some(rows), _) => match rows.get(entry.file_name.as_str()) {
                    Some(row) if row.sha256 == entry.sha256 => {
                        json!({"stored": true, "added_tx": row.added_tx})
                    }
                    Some(row) => json!({"stored": false, "other_sha256": row.sha256}),
                    None => json!({"stored": false}),
                },
                (None, _) => Value::Null,
            };
            let named = json!({
                "state": state, "seq": entry.seq, "name": entry.name, "file": entry.file_name,
                "sha256": entry.sha256, "outcome": entry.outcome, "status": entry.status,
                "invoked_at_s": entry.invoked_s, "completed_at_s": entry.completed_s,
                "database": database_said, "reads": reads_json(reads),
            });
            if state.is_anomaly() {
                bad.push(named);
            } else {
                undecided.push(named);
            }
        }
    }
    // Rows of the writer's packages that no upload invoked: the database holds a write nobody
    // made.
    if let GroundTruth::Rows(rows) = database {
        let invoked: std::collections::HashSet<&str> =
            ledger.iter().map(|e| e.file_name.as_str()).collect();
        for row in rows
            .iter()
            .filter(|r| !invoked.contains(r.filename.as_str()))
        {
            *counts.entry(EntryState::Phantom.as_str()).or_default() += 1;
            bad.push(json!({
                "state": EntryState::Phantom, "name": row.name, "file": row.filename,
                "sha256": row.sha256, "outcome": Value::Null,
                "database": {"stored": true, "source": row.source, "added_tx": row.added_tx},
                "reads": [], "why": "the database holds an upload no client invoked",
            }));
        }
    }
    let count = |k: &str| counts.get(k).copied().unwrap_or(0);
    let windows = window_evidence(ledger, faults);
    let thin: Vec<&WindowEvidence> = windows
        .iter()
        .filter(|w| {
            w.acknowledged_before == 0 || w.acknowledged_during == 0 || w.acknowledged_after == 0
        })
        .collect();
    let anomalies = ["lost", "stale", "phantom", "failed-but-applied"]
        .iter()
        .map(|k| count(k))
        .sum::<usize>();
    let insufficient = if ledger.is_empty() {
        Some("no upload was invoked, so nothing could be lost or kept".to_string())
    } else if count("acknowledged") == 0 {
        Some("no upload was acknowledged, so nothing could be lost".to_string())
    } else {
        thin.first().map(|w| {
            format!(
                "too little evidence around the fault at {:.1}–{:.1} s: {} acknowledged uploads invoked before it, {} during, {} after (each must be at least 1)",
                w.start_s, w.end_s, w.acknowledged_before, w.acknowledged_during, w.acknowledged_after
            )
        })
    };
    let validity = if anomalies > 0 {
        Validity::Invalid
    } else if count("unreadable") > 0
        || insufficient.is_some()
        || matches!(database, GroundTruth::Failed(_))
    {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let witnesses = match database {
        GroundTruth::Rows(rows) => format!(
            "judged against the primary database ({} rows of the writer's packages)",
            rows.len()
        ),
        GroundTruth::NotRead(why) => {
            format!("the database was not read ({why}): judged from the nodes only")
        }
        GroundTruth::Failed(why) => {
            format!("the database read failed ({why}): judged from the nodes only")
        }
    };
    let mut summary = format!(
        "{} uploads: {} acknowledged ({} stable, {} lost, {} stale), {} failed ({} failed-but-applied), {} unknown ({} recovered); {} phantom{}; {}",
        ledger.len(),
        count("acknowledged"),
        count("stable"),
        count("lost"),
        count("stale"),
        count("failed"),
        count("failed-but-applied"),
        count("unknown"),
        count("recovered"),
        count("phantom"),
        match count("unreadable") {
            0 => String::new(),
            n => format!(", {n} unreadable"),
        },
        witnesses,
    );
    if let Some(why) = &insufficient {
        summary = format!("{why}; {summary}");
    }
    stable_latencies_ms.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        (!stable_latencies_ms.is_empty()).then(|| {
            let i = ((stable_latencies_ms.len() - 1) as f64 * q).round() as usize;
            stable_latencies_ms[i]
        })
    };
    CheckerResult {
        name: NAME.into(),
        validity,
        summary,
        evidence: json!({
            "uploads": ledger.len(),
            "nodes_read": nodes,
            "database": match database {
                GroundTruth::Rows(rows) => json!({"read": "rows", "rows": rows.len()}),
                other => serde_json::to_value(other).unwrap_or_default(),
            },
            "settling": settling,
            "counts": counts,
            "minimum_evidence": {
                "rule": "an acknowledged upload invoked before, during and after each fault window",
                "windows": windows,
                "insufficient": insufficient,
            },
            "stable_latency_ms": {"p50": quantile(0.5), "p90": quantile(0.9), "p99": quantile(0.99), "max": quantile(1.0)},
            "bad_entries": bad,
            "unreadable_entries": undecided,
        }),
    }
}

#[cfg(test)]
mod tests;
