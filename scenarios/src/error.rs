//! The crate's one error type: every failure a caller of `scenarios` can act on.

use std::time::Duration;

/// Errors raised while preparing or running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A configuration was rejected; every problem found is listed.
    #[error("invalid {what}: {}", .problems.join("; "))]
    InvalidConfig {
        /// Which configuration (e.g. `corpus`, `arrival plan`).
        what: &'static str,
        /// Every problem found, each a sentence a user can act on.
        problems: Vec<String>,
    },
    /// Writing an artifact (wheel, sdist, R tarball) failed.
    #[error("building artifact {file}: {detail}")]
    Artifact {
        /// The artifact's file name.
        file: String,
        /// What went wrong.
        detail: String,
    },
    /// An upload was answered with an error status.
    #[error("upload of {file} to {url} answered HTTP {status}: {body}")]
    UploadRejected {
        /// The artifact's file name.
        file: String,
        /// The upload URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, for the server's reason.
        body: String,
    },
    /// An upload could not be sent or its answer not read.
    #[error("upload of {file} to {url} failed: {source}")]
    UploadTransport {
        /// The artifact's file name.
        file: String,
        /// The upload URL.
        url: String,
        /// The client's error.
        source: reqwest::Error,
    },
    /// goose refused the configuration or failed while running.
    #[error("goose: {0}")]
    Goose(String),
    /// The run was asked to last zero time or to use zero users.
    #[error(
        "a run needs at least one user and a positive run time (got {users} users, {run_time:?})"
    )]
    EmptyRun {
        /// Users asked for.
        users: usize,
        /// Run time asked for.
        run_time: Duration,
    },
    /// A git command of the commit driver failed.
    #[error("{what}: {detail}")]
    Git {
        /// The command, e.g. `git push -q origin main`.
        what: String,
        /// Its exit status and standard error.
        detail: String,
    },
    /// The git builders API answered with an error, or could not be reached.
    #[error("{method} {url}: {detail}")]
    BuilderApi {
        method: &'static str,
        url: String,
        /// The status and the start of the body, or the client's error.
        detail: String,
    },
    /// A local file operation failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// Read-only discovery could not read what the target serves.
    #[error("discovering the target's corpus: {0}")]
    Discovery(String),
    #[error("{0}")]
    Internal(String),
}
