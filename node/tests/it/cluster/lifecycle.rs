//! Three nodes come Online; one stopped cleanly shows Offline, one SIGKILLed shows Missed
//! check-in after the threshold; `delete-node` and `reset-cluster` do what they say; the load
//! balancer status is for members only.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{FAST, Fixture, Key, lb_status, list_nodes, status_of, wait_status};
use crate::support::{NodeDir, eventually};

#[test]
fn three_nodes_check_in_stop_miss_and_are_deleted_and_reset() {
    let fx = Fixture::new("lifecycle", FAST);
    let ips = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];
    let nodes: Vec<NodeDir> = ips.iter().map(|ip| fx.node(ip)).collect();
    let mut served: Vec<_> = nodes.iter().map(NodeDir::serve).collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // All three Online, in join order, with their own addresses and the crate's version.
    assert!(
        eventually(Duration::from_secs(10), || {
            let (_, rows) = list_nodes(a);
            rows.len() == 3 && rows.iter().all(|r| r.status == "Online")
        }),
        "{}",
        list_nodes(a).0
    );
    let (text, rows) = list_nodes(b);
    for (row, (node, ip)) in rows.iter().zip(nodes.iter().zip(ips)) {
        assert_eq!(
            (row.host.as_str(), row.ipv4.as_str(), row.port),
            (ip, ip, node.port),
            "{text}"
        );
        assert_eq!(row.version, env!("CARGO_PKG_VERSION"));
        assert!(row.last_seen.len() >= 19, "{text}");
    }
    assert!(text.contains("Protocol        http"), "{text}");

    // The database holds the key's fingerprint, never the key.
    let key = hex::decode(fx.key_hex()).unwrap();
    let fingerprint = hex::encode(Sha256::digest(&key));
    assert_eq!(fx.psql("SELECT key_fingerprint FROM cluster"), fingerprint);
    let everything = fx.psql("SELECT row_to_json(c)::text FROM cluster c")
        + &fx.psql("SELECT string_agg(row_to_json(n)::text, ',') FROM nodes n");
    assert!(!everything.contains(&fx.key_hex()), "{everything}");

    // node-status: the online nodes with load and in-flight requests.
    let status: serde_json::Value = serde_json::from_str(&a.admin(&["node-status"])).unwrap();
    let online = status["online"].as_array().unwrap();
    assert_eq!(online.len(), 3, "{status:#}");
    for node in online {
        assert_eq!(node["load"].as_array().map(Vec::len), Some(3), "{status:#}");
        assert!(node["in_flight"].is_i64(), "{status:#}");
        assert!(
            node["clock_offset_ms"].as_i64().unwrap().abs() < 1000,
            "{status:#}"
        );
    }

    // /load-balancer/status: 403 to outsiders, the page to members and signed requests.
    let (code, body) = lb_status(a, None, None);
    assert_eq!(code, 403, "{body}");
    let (code, body) = lb_status(a, Some("127.0.0.22"), None);
    assert_eq!(code, 200, "{body}");
    for node in &nodes {
        assert!(
            body.contains(&format!("{}:{}  Load: ", node.ip, node.port)),
            "{body}"
        );
    }
    let (code, _) = lb_status(a, Some("127.0.0.99"), None);
    assert_eq!(code, 403);
    let (code, signed) = lb_status(a, None, Some(&fx.key_file()));
    assert_eq!(code, 200, "{signed}");
    let other_key = tempfile::tempdir().unwrap();
    let other = other_key.path().join("k");
    super::write_key(&other, &hex::encode([9u8; 32]), 0o600);
    assert_eq!(lb_status(a, None, Some(&other)).0, 403);

    // A node stopped cleanly (SIGTERM) is Offline.
    assert!(served[1].terminate().success(), "{}", b.log());
    wait_status(a, b, "Offline", Duration::from_secs(5));
    assert!(
        eventually(Duration::from_secs(3), || {
            lb_status(a, Some("127.0.0.21"), None)
                .1
                .contains(&format!("{}:{} (offline)", b.ip, b.port))
        }),
        "{}",
        lb_status(a, Some("127.0.0.21"), None).1
    );

    // A node killed without a word shows Missed check-in once the threshold has passed.
    let killed = Instant::now();
    served[2].kill();
    wait_status(a, c, "Missed check-in", Duration::from_secs(10));
    let after = killed.elapsed();
    eprintln!("SIGKILLed node shown as Missed check-in after {after:?}");
    // Not at once: only when the last check-in (at most a heartbeat before the kill, more if
    // check-ins lag on a busy machine) is older than the 1.5 s threshold.
    assert!(after >= Duration::from_millis(700), "{after:?}");
    assert!(
        lb_status(a, Some("127.0.0.21"), None)
            .1
            .contains(&format!("{}:{} (unreachable)", c.ip, c.port))
    );
    // Online ones first.
    let (text, rows) = list_nodes(a);
    assert_eq!(rows[0].port, a.port, "{text}");

    // delete-node: a dead node goes at once; an Online, reachable one only with --force, and
    // then it leaves and stops by itself.
    let id_of = |node: &NodeDir| {
        let (_, rows) = list_nodes(a);
        rows.iter()
            .find(|r| r.port == node.port)
            .unwrap()
            .id
            .to_string()
    };
    let c_id = id_of(c);
    let out = a.admin(&["delete-node", &c_id]);
    assert!(out.contains(&format!("deleted node {c_id}")), "{out}");
    assert_eq!(status_of(&list_nodes(a).1, c.port), None);
    let a_id = id_of(a);
    let err = b.admin_fails(&["delete-node", &a_id]);
    assert!(err.contains("Online and reachable"), "{err}");
    let out = b.admin(&["delete-node", &a_id, "--force", "--timeout", "10"]);
    assert!(out.contains("deleted node"), "{out}");
    assert!(
        eventually(Duration::from_secs(10), || served[0].exited().is_some()),
        "a deleted node stops; log:\n{}",
        a.log()
    );
    assert!(a.log().contains("being deleted"), "{}", a.log());
    let (text, rows) = list_nodes(b);
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0].status, "Offline", "{text}");

    // reset-cluster: refused while a node is online, then forgets the definition and the nodes.
    served[1] = b.serve();
    wait_status(b, b, "Online", Duration::from_secs(5));
    let err = b.admin_fails(&["reset-cluster"]);
    assert!(err.contains("online"), "{err}");
    assert!(served[1].terminate().success());
    let out = b.admin(&["reset-cluster"]);
    assert!(out.contains("removed the cluster definition"), "{out}");
    let (text, rows) = list_nodes(b);
    assert!(rows.is_empty(), "{text}");
    assert!(text.contains("not defined"), "{text}");
    assert_eq!(fx.psql("SELECT COUNT(*) FROM cluster"), "0");

    // After a reset the next node defines the cluster anew, here with another key.
    let fresh = fx.node_with("127.0.0.24", "", "", Key::Other);
    let _fresh = fresh.serve();
    wait_status(b, &fresh, "Online", Duration::from_secs(5));
    assert_ne!(fx.psql("SELECT key_fingerprint FROM cluster"), fingerprint);
}
