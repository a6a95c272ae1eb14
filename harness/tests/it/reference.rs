//! `harness scenario reference` on the local provider: the reads, the upload writer and the git
//! builders together on one cluster, each judged by its own thresholds and checker, in one
//! `summary.json` and one page; and a fault planted in one workload (a build published twice)
//! fails that workload and the run, not the others.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::infra::local::{self, LocalOptions};
use harness::infra::{Infra, Member, PackageStorage};
use reports::Verdict;
use reports::record::Validity;

use crate::support::{assert_nothing_left, harness_command, pkgnode};

/// A short reference at a light rate on a small corpus with a few builders; the reads judged
/// leniently on latency (a debug build on a shared machine), the builders by their defaults.
const SHORT: &[&str] = &[
    "--infra",
    "local",
    "--quiet",
    "--installs-per-day",
    "200000",
    "--corpus",
    "small",
    "--packages",
    "24",
    "--size-max-bytes",
    "2000000",
    "--writes-per-s",
    "2",
    "--git-poll-interval",
    "1s",
    "--threshold",
    "install:error_rate<=0",
    "--threshold",
    "install:rate_ratio>=0.95",
    "--threshold",
    "p99<2s",
];

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_short_reference_run_judges_each_workload_and_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let mut args = vec!["scenario", "reference"];
    args.extend(SHORT);
    args.extend([
        "--builders",
        "6",
        "--duration",
        "20s",
        "--commits-per-builder-per-hour",
        "240",
        "--bad-commit-share",
        "0.2",
        "--grace",
        "40s",
    ]);
    let result = harness_command(tmp.path(), &out, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["scenario"], "reference");
    assert_eq!(summary["verdict"], "pass", "{summary:#}");
    let workloads = summary["workloads"].as_array().expect("workloads");
    let names: Vec<&str> = workloads
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["installs", "uploads", "git-builders"]);
    for workload in workloads {
        assert_eq!(workload["verdict"], "pass", "{workload:#}");
    }
    let workload = |name: &str| {
        workloads
            .iter()
            .find(|w| w["name"] == name)
            .unwrap()
            .clone()
    };
    // Each workload is judged by its own: the reads by the thresholds given, the builders by
    // their defaults and the builds checker, the writer by lost-writes.
    let exprs = |w: &serde_json::Value| -> Vec<String> {
        w["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap().to_string())
            .collect()
    };
    let installs = workload("installs");
    assert_eq!(
        exprs(&installs),
        [
            "install:error_rate<=0",
            "install:rate_ratio>=0.95",
            "p99<2s"
        ]
    );
    let builders = workload("git-builders");
    assert_eq!(
        exprs(&builders),
        [
            "commit_to_published:error_rate<=0",
            "lost==0",
            "duplicates==0"
        ]
    );
    assert_eq!(builders["checkers"][0]["name"], "builds");
    assert_eq!(builders["checkers"][0]["validity"], "valid");
    let uploads = workload("uploads");
    assert_eq!(uploads["checkers"][0]["name"], "lost-writes");
    assert_eq!(uploads["checkers"][0]["validity"], "valid");
    // The figures the reference claim is read by.
    let figure = |w: &serde_json::Value, name: &str| {
        w["figures"][name]
            .as_f64()
            .unwrap_or_else(|| panic!("no {name} in {w:#}"))
    };
    let install_p99_ms = figure(&installs, "install_p99_ms");
    let commit_p95_s = figure(&builders, "commit_to_published_p95_s");
    assert!(
        figure(&installs, "installs_scheduled") > 100.0,
        "{installs:#}"
    );
    assert!(
        figure(&uploads, "uploads_acknowledged") > 40.0,
        "{uploads:#}"
    );
    assert_eq!(figure(&builders, "lost"), 0.0);
    assert_eq!(figure(&builders, "duplicates"), 0.0);
    assert!(figure(&builders, "commits") >= 6.0, "{builders:#}");
    let db = &summary["database_cpu"];
    let core_share = db["core_share"].as_f64().expect("the database's CPU");
    assert!(core_share > 0.0, "{db:#}");
    assert_eq!(db["reference_share"], serde_json::json!([0.1, 0.2]));
    eprintln!(
        "reference figures: install p99 {install_p99_ms:.1} ms, commit → published p95 \
         {commit_p95_s:.1} s, database CPU {:.1} % of a core ({:.1} % of the machine)",
        core_share * 100.0,
        db["machine_share"].as_f64().unwrap_or(f64::NAN) * 100.0
    );
    // The cluster was a valid HA cluster before and after.
    for name in ["ha-checklist-at-start", "ha-checklist-at-end"] {
        let checker = summary["checkers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(checker["validity"], "valid", "{checker:#}");
    }
    for file in [
        "report.html",
        "commits.jsonl",
        "builds.jsonl",
        "ledger.jsonl",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for section in [
        "id=\"workloads\"",
        "id=\"installs\"",
        "id=\"uploads\"",
        "id=\"git-builders\"",
        "id=\"database-cpu\"",
    ] {
        assert!(page.contains(section), "{section} missing from the page");
    }
    assert!(page.contains("within 10–20 % CPU"));
    assert!(stdout.contains("workload git-builders"), "{stdout}");
    assert_nothing_left(tmp.path());
}

/// The reference plan with `extra` arguments, as the CLI makes it.
fn reference_plan(extra: &[&str]) -> harness::plan::RunPlan {
    use clap::Parser;
    let argv = ["harness", "scenario", "reference"]
        .into_iter()
        .chain(SHORT.iter().copied())
        .chain(extra.iter().copied());
    let harness::cli::Command::Scenario(args) = harness::cli::Cli::try_parse_from(argv)
        .expect("arguments parse")
        .command
    else {
        panic!("not a scenario");
    };
    harness::commands::plan::scenario(&args).expect("a valid plan")
}

/// While a reference run goes on, one Python build's publishing transaction is replayed in the
/// database (a second `git-build` transaction adding that build's files): the builds checker
/// reads what was published, so the git builders fail (`duplicates`), and with them the run;
/// the reads and the writer, untouched, still pass.
#[test]
fn a_build_published_twice_fails_the_builders_and_the_run_but_not_the_other_workloads() {
    let plan = reference_plan(&[
        "--builders",
        "2",
        "--duration",
        "10s",
        "--commits-per-builder-per-hour",
        "360",
        "--bad-commit-share",
        "0",
        "--grace",
        "30s",
    ]);
    let cluster = local::start(LocalOptions {
        nodes: plan.infra.nodes,
        pkgnode_bin: pkgnode(),
        node_config_extra: plan.infra.node_config_extra.clone(),
        synchronous: true,
        git_builders: true,
        // Which store holds the bytes does not matter here: no S3 server needed.
        package_storage: PackageStorage::SharedDirectory,
        reason: "reference mutation test".into(),
        ..LocalOptions::default()
    })
    .expect("local cluster starts");
    let python_source = cluster.git().expect("a Git server").python_source.clone();
    let ran = AtomicBool::new(false);
    let (outcome, replayed) = std::thread::scope(|scope| {
        // The planter: once a Python build has published, its transaction again.
        let planter = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !ran.load(Ordering::SeqCst) && Instant::now() < deadline {
                let replayed = cluster
                    .psql(
                        &Member::DatabasePrimary,
                        &format!(
                            "WITH victim AS (SELECT id, kind, description FROM transactions \
                             WHERE kind = 'git-build' AND description LIKE '{python_source}/%' \
                             AND EXISTS (SELECT 1 FROM packages p WHERE p.added_tx = transactions.id) \
                             ORDER BY id LIMIT 1), \
                             replay AS (INSERT INTO transactions (created_at_ms, kind, description) \
                             SELECT (extract(epoch FROM now()) * 1000)::bigint, kind, description \
                             FROM victim RETURNING id, description) \
                             INSERT INTO packages (source_id, name, normalized, version, filename, \
                             file_kind, sha256, md5, size_bytes, metadata, added_tx) \
                             SELECT p.source_id, p.name, p.normalized, p.version, \
                             p.filename || '.replayed', p.file_kind, p.sha256, p.md5, p.size_bytes, \
                             p.metadata, (SELECT id FROM replay) \
                             FROM packages p WHERE p.added_tx = (SELECT id FROM victim) \
                             RETURNING (SELECT description FROM replay)"
                        ),
                    )
                    .unwrap_or_default();
                // The replayed build's `{source}/{builder}@{sha}`; only `INSERT 0 0` until a
                // build has published.
                if let Some(description) = replayed.lines().map(str::trim).find(|l| l.contains('@'))
                {
                    return Some(description.to_string());
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            None
        });
        let outcome = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(harness::run::run(&plan, &cluster))
            .expect("the run runs");
        ran.store(true, Ordering::SeqCst);
        (outcome, planter.join().expect("the planter"))
    });
    let description = replayed.expect("a Python build was published and replayed");
    let record = &outcome.record;
    let checker = |name: &str| {
        record
            .checkers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name}: {:#?}", record.checkers))
    };
    let builds = checker("builds");
    assert_eq!(
        builds.validity,
        Validity::Invalid,
        "{description}: {}: {:#}",
        builds.summary,
        builds.evidence
    );
    assert!(
        builds.evidence["counts"]["duplicates"]
            .as_u64()
            .unwrap_or(0)
            >= 1
            || record
                .metrics
                .counters
                .get("duplicates")
                .copied()
                .unwrap_or(0.0)
                >= 1.0,
        "{:#}",
        builds.evidence
    );
    let lost_writes = checker("lost-writes");
    assert_eq!(
        lost_writes.validity,
        Validity::Valid,
        "{}: {:#}",
        lost_writes.summary,
        lost_writes.evidence
    );
    let verdicts: Vec<(&str, Verdict)> = record
        .workloads
        .iter()
        .map(|w| (w.name.as_str(), record.workload_verdict(w)))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("installs", Verdict::Pass),
            ("uploads", Verdict::Pass),
            ("git-builders", Verdict::Fail)
        ],
        "{:#?}",
        record.thresholds
    );
    assert_eq!(record.verdict, Verdict::Fail);
    let summary = reports::summary::Summary::from_record(record);
    assert_eq!(summary.verdict, Verdict::Fail);
    assert_eq!(summary.workloads[2].verdict, Verdict::Fail);
}
