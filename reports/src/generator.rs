//! What each sampled process cost over a run (CPU seconds, resident memory at the start, the end
//! and at most: the CPU split a capacity figure is read beside), and what the load generator
//! cost: its CPU time per request and its memory, from the processes named `load-generator`
//! (or `load-generator-0`, … with several). A figure a person compares with `wrk`'s on the same
//! requests, and the evidence that the generator's memory stays flat in run length.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kinds::INSTALL_KIND;
use crate::record::{ResourceSample, RunRecord};

/// Prefix of every load generator's process name in the samples.
pub const GENERATOR_PROCESS: &str = "load-generator";

/// The load generators' cost over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorCost {
    /// CPU seconds every generator used while it was sampled.
    pub cpu_s: f64,
    /// HTTP requests finished (ok or not) of every kind but the install itself.
    pub requests: u64,
    /// `cpu_s` per request, in microseconds; `None` without requests.
    pub cpu_us_per_request: Option<f64>,
    /// Each generator's own figures, by process name.
    pub processes: BTreeMap<String, ProcessCost>,
}

/// One sampled process over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessCost {
    /// CPU seconds it used while it was sampled.
    pub cpu_s: f64,
    /// Resident memory at its first sample.
    pub rss_first_bytes: u64,
    /// The largest resident memory sampled.
    pub rss_peak_bytes: u64,
    /// Resident memory at its last sample.
    pub rss_last_bytes: u64,
}

/// Every sampled process's cost, by process name.
///
/// A sample's CPU share covers the time since the sampler's previous reading, which for each
/// sample but the first is the gap to the one before; the first counts the gap after it.
pub fn process_costs(record: &RunRecord) -> BTreeMap<String, ProcessCost> {
    let mut by_process: BTreeMap<&str, Vec<&ResourceSample>> = BTreeMap::new();
    for sample in &record.samples {
        by_process.entry(&sample.process).or_default().push(sample);
    }
    by_process
        .into_iter()
        .map(|(name, mut samples)| {
            samples.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
            (name.to_owned(), process_cost(&samples))
        })
        .collect()
}

/// The generators' cost, or `None` when no generator was sampled.
pub fn generator_cost(record: &RunRecord) -> Option<GeneratorCost> {
    let processes: BTreeMap<String, ProcessCost> = process_costs(record)
        .into_iter()
        .filter(|(name, _)| name.starts_with(GENERATOR_PROCESS))
        .collect();
    if processes.is_empty() {
        return None;
    }
    let cpu_s = processes.values().map(|p| p.cpu_s).sum();
    let requests = requests_served(record);
    Some(GeneratorCost {
        cpu_s,
        requests,
        cpu_us_per_request: (requests > 0).then(|| cpu_s * 1e6 / requests as f64),
        processes,
    })
}

/// The sampled processes that are not the cluster's: docker's userland port proxy sits
/// between the generator and the balancer only because the balancer runs in a container.
pub const NOT_CLUSTER: &[&str] = &["docker-proxy"];

/// The cluster's CPU cost of a run (a gate step's): the CPU seconds of every sampled cluster process (nodes,
/// PostgreSQL, HAProxy, the S3 server) over the installs and requests they served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterCpu {
    /// CPU seconds the cluster's processes used over the step.
    pub cpu_s: f64,
    /// `cpu_s` per successful install, milliseconds.
    pub ms_per_install: f64,
    /// `cpu_s` per HTTP request finished (every kind but the install itself), microseconds.
    pub us_per_request: Option<f64>,
}

/// What the cluster's processes (nodes, balancer, database servers, S3: every sampled process
/// but the load generators and [`NOT_CLUSTER`]) spent on a run's `installs` successful
/// installs and its requests; `None` without a cluster sample or an install.
pub fn cluster_cpu(record: &RunRecord, installs: u64) -> Option<ClusterCpu> {
    let cluster: Vec<f64> = process_costs(record)
        .into_iter()
        .filter(|(name, _)| {
            !name.starts_with(GENERATOR_PROCESS) && !NOT_CLUSTER.contains(&name.as_str())
        })
        .map(|(_, p)| p.cpu_s)
        .collect();
    if cluster.is_empty() || installs == 0 {
        return None;
    }
    let cpu_s: f64 = cluster.iter().sum();
    let requests = requests_served(record);
    Some(ClusterCpu {
        cpu_s,
        ms_per_install: cpu_s * 1e3 / installs as f64,
        us_per_request: (requests > 0).then(|| cpu_s * 1e6 / requests as f64),
    })
}

/// The sampled name of the database server that started as the primary (the reference
/// deployment's database instance); its standby is [`DATABASE_STANDBY_PROCESS`].
pub const DATABASE_PROCESS: &str = "postgresql";
/// The sampled name of the synchronous standby.
pub const DATABASE_STANDBY_PROCESS: &str = "postgresql-standby";
/// The reference deployment's database CPU: "without exceeding 10–20 % CPU" (its share of the
/// database instance), serving 1M installs a day and 100 Git builders.
pub const REFERENCE_DATABASE_CPU_SHARE: (f64, f64) = (0.10, 0.20);

/// What the database server cost over a run, beside the reference's 10–20 % figure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseCpu {
    /// CPU seconds of the server that started as the primary ([`DATABASE_PROCESS`]).
    pub cpu_s: f64,
    /// Its mean CPU as a share of one core over the run (0.25 = a quarter of a core).
    pub core_share: f64,
    /// The cores of the machine the run was on (`meta.config.machine_cores`), if recorded.
    pub machine_cores: Option<f64>,
    /// Its mean CPU as a share of the whole machine: the figure read beside the reference's,
    /// whose database had an instance of its own. `None` without the core count.
    pub machine_share: Option<f64>,
    /// The standby's CPU seconds, when it was sampled (replaying the primary's WAL).
    pub standby_cpu_s: Option<f64>,
    /// The reference's figure, as shares: 10–20 %.
    pub reference_share: (f64, f64),
}

/// The database server's CPU over the run; `None` when it was not sampled (a target) or the
/// run has no length.
pub fn database_cpu(record: &RunRecord) -> Option<DatabaseCpu> {
    let costs = process_costs(record);
    let primary = costs.get(DATABASE_PROCESS)?;
    let duration_s = record.meta.duration_s;
    if duration_s <= 0.0 {
        return None;
    }
    let machine_cores = record.meta.config["machine_cores"]
        .as_f64()
        .filter(|c| *c > 0.0);
    let core_share = primary.cpu_s / duration_s;
    Some(DatabaseCpu {
        cpu_s: primary.cpu_s,
        core_share,
        machine_cores,
        machine_share: machine_cores.map(|cores| core_share / cores),
        standby_cpu_s: costs.get(DATABASE_STANDBY_PROCESS).map(|p| p.cpu_s),
        reference_share: REFERENCE_DATABASE_CPU_SHARE,
    })
}

/// HTTP requests finished (ok or not) of every kind but the install itself.
pub fn requests_served(record: &RunRecord) -> u64 {
    record
        .metrics
        .kinds
        .iter()
        .filter(|(kind, _)| kind.as_str() != INSTALL_KIND)
        .map(|(_, k)| k.ok() + k.err())
        .sum()
}

/// One process's figures from its samples in time order (at least one).
fn process_cost(samples: &[&ResourceSample]) -> ProcessCost {
    let gap = |i: usize| samples[i].at_s - samples[i - 1].at_s;
    let cpu_s = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let covered = match i {
                0 if samples.len() > 1 => gap(1),
                0 => 0.0,
                _ => gap(i),
            };
            s.cpu_pct / 100.0 * covered.max(0.0)
        })
        .sum();
    ProcessCost {
        cpu_s,
        rss_first_bytes: samples.first().map_or(0, |s| s.rss_bytes),
        rss_peak_bytes: samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
        rss_last_bytes: samples.last().map_or(0, |s| s.rss_bytes),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{Outcome, Recorder};

    fn sample(at_s: f64, process: &str, cpu_pct: f64, rss_mb: u64) -> ResourceSample {
        ResourceSample {
            at_s,
            process: process.into(),
            cpu_pct,
            rss_bytes: rss_mb << 20,
        }
    }

    #[test]
    fn cpu_per_request_counts_every_request_but_the_install_and_every_generator() {
        let start = Instant::now();
        let recorder = Recorder::new(start, Duration::from_secs(1));
        for kind in ["pypi_simple", "pypi_file"] {
            for _ in 0..1_000 {
                recorder.record(kind, start, start, Outcome::Ok);
            }
        }
        recorder.record("pypi_file", start, start, Outcome::Error("http_503".into()));
        for _ in 0..500 {
            recorder.record(INSTALL_KIND, start, start, Outcome::Ok);
        }
        let mut record = crate::sample::sample_record();
        record.metrics = recorder.finish();
        record.samples = vec![
            // 50 % of a core for 2 s, then 100 % for 2 s: 3 CPU seconds.
            sample(2.0, "load-generator-0", 50.0, 100),
            sample(4.0, "load-generator-0", 100.0, 140),
            // 25 % for 4 s, twice (the first sample covers the gap after it): 2 CPU seconds.
            sample(4.0, "load-generator-1", 25.0, 90),
            sample(8.0, "load-generator-1", 25.0, 80),
            // Not a generator.
            sample(4.0, "node-1", 190.0, 60),
        ];
        let cost = generator_cost(&record).unwrap();
        assert_eq!(cost.requests, 2_001);
        assert!((cost.cpu_s - 5.0).abs() < 1e-9, "{}", cost.cpu_s);
        let per_request = cost.cpu_us_per_request.unwrap();
        assert!((per_request - 5e6 / 2_001.0).abs() < 1e-6, "{per_request}");
        let first = &cost.processes["load-generator-0"];
        assert_eq!(
            (
                first.rss_first_bytes,
                first.rss_peak_bytes,
                first.rss_last_bytes
            ),
            (100 << 20, 140 << 20, 140 << 20)
        );
        assert_eq!(cost.processes["load-generator-1"].rss_peak_bytes, 90 << 20);
        assert_eq!(cost.processes.len(), 2);
    }

    #[test]
    fn every_process_has_its_cpu_seconds_and_memory() {
        let mut record = crate::sample::sample_record();
        record.samples = vec![
            // 190 % of a core for 4 s, then 150 % for 4 s: 13.6 CPU seconds.
            sample(8.0, "node-1", 150.0, 70),
            sample(4.0, "node-1", 190.0, 60),
            sample(4.0, "haproxy", 30.0, 20),
        ];
        let costs = process_costs(&record);
        assert_eq!(costs.len(), 2);
        let node = &costs["node-1"];
        assert!((node.cpu_s - 13.6).abs() < 1e-9, "{}", node.cpu_s);
        assert_eq!(
            (node.rss_first_bytes, node.rss_last_bytes),
            (60 << 20, 70 << 20)
        );
        // One sample covers no time.
        assert_eq!(costs["haproxy"].cpu_s, 0.0);
        assert_eq!(generator_cost(&record), None);
    }

    #[test]
    fn no_generator_sample_means_no_cost() {
        let mut record = crate::sample::sample_record();
        record
            .samples
            .retain(|s| !s.process.starts_with(GENERATOR_PROCESS));
        assert_eq!(generator_cost(&record), None);
    }

    #[test]
    fn the_cluster_cpu_per_install_leaves_the_load_generator_out() {
        let mut record = crate::sample::sample_record();
        record.samples = vec![
            // node-1: 50 % of a core, each sample covering 4 s (the first, the gap after it): 4 s.
            sample(2.0, "node-1", 50.0, 10),
            sample(6.0, "node-1", 50.0, 10),
            // postgresql: 25 % over the same 8 s: 2 s.
            sample(2.0, "postgresql", 25.0, 10),
            sample(6.0, "postgresql", 25.0, 10),
            // The generator's 8 s and docker's port proxy's 4 s are not the cluster's.
            sample(2.0, "load-generator", 200.0, 10),
            sample(6.0, "load-generator", 200.0, 10),
            sample(2.0, "docker-proxy", 50.0, 10),
            sample(6.0, "docker-proxy", 50.0, 10),
        ];
        let cost = cluster_cpu(&record, 1_000).expect("a figure");
        assert!((cost.cpu_s - 6.0).abs() < 1e-9, "{cost:?}");
        assert!((cost.ms_per_install - 6.0).abs() < 1e-9, "{cost:?}");
        assert!(cluster_cpu(&record, 0).is_none());
        record
            .samples
            .retain(|s| s.process == "load-generator" || s.process == "docker-proxy");
        assert!(cluster_cpu(&record, 1_000).is_none());
    }

    #[test]
    fn the_database_cpu_is_the_primarys_share_of_a_core_and_of_the_machine() {
        let mut record = crate::sample::sample_record();
        record.meta.duration_s = 10.0;
        record.meta.config = serde_json::json!({ "machine_cores": 2 });
        record.samples = vec![
            // The primary: 40 % of a core, each sample covering 5 s: 4 CPU seconds.
            sample(0.0, DATABASE_PROCESS, 40.0, 10),
            sample(5.0, DATABASE_PROCESS, 40.0, 10),
            sample(0.0, DATABASE_STANDBY_PROCESS, 10.0, 10),
            sample(5.0, DATABASE_STANDBY_PROCESS, 10.0, 10),
            sample(0.0, "node-1", 100.0, 10),
            sample(5.0, "node-1", 100.0, 10),
        ];
        let db = database_cpu(&record).expect("the primary was sampled");
        assert!((db.cpu_s - 4.0).abs() < 1e-9, "{db:?}");
        assert!((db.core_share - 0.4).abs() < 1e-9, "{db:?}");
        assert!((db.machine_share.unwrap() - 0.2).abs() < 1e-9, "{db:?}");
        assert!((db.standby_cpu_s.unwrap() - 1.0).abs() < 1e-9, "{db:?}");
        assert_eq!(db.reference_share, (0.10, 0.20));
        // Without the core count there is no machine share; without the primary, no figure.
        record.meta.config = serde_json::Value::Null;
        assert_eq!(database_cpu(&record).unwrap().machine_share, None);
        record.samples.retain(|s| s.process != DATABASE_PROCESS);
        assert!(database_cpu(&record).is_none());
    }
}
