//! Child processes of the local provider: how they are launched (one [`Launch`], forked by the
//! one [`Spawner`]), their logs, and short commands run to completion; [`super::supervised`]
//! signals, awaits and restarts the long-running ones.
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
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, killpg};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, User, getppid, setgid, setgroups, setpgid, setuid, write};

use super::super::InfraError;
use crate::procs;

/// How long a process gets to exit after a polite signal before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
pub(super) const POLL: Duration = Duration::from_millis(25);

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
    pub(super) fn command(&self, stdout: Stdio, stderr: Stdio) -> Command {
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

    pub(super) fn spawn(&self, command: Command, name: &str) -> Result<Child, InfraError> {
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

    pub(super) fn set(&self, name: &str, pid: Option<u32>) {
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

pub(super) fn open_log(path: &Path, name: &str) -> Result<File, InfraError> {
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

/// Whether a pid names a live (or unreaped) process.
pub fn pid_exists(pid: u32) -> bool {
    procs::exists(pid)
}
