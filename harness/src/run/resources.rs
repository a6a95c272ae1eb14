//! CPU and memory of the processes under test, sampled from the process table during the run. A process's
//! figures include its descendants (PostgreSQL's backends belong to the postmaster).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reports::record::ResourceSample;

use crate::infra::Monitored;
use crate::procs::{Table, ticks_per_second};

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
            let hz = ticks_per_second() as f64;
            let mut previous: HashMap<String, (u64, Instant)> = HashMap::new();
            loop {
                let table = Table::read();
                let now = Instant::now();
                for process in &monitored {
                    let Some((ticks, rss)) = table.tree_usage(process.pid) else {
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
