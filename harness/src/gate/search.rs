//! The capacity search: bisection on a log scale between a lower and an upper bound, where a
//! rate counts as held only when it holds the SLO `confirmations` times in a row and a single
//! failure marks it failed (the noise of a shared machine may fail a good rate, which only
//! makes the figure conservative, but cannot pass a bad one by luck). A pure state machine:
//! [`Search::next`] says which rate to run, [`Search::record`] takes the outcome.

use reports::gate::{Capacity, CapacityBound, StepPurpose};

/// How the search runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchConfig {
    /// Lower bound, installs per day.
    pub min_per_day: f64,
    /// Upper bound, installs per day.
    pub max_per_day: f64,
    /// Stop when the lowest failed rate is within this fraction above the highest held one.
    pub resolution: f64,
    /// Passes in a row before a rate counts as held.
    pub confirmations: u32,
    /// At most this many steps, whatever the bracket.
    pub max_steps: usize,
}

impl SearchConfig {
    /// Every problem with the configuration.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.min_per_day.is_finite() && self.min_per_day > 0.0) {
            problems.push(format!(
                "--min must be a positive rate, not {}",
                self.min_per_day
            ));
        }
        if !(self.max_per_day.is_finite() && self.max_per_day > self.min_per_day) {
            problems.push(format!(
                "--max ({}) must be above --min ({})",
                self.max_per_day, self.min_per_day
            ));
        }
        if !(self.resolution > 0.0 && self.resolution < 1.0) {
            problems.push(format!(
                "--resolution must lie between 0 and 100%, not {}",
                self.resolution
            ));
        }
        if self.confirmations == 0 {
            problems.push("a rate must hold at least once".into());
        }
        if self.max_steps < 2 * self.confirmations as usize + 1 {
            problems.push(format!(
                "--max-steps {} cannot confirm both bounds ({} steps at least)",
                self.max_steps,
                2 * self.confirmations + 1
            ));
        }
        problems
    }
}

/// A rate to run next, and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    pub per_day: f64,
    pub purpose: StepPurpose,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    per_day: f64,
    purpose: StepPurpose,
    passes: u32,
}

/// The search's state.
#[derive(Clone, Debug)]
pub struct Search {
    config: SearchConfig,
    /// The highest confirmed rate.
    held: Option<f64>,
    /// The lowest failed rate.
    failed: Option<f64>,
    pending: Option<Pending>,
    steps: usize,
}

impl Search {
    /// A search that starts at the lower bound.
    pub fn new(config: SearchConfig) -> Self {
        Search {
            config,
            held: None,
            failed: None,
            pending: Some(Pending {
                per_day: config.min_per_day,
                purpose: StepPurpose::Lower,
                passes: 0,
            }),
            steps: 0,
        }
    }

    /// The rate to run next; `None` when the search is over.
    pub fn next(&self) -> Option<Probe> {
        if self.steps >= self.config.max_steps {
            return None;
        }
        self.pending.map(|p| Probe {
            per_day: p.per_day,
            purpose: if p.passes == 0 {
                p.purpose
            } else {
                StepPurpose::Confirm
            },
        })
    }

    /// The outcome of the rate [`next`](Self::next) returned.
    pub fn record(&mut self, passed: bool) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        self.steps += 1;
        if passed {
            pending.passes += 1;
            if pending.passes < self.config.confirmations {
                self.pending = Some(pending);
                return;
            }
            self.held = Some(
                self.held
                    .map_or(pending.per_day, |h| h.max(pending.per_day)),
            );
        } else {
            self.failed = Some(
                self.failed
                    .map_or(pending.per_day, |f| f.min(pending.per_day)),
            );
        }
        self.pending = self.choose();
    }

    /// The next rate to try once the last one is decided.
    fn choose(&self) -> Option<Pending> {
        let pending = |per_day, purpose| {
            Some(Pending {
                per_day,
                purpose,
                passes: 0,
            })
        };
        match (self.held, self.failed) {
            (None, None) => pending(self.config.min_per_day, StepPurpose::Lower),
            // The lower bound failed: nothing below it is searched.
            (None, Some(_)) => None,
            (Some(held), None) if held >= self.config.max_per_day => None,
            (Some(_), None) => pending(self.config.max_per_day, StepPurpose::Upper),
            (Some(held), Some(failed)) => {
                if failed <= held * (1.0 + self.config.resolution) {
                    return None;
                }
                pending(midpoint(held, failed), StepPurpose::Probe)
            }
        }
    }

    /// Steps run so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The search stopped on its step budget before the bracket closed.
    pub fn out_of_steps(&self) -> bool {
        self.pending.is_some() && self.steps >= self.config.max_steps
    }

    /// What the search found so far.
    pub fn capacity(&self) -> Capacity {
        let bound = match (self.held, self.failed) {
            (None, _) => CapacityBound::BelowMin,
            (Some(h), None) if h >= self.config.max_per_day => CapacityBound::AtLeastMax,
            _ => CapacityBound::Between,
        };
        Capacity {
            per_day: self.held,
            lowest_failed_per_day: self.failed,
            bound,
        }
    }
}

/// The geometric middle of `lo` and `hi`, rounded to a thousand installs a day when that
/// stays strictly inside.
fn midpoint(lo: f64, hi: f64) -> f64 {
    let mid = (lo * hi).sqrt();
    let rounded = (mid / 1000.0).round() * 1000.0;
    if rounded > lo && rounded < hi {
        rounded
    } else {
        mid
    }
}

/// Runs the whole search against `holds` (rate → held?), for tests and dry runs; returns the
/// capacity and every step as (rate, purpose, held).
pub fn search_with(
    config: SearchConfig,
    mut holds: impl FnMut(f64) -> bool,
) -> (Capacity, Vec<(f64, StepPurpose, bool)>) {
    let mut search = Search::new(config);
    let mut steps = Vec::new();
    while let Some(probe) = search.next() {
        let held = holds(probe.per_day);
        steps.push((probe.per_day, probe.purpose, held));
        search.record(held);
    }
    (search.capacity(), steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SearchConfig {
        SearchConfig {
            min_per_day: 250_000.0,
            max_per_day: 8_000_000.0,
            resolution: 0.1,
            confirmations: 2,
            max_steps: 40,
        }
    }

    #[test]
    fn finds_the_capacity_of_a_cluster_within_the_resolution() {
        for true_capacity in [300_000.0, 1_000_000.0, 2_345_678.0, 7_900_000.0] {
            let (capacity, steps) = search_with(config(), |r| r <= true_capacity);
            let held = capacity.per_day.expect("the lower bound holds");
            let failed = capacity
                .lowest_failed_per_day
                .expect("the upper bound fails");
            assert_eq!(capacity.bound, CapacityBound::Between);
            assert!(held <= true_capacity && failed > true_capacity);
            assert!(failed <= held * 1.1, "{held} .. {failed}");
            // Every held rate ran twice in a row; every failed one once.
            for (rate, _, ok) in &steps {
                let runs = steps.iter().filter(|s| s.0 == *rate).count();
                assert_eq!(runs, if *ok { 2 } else { 1 }, "{rate}: {steps:?}");
            }
            assert!(steps.len() <= 20, "{} steps", steps.len());
        }
    }

    #[test]
    fn one_failure_in_two_fails_a_rate_so_noise_cannot_pass_it() {
        // 3M/d passes its first try and fails its confirmation: it is not held.
        let mut tries = std::collections::HashMap::<u64, u32>::new();
        let (capacity, steps) = search_with(config(), |r| {
            let n = tries.entry(r as u64).or_default();
            *n += 1;
            if r > 3_000_000.0 { *n == 1 } else { true }
        });
        assert!(capacity.per_day.unwrap() <= 3_000_000.0, "{steps:?}");
        assert!(
            steps.iter().any(|s| s.1 == StepPurpose::Confirm && !s.2),
            "a confirmation failed: {steps:?}"
        );
    }

    #[test]
    fn bounds_that_hold_or_fail_end_the_search_at_once() {
        let (capacity, steps) = search_with(config(), |_| true);
        assert_eq!(capacity.bound, CapacityBound::AtLeastMax);
        assert_eq!(capacity.per_day, Some(8_000_000.0));
        assert_eq!(steps.len(), 4, "{steps:?}");

        let (capacity, steps) = search_with(config(), |_| false);
        assert_eq!(capacity.bound, CapacityBound::BelowMin);
        assert_eq!(capacity.per_day, None);
        assert_eq!(steps, vec![(250_000.0, StepPurpose::Lower, false)]);
    }

    #[test]
    fn the_step_budget_stops_the_search() {
        let mut c = config();
        c.max_steps = 6;
        let mut search = Search::new(c);
        while search.next().is_some() {
            search.record(search.steps() < 3);
        }
        assert_eq!(search.steps(), 6);
        assert!(search.out_of_steps());
        assert_eq!(search.capacity().bound, CapacityBound::Between);
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let c = SearchConfig {
            min_per_day: 0.0,
            max_per_day: -1.0,
            resolution: 2.0,
            confirmations: 0,
            max_steps: 0,
        };
        assert_eq!(c.validate().len(), 5, "{:?}", c.validate());
        assert!(config().validate().is_empty());
    }
}
