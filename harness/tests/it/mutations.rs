//! The mutation suite: for each checker, a fault planted on a real cluster that must turn
//! exactly that checker invalid (or, below its minimum evidence, *unknown*), so that its
//! *valid* is worth something. `reports::proofs` names these tests on every page.
//!
//! - **lost-writes**, against the current primary's database (read through
//!   `Infra::query_primary`, never through the nodes): an acknowledged upload whose row is
//!   deleted behind the nodes' back is *lost* although the nodes may still list it, a row
//!   planted with no upload is *phantom*, a stored upload the ledger records as a definite
//!   failure is *failed-but-applied*, and an upload a node cut off from the database never
//!   shows is *stale* (its views do not update).
//! - **builds**: a build's publishing transaction replayed in the database is a *duplicate*,
//!   whatever the build rows say.
//! - **availability** and **lost-writes**: a drill whose fault window saw no load is *unknown*
//!   (exit 5), never valid.

use std::time::{Duration, Instant};

use harness::infra::local::{self, LocalOptions};
use harness::infra::{Control, Infra, Member, PackageStorage};
use reports::record::Validity;
use scenarios::writes::{self, WriteFormat, WriteOutcome, WriterConfig};

use crate::support::{harness_command, pkgnode};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_deleted_row_is_lost_a_planted_row_phantom_a_stored_refusal_failed_but_applied_and_a_cut_node_stale()
 {
    let cluster = local::start(LocalOptions {
        nodes: 2,
        pkgnode_bin: pkgnode(),
        synchronous: true,
        // Which store holds the bytes does not matter here: no S3 server needed.
        package_storage: PackageStorage::SharedDirectory,
        reason: "ground truth test".into(),
        ..LocalOptions::default()
    })
    .expect("local cluster starts");
    let runtime = runtime();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    let tag = format!("gt{}", std::process::id());
    let config = WriterConfig {
        writes_per_s: 4.0,
        duration: Duration::from_secs(2),
        tag: tag.clone(),
        ..WriterConfig::default()
    };
    let target = cluster.endpoints().write_target();
    let mut ledger = runtime
        .block_on(writes::run_writer(
            &client,
            &target,
            &config,
            Instant::now(),
        ))
        .expect("the writer runs");
    let acknowledged: Vec<_> = ledger
        .iter()
        .filter(|e| e.outcome == WriteOutcome::Ok && e.format == WriteFormat::Python)
        .collect();
    assert!(acknowledged.len() >= 3, "{ledger:#?}");
    let (victim, model, refused) = (
        acknowledged[0].clone(),
        acknowledged[1].clone(),
        acknowledged[2].seq,
    );

    // Untouched, every upload is stable.
    let check = |ledger: &[scenarios::writes::LedgerEntry], settle_s: u64| {
        runtime.block_on(harness::run::ground_truth::check_lost_writes(
            &cluster,
            &client,
            ledger,
            &tag,
            Duration::from_secs(settle_s),
            &[],
        ))
    };
    let clean = check(&ledger, 5);
    assert_eq!(
        clean.validity,
        Validity::Valid,
        "{}: {:#}",
        clean.summary,
        clean.evidence
    );
    assert_eq!(clean.evidence["database"]["read"], "rows");

    // The history says the server refused this one with a 500; the database holds it.
    let entry = ledger.iter_mut().find(|e| e.seq == refused).unwrap();
    entry.outcome = WriteOutcome::Failed;
    entry.status = Some(500);
    cluster
        .psql(
            &Member::DatabasePrimary,
            &format!(
                "DELETE FROM download_counts WHERE package_id IN \
                 (SELECT id FROM packages WHERE filename = '{0}'); \
                 DELETE FROM packages WHERE filename = '{0}'",
                victim.file_name
            ),
        )
        .expect("the row is deleted");
    let planted = format!("ledger_{tag}_999-1.0-py3-none-any.whl");
    cluster
        .psql(
            &Member::DatabasePrimary,
            &format!(
                "INSERT INTO packages (source_id, name, normalized, version, filename, \
                 file_kind, sha256, md5, size_bytes, metadata, added_tx) \
                 SELECT source_id, 'ledger-{tag}-999', 'ledger-{tag}-999', version, '{planted}', \
                 file_kind, sha256, md5, size_bytes, metadata, added_tx \
                 FROM packages WHERE filename = '{}'",
                model.file_name
            ),
        )
        .expect("the row is planted");

    let result = check(&ledger, 2);
    assert_eq!(
        result.validity,
        Validity::Invalid,
        "{}: {:#}",
        result.summary,
        result.evidence
    );
    let counts = &result.evidence["counts"];
    assert_eq!(counts["lost"], 1, "{:#}", result.evidence);
    assert_eq!(counts["phantom"], 1, "{:#}", result.evidence);
    assert_eq!(counts["failed-but-applied"], 1, "{:#}", result.evidence);
    let bad = result.evidence["bad_entries"]
        .as_array()
        .expect("bad entries");
    let lost = bad
        .iter()
        .find(|e| e["state"] == "lost")
        .expect("the lost entry is named");
    assert_eq!(lost["file"], victim.file_name.as_str());
    assert_eq!(lost["database"]["stored"], false);
    assert_eq!(lost["reads"].as_array().map(Vec::len), Some(2), "{lost:#}");
    let phantom = bad
        .iter()
        .find(|e| e["state"] == "phantom")
        .expect("the phantom row is named");
    assert_eq!(phantom["file"], planted.as_str());
    let applied = bad
        .iter()
        .find(|e| e["state"] == "failed-but-applied")
        .expect("the failed-but-applied entry is named");
    assert_eq!(applied["seq"], refused);
    assert_eq!(applied["database"]["stored"], true);

    // The builds checker's publications come from the same database: no Git build ran here.
    let publications = harness::run::workloads::git_builders::read_publications(&cluster)
        .expect("transactions are read");
    assert!(publications.is_empty(), "{publications:?}");

    // Stale: node-2 cut off from the database keeps serving what it held; uploads through
    // node-1 reach the database and node-1, never node-2.
    cluster
        .control(&Member::Node(1), Control::DisconnectFromDatabase)
        .expect("node-2 is cut off from the database");
    let stale_tag = format!("st{}", std::process::id());
    let node_1 = scenarios::writes::WriteTarget {
        base_url: cluster.endpoints().nodes[0].1.clone(),
        ..target.clone()
    };
    let stale_config = WriterConfig {
        tag: stale_tag.clone(),
        ..config.clone()
    };
    let stale_ledger = runtime
        .block_on(writes::run_writer(
            &client,
            &node_1,
            &stale_config,
            Instant::now(),
        ))
        .expect("the writer runs");
    let stale_check = |settle_s: u64| {
        runtime.block_on(harness::run::ground_truth::check_lost_writes(
            &cluster,
            &client,
            &stale_ledger,
            &stale_tag,
            Duration::from_secs(settle_s),
            &[],
        ))
    };
    let result = stale_check(2);
    assert_eq!(
        result.validity,
        Validity::Invalid,
        "{}: {:#}",
        result.summary,
        result.evidence
    );
    let counts = &result.evidence["counts"];
    let acknowledged = stale_ledger
        .iter()
        .filter(|e| e.outcome == WriteOutcome::Ok)
        .count();
    assert!(acknowledged >= 3, "{stale_ledger:#?}");
    assert_eq!(counts["stale"], acknowledged, "{:#}", result.evidence);
    for state in ["lost", "phantom", "failed-but-applied"] {
        // (A state no entry is in is left out of the counts.)
        assert_eq!(
            counts[state].as_u64().unwrap_or(0),
            0,
            "{state}: {:#}",
            result.evidence
        );
    }
    // (Whether node-2's status already says its database is unreachable depends on how soon
    // its queries time out: a cut drops packets, it does not refuse them. Stale either way.)
    // Reconnected, node-2 catches up and every upload is stable.
    cluster
        .control(&Member::Node(1), Control::Reconnect)
        .expect("node-2 reconnects");
    let healed = stale_check(20);
    assert_eq!(
        healed.validity,
        Validity::Valid,
        "{}: {:#}",
        healed.summary,
        healed.evidence
    );
}

/// A drill whose fault window saw no scheduled install and no upload has no evidence about
/// that window: availability and lost-writes say *unknown*, and so does the run (exit 5).
#[test]
fn a_fault_window_without_load_is_unknown_not_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let result = harness_command(
        tmp.path(),
        &out,
        &[
            "drill",
            "kill-node",
            "--infra",
            "local",
            "--quiet",
            "--corpus",
            "small",
            "--packages",
            "8",
            "--installs-per-day",
            "0",
            "--writes-per-s",
            "0",
            "--duration",
            "12s",
            "--at",
            "3s",
            "--for",
            "3s",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(5), "{stdout}\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let validity = |name: &str| {
        summary["checkers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["validity"].clone())
            .unwrap_or_else(|| panic!("no {name} checker: {summary:#}"))
    };
    assert_eq!(validity("availability"), "unknown", "{summary:#}");
    assert_eq!(validity("lost-writes"), "unknown", "{summary:#}");
    crate::support::assert_nothing_left(tmp.path());
}

/// A short git-builders run is judged valid; then one build's publishing transaction is
/// replayed in the database (a second `git-build` transaction adding that build's files under
/// its description), and the builds checker, judging the same commits and build rows again,
/// counts that commit as a duplicate: it reads what was published, not the build rows.
#[test]
fn a_replayed_build_transaction_is_a_duplicate() {
    use clap::Parser;
    use harness::cli::{Cli, Command as CliCommand};
    use scenarios::git_builders::{BuildRow, PushedCommit};

    let argv = [
        "harness",
        "scenario",
        "git-builders",
        "--infra",
        "local",
        "--quiet",
        "--builders",
        "2",
        "--duration",
        "8s",
        "--commits-per-builder-per-hour",
        "360",
        "--bad-commit-share",
        "0",
        "--grace",
        "60s",
        "--git-poll-interval",
        "1s",
    ];
    let CliCommand::Scenario(args) = Cli::try_parse_from(argv).expect("arguments parse").command
    else {
        panic!("not a scenario");
    };
    let plan = harness::commands::plan::scenario(&args).expect("a valid plan");
    let git = plan.git_builders().cloned().expect("a git-builders plan");
    let cluster = local::start(LocalOptions {
        nodes: plan.infra.nodes,
        pkgnode_bin: pkgnode(),
        node_config_extra: plan.infra.node_config_extra.clone(),
        git_builders: true,
        package_storage: PackageStorage::SharedDirectory,
        reason: "mutation test".into(),
        ..LocalOptions::default()
    })
    .expect("local cluster starts");
    let runtime = runtime();
    let outcome = runtime
        .block_on(harness::run::run(&plan, &cluster))
        .expect("the run runs");
    let builds_checker = |record: &reports::record::RunRecord| {
        record
            .checkers
            .iter()
            .find(|c| c.name == "builds")
            .cloned()
            .expect("a builds checker")
    };
    let clean = builds_checker(&outcome.record);
    assert_eq!(
        clean.validity,
        Validity::Valid,
        "{}: {:#}",
        clean.summary,
        clean.evidence
    );

    let file = |name: &str| {
        outcome
            .files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, text)| text.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let commits: Vec<PushedCommit> = file("commits.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a commit"))
        .collect();
    let builds: Vec<BuildRow> = file("builds.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a build row"))
        .collect();
    let builders = git.builders();
    let seen: std::collections::BTreeSet<(usize, String)> = commits
        .iter()
        .map(|c| (c.builder, c.version.clone()))
        .collect();
    let sightings = harness::run::workloads::git_builders::read_sightings(
        &cluster,
        outcome.record.meta.started_at,
    );
    let judge = |publications: &Result<harness::checkers::builds::Publications, String>| {
        harness::checkers::builds::check(&harness::checkers::builds::BuildsHistory {
            builders: &builders,
            commits: &commits,
            builds: &builds,
            seen: &seen,
            publications,
            sightings: &sightings,
        })
    };
    let before = harness::run::workloads::git_builders::read_publications(&cluster);
    assert!(
        before
            .as_ref()
            .is_ok_and(|p| !p.is_empty() && p.values().all(|&n| n == 1)),
        "{before:?}"
    );
    let (rejudged, counts) = judge(&before);
    assert_eq!(rejudged.validity, Validity::Valid, "{}", rejudged.summary);
    assert_eq!(counts.duplicates, 0);

    // The replay: the oldest build's transaction again, adding a copy of its files.
    let replayed = cluster
        .psql(
            &Member::DatabasePrimary,
            "WITH victim AS (SELECT id, kind, description FROM transactions \
             WHERE kind = 'git-build' ORDER BY id LIMIT 1), \
             replay AS (INSERT INTO transactions (created_at_ms, kind, description) \
             SELECT (extract(epoch FROM now()) * 1000)::bigint, kind, description FROM victim \
             RETURNING id, description) \
             INSERT INTO packages (source_id, name, normalized, version, filename, file_kind, \
             sha256, md5, size_bytes, metadata, added_tx) \
             SELECT p.source_id, p.name, p.normalized, p.version, p.filename || '.replayed', \
             p.file_kind, p.sha256, p.md5, p.size_bytes, p.metadata, (SELECT id FROM replay) \
             FROM packages p WHERE p.added_tx = (SELECT id FROM victim) \
             RETURNING (SELECT description FROM replay)",
        )
        .expect("the transaction is replayed");
    let description = replayed
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(description.contains('@'), "{replayed:?}");
    let after = harness::run::workloads::git_builders::read_publications(&cluster);
    let (result, counts) = judge(&after);
    assert_eq!(
        result.validity,
        Validity::Invalid,
        "{}: {:#}",
        result.summary,
        result.evidence
    );
    assert_eq!(counts.duplicates, 1, "{:#}", result.evidence);
    assert_eq!(
        (
            counts.lost,
            counts.unexpected_failures,
            counts.unexpected_builds
        ),
        (0, 0, 0),
        "only the duplicate: {:#}",
        result.evidence
    );
    let example = &result.evidence["duplicates"][0];
    assert_eq!(example["transactions"], 2, "{:#}", result.evidence);
    assert!(
        description.ends_with(
            example["commit"]
                .as_str()
                .unwrap_or("?")
                .get(..12)
                .unwrap_or("?")
        ),
        "{description} names the duplicated commit: {example:#}"
    );
}
