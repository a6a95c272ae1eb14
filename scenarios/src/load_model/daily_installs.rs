//! The `daily-installs` load model: a corpus, an arrival plan and the sizing of the user pool.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::arrival::ArrivalPlan;
use crate::corpus::CorpusConfig;

/// Longest drain time after the last arrival.
const MAX_DRAIN_MS: u64 = 600_000;

/// Config of the `daily-installs` load model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DailyInstallsConfig {
    /// The packages installed.
    pub corpus: CorpusConfig,
    /// When installs arrive.
    pub arrival: ArrivalPlan,
    /// Expected time of one install, for sizing the user pool by Little's law.
    pub latency_estimate_ms: u64,
    /// An install starting later than this after its scheduled time counts as late.
    pub late_tolerance_ms: u64,
    /// Fixed user count; `None` sizes the pool from the plan.
    pub users: Option<usize>,
    /// Time after the last arrival for installs in flight to finish.
    pub drain_ms: u64,
}

impl Default for DailyInstallsConfig {
    fn default() -> Self {
        DailyInstallsConfig {
            corpus: CorpusConfig::default(),
            arrival: ArrivalPlan::default(),
            latency_estimate_ms: 500,
            late_tolerance_ms: 50,
            users: None,
            drain_ms: 10_000,
        }
    }
}

impl DailyInstallsConfig {
    /// Checks the corpus, the plan and the sizing; returns all problems found, each
    /// prefixed with the part it is about.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Err(corpus) = self.corpus.validate() {
            problems.extend(corpus.into_iter().map(|p| format!("corpus: {p}")));
        }
        if let Err(arrival) = self.arrival.validate() {
            problems.extend(arrival.into_iter().map(|p| format!("arrival: {p}")));
        }
        if self.latency_estimate_ms == 0 {
            problems.push("latency_estimate_ms must be at least 1".to_string());
        }
        if self.users == Some(0) {
            problems.push("users must be at least 1 when given".to_string());
        }
        if self.drain_ms > MAX_DRAIN_MS {
            problems.push(format!(
                "drain_ms must be at most {MAX_DRAIN_MS}, got {}",
                self.drain_ms
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Expected install latency.
    pub fn latency_estimate(&self) -> Duration {
        Duration::from_millis(self.latency_estimate_ms)
    }

    /// Late tolerance.
    pub fn late_tolerance(&self) -> Duration {
        Duration::from_millis(self.late_tolerance_ms)
    }

    /// Users to start: the fixed count, or the plan's Little's-law sizing.
    pub fn users(&self) -> usize {
        self.users
            .unwrap_or_else(|| self.arrival.planned_users(self.latency_estimate()))
    }

    /// Users the plan needs over time (constant when the count is fixed).
    pub fn planned_users_over_time(&self, step: Duration) -> Vec<(Duration, usize)> {
        let points = self.arrival.users_over_time(self.latency_estimate(), step);
        match self.users {
            Some(fixed) => points.into_iter().map(|(at, _)| (at, fixed)).collect(),
            None => points,
        }
    }

    /// The schedule's span plus the drain time.
    pub fn run_time(&self) -> Duration {
        self.arrival.wall_duration() + Duration::from_millis(self.drain_ms)
    }

    /// What the model will do, in a few lines.
    pub fn description(&self) -> String {
        let (python, r) = self.corpus.split();
        let users = match self.users {
            Some(fixed) => format!("{fixed} users (fixed)"),
            None => format!(
                "{} users (Little's law at {} ms per install, ×2 + 10)",
                self.users(),
                self.latency_estimate_ms
            ),
        };
        format!(
            "daily-installs: {arrival}\ncorpus: {python} Python + {r} R packages, Zipf s={zipf}, \
             median {median} B, up to {deps} deps, seed {seed}\npool: {users}; late after {late} ms; \
             run {run:.0} s",
            arrival = self.arrival.describe(),
            zipf = self.corpus.zipf_exponent,
            median = self.corpus.size_median_bytes,
            deps = self.corpus.max_deps,
            seed = self.corpus.seed,
            late = self.late_tolerance_ms,
            run = self.run_time().as_secs_f64(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_model::LoadModel;

    #[test]
    fn default_is_valid_and_described() {
        let model = LoadModel::DailyInstalls(DailyInstallsConfig::default());
        assert!(model.validate().is_ok());
        let text = model.description();
        assert!(text.contains("1000000 installs/day"), "{text}");
        assert!(text.contains("100 Python + 100 R"), "{text}");
        assert_eq!(model.run_time(), Duration::from_secs(310));
        assert!(model.max_users() > 10);
    }

    #[test]
    fn validate_collects_problems_from_every_part() {
        let config = DailyInstallsConfig {
            corpus: CorpusConfig {
                packages: 0,
                zipf_exponent: -1.0,
                ..CorpusConfig::default()
            },
            arrival: ArrivalPlan {
                compression: 0.0,
                ..ArrivalPlan::default()
            },
            latency_estimate_ms: 0,
            users: Some(0),
            drain_ms: 10_000_000,
            ..DailyInstallsConfig::default()
        };
        let problems = LoadModel::DailyInstalls(config).validate().unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert_eq!(
            problems
                .iter()
                .filter(|p| p.starts_with("corpus: "))
                .count(),
            2
        );
        assert_eq!(
            problems
                .iter()
                .filter(|p| p.starts_with("arrival: "))
                .count(),
            1
        );
    }

    #[test]
    fn users_follow_the_plan_unless_fixed() {
        let mut config = DailyInstallsConfig::default();
        let planned = config.arrival.planned_users(config.latency_estimate());
        assert_eq!(config.users(), planned);
        let over_time = config.planned_users_over_time(Duration::from_secs(60));
        assert_eq!(over_time.len(), 6);
        assert!(over_time.iter().all(|(_, u)| *u <= planned));
        config.users = Some(7);
        assert_eq!(config.users(), 7);
        assert!(
            config
                .planned_users_over_time(Duration::from_secs(60))
                .iter()
                .all(|(_, u)| *u == 7)
        );
    }

    #[test]
    fn round_trips_through_json_with_its_tag() {
        let model = LoadModel::DailyInstalls(DailyInstallsConfig::default());
        let json = serde_json::to_string(&model).unwrap();
        assert!(json.contains("\"model\":\"daily-installs\""), "{json}");
        let back: LoadModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, model);
    }
}
