//! What each node's `/metrics` says about its blob cache at the end of a run: lookups by
//! result (the hit ratio), bytes and files held, capacity, and how long files took to reach the
//! node from memory and from storage (cold S3 reads apart from warm ones), for the report.

use serde::Serialize;

use super::metrics_text::{MetricsTextError, samples};

/// One node's blob cache, read from its Prometheus text.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BlobCacheFigures {
    pub node: String,
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses); `None` without lookups.
    pub hit_ratio: Option<f64>,
    pub bytes: u64,
    pub files: u64,
    pub capacity_bytes: u64,
    /// Mean time until the bytes were in hand: a hit (memory) and a miss (storage).
    pub mean_memory_fetch_ms: Option<f64>,
    pub mean_storage_fetch_ms: Option<f64>,
}

impl BlobCacheFigures {
    /// The figures as one console line: hits, misses, the hit ratio, what the cache holds.
    pub fn line(&self) -> String {
        format!(
            "{} blob cache: {} hits, {} misses (hit ratio {}), {:.1} MB in {} files",
            self.node,
            self.hits,
            self.misses,
            (self.hit_ratio)
                .map(|r| format!("{:.1} %", r * 100.0))
                .unwrap_or_else(|| "-".into()),
            self.bytes as f64 / 1e6,
            self.files
        )
    }
}

/// The blob cache figures of one node's `/metrics` text.
pub fn parse(node: &str, text: &str) -> Result<BlobCacheFigures, MetricsTextError> {
    let mut figures = BlobCacheFigures {
        node: node.to_string(),
        ..BlobCacheFigures::default()
    };
    // Fetch times: index 0 from memory, 1 from storage.
    let (mut sums, mut counts) = ([0.0f64; 2], [0.0f64; 2]);
    for sample in samples(text)? {
        let value = sample.value;
        let from = usize::from(sample.label("from") == Some("storage"));
        match (sample.name.as_str(), sample.label("result")) {
            ("pkgnode_blob_cache_total", Some("hit")) => figures.hits = value as u64,
            ("pkgnode_blob_cache_total", Some("miss")) => figures.misses = value as u64,
            ("pkgnode_blob_cache_bytes", _) => figures.bytes = value as u64,
            ("pkgnode_blob_cache_files", _) => figures.files = value as u64,
            ("pkgnode_blob_cache_capacity_bytes", _) => figures.capacity_bytes = value as u64,
            ("pkgnode_blob_fetch_duration_seconds_sum", _) => sums[from] = value,
            ("pkgnode_blob_fetch_duration_seconds_count", _) => counts[from] = value,
            _ => {}
        }
    }
    let lookups = figures.hits + figures.misses;
    figures.hit_ratio = (lookups > 0).then(|| figures.hits as f64 / lookups as f64);
    let mean = |i: usize| (counts[i] > 0.0).then(|| sums[i] / counts[i] * 1000.0);
    figures.mean_memory_fetch_ms = mean(0);
    figures.mean_storage_fetch_ms = mean(1);
    Ok(figures)
}

/// Reads every node's `/metrics`; a node that does not answer, or answers something other
/// than metrics text, is left out.
pub async fn read_all(
    client: &reqwest::Client,
    nodes: &[(String, String)],
) -> Vec<BlobCacheFigures> {
    let mut all = Vec::new();
    for (name, url) in nodes {
        let url = format!("{}/metrics", url.trim_end_matches('/'));
        let Ok(response) = client.get(&url).send().await else {
            continue;
        };
        let Ok(text) = response.text().await else {
            continue;
        };
        match parse(name, &text) {
            Ok(figures) => all.push(figures),
            Err(e) => tracing::warn!("{url}: {e}"),
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_node_metrics() {
        let text = "# HELP pkgnode_blob_cache Package file cache lookups by result.\n\
                    # TYPE pkgnode_blob_cache counter\n\
                    pkgnode_blob_cache_total{result=\"hit\"} 30\n\
                    pkgnode_blob_cache_total{result=\"miss\"} 10\n\
                    # TYPE pkgnode_blob_cache_bytes gauge\n\
                    pkgnode_blob_cache_bytes 4096\n\
                    # TYPE pkgnode_blob_cache_files gauge\n\
                    pkgnode_blob_cache_files 3\n\
                    # TYPE pkgnode_blob_cache_capacity_bytes gauge\n\
                    pkgnode_blob_cache_capacity_bytes 1048576\n\
                    # TYPE pkgnode_blob_fetch_duration_seconds histogram\n\
                    pkgnode_blob_fetch_duration_seconds_sum{from=\"memory\"} 0.003\n\
                    pkgnode_blob_fetch_duration_seconds_count{from=\"memory\"} 30\n\
                    pkgnode_blob_fetch_duration_seconds_sum{from=\"storage\"} 0.05\n\
                    pkgnode_blob_fetch_duration_seconds_count{from=\"storage\"} 10\n\
                    # EOF\n";
        let f = parse("node-1", text).unwrap();
        assert_eq!((f.hits, f.misses, f.bytes, f.files), (30, 10, 4096, 3));
        assert_eq!(f.capacity_bytes, 1_048_576);
        assert_eq!(f.hit_ratio, Some(0.75));
        assert!((f.mean_memory_fetch_ms.unwrap() - 0.1).abs() < 1e-9);
        assert!((f.mean_storage_fetch_ms.unwrap() - 5.0).abs() < 1e-9);
        // No lookups: no ratio, not 0 % or 100 %.
        assert_eq!(parse("n", "# EOF\n").unwrap().hit_ratio, None);
        assert!(parse("n", "<html></html>").is_err());
    }
}
