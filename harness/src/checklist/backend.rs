//! What the nodes keep their metadata in: one PostgreSQL for a cluster (SQLite cannot be
//! shared, and PPM refuses it for HA). The file locks of directory storage are [`super::locks`].

use reports::record::{CheckerResult, Validity};
use serde_json::json;

use super::facts::Facts;

pub const POSTGRESQL: &str = "postgresql-not-sqlite";

/// Every node of a cluster (two or more nodes) keeps its metadata in PostgreSQL.
pub fn postgresql(facts: &Facts) -> CheckerResult {
    let by_node: serde_json::Map<String, serde_json::Value> = facts
        .nodes
        .iter()
        .map(|n| {
            let backend = n.answered().and_then(|s| s.database_backend.clone());
            (n.node.clone(), json!(backend))
        })
        .collect();
    let backend_of = |name: &str| by_node.get(name).and_then(|v| v.as_str());
    let sqlite: Vec<&str> = facts
        .nodes
        .iter()
        .map(|n| n.node.as_str())
        .filter(|n| backend_of(n) == Some("sqlite"))
        .collect();
    let unknown: Vec<&str> = facts
        .nodes
        .iter()
        .map(|n| n.node.as_str())
        .filter(|n| !matches!(backend_of(n), Some("sqlite" | "postgresql")))
        .collect();
    let (validity, summary) = if facts.nodes.len() > 1 && !sqlite.is_empty() {
        (
            Validity::Invalid,
            format!(
                "{} keep(s) metadata in SQLite, which a cluster cannot share",
                sqlite.join(", ")
            ),
        )
    } else if facts.nodes.is_empty() {
        (Validity::Unknown, "no node".into())
    } else if !unknown.is_empty() {
        (
            Validity::Unknown,
            format!("{} did not say which database it uses", unknown.join(", ")),
        )
    } else if facts.nodes.len() == 1 {
        (
            Validity::Valid,
            format!(
                "a single node on {} (SQLite is allowed without a cluster)",
                backend_of(&facts.nodes[0].node).unwrap_or("?")
            ),
        )
    } else {
        (
            Validity::Valid,
            format!("all {} nodes on PostgreSQL", facts.nodes.len()),
        )
    };
    CheckerResult {
        name: POSTGRESQL.into(),
        validity,
        summary,
        evidence: json!({ "database_backend": by_node }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{healthy, status_of};
    use super::*;

    #[test]
    fn a_cluster_node_on_sqlite_is_invalid_and_named() {
        let mut facts = healthy();
        status_of(&mut facts, 1).database_backend = Some("sqlite".into());
        let result = postgresql(&facts);
        assert_eq!(result.name, POSTGRESQL);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(result.summary.contains("node-2"), "{}", result.summary);
    }

    #[test]
    fn a_single_node_may_use_sqlite_and_an_unsaid_backend_is_unknown() {
        let mut facts = healthy();
        facts.nodes.truncate(1);
        status_of(&mut facts, 0).database_backend = Some("sqlite".into());
        assert_eq!(postgresql(&facts).validity, Validity::Valid);
        let mut facts = healthy();
        status_of(&mut facts, 0).database_backend = None;
        assert_eq!(postgresql(&facts).validity, Validity::Unknown);
    }
}
