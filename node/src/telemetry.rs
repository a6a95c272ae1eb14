//! Prometheus metrics served at `/metrics`: requests and latency by route, index cache hits,
//! uploads and downloads, git builds.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// Every metric the node exports.
pub struct Telemetry {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub view_cache: Family<ResultLabels, Counter>,
    pub blob_cache: Family<ResultLabels, Counter>,
    pub uploads: Family<ResultLabels, Counter>,
    pub downloads: Counter,
    /// Queued git builds in the whole cluster, as last read from the database.
    pub git_builds_queued: Gauge,
    /// Git builds running on this node.
    pub git_builds_running: Gauge,
    /// Git builds finished on this node, by result.
    pub git_builds: Family<ResultLabels, Counter>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pkgnode");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let view_cache = Family::<ResultLabels, Counter>::default();
        let blob_cache = Family::<ResultLabels, Counter>::default();
        let uploads = Family::<ResultLabels, Counter>::default();
        let downloads = Counter::default();
        let git_builds_queued = Gauge::default();
        let git_builds_running = Gauge::default();
        let git_builds = Family::<ResultLabels, Counter>::default();
        registry.register(
            "git_builds_queued",
            "Queued git builds in the cluster, read from the database",
            git_builds_queued.clone(),
        );
        registry.register(
            "git_builds_running",
            "Git builds running on this node",
            git_builds_running.clone(),
        );
        registry.register(
            "git_builds",
            "Git builds finished on this node, by result",
            git_builds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "index_cache",
            "Snapshot view cache lookups by result",
            view_cache.clone(),
        );
        registry.register(
            "blob_cache",
            "Package file cache lookups by result",
            blob_cache.clone(),
        );
        registry.register("uploads", "Uploads by result", uploads.clone());
        registry.register("downloads", "Package files served", downloads.clone());
        Self {
            registry,
            requests,
            latency,
            view_cache,
            blob_cache,
            uploads,
            downloads,
            git_builds_queued,
            git_builds_running,
            git_builds,
        }
    }
}

impl Telemetry {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn count_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.view_cache
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    pub fn count_blob_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.blob_cache
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    pub fn count_git_build(&self, result: &str) {
        self.git_builds
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    pub fn count_upload(&self, result: &str) {
        self.uploads
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }
}
