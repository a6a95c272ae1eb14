//! The machine's process table, read through `procfs`: who is whose parent, what state a process
//! is in, its CPU time and memory, its command line. The local provider signals process trees
//! with it, the resource sampler measures them, and the tests look for anything left running.

use std::collections::HashSet;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// One process as the table saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pid: u32,
    pub parent: u32,
    pub group: u32,
    /// `R`, `S`, `T` (stopped), `Z`, …
    pub state: char,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

/// A snapshot of every process readable now (processes that exit while it is read are skipped).
#[derive(Debug, Clone, Default)]
pub struct Table {
    entries: Vec<Entry>,
}

impl Table {
    pub fn read() -> Self {
        let page = procfs::page_size();
        let entries = procfs::process::all_processes()
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|process| {
                let stat = process.stat().ok()?;
                Some(Entry {
                    pid: u32::try_from(stat.pid).ok()?,
                    parent: u32::try_from(stat.ppid).unwrap_or(0),
                    group: u32::try_from(stat.pgrp).unwrap_or(0),
                    state: stat.state,
                    cpu_ticks: stat.utime + stat.stime,
                    rss_bytes: stat.rss * page,
                })
            })
            .collect();
        Self { entries }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// A table of exactly these processes (for tests of the tree walks).
    pub fn of(entries: Vec<Entry>) -> Self {
        Self { entries }
    }

    /// `root` and every descendant of it, `root` first; empty when `root` is not in the table.
    pub fn tree(&self, root: u32) -> Vec<&Entry> {
        self.tree_without(root, &HashSet::new())
    }

    /// [`Table::tree`] without the subtrees rooted at `others` (processes measured on their own:
    /// the local provider's cluster processes are children of the harness).
    pub fn tree_without(&self, root: u32, others: &HashSet<u32>) -> Vec<&Entry> {
        let Some(first) = self.entries.iter().find(|entry| entry.pid == root) else {
            return Vec::new();
        };
        let mut found = vec![first];
        let mut next = 0;
        while next < found.len() {
            let parent = found[next].pid;
            found.extend(
                self.entries
                    .iter()
                    .filter(|entry| entry.parent == parent && !others.contains(&entry.pid)),
            );
            next += 1;
        }
        found
    }

    /// Summed CPU ticks and resident bytes of `root` and its descendants (PostgreSQL's backends
    /// belong to the postmaster) but not of the subtrees rooted at `others`; `None` when `root`
    /// is gone.
    pub fn tree_usage(&self, root: u32, others: &HashSet<u32>) -> Option<(u64, u64)> {
        let tree = self.tree_without(root, others);
        (!tree.is_empty()).then(|| {
            tree.iter().fold((0, 0), |(ticks, rss), entry| {
                (ticks + entry.cpu_ticks, rss + entry.rss_bytes)
            })
        })
    }
}

/// Clock ticks per second of the CPU times in [`Entry::cpu_ticks`].
pub fn ticks_per_second() -> u64 {
    procfs::ticks_per_second()
}

/// The state letter of one process, `None` when it is gone.
pub fn state(pid: u32) -> Option<char> {
    let process = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    Some(process.stat().ok()?.state)
}

/// A process's command line, arguments joined by spaces (empty when it is gone or a kernel thread).
pub fn command_line(pid: u32) -> String {
    arguments(pid)
        .map(|args| args.join(" "))
        .unwrap_or_default()
}

/// A process's arguments, the program first; `None` when it is gone.
fn arguments(pid: u32) -> Option<Vec<String>> {
    let process = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    process.cmdline().ok()
}

/// Command lines of every process whose command line contains `needle`.
pub fn command_lines_containing(needle: &str) -> Vec<String> {
    Table::read()
        .entries()
        .iter()
        .map(|entry| command_line(entry.pid))
        .filter(|line| line.contains(needle))
        .collect()
}

/// The pid of the docker-proxy that forwards host port `port` (docker's userland proxy for a
/// published port: every byte the load sends through it is copied by that process).
pub fn docker_proxy_for(port: u16) -> Option<u32> {
    let wanted = port.to_string();
    Table::read().entries().iter().map(|e| e.pid).find(|&pid| {
        arguments(pid).is_some_and(|args| {
            args.first().is_some_and(|a| a.ends_with("docker-proxy"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "-host-port" && w[1] == wanted)
        })
    })
}

/// Whether a pid names a live (or unreaped) process.
pub fn exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence and permission only; EPERM means it exists.
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_sees_this_process_and_its_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let me = std::process::id();
        let table = Table::read();
        let tree: Vec<u32> = table.tree(me).iter().map(|entry| entry.pid).collect();
        assert_eq!(tree.first(), Some(&me));
        assert!(tree.contains(&child.id()), "{tree:?}");
        let (_, rss) = table
            .tree_usage(me, &HashSet::new())
            .expect("this process is in the table");
        assert!(rss > 0);
        assert!(command_line(child.id()).starts_with("sleep 30"));
        assert!(exists(child.id()));
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(!exists(child.id()));
        assert_eq!(state(child.id()), None);
        assert!(table.tree(u32::MAX).is_empty());
        assert!(table.tree_usage(u32::MAX, &HashSet::new()).is_none());
    }

    #[test]
    fn a_subtree_measured_on_its_own_is_not_counted_in_its_parent() {
        // harness 1 → node 2 → worker 3; harness 1 → helper 4.
        let entry = |pid, parent| Entry {
            pid,
            parent,
            group: pid,
            state: 'S',
            cpu_ticks: 10 * u64::from(pid),
            rss_bytes: 1,
        };
        let table = Table::of(vec![entry(1, 0), entry(2, 1), entry(3, 2), entry(4, 1)]);
        let pids = |tree: Vec<&Entry>| {
            let mut pids: Vec<u32> = tree.iter().map(|entry| entry.pid).collect();
            pids.sort();
            pids
        };
        assert_eq!(pids(table.tree(1)), [1, 2, 3, 4]);
        let measured = HashSet::from([1, 2]);
        assert_eq!(pids(table.tree_without(1, &measured)), [1, 4]);
        assert_eq!(pids(table.tree_without(2, &measured)), [2, 3]);
        assert_eq!(table.tree_usage(1, &measured), Some((50, 2)));
    }
}
