//! Requests an attacker would send, and values a corrupt database would hold, never panic the
//! node: each gets an answer (issue 10 defect 3), and the node keeps serving.

use std::process::Command;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_RANGE, RANGE};

use crate::support::{self, NodeDir};

#[test]
fn issue_10_a_range_ending_at_u64_max_is_served_not_a_panic() {
    let (node, served, url, file) = serving_one_wheel();
    let size = file.len();
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
    assert_eq!(response.bytes().unwrap().len(), size);
    assert_eq!(served.ping(), Some(200));
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

/// A node serving one wheel, `ranged-1.0`: the node, its process, the wheel's URL and bytes.
fn serving_one_wheel() -> (NodeDir, support::Served, String, Vec<u8>) {
    let node = NodeDir::new("");
    node.standard_layout();
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "ranged", "1.0"]);
    let bytes = std::fs::read(&wheel).unwrap();
    let path = wheel.display().to_string();
    node.admin(&["add", "--source", "py", "--path", &path]);
    let served = node.serve();
    let base = &served.base;
    let url = format!("{base}/pypi/latest/packages/ranged-1.0-py3-none-any.whl");
    (node, served, url, bytes)
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

/// Random `Range` and `If-None-Match` values sent to a running node: every one is answered
/// (200, 206, 304 or 416, never a 5xx), a 206 carries exactly the bytes its `Content-Range`
/// names, and each answer is the one `files::file_answer` decides (itself checked against a
/// model of RFC 9110 over 100,000 cases in `http/files.rs`).
#[test]
fn random_range_and_if_none_match_headers_are_answered_not_a_panic() {
    use node::http::files::{FileAnswer, file_answer};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use reqwest::header::{ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH};

    let (node, served, url, file) = serving_one_wheel();
    let client = Client::new();
    let etag = client.head(&url).send().unwrap().headers()[ETAG].clone();
    let etag = etag.to_str().unwrap().to_string();

    let range = prop_oneof![
        "bytes=[0-9]{0,4}-[0-9]{0,4}",
        "bytes=-[0-9]{1,5}",
        "bytes=[0-9]{1,25}-[0-9]{0,25}(,[0-9]{0,3}-[0-9]{0,3})?",
        "[ -~]{0,30}",
    ];
    let if_none_match = prop_oneof![
        Just(etag.clone()),
        Just(format!("W/{etag}")),
        Just(format!("\"0000\", {etag}")),
        Just("*".to_string()),
        "\"[0-9a-f]{0,8}\"",
        "[ -~]{0,20}",
    ];
    let headers = (
        proptest::option::of(range),
        proptest::option::of(if_none_match),
    );
    let mut runner = TestRunner::new(Config::with_cases(1_000));
    let outcome = runner.run(&headers, |(range, if_none_match)| {
        // Trimmed as the server's HTTP parser trims them, so both sides read the same value.
        let mut sent = HeaderMap::new();
        for (name, value) in [(RANGE, &range), (IF_NONE_MATCH, &if_none_match)] {
            let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty());
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                sent.insert(name, value);
            }
        }
        let response = client.get(&url).headers(sent.clone()).send().unwrap();
        let status = response.status().as_u16();
        let content_range = response
            .headers()
            .get(CONTENT_RANGE)
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.bytes().unwrap();
        let size = file.len() as u64;
        match file_answer(&sent, &etag, size) {
            FileAnswer::NotModified => prop_assert_eq!(status, 304),
            FileAnswer::Unsatisfiable => {
                prop_assert_eq!(status, 416);
                prop_assert_eq!(content_range, Some(format!("bytes */{size}")));
            }
            FileAnswer::Whole => {
                prop_assert_eq!(status, 200, "{:?} {:?}", range, if_none_match);
                prop_assert!(body[..] == file[..]);
            }
            FileAnswer::Part(part) => {
                prop_assert_eq!(status, 206, "{:?}", range);
                let named = format!("bytes {}-{}/{size}", part.start, part.end - 1);
                prop_assert_eq!(content_range, Some(named));
                prop_assert!(body[..] == file[part.start as usize..part.end as usize]);
            }
        }
        Ok(())
    });
    outcome.unwrap();
    assert_eq!(served.ping(), Some(200));
    assert!(!node.log().contains("panicked"), "{}", node.log());
}
