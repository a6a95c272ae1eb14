//! The node's build workers: `[git] build_concurrency` loops that claim a queued build, renew its
//! lease every third of `[git] lease_duration` while it builds, and publish its products through
//! the validated all-or-nothing ingest — with the build's `succeeded` row in the same database
//! transaction. Also the reaper that re-queues builds whose lease expired, and the shutdown that
//! hands back what the node holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::build_index::{self, IndexError};
use super::queue::{self, Build, Builder, Claimed};
use super::toolchain::{self, BuildLog, BuildSpec, Limits, ToolError};
use super::{Node, pause};
use crate::ingest::{self, BeforeCommit, IngestError, Product};
use crate::store::{Change, SourceKind};

/// How long an idle worker waits before looking at the queue again.
const IDLE: Duration = Duration::from_millis(300);
/// How long shutdown waits for workers to stop their builds and hand them back.
const HAND_BACK_WAIT: Duration = Duration::from_secs(10);

/// The running builders of this node: workers, poller and reaper.
pub struct Runtime {
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Runtime {
    /// Starts the workers, the poller and the reaper of the node serving on `bound`.
    pub fn start(state: Node, bound: SocketAddr) -> Arc<Self> {
        let scratch_root = state.config().data_dir.join("builds");
        let stale_after = state.config().git.build_timeout + state.config().git.lease_duration;
        tokio::task::spawn_blocking(move || {
            let removed = toolchain::remove_stale_scratch(&scratch_root, stale_after);
            if removed > 0 {
                tracing::info!(
                    removed,
                    "removed the scratch directories of builds that did not end"
                );
            }
        });
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();
        for slot in 0..state.config().git.build_concurrency {
            tasks.push(tokio::spawn(work(
                state.clone(),
                slot,
                bound,
                stop.subscribe(),
            )));
        }
        tasks.push(tokio::spawn(super::poller::poll_loop(
            state.clone(),
            stop.subscribe(),
        )));
        tasks.push(tokio::spawn(reap_loop(state, stop.subscribe())));
        Arc::new(Self {
            stop,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    /// Stops claiming, stops running builds and hands them back to the queue, so another node
    /// takes them at once instead of after their lease expires.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(HAND_BACK_WAIT, all).await.is_err() {
            tracing::warn!("build workers did not stop in time; their leases will expire");
        }
    }
}

fn lease_ms(state: &Node) -> i64 {
    state.config().git.lease_duration.as_millis() as i64
}

async fn work(state: Node, slot: usize, bound: SocketAddr, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        if !state.may_work() {
            if pause(&mut stop, IDLE).await {
                return;
            }
            continue;
        }
        let began = Instant::now();
        let claimed = queue::claim(state.store(), &state.node_id(), lease_ms(&state)).await;
        if claimed.is_ok() {
            state.store().health().mark_available();
        }
        match claimed {
            Ok(Some(claimed)) => run_one(&state, claimed, bound, stop.clone()).await,
            Ok(None) => {
                if pause(&mut stop, IDLE).await {
                    return;
                }
            }
            Err(e) => {
                // A claim that waited out an outage must not undo a later success (an upload).
                state.store().health().observe_error_begun(&e, began);
                tracing::warn!(slot, error = %e, "cannot look at the build queue");
                if pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }
}

/// Marks the build succeeded inside the publishing transaction, if the lease is still ours.
struct MarkSucceeded<'a> {
    build_id: i64,
    lease_token: &'a str,
    log: &'a str,
}

impl BeforeCommit for MarkSucceeded<'_> {
    fn run<'a>(
        &'a self,
        change: &'a mut Change,
        version: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(async move {
            if queue::mark_succeeded(change, self.build_id, self.lease_token, version, self.log)
                .await?
            {
                Ok(())
            } else {
                Err(IngestError::Aborted(format!(
                    "build {} is no longer this worker's (its lease expired); not publishing",
                    self.build_id
                )))
            }
        })
    }
}

async fn run_one(
    state: &Node,
    claimed: Claimed,
    bound: SocketAddr,
    mut node_stop: watch::Receiver<bool>,
) {
    let Claimed {
        build,
        builder,
        lease_token,
    } = claimed;
    let telemetry = state.telemetry();
    telemetry.git_builds_running.inc();
    let (build_stop, build_stop_rx) = watch::channel(false);
    let lease_lost = Arc::new(AtomicBool::new(false));
    let shutting_down = Arc::new(AtomicBool::new(false));
    let keeper = {
        let (state, build_id, token, lost, down) = (
            state.clone(),
            build.id,
            lease_token.clone(),
            lease_lost.clone(),
            shutting_down.clone(),
        );
        let every = state.config().git.lease_duration / 3;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    Ok(_) = node_stop.wait_for(|s| *s) => {
                        down.store(true, Ordering::Release);
                        let _ = build_stop.send(true);
                        return;
                    }
                }
                match queue::renew(state.store(), build_id, &token, lease_ms(&state)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::Release);
                        let _ = build_stop.send(true);
                        return;
                    }
                    // The database is away: keep building; if the lease expires meanwhile, the
                    // final write names a token that no longer holds and publishes nothing.
                    Err(e) => {
                        tracing::warn!(build = build_id, error = %e, "cannot renew a build lease")
                    }
                }
            }
        })
    };

    let mut log = BuildLog::default();
    log.note(&format!(
        "# build {} of {}/{} at commit {}{} on node {}, attempt {}",
        build.id,
        builder.source,
        builder.name,
        build.commit_sha,
        build
            .tag
            .as_deref()
            .map(|t| format!(" (tag {t})"))
            .unwrap_or_default(),
        state.node_id(),
        build.attempts
    ));
    let Some(built) = build_commit(state, &builder, &build, bound, build_stop_rx, &mut log).await
    else {
        keeper.abort();
        telemetry.git_builds_running.dec();
        return;
    };

    let outcome = match built {
        Err(ToolError::Stopped) if shutting_down.load(Ordering::Acquire) => {
            match queue::hand_back(state.store(), build.id, &lease_token).await {
                Ok(true) => tracing::info!(build = build.id, "handed a build back to the queue"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(build = build.id, error = %e, "cannot hand a build back; its lease will expire")
                }
            }
            None
        }
        Err(ToolError::Stopped) => {
            tracing::warn!(build = build.id, "lost the lease of a build; stopped it");
            None
        }
        Err(e) => Some((e.to_string(), None)),
        Ok(products) => {
            let source = match state.store().source_by_name(&builder.source).await {
                Ok(Some(source)) => source,
                Ok(None) => {
                    keeper.abort();
                    telemetry.git_builds_running.dec();
                    return;
                }
                Err(e) => {
                    tracing::warn!(build = build.id, error = %e, "cannot read the build's source; its lease will expire and it will run again");
                    keeper.abort();
                    telemetry.git_builds_running.dec();
                    return;
                }
            };
            log.note("# publishing");
            let log_text = std::mem::take(&mut log).into_text();
            let description = format!(
                "{}/{}@{}",
                builder.source,
                builder.name,
                &build.commit_sha[..build.commit_sha.len().min(12)]
            );
            let published = ingest::ingest_products(
                state.store(),
                state.blobs(),
                &state.config().limits,
                &source,
                products,
                &description,
                &MarkSucceeded {
                    build_id: build.id,
                    lease_token: &lease_token,
                    log: &log_text,
                },
            )
            .await;
            log.note(log_text.trim_end());
            match published {
                Ok(done) => {
                    state.store().health().mark_available();
                    state.published(done.tx);
                    tracing::info!(build = build.id, builder = %builder.name, version = %done.version, tx = done.tx, "git build published");
                    telemetry.count_git_build("succeeded");
                    None
                }
                Err(IngestError::Aborted(message)) => {
                    tracing::warn!(build = build.id, %message);
                    None
                }
                Err(IngestError::Store(e)) if e.is_unavailable() => {
                    // Whether it committed is unknown: the row says. If it did not, the lease
                    // expires and the build runs again; it can never publish twice.
                    state.store().health().observe_error(&e);
                    tracing::warn!(build = build.id, error = %e, "the database went away while publishing a build");
                    None
                }
                Err(e) => Some((format!("the build's products were refused: {e}"), None)),
            }
        }
    };
    keeper.abort();
    if let Some((error, version)) = outcome {
        log.note(&format!("# failed: {error}"));
        let text = log.into_text();
        match queue::fail(
            state.store(),
            build.id,
            &lease_token,
            version,
            &error,
            &text,
        )
        .await
        {
            Ok(true) => {
                tracing::info!(build = build.id, builder = %builder.name, %error, "git build failed");
                telemetry.count_git_build("failed");
            }
            Ok(false) => {
                tracing::warn!(
                    build = build.id,
                    "a failed build was no longer this worker's"
                )
            }
            Err(e) => {
                tracing::warn!(build = build.id, error = %e, "cannot record a failed build; its lease will expire and it will run again")
            }
        }
    }
    telemetry.git_builds_running.dec();
}

/// Builds the claimed commit: prepares its index when `[git] python_build_index` applies to it,
/// runs the toolchain, then revokes the index's read token. `None` when the index could not be
/// prepared for a reason that is not the commit's (the database did not answer): the lease then
/// expires and the build runs again.
async fn build_commit(
    state: &Node,
    builder: &Builder,
    build: &Build,
    bound: SocketAddr,
    stop: watch::Receiver<bool>,
    log: &mut BuildLog,
) -> Option<Result<Vec<Product>, ToolError>> {
    let python = matches!(
        builder.source_kind,
        SourceKind::GitPython | SourceKind::LocalPython
    );
    let index = match &state.config().git.python_build_index {
        Some(repo) if python => match build_index::prepare(state, repo, bound).await {
            Ok(index) => Some(index),
            Err(IndexError::Unusable(message)) => return Some(Err(ToolError::BuildIndex(message))),
            Err(e) => {
                tracing::warn!(build = build.id, error = %e, "cannot prepare the build's index; its lease will expire and it will run again");
                return None;
            }
        },
        _ => None,
    };
    let spec = BuildSpec {
        url: builder.url.clone(),
        commit_sha: build.commit_sha.clone(),
        clone_ref: build.tag.clone().or_else(|| builder.branch.clone()),
        clone_depth: builder.clone_depth,
        sub_dir: builder.sub_dir.clone(),
        kind: builder.source_kind,
        python_index: index.as_ref().map(|i| i.index.clone()),
    };
    let limits = Limits {
        timeout: state.config().git.build_timeout,
        max_output_bytes: state.config().git.max_output_bytes,
    };
    let scratch_root = state.config().data_dir.join("builds");
    let built = toolchain::build(&spec, limits, &scratch_root, stop, log).await;
    if let Some(index) = index {
        build_index::release(state, index).await;
    }
    Some(built)
}

/// Re-queues builds whose lease expired, every third of the lease, on every node (idempotent).
async fn reap_loop(state: Node, mut stop: watch::Receiver<bool>) {
    let every = (state.config().git.lease_duration / 3).max(Duration::from_millis(100));
    loop {
        if pause(&mut stop, every).await {
            return;
        }
        if !state.may_work() {
            continue;
        }
        match queue::reap_expired(state.store()).await {
            Ok((0, 0)) => {}
            Ok((requeued, failed)) => {
                tracing::warn!(
                    requeued,
                    failed,
                    "builds whose lease expired went back to the queue"
                )
            }
            Err(e) => tracing::debug!(error = %e, "cannot reap expired build leases"),
        }
    }
}
