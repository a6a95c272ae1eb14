//! When a cluster counts as recovered after a heal: every node's `/__api__/status` answers
//! with the database `ok` and the node serving, the primary database answers, and every node
//! serves (index and bytes, on its own address) an upload made through the balancer after the
//! heal. `/__ping__` alone is not enough: it stays 200 while a node has lost its database.

use std::time::{Duration, Instant};

use scenarios::writes::{self, ReadOutcome, WriteOutcome, WriterConfig};

use super::Session;
use crate::infra::{InfraError, Member};

/// Time between looks at a cluster that has not recovered yet.
const POLL: Duration = Duration::from_millis(250);

impl Session<'_> {
    /// Until the cluster has recovered (see the module), at most `timeout`; what recovered
    /// it, for the timeline, or what was still awaited.
    pub(super) async fn wait_recovered(
        &mut self,
        timeout: Duration,
        healed_at: Instant,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let client = crate::http::http_client(Duration::from_secs(5))?;
        let endpoints = self.infra.endpoints().clone();
        let target = endpoints.write_target();
        // Package names of their own, so the writer's ledger never meets them.
        let probes = WriterConfig {
            tag: format!("heal{}", chrono::Utc::now().timestamp_millis()),
            writes_per_s: 1.0,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            ..WriterConfig::default()
        };
        let mut attempts = 0;
        let mut probe = None;
        loop {
            let mut waiting = crate::http::database_unreachable(&client, &endpoints.nodes).await;
            match self.probe(&Member::DatabasePrimary) {
                Ok(true) | Err(InfraError::Unsupported { .. }) => {}
                Ok(false) => waiting.push("the primary database does not answer".into()),
                Err(e) => waiting.push(format!("the primary database: {e}")),
            }
            if waiting.is_empty() && probe.is_none() {
                // A fresh package each attempt: an attempt whose outcome is unknown is left
                // alone, never sent again.
                let entry = writes::upload_one(&client, &target, &probes, attempts * 2, healed_at)
                    .await
                    .map_err(|e| format!("the recovery upload: {e}"))?;
                attempts += 1;
                if entry.outcome == WriteOutcome::Ok {
                    probe = Some(entry);
                } else {
                    waiting.push(format!(
                        "the upload {} after the heal was not acknowledged ({:?} {}: {})",
                        entry.file_name,
                        entry.outcome,
                        entry.status.map(|s| s.to_string()).unwrap_or_default(),
                        entry.detail
                    ));
                }
            }
            if let (true, Some(entry)) = (waiting.is_empty(), &probe) {
                let reads = writes::read_back(
                    &client,
                    &endpoints.nodes,
                    &endpoints.pypi_repo,
                    &endpoints.cran_repo,
                    std::slice::from_ref(entry),
                )
                .await;
                waiting.extend(
                    reads
                        .iter()
                        .filter(|r| r.outcome != ReadOutcome::Present)
                        .map(|r| {
                            format!(
                                "{} does not serve {} yet: {}",
                                r.node, entry.file_name, r.detail
                            )
                        }),
                );
                if waiting.is_empty() {
                    return Ok(format!(
                        "every node reports its database reachable and serves {}, uploaded {:.1} s after the heal",
                        entry.file_name, entry.invoked_s
                    ));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not recovered within {timeout:?}: {}",
                    waiting.join("; ")
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
