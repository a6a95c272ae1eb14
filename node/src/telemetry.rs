//! Prometheus metrics served at `/metrics`: requests and latency by route, index cache hits,
//! the blob cache (lookups by result and their hit ratio, bytes and files held, capacity —
//! `[cache] blob_bytes` —; how long a file took to reach the node, from memory or from storage,
//! cold S3 reads apart from warm ones), uploads, downloads and git builds.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

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
    /// Bytes and files the blob cache holds, and its capacity; set at each scrape.
    pub blob_cache_bytes: Gauge,
    pub blob_cache_files: Gauge,
    pub blob_cache_capacity_bytes: Gauge,
    /// Share of the blob cache's lookups since start that found the file in memory; set at
    /// each scrape, 0 before the first lookup.
    pub blob_cache_hit_ratio: Gauge<f64, AtomicU64>,
    /// Time until a served file's bytes were in hand, by where they came from: `memory` (a
    /// cache hit), `storage` (a miss: a cold read from S3 or the shared directory).
    pub blob_fetch: Family<FetchLabels, Histogram>,
    /// Requests for `latest`, by how the snapshot was chosen: `database` (the database's head,
    /// read for this request or shared with concurrent ones) or `held_view` (a package file
    /// found in the newest view this node holds, no read).
    pub latest_resolutions: Family<HowLabels, Counter>,
    /// Times this node found the database no longer held its head (a failover lost commits) and
    /// dropped every view built on the lost history.
    pub history_rollbacks: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HowLabels {
    pub by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub from: String,
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
        let blob_cache_bytes = Gauge::default();
        let blob_cache_files = Gauge::default();
        let blob_cache_capacity_bytes = Gauge::default();
        let blob_cache_hit_ratio = Gauge::<f64, AtomicU64>::default();
        let blob_fetch = Family::<FetchLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00001, 2.0, 22))
        });
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
        registry.register(
            "blob_cache_bytes",
            "Bytes of package files held in memory",
            blob_cache_bytes.clone(),
        );
        registry.register(
            "blob_cache_files",
            "Package files held in memory",
            blob_cache_files.clone(),
        );
        registry.register(
            "blob_cache_capacity_bytes",
            "Bytes the package file cache may hold",
            blob_cache_capacity_bytes.clone(),
        );
        registry.register(
            "blob_cache_hit_ratio",
            "Share of package file cache lookups since start found in memory (0 before the first)",
            blob_cache_hit_ratio.clone(),
        );
        registry.register(
            "blob_fetch_duration_seconds",
            "Time until a served file's bytes were in hand, from memory or from storage",
            blob_fetch.clone(),
        );
        let latest_resolutions = Family::<HowLabels, Counter>::default();
        registry.register(
            "latest_resolutions",
            "Requests for latest, by how the snapshot was chosen (database head or held view)",
            latest_resolutions.clone(),
        );
        let history_rollbacks = Counter::default();
        registry.register(
            "history_rollbacks",
            "Times the database no longer held this node's head and every view was dropped",
            history_rollbacks.clone(),
        );
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
            blob_cache_bytes,
            blob_cache_files,
            blob_cache_capacity_bytes,
            blob_cache_hit_ratio,
            blob_fetch,
            latest_resolutions,
            history_rollbacks,
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

    /// Counts one `latest` request resolved `by` (`database` or `held_view`).
    pub fn count_latest(&self, by: &str) {
        self.latest_resolutions
            .get_or_create(&HowLabels { by: by.into() })
            .inc();
    }

    pub fn count_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.view_cache
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    /// Sets the blob cache gauges (called at each scrape).
    pub fn set_blob_cache_size(&self, bytes: u64, files: u64, capacity_bytes: u64) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.blob_cache_bytes.set(gauge(bytes));
        self.blob_cache_files.set(gauge(files));
        self.blob_cache_capacity_bytes.set(gauge(capacity_bytes));
        let count = |result: &str| {
            self.blob_cache
                .get_or_create(&ResultLabels {
                    result: result.into(),
                })
                .get()
        };
        let (hits, misses) = (count("hit"), count("miss"));
        let lookups = hits + misses;
        self.blob_cache_hit_ratio.set(if lookups == 0 {
            0.0
        } else {
            hits as f64 / lookups as f64
        });
    }

    /// Records how long a file took to reach the node, from memory or from storage.
    pub fn observe_blob_fetch(&self, hit: bool, seconds: f64) {
        let from = if hit { "memory" } else { "storage" };
        self.blob_fetch
            .get_or_create(&FetchLabels { from: from.into() })
            .observe(seconds);
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
