//! `harness scenario NAME`: the arguments become a [`RunPlan`](crate::plan::RunPlan)
//! (`commands/plan.rs`), the cluster is started (or `--target` probed) and the plan runs
//! through the [`lifecycle`](crate::lifecycle), which writes and prints the run.

use crate::cli::ScenarioArgs;
use crate::error::HarnessError;
use crate::infra::{Endpoints, Infra};
use crate::lifecycle::target::{RemoteTargets, TargetProbe};
use crate::lifecycle::{self, default_out_dir};
use crate::plan::CorpusSource;

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
        Some(url) => {
            Box::new(lifecycle::target::probe(target(&args, url, plan.generators.corpus)).await?)
                as Box<dyn Infra>
        }
        None => lifecycle::start_infra_with_corpus(&plan.infra, plan.installs_corpus()).await?,
    };
    lifecycle::execute(&plan, infra, Some(out)).await
}

/// `--target URL` as the prober takes it: loopback unless `--allow-remote-target`; a token
/// only when the corpus is to be published.
fn target(args: &ScenarioArgs, url: &str, corpus: CorpusSource) -> TargetProbe {
    let mut problems = Vec::new();
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
    TargetProbe {
        url: url.to_string(),
        node_urls: args.node_urls.clone(),
        remote: RemoteTargets::AllowedByFlag(args.allow_remote_target),
        nodes_required: false,
        problems,
        endpoints: Endpoints {
            base_url: String::new(),
            nodes: Vec::new(),
            pypi_repo: args.pypi_repo.clone(),
            cran_repo: args.cran_repo.clone(),
            pypi_source: args.pypi_source.clone(),
            cran_source: args.cran_source.clone(),
            cran_token: args.cran_token.clone().unwrap_or_else(|| token.clone()),
            pypi_token: token,
        },
    }
}
