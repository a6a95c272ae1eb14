//! A `pkgnode` command run as one node runs it — with that node's configuration, on that
//! node's filesystem — for what the checklist must do *on* the nodes: `locktester` against the
//! nodes' lock directory, `offline`/`online` to make a `/__ping__` fail. The provider prepares
//! it ([`super::Infra::node_command`]); this module runs it, reads its output line by line and
//! interrupts it (SIGINT, as an operator's Ctrl-C) wherever it runs.
//!
//! Bounded: every wait has a deadline, and a command still running when its handle drops is
//! interrupted, then killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::InfraError;

/// A prepared command (not started yet).
pub struct NodeCommand {
    command: Command,
    interrupt: Interrupt,
    /// `node-2: pkgnode locktester --dir …`, for messages.
    pub description: String,
}

/// Sends SIGINT to a pid inside the command's container (the provider's `docker exec
/// CONTAINER kill -INT PID`): the provider that prepared the command knows how.
pub type InterruptInContainer = Box<dyn Fn(u32) -> Result<(), InfraError> + Send>;

/// How a running command is interrupted.
enum Interrupt {
    /// The child is the command: SIGINT to it.
    Child,
    /// The command runs in a container through `docker exec`, which forwards no signal: its
    /// first line of output is `pid N`, its pid in the container, which `interrupt` is given.
    InContainer { interrupt: InterruptInContainer },
}

/// A line of output.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    Out(String),
    Err(String),
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    /// `None`: killed by a signal, or never ended within the time given (see `timed_out`).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
}

impl NodeCommand {
    /// `program args…` run directly (the local provider: the node's binary and config).
    pub fn direct(description: String, command: Command) -> Self {
        Self {
            command,
            interrupt: Interrupt::Child,
            description,
        }
    }

    /// `pkgnode --config CONFIG ARGS` in `container` through `docker exec` (its shell prints the
    /// pid the interrupt needs, then execs the node's binary); `interrupt` reaches that pid.
    pub fn in_container(
        description: String,
        container: &str,
        config: &str,
        args: &[&str],
        interrupt: InterruptInContainer,
    ) -> Self {
        let mut command = Command::new("docker");
        command
            .args(["exec", container, "/bin/sh", "-c"])
            .arg(format!(
                "echo \"pid $$\"; exec pkgnode --config {config} \"$@\""
            ));
        command.arg("sh").args(args);
        Self {
            command,
            interrupt: Interrupt::InContainer { interrupt },
            description,
        }
    }

    /// Starts it, its output read on two threads.
    pub fn spawn(mut self) -> Result<Running, InfraError> {
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| InfraError::Failed {
                what: self.description.clone(),
                detail: format!("cannot start: {e}"),
            })?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if sender.send(Line::Out(line)).is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if sender.send(Line::Err(line)).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Running {
            child: Some(child),
            lines,
            interrupt: self.interrupt,
            pid_in_container: None,
            finished: Finished::default(),
            output_closed: false,
            description: self.description,
        })
    }

    /// Runs it to the end, or interrupts it after `timeout`.
    pub fn run(self, timeout: Duration) -> Result<Finished, InfraError> {
        let mut running = self.spawn()?;
        Ok(running.wait(Instant::now() + timeout))
    }
}

/// A started command.
pub struct Running {
    child: Option<Child>,
    lines: mpsc::Receiver<Line>,
    interrupt: Interrupt,
    pid_in_container: Option<u32>,
    finished: Finished,
    /// Both output pipes are closed (the command has ended).
    output_closed: bool,
    pub description: String,
}

impl Running {
    /// The next line of standard output, waiting until `deadline`; `None` once the output
    /// ends or the deadline passes. Standard error is kept for [`Running::wait`].
    pub fn next_line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Out(line)) => {
                    if let (Interrupt::InContainer { .. }, None) =
                        (&self.interrupt, self.pid_in_container)
                        && let Some(pid) = line.strip_prefix("pid ").and_then(|p| p.parse().ok())
                    {
                        self.pid_in_container = Some(pid);
                        continue;
                    }
                    self.finished.stdout.push(line.clone());
                    return Some(line);
                }
                Ok(Line::Err(line)) => self.finished.stderr.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.output_closed = true;
                    return None;
                }
            }
        }
    }

    /// Sends SIGINT to the command, wherever it runs.
    pub fn interrupt(&mut self) -> Result<(), InfraError> {
        let failed = |detail: String| InfraError::Failed {
            what: format!("interrupting {}", self.description),
            detail,
        };
        match &self.interrupt {
            Interrupt::Child => {
                let Some(child) = &self.child else {
                    return Ok(());
                };
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                    Err(e) => Err(failed(e.to_string())),
                }
            }
            Interrupt::InContainer { interrupt } => {
                let pid = self
                    .pid_in_container
                    .ok_or_else(|| failed("it has not said its pid in the container".into()))?;
                interrupt(pid)
            }
        }
    }

    /// Waits for the command to end until `deadline`; then interrupts it and, a few seconds
    /// later, kills it. What it printed, and how it ended.
    pub fn wait(&mut self, deadline: Instant) -> Finished {
        while self.next_line(deadline).is_some() || !self.output_closed {
            if Instant::now() >= deadline {
                break;
            }
        }
        if !self.output_closed {
            self.finished.timed_out = true;
            let _ = self.interrupt();
            let grace = Instant::now() + Duration::from_secs(5);
            while self.next_line(grace).is_some() || !self.output_closed {
                if Instant::now() >= grace {
                    break;
                }
            }
        }
        self.reap();
        self.finished.clone()
    }

    /// Collects the child's exit status: it has closed its output, so it is ending; one that
    /// has not ended a few seconds later is killed.
    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let grace = Instant::now() + Duration::from_secs(5);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if Instant::now() < grace => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        break child.wait().ok();
                    }
                }
            };
            self.finished.exit_code = status.and_then(|s| s.code());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.is_some() && !self.output_closed {
            let _ = self.interrupt();
            let grace = Instant::now() + Duration::from_secs(5);
            while self.next_line(grace).is_some() || !self.output_closed {
                if Instant::now() >= grace {
                    break;
                }
            }
        }
        self.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_read_line_by_line_and_an_interrupt_ends_the_command() {
        let mut command = Command::new("/bin/sh");
        command.args([
            "-c",
            // `oops` before `ready`: once `ready` is read, the interrupt cannot land before the
            // shell wrote to standard error (a trap runs between commands).
            "trap 'echo interrupted; exit 3' INT; echo oops >&2; echo ready; \
             while :; do sleep 0.1; done",
        ]);
        let mut running = NodeCommand::direct("sh".into(), command).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(running.next_line(deadline).as_deref(), Some("ready"));
        running.interrupt().unwrap();
        let finished = running.wait(deadline);
        assert_eq!(finished.stdout, ["ready", "interrupted"]);
        assert_eq!(finished.stderr, ["oops"]);
        assert_eq!(finished.exit_code, Some(3));
        assert!(!finished.timed_out);
    }

    #[test]
    fn a_command_past_its_time_is_interrupted_and_says_so() {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "echo started; exec sleep 30"]);
        let began = Instant::now();
        let finished = NodeCommand::direct("sleep".into(), command)
            .run(Duration::from_millis(300))
            .unwrap();
        assert!(finished.timed_out);
        assert_eq!(finished.stdout, ["started"]);
        assert_eq!(finished.exit_code, None, "ended by SIGINT");
        assert!(began.elapsed() < Duration::from_secs(5));
    }
}
