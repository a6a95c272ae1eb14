//! Teardown ([`crate::infra::Infra::teardown`], also run on drop): every process stopped, the
//! front (HAProxy, nodes) before the stores, each with a polite signal and at most
//! [`STOP_GRACE`] before SIGKILL; then the network cuts' cgroups and our work dir.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::process::STOP_GRACE;
use super::supervised::Supervised;
use super::{LocalCluster, inner};
use crate::infra::InfraError;

impl LocalCluster {
    /// Stops everything once; every error is reported, none stops the rest.
    pub(super) fn stop_and_remove(&mut self) -> Result<(), InfraError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let began = Instant::now();
        let mut errors = self.stop_everything();
        // Nothing runs any more: the spawner thread may go.
        self.spawner.take();
        if let Err(error) = self.work_dir.remove() {
            errors.push(error);
        }
        tracing::info!(elapsed = ?began.elapsed(), "local cluster torn down");
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(InfraError::Failed {
                what: "local cluster teardown".into(),
                detail: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }

    /// Stops every process (HAProxy and nodes first, then the stores), each with a polite
    /// signal and at most [`STOP_GRACE`] before SIGKILL.
    fn stop_everything(&mut self) -> Vec<InfraError> {
        let parts = &mut self.parts;
        let mut errors = Vec::new();
        let mut front: Vec<(&mut Supervised, Signal)> = Vec::new();
        if let Some(haproxy) = inner(&mut parts.haproxy) {
            front.push((&mut haproxy.process, Signal::SIGTERM));
        }
        for node in &mut parts.nodes {
            let node = node.get_mut().unwrap_or_else(|p| p.into_inner());
            front.push((&mut node.process, Signal::SIGTERM));
        }
        errors.extend(stop_all(front));
        // The nodes are gone: nothing clones any more.
        if let Some((server, _)) = &mut parts.git
            && let Err(error) = server.stop()
        {
            errors.push(error);
        }
        let mut back: Vec<(&mut Supervised, Signal)> = Vec::new();
        if let Some(garage) = inner(&mut parts.garage) {
            back.push((&mut garage.process, Signal::SIGTERM));
        }
        if let Some(endpoint) = inner(&mut parts.db_endpoint) {
            back.push((&mut endpoint.process, Signal::SIGTERM));
        }
        for slot in [&mut parts.postgres, &mut parts.standby] {
            if let Some(postgres) = inner(slot) {
                // SIGINT: PostgreSQL's fast shutdown.
                back.push((&mut postgres.process, Signal::SIGINT));
            }
        }
        errors.extend(stop_all(back));
        for slot in [&mut parts.postgres, &mut parts.standby] {
            if let Some(postgres) = inner(slot)
                && let Err(error) = postgres.remove_outside_dir()
            {
                errors.push(error);
            }
        }
        // Last: a cgroup goes only once its processes have.
        if let Ok(network) = &self.network
            && let Err(error) = network.remove()
        {
            errors.push(error);
        }
        errors
    }
}

/// Signals every process, then waits for all of them against one deadline.
fn stop_all(processes: Vec<(&mut Supervised, Signal)>) -> Vec<InfraError> {
    let mut errors = Vec::new();
    let mut processes: Vec<_> = processes
        .into_iter()
        .filter_map(|(process, signal)| {
            if !process.running() {
                return None;
            }
            if let Err(error) = process.signal(signal) {
                errors.push(error);
            }
            let _ = process.signal_group(Signal::SIGCONT);
            Some(process)
        })
        .collect();
    let deadline = Instant::now() + STOP_GRACE;
    for process in &mut processes {
        if !process.wait_exit(deadline.saturating_duration_since(Instant::now())) {
            tracing::warn!(process = process.name(), "did not stop in time; killing it");
            if let Err(error) = process.kill() {
                errors.push(error);
            }
        }
    }
    errors
}
