//! The checklist's I/O: reads what the rules judge from outside the nodes, through
//! [`Infra::endpoints`], [`Infra::balancer_states`] and [`Infra::node_command`] only, so it
//! runs the same on every provider. Bounded: every request and command has a timeout and
//! every poll a deadline.
//!
//! What it does to the cluster it undoes: the locktester's locks are released
//! ([`locktester`]), the drained node is put online again ([`drain`]).

mod drain;
mod locktester;

use std::time::{Duration, Instant};

use scenarios::writes::{ReadOutcome, WriteOutcome, WriterConfig, read_back, run_writer};

use super::ChecklistOptions;
use super::facts::{
    EndpointAnswer, Facts, MemberFact, NodeFacts, NodeStatusFacts, SharedStorageFacts, StorageRead,
};
use crate::error::HarnessError;
use crate::infra::{Endpoints, Infra};

/// The path that must be closed to non-members.
pub const LOAD_BALANCER_STATUS: &str = "/load-balancer/status";

/// Gathers every fact the rules read.
pub async fn gather(infra: &dyn Infra, options: &ChecklistOptions) -> Result<Facts, HarnessError> {
    let client = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .build()
        .map_err(|e| HarnessError::Internal(format!("HTTP client: {e}")))?;
    let endpoints = infra.endpoints();
    let mut nodes = Vec::new();
    for (name, url) in &endpoints.nodes {
        nodes.push(NodeFacts {
            node: name.clone(),
            url: url.clone(),
            status: node_status(&client, url).await,
        });
    }
    let mut status_endpoint = Vec::new();
    let asked = endpoints
        .nodes
        .iter()
        .cloned()
        .chain([("balancer".to_string(), endpoints.base_url.clone())]);
    for (name, base) in asked {
        let url = format!("{}{LOAD_BALANCER_STATUS}", base.trim_end_matches('/'));
        let answer = match client.get(&url).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(e.to_string()),
        };
        status_endpoint.push(EndpointAnswer {
            asked: name,
            url,
            answer,
        });
    }
    let shared_storage = shared_storage(&client, endpoints, options).await;
    let balancer = infra
        .balancer_states()
        .map(|states| states.map_err(|e| e.to_string()));
    let lock_test = locktester::lock_test(infra, &nodes, options).await;
    // Last: the drained node is Offline for a moment, which the other facts must not see.
    let balancer_drain = drain::drain(infra, &client, &nodes, &balancer, options).await;
    Ok(Facts {
        nodes,
        shared_storage,
        status_endpoint,
        balancer,
        lock_test,
        balancer_drain,
    })
}

/// One node's `/__api__/status` on its own URL.
async fn node_status(client: &reqwest::Client, url: &str) -> Result<NodeStatusFacts, String> {
    let url = format!("{}/__api__/status", url.trim_end_matches('/'));
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let json: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("{url}: not JSON: {e}"))?;
    Ok(parse_status(&json))
}

/// The fields the rules read; absent fields stay `None` (an older node, another product).
pub fn parse_status(json: &serde_json::Value) -> NodeStatusFacts {
    let text = |name: &str| json[name].as_str().map(str::to_string);
    NodeStatusFacts {
        node_id: text("node_id").unwrap_or_default(),
        version: text("version"),
        key_fingerprint: text("key_fingerprint"),
        config_digest: text("config_digest"),
        database_backend: text("database_backend"),
        storage: text("storage"),
        cluster_status: text("cluster_status"),
        serving: json["serving"].as_bool().unwrap_or(false),
        members: json["members"]
            .as_array()
            .map(|members| {
                members
                    .iter()
                    .map(|m| MemberFact {
                        uid: m["uid"].as_str().unwrap_or_default().to_string(),
                        address: m["address"].as_str().unwrap_or_default().to_string(),
                        status: m["status"].as_str().unwrap_or_default().to_string(),
                        clock_offset_ms: m["clock_offset_ms"].as_i64(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Uploads one unique wheel through the balancer, then reads it from every node directly until
/// each serves the right bytes or `shared_storage_within` has passed.
async fn shared_storage(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    options: &ChecklistOptions,
) -> SharedStorageFacts {
    let within = options.shared_storage_within;
    let mut facts = SharedStorageFacts {
        within_s: within.as_secs_f64(),
        ..SharedStorageFacts::default()
    };
    let target = endpoints.write_target();
    // One upload (sequence 0: a wheel), named after this moment and a random number so that
    // checks never collide, not even two in one second from one process.
    let writer = WriterConfig {
        writes_per_s: 1.0,
        duration: Duration::from_secs(1),
        tag: format!(
            "check{}{:08x}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            rand::random::<u32>()
        ),
        seed: rand::random(),
        size_bytes: 2_000,
        max_in_flight: 1,
        timeout: options.request_timeout,
    };
    let upload = match run_writer(client, &target, &writer, Instant::now()).await {
        Ok(mut ledger) if !ledger.is_empty() => ledger.remove(0),
        Ok(_) => {
            facts.upload_error = Some("the writer made no upload".into());
            return facts;
        }
        Err(e) => {
            facts.upload_error = Some(e.to_string());
            return facts;
        }
    };
    let acknowledged = Instant::now();
    let deadline = acknowledged + within;
    let entry = [upload.clone()];
    let ok = upload.outcome == WriteOutcome::Ok;
    facts.upload = Some(upload);
    if !ok {
        // Nothing to read back: the rule says why from the ledger entry.
        return facts;
    }
    let mut pending: Vec<(String, String)> = endpoints.nodes.clone();
    loop {
        let reads = read_back(
            client,
            &pending,
            &endpoints.pypi_repo,
            &endpoints.cran_repo,
            &entry,
        )
        .await;
        let now = Instant::now();
        for read in reads {
            let present = matches!(read.outcome, ReadOutcome::Present | ReadOutcome::Duplicated);
            if present || now >= deadline {
                pending.retain(|(name, _)| *name != read.node);
                facts.reads.push(StorageRead {
                    present_after_s: present
                        .then(|| now.saturating_duration_since(acknowledged).as_secs_f64()),
                    node: read.node,
                    outcome: read.outcome,
                    detail: read.detail,
                });
            }
        }
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    facts
        .reads
        .sort_by(|a, b| a.node.cmp(&b.node).then(a.detail.cmp(&b.detail)));
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_fields_are_read_and_absent_ones_stay_none() {
        let json = serde_json::json!({
            "node_id": "uid-1",
            "version": "0.1.0",
            "key_fingerprint": "ab",
            "database_backend": "postgresql",
            "cluster_status": "Online",
            "serving": true,
            "members": [{"uid": "uid-1", "address": "127.0.0.11:4242", "status": "Online",
                         "clock_offset_ms": -4}],
        });
        let status = parse_status(&json);
        assert_eq!(status.key_fingerprint.as_deref(), Some("ab"));
        assert_eq!(status.config_digest, None);
        assert_eq!(status.members[0].clock_offset_ms, Some(-4));
        assert!(status.serving);
    }
}
