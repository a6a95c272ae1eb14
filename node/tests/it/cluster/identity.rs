//! Issue 10 defect 2: three processes started from one node id (a data dir copied with a VM
//! image) at three addresses are three members, each under an id of its own, and `list-nodes`
//! shows every one of them.

use std::time::Duration;

use super::{FAST, Fixture, list_nodes};
use crate::support::{NodeDir, eventually};

fn node_id(node: &NodeDir) -> String {
    let status: serde_json::Value =
        reqwest::blocking::get(format!("{}/__api__/status", node.base()))
            .and_then(|r| r.json())
            .expect("status answers");
    status["node_id"].as_str().unwrap_or_default().to_string()
}

#[test]
fn issue_10_nodes_started_from_one_copied_node_id_are_each_listed_under_their_own() {
    let fx = Fixture::new("identity", FAST);
    let first = fx.node("127.0.0.31");
    let _first_served = first.serve();
    assert!(
        eventually(Duration::from_secs(10), || {
            let (_, rows) = list_nodes(&first);
            rows.len() == 1 && rows[0].status == "Online"
        }),
        "{}",
        list_nodes(&first).0
    );
    let copied = std::fs::read_to_string(first.data_dir().join("node-id")).unwrap();

    // Two more, each with the first node's id file, as a cloned image would have.
    let others: Vec<NodeDir> = ["127.0.0.32", "127.0.0.33"]
        .iter()
        .map(|ip| fx.node(ip))
        .collect();
    for node in &others {
        std::fs::write(node.data_dir().join("node-id"), &copied).unwrap();
    }
    let _served: Vec<_> = others.iter().map(NodeDir::serve).collect();

    assert!(
        eventually(Duration::from_secs(15), || {
            let (_, rows) = list_nodes(&first);
            rows.len() == 3 && rows.iter().all(|r| r.status == "Online")
        }),
        "every serving node must be listed Online:\n{}\n{}",
        list_nodes(&first).0,
        others[0].log()
    );
    let ids: Vec<String> = std::iter::once(&first)
        .chain(&others)
        .map(node_id)
        .collect();
    assert_eq!(ids[0], copied.trim(), "the first keeps its id");
    assert!(
        ids[1] != ids[0] && ids[2] != ids[0] && ids[1] != ids[2],
        "{ids:?}"
    );
    // The id file is the first node's too: the others do not rewrite it.
    for node in &others {
        assert_eq!(
            std::fs::read_to_string(node.data_dir().join("node-id")).unwrap(),
            copied
        );
        assert!(node.log().contains("held by a live node"), "{}", node.log());
    }
}
