//! Snapshots are discoverable (issue 10 defect 6): `GET /__api__/repos/{name}/transactions` and
//! `pkgnode list transactions --repo R` list the transactions that changed a repo, newest first,
//! and every listed id pins a URL that serves exactly that snapshot's packages.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{self, NodeDir, Postgres};

fn get(url: &str) -> (u16, String) {
    let response = reqwest::blocking::get(url).unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// The `name version` pairs a CRAN `PACKAGES` index offers.
fn offered(index: &str) -> BTreeSet<String> {
    let mut pairs = BTreeSet::new();
    let mut name = None;
    for line in index.lines() {
        if let Some(n) = line.strip_prefix("Package: ") {
            name = Some(n.to_string());
        } else if let Some(v) = line.strip_prefix("Version: ") {
            pairs.insert(format!("{} {v}", name.take().unwrap()));
        }
    }
    pairs
}

fn listed_snapshots_serve_their_packages(node: &NodeDir) {
    node.standard_layout();
    let work = tempfile::tempdir().unwrap();
    // In order; the index offers the newest version of each package.
    let released = [("snap", "1.0"), ("other", "2.0"), ("snap", "1.1")];
    for (name, version) in released {
        let tarball = support::mkpkg(
            &work.path().join(format!("{name}-{version}")),
            &["rpkg", name, version],
        );
        node.admin(&[
            "add",
            "--source",
            "rsrc",
            "--path",
            &tarball.display().to_string(),
        ]);
    }
    let served = node.serve();

    let (status, body) = get(&format!("{}/__api__/repos/cran/transactions", served.base));
    assert_eq!(status, 200, "{body}");
    let listed: Vec<Value> = serde_json::from_str(&body).unwrap();
    let ids: Vec<i64> = listed.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
    // Only what changed `cran`: not the `py` source, the `pypi` repo or its subscription.
    let kinds: Vec<&str> = listed.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["upload", "upload", "upload", "subscribe", "create-repo"],
        "{body}"
    );
    let added: Vec<Vec<&str>> = listed
        .iter()
        .map(|t| {
            t["added"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["filename"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        added[..3],
        [
            ["snap_1.1.tar.gz"],
            ["other_2.0.tar.gz"],
            ["snap_1.0.tar.gz"]
        ]
    );

    // Each listed id, pinned, serves exactly what had been added up to it.
    let expected: [&[&str]; 5] = [
        &["other 2.0", "snap 1.1"],
        &["other 2.0", "snap 1.0"],
        &["snap 1.0"],
        &[],
        &[],
    ];
    for (id, expected) in ids.iter().zip(expected) {
        let (status, index) = get(&format!("{}/cran/{id}/src/contrib/PACKAGES", served.base));
        assert_eq!(status, 200, "snapshot {id}: {index}");
        let expected: BTreeSet<String> = expected.iter().map(|p| p.to_string()).collect();
        assert_eq!(offered(&index), expected, "snapshot {id} serves:\n{index}");
    }
    // The date form: the newest transaction's day (UTC) serves what it left.
    let day = &listed[0]["time"].as_str().unwrap()[..10];
    let (status, index) = get(&format!("{}/cran/{day}/src/contrib/PACKAGES", served.base));
    assert_eq!(status, 200, "{index}");
    assert_eq!(
        offered(&index),
        offered(
            &get(&format!(
                "{}/cran/{}/src/contrib/PACKAGES",
                served.base, ids[0]
            ))
            .1
        )
    );

    // The command line lists the same ids, newest first.
    let printed = node.admin(&["list", "transactions", "--repo", "cran"]);
    let printed_ids: Vec<i64> = printed
        .lines()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(printed_ids, ids, "{printed}");
    assert!(
        printed.lines().next().unwrap().ends_with("snap_1.1.tar.gz"),
        "{printed}"
    );

    // Without --repo, every transaction: the sources' creation too.
    let everything = node.admin(&["list", "transactions"]);
    assert!(everything.lines().count() > ids.len(), "{everything}");
    assert!(everything.contains("\tcreate-source\tpy\t"), "{everything}");

    // An authenticated repo's history needs the same token as its files.
    node.admin(&[
        "create",
        "repo",
        "--name",
        "private",
        "--type",
        "r",
        "--authenticated",
    ]);
    let (status, body) = get(&format!(
        "{}/__api__/repos/private/transactions",
        served.base
    ));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("a token is required"), "{body}");

    // An unknown repo is a 404 that names it, on both surfaces.
    let (status, body) = get(&format!("{}/__api__/repos/nope/transactions", served.base));
    assert_eq!(status, 404);
    assert!(body.contains("no repo named \"nope\""), "{body}");
    let error = node.admin_fails(&["list", "transactions", "--repo", "nope"]);
    assert!(error.contains("no repo named \"nope\""), "{error}");
}

#[test]
fn issue_10_snapshots_listed_and_pinned_on_sqlite() {
    listed_snapshots_serve_their_packages(&NodeDir::new(""));
}

#[test]
fn issue_10_snapshots_listed_and_pinned_on_postgres() {
    let pg = Postgres::start();
    let url = pg.database("snapshots");
    listed_snapshots_serve_their_packages(&NodeDir::new(&format!("[database]\nurl = \"{url}\"\n")));
}
