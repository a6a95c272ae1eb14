//! Cutting a local member off the network and reconnecting it, the way `docker network
//! disconnect` does for a container. Every member runs in a cgroup (v2) of its own,
//! `pkgcluster/RUN/MEMBER`; a cut is one iptables rule that drops every packet a socket of that
//! cgroup sends (`-m cgroup --path`), so the member can neither answer nor reach anyone, over
//! established connections as well as new ones, and whatever it had in flight resumes (TCP
//! retransmits) when the rule goes. Loopback addresses alone cannot express this: a process's
//! connections to 127.0.0.1 leave from 127.0.0.1 whatever address it listens on.
//!
//! Needs root (cgroup dirs, iptables) and a writable cgroup2 mount; without them the cluster
//! runs as before and [`super::super::Control::Disconnect`] is refused with the reason.
//!
//! **Invariant:** no rule outlives its run. Rules carry the comment `pkgcluster:RUN/MEMBER` and
//! are deleted before their cgroup; teardown removes both, and the next run reaps the rules and
//! cgroups of a harness that died (its pid is part of RUN), as the docker provider reaps
//! containers.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::infra::InfraError;

/// The cgroup dir (under the cgroup2 root) holding every run's cgroups.
const GROUP: &str = "pkgcluster";

/// The cgroups of one run and the cuts made on them.
#[derive(Debug)]
pub struct Network {
    /// The cgroup2 mount point.
    root: PathBuf,
    /// `h{harness pid}-{random}`.
    run: String,
}

impl Network {
    /// The run's cgroup dir, after reaping what dead harnesses left; the reason when this
    /// machine cannot cut members off.
    pub fn open() -> Result<Self, String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err("cutting a member off needs root (cgroups and iptables)".into());
        }
        let root = cgroup2_root().ok_or("no cgroup2 file system is mounted")?;
        iptables(&["-L", "OUTPUT", "-n"]).map_err(|e| format!("iptables does not work: {e}"))?;
        let group = root.join(GROUP);
        std::fs::create_dir_all(&group)
            .map_err(|e| format!("cannot create the cgroup {}: {e}", group.display()))?;
        for orphan in reap_orphans(&root) {
            tracing::warn!(run = %orphan, "removed the network cuts of a harness run that no longer exists");
        }
        let run = format!("h{}-{:08x}", std::process::id(), rand::random::<u32>());
        let dir = group.join(&run);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create the cgroup {}: {e}", dir.display()))?;
        Ok(Self { root, run })
    }

    /// The cgroup dir `member`'s processes join (created on first use).
    pub fn cgroup(&self, member: &str) -> Result<PathBuf, InfraError> {
        let dir = self.root.join(GROUP).join(&self.run).join(member);
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(InfraError::Failed {
                what: format!("cgroup for {member}"),
                detail: format!("cannot create {}: {e}", dir.display()),
            }),
            _ => Ok(dir),
        }
    }

    /// Drops every packet `member` sends from now on. Idempotent.
    pub fn cut(&self, member: &str) -> Result<(), InfraError> {
        add(&rule(&self.run, member), || format!("cutting {member} off"))
    }

    /// Drops only what `member` sends to `port` on 127.0.0.1 (the database endpoint): it
    /// still answers its clients but cannot reach the database. Idempotent; healed by
    /// [`reconnect`](Self::reconnect) like a full cut.
    pub fn cut_to_port(&self, member: &str, port: u16) -> Result<(), InfraError> {
        let mut rule = vec![
            "-p".to_string(),
            "tcp".into(),
            "-d".into(),
            "127.0.0.1".into(),
            "--dport".into(),
            port.to_string(),
        ];
        rule.extend(self::rule(&self.run, member));
        add(&rule, || format!("cutting {member} off port {port}"))
    }

    /// Lets `member`'s packets through again. Idempotent.
    pub fn reconnect(&self, member: &str) -> Result<(), InfraError> {
        delete_rule(&self.run, member).map_err(|detail| InfraError::Failed {
            what: format!("reconnecting {member}"),
            detail,
        })
    }

    /// Deletes the run's rules, then its cgroups (their processes must be gone).
    pub fn remove(&self) -> Result<(), InfraError> {
        remove_run(&self.root, &self.run).map_err(|detail| InfraError::Failed {
            what: "local network cuts".into(),
            detail,
        })
    }
}

/// The rule's match and target, without the chain command.
fn rule(run: &str, member: &str) -> Vec<String> {
    let path = format!("{GROUP}/{run}/{member}");
    [
        "-m",
        "cgroup",
        "--path",
        &path,
        "-m",
        "comment",
        "--comment",
        &format!("pkgcluster:{run}/{member}"),
        "-j",
        "DROP",
    ]
    .map(str::to_string)
    .to_vec()
}

/// Inserts `rule` unless it is in force already.
fn add(rule: &[String], what: impl FnOnce() -> String) -> Result<(), InfraError> {
    if iptables(&check(rule)).is_ok() {
        return Ok(());
    }
    iptables(&insert(rule))
        .map(drop)
        .map_err(|detail| InfraError::Failed {
            what: what(),
            detail,
        })
}

fn with_command(command: &str, rule: &[String]) -> Vec<String> {
    let mut args = vec![command.to_string(), "OUTPUT".to_string()];
    args.extend_from_slice(rule);
    args
}

fn check(rule: &[String]) -> Vec<String> {
    with_command("-C", rule)
}

fn insert(rule: &[String]) -> Vec<String> {
    with_command("-I", rule)
}

/// Deletes every rule tagged with the member's comment, whole cuts and port cuts alike (by
/// spec, as `iptables -S` lists them: rule numbers shift under concurrent runs). Needs the
/// cgroup to exist, since iptables resolves the path.
fn delete_rule(run: &str, member: &str) -> Result<(), String> {
    let tag = format!("pkgcluster:{run}/{member}");
    // Bounded: one insert per cut, and cuts are idempotent.
    for _ in 0..16 {
        let listed = iptables(&["-S", "OUTPUT"])?;
        let Some(spec) = tagged_rules(&listed, &tag).into_iter().next() else {
            return Ok(());
        };
        iptables(&with_command("-D", &spec))?;
    }
    Err(format!("the rules for {run}/{member} keep coming back"))
}

/// The specs (without `-A OUTPUT`) of the rules in `iptables -S OUTPUT` text whose comment is
/// exactly `tag`.
fn tagged_rules(listed: &str, tag: &str) -> Vec<Vec<String>> {
    listed
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let tagged = words
                .windows(2)
                .any(|w| w[0] == "--comment" && w[1].trim_matches('"') == tag);
            (tagged && words.starts_with(&["-A", "OUTPUT"])).then(|| {
                words[2..]
                    .iter()
                    .map(|w| w.trim_matches('"').to_string())
                    .collect()
            })
        })
        .collect()
}

/// Deletes the rules of every member cgroup under the run's dir, then the cgroups and the dir.
fn remove_run(root: &Path, run: &str) -> Result<(), String> {
    let dir = root.join(GROUP).join(run);
    let members = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let mut errors = Vec::new();
    for member in members {
        if let Err(error) = delete_rule(run, &member) {
            errors.push(error);
            continue;
        }
        let cgroup = dir.join(&member);
        if let Err(error) = std::fs::remove_dir(&cgroup)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(format!("cannot remove {}: {error}", cgroup.display()));
        }
    }
    if let Err(error) = std::fs::remove_dir(&dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        errors.push(format!("cannot remove {}: {error}", dir.display()));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Removes the rules and cgroups of runs whose harness process is gone; returns their names.
fn reap_orphans(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(GROUP)) else {
        return Vec::new();
    };
    let mut reaped = Vec::new();
    for entry in entries.flatten() {
        let run = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&run) else {
            continue;
        };
        if super::process::pid_exists(pid) {
            continue;
        }
        match remove_run(root, &run) {
            Ok(()) => reaped.push(run),
            Err(error) => tracing::warn!(%run, %error, "could not reap a dead run's network cuts"),
        }
    }
    reaped
}

/// `h1234-0badf00d` → 1234.
fn owner_pid(run: &str) -> Option<u32> {
    run.strip_prefix('h')?.split_once('-')?.0.parse().ok()
}

/// Where cgroup2 is mounted (`/sys/fs/cgroup` on a pure v2 system, `/sys/fs/cgroup/unified` on a
/// hybrid one).
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, path, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(path))
    })
}

/// `iptables -w 10 ARGS`; the error carries its stderr.
fn iptables<S: AsRef<str>>(args: &[S]) -> Result<String, String> {
    let output = Command::new("iptables")
        .args(["-w", "10"])
        .args(args.iter().map(AsRef::as_ref))
        .output()
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_names_its_harness() {
        assert_eq!(owner_pid("h1234-0badf00d"), Some(1234));
        assert_eq!(owner_pid("other"), None);
        assert_eq!(owner_pid("hx-1"), None);
    }

    #[test]
    fn listed_rules_are_found_by_their_exact_tag() {
        let listed = "-P OUTPUT ACCEPT\n\
            -A OUTPUT -p tcp -d 127.0.0.1/32 --dport 5000 -m cgroup --path pkgcluster/h1-2/node-1 -m comment --comment pkgcluster:h1-2/node-1 -j DROP\n\
            -A OUTPUT -m cgroup --path pkgcluster/h1-2/node-10 -m comment --comment pkgcluster:h1-2/node-10 -j DROP\n";
        let found = tagged_rules(listed, "pkgcluster:h1-2/node-1");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0][..6].join(" "),
            "-p tcp -d 127.0.0.1/32 --dport 5000"
        );
        assert_eq!(
            tagged_rules(listed, "pkgcluster:h1-2/node-2"),
            Vec::<Vec<String>>::new()
        );
    }

    #[test]
    fn the_rule_matches_the_members_cgroup_and_names_it() {
        let rule = rule("h1-2", "node-1");
        assert_eq!(
            insert(&rule).join(" "),
            "-I OUTPUT -m cgroup --path pkgcluster/h1-2/node-1 -m comment --comment \
             pkgcluster:h1-2/node-1 -j DROP"
        );
    }
}
