//! Operations routes: `/__ping__`, `/__api__/status`, `/__api__/repos`,
//! `/__api__/repos/{name}/transactions` (the snapshots a repo can be pinned to),
//! `/__api__/metrics/packages` and Prometheus text at `/metrics`.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use super::{ApiError, AppState};
use crate::auth::Scope;
use crate::store::TransactionSummary;

/// The node's version, as every node of a cluster must match it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/__ping__", get(ping))
        .route("/__api__/status", get(status))
        .route("/__api__/repos", get(repos))
        .route("/__api__/repos/{name}/transactions", get(repo_transactions))
        .route("/__api__/metrics/packages", get(package_metrics))
        .route("/metrics", get(prometheus))
}

async fn ping(State(state): State<AppState>) -> Response {
    if state.serving.load(Ordering::Acquire) {
        (StatusCode::OK, "OK\n").into_response()
    } else {
        // The status says why: Offline, Starting, Clock skew, Invalid secure key…
        let status = state.status.get();
        (StatusCode::SERVICE_UNAVAILABLE, format!("{status}\n")).into_response()
    }
}

async fn status(State(state): State<AppState>) -> Json<serde_json::Value> {
    // The members as this node sees them, with the status `list-nodes` would show (e.g.
    // "Missed check-in" for one that stopped checking in): what a drill watches from outside.
    let (nodes, now_ms) = state.members.current();
    let missed = state.config.cluster.missed_check_in_after.as_millis() as i64;
    let members: Vec<serde_json::Value> = crate::cluster::report::ordered(&nodes, now_ms, missed)
        .into_iter()
        .map(|(n, shown)| json!({ "id": n.id, "uid": n.uid, "address": format!("{}:{}", n.ipv4, n.port), "status": shown, "clock_offset_ms": n.clock_offset_ms }))
        .collect();
    Json(json!({
        "members": members,
        "version": crate::cluster::definition::node_version(),
        "schema_version": crate::store::schema_version(),
        // What every node of a cluster must share, comparable from outside: the secure key's
        // fingerprint (sha256, never the key) and the configuration digest (address options
        // excepted), as the cluster definition holds them.
        "key_fingerprint": state.key.fingerprint(),
        "config_digest": crate::cluster::definition::config_digest(&state.config),
        "max_clock_skew_ms": state.config.cluster.max_clock_skew.as_millis() as u64,
        "build": option_env!("PKGNODE_BUILD").unwrap_or("dev"),
        "node_id": state.node_id(),
        "serving": state.serving.load(Ordering::Acquire),
        "cluster_status": state.config.cluster.enabled.then(|| state.status.get().word()),
        "transaction": state.head.get(),
        // The head's identity: differs between histories that reuse an id (after a failover).
        "transaction_uid": state.head.held().uid,
        "history_rollbacks": state.head.rollbacks(),
        // "ok" or "unavailable" as this node last found it (reads keep working either way;
        // uploads need "ok").
        "database": state.store.health().state().word(),
        "database_backend": match state.store.backend() {
            crate::store::Backend::Postgres => "postgresql",
            crate::store::Backend::Sqlite => "sqlite",
        },
        "storage": state.blobs.description,
        "in_flight": state.in_flight.load(Ordering::Relaxed),
    }))
}

async fn repos(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let repos = state.store.repos().await?;
    let list: Vec<_> = repos
        .iter()
        .map(|r| json!({ "id": r.id, "name": r.name, "type": r.kind.as_str(), "authenticated": r.authenticated }))
        .collect();
    Ok(Json(json!(list)))
}

/// The transactions that changed a repo, newest first: each id is a pinned snapshot
/// (`/{repo}/{id}/…`). An authenticated repo needs the same `repos:read` token as its files.
async fn repo_transactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Vec<TransactionSummary>>, ApiError> {
    let repo = super::lookup_repo(&state, &name).await?;
    if repo.authenticated {
        super::require(
            &state,
            &headers,
            &Scope::ReposRead {
                repo: Some(repo.name.clone()),
            },
        )
        .await?;
    }
    Ok(Json(state.store.transactions(Some(repo.id)).await?))
}

async fn package_metrics(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Counts gathered since the last batch are written first so the answer is current.
    state.downloads.flush(&state.store).await;
    Ok(Json(json!(state.store.download_counts().await?)))
}

async fn prometheus(State(state): State<AppState>) -> Response {
    // The cluster's queue depth, read now; while the database is away the last reading stays.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        crate::builders::queue::queued_count(&state.store),
    )
    .await;
    if let Ok(Ok(queued)) = read {
        state.telemetry.git_builds_queued.set(queued);
    }
    let (bytes, files) = state.blob_cache.size().await;
    state
        .telemetry
        .set_blob_cache_size(bytes, files, state.blob_cache.capacity_bytes());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.telemetry.render(),
    )
        .into_response()
}
