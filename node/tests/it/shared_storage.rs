//! Two nodes on one PostgreSQL and one Garage S3 bucket: an upload through the first is served by
//! the second within a second (LISTEN/NOTIFY), and S3 holds exactly the content-addressed file.

use std::time::{Duration, Instant};

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

fn list_bucket(garage: &Garage) -> Vec<String> {
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
