//! Watches every node during the run, once a second, on its own address: its cluster status
//! (from `/__api__/status`) and its served-requests counter (from `/metrics`). Shares are
//! summed from the counter's increases between samples, so a node killed mid-run keeps what
//! it served before it died and a restarted node (counter back at zero) counts from there.
//! The gauges in [`GAUGES`] (the git build queue) are kept as they are read, when a node
//! exports them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::checkers::cluster::NodeStatusRead;
use crate::http::status;

use super::metrics_text::{self, Sample};
use super::node_share;

/// Gauges kept from each node's `/metrics`: the cluster-wide build queue as the node reads it
/// from the database, and the builds running on the node.
pub const GAUGES: &[&str] = &["pkgnode_git_builds_queued", "pkgnode_git_builds_running"];

/// What the observer saw.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// (seconds since start, status) for every status that differed from the node's last one.
    pub status_changes: Vec<(f64, NodeStatusRead)>,
    /// Requests each node served while observed.
    pub served: BTreeMap<String, u64>,
    /// Each node's requests per second at each sample (0 while it does not answer).
    pub rates: Vec<reports::record::NodeRequestRate>,
    /// Every reading of a [`GAUGES`] gauge.
    pub gauges: Vec<reports::record::GaugeSample>,
}

/// Samples until `stop` fires; returns what it saw.
pub async fn observe(
    client: reqwest::Client,
    nodes: Vec<(String, String)>,
    start: Instant,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Observed {
    let mut observed = Observed::default();
    type Seen = (Option<String>, bool, Vec<(String, String)>);
    let mut last_status: BTreeMap<String, Seen> = BTreeMap::new();
    let mut last_count: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
    loop {
        let now = Instant::now();
        for (name, url) in &nodes {
            let read = status(&client, name, url).await;
            let key = (read.status.clone(), read.serving, read.members.clone());
            if last_status.get(name) != Some(&key) {
                last_status.insert(name.clone(), key);
                observed
                    .status_changes
                    .push((now.saturating_duration_since(start).as_secs_f64(), read));
            }
            let at_s = now.saturating_duration_since(start).as_secs_f64();
            let answered = match client.get(format!("{url}/metrics")).send().await {
                Ok(response) => response.text().await.ok(),
                Err(_) => None,
            };
            // A node that does not answer, or answers something other than metrics text,
            // served nothing this second.
            let Some(samples) = answered.and_then(|text| metrics_text::samples(&text).ok()) else {
                observed.rates.push(rate(at_s, name, 0.0));
                continue;
            };
            for gauge_name in GAUGES {
                if let Some(value) = gauge(&samples, gauge_name) {
                    observed.gauges.push(reports::record::GaugeSample {
                        at_s,
                        name: (*gauge_name).to_string(),
                        node: name.clone(),
                        value,
                    });
                }
            }
            let count = node_share::requests_served(&samples);
            let sampled = Instant::now();
            let previous = last_count.insert(name.clone(), (count, sampled));
            let increase = match previous {
                Some((before, _)) if count >= before => count - before,
                // First sample: only what comes after counts. A reset: the node restarted.
                Some(_) => count,
                None => 0,
            };
            *observed.served.entry(name.clone()).or_default() += increase;
            if let Some((_, then)) = previous {
                let seconds = sampled.duration_since(then).as_secs_f64().max(0.001);
                observed
                    .rates
                    .push(rate(at_s, name, increase as f64 / seconds));
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep_until((now + Duration::from_secs(1)).into()) => {}
        }
    }
    observed
}

/// The value of the unlabelled gauge `name`, if the node exports it.
pub fn gauge(samples: &[Sample], name: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.is_empty())
        .map(|s| s.value)
}

fn rate(at_s: f64, node: &str, per_s: f64) -> reports::record::NodeRequestRate {
    reports::record::NodeRequestRate {
        at_s,
        node: node.to_string(),
        per_s,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gauges_are_read_by_exact_name() {
        let text = "# TYPE pkgnode_git_builds_queued gauge\npkgnode_git_builds_queued 7\n\
                    # TYPE pkgnode_git_builds_queued counter\npkgnode_git_builds_queued_total 99\n\
                    # TYPE pkgnode_git_builds_running gauge\npkgnode_git_builds_running{} 2\n# EOF\n";
        let samples = super::metrics_text::samples(text).unwrap();
        assert_eq!(
            super::gauge(&samples, "pkgnode_git_builds_queued"),
            Some(7.0)
        );
        assert_eq!(
            super::gauge(&samples, "pkgnode_git_builds_running"),
            Some(2.0)
        );
        assert_eq!(super::gauge(&samples, "pkgnode_git_builds"), None);
    }
}
