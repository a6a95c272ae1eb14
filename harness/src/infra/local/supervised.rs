//! A long-running child of the local provider ([`Supervised`]): started again with the same
//! launch, signalled (its whole process tree for pause and kill), awaited within bounds; and
//! [`wait_ready`], the bounded wait for it to serve.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::process::{Launch, POLL, PidBoard, Spawner, log_tail, open_log};
use crate::infra::InfraError;
use crate::procs;

/// How long a SIGKILLed process may take to be reaped (only a stuck kernel exceeds this).
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// A long-running child that can be signalled, stopped and started again with the same launch.
pub struct Supervised {
    launch: Launch,
    child: Option<Child>,
    /// The last exit, kept for error messages after the child was reaped.
    last_exit: Option<ExitStatus>,
    pids: PidBoard,
}

impl Supervised {
    pub fn new(launch: Launch, pids: &PidBoard) -> Self {
        Self {
            launch,
            child: None,
            last_exit: None,
            pids: pids.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.launch.name
    }

    pub fn log(&self) -> &Path {
        &self.launch.log
    }

    /// Starts the process; an already running one is left alone.
    pub fn start(&mut self, spawner: &Spawner) -> Result<(), InfraError> {
        if self.running() {
            return Ok(());
        }
        let log = open_log(&self.launch.log, &self.launch.name)?;
        let stdout = log.try_clone()?;
        let command = self.launch.command(stdout.into(), log.into());
        let child = spawner
            .spawn(command, &self.launch.name)
            .map_err(|e| match e {
                InfraError::Io(io) => InfraError::Missing {
                    what: self.launch.name.clone(),
                    detail: format!("cannot run {}: {io}", self.launch.program.display()),
                },
                other => other,
            })?;
        self.pids.set(&self.launch.name, Some(child.id()));
        self.child = Some(child);
        self.last_exit = None;
        Ok(())
    }

    /// The pid of the running process (None once it has exited and been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive; reaps it when it has exited.
    pub fn running(&mut self) -> bool {
        self.exit_status().is_none() && self.child.is_some()
    }

    /// The exit status once the process has exited, reaping it.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            self.last_exit = Some(status);
            self.pids.set(&self.launch.name, None);
        }
        if self.child.is_some() {
            None
        } else {
            self.last_exit
        }
    }

    /// Sends a signal to the process alone.
    pub fn signal(&mut self, signal: Signal) -> Result<(), InfraError> {
        self.send(signal, false)
    }

    /// Sends a signal to the process and everything in its group (e.g. PostgreSQL backends).
    pub fn signal_group(&mut self, signal: Signal) -> Result<(), InfraError> {
        self.send(signal, true)
    }

    fn send(&mut self, signal: Signal, group: bool) -> Result<(), InfraError> {
        // Only while the leader is unreaped is its pid (and so its group id) certainly ours.
        if !self.running() {
            return Err(InfraError::Failed {
                what: self.launch.name.clone(),
                detail: format!("not running ({})", self.describe_exit()),
            });
        }
        let pid = Pid::from_raw(self.pid().unwrap_or_default() as i32);
        let sent = if group {
            killpg(pid, signal)
        } else {
            kill(pid, signal)
        };
        match sent {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(errno) => return Err(std::io::Error::from(errno).into()),
        }
        Ok(())
    }

    /// SIGSTOP to the group and every descendant (PostgreSQL's backends and WAL receiver each
    /// lead a session of their own, out of the group's reach), leader first so that it forks no
    /// more; returns once the leader is really stopped (delivery is async).
    pub fn pause(&mut self) -> Result<(), InfraError> {
        self.signal_group(Signal::SIGSTOP)?;
        self.signal_descendants(Signal::SIGSTOP);
        self.wait_for_state(true)
    }

    /// SIGCONT to every descendant and the group; returns once the leader runs again.
    pub fn unpause(&mut self) -> Result<(), InfraError> {
        self.signal_descendants(Signal::SIGCONT);
        self.signal_group(Signal::SIGCONT)?;
        self.wait_for_state(false)
    }

    fn signal_descendants(&self, signal: Signal) {
        let Some(root) = self.pid() else {
            return;
        };
        for pid in descendants(root) {
            // A pid that just exited is ESRCH: nothing to do.
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    fn wait_for_state(&mut self, stopped: bool) -> Result<(), InfraError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let state = procs::state(pid);
            // `T` stopped by a signal (`t` under a tracer counts too).
            let is_stopped = matches!(state, Some('T' | 't'));
            if is_stopped == stopped {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(InfraError::Failed {
                    what: self.launch.name.clone(),
                    detail: format!(
                        "pid {pid} is in state {state:?}, not {} after 2 s",
                        if stopped { "stopped" } else { "running" }
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `timeout` for the process to exit; true when it has.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.running() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` (plus SIGCONT, so a paused process can act on it), waits up to `grace`,
    /// then kills the whole group. Returns once the process is reaped.
    pub fn stop(&mut self, signal: Signal, grace: Duration) -> Result<(), InfraError> {
        if !self.running() {
            return Ok(());
        }
        self.signal(signal)?;
        let _ = self.signal_group(Signal::SIGCONT);
        if self.wait_exit(grace) {
            return Ok(());
        }
        tracing::warn!(
            process = %self.launch.name,
            ?grace,
            "did not exit after a polite signal; killing it"
        );
        self.kill()
    }

    /// SIGKILL to the whole group, then reaps the leader.
    pub fn kill(&mut self) -> Result<(), InfraError> {
        if !self.running() {
            return Ok(());
        }
        self.signal_group(Signal::SIGKILL)?;
        if self.wait_exit(REAP_TIMEOUT) {
            Ok(())
        } else {
            Err(InfraError::Failed {
                what: self.launch.name.clone(),
                detail: format!(
                    "pid {} survived SIGKILL for {REAP_TIMEOUT:?}",
                    self.pid().unwrap_or_default()
                ),
            })
        }
    }

    /// "exited with status 1" or "running", for messages.
    pub fn describe_exit(&self) -> String {
        match (&self.child, self.last_exit) {
            (Some(child), _) => format!("running as pid {}", child.id()),
            (None, Some(status)) => format!("exited: {status}"),
            (None, None) => "never started".into(),
        }
    }

    /// A "process exited before it was ready" error with the end of its log.
    pub fn died_error(&self) -> InfraError {
        InfraError::Failed {
            what: self.launch.name.clone(),
            detail: format!(
                "{} while starting ({}); log {}:\n{}",
                self.describe_exit(),
                self.launch.display(),
                self.launch.log.display(),
                log_tail(&self.launch.log)
            ),
        }
    }
}

impl Drop for Supervised {
    /// A process dropped while running (a start that failed half-way) is killed, group and all.
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            tracing::error!(%error, "killing a dropped process");
        }
    }
}

/// Polls `check` until it answers `Ok(true)` or `timeout` passes, failing early when `process`
/// exits. The last `Err` from `check` goes into the timeout message.
pub fn wait_ready(
    what: &str,
    timeout: Duration,
    mut process: Option<&mut Supervised>,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<(), InfraError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => last = error,
        }
        if let Some(process) = process.as_deref_mut()
            && !process.running()
        {
            return Err(process.died_error());
        }
        if Instant::now() >= deadline {
            let log = process
                .map(|p| format!("; log {}:\n{}", p.log().display(), log_tail(p.log())))
                .unwrap_or_default();
            return Err(InfraError::NotReady {
                what: what.to_string(),
                timeout,
                detail: format!("{last}{log}"),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every descendant of `root` (not `root` itself).
fn descendants(root: u32) -> Vec<u32> {
    let table = procs::Table::read();
    table
        .tree(root)
        .iter()
        .skip(1)
        .map(|entry| entry.pid)
        .collect()
}
