//! The run record: everything a run produced, as written to and read from a run directory.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::thresholds::ThresholdResult;

/// One run: its metadata, metrics, fault events, resource samples and verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// What ran, when, with which configuration, on which infrastructure.
    pub meta: RunMeta,
    /// Latency histograms and counts by request kind and time bucket.
    pub metrics: Metrics,
    /// Fault injections and other notable moments, in time order.
    pub events: Vec<Event>,
    /// CPU and memory of the processes under test over time.
    pub samples: Vec<ResourceSample>,
    /// Requests served by each node (node id → count), e.g. from the load balancer's stats.
    pub node_requests: BTreeMap<String, u64>,
    /// Each threshold with its observed value.
    pub thresholds: Vec<ThresholdResult>,
    /// Pass iff every threshold passed.
    pub verdict: Verdict,
}

/// Run metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Scenario name, e.g. `daily-installs`.
    pub scenario: String,
    /// Wall-clock start of the run (bucket 0 starts here).
    pub started_at: DateTime<Utc>,
    /// Length of the measured run in seconds.
    pub duration_s: f64,
    /// The scenario's effective configuration, shown verbatim in the report.
    pub config: serde_json::Value,
    /// The infrastructure the run was against.
    pub infra: InfraInfo,
}

/// The infrastructure under test.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InfraInfo {
    /// Provider name: `docker`, `local` or `target`.
    pub provider: String,
    /// Why this provider was chosen (e.g. "no docker engine reachable").
    pub reason: String,
    /// The package server nodes.
    pub nodes: Vec<NodeInfo>,
    /// Versions of the other components, e.g. `postgresql` → `15.18`.
    pub components: BTreeMap<String, String>,
}

/// One package server node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id as the cluster knows it.
    pub id: String,
    /// Address the node serves on, e.g. `127.0.0.2:4242`.
    pub address: String,
    /// The node's reported version.
    pub version: String,
}

/// A moment or a window in the run, such as a fault injection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the run start.
    pub at_s: f64,
    /// End of the window in seconds since the start; set for faults that last (shaded on charts).
    pub end_s: Option<f64>,
    /// Short kind, e.g. `kill-node`, `failover`, `note`.
    pub kind: String,
    /// Human-readable description.
    pub message: String,
}

/// CPU and memory of one process at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    /// Seconds since the run start.
    pub at_s: f64,
    /// Process name: `node-1`, `postgresql`, `haproxy`, …
    pub process: String,
    /// CPU use in percent of one core.
    pub cpu_pct: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// The run's verdict, serialized as `"pass"` / `"fail"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every threshold held.
    Pass,
    /// At least one threshold failed.
    Fail,
}

impl Verdict {
    /// Pass iff every result passed (so an empty list passes).
    pub fn from_results(results: &[ThresholdResult]) -> Verdict {
        if results.iter().all(|r| r.passed) {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// `"pass"` or `"fail"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunRecord {
    /// Judges `thresholds` over this record's metrics and sets `thresholds` and `verdict`
    /// accordingly (used after merging records of several processes).
    pub fn judge(&mut self, thresholds: &crate::thresholds::ThresholdSet) {
        self.thresholds = thresholds.evaluate(&self.metrics, self.meta.duration_s);
        self.verdict = Verdict::from_results(&self.thresholds);
    }

    /// Merges another process's record of the same run into this one: metrics merged, events,
    /// samples and node request counts combined. Thresholds must be judged again afterwards
    /// ([`judge`](Self::judge)).
    pub fn merge(&mut self, other: &RunRecord) -> Result<(), crate::ReportError> {
        self.metrics.merge(&other.metrics)?;
        self.meta.duration_s = self.meta.duration_s.max(other.meta.duration_s);
        self.meta.started_at = self.meta.started_at.min(other.meta.started_at);
        for event in &other.events {
            if !self.events.contains(event) {
                self.events.push(event.clone());
            }
        }
        self.events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        self.samples.extend(other.samples.iter().cloned());
        self.samples.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        for (node, n) in &other.node_requests {
            *self.node_requests.entry(node.clone()).or_default() += n;
        }
        Ok(())
    }
}
