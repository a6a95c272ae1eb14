//! The shared schedule goose users draw installs from: a fixed, time-ordered list and an
//! atomic cursor, so every arrival is handed out exactly once however many users race for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::corpus::{Ecosystem, PkgId};

/// One scheduled install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Position in the schedule, 0-based.
    pub seq: usize,
    /// When the install is due, from the run's start.
    pub offset: Duration,
    /// The package asked for (its dependencies come with it).
    pub package: PkgId,
}

impl Arrival {
    /// The ecosystem of the install.
    pub fn ecosystem(&self) -> Ecosystem {
        self.package.ecosystem
    }
}

/// A time-ordered list of arrivals with a cursor shared by every user.
#[derive(Debug)]
pub struct Schedule {
    arrivals: Vec<Arrival>,
    cursor: AtomicUsize,
    wall_duration: Duration,
}

impl Schedule {
    /// A schedule of `arrivals` (sorted by offset here, and renumbered) spanning
    /// `wall_duration`.
    pub fn new(mut arrivals: Vec<Arrival>, wall_duration: Duration) -> Schedule {
        arrivals.sort_by_key(|a| a.offset);
        for (seq, arrival) in arrivals.iter_mut().enumerate() {
            arrival.seq = seq;
        }
        Schedule {
            arrivals,
            cursor: AtomicUsize::new(0),
            wall_duration,
        }
    }

    /// The next arrival not yet handed out, or `None` once all have been.
    pub fn next(&self) -> Option<Arrival> {
        let index = self.cursor.fetch_add(1, Ordering::Relaxed);
        self.arrivals.get(index).copied()
    }

    /// The next arrival if it is due before `limit`; later ones stay in the schedule.
    pub fn next_before(&self, limit: Duration) -> Option<Arrival> {
        let mut index = self.cursor.load(Ordering::Relaxed);
        loop {
            let arrival = self.arrivals.get(index)?;
            if arrival.offset >= limit {
                return None;
            }
            match self.cursor.compare_exchange_weak(
                index,
                index + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(*arrival),
                Err(current) => index = current,
            }
        }
    }

    /// Every arrival, in time order.
    pub fn arrivals(&self) -> &[Arrival] {
        &self.arrivals
    }

    /// Number of arrivals.
    pub fn len(&self) -> usize {
        self.arrivals.len()
    }

    /// Whether there are no arrivals.
    pub fn is_empty(&self) -> bool {
        self.arrivals.is_empty()
    }

    /// Arrivals handed out so far.
    pub fn handed_out(&self) -> usize {
        self.cursor.load(Ordering::Relaxed).min(self.arrivals.len())
    }

    /// Arrivals not yet handed out.
    pub fn remaining(&self) -> usize {
        self.arrivals.len() - self.handed_out()
    }

    /// Wall-clock time the schedule spans (its last arrival is earlier).
    pub fn wall_duration(&self) -> Duration {
        self.wall_duration
    }

    /// Arrivals per consecutive window of `width`, covering the whole span.
    pub fn counts_per_bucket(&self, width: Duration) -> Vec<usize> {
        let width = width.max(Duration::from_nanos(1));
        let buckets = (self.wall_duration.as_nanos().div_ceil(width.as_nanos())).max(1);
        let mut counts = vec![0usize; usize::try_from(buckets).unwrap_or(usize::MAX)];
        for arrival in &self.arrivals {
            let index = (arrival.offset.as_nanos() / width.as_nanos()) as usize;
            let last = counts.len() - 1;
            counts[index.min(last)] += 1;
        }
        counts
    }
}
