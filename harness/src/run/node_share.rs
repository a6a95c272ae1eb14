//! Requests each node served during the run, from the difference of its `/metrics` counters.

use std::collections::BTreeMap;

use super::metrics_text::{Sample, samples};

/// Sum of `pkgnode_http_requests_total` over every route except health checks.
pub fn requests_served(samples: &[Sample]) -> u64 {
    samples
        .iter()
        .filter(|s| {
            s.name == "pkgnode_http_requests_total" && s.label("route") != Some("/__ping__")
        })
        .map(|s| s.value as u64)
        .sum()
}

/// Reads every node's counter; nodes that do not answer, or answer something other than
/// metrics text, are left out.
pub async fn snapshot(
    client: &reqwest::Client,
    nodes: &[(String, String)],
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (name, url) in nodes {
        let Ok(response) = client.get(format!("{url}/metrics")).send().await else {
            continue;
        };
        let Ok(text) = response.text().await else {
            continue;
        };
        match samples(&text) {
            Ok(samples) => {
                counts.insert(name.clone(), requests_served(&samples));
            }
            Err(e) => tracing::warn!("{url}/metrics: {e}"),
        }
    }
    counts
}

/// Requests served between two snapshots.
pub fn difference(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, count)| {
            (
                name.clone(),
                count.saturating_sub(before.get(name).copied().unwrap_or(0)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_routes_but_not_health_checks() {
        let text = "# HELP pkgnode_http_requests Requests.\n# TYPE pkgnode_http_requests counter\n\
                    pkgnode_http_requests_total{route=\"/__ping__\",method=\"GET\",status=\"200\"} 50\n\
                    pkgnode_http_requests_total{route=\"/{repo}/{snapshot}/simple/{name}/\",method=\"GET\",status=\"200\"} 7\n\
                    pkgnode_http_requests_total{route=\"/{repo}/{snapshot}/packages/{filename}\",method=\"GET\",status=\"200\"} 3\n\
                    # EOF\n";
        assert_eq!(requests_served(&samples(text).unwrap()), 10);
    }
}
