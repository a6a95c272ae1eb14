//! The frozen, mergeable metrics of a run: per request kind, a whole-run latency histogram and
//! per-time-bucket histograms and counts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::ReportError;

/// Lowest latency the histograms distinguish: 1 µs.
pub const LATENCY_LOWEST_US: u64 = 1;
/// Highest latency recorded: 1 h. Longer latencies are clamped to it.
pub const LATENCY_HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every latency histogram.
pub const LATENCY_SIGFIG: u8 = 3;

/// A new, empty latency histogram in microseconds (1 µs .. 1 h, 3 significant figures).
///
/// It starts small and auto-resizes up to the largest value recorded: HdrHistogram counts are
/// dense arrays, and a run has one histogram per kind and time bucket, so sizing every one for
/// a full hour (≈190 KB each) would cost far more memory than the latencies actually seen need.
pub fn new_latency_histogram() -> Histogram<u64> {
    latency_histogram(LATENCY_SIGFIG)
}

/// Significant decimal digits of each time bucket's histogram. A bucket's quantiles are chart
/// points, for which 1 % resolution is plenty, and at two digits a bucket's histogram is about
/// 7 KB instead of 55 KB: a run has up to ~120 buckets per kind, so at three digits the buckets
/// alone grew a generator by ~37 MB over a run, whatever its length (measured on a one-hour
/// run). The whole-run histogram, which thresholds judge, keeps [`LATENCY_SIGFIG`].
pub const BUCKET_LATENCY_SIGFIG: u8 = 2;

/// A new, empty time-bucket histogram: as [`new_latency_histogram`], at
/// [`BUCKET_LATENCY_SIGFIG`] digits.
pub fn new_bucket_histogram() -> Histogram<u64> {
    latency_histogram(BUCKET_LATENCY_SIGFIG)
}

/// An empty auto-resizing microsecond histogram from 1 µs, at `sigfig` digits.
fn latency_histogram(sigfig: u8) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(LATENCY_LOWEST_US, 2 * LATENCY_LOWEST_US, sigfig)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

/// Records one latency, clamped into the histogram's documented range.
pub(crate) fn record_latency_us(h: &mut Histogram<u64>, latency_us: u64) {
    // `saturating_record` would clamp to the current (small) bound instead of resizing; `record`
    // resizes, and the value is already within the 1 h bound, so it cannot fail.
    let _ = h.record(latency_us.min(LATENCY_HIGHEST_US));
}

/// Latency at `quantile` (0..=1) in milliseconds, or `None` when nothing was recorded.
pub fn quantile_ms(h: &Histogram<u64>, quantile: f64) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    let us = if quantile >= 1.0 {
        h.max()
    } else {
        h.value_at_quantile(quantile)
    };
    Some(us as f64 / 1000.0)
}

/// What happened in one time bucket of one request kind. A bucket holds the operations whose
/// *scheduled* time falls in it.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketMetrics {
    /// Latencies (µs, from the scheduled time) of operations finished, ok or not, at
    /// [`BUCKET_LATENCY_SIGFIG`] digits.
    pub latency_us: Histogram<u64>,
    /// Operations due in this bucket: the target arrival count.
    pub scheduled: u64,
    /// Operations that finished successfully.
    pub ok: u64,
    /// Operations that finished with an error.
    pub err: u64,
    /// Operations that started later than their tolerance.
    pub late: u64,
    /// Error count by error kind (`http_503`, `timeout`, …).
    pub errors: BTreeMap<String, u64>,
}

impl Default for BucketMetrics {
    fn default() -> Self {
        BucketMetrics {
            latency_us: new_bucket_histogram(),
            scheduled: 0,
            ok: 0,
            err: 0,
            late: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl BucketMetrics {
    /// Adds `other` into `self` losslessly.
    pub fn merge(&mut self, other: &BucketMetrics) -> Result<(), ReportError> {
        add_histogram(&mut self.latency_us, &other.latency_us)?;
        self.scheduled += other.scheduled;
        self.ok += other.ok;
        self.err += other.err;
        self.late += other.late;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        Ok(())
    }
}

/// All metrics of one request kind (`install`, `pypi_simple`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct KindMetrics {
    /// Whole-run latency histogram (µs, from the scheduled time).
    pub latency_us: Histogram<u64>,
    /// One entry per time bucket; always `Metrics::bucket_count` long.
    pub buckets: Vec<BucketMetrics>,
}

impl KindMetrics {
    /// An empty kind with `bucket_count` empty buckets.
    pub fn new(bucket_count: usize) -> Self {
        KindMetrics {
            latency_us: new_latency_histogram(),
            buckets: (0..bucket_count)
                .map(|_| BucketMetrics::default())
                .collect(),
        }
    }

    /// Operations scheduled over the whole run.
    pub fn scheduled(&self) -> u64 {
        self.buckets.iter().map(|b| b.scheduled).sum()
    }

    /// Operations that succeeded over the whole run.
    pub fn ok(&self) -> u64 {
        self.buckets.iter().map(|b| b.ok).sum()
    }

    /// Operations that failed over the whole run.
    pub fn err(&self) -> u64 {
        self.buckets.iter().map(|b| b.err).sum()
    }

    /// Operations that started late over the whole run.
    pub fn late(&self) -> u64 {
        self.buckets.iter().map(|b| b.late).sum()
    }

    /// Operations that finished (ok or error).
    pub fn finished(&self) -> u64 {
        self.ok() + self.err()
    }

    /// Error counts by error kind over the whole run.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for b in &self.buckets {
            for (kind, n) in &b.errors {
                *out.entry(kind.clone()).or_default() += n;
            }
        }
        out
    }

    /// Whole-run latency at `quantile` in ms (`1.0` = max), `None` when nothing finished.
    pub fn latency_ms(&self, quantile: f64) -> Option<f64> {
        quantile_ms(&self.latency_us, quantile)
    }

    fn extend_to(&mut self, bucket_count: usize) {
        while self.buckets.len() < bucket_count {
            self.buckets.push(BucketMetrics::default());
        }
    }
}

/// The metrics of a run (or of several merged load-generator processes).
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Width of each time bucket.
    pub bucket_width: Duration,
    /// Number of time buckets; every kind has exactly this many.
    pub bucket_count: usize,
    /// Metrics by request kind.
    pub kinds: BTreeMap<String, KindMetrics>,
    /// Named whole-run numbers a checker or workload counted (`lost`, `duplicates`,
    /// `makespan_s`, …), judged by thresholds such as `lost==0`; summed on merge.
    pub counters: BTreeMap<String, f64>,
}

impl Metrics {
    /// Empty metrics with the given bucket width and no buckets.
    pub fn new(bucket_width: Duration) -> Self {
        Metrics {
            bucket_width,
            bucket_count: 0,
            kinds: BTreeMap::new(),
            counters: BTreeMap::new(),
        }
    }

    /// Adds `other` into `self` losslessly: histograms are added, counts summed, buckets aligned
    /// by index (each process's bucket 0 starts at its own recorder start).
    ///
    /// Fails when the bucket widths differ, since buckets would then cover different times.
    pub fn merge(&mut self, other: &Metrics) -> Result<(), ReportError> {
        self.merge_offset(other, 0)
    }

    /// Adds `other` into `self` losslessly, `other`'s bucket 0 starting `offset` buckets after
    /// ours (before ours when negative): buckets are aligned on the wall clock, not by index.
    /// A negative offset prepends empty buckets to `self`.
    pub fn merge_offset(&mut self, other: &Metrics, offset: i64) -> Result<(), ReportError> {
        if self.bucket_width != other.bucket_width {
            return Err(ReportError::Merge(format!(
                "bucket widths differ ({:?} vs {:?}); record every process with the same width",
                self.bucket_width, other.bucket_width
            )));
        }
        let too_far = || ReportError::Merge(format!("bucket offset {offset} is out of range"));
        if offset < 0 {
            let lead = usize::try_from(offset.unsigned_abs()).map_err(|_| too_far())?;
            for kind in self.kinds.values_mut() {
                let mut shifted: Vec<BucketMetrics> =
                    (0..lead).map(|_| BucketMetrics::default()).collect();
                shifted.append(&mut kind.buckets);
                kind.buckets = shifted;
            }
            self.bucket_count += lead;
        }
        let shift = usize::try_from(offset.max(0)).map_err(|_| too_far())?;
        self.bucket_count = self.bucket_count.max(other.bucket_count + shift);
        for (name, theirs) in &other.kinds {
            let ours = self
                .kinds
                .entry(name.clone())
                .or_insert_with(|| KindMetrics::new(0));
            add_histogram(&mut ours.latency_us, &theirs.latency_us)?;
            ours.extend_to(theirs.buckets.len() + shift);
            for (mine, bucket) in ours.buckets[shift..].iter_mut().zip(&theirs.buckets) {
                mine.merge(bucket)?;
            }
        }
        for (name, value) in &other.counters {
            *self.counters.entry(name.clone()).or_default() += value;
        }
        let count = self.bucket_count;
        for kind in self.kinds.values_mut() {
            kind.extend_to(count);
        }
        Ok(())
    }

    /// Start of bucket `index` in seconds since the run start.
    pub fn bucket_start_s(&self, index: usize) -> f64 {
        index as f64 * self.bucket_width.as_secs_f64()
    }

    /// Bucket width in seconds.
    pub fn bucket_width_s(&self) -> f64 {
        self.bucket_width.as_secs_f64()
    }

    /// These metrics without the operations scheduled in `windows` (start, end in seconds
    /// since the run start): a bucket that overlaps a window is left out whole, counts and
    /// latencies. Each kind's whole-run histogram becomes the sum of the buckets kept, so its
    /// quantiles have the buckets' [`BUCKET_LATENCY_SIGFIG`] digits. Counters are kept.
    ///
    /// A drill judges its thresholds on this: what the cluster did outside its faults.
    pub fn outside_windows(&self, windows: &[(f64, f64)]) -> Metrics {
        let width = self.bucket_width_s();
        let excluded = |index: usize| {
            let start = self.bucket_start_s(index);
            windows
                .iter()
                .any(|&(from, to)| start + width > from && start < to)
        };
        let kinds = self
            .kinds
            .iter()
            .map(|(name, kind)| {
                let mut latency_us = new_latency_histogram();
                let buckets: Vec<BucketMetrics> = kind
                    .buckets
                    .iter()
                    .enumerate()
                    .map(|(i, bucket)| {
                        if excluded(i) {
                            BucketMetrics::default()
                        } else {
                            // Both auto-resize from 1 µs: the addition cannot fail.
                            let _ = latency_us.add(&bucket.latency_us);
                            bucket.clone()
                        }
                    })
                    .collect();
                (
                    name.clone(),
                    KindMetrics {
                        latency_us,
                        buckets,
                    },
                )
            })
            .collect();
        Metrics {
            bucket_width: self.bucket_width,
            bucket_count: self.bucket_count,
            kinds,
            counters: self.counters.clone(),
        }
    }

    /// One histogram of every kind's latencies together.
    pub fn overall_latency(&self) -> Histogram<u64> {
        let mut all = new_latency_histogram();
        for kind in self.kinds.values() {
            // Same bounds and auto-resize: addition cannot fail.
            let _ = all.add(&kind.latency_us);
        }
        all
    }

    /// Error counts by error kind over all request kinds.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for kind in self.kinds.values() {
            for (name, n) in kind.errors() {
                *out.entry(name).or_default() += n;
            }
        }
        out
    }
}

fn add_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) -> Result<(), ReportError> {
    into.add(from)
        .map_err(|e| ReportError::Merge(format!("latency histograms are incompatible: {e:?}")))
}
