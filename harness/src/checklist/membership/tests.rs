//! The membership rules, each with a broken fact set it must call invalid.

use super::super::fixture::{healthy, member, status_of};
use super::*;

#[test]
fn a_node_another_shows_as_missed_check_in_is_invalid_and_named() {
    let mut facts = healthy();
    status_of(&mut facts, 0).members[1].status = "Missed check-in".into();
    let result = cluster_membership(&facts);
    assert_eq!(result.name, CLUSTER_MEMBERSHIP);
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert!(
        result
            .summary
            .contains("node-1 shows node-2 as Missed check-in"),
        "{}",
        result.summary
    );
}

#[test]
fn a_node_missing_twice_listed_or_refused_is_invalid() {
    let mut facts = healthy();
    status_of(&mut facts, 1).members.pop();
    assert!(
        cluster_membership(&facts)
            .summary
            .contains("node-2 does not list node-2")
    );

    let mut facts = healthy();
    status_of(&mut facts, 0)
        .members
        .push(member("uid-2", "127.0.0.12:4242"));
    let result = cluster_membership(&facts);
    assert_eq!(result.validity, Validity::Invalid);
    assert!(
        result.summary.contains("node-1 lists node-2 2 times"),
        "{}",
        result.summary
    );

    let mut facts = healthy();
    status_of(&mut facts, 0)
        .members
        .push(member("uid-9", "127.0.0.12:4242"));
    let result = cluster_membership(&facts);
    assert!(
        result.summary.contains("127.0.0.12:4242 under 2 ids"),
        "{}",
        result.summary
    );

    let mut facts = healthy();
    let status = status_of(&mut facts, 1);
    status.cluster_status = Some("Config mismatch".into());
    status.serving = false;
    let result = cluster_membership(&facts);
    assert!(
        result
            .summary
            .contains("node-2 is Config mismatch, not serving")
    );
}

#[test]
fn the_status_endpoint_shown_to_a_non_member_is_invalid_and_named() {
    let mut facts = healthy();
    facts.status_endpoint[2].answer = Ok(200);
    let result = status_endpoint_closed(&facts);
    assert_eq!(result.name, STATUS_ENDPOINT_CLOSED);
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert!(result.summary.contains("balancer answered 200"));
    let mut facts = healthy();
    facts.status_endpoint[0].answer = Err("connection refused".into());
    assert_eq!(status_endpoint_closed(&facts).validity, Validity::Unknown);
}

#[test]
fn a_server_down_or_missing_at_the_balancer_is_invalid_and_named() {
    let mut facts = healthy();
    facts.balancer = Some(Ok(vec![
        ("node-1".into(), "UP".into()),
        ("node-2".into(), "DOWN".into()),
    ]));
    let result = balancer_health_check(&facts);
    assert_eq!(result.name, BALANCER_HEALTH_CHECK);
    assert_eq!(result.validity, Validity::Invalid);
    assert!(result.summary.contains("node-2 DOWN"), "{}", result.summary);
    facts.balancer = Some(Ok(vec![("node-1".into(), "UP".into())]));
    assert_eq!(balancer_health_check(&facts).validity, Validity::Invalid);
    facts.balancer = None;
    assert_eq!(balancer_health_check(&facts).validity, Validity::Unknown);
}

#[test]
fn a_drained_node_the_balancer_keeps_up_is_invalid_and_named() {
    let result = balancer_health_check(&healthy());
    assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
    assert!(
        result
            .summary
            .contains("node-1, drained (/__ping__ 503), left rotation"),
        "{}",
        result.summary
    );
    let mut facts = healthy();
    facts.balancer_drain.out_of_rotation_after_s = None;
    facts.balancer_drain.state_while_drained = "UP".into();
    facts.balancer_drain.back_in_rotation_after_s = None;
    let result = balancer_health_check(&facts);
    assert_eq!(result.name, BALANCER_HEALTH_CHECK);
    assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
    assert!(
        result
            .summary
            .contains("node-1's /__ping__ answered 503, yet the balancer kept it UP for 10 s"),
        "{}",
        result.summary
    );
}

#[test]
fn a_node_not_returned_is_invalid_and_a_drain_that_did_not_happen_is_unknown() {
    let mut facts = healthy();
    facts.balancer_drain.back_in_rotation_after_s = None;
    assert_eq!(balancer_health_check(&facts).validity, Validity::Invalid);
    let mut facts = healthy();
    facts.balancer_drain.ping_while_drained = Some(Ok(200));
    assert_eq!(balancer_health_check(&facts).validity, Validity::Unknown);
    let mut facts = healthy();
    facts.balancer_drain.not_run = Some("the target provider runs no command".into());
    let result = balancer_health_check(&facts);
    assert_eq!(result.validity, Validity::Unknown);
    assert!(
        result.summary.contains("target provider"),
        "{}",
        result.summary
    );
}
