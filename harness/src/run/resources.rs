//! CPU and memory of the processes under test, sampled from /proc during the run. A process's
//! figures include its descendants (PostgreSQL's backends belong to the postmaster), except
//! those sampled under a name of their own: the local provider's cluster processes are children
//! of the harness, and must not count as the load generator's CPU.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reports::record::ResourceSample;

use crate::infra::Monitored;

/// Total CPU ticks and RSS of a process and its descendants, leaving out the subtrees of
/// `others` (processes sampled on their own).
fn tree_usage(root: u32, parents: &HashMap<u32, u32>, others: &HashSet<u32>) -> Option<(u64, u64)> {
    let mut ticks = 0;
    let mut rss_pages = 0;
    let mut seen_root = false;
    for pid in tree_members(root, parents, others) {
        if let Some((t, r)) = proc_stat(pid) {
            ticks += t;
            rss_pages += r;
            seen_root |= pid == root;
        }
    }
    seen_root.then(|| (ticks, rss_pages * page_size()))
}

/// `root` and its descendants, without the subtrees rooted at `others`.
fn tree_members(root: u32, parents: &HashMap<u32, u32>, others: &HashSet<u32>) -> Vec<u32> {
    let mut members = vec![root];
    let mut index = 0;
    while index < members.len() {
        let parent = members[index];
        members.extend(
            parents
                .iter()
                .filter(|(pid, p)| **p == parent && !others.contains(pid))
                .map(|(pid, _)| *pid),
        );
        index += 1;
    }
    members
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// (utime + stime ticks, rss pages) from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss: u64 = fields.get(21)?.parse().ok()?;
    Some((utime + stime, rss))
}

fn parent_map() -> HashMap<u32, u32> {
    let mut parents = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(close) = text.rfind(')')
            && let Some(ppid) = text[close + 2..]
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
        {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// Samples `monitored` every `every` until the returned handle is stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<ResourceSample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(monitored: Vec<Monitored>, start: Instant, every: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        let task = tokio::task::spawn_blocking(move || {
            let hz = ticks_per_second();
            let mut previous: HashMap<String, (u64, Instant)> = HashMap::new();
            let roots: HashSet<u32> = monitored.iter().map(|m| m.pid).collect();
            loop {
                let parents = parent_map();
                let now = Instant::now();
                for process in &monitored {
                    let Some((ticks, rss)) = tree_usage(process.pid, &parents, &roots) else {
                        continue;
                    };
                    if let Some((last_ticks, last_at)) = previous.get(&process.name) {
                        let wall = now.duration_since(*last_at).as_secs_f64();
                        if wall > 0.0 {
                            let cpu_pct =
                                ticks.saturating_sub(*last_ticks) as f64 / hz / wall * 100.0;
                            if let Ok(mut out) = sink.lock() {
                                out.push(ResourceSample {
                                    at_s: now.saturating_duration_since(start).as_secs_f64(),
                                    process: process.name.clone(),
                                    cpu_pct,
                                    rss_bytes: rss,
                                });
                            }
                        }
                    }
                    previous.insert(process.name.clone(), (ticks, now));
                }
                // Stopped by dropping the sample list's other owner.
                if Arc::strong_count(&sink) == 1 {
                    return;
                }
                std::thread::sleep(every);
            }
        });
        Self { samples, task }
    }

    /// Stops sampling and returns what was gathered.
    pub async fn finish(self) -> Vec<ResourceSample> {
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        drop(self.samples);
        let _ = self.task.await;
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let parents = parent_map();
        let none = HashSet::new();
        let (ticks, rss) = tree_usage(std::process::id(), &parents, &none).expect("own process");
        assert!(rss > 0);
        let _ = ticks;
        assert!(tree_usage(u32::MAX - 1, &parents, &none).is_none());
    }

    #[test]
    fn a_subtree_sampled_on_its_own_is_not_counted_in_its_parent() {
        // harness 1 → node 2 → worker 3; harness 1 → helper 4.
        let parents = HashMap::from([(2, 1), (3, 2), (4, 1)]);
        let mut all = tree_members(1, &parents, &HashSet::new());
        all.sort();
        assert_eq!(all, [1, 2, 3, 4]);
        let mut own = tree_members(1, &parents, &HashSet::from([1, 2]));
        own.sort();
        assert_eq!(own, [1, 4]);
        let mut node = tree_members(2, &parents, &HashSet::from([1, 2]));
        node.sort();
        assert_eq!(node, [2, 3]);
    }
}
