//! Which component was saturated at a failing step: the monitored process (a node, PostgreSQL,
//! HAProxy, the S3 server, the load generator) with the highest mean CPU over the step, from
//! the resource samples the run took once a second.

use std::collections::BTreeMap;

use reports::gate::{GateStep, Saturation};
use reports::record::ResourceSample;

/// Mean CPU (percent of one core) per process over the samples.
pub fn cpu_means(samples: &[ResourceSample]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for sample in samples {
        let entry = sums.entry(sample.process.clone()).or_default();
        entry.0 += sample.cpu_pct;
        entry.1 += 1;
    }
    sums.into_iter()
        .map(|(process, (sum, n))| (process, sum / f64::from(n.max(1))))
        .collect()
}

/// The failed step at the lowest rate: the one just above the knee, whose bottleneck is the
/// capacity's. (The first failure in time is usually the search's upper bound, far past the
/// knee, where everything is overloaded.)
pub fn step_above_knee(steps: &[GateStep]) -> Option<&GateStep> {
    steps
        .iter()
        .filter(|s| !s.passed)
        .min_by(|a, b| a.per_day.total_cmp(&b.per_day))
}

/// A process (or the machine) this busy counts as CPU-bound.
const CPU_BOUND_SHARE: f64 = 0.85;

/// The busiest process at step `step_index` (rate `per_day`), with a note on how to read it
/// on a machine of `cores` cores; `None` without samples.
pub fn saturated(
    cpu_mean_pct: &BTreeMap<String, f64>,
    step_index: usize,
    per_day: f64,
    cores: usize,
) -> Option<Saturation> {
    let (process, cpu_pct) = cpu_mean_pct
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(p, c)| (p.clone(), *c))?;
    let total: f64 = cpu_mean_pct.values().sum();
    let machine = cores as f64 * 100.0;
    let mut note = format!(
        "the highest mean CPU of the monitored processes; together they used {total:.0}% of the \
         machine's {machine:.0}%"
    );
    if total >= CPU_BOUND_SHARE * machine {
        note.push_str(": the machine's CPU was the limit, shared by every component");
    } else if cpu_pct >= CPU_BOUND_SHARE * 100.0 {
        if process == "load-generator" {
            note.push_str(": the load generator, not the cluster, ran out of CPU first");
        } else {
            note.push_str(&format!(": {process} used most of a core"));
        }
    } else {
        note.push_str(
            ": no monitored process was CPU-bound, so the limit lay elsewhere (the machine's \
             other load, I/O, or waiting on locks or the database)",
        );
    }
    Some(Saturation {
        step_index,
        per_day,
        process,
        cpu_pct,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(process: &str, cpu_pct: f64) -> ResourceSample {
        ResourceSample {
            at_s: 1.0,
            process: process.into(),
            cpu_pct,
            rss_bytes: 0,
        }
    }

    #[test]
    fn the_bottleneck_is_read_at_the_lowest_failed_rate_not_the_first_failure() {
        let step = |index, per_day, passed| GateStep {
            index,
            per_day,
            purpose: reports::gate::StepPurpose::Probe,
            offered_per_s: per_day / 86_400.0,
            achieved_per_s: per_day / 86_400.0,
            passed,
            failed_slo: Vec::new(),
            installs: Default::default(),
            latency_ms: BTreeMap::new(),
            cpu_mean_pct: BTreeMap::new(),
            cluster_cpu: None,
            warnings: Vec::new(),
            run_dir: String::new(),
        };
        let steps = [
            step(1, 1e6, true),
            step(2, 48e6, false),
            step(3, 7e6, true),
            step(4, 9e6, false),
            step(5, 8e6, true),
        ];
        assert_eq!(step_above_knee(&steps).map(|s| s.index), Some(4));
        assert!(step_above_knee(&steps[..1]).is_none());
    }

    #[test]
    fn the_busiest_process_is_named_and_an_idle_run_names_none() {
        let samples = [
            sample("node-1", 90.0),
            sample("node-1", 70.0),
            sample("postgresql", 30.0),
            sample("load-generator", 60.0),
        ];
        let means = cpu_means(&samples);
        assert_eq!(means["node-1"], 80.0);
        let s = saturated(&means, 3, 2e6, 2).unwrap();
        assert_eq!(s.process, "node-1");
        assert_eq!(s.cpu_pct, 80.0);
        assert!(s.note.contains("170% of the machine's 200%"), "{}", s.note);
        assert!(
            s.note.contains("the machine's CPU was the limit"),
            "{}",
            s.note
        );

        let generator = cpu_means(&[sample("node-1", 20.0), sample("load-generator", 95.0)]);
        let s = saturated(&generator, 1, 1e6, 2).unwrap();
        assert!(
            s.note.contains("load generator, not the cluster"),
            "{}",
            s.note
        );

        let idle = cpu_means(&[sample("node-1", 40.0), sample("postgresql", 20.0)]);
        let s = saturated(&idle, 1, 1e6, 2).unwrap();
        assert_eq!(s.process, "node-1");
        assert!(
            s.note.contains("no monitored process was CPU-bound"),
            "{}",
            s.note
        );

        assert!(saturated(&BTreeMap::new(), 1, 1e6, 2).is_none());
    }
}
