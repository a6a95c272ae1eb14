//! The shared schedule goose users draw installs from: arrivals drawn lazily, in time order,
//! from a seeded stream behind one lock, so every arrival is handed out exactly once however
//! many users race for it, and memory stays flat however long the run (a whole day at
//! 1,700 installs/s is 150 M arrivals: drawn as they are due, never stored).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::corpus::{Ecosystem, PkgId};

/// One scheduled install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Position in the (whole, unsliced) schedule, 0-based.
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

/// A fresh, deterministic stream of every arrival of a schedule, in time order.
pub(crate) type Draws = Box<dyn Iterator<Item = Arrival> + Send>;

/// Starts the stream again from the beginning (same seed, same arrivals).
pub(crate) type Restart = Arc<dyn Fn() -> Draws + Send + Sync>;

struct Cursor {
    draws: Draws,
    /// The next arrival of this schedule (its slice), drawn but not handed out.
    pending: Option<Arrival>,
    handed_out: usize,
}

/// A time-ordered stream of arrivals with a cursor shared by every user.
pub struct Schedule {
    restart: Restart,
    /// This schedule keeps arrivals whose `seq % count == index` (`(0, 1)`: all of them).
    slice: (usize, usize),
    cursor: Mutex<Cursor>,
    len: usize,
    wall_duration: Duration,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("len", &self.len)
            .field("slice", &self.slice)
            .field("wall_duration", &self.wall_duration)
            .finish()
    }
}

impl Schedule {
    /// A schedule of `arrivals` (sorted by offset here, and renumbered) spanning
    /// `wall_duration`. Holds the list; [`Schedule::drawn`] holds none.
    pub fn new(mut arrivals: Vec<Arrival>, wall_duration: Duration) -> Schedule {
        arrivals.sort_by_key(|a| a.offset);
        for (seq, arrival) in arrivals.iter_mut().enumerate() {
            arrival.seq = seq;
        }
        let arrivals = Arc::new(arrivals);
        Schedule::drawn(
            Arc::new(move || {
                let arrivals = Arc::clone(&arrivals);
                Box::new((0..arrivals.len()).map(move |i| arrivals[i]))
            }),
            wall_duration,
        )
    }

    /// A schedule whose arrivals `restart` draws, in time order with `seq` counting from 0;
    /// counted once here (a pass of the stream, nothing kept).
    pub(crate) fn drawn(restart: Restart, wall_duration: Duration) -> Schedule {
        Schedule::sliced(restart, (0, 1), wall_duration)
    }

    fn sliced(restart: Restart, slice: (usize, usize), wall_duration: Duration) -> Schedule {
        let keep = move |a: &Arrival| a.seq % slice.1 == slice.0;
        let len = restart().filter(keep).count();
        let draws = Box::new(restart().filter(keep));
        Schedule {
            restart,
            slice,
            cursor: Mutex::new(Cursor {
                draws,
                pending: None,
                handed_out: 0,
            }),
            len,
            wall_duration,
        }
    }

    /// Slice `index` of `count`: every `count`-th arrival from the `index`-th, times and
    /// sequence numbers unchanged. `count` load generators, each executing one slice, together
    /// execute this schedule exactly once, each at an even share of the rate throughout.
    ///
    /// # Panics
    /// If `index >= count`, or this schedule is itself a slice.
    pub fn slice(&self, index: usize, count: usize) -> Schedule {
        assert!(index < count, "slice {index} of {count} does not exist");
        assert_eq!(self.slice, (0, 1), "a slice cannot be sliced again");
        Schedule::sliced(
            Arc::clone(&self.restart),
            (index, count),
            self.wall_duration,
        )
    }

    /// The next arrival not yet handed out, or `None` once all have been.
    pub fn next(&self) -> Option<Arrival> {
        self.next_before(Duration::MAX)
    }

    /// The next arrival if it is due before `limit`; later ones stay in the schedule.
    pub fn next_before(&self, limit: Duration) -> Option<Arrival> {
        let mut cursor = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        if cursor.pending.is_none() {
            cursor.pending = cursor.draws.next();
        }
        let arrival = cursor.pending.filter(|a| a.offset < limit)?;
        cursor.pending = None;
        cursor.handed_out += 1;
        Some(arrival)
    }

    /// Every arrival, in time order, drawn afresh (for tests and reports: this allocates the
    /// whole schedule).
    pub fn arrivals(&self) -> Vec<Arrival> {
        let (index, count) = self.slice;
        (self.restart)()
            .filter(|a| a.seq % count == index)
            .collect()
    }

    /// Number of arrivals.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no arrivals.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arrivals handed out so far.
    pub fn handed_out(&self) -> usize {
        self.cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handed_out
    }

    /// Arrivals not yet handed out.
    pub fn remaining(&self) -> usize {
        self.len - self.handed_out()
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
        let (index, count) = self.slice;
        for arrival in (self.restart)().filter(|a| a.seq % count == index) {
            let bucket = (arrival.offset.as_nanos() / width.as_nanos()) as usize;
            let last = counts.len() - 1;
            counts[bucket.min(last)] += 1;
        }
        counts
    }
}
