//! The diurnal shape of install traffic: a smooth 24-hour curve with mean 1, a chosen
//! peak-to-mean ratio and a peak hour.
//!
//! A raised cosine `1 + a·cos` cannot exceed a peak-to-mean of 2 without going negative, so
//! the shape is the von Mises curve `exp(κ·cos θ) / I₀(κ)`: mean exactly 1 over the day,
//! positive everywhere, unimodal, and any peak-to-mean ≥ 1 is reached by one `κ`.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// Largest peak-to-mean ratio accepted: beyond it the day is one spike, not a curve.
pub const MAX_PEAK_TO_MEAN: f64 = 10.0;

/// Install-rate multiplier over the hours of a day (UTC).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiurnalCurve {
    /// Rate at the peak divided by the day's mean rate; 1 is a flat day.
    pub peak_to_mean: f64,
    /// Hour of day (UTC, may be fractional) of the peak.
    pub peak_hour_utc: f64,
}

impl Default for DiurnalCurve {
    fn default() -> Self {
        DiurnalCurve {
            peak_to_mean: 2.5,
            peak_hour_utc: 14.0,
        }
    }
}

impl DiurnalCurve {
    /// A flat day: every hour at the mean rate.
    pub fn flat() -> Self {
        DiurnalCurve {
            peak_to_mean: 1.0,
            ..DiurnalCurve::default()
        }
    }

    /// Checks every field; returns all problems found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(self.peak_to_mean >= 1.0 && self.peak_to_mean <= MAX_PEAK_TO_MEAN) {
            problems.push(format!(
                "peak_to_mean must be between 1 and {MAX_PEAK_TO_MEAN}, got {}",
                self.peak_to_mean
            ));
        }
        if !(self.peak_hour_utc >= 0.0 && self.peak_hour_utc < 24.0) {
            problems.push(format!(
                "peak_hour_utc must be in [0, 24), got {}",
                self.peak_hour_utc
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The rate multiplier at `hour_of_day` (any real number; taken modulo 24).
    pub fn rate_at(&self, hour_of_day: f64) -> f64 {
        self.shape().rate_at(hour_of_day)
    }

    /// The lowest multiplier of the day, opposite the peak.
    pub fn trough(&self) -> f64 {
        self.rate_at(self.peak_hour_utc + 12.0)
    }

    /// The curve with its constants solved once, for evaluating many times.
    pub(crate) fn shape(&self) -> Shape {
        let kappa = kappa_for(self.peak_to_mean.clamp(1.0, MAX_PEAK_TO_MEAN));
        Shape {
            kappa,
            inv_i0: 1.0 / bessel_i0(kappa),
            peak_hour: self.peak_hour_utc,
        }
    }
}

/// A [`DiurnalCurve`] ready to evaluate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    kappa: f64,
    inv_i0: f64,
    peak_hour: f64,
}

impl Shape {
    pub(crate) fn rate_at(&self, hour_of_day: f64) -> f64 {
        let theta = 2.0 * PI * (hour_of_day - self.peak_hour) / 24.0;
        (self.kappa * theta.cos()).exp() * self.inv_i0
    }
}

/// Modified Bessel function of the first kind, order 0, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let quarter_x2 = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..200 {
        term *= quarter_x2 / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// The κ whose von Mises peak-to-mean `e^κ / I₀(κ)` is `peak_to_mean` (monotone in κ).
fn kappa_for(peak_to_mean: f64) -> f64 {
    let ratio = |k: f64| k.exp() / bessel_i0(k);
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while ratio(hi) < peak_to_mean {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if ratio(mid) < peak_to_mean {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_over_day(curve: &DiurnalCurve) -> f64 {
        let steps = 24 * 600;
        (0..steps)
            .map(|i| curve.rate_at(i as f64 * 24.0 / steps as f64))
            .sum::<f64>()
            / steps as f64
    }

    #[test]
    fn mean_is_one_and_peak_is_as_asked() {
        for peak_to_mean in [1.0, 1.5, 2.5, 4.0, 10.0] {
            let curve = DiurnalCurve {
                peak_to_mean,
                peak_hour_utc: 14.0,
            };
            assert!((mean_over_day(&curve) - 1.0).abs() < 1e-6, "{peak_to_mean}");
            assert!((curve.rate_at(14.0) - peak_to_mean).abs() < 1e-6);
            let max = (0..2400)
                .map(|i| curve.rate_at(i as f64 / 100.0))
                .fold(0.0, f64::max);
            assert!((max - peak_to_mean).abs() < 1e-6);
            assert!(curve.trough() > 0.0);
        }
    }

    #[test]
    fn shape_is_smooth_periodic_and_peaks_in_the_afternoon() {
        let curve = DiurnalCurve::default();
        assert!((curve.rate_at(2.0) - curve.rate_at(26.0)).abs() < 1e-12);
        assert!(curve.rate_at(14.0) > curve.rate_at(10.0));
        assert!(curve.rate_at(10.0) > curve.rate_at(2.0));
        assert!((curve.rate_at(12.0) - curve.rate_at(16.0)).abs() < 1e-12);
        assert!((DiurnalCurve::flat().rate_at(3.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn validate_lists_all_problems() {
        let curve = DiurnalCurve {
            peak_to_mean: 0.5,
            peak_hour_utc: 25.0,
        };
        assert_eq!(curve.validate().unwrap_err().len(), 2);
        assert!(DiurnalCurve::default().validate().is_ok());
    }
}
