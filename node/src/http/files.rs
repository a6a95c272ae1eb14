//! Serving bytes: package files streamed from the blob store with ETag and single-range support,
//! and generated indexes from memory with ETag.

use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{ApiError, NodeState};
use crate::store::PackageFile;

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// Parses a single `bytes=` range. Multiple or malformed ranges are ignored (the whole file is
/// served), as RFC 9110 allows.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((start, end)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        // `e` may be u64::MAX: the end is clamped to the file, never computed past it.
        (Ok(s), Ok(e)) if s <= e => s..e.saturating_add(1).min(size),
        (Ok(_), Ok(_)) => return RangeRequest::Whole,
        (Ok(s), Err(_)) if end.is_empty() => s..size,
        (Err(_), Ok(n)) if start.is_empty() => size.saturating_sub(n)..size,
        _ => return RangeRequest::Whole,
    };
    if range.start >= size || range.is_empty() {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Part(range)
    }
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Streams a stored package file and counts the download.
pub async fn serve_package(
    state: &NodeState,
    headers: &HeaderMap,
    file: &PackageFile,
    content_type: &'static str,
) -> Result<Response, ApiError> {
    let etag = format!("\"{}\"", file.sha256);
    if etag_matches(headers, &etag) {
        return Ok(not_modified(&etag));
    }
    // A negative size can only come from a corrupt row; it serves as an empty file's would.
    let size = u64::try_from(file.size_bytes).unwrap_or(0);
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match parse_range(range_header, size) {
        RangeRequest::Whole => (StatusCode::OK, None),
        RangeRequest::Part(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        RangeRequest::Unsatisfiable => {
            let mut response =
                (StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n").into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let (body, len) = if state.blob_cache.keeps(size) {
        let fetch_started = std::time::Instant::now();
        let (bytes, hit) = state
            .blob_cache
            .get(&state.blobs, &file.sha256)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        state.telemetry.count_blob_cache(hit);
        state
            .telemetry
            .observe_blob_fetch(hit, fetch_started.elapsed().as_secs_f64());
        let part = match &range {
            // Clamped: the stored size and the bytes agree unless storage was tampered with.
            Some(r) => {
                let end = (r.end as usize).min(bytes.len());
                bytes.slice((r.start as usize).min(end)..end)
            }
            None => bytes,
        };
        let len = part.len() as u64;
        (Body::from_stream(frames(part)), len)
    } else {
        let read = state.blobs.read(&file.sha256, range.clone()).await?;
        (Body::from_stream(read.stream), read.len)
    };
    if range.is_none() {
        state.downloads.record(file.id);
        state.telemetry.downloads.inc();
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    if let Some(range) = range
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// Cached bytes as a stream of zero-copy slices: hyper asks for the next one only as the socket
/// drains, so the body ends (and the request stops counting as in flight, which a drain waits
/// for) when the last bytes are written, not when the whole file is handed over.
fn frames(bytes: Bytes) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    const FRAME_BYTES: usize = 256 * 1024;
    let count = bytes.len().div_ceil(FRAME_BYTES);
    futures::stream::iter((0..count).map(move |i| {
        let end = ((i + 1) * FRAME_BYTES).min(bytes.len());
        Ok(bytes.slice(i * FRAME_BYTES..end))
    }))
}

/// Serves a generated index from memory; its ETag names the snapshot it came from.
pub fn serve_index(
    headers: &HeaderMap,
    etag: String,
    content_type: &'static str,
    body: Bytes,
) -> Response {
    let etag = format!("\"{etag}\"");
    if etag_matches(headers, &etag) {
        return not_modified(&etag);
    }
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), RangeRequest::Part(0..4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), RangeRequest::Part(5..10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), RangeRequest::Part(7..10));
        assert_eq!(
            parse_range(Some("bytes=8-100"), 10),
            RangeRequest::Part(8..10)
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeRequest::Whole);
    }

    /// Issue 10 defect 3: `bytes=0-18446744073709551615` overflowed `e + 1`.
    #[test]
    fn issue_10_range_ending_at_u64_max_is_the_whole_rest() {
        let max = u64::MAX;
        assert_eq!(
            parse_range(Some(&format!("bytes=0-{max}")), 10),
            RangeRequest::Part(0..10)
        );
        assert_eq!(
            parse_range(Some(&format!("bytes={max}-{max}")), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some(&format!("bytes=-{max}")), 10),
            RangeRequest::Part(0..10)
        );
        assert_eq!(
            parse_range(Some("bytes=0-99999999999999999999999"), 10),
            RangeRequest::Whole
        );
    }
}
