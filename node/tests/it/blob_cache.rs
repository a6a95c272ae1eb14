//! The package-file cache: it holds at most `[cache] blob_bytes` bytes, and `/metrics` gives its
//! lookups, what it holds and its hit ratio.

use crate::support::{self, NodeDir};

/// `name{label="value"}` → value, for the node's blob cache samples.
fn blob_cache_samples(base: &str) -> std::collections::BTreeMap<String, f64> {
    let text = support::get(&format!("{base}/metrics")).text().unwrap();
    support::metric_samples(&text)
        .into_iter()
        .filter(|(name, _, _)| name.starts_with("pkgnode_blob_cache"))
        .map(|(name, labels, value)| {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (format!("{name}{{{}}}", labels.join(",")), value)
        })
        .collect()
}

#[test]
fn blob_cache_holds_at_most_blob_bytes_and_exports_its_hit_ratio() {
    // Room for one of the three ~200 KB wheels below, not two.
    let capacity = 300_000;
    let node = NodeDir::with_cache(
        "",
        &format!("head_poll_interval = \"200ms\"\nblob_bytes = {capacity}"),
    );
    node.standard_layout();
    let served = node.serve();
    let token = node.token("py");
    let work = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for version in ["1.0", "2.0", "3.0"] {
        let wheel = support::mkpkg_padded(
            &work.path().join(version),
            &["wheel", "cached", version],
            200_000,
        );
        let response = support::upload(&served.base, &token, &wheel);
        assert_eq!(response.status(), 200, "{}", response.text().unwrap());
        let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
        files.push((name, std::fs::read(&wheel).unwrap()));
    }
    let download = |name: &str| {
        let response = support::get(&format!("{}/pypi/latest/packages/{name}", served.base));
        assert_eq!(response.status(), 200);
        response.bytes().unwrap().to_vec()
    };

    let before = blob_cache_samples(&served.base);
    assert_eq!(before["pkgnode_blob_cache_hit_ratio{}"], 0.0, "{before:?}");
    assert_eq!(
        before["pkgnode_blob_cache_capacity_bytes{}"], capacity as f64,
        "{before:?}"
    );

    // The first file twice (a miss, then a hit), the other two once (misses).
    let (first, first_bytes) = &files[0];
    assert_eq!(&download(first), first_bytes);
    assert_eq!(&download(first), first_bytes);
    let after_two = blob_cache_samples(&served.base);
    assert_eq!(
        after_two["pkgnode_blob_cache_hit_ratio{}"], 0.5,
        "{after_two:?}"
    );
    for (name, bytes) in &files[1..] {
        assert_eq!(&download(name), bytes);
    }
    let after = blob_cache_samples(&served.base);
    assert_eq!(
        after["pkgnode_blob_cache_total{result=hit}"], 1.0,
        "{after:?}"
    );
    assert_eq!(
        after["pkgnode_blob_cache_total{result=miss}"], 3.0,
        "{after:?}"
    );
    assert_eq!(after["pkgnode_blob_cache_hit_ratio{}"], 0.25, "{after:?}");
    // Weighed in bytes: 600 KB went through a cache of 300 KB, which kept one file.
    let held = after["pkgnode_blob_cache_bytes{}"];
    assert!(
        held > 0.0 && held <= capacity as f64,
        "{held} bytes held by a cache of {capacity}: {after:?}"
    );
    assert_eq!(after["pkgnode_blob_cache_files{}"], 1.0, "{after:?}");
}
