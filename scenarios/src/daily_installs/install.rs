//! One install, as the real client performs it: pip walks the requested package and then its
//! dependencies (page, then wheel, each hash-checked); a fresh R session reads the index once
//! (R 4.x asks for `PACKAGES.rds` and only on a failure for `PACKAGES.gz`), then downloads every
//! tarball of the closure, dependencies first.
//!
//! Each request is recorded from when it was *due*: the install's scheduled time for the
//! first, the previous request's end for the others. The first failure ends the install,
//! as it ends the client's.

use std::time::Instant;

use goose::goose::GooseResponse;
use goose::prelude::*;
use reports::metrics::Outcome;
use sha2::{Digest, Sha256};
use url::Url;

use super::index::{newest_wheel, parse_packages_index, parse_simple_page};
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

/// pip: the requested package first, then what its metadata requires.
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
        let (page, done) = fetch(ctx, user, KIND_PYPI_SIMPLE, &page_url, due, None).await?;
        due = done;
        let link = Url::parse(&page_url)
            .ok()
            .and_then(|base| {
                let html = String::from_utf8_lossy(&page);
                newest_wheel(&parse_simple_page(&html, &base))
            })
            .ok_or_else(|| "parse".to_string())?;
        let (_, done) = fetch(
            ctx,
            user,
            KIND_PYPI_FILE,
            &link.url,
            due,
            link.sha256.as_deref(),
        )
        .await?;
        due = done;
    }
    Ok(())
}

/// R: one index per install (each install is a fresh R session), then the tarballs of the
/// closure in install order, at the versions the index lists. The index is what R 4.x's
/// `available.packages` reads: `PACKAGES.rds`, and `PACKAGES.gz` only when that fails (a server
/// without it answers 404; both requests are then recorded, as R makes both).
async fn r_install(
    ctx: &InstallContext,
    user: &mut GooseUser,
    package: PkgId,
    due: Instant,
) -> Result<(), ErrorKind> {
    let rds = fetch(
        ctx,
        user,
        KIND_CRAN_PACKAGES,
        &ctx.target.packages_rds_url(),
        due,
        None,
    )
    .await;
    let (index, mut due) = match rds {
        Ok((rds, done)) => (parse_packages_rds(&rds), done),
        Err(kind) if kind == "http_404" => (None, due),
        Err(kind) => return Err(kind),
    };
    let index = match index {
        Some(index) => index,
        None => {
            let (gz, done) = fetch(
                ctx,
                user,
                KIND_CRAN_PACKAGES,
                &ctx.target.packages_gz_url(),
                due,
                None,
            )
            .await?;
            due = done;
            parse_packages_index(&gz).ok_or_else(|| "parse".to_string())?
        }
    };
    for pkg in ctx.corpus.install_closure(package) {
        let name = ctx.corpus.name(pkg);
        let version = index.get(name).ok_or_else(|| "parse".to_string())?;
        let url = ctx.target.tarball_url(name, version);
        let (_, done) = fetch(ctx, user, KIND_CRAN_TARBALL, &url, due, None).await?;
        due = done;
    }
    Ok(())
}

/// GETs `url` through goose, reads the whole body, checks `sha256` when given, and records the
/// request under `kind` from `due` to the end of the body. Returns the body and that end.
async fn fetch(
    ctx: &InstallContext,
    user: &mut GooseUser,
    kind: &str,
    url: &str,
    due: Instant,
    sha256: Option<&str>,
) -> Result<(Vec<u8>, Instant), ErrorKind> {
    ctx.recorder.scheduled(kind, due);
    let (result, finished) = get_body(user, kind, url, sha256).await;
    let outcome = match &result {
        Ok(_) => Outcome::Ok,
        Err(kind) => Outcome::Error(kind.clone()),
    };
    ctx.recorder.record(kind, due, finished, outcome);
    result.map(|body| (body, finished))
}

/// The body and when its last byte arrived: the hash check after it is the client's own work,
/// not the server's latency.
async fn get_body(
    user: &mut GooseUser,
    kind: &str,
    url: &str,
    sha256: Option<&str>,
) -> (Result<Vec<u8>, ErrorKind>, Instant) {
    match read_body(user, kind, url).await {
        Ok((body, mut request, arrived)) => {
            if let Some(expected) = sha256 {
                let actual = hex::encode(Sha256::digest(&body));
                if !actual.eq_ignore_ascii_case(expected) {
                    let _ = user.set_failure("hash_mismatch", &mut request, None, None);
                    return (Err("hash_mismatch".to_string()), arrived);
                }
            }
            (Ok(body), arrived)
        }
        Err(kind) => (Err(kind), Instant::now()),
    }
}

async fn read_body(
    user: &mut GooseUser,
    kind: &str,
    url: &str,
) -> Result<(Vec<u8>, goose::metrics::GooseRequestMetric, Instant), ErrorKind> {
    // An error here is goose's own (bad URL, metrics channel closed at shutdown).
    let GooseResponse {
        mut request,
        response,
    } = user
        .get_named(url, kind)
        .await
        .map_err(|_| "transport".to_string())?;
    let response = response.map_err(|e| transport_kind(e.is_timeout(), e.is_connect()))?;
    let status = response.status();
    if !status.is_success() {
        // goose has already counted the failure.
        return Err(format!("http_{}", status.as_u16()));
    }
    match response.bytes().await {
        Ok(body) => Ok((body.to_vec(), request, Instant::now())),
        Err(e) => {
            let kind = transport_kind(e.is_timeout(), e.is_connect());
            let _ = user.set_failure(&kind, &mut request, None, None);
            Err(kind)
        }
    }
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
