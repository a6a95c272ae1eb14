//! The HTTP surface: `app(state) -> Router`, one router per resource, one error type.

pub mod cluster;
pub mod cran;
pub mod error;
pub mod files;
pub mod git;
pub mod in_flight;
pub mod ops;
pub mod pypi;
pub mod upload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use base64::Engine;

pub use error::ApiError;

use crate::auth::{Scope, SecureKey, TokenError};
use crate::blobs::Blobs;
use crate::cluster::{Members, NodeStatus, StatusCell};
use crate::config::Config;
use crate::downloads::Downloads;
use crate::head::Head;
use crate::store::{Repo, RepoKind, Store};
use crate::telemetry::Telemetry;
use crate::views::{RepoView, Snapshot, Views};

/// Everything a request may touch.
pub struct NodeState {
    pub config: Config,
    pub store: Store,
    pub blobs: Blobs,
    pub key: SecureKey,
    pub head: Arc<Head>,
    pub views: Views,
    pub blob_cache: crate::blob_cache::BlobCache,
    pub downloads: Arc<Downloads>,
    pub telemetry: Telemetry,
    /// The id this node joined the cluster under (see [`NodeState::node_id`]).
    node_id: std::sync::RwLock<String>,
    /// False while offline: `/__ping__` answers 503 and the load balancer stops sending.
    pub serving: AtomicBool,
    pub in_flight: AtomicI64,
    /// This node's cluster status (always Online for a single node); uploads need Online.
    pub status: StatusCell,
    /// The cluster's members as this node last read them (empty for a single node).
    pub members: Arc<Members>,
    repos: moka::future::Cache<String, Repo>,
    dates: moka::future::Cache<chrono::NaiveDate, i64>,
}

pub type AppState = Arc<NodeState>;

impl NodeState {
    /// The node's id: the one in its data dir, unless a live node at another address holds
    /// that one and this process joined under a fresh id.
    pub fn node_id(&self) -> String {
        self.node_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the id the node joined under.
    pub fn set_node_id(&self, id: String) {
        *self.node_id.write().unwrap_or_else(|e| e.into_inner()) = id;
    }

    pub fn new(
        config: Config,
        store: Store,
        blobs: Blobs,
        key: SecureKey,
        head: Arc<Head>,
        node_id: String,
    ) -> Self {
        let views = Views::new(config.cache.views);
        let blob_cache = crate::blob_cache::BlobCache::new(
            config.cache.blob_bytes,
            config.cache.blob_max_file_bytes,
        );
        let telemetry = Telemetry::default();
        let repos = moka::future::Cache::new(1024);
        let dates = moka::future::Cache::new(1024);
        // What was built on a history the database lost goes before the head moves back: views,
        // and the repos and days looked up (their ids may now name other rows).
        head.on_rollback({
            let (views, repos, dates) = (views.clone(), repos.clone(), dates.clone());
            let counter = telemetry.history_rollbacks.clone();
            move |_| {
                views.reset();
                repos.invalidate_all();
                dates.invalidate_all();
                counter.inc();
            }
        });
        Self {
            blob_cache,
            config,
            store,
            blobs,
            key,
            head,
            views,
            downloads: Arc::default(),
            telemetry,
            node_id: std::sync::RwLock::new(node_id),
            serving: AtomicBool::new(true),
            in_flight: AtomicI64::new(0),
            status: StatusCell::new(NodeStatus::Online),
            members: Arc::default(),
            repos,
            dates,
        }
    }
}

impl crate::builders::BuilderSide for NodeState {
    fn config(&self) -> &Config {
        &self.config
    }
    fn store(&self) -> &Store {
        &self.store
    }
    fn blobs(&self) -> &Blobs {
        &self.blobs
    }
    fn key(&self) -> &SecureKey {
        &self.key
    }
    fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }
    fn node_id(&self) -> String {
        NodeState::node_id(self)
    }
    fn may_work(&self) -> bool {
        self.status.get() == NodeStatus::Online
            && self.serving.load(std::sync::atomic::Ordering::Acquire)
    }
    fn published(&self, _tx: i64) {
        // Through a verified read of the head, whatever the id: the id alone cannot say which
        // history the node's views belong to (after a rollback it may be at or below the head).
        let (head, store) = (Arc::clone(&self.head), self.store.clone());
        tokio::spawn(async move {
            if let Err(e) = head.sync(&store).await {
                tracing::debug!(error = %e, "could not read the head after a build was published");
            }
        });
    }
}

impl crate::cluster::NodeSide for NodeState {
    fn config(&self) -> &Config {
        &self.config
    }
    fn store(&self) -> &Store {
        &self.store
    }
    fn key_fingerprint(&self) -> String {
        self.key.fingerprint()
    }
    fn status(&self) -> &StatusCell {
        &self.status
    }
    fn members(&self) -> &Members {
        &self.members
    }
    fn set_serving(&self, serving: bool) {
        self.serving
            .store(serving, std::sync::atomic::Ordering::Release);
    }
    fn in_flight(&self) -> i64 {
        self.in_flight.load(std::sync::atomic::Ordering::Acquire)
    }
    fn set_node_id(&self, id: String) {
        NodeState::set_node_id(self, id);
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(ops::router())
        .merge(cluster::router())
        .merge(upload::router(&state.config))
        .merge(git::router())
        .merge(pypi::router())
        .merge(cran::router())
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts and times every request by its route pattern.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let in_flight = in_flight::InFlight::start(state.clone());
    let response = next
        .run(request)
        .await
        .map(|body| in_flight::CountedBody::wrap(body, in_flight));
    let telemetry = &state.telemetry;
    telemetry
        .latency
        .get_or_create(&crate::telemetry::RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    telemetry
        .requests
        .get_or_create(&crate::telemetry::RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The token in `Authorization: Basic __token__:<jwt>` or `Authorization: Bearer <jwt>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == "__token__").then(|| password.to_string())
}

/// Checks that the request carries a token granting `scope` that is recorded and not revoked.
///
/// The record is read per request (a primary-key lookup) rather than cached: a revocation then
/// holds on every node sharing the database from the next request on, with no cache to refresh,
/// and a node that cannot reach the database refuses (503) rather than honouring a token it cannot
/// check.
pub async fn require(
    state: &NodeState,
    headers: &HeaderMap,
    scope: &Scope,
) -> Result<(), ApiError> {
    let token = bearer_token(headers).ok_or_else(|| {
        ApiError::Unauthorized(format!(
            "a token is required ({scope}); send it as HTTP Basic auth with user __token__"
        ))
    })?;
    let guid = state.key.authorize(&token, scope)?;
    let record = state.store.token(&guid).await?;
    match record {
        None => Err(TokenError::Unrecorded { guid }.into()),
        Some(record) => match record.revoked_at_ms {
            Some(at) => Err(TokenError::Revoked {
                guid,
                at: chrono::DateTime::from_timestamp_millis(at)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| format!("{at} ms")),
            }
            .into()),
            None => Ok(()),
        },
    }
}

/// Resolves `/{repo}/{snapshot}` to a view, checking the repo type and read access.
pub async fn open_view(
    state: &NodeState,
    headers: &HeaderMap,
    repo_name: &str,
    snapshot: &str,
    kind: RepoKind,
) -> Result<Arc<RepoView>, ApiError> {
    let repo = open_repo(state, headers, repo_name, kind).await?;
    view_at(state, repo, snapshot).await
}

/// Like [`open_view`], for a request of one package file that `holds` finds in a view: a
/// `latest` request is served from the newest view this node holds when that view has the file,
/// without reading the database's head. A file name names the same bytes for good (a second
/// upload of it with other bytes is refused), so the only thing a newer head could change is a
/// removal, and a client that follows the index it read through `latest` asks only for files
/// that index listed. A file the held view lacks — one uploaded a moment ago through another
/// node — reads the head as every index request does, so read-your-writes holds for uploads.
pub async fn open_file_view(
    state: &NodeState,
    headers: &HeaderMap,
    repo_name: &str,
    snapshot: &str,
    kind: RepoKind,
    holds: impl Fn(&RepoView) -> bool,
) -> Result<Arc<RepoView>, ApiError> {
    let repo = open_repo(state, headers, repo_name, kind).await?;
    if snapshot == "latest"
        && let Some(view) = state.views.newest(repo.id).filter(|v| holds(v))
    {
        state.telemetry.count_latest("held_view");
        state.telemetry.count_cache(true);
        return Ok(view);
    }
    view_at(state, repo, snapshot).await
}

/// The repo named `repo_name`, when it is of `kind` and the request may read it.
async fn open_repo(
    state: &NodeState,
    headers: &HeaderMap,
    repo_name: &str,
    kind: RepoKind,
) -> Result<Repo, ApiError> {
    let repo = lookup_repo(state, repo_name).await?;
    if repo.kind != kind {
        return Err(ApiError::NotFound(format!(
            "repo {repo_name:?} is a {} repository",
            repo.kind.as_str()
        )));
    }
    if repo.authenticated {
        require(
            state,
            headers,
            &Scope::ReposRead {
                repo: Some(repo.name.clone()),
            },
        )
        .await?;
    }
    Ok(repo)
}

/// The view of `repo` at `snapshot`: built or cached, with the database-unavailable fallback.
async fn view_at(state: &NodeState, repo: Repo, snapshot: &str) -> Result<Arc<RepoView>, ApiError> {
    let repo_name = repo.name.clone();
    let tx = resolve_snapshot(state, snapshot).await?;
    let repo_id = repo.id;
    let found = if snapshot == "latest" {
        state.views.at_least(&state.store, repo, tx).await
    } else {
        state.views.get(&state.store, repo, tx).await
    };
    let (view, hit) = match found {
        Ok(found) => found,
        Err(e) => {
            state.store.health().observe_error(&e);
            // `latest` may have moved (a notification, another repo's read) to a transaction
            // whose view could not be built: while the database is away, the newest view this
            // node holds is the best answer there is. Pinned snapshots never fall back.
            let fallback = (snapshot == "latest" && e.is_unavailable())
                .then(|| state.views.newest(repo_id))
                .flatten();
            let Some(view) = fallback else {
                return Err(e.into());
            };
            tracing::warn!(
                repo = %repo_name,
                wanted = tx,
                serving = view.tx,
                "the database is unavailable; serving the newest view this node holds"
            );
            (view, true)
        }
    };
    state.telemetry.count_cache(hit);
    Ok(view)
}

pub(crate) async fn lookup_repo(state: &NodeState, name: &str) -> Result<Repo, ApiError> {
    if let Some(repo) = state.repos.get(name).await {
        return Ok(repo);
    }
    // Repos are never changed after creation, so a found repo can be kept.
    let repo = state
        .store
        .repo_by_name(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no repo named {name:?}")))?;
    state.repos.insert(name.to_string(), repo.clone()).await;
    Ok(repo)
}

async fn resolve_snapshot(state: &NodeState, snapshot: &str) -> Result<i64, ApiError> {
    let parsed = Snapshot::parse(snapshot).ok_or_else(|| {
        ApiError::NotFound(format!(
            "{snapshot:?} is not a snapshot: use latest, a transaction id or a date YYYY-MM-DD"
        ))
    })?;
    match parsed {
        Snapshot::Latest => {
            state.telemetry.count_latest("database");
            Ok(state
                .head
                .fresh(&state.store, state.config.database.acquire_timeout)
                .await)
        }
        Snapshot::Tx(tx) => {
            if tx > state.head.get() {
                // Possibly committed through another node a moment ago.
                state.head.sync(&state.store).await?;
            }
            if tx > state.head.get() || tx < 1 {
                return Err(ApiError::NotFound(format!(
                    "transaction {tx} does not exist"
                )));
            }
            Ok(tx)
        }
        Snapshot::Date(date) => {
            if let Some(tx) = state.dates.get(&date).await {
                return Ok(tx);
            }
            let end = date
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis())
                .ok_or_else(|| ApiError::NotFound(format!("date {date} is out of range")))?;
            let tx = state.store.last_tx_before(end).await?.ok_or_else(|| {
                ApiError::NotFound(format!("nothing was published by the end of {date}"))
            })?;
            // A day that has ended never changes again.
            if end <= crate::store::now_ms() {
                state.dates.insert(date, tx).await;
            }
            Ok(tx)
        }
    }
}
