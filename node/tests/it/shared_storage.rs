//! Two nodes on one PostgreSQL and one Garage S3 bucket: an upload through the first is served by
//! the second within a second (LISTEN/NOTIFY), and S3 holds exactly the content-addressed file; a
//! failed commit on one node never deletes bytes the other committed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::multipart::{Form, Part};

use crate::support::{self, Garage, NodeDir, Postgres};

#[test]
fn second_node_serves_an_upload_made_through_the_first() {
    let pg = Postgres::start();
    let garage = Garage::start();
    let url = pg.database("shared");
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("pkgnode.key");
    // Slow polling so only a notification can explain a fast pick-up.
    let shared = format!(
        "[database]\nurl = \"{url}\"\n{}\n[cluster]\nkey_file = \"{}\"\n",
        garage.storage_toml(),
        key_file.display()
    );
    let first = NodeDir::with_head_poll(&shared, "30s");
    let second = NodeDir::with_head_poll(&shared, "30s");
    first.standard_layout();
    let token = first.token("py");
    let a = first.serve();
    let b = second.serve();

    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "shared-pkg", "1.0"]);
    let page_b = format!("{}/pypi/latest/simple/shared-pkg/", b.base);
    assert_eq!(reqwest::blocking::get(&page_b).unwrap().status(), 404);
    let (ok, out) = support::twine_upload(&a.base, "py", &token, &[&wheel]);
    assert!(ok, "{out}");
    let uploaded = Instant::now();
    support::wait_until(
        "second node serving the upload",
        Duration::from_secs(1),
        || {
            reqwest::blocking::get(&page_b)
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        },
    );
    eprintln!(
        "second node served the upload after {:?}",
        uploaded.elapsed()
    );

    let target = work.path().join("t");
    let (ok, out) = support::pip_install(
        &format!("{}/pypi/latest/simple/", b.base),
        &target,
        "shared-pkg",
    );
    assert!(ok, "{out}");
    assert!(target.join("shared_pkg/__init__.py").exists());

    // The bucket holds the blob under its content address and no staged leftovers.
    let objects = list_bucket(&garage);
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].starts_with("blobs/sha256/"), "{objects:?}");
    assert_eq!(pg.psql("shared", "SELECT COUNT(*) FROM packages"), "1");
}

pub(crate) fn list_bucket(garage: &Garage) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut config = node::config::Config::default();
        config.storage.s3 = Some(node::config::S3Config {
            endpoint: garage.endpoint.clone(),
            bucket: garage.bucket.clone(),
            region: "garage".into(),
            access_key: garage.access_key.clone(),
            secret_key: garage.secret_key.clone(),
            path_style: true,
            prefix: String::new(),
        });
        let blobs = node::blobs::Blobs::from_config(&config).unwrap();
        let mut keys = blobs.list_keys("blobs").await.unwrap();
        keys.extend(blobs.list_keys("tmp").await.unwrap());
        keys
    })
}

/// A psql session holding `LOCK TABLE transactions IN EXCLUSIVE MODE` until released: every
/// change queues behind it, in arrival order.
pub(crate) struct HeldLock(std::process::Child);

impl HeldLock {
    pub(crate) fn take(pg: &Postgres, database: &str) -> Self {
        let mut child = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-q",
                "-d",
            ])
            .arg(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("psql");
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN;\nLOCK TABLE transactions IN EXCLUSIVE MODE;\n")
            .unwrap();
        stdin.flush().unwrap();
        support::wait_until("the lock held", Duration::from_secs(10), || {
            transactions_locks(pg, database, true) == 1
        });
        Self(child)
    }

    pub(crate) fn release(mut self) {
        let mut stdin = self.0.stdin.take().unwrap();
        stdin.write_all(b"COMMIT;\n").unwrap();
        drop(stdin);
        self.0.wait().unwrap();
    }
}

/// Locks on `transactions` granted (or waited for).
pub(crate) fn transactions_locks(pg: &Postgres, database: &str, granted: bool) -> usize {
    pg.psql(
        database,
        &format!(
            "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'transactions' AND l.mode = 'ExclusiveLock' AND l.granted = {granted}"
        ),
    )
    .parse()
    .unwrap()
}

/// Content claims (advisory locks) waited for.
pub(crate) fn advisory_waiters(pg: &Postgres, database: &str) -> usize {
    pg.psql(
        database,
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
    )
    .parse()
    .unwrap()
}

pub(crate) fn upload_in_background(
    base: &str,
    source: &str,
    token: &str,
    wheel: &std::path::Path,
) -> std::thread::JoinHandle<(u16, String)> {
    let filename = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let form = Form::new().text(":action", "file_upload").part(
        "content",
        Part::bytes(std::fs::read(wheel).unwrap()).file_name(filename),
    );
    let request = reqwest::blocking::Client::new()
        .post(format!("{base}/upload/pypi/{source}"))
        .basic_auth("__token__", Some(token))
        .multipart(form);
    std::thread::spawn(move || {
        let response = request.send().expect("upload request");
        (
            response.status().as_u16(),
            response.text().unwrap_or_default(),
        )
    })
}

/// Issue 10 defect 5. Two nodes upload the same bytes to two sources, the second node first: it
/// holds the content address's claim and queues for the transaction lock, and the first node
/// queues for the claim. The second commits; the first node's commit then fails. The bytes the
/// second node committed must still be there (the node used to delete the blob it believed it had
/// created).
#[test]
fn issue_10_a_failed_commit_never_deletes_bytes_another_node_committed() {
    let pg = Postgres::start();
    let garage = Garage::start();
    let url = pg.database("race");
    let key_dir = tempfile::tempdir().unwrap();
    let shared = format!(
        "[database]\nurl = \"{url}\"\n{}\n[cluster]\nkey_file = \"{}\"\n",
        garage.storage_toml(),
        key_dir.path().join("pkgnode.key").display()
    );
    let first = NodeDir::new(&shared);
    let second = NodeDir::new(&shared);
    first.standard_layout();
    first.second_python_source();
    let (token, token2) = (first.token("py"), first.token("py2"));
    // Any row of source py fails at COMMIT: a deferred constraint trigger raises.
    let py_id = pg.psql("race", "SELECT id FROM sources WHERE name = 'py'");
    pg.raising_trigger_function("race", "fail_commit", "injected commit failure");
    pg.psql(
        "race",
        &format!(
            "CREATE CONSTRAINT TRIGGER fail_py AFTER INSERT ON packages \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.source_id = {py_id}) \
             EXECUTE FUNCTION fail_commit()"
        ),
    );
    let a = first.serve();
    let b = second.serve();
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "same-bytes", "1.0"]);
    let expected_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&wheel).unwrap(),
    ));

    let held = HeldLock::take(&pg, "race");
    let committed = upload_in_background(&b.base, "py2", &token2, &wheel);
    support::wait_until("the second node queued", Duration::from_secs(20), || {
        transactions_locks(&pg, "race", false) == 1
    });
    let failed = upload_in_background(&a.base, "py", &token, &wheel);
    support::wait_until(
        "the first node queued for the claim",
        Duration::from_secs(20),
        || advisory_waiters(&pg, "race") == 1,
    );
    held.release();
    let (status, body) = committed.join().unwrap();
    assert_eq!(status, 200, "the second node's upload: {body}");
    let (status, body) = failed.join().unwrap();
    assert_eq!(
        status, 500,
        "the first node's commit must have failed: {body}"
    );
    assert!(
        first.log().contains("injected commit failure"),
        "{}",
        first.log()
    );

    // The committed row's bytes are served, from both nodes, with the right content.
    for base in [&a.base, &b.base] {
        let response = reqwest::blocking::get(format!(
            "{base}/pypi2/latest/packages/same_bytes-1.0-py3-none-any.whl"
        ))
        .unwrap();
        assert_eq!(response.status(), 200, "{base}");
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            response.bytes().unwrap(),
        ));
        assert_eq!(sha, expected_sha, "{base}");
    }
    assert_eq!(
        pg.psql(
            "race",
            "SELECT string_agg(s.name, ',') FROM packages p JOIN sources s ON s.id = p.source_id"
        ),
        "py2"
    );
    let objects = list_bucket(&garage);
    assert_eq!(
        objects,
        vec![format!(
            "blobs/sha256/{}/{expected_sha}",
            &expected_sha[..2]
        )],
        "the blob stays, and no staged copy is left"
    );
}
