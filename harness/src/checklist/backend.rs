//! What the nodes store on: one PostgreSQL for a cluster (SQLite cannot be shared, and PPM
//! refuses it for HA), and cross-node file locks where the package files are in a shared
//! directory (on S3 the store needs no file locks: lock correctness does not apply).

use reports::record::{CheckerResult, Validity};
use serde_json::json;

use super::facts::Facts;

pub const POSTGRESQL: &str = "postgresql-not-sqlite";
pub const LOCK_CORRECTNESS: &str = "lock-correctness";

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

/// Cross-node file locks exclude where package files are in a shared directory; n/a on S3.
///
/// The harness does not run `locktester` yet, so directory storage is unknown, never valid.
pub fn lock_correctness(facts: &Facts) -> CheckerResult {
    let storages: serde_json::Map<String, serde_json::Value> = facts
        .nodes
        .iter()
        .map(|n| {
            let storage = n.answered().and_then(|s| s.storage.clone());
            (n.node.clone(), json!(storage))
        })
        .collect();
    let kinds: Vec<Option<&str>> = storages
        .values()
        .map(|v| v.as_str().and_then(|s| s.split(':').next()))
        .collect();
    let (validity, summary) = if kinds.is_empty() {
        (Validity::Unknown, "no node".into())
    } else if kinds.iter().all(|k| *k == Some("s3")) {
        (
            Validity::Valid,
            "n/a: package files are in S3, which needs no file locks".into(),
        )
    } else if kinds.contains(&Some("dir")) {
        (
            Validity::Unknown,
            "package files are in a directory: exclusion needs `pkgnode locktester` on two nodes, which `harness check` does not run yet".into(),
        )
    } else {
        (
            Validity::Unknown,
            "a node did not say where it keeps package files".into(),
        )
    };
    CheckerResult {
        name: LOCK_CORRECTNESS.into(),
        validity,
        summary,
        evidence: json!({ "storage": storages }),
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

    #[test]
    fn locks_are_n_a_on_s3_and_unknown_on_a_directory() {
        let result = lock_correctness(&healthy());
        assert_eq!(result.validity, Validity::Valid);
        assert!(result.summary.starts_with("n/a"), "{}", result.summary);
        let mut facts = healthy();
        status_of(&mut facts, 0).storage = Some("dir:/srv/packages".into());
        let result = lock_correctness(&facts);
        assert_eq!(result.name, LOCK_CORRECTNESS);
        assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
    }
}
