//! Load models in k6's manner: a closed enum of configs, each able to validate itself
//! (returning *all* problems), describe itself and say how many users it plans over time.

mod daily_installs;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ScenarioError;

pub use daily_installs::DailyInstallsConfig;

/// Every load model the harness can run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case")]
pub enum LoadModel {
    /// Package installs arriving on a diurnal curve (`daily-installs`).
    DailyInstalls(DailyInstallsConfig),
}

impl LoadModel {
    /// The model's name as users type it.
    pub fn name(&self) -> &'static str {
        match self {
            LoadModel::DailyInstalls(_) => "daily-installs",
        }
    }

    /// Checks the whole config; returns all problems found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        match self {
            LoadModel::DailyInstalls(config) => config.validate(),
        }
    }

    /// [`validate`](Self::validate) as a typed error.
    pub fn check(&self) -> Result<(), ScenarioError> {
        self.validate()
            .map_err(|problems| ScenarioError::InvalidConfig {
                what: self.name(),
                problems,
            })
    }

    /// A human description of what the model will do.
    pub fn description(&self) -> String {
        match self {
            LoadModel::DailyInstalls(config) => config.description(),
        }
    }

    /// Users the model needs at each `step` of the run.
    pub fn planned_users_over_time(&self, step: Duration) -> Vec<(Duration, usize)> {
        match self {
            LoadModel::DailyInstalls(config) => config.planned_users_over_time(step),
        }
    }

    /// Users to start: the most the model needs at any time.
    pub fn max_users(&self) -> usize {
        match self {
            LoadModel::DailyInstalls(config) => config.users(),
        }
    }

    /// How long the load generator should run, drain included.
    pub fn run_time(&self) -> Duration {
        match self {
            LoadModel::DailyInstalls(config) => config.run_time(),
        }
    }
}
