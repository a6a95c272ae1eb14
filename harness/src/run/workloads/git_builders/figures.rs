//! What the run's builds measure: build run times and queue waits into the recorder at
//! their place on the time line, the makespan, and the counters the thresholds judge.

use std::sync::PoisonError;
use std::time::Instant;

use reports::Recorder;
use scenarios::git_builders::{self, BuildRow, PushedCommit, WatchContext};

use crate::checkers::builds::BuildCounts;

/// The counters the workload sets (and `builds_by_node.NODE` for each node): what
/// `lost==0` and `duplicates==0` judge.
pub const COUNTERS: &[&str] = &[
    "commits",
    "good_commits",
    "broken_commits",
    "builds_succeeded",
    "builds_failed",
    "builds_unfinished",
    "builds_retried",
    "duplicates",
    "lost",
    "superseded",
    "seen_not_built",
    "unexpected_failures",
    "broken_published",
    "makespan_s",
];

/// The counters of `counts` (and the makespan), each node's builds under its name.
pub(super) fn counters(
    counts: &BuildCounts,
    makespan_s: Option<f64>,
    node_name: impl Fn(&str) -> String,
) -> Vec<(String, f64)> {
    let mut counters: Vec<(String, f64)> = [
        ("commits", counts.commits),
        ("good_commits", counts.good),
        ("broken_commits", counts.broken),
        ("builds_succeeded", counts.succeeded),
        ("builds_failed", counts.failed),
        ("builds_unfinished", counts.unfinished),
        ("builds_retried", counts.retried),
        ("duplicates", counts.duplicates),
        ("lost", counts.lost),
        ("superseded", counts.superseded),
        ("seen_not_built", counts.seen_not_built),
        ("unexpected_failures", counts.unexpected_failures),
        ("broken_published", counts.broken_published),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_string(), n as f64))
    .collect();
    if let Some(makespan_s) = makespan_s {
        counters.push(("makespan_s".into(), makespan_s));
    }
    for (node, n) in &counts.per_node {
        counters.push((format!("builds_by_node.{}", node_name(node)), *n as f64));
    }
    counters
}

/// Build run times (started → finished) and queue waits (queued → started) of the builds
/// queued during the run, into the recorder, at their place in the run's time line.
pub(super) fn record_build_times(
    recorder: &Recorder,
    builds: &[BuildRow],
    start: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
) {
    let at = |text: &Option<String>| -> Option<Instant> {
        let time = chrono::DateTime::parse_from_rfc3339(text.as_deref()?).ok()?;
        let since = time.with_timezone(&chrono::Utc) - started_at;
        // Builds of the setup (before the run) are not measured.
        let since = since.to_std().ok()?;
        Some(start + since)
    };
    for build in builds {
        let (queued, began, finished) = (
            at(&build.queued_at),
            at(&build.started_at),
            at(&build.finished_at),
        );
        if let (Some(queued), Some(began)) = (queued, began) {
            recorder.scheduled(git_builders::KIND_BUILD_QUEUE_WAIT, queued);
            recorder.record(
                git_builders::KIND_BUILD_QUEUE_WAIT,
                queued,
                began,
                reports::metrics::Outcome::Ok,
            );
        }
        if let (Some(began), Some(finished)) = (began, finished) {
            let outcome = match build.state.as_str() {
                "succeeded" => reports::metrics::Outcome::Ok,
                _ => reports::metrics::Outcome::Error("build_failed".into()),
            };
            recorder.scheduled(git_builders::KIND_BUILD_TIME, began);
            recorder.record(git_builders::KIND_BUILD_TIME, began, finished, outcome);
        }
    }
}

/// From the first push of the run to the last commit seen published, in seconds.
pub(super) fn makespan(
    pushed: &[PushedCommit],
    watch: &WatchContext,
    start: Instant,
) -> Option<f64> {
    let first = pushed
        .iter()
        .filter_map(|c| c.pushed_s)
        .min_by(f64::total_cmp)?;
    let last = watch
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(_, _, at)| at.saturating_duration_since(start).as_secs_f64())
        .max_by(f64::total_cmp)?;
    Some((last - first).max(0.0))
}
