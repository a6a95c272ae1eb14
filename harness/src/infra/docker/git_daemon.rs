//! The git builders' Git server on the docker provider: `git daemon` in a container of the
//! builders image (it has git) on the run's network, where the nodes reach it by the network
//! alias `gitd` and clone `git://gitd/NAME.git`. Its bare repositories live in a host directory
//! mounted at `/srv/git`: the commit driver pushes to them on disk, as on the local provider
//! (`local/git_daemon.rs`, whose daemon flags these are). The container runs as the harness's
//! own uid and gid, so git finds the repositories owned by the user it runs as (no
//! `safe.directory` needed) and leaves nothing in the directory the harness cannot remove.

use std::time::Duration;

use scenarios::git_builders::GitRemote;

use super::containers::{self, Started};
use super::engine;
use super::parts::Names;
use crate::infra::InfraError;

/// The network alias the nodes clone from.
pub const ALIAS: &str = "gitd";
/// Where the repositories are mounted in the container (`--base-path`).
const REPOS: &str = "/srv/git";

/// A running `git daemon` container and the host directory of its repositories.
pub struct GitDaemon {
    /// Declared first: the container goes before the directory it mounts.
    pub started: Started,
    /// e.g. `2.39.5`.
    pub version: String,
    repos: tempfile::TempDir,
}

/// Starts `git daemon` from `image` (repository, tag) with an empty repository directory, gives
/// it the alias [`ALIAS`] and waits until it answers. Blocking.
pub fn start(
    names: &Names,
    image: &(String, String),
    timeout: Duration,
) -> Result<GitDaemon, InfraError> {
    let repos = tempfile::Builder::new().prefix("harness-gitd-").tempdir()?;
    let user = format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid());
    let mut spec = names
        .spec("gitd", "pkgnode-builders")
        .image(&image.0, &image.1)
        .mount(repos.path(), REPOS)
        .user(&user)
        // The uid may have no passwd entry in the image: give git a home it can write.
        .env("HOME", "/tmp");
    spec.entrypoint = Some("git".into());
    spec.cmd = [
        "daemon",
        "--reuseaddr",
        "--export-all",
        "--informative-errors",
        // The default (32) refuses clones when a hundred builders poll at once.
        "--max-connections=0",
        "--init-timeout=10",
        "--timeout=120",
        &format!("--base-path={REPOS}"),
        REPOS,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let started = containers::start(spec)?;
    // testcontainers attaches without aliases: attach again with the one the nodes use.
    engine::disconnect(&names.network, &started.name)?;
    engine::connect(&names.network, &started.name, Some(ALIAS))?;
    // The daemon answers a repository it does not serve with a remote error; before it
    // listens, `ls-remote` cannot connect.
    let probe = format!("git://127.0.0.1/{}.git", names.container("ready"));
    engine::wait_until(
        "git daemon",
        Some(&started.name),
        timeout,
        || match engine::exec(&started.name, None, &["git", "ls-remote", &probe]) {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("remote error") => Ok(true),
            Err(e) => Err(e.to_string()),
        },
    )?;
    let version = engine::exec(&started.name, None, &["git", "--version"])?;
    // `git version 2.39.5` → `2.39.5`.
    let version = version.split_whitespace().last().unwrap_or_default().into();
    Ok(GitDaemon {
        started,
        version,
        repos,
    })
}

impl GitDaemon {
    /// Where the commit driver pushes (the bare repositories on the host) and where the nodes
    /// clone from (`git://gitd`).
    pub fn remote(&self) -> GitRemote {
        GitRemote {
            push_base: self.repos.path().display().to_string(),
            clone_base: format!("git://{ALIAS}"),
        }
    }

    /// Creates the empty bare repository `NAME.git` with the daemon's git (idempotent).
    pub fn create_repository(&self, name: &str) -> Result<(), InfraError> {
        check_repository_name(name)?;
        if self.repos.path().join(format!("{name}.git/HEAD")).is_file() {
            return Ok(());
        }
        engine::exec(
            &self.started.name,
            None,
            &[
                "git",
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                &format!("{REPOS}/{name}.git"),
            ],
        )
        .map(|_| ())
    }
}

/// A repository name is one plain path component: letters, digits, `-`, `_`, `.`, not
/// starting with a dot (so nothing escapes the base path).
fn check_repository_name(name: &str) -> Result<(), InfraError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(InfraError::Failed {
            what: "git repository".into(),
            detail: format!("{name:?} is not a plain repository name"),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn repository_names_stay_under_the_base_path() {
        assert!(super::check_repository_name("gb-r-0").is_ok());
        assert!(super::check_repository_name("pkg_1.2").is_ok());
        for bad in ["", ".git", "../escape", "a/b", "a b"] {
            assert!(super::check_repository_name(bad).is_err(), "{bad:?}");
        }
    }
}
