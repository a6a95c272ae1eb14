//! Several load-generator processes for one run (`--generators N`): each child is this
//! harness binary running `harness generator SPEC`, which executes slice `i` of `N` of the one
//! schedule against the cluster the coordinator started, from the same wall-clock start, and
//! writes its own run record. The coordinator samples every child's CPU, waits for them, and
//! merges their records losslessly; the thresholds are judged over the merge, never per slice.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reports::RunRecord;
use scenarios::load_model::DailyInstallsConfig;
use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::infra::{Endpoints, Monitored};
use crate::plan::{CorpusSource, RunPlan, Slice};

/// Everything a child generator needs, written as JSON for `harness generator SPEC`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GeneratorSpec {
    /// The run's name, for the child's record.
    pub name: String,
    /// The read load, as the coordinator planned it (the child executes one slice of it).
    pub reads: DailyInstallsConfig,
    /// The thresholds' expressions (a child judges its own slice; the merge is what counts).
    pub thresholds: Vec<String>,
    pub base_url: String,
    pub pypi_repo: String,
    pub cran_repo: String,
    pub slice: Slice,
    pub start_at: DateTime<Utc>,
    pub corpus: CorpusSource,
    /// The child's run directory.
    pub out: PathBuf,
}

/// The running children.
pub struct Children {
    running: Vec<(usize, tokio::process::Child, PathBuf)>,
}

/// Starts `count` children of the read load `reads`, slice `i` writing to `records_dir/i`, all starting at `start_at`.
/// Each child's stderr goes to `records_dir/i.log`.
pub fn spawn(
    plan: &RunPlan,
    reads: &DailyInstallsConfig,
    endpoints: &Endpoints,
    start_at: DateTime<Utc>,
    records_dir: &Path,
) -> Result<Children, HarnessError> {
    let count = plan.generators.children;
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(records_dir)?;
    let mut running = Vec::with_capacity(count);
    for index in 0..count {
        let out = records_dir.join(index.to_string());
        let spec = GeneratorSpec {
            name: plan.name.clone(),
            reads: reads.clone(),
            thresholds: plan
                .thresholds
                .thresholds
                .iter()
                .map(|t| t.expr.clone())
                .collect(),
            base_url: endpoints.base_url.clone(),
            pypi_repo: endpoints.pypi_repo.clone(),
            cran_repo: endpoints.cran_repo.clone(),
            slice: Slice { index, count },
            start_at,
            // The coordinator published the corpus (or discovered it; each child discovers
            // the same one from the same target).
            corpus: match plan.generators.corpus {
                CorpusSource::Discover => CorpusSource::Discover,
                _ => CorpusSource::Served,
            },
            out: out.clone(),
        };
        let spec_path = records_dir.join(format!("{index}.spec.json"));
        let json =
            serde_json::to_vec_pretty(&spec).map_err(|e| HarnessError::Internal(e.to_string()))?;
        reports::store::hdr::write_atomic(&spec_path, &json)?;
        let log = std::fs::File::create(records_dir.join(format!("{index}.log")))?;
        let child = tokio::process::Command::new(&exe)
            .arg("generator")
            .arg(&spec_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // An interrupted coordinator takes its generators with it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                HarnessError::Internal(format!(
                    "starting generator {index} ({}): {e}",
                    exe.display()
                ))
            })?;
        running.push((index, child, out));
    }
    Ok(Children { running })
}

impl Children {
    /// The children as sampled processes, `load-generator-{i}`.
    pub fn monitored(&self) -> Vec<Monitored> {
        self.running
            .iter()
            .filter_map(|(index, child, _)| {
                Some(Monitored {
                    name: format!("load-generator-{index}"),
                    pid: child.id()?,
                })
            })
            .collect()
    }

    /// Waits for every child (at most `timeout`, then kills them) and reads their records.
    /// A child that exits other than pass (0), threshold failed (1) or unknown (5) fails the
    /// run with its log's tail: its slice is missing, so no merge could be judged.
    pub async fn wait(self, timeout: Duration) -> Result<Vec<RunRecord>, HarnessError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut records = Vec::with_capacity(self.running.len());
        for (index, mut child, out) in self.running {
            let status = match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(status) => status?,
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(HarnessError::Internal(format!(
                        "generator {index} did not finish within {timeout:?}"
                    )));
                }
            };
            if !matches!(status.code(), Some(0 | 1 | 5)) {
                return Err(HarnessError::Internal(format!(
                    "generator {index} failed ({status}): {}",
                    log_tail(&out)
                )));
            }
            records.push(reports::store::read_run_dir(&out)?);
        }
        Ok(records)
    }
}

fn log_tail(out: &Path) -> String {
    let log = out.with_extension("log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    format!("{tail} (log: {})", log.display())
}

/// The slices' records merged into one: metrics added losslessly on the shared clock, each
/// slice's events kept and named after it. The result still has to be judged.
pub fn merge(records: &[RunRecord]) -> Result<Option<RunRecord>, HarnessError> {
    let mut iter = records.iter().enumerate();
    let Some((_, first)) = iter.next() else {
        return Ok(None);
    };
    let mut merged = named(first, 0);
    for (index, record) in iter {
        merged.merge(&named(record, index))?;
    }
    // The reads' figures are the merge's, not the first slice's.
    let duration_s = merged.meta.duration_s;
    for section in &mut merged.workloads {
        if section.name == "installs" {
            section.figures = read_figures(&merged.metrics, duration_s);
        }
    }
    Ok(Some(merged))
}

/// A slice's record with its events prefixed by `generator {index}: ` and its own CPU and
/// memory samples named `load-generator-{index}`.
fn named(record: &RunRecord, index: usize) -> RunRecord {
    let mut record = record.clone();
    for event in &mut record.events {
        event.message = format!("generator {index}: {}", event.message);
    }
    for sample in &mut record.samples {
        if sample.process == "load-generator" {
            sample.process = format!("load-generator-{index}");
        }
    }
    record
}

/// The reads' headline figures from `metrics` of a run lasting `run_time_s`: install p50 and
/// p99, installs scheduled and failed, the achieved rate. Recomputed when the records of
/// several generators are merged (each slice's figures are its own).
pub(crate) fn read_figures(
    metrics: &reports::Metrics,
    run_time_s: f64,
) -> std::collections::BTreeMap<String, f64> {
    let mut figures = std::collections::BTreeMap::new();
    for (name, q) in [("install_p50_ms", 0.5), ("install_p99_ms", 0.99)] {
        if let Some(ms) = metrics
            .kinds
            .get(scenarios::daily_installs::KIND_INSTALL)
            .and_then(|k| k.latency_ms(q))
        {
            figures.insert(name.to_string(), ms);
        }
    }
    if let Some(k) = metrics.kinds.get(scenarios::daily_installs::KIND_INSTALL) {
        figures.insert("installs_scheduled".into(), k.scheduled() as f64);
        figures.insert("installs_failed".into(), k.err() as f64);
        if run_time_s > 0.0 {
            figures.insert(
                "install_rate_achieved_per_s".into(),
                k.ok() as f64 / run_time_s,
            );
        }
    }
    figures
}
