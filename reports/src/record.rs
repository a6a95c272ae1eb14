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
    /// Each node's requests per second over time (0 while it does not answer), so a node killed
    /// mid-run shows when it stopped and came back.
    pub node_request_rates: Vec<NodeRequestRate>,
    /// Gauges read from the nodes over time (e.g. `pkgnode_git_builds_queued`), one sample per
    /// node and second.
    pub gauges: Vec<GaugeSample>,
    /// Each threshold with its observed value.
    pub thresholds: Vec<ThresholdResult>,
    /// What each checker concluded from the recorded history and the final reads.
    pub checkers: Vec<CheckerResult>,
    /// The workloads the run composed (the reads, the upload writer, the git builders), each
    /// with the kinds, counters and checkers that judge it; empty in records from before
    /// workloads were recorded.
    pub workloads: Vec<WorkloadSection>,
    /// The thresholds and checkers combined: fail outranks unknown, unknown outranks pass.
    pub verdict: Verdict,
}

/// One workload of a run as its section of the report: what it ran and what judges it. Its
/// verdict is not stored but derived ([`RunRecord::workload_verdict`]): the thresholds naming
/// one of its kinds or counters and the checkers it names, so a record judged again by other
/// thresholds judges each workload again too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSection {
    /// `installs`, `uploads` or `git-builders`.
    pub name: String,
    /// What it ran, in one line.
    pub description: String,
    /// The request kinds it recorded (`install`, `commit_to_published`, …).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The counters it set (`lost`, `duplicates`, …).
    #[serde(default)]
    pub counters: Vec<String>,
    /// The checkers that judge it, by name.
    #[serde(default)]
    pub checkers: Vec<String>,
    /// Its headline figures, named with their units (`install_p99_ms`,
    /// `commit_to_published_p95_s`, `uploads_acknowledged`).
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
}

impl WorkloadSection {
    /// Whether a threshold judging `kind` (a request kind or, for `lost==0`, a counter's
    /// name) is this workload's.
    pub fn owns_kind(&self, kind: &str) -> bool {
        self.kinds.iter().chain(&self.counters).any(|k| k == kind)
    }
}

/// One reading of a gauge on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaugeSample {
    /// Seconds since the run start.
    pub at_s: f64,
    /// The gauge's name, e.g. `pkgnode_git_builds_queued`.
    pub name: String,
    /// The node it was read from.
    pub node: String,
    pub value: f64,
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
    /// What the moment was.
    pub kind: EventKind,
    /// Human-readable description.
    pub message: String,
}

/// The kinds of moment a run records, serialized in kebab case (`"fault"`, `"first-write-ok"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Context: users, scheduled installs.
    Note,
    /// Installs started late: the user pool or the client ran short.
    UserPool,
    /// Scheduled installs never started.
    Dropped,
    /// A fault window: injected at `at_s`, healed at `end_s` (shaded on every time chart).
    Fault,
    /// The failover controller (or a check) saw the fault.
    Detected,
    /// The standby was promoted and the database endpoint repointed.
    Promoted,
    /// The first upload acknowledged after a database fault.
    FirstWriteOk,
    /// A node answered Online again after its fault.
    NodeOnline,
    /// The former primary streams again as the synchronous standby.
    Rejoined,
    /// The cluster was back to full health after a fault.
    Recovered,
    /// Something the nemesis could not do, or a part that broke outside the injected fault.
    InfraError,
}

impl EventKind {
    /// The serialized name, e.g. `first-write-ok`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::UserPool => "user-pool",
            Self::Dropped => "dropped",
            Self::Fault => "fault",
            Self::Detected => "detected",
            Self::Promoted => "promoted",
            Self::FirstWriteOk => "first-write-ok",
            Self::NodeOnline => "node-online",
            Self::Rejoined => "rejoined",
            Self::Recovered => "recovered",
            Self::InfraError => "infra-error",
        }
    }
}

/// A checker's conclusion: Jepsen's three values, plus *not applicable* for a property this
/// run's setup does not have (file locks where package files are in S3). A not-applicable
/// result says why in its summary and is never counted or drawn as valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    /// The history satisfies the property.
    Valid,
    /// The history violates it (e.g. an acknowledged write was lost).
    Invalid,
    /// The run could not decide (the checker failed, or the evidence was missing).
    Unknown,
    /// The property does not apply to this setup; the result's summary gives the reason.
    NotApplicable,
}

impl Validity {
    /// `"valid"`, `"invalid"`, `"unknown"` or `"not-applicable"` (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Unknown => "unknown",
            Self::NotApplicable => "not-applicable",
        }
    }

    /// How a terminal table or a page states it in one word: `pass`, `FAIL`, `unknown`, `n/a`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Valid => "pass",
            Self::Invalid => "FAIL",
            Self::Unknown => "unknown",
            Self::NotApplicable => "n/a",
        }
    }

    /// The one-character mark of a terminal line: ✓ ✗ ? –.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Valid => "✓",
            Self::Invalid => "✗",
            Self::Unknown => "?",
            Self::NotApplicable => "–",
        }
    }
}

/// One checker's result: its conclusion, a one-line summary and the evidence behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckerResult {
    /// Checker name, e.g. `lost-writes`.
    pub name: String,
    /// What it concluded.
    pub validity: Validity,
    /// One line a person reads first, e.g. "120 acknowledged, 120 stable, 0 lost".
    pub summary: String,
    /// Counts and the offending entries, shown in the report and kept in `summary.json`.
    pub evidence: serde_json::Value,
}

impl CheckerResult {
    /// A result for a property this setup does not have: `reason` is the summary (and the
    /// evidence's `reason`), so the page and `summary.json` say why.
    pub fn not_applicable(
        name: impl Into<String>,
        reason: impl Into<String>,
        evidence: serde_json::Value,
    ) -> CheckerResult {
        let reason = reason.into();
        let evidence = match evidence {
            serde_json::Value::Object(mut map) => {
                map.insert("reason".into(), reason.clone().into());
                serde_json::Value::Object(map)
            }
            serde_json::Value::Null => serde_json::json!({ "reason": reason }),
            other => serde_json::json!({ "reason": reason, "detail": other }),
        };
        CheckerResult {
            name: name.into(),
            validity: Validity::NotApplicable,
            summary: reason,
            evidence,
        }
    }
}

/// Requests per second one node served, measured at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRequestRate {
    /// Seconds since the run start.
    pub at_s: f64,
    pub node: String,
    pub per_s: f64,
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

/// The run's verdict, serialized as `"pass"` / `"fail"` / `"unknown"`. Fail outranks unknown,
/// unknown outranks pass (Jepsen's rule for composed checkers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every threshold held and every checker found the history valid.
    Pass,
    /// A threshold failed or a checker found the history invalid.
    Fail,
    /// Nothing failed, but a checker could not decide.
    Unknown,
}

impl Verdict {
    /// Pass iff every result passed (so an empty list passes); fail when one failed with
    /// data; unknown when the only ones that did not pass had no data to be judged on
    /// ([`ThresholdResult::undecided`]).
    pub fn from_results(results: &[ThresholdResult]) -> Verdict {
        if results.iter().any(|r| !r.passed && !r.undecided) {
            Verdict::Fail
        } else if results.iter().any(|r| r.undecided) {
            Verdict::Unknown
        } else {
            Verdict::Pass
        }
    }

    /// The verdict a checker's validity stands for; `None` for not applicable, which takes
    /// no part in a combined verdict (it neither passes nor fails anything).
    pub fn from_validity(validity: Validity) -> Option<Verdict> {
        match validity {
            Validity::Valid => Some(Verdict::Pass),
            Validity::Invalid => Some(Verdict::Fail),
            Validity::Unknown => Some(Verdict::Unknown),
            Validity::NotApplicable => None,
        }
    }

    /// The worse of two verdicts: fail > unknown > pass.
    pub fn and(self, other: Verdict) -> Verdict {
        let rank = |v: Verdict| match v {
            Verdict::Pass => 0,
            Verdict::Unknown => 1,
            Verdict::Fail => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// `"pass"`, `"fail"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunRecord {
    /// Judges `thresholds` over this record's metrics (outside its fault windows when the set
    /// says so) and sets `thresholds` and `verdict` accordingly (also used after merging
    /// records of several processes).
    pub fn judge(&mut self, thresholds: &crate::thresholds::ThresholdSet) {
        let faults: Vec<(f64, f64)> = self
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Fault)
            .map(|e| (e.at_s, e.end_s.unwrap_or(self.meta.duration_s)))
            .collect();
        self.thresholds =
            thresholds.evaluate_with_faults(&self.metrics, self.meta.duration_s, &faults);
        self.verdict = self.combined_verdict();
    }

    /// The thresholds of workload `section`: those whose kind (or counter) it owns.
    pub fn workload_thresholds(&self, section: &WorkloadSection) -> Vec<&ThresholdResult> {
        self.thresholds
            .iter()
            .filter(|t| {
                crate::thresholds::Threshold::parse(&t.expr)
                    .is_ok_and(|p| section.owns_kind(&p.kind))
            })
            .collect()
    }

    /// The checkers of workload `section`, by the names it lists.
    pub fn workload_checkers(&self, section: &WorkloadSection) -> Vec<&CheckerResult> {
        self.checkers
            .iter()
            .filter(|c| section.checkers.contains(&c.name))
            .collect()
    }

    /// The verdict of one workload: its thresholds and its checkers, combined as the run's
    /// are (fail > unknown > pass; not applicable left out). A workload with nothing to judge
    /// it passes; the run's verdict still has the cluster's checkers (the HA checklist).
    pub fn workload_verdict(&self, section: &WorkloadSection) -> Verdict {
        let thresholds: Vec<ThresholdResult> = self
            .workload_thresholds(section)
            .into_iter()
            .cloned()
            .collect();
        self.workload_checkers(section)
            .iter()
            .filter_map(|c| Verdict::from_validity(c.validity))
            .fold(Verdict::from_results(&thresholds), Verdict::and)
    }

    /// The thresholds' verdict combined with every checker's: fail > unknown > pass; a
    /// not-applicable checker is left out.
    pub fn combined_verdict(&self) -> Verdict {
        self.checkers
            .iter()
            .filter_map(|c| Verdict::from_validity(c.validity))
            .fold(Verdict::from_results(&self.thresholds), Verdict::and)
    }

    /// Merges another process's record of the same run into this one: metrics merged with
    /// their time buckets aligned on the wall clock (`started_at`), events, samples and node
    /// request counts combined on the same clock. Thresholds must be judged again afterwards
    /// ([`judge`](Self::judge)).
    ///
    /// Fails when the two starts are not a whole number of buckets apart (within a
    /// millisecond): buckets would straddle each other. Generators of one run share one start
    /// (`--start-at`), which makes the offset zero.
    pub fn merge(&mut self, other: &RunRecord) -> Result<(), crate::ReportError> {
        let apart_s = (other.meta.started_at - self.meta.started_at)
            .num_microseconds()
            .map(|us| us as f64 / 1e6)
            .ok_or_else(|| crate::ReportError::Merge("the records start years apart".into()))?;
        let width_s = self.metrics.bucket_width_s();
        let offset = (apart_s / width_s).round();
        if (apart_s - offset * width_s).abs() > 0.001 {
            return Err(crate::ReportError::Merge(format!(
                "the records start {apart_s:.3} s apart, not a whole number of {width_s} s buckets: \
                 give every generator the same --start-at"
            )));
        }
        self.metrics.merge_offset(&other.metrics, offset as i64)?;
        // Times in `self` count from its start; after the merge they count from the earlier one.
        let (shift_self, shift_other) = if apart_s < 0.0 {
            (-apart_s, 0.0)
        } else {
            (0.0, apart_s)
        };
        if shift_self > 0.0 {
            self.meta.started_at = other.meta.started_at;
            self.events.iter_mut().for_each(|e| {
                e.at_s += shift_self;
                e.end_s = e.end_s.map(|t| t + shift_self);
            });
            self.samples.iter_mut().for_each(|s| s.at_s += shift_self);
            self.node_request_rates
                .iter_mut()
                .for_each(|r| r.at_s += shift_self);
        }
        self.meta.duration_s =
            (self.meta.duration_s + shift_self).max(other.meta.duration_s + shift_other);
        for event in &other.events {
            let mut event = event.clone();
            event.at_s += shift_other;
            event.end_s = event.end_s.map(|t| t + shift_other);
            if !self.events.contains(&event) {
                self.events.push(event);
            }
        }
        self.events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        self.samples
            .extend(other.samples.iter().map(|s| ResourceSample {
                at_s: s.at_s + shift_other,
                ..s.clone()
            }));
        self.samples.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        self.node_request_rates
            .extend(other.node_request_rates.iter().map(|r| NodeRequestRate {
                at_s: r.at_s + shift_other,
                ..r.clone()
            }));
        self.node_request_rates
            .sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        self.gauges.extend(other.gauges.iter().cloned());
        self.gauges.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        for (node, n) in &other.node_requests {
            *self.node_requests.entry(node.clone()).or_default() += n;
        }
        for checker in &other.checkers {
            if !self.checkers.contains(checker) {
                self.checkers.push(checker.clone());
            }
        }
        for workload in &other.workloads {
            if !self.workloads.iter().any(|w| w.name == workload.name) {
                self.workloads.push(workload.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_outranks_unknown_and_unknown_outranks_pass() {
        use Verdict::*;
        assert_eq!(Pass.and(Pass), Pass);
        assert_eq!(Pass.and(Unknown), Unknown);
        assert_eq!(Unknown.and(Pass), Unknown);
        assert_eq!(Unknown.and(Fail), Fail);
        assert_eq!(Fail.and(Unknown), Fail);
        assert_eq!(Fail.and(Pass), Fail);
    }

    fn checker(name: &str, validity: Validity) -> CheckerResult {
        CheckerResult {
            name: name.into(),
            validity,
            summary: String::new(),
            evidence: serde_json::Value::Null,
        }
    }

    fn record_with(checkers: Vec<CheckerResult>) -> RunRecord {
        RunRecord {
            meta: RunMeta {
                scenario: "t".into(),
                started_at: Utc::now(),
                duration_s: 1.0,
                config: serde_json::Value::Null,
                infra: InfraInfo::default(),
            },
            metrics: crate::Recorder::new(
                std::time::Instant::now(),
                std::time::Duration::from_secs(1),
            )
            .finish(),
            events: vec![],
            samples: vec![],
            node_requests: BTreeMap::new(),
            node_request_rates: vec![],
            gauges: vec![],
            thresholds: vec![],
            checkers,
            workloads: vec![],
            verdict: Verdict::Unknown,
        }
    }

    #[test]
    fn not_applicable_takes_no_part_in_the_verdict() {
        use Validity::*;
        let na = CheckerResult::not_applicable(
            "lock-correctness",
            "package files are in S3",
            serde_json::Value::Null,
        );
        assert_eq!(na.evidence["reason"], "package files are in S3");
        let verdict = |others: &[Validity]| {
            let mut checkers = vec![na.clone()];
            checkers.extend(others.iter().map(|v| checker("other", *v)));
            record_with(checkers).combined_verdict()
        };
        // n/a beside valid is a pass, but only because the other checker passed …
        assert_eq!(verdict(&[Valid]), Verdict::Pass);
        // … it never hides an unknown or an invalid one (invalid > unknown > valid).
        assert_eq!(verdict(&[Valid, Unknown]), Verdict::Unknown);
        assert_eq!(verdict(&[Unknown, Invalid]), Verdict::Fail);
        assert_eq!(Verdict::from_validity(NotApplicable), None);
    }

    #[test]
    fn not_applicable_is_never_serialized_or_worded_as_valid() {
        let json = serde_json::to_string(&Validity::NotApplicable).unwrap();
        assert_eq!(json, "\"not-applicable\"");
        assert_eq!(
            serde_json::from_str::<Validity>(&json).unwrap(),
            Validity::NotApplicable
        );
        assert_eq!(Validity::NotApplicable.word(), "n/a");
        assert_ne!(Validity::NotApplicable.mark(), Validity::Valid.mark());
        // The three older values keep their serialized names.
        for v in [Validity::Valid, Validity::Invalid, Validity::Unknown] {
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
        }
    }

    #[test]
    fn event_kinds_serialize_as_their_names() {
        for kind in [
            EventKind::Note,
            EventKind::FirstWriteOk,
            EventKind::InfraError,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn each_workload_is_judged_by_its_own_thresholds_and_checkers() {
        let installs = WorkloadSection {
            name: "installs".into(),
            kinds: vec!["install".into(), "pypi_file".into()],
            checkers: vec!["availability".into()],
            ..WorkloadSection::default()
        };
        let builders = WorkloadSection {
            name: "git-builders".into(),
            kinds: vec!["commit_to_published".into()],
            counters: vec!["lost".into(), "duplicates".into()],
            checkers: vec!["builds".into()],
            ..WorkloadSection::default()
        };
        let mut record = record_with(vec![
            checker("availability", Validity::Valid),
            checker("builds", Validity::Valid),
            checker("ha-checklist-at-start", Validity::Valid),
        ]);
        record.workloads = vec![installs.clone(), builders.clone()];
        let start = std::time::Instant::now();
        let recorder = crate::Recorder::new(start, std::time::Duration::from_secs(1));
        recorder.scheduled("install", start);
        recorder.record("install", start, start, crate::Outcome::Ok);
        record.metrics = recorder.finish();
        record.metrics.counters.insert("lost".into(), 0.0);
        let thresholds = crate::ThresholdSet::parse_all([
            "install:error_rate<=0",
            "p99<50ms",
            "lost==0",
            "commit_to_published:error_rate<=0",
        ])
        .unwrap();
        record.judge(&thresholds);
        // `p99<50ms` names no kind, so it judges `install`, as every threshold always has.
        let exprs = |w: &WorkloadSection| -> Vec<String> {
            record
                .workload_thresholds(w)
                .iter()
                .map(|t| t.expr.clone())
                .collect()
        };
        assert_eq!(exprs(&installs), ["install:error_rate<=0", "p99<50ms"]);
        assert_eq!(
            exprs(&builders),
            ["lost==0", "commit_to_published:error_rate<=0"]
        );
        // No commit was waited for: the builders fail on their own threshold, the reads pass,
        // and the run fails with them.
        assert_eq!(record.workload_verdict(&installs), Verdict::Pass);
        assert_eq!(record.workload_verdict(&builders), Verdict::Fail);
        assert_eq!(record.verdict, Verdict::Fail);

        // A planted invalid builds checker fails only the builders; an unknown availability
        // leaves the reads unknown.
        record.thresholds.retain(|t| !t.expr.starts_with("commit"));
        record.checkers[1].validity = Validity::Invalid;
        record.checkers[0].validity = Validity::Unknown;
        assert_eq!(record.workload_verdict(&installs), Verdict::Unknown);
        assert_eq!(record.workload_verdict(&builders), Verdict::Fail);
        assert_eq!(record.combined_verdict(), Verdict::Fail);
        record.checkers[1].validity = Validity::Valid;
        assert_eq!(record.workload_verdict(&builders), Verdict::Pass);
        assert_eq!(record.combined_verdict(), Verdict::Unknown);
    }
}
