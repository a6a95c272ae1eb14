//! `harness scenario --generators 3` against one local cluster: three child generators each
//! execute a slice of the one schedule; the merged record's counts and histograms are exactly
//! the sums of the slices', and the thresholds are judged over the merge — a threshold every
//! slice passes but the merge fails fails the run. `harness merge` reproduces the merge.

use std::path::Path;

use hdrhistogram::Histogram;
use reports::RunRecord;
use reports::metrics::BucketMetrics;

use crate::support::{assert_nothing_left, harness_command};

/// (value, count) of every recorded value: equal iff the histograms hold the same latencies.
fn recorded(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

fn bucket_sum(buckets: &[&BucketMetrics]) -> BucketMetrics {
    let mut sum = BucketMetrics::default();
    for b in buckets {
        sum.merge(b).unwrap();
    }
    sum
}

fn threshold<'a>(record: &'a RunRecord, expr: &str) -> &'a reports::ThresholdResult {
    record
        .thresholds
        .iter()
        .find(|t| t.expr == expr)
        .unwrap_or_else(|| panic!("no threshold {expr}: {:?}", record.thresholds))
}

fn run(command: &mut std::process::Command) -> (Option<i32>, String) {
    let output = command.output().unwrap();
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn merge(tmp: &Path, out: &Path, dirs: &[&Path], thresholds: &[&str]) -> (Option<i32>, String) {
    let mut args: Vec<&str> = vec!["merge"];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    for t in thresholds {
        args.extend(["--threshold", t]);
    }
    run(&mut harness_command(tmp, out, &args))
}

#[test]
fn three_generators_merge_losslessly_and_are_judged_over_the_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    // About 8.7 installs/s in all, 2.9 per slice: `install:rps<6` holds on every slice and
    // fails on the merge.
    let (code, log) = run(&mut harness_command(
        tmp.path(),
        &out,
        &[
            "scenario",
            "daily-installs",
            "--infra",
            "local",
            "--quiet",
            "--installs-per-day",
            "300000",
            "--packages",
            "24",
            "--size-max-bytes",
            "2000000",
            "--duration",
            "15s",
            "--generators",
            "3",
            "--threshold",
            "error_rate<=0",
            "--threshold",
            "install:rps<6",
        ],
    ));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("verdict: FAIL"), "{log}");

    let merged = reports::store::read_run_dir(&out).unwrap();
    let slice_dirs: Vec<_> = (0..3)
        .map(|i| out.join("generators").join(i.to_string()))
        .collect();
    let slices: Vec<RunRecord> = slice_dirs
        .iter()
        .map(|d| reports::store::read_run_dir(d).unwrap())
        .collect();

    // Every slice did its share and passed its own thresholds, rps<6 included.
    for (i, slice) in slices.iter().enumerate() {
        let installs = &slice.metrics.kinds["install"];
        assert!(installs.ok() > 10, "slice {i}: {} installs", installs.ok());
        assert_eq!(installs.err(), 0, "slice {i}: {:?}", installs.errors());
        // A child starts seconds before the shared instant; its run must still reach the end
        // of its slice (it used to stop that much early, leaving the last installs unstarted).
        assert_eq!(
            installs.ok() + installs.err(),
            installs.scheduled(),
            "slice {i}: every scheduled install started"
        );
        assert!(threshold(slice, "install:rps<6").passed, "slice {i}");
        assert_eq!(slice.meta.started_at, merged.meta.started_at, "slice {i}");
    }
    // Counts and histograms: the merge is exactly the sum, per kind and per time bucket.
    assert_eq!(
        merged.metrics.kinds.len(),
        5,
        "{:?}",
        merged.metrics.kinds.keys()
    );
    for (name, kind) in &merged.metrics.kinds {
        let theirs: Vec<_> = slices.iter().map(|s| &s.metrics.kinds[name]).collect();
        let mut sum = reports::metrics::new_latency_histogram();
        for k in &theirs {
            sum.add(&k.latency_us).unwrap();
        }
        assert_eq!(recorded(&kind.latency_us), recorded(&sum), "{name}");
        assert_eq!(kind.latency_us.len(), sum.len(), "{name}");
        assert_eq!(
            kind.scheduled(),
            theirs.iter().map(|k| k.scheduled()).sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            kind.ok(),
            theirs.iter().map(|k| k.ok()).sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            kind.err(),
            theirs.iter().map(|k| k.err()).sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            kind.late(),
            theirs.iter().map(|k| k.late()).sum::<u64>(),
            "{name}"
        );
        for (b, bucket) in kind.buckets.iter().enumerate() {
            let parts: Vec<&BucketMetrics> =
                theirs.iter().filter_map(|k| k.buckets.get(b)).collect();
            let sum = bucket_sum(&parts);
            assert_eq!(
                (bucket.scheduled, bucket.ok, bucket.err, bucket.late),
                (sum.scheduled, sum.ok, sum.err, sum.late),
                "{name} bucket {b}"
            );
            assert_eq!(
                recorded(&bucket.latency_us),
                recorded(&sum.latency_us),
                "{name} bucket {b}"
            );
        }
    }
    // Judged over the merge: the rate every slice held under 6/s is over it in all.
    let rps = threshold(&merged, "install:rps<6");
    assert!(!rps.passed, "{rps:?}");
    let slice_rates: f64 = slices
        .iter()
        .map(|s| threshold(s, "install:rps<6").observed.unwrap())
        .sum();
    assert!(
        (rps.observed.unwrap() - slice_rates).abs() < 1e-6,
        "{rps:?} vs {slice_rates}"
    );
    assert!(threshold(&merged, "error_rate<=0").passed);
    assert_eq!(merged.verdict, reports::Verdict::Fail);
    // Each generator's CPU was sampled on its own, and the cluster's processes apart from it.
    for i in 0..3 {
        let name = format!("load-generator-{i}");
        assert!(
            merged.samples.iter().any(|s| s.process == name),
            "no samples of {name}"
        );
    }
    assert!(merged.samples.iter().any(|s| s.process == "node-1"));

    // `harness merge` of the slices' directories gives the same metrics and verdict…
    let again = out_dir.path().join("merged");
    let dirs: Vec<&Path> = slice_dirs.iter().map(|d| d.as_path()).collect();
    let (code, log) = merge(tmp.path(), &again, &dirs, &[]);
    assert_eq!(code, Some(1), "{log}");
    let remerged = reports::store::read_run_dir(&again).unwrap();
    assert_eq!(remerged.metrics, merged.metrics);
    assert!(!threshold(&remerged, "install:rps<6").passed);
    // …and one slice alone passes the same threshold: the merge, not the slice, decided.
    let single = out_dir.path().join("single");
    let (code, log) = merge(tmp.path(), &single, &dirs[..1], &["install:rps<6"]);
    assert_eq!(code, Some(0), "{log}");
    assert_nothing_left(tmp.path());
}
