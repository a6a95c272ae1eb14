//! The run's labelled network: created, reaped when its harness is gone, removed with the
//! run's containers; containers disconnected and connected (with an alias), and a container's
//! database traffic cut inside its network namespace.

use std::process::Command;

use super::{RUN_LABEL, container_pid, docker};
use crate::infra::InfraError;

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
