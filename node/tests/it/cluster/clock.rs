//! A node whose clock is 30 s ahead (libfaketime) goes to Clock skew: `/__ping__` 503 and
//! uploads refused; once its clock is right again it comes back Online by itself.

use std::path::Path;
use std::time::Duration;

use super::{FAST, Fixture, wait_status};
use crate::support::{self, NodeDir, wait_until};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn upload(node: &NodeDir, token: &str, wheel: &Path) -> (u16, String) {
    let bytes = std::fs::read(wheel).unwrap();
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let form = reqwest::blocking::multipart::Form::new()
        .text(":action", "file_upload")
        .part(
            "content",
            reqwest::blocking::multipart::Part::bytes(bytes).file_name(name),
        );
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/upload/pypi/py", node.base()))
        .basic_auth("__token__", Some(token))
        .multipart(form)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

#[test]
fn a_clock_30s_ahead_is_clock_skew_until_it_is_right() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "libfaketime is not installed (Debian package libfaketime): run .ci/install.sh"
    );
    let fx = Fixture::new("clock", FAST);
    let good = fx.node("127.0.0.41");
    good.standard_layout();
    let token = good.token("py");
    let _good = good.serve();

    let skewed = fx.node("127.0.0.42");
    let spec = skewed.dir.path().join("faketime.rc");
    std::fs::write(&spec, "+30s\n").unwrap();
    let spec_text = spec.display().to_string();
    let mut process = skewed.spawn(&[
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", &spec_text),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]);
    wait_status(&good, &skewed, "Clock skew", Duration::from_secs(10));
    assert_eq!(process.ping(), Some(503));
    let offset = fx.psql(&format!(
        "SELECT clock_offset_ms FROM nodes WHERE port = {}",
        skewed.port
    ));
    let offset: i64 = offset.parse().unwrap();
    assert!((-31_000..=-29_000).contains(&offset), "offset {offset} ms");
    assert!(skewed.log().contains("clock is"), "{}", skewed.log());

    // Writes are refused while the clock is wrong.
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg(work.path(), &["wheel", "skew-pkg", "1.0"]);
    let (status, body) = upload(&skewed, &token, &wheel);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Clock skew"), "{body}");

    // The clock is fixed: the next check-in brings the node back.
    std::fs::write(&spec, "+0s\n").unwrap();
    wait_status(&good, &skewed, "Online", Duration::from_secs(10));
    wait_until("skewed node serving again", Duration::from_secs(5), || {
        process.ping() == Some(200)
    });
    let (status, body) = upload(&skewed, &token, &wheel);
    assert_eq!(status, 200, "{body}");
    assert!(process.exited().is_none());
}
