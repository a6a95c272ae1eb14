//! The node's clock against the database's: the offset of `clock_timestamp()` from the local
//! time at the middle of the round trip, taken from the fastest of a few samples.

use std::time::{Duration, Instant};

use crate::store::{Store, StoreError, now_ms};

/// One measurement.
#[derive(Debug, Clone, Copy)]
pub struct ClockReading {
    /// Database time minus local time, milliseconds; negative when this node runs ahead.
    pub offset_ms: i64,
    pub round_trip: Duration,
}

impl ClockReading {
    /// Whether the offset is beyond what the cluster tolerates.
    pub fn is_skewed(&self, max_clock_skew: Duration) -> bool {
        self.offset_ms.unsigned_abs() > max_clock_skew.as_millis() as u64
    }
}

/// Measures the offset, keeping the sample with the shortest round trip.
pub async fn measure(store: &Store) -> Result<ClockReading, StoreError> {
    let mut best: Option<ClockReading> = None;
    for _ in 0..3 {
        let local_before = now_ms();
        let started = Instant::now();
        let db = store.db_now_ms().await?;
        let round_trip = started.elapsed();
        let local_middle = local_before + (round_trip.as_millis() / 2) as i64;
        let reading = ClockReading {
            offset_ms: db - local_middle,
            round_trip,
        };
        if best.is_none_or(|b| reading.round_trip < b.round_trip) {
            best = Some(reading);
        }
    }
    best.ok_or_else(|| StoreError::Corrupt("no clock sample".into()))
}
