//! PyPI routes: the simple index (PEP 503 HTML, PEP 691 JSON by `Accept`) and package files.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bytes::Bytes;

use super::{ApiError, AppState, files, open_file_view, open_view};
use crate::formats::pypi;
use crate::store::RepoKind;

const JSON_TYPE: &str = "application/vnd.pypi.simple.v1+json";
const HTML_TYPE: &str = "text/html; charset=utf-8";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{repo}/{snapshot}/simple/", get(root))
        .route("/{repo}/{snapshot}/simple", get(root_redirect))
        .route("/{repo}/{snapshot}/simple/{name}/", get(project))
        .route("/{repo}/{snapshot}/simple/{name}", get(project_redirect))
        .route("/{repo}/{snapshot}/packages/{filename}", get(package_file))
}

/// PEP 691 negotiation: JSON when the client rates it at least as high as HTML.
fn wants_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut json_q = 0.0f32;
    let mut html_q = 0.0f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media {
            JSON_TYPE | "application/vnd.pypi.simple.latest+json" => json_q = json_q.max(q),
            "application/vnd.pypi.simple.v1+html" | "text/html" | "*/*" => html_q = html_q.max(q),
            _ => {}
        }
    }
    json_q > 0.0 && json_q >= html_q
}

async fn root(
    State(state): State<AppState>,
    Path((repo, snapshot)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = open_view(&state, &headers, &repo, &snapshot, RepoKind::Python).await?;
    // Rendered once per view, when it was built.
    let (kind, content_type, body) = if wants_json(&headers) {
        ("json", JSON_TYPE, view.root_json())
    } else {
        ("html", HTML_TYPE, view.root_html())
    };
    let etag = view.etag(&format!("root-{kind}"));
    Ok(files::serve_index(&headers, etag, content_type, body))
}

async fn root_redirect(Path((repo, snapshot)): Path<(String, String)>) -> Redirect {
    Redirect::permanent(&format!("/{repo}/{snapshot}/simple/"))
}

async fn project(
    State(state): State<AppState>,
    Path((repo, snapshot, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let normalized = pypi::normalize(&name);
    if normalized != name {
        return Ok(
            Redirect::permanent(&format!("/{repo}/{snapshot}/simple/{normalized}/"))
                .into_response(),
        );
    }
    let view = open_view(&state, &headers, &repo, &snapshot, RepoKind::Python).await?;
    let project = view.projects.get(normalized.as_str()).ok_or_else(|| {
        ApiError::NotFound(format!("no project named {name:?} in {repo}/{snapshot}"))
    })?;
    let links = view.index_files(project);
    let (kind, content_type, body) = if wants_json(&headers) {
        (
            "json",
            JSON_TYPE,
            Bytes::from(pypi::project_json(&project.display_name, &links).to_string()),
        )
    } else {
        (
            "html",
            HTML_TYPE,
            Bytes::from(pypi::project_html(&project.display_name, &links).map_err(page_error)?),
        )
    };
    let etag = view.etag(&format!("{normalized}-{kind}"));
    Ok(files::serve_index(&headers, etag, content_type, body))
}

async fn project_redirect(
    Path((repo, snapshot, name)): Path<(String, String, String)>,
) -> Redirect {
    Redirect::permanent(&format!(
        "/{repo}/{snapshot}/simple/{}/",
        pypi::normalize(&name)
    ))
}

async fn package_file(
    State(state): State<AppState>,
    Path((repo, snapshot, filename)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = open_file_view(&state, &headers, &repo, &snapshot, RepoKind::Python, |v| {
        v.file(&filename).is_some()
    })
    .await?;
    let file = view
        .file(&filename)
        .ok_or_else(|| ApiError::NotFound(format!("no file {filename:?} in {repo}/{snapshot}")))?;
    let content_type = if filename.ends_with(".whl") {
        "application/zip"
    } else {
        "application/gzip"
    };
    files::serve_package(&state, &headers, file, content_type).await
}

fn page_error(error: askama::Error) -> ApiError {
    ApiError::Internal(format!("rendering a simple page: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_accept_header_gets_json() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
                .parse()
                .unwrap(),
        );
        assert!(wants_json(&headers));
        headers.insert(header::ACCEPT, "text/html".parse().unwrap());
        assert!(!wants_json(&headers));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
