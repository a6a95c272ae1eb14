//! `harness check`: brings up a cluster as `scenario` does (or takes an existing deployment
//! with `--target`), runs the HA checklist against it, tears it down, prints each rule with its evidence, writes the run directory (a run record
//! whose checkers are the rules, no load; `facts.json` beside it) and returns the verdict's
//! exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reports::record::{CheckerResult, NodeInfo, RunMeta};
use reports::{Metrics, RunRecord, Verdict};
use serde_json::json;

use crate::checklist::{self, ChecklistOptions, Facts};
use crate::cli::{CheckArgs, InfraChoice, StorageChoice};
use crate::error::{HarnessError, exit};
use crate::infra::target::Target;
use crate::infra::{Endpoints, Infra, PackageStorage};
use crate::plan::{InfraKind, InfraPlan};

/// The run record's scenario name.
pub const NAME: &str = "check";

/// Node settings for `harness check`: load balancing on (the checklist is about a cluster),
/// every interval at its production default, so the cluster is checked as it would run.
pub const CHECK_NODE_CONFIG: &str = "[cluster]\nenabled = true\n";

/// What `harness check` does, built once from its arguments.
#[derive(Clone, Debug)]
pub struct CheckPlan {
    pub infra: InfraPlan,
    pub options: ChecklistOptions,
}

/// Runs the checklist end to end and returns the exit code.
pub async fn run(args: CheckArgs) -> Result<u8, HarnessError> {
    let plan = plan(&args)?;
    let infra = match &args.target {
        Some(url) => Box::new(target(&args, url).await?) as Box<dyn Infra>,
        None => super::scenario::start_infra(&plan.infra).await?,
    };
    execute(&plan, infra, args.out.clone()).await
}

/// An existing deployment: its balancer and each node's own URL (loopback only, as for
/// `scenario --target`); nothing is started or torn down. The balancer's view of its servers
/// cannot be read, so `balancer-health-check` is unknown.
async fn target(args: &CheckArgs, url: &str) -> Result<Target, HarnessError> {
    let base_url = url.trim_end_matches('/').to_string();
    let node_urls: Vec<String> = args
        .node_urls
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    let mut problems: Vec<String> = std::iter::once(&base_url)
        .chain(&node_urls)
        .filter(|u| !is_loopback_url(u))
        .map(|u| {
            format!("{u}: this harness talks only to loopback addresses (127.0.0.0/8, localhost)")
        })
        .collect();
    if node_urls.is_empty() {
        problems.push("--target needs --node URL for every node (each node's own address)".into());
    }
    if !problems.is_empty() {
        return Err(HarnessError::Config(problems));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let nodes: Vec<(String, String)> = node_urls
        .iter()
        .enumerate()
        .map(|(i, u)| (format!("node-{}", i + 1), u.clone()))
        .collect();
    let mut infos = Vec::new();
    let mut unanswered = Vec::new();
    for (_, node_url) in &nodes {
        // For the report's infrastructure section; the rules read the status themselves.
        let url = format!("{node_url}/__api__/status");
        let status: serde_json::Value = match client.get(&url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => {
                unanswered.push(format!("{url}: {e}"));
                serde_json::Value::Null
            }
        };
        infos.push(NodeInfo {
            id: status["node_id"].as_str().unwrap_or("unknown").to_string(),
            address: node_url.clone(),
            version: status["version"].as_str().unwrap_or("unknown").to_string(),
        });
    }
    if unanswered.len() == nodes.len() {
        // Nothing to check: an infrastructure problem (exit 3), not an undecided rule.
        return Err(HarnessError::Target(format!(
            "no node answered: {}",
            unanswered.join("; ")
        )));
    }
    let token = args.token.clone().unwrap_or_default();
    let endpoints = Endpoints {
        base_url,
        nodes,
        pypi_repo: args.pypi_repo.clone(),
        cran_repo: "cran".into(),
        pypi_source: args.pypi_source.clone(),
        cran_source: "cran-local".into(),
        pypi_token: token.clone(),
        cran_token: token,
    };
    Ok(Target::new(endpoints, infos))
}

fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// The arguments as a plan; every problem with them at once.
pub fn plan(args: &CheckArgs) -> Result<CheckPlan, HarnessError> {
    let mut problems = Vec::new();
    if args.nodes == 0 {
        problems.push("a cluster needs at least one node".to_string());
    }
    let within: Duration = args.shared_storage_within.into();
    if within.is_zero() {
        problems.push("--shared-storage-within must be above 0".into());
    }
    if args.storage == StorageChoice::Dir && args.infra == InfraChoice::Docker {
        problems.push(
            "--storage dir runs on the local provider (--infra local): the docker provider keeps \
             package files in S3"
                .into(),
        );
    }
    if !problems.is_empty() {
        return Err(HarnessError::Config(problems));
    }
    Ok(CheckPlan {
        infra: InfraPlan {
            kind: match args.infra {
                InfraChoice::Auto => InfraKind::Auto,
                InfraChoice::Local => InfraKind::Local,
                InfraChoice::Docker => InfraKind::Docker,
            },
            nodes: args.nodes,
            synchronous_replication: true,
            node_config_extra: CHECK_NODE_CONFIG.into(),
            keep_work_dir: args.keep_work_dir.clone(),
            git_server: false,
            auto_prefers_docker: false,
            corpus_cache: None,
            package_storage: match args.storage {
                StorageChoice::S3 => PackageStorage::S3,
                StorageChoice::Dir => PackageStorage::SharedDirectory,
            },
        },
        options: ChecklistOptions {
            shared_storage_within: within,
            max_clock_offset: args.max_clock_offset.into(),
            ..ChecklistOptions::default()
        },
    })
}

/// Checks `infra`, tears it down (also on Ctrl-C), writes the run directory (default
/// `reports/runs/<timestamp>-check/`), prints the table and returns the exit code.
pub async fn execute(
    plan: &CheckPlan,
    infra: Box<dyn Infra>,
    out: Option<PathBuf>,
) -> Result<u8, HarnessError> {
    let out = out.unwrap_or_else(|| {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        PathBuf::from("reports/runs").join(format!("{stamp}-{NAME}"))
    });
    let mut infra = infra;
    eprintln!(
        "harness: {} infrastructure up ({}); checking",
        infra.info().provider,
        infra.info().reason
    );
    let outcome = tokio::select! {
        result = check(infra.as_ref(), plan) => result,
        _ = tokio::signal::ctrl_c() => Err(HarnessError::Interrupted),
    };
    let torn_down = tokio::task::spawn_blocking(move || infra.teardown())
        .await
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let (record, facts) = outcome?;
    torn_down?;
    write(&out, &record, &facts)?;
    println!("{}", table(&record.checkers));
    println!("verdict: {}", record.verdict.as_str().to_uppercase());
    println!("report: {}", out.join("report.html").display());
    Ok(exit_code(record.verdict))
}

/// Gathers the facts, judges every rule and returns the run record (no load, the rules as its
/// checkers) with the facts it was judged on.
pub async fn check(
    infra: &dyn Infra,
    plan: &CheckPlan,
) -> Result<(RunRecord, Facts), HarnessError> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let facts = checklist::gather(infra, &plan.options).await?;
    let checkers = checklist::evaluate(&facts, &plan.options);
    let mut record = RunRecord {
        meta: RunMeta {
            scenario: NAME.into(),
            started_at,
            duration_s: started.elapsed().as_secs_f64(),
            config: json!({
                "description": "the HA checklist, verified from outside the nodes",
                "rules": checklist::RULES,
                "checklist": plan.options,
                "infra": plan.infra,
            }),
            infra: infra.info(),
        },
        metrics: Metrics::new(Duration::from_secs(1)),
        events: Vec::new(),
        samples: Vec::new(),
        node_requests: BTreeMap::new(),
        node_request_rates: Vec::new(),
        gauges: Vec::new(),
        thresholds: Vec::new(),
        checkers,
        workloads: Vec::new(),
        verdict: Verdict::Unknown,
    };
    record.verdict = record.combined_verdict();
    Ok((record, facts))
}

/// 0 every rule valid, 1 a rule invalid, 5 a rule unknown and none invalid.
pub fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Pass => exit::PASS,
        Verdict::Fail => exit::THRESHOLD_FAILED,
        Verdict::Unknown => exit::UNKNOWN,
    }
}

/// The run directory of a report, plus `facts.json` (everything the rules read).
pub fn write(out: &Path, record: &RunRecord, facts: &Facts) -> Result<(), HarnessError> {
    reports::store::write_run_dir(out, record)?;
    let json =
        serde_json::to_vec_pretty(facts).map_err(|e| HarnessError::Internal(e.to_string()))?;
    reports::store::hdr::write_atomic(&out.join("facts.json"), &json)?;
    Ok(())
}

/// The terminal table: rule, pass/fail/unknown, the evidence line.
pub fn table(results: &[CheckerResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut text = format!("{:<width$}  {:<7}  evidence\n", "rule", "result");
    for result in results {
        let word = result.validity.word();
        text.push_str(&format!(
            "{:<width$}  {word:<7}  {}\n",
            result.name, result.summary
        ));
    }
    text.pop();
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::record::Validity;

    #[test]
    fn the_table_has_one_line_per_rule_with_its_word() {
        let result = |name: &str, validity| CheckerResult {
            name: name.into(),
            validity,
            summary: format!("{name} evidence"),
            evidence: json!({}),
        };
        let text = table(&[
            result("same-version", Validity::Valid),
            result("shared-storage", Validity::Invalid),
            result("balancer-health-check", Validity::Unknown),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("rule "));
        assert!(
            lines[1].contains("  pass     same-version evidence"),
            "{text}"
        );
        assert!(
            lines[2].contains("  FAIL     shared-storage evidence"),
            "{text}"
        );
        assert!(
            lines[3].contains("  unknown  balancer-health-check"),
            "{text}"
        );
    }

    #[test]
    fn the_arguments_become_a_plan_with_every_problem_named() {
        use clap::Parser;
        let parse = |args: &[&str]| match crate::cli::Cli::try_parse_from(args) {
            Ok(crate::cli::Cli {
                command: crate::cli::Command::Check(args),
            }) => plan(&args),
            other => panic!("not a check command line: {other:?}"),
        };
        let ok = parse(&["harness", "check", "--infra", "local", "--nodes", "3"]).unwrap();
        assert_eq!(ok.infra.kind, InfraKind::Local);
        assert_eq!(ok.infra.nodes, 3);
        assert!(ok.infra.node_config_extra.contains("enabled = true"));
        assert_eq!(ok.options.shared_storage_within, Duration::from_secs(10));
        assert_eq!(ok.infra.package_storage, PackageStorage::S3);
        let dir = parse(&["harness", "check", "--infra", "local", "--storage", "dir"]).unwrap();
        assert_eq!(dir.infra.package_storage, PackageStorage::SharedDirectory);
        let docker = parse(&["harness", "check", "--infra", "docker", "--storage", "dir"]);
        assert!(
            docker
                .unwrap_err()
                .to_string()
                .contains("--storage dir runs on the local provider")
        );
        let bad = parse(&[
            "harness",
            "check",
            "--nodes",
            "0",
            "--shared-storage-within",
            "0s",
        ])
        .unwrap_err();
        assert_eq!(bad.exit_code(), exit::USAGE);
        let text = bad.to_string();
        assert!(text.contains("at least one node") && text.contains("--shared-storage-within"));
    }

    #[test]
    fn the_exit_code_follows_the_verdict() {
        assert_eq!(exit_code(Verdict::Pass), 0);
        assert_eq!(exit_code(Verdict::Fail), 1);
        assert_eq!(exit_code(Verdict::Unknown), 5);
    }
}
