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

    // Tokens: missing, wrong scope, signed by another key.
    let (status, body) = upload(base, "pypi", "py", None, good_name, read(&good), &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token"), "{body}");
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&r_token),
        good_name,
        read(&good),
        &[],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("sources:write for source py"), "{body}");
    let stranger = NodeDir::new("").token("py");
    let (status, _) = upload(
        base,
        "pypi",
        "py",
        Some(&stranger),
        good_name,
        read(&good),
        &[],
    );
    assert_eq!(status, 401);
    let (status, body) = upload(
        base,
        "pypi",
        "nosuch",
        Some(&token),
        good_name,
        read(&good),
        &[],
    );
    assert_eq!(
        status, 403,
        "a token for py does not open another source: {body}"
    );

    // Archives: truncated, metadata contradicting the file name, escaping members.
    let bytes = read(&good);
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        bytes[..bytes.len() / 2].to_vec(),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a valid archive"), "{body}");
    let wrong_name = support::mkpkg(
        &pkgs.join("n"),
        &["raw-wheel", "gamma-1.0-py3-none-any.whl", "delta", "1.0"],
    );
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        read(&wrong_name),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Name") && body.contains("delta"), "{body}");
    let wrong_version = support::mkpkg(
        &pkgs.join("v"),
        &["raw-wheel", "gamma-1.0-py3-none-any.whl", "gamma", "2.0"],
    );
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        read(&wrong_version),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Version"), "{body}");
    let traversal = support::mkpkg(pkgs, &["traversal-sdist", "evil", "1.0"]);
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        "evil-1.0.tar.gz",
        read(&traversal),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("escapes"), "{body}");
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        "../gamma-1.0-py3-none-any.whl",
        read(&good),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid file name"), "{body}");
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        read(&good),
        &[("name", "other")],
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        good_name,
        read(&good),
        &[("sha256_digest", "00")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sha256"), "{body}");
    let big = support::mkpkg_padded(&pkgs.join("big"), &["wheel", "huge", "1.0"], 300_000);
    let (status, body) = upload(
        base,
        "pypi",
        "py",
        Some(&token),
        "huge-1.0-py3-none-any.whl",
        read(&big),
        &[],
    );
    assert_eq!(status, 413, "{body}");
    let (status, body) = upload(
        base,
        "cran",
        "rsrc",
        Some(&r_token),
        good_name,
        read(&good),
        &[],
    );
    assert_eq!(status, 400, "a wheel is not an R package: {body}");
    let rpkg = support::mkpkg(pkgs, &["rpkg", "rfoo", "1.0"]);
    let (status, body) = upload(
        base,
        "cran",
        "rsrc",
        Some(&r_token),
        "rfoo_2.0.tar.gz",
        read(&rpkg),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Version"), "{body}");

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
    let other = support::mkpkg(&pkgs.join("other"), &["wheel", "gamma", "1.0"]);
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
