//! What operators read: the `list-nodes` table, the `node-status` JSON and the plain-text
//! `/load-balancer/status` page, all from the stored rows and the database's clock.

use std::fmt::Write;

use serde_json::json;

use super::status::{self, NodeStatus};
use crate::store::cluster::{ClusterRow, NodeRow};

/// Epoch milliseconds as Workbench prints them (`2021-Sep-20 17:08:53`, UTC).
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%b-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Rows with their displayed status, online ones first, then by id.
pub fn ordered(nodes: &[NodeRow], now_ms: i64, missed_after_ms: i64) -> Vec<(NodeRow, String)> {
    let mut rows: Vec<(NodeRow, String)> = nodes
        .iter()
        .map(|n| {
            let shown = status::displayed(&n.status, n.last_seen_ms, now_ms, missed_after_ms);
            (n.clone(), shown)
        })
        .collect();
    rows.sort_by_key(|(n, shown)| (shown != NodeStatus::Online.word(), n.id));
    rows
}

/// The `list-nodes` text: the cluster definition, then one line per node.
pub fn list_nodes(
    cluster: Option<&ClusterRow>,
    nodes: &[NodeRow],
    now_ms: i64,
    missed_after_ms: i64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Cluster\n-------");
    match cluster {
        Some(c) => {
            let _ = writeln!(out, "Protocol        {}", c.protocol);
            let _ = writeln!(out, "Version         {}", c.version);
            let _ = writeln!(out, "Key fingerprint {}", c.key_fingerprint);
            let _ = writeln!(out, "Config digest   {}", c.config_digest);
            let _ = writeln!(out, "Defined         {}", format_time(c.defined_at_ms));
        }
        None => {
            let _ = writeln!(
                out,
                "(not defined: the first node to come online defines it)"
            );
        }
    }
    let _ = writeln!(out, "\nNodes\n-----");
    let header = [
        "ID",
        "Host",
        "IPv4",
        "Port",
        "Version",
        "Status",
        "Last Seen",
    ];
    let mut lines: Vec<[String; 7]> = vec![header.map(str::to_string)];
    for (node, shown) in ordered(nodes, now_ms, missed_after_ms) {
        lines.push([
            node.id.to_string(),
            node.host.clone(),
            if node.ipv4.is_empty() {
                "-".into()
            } else {
                node.ipv4.clone()
            },
            node.port.to_string(),
            node.version.clone(),
            shown,
            format_time(node.last_seen_ms),
        ]);
    }
    let mut widths = [0usize; 7];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in &lines {
        let mut text = String::new();
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
    out
}

fn load(node: &NodeRow) -> [f64; 3] {
    node.load_milli.map(|m| m as f64 / 1000.0)
}

/// The `node-status` JSON: the cluster and its online nodes with their load and in-flight
/// requests.
pub fn node_status(
    cluster: Option<&ClusterRow>,
    nodes: &[NodeRow],
    now_ms: i64,
    missed_after_ms: i64,
) -> serde_json::Value {
    let online: Vec<serde_json::Value> = ordered(nodes, now_ms, missed_after_ms)
        .into_iter()
        .filter(|(_, shown)| shown == NodeStatus::Online.word())
        .map(|(n, shown)| {
            json!({
                "id": n.id,
                "host": n.host,
                "ipv4": n.ipv4,
                "port": n.port,
                "version": n.version,
                "status": shown,
                "last_seen": format_time(n.last_seen_ms),
                "last_seen_ms": n.last_seen_ms,
                "started_ms": n.started_ms,
                "load": load(&n),
                "in_flight": n.in_flight,
                "clock_offset_ms": n.clock_offset_ms,
            })
        })
        .collect();
    json!({
        "cluster": cluster.map(|c| json!({
            "protocol": c.protocol,
            "version": c.version,
            "key_fingerprint": c.key_fingerprint,
            "config_digest": c.config_digest,
        })),
        "nodes_total": nodes.len(),
        "online": online,
    })
}

/// The `/load-balancer/status` page: one line per node with its address and load, marked
/// `(offline)` when it is not serving and `(unreachable)` when it stopped checking in.
pub fn load_balancer_status(nodes: &[NodeRow], now_ms: i64, missed_after_ms: i64) -> String {
    let mut out = String::new();
    for (node, shown) in ordered(nodes, now_ms, missed_after_ms) {
        let host = if node.ipv4.is_empty() {
            &node.host
        } else {
            &node.ipv4
        };
        let marker = if shown == NodeStatus::Online.word() {
            String::new()
        } else if shown == status::MISSED_CHECK_IN {
            " (unreachable)".into()
        } else if shown == NodeStatus::Offline.word() {
            " (offline)".into()
        } else {
            format!(" (offline: {shown})")
        };
        let [l1, l5, l15] = load(&node);
        let _ = writeln!(
            out,
            "{host}:{}{marker}  Load: {l1:.2}, {l5:.2}, {l15:.2}",
            node.port
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, status: &str, last_seen_ms: i64) -> NodeRow {
        NodeRow {
            id,
            uid: format!("u{id}"),
            host: format!("10.0.0.{id}"),
            ipv4: format!("10.0.0.{id}"),
            port: 4242,
            version: "0.1.0".into(),
            status: status.into(),
            reason: String::new(),
            desired: "online".into(),
            started_ms: 0,
            last_seen_ms,
            load_milli: [450, 660, 320],
            in_flight: 2,
            clock_offset_ms: 0,
        }
    }

    #[test]
    fn online_nodes_first_and_markers() {
        let nodes = vec![
            node(1, "Offline", 10_000),
            node(2, "Online", 1_000),
            node(3, "Online", 9_900),
        ];
        let table = list_nodes(None, &nodes, 10_000, 5_000);
        let lines: Vec<&str> = table.lines().skip_while(|l| !l.starts_with("ID")).collect();
        assert!(lines[1].starts_with("3 "), "{table}");
        assert!(
            lines[2].contains("Missed check-in") || lines[3].contains("Missed check-in"),
            "{table}"
        );
        let page = load_balancer_status(&nodes, 10_000, 5_000);
        assert!(
            page.contains("10.0.0.3:4242  Load: 0.45, 0.66, 0.32"),
            "{page}"
        );
        assert!(page.contains("10.0.0.2:4242 (unreachable)"), "{page}");
        assert!(page.contains("10.0.0.1:4242 (offline)"), "{page}");
        let status = node_status(None, &nodes, 10_000, 5_000);
        assert_eq!(status["online"].as_array().map(Vec::len), Some(1));
        assert_eq!(status["online"][0]["in_flight"], 2);
    }
}
