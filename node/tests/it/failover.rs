//! The node through a database failover, as the drills run it: the node reaches PostgreSQL through
//! one endpoint; the primary dies, the endpoint moves to the synchronous standby, the standby is
//! promoted. While the standby is still in recovery the node serves reads from it and refuses
//! uploads with 503 + `Retry-After`; once it is promoted, the very next upload succeeds without a
//! node restart, and no acknowledged upload is lost.

use std::time::{Duration, Instant};

use crate::support::{self, Endpoint, NodeDir, Postgres, get, upload};

#[test]
fn uploads_resume_on_the_promoted_standby_without_a_node_restart() {
    let primary = Postgres::start();
    let url_db = primary.database("failover");
    let standby = primary.standby();
    // Commits wait for the standby: an acknowledged upload survives the primary.
    primary.psql(
        "postgres",
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
    );
    primary.psql("postgres", "SELECT pg_reload_conf()");
    support::wait_until("the standby synchronous", Duration::from_secs(20), || {
        primary.psql(
            "postgres",
            "SELECT COUNT(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
        ) == "1"
    });
    let endpoint = Endpoint::to(primary.port);
    let url = url_db.replace(&primary.port.to_string(), &endpoint.port.to_string());
    let node = NodeDir::new(&format!(
        "[database]\nurl = \"{url}\"\nacquire_timeout = \"2s\"\n"
    ));
    node.standard_layout();
    let token = node.token("py");
    let work = tempfile::tempdir().unwrap();
    let wheel = |name: &str| support::mkpkg(work.path(), &["wheel", name, "1.0"]);
    let (before, during, after) = (
        wheel("before-kill"),
        wheel("during-recovery"),
        wheel("after-promotion"),
    );
    let served = node.serve();
    let base = served.base.as_str();
    assert_eq!(upload(base, &token, &before).status(), 200);
    let warm_page = format!("{base}/pypi/latest/simple/before-kill/");
    assert_eq!(get(&warm_page).status(), 200);

    primary.stop_immediately();
    endpoint.point_at(standby.port);

    // The standby, still in recovery, serves reads, cold ones included; uploads wait.
    assert_eq!(get(&warm_page).status(), 200);
    let cold = get(&format!("{base}/cran/latest/src/contrib/PACKAGES"));
    assert_eq!(cold.status(), 200, "a cold page built from the standby");
    let refused = upload(base, &token, &during);
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(served.ping(), Some(200));

    standby.promote();
    let promoted = Instant::now();
    let response = upload(base, &token, &after);
    let status = response.status().as_u16();
    assert_eq!(status, 200, "{}", response.text().unwrap_or_default());
    eprintln!(
        "first upload after promotion: 200 after {:?}",
        promoted.elapsed()
    );
    assert_eq!(
        standby.psql(
            "failover",
            "SELECT string_agg(filename, ',' ORDER BY id) FROM packages"
        ),
        "before_kill-1.0-py3-none-any.whl,after_promotion-1.0-py3-none-any.whl",
        "the acknowledged upload survived; the refused one left nothing"
    );
    for name in ["before-kill", "after-promotion"] {
        assert_eq!(
            get(&format!("{base}/pypi/latest/simple/{name}/")).status(),
            200,
            "{name}"
        );
    }
    assert!(!node.log().contains("panicked"), "{}", node.log());
}
