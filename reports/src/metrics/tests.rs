//! Merge tests: several recorders merged must equal one recorder that saw everything.

use std::time::{Duration, Instant};

use super::*;

/// Deterministic pseudo-random latencies, spread over several orders of magnitude.
fn latencies(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) % 1_000_000;
            // Heavy tail: mostly a few ms, sometimes seconds.
            if r.is_multiple_of(97) {
                r * 20
            } else {
                r / 100 + 50
            }
        })
        .collect()
}

fn feed(recorders: &[&Recorder], start: Instant) {
    for (i, us) in latencies(7, 5000).into_iter().enumerate() {
        let rec = recorders[i % recorders.len()];
        let kind = if i % 3 == 0 { "pypi_simple" } else { "install" };
        let due = start + Duration::from_millis(i as u64);
        rec.scheduled(kind, due);
        let outcome = if i % 101 == 0 {
            Outcome::Error(if i % 2 == 0 { "http_503" } else { "timeout" }.into())
        } else {
            Outcome::Ok
        };
        if i % 57 == 0 {
            rec.late(kind, due);
        }
        rec.record(kind, due, due + Duration::from_micros(us), outcome);
    }
}

#[test]
fn merge_of_two_equals_recording_into_one() {
    let start = Instant::now();
    let width = Duration::from_millis(250);
    let one = Recorder::new(start, width);
    feed(&[&one], start);
    let (a, b) = (Recorder::new(start, width), Recorder::new(start, width));
    feed(&[&a, &b], start);

    let mut merged = a.finish();
    merged.merge(&b.finish()).unwrap();
    let single = one.finish();

    assert_eq!(merged.bucket_count, single.bucket_count);
    for (name, kind) in &single.kinds {
        let m = &merged.kinds[name];
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(m.latency_ms(q), kind.latency_ms(q), "{name} q={q}");
        }
        assert_eq!(m.errors(), kind.errors());
    }
    assert_eq!(merged, single);
}

#[test]
fn merge_pads_buckets_and_adds_new_kinds() {
    let start = Instant::now();
    let width = Duration::from_secs(1);
    let a = Recorder::new(start, width);
    a.scheduled("install", start);
    let b = Recorder::new(start, width);
    b.scheduled("git_build", start + Duration::from_secs(4));
    let mut m = a.finish();
    m.merge(&b.finish()).unwrap();
    assert_eq!(m.bucket_count, 5);
    assert!(m.kinds.values().all(|k| k.buckets.len() == 5));
    assert_eq!(m.kinds["git_build"].buckets[4].scheduled, 1);
}

#[test]
fn merge_rejects_different_bucket_widths() {
    let mut a = Metrics::new(Duration::from_secs(1));
    let b = Metrics::new(Duration::from_secs(10));
    let err = a.merge(&b).unwrap_err().to_string();
    assert!(err.contains("bucket widths differ"), "{err}");
}

#[test]
fn merge_aligns_buckets_on_the_wall_clock() {
    let start = Instant::now();
    let width = Duration::from_secs(1);
    // One recorder saw everything; the other two started 2 s apart and saw half each.
    let one = Recorder::new(start, width);
    let early = Recorder::new(start, width);
    let late = Recorder::new(start + 2 * width, width);
    for i in 0..8u64 {
        let due = start + Duration::from_millis(500 + 1000 * i);
        let finished = due + Duration::from_micros(1000 + 37 * i);
        one.scheduled("install", due);
        one.record("install", due, finished, Outcome::Ok);
        let half = if i % 2 == 0 && i >= 2 { &late } else { &early };
        half.scheduled("install", due);
        half.record("install", due, finished, Outcome::Ok);
    }
    let single = one.finish();
    // Later record into the earlier one, and the earlier into the later one (negative offset).
    let mut forward = early.finish();
    forward.merge_offset(&late.finish(), 2).unwrap();
    assert_eq!(forward, single);
    let mut backward = late.finish();
    backward.merge_offset(&early.finish(), -2).unwrap();
    assert_eq!(backward, single);
}
