//! CRAN routes: `src/contrib/PACKAGES(.gz|.rds)`, current tarballs and `Archive/{pkg}/` for older ones.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;

use super::{ApiError, AppState, files, open_file_view, open_view};
use crate::store::RepoKind;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{repo}/{snapshot}/src/contrib/{file}", get(contrib))
        .route(
            "/{repo}/{snapshot}/src/contrib/Archive/{package}/{file}",
            get(archived),
        )
}

async fn contrib(
    State(state): State<AppState>,
    Path((repo, snapshot, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let index = matches!(file.as_str(), "PACKAGES" | "PACKAGES.gz" | "PACKAGES.rds");
    let view = if index {
        open_view(&state, &headers, &repo, &snapshot, RepoKind::R).await?
    } else {
        open_file_view(&state, &headers, &repo, &snapshot, RepoKind::R, |v| {
            v.current_file(&file).is_some()
        })
        .await?
    };
    let etag = |kind: &str| view.etag(kind);
    match file.as_str() {
        "PACKAGES" => Ok(files::serve_index(
            &headers,
            etag("packages"),
            "text/plain; charset=utf-8",
            view.packages().clone(),
        )),
        "PACKAGES.gz" => Ok(files::serve_index(
            &headers,
            etag("packages-gz"),
            "application/x-gzip",
            view.packages_gz().clone(),
        )),
        // R 4.x's `available.packages` asks for this first and reads nothing else when it is
        // served: one request per session instead of a 404 and then `PACKAGES.gz`.
        "PACKAGES.rds" if !view.packages_rds().is_empty() => Ok(files::serve_index(
            &headers,
            etag("packages-rds"),
            "application/octet-stream",
            view.packages_rds().clone(),
        )),
        _ => {
            let found = view.current_file(&file).ok_or_else(|| {
                ApiError::NotFound(format!("no file {file:?} in {repo}/{snapshot}/src/contrib"))
            })?;
            files::serve_package(&state, &headers, found, "application/x-gzip").await
        }
    }
}

async fn archived(
    State(state): State<AppState>,
    Path((repo, snapshot, package, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = open_file_view(&state, &headers, &repo, &snapshot, RepoKind::R, |v| {
        v.archived_file(&package, &file).is_some()
    })
    .await?;
    let found = view.archived_file(&package, &file).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no archived file {package}/{file} in {repo}/{snapshot}"
        ))
    })?;
    files::serve_package(&state, &headers, found, "application/x-gzip").await
}
