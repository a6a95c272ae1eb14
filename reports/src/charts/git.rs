//! The git-builders charts: the build queue's depth and the builds running on each node over
//! time (from the nodes' gauges), builds finished per minute, and each node's share of builds.

use std::collections::BTreeMap;

use super::resources::{chart, series_by_name, shares};
use super::time::per_bucket;
use super::{PALETTE, Series};
use crate::ReportError;
use crate::figures::trim_float;
use crate::kinds::{BUILD_KIND, COMMIT_KIND};
use crate::record::RunRecord;

/// The gauge of queued builds (cluster-wide, as each node reads it from the database).
pub const QUEUED_GAUGE: &str = "pkgnode_git_builds_queued";
/// The gauge of builds running on a node.
pub const RUNNING_GAUGE: &str = "pkgnode_git_builds_running";
/// Counter-name prefix of each node's finished builds.
pub const BUILDS_BY_NODE: &str = "builds_by_node.";

/// The git-builders section's charts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GitCharts {
    /// Queued builds over time; `None` when no node exported the gauge.
    pub queue_depth: Option<String>,
    /// Builds running on each node over time.
    pub running: Option<String>,
    /// Builds finished per minute.
    pub builds_per_minute: String,
    /// Finished builds per node.
    pub node_share: Option<String>,
}

/// The charts of a git-builders run; `None` for other runs.
pub fn git_charts(record: &RunRecord) -> Result<Option<GitCharts>, ReportError> {
    let metrics = &record.metrics;
    if !metrics.kinds.contains_key(COMMIT_KIND) && !metrics.counters.contains_key("commits") {
        return Ok(None);
    }
    let end_s = super::time_axis_end(metrics, &record.events, record.meta.duration_s);
    let events = &record.events;
    let gauge = |name: &str| {
        series_by_name(
            record
                .gauges
                .iter()
                .filter(|g| g.name == name)
                .map(|g| (g.node.as_str(), g.at_s, g.value)),
        )
    };
    let queued = gauge(QUEUED_GAUGE);
    let running = gauge(RUNNING_GAUGE);
    let per_minute = Series {
        name: "builds finished".into(),
        color: PALETTE[0],
        points: per_bucket(metrics, BUILD_KIND, |b| b.ok + b.err)
            .into_iter()
            .map(|(t, per_s)| (t, per_s * 60.0))
            .collect(),
    };
    let by_node: BTreeMap<String, u64> = metrics
        .counters
        .iter()
        .filter_map(|(name, n)| Some((name.strip_prefix(BUILDS_BY_NODE)?.to_string(), *n as u64)))
        .collect();
    Ok(Some(GitCharts {
        queue_depth: (!queued.is_empty())
            .then(|| {
                chart(
                    "git_queue_depth",
                    "Build queue depth (queued builds, as each node reads it)",
                    "queued builds",
                    queued,
                    events,
                    end_s,
                    &|v| trim_float(*v),
                )
            })
            .transpose()?,
        running: (!running.is_empty())
            .then(|| {
                chart(
                    "git_running",
                    "Builds running per node",
                    "running builds",
                    running,
                    events,
                    end_s,
                    &|v| trim_float(*v),
                )
            })
            .transpose()?,
        builds_per_minute: chart(
            "git_builds_per_minute",
            "Builds finished per minute (by start time)",
            "builds / min",
            vec![per_minute],
            events,
            end_s,
            &|v| trim_float(*v),
        )?,
        node_share: (!by_node.is_empty())
            .then(|| shares("git_node_share", "Builds per node", "builds", &by_node))
            .transpose()?,
    }))
}
