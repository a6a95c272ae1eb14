//! Child processes of the local provider: how they are launched, signalled, awaited and
//! restarted.
//!
//! **Invariant:** every process is a direct child, leader of its own process group, started with
//! `PR_SET_PDEATHSIG = SIGKILL` from one long-lived [`Spawner`] thread. The kernel ties that
//! signal to the *thread* that forked, not to the process, so spawning from a short-lived thread
//! (a tokio `spawn_blocking` worker retires after 10 s idle) would kill the cluster behind our
//! back. Every wait is bounded.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, User, getppid, setgid, setgroups, setpgid, setuid, write};

use super::super::InfraError;
use crate::procs;

/// How long a process gets to exit after a polite signal before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a SIGKILLed process may take to be reaped (only a stuck kernel exceeds this).
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(25);

/// A user to run a child as (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: Uid,
    pub gid: Gid,
}

impl Identity {
    /// Looks a user up in the password database.
    pub fn lookup(user: &str) -> Result<Self, InfraError> {
        let missing = |detail: String| InfraError::Missing {
            what: format!("user {user}"),
            detail: format!(
                "no such user in the password database (needed to run PostgreSQL as non-root); \
                 install the postgresql package, which creates it{detail}"
            ),
        };
        match User::from_name(user) {
            Ok(Some(found)) => Ok(Self {
                uid: found.uid,
                gid: found.gid,
            }),
            Ok(None) => Err(missing(String::new())),
            Err(errno) => Err(missing(format!(" (getpwnam_r: {errno})"))),
        }
    }

    /// Whether this process runs as root.
    pub fn running_as_root() -> bool {
        Uid::effective().is_root()
    }
}

/// Everything needed to (re)start a process: a [`Command`] cannot be cloned, this can.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Short name used in errors, e.g. `node-1`, `postgresql`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    pub run_as: Option<Identity>,
    /// Where stderr (and stdout) go; appended to across restarts.
    pub log: PathBuf,
    /// A cgroup (v2) dir the child joins before it runs, so every socket it opens belongs to
    /// it (see [`super::network`]).
    pub cgroup: Option<PathBuf>,
}

impl Launch {
    pub fn new(name: &str, program: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            run_as: None,
            log: log.into(),
            cgroup: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn run_as(mut self, identity: Option<Identity>) -> Self {
        self.run_as = identity;
        self
    }

    pub fn cgroup(mut self, dir: Option<PathBuf>) -> Self {
        self.cgroup = dir;
        self
    }

    /// The command line as a user would type it, for error messages.
    pub fn display(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }

    /// A command with the child-side setup: own process group, dropped privileges, death signal.
    fn command(&self, stdout: Stdio, stderr: Stdio) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        let run_as = self.run_as;
        let parent = Pid::this();
        // Built before the fork: the child may not allocate.
        let cgroup_procs = self.cgroup.as_ref().and_then(|dir| {
            std::ffi::CString::new(
                dir.join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .ok()
        });
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (nix's wrappers are thin); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // Own group: signals reach the whole tree (PostgreSQL backends), and a Ctrl-C
                // in the terminal reaches only the harness, which tears down in order.
                setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                // Before dropping privileges: only root may move itself into the cgroup.
                // Writing 0 moves the writer.
                if let Some(procs) = &cgroup_procs {
                    let fd = open(
                        procs.as_c_str(),
                        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?;
                    if write(&fd, b"0\n")? != 2 {
                        return Err(std::io::Error::from(Errno::EIO));
                    }
                }
                if let Some(identity) = run_as {
                    setgroups(&[])?;
                    setgid(identity.gid)?;
                    setuid(identity.uid)?;
                }
                // After setuid: credential changes clear the death signal.
                set_pdeathsig(Signal::SIGKILL)?;
                // The harness may have died before prctl took effect.
                if getppid() != parent {
                    return Err(std::io::Error::from(Errno::ESRCH));
                }
                Ok(())
            });
        }
        command
    }
}

enum Request {
    Spawn(Command, mpsc::Sender<std::io::Result<Child>>),
}

/// The one thread every child is forked from (see the module invariant).
pub struct Spawner {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Spawner {
    pub fn new() -> Result<Self, InfraError> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("local-infra-spawner".into())
            .spawn(move || {
                for Request::Spawn(mut command, reply) in inbox {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    fn spawn(&self, command: Command, name: &str) -> Result<Child, InfraError> {
        let (reply, answer) = mpsc::channel();
        let sent = self
            .requests
            .as_ref()
            .map(|requests| requests.send(Request::Spawn(command, reply)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(InfraError::Failed {
                what: name.to_string(),
                detail: "the spawner thread has stopped (cluster torn down)".into(),
            });
        }
        // Forking is quick; a minute means the machine is wedged.
        answer
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| InfraError::Failed {
                what: name.to_string(),
                detail: "the spawner thread did not answer".into(),
            })?
            .map_err(InfraError::Io)
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // Closing the channel ends the thread; anything it forked and still alive gets SIGKILL.
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The current pid of every supervised process by name, readable without touching the
/// processes themselves (a drill may hold one for seconds while it restarts).
#[derive(Debug, Clone, Default)]
pub struct PidBoard(Arc<Mutex<BTreeMap<String, u32>>>);

impl PidBoard {
    pub fn get(&self, name: &str) -> Option<u32> {
        self.lock().get(name).copied()
    }

    fn set(&self, name: &str, pid: Option<u32>) {
        let mut board = self.lock();
        match pid {
            Some(pid) => board.insert(name.to_string(), pid),
            None => board.remove(name),
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u32>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

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

fn open_log(path: &Path, name: &str) -> Result<File, InfraError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| InfraError::Failed {
            what: name.to_string(),
            detail: format!("cannot open log {}: {e}", path.display()),
        })
}

/// The last lines of a log file, for error messages (at most 4 KiB).
pub fn log_tail(path: &Path) -> String {
    const TAIL_BYTES: u64 = 4096;
    let Ok(mut file) = File::open(path) else {
        return "(no log)".into();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if tail.is_empty() {
        "(log is empty)".into()
    } else {
        tail.join("\n")
    }
}

/// Runs a short command to completion within `timeout`, its output captured in `log_dir` as
/// `{step}.out` / `{step}.err`; a non-zero exit or a timeout is an error naming the step.
/// Returns what it printed on stdout.
pub fn run(
    spawner: &Spawner,
    launch: &Launch,
    log_dir: &Path,
    step: &str,
    timeout: Duration,
) -> Result<String, InfraError> {
    let out_path = log_dir.join(format!("{step}.out"));
    let err_path = log_dir.join(format!("{step}.err"));
    let failed = |detail: String| InfraError::Failed {
        what: format!("{} ({})", launch.name, launch.display()),
        detail,
    };
    let out = File::create(&out_path).map_err(|e| failed(format!("cannot create log: {e}")))?;
    let err = File::create(&err_path).map_err(|e| failed(format!("cannot create log: {e}")))?;
    let command = launch.command(out.into(), err.into());
    let mut child = spawner.spawn(command, &launch.name).map_err(|e| match e {
        InfraError::Io(io) => InfraError::Missing {
            what: launch.name.clone(),
            detail: format!("cannot run {}: {io}", launch.program.display()),
        },
        other => other,
    })?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            // The child is unreaped, so its group id is ours.
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            return Err(InfraError::NotReady {
                what: format!("{} ({})", launch.name, launch.display()),
                timeout,
                detail: format!(
                    "killed after the timeout; stderr {}:\n{}",
                    err_path.display(),
                    log_tail(&err_path)
                ),
            });
        }
        std::thread::sleep(POLL);
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        return Err(failed(format!(
            "{status}; stderr {}:\n{}\nstdout:\n{}",
            err_path.display(),
            log_tail(&err_path),
            stdout.trim_end()
        )));
    }
    Ok(stdout)
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

/// Whether a pid names a live (or unreaped) process.
pub fn pid_exists(pid: u32) -> bool {
    procs::exists(pid)
}
