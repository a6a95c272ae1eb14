//! `harness scenario daily-installs` end to end on the local provider: a passing run, an
//! impossible threshold, teardown on success and on Ctrl-C, re-rendering, and the page in
//! headless Chromium.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assert_nothing_left, harness_command, processes_under};

/// A short, small run at a light rate over a small corpus; `extra` gives --duration.
fn harness(tmp: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = harness_command(
        tmp,
        out,
        &[
            "scenario",
            "daily-installs",
            "--infra",
            "local",
            "--quiet",
            "--installs-per-day",
            "300000",
            "--packages",
            "24",
            "--size-max-bytes",
            "2000000",
        ],
    );
    command.args(extra);
    command
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn a_short_run_passes_writes_its_record_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let result = harness(
        tmp.path(),
        &out,
        &[
            "--duration",
            "15s",
            "--threshold",
            "error_rate<=0",
            "--threshold",
            "rate_ratio>=0.95",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(
        result.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    let summary = summary(&out);
    assert_eq!(summary["verdict"], "pass");
    assert_eq!(summary["infra"]["provider"], "local");
    // The cluster measured was a valid HA cluster before and after the load.
    let checklist: Vec<(&str, &str)> = summary["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["validity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checklist,
        [
            ("ha-checklist-at-start", "valid"),
            ("ha-checklist-at-end", "valid")
        ]
    );
    let attempted = summary["installs"]["attempted"].as_u64().unwrap();
    assert!(attempted > 20, "{summary}");
    assert_eq!(summary["installs"]["failed"], 0);
    assert_eq!(
        summary["installs"]["succeeded"].as_u64().unwrap(),
        attempted
    );
    // Both nodes served part of the load through HAProxy.
    let shares = summary["node_requests"].as_object().expect("node shares");
    assert_eq!(shares.len(), 2, "{summary}");
    assert!(
        shares.values().all(|v| v.as_u64().unwrap() > 0),
        "{summary}"
    );
    for file in [
        "report.html",
        "record.json",
        "events.jsonl",
        "histograms/install.hdr",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    assert_nothing_left(tmp.path());

    // Re-rendering restores the page from the record alone.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    std::fs::remove_file(out.join("report.html")).unwrap();
    let rerender = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        rerender.status.success(),
        "{}",
        String::from_utf8_lossy(&rerender.stderr)
    );
    let again = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(again, page, "re-rendered page differs from the original");

    check_in_chromium(&out.join("report.html"), out_dir.path());
}

/// Opens the page in headless Chromium: no console errors, and a screenshot is taken.
fn check_in_chromium(page: &Path, work: &Path) {
    let shot = work.join("report.png");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg("--window-size=1400,3000")
        .arg(format!(
            "--user-data-dir={}",
            work.join("chromium-profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is not installed: run .ci/install.sh");
    let log = String::from_utf8_lossy(&output.stderr);
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors: {console_errors:?}"
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot missing or blank ({size} bytes): {log}"
    );
}

#[test]
fn an_impossible_threshold_fails_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let result = harness(
        tmp.path(),
        &out,
        &["--duration", "8s", "--threshold", "p99<1us"],
    )
    .output()
    .unwrap();
    assert_eq!(
        result.status.code(),
        Some(1),
        "{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(summary(&out)["verdict"], "fail");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("p99&#60;1us") || page.contains("p99&lt;1us"),
        "threshold not on the page"
    );
    assert_nothing_left(tmp.path());
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let result = harness(
        tmp.path(),
        &out,
        &["--threshold", "p99<<fast", "--r-share", "2"],
    )
    .output()
    .unwrap();
    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("r_share") || stderr.contains("r-share"),
        "{stderr}"
    );
    assert!(!out.exists());
    let result = harness(
        tmp.path(),
        &out,
        &["--target", "http://10.1.2.3:4242", "--token", "t"],
    )
    .output()
    .unwrap();
    assert_eq!(
        result.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn ctrl_c_tears_everything_down() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(tmp.path().join("t")).unwrap();
    let work = tmp.path().join("t");
    let mut child = harness(&work, &out, &["--duration", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the cluster is up and the load has started: the harness says so on
    // stderr just before its users start.
    let stderr = child.stderr.take().unwrap();
    let (seen, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = seen.send(line.clone());
            lines.push(line);
        }
        lines
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.starts_with("harness: pool:") => break,
            Ok(_) => {}
            Err(e) => panic!("the load never started: {e}"),
        }
    }
    // Both nodes run (the cluster is up) while the load goes on.
    assert_eq!(
        processes_under(&work)
            .iter()
            .filter(|c| c.contains("pkgnode"))
            .count(),
        2
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT to the harness");
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{}", lines.join("\n"));
    assert_nothing_left(&work);
}
