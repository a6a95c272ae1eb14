//! Nodes that do not match the cluster never come online: each records why as its status,
//! answers `/__ping__` with 503 and keeps running. SQLite is refused outright.

use std::time::Duration;

use super::{FAST, Fixture, Key, list_nodes, status_of, wait_status};
use crate::support::{NodeDir, wait_until};

#[test]
fn nodes_that_do_not_match_stay_out_with_their_status() {
    let fx = Fixture::new("refusals", FAST);
    let good = fx.node("127.0.0.31");
    let _good = good.serve();
    wait_status(&good, &good, "Online", Duration::from_secs(5));

    struct Case {
        ip: &'static str,
        key: Key,
        cluster_extra: &'static str,
        tables: &'static str,
        env: &'static [(&'static str, &'static str)],
        status: &'static str,
    }
    let cases = [
        Case {
            ip: "127.0.0.32",
            key: Key::Other,
            cluster_extra: "",
            tables: "",
            env: &[],
            status: "Invalid secure key",
        },
        Case {
            ip: "127.0.0.33",
            key: Key::WorldReadable,
            cluster_extra: "",
            tables: "",
            env: &[],
            status: "Invalid permissions on secure key",
        },
        Case {
            ip: "127.0.0.34",
            key: Key::Short,
            cluster_extra: "",
            tables: "",
            env: &[],
            status: "Invalid secure key",
        },
        Case {
            ip: "127.0.0.35",
            key: Key::Missing,
            cluster_extra: "",
            tables: "",
            env: &[],
            status: "Invalid secure key",
        },
        Case {
            ip: "127.0.0.36",
            key: Key::Shared,
            cluster_extra: "",
            tables: "",
            env: &[("PKGNODE_VERSION_OVERRIDE", "9.9.9")],
            status: "Version mismatch",
        },
        Case {
            ip: "127.0.0.37",
            key: Key::Shared,
            cluster_extra: "",
            tables: "[limits]\nmax_upload_bytes = 1000\n",
            env: &[],
            status: "Config mismatch",
        },
        Case {
            ip: "127.0.0.38",
            key: Key::Shared,
            cluster_extra: "www_host_name = \"no-such-node.invalid\"\n",
            tables: "",
            env: &[],
            status: "Failed to resolve",
        },
    ];
    let nodes: Vec<NodeDir> = cases
        .iter()
        .map(|c| fx.node_with(c.ip, c.cluster_extra, c.tables, c.key))
        .collect();
    let mut served: Vec<_> = cases
        .iter()
        .zip(&nodes)
        .map(|(case, node)| node.spawn(case.env))
        .collect();

    for ((case, node), process) in cases.iter().zip(&nodes).zip(&mut served) {
        wait_status(&good, node, case.status, Duration::from_secs(10));
        // Not online: the load balancer gets 503 and the reason, and the process keeps running.
        wait_until(
            &format!("{} answering", case.ip),
            Duration::from_secs(5),
            || process.ping() == Some(503),
        );
        let body = reqwest::blocking::get(format!("{}/__ping__", node.base()))
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(body.trim(), case.status, "{}", case.ip);
        assert!(
            process.exited().is_none(),
            "{} exited:\n{}",
            case.ip,
            node.log()
        );
        assert!(
            node.log().contains("will not come online"),
            "{}:\n{}",
            case.ip,
            node.log()
        );
    }

    let (text, rows) = list_nodes(&good);
    assert_eq!(rows[0].port, good.port, "online first:\n{text}");
    assert_eq!(
        status_of(&rows, good.port).as_deref(),
        Some("Online"),
        "{text}"
    );
    let version_row = rows.iter().find(|r| r.port == nodes[4].port).unwrap();
    assert_eq!(version_row.version, "9.9.9", "{text}");
    let unresolved = rows.iter().find(|r| r.port == nodes[6].port).unwrap();
    assert_eq!(unresolved.host, "no-such-node.invalid", "{text}");
    // The logs say why, in words an operator can act on.
    assert!(nodes[1].log().contains("0600"), "{}", nodes[1].log());
    assert!(nodes[2].log().contains("128"), "{}", nodes[2].log());
    // A cluster node never creates a key of its own.
    assert!(!nodes[3].data_dir().join("pkgnode.key").exists());
    // Refused nodes are not members: their address does not open the status page.
    assert_eq!(super::lb_status(&good, Some("127.0.0.32"), None).0, 403);
    assert_eq!(super::lb_status(&good, Some("127.0.0.31"), None).0, 200);
    // The refused nodes never redefined the cluster.
    let fingerprint = fx.psql("SELECT key_fingerprint FROM cluster");
    let key = hex::decode(fx.key_hex()).unwrap();
    assert_eq!(
        fingerprint,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&key))
    );
}

#[test]
fn load_balancing_on_sqlite_is_refused() {
    let node = NodeDir::new("[cluster]\nenabled = true\n");
    let (ok, _, err) = node.run(&["serve"]);
    assert!(!ok);
    assert!(err.contains("load balancing"), "{err}");
    assert!(err.contains("needs PostgreSQL"), "{err}");
    let (ok, _, err) = node.run(&["list-nodes"]);
    assert!(!ok && err.contains("needs PostgreSQL"), "{err}");
}
