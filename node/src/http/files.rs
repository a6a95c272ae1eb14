//! Serving bytes: package files streamed from the blob store with ETag and single-range support,
//! and generated indexes from memory with ETag. `Range` is read by `http_range_header` and
//! `If-None-Match` by `headers`; what they mean for a file is decided here.

use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use headers::{ETag, HeaderMapExt, IfNoneMatch};
use http_range_header::{SyntacticallyCorrectRange, parse_range_header};

use super::{ApiError, NodeState};
use crate::store::PackageFile;

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// Reads a single `bytes=` range (syntax by `http_range_header`). Several ranges or a malformed
/// value are ignored (the whole file is served), as RFC 9110 allows; a last position past the
/// file, even past u64, means the rest of the file (RFC 9110 14.1.2).
pub fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(Ok(parsed)) = value.map(|v| parse_range_header(v.trim())) else {
        return RangeRequest::Whole;
    };
    let [spec] = parsed.into_ranges()[..] else {
        return RangeRequest::Whole;
    };
    let range = match spec {
        // `e` may be u64::MAX: the end is clamped to the file, never computed past it.
        SyntacticallyCorrectRange::Indexed(s, e) => s..e.saturating_add(1).min(size),
        SyntacticallyCorrectRange::FromStart(s) => s..size,
        SyntacticallyCorrectRange::FromLast(n) => size.saturating_sub(n)..size,
    };
    if range.start >= size || range.is_empty() {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Part(range)
    }
}

/// Whether the request's `If-None-Match` names `etag` (or `*`): weak comparison, as RFC 9110
/// asks for this header, so `W/"x"` matches `"x"`. An unreadable header matches nothing.
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    // Several `If-None-Match` lines are one list, joined as `headers` joins them.
    let values: Vec<&[u8]> = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if quotes_whitespace(etag.as_bytes()) || quotes_whitespace(&values.join(&b", "[..])) {
        return false;
    }
    let Ok(etag) = etag.parse::<ETag>() else {
        return false;
    };
    headers
        .typed_get::<IfNoneMatch>()
        .is_some_and(|condition| !condition.precondition_passes(&etag))
}

/// Whether a space or tab stands inside a quoted string of `value`. An entity tag holds
/// neither (RFC 9110 8.8.3), and `headers` 0.4.2 debug-asserts on one that does (a request
/// could panic a debug build), so such a value is malformed before `headers` sees it. Quotes
/// are paired as `headers` pairs them when it splits the list.
fn quotes_whitespace(value: &[u8]) -> bool {
    let mut quoted = false;
    value.iter().any(|&b| {
        quoted ^= b == b'"';
        quoted && (b == b' ' || b == b'\t')
    })
}

fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// How a request for a package file is answered before any byte is read.
#[derive(Debug, PartialEq, Eq)]
pub enum FileAnswer {
    /// 304: the client holds these bytes.
    NotModified,
    /// 416: the range lies past the end of the file.
    Unsatisfiable,
    /// 200: the whole file.
    Whole,
    /// 206: these bytes of it.
    Part(Range<u64>),
}

/// The answer to a request with `headers` for a file of `size` bytes tagged `etag` (quoted).
pub fn file_answer(headers: &HeaderMap, etag: &str, size: u64) -> FileAnswer {
    if etag_matches(headers, etag) {
        return FileAnswer::NotModified;
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match parse_range(range_header, size) {
        RangeRequest::Whole => FileAnswer::Whole,
        RangeRequest::Part(range) => FileAnswer::Part(range),
        RangeRequest::Unsatisfiable => FileAnswer::Unsatisfiable,
    }
}

fn unsatisfiable(size: u64) -> Response {
    let mut response =
        (StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n").into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

/// `range` of a file's bytes held in memory, clamped: the stored size and the bytes agree
/// unless storage was tampered with.
fn part_of(bytes: Bytes, range: Option<&Range<u64>>) -> Bytes {
    match range {
        Some(r) => {
            let end = usize::try_from(r.end)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let start = usize::try_from(r.start).unwrap_or(usize::MAX).min(end);
            bytes.slice(start..end)
        }
        None => bytes,
    }
}

/// The head of a 200 or 206 answer carrying `len` bytes of a file of `size` bytes.
fn file_response(
    body: Body,
    len: u64,
    range: Option<Range<u64>>,
    size: u64,
    etag: &str,
    content_type: &'static str,
) -> Response {
    let mut response = Response::new(body);
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, value);
    }
    if let Some(range) = range
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
    {
        h.insert(header::CONTENT_RANGE, value);
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
    // A negative size can only come from a corrupt row; it serves as an empty file's would.
    let size = u64::try_from(file.size_bytes).unwrap_or(0);
    let range = match file_answer(headers, &etag, size) {
        FileAnswer::NotModified => return Ok(not_modified(&etag)),
        FileAnswer::Unsatisfiable => return Ok(unsatisfiable(size)),
        FileAnswer::Whole => None,
        FileAnswer::Part(range) => Some(range),
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
        let part = part_of(bytes, range.as_ref());
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
    Ok(file_response(body, len, range, size, &etag, content_type))
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
        // Past u64 the last position is still past the file: the rest of it (RFC 9110 14.1.2).
        assert_eq!(
            parse_range(Some("bytes=0-99999999999999999999999"), 10),
            RangeRequest::Part(0..10)
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists() {
        let etag = "\"abc\"";
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            etag_matches(&headers, etag)
        };
        assert!(with("\"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("\"x\", \"abc\""));
        assert!(with("*"));
        assert!(!with("\"abcd\""));
        // Whitespace inside a tag: malformed (and a debug assertion in `headers`), no match.
        assert!(!with("\"a c\", \"abc\""));
        assert!(!with("\"unterminated, \"abc\""));
        assert!(!with("abc"));
        assert!(!etag_matches(&HeaderMap::new(), etag));
    }
}

/// Properties of the `Range` and `If-None-Match` answers: 100,000 generated header values each,
/// no panic, and the answer a model of RFC 9110 gives, down to the status, `Content-Range`,
/// `Content-Length` and the bytes sent (for the in-memory path `serve_package` takes).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const ETAG: &str = "\"0123abcd\"";

    /// Text of `len` characters from `chars` (ASCII): far cheaper to draw than a regex, which
    /// keeps 100,000 cases quick.
    fn ascii(
        chars: std::ops::RangeInclusive<u8>,
        len: std::ops::Range<usize>,
    ) -> impl Strategy<Value = String> {
        proptest::collection::vec(chars, len).prop_map(|b| b.into_iter().map(char::from).collect())
    }

    /// A number as a client may write it: small, near a file's size, any u64, or past u64
    /// (20 to 32 digits).
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..80).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (1u8..=9, ascii(b'0'..=b'9', 19..32))
                .prop_map(|(first, rest)| format!("{first}{rest}")),
        ]
    }

    /// One range spec: `first-last`, `first-` or `-suffix`.
    fn spec() -> impl Strategy<Value = String> {
        prop_oneof![
            (number(), number()).prop_map(|(a, b)| format!("{a}-{b}")),
            number().prop_map(|a| format!("{a}-")),
            number().prop_map(|b| format!("-{b}")),
        ]
    }

    /// A `Range` value: a unit, one or two specs, stray whitespace; or any printable text.
    fn range_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (
                prop_oneof![Just("bytes"), Just("BYTES"), Just("items"), Just("byte")],
                proptest::collection::vec(spec(), 1..3),
                prop_oneof![Just(""), Just(" ")],
            )
                .prop_map(|(unit, specs, pad)| format!("{pad}{unit}={}{pad}", specs.join(","))),
            1 => ascii(b' '..=b'~', 0..24).prop_map(|text| format!("bytes={text}")),
            1 => ascii(b' '..=b'~', 0..32),
        ]
    }

    /// An `If-None-Match` value: a list of tags, ours or not, strong or weak, or not tags at all.
    fn if_none_match_value() -> impl Strategy<Value = String> {
        let tag = prop_oneof![
            Just(ETAG.to_string()),
            Just(format!("W/{ETAG}")),
            Just("\"0123abce\"".to_string()),
            Just("W/\"other\"".to_string()),
            Just("\"\"".to_string()),
            Just("0123abcd".to_string()),
            Just("\"unterminated".to_string()),
            Just("\"a,b\"".to_string()),
            Just("\"a b\"".to_string()),
            Just("\"x\" \"y\"".to_string()),
            ascii(b'#'..=b'~', 0..12),
        ];
        prop_oneof![
            5 => proptest::collection::vec(tag, 1..4).prop_map(|tags| tags.join(", ")),
            1 => Just("*".to_string()),
            1 => ascii(b' '..=b'~', 0..32),
        ]
    }

    /// RFC 9110's reading of a digit string: a position past u64 is past every file. More than
    /// 30 digits is refused as malformed (`http_range_header`'s bound against absurd input).
    fn position(digits: &str) -> Option<u64> {
        if digits.is_empty() || digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(digits.parse().unwrap_or(u64::MAX))
    }

    /// The model: what a server following RFC 9110 answers, serving single ranges only. The
    /// unit is case-insensitive, empty list elements do not count (RFC 9110 5.6.1.2), and
    /// arithmetic is in u128 so that no edge can overflow.
    fn expected_range(value: &str, size: u64) -> RangeRequest {
        let value = value.trim();
        let Some(set) = value
            .get(..6)
            .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
            .and_then(|_| value.get(6..))
        else {
            return RangeRequest::Whole;
        };
        let specs: Vec<&str> = set
            .split(',')
            .map(|spec| spec.trim_matches([' ', '\t']))
            .filter(|spec| !spec.is_empty())
            .collect();
        let [spec] = specs[..] else {
            return RangeRequest::Whole;
        };
        let Some((first, last)) = spec.split_once('-') else {
            return RangeRequest::Whole;
        };
        let size = u128::from(size);
        let (start, end) = match (position(first), position(last)) {
            (Some(s), Some(e)) if s <= e => (u128::from(s), (u128::from(e) + 1).min(size)),
            (Some(s), None) if last.is_empty() => (u128::from(s), size),
            (None, Some(n)) if first.is_empty() => (size - u128::from(n).min(size), size),
            _ => return RangeRequest::Whole,
        };
        if start >= end {
            RangeRequest::Unsatisfiable
        } else {
            RangeRequest::Part(start as u64..end as u64)
        }
    }

    /// RFC 9110's `If-None-Match`: `*`, or a list of entity tags (commas inside a quoted tag do
    /// not split it) of which one is ours, strong or weak. A value with whitespace inside
    /// quotes holds a malformed tag and matches nothing.
    fn expected_not_modified(value: &str) -> bool {
        let mut in_quotes = false;
        let items: Vec<&str> = value
            .split(|c| {
                in_quotes ^= c == '"';
                c == ',' && !in_quotes
            })
            .collect();
        let mut in_quotes = false;
        let malformed = value.chars().any(|c| {
            in_quotes ^= c == '"';
            in_quotes && c.is_ascii_whitespace()
        });
        value == "*"
            || !malformed
                && items
                    .iter()
                    .map(|tag| tag.trim())
                    .any(|tag| tag == ETAG || tag.strip_prefix("W/") == Some(ETAG))
    }

    fn request(range: Option<&str>, if_none_match: Option<&str>) -> Option<HeaderMap> {
        let mut headers = HeaderMap::new();
        if let Some(value) = range {
            headers.insert(header::RANGE, HeaderValue::from_str(value).ok()?);
        }
        if let Some(value) = if_none_match {
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).ok()?);
        }
        Some(headers)
    }

    /// `serve_package`'s answer for a file held in memory, with the bytes it would send.
    fn answer_in_memory(headers: &HeaderMap, file: &Bytes) -> (Response, Bytes) {
        let size = file.len() as u64;
        match file_answer(headers, ETAG, size) {
            FileAnswer::NotModified => (not_modified(ETAG), Bytes::new()),
            FileAnswer::Unsatisfiable => (unsatisfiable(size), Bytes::new()),
            FileAnswer::Whole => {
                let part = part_of(file.clone(), None);
                let len = part.len() as u64;
                (
                    file_response(Body::empty(), len, None, size, ETAG, "x"),
                    part,
                )
            }
            FileAnswer::Part(range) => {
                let part = part_of(file.clone(), Some(&range));
                let len = part.len() as u64;
                let response = file_response(Body::empty(), len, Some(range), size, ETAG, "x");
                (response, part)
            }
        }
    }

    fn header_text(response: &Response, name: header::HeaderName) -> Option<&str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]

        #[test]
        fn range_answers_follow_rfc_9110(value in range_value(), size in 0u64..48) {
            let file = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
            let Some(headers) = request(Some(&value), None) else {
                return Ok(());
            };
            let expected = expected_range(&value, size);
            let (response, sent) = answer_in_memory(&headers, &file);
            let status = response.status();
            match &expected {
                RangeRequest::Whole => {
                    prop_assert_eq!(status, StatusCode::OK, "{:?} of {}", value, size);
                    prop_assert_eq!(&sent, &file);
                    prop_assert_eq!(header_text(&response, header::CONTENT_RANGE), None);
                }
                RangeRequest::Part(range) => {
                    prop_assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{:?} of {}", value, size);
                    prop_assert_eq!(&sent[..], &file[range.start as usize..range.end as usize]);
                    let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
                    prop_assert_eq!(header_text(&response, header::CONTENT_RANGE), Some(content_range.as_str()));
                }
                RangeRequest::Unsatisfiable => {
                    prop_assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{:?} of {}", value, size);
                    let content_range = format!("bytes */{size}");
                    prop_assert_eq!(header_text(&response, header::CONTENT_RANGE), Some(content_range.as_str()));
                }
            }
            if status != StatusCode::RANGE_NOT_SATISFIABLE {
                let length = sent.len().to_string();
                prop_assert_eq!(header_text(&response, header::CONTENT_LENGTH), Some(length.as_str()));
            }
            prop_assert_eq!(parse_range(Some(&value), size), expected);
        }

        #[test]
        fn ranges_of_any_size_stay_inside_the_file(value in range_value(), size in any::<u64>()) {
            match parse_range(Some(&value), size) {
                RangeRequest::Part(range) => {
                    prop_assert!(range.start < range.end && range.end <= size, "{value:?} of {size}: {range:?}");
                }
                RangeRequest::Whole | RangeRequest::Unsatisfiable => {}
            }
        }

        #[test]
        fn if_none_match_answers_304_exactly_for_our_tag(
            value in if_none_match_value(),
            range in proptest::option::of(range_value()),
        ) {
            let file = Bytes::from_static(b"0123456789");
            let Some(headers) = request(range.as_deref(), Some(&value)) else {
                return Ok(());
            };
            let (response, sent) = answer_in_memory(&headers, &file);
            if expected_not_modified(&value) {
                prop_assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{:?}", value);
                prop_assert_eq!(header_text(&response, header::ETAG), Some(ETAG));
                prop_assert!(sent.is_empty());
            } else {
                prop_assert_ne!(response.status(), StatusCode::NOT_MODIFIED, "{:?}", value);
            }
        }

        #[test]
        fn any_header_bytes_are_answered_without_panic(
            range in proptest::collection::vec(any::<u8>(), 0..40),
            if_none_match in proptest::collection::vec(any::<u8>(), 0..40),
            size in any::<u64>(),
        ) {
            let mut headers = HeaderMap::new();
            for (name, bytes) in [(header::RANGE, &range), (header::IF_NONE_MATCH, &if_none_match)] {
                if let Ok(value) = HeaderValue::from_bytes(bytes) {
                    headers.insert(name, value);
                }
            }
            let _ = file_answer(&headers, ETAG, size);
        }
    }
}
