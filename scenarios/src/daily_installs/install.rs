//! One install, as the real client performs it: pip walks the requested package and then its
//! dependencies (PEP 691 JSON page, then wheel, hash-checked as it streams in); a fresh R
//! session reads the index once (R 4.x asks for `PACKAGES.rds` and only on a failure for
//! `PACKAGES.gz`), then downloads every tarball of the closure, dependencies first. Package
//! files are streamed and dropped chunk by chunk: the generator holds no copy.
//!
//! Each request is recorded from when it was *due*: the install's scheduled time for the
//! first, the previous request's end for the others. The first failure ends the install,
//! as it ends the client's.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use goose::goose::{GooseMethod, GooseResponse};
use goose::prelude::*;
use reports::metrics::Outcome;
use sha2::{Digest, Sha256};
use url::Url;

use super::index::parse_packages_index;
use super::index::{
    FileLink, SIMPLE_ACCEPT, SIMPLE_JSON_TYPE, newest_wheel, newest_wheel_json, parse_simple_page,
};
use super::packages_cache::PackagesIndex;
use super::packages_rds::parse_packages_rds;
use super::{
    InstallContext, KIND_CRAN_PACKAGES, KIND_CRAN_TARBALL, KIND_INSTALL, KIND_PYPI_FILE,
    KIND_PYPI_SIMPLE,
};
use crate::corpus::{Ecosystem, PkgId, pep503_normalize};

/// Why a request or install failed: `http_{status}`, `timeout`, `connect`, `transport`
/// (other client errors, e.g. a reset mid-body), `hash_mismatch`, or `parse` (a page or index
/// without the expected entry).
type ErrorKind = String;

/// Runs the install of `package` due at `due` and records it.
pub(super) async fn install(
    ctx: &InstallContext,
    user: &mut GooseUser,
    package: PkgId,
    due: Instant,
) {
    let result = match package.ecosystem {
        Ecosystem::Python => pip_install(ctx, user, package, due).await,
        Ecosystem::R => r_install(ctx, user, package, due).await,
    };
    let outcome = match result {
        Ok(()) => Outcome::Ok,
        Err(kind) => Outcome::Error(kind),
    };
    ctx.recorder
        .record(KIND_INSTALL, due, Instant::now(), outcome);
}

/// pip: the requested package first, then what its metadata requires. Each project page is
/// asked for as PEP 691 JSON (HTML only when the server answers HTML).
async fn pip_install(
    ctx: &InstallContext,
    user: &mut GooseUser,
    package: PkgId,
    due: Instant,
) -> Result<(), ErrorKind> {
    let mut due = due;
    let mut closure = ctx.corpus.install_closure(package);
    closure.reverse();
    for pkg in closure {
        let name = pep503_normalize(ctx.corpus.name(pkg));
        let page_url = ctx.target.simple_url(&name);
        let (page, done) = fetch_page(ctx, user, &page_url, due).await?;
        due = done;
        let link = newest_wheel_of(&page, &page_url).ok_or_else(|| "parse".to_string())?;
        due = fetch_file(
            ctx,
            user,
            KIND_PYPI_FILE,
            &link.url,
            due,
            link.sha256.as_deref(),
        )
        .await?;
    }
    Ok(())
}

/// The wheel pip would pick from a project page in whichever format the server answered.
fn newest_wheel_of(page: &Page, page_url: &str) -> Option<FileLink> {
    let base = Url::parse(page_url).ok()?;
    if page.json {
        newest_wheel_json(&page.body, &base).ok().flatten()
    } else {
        let html = std::str::from_utf8(&page.body).ok()?;
        newest_wheel(&parse_simple_page(html, &base))
    }
}

/// R: one index per install (each install is a fresh R session), then the tarballs of the
/// closure in install order, at the versions the index lists. The index is what R 4.x's
/// `available.packages` reads: `PACKAGES.rds`, and `PACKAGES.gz` only when that fails (a server
/// without it answers 404; both requests are then recorded, as R makes both). The download
/// always happens; the parse happens once per distinct index ([`PackagesCache`]).
async fn r_install(
    ctx: &InstallContext,
    user: &mut GooseUser,
    package: PkgId,
    due: Instant,
) -> Result<(), ErrorKind> {
    let (rds, mut due) = read_index(
        ctx,
        user,
        &ctx.target.packages_rds_url(),
        due,
        parse_packages_rds,
    )
    .await;
    let index = match rds {
        Ok(index) => index,
        Err(kind) if kind == "http_404" => {
            let (gz, done) = read_index(
                ctx,
                user,
                &ctx.target.packages_gz_url(),
                due,
                parse_packages_index,
            )
            .await;
            due = done;
            gz?
        }
        Err(kind) => return Err(kind),
    };
    for pkg in ctx.corpus.install_closure(package) {
        let name = ctx.corpus.name(pkg);
        let version = index.get(name).ok_or_else(|| "parse".to_string())?;
        let url = ctx.target.tarball_url(name, version);
        due = fetch_file(ctx, user, KIND_CRAN_TARBALL, &url, due, None).await?;
    }
    Ok(())
}

/// A project page's body and whether it is PEP 691 JSON.
struct Page {
    body: Bytes,
    json: bool,
}

/// Downloads one serialization of the R index and parses it (once per distinct bytes); returns
/// the index and when it was in hand (parsed), when the next request is due.
async fn read_index(
    ctx: &InstallContext,
    user: &mut GooseUser,
    url: &str,
    due: Instant,
    parse: fn(&[u8]) -> Option<PackagesIndex>,
) -> (Result<Arc<PackagesIndex>, ErrorKind>, Instant) {
    ctx.recorder.scheduled(KIND_CRAN_PACKAGES, due);
    let (result, finished) = match read_body(user, KIND_CRAN_PACKAGES, url, None).await {
        Ok((body, _, arrived)) => (
            ctx.packages
                .parsed_with(body, parse)
                .await
                .ok_or_else(|| "parse".to_string()),
            arrived,
        ),
        Err(kind) => (Err(kind), Instant::now()),
    };
    record(ctx, KIND_CRAN_PACKAGES, due, finished, &result);
    // The next request is due once the index is parsed: the client's own work (shared with
    // other users, off the async workers) is not the server's latency.
    (result, finished.max(Instant::now()))
}

/// GETs a project page (Accept: PEP 691 JSON first) and records it from `due` to its last
/// byte. The body is goose's buffer, not a copy.
async fn fetch_page(
    ctx: &InstallContext,
    user: &mut GooseUser,
    url: &str,
    due: Instant,
) -> Result<(Page, Instant), ErrorKind> {
    ctx.recorder.scheduled(KIND_PYPI_SIMPLE, due);
    let (result, finished) = match read_body(user, KIND_PYPI_SIMPLE, url, Some(SIMPLE_ACCEPT)).await
    {
        Ok((body, json, arrived)) => (Ok(Page { body, json }), arrived),
        Err(kind) => (Err(kind), Instant::now()),
    };
    record(ctx, KIND_PYPI_SIMPLE, due, finished, &result);
    result.map(|page| (page, finished))
}

/// GETs a package file, hashing it while it streams in (checked against `sha256` when given)
/// and keeping none of it, and records it from `due` to its last byte. Returns that end.
async fn fetch_file(
    ctx: &InstallContext,
    user: &mut GooseUser,
    kind: &str,
    url: &str,
    due: Instant,
    sha256: Option<&str>,
) -> Result<Instant, ErrorKind> {
    ctx.recorder.scheduled(kind, due);
    let (result, finished) = stream_file(user, kind, url, sha256).await;
    record(ctx, kind, due, finished, &result);
    result.map(|()| finished)
}

fn record<T>(
    ctx: &InstallContext,
    kind: &str,
    due: Instant,
    finished: Instant,
    result: &Result<T, ErrorKind>,
) {
    let outcome = match result {
        Ok(_) => Outcome::Ok,
        Err(kind) => Outcome::Error(kind.clone()),
    };
    ctx.recorder.record(kind, due, finished, outcome);
}

/// Sends the GET through goose; the response when its status is a success.
async fn send(
    user: &mut GooseUser,
    kind: &str,
    url: &str,
    accept: Option<&str>,
) -> Result<GooseResponse, ErrorKind> {
    // An error here is goose's own (bad URL, metrics channel closed at shutdown).
    match accept {
        None => user.get_named(url, kind).await,
        Some(accept) => {
            let builder = user
                .get_request_builder(&GooseMethod::Get, url)
                .map_err(|_| "transport".to_string())?
                .header("accept", accept);
            let request = GooseRequest::builder()
                .set_request_builder(builder)
                .name(kind)
                .build();
            user.request(request).await
        }
    }
    .map_err(|_| "transport".to_string())
}

/// The whole body (goose's buffer, not a copy), whether it is PEP 691 JSON, and when its last
/// byte arrived.
async fn read_body(
    user: &mut GooseUser,
    kind: &str,
    url: &str,
    accept: Option<&str>,
) -> Result<(Bytes, bool, Instant), ErrorKind> {
    let GooseResponse {
        mut request,
        response,
    } = send(user, kind, url, accept).await?;
    let response = response.map_err(|e| transport_kind(e.is_timeout(), e.is_connect()))?;
    let status = response.status();
    if !status.is_success() {
        // goose has already counted the failure.
        return Err(format!("http_{}", status.as_u16()));
    }
    let json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(SIMPLE_JSON_TYPE));
    match response.bytes().await {
        Ok(body) => Ok((body, json, Instant::now())),
        Err(e) => {
            let kind = transport_kind(e.is_timeout(), e.is_connect());
            let _ = user.set_failure(&kind, &mut request, None, None);
            Err(kind)
        }
    }
}

/// Streams a file's body chunk by chunk into the hasher (when a hash is expected) and drops
/// each chunk: nothing of the file is kept. Returns when its last byte arrived; the hash
/// check after it is the client's own work, not the server's latency.
async fn stream_file(
    user: &mut GooseUser,
    kind: &str,
    url: &str,
    sha256: Option<&str>,
) -> (Result<(), ErrorKind>, Instant) {
    let GooseResponse {
        mut request,
        response,
    } = match send(user, kind, url, None).await {
        Ok(sent) => sent,
        Err(kind) => return (Err(kind), Instant::now()),
    };
    let mut response = match response {
        Ok(response) => response,
        Err(e) => {
            return (
                Err(transport_kind(e.is_timeout(), e.is_connect())),
                Instant::now(),
            );
        }
    };
    let status = response.status();
    if !status.is_success() {
        return (Err(format!("http_{}", status.as_u16())), Instant::now());
    }
    let mut hasher = sha256.map(|_| Sha256::new());
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(&chunk);
                }
            }
            Ok(None) => break,
            Err(e) => {
                let kind = transport_kind(e.is_timeout(), e.is_connect());
                let _ = user.set_failure(&kind, &mut request, None, None);
                return (Err(kind), Instant::now());
            }
        }
    }
    let arrived = Instant::now();
    if let (Some(expected), Some(hasher)) = (sha256, hasher) {
        let actual: [u8; 32] = hasher.finalize().into();
        if !hex_eq(&actual, expected) {
            let _ = user.set_failure("hash_mismatch", &mut request, None, None);
            return (Err("hash_mismatch".to_string()), arrived);
        }
    }
    (Ok(()), arrived)
}

/// Whether `digest` is the hex string `expected` (either case), without formatting the digest.
fn hex_eq(digest: &[u8; 32], expected: &str) -> bool {
    let mut decoded = [0u8; 32];
    hex::decode_to_slice(expected, &mut decoded).is_ok() && &decoded == digest
}

fn transport_kind(timeout: bool, connect: bool) -> ErrorKind {
    if timeout {
        "timeout"
    } else if connect {
        "connect"
    } else {
        "transport"
    }
    .to_string()
}
