//! Requests each node served during the run, from the difference of its `/metrics` counters.

use std::collections::BTreeMap;

/// Sum of `pkgnode_http_requests_total` over every route except health checks.
pub fn requests_served(metrics_text: &str) -> u64 {
    metrics_text
        .lines()
        .filter(|l| {
            l.starts_with("pkgnode_http_requests_total{") && !l.contains("route=\"/__ping__\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Reads every node's counter; nodes that do not answer are left out.
pub async fn snapshot(
    client: &reqwest::Client,
    nodes: &[(String, String)],
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (name, url) in nodes {
        let Ok(response) = client.get(format!("{url}/metrics")).send().await else {
            continue;
        };
        if let Ok(text) = response.text().await {
            counts.insert(name.clone(), requests_served(&text));
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
        let text = "# HELP x\npkgnode_http_requests_total{route=\"/__ping__\",method=\"GET\",status=\"200\"} 50\n\
                    pkgnode_http_requests_total{route=\"/{repo}/{snapshot}/simple/{name}/\",method=\"GET\",status=\"200\"} 7\n\
                    pkgnode_http_requests_total{route=\"/{repo}/{snapshot}/packages/{filename}\",method=\"GET\",status=\"200\"} 3\n";
        assert_eq!(requests_served(text), 10);
    }
}
