//! The cluster as its members and its balancer see it: every node Online in every node's
//! member list, none listed twice, none missing; `/load-balancer/status` refused to a
//! non-member; the balancer's health checks holding every node UP and, seen happen, taking a
//! drained node out of rotation and back.

use std::collections::BTreeMap;

use reports::record::{CheckerResult, Validity};
use serde_json::json;

use super::facts::Facts;

pub const CLUSTER_MEMBERSHIP: &str = "cluster-membership";
pub const STATUS_ENDPOINT_CLOSED: &str = "status-endpoint-closed";
pub const BALANCER_HEALTH_CHECK: &str = "balancer-health-check";

const ONLINE: &str = "Online";

/// Every node Online and serving, listed exactly once and Online by every node; no address
/// listed under two ids; no Online member the harness was not given.
pub fn cluster_membership(facts: &Facts) -> CheckerResult {
    let mut wrong = Vec::new();
    let mut undecided = Vec::new();
    // uid → the name people read
    let names: BTreeMap<&str, &str> = facts
        .nodes
        .iter()
        .filter_map(|n| Some((n.answered()?.node_id.as_str(), n.node.as_str())))
        .collect();
    for node in &facts.nodes {
        let Some(status) = node.answered() else {
            undecided.push(format!("{} did not answer", node.node));
            continue;
        };
        match status.cluster_status.as_deref() {
            None if facts.nodes.len() > 1 => {
                wrong.push(format!("{} has clustering off", node.node));
                continue;
            }
            None => {}
            Some(ONLINE) if status.serving => {}
            Some(word) => wrong.push(format!(
                "{} is {word}{}",
                node.node,
                if status.serving { "" } else { ", not serving" }
            )),
        }
        for (uid, name) in &names {
            let listed: Vec<&str> = status
                .members
                .iter()
                .filter(|m| m.uid == *uid)
                .map(|m| m.status.as_str())
                .collect();
            match listed.as_slice() {
                [] if status.cluster_status.is_some() => {
                    wrong.push(format!("{} does not list {name}", node.node))
                }
                [] | [ONLINE] => {}
                [shown] => wrong.push(format!("{} shows {name} as {shown}", node.node)),
                more => wrong.push(format!("{} lists {name} {} times", node.node, more.len())),
            }
        }
        // address → "uid status" of each member listed there
        let mut by_address: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for member in &status.members {
            by_address
                .entry(member.address.as_str())
                .or_default()
                .push(format!("{} {}", member.uid, member.status));
            if !names.contains_key(member.uid.as_str()) && member.status == ONLINE {
                wrong.push(format!(
                    "{} lists an Online member {} ({}) that is none of the nodes checked",
                    node.node, member.uid, member.address
                ));
            }
        }
        for (address, uids) in by_address.iter().filter(|(_, uids)| uids.len() > 1) {
            wrong.push(format!(
                "{} lists {address} under {} ids ({})",
                node.node,
                uids.len(),
                uids.join(", ")
            ));
        }
    }
    let evidence = json!({
        "listings": facts.nodes.iter().map(|n| json!({
            "node": n.node,
            "node_id": n.answered().map(|s| s.node_id.clone()),
            "cluster_status": n.answered().and_then(|s| s.cluster_status.clone()),
            "members": n.answered().map(|s| s.members.clone()).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    });
    let (validity, summary) = if !wrong.is_empty() {
        (Validity::Invalid, wrong.join("; "))
    } else if !undecided.is_empty() {
        (Validity::Unknown, undecided.join("; "))
    } else if facts.nodes.is_empty() {
        (Validity::Unknown, "no node".into())
    } else {
        (
            Validity::Valid,
            format!(
                "all {} nodes Online, each listed once by every node",
                facts.nodes.len()
            ),
        )
    };
    CheckerResult {
        name: CLUSTER_MEMBERSHIP.into(),
        validity,
        summary,
        evidence,
    }
}

/// `/load-balancer/status` refuses the harness (a non-member): 403 from every node and through
/// the balancer. A single node without clustering (404) has nothing to show.
pub fn status_endpoint_closed(facts: &Facts) -> CheckerResult {
    let clustered = facts
        .nodes
        .iter()
        .any(|n| n.answered().is_some_and(|s| s.cluster_status.is_some()));
    let mut open = Vec::new();
    let mut undecided = Vec::new();
    for asked in &facts.status_endpoint {
        match asked.answer {
            Ok(403) => {}
            Ok(404) if !clustered => {}
            Ok(code) if (200..300).contains(&code) => {
                open.push(format!("{} answered {code}", asked.asked))
            }
            Ok(code) => undecided.push(format!("{} answered {code}", asked.asked)),
            Err(ref error) => undecided.push(format!("{}: {error}", asked.asked)),
        }
    }
    let (validity, summary) = if !open.is_empty() {
        (
            Validity::Invalid,
            format!(
                "/load-balancer/status is shown to a non-member: {}",
                open.join("; ")
            ),
        )
    } else if !undecided.is_empty() {
        (Validity::Unknown, undecided.join("; "))
    } else if facts.status_endpoint.is_empty() {
        (Validity::Unknown, "not asked".into())
    } else {
        (
            Validity::Valid,
            format!(
                "refused to a non-member by {}",
                facts
                    .status_endpoint
                    .iter()
                    .map(|a| a.asked.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    CheckerResult {
        name: STATUS_ENDPOINT_CLOSED.into(),
        validity,
        summary,
        evidence: json!({ "answers": facts.status_endpoint }),
    }
}

/// The balancer's `/__ping__` health checks hold one server per node, every one UP; and, seen
/// happen, a node whose `/__ping__` fails (drained: it still runs and answers) leaves
/// rotation, then returns once it is online again.
pub fn balancer_health_check(facts: &Facts) -> CheckerResult {
    let drain = &facts.balancer_drain;
    let (validity, summary, states) = match &facts.balancer {
        None => (
            Validity::Unknown,
            "the provider cannot read the balancer's view of its servers".to_string(),
            Vec::new(),
        ),
        Some(Err(error)) => (
            Validity::Unknown,
            format!("the balancer's stats could not be read: {error}"),
            Vec::new(),
        ),
        Some(Ok(states)) => {
            let down: Vec<String> = states
                .iter()
                .filter(|(_, state)| state != "UP")
                .map(|(server, state)| format!("{server} {state}"))
                .collect();
            if !down.is_empty() {
                (
                    Validity::Invalid,
                    format!("servers not UP: {}", down.join(", ")),
                    states.clone(),
                )
            } else if states.len() != facts.nodes.len() {
                (
                    Validity::Invalid,
                    format!(
                        "the balancer has {} server(s) for {} node(s)",
                        states.len(),
                        facts.nodes.len()
                    ),
                    states.clone(),
                )
            } else {
                let (validity, seen) = judge_drain(facts);
                (
                    validity,
                    format!("all {} servers UP; {seen}", states.len()),
                    states.clone(),
                )
            }
        }
    };
    CheckerResult {
        name: BALANCER_HEALTH_CHECK.into(),
        validity,
        summary,
        evidence: json!({
            "servers": states.iter().map(|(s, st)| json!({"server": s, "state": st})).collect::<Vec<_>>(),
            "drain": drain,
        }),
    }
}

/// What the drained node showed of the balancer's health checks.
fn judge_drain(facts: &Facts) -> (Validity, String) {
    let drain = &facts.balancer_drain;
    let node = &drain.node;
    if let Some(why) = &drain.not_run {
        return (
            Validity::Unknown,
            format!("no node was drained to see the balancer take it out: {why}"),
        );
    }
    let failed_ping = match &drain.ping_while_drained {
        Some(Ok(code)) if *code != 200 => *code,
        other => {
            let offline = match &drain.offline {
                Some(Err(error)) => format!(" (`pkgnode offline`: {error})"),
                _ => String::new(),
            };
            return (
                Validity::Unknown,
                format!(
                    "{node}'s /__ping__ did not fail while it was drained ({}){offline}",
                    match other {
                        Some(Ok(code)) => format!("HTTP {code}"),
                        Some(Err(error)) => error.clone(),
                        None => "not asked".into(),
                    }
                ),
            );
        }
    };
    let Some(out_after) = drain.out_of_rotation_after_s else {
        return (
            Validity::Invalid,
            format!(
                "{node}'s /__ping__ answered {failed_ping}, yet the balancer kept it {} for {:.0} s: \
                 it does not take a node with a failing /__ping__ out of rotation",
                drain.state_while_drained, drain.within_s
            ),
        );
    };
    match (&drain.online, drain.back_in_rotation_after_s) {
        (_, Some(back_after)) => (
            Validity::Valid,
            format!(
                "{node}, drained (/__ping__ {failed_ping}), left rotation after {out_after:.1} s \
                 ({}) and returned {back_after:.1} s after it was online again",
                drain.state_while_drained
            ),
        ),
        (Some(Ok(_)), None) => (
            Validity::Invalid,
            format!(
                "{node} left rotation when drained, but the balancer did not return it within \
                 {:.0} s of its coming online again",
                drain.within_s
            ),
        ),
        (online, None) => (
            Validity::Unknown,
            format!(
                "{node} left rotation when drained, but could not be brought online again: {}",
                match online {
                    Some(Err(error)) => error.clone(),
                    _ => "`pkgnode online` was not run".into(),
                }
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
