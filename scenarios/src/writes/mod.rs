//! The write workload of a drill: an upload writer that sends new, unique package versions
//! (wheels and R source tarballs, alternately) through the load balancer at a fixed rate, and
//! keeps a **ledger** of every upload it invoked: identity (name, version, sha256), invoke and
//! completion times, and an outcome in Jepsen's three values. [`read_back`] reads each ledger
//! entry back from every node after the run, for the lost-writes checker.
//!
//! An outcome is `failed` only when the upload certainly did not happen (the connection was
//! refused, or the server answered with a definite refusal); a timeout, a reset after the body
//! was sent, or a gateway error (502/504: the balancer lost the server mid-request) is
//! `unknown`, never `failed`.

mod read_back;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::corpus::{
    Artifact, PackageVersion, PyPackage, RPackage, mix_seed, r_tarball_bytes, wheel_bytes,
};
use crate::daily_installs::upload::{content_form, twine_form};
use crate::error::ScenarioError;

pub use read_back::{ReadBack, ReadOutcome, read_back};

/// How the writer runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriterConfig {
    /// Uploads invoked per second (open model: on schedule, whatever earlier ones are doing).
    pub writes_per_s: f64,
    /// How long the writer invokes uploads.
    pub duration: Duration,
    /// Makes package names unique to this run, so drills repeated against one cluster never
    /// collide: lowercase letters and digits only.
    pub tag: String,
    /// Seed of the artifacts' padding bytes.
    pub seed: u64,
    /// Bytes of padding per artifact (their size on the wire).
    pub size_bytes: u64,
    /// Uploads in flight at most; a due upload waits for a slot (and is invoked late).
    pub max_in_flight: usize,
    /// An upload that has not answered by then is `unknown`.
    pub timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            writes_per_s: 2.0,
            duration: Duration::from_secs(60),
            tag: "w".into(),
            seed: 1,
            size_bytes: 4_000,
            max_in_flight: 32,
            timeout: Duration::from_secs(30),
        }
    }
}

impl WriterConfig {
    /// Every problem with the configuration, not only the first.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut problems = Vec::new();
        // Zero is allowed: no uploads, so the writes checker can only answer unknown.
        if !(self.writes_per_s >= 0.0 && self.writes_per_s <= 1000.0) {
            problems.push(format!(
                "writes_per_s must be in [0, 1000], not {}",
                self.writes_per_s
            ));
        }
        if self.duration.is_zero() {
            problems.push("the writer's duration must be above 0".into());
        }
        if self.tag.is_empty()
            || !self
                .tag
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            problems.push(format!(
                "tag must be lowercase letters and digits, not {:?}",
                self.tag
            ));
        }
        if self.max_in_flight == 0 {
            problems.push("max_in_flight must be at least 1".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::InvalidConfig {
                what: "upload writer",
                problems,
            })
        }
    }

    /// Uploads the writer will invoke.
    pub fn planned_writes(&self) -> usize {
        (self.writes_per_s * self.duration.as_secs_f64()).floor() as usize
    }
}

/// Which repository format an upload goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteFormat {
    /// A wheel through the twine form to the PyPI upload endpoint.
    Python,
    /// An R source tarball to the CRAN upload endpoint.
    R,
}

/// What the client knows of an upload's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOutcome {
    /// Acknowledged (2xx): it must survive.
    Ok,
    /// Certainly not done: refused before it was sent, or a definite refusal by the server.
    Failed,
    /// May or may not have been done (timeout, reset, gateway error).
    Unknown,
}

/// One upload the writer invoked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Sequence number within the run, from 0.
    pub seq: usize,
    pub format: WriteFormat,
    /// Package name as uploaded.
    pub name: String,
    pub version: String,
    /// File name as served.
    pub file_name: String,
    /// Hex SHA-256 of the bytes sent.
    pub sha256: String,
    /// Seconds since the run start when it was due.
    pub scheduled_s: f64,
    /// Seconds since the run start when the request was sent.
    pub invoked_s: f64,
    /// Seconds since the run start when the answer (or the error) came.
    pub completed_s: f64,
    pub outcome: WriteOutcome,
    /// HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The error or the start of the answer's body, for failed and unknown uploads.
    pub detail: String,
}

/// Where uploads go: the balancer's base URL, the two sources and their tokens.
#[derive(Clone, Debug)]
pub struct WriteTarget {
    pub base_url: String,
    pub pypi_source: String,
    pub cran_source: String,
    pub pypi_token: String,
    pub cran_token: String,
}

/// The header naming an upload (its file name, unique per writer run); the nodes log it when
/// the upload arrives.
pub const UPLOAD_ID_HEADER: &str = "x-request-id";

/// The package the writer sends as upload `seq`: unique name, version 1.0.
pub fn artifact(
    config: &WriterConfig,
    seq: usize,
) -> Result<(WriteFormat, String, Artifact), ScenarioError> {
    let version = PackageVersion {
        version: "1.0".into(),
        size_bytes: config.size_bytes,
        content_seed: mix_seed(config.seed, seq as u64 ^ 0x5772_6974),
    };
    if seq.is_multiple_of(2) {
        let name = format!("ledger-{}-{seq}", config.tag);
        let pkg = PyPackage {
            name: name.clone(),
            rank: 1,
            versions: vec![version.clone()],
            deps: Vec::new(),
            requires: Vec::new(),
            wheel_pythons: Vec::new(),
        };
        Ok((WriteFormat::Python, name, wheel_bytes(&pkg, &version)?))
    } else {
        // R names: letters, digits and dots, starting with a letter.
        let name = format!("ledger.{}.{seq}", config.tag);
        let pkg = RPackage {
            name: name.clone(),
            rank: 1,
            versions: vec![version.clone()],
            deps: Vec::new(),
            imports: Vec::new(),
        };
        Ok((WriteFormat::R, name, r_tarball_bytes(&pkg, &version)?))
    }
}

/// The name patterns (SQL `LIKE`) of every package the writer with `tag` uploads, Python then
/// R: what the database holds of this writer is found by them.
pub fn name_patterns(tag: &str) -> [String; 2] {
    [format!("ledger-{tag}-%"), format!("ledger.{tag}.%")]
}

/// Uploads artifact `seq` of `config` once, now, and returns its ledger entry (times from
/// `start`): the single upload a recovery check makes after a heal.
pub async fn upload_one(
    client: &reqwest::Client,
    target: &WriteTarget,
    config: &WriterConfig,
    seq: usize,
    start: Instant,
) -> Result<LedgerEntry, ScenarioError> {
    config.validate()?;
    let (format, name, artifact) = artifact(config, seq)?;
    let due = start.elapsed();
    Ok(upload(
        client,
        target,
        config.timeout,
        start,
        seq,
        due,
        format,
        name,
        artifact,
    )
    .await)
}

/// Invokes `config.planned_writes()` uploads at their scheduled times from `start` and returns
/// the ledger, in sequence order. Bounded in count and in time: it returns at most
/// `duration + timeout` after `start`.
pub async fn run_writer(
    client: &reqwest::Client,
    target: &WriteTarget,
    config: &WriterConfig,
    start: Instant,
) -> Result<Vec<LedgerEntry>, ScenarioError> {
    config.validate()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight));
    let mut tasks = Vec::with_capacity(config.planned_writes());
    for seq in 0..config.planned_writes() {
        let due = Duration::from_secs_f64(seq as f64 / config.writes_per_s);
        let (format, name, artifact) = artifact(config, seq)?;
        tokio::time::sleep_until((start + due).into()).await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (client, target, timeout) = (client.clone(), target.clone(), config.timeout);
        tasks.push(tokio::spawn(async move {
            let entry = upload(
                &client, &target, timeout, start, seq, due, format, name, artifact,
            )
            .await;
            drop(slot);
            entry
        }));
    }
    let mut ledger = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(entry) => ledger.push(entry),
            Err(e) => {
                return Err(ScenarioError::Internal(format!("upload task: {e}")));
            }
        }
    }
    Ok(ledger)
}

#[allow(clippy::too_many_arguments)]
async fn upload(
    client: &reqwest::Client,
    target: &WriteTarget,
    timeout: Duration,
    start: Instant,
    seq: usize,
    due: Duration,
    format: WriteFormat,
    name: String,
    artifact: Artifact,
) -> LedgerEntry {
    let since = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
    let sha256 = artifact.sha256_hex();
    let file_name = artifact.file_name.clone();
    let form = match format {
        WriteFormat::Python => twine_form(&name, "1.0", &[], artifact),
        WriteFormat::R => content_form(artifact),
    };
    let (url, token) = match format {
        WriteFormat::Python => (
            format!("{}/upload/pypi/{}", target.base_url, target.pypi_source),
            &target.pypi_token,
        ),
        WriteFormat::R => (
            format!("{}/upload/cran/{}", target.base_url, target.cran_source),
            &target.cran_token,
        ),
    };
    let invoked = Instant::now();
    let (outcome, status, detail) = match form {
        Err(e) => (WriteOutcome::Failed, None, e.to_string()),
        Ok(form) => {
            let sent = client
                .post(&url)
                .basic_auth("__token__", Some(token))
                // One id per upload: the nodes log it on arrival, so a request the balancer
                // sent to two nodes shows in both logs.
                .header(UPLOAD_ID_HEADER, file_name.as_str())
                .multipart(form)
                .timeout(timeout)
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    let outcome = classify(status, &body);
                    let detail = if outcome == WriteOutcome::Ok {
                        String::new()
                    } else {
                        body.chars().take(200).collect()
                    };
                    (outcome, Some(status), detail)
                }
                Err(e) => (classify_error(&e), None, error_chain(&e)),
            }
        }
    };
    LedgerEntry {
        seq,
        format,
        name,
        version: "1.0".into(),
        file_name,
        sha256,
        scheduled_s: due.as_secs_f64(),
        invoked_s: since(invoked),
        completed_s: since(Instant::now()),
        outcome,
        status,
        detail,
    }
}

/// 2xx is acknowledged; 502 and 504 mean the balancer lost the server mid-request, which may
/// have committed, and so does the node's 503 whose body says the commit's outcome is unknown
/// (its connection to the database died during COMMIT); every other answer is a definite
/// refusal.
pub fn classify(status: u16, body: &str) -> WriteOutcome {
    match status {
        200..=299 => WriteOutcome::Ok,
        502 | 504 => WriteOutcome::Unknown,
        503 if body.contains("may or may not") => WriteOutcome::Unknown,
        _ => WriteOutcome::Failed,
    }
}

/// Only a connection that was never made is certainly not a write.
fn classify_error(error: &reqwest::Error) -> WriteOutcome {
    if error.is_connect() {
        WriteOutcome::Failed
    } else {
        WriteOutcome::Unknown
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
