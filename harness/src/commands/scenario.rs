//! `harness scenario NAME` and what every run command shares: choose and start the
//! infrastructure, run the plan, tear down (also on failure and Ctrl-C), write the run record
//! and report, and turn the verdict into an exit code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reports::record::NodeInfo;
use reports::{RunRecord, Verdict};

use crate::cli::ScenarioArgs;
use crate::error::{HarnessError, exit};
use crate::infra::{self, Endpoints, Infra, InfraError};
use crate::plan::{CorpusSource, InfraKind, InfraPlan, RunPlan};
use crate::run;

/// Runs the scenario end to end and returns the exit code.
pub async fn run(args: ScenarioArgs) -> Result<u8, HarnessError> {
    let mut plan = super::plan::scenario(&args)?;
    let out = args
        .load
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&plan.name));
    if plan.generators.children > 1 {
        plan.generators.records_dir = Some(out.join("generators"));
    }
    let infra = match &args.target {
        Some(url) => Box::new(target(&args, url, plan.generators.corpus).await?) as Box<dyn Infra>,
        None => start_infra_with_corpus(&plan.infra, plan.installs_corpus()).await?,
    };
    execute(&plan, infra, Some(out)).await
}

/// Runs `plan` on `infra`, tears it down, writes the run directory (default
/// `reports/runs/<timestamp>-<plan name>/`) and returns the verdict's exit code.
pub async fn execute(
    plan: &RunPlan,
    infra: Box<dyn Infra>,
    out: Option<PathBuf>,
) -> Result<u8, HarnessError> {
    let out = out.unwrap_or_else(|| default_out_dir(&plan.name));
    let mut infra = infra;
    let outcome = tokio::select! {
        result = run::run(plan, infra.as_ref()) => result,
        _ = tokio::signal::ctrl_c() => Err(HarnessError::Interrupted),
    };
    let torn_down = tokio::task::spawn_blocking(move || infra.teardown())
        .await
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let outcome = outcome?;
    torn_down?;
    write(&out, &outcome.record)?;
    if !outcome.ledger.is_empty() {
        write_ledger(&out, &outcome.ledger)?;
    }
    for (name, content) in &outcome.files {
        std::fs::write(out.join(name), content)?;
    }
    Ok(match outcome.record.verdict {
        Verdict::Pass => exit::PASS,
        Verdict::Fail => exit::THRESHOLD_FAILED,
        Verdict::Unknown => exit::UNKNOWN,
    })
}

/// `ledger.jsonl`: every upload the writer invoked, one JSON object a line.
fn write_ledger(out: &Path, ledger: &[scenarios::writes::LedgerEntry]) -> Result<(), HarnessError> {
    let mut text = String::new();
    for entry in ledger {
        text.push_str(
            &serde_json::to_string(entry).map_err(|e| HarnessError::Internal(e.to_string()))?,
        );
        text.push('\n');
    }
    std::fs::write(out.join("ledger.jsonl"), text)?;
    Ok(())
}

fn default_out_dir(scenario: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    PathBuf::from("reports/runs").join(format!("{stamp}-{scenario}"))
}

/// Writes the run directory and prints where it is and what it says.
pub(crate) fn write(out: &Path, record: &RunRecord) -> Result<(), HarnessError> {
    reports::store::write_run_dir(out, record)?;
    let summary = reports::summary::Summary::from_record(record);
    let git = git_builders_summary(record);
    let installs = record.workloads.iter().any(|w| w.name == "installs");
    if git.is_none() || installs {
        println!("{}", one_screen_summary(&summary));
    }
    if let Some(text) = git {
        println!("{text}");
    }
    if summary.workloads.len() > 1 {
        print_workloads(&summary);
    }
    for threshold in &record.thresholds {
        println!(
            "  {} {:<28} observed {}",
            threshold.mark(),
            threshold.expr,
            threshold.observed_text
        );
    }
    for checker in &record.checkers {
        println!(
            "  {} {:<28} {}",
            checker.validity.mark(),
            checker.name,
            checker.summary
        );
    }
    println!("verdict: {}", record.verdict.as_str().to_uppercase());
    println!("report: {}", out.join("report.html").display());
    Ok(())
}

/// One line per workload with its verdict and headline figures, and the database's CPU beside
/// the reference's 10–20 % (a run of several workloads: the reference claim).
fn print_workloads(summary: &reports::summary::Summary) {
    for workload in &summary.workloads {
        let mark = match workload.verdict {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Unknown => "?",
        };
        let figures: Vec<String> = workload
            .figures
            .iter()
            .map(|(name, value)| match value.fract() == 0.0 {
                true => format!("{name} {value:.0}"),
                false => format!("{name} {value:.2}"),
            })
            .collect();
        println!(
            "  {mark} workload {:<13} {:<7} {}",
            workload.name,
            workload.verdict.as_str(),
            figures.join(", ")
        );
    }
    if let Some(db) = &summary.database_cpu {
        let (low, high) = db.reference_share;
        println!(
            "database CPU: {:.1} CPU-s, {:.1} % of one core{} (the reference: {:.0}–{:.0} %)",
            db.cpu_s,
            db.core_share * 100.0,
            db.machine_share
                .map(|share| format!(", {:.1} % of the machine", share * 100.0))
                .unwrap_or_default(),
            low * 100.0,
            high * 100.0
        );
    }
}

/// The git-builders run in two lines: commits, builds, duplicates, lost; commit → published.
fn git_builders_summary(record: &RunRecord) -> Option<String> {
    let counters = &record.metrics.counters;
    let n = |name: &str| counters.get(name).copied().unwrap_or(0.0);
    counters.get("commits")?;
    let latency = record
        .metrics
        .kinds
        .get(scenarios::git_builders::KIND_COMMIT_TO_PUBLISHED);
    let q = |q: f64| {
        latency
            .and_then(|k| k.latency_ms(q))
            .map(|ms| format!("{:.1}", ms / 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    Some(format!(
        "commits: {} pushed ({} good, {} broken); builds (first commits included): {} succeeded, {} failed; duplicates {}, lost {}
         commit → published s: p50 {} p95 {} p99 {} max {}{}",
        n("commits"),
        n("good_commits"),
        n("broken_commits"),
        n("builds_succeeded"),
        n("builds_failed"),
        n("duplicates"),
        n("lost"),
        q(0.5),
        q(0.95),
        q(0.99),
        q(1.0),
        counters
            .get("makespan_s")
            .map(|s| format!("; makespan {s:.1} s"))
            .unwrap_or_default(),
    ))
}

fn one_screen_summary(summary: &reports::summary::Summary) -> String {
    let overall = summary.latency_ms.get("overall");
    let p = |f: fn(&reports::summary::LatencySummary) -> Option<f64>| {
        overall
            .and_then(f)
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "installs: {} attempted, {} succeeded, {} failed, {} never started, {} late; rate target {:.2}/s achieved {:.2}/s\n\
         request latency ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
        summary.installs.attempted,
        summary.installs.succeeded,
        summary.installs.failed,
        summary.installs.never_started,
        summary.installs.late,
        summary.rate.target_per_s,
        summary.rate.achieved_per_s,
        p(|l| l.p50),
        p(|l| l.p90),
        p(|l| l.p99),
        p(|l| l.p999),
        p(|l| l.max),
    )
}

/// Starts the infrastructure the plan asks for, with no corpus cache.
pub async fn start_infra(plan: &InfraPlan) -> Result<Box<dyn Infra>, HarnessError> {
    start_infra_with_corpus(plan, None).await
}

/// Starts the infrastructure the plan asks for. With `corpus` and a corpus cache in the plan,
/// the provider restores that corpus when the cache holds an entry of its key (and the run
/// saves one after seeding otherwise); entries are per provider.
pub async fn start_infra_with_corpus(
    plan: &InfraPlan,
    corpus: Option<&scenarios::corpus::CorpusConfig>,
) -> Result<Box<dyn Infra>, HarnessError> {
    let began = Instant::now();
    let infra = start_provider(plan, corpus).await?;
    eprintln!(
        "harness: {} infrastructure up in {:.1} s ({})",
        infra.info().provider,
        began.elapsed().as_secs_f64(),
        infra.info().reason
    );
    Ok(infra)
}

/// The provider the plan asks for, started (see [`start_infra_with_corpus`]).
async fn start_provider(
    plan: &InfraPlan,
    corpus: Option<&scenarios::corpus::CorpusConfig>,
) -> Result<Box<dyn Infra>, HarnessError> {
    let reason = match plan.kind {
        InfraKind::Local => "--infra local".to_string(),
        // Git builders on docker need its builders image and git daemon: when auto would
        // choose docker for a plan that prefers it (scenario reference), it does; otherwise the
        // Git server runs as a local process.
        InfraKind::Auto if plan.git_server && !plan.auto_prefers_docker => {
            "auto: git-builders runs its Git server as a local process".into()
        }
        InfraKind::Docker if plan.package_storage != infra::PackageStorage::S3 => {
            return Err(HarnessError::Config(vec![
                "directory storage runs on the local provider (--infra local): the docker \
                 provider keeps package files in S3"
                    .into(),
            ]));
        }
        InfraKind::Auto if plan.package_storage != infra::PackageStorage::S3 => {
            "auto: directory storage runs on the local provider".into()
        }
        InfraKind::Docker => {
            let pkgnode = ensure_pkgnode()?;
            return start_docker(plan, corpus, pkgnode, "--infra docker".into()).await;
        }
        InfraKind::Auto => match infra::docker::available() {
            Ok(version) => {
                let pkgnode = ensure_pkgnode()?;
                let reason = format!(
                    "auto: docker {version} answers and the pkgcluster images exist or can be built"
                );
                match start_docker(plan, corpus, pkgnode, reason).await {
                    Ok(cluster) => return Ok(cluster),
                    Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
                    Err(error) => {
                        eprintln!("harness: docker provider failed ({error}); using local");
                        format!(
                            "auto: docker {version} answers but the docker cluster failed ({error}), so local processes"
                        )
                    }
                }
            }
            Err(why) => format!("auto: {why}, so local processes"),
        },
    };
    let pkgnode = ensure_pkgnode()?;
    let corpus_cache = corpus_cache(plan, corpus, &pkgnode, "local")?;
    let options = infra::local::LocalOptions {
        nodes: plan.nodes,
        pkgnode_bin: pkgnode.clone(),
        corpus_cache,
        work_dir: plan.keep_work_dir.clone(),
        node_config_extra: plan.node_config_extra.clone(),
        synchronous: plan.synchronous_replication,
        git_builders: plan.git_server,
        package_storage: plan.package_storage,
        reason,
        ..infra::local::LocalOptions::default()
    };
    let start = tokio::task::spawn_blocking(move || infra::local::start(options));
    // Ctrl-C during start-up: let the start finish (it cannot be cut mid-way), then tear down.
    tokio::select! {
        started = start => {
            let cluster = started.map_err(|e| HarnessError::Internal(e.to_string()))??;
            Ok(Box::new(cluster))
        }
        _ = tokio::signal::ctrl_c() => Err(HarnessError::Interrupted),
    }
}

/// The docker provider, started on a blocking thread (it builds missing images first).
async fn start_docker(
    plan: &InfraPlan,
    corpus: Option<&scenarios::corpus::CorpusConfig>,
    pkgnode: PathBuf,
    reason: String,
) -> Result<Box<dyn Infra>, HarnessError> {
    if !plan.synchronous_replication {
        return Err(HarnessError::Config(vec![
            "--replication async runs on the local provider only (--infra local)".into(),
        ]));
    }
    let corpus_cache = corpus_cache(plan, corpus, &pkgnode, "docker")?;
    let options = infra::docker::DockerOptions {
        corpus_cache,
        nodes: plan.nodes,
        pkgnode_bin: pkgnode,
        node_config_extra: plan.node_config_extra.clone(),
        git_builders: plan.git_server,
        reason,
        ..infra::docker::DockerOptions::default()
    };
    let start = tokio::task::spawn_blocking(move || infra::docker::start(options));
    // Ctrl-C during start-up: the start finishes on its thread and the cluster drops there,
    // which removes its containers and network.
    tokio::select! {
        started = start => {
            let cluster = started.map_err(|e| HarnessError::Internal(e.to_string()))??;
            Ok(Box::new(cluster))
        }
        _ = tokio::signal::ctrl_c() => Err(HarnessError::Interrupted),
    }
}

/// The corpus cache and this run's key on `provider`, when the plan keeps a cache; says whether
/// the run restores or seeds.
fn corpus_cache(
    plan: &InfraPlan,
    corpus: Option<&scenarios::corpus::CorpusConfig>,
    pkgnode: &Path,
    provider: &str,
) -> Result<
    Option<(
        crate::corpus_cache::CorpusCache,
        crate::corpus_cache::CacheKey,
    )>,
    HarnessError,
> {
    let (Some(dir), Some(corpus)) = (&plan.corpus_cache, corpus) else {
        return Ok(None);
    };
    let key = crate::corpus_cache::CacheKey::new(corpus, schema_version(pkgnode)?, provider);
    let cache = crate::corpus_cache::CorpusCache::at(Some(dir.clone()));
    match cache.lookup(&key) {
        Some((entry, _)) => eprintln!("harness: restoring the corpus from {}", entry.display()),
        None => eprintln!(
            "harness: no corpus cache entry {} in {}: this run seeds it",
            key.digest(),
            dir.display()
        ),
    }
    Ok(Some((cache, key)))
}

/// `pkgnode schema-version`: the schema a cached database must have been saved from.
fn schema_version(pkgnode: &Path) -> Result<i64, HarnessError> {
    let out = std::process::Command::new(pkgnode)
        .arg("schema-version")
        .output()
        .map_err(|e| InfraError::Missing {
            what: "pkgnode".into(),
            detail: format!("{}: {e}", pkgnode.display()),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| {
        HarnessError::Infra(InfraError::Failed {
            what: format!("{} schema-version", pkgnode.display()),
            detail: format!(
                "printed {text:?} ({}); a pkgnode older than the corpus cache? rebuild it",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    })
}

/// Under cargo (`cargo run -p harness`), builds the release `pkgnode` so the one README
/// command works on a fresh clone and the cluster is measured as it would run; elsewhere finds
/// it (PKGNODE_BIN, or beside this executable).
fn ensure_pkgnode() -> Result<PathBuf, HarnessError> {
    if std::env::var_os("PKGNODE_BIN").is_some() {
        return Ok(infra::local::find_pkgnode_bin()?);
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(infra::local::find_pkgnode_bin()?);
    };
    eprintln!("harness: building pkgnode (release)");
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "node",
            "--bin",
            "pkgnode",
        ])
        .status()
        .map_err(|e| InfraError::Missing {
            what: "cargo".into(),
            detail: e.to_string(),
        })?;
    if !status.success() {
        return Err(InfraError::Failed {
            what: "cargo build --release -p node".into(),
            detail: format!("exit status {status}"),
        }
        .into());
    }
    // target/{profile}/harness → target/release/pkgnode
    let exe = std::env::current_exe()?;
    let target_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| HarnessError::Internal(format!("cannot place {}", exe.display())))?;
    Ok(target_dir.join("release").join("pkgnode"))
}

/// An existing deployment: nothing started; versions read from the status endpoints of the
/// balancer and of each `--node`. Loopback only unless `--allow-remote-target`; a token only
/// when the corpus is to be published.
async fn target(
    args: &ScenarioArgs,
    url: &str,
    corpus: CorpusSource,
) -> Result<infra::target::Target, HarnessError> {
    let url = url.trim_end_matches('/').to_string();
    let mut problems = Vec::new();
    for checked in std::iter::once(&url).chain(&args.node_urls) {
        if !args.allow_remote_target && !is_loopback(checked) {
            problems.push(format!(
                "{checked}: load goes only to loopback addresses (127.0.0.0/8, localhost) unless \
                 --allow-remote-target is given"
            ));
        }
    }
    let token = match (&args.token, corpus) {
        (Some(token), _) => token.clone(),
        (None, CorpusSource::Publish) => {
            problems.push(
                "--target needs --token (a sources:write token) to publish the corpus; \
                 --read-only or --no-publish upload nothing"
                    .into(),
            );
            String::new()
        }
        (None, _) => String::new(),
    };
    if !problems.is_empty() {
        return Err(HarnessError::Config(problems));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let status = |base: String| {
        let client = client.clone();
        async move {
            let value: serde_json::Value = client
                .get(format!("{base}/__api__/status"))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| HarnessError::Target(format!("{base}/__api__/status: {e}")))?
                .json()
                .await
                .map_err(|e| {
                    HarnessError::Target(format!("{base}/__api__/status is not JSON: {e}"))
                })?;
            Ok::<_, HarnessError>(NodeInfo {
                id: value["node_id"].as_str().unwrap_or("unknown").to_string(),
                address: base,
                version: value["version"].as_str().unwrap_or("unknown").to_string(),
            })
        }
    };
    let mut versions = Vec::new();
    let mut nodes = Vec::new();
    if args.node_urls.is_empty() {
        versions.push(status(url.clone()).await?);
    }
    for (i, node_url) in args.node_urls.iter().enumerate() {
        let node_url = node_url.trim_end_matches('/').to_string();
        // A node that does not answer now is still observed (its status shows as such).
        match status(node_url.clone()).await {
            Ok(info) => versions.push(info),
            Err(e) => eprintln!("harness: {e}"),
        }
        nodes.push((format!("node-{}", i + 1), node_url));
    }
    let endpoints = Endpoints {
        base_url: url,
        nodes,
        pypi_repo: args.pypi_repo.clone(),
        cran_repo: args.cran_repo.clone(),
        pypi_source: args.pypi_source.clone(),
        cran_source: args.cran_source.clone(),
        cran_token: args.cran_token.clone().unwrap_or_else(|| token.clone()),
        pypi_token: token,
    };
    Ok(infra::target::Target::new(endpoints, versions))
}

/// Whether `url`'s host is `localhost` or in 127.0.0.0/8.
fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}
