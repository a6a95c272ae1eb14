//! `harness check`: the arguments become a [`CheckPlan`]; a cluster is brought up as
//! `scenario` does (or an existing deployment taken with `--target`), the HA checklist runs
//! against it through the [`lifecycle`](crate::lifecycle) (`run::checklist::check`), and the
//! command prints each rule with its evidence, writes the run directory (a run record whose
//! checkers are the rules, no load; `facts.json` beside it) and returns the verdict's exit
//! code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reports::RunRecord;
use reports::record::CheckerResult;

use crate::checklist::{ChecklistOptions, Facts};
use crate::cli::{CheckArgs, InfraChoice, StorageChoice};
use crate::error::{HarnessError, exit};
use crate::infra::{Endpoints, Infra, PackageStorage};
use crate::lifecycle::target::{RemoteTargets, TargetProbe};
use crate::lifecycle::{self, default_out_dir};
use crate::plan::{CheckPlan, InfraKind, InfraPlan};
use crate::run::checklist::{NAME, check};

/// Node settings for `harness check`: load balancing on (the checklist is about a cluster),
/// every interval at its production default, so the cluster is checked as it would run.
pub const CHECK_NODE_CONFIG: &str = "[cluster]\nenabled = true\n";

/// Runs the checklist end to end and returns the exit code.
pub async fn run(args: CheckArgs) -> Result<u8, HarnessError> {
    let plan = plan(&args)?;
    let infra = match &args.target {
        Some(url) => {
            Box::new(lifecycle::target::probe(target(&args, url)).await?) as Box<dyn Infra>
        }
        None => lifecycle::start_infra(&plan.infra).await?,
    };
    execute(&plan, infra, args.out.clone()).await
}

/// `--target URL` as the prober takes it: its balancer and each node's own URL (loopback
/// only); nothing is started or torn down. The balancer's view of its servers cannot be
/// read, so `balancer-health-check` is unknown.
fn target(args: &CheckArgs, url: &str) -> TargetProbe {
    let token = args.token.clone().unwrap_or_default();
    TargetProbe {
        url: url.to_string(),
        node_urls: args.node_urls.clone(),
        remote: RemoteTargets::Refused,
        nodes_required: true,
        problems: Vec::new(),
        endpoints: Endpoints {
            base_url: String::new(),
            nodes: Vec::new(),
            pypi_repo: args.pypi_repo.clone(),
            cran_repo: "cran".into(),
            pypi_source: args.pypi_source.clone(),
            cran_source: "cran-local".into(),
            pypi_token: token.clone(),
            cran_token: token,
        },
    }
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
    let out = out.unwrap_or_else(|| default_out_dir(NAME));
    eprintln!(
        "harness: {} infrastructure up ({}); checking",
        infra.info().provider,
        infra.info().reason
    );
    let (record, facts) =
        lifecycle::on_cluster(infra, async |infra| check(infra, plan).await).await?;
    write(&out, &record, &facts)?;
    println!("{}", table(&record.checkers));
    println!("verdict: {}", record.verdict.as_str().to_uppercase());
    println!("report: {}", out.join("report.html").display());
    Ok(exit::of(record.verdict))
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
    use reports::Verdict;
    use reports::record::Validity;
    use serde_json::json;

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
        assert_eq!(exit::of(Verdict::Pass), 0);
        assert_eq!(exit::of(Verdict::Fail), 1);
        assert_eq!(exit::of(Verdict::Unknown), 5);
    }
}
