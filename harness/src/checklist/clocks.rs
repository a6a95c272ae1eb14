//! Synchronized clocks: each node's offset from PostgreSQL's clock, as the node measured it at
//! its last check-in (NTP-style: the fastest of a few round trips, at the middle of the trip)
//! and lists it under `members`, within the tolerance. A node the cluster already holds in
//! `Clock skew` fails it too. Only a row the node still refreshes counts: a row shown as
//! `Missed check-in`, or the row of a node that answers with clustering off, holds the offset of
//! a check-in that may be long past (a node restarted without clustering keeps its old row), so
//! it leaves the offset unknown rather than vouching for today's clock.

use std::time::Duration;

use reports::record::{CheckerResult, Validity};
use serde_json::json;

use super::facts::{Facts, MemberFact};

/// How a member list shows an Online row whose node stopped checking in (the node's word).
pub const MISSED_CHECK_IN: &str = "Missed check-in";

pub const SYNCHRONIZED_CLOCKS: &str = "synchronized-clocks";

/// Judges each node's clock offset against `max_offset`.
pub fn synchronized_clocks(facts: &Facts, max_offset: Duration) -> CheckerResult {
    let limit_ms = max_offset.as_millis() as i64;
    let mut offsets = serde_json::Map::new();
    let mut off = Vec::new();
    let mut undecided = Vec::new();
    for node in &facts.nodes {
        let Some(status) = node.answered() else {
            undecided.push(format!("{} did not answer", node.node));
            offsets.insert(node.node.clone(), serde_json::Value::Null);
            continue;
        };
        // Its own listing first; another node's listing of it otherwise.
        let checks_in = status.cluster_status.is_some();
        let fresh = |m: &&MemberFact| checks_in && m.status != MISSED_CHECK_IN;
        let offset = node
            .own_entry()
            .filter(fresh)
            .and_then(|m| m.clock_offset_ms)
            .or_else(|| {
                facts
                    .nodes
                    .iter()
                    .filter_map(|n| n.answered())
                    .flat_map(|s| &s.members)
                    .filter(|m| m.uid == status.node_id)
                    .filter(fresh)
                    .find_map(|m| m.clock_offset_ms)
            });
        offsets.insert(node.node.clone(), json!(offset));
        let held = status.cluster_status.as_deref() == Some("Clock skew");
        match offset {
            Some(ms) if ms.abs() > limit_ms => off.push(format!(
                "{} is {ms} ms off the database's clock{}",
                node.node,
                if held { ", held in Clock skew" } else { "" }
            )),
            _ if held => off.push(format!("{} is held in Clock skew", node.node)),
            Some(_) => {}
            None if !checks_in => undecided.push(format!(
                "{} has clustering off: its row's clock offset is not refreshed",
                node.node
            )),
            None => undecided.push(format!(
                "{} does not report a current clock offset",
                node.node
            )),
        }
    }
    let (validity, summary) = if !off.is_empty() {
        (
            Validity::Invalid,
            format!("{}; at most {limit_ms} ms allowed", off.join("; ")),
        )
    } else if !undecided.is_empty() {
        (Validity::Unknown, undecided.join("; "))
    } else if facts.nodes.is_empty() {
        (Validity::Unknown, "no node".into())
    } else {
        let worst = offsets
            .values()
            .filter_map(|v| v.as_i64())
            .map(i64::abs)
            .max()
            .unwrap_or(0);
        (
            Validity::Valid,
            format!(
                "every node within {worst} ms of PostgreSQL's clock (at most {limit_ms} ms allowed)"
            ),
        )
    };
    CheckerResult {
        name: SYNCHRONIZED_CLOCKS.into(),
        validity,
        summary,
        evidence: json!({ "offset_ms_from_database": offsets, "max_offset_ms": limit_ms }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{healthy, status_of};
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_node_30_s_off_is_invalid_and_named() {
        let mut facts = healthy();
        // node-2 as it lists itself
        status_of(&mut facts, 1).members[1].clock_offset_ms = Some(-30_000);
        let result = synchronized_clocks(&facts, SECOND);
        assert_eq!(result.name, SYNCHRONIZED_CLOCKS);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(
            result.summary.contains("node-2 is -30000 ms off"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_node_held_in_clock_skew_is_invalid() {
        let mut facts = healthy();
        status_of(&mut facts, 0).cluster_status = Some("Clock skew".into());
        assert_eq!(
            synchronized_clocks(&facts, SECOND).validity,
            Validity::Invalid
        );
    }

    #[test]
    fn an_offset_nobody_reports_is_unknown() {
        let mut facts = healthy();
        for i in 0..2 {
            status_of(&mut facts, i).members[0].clock_offset_ms = None;
        }
        assert_eq!(
            synchronized_clocks(&facts, SECOND).validity,
            Validity::Unknown
        );
        // One listing is enough.
        let mut facts = healthy();
        status_of(&mut facts, 0).members[0].clock_offset_ms = None;
        assert_eq!(
            synchronized_clocks(&facts, SECOND).validity,
            Validity::Valid
        );
    }

    #[test]
    fn a_stale_row_does_not_vouch_for_a_clock() {
        // node-2 stopped checking in: its row, in every listing, holds an old offset.
        let mut facts = healthy();
        for i in 0..2 {
            status_of(&mut facts, i).members[1].status = MISSED_CHECK_IN.into();
        }
        let result = synchronized_clocks(&facts, SECOND);
        assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
        assert!(result.summary.contains("node-2"), "{}", result.summary);

        // node-1 restarted with clustering off: its row still reads Online but is not refreshed.
        let mut facts = healthy();
        status_of(&mut facts, 0).cluster_status = None;
        let result = synchronized_clocks(&facts, SECOND);
        assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
        assert!(
            result.summary.contains("node-1 has clustering off"),
            "{}",
            result.summary
        );
    }
}
