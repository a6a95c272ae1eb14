//! Availability through faults: installs that failed inside each fault window (and a short
//! grace after its heal), the time until the success rate is back at 99 % of the schedule,
//! and the time from the fault to the first acknowledged upload.
//!
//! Minimum evidence: a window in which fewer than `min_installs_per_window` installs were
//! scheduled proves nothing about availability through it, so the checker answers *unknown*
//! (unless another window already shows a violation: invalid outranks unknown).

use reports::metrics::Metrics;
use reports::record::{CheckerResult, Event, EventKind, Validity};
use scenarios::writes::{LedgerEntry, WriteOutcome};
use serde::Serialize;
use serde_json::json;

/// The checker's name in the run record.
pub const NAME: &str = "availability";
/// The request kind counted as installs.
pub use reports::kinds::INSTALL_KIND;
/// Seconds after a heal still charged to the fault (connections it broke, checks catching up).
pub const GRACE_S: f64 = 5.0;

/// What the run must hold through its faults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AvailabilityLimits {
    /// Failed installs allowed inside all fault windows together.
    pub max_failed_installs: u64,
    /// Longest time from a fault to the first acknowledged upload; `None`: not judged.
    pub max_write_gap_s: Option<f64>,
    /// Installs that must be scheduled inside each fault window for it to count as evidence;
    /// below it the checker says unknown (`--min-installs-per-window`).
    pub min_installs_per_window: u64,
}

/// The default of `--min-installs-per-window`.
pub const DEFAULT_MIN_INSTALLS_PER_WINDOW: u64 = 20;

impl Default for AvailabilityLimits {
    fn default() -> Self {
        AvailabilityLimits {
            max_failed_installs: 0,
            max_write_gap_s: Some(10.0),
            min_installs_per_window: DEFAULT_MIN_INSTALLS_PER_WINDOW,
        }
    }
}

/// The first upload invoked at or after `from_s` that was acknowledged (by completion time):
/// when writes worked again after a fault began.
pub fn first_write_after(ledger: &[LedgerEntry], from_s: f64) -> Option<&LedgerEntry> {
    ledger
        .iter()
        .filter(|e| e.outcome == WriteOutcome::Ok && e.invoked_s >= from_s)
        .min_by(|a, b| a.completed_s.total_cmp(&b.completed_s))
}

/// Judges each fault window of `events` over `metrics` and `ledger`.
pub fn check(
    metrics: &Metrics,
    events: &[Event],
    ledger: &[LedgerEntry],
    limits: AvailabilityLimits,
) -> CheckerResult {
    let windows: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == EventKind::Fault && e.end_s.is_some())
        .collect();
    if windows.is_empty() {
        return CheckerResult {
            name: NAME.into(),
            validity: Validity::Unknown,
            summary: "no fault window was recorded, so availability through faults is undecided"
                .into(),
            evidence: json!({}),
        };
    }
    let installs = metrics.kinds.get(INSTALL_KIND);
    let width = metrics.bucket_width_s();
    let mut per_fault = Vec::new();
    let mut failed_total = 0;
    let mut worst_gap: Option<f64> = None;
    let mut unwritten = Vec::new();
    let mut thin = Vec::new();
    for window in &windows {
        let (from, to) = (window.at_s, window.end_s.unwrap_or(window.at_s) + GRACE_S);
        let healed = window.end_s.unwrap_or(window.at_s);
        let mut failed = 0;
        let mut scheduled = 0;
        let mut errors = std::collections::BTreeMap::<String, u64>::new();
        let mut recovered_after_s = None;
        if let Some(kind) = installs {
            for (i, bucket) in kind.buckets.iter().enumerate() {
                let start = metrics.bucket_start_s(i);
                // Evidence: installs due while the fault held (the grace is not the fault).
                if start + width > from && start < healed {
                    scheduled += bucket.scheduled;
                }
                if start + width > from && start < to {
                    failed += bucket.err;
                    for (error, n) in &bucket.errors {
                        *errors.entry(error.clone()).or_default() += n;
                    }
                }
                if recovered_after_s.is_none()
                    && start >= healed
                    && bucket.scheduled > 0
                    && bucket.ok as f64 >= 0.99 * bucket.scheduled as f64
                {
                    recovered_after_s = Some(start - healed);
                }
            }
        }
        failed_total += failed;
        if scheduled < limits.min_installs_per_window {
            thin.push(format!(
                "{} ({scheduled} installs scheduled)",
                window.message
            ));
        }
        let first_write = first_write_after(ledger, from).map(|e| e.completed_s);
        let writes_after = ledger.iter().any(|e| e.invoked_s >= from);
        let gap = first_write.map(|t| t - from);
        if let Some(gap) = gap {
            worst_gap = Some(worst_gap.map_or(gap, |w: f64| w.max(gap)));
        } else if writes_after {
            unwritten.push(window.message.clone());
        }
        per_fault.push(json!({
            "fault": window.message,
            "from_s": window.at_s,
            "healed_s": window.end_s,
            "scheduled_installs": scheduled,
            "failed_installs": failed,
            "errors": errors,
            "recovered_after_heal_s": recovered_after_s,
            "first_write_ok_after_s": gap,
        }));
    }
    let mut problems = Vec::new();
    if failed_total > limits.max_failed_installs {
        problems.push(format!(
            "{failed_total} installs failed during faults (allowed {})",
            limits.max_failed_installs
        ));
    }
    if let (Some(limit), Some(gap)) = (limits.max_write_gap_s, worst_gap)
        && gap > limit
    {
        problems.push(format!("writes stopped for {gap:.1} s (allowed {limit} s)"));
    }
    if !unwritten.is_empty() && limits.max_write_gap_s.is_some() {
        problems.push(format!(
            "no upload was acknowledged after {} fault(s)",
            unwritten.len()
        ));
    }
    let gap_text = worst_gap.map_or("no write measured".into(), |g| {
        format!("first write ok {g:.1} s after the fault")
    });
    let (validity, summary) = if !problems.is_empty() {
        (Validity::Invalid, problems.join("; "))
    } else if !thin.is_empty() {
        (
            Validity::Unknown,
            format!(
                "too little load to judge: fewer than {} installs were scheduled in {}",
                limits.min_installs_per_window,
                thin.join(", ")
            ),
        )
    } else {
        (
            Validity::Valid,
            format!(
                "{} fault(s): {failed_total} failed installs; {gap_text}",
                windows.len()
            ),
        )
    };
    CheckerResult {
        name: NAME.into(),
        validity,
        summary,
        evidence: json!({
            "limits": limits,
            "failed_installs": failed_total,
            "worst_write_gap_s": worst_gap,
            "faults": per_fault,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// 60 s of `per_s` installs a second; the first install of each second in `fail_at_s`
    /// fails.
    fn metrics_at(per_s: u64, fail_at_s: &[u64]) -> Metrics {
        let start = Instant::now();
        let recorder = reports::Recorder::new(start, Duration::from_secs(1));
        for s in 0..60u64 {
            for i in 0..per_s {
                let due = start + Duration::from_secs(s) + Duration::from_millis(i * 1000 / per_s);
                recorder.scheduled(INSTALL_KIND, due);
                let outcome = if i == 0 && fail_at_s.contains(&s) {
                    reports::Outcome::Error("connect".into())
                } else {
                    reports::Outcome::Ok
                };
                recorder.record(INSTALL_KIND, due, due + Duration::from_millis(5), outcome);
            }
        }
        recorder.finish()
    }

    /// Three installs a second: 30 in a 10 s window, above the default minimum of 20.
    fn metrics_with_failures(fail_at_s: &[u64]) -> Metrics {
        metrics_at(3, fail_at_s)
    }

    fn fault(from: f64, to: f64) -> Event {
        Event {
            at_s: from,
            end_s: Some(to),
            kind: EventKind::Fault,
            message: "node-1 killed".into(),
        }
    }

    #[test]
    fn no_failed_install_in_the_window_is_valid() {
        let result = check(
            &metrics_with_failures(&[2]),
            &[fault(20.0, 30.0)],
            &[],
            AvailabilityLimits::default(),
        );
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
    }

    #[test]
    fn a_failed_install_in_the_window_is_invalid() {
        let result = check(
            &metrics_with_failures(&[25]),
            &[fault(20.0, 30.0)],
            &[],
            AvailabilityLimits::default(),
        );
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert_eq!(result.evidence["failed_installs"], 1);
    }

    #[test]
    fn a_long_write_gap_is_invalid() {
        let entry = |invoked: f64, completed: f64, outcome| LedgerEntry {
            seq: 0,
            format: scenarios::writes::WriteFormat::Python,
            name: "p".into(),
            version: "1.0".into(),
            file_name: "p.whl".into(),
            sha256: String::new(),
            scheduled_s: invoked,
            invoked_s: invoked,
            completed_s: completed,
            outcome,
            status: None,
            detail: String::new(),
        };
        let ledger = [
            entry(21.0, 21.5, WriteOutcome::Failed),
            entry(22.0, 45.0, WriteOutcome::Ok),
        ];
        let result = check(
            &metrics_with_failures(&[]),
            &[fault(20.0, 30.0)],
            &ledger,
            AvailabilityLimits::default(),
        );
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        let ledger = [entry(22.0, 24.0, WriteOutcome::Ok)];
        let result = check(
            &metrics_with_failures(&[]),
            &[fault(20.0, 30.0)],
            &ledger,
            AvailabilityLimits::default(),
        );
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
    }

    #[test]
    fn a_window_with_too_few_installs_is_unknown_not_valid() {
        // One install a second: 10 scheduled in the 10 s window, fewer than 20.
        let result = check(
            &metrics_at(1, &[]),
            &[fault(20.0, 30.0)],
            &[],
            AvailabilityLimits::default(),
        );
        assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
        assert!(
            result.summary.contains("10 installs scheduled"),
            "{}",
            result.summary
        );
        assert_eq!(result.evidence["faults"][0]["scheduled_installs"], 10);
        // No load at all (a drill with --installs-per-day 0): unknown, never valid.
        let empty = reports::Recorder::new(Instant::now(), Duration::from_secs(1)).finish();
        let result = check(
            &empty,
            &[fault(20.0, 30.0)],
            &[],
            AvailabilityLimits::default(),
        );
        assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
        // At the minimum it decides again.
        let limits = AvailabilityLimits {
            min_installs_per_window: 10,
            ..AvailabilityLimits::default()
        };
        let result = check(&metrics_at(1, &[]), &[fault(20.0, 30.0)], &[], limits);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
    }

    #[test]
    fn a_failure_outranks_a_thin_window() {
        // One window thin (5 s at one install a second), the other with a failed install.
        let result = check(
            &metrics_at(1, &[45]),
            &[fault(10.0, 15.0), fault(40.0, 50.0)],
            &[],
            AvailabilityLimits {
                min_installs_per_window: 8,
                ..AvailabilityLimits::default()
            },
        );
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    }

    #[test]
    fn without_a_fault_nothing_is_decided() {
        let result = check(
            &metrics_with_failures(&[]),
            &[],
            &[],
            AvailabilityLimits::default(),
        );
        assert_eq!(result.validity, Validity::Unknown);
    }
}
