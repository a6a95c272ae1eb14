//! What can end a run, and the exit code each means.

use crate::infra::InfraError;

/// Exit codes: a CI gate reads these.
pub mod exit {
    /// Every threshold passed.
    pub const PASS: u8 = 0;
    /// The run completed and a threshold failed or a checker found the history invalid.
    pub const THRESHOLD_FAILED: u8 = 1;
    /// Bad arguments or configuration (clap uses the same code for usage errors).
    pub const USAGE: u8 = 2;
    /// The infrastructure could not be started or broke down.
    pub const INFRASTRUCTURE: u8 = 3;
    /// Anything else: a bug, an unreadable run record.
    pub const ERROR: u8 = 4;
    /// The run completed but could not decide: a checker's verdict is unknown (e.g. a fault
    /// could not be injected, or a node could not be read back), and nothing failed.
    pub const UNKNOWN: u8 = 5;
    /// Interrupted by Ctrl-C (after teardown).
    pub const INTERRUPTED: u8 = 130;

    /// The exit code of a verdict: 0 pass, 1 failed (a threshold, an invalid history or
    /// rule), 5 unknown and nothing failed.
    pub fn of(verdict: reports::Verdict) -> u8 {
        match verdict {
            reports::Verdict::Pass => PASS,
            reports::Verdict::Fail => THRESHOLD_FAILED,
            reports::Verdict::Unknown => UNKNOWN,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    #[error("infrastructure: {0}")]
    Infra(#[from] InfraError),
    #[error("the target deployment: {0}")]
    Target(String),
    #[error("scenario: {0}")]
    Scenario(#[from] scenarios::ScenarioError),
    #[error("report: {0}")]
    Report(#[from] reports::ReportError),
    #[error("interrupted; everything started was torn down")]
    Interrupted,
    /// The run could not be judged at all: no verdict either way (exit 5), never a pass.
    #[error("undecided: {0}")]
    Undecided(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl HarnessError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => exit::USAGE,
            Self::Infra(_) | Self::Target(_) => exit::INFRASTRUCTURE,
            Self::Interrupted => exit::INTERRUPTED,
            Self::Undecided(_) => exit::UNKNOWN,
            Self::Scenario(scenarios::ScenarioError::InvalidConfig { .. }) => exit::USAGE,
            Self::Scenario(_) | Self::Report(_) | Self::Io(_) | Self::Internal(_) => exit::ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecided_run_exits_5_never_0() {
        let error = HarnessError::Undecided("the HTTP client could not be built: no TLS".into());
        assert_eq!(error.exit_code(), exit::UNKNOWN);
        assert!(error.to_string().contains("could not be built"));
    }
}
