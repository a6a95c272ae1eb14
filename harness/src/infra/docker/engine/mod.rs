//! The parts of the docker provider that go through the `docker` CLI rather than
//! testcontainers: whether an engine answers, the images (built by `docker/build-images.sh` when
//! missing or stale; the git builders' node image by `docker/build-builders-image.sh`), the run's labelled network, and the controls testcontainers' synchronous
//! API lacks (SIGKILL, pause, network disconnect/connect with an alias, exec as text).
//! `images.rs` holds the images, `network.rs` the run's network and the cuts; this file the CLI
//! itself, exec, and what is read from a container.

mod images;
mod network;

use std::process::Command;
use std::time::Duration;

use crate::infra::InfraError;

pub use images::{
    IMAGES, Images, MINIO_REPOSITORY, NodeImage, PREFIX, TAG, build_script, ensure_images, image,
    image_repository, minio_tag,
};
pub use network::{
    OWNER_LABEL, connect, create_network, database_cut, disconnect, reap_orphans, remove_run,
};

/// The label every container (and the network) of a run carries: `pkgcluster.run=RUN_ID`.
pub const RUN_LABEL: &str = "pkgcluster.run";

/// Runs `docker ARGS`; its standard output, or an error with its standard error.
pub fn docker(args: &[&str]) -> Result<String, InfraError> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| InfraError::Missing {
            what: "docker".into(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(InfraError::Failed {
            what: format!("docker {}", args.join(" ")),
            detail: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            ),
        })
    }
}

/// The engine's version when `docker version` answers.
pub fn engine_version() -> Result<String, InfraError> {
    docker(&["version", "--format", "{{.Server.Version}}"]).map(|v| v.trim().to_string())
}

/// `docker exec [-u USER] CONTAINER ARGS`.
pub fn exec(container: &str, user: Option<&str>, args: &[&str]) -> Result<String, InfraError> {
    let mut all = vec!["exec"];
    if let Some(user) = user {
        all.extend(["-u", user]);
    }
    all.push(container);
    all.extend(args);
    docker(&all)
}

/// `kill -SIGNAL PID` inside `container` (a command that `docker exec` started: the CLI
/// forwards no signal to it).
pub fn exec_kill(container: &str, pid: u32, signal: &str) -> Result<(), InfraError> {
    exec(
        container,
        None,
        &["kill", &format!("-{signal}"), &pid.to_string()],
    )
    .map(|_| ())
}

/// The host pid of a container's first process (0 when it is not running).
pub fn container_pid(container: &str) -> Option<u32> {
    docker(&["inspect", "-f", "{{.State.Pid}}", container])
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid != 0)
}

/// `docker inspect -f {{.State.Status}}`: running, paused, exited…
pub fn container_state(container: &str) -> Result<String, InfraError> {
    docker(&["inspect", "-f", "{{.State.Status}}", container]).map(|s| s.trim().to_string())
}

/// The last lines of a container's log, for error messages.
pub fn log_tail(container: &str) -> String {
    let output = Command::new("docker")
        .args(["logs", "--tail", "20", container])
        .output();
    match output {
        Ok(output) => format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => format!("(docker logs {container}: {e})"),
    }
}

/// Polls `check` until it answers `Ok(true)` or `timeout` passes.
pub fn wait_until(
    what: &str,
    container: Option<&str>,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<(), InfraError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(true) => return Ok(()),
            Ok(false) => "not yet".to_string(),
            Err(error) => error,
        };
        // A container that exited will not become ready.
        let exited = container
            .and_then(|c| container_state(c).ok())
            .filter(|state| state == "exited" || state == "dead");
        if exited.is_some() || std::time::Instant::now() >= deadline {
            let logs = container
                .map(|c| format!("\n--- docker logs {c} ---\n{}", log_tail(c)))
                .unwrap_or_default();
            return Err(InfraError::NotReady {
                what: what.into(),
                timeout,
                detail: format!("{last}{logs}"),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
