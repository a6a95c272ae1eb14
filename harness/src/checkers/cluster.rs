//! Cluster status through the drill: every fault was injected and healed, and at the end
//! every node reports itself Online and serving. Statuses seen on the way are evidence.

use reports::record::{CheckerResult, Validity};
use serde::Serialize;
use serde_json::json;

/// The checker's name in the run record.
pub const NAME: &str = "cluster-status";

/// One node's status as read from its own `/__api__/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeStatusRead {
    pub node: String,
    /// The cluster status word (`Online`, `Offline`, …), or `None` when the node did not
    /// answer (`detail` says why).
    pub status: Option<String>,
    pub serving: bool,
    /// The database as the node last found it (`ok`, `unavailable`), when it answered.
    pub database: Option<String>,
    pub detail: String,
    /// The node's own id (`node_id`).
    pub id: String,
    /// The other members as this node lists them: (member id, status it shows).
    pub members: Vec<(String, String)>,
}

/// Judges the nemesis's errors, the statuses seen during the run and the final statuses.
pub fn check(
    nemesis_errors: &[String],
    faults_completed: usize,
    faults_planned: usize,
    seen: &[(f64, NodeStatusRead)],
    final_statuses: &[NodeStatusRead],
) -> CheckerResult {
    let not_online: Vec<&NodeStatusRead> = final_statuses
        .iter()
        .filter(|s| s.status.as_deref() != Some("Online") || !s.serving)
        .collect();
    // Ids to the names people read (`node-2`), from the nodes' own answers.
    let names: std::collections::BTreeMap<&str, &str> = seen
        .iter()
        .map(|(_, s)| s)
        .chain(final_statuses)
        .filter(|s| !s.id.is_empty())
        .map(|s| (s.id.as_str(), s.node.as_str()))
        .collect();
    let mut distinct: Vec<(String, String)> = seen
        .iter()
        .flat_map(|(_, s)| {
            let own = (
                s.node.clone(),
                s.status.clone().unwrap_or_else(|| "unreachable".into()),
            );
            let listed = s
                .members
                .iter()
                .filter(|(id, _)| *id != s.id)
                .map(|(id, status)| {
                    let peer = names.get(id.as_str()).copied().unwrap_or(id);
                    (format!("{peer} as listed by {}", s.node), status.clone())
                });
            std::iter::once(own).chain(listed)
        })
        .collect();
    distinct.sort();
    distinct.dedup();
    let (validity, summary) = if !not_online.is_empty() {
        (
            Validity::Invalid,
            format!(
                "at the end {} not Online: {}",
                if not_online.len() == 1 {
                    "a node is"
                } else {
                    "nodes are"
                },
                not_online
                    .iter()
                    .map(|s| format!(
                        "{} ({})",
                        s.node,
                        s.status.clone().unwrap_or_else(|| s.detail.clone())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else if !nemesis_errors.is_empty() || faults_completed < faults_planned {
        (
            Validity::Unknown,
            format!(
                "{faults_completed} of {faults_planned} faults were injected, healed and recovered from: {}",
                nemesis_errors.join("; ")
            ),
        )
    } else if final_statuses.is_empty() {
        (Validity::Unknown, "no node status could be read".into())
    } else {
        (
            Validity::Valid,
            format!(
                "{faults_completed} fault(s) injected and healed; every node Online at the end"
            ),
        )
    };
    CheckerResult {
        name: NAME.into(),
        validity,
        summary,
        evidence: json!({
            "faults_planned": faults_planned,
            "faults_completed": faults_completed,
            "nemesis_errors": nemesis_errors,
            "statuses_seen": distinct.iter().map(|(n, s)| json!({"node": n, "status": s})).collect::<Vec<_>>(),
            "final": final_statuses,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(node: &str, status: Option<&str>) -> NodeStatusRead {
        NodeStatusRead {
            node: node.into(),
            status: status.map(str::to_string),
            serving: true,
            database: Some("ok".into()),
            detail: "connection refused".into(),
            id: format!("id-{node}"),
            members: Vec::new(),
        }
    }

    #[test]
    fn every_node_online_after_every_fault_is_valid() {
        let seen = [(3.0, read("node-1", None))];
        let result = check(
            &[],
            1,
            1,
            &seen,
            &[
                read("node-1", Some("Online")),
                read("node-2", Some("Online")),
            ],
        );
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert_eq!(result.evidence["statuses_seen"][0]["status"], "unreachable");
    }

    #[test]
    fn what_one_node_lists_of_another_is_named_after_it() {
        let mut listing = read("node-1", Some("Online"));
        listing.members = vec![
            ("id-node-1".into(), "Online".into()),
            ("id-node-2".into(), "Missed check-in".into()),
        ];
        let seen = [(1.0, read("node-2", Some("Online"))), (5.0, listing)];
        let result = check(&[], 1, 1, &seen, &[read("node-1", Some("Online"))]);
        let text = result.evidence["statuses_seen"].to_string();
        assert!(
            text.contains(r#"{"node":"node-2 as listed by node-1","status":"Missed check-in"}"#),
            "{text}"
        );
    }

    #[test]
    fn a_node_not_online_at_the_end_is_invalid() {
        let result = check(
            &[],
            1,
            1,
            &[],
            &[read("node-1", Some("Online")), read("node-2", None)],
        );
        assert_eq!(result.validity, Validity::Invalid);
        assert!(result.summary.contains("node-2"), "{}", result.summary);
    }

    #[test]
    fn a_fault_that_could_not_be_injected_leaves_it_unknown() {
        let result = check(
            &["partition-node: no iptables".into()],
            0,
            1,
            &[],
            &[read("node-1", Some("Online"))],
        );
        assert_eq!(result.validity, Validity::Unknown);
    }
}
