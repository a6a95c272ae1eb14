//! Cross-node file locks between real processes: the locktester shows exclusion for both lock
//! types and reaps a SIGKILLed holder's stale lock; N processes incrementing a shared counter
//! M times each under the lock end at exactly N×M.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{NodeDir, pkgnode_bin, signal};

const QUICK_LOCKS: &str = "[locks]\nrefresh_rate = \"200ms\"\ntimeout_interval = \"1s\"\n";

fn locktester(node: &NodeDir, dir: &Path) -> Command {
    let mut command = Command::new(pkgnode_bin());
    command
        .arg("--config")
        .arg(&node.config)
        .args(["locktester", "--dir"])
        .arg(dir);
    command
}

/// A locktester process, killed when dropped so a failing test leaves no holder behind.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a locktester expected to be the first instance; returns it once it holds its locks,
/// with the lines it printed.
fn first_instance(node: &NodeDir, dir: &Path) -> (Holder, BufReader<ChildStdout>, Vec<String>) {
    let mut holder = Holder(
        locktester(node, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(holder.0.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "locktester ended early: {lines:?}"
        );
        let done = line.starts_with("holding");
        lines.push(line.trim_end().to_string());
        if done {
            return (holder, out, lines);
        }
    }
}

#[test]
fn locktester_shows_exclusion_and_reaps_a_killed_holder() {
    let node = NodeDir::new(QUICK_LOCKS);
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path();

    let (mut first, _out, lines) = first_instance(&node, dir);
    let text = lines.join("\n");
    assert!(text.contains("first instance"), "{text}");
    for kind in [
        "linkbased (hard links): acquired",
        "linkbased (symlinks): acquired",
        "advisory (fcntl): acquired",
    ] {
        assert!(text.contains(kind), "{text}");
    }

    let second = locktester(&node, dir).output().unwrap();
    let report = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(report.contains("second instance"), "{report}");
    for kind in [
        "linkbased (hard links)",
        "linkbased (symlinks)",
        "advisory (fcntl)",
    ] {
        assert!(
            report.contains(&format!("{kind}: could not acquire")),
            "{kind} did not exclude:\n{report}"
        );
    }
    assert!(report.contains("conclusion: this filesystem supports linkbased (hard links), linkbased (symlinks), advisory (fcntl)"), "{report}");
    assert!(!report.contains("does NOT support"), "{report}");

    // The holder dies without releasing: its link-based locks stay behind until they are stale,
    // then the next locktester reaps them; its advisory lock died with it.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let killed = Instant::now();
    let (mut again, mut out, lines) = first_instance(&node, dir);
    let took = killed.elapsed();
    let text = lines.join("\n");
    eprintln!("stale locks reaped after {took:?}:\n{text}");
    assert!(text.contains("first instance"), "{text}");
    assert!(
        text.contains("linkbased (hard links): acquired, after reaping a stale lock left by"),
        "{text}"
    );
    assert!(
        text.contains("linkbased (symlinks): acquired, after reaping a stale lock left by"),
        "{text}"
    );
    assert!(text.contains("advisory (fcntl): acquired"), "{text}");
    assert!(
        took >= Duration::from_millis(800),
        "reaped before the timeout: {took:?}"
    );

    // Interrupted, it releases everything and leaves nothing behind.
    signal(again.0.id(), "INT");
    assert!(again.0.wait().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(rest.contains("released"), "{rest}");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn concurrent_increments_under_each_lock_type_sum_exactly() {
    const PROCESSES: u64 = 4;
    const TIMES: u64 = 100;
    let node = NodeDir::new(QUICK_LOCKS);
    for kind in [
        &["--type", "linkbased"][..],
        &["--type", "linkbased", "--symlinks"],
        &["--type", "advisory"],
    ] {
        let shared = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let children: Vec<Child> = (0..PROCESSES)
            .map(|_| {
                Command::new(pkgnode_bin())
                    .arg("--config")
                    .arg(&node.config)
                    .args(["lock-increment", "--dir"])
                    .arg(shared.path())
                    .args(["--times", &TIMES.to_string()])
                    .args(kind)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{kind:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let total = std::fs::read_to_string(shared.path().join("counter")).unwrap();
        eprintln!(
            "{kind:?}: {PROCESSES}×{TIMES} increments in {:?}",
            started.elapsed()
        );
        assert_eq!(total.trim(), (PROCESSES * TIMES).to_string(), "{kind:?}");
        let left: Vec<_> = std::fs::read_dir(shared.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "counter")
            .collect();
        assert!(left.is_empty(), "{kind:?} left {left:?}");
    }
}
