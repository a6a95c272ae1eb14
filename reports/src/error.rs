//! The crate's one error type: every bad input names the file or expression and what to fix.

use std::path::PathBuf;

/// Everything that can go wrong while recording, storing, judging or rendering a run.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A threshold expression such as `p99<50ms` could not be parsed.
    #[error("invalid threshold `{expr}`: {reason}")]
    InvalidThreshold {
        /// The expression as written.
        expr: String,
        /// What is wrong with it and what is expected instead.
        reason: String,
    },
    /// A thresholds file had one or more bad entries (all of them are listed).
    #[error("{}: {} invalid threshold(s):\n  {}", path.display(), errors.len(), errors.join("\n  "))]
    InvalidThresholdFile {
        /// The file that was read.
        path: PathBuf,
        /// One message per bad entry (or the TOML syntax error).
        errors: Vec<String>,
    },
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted: "read", "write", "create", "rename".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of a run record could not be parsed or produced.
    #[error("{}: malformed JSON: {source}", path.display())]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying serde_json error.
        #[source]
        source: serde_json::Error,
    },
    /// A serialized histogram file is corrupt or does not match `record.json`.
    #[error("{}: bad histogram data: {reason}", path.display())]
    Histogram {
        /// The `.hdr` or `.buckets` file involved.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A run directory was written by an incompatible version of this crate.
    #[error("{}: run directory format {found} is not supported (this build reads format {expected})", path.display())]
    UnsupportedFormat {
        /// The `record.json` read.
        path: PathBuf,
        /// The format version found.
        found: u32,
        /// The format version this build reads.
        expected: u32,
    },
    /// Two metrics could not be merged (different bucket widths, incompatible histograms).
    #[error("cannot merge metrics: {0}")]
    Merge(String),
    /// A chart could not be drawn.
    #[error("chart `{chart}` failed to render: {reason}")]
    Chart {
        /// Which chart.
        chart: &'static str,
        /// The drawing backend's message.
        reason: String,
    },
    /// The HTML template failed to render.
    #[error("HTML report template failed: {0}")]
    Template(#[from] askama::Error),
}

impl ReportError {
    /// Wraps an I/O error with the action and path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ReportError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
