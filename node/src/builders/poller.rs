//! Polling: every node looks for builders whose next check is due, takes the poll lease of a few
//! (a lease on the builder row, so one node polls a given builder at a time and a cluster makes
//! one `git ls-remote` per builder per `[git] poll_interval`), checks their remotes concurrently
//! (each check records what it saw before it queues) and schedules the next check.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use super::queue;
use super::remote;
use super::{Node, pause};

/// Builders taken per look; the rest wait for the next look (a fraction of a second later).
const POLLS_PER_LOOK: i64 = 32;
/// Remotes checked at once by one node.
const CONCURRENT_POLLS: usize = 16;
/// A poll lease outlives the slowest `git ls-remote` (60 s): a node that dies mid-poll delays
/// that builder's next check by this much at most.
const POLL_LEASE: Duration = Duration::from_secs(90);

/// Checks due builders until the node stops.
pub async fn poll_loop(state: Node, mut stop: watch::Receiver<bool>) {
    let look_every = state
        .config()
        .git
        .poll_interval
        .min(Duration::from_millis(500));
    loop {
        if pause(&mut stop, look_every).await {
            return;
        }
        if !state.may_work() {
            continue;
        }
        let due = match queue::claim_polls(
            state.store(),
            &state.node_id(),
            POLL_LEASE.as_millis() as i64,
            POLLS_PER_LOOK,
        )
        .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::debug!(error = %e, "cannot look for due git builders");
                continue;
            }
        };
        let node_id = state.node_id();
        let next_ms = state.config().git.poll_interval.as_millis() as i64;
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENT_POLLS, |builder| {
                let (state, node_id) = (state.clone(), node_id.clone());
                async move {
                    let error = match remote::check(state.store(), &builder, &node_id).await {
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!(builder = %builder.name, source = %builder.source, error = %e, "git builder poll failed");
                            Some(e.to_string())
                        }
                    };
                    if let Err(e) = queue::finish_poll(
                        state.store(),
                        builder.id,
                        &node_id,
                        next_ms,
                        error.as_deref(),
                    )
                    .await
                    {
                        tracing::warn!(builder = %builder.name, error = %e, "cannot record a git builder poll");
                    }
                }
            })
            .await;
    }
}
