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
