//! What every node of a cluster must share, compared across the nodes' own answers: the
//! version, the secure key (its fingerprint) and the configuration (its digest, address
//! options excepted). Any two nodes that differ make the rule invalid; a node that does not
//! answer or does not say leaves it unknown.

use std::collections::BTreeMap;

use reports::record::{CheckerResult, Validity};
use serde_json::json;

use super::facts::{Facts, NodeStatusFacts};

pub const SAME_VERSION: &str = "same-version";
pub const SAME_SECURE_KEY: &str = "same-secure-key";
pub const IDENTICAL_CONFIG: &str = "identical-config";

/// Every node reports the same `version`.
pub fn same_version(facts: &Facts) -> CheckerResult {
    all_equal(facts, SAME_VERSION, "version", false, |s| {
        s.version.as_ref()
    })
}

/// The statuses a node refused for its key holds (Workbench's words).
const KEY_REFUSALS: [&str; 2] = ["Invalid secure key", "Invalid permissions on secure key"];

/// Every node's secure key has the same fingerprint, and no node was refused for its key (a
/// key shorter than 128 bits, or readable by others than its owner, is refused by the node
/// itself, which then reports the fingerprint of a throwaway key).
pub fn same_secure_key(facts: &Facts) -> CheckerResult {
    let mut result = all_equal(facts, SAME_SECURE_KEY, "key fingerprint", true, |s| {
        s.key_fingerprint.as_ref()
    });
    let refused: Vec<String> = facts
        .nodes
        .iter()
        .filter_map(|n| {
            let word = n.answered()?.cluster_status.as_deref()?;
            KEY_REFUSALS
                .contains(&word)
                .then(|| format!("{} is {word}", n.node))
        })
        .collect();
    if !refused.is_empty() {
        result.summary = if result.validity == Validity::Invalid {
            format!("{}; {}", refused.join("; "), result.summary)
        } else {
            refused.join("; ")
        };
        result.validity = Validity::Invalid;
        result.evidence["refused"] = json!(refused);
    }
    result
}

/// Every node's configuration has the same digest (its own address options left out).
pub fn identical_config(facts: &Facts) -> CheckerResult {
    all_equal(facts, IDENTICAL_CONFIG, "config digest", true, |s| {
        s.config_digest.as_ref()
    })
}

fn all_equal(
    facts: &Facts,
    rule: &str,
    what: &str,
    is_hash: bool,
    field: impl Fn(&NodeStatusFacts) -> Option<&String>,
) -> CheckerResult {
    let shown = |v: &str| {
        if is_hash {
            format!("{}…", v.get(..12).unwrap_or(v))
        } else {
            v.to_string()
        }
    };
    // value → nodes holding it
    let mut by_value: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut undecided = Vec::new();
    let mut by_node = serde_json::Map::new();
    for node in &facts.nodes {
        match &node.status {
            Ok(status) => match field(status) {
                Some(value) => {
                    by_value.entry(value).or_default().push(&node.node);
                    by_node.insert(node.node.clone(), json!(value));
                }
                None => {
                    undecided.push(format!("{} does not report its {what}", node.node));
                    by_node.insert(node.node.clone(), serde_json::Value::Null);
                }
            },
            Err(error) => {
                undecided.push(format!("{} did not answer ({error})", node.node));
                by_node.insert(node.node.clone(), serde_json::Value::Null);
            }
        }
    }
    let (validity, summary) = if by_value.len() > 1 {
        let groups: Vec<String> = by_value
            .iter()
            .map(|(value, nodes)| format!("{} on {}", shown(value), nodes.join(", ")))
            .collect();
        (
            Validity::Invalid,
            format!("nodes differ in {what}: {}", groups.join("; ")),
        )
    } else if !undecided.is_empty() {
        (Validity::Unknown, undecided.join("; "))
    } else if let Some((value, nodes)) = by_value.iter().next() {
        (
            Validity::Valid,
            format!("{} node(s), one {what}: {}", nodes.len(), shown(value)),
        )
    } else {
        (Validity::Unknown, "no node to compare".into())
    };
    CheckerResult {
        name: rule.into(),
        validity,
        summary,
        evidence: json!({ "by_node": by_node, "undecided": undecided }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{healthy, status_of};
    use super::*;

    #[test]
    fn another_version_on_one_node_is_invalid_and_named() {
        let mut facts = healthy();
        status_of(&mut facts, 1).version = Some("0.2.0".into());
        let result = same_version(&facts);
        assert_eq!(result.name, SAME_VERSION);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(
            result.summary.contains("0.2.0 on node-2"),
            "{}",
            result.summary
        );
        assert_eq!(same_version(&healthy()).validity, Validity::Valid);
    }

    #[test]
    fn another_key_on_one_node_is_invalid_and_named() {
        let mut facts = healthy();
        status_of(&mut facts, 0).key_fingerprint = Some("9e".repeat(32));
        let result = same_secure_key(&facts);
        assert_eq!(result.name, SAME_SECURE_KEY);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(result.summary.contains("node-1"), "{}", result.summary);
    }

    #[test]
    fn a_node_refused_for_its_key_file_is_invalid_and_named() {
        let mut facts = healthy();
        let status = status_of(&mut facts, 1);
        status.cluster_status = Some("Invalid permissions on secure key".into());
        status.serving = false;
        let result = same_secure_key(&facts);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert_eq!(
            result.summary,
            "node-2 is Invalid permissions on secure key"
        );
    }

    #[test]
    fn another_config_on_one_node_is_invalid_and_named() {
        let mut facts = healthy();
        status_of(&mut facts, 1).config_digest = Some("d1".repeat(32));
        let result = identical_config(&facts);
        assert_eq!(result.name, IDENTICAL_CONFIG);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(result.summary.contains("d1d1d1d1d1d1… on node-2"));
    }

    #[test]
    fn a_node_that_does_not_say_leaves_it_unknown_but_a_difference_still_fails() {
        let mut facts = healthy();
        status_of(&mut facts, 1).config_digest = None;
        assert_eq!(identical_config(&facts).validity, Validity::Unknown);
        facts.nodes[1].status = Err("connection refused".into());
        let result = same_version(&facts);
        assert_eq!(result.validity, Validity::Unknown);
        assert!(result.summary.contains("node-2 did not answer"));

        let mut facts = healthy();
        facts.nodes.push(facts.nodes[0].clone());
        facts.nodes[2].node = "node-3".into();
        facts.nodes[2].status = Err("timeout".into());
        status_of(&mut facts, 1).version = Some("0.2.0".into());
        assert_eq!(same_version(&facts).validity, Validity::Invalid);
    }
}
