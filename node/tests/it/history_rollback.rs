//! Issue 23: a node never serves what the database does not hold. When the database's history is
//! rolled back under a node — the newest transactions deleted behind its back, or a failover to
//! an asynchronous standby that never received them — the node's next head read finds its head
//! gone, drops every view built on the lost history (`pkgnode_history_rollbacks_total`), and
//! lists only what the database holds; an upload made after the rollback, whose transaction id
//! the lost history had already used, is listed at once on every node.

use std::time::Duration;

use crate::support::{self, Endpoint, NodeDir, Postgres, Served, get, upload};

/// The HTTP status of a project's simple page on `base`.
fn listed(base: &str, project: &str) -> u16 {
    get(&format!("{base}/pypi/latest/simple/{project}/"))
        .status()
        .as_u16()
}

/// The project names the simple root page of `base` lists, as one string.
fn root(base: &str) -> String {
    get(&format!("{base}/pypi/latest/simple/")).text().unwrap()
}

/// Whether the node's status says its database answers.
fn database_available(base: &str) -> bool {
    let status: serde_json::Value = get(&format!("{base}/__api__/status"))
        .json()
        .unwrap_or_default();
    status["database"] == "ok"
}

fn rollbacks(base: &str) -> u64 {
    let metrics = get(&format!("{base}/metrics")).text().unwrap();
    support::metric_samples(&metrics)
        .into_iter()
        .find(|(name, _, _)| name == "pkgnode_history_rollbacks_total")
        .map(|(_, _, value)| value as u64)
        .unwrap_or_else(|| panic!("no history rollback counter in /metrics:\n{metrics}"))
}

/// Two nodes' shared settings: one database, one storage directory, one key.
fn shared(url: &str, dir: &std::path::Path) -> String {
    format!(
        "[database]\nurl = \"{url}\"\nacquire_timeout = \"2s\"\n[storage]\ndir = \"{}\"\n\
         [cluster]\nkey_file = \"{}\"\n",
        dir.join("packages").display(),
        dir.join("pkgnode.key").display()
    )
}

struct Wheels(tempfile::TempDir);

impl Wheels {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn upload(&self, served: &Served, token: &str, project: &str) {
        let wheel = support::mkpkg(self.0.path(), &["wheel", project, "1.0"]);
        let response = upload(&served.base, token, &wheel);
        let status = response.status().as_u16();
        assert_eq!(
            status,
            200,
            "{project}: {}",
            response.text().unwrap_or_default()
        );
    }
}

/// The newest transaction id the database holds.
fn db_head(pg: &Postgres, db: &str) -> i64 {
    pg.psql(db, "SELECT MAX(id) FROM transactions")
        .parse()
        .unwrap()
}

/// Deletes every transaction after `keep` and what it added, and sets the id sequence back so
/// the next transaction is `keep + 1` again: a rollback as a promoted server would leave it.
fn roll_back_to(pg: &Postgres, db: &str, keep: i64) {
    pg.psql(
        db,
        &format!(
            "BEGIN; DELETE FROM download_counts WHERE package_id IN \
             (SELECT id FROM packages WHERE added_tx > {keep}); \
             DELETE FROM packages WHERE added_tx > {keep}; \
             DELETE FROM transactions WHERE id > {keep}; \
             SELECT setval('transactions_id_seq', {keep}); COMMIT;"
        ),
    );
}

#[test]
fn issue_23_rows_deleted_behind_the_nodes_are_no_longer_listed_and_ids_used_again_are() {
    let pg = Postgres::start();
    let url = pg.database("rollback");
    let dir = tempfile::tempdir().unwrap();
    let settings = shared(&url, dir.path());
    // Slow polling: only the per-request head read can explain what the nodes answer.
    let node = NodeDir::with_head_poll(&settings, "30s");
    node.standard_layout();
    let other = NodeDir::with_head_poll(&settings, "30s");
    let token = node.token("py");
    let (first, second) = (node.serve(), other.serve());
    let wheels = Wheels::new();

    wheels.upload(&first, &token, "kept");
    let keep = db_head(&pg, "rollback");
    wheels.upload(&first, &token, "lost-one");
    wheels.upload(&second, &token, "lost-two");
    for served in [&first, &second] {
        for project in ["kept", "lost-one", "lost-two"] {
            assert_eq!(listed(&served.base, project), 200, "{project} before");
        }
        assert_eq!(rollbacks(&served.base), 0);
    }
    let old_head = db_head(&pg, "rollback");

    roll_back_to(&pg, "rollback", keep);

    for served in [&first, &second] {
        // One head read (this request's) and the lost projects are gone, the root page too.
        assert_eq!(listed(&served.base, "lost-one"), 404, "{}", served.base);
        assert_eq!(listed(&served.base, "lost-two"), 404);
        assert_eq!(listed(&served.base, "kept"), 200);
        let page = root(&served.base);
        assert!(
            !page.contains("lost-one") && page.contains("kept"),
            "{page}"
        );
        assert_eq!(rollbacks(&served.base), 1);
    }

    // The next upload draws an id the lost history had used; every node lists it at once.
    wheels.upload(&first, &token, "after-rollback");
    let new_tx = db_head(&pg, "rollback");
    assert!(
        new_tx <= old_head,
        "id {new_tx} reused (old head {old_head})"
    );
    for served in [&first, &second] {
        assert_eq!(
            listed(&served.base, "after-rollback"),
            200,
            "{}",
            served.base
        );
        assert_eq!(listed(&served.base, "lost-one"), 404);
    }
}

#[test]
fn issue_23_a_node_away_during_the_rollback_finds_it_when_it_reconnects() {
    let pg = Postgres::start();
    let url = pg.database("away");
    let dir = tempfile::tempdir().unwrap();
    // The away node reaches the database through an endpoint that can be cut.
    let endpoint = Endpoint::to(pg.port);
    let cut_url = url.replace(&pg.port.to_string(), &endpoint.port.to_string());
    let away = NodeDir::with_head_poll(&shared(&cut_url, dir.path()), "30s");
    away.standard_layout();
    let present = NodeDir::with_head_poll(&shared(&url, dir.path()), "30s");
    let token = away.token("py");
    let (away_served, present_served) = (away.serve(), present.serve());
    let wheels = Wheels::new();

    wheels.upload(&away_served, &token, "kept");
    let keep = db_head(&pg, "away");
    wheels.upload(&away_served, &token, "lost");
    assert_eq!(listed(&away_served.base, "lost"), 200);

    // Nothing listens on the endpoint's new target: the away node loses its database.
    let nowhere = support::free_port();
    endpoint.point_at(nowhere);
    support::wait_until(
        "the away node to see its database gone",
        Duration::from_secs(20),
        || !database_available(&away_served.base),
    );
    // While away it serves what it holds, as before.
    assert_eq!(listed(&away_served.base, "lost"), 200);

    roll_back_to(&pg, "away", keep);
    wheels.upload(&present_served, &token, "while-away");

    endpoint.point_at(pg.port);
    support::wait_until(
        "the away node to reconnect",
        Duration::from_secs(30),
        || database_available(&away_served.base),
    );
    assert_eq!(listed(&away_served.base, "lost"), 404);
    assert_eq!(listed(&away_served.base, "while-away"), 200);
    assert_eq!(listed(&away_served.base, "kept"), 200);
    assert_eq!(rollbacks(&away_served.base), 1);
}

#[test]
fn issue_23_a_failover_to_an_async_standby_that_lacks_the_newest_commits() {
    let primary = Postgres::start();
    let url_db = primary.database("async");
    let standby = primary.standby();
    let endpoint = Endpoint::to(primary.port);
    let url = url_db.replace(&primary.port.to_string(), &endpoint.port.to_string());
    let dir = tempfile::tempdir().unwrap();
    let node = NodeDir::with_head_poll(&shared(&url, dir.path()), "30s");
    node.standard_layout();
    let token = node.token("py");
    let served = node.serve();
    let wheels = Wheels::new();

    wheels.upload(&served, &token, "replicated");
    let replicated = db_head(&primary, "async");
    support::wait_until(
        "the standby to replay the first upload",
        Duration::from_secs(20),
        || {
            standby
                .psql("async", "SELECT COALESCE(MAX(id), 0) FROM transactions")
                .parse::<i64>()
                .is_ok_and(|id| id >= replicated)
        },
    );
    // Replication is asynchronous: with the standby cut off from the primary (its WAL receiver
    // stopped), commits are acknowledged anyway.
    standby.psql("postgres", "ALTER SYSTEM SET primary_conninfo = ''");
    standby.psql("postgres", "SELECT pg_reload_conf()");
    support::wait_until(
        "the standby to stop receiving",
        Duration::from_secs(20),
        || primary.psql("postgres", "SELECT COUNT(*) FROM pg_stat_replication") == "0",
    );
    wheels.upload(&served, &token, "acknowledged-then-lost");
    assert_eq!(listed(&served.base, "acknowledged-then-lost"), 200);

    primary.stop_immediately();
    endpoint.point_at(standby.port);
    standby.promote();
    assert_eq!(
        standby.psql(
            "async",
            "SELECT COUNT(*) FROM packages WHERE name = 'acknowledged-then-lost'"
        ),
        "0",
        "the standby never received the second upload"
    );

    // Uploads wait for the node's pool to reach the promoted server; the first read after it
    // is back follows the database.
    support::wait_until(
        "the node to reach the promoted standby",
        Duration::from_secs(30),
        || database_available(&served.base),
    );
    assert_eq!(listed(&served.base, "acknowledged-then-lost"), 404);
    assert_eq!(listed(&served.base, "replicated"), 200);
    assert_eq!(rollbacks(&served.base), 1);
    wheels.upload(&served, &token, "after-failover");
    assert_eq!(listed(&served.base, "after-failover"), 200);
}
