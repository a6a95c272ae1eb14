//! A leaked token can be revoked (issue 10 defect 9): `pkgnode revoke token --token T | --guid G`
//! makes every node sharing the database refuse it from the next request on, with a message that
//! says so; tokens are listed by id with `pkgnode list tokens`. A token signed with the key but not
//! recorded (issued before tokens were recorded) is refused.

use std::path::Path;

use crate::support::{self, NodeDir, Postgres};

fn upload(base: &str, token: &str, wheel: &Path) -> (u16, String) {
    let bytes = std::fs::read(wheel).unwrap();
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let form = reqwest::blocking::multipart::Form::new()
        .text(":action", "file_upload")
        .part(
            "content",
            reqwest::blocking::multipart::Part::bytes(bytes).file_name(name),
        );
    let response = reqwest::blocking::Client::new()
        .post(format!("{base}/upload/pypi/py"))
        .basic_auth("__token__", Some(token))
        .multipart(form)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

fn simple_page(base: &str, project: &str) -> String {
    reqwest::blocking::get(format!("{base}/pypi/latest/simple/{project}/"))
        .unwrap()
        .text()
        .unwrap()
}

/// The id `create token` printed ("token <guid> for …").
fn token_and_guid(node: &NodeDir) -> (String, String) {
    let out = node.admin(&[
        "create",
        "token",
        "--scope",
        "sources:write",
        "--source",
        "py",
    ]);
    let guid = out.split_whitespace().nth(1).unwrap().to_string();
    let token = out.lines().last().unwrap().trim().to_string();
    (token, guid)
}

/// Revokes through `admin` and checks that `uploads_to` (every node) refuses the token at once.
fn revoked_token_is_refused(admin: &NodeDir, uploads_to: &[&str], work: &Path) {
    let (token, guid) = token_and_guid(admin);
    let listed = admin.admin(&["list", "tokens"]);
    let line = listed.lines().find(|l| l.starts_with(&guid)).unwrap();
    assert!(
        line.contains("sources:write py") && line.ends_with("active"),
        "{listed}"
    );
    let before = support::mkpkg(&work.join("before"), &["wheel", "leaky", "1.0"]);
    for base in uploads_to {
        let (status, body) = upload(base, &token, &before);
        assert!(status == 200 || status == 201, "{status} {body}");
    }

    let out = admin.admin(&["revoke", "token", "--token", &token]);
    assert_eq!(out.trim(), format!("revoked token {guid}"));

    let after = support::mkpkg(&work.join("after"), &["wheel", "leaky", "2.0"]);
    for base in uploads_to {
        let (status, body) = upload(base, &token, &after);
        assert_eq!(status, 401, "{body}");
        assert!(
            body.contains(&format!("token {guid} was revoked at")),
            "{body}"
        );
        let page = simple_page(base, "leaky");
        assert!(page.contains("leaky-1.0-py3-none-any.whl"), "{page}");
        assert!(!page.contains("leaky-2.0"), "refused, yet stored:\n{page}");
    }
    // Revoking again changes nothing and says so; an unknown id is an error naming it.
    let again = admin.admin(&["revoke", "token", "--guid", &guid]);
    assert!(again.contains("was already revoked at"), "{again}");
    let error = admin.admin_fails(&["revoke", "token", "--guid", "no-such-id"]);
    assert!(error.contains("no token with id no-such-id"), "{error}");
    let listed = admin.admin(&["list", "tokens"]);
    let line = listed.lines().find(|l| l.starts_with(&guid)).unwrap();
    assert!(line.contains("\trevoked "), "{listed}");

    // A fresh token for the same source still works.
    let (fresh, _) = token_and_guid(admin);
    for base in uploads_to.iter().take(1) {
        let (status, body) = upload(base, &fresh, &after);
        assert!(status == 200 || status == 201, "{status} {body}");
    }
}

#[test]
fn issue_10_revoked_token_is_refused_on_sqlite() {
    let node = NodeDir::new("");
    node.standard_layout();
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    revoked_token_is_refused(&node, &[&served.base], work.path());
}

#[test]
fn issue_10_revoked_token_is_refused_by_a_second_node_sharing_postgres() {
    let pg = Postgres::start();
    let url = pg.database("tokens");
    let shared_dir = tempfile::tempdir().unwrap();
    let shared = format!(
        "[database]\nurl = \"{url}\"\n[storage]\ndir = \"{}\"\n[cluster]\nkey_file = \"{}\"\n",
        shared_dir.path().join("packages").display(),
        shared_dir.path().join("pkgnode.key").display()
    );
    let first = NodeDir::new(&shared);
    first.standard_layout();
    let second = NodeDir::new(&shared);
    let (a, b) = (first.serve(), second.serve());
    let work = tempfile::tempdir().unwrap();
    revoked_token_is_refused(&first, &[&a.base, &b.base], work.path());

    // A token signed with the key but with no record — as every token issued before tokens were
    // recorded — is refused, with what to do about it.
    let (token, guid) = token_and_guid(&first);
    pg.psql(
        "tokens",
        &format!("DELETE FROM tokens WHERE guid = '{guid}'"),
    );
    let wheel = support::mkpkg(&work.path().join("old"), &["wheel", "oldtoken", "1.0"]);
    let (status, body) = upload(&b.base, &token, &wheel);
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains(&format!("token {guid} is not recorded on this server"))
            && body.contains("pkgnode create token"),
        "{body}"
    );
}

/// Failing closed: while the database is away a token cannot be checked for revocation, so an
/// authenticated repo answers 503 with Retry-After (a public repo keeps serving what the node
/// holds), and serves again once the database is back.
#[test]
fn authenticated_reads_wait_for_the_database_to_check_the_token() {
    let pg = Postgres::start();
    let url = pg.database("tokenloss");
    let node = NodeDir::new(&format!(
        "[database]\nurl = \"{url}\"\nacquire_timeout = \"2s\"\n"
    ));
    node.standard_layout();
    node.admin(&[
        "create",
        "repo",
        "--name",
        "private",
        "--type",
        "python",
        "--authenticated",
    ]);
    node.admin(&["subscribe", "--repo", "private", "--source", "py"]);
    let (upload_token, _) = token_and_guid(&node);
    let read_token = node
        .admin(&[
            "create",
            "token",
            "--scope",
            "repos:read",
            "--repo",
            "private",
        ])
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "secret", "1.0"]);
    let (status, body) = upload(&served.base, &upload_token, &wheel);
    assert_eq!(status, 200, "{body}");
    let read = || {
        reqwest::blocking::Client::new()
            .get(format!("{}/private/latest/simple/secret/", served.base))
            .basic_auth("__token__", Some(&read_token))
            .send()
            .unwrap()
    };
    assert_eq!(read().status(), 200);
    assert!(simple_page(&served.base, "secret").contains("secret-1.0"));

    pg.stop();
    let refused = read();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        refused.text().unwrap().contains("database is unavailable"),
        "the answer should say why"
    );
    assert!(simple_page(&served.base, "secret").contains("secret-1.0"));
    // A token that cannot be recorded is never shown: it would only be refused.
    let (ok, stdout, stderr) = node.run(&[
        "create",
        "token",
        "--scope",
        "sources:write",
        "--source",
        "py",
    ]);
    assert!(
        !ok && stdout.is_empty(),
        "stdout: {stdout}\nstderr: {stderr}"
    );

    pg.start_again();
    assert_eq!(read().status(), 200);
}
