//! The minimum evidence around each fault: the acknowledged uploads invoked before, during and
//! after its window.

use scenarios::writes::{LedgerEntry, WriteOutcome};
use serde::Serialize;

/// A fault window, seconds since the run start.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FaultWindow {
    pub start_s: f64,
    pub end_s: f64,
}

/// Acknowledged uploads invoked before, during and after one fault window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub(super) struct WindowEvidence {
    pub(super) start_s: f64,
    pub(super) end_s: f64,
    pub(super) acknowledged_before: usize,
    pub(super) acknowledged_during: usize,
    pub(super) acknowledged_after: usize,
}

/// Per fault: the acknowledged uploads invoked since the previous fault's end and before its
/// start, inside it, and after its end until the next fault starts.
pub(super) fn window_evidence(
    ledger: &[LedgerEntry],
    faults: &[FaultWindow],
) -> Vec<WindowEvidence> {
    let acknowledged: Vec<f64> = ledger
        .iter()
        .filter(|e| e.outcome == WriteOutcome::Ok)
        .map(|e| e.invoked_s)
        .collect();
    let count = |from: f64, to: f64| {
        acknowledged
            .iter()
            .filter(|&&t| t >= from && t < to)
            .count()
    };
    faults
        .iter()
        .enumerate()
        .map(|(i, fault)| {
            let previous_end = if i == 0 {
                f64::NEG_INFINITY
            } else {
                faults[i - 1].end_s
            };
            let next_start = faults.get(i + 1).map_or(f64::INFINITY, |f| f.start_s);
            WindowEvidence {
                start_s: fault.start_s,
                end_s: fault.end_s,
                acknowledged_before: count(previous_end, fault.start_s),
                acknowledged_during: count(fault.start_s, fault.end_s),
                acknowledged_after: count(fault.end_s, next_start),
            }
        })
        .collect()
}
