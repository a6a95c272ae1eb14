//! CPU and memory of the processes under test, sampled from /proc during the run. A process's
//! figures include its descendants (PostgreSQL's backends belong to the postmaster).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reports::record::ResourceSample;

use crate::infra::Monitored;

/// Total CPU ticks and RSS of a process and its descendants.
fn tree_usage(root: u32, parents: &HashMap<u32, u32>) -> Option<(u64, u64)> {
    let mut members = vec![root];
    let mut index = 0;
    while index < members.len() {
        let parent = members[index];
        members.extend(
            parents
                .iter()
                .filter(|(_, p)| **p == parent)
                .map(|(pid, _)| *pid),
        );
        index += 1;
    }
    let mut ticks = 0;
    let mut rss_pages = 0;
    let mut seen_root = false;
    for pid in members {
        if let Some((t, r)) = proc_stat(pid) {
            ticks += t;
            rss_pages += r;
            seen_root |= pid == root;
        }
    }
    seen_root.then(|| (ticks, rss_pages * page_size()))
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
            loop {
                let parents = parent_map();
                let now = Instant::now();
                for process in &monitored {
                    let Some((ticks, rss)) = tree_usage(process.pid, &parents) else {
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
        let (ticks, rss) = tree_usage(std::process::id(), &parents).expect("own process");
        assert!(rss > 0);
        let _ = ticks;
        assert!(tree_usage(u32::MAX - 1, &parents).is_none());
    }
}
