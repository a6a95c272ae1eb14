//! Issue 10, defect 8: uploads stream to disk. Several concurrent uploads near the size limit
//! keep the node's peak memory far below their total size, and leave no temporary file.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::support::{self, NodeDir, http};

const PAD_BYTES: usize = 70 * 1024 * 1024;
const UPLOADS: usize = 3;

/// The node's peak resident memory (VmHWM), in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("node status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

#[test]
fn concurrent_large_uploads_stream_to_disk() {
    let node = NodeDir::new("[limits]\nmax_upload_bytes = 100000000\n");
    node.standard_layout();
    let token = node.token("py");
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    let wheels: Vec<PathBuf> = (0..UPLOADS)
        .map(|i| {
            support::mkpkg_padded(
                &work.path().join(i.to_string()),
                &["wheel", &format!("large{i}"), "1.0"],
                PAD_BYTES,
            )
        })
        .collect();
    let before = peak_rss_bytes(served.pid());

    std::thread::scope(|scope| {
        let uploads: Vec<_> = wheels
            .iter()
            .map(|wheel| {
                let (base, token) = (served.base.as_str(), token.as_str());
                scope.spawn(move || support::twine_upload(base, "py", token, &[wheel]))
            })
            .collect();
        for upload in uploads {
            let (ok, out) = upload.join().unwrap();
            assert!(ok, "{out}");
        }
    });

    let peak = peak_rss_bytes(served.pid());
    let total = (UPLOADS * PAD_BYTES) as u64;
    eprintln!(
        "node peak RSS: {} MB before, {} MB after {UPLOADS} concurrent uploads of {} MB",
        before >> 20,
        peak >> 20,
        PAD_BYTES >> 20
    );
    // Held in memory, the three bodies alone would be 210 MB; streamed, the node grows by its
    // buffers only.
    assert!(
        peak < before + total / 3,
        "peak RSS {} MB (before the uploads {} MB) for {} MB uploaded at once",
        peak >> 20,
        before >> 20,
        total >> 20
    );
    let uploads_dir = node.data_dir().join("tmp").join("uploads");
    let left: Vec<_> = std::fs::read_dir(&uploads_dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temporary files left: {left:?}");

    // What was stored is what was sent.
    let client = http();
    for (i, wheel) in wheels.iter().enumerate() {
        let name = wheel.file_name().unwrap().to_str().unwrap();
        let url = format!("{}/pypi/latest/packages/{name}", served.base);
        let body = client.get(&url).send().unwrap();
        assert_eq!(body.status(), 200, "{url}");
        let served_sha = hex::encode(Sha256::digest(body.bytes().unwrap()));
        let sent_sha = hex::encode(Sha256::digest(std::fs::read(wheel).unwrap()));
        assert_eq!(served_sha, sent_sha, "large{i}");
    }

    // One byte over the limit is refused while it streams, and leaves nothing behind.
    let over = support::mkpkg_padded(
        &work.path().join("over"),
        &["wheel", "over", "1.0"],
        100_000_000,
    );
    let (ok, out) = support::twine_upload(&served.base, "py", &token, &[&over]);
    assert!(!ok, "{out}");
    assert!(out.contains("413"), "refused as too large: {out}");
    let left: Vec<_> = std::fs::read_dir(&uploads_dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "temporary files left after a refusal: {left:?}"
    );
}
