//! Jepsen's `set-full` over the upload ledger: every acknowledged upload must be read back
//! from every node with its bytes. Acknowledged and present everywhere is *stable*;
//! acknowledged but missing (or corrupt) anywhere is *lost*, and one lost upload makes the
//! history invalid. Failed or unknown uploads that are present are *recovered* (allowed).

use std::collections::BTreeMap;

use reports::record::{CheckerResult, Validity};
use scenarios::writes::{LedgerEntry, ReadBack, ReadOutcome, WriteOutcome};
use serde_json::json;

/// The checker's name in the run record.
pub const NAME: &str = "lost-writes";

/// Judges `ledger` against the final `reads` of `nodes` nodes.
pub fn check(ledger: &[LedgerEntry], reads: &[ReadBack], nodes: usize) -> CheckerResult {
    let mut by_seq: BTreeMap<usize, Vec<&ReadBack>> = BTreeMap::new();
    for read in reads {
        by_seq.entry(read.seq).or_default().push(read);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut lost = Vec::new();
    let mut undecided = Vec::new();
    let mut stable_latencies_ms = Vec::new();
    for entry in ledger {
        let reads = by_seq.get(&entry.seq).map(Vec::as_slice).unwrap_or(&[]);
        let everywhere = |ok: fn(ReadOutcome) -> bool| {
            reads.len() == nodes && reads.iter().all(|r| ok(r.outcome))
        };
        let present = |o: ReadOutcome| matches!(o, ReadOutcome::Present | ReadOutcome::Duplicated);
        let bad = reads
            .iter()
            .filter(|r| matches!(r.outcome, ReadOutcome::Missing | ReadOutcome::Corrupt))
            .count();
        let unreadable =
            reads.len() < nodes || reads.iter().any(|r| r.outcome == ReadOutcome::Unreadable);
        if reads.iter().any(|r| r.outcome == ReadOutcome::Duplicated) {
            *counts.entry("duplicated").or_default() += 1;
        }
        *counts
            .entry(match entry.outcome {
                WriteOutcome::Ok => "acknowledged",
                WriteOutcome::Failed => "failed",
                WriteOutcome::Unknown => "unknown",
            })
            .or_default() += 1;
        match entry.outcome {
            WriteOutcome::Ok if everywhere(present) => {
                *counts.entry("stable").or_default() += 1;
                stable_latencies_ms.push((entry.completed_s - entry.invoked_s) * 1000.0);
            }
            WriteOutcome::Ok if bad > 0 => {
                *counts.entry("lost").or_default() += 1;
                lost.push(json!({
                    "seq": entry.seq, "name": entry.name, "file": entry.file_name,
                    "sha256": entry.sha256, "acknowledged_at_s": entry.completed_s,
                    "reads": reads.iter().map(|r| json!({"node": r.node, "outcome": r.outcome, "detail": r.detail})).collect::<Vec<_>>(),
                }));
            }
            WriteOutcome::Ok => {
                debug_assert!(unreadable);
                *counts.entry("acknowledged-unreadable").or_default() += 1;
                undecided.push(json!({"seq": entry.seq, "name": entry.name,
                    "reads": reads.iter().map(|r| json!({"node": r.node, "outcome": r.outcome, "detail": r.detail})).collect::<Vec<_>>()}));
            }
            _ if reads.iter().any(|r| present(r.outcome)) => {
                *counts.entry("recovered").or_default() += 1;
            }
            _ => *counts.entry("not-present").or_default() += 1,
        }
    }
    let count = |k: &str| counts.get(k).copied().unwrap_or(0);
    let validity = if count("lost") > 0 {
        Validity::Invalid
    } else if count("acknowledged-unreadable") > 0 || ledger.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let summary = if ledger.is_empty() {
        "no upload was invoked, so nothing could be lost or kept".to_string()
    } else {
        format!(
            "{} uploads: {} acknowledged ({} stable, {} lost{}), {} failed, {} unknown; {} recovered, {} duplicated",
            ledger.len(),
            count("acknowledged"),
            count("stable"),
            count("lost"),
            match count("acknowledged-unreadable") {
                0 => String::new(),
                n => format!(", {n} unreadable"),
            },
            count("failed"),
            count("unknown"),
            count("recovered"),
            count("duplicated"),
        )
    };
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
            "counts": counts,
            "stable_latency_ms": {"p50": quantile(0.5), "p90": quantile(0.9), "p99": quantile(0.99), "max": quantile(1.0)},
            "lost_entries": lost,
            "unreadable_entries": undecided,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenarios::writes::WriteFormat;

    fn entry(seq: usize, outcome: WriteOutcome) -> LedgerEntry {
        LedgerEntry {
            seq,
            format: WriteFormat::Python,
            name: format!("p{seq}"),
            version: "1.0".into(),
            file_name: format!("p{seq}-1.0-py3-none-any.whl"),
            sha256: "00".into(),
            scheduled_s: seq as f64,
            invoked_s: seq as f64,
            completed_s: seq as f64 + 0.05,
            outcome,
            status: None,
            detail: String::new(),
        }
    }

    fn read(seq: usize, node: &str, outcome: ReadOutcome) -> ReadBack {
        ReadBack {
            seq,
            node: node.into(),
            outcome,
            detail: String::new(),
        }
    }

    #[test]
    fn acknowledged_and_present_everywhere_is_valid() {
        let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Failed)];
        let reads = [
            read(0, "a", ReadOutcome::Present),
            read(0, "b", ReadOutcome::Present),
            read(1, "a", ReadOutcome::Missing),
            read(1, "b", ReadOutcome::Missing),
        ];
        let result = check(&ledger, &reads, 2);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert_eq!(result.evidence["counts"]["stable"], 1);
    }

    #[test]
    fn an_acknowledged_upload_missing_on_one_node_is_lost() {
        let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Ok)];
        let reads = [
            read(0, "a", ReadOutcome::Present),
            read(0, "b", ReadOutcome::Present),
            read(1, "a", ReadOutcome::Present),
            read(1, "b", ReadOutcome::Missing),
        ];
        let result = check(&ledger, &reads, 2);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(result.evidence["counts"]["lost"], 1);
        assert_eq!(result.evidence["lost_entries"][0]["seq"], 1);
    }

    #[test]
    fn corrupt_bytes_are_lost_too() {
        let ledger = [entry(0, WriteOutcome::Ok)];
        let reads = [read(0, "a", ReadOutcome::Corrupt)];
        assert_eq!(check(&ledger, &reads, 1).validity, Validity::Invalid);
    }

    #[test]
    fn an_unreadable_node_leaves_the_verdict_unknown() {
        let ledger = [entry(0, WriteOutcome::Ok)];
        let reads = [
            read(0, "a", ReadOutcome::Present),
            read(0, "b", ReadOutcome::Unreadable),
        ];
        assert_eq!(check(&ledger, &reads, 2).validity, Validity::Unknown);
        // A node never read at all decides nothing either.
        assert_eq!(check(&ledger, &reads[..1], 2).validity, Validity::Unknown);
    }

    #[test]
    fn unknown_but_present_is_recovered_and_duplicates_are_counted() {
        let ledger = [entry(0, WriteOutcome::Unknown), entry(1, WriteOutcome::Ok)];
        let reads = [
            read(0, "a", ReadOutcome::Present),
            read(1, "a", ReadOutcome::Duplicated),
        ];
        let result = check(&ledger, &reads, 1);
        assert_eq!(result.validity, Validity::Valid);
        assert_eq!(result.evidence["counts"]["recovered"], 1);
        assert_eq!(result.evidence["counts"]["duplicated"], 1);
    }

    #[test]
    fn an_empty_ledger_decides_nothing() {
        assert_eq!(check(&[], &[], 2).validity, Validity::Unknown);
    }
}
