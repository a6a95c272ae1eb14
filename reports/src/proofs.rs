//! Which planted fault shows each checker and HA rule able to fail: the page names the test, so
//! a reader can see that a *valid* is worth something. A test in `harness` checks that every
//! test named here exists.

/// Every test named on the page, for the test that keeps this file true.
pub fn all_named_tests() -> impl Iterator<Item = &'static str> {
    PROVEN_BY
        .iter()
        .flat_map(|(_, tests)| tests.iter().copied())
        .chain(CHECKLIST_PROOFS.iter().copied())
}

/// A checker or HA rule, and the tests that plant a fault which turns exactly it invalid
/// (`file: test`; real clusters where the fault needs one, the pure checker otherwise).
pub const PROVEN_BY: &[(&str, &[&str])] = &[
    (
        "lost-writes",
        &[
            "harness/tests/it/mutations.rs: a_deleted_row_is_lost_a_planted_row_phantom_a_stored_refusal_failed_but_applied_and_a_cut_node_stale",
            "harness/tests/it/mutations.rs: a_fault_window_without_load_is_unknown_not_valid",
            "harness/src/checkers/lost_writes/tests.rs: stored_but_not_served_by_one_node_after_settling_is_stale",
        ],
    ),
    (
        "availability",
        &[
            "harness/src/checkers/availability.rs: a_failed_install_in_the_window_is_invalid",
            "harness/tests/it/mutations.rs: a_fault_window_without_load_is_unknown_not_valid",
            "harness/src/checkers/availability.rs: a_window_with_too_few_installs_is_unknown_not_valid",
        ],
    ),
    (
        "cluster-status",
        &["harness/src/checkers/cluster.rs: a_node_not_online_at_the_end_is_invalid"],
    ),
    (
        "builds",
        &[
            "harness/tests/it/mutations.rs: a_replayed_build_transaction_is_a_duplicate",
            "harness/tests/it/reference.rs: a_build_published_twice_fails_the_builders_and_the_run_but_not_the_other_workloads",
            "harness/src/checkers/builds/tests.rs: a_second_transaction_publishing_one_build_is_a_duplicate",
            "harness/src/checkers/builds/tests.rs: a_commit_a_poll_saw_is_lost_when_never_built_though_a_later_one_was",
        ],
    ),
    (
        "same-version",
        &[
            "harness/tests/it/check.rs: nodes_on_another_version_and_a_clock_30_s_off_fail_those_rules_by_name",
        ],
    ),
    (
        "synchronized-clocks",
        &[
            "harness/tests/it/check.rs: nodes_on_another_version_and_a_clock_30_s_off_fail_those_rules_by_name",
        ],
    ),
    (
        "same-secure-key",
        &[
            "harness/tests/it/check.rs: nodes_on_another_key_and_another_config_fail_those_rules_by_name",
            "harness/tests/it/check.rs: a_node_on_a_0644_key_file_fails_the_key_rule_by_name",
        ],
    ),
    (
        "identical-config",
        &[
            "harness/tests/it/check.rs: nodes_on_another_key_and_another_config_fail_those_rules_by_name",
        ],
    ),
    (
        "shared-storage",
        &[
            "harness/tests/it/check_conformance.rs: nodes_on_unshared_directories_and_an_unshared_lock_directory_fail_those_rules_by_name",
        ],
    ),
    (
        "lock-correctness",
        &[
            "harness/tests/it/check_conformance.rs: nodes_on_unshared_directories_and_an_unshared_lock_directory_fail_those_rules_by_name",
        ],
    ),
    (
        "balancer-health-check",
        &[
            "harness/tests/it/check_conformance.rs: a_balancer_without_health_checks_and_a_node_on_sqlite_fail_those_rules_by_name",
        ],
    ),
    (
        "postgresql-not-sqlite",
        &[
            "harness/tests/it/check_conformance.rs: a_balancer_without_health_checks_and_a_node_on_sqlite_fail_those_rules_by_name",
        ],
    ),
    (
        "cluster-membership",
        &["harness/tests/it/check.rs: a_node_restarted_without_its_identity_fails_membership_only"],
    ),
    (
        "status-endpoint-closed",
        &[
            "harness/src/checklist/membership/tests.rs: the_status_endpoint_shown_to_a_non_member_is_invalid_and_named",
        ],
    ),
];

/// The HA checklist as one checker (drills and gates run it before and after): each rule is
/// proven by its own tests above; these break several rules at once on real clusters.
const CHECKLIST_PROOFS: &[&str] = &[
    "harness/tests/it/check.rs: nodes_on_another_key_and_another_config_fail_those_rules_by_name",
    "harness/tests/it/check_conformance.rs: nodes_on_unshared_directories_and_an_unshared_lock_directory_fail_those_rules_by_name",
];

/// The tests that show checker or rule `name` able to fail, or nothing when none is known (the
/// page then says so: such a *valid* is weaker).
pub fn proven_by(name: &str) -> &'static [&'static str] {
    if name.starts_with("ha-checklist") {
        return CHECKLIST_PROOFS;
    }
    PROVEN_BY
        .iter()
        .find(|(checker, _)| *checker == name)
        .map_or(&[], |(_, tests)| tests)
}
