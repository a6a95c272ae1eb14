//! Upload routes: `twine upload --repository-url {base}/upload/pypi/{source}` and the same
//! multipart form for R tarballs at `/upload/cran/{source}`. Both need a `sources:write` token.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;

use super::{ApiError, AppState, require};
use crate::auth::Scope;
use crate::config::Config;
use crate::ingest::{self, Claims, Ingested};
use crate::received::{ReceiveError, Received};
use crate::store::SourceKind;

pub fn router(config: &Config) -> Router<AppState> {
    // Room for the form fields around the largest accepted file; the exact limit is checked
    // again on the file itself so the error names it.
    let limit = usize::try_from(config.limits.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/upload/pypi/{source}", post(upload_python))
        .route("/upload/pypi/{source}/", post(upload_python))
        .route("/upload/cran/{source}", post(upload_r))
        .route("/upload/cran/{source}/", post(upload_r))
        .layer(DefaultBodyLimit::max(limit))
}

/// The parts of the upload form we use.
#[derive(Default)]
struct Form {
    filename: Option<String>,
    content: Option<Received>,
    claims: Claims,
    action: Option<String>,
}

/// Reads the form. The file streams to a temporary file in `keep_in` (or is discarded when
/// `None`: the answer is already known and only the client's body must be read); every other
/// field is small and read whole, except those we do not use, which are discarded as they stream.
async fn read_form(
    mut multipart: Multipart,
    limit: u64,
    keep_in: Option<&std::path::Path>,
) -> Result<Form, ApiError> {
    let mut form = Form::default();
    let too_large = || format!("upload is larger than the limit of {limit} bytes");
    let field_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(too_large())
        } else {
            ApiError::BadRequest(format!("malformed upload form: {}", e.body_text()))
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(field_error)? {
        let name = field.name().unwrap_or("").to_string();
        match (name.as_str(), keep_in) {
            ("content", Some(dir)) => {
                form.filename = field.file_name().map(str::to_string);
                let chunks = field.map(|chunk| {
                    chunk.map_err(|e| {
                        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                            ReceiveError::TooLarge { limit }
                        } else {
                            ReceiveError::Stream(format!(
                                "malformed upload form: {}",
                                e.body_text()
                            ))
                        }
                    })
                });
                form.content = Some(Received::from_stream(dir, chunks, limit).await.map_err(
                    |e| match e {
                        ReceiveError::TooLarge { .. } => ApiError::TooLarge(too_large()),
                        ReceiveError::Stream(why) => ApiError::BadRequest(why),
                        disk @ ReceiveError::Disk { .. } => ApiError::Internal(disk.to_string()),
                    },
                )?);
            }
            ("name" | "version" | "sha256_digest" | ":action", _) => {
                let value = field.text().await.map_err(field_error)?;
                match name.as_str() {
                    "name" => form.claims.name = Some(value),
                    "version" => form.claims.version = Some(value),
                    "sha256_digest" => form.claims.sha256 = Some(value),
                    _ => form.action = Some(value),
                }
            }
            // Other twine fields (metadata_version, summary, requires_dist…) are re-read from
            // the file itself, which is the authority.
            _ => while field.chunk().await.map_err(field_error)?.is_some() {},
        }
    }
    Ok(form)
}

async fn upload(
    state: AppState,
    source: String,
    headers: HeaderMap,
    multipart: Multipart,
    expected: SourceKind,
) -> Result<Response, ApiError> {
    // Logged before anything else, so that an upload that reached this node shows in its log
    // even when the node dies while handling it (a balancer that re-sent it elsewhere then
    // shows in two logs).
    tracing::info!(
        request_id = request_id(&headers),
        %source,
        "upload arrived"
    );
    let limit = state.config.limits.max_upload_bytes;
    let status = state.status.get();
    if status != crate::cluster::NodeStatus::Online {
        let _ = read_form(multipart, limit, None).await;
        return Err(ApiError::Unavailable(format!(
            "this node is not accepting uploads now ({status}); send them to another node"
        )));
    }
    if let Err(refused) = require(
        &state,
        &headers,
        &Scope::SourcesWrite {
            source: source.clone(),
        },
    )
    .await
    {
        // Read the body first: a client still sending would see a reset instead of the answer.
        let _ = read_form(multipart, limit, None).await;
        return Err(refused);
    }
    let found = match state.store.source_by_name(&source).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            let _ = read_form(multipart, limit, None).await;
            return Err(ApiError::NotFound(format!("no source named {source:?}")));
        }
        Err(e) => {
            state.store.health().observe_error(&e);
            let _ = read_form(multipart, limit, None).await;
            return Err(e.into());
        }
    };
    if found.kind.is_git() {
        return Err(ApiError::BadRequest(format!(
            "source {source:?} is a {} source: its packages come from its git builders, not uploads",
            found.kind.as_str()
        )));
    }
    if found.kind != expected {
        return Err(ApiError::BadRequest(format!(
            "source {source:?} is a {} source; upload {} packages to it",
            found.kind.as_str(),
            if found.kind == SourceKind::Local {
                "R"
            } else {
                "Python"
            }
        )));
    }
    let uploads_dir = state.config.data_dir.join("tmp").join("uploads");
    let form = read_form(multipart, limit, Some(&uploads_dir)).await?;
    if let Some(action) = &form.action
        && action != "file_upload"
    {
        return Err(ApiError::BadRequest(format!(
            "unsupported :action {action:?}"
        )));
    }
    let (Some(filename), Some(content)) = (form.filename, form.content) else {
        return Err(ApiError::BadRequest(
            "the form has no file: send it in the 'content' field with a file name".into(),
        ));
    };
    let result = ingest::ingest(
        &state.store,
        &state.blobs,
        &state.config.limits,
        &found,
        &filename,
        &content,
        &form.claims,
    )
    .await;
    match result {
        Ok(Ingested::Stored { tx, .. }) => {
            // A commit proves the database reachable, whatever the last check-in found.
            state.store.health().mark_available();
            // Through a verified read of the head (the id alone cannot say which history this
            // node's views belong to); `latest` reads it again anyway.
            if let Err(e) = state.head.sync(&state.store).await {
                tracing::debug!(error = %e, tx, "could not read the head after an upload");
            }
            state.telemetry.count_upload("stored");
            Ok((
                StatusCode::OK,
                format!("stored {filename} in {source} (transaction {tx})\n"),
            )
                .into_response())
        }
        Ok(Ingested::AlreadyPresent(_)) => {
            state.telemetry.count_upload("unchanged");
            Ok((
                StatusCode::OK,
                format!("{filename} is already in {source} with the same content\n"),
            )
                .into_response())
        }
        Err(e) => {
            if let ingest::IngestError::Store(store_error) = &e {
                state.store.health().observe_error(store_error);
            }
            state.telemetry.count_upload("refused");
            Err(e.into())
        }
    }
}

/// The client's `x-request-id`, when it is short printable ASCII (it goes into the log as
/// is); `-` otherwise.
fn request_id(headers: &HeaderMap) -> &str {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("-")
}

async fn upload_python(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    upload(state, source, headers, multipart, SourceKind::LocalPython).await
}

async fn upload_r(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    upload(state, source, headers, multipart, SourceKind::Local).await
}
