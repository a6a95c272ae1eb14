//! Uploads write their bytes straight to the content address, before and outside the
//! `transactions` lock (issue 25, seeding in minutes): on PostgreSQL and Garage the bucket holds
//! the blob while the upload still queues for the lock, never a temporary key; an upload that fails
//! before its commit removes the blob it created, and never one that was already there.

use std::time::Duration;

use crate::shared_storage::{HeldLock, list_bucket, transactions_locks, upload_in_background};
use crate::support::{self, Garage, NodeDir, Postgres};

fn content_key(wheel: &std::path::Path) -> (String, String) {
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(wheel).unwrap(),
    ));
    (format!("blobs/sha256/{}/{sha}", &sha[..2]), sha)
}

fn node_on(pg: &Postgres, garage: &Garage, database: &str) -> (NodeDir, tempfile::TempDir) {
    let url = pg.database(database);
    let key_dir = tempfile::tempdir().unwrap();
    let node = NodeDir::new(&format!(
        "[database]\nurl = \"{url}\"\n{}\n[cluster]\nkey_file = \"{}\"\n",
        garage.storage_toml(),
        key_dir.path().join("pkgnode.key").display()
    ));
    node.standard_layout();
    (node, key_dir)
}

#[test]
fn an_upload_stores_its_bytes_before_it_queues_for_the_transaction_lock() {
    let pg = Postgres::start();
    let garage = Garage::start();
    let (node, _key) = node_on(&pg, &garage, "placed");
    let token = node.token("py");
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "placed-early", "1.0"]);
    let (key, _) = content_key(&wheel);

    let held = HeldLock::take(&pg, "placed");
    let upload = upload_in_background(&served.base, "py", &token, &wheel);
    support::wait_until("the upload queued", Duration::from_secs(20), || {
        transactions_locks(&pg, "placed", false) == 1
    });
    // The object-store work is done before the lock: the blob is at its address already, and
    // there never was a temporary key.
    assert_eq!(list_bucket(&garage), vec![key.clone()]);
    held.release();
    let (status, body) = upload.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(list_bucket(&garage), vec![key]);
    assert_eq!(pg.psql("placed", "SELECT COUNT(*) FROM packages"), "1");
}

/// Planted fault: every package row of source `py` is refused at insert, after the bytes are
/// stored. The failed upload must leave nothing in the bucket; once the fault is gone the same
/// upload succeeds.
#[test]
fn a_failed_upload_leaves_no_object_behind() {
    let pg = Postgres::start();
    let garage = Garage::start();
    let (node, _key) = node_on(&pg, &garage, "failing");
    let token = node.token("py");
    pg.raising_trigger_function("failing", "refuse_row", "injected insert failure");
    pg.psql(
        "failing",
        "CREATE TRIGGER refuse_py BEFORE INSERT ON packages FOR EACH ROW EXECUTE FUNCTION refuse_row()",
    );
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "refused-pkg", "1.0"]);
    let (key, _) = content_key(&wheel);

    let response = support::upload(&served.base, &token, &wheel);
    assert!(response.status().is_server_error(), "{}", response.status());
    assert!(
        node.log().contains("injected insert failure"),
        "{}",
        node.log()
    );
    assert_eq!(
        list_bucket(&garage),
        Vec::<String>::new(),
        "the failed upload's blob was removed"
    );
    assert_eq!(pg.psql("failing", "SELECT COUNT(*) FROM packages"), "0");

    pg.psql("failing", "DROP TRIGGER refuse_py ON packages");
    let response = support::upload(&served.base, &token, &wheel);
    assert_eq!(response.status(), 200);
    assert_eq!(list_bucket(&garage), vec![key]);
}

/// The same bytes were already stored by an upload to another source: a failed upload of them
/// must not remove them, and they are still served.
#[test]
fn a_failed_upload_never_removes_bytes_that_were_already_there() {
    let pg = Postgres::start();
    let garage = Garage::start();
    let (node, _key) = node_on(&pg, &garage, "kept");
    node.second_python_source();
    let (token, token2) = (node.token("py"), node.token("py2"));
    let py_id = pg.psql("kept", "SELECT id FROM sources WHERE name = 'py'");
    pg.raising_trigger_function("kept", "refuse_row", "injected insert failure");
    pg.psql(
        "kept",
        &format!(
            "CREATE TRIGGER refuse_py BEFORE INSERT ON packages FOR EACH ROW \
             WHEN (NEW.source_id = {py_id}) EXECUTE FUNCTION refuse_row()"
        ),
    );
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "kept-bytes", "1.0"]);
    let (key, sha) = content_key(&wheel);

    let (ok, out) = support::twine_upload(&served.base, "py2", &token2, &[&wheel]);
    assert!(ok, "{out}");
    let response = support::upload(&served.base, &token, &wheel);
    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(list_bucket(&garage), vec![key]);
    let response = support::get(&format!(
        "{}/pypi2/latest/packages/kept_bytes-1.0-py3-none-any.whl",
        served.base
    ));
    assert_eq!(response.status(), 200);
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            response.bytes().unwrap()
        )),
        sha
    );
}
