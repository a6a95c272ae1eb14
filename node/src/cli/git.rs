//! Git builder commands, after `rspm`: `create git-builder`, `run git-builder`, `rerun
//! git-builder`, `list git-builds`, `list git-builders` and `logs`. They work on the configured
//! database directly, like the other admin commands; the serving nodes' workers do the builds.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::builders::queue::{self, Build, Rerun};
use crate::builders::{BuildState, BuildTrigger, NewBuilder, remote, rfc3339, sightings};
use crate::config::Config;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct CreateGitBuilder {
    /// The git or git-python source the builds go to.
    #[arg(long)]
    pub source: String,
    /// The Git remote: git://, http(s)://, ssh://, file:// or an absolute path.
    #[arg(long)]
    pub url: String,
    /// The builder's name; by default the last part of the URL without `.git`.
    #[arg(long)]
    pub name: Option<String>,
    /// The branch to follow (commit-triggered builders); the remote's default branch when absent.
    #[arg(long)]
    pub branch: Option<String>,
    #[arg(long, value_enum, default_value = "commits")]
    pub build_trigger: TriggerArg,
    /// The package's directory inside the repository.
    #[arg(long)]
    pub sub_dir: Option<String>,
    /// Commits fetched per build: 1 (shallow, the default) or 0 for the whole history.
    #[arg(long, default_value_t = 1)]
    pub clone_depth: i64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TriggerArg {
    Commits,
    Tags,
}

/// Whether to wait for the builds (`--wait`, the default, as `rspm`) or not.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait for the builds and print how they ended (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Queue the builds and return.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunWhat {
    /// Check a builder's remote now and queue a build for each new commit or tag.
    GitBuilder {
        #[arg(long)]
        source: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RerunWhat {
    /// Build a commit or tag again (a failed build, or one never built); the newest build when
    /// neither is given. A published commit is not published again.
    #[command(group(clap::ArgGroup::new("which").args(["commit_sha", "tag"])))]
    GitBuilder {
        #[arg(long)]
        source: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        commit_sha: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `logs`: a build's log, by the transaction it published or by its build id.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["transaction_id", "build_id"])))]
pub struct LogsArgs {
    #[arg(long)]
    pub transaction_id: Option<i64>,
    /// The build's id (`list git-builds`), for builds that published nothing (failed ones).
    #[arg(long)]
    pub build_id: Option<i64>,
}

fn default_name(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url)
        .trim_end_matches(".git")
        .to_string()
}

pub async fn create(args: CreateGitBuilder, store: &Store) -> anyhow::Result<()> {
    let source = store
        .source_by_name(&args.source)
        .await?
        .with_context(|| format!("no source named {:?}", args.source))?;
    let new = NewBuilder {
        name: args.name.unwrap_or_else(|| default_name(&args.url)),
        url: args.url,
        branch: args.branch,
        build_trigger: match args.build_trigger {
            TriggerArg::Commits => BuildTrigger::Commits,
            TriggerArg::Tags => BuildTrigger::Tags,
        },
        sub_dir: args.sub_dir,
        clone_depth: args.clone_depth,
    };
    let builder = queue::create_builder(store, &source, &new).await?;
    println!(
        "created git builder {} for source {} ({}, {}), id {}; the nodes check it every [git] poll_interval",
        builder.name,
        builder.source,
        builder.url,
        builder.build_trigger.as_str(),
        builder.id
    );
    Ok(())
}

pub async fn run(what: RunWhat, store: &Store, config: &Config) -> anyhow::Result<()> {
    let RunWhat::GitBuilder { source, name, wait } = what;
    let builder = queue::builder(store, &source, &name)
        .await?
        .with_context(|| format!("source {source:?} has no git builder named {name:?}"))?;
    let ids = remote::check(store, &builder, sightings::CLI_OBSERVER).await?;
    if ids.is_empty() {
        println!("no new commit or tag for {name}: nothing queued");
        return Ok(());
    }
    let mut builds = Vec::new();
    for id in ids {
        if let Some(build) = queue::build(store, id).await? {
            println!("queued build {} of commit {}", build.id, build.commit_sha);
            builds.push(build);
        }
    }
    finish(store, config, builds, &wait).await
}

pub async fn rerun(what: RerunWhat, store: &Store, config: &Config) -> anyhow::Result<()> {
    let RerunWhat::GitBuilder {
        source,
        name,
        commit_sha,
        tag,
        wait,
    } = what;
    let builder = queue::builder(store, &source, &name)
        .await?
        .with_context(|| format!("source {source:?} has no git builder named {name:?}"))?;
    let (sha, tag) = remote::rerun_target(store, &builder, commit_sha, tag).await?;
    let build = match queue::rerun(store, &builder, &sha, tag.as_deref()).await? {
        Rerun::Queued(build) => {
            println!("queued build {} of commit {}", build.id, build.commit_sha);
            build
        }
        Rerun::Pending(build) => {
            println!(
                "build {} of commit {} is already {}",
                build.id,
                build.commit_sha,
                build.state.as_str()
            );
            build
        }
    };
    finish(store, config, vec![build], &wait).await
}

/// Waits (unless `--no-wait`) until every build ended, at most twice `[git] build_timeout` plus
/// a lease; fails when one failed or is still pending.
async fn finish(
    store: &Store,
    config: &Config,
    builds: Vec<Build>,
    wait: &WaitArgs,
) -> anyhow::Result<()> {
    if wait.no_wait && !wait.wait {
        return Ok(());
    }
    let limit = config.git.build_timeout * 2 + config.git.lease_duration;
    let started = Instant::now();
    let mut failed = 0;
    for build in builds {
        let done = loop {
            let now = queue::build(store, build.id)
                .await?
                .with_context(|| format!("build {} vanished", build.id))?;
            if matches!(now.state, BuildState::Succeeded | BuildState::Failed) {
                break now;
            }
            if started.elapsed() > limit {
                anyhow::bail!(
                    "build {} is still {} after {}: is a node serving with [git] build_concurrency above 0?",
                    now.id,
                    now.state.as_str(),
                    humantime::format_duration(limit)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        print_build(&done);
        if done.state == BuildState::Failed {
            failed += 1;
            println!(
                "  the log: pkgnode logs --build-id {} (or GET /__api__/git-builds/{}/log)",
                done.id, done.id
            );
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} build(s) failed");
    }
    Ok(())
}

fn print_build(b: &Build) {
    println!(
        "{}\t{}\t{}\t{}\t{}\t{}\tattempts {}\t{}\tqueued {}\t{}\t{}",
        b.id,
        b.builder,
        b.commit_sha,
        b.tag.as_deref().unwrap_or("-"),
        b.version.as_deref().unwrap_or("-"),
        b.state.as_str(),
        b.attempts,
        b.node_id.as_deref().unwrap_or("-"),
        rfc3339(b.queued_at_ms),
        b.transaction_id
            .map(|t| format!("transaction {t}"))
            .unwrap_or_else(|| "-".into()),
        b.error.as_deref().unwrap_or("")
    );
}

pub async fn list_builds(
    store: &Store,
    source: Option<String>,
    name: Option<String>,
    count: i64,
    page: i64,
) -> anyhow::Result<()> {
    let source = source.context("list git-builds needs --source NAME")?;
    if !(1..=1000).contains(&count) || page < 1 {
        anyhow::bail!("--count must be 1 to 1000 and --page 1 or more");
    }
    for build in queue::builds(store, &source, name.as_deref(), count, page).await? {
        print_build(&build);
    }
    Ok(())
}

pub async fn list_builders(store: &Store, source: Option<String>) -> anyhow::Result<()> {
    let source = source.context("list git-builders needs --source NAME")?;
    for b in queue::builders(store, &source).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}\tdepth {}\t{}",
            b.name,
            b.url,
            b.branch.as_deref().unwrap_or("(default branch)"),
            b.build_trigger.as_str(),
            b.sub_dir.as_deref().unwrap_or("."),
            b.clone_depth,
            b.last_poll_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn logs(args: LogsArgs, store: &Store) -> anyhow::Result<()> {
    let build = match (args.transaction_id, args.build_id) {
        (Some(tx), _) => queue::build_of_transaction(store, tx)
            .await?
            .with_context(|| format!("no git build published transaction {tx}"))?,
        (None, Some(id)) => queue::build(store, id)
            .await?
            .with_context(|| format!("no git build {id}"))?,
        (None, None) => anyhow::bail!("give --transaction-id T or --build-id B"),
    };
    let log = queue::build_log(store, build.id).await?.with_context(|| {
        format!(
            "build {} has no log yet: it is {}",
            build.id,
            build.state.as_str()
        )
    })?;
    print!("{log}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_name;

    #[test]
    fn names_default_to_the_repository() {
        assert_eq!(default_name("git://127.0.0.1/pkgs/alpha.git"), "alpha");
        assert_eq!(default_name("/srv/git/beta/"), "beta");
        assert_eq!(default_name("git@host:team/gamma.git"), "gamma");
    }
}
