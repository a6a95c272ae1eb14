//! Metrics: the live [`Recorder`] used by load generators and the frozen [`Metrics`] model.

mod model;
mod recorder;

pub use model::{
    BUCKET_LATENCY_SIGFIG, BucketMetrics, KindMetrics, LATENCY_HIGHEST_US, LATENCY_LOWEST_US,
    LATENCY_SIGFIG, Metrics, new_bucket_histogram, new_latency_histogram, quantile_ms,
};
pub use recorder::{LiveKind, LiveSnapshot, Outcome, Recorder};

#[cfg(test)]
mod tests;
