//! Run metrics, run records, JSON summary, SVG charts and the self-contained HTML report.
//!
//! Data flows one way: load generators feed a [`metrics::Recorder`] (latency measured from each
//! operation's *scheduled* time into lossless HdrHistograms), the harness freezes it into
//! [`metrics::Metrics`] and wraps it with run metadata, fault events and resource samples in a
//! [`record::RunRecord`], [`store::write_run_dir`] puts that on disk (JSON plus serialized
//! histograms), and [`summary`], [`charts`] and [`html`] render it. A record can be read back with
//! [`store::read_run_dir`], merged with records of other load-generator processes
//! ([`metrics::Metrics::merge`]) and judged again by [`thresholds`].
//!
//! **Architecture Invariant:** this crate knows nothing of the node, sqlx, object_store or goose;
//! it is a data model and its renderers.

pub mod charts;
pub mod compare;
mod error;
pub mod figures;
pub mod gate;
pub mod generator;
pub mod html;
pub mod kinds;
pub mod metrics;
pub mod proofs;
pub mod record;
#[cfg(any(test, feature = "sample"))]
pub mod sample;
pub mod store;
pub mod summary;
pub mod thresholds;

pub use error::ReportError;
pub use metrics::{LiveSnapshot, Metrics, Outcome, Recorder};
pub use record::{RunRecord, Verdict};
pub use thresholds::{Threshold, ThresholdResult, ThresholdSet};
