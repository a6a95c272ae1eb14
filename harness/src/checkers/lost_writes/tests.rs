//! The lost-writes checker's states, each with a history that must produce it: stable and
//! recovered (valid), lost, stale, phantom and failed-but-applied (invalid), and too little
//! evidence (unknown).

use super::*;
use scenarios::writes::WriteFormat;

fn entry(seq: usize, outcome: WriteOutcome) -> LedgerEntry {
    LedgerEntry {
        seq,
        format: WriteFormat::Python,
        name: format!("ledger-t-{seq}"),
        version: "1.0".into(),
        file_name: format!("ledger_t_{seq}-1.0-py3-none-any.whl"),
        sha256: format!("{seq:064}"),
        scheduled_s: seq as f64,
        invoked_s: seq as f64,
        completed_s: seq as f64 + 0.05,
        outcome,
        status: None,
        detail: String::new(),
    }
}

fn row(entry: &LedgerEntry) -> DatabaseRow {
    DatabaseRow {
        source: "pypi-local".into(),
        name: entry.name.clone(),
        filename: entry.file_name.clone(),
        sha256: entry.sha256.clone(),
        added_tx: 10 + entry.seq as i64,
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

/// Both nodes `a` and `b` read every entry with `outcome`.
fn everywhere(ledger: &[LedgerEntry], outcome: ReadOutcome) -> Vec<ReadBack> {
    ledger
        .iter()
        .flat_map(|e| [read(e.seq, "a", outcome), read(e.seq, "b", outcome)])
        .collect()
}

fn judge(
    ledger: &[LedgerEntry],
    database: &GroundTruth,
    reads: &[ReadBack],
    faults: &[FaultWindow],
) -> CheckerResult {
    check(&Input {
        ledger,
        database,
        reads,
        nodes: 2,
        faults,
        settling: Settling::default(),
    })
}

fn count(result: &CheckerResult, state: &str) -> u64 {
    result.evidence["counts"][state].as_u64().unwrap_or(0)
}

#[test]
fn stored_and_served_everywhere_is_stable_and_valid() {
    let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Failed)];
    let database = GroundTruth::Rows(vec![row(&ledger[0])]);
    let reads = [
        read(0, "a", ReadOutcome::Present),
        read(0, "b", ReadOutcome::Present),
        read(1, "a", ReadOutcome::Missing),
        read(1, "b", ReadOutcome::Missing),
    ];
    let result = judge(&ledger, &database, &reads, &[]);
    assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
    assert_eq!(count(&result, "stable"), 1);
    assert_eq!(count(&result, "not-present"), 1);
}

#[test]
fn acknowledged_but_absent_from_the_database_is_lost_even_while_every_node_serves_it() {
    let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Ok)];
    // The nodes still list entry 1 from their views: the database decides.
    let database = GroundTruth::Rows(vec![row(&ledger[0])]);
    let reads = everywhere(&ledger, ReadOutcome::Present);
    let result = judge(&ledger, &database, &reads, &[]);
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert_eq!(count(&result, "lost"), 1);
    assert_eq!(count(&result, "stable"), 1);
    let bad = &result.evidence["bad_entries"][0];
    assert_eq!(bad["state"], "lost");
    assert_eq!(bad["seq"], 1);
    assert_eq!(bad["database"]["stored"], false);
    assert_eq!(bad["reads"][1]["outcome"], "present", "{bad:#}");
}

#[test]
fn other_bytes_under_the_same_file_name_are_lost_too() {
    let ledger = [entry(0, WriteOutcome::Ok)];
    let mut other = row(&ledger[0]);
    other.sha256 = "ff".into();
    let result = judge(
        &ledger,
        &GroundTruth::Rows(vec![other]),
        &everywhere(&ledger, ReadOutcome::Corrupt),
        &[],
    );
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(
        result.evidence["bad_entries"][0]["database"]["other_sha256"],
        "ff"
    );
}

#[test]
fn stored_but_not_served_by_one_node_after_settling_is_stale() {
    let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Unknown)];
    let database = GroundTruth::Rows(ledger.iter().map(row).collect());
    let reads = [
        read(0, "a", ReadOutcome::Present),
        read(0, "b", ReadOutcome::Missing),
        // An unknown outcome that committed must be served everywhere as well.
        read(1, "a", ReadOutcome::Corrupt),
        read(1, "b", ReadOutcome::Present),
    ];
    let result = judge(&ledger, &database, &reads, &[]);
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert_eq!(count(&result, "stale"), 2);
    assert_eq!(unsettled(&ledger, &database, &reads, 2), vec![0, 1]);
}

#[test]
fn served_but_absent_from_the_database_is_phantom() {
    let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Unknown)];
    let database = GroundTruth::Rows(vec![row(&ledger[0])]);
    let reads = [
        read(0, "a", ReadOutcome::Present),
        read(0, "b", ReadOutcome::Present),
        read(1, "a", ReadOutcome::Missing),
        read(1, "b", ReadOutcome::Present),
    ];
    let result = judge(&ledger, &database, &reads, &[]);
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert_eq!(count(&result, "phantom"), 1);
    assert_eq!(result.evidence["bad_entries"][0]["seq"], 1);
}

#[test]
fn a_row_no_upload_invoked_is_phantom() {
    let ledger = [entry(0, WriteOutcome::Ok)];
    let planted = entry(7, WriteOutcome::Ok);
    let database = GroundTruth::Rows(vec![row(&ledger[0]), row(&planted)]);
    let result = judge(
        &ledger,
        &database,
        &everywhere(&ledger, ReadOutcome::Present),
        &[],
    );
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert_eq!(count(&result, "phantom"), 1);
    assert_eq!(result.evidence["bad_entries"][0]["file"], planted.file_name);
}

#[test]
fn a_definite_failure_that_was_stored_is_failed_but_applied() {
    let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Failed)];
    let database = GroundTruth::Rows(ledger.iter().map(row).collect());
    let reads = everywhere(&ledger, ReadOutcome::Present);
    let result = judge(&ledger, &database, &reads, &[]);
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert_eq!(count(&result, "failed-but-applied"), 1);
    // Without the database, a node serving it is the evidence.
    let nodes_only = judge(&ledger, &GroundTruth::NotRead("no URL".into()), &reads, &[]);
    assert_eq!(nodes_only.validity, Validity::Invalid);
    assert_eq!(count(&nodes_only, "failed-but-applied"), 1);
}

#[test]
fn an_unknown_outcome_may_resolve_either_way() {
    let ledger = [
        entry(0, WriteOutcome::Ok),
        entry(1, WriteOutcome::Unknown),
        entry(2, WriteOutcome::Unknown),
    ];
    let database = GroundTruth::Rows(vec![row(&ledger[0]), row(&ledger[1])]);
    let mut reads = everywhere(&ledger[..2], ReadOutcome::Present);
    reads.extend(everywhere(&ledger[2..], ReadOutcome::Missing));
    let result = judge(&ledger, &database, &reads, &[]);
    assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
    assert_eq!(count(&result, "recovered"), 1);
    assert_eq!(count(&result, "not-present"), 1);
}

#[test]
fn a_fault_without_acknowledged_writes_before_during_and_after_is_unknown() {
    let ledger: Vec<LedgerEntry> = (0..10).map(|i| entry(i, WriteOutcome::Ok)).collect();
    let database = GroundTruth::Rows(ledger.iter().map(row).collect());
    let reads = everywhere(&ledger, ReadOutcome::Present);
    let covered = [FaultWindow {
        start_s: 3.0,
        end_s: 6.0,
    }];
    assert_eq!(
        judge(&ledger, &database, &reads, &covered).validity,
        Validity::Valid
    );
    // Nothing acknowledged was invoked after the second fault: its recovery is unwitnessed.
    let late = [
        FaultWindow {
            start_s: 3.0,
            end_s: 6.0,
        },
        FaultWindow {
            start_s: 7.0,
            end_s: 9.5,
        },
    ];
    let result = judge(&ledger, &database, &reads, &late);
    assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
    assert!(result.summary.contains("7.0–9.5"), "{}", result.summary);
    // Writes that all failed inside the window are no evidence either.
    let mut failing = ledger.clone();
    for e in &mut failing[3..6] {
        e.outcome = WriteOutcome::Failed;
    }
    let database = GroundTruth::Rows(
        failing
            .iter()
            .filter(|e| e.outcome == WriteOutcome::Ok)
            .map(row)
            .collect(),
    );
    let mut reads = everywhere(&failing[..3], ReadOutcome::Present);
    reads.extend(everywhere(&failing[3..6], ReadOutcome::Missing));
    reads.extend(everywhere(&failing[6..], ReadOutcome::Present));
    let result = judge(&failing, &database, &reads, &covered);
    assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
    // Invalid still outranks too little evidence.
    let result = judge(&failing, &GroundTruth::Rows(Vec::new()), &reads, &covered);
    assert_eq!(result.validity, Validity::Invalid);
}

#[test]
fn an_unreadable_node_or_a_failed_database_read_leaves_the_verdict_unknown() {
    let ledger = [entry(0, WriteOutcome::Ok)];
    let database = GroundTruth::Rows(vec![row(&ledger[0])]);
    let reads = [
        read(0, "a", ReadOutcome::Present),
        read(0, "b", ReadOutcome::Unreadable),
    ];
    assert_eq!(
        judge(&ledger, &database, &reads, &[]).validity,
        Validity::Unknown
    );
    // A node never read at all decides nothing either.
    assert_eq!(
        judge(&ledger, &database, &reads[..1], &[]).validity,
        Validity::Unknown
    );
    let all = everywhere(&ledger, ReadOutcome::Present);
    let failed = judge(
        &ledger,
        &GroundTruth::Failed("psql: refused".into()),
        &all,
        &[],
    );
    assert_eq!(failed.validity, Validity::Unknown, "{}", failed.summary);
    assert!(
        failed.summary.contains("judged from the nodes only"),
        "{}",
        failed.summary
    );
}

#[test]
fn from_the_nodes_only_the_checker_says_so_and_a_missing_read_is_lost() {
    let ledger = [entry(0, WriteOutcome::Ok), entry(1, WriteOutcome::Ok)];
    let database = GroundTruth::NotRead("--target without --database-url".into());
    let mut reads = everywhere(&ledger, ReadOutcome::Present);
    let valid = judge(&ledger, &database, &reads, &[]);
    assert_eq!(valid.validity, Validity::Valid, "{}", valid.summary);
    assert!(
        valid.summary.contains("the database was not read"),
        "{}",
        valid.summary
    );
    assert_eq!(valid.evidence["database"]["read"], "not-read");
    reads[3].outcome = ReadOutcome::Missing;
    assert_eq!(
        judge(&ledger, &database, &reads, &[]).validity,
        Validity::Invalid
    );
    assert_eq!(unsettled(&ledger, &database, &reads, 2), vec![1]);
}

#[test]
fn an_empty_ledger_decides_nothing() {
    let result = judge(&[], &GroundTruth::Rows(Vec::new()), &[], &[]);
    assert_eq!(result.validity, Validity::Unknown);
}
