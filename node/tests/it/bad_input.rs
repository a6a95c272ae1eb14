//! Every bad input gets its 4xx with a message a user can act on, and stores nothing.

use std::path::Path;

use reqwest::blocking::multipart::{Form, Part};

use crate::support::{self, NodeDir};

fn upload(
    base: &str,
    kind: &str,
    source: &str,
    token: Option<&str>,
    filename: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let mut form = Form::new()
        .text(":action", "file_upload")
        .text("protocol_version", "1");
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form = form.part(
        "content",
        Part::bytes(bytes).file_name(filename.to_string()),
    );
    let mut request = reqwest::blocking::Client::new()
        .post(format!("{base}/upload/{kind}/{source}"))
        .multipart(form);
    if let Some(token) = token {
        request = request.basic_auth("__token__", Some(token));
    }
    let response = request.send().expect("upload request");
    (
        response.status().as_u16(),
        response.text().unwrap_or_default(),
    )
}

/// One refused upload: what, (endpoint kind, source), token, file name, bytes, form fields,
/// expected status, text the answer must contain.
type Refusal<'a> = (
    &'a str,
    (&'a str, &'a str),
    Option<&'a str>,
    &'a str,
    Vec<u8>,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let node = NodeDir::new("[limits]\nmax_upload_bytes = 200000\n");
    node.standard_layout();
    let token = node.token("py");
    let r_token = node.token("rsrc");
    let served = node.serve();
    let base = served.base.as_str();
    let work = tempfile::tempdir().unwrap();
    let pkgs = work.path();
    let good = support::mkpkg(pkgs, &["wheel", "gamma", "1.0"]);
    let good_name = "gamma-1.0-py3-none-any.whl";

    let stranger = NodeDir::new("").token("py");
    let bytes = read(&good);
    let wrong_name = support::mkpkg(
        &pkgs.join("n"),
        &["raw-wheel", "gamma-1.0-py3-none-any.whl", "delta", "1.0"],
    );
    let wrong_version = support::mkpkg(
        &pkgs.join("v"),
        &["raw-wheel", "gamma-1.0-py3-none-any.whl", "gamma", "2.0"],
    );
    let traversal = support::mkpkg(pkgs, &["traversal-sdist", "evil", "1.0"]);
    let big = support::mkpkg_padded(&pkgs.join("big"), &["wheel", "huge", "1.0"], 300_000);
    // Five times the limit (still within the HTTP layer's body limit, the limit plus 1 MiB):
    // the node must read what the client sends before it answers, or the client, still
    // sending, sees a reset connection instead of the 413.
    let far = support::mkpkg_padded(&pkgs.join("far"), &["wheel", "huger", "1.0"], 1_000_000);
    let rpkg = support::mkpkg(pkgs, &["rpkg", "rfoo", "1.0"]);
    let py = ("pypi", "py");
    let r = ("cran", "rsrc");
    // (what, endpoint, token, file name, bytes, form fields, status, the body must say)
    let refusals: Vec<Refusal<'_>> = vec![
        (
            "no token",
            py,
            None,
            good_name,
            bytes.clone(),
            &[],
            401,
            "token",
        ),
        (
            "another source's token",
            py,
            Some(&r_token),
            good_name,
            bytes.clone(),
            &[],
            403,
            "sources:write for source py",
        ),
        (
            "a token signed by another key",
            py,
            Some(&stranger),
            good_name,
            bytes.clone(),
            &[],
            401,
            "token",
        ),
        (
            "a token for py does not open another source",
            ("pypi", "nosuch"),
            Some(&token),
            good_name,
            bytes.clone(),
            &[],
            403,
            "nosuch",
        ),
        (
            "truncated archive",
            py,
            Some(&token),
            good_name,
            bytes[..bytes.len() / 2].to_vec(),
            &[],
            400,
            "not a valid archive",
        ),
        (
            "Name contradicts the file name",
            py,
            Some(&token),
            good_name,
            read(&wrong_name),
            &[],
            400,
            "delta",
        ),
        (
            "Version contradicts the file name",
            py,
            Some(&token),
            good_name,
            read(&wrong_version),
            &[],
            400,
            "Version",
        ),
        (
            "a member escapes the archive",
            py,
            Some(&token),
            "evil-1.0.tar.gz",
            read(&traversal),
            &[],
            400,
            "escapes",
        ),
        (
            "path traversal in the file name",
            py,
            Some(&token),
            "../gamma-1.0-py3-none-any.whl",
            bytes.clone(),
            &[],
            400,
            "invalid file name",
        ),
        (
            "the form's name contradicts the file",
            py,
            Some(&token),
            good_name,
            bytes.clone(),
            &[("name", "other")],
            400,
            "other",
        ),
        (
            "the form's sha256 does not match",
            py,
            Some(&token),
            good_name,
            bytes.clone(),
            &[("sha256_digest", "00")],
            400,
            "sha256",
        ),
        (
            "over the size limit",
            py,
            Some(&token),
            "huge-1.0-py3-none-any.whl",
            read(&big),
            &[],
            413,
            "limit",
        ),
        (
            "five times the size limit",
            py,
            Some(&token),
            "huger-1.0-py3-none-any.whl",
            read(&far),
            &[],
            413,
            "limit",
        ),
        (
            "a wheel is not an R package",
            r,
            Some(&r_token),
            good_name,
            bytes.clone(),
            &[],
            400,
            "R source package",
        ),
        (
            "R Version contradicts the file name",
            r,
            Some(&r_token),
            "rfoo_2.0.tar.gz",
            read(&rpkg),
            &[],
            400,
            "Version",
        ),
    ];
    for (what, (kind, source), token, file, body_bytes, fields, status, says) in refusals {
        let (got, body) = upload(base, kind, source, token, file, body_bytes, fields);
        assert_eq!(got, status, "{what}: {body}");
        assert!(
            body.contains(says),
            "{what}: the answer should mention {says:?}: {body}"
        );
    }

    // twine sees the refusal too.
    let renamed = pkgs.join("delta-1.0-py3-none-any.whl");
    std::fs::copy(&wrong_name, &renamed).unwrap();
    let (ok, out) = support::twine_upload(base, "py", &token, &[&renamed]);
    assert!(!ok, "twine must fail on a contradicting wheel: {out}");

    // Nothing was stored: no package rows, no blobs, no staged leftovers.
    assert_eq!(node.admin(&["list", "packages"]).trim(), "");
    let stored = files_under(&node.dir.path().join("data/packages"));
    assert!(stored.is_empty(), "files left behind: {stored:?}");

    // Duplicates: same bytes are an idempotent success, different bytes a conflict.
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        read(&good),
        &[("name", "gamma"), ("version", "1.0")],
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        read(&good),
        &[],
    );
    assert_eq!(status, 200, "same bytes again: {body}");
    assert!(body.contains("already"), "{body}");
    // Other bytes under the same name: padded, since two builds in one second are identical.
    let other = support::mkpkg_padded(&pkgs.join("other"), &["wheel", "gamma", "1.0"], 64);
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        read(&other),
        &[],
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already exists"), "{body}");

    // The admin CLI refuses the same way.
    let err = node.admin_fails(&[
        "add",
        "--source",
        "py",
        "--path",
        &traversal.display().to_string(),
    ]);
    assert!(err.contains("escapes"), "{err}");
    let listed = node.admin(&["list", "packages"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let stored = files_under(&node.dir.path().join("data/packages"));
    assert_eq!(
        stored.len(),
        1,
        "exactly the one accepted file is stored: {stored:?}"
    );
    assert!(stored[0].contains("/blobs/sha256/"), "{stored:?}");
}

#[test]
fn bad_configs_and_names_are_refused() {
    let node = NodeDir::new("[limits]\nmax_upload_bytes = 0\n");
    let err = node.admin_fails(&["list", "repos"]);
    assert!(err.contains("max_upload_bytes"), "{err}");
    let node = NodeDir::new("[databse]\nurl = \"x\"\n");
    let err = node.admin_fails(&["list", "repos"]);
    assert!(err.contains("databse"), "{err}");
    let node = NodeDir::new("");
    let err = node.admin_fails(&["create", "repo", "--name", "upload", "--type", "python"]);
    assert!(err.contains("reserved"), "{err}");
    let err = node.admin_fails(&["create", "repo", "--name", "../x", "--type", "python"]);
    assert!(err.contains("invalid name"), "{err}");
    node.admin(&["create", "repo", "--name", "pypi", "--type", "python"]);
    node.admin(&["create", "source", "--name", "rsrc", "--type", "local"]);
    let err = node.admin_fails(&["subscribe", "--repo", "pypi", "--source", "rsrc"]);
    assert!(err.contains("cannot subscribe"), "{err}");
}

/// Issue 10 defect 4: archives that inflate past `[limits] max_inflated_bytes` are refused with a
/// 413 naming the limit, and nothing is stored; packages under the limit still go in.
#[test]
fn issue_10_decompression_bombs_are_refused_and_leave_nothing_behind() {
    const LIMIT: usize = 1_000_000;
    let node = NodeDir::new(&format!("[limits]\nmax_inflated_bytes = {LIMIT}\n"));
    node.standard_layout();
    let py_token = node.token("py");
    let r_token = node.token("rsrc");
    let served = node.serve();
    let base = served.base.as_str();
    let work = tempfile::tempdir().unwrap();
    let bombs = [
        ("cran", "rsrc", &r_token, &["rpkg", "rbomb", "1.0"][..]),
        ("pypi", "py", &py_token, &["wheel", "wheel-bomb", "1.0"][..]),
        ("pypi", "py", &py_token, &["sdist", "sdist-bomb", "1.0"][..]),
    ];
    for (kind, source, token, args) in bombs {
        let bomb = support::mkpkg_bomb(&work.path().join(args[1]), args, 20 * LIMIT);
        let bytes = read(&bomb);
        assert!(bytes.len() < LIMIT / 10, "{} bytes is no bomb", bytes.len());
        let filename = bomb.file_name().unwrap().to_string_lossy().into_owned();
        let (status, body) = upload(base, kind, source, Some(token), &filename, bytes, &[]);
        assert_eq!(status, 413, "{filename}: {body}");
        assert!(
            body.contains("max_inflated_bytes") && body.contains(&LIMIT.to_string()),
            "{filename}: the answer must name the limit: {body}"
        );
        let err = node.admin_fails(&[
            "add",
            "--source",
            source,
            "--path",
            &bomb.display().to_string(),
        ]);
        assert!(err.contains("max_inflated_bytes"), "{err}");
    }
    assert_eq!(node.admin(&["list", "packages"]), "");
    let stored = files_under(&node.dir.path().join("data/packages"));
    assert!(stored.is_empty(), "a refused bomb left {stored:?}");

    // Just under the limit is accepted: the limit counts what the archive really inflates to.
    let fits = support::mkpkg_bomb(
        &work.path().join("fits"),
        &["rpkg", "rfits", "1.0"],
        LIMIT / 2,
    );
    let filename = fits.file_name().unwrap().to_string_lossy().into_owned();
    let (status, body) = upload(
        base,
        "cran",
        "rsrc",
        Some(&r_token),
        &filename,
        read(&fits),
        &[],
    );
    assert_eq!(status, 200, "{body}");
}
