//! Nemesis schedules: validation names every problem.

use super::*;

fn at(fault: Fault, at_s: u64, hold_s: u64) -> ScheduledFault {
    ScheduledFault {
        fault,
        at: Duration::from_secs(at_s),
        hold: Duration::from_secs(hold_s),
    }
}

#[test]
fn an_empty_schedule_is_valid() {
    assert!(
        NemesisPlan::none()
            .validate(2, Duration::from_secs(10))
            .is_empty()
    );
}

#[test]
fn overlapping_late_and_out_of_range_faults_are_all_named() {
    let plan = NemesisPlan {
        faults: vec![
            at(Fault::KillNode { node: 5 }, 10, 20),
            at(Fault::KillStandby, 15, 5),
            at(Fault::PauseNode { node: 0 }, 40, 30),
        ],
        ..NemesisPlan::none()
    };
    let problems = plan.validate(2, Duration::from_secs(60));
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("node 6"), "{problems:?}");
    assert!(
        problems[1].contains("before fault 1 is healed"),
        "{problems:?}"
    );
    assert!(problems[2].contains("after the run ends"), "{problems:?}");
}

#[test]
fn a_fault_due_before_the_cluster_ran_quiet_waits_until_it_has() {
    let start = Instant::now();
    let at = Duration::from_secs(20);
    // The first fault, or one whose predecessor recovered in time: on schedule.
    assert_eq!(begins_at(start, at, None), start + at);
    let early = start + Duration::from_secs(10);
    assert_eq!(begins_at(start, at, Some(early)), start + at);
    // The fault before it recovered at 19 s (or after its schedule, at 25 s): the cluster
    // first runs recovered for QUIET.
    let late = start + Duration::from_secs(19);
    assert_eq!(begins_at(start, at, Some(late)), late + QUIET);
    let later = start + Duration::from_secs(25);
    assert_eq!(begins_at(start, at, Some(later)), later + QUIET);
}
