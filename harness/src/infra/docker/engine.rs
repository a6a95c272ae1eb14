//! The parts of the docker provider that go through the `docker` CLI rather than
//! testcontainers: whether an engine answers, the images (built by `docker/build-images.sh` when
//! missing or stale; the git builders' node image by `docker/build-builders-image.sh`), the run's labelled network, and the controls testcontainers' synchronous
//! API lacks (SIGKILL, pause, network disconnect/connect with an alias, exec as text).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::infra::InfraError;

/// Image names, tagged with the workspace version (`pkgcluster/NAME:VERSION`).
pub const PREFIX: &str = "pkgcluster";
pub const TAG: &str = env!("CARGO_PKG_VERSION");
pub const IMAGES: [&str; 4] = ["postgres", "haproxy", "garage", "pkgnode"];
/// The label every container (and the network) of a run carries: `pkgcluster.run=RUN_ID`.
pub const RUN_LABEL: &str = "pkgcluster.run";
/// The label holding the sha256 of the `pkgnode` binary an image was built from.
const PKGNODE_SHA_LABEL: &str = "pkgcluster.pkgnode.sha256";

pub fn image(name: &str) -> String {
    format!("{}:{TAG}", image_repository(name))
}

pub fn image_repository(name: &str) -> String {
    format!("{PREFIX}/{name}")
}

/// The official MinIO server image, used for S3 instead of the Garage image when present.
pub const MINIO_REPOSITORY: &str = "minio/minio";

/// The tag of a local `minio/minio` image (`latest` first), if the engine holds one; nothing is
/// pulled.
pub fn minio_tag() -> Option<String> {
    let tags = docker(&["image", "ls", MINIO_REPOSITORY, "--format", "{{.Tag}}"]).ok()?;
    pick_tag(&tags)
}

/// From `docker image ls --format {{.Tag}}` lines: `latest` if listed, else the first real tag.
fn pick_tag(lines: &str) -> Option<String> {
    let tags: Vec<&str> = lines
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "<none>")
        .collect();
    tags.iter()
        .find(|t| **t == "latest")
        .or(tags.first())
        .map(|t| t.to_string())
}

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

/// `docker/build-images.sh` of this workspace.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/build-images.sh")
}

fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", "-f", "{{.Id}}", image]).is_ok()
}

/// A label of an image; `None` when the image does not exist (`<no value>` when it lacks it).
fn image_label(image: &str, label: &str) -> Option<String> {
    let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
    docker(&["image", "inspect", "-f", &format, image])
        .ok()
        .map(|v| v.trim().to_string())
}

fn sha256_file(path: &Path) -> Result<String, InfraError> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).map_err(|e| InfraError::Missing {
        what: "pkgnode".into(),
        detail: format!("{}: {e}", path.display()),
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Which image the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeImage {
    /// `pkgcluster/pkgnode:VERSION`: `FROM scratch`, the binary and its ldd closure.
    Scratch,
    /// `pkgcluster/pkgnode-builders:DIGEST`: a Debian root with git, R and Python for the git
    /// builders ([`super::builders_image`]).
    Builders,
}

/// The images a cluster runs, once they exist.
#[derive(Debug, Clone)]
pub struct Images {
    /// What was built (empty when nothing was; the builders image is not listed: its script
    /// says what it did).
    pub built: Vec<String>,
    /// The nodes' image: (repository, tag).
    pub node: (String, String),
}

/// Makes sure the images exist: postgres, haproxy and garage, and the node image `node` asks
/// for. `pkgcluster/pkgnode` must hold `pkgnode_bin` (its label carries the binary's sha256):
/// missing images are built, a stale pkgnode image is rebuilt; the builders image is named
/// after its inputs, the binary among them. Serialised across processes with a lock file, so
/// parallel tests build once.
pub fn ensure_images(pkgnode_bin: &Path, node: NodeImage) -> Result<Images, InfraError> {
    let lock_path = std::env::temp_dir().join("pkgcluster-images.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    // Held until dropped below, after the builds.
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| std::io::Error::from(errno))?;
    let mut missing: Vec<&str> = IMAGES
        .iter()
        .copied()
        .filter(|name| *name != "pkgnode" && !image_exists(&image(name)))
        .collect();
    let mut force_pkgnode = false;
    let node_image = match node {
        NodeImage::Scratch => {
            let want = sha256_file(pkgnode_bin)?;
            match image_label(&image("pkgnode"), PKGNODE_SHA_LABEL) {
                None => missing.push("pkgnode"),
                Some(have) if have != want => force_pkgnode = true,
                Some(_) => {}
            }
            (image_repository("pkgnode"), TAG.to_string())
        }
        NodeImage::Builders => super::builders_image::ensure(pkgnode_bin)?,
    };
    let mut built = Vec::new();
    if !missing.is_empty() {
        run_build(&missing, false, pkgnode_bin)?;
        built.extend(missing.iter().map(|s| s.to_string()));
    }
    if force_pkgnode {
        run_build(&["pkgnode"], true, pkgnode_bin)?;
        built.push("pkgnode".into());
    }
    drop(held);
    Ok(Images {
        built,
        node: node_image,
    })
}

fn run_build(names: &[&str], force: bool, pkgnode_bin: &Path) -> Result<(), InfraError> {
    let script = build_script();
    eprintln!(
        "harness: building docker images {} ({})",
        names.join(" "),
        script.display()
    );
    let mut command = Command::new("bash");
    command.arg(&script);
    if force {
        command.arg("--force");
    }
    let output = command
        .args(names)
        .env("PKGNODE_BIN", pkgnode_bin)
        .output()
        .map_err(|e| InfraError::Missing {
            what: "bash (for docker/build-images.sh)".into(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    Err(InfraError::Failed {
        what: format!("{} {}", script.display(), names.join(" ")),
        detail: format!(
            "{}:\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    })
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

/// Creates the run's bridge network, labelled with the run id. testcontainers would create it
/// too, but without a label and without a way to remove it while we hold containers on it, so
/// the CLI creates and removes it.
pub fn create_network(name: &str, run_id: &str) -> Result<(), InfraError> {
    let label = format!("{RUN_LABEL}={run_id}");
    let owner = format!("{OWNER_LABEL}={}", std::process::id());
    docker(&[
        "network", "create", "--label", &label, "--label", &owner, name,
    ])
    .map(|_| ())
}

/// The label holding the pid of the harness that owns a run (on the run's network).
pub const OWNER_LABEL: &str = "pkgcluster.owner";

/// Removes the runs of harness processes that no longer exist (one killed with SIGKILL, or
/// ended by goose's second Ctrl-C, could not tear down). Returns the run ids removed.
pub fn reap_orphans() -> Result<Vec<String>, InfraError> {
    let format = format!("{{{{.Name}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    let listing = docker(&[
        "network",
        "ls",
        "--filter",
        &format!("label={RUN_LABEL}"),
        "--format",
        &format,
    ])?;
    let mut reaped = Vec::new();
    for line in listing.lines() {
        let mut parts = line.split_whitespace();
        let (Some(network), Some(owner)) = (parts.next(), parts.next()) else {
            continue;
        };
        let alive = owner
            .parse::<u32>()
            .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            remove_run(network, network)?;
            reaped.push(network.to_string());
        }
    }
    Ok(reaped)
}

/// Removes every container and volume labelled with the run id, then the network. Idempotent.
pub fn remove_run(run_id: &str, network: &str) -> Result<(), InfraError> {
    let filter = format!("label={RUN_LABEL}={run_id}");
    let ids = docker(&["ps", "-aq", "--filter", &filter])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids);
        docker(&args)?;
    }
    let volumes = docker(&["volume", "ls", "-q", "--filter", &filter])?;
    for volume in volumes.split_whitespace() {
        docker(&["volume", "rm", "-f", volume])?;
    }
    let networks = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name=^{network}$"),
    ])?;
    if !networks.trim().is_empty() {
        docker(&["network", "rm", network])?;
    }
    Ok(())
}

/// Detaches a container from the network (`-f`: also a stopped one). Already detached is fine.
pub fn disconnect(network: &str, container: &str) -> Result<(), InfraError> {
    match docker(&["network", "disconnect", "-f", network, container]) {
        Err(InfraError::Failed { detail, .. }) if detail.contains("is not connected") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Attaches a container to the network, with a DNS alias when given. testcontainers cannot give
/// aliases, nor move one, so this is the CLI (the way a managed database flips its DNS name).
pub fn connect(network: &str, container: &str, alias: Option<&str>) -> Result<(), InfraError> {
    let mut args = vec!["network", "connect"];
    if let Some(alias) = alias {
        args.extend(["--alias", alias]);
    }
    args.extend([network, container]);
    docker(&args).map(|_| ())
}

/// Drops (`cut`) or lets through again what `container` sends to PostgreSQL's port: an
/// iptables rule inside the container's own network namespace (entered from the host with
/// `nsenter`, since the images hold no iptables). The rule dies with the container, so nothing
/// outlives the run. Letting through what was never cut is fine.
pub fn database_cut(container: &str, cut: bool) -> Result<(), InfraError> {
    let pid = match container_pid(container) {
        Some(pid) => pid,
        // A stopped container's namespace and rules are gone: nothing to let through.
        None if !cut => return Ok(()),
        None => {
            return Err(InfraError::Failed {
                what: format!("cutting {container} off the database"),
                detail: "the container is not running".into(),
            });
        }
    };
    let pid = pid.to_string();
    let rule = |command: &str| {
        let mut args = vec![
            "-t",
            pid.as_str(),
            "-n",
            "iptables",
            "-w",
            "10",
            command,
            "OUTPUT",
        ];
        args.extend(["-p", "tcp", "--dport", "5432", "-j", "DROP"]);
        Command::new("nsenter")
            .args(&args)
            .output()
            .map_err(|e| InfraError::Missing {
                what: "nsenter (util-linux) and iptables".into(),
                detail: e.to_string(),
            })
    };
    if cut {
        if rule("-C")?.status.success() {
            return Ok(());
        }
        let inserted = rule("-I")?;
        if !inserted.status.success() {
            return Err(InfraError::Failed {
                what: format!("cutting {container} off the database"),
                detail: String::from_utf8_lossy(&inserted.stderr).trim().to_string(),
            });
        }
    } else {
        // Bounded: one insert per cut, and cuts are idempotent.
        for _ in 0..16 {
            if !rule("-C")?.status.success() {
                break;
            }
            rule("-D")?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    #[test]
    fn minio_is_chosen_by_a_local_tag_latest_first() {
        assert_eq!(super::pick_tag(""), None);
        assert_eq!(super::pick_tag("<none>\n"), None);
        assert_eq!(
            super::pick_tag("RELEASE.2025-04-22\nlatest\n").as_deref(),
            Some("latest")
        );
        assert_eq!(
            super::pick_tag("RELEASE.2025-04-22\n").as_deref(),
            Some("RELEASE.2025-04-22")
        );
    }
}
