//! With a 20 s heartbeat, only notifications can explain what happens within a second: a node
//! hears of another's arrival, an operator's `offline` drains a node (503 to the load balancer at
//! once, the download in flight finishes, then Offline), `online` brings it back, and a node with
//! `delete_node_on_exit` removes itself when stopped.

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Fixture, lb_status, list_nodes, status_of, wait_status};
use crate::support::{self, eventually, wait_until};

const SLOW: &str =
    "heartbeat = \"20s\"\nmissed_check_in_after = \"60s\"\ndelete_node_on_exit = true\n";

#[test]
fn offline_drains_in_flight_requests_and_events_arrive_between_heartbeats() {
    let fx = Fixture::new("drain", SLOW);
    let a = fx.node("127.0.0.51");
    a.standard_layout();
    let work = tempfile::tempdir().unwrap();
    // Large enough to fill the socket buffers, so the download stays in flight while unread.
    let wheel = support::mkpkg_padded(work.path(), &["wheel", "big-pkg", "1.0"], 24 << 20);
    let size = std::fs::metadata(&wheel).unwrap().len();
    a.admin(&[
        "add",
        "--source",
        "py",
        "--path",
        &wheel.display().to_string(),
    ]);
    let mut served_a = a.serve();

    // a hears of b's arrival at once, not at its next check-in.
    let b = fx.node("127.0.0.52");
    let mut served_b = b.serve();
    let joined = Instant::now();
    let line = format!("{}:{}  Load:", b.ip, b.port);
    assert!(
        eventually(Duration::from_secs(3), || {
            lb_status(&a, None, Some(&fx.key_file())).1.contains(&line)
        }),
        "{}",
        lb_status(&a, None, Some(&fx.key_file())).1
    );
    eprintln!(
        "a listed b as online {:?} after b answered",
        joined.elapsed()
    );

    // A download in flight on a, read slowly.
    let url = format!(
        "{}/pypi/latest/packages/{}",
        a.base(),
        wheel.file_name().unwrap().to_string_lossy()
    );
    let (go_on, wait) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let download = std::thread::spawn(move || {
        let mut response = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut first = vec![0u8; 64 * 1024];
        response.read_exact(&mut first).unwrap();
        started_tx.send(()).unwrap();
        wait.recv().unwrap();
        let mut rest = Vec::new();
        response.read_to_end(&mut rest).unwrap();
        first.len() as u64 + rest.len() as u64
    });
    started.recv().unwrap();

    // offline: the load balancer sees 503 at once; the node stays up until the download ends.
    let (ok, out, err) = a.run(&["offline", "--timeout", "2"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("draining") && err.contains("request(s) still in flight"),
        "{err}"
    );
    assert_eq!(served_a.ping(), Some(503));
    assert_eq!(
        status_of(&list_nodes(&b).1, a.port).as_deref(),
        Some("Online")
    );
    go_on.send(()).unwrap();
    assert_eq!(
        download.join().unwrap(),
        size,
        "the download in flight finished whole"
    );
    let out = a.admin(&["offline", "--timeout", "5"]);
    assert!(out.contains("is offline"), "{out}");
    wait_status(&b, &a, "Offline", Duration::from_secs(2));
    assert_eq!(served_a.ping(), Some(503));

    // online: back within a second, long before the next heartbeat.
    let asked = Instant::now();
    let out = a.admin(&["online", "--timeout", "5"]);
    assert!(out.contains("is online"), "{out}");
    wait_until("a serving again", Duration::from_secs(2), || {
        served_a.ping() == Some(200)
    });
    assert!(asked.elapsed() < Duration::from_secs(5));

    let err = b.admin_fails(&["offline", "--node", "999"]);
    assert!(err.contains("no node with ID 999"), "{err}");

    // delete_node_on_exit: a clean stop removes the node's row.
    assert!(served_b.terminate().success(), "{}", b.log());
    let (text, rows) = list_nodes(&a);
    assert_eq!(status_of(&rows, b.port), None, "{text}");
    assert_eq!(rows.len(), 1, "{text}");
    assert!(served_a.terminate().success(), "{}", a.log());
}
