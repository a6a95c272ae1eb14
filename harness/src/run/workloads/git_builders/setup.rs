//! Before the clock: one repository per builder on the cluster's Git server, each
//! repository's first commit pushed, its builder created through the nodes' API, and those
//! first builds settled (not measured).

use std::time::{Duration, Instant};

use scenarios::corpus::Ecosystem;
use scenarios::git_builders::{
    self, BuildRow, BuilderApi, BuilderSpec, CommitDriver, GitBuildersConfig, NewBuilder,
    PushedCommit,
};

use super::super::RunContext;
use crate::error::HarnessError;
use crate::infra::GitEndpoints;
use crate::run::run_client;

/// The repositories, the builders and their first builds, settled.
pub(super) struct Ready {
    pub(super) apis: Apis,
    /// The commit driver's working repositories; removed when the workload drops.
    _work: tempfile::TempDir,
    pub(super) driver: Option<CommitDriver>,
    pub(super) first_commits: Vec<PushedCommit>,
}

/// Sets up the builders for the run (see the module's note).
pub(super) async fn set_up(
    ctx: &RunContext<'_>,
    config: &GitBuildersConfig,
    builders: &[BuilderSpec],
) -> Result<Ready, HarnessError> {
    config.validate()?;
    let infra = ctx.infra;
    let git = infra.git().cloned().ok_or_else(|| {
        HarnessError::Config(vec![
            "this cluster has no Git server: git-builders needs one (local provider)".into(),
        ])
    })?;
    let client = run_client(Duration::from_secs(30))?;
    let apis = Apis::new(&client, &ctx.endpoints.base_url, &git);

    // Repositories, first commits, builders; the first builds are not measured.
    let setup = Instant::now();
    for builder in builders {
        infra.create_git_repository(&builder.name)?;
    }
    let work = tempfile::Builder::new()
        .prefix("harness-git-work-")
        .tempdir()?;
    let driver = CommitDriver::new(
        work.path(),
        git.remote.clone(),
        builders.to_vec(),
        config.max_pushes_in_flight,
    );
    let first_commits = driver.init(setup).await?;
    for builder in builders {
        apis.of(builder)
            .create(&NewBuilder {
                name: builder.name.clone(),
                url: git.remote.clone_url(&builder.name),
                branch: Some("main".into()),
                build_trigger: builder.trigger.as_str().into(),
                sub_dir: None,
                clone_depth: None,
            })
            .await?;
    }
    let count = |f: &dyn Fn(&BuilderSpec) -> bool| builders.iter().filter(|b| f(b)).count();
    eprintln!(
        "harness: {} git builders created ({} R, {} Python, {} tag-triggered) in {:.1} s",
        builders.len(),
        count(&|b| b.ecosystem == Ecosystem::R),
        count(&|b| b.ecosystem == Ecosystem::Python),
        count(&|b| b.trigger == git_builders::BuildTrigger::Tags),
        setup.elapsed().as_secs_f64()
    );
    let settled = settle(&apis, builders).await?;
    eprintln!(
        "harness: first builds settled ({settled} builds) {:.1} s after setup began",
        setup.elapsed().as_secs_f64()
    );
    Ok(Ready {
        apis,
        _work: work,
        driver: Some(driver),
        first_commits,
    })
}

/// The API of each Git source.
pub(super) struct Apis {
    r: BuilderApi,
    python: BuilderApi,
}

impl Apis {
    fn new(client: &reqwest::Client, base_url: &str, git: &GitEndpoints) -> Self {
        let api = |source: &str, token: &str| BuilderApi {
            base_url: base_url.to_string(),
            source: source.to_string(),
            token: token.to_string(),
            client: client.clone(),
        };
        Apis {
            r: api(&git.r_source, &git.r_token),
            python: api(&git.python_source, &git.python_token),
        }
    }

    fn of(&self, builder: &BuilderSpec) -> &BuilderApi {
        match builder.ecosystem {
            Ecosystem::R => &self.r,
            Ecosystem::Python => &self.python,
        }
    }

    pub(super) async fn all_builds(&self) -> Result<Vec<BuildRow>, HarnessError> {
        let mut builds = self.r.all_builds().await?;
        builds.extend(self.python.all_builds().await?);
        Ok(builds)
    }
}

/// Asks every builder to check its remote now, then waits until no build is queued or
/// running. Bounded: a minute plus ten seconds a builder (a loaded two-core machine takes about
/// three a builder). Returns the builds listed.
async fn settle(apis: &Apis, builders: &[BuilderSpec]) -> Result<usize, HarnessError> {
    for builder in builders {
        apis.of(builder).run(&builder.name).await?;
    }
    let limit = Duration::from_secs(60 + 10 * builders.len() as u64);
    let deadline = Instant::now() + limit;
    // Two quiet reads in a row a second apart: a build queued between them is seen.
    let mut quiet = 0;
    loop {
        let builds = apis.all_builds().await?;
        let busy = builds
            .iter()
            .filter(|b| matches!(b.state.as_str(), "queued" | "running"))
            .count();
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if quiet >= 2 {
            return Ok(builds.len());
        }
        if Instant::now() > deadline {
            return Err(HarnessError::Target(format!(
                "the first builds did not settle within {limit:?}: {busy} still queued or running"
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
