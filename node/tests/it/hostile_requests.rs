//! Requests an attacker would send, and values a corrupt database would hold, never panic the
//! node: each gets an answer (issue 10 defect 3), and the node keeps serving.

use std::process::Command;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_RANGE, RANGE};

use crate::support::{self, NodeDir};

#[test]
fn issue_10_a_range_ending_at_u64_max_is_served_not_a_panic() {
    let node = NodeDir::new("");
    node.standard_layout();
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "ranged", "1.0"]);
    let size = std::fs::metadata(&wheel).unwrap().len();
    node.admin(&[
        "add",
        "--source",
        "py",
        "--path",
        &wheel.display().to_string(),
    ]);
    let served = node.serve();
    let url = format!(
        "{}/pypi/latest/packages/ranged-1.0-py3-none-any.whl",
        served.base
    );
    let response = Client::new()
        .get(&url)
        .header(RANGE, format!("bytes=0-{}", u64::MAX))
        .send()
        .expect("the node answers");
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()[CONTENT_RANGE].to_str().unwrap(),
        format!("bytes 0-{}/{size}", size - 1)
    );
    assert_eq!(response.bytes().unwrap().len() as u64, size);
    assert_eq!(served.ping(), Some(200));
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

#[test]
fn issue_10_a_corrupt_sha256_in_the_database_is_a_500_not_a_panic() {
    let node = NodeDir::new("");
    node.standard_layout();
    let work = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, corrupt) in [("short-sha", "a"), ("multibyte-sha", "é")] {
        let wheel = support::mkpkg(work.path(), &["wheel", name, "1.0"]);
        node.admin(&[
            "add",
            "--source",
            "py",
            "--path",
            &wheel.display().to_string(),
        ]);
        files.push((wheel, corrupt));
    }
    for (wheel, corrupt) in &files {
        let filename = wheel.file_name().unwrap().to_string_lossy().into_owned();
        let db = node.data_dir().join("pkgnode.db");
        let script = "import sqlite3, sys\n\
                      c = sqlite3.connect(sys.argv[1])\n\
                      c.execute('UPDATE packages SET sha256 = ? WHERE filename = ?', (sys.argv[2], sys.argv[3]))\n\
                      c.commit()\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&db)
            .args([corrupt, &filename.as_str()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let served = node.serve();
    for (wheel, _) in &files {
        let filename = wheel.file_name().unwrap().to_string_lossy().into_owned();
        for range in [None, Some("bytes=0-9")] {
            let mut request =
                Client::new().get(format!("{}/pypi/latest/packages/{filename}", served.base));
            if let Some(range) = range {
                request = request.header(RANGE, range);
            }
            let response = request.send().expect("the node answers");
            assert_eq!(response.status(), 500, "{filename} {range:?}");
            let body = response.text().unwrap();
            assert!(
                !body.contains("sha256"),
                "the cause is logged, not shown: {body}"
            );
        }
    }
    assert_eq!(served.ping(), Some(200));
    assert!(!node.log().contains("panicked"), "{}", node.log());
}
