//! A realistic synthetic run record, for tests and previews of the report (feature `sample`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::TimeZone;

use crate::metrics::{Outcome, Recorder};
use crate::record::{
    Event, EventKind, InfraInfo, NodeInfo, ResourceSample, RunMeta, RunRecord, Verdict,
};
use crate::thresholds::ThresholdSet;

/// Run length of the sample, in seconds.
pub const SAMPLE_DURATION_S: u64 = 600;
/// The thresholds the sample is judged by.
pub const SAMPLE_THRESHOLDS: [&str; 4] = [
    "p99<250ms",
    "error_rate<1%",
    "rate_ratio>0.95",
    "pypi_simple:p99<100ms",
];

/// Small deterministic generator so the sample is the same on every call.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Heavy-tailed latency around `median_ms`.
    fn latency_ms(&mut self, median_ms: f64) -> f64 {
        let u = self.next_f64().max(1e-12);
        // Log-logistic: median `median_ms`, a tail that reaches ~10x at p99.9.
        median_ms * (u / (1.0 - u)).powf(0.35)
    }
}

/// A 10-minute `daily-installs` run against a two-node local cluster: one node killed at
/// 200–260 s (503s, connect errors, late installs and a latency spike while it is down) and
/// a database failover at 400–430 s. Judged by [`SAMPLE_THRESHOLDS`]; it fails `p99<250ms`.
pub fn sample_record() -> RunRecord {
    let start = Instant::now();
    let recorder = Recorder::new(start, Duration::from_secs(5));
    let mut rng = SplitMix(42);
    let in_fault = |t: f64| (200.0..260.0).contains(&t) || (400.0..430.0).contains(&t);

    // (kind, per second, median ms)
    let kinds = [
        ("install", 11.6, 35.0),
        ("pypi_simple", 9.0, 8.0),
        ("pypi_file", 6.0, 22.0),
        ("cran_packages", 2.0, 15.0),
    ];
    for (kind, per_s, median_ms) in kinds {
        let count = (per_s * SAMPLE_DURATION_S as f64) as u64;
        for i in 0..count {
            let t = i as f64 / per_s;
            let due = start + Duration::from_secs_f64(t);
            recorder.scheduled(kind, due);
            let faulty = in_fault(t);
            let slow = if faulty { 6.0 } else { 1.0 };
            if faulty && rng.next_f64() < 0.08 {
                recorder.late(kind, due);
            }
            let outcome = match rng.next_f64() {
                r if faulty && r < 0.04 => Outcome::Error("http_503".into()),
                r if faulty && r < 0.06 => Outcome::Error("connect".into()),
                r if r < 0.001 => Outcome::Error("timeout".into()),
                _ => Outcome::Ok,
            };
            let latency = Duration::from_secs_f64(rng.latency_ms(median_ms * slow) / 1000.0);
            recorder.record(kind, due, due + latency, outcome);
        }
    }
    let metrics = recorder.finish();

    let events = vec![
        Event {
            at_s: 0.0,
            end_s: None,
            kind: EventKind::Note,
            message: "arrivals begin at 11.6 installs/s (1M/day, no compression)".into(),
        },
        Event {
            at_s: 200.0,
            end_s: Some(260.0),
            kind: EventKind::Fault,
            message: "node-2 killed with SIGKILL; restarted after 60 s".into(),
        },
        Event {
            at_s: 400.0,
            end_s: Some(430.0),
            kind: EventKind::Fault,
            message: "primary PostgreSQL killed; synchronous standby promoted in 30 s".into(),
        },
    ];

    let mut samples = Vec::new();
    for step in 0..=(SAMPLE_DURATION_S / 5) {
        let t = (step * 5) as f64;
        let wobble = rng.next_f64();
        let node2_down = (200.0..260.0).contains(&t);
        for (process, cpu, rss_mb) in [
            ("node-1", if node2_down { 78.0 } else { 42.0 }, 180.0),
            ("node-2", if node2_down { 0.0 } else { 40.0 }, 175.0),
            ("postgresql", 25.0, 320.0),
            ("haproxy", 6.0, 24.0),
            ("load-generator", 55.0, 140.0),
        ] {
            let rss = if process == "node-2" && node2_down {
                0
            } else {
                ((rss_mb + t / 20.0 + wobble * 8.0) * 1024.0 * 1024.0) as u64
            };
            samples.push(ResourceSample {
                at_s: t,
                process: process.into(),
                cpu_pct: if cpu == 0.0 { 0.0 } else { cpu + wobble * 10.0 },
                rss_bytes: rss,
            });
        }
    }

    let total: u64 = metrics.kinds.values().map(|k| k.finished()).sum();
    let node_requests = BTreeMap::from([
        ("node-1".to_owned(), total * 55 / 100),
        ("node-2".to_owned(), total - total * 55 / 100),
    ]);

    let infra = InfraInfo {
        provider: "local".into(),
        reason: "no Docker engine reachable; running PostgreSQL, HAProxy, Garage and nodes as \
                 local processes"
            .into(),
        nodes: vec![
            NodeInfo {
                id: "node-1".into(),
                address: "127.0.0.2:4242".into(),
                version: "0.1.0".into(),
            },
            NodeInfo {
                id: "node-2".into(),
                address: "127.0.0.3:4242".into(),
                version: "0.1.0".into(),
            },
        ],
        components: BTreeMap::from([
            ("garage".to_owned(), "2.5.0".to_owned()),
            ("haproxy".to_owned(), "2.6.12".to_owned()),
            ("postgresql".to_owned(), "15.18".to_owned()),
        ]),
    };
    let config = serde_json::json!({
        "installs_per_day": 1_000_000,
        "compression": 1.0,
        "duration_s": SAMPLE_DURATION_S,
        "users": 64,
        "late_tolerance_ms": 1000,
        "mix": { "pypi": 0.7, "cran": 0.3 },
        "thresholds": SAMPLE_THRESHOLDS,
    });

    let mut record = RunRecord {
        meta: RunMeta {
            scenario: "daily-installs".into(),
            started_at: chrono::Utc
                .with_ymd_and_hms(2025, 1, 15, 2, 0, 0)
                .single()
                .expect("a valid fixed date"),
            duration_s: SAMPLE_DURATION_S as f64,
            config,
            infra,
        },
        metrics,
        events,
        samples,
        node_request_rates: (0..=SAMPLE_DURATION_S / 5)
            .flat_map(|step| {
                let t = (step * 5) as f64;
                let down = (200.0..260.0).contains(&t);
                [("node-1", 6.0), ("node-2", if down { 0.0 } else { 6.0 })].map(|(node, per_s)| {
                    crate::record::NodeRequestRate {
                        at_s: t,
                        node: node.into(),
                        per_s: if down && node == "node-1" {
                            12.0
                        } else {
                            per_s
                        },
                    }
                })
            })
            .collect(),
        gauges: Vec::new(),
        node_requests,
        thresholds: Vec::new(),
        checkers: vec![crate::record::CheckerResult {
            name: "lost-writes".into(),
            validity: crate::record::Validity::Valid,
            summary: "240 acknowledged uploads: 240 stable, 0 lost, 3 unknown (2 recovered)".into(),
            evidence: serde_json::json!({"acknowledged": 240, "stable": 240, "lost": 0, "unknown": 3, "recovered": 2, "bad_entries": []}),
        }],
        workloads: Vec::new(),
        verdict: Verdict::Pass,
    };
    let thresholds =
        ThresholdSet::parse_all(SAMPLE_THRESHOLDS).expect("sample thresholds are valid");
    record.judge(&thresholds);
    record
}
