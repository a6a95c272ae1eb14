//! Read-your-writes (issue 10 defect 1): once `pkgnode add` or an upload has returned, every
//! request for `latest` — to the node that took it, or to another node on the same database — sees
//! it, whatever the head poll interval. The nodes here poll every 30 s, so only reading the
//! database's head per request can explain the answers. A package file the node's newest view
//! already lists is the exception: file names name the same bytes for good, so it is served
//! from that view without a head read.

use std::path::Path;

use crate::support::{self, NodeDir, Postgres};

fn packages(base: &str) -> String {
    let response =
        reqwest::blocking::get(format!("{base}/cran/latest/src/contrib/PACKAGES")).unwrap();
    assert_eq!(response.status(), 200);
    response.text().unwrap()
}

fn add_then_read(node: &NodeDir, work: &Path) {
    let served = node.serve();
    // The view at the current head is built and cached before the add.
    assert_eq!(packages(&served.base), "");
    for version in ["1.0", "1.1", "1.2"] {
        let tarball = support::mkpkg(&work.join(version), &["rpkg", "ryw", version]);
        node.admin(&[
            "add",
            "--source",
            "rsrc",
            "--path",
            &tarball.display().to_string(),
        ]);
        let index = packages(&served.base);
        assert!(
            index.contains(&format!("Package: ryw\nVersion: {version}\n")),
            "right after `add` of ryw {version}, PACKAGES says:\n{index}"
        );
    }
}

#[test]
fn issue_10_add_then_read_on_sqlite() {
    let node = NodeDir::with_head_poll("", "30s");
    node.standard_layout();
    let work = tempfile::tempdir().unwrap();
    add_then_read(&node, work.path());
}

#[test]
fn issue_10_add_then_read_on_postgres_and_through_another_node() {
    let pg = Postgres::start();
    let url = pg.database("ryw");
    let key_dir = tempfile::tempdir().unwrap();
    let shared = format!(
        "[database]\nurl = \"{url}\"\n[storage]\ndir = \"{}\"\n[cluster]\nkey_file = \"{}\"\n",
        key_dir.path().join("packages").display(),
        key_dir.path().join("pkgnode.key").display()
    );
    // No warmer: a node's newest view moves only when a request builds it, so which requests
    // read the head below does not depend on when a notification lands.
    let cache = "head_poll_interval = \"30s\"\nwarm_views = false";
    let node = NodeDir::with_cache(&shared, cache);
    node.standard_layout();
    let work = tempfile::tempdir().unwrap();
    add_then_read(&node, work.path());

    // An upload through one node, read at once through another.
    let other = NodeDir::with_cache(&shared, cache);
    let first = node.serve();
    let second = other.serve();
    assert_eq!(packages(&second.base).matches("Package: ryw").count(), 1);
    let token = node.token("py");
    for version in ["1.0", "2.0", "3.0"] {
        let wheel = support::mkpkg(&work.path().join(version), &["wheel", "ryw-py", version]);
        let (ok, out) = support::twine_upload(&first.base, "py", &token, &[&wheel]);
        assert!(ok, "{out}");
        let page = reqwest::blocking::get(format!("{}/pypi/latest/simple/ryw-py/", second.base))
            .unwrap()
            .text()
            .unwrap();
        assert!(
            page.contains(&format!("ryw_py-{version}-py3-none-any.whl")),
            "right after the upload of {version} through the first node, the second serves:\n{page}"
        );
    }

    // A file the second node's newest view lists is served from that view, without a head
    // read; a file uploaded a moment ago through the first node, which that view lacks, reads
    // the head and is served too.
    let file = |version: &str| {
        let url = format!(
            "{}/pypi/latest/packages/ryw_py-{version}-py3-none-any.whl",
            second.base
        );
        reqwest::blocking::get(url).unwrap().status()
    };
    let before = latest_resolutions(&second.base);
    assert_eq!(file("3.0"), 200);
    let after = latest_resolutions(&second.base);
    assert_eq!(
        (after.database, after.held_view),
        (before.database, before.held_view + 1),
        "a listed file is served from the held view"
    );
    let wheel = support::mkpkg(&work.path().join("4.0"), &["wheel", "ryw-py", "4.0"]);
    let (ok, out) = support::twine_upload(&first.base, "py", &token, &[&wheel]);
    assert!(ok, "{out}");
    assert_eq!(
        file("4.0"),
        200,
        "right after its upload through the first node"
    );
    let last = latest_resolutions(&second.base);
    assert_eq!(
        (last.database, last.held_view),
        (after.database + 1, after.held_view),
        "a file the held view lacks reads the head"
    );
}

/// `pkgnode_latest_resolutions_total` of a node, by how `latest` was chosen.
#[derive(Debug, Default)]
struct LatestResolutions {
    database: u64,
    held_view: u64,
}

fn latest_resolutions(base: &str) -> LatestResolutions {
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let mut counts = LatestResolutions::default();
    for (name, labels, value) in support::metric_samples(&text) {
        if name != "pkgnode_latest_resolutions_total" {
            continue;
        }
        match labels.as_slice() {
            [(label, by)] if label == "by" && by == "database" => counts.database = value as u64,
            [(label, by)] if label == "by" && by == "held_view" => counts.held_view = value as u64,
            other => panic!("unexpected labels {other:?} of {name}"),
        }
    }
    counts
}

/// The shared head reads go over a connection of their own (`store::head_read`): kept between
/// reads, and replaced within the read that finds it dead. Here it is killed by the server
/// (`pg_terminate_backend`), then a transaction is committed behind the node's back — a plain
/// `INSERT`, no `NOTIFY`, and a 30 s poll, so only the request's own head read can see it. The
/// next `latest` request must still serve that transaction, with the database reported ok.
/// (With the dead connection's error taken as the read's answer, the node serves its older head
/// and counts the database as unavailable: the planted fault this test catches.)
#[test]
fn a_dead_head_connection_is_replaced_within_the_read() {
    let pg = Postgres::start();
    let url = pg.database("headconn");
    let shared = format!("[database]\nurl = \"{url}\"\n");
    let node = NodeDir::with_cache(&shared, "head_poll_interval = \"30s\"\nwarm_views = false");
    node.standard_layout();
    let served = node.serve();
    let latest_tx = || {
        let response =
            reqwest::blocking::get(format!("{}/cran/latest/src/contrib/PACKAGES", served.base))
                .unwrap();
        assert_eq!(response.status(), 200);
        etag_tx(response.headers()[reqwest::header::ETAG].to_str().unwrap())
    };
    let head_backends = || {
        pg.psql(
            "headconn",
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE application_name = '{}'",
                node::store::head_read::HEAD_CONNECTION_NAME
            ),
        )
    };
    let database_head = || pg.psql("headconn", "SELECT MAX(id) FROM transactions");

    assert_eq!(latest_tx().to_string(), database_head());
    // One connection, kept across reads.
    let first = head_backends();
    assert!(!first.is_empty() && !first.contains('\n'), "{first:?}");
    for _ in 0..20 {
        latest_tx();
    }
    assert_eq!(head_backends(), first, "the head connection is kept");

    assert_eq!(
        pg.psql("headconn", &format!("SELECT pg_terminate_backend({first})")),
        "t"
    );
    support::wait_until(
        "the backend to end",
        std::time::Duration::from_secs(10),
        || head_backends().is_empty(),
    );
    pg.psql(
        "headconn",
        "INSERT INTO transactions (created_at_ms, kind, description, uid) \
         SELECT MAX(created_at_ms), 'test', 'behind the node', md5(random()::text) FROM transactions",
    );
    let committed: i64 = database_head().parse().unwrap();
    assert_eq!(
        latest_tx(),
        committed,
        "the first request after the head connection died reads the database's head"
    );
    let status = reqwest::blocking::get(format!("{}/__api__/status", served.base))
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(status["database"], "ok", "{status}");
    let second = head_backends();
    assert!(
        !second.is_empty() && second != first,
        "{first:?} then {second:?}"
    );
}

/// The transaction id in an index ETag `"{repo}-{tx}-{uid8}-{what}"`.
fn etag_tx(etag: &str) -> i64 {
    etag.trim_matches('"')
        .split('-')
        .nth(1)
        .and_then(|tx| tx.parse().ok())
        .unwrap_or_else(|| panic!("no transaction in ETag {etag}"))
}
