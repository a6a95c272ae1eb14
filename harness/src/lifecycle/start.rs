//! The infrastructure chosen and started for a run: the provider the plan asks for (`auto`:
//! docker when an engine answers and the plan can run there, else local processes), the
//! `pkgnode` binary it runs (built under cargo), and the corpus cache entry it restores or
//! the run seeds. Ctrl-C during a start lets the start finish and then tears down.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::HarnessError;
use crate::infra::{self, Infra, InfraError};
use crate::plan::{InfraKind, InfraPlan};

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
