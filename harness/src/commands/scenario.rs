//! `harness scenario NAME`: choose the infrastructure, run, tear down (also on failure and
//! Ctrl-C), write the run record and report, and turn the verdict into an exit code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reports::record::NodeInfo;
use reports::{RunRecord, Verdict};

use crate::cli::{InfraChoice, ScenarioArgs};
use crate::error::{HarnessError, exit};
use crate::infra::{self, Endpoints, Infra, InfraError};
use crate::run;

/// Runs the scenario end to end and returns the exit code.
pub async fn run(args: ScenarioArgs) -> Result<u8, HarnessError> {
    let config = run::daily_installs_config(&args);
    config.validate().map_err(HarnessError::Config)?;
    let thresholds = run::thresholds(&args)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(args.name.as_str()));

    let started = Instant::now();
    let mut infra = start_infra(&args).await?;
    eprintln!(
        "harness: {} infrastructure up in {:.1} s ({})",
        infra.info().provider,
        started.elapsed().as_secs_f64(),
        infra.info().reason
    );
    let outcome = tokio::select! {
        result = run::daily_installs(&args, &config, &thresholds, infra.as_ref()) => result,
        _ = tokio::signal::ctrl_c() => Err(HarnessError::Interrupted),
    };
    let torn_down = tokio::task::spawn_blocking(move || infra.teardown())
        .await
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let record = outcome?;
    torn_down?;
    write(&out, &record)?;
    Ok(match record.verdict {
        Verdict::Pass => exit::PASS,
        Verdict::Fail => exit::THRESHOLD_FAILED,
    })
}

fn default_out_dir(scenario: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    PathBuf::from("reports/runs").join(format!("{stamp}-{scenario}"))
}

/// Writes the run directory and prints where it is and what it says.
fn write(out: &Path, record: &RunRecord) -> Result<(), HarnessError> {
    reports::store::write_run_dir(out, record)?;
    let summary = reports::summary::Summary::from_record(record);
    println!("{}", one_screen_summary(&summary));
    for threshold in &record.thresholds {
        println!(
            "  {} {:<28} observed {}",
            if threshold.passed { "✓" } else { "✗" },
            threshold.expr,
            threshold.observed_text
        );
    }
    println!("verdict: {}", record.verdict.as_str().to_uppercase());
    println!("report: {}", out.join("report.html").display());
    Ok(())
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
        "installs: {} attempted, {} succeeded, {} failed, {} late; rate target {:.2}/s achieved {:.2}/s\n\
         request latency ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
        summary.installs.attempted,
        summary.installs.succeeded,
        summary.installs.failed,
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

/// Starts (or connects to) the infrastructure the flags ask for.
async fn start_infra(args: &ScenarioArgs) -> Result<Box<dyn Infra>, HarnessError> {
    if let Some(url) = &args.target {
        return Ok(Box::new(target(args, url).await?));
    }
    let reason = match args.infra {
        InfraChoice::Local => "--infra local".to_string(),
        InfraChoice::Docker => {
            let pkgnode = ensure_pkgnode()?;
            return start_docker(args, pkgnode, "--infra docker".into()).await;
        }
        InfraChoice::Auto => match infra::docker::available() {
            Ok(version) => {
                let pkgnode = ensure_pkgnode()?;
                let reason = format!(
                    "auto: docker {version} answers and the pkgcluster images exist or can be built"
                );
                match start_docker(args, pkgnode, reason).await {
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
    let options = infra::local::LocalOptions {
        nodes: args.nodes,
        pkgnode_bin: pkgnode,
        work_dir: args.keep_work_dir.clone(),
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
    args: &ScenarioArgs,
    pkgnode: PathBuf,
    reason: String,
) -> Result<Box<dyn Infra>, HarnessError> {
    let options = infra::docker::DockerOptions {
        nodes: args.nodes,
        pkgnode_bin: pkgnode,
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

/// An existing deployment: nothing started; versions read from its status endpoint.
async fn target(args: &ScenarioArgs, url: &str) -> Result<infra::target::Target, HarnessError> {
    let url = url.trim_end_matches('/').to_string();
    let host_ok = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
    if !host_ok {
        return Err(HarnessError::Config(vec![format!(
            "--target {url}: load goes only to loopback addresses (127.0.0.0/8, localhost) from this harness"
        )]));
    }
    let token = args.token.clone().ok_or_else(|| {
        HarnessError::Config(vec![
            "--target needs --token (a sources:write token)".into(),
        ])
    })?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let status: serde_json::Value = client
        .get(format!("{url}/__api__/status"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| HarnessError::Target(format!("{url}/__api__/status: {e}")))?
        .json()
        .await
        .map_err(|e| HarnessError::Target(format!("{url}/__api__/status is not JSON: {e}")))?;
    let node = NodeInfo {
        id: status["node_id"].as_str().unwrap_or("unknown").to_string(),
        address: url.clone(),
        version: status["version"].as_str().unwrap_or("unknown").to_string(),
    };
    let endpoints = Endpoints {
        base_url: url,
        nodes: Vec::new(),
        pypi_repo: args.pypi_repo.clone(),
        cran_repo: args.cran_repo.clone(),
        pypi_source: args.pypi_source.clone(),
        cran_source: args.cran_source.clone(),
        cran_token: args.cran_token.clone().unwrap_or_else(|| token.clone()),
        pypi_token: token,
    };
    Ok(infra::target::Target::new(endpoints, vec![node]))
}
