//! The nemesis: faults injected into a running cluster on a schedule, each healed after its
//! hold, every step recorded as a typed event. It acts only through [`Infra::control`] and
//! [`Infra::probe`], so a drill runs the same on every provider; an empty schedule is the
//! plain scenario.
//!
//! `kill-primary-db` includes the **failover controller** a managed database provides (RDS
//! Multi-AZ's role): it checks the primary every `check_interval`, and after `misses` misses in
//! a row promotes the synchronous standby (the provider repoints the nodes' database endpoint).
//! Healing rejoins the former primary as the new standby, so the drill can repeat.
//!
//! After each heal the cluster must **recover** before the next fault (and before the final
//! reads): every node reports its database reachable and serves an upload made after the heal
//! ([`recovery`]); the timeline's `recovered` event marks that moment. A fault whose scheduled
//! time has passed by then (the one before it took longer than planned) still waits until the
//! cluster has run recovered for [`QUIET`]: the checkers need load between two faults (an
//! acknowledged upload after each heal), and back-to-back faults would leave them none.

mod fault;
mod recovery;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use reports::record::{Event, EventKind};
use serde::Serialize;

use crate::infra::{Control, Infra, InfraError, Member};

pub use fault::Fault;

/// A fault and when: injected `at` after the run start, healed `hold` later.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScheduledFault {
    pub fault: Fault,
    #[serde(with = "humantime_serde_secs")]
    pub at: Duration,
    #[serde(with = "humantime_serde_secs")]
    pub hold: Duration,
}

/// The failover controller's health check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FailoverPolicy {
    /// Time between checks of the primary.
    #[serde(with = "humantime_serde_secs")]
    pub check_interval: Duration,
    /// Missed checks in a row before the standby is promoted.
    pub misses: u32,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        FailoverPolicy {
            check_interval: Duration::from_secs(1),
            misses: 3,
        }
    }
}

/// The nemesis schedule of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NemesisPlan {
    /// Faults in time order, one at a time.
    pub faults: Vec<ScheduledFault>,
    pub failover: FailoverPolicy,
    /// How long the cluster may take to be healthy again after a heal.
    #[serde(with = "humantime_serde_secs")]
    pub recovery_timeout: Duration,
}

impl NemesisPlan {
    /// The no-op nemesis: a plain run.
    pub fn none() -> Self {
        NemesisPlan {
            recovery_timeout: Duration::from_secs(60),
            ..NemesisPlan::default()
        }
    }

    /// Every problem with the schedule, not only the first.
    pub fn validate(&self, nodes: usize, run_time: Duration) -> Vec<String> {
        let mut problems = Vec::new();
        let mut free_from = Duration::ZERO;
        for (i, scheduled) in self.faults.iter().enumerate() {
            if let Some(node) = scheduled.fault.node()
                && node >= nodes
            {
                problems.push(format!(
                    "fault {}: {} targets node {} but the cluster has {nodes}",
                    i + 1,
                    scheduled.fault.name(),
                    node + 1
                ));
            }
            if scheduled.at < free_from {
                problems.push(format!(
                    "fault {} at {:?} starts before fault {} is healed",
                    i + 1,
                    scheduled.at,
                    i
                ));
            }
            if scheduled.at + scheduled.hold > run_time {
                problems.push(format!(
                    "fault {} ({}) is healed at {:?}, after the run ends at {run_time:?}",
                    i + 1,
                    scheduled.fault.name(),
                    scheduled.at + scheduled.hold
                ));
            }
            free_from = scheduled.at + scheduled.hold;
        }
        if self.failover.misses == 0 || self.failover.check_interval.is_zero() {
            problems
                .push("the failover check needs an interval above 0 and at least 1 miss".into());
        }
        problems
    }
}

/// The least time the cluster runs recovered between one fault's recovery and the next fault.
pub const QUIET: Duration = Duration::from_secs(3);

/// When a fault scheduled `at` (after `start`) begins: on time, or, when the previous fault
/// recovered too late for that, [`QUIET`] after that recovery.
pub fn begins_at(start: Instant, at: Duration, recovered: Option<Instant>) -> Instant {
    let scheduled = start + at;
    match recovered {
        Some(recovered) => scheduled.max(recovered + QUIET),
        None => scheduled,
    }
}

/// What the nemesis did: the events of each fault, and what it could not do.
#[derive(Clone, Debug, Default)]
pub struct NemesisLog {
    pub events: Vec<Event>,
    /// Controls that failed or recoveries that timed out, in order.
    pub errors: Vec<String>,
    /// Faults injected and healed.
    pub completed: usize,
}

/// Runs `plan` against `infra` with times relative to `start`. Blocking controls run in
/// place (the runtime must be multi-threaded); returns once the last fault is healed and the
/// cluster recovered, or at the first fault it could not inject.
pub async fn run(plan: &NemesisPlan, infra: &dyn Infra, start: Instant) -> NemesisLog {
    let mut log = NemesisLog::default();
    let since = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
    let mut recovered: Option<Instant> = None;
    for scheduled in &plan.faults {
        let begins = begins_at(start, scheduled.at, recovered);
        if begins > start + scheduled.at {
            log.events.push(event(
                since(begins),
                None,
                EventKind::Note,
                format!(
                    "{} begins {:.1} s after its scheduled {:.1} s: the fault before it recovered \
                     late, and the cluster runs {} s recovered between faults",
                    scheduled.fault.name(),
                    (begins - (start + scheduled.at)).as_secs_f64(),
                    scheduled.at.as_secs_f64(),
                    QUIET.as_secs()
                ),
            ));
        }
        tokio::time::sleep_until(begins.into()).await;
        let injected = Instant::now();
        let mut session = Session {
            infra,
            start,
            log: &mut log,
        };
        let fault = &scheduled.fault;
        if let Err(e) = fault
            .inject(&mut session, plan.failover, injected + scheduled.hold)
            .await
        {
            let message = format!("{}: could not inject: {e}", fault.name());
            log.errors.push(message.clone());
            log.events
                .push(event(since(injected), None, EventKind::InfraError, message));
            break;
        }
        tokio::time::sleep_until((injected + scheduled.hold).into()).await;
        let mut session = Session {
            infra,
            start,
            log: &mut log,
        };
        let healed = fault.heal(&mut session).await;
        let healed_at = Instant::now();
        log.events.push(event(
            since(injected),
            Some(since(healed_at)),
            EventKind::Fault,
            fault.describe(),
        ));
        if let Err(e) = healed {
            let message = format!("{}: could not heal: {e}", fault.name());
            log.errors.push(message.clone());
            log.events.push(event(
                since(healed_at),
                None,
                EventKind::InfraError,
                message,
            ));
            break;
        }
        let mut session = Session {
            infra,
            start,
            log: &mut log,
        };
        match session
            .wait_recovered(plan.recovery_timeout, healed_at)
            .await
        {
            Ok(how) => {
                recovered = Some(Instant::now());
                log.completed += 1;
                log.events.push(event(
                    since(Instant::now()),
                    None,
                    EventKind::Recovered,
                    format!("after {}: {how}", fault.name()),
                ));
            }
            Err(e) => {
                let message = format!("after {}: {e}", fault.name());
                log.errors.push(message.clone());
                log.events.push(event(
                    since(Instant::now()),
                    None,
                    EventKind::InfraError,
                    message,
                ));
                break;
            }
        }
    }
    log.events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    log
}

/// What a fault acts through while it runs.
pub(crate) struct Session<'a> {
    infra: &'a dyn Infra,
    start: Instant,
    log: &'a mut NemesisLog,
}

impl Session<'_> {
    /// A blocking control, run in place.
    pub(crate) fn control(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        tokio::task::block_in_place(|| self.infra.control(member, action))
    }

    pub(crate) fn probe(&self, member: &Member) -> Result<bool, InfraError> {
        tokio::task::block_in_place(|| self.infra.probe(member))
    }

    /// Records a moment of the fault.
    pub(crate) fn note(&mut self, kind: EventKind, message: String) {
        let at = Instant::now()
            .saturating_duration_since(self.start)
            .as_secs_f64();
        self.log.events.push(event(at, None, kind, message));
    }

    /// Each node's own URL.
    pub(crate) fn node_url(&self, node: usize) -> Option<String> {
        self.infra
            .endpoints()
            .nodes
            .get(node)
            .map(|(_, url)| url.clone())
    }
}

fn event(at_s: f64, end_s: Option<f64>, kind: EventKind, message: String) -> Event {
    Event {
        at_s,
        end_s,
        kind,
        message,
    }
}

/// Durations as fractional seconds in the run record's configuration.
mod humantime_serde_secs {
    pub fn serialize<S: serde::Serializer>(
        value: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }
}
