//! Git builder routes under `/__api__`, JSON: create and list a source's builders, check a remote
//! now (`run`), build a commit or tag again (`rerun`), list builds newest first, list what the
//! checks saw on the remotes (`git-sightings`: each commit's first sighting), read a build's
//! log. Mutations need the same `sources:write` token for the source as uploads; reads are open
//! like `/__api__/repos`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, require};
use crate::auth::Scope;
use crate::builders::queue::{self, Build, Builder, Rerun};
use crate::builders::sightings::{self, Sighting};
use crate::builders::{BuilderError, NewBuilder, remote, rfc3339};
use crate::store::Source;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/__api__/sources/{source}/git-builders",
            post(create).get(list_builders),
        )
        .route(
            "/__api__/sources/{source}/git-builders/{name}/run",
            post(run),
        )
        .route(
            "/__api__/sources/{source}/git-builders/{name}/rerun",
            post(rerun),
        )
        .route("/__api__/sources/{source}/git-builds", get(list_builds))
        .route(
            "/__api__/sources/{source}/git-sightings",
            get(list_sightings),
        )
        .route("/__api__/git-builds/{id}", get(one_build))
        .route("/__api__/git-builds/{id}/log", get(build_log))
}

impl From<BuilderError> for ApiError {
    fn from(e: BuilderError) -> Self {
        match e {
            BuilderError::Store(e) => e.into(),
            BuilderError::Invalid(m) => Self::BadRequest(m),
            BuilderError::NotFound(m) => Self::NotFound(m),
            BuilderError::Conflict(m) => Self::Conflict(m),
            BuilderError::Remote(m) => Self::Unavailable(format!(
                "cannot read the builder's remote now; retry later: {m}"
            )),
        }
    }
}

/// A builder as the API shows it.
#[derive(Debug, Serialize)]
pub struct BuilderJson {
    pub id: i64,
    pub name: String,
    pub source: String,
    #[serde(rename = "type")]
    pub source_type: &'static str,
    pub url: String,
    pub branch: Option<String>,
    pub build_trigger: &'static str,
    pub sub_dir: Option<String>,
    pub clone_depth: i64,
    pub created_at: String,
    pub last_polled_at: Option<String>,
    pub last_poll_error: Option<String>,
}

impl From<&Builder> for BuilderJson {
    fn from(b: &Builder) -> Self {
        Self {
            id: b.id,
            name: b.name.clone(),
            source: b.source.clone(),
            source_type: b.source_kind.as_str(),
            url: b.url.clone(),
            branch: b.branch.clone(),
            build_trigger: b.build_trigger.as_str(),
            sub_dir: b.sub_dir.clone(),
            clone_depth: b.clone_depth,
            created_at: rfc3339(b.created_at_ms),
            last_polled_at: b.last_polled_at_ms.map(rfc3339),
            last_poll_error: b.last_poll_error.clone(),
        }
    }
}

/// A build as the API shows it (the contract the harness reads).
#[derive(Debug, Serialize)]
pub struct BuildJson {
    pub id: i64,
    pub builder: String,
    pub commit_sha: String,
    pub tag: Option<String>,
    pub version: Option<String>,
    pub state: &'static str,
    pub attempts: i64,
    pub node_id: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub transaction_id: Option<i64>,
    pub error: Option<String>,
}

impl From<&Build> for BuildJson {
    fn from(b: &Build) -> Self {
        Self {
            id: b.id,
            builder: b.builder.clone(),
            commit_sha: b.commit_sha.clone(),
            tag: b.tag.clone(),
            version: b.version.clone(),
            state: b.state.as_str(),
            attempts: b.attempts,
            node_id: b.node_id.clone(),
            queued_at: rfc3339(b.queued_at_ms),
            started_at: b.started_at_ms.map(rfc3339),
            finished_at: b.finished_at_ms.map(rfc3339),
            transaction_id: b.transaction_id,
            error: b.error.clone(),
        }
    }
}

/// The first time a check saw a commit on a builder's remote, as the API shows it.
#[derive(Debug, Serialize)]
pub struct SightingJson {
    pub builder: String,
    pub commit_sha: String,
    /// The looking node's clock.
    pub first_seen_at: String,
    /// A node id, or `cli` for `pkgnode run git-builder`.
    pub node_id: String,
}

impl From<&Sighting> for SightingJson {
    fn from(s: &Sighting) -> Self {
        Self {
            builder: s.builder.clone(),
            commit_sha: s.commit_sha.clone(),
            first_seen_at: rfc3339(s.first_seen_at_ms),
            node_id: s.node_id.clone(),
        }
    }
}

async fn git_source(state: &AppState, name: &str) -> Result<Source, ApiError> {
    let source = state
        .store
        .source_by_name(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no source named {name:?}")))?;
    if !source.kind.is_git() {
        return Err(ApiError::BadRequest(format!(
            "source {name:?} is a {} source; git builders belong to git and git-python sources",
            source.kind.as_str()
        )));
    }
    Ok(source)
}

async fn find_builder(state: &AppState, source: &str, name: &str) -> Result<Builder, ApiError> {
    queue::builder(&state.store, source, name)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "source {source:?} has no git builder named {name:?}"
            ))
        })
}

async fn authorize(state: &AppState, headers: &HeaderMap, source: &str) -> Result<(), ApiError> {
    require(
        state,
        headers,
        &Scope::SourcesWrite {
            source: source.to_string(),
        },
    )
    .await
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the request body is not valid JSON for this call: {e}"
        ))
    })
}

async fn create(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &source).await?;
    let new: NewBuilder = json_body(&body)?;
    let found = git_source(&state, &source).await?;
    let builder = queue::create_builder(&state.store, &found, &new).await?;
    tracing::info!(source = %source, builder = %builder.name, url = %builder.url, "created a git builder");
    Ok((StatusCode::CREATED, Json(BuilderJson::from(&builder))).into_response())
}

async fn list_builders(
    State(state): State<AppState>,
    Path(source): Path<String>,
) -> Result<Json<Vec<BuilderJson>>, ApiError> {
    git_source(&state, &source).await?;
    let builders = queue::builders(&state.store, &source).await?;
    Ok(Json(builders.iter().map(BuilderJson::from).collect()))
}

/// What `run` and `rerun` answer.
#[derive(Debug, Serialize)]
struct Queued {
    builder: String,
    /// Builds queued by this call.
    queued: Vec<BuildJson>,
    /// Builds that were already queued or running for the commit asked for.
    pending: Vec<BuildJson>,
}

async fn run(
    State(state): State<AppState>,
    Path((source, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &source).await?;
    let builder = find_builder(&state, &source, &name).await?;
    let ids = remote::check(&state.store, &builder, &state.node_id()).await?;
    let mut queued = Vec::new();
    for id in ids {
        if let Some(build) = queue::build(&state.store, id).await? {
            queued.push(BuildJson::from(&build));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            builder: builder.name,
            queued,
            pending: Vec::new(),
        }),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RerunBody {
    commit_sha: Option<String>,
    tag: Option<String>,
}

async fn rerun(
    State(state): State<AppState>,
    Path((source, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &source).await?;
    let asked: RerunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RerunBody::default()
    } else {
        json_body(&body)?
    };
    let builder = find_builder(&state, &source, &name).await?;
    let (sha, tag) = resolve_rerun(&state, &builder, asked).await?;
    let done = queue::rerun(&state.store, &builder, &sha, tag.as_deref()).await?;
    let (queued, pending) = match done {
        Rerun::Queued(build) => (vec![BuildJson::from(&build)], Vec::new()),
        Rerun::Pending(build) => (Vec::new(), vec![BuildJson::from(&build)]),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            builder: builder.name,
            queued,
            pending,
        }),
    )
        .into_response())
}

async fn resolve_rerun(
    state: &AppState,
    builder: &Builder,
    asked: RerunBody,
) -> Result<(String, Option<String>), ApiError> {
    Ok(remote::rerun_target(&state.store, builder, asked.commit_sha, asked.tag).await?)
}

#[derive(Debug, Deserialize)]
struct BuildsQuery {
    name: Option<String>,
    count: Option<i64>,
    page: Option<i64>,
}

/// The most builds one page may hold.
const MAX_PAGE: i64 = 1000;

async fn list_builds(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Query(query): Query<BuildsQuery>,
) -> Result<Json<Vec<BuildJson>>, ApiError> {
    git_source(&state, &source).await?;
    let count = query.count.unwrap_or(100);
    let page = query.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&count) || page < 1 {
        return Err(ApiError::BadRequest(format!(
            "count must be 1 to {MAX_PAGE} and page 1 or more"
        )));
    }
    if let Some(name) = &query.name {
        find_builder(&state, &source, name).await?;
    }
    let builds = queue::builds(&state.store, &source, query.name.as_deref(), count, page).await?;
    Ok(Json(builds.iter().map(BuildJson::from).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SightingsQuery {
    name: Option<String>,
}

/// Every sighting of the source's builders (one builder's with `?name=`), oldest first: at most
/// one per (builder, commit), so no more than the commits the remotes ever showed.
async fn list_sightings(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Query(query): Query<SightingsQuery>,
) -> Result<Json<Vec<SightingJson>>, ApiError> {
    git_source(&state, &source).await?;
    if let Some(name) = &query.name {
        find_builder(&state, &source, name).await?;
    }
    let seen = sightings::of_source(&state.store, &source, query.name.as_deref()).await?;
    Ok(Json(seen.iter().map(SightingJson::from).collect()))
}

async fn one_build(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<BuildJson>, ApiError> {
    let build = queue::build(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no git build {id}")))?;
    Ok(Json(BuildJson::from(&build)))
}

async fn build_log(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    if queue::build(&state.store, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no git build {id}")));
    }
    let log = queue::build_log(&state.store, id).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "git build {id} has no log yet (it has not finished)"
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], log).into_response())
}
