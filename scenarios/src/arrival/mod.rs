//! Open-model arrivals for a closed-model engine: an [`ArrivalPlan`] (installs per day, the
//! diurnal curve, a window of the day and a time compression) becomes a deterministic
//! [`Schedule`] of install times that goose users draw from.

mod curve;
mod schedule;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

use crate::corpus::Corpus;

pub use curve::{DiurnalCurve, MAX_PEAK_TO_MEAN};
pub use schedule::{Arrival, Schedule};

/// Most arrivals one schedule may draw (they are drawn as they are due, not stored; the bound
/// keeps one run within a day of drawing at a realistic rate).
pub const MAX_ARRIVALS: f64 = 200_000_000.0;

/// Most goose users [`ArrivalPlan::planned_users`] asks for.
pub const MAX_PLANNED_USERS: usize = 5_000;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// When installs arrive.
///
/// Simulated time runs from `window_start_hour` for `window_hours`; `compression` simulated
/// seconds pass per wall-clock second, so the run lasts `window_hours * 3600 / compression`
/// wall seconds and every rate is multiplied by `compression`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArrivalPlan {
    /// Installs over a whole simulated day (the curve's mean rate × 86 400 s).
    pub installs_per_day: f64,
    /// The shape of the day.
    pub curve: DiurnalCurve,
    /// Simulated seconds per wall-clock second: 1 replays in real time, 288 plays a day in
    /// five minutes.
    pub compression: f64,
    /// Simulated hour of day (UTC) the run starts at.
    pub window_start_hour: f64,
    /// Simulated hours the run covers.
    pub window_hours: f64,
    /// Seed of the arrival process and the package draws.
    pub seed: u64,
}

impl Default for ArrivalPlan {
    fn default() -> Self {
        ArrivalPlan::peak_hour(1_000_000.0, Duration::from_secs(300))
    }
}

impl ArrivalPlan {
    /// Replays, in real time, `duration` of the day centred on the curve's peak: the busiest
    /// stretch the cluster must hold.
    pub fn peak_hour(installs_per_day: f64, duration: Duration) -> Self {
        let curve = DiurnalCurve::default();
        let window_hours = duration.as_secs_f64() / 3600.0;
        ArrivalPlan {
            installs_per_day,
            window_start_hour: (curve.peak_hour_utc - window_hours / 2.0).rem_euclid(24.0),
            curve,
            compression: 1.0,
            window_hours,
            seed: 1,
        }
    }

    /// Plays the whole day, compressed into `duration` of wall time.
    pub fn whole_day(installs_per_day: f64, duration: Duration) -> Self {
        ArrivalPlan {
            installs_per_day,
            curve: DiurnalCurve::default(),
            compression: SECONDS_PER_DAY / duration.as_secs_f64(),
            window_start_hour: 0.0,
            window_hours: 24.0,
            seed: 1,
        }
    }

    /// Checks every field; returns all problems found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        // Zero is allowed: a run with no installs, whose checkers can only answer unknown.
        if !(self.installs_per_day.is_finite() && self.installs_per_day >= 0.0) {
            problems.push(format!(
                "installs_per_day must be a number ≥ 0, got {}",
                self.installs_per_day
            ));
        }
        if let Err(curve) = self.curve.validate() {
            problems.extend(curve.into_iter().map(|p| format!("curve: {p}")));
        }
        if !(self.compression.is_finite() && self.compression > 0.0) {
            problems.push(format!(
                "compression must be a positive number (simulated seconds per wall second), got {}",
                self.compression
            ));
        }
        if !(self.window_start_hour >= 0.0 && self.window_start_hour < 24.0) {
            problems.push(format!(
                "window_start_hour must be in [0, 24), got {}",
                self.window_start_hour
            ));
        }
        if !(self.window_hours.is_finite() && self.window_hours > 0.0 && self.window_hours <= 168.0)
        {
            problems.push(format!(
                "window_hours must be more than 0 and at most 168 (a week), got {}",
                self.window_hours
            ));
        }
        if problems.is_empty() {
            let bound = self.installs_per_day * self.window_hours / 24.0 * self.curve.peak_to_mean;
            if bound > MAX_ARRIVALS {
                problems.push(format!(
                    "the plan may schedule up to {bound:.0} installs, more than {MAX_ARRIVALS:.0}: \
                     shorten the window or lower installs_per_day"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Wall-clock time the schedule spans.
    pub fn wall_duration(&self) -> Duration {
        Duration::from_secs_f64((self.window_hours * 3600.0 / self.compression).max(0.0))
    }

    /// Simulated hour of day at `wall` into the run.
    pub fn hour_at(&self, wall: Duration) -> f64 {
        (self.window_start_hour + wall.as_secs_f64() * self.compression / 3600.0).rem_euclid(24.0)
    }

    /// Target install rate (per wall second) at `wall` into the run.
    pub fn rate_per_s_at(&self, wall: Duration) -> f64 {
        self.base_rate_per_s() * self.curve.rate_at(self.hour_at(wall))
    }

    /// The highest target rate (per wall second) within the window.
    pub fn expected_peak_rate_per_s(&self) -> f64 {
        self.base_rate_per_s() * self.peak_multiplier()
    }

    /// Installs the plan is expected to schedule (the integral of the rate over the window).
    pub fn expected_installs(&self) -> f64 {
        let shape = self.curve.shape();
        let steps = ((self.window_hours * 60.0).ceil() as usize).max(1_000);
        let dh = self.window_hours / steps as f64;
        // Midpoint rule over simulated hours: installs = per_day / 24 × ∫ rate(h) dh.
        let integral: f64 = (0..steps)
            .map(|i| shape.rate_at(self.window_start_hour + (i as f64 + 0.5) * dh) * dh)
            .sum();
        self.installs_per_day / 24.0 * integral
    }

    /// goose users needed at the peak: Little's law (rate × latency) doubled for headroom,
    /// plus 10, at most [`MAX_PLANNED_USERS`].
    pub fn planned_users(&self, latency_estimate: Duration) -> usize {
        users_for(self.expected_peak_rate_per_s(), latency_estimate)
    }

    /// Users needed over the run, one point per `step` of wall time, by the same rule as
    /// [`planned_users`](Self::planned_users).
    pub fn users_over_time(
        &self,
        latency_estimate: Duration,
        step: Duration,
    ) -> Vec<(Duration, usize)> {
        let total = self.wall_duration();
        let step = step.max(Duration::from_millis(1));
        let mut points = Vec::new();
        let mut at = Duration::ZERO;
        while at <= total {
            points.push((at, users_for(self.rate_per_s_at(at), latency_estimate)));
            at += step;
        }
        points
    }

    /// One line a user can check the plan by.
    pub fn describe(&self) -> String {
        let end = self.window_start_hour + self.window_hours;
        format!(
            "{installs:.0} installs/day, diurnal peak/mean {ptm:.2} at {peak} UTC; simulated \
             {start}–{end} UTC ({hours:.2} h) played in {wall:.0} s of wall time ({compression:.1}× \
             compression): about {expected:.0} installs, peak {rate:.1}/s",
            installs = self.installs_per_day,
            ptm = self.curve.peak_to_mean,
            peak = clock(self.curve.peak_hour_utc),
            start = clock(self.window_start_hour),
            end = clock(end),
            hours = self.window_hours,
            wall = self.wall_duration().as_secs_f64(),
            compression = self.compression,
            expected = self.expected_installs(),
            rate = self.expected_peak_rate_per_s(),
        )
    }

    /// The schedule: a non-homogeneous Poisson process by thinning, each install's package by
    /// the corpus's ecosystem share and Zipf popularity. Deterministic for a seed. Arrivals are
    /// drawn as users take them (the schedule keeps a copy of the corpus and the plan, not the
    /// arrivals), so its memory does not grow with the run's length.
    pub fn schedule(&self, corpus: &Corpus) -> Schedule {
        let plan = self.clone();
        let corpus = std::sync::Arc::new(corpus.clone());
        Schedule::drawn(
            std::sync::Arc::new(move || Box::new(plan.draws(std::sync::Arc::clone(&corpus)))),
            self.wall_duration(),
        )
    }

    /// Every arrival of the plan, in time order, drawn one at a time.
    fn draws(
        &self,
        corpus: std::sync::Arc<Corpus>,
    ) -> impl Iterator<Item = Arrival> + Send + use<> {
        let end = self.wall_duration().as_secs_f64();
        let peak = self.expected_peak_rate_per_s();
        let live = !corpus.is_empty() && peak.is_finite() && peak > 0.0;
        let shape = self.curve.shape();
        let base = self.base_rate_per_s();
        let gaps = Exp::new(if live { peak } else { 1.0 }).expect("the rate is positive");
        let mut timing = StdRng::seed_from_u64(self.seed);
        // Packages from their own stream, so the times do not depend on the corpus.
        let mut picks = StdRng::seed_from_u64(self.seed ^ 0xA11C_E5ED);
        let (start_hour, compression) = (self.window_start_hour, self.compression);
        let mut t = 0.0;
        let mut seq = 0;
        std::iter::from_fn(move || {
            if !live {
                return None;
            }
            loop {
                t += gaps.sample(&mut timing);
                if t >= end {
                    return None;
                }
                let hour = start_hour + t * compression / 3600.0;
                let accept = base * shape.rate_at(hour) / peak;
                if timing.gen_bool(accept.clamp(0.0, 1.0)) {
                    let arrival = Arrival {
                        seq,
                        offset: Duration::from_secs_f64(t),
                        package: corpus.sample_install(&mut picks),
                    };
                    seq += 1;
                    return Some(arrival);
                }
            }
        })
    }

    /// The mean rate (multiplier 1) in installs per wall second.
    fn base_rate_per_s(&self) -> f64 {
        self.installs_per_day / SECONDS_PER_DAY * self.compression
    }

    /// The largest curve multiplier inside the window: the curve is unimodal on the circle,
    /// so it is the peak when the window holds it, else the window end nearer the peak.
    fn peak_multiplier(&self) -> f64 {
        let peak = self.curve.peak_hour_utc;
        let from_start = (peak - self.window_start_hour).rem_euclid(24.0);
        if self.window_hours >= 24.0 || from_start <= self.window_hours {
            self.curve.rate_at(peak)
        } else {
            let start = self.curve.rate_at(self.window_start_hour);
            let end = self
                .curve
                .rate_at(self.window_start_hour + self.window_hours);
            start.max(end)
        }
    }
}

fn users_for(rate_per_s: f64, latency_estimate: Duration) -> usize {
    let in_flight = rate_per_s * latency_estimate.as_secs_f64();
    let users = (in_flight * 2.0).ceil() + 10.0;
    if users.is_finite() {
        (users as usize).min(MAX_PLANNED_USERS)
    } else {
        MAX_PLANNED_USERS
    }
}

/// `13.5` → `13:30`, taken modulo 24.
fn clock(hour: f64) -> String {
    let minutes = (hour.rem_euclid(24.0) * 60.0).round() as u64 % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests;
