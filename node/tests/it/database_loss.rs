//! A node whose PostgreSQL goes away keeps serving what it holds, answers 503 with `Retry-After`
//! (never 500) for what it cannot, keeps `/__ping__` at 200 for the balancer while
//! `/__api__/status` says the database is unavailable, and takes uploads again as soon as the
//! database is back, without a restart. A read-only database (a standby) refuses uploads the same
//! way.

use std::time::{Duration, Instant};

use reqwest::blocking::Response;

use crate::support::{self, NodeDir, Postgres, get, upload};

/// Asserts a 503 that tells the client when to retry, and how long it took to come.
fn assert_retry_later(what: &str, started: Instant, response: Response) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let body = response.text().unwrap_or_default();
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(retry_after.as_deref(), Some("5"), "{what}: {body}");
    eprintln!("{what}: 503 after {:?}: {}", started.elapsed(), body.trim());
}

fn database_state(base: &str) -> String {
    let status: serde_json::Value = get(&format!("{base}/__api__/status")).json().unwrap();
    status["database"].as_str().unwrap_or_default().to_string()
}

#[test]
fn reads_survive_the_database_loss_and_uploads_resume_without_a_restart() {
    let pg = Postgres::start();
    let url = pg.database("loss");
    let node = NodeDir::new(&format!(
        "[database]\nurl = \"{url}\"\nacquire_timeout = \"2s\"\n"
    ));
    node.standard_layout();
    let token = node.token("py");
    let work = tempfile::tempdir().unwrap();
    let warm_v1 = support::mkpkg(work.path(), &["wheel", "warm-pkg", "1.0"]);
    let warm_v2 = support::mkpkg(work.path(), &["wheel", "warm-pkg", "2.0"]);
    let during = support::mkpkg(work.path(), &["wheel", "during-loss", "1.0"]);
    let after = support::mkpkg(work.path(), &["wheel", "after-loss", "1.0"]);
    // The node builds every repo's view at start and at each new head; this one, before the
    // start, it never builds unless asked.
    let never_built: i64 = pg
        .psql("loss", "SELECT MAX(id) - 1 FROM transactions")
        .parse()
        .unwrap();
    let served = node.serve();
    let base = served.base.as_str();

    assert_eq!(upload(base, &token, &warm_v1).status(), 200);
    assert_eq!(upload(base, &token, &warm_v2).status(), 200);
    let warm_page = format!("{base}/pypi/latest/simple/warm-pkg/");
    let warm_file = format!("{base}/pypi/latest/packages/warm_pkg-2.0-py3-none-any.whl");
    assert_eq!(get(&warm_page).status(), 200);
    assert_eq!(get(&warm_file).status(), 200);
    assert_eq!(database_state(base), "ok");

    pg.stop();

    // What the node holds is still served: the view at the newest transaction, its files.
    let started = Instant::now();
    let page = get(&warm_page);
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("warm_pkg-2.0"));
    eprintln!(
        "warm page with the database stopped: 200 after {:?}",
        started.elapsed()
    );
    assert_eq!(get(&warm_file).status(), 200);
    assert_eq!(get(&format!("{base}/pypi/latest/simple/")).status(), 200);

    // A snapshot view never built cannot be: retry later, never 500.
    let started = Instant::now();
    let cold = get(&format!("{base}/pypi/{never_built}/simple/warm-pkg/"));
    assert_retry_later("cold snapshot page", started, cold);
    let started = Instant::now();
    assert_retry_later(
        "cold CRAN index",
        started,
        get(&format!("{base}/cran/{never_built}/src/contrib/PACKAGES")),
    );
    let started = Instant::now();
    assert_retry_later("upload", started, upload(base, &token, &during));

    // The balancer keeps routing reads here; the status page tells the truth about writes.
    assert_eq!(served.ping(), Some(200));
    assert_eq!(database_state(base), "unavailable");
    // Once known to be down, warm reads no longer wait for the database.
    let started = Instant::now();
    assert_eq!(get(&warm_page).status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a warm read waited {:?} for a database known to be down",
        started.elapsed()
    );

    pg.start_again();
    let started = Instant::now();
    let response = upload(base, &token, &after);
    let status = response.status().as_u16();
    assert_eq!(status, 200, "{}", response.text().unwrap_or_default());
    eprintln!(
        "first upload after the database came back: 200 after {:?}",
        started.elapsed()
    );
    assert_eq!(database_state(base), "ok");
    let page = get(&format!("{base}/pypi/latest/simple/after-loss/"));
    assert_eq!(page.status(), 200);
    assert_eq!(
        pg.psql(
            "loss",
            "SELECT string_agg(filename, ',' ORDER BY id) FROM packages"
        ),
        "warm_pkg-1.0-py3-none-any.whl,warm_pkg-2.0-py3-none-any.whl,after_loss-1.0-py3-none-any.whl",
        "the refused upload must have left no row"
    );
    assert!(
        !node.log().contains("panicked"),
        "the node panicked: {}",
        node.log()
    );
}

#[test]
fn a_read_only_database_refuses_uploads_with_retry_after() {
    let pg = Postgres::start();
    let url = pg.database("readonly");
    let node = NodeDir::new(&format!(
        "[database]\nurl = \"{url}\"\nacquire_timeout = \"1s\"\n"
    ));
    node.standard_layout();
    let token = node.token("py");
    let work = tempfile::tempdir().unwrap();
    let first = support::mkpkg(work.path(), &["wheel", "ro-first", "1.0"]);
    let second = support::mkpkg(work.path(), &["wheel", "ro-second", "1.0"]);
    let served = node.serve();
    let base = served.base.as_str();
    assert_eq!(upload(base, &token, &first).status(), 200);

    // What a hot standby or a primary put in read-only mode answers: SQLSTATE 25006.
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET default_transaction_read_only = on",
    );
    pg.psql("postgres", "SELECT pg_reload_conf()");
    let started = Instant::now();
    assert_retry_later(
        "upload to a read-only database",
        started,
        upload(base, &token, &second),
    );
    assert_eq!(
        get(&format!("{base}/pypi/latest/simple/ro-first/")).status(),
        200
    );

    pg.psql_as_writer(
        "postgres",
        "ALTER SYSTEM RESET default_transaction_read_only",
    );
    pg.psql("postgres", "SELECT pg_reload_conf()");
    // The setting reaches every session at its next command after the reload signal.
    support::wait_until("read-write again", Duration::from_secs(10), || {
        pg.psql("readonly", "SHOW default_transaction_read_only") == "off"
    });
    let response = upload(base, &token, &second);
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.text().unwrap_or_default()
    );
}

/// The database dies while an upload's COMMIT is under way: the node cannot know whether it
/// landed, says so with a 503 (never a 500, never a retry of its own), and the same upload sent
/// again once the database is back is stored exactly once.
#[test]
fn an_upload_whose_commit_outcome_is_unknown_says_so() {
    let pg = Postgres::start();
    let url = pg.database("ambiguous");
    let node = NodeDir::new(&format!(
        "[database]\nurl = \"{url}\"\nacquire_timeout = \"1s\"\n"
    ));
    node.standard_layout();
    let token = node.token("py");
    // Every upload's COMMIT stalls in a deferred trigger, long enough to pull the plug.
    pg.psql(
        "ambiguous",
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$",
    );
    pg.psql(
        "ambiguous",
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON packages \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    );
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "maybe-stored", "1.0"]);
    let served = node.serve();
    let base = served.base.clone();
    let in_flight = {
        let (base, token, wheel) = (base.clone(), token.clone(), wheel.clone());
        std::thread::spawn(move || upload(&base, &token, &wheel))
    };
    support::wait_until("the upload committing", Duration::from_secs(20), || {
        pg.psql(
            "ambiguous",
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
        ) == "1"
    });
    pg.stop_immediately();
    let response = in_flight.join().unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").cloned();
    let body = response.text().unwrap_or_default();
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "{body}");
    assert!(body.contains("may or may"), "{body}");

    pg.start_again();
    pg.psql_as_writer("ambiguous", "DROP TRIGGER slow_commit ON packages");
    assert_eq!(
        pg.psql("ambiguous", "SELECT COUNT(*) FROM packages"),
        "0",
        "a commit cut off before its record was written did not land"
    );
    let response = upload(&base, &token, &wheel);
    let status = response.status().as_u16();
    let body = response.text().unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("stored"), "{body}");
    assert_eq!(pg.psql("ambiguous", "SELECT COUNT(*) FROM packages"), "1");
    let file = get(&format!(
        "{base}/pypi/latest/packages/maybe_stored-1.0-py3-none-any.whl"
    ));
    assert_eq!(file.status(), 200);
}

/// `latest` moved to a transaction whose view this node never built (here through a read of
/// another repo; in a cluster, a notification is enough), then the database went away: the newest
/// view the node holds is served instead of a 503. A pinned snapshot never falls back.
#[test]
fn latest_falls_back_to_the_newest_view_held_while_the_database_is_away() {
    let pg = Postgres::start();
    let url = pg.database("fallback");
    // Without the warmer, which would build the newer view as soon as the node hears of it.
    let node = NodeDir::with_cache(
        &format!("[database]\nurl = \"{url}\"\nacquire_timeout = \"1s\"\n"),
        "head_poll_interval = \"30s\"\nwarm_views = false",
    );
    node.standard_layout();
    let work = tempfile::tempdir().unwrap();
    let v1 = support::mkpkg(work.path(), &["wheel", "held-pkg", "1.0"]);
    let v2 = support::mkpkg(work.path(), &["wheel", "held-pkg", "2.0"]);
    node.admin(&["add", "--source", "py", "--path", &v1.display().to_string()]);
    let served = node.serve();
    let base = served.base.as_str();
    let page = format!("{base}/pypi/latest/simple/held-pkg/");
    assert_eq!(get(&page).status(), 200);

    node.admin(&["add", "--source", "py", "--path", &v2.display().to_string()]);
    let newest_tx = pg.psql("fallback", "SELECT MAX(id) FROM transactions");
    // Reading another repo's latest moves this node's head past the view it holds.
    assert_eq!(
        get(&format!("{base}/cran/latest/src/contrib/PACKAGES")).status(),
        200
    );
    pg.stop();

    let response = get(&page);
    assert_eq!(response.status(), 200);
    let text = response.text().unwrap();
    assert!(
        text.contains("held_pkg-1.0") && !text.contains("held_pkg-2.0"),
        "the view held is the one served: {text}"
    );
    let started = Instant::now();
    assert_retry_later(
        "pinned snapshot never built",
        started,
        get(&format!("{base}/pypi/{newest_tx}/simple/held-pkg/")),
    );

    // Back: noticed without any write through this node, and latest is current again.
    pg.start_again();
    let started = Instant::now();
    support::wait_until("the database noticed back", Duration::from_secs(10), || {
        database_state(base) == "ok"
    });
    eprintln!("database noticed back after {:?}", started.elapsed());
    let text = get(&page).text().unwrap();
    assert!(text.contains("held_pkg-2.0"), "{text}");
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

/// The database stops answering without closing anything (a partition, a frozen host): nothing
/// hangs past `acquire_timeout`. Warm reads are served, a cold page and an upload get 503 with
/// `Retry-After`, and uploads work again once it answers.
#[test]
fn a_database_that_stops_answering_is_unavailable_not_a_hang() {
    let pg = Postgres::start();
    let url = pg.database("frozen");
    let node = NodeDir::new(&format!(
        "[database]\nurl = \"{url}\"\nacquire_timeout = \"2s\"\n"
    ));
    node.standard_layout();
    let token = node.token("py");
    let work = tempfile::tempdir().unwrap();
    let warm = support::mkpkg(work.path(), &["wheel", "frozen-warm", "1.0"]);
    let during = support::mkpkg(work.path(), &["wheel", "frozen-during", "1.0"]);
    let served = node.serve();
    let base = served.base.as_str();
    assert_eq!(upload(base, &token, &warm).status(), 200);
    let warm_page = format!("{base}/pypi/latest/simple/frozen-warm/");
    assert_eq!(get(&warm_page).status(), 200);

    pg.pause();
    // Concurrent readers share one wait for the database, not one each in turn.
    let started = Instant::now();
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let page = warm_page.clone();
            std::thread::spawn(move || get(&page).status().as_u16())
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), 200);
    }
    let waited = started.elapsed();
    eprintln!("8 concurrent warm reads, database frozen: all 200 after {waited:?}");
    assert!(
        waited < Duration::from_secs(4),
        "warm readers waited {waited:?} for a frozen database (acquire_timeout 2s)"
    );
    let started = Instant::now();
    assert_retry_later(
        "cold CRAN index, database frozen",
        started,
        get(&format!("{base}/cran/latest/src/contrib/PACKAGES")),
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_retry_later(
        "upload, database frozen",
        started,
        upload(base, &token, &during),
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(served.ping(), Some(200));
    assert_eq!(database_state(base), "unavailable");

    pg.resume();
    let response = upload(base, &token, &during);
    let status = response.status().as_u16();
    assert_eq!(status, 200, "{}", response.text().unwrap_or_default());
    assert_eq!(
        get(&format!("{base}/pypi/latest/simple/frozen-during/")).status(),
        200
    );
}
