//! The live recorder shared by every load-generating task: latency from the scheduled time
//! (wrk2 style, free of coordinated omission), per kind and per time bucket.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::model::{KindMetrics, Metrics, quantile_ms, record_latency_us};

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It failed; the text is the error kind, e.g. `http_503`, `timeout`, `connect`.
    Error(String),
}

/// Live counters of one kind, for a progress line.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveKind {
    /// Operations scheduled so far.
    pub scheduled: u64,
    /// Operations finished successfully.
    pub ok: u64,
    /// Operations finished with an error.
    pub err: u64,
    /// Operations that started late.
    pub late: u64,
    /// 99th percentile latency so far in ms, `None` before the first finished operation.
    pub p99_ms: Option<f64>,
}

/// A cheap view of a running recorder.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSnapshot {
    /// Time since the recorder's start.
    pub elapsed: Duration,
    /// Counters by kind.
    pub kinds: BTreeMap<String, LiveKind>,
}

#[derive(Default)]
struct KindState {
    metrics: KindMetrics,
    scheduled: u64,
    ok: u64,
    err: u64,
    late: u64,
}

impl Default for KindMetrics {
    fn default() -> Self {
        KindMetrics::new(0)
    }
}

impl KindState {
    fn bucket(&mut self, index: usize) -> &mut super::model::BucketMetrics {
        while self.metrics.buckets.len() <= index {
            self.metrics.buckets.push(Default::default());
        }
        &mut self.metrics.buckets[index]
    }
}

/// Records operations of many concurrent tasks.
///
/// `Send + Sync`; each kind has its own mutex, so tasks recording different kinds never contend,
/// and the map of kinds is only write-locked the first time a kind is seen.
///
/// Memory: each (kind, bucket) pair that receives a latency holds a dense HdrHistogram of a few
/// KB (two significant digits; more with larger latencies), and each kind one whole-run
/// histogram of about 60–90 KB, so choose a bucket width that gives at most a few hundred
/// buckets per run (the harness keeps about 120 whatever the run's length).
pub struct Recorder {
    start: Instant,
    bucket_width: Duration,
    kinds: RwLock<HashMap<String, Mutex<KindState>>>,
}

impl Recorder {
    /// A recorder whose bucket 0 starts at `start`.
    ///
    /// # Panics
    /// If `bucket_width` is zero.
    pub fn new(start: Instant, bucket_width: Duration) -> Self {
        assert!(!bucket_width.is_zero(), "bucket width must be > 0");
        Recorder {
            start,
            bucket_width,
            kinds: RwLock::new(HashMap::new()),
        }
    }

    /// The instant bucket 0 starts at.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The width of each time bucket.
    pub fn bucket_width(&self) -> Duration {
        self.bucket_width
    }

    /// An operation of `kind` was due at `at`; it counts toward the target rate of that bucket.
    pub fn scheduled(&self, kind: &str, at: Instant) {
        let index = self.bucket_index(at);
        self.with_kind(kind, |state| {
            state.scheduled += 1;
            state.bucket(index).scheduled += 1;
        });
    }

    /// An operation due at `scheduled` finished at `finished`.
    ///
    /// The latency is `finished - scheduled` (so waiting for a free user counts, as it would for
    /// a real client), in microseconds, into both the kind's whole-run histogram and the
    /// histogram of the bucket the *scheduled* time falls in.
    pub fn record(&self, kind: &str, scheduled: Instant, finished: Instant, outcome: Outcome) {
        let index = self.bucket_index(scheduled);
        let latency_us = u64::try_from(finished.saturating_duration_since(scheduled).as_micros())
            .unwrap_or(u64::MAX);
        self.with_kind(kind, |state| {
            record_latency_us(&mut state.metrics.latency_us, latency_us);
            match &outcome {
                Outcome::Ok => state.ok += 1,
                Outcome::Error(_) => state.err += 1,
            }
            let bucket = state.bucket(index);
            record_latency_us(&mut bucket.latency_us, latency_us);
            match outcome {
                Outcome::Ok => bucket.ok += 1,
                Outcome::Error(error_kind) => {
                    bucket.err += 1;
                    *bucket.errors.entry(error_kind).or_default() += 1;
                }
            }
        });
    }

    /// An operation due at `scheduled` started later than its tolerance (k6's dropped or late
    /// iterations). Whether it still runs and is [`record`](Self::record)ed is the caller's call.
    pub fn late(&self, kind: &str, scheduled: Instant) {
        let index = self.bucket_index(scheduled);
        self.with_kind(kind, |state| {
            state.late += 1;
            state.bucket(index).late += 1;
        });
    }

    /// Counters and p99 so far, cheap enough for a progress bar refreshed a few times a second.
    pub fn snapshot(&self) -> LiveSnapshot {
        let kinds = read(&self.kinds)
            .iter()
            .map(|(name, state)| {
                let state = lock(state);
                let live = LiveKind {
                    scheduled: state.scheduled,
                    ok: state.ok,
                    err: state.err,
                    late: state.late,
                    p99_ms: quantile_ms(&state.metrics.latency_us, 0.99),
                };
                (name.clone(), live)
            })
            .collect();
        LiveSnapshot {
            elapsed: self.start.elapsed(),
            kinds,
        }
    }

    /// Freezes everything recorded so far into [`Metrics`]. The bucket count is one past the
    /// last bucket any kind touched; every kind is padded to it.
    pub fn finish(&self) -> Metrics {
        let kinds_map = read(&self.kinds);
        let mut kinds: BTreeMap<String, KindMetrics> = kinds_map
            .iter()
            .map(|(name, state)| (name.clone(), lock(state).metrics.clone()))
            .collect();
        let bucket_count = kinds.values().map(|k| k.buckets.len()).max().unwrap_or(0);
        for kind in kinds.values_mut() {
            kind.buckets.resize_with(bucket_count, Default::default);
        }
        Metrics {
            bucket_width: self.bucket_width,
            bucket_count,
            kinds,
            counters: BTreeMap::new(),
        }
    }

    fn bucket_index(&self, at: Instant) -> usize {
        let since = at.saturating_duration_since(self.start).as_nanos();
        usize::try_from(since / self.bucket_width.as_nanos()).unwrap_or(usize::MAX)
    }

    fn with_kind(&self, kind: &str, f: impl FnOnce(&mut KindState)) {
        {
            let kinds = read(&self.kinds);
            if let Some(state) = kinds.get(kind) {
                f(&mut lock(state));
                return;
            }
        }
        let mut kinds = self.kinds.write().unwrap_or_else(PoisonError::into_inner);
        let state = kinds.entry(kind.to_owned()).or_default();
        f(&mut lock(state));
    }
}

// A panicking recorder call cannot leave counts half-updated in a way worth losing the run
// over, so a poisoned lock is used as is.
fn lock(state: &Mutex<KindState>) -> MutexGuard<'_, KindState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: f64 = 0.001;

    fn assert_close(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= want * TOLERANCE + 0.001,
            "got {got}, want {want} within HDR precision"
        );
    }

    #[test]
    fn percentiles_are_within_hdr_precision() {
        let start = Instant::now();
        let rec = Recorder::new(start, Duration::from_secs(1));
        // 1..=1000 ms, scheduled in bucket 0.
        for ms in 1..=1000u64 {
            rec.scheduled("install", start);
            rec.record(
                "install",
                start,
                start + Duration::from_millis(ms),
                Outcome::Ok,
            );
        }
        let m = rec.finish();
        let k = &m.kinds["install"];
        assert_close(k.latency_ms(0.5).unwrap(), 500.0);
        assert_close(k.latency_ms(0.9).unwrap(), 900.0);
        assert_close(k.latency_ms(0.99).unwrap(), 990.0);
        assert_close(k.latency_ms(0.999).unwrap(), 999.0);
        assert_close(k.latency_ms(1.0).unwrap(), 1000.0);
        assert_eq!(k.latency_us.len(), 1000);
        assert_eq!(m.bucket_count, 1);
        assert_eq!(k.buckets[0].latency_us.len(), 1000);
        assert_eq!((k.scheduled(), k.ok(), k.err()), (1000, 1000, 0));
    }

    #[test]
    fn latency_lands_in_the_bucket_of_its_scheduled_time() {
        let start = Instant::now();
        let rec = Recorder::new(start, Duration::from_secs(1));
        let due = start + Duration::from_millis(2500);
        rec.scheduled("install", due);
        // Finished in bucket 4, but scheduled in bucket 2.
        rec.record(
            "install",
            due,
            due + Duration::from_secs(2),
            Outcome::Error("timeout".into()),
        );
        rec.late("install", due);
        rec.scheduled("pypi_simple", start);
        let m = rec.finish();
        assert_eq!(m.bucket_count, 3);
        let k = &m.kinds["install"];
        assert_eq!(k.buckets.len(), 3);
        assert_eq!(m.kinds["pypi_simple"].buckets.len(), 3);
        let b = &k.buckets[2];
        assert_eq!((b.scheduled, b.ok, b.err, b.late), (1, 0, 1, 1));
        assert_eq!(b.errors["timeout"], 1);
        // A bucket keeps two significant digits: within 1 %.
        let max = quantile_ms(&b.latency_us, 1.0).unwrap();
        assert!((max - 2000.0).abs() <= 20.0, "{max}");
        assert!(k.buckets[0].latency_us.is_empty());
    }

    #[test]
    fn snapshot_counts_and_p99() {
        let start = Instant::now();
        let rec = Recorder::new(start, Duration::from_secs(1));
        for i in 0..100u64 {
            rec.scheduled("install", start);
            let outcome = if i < 90 {
                Outcome::Ok
            } else {
                Outcome::Error("http_503".into())
            };
            rec.record(
                "install",
                start,
                start + Duration::from_millis(i + 1),
                outcome,
            );
        }
        rec.late("install", start);
        let snap = rec.snapshot();
        let live = &snap.kinds["install"];
        assert_eq!(
            (live.scheduled, live.ok, live.err, live.late),
            (100, 90, 10, 1)
        );
        assert_close(live.p99_ms.unwrap(), 99.0);
    }

    #[test]
    fn recorder_is_shared_across_threads() {
        let start = Instant::now();
        let rec = std::sync::Arc::new(Recorder::new(start, Duration::from_millis(100)));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let kind = if t % 2 == 0 { "install" } else { "pypi_simple" };
                    for i in 0..1000u64 {
                        let due = start + Duration::from_millis(i);
                        rec.scheduled(kind, due);
                        rec.record(kind, due, due + Duration::from_micros(500), Outcome::Ok);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let m = rec.finish();
        assert_eq!(m.bucket_count, 10);
        for kind in ["install", "pypi_simple"] {
            assert_eq!(m.kinds[kind].ok(), 2000);
            assert_eq!(m.kinds[kind].buckets[3].scheduled, 200);
        }
    }
}
