//! The report names, for each checker and HA rule, the test whose planted fault turns it
//! invalid (`reports::proofs`): every test named there exists, and every checker the harness
//! runs has at least one.

use std::path::Path;

#[test]
fn every_test_the_page_names_as_a_proof_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for named in reports::proofs::all_named_tests() {
        let (file, test) = named
            .split_once(": ")
            .unwrap_or_else(|| panic!("{named:?} is not `file: test`"));
        let source = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{named}: cannot read {file}: {e}"));
        assert!(
            source.contains(&format!("fn {test}(")),
            "{named}: no test `{test}` in {file}"
        );
    }
}

#[test]
fn every_checker_and_rule_has_a_proof() {
    use harness::checkers::CheckerKind;
    let checkers = [
        CheckerKind::LostWrites,
        CheckerKind::Availability,
        CheckerKind::ClusterStatus,
        CheckerKind::Builds,
    ];
    for kind in checkers {
        assert!(
            !reports::proofs::proven_by(kind.name()).is_empty(),
            "{} has no planted fault named",
            kind.name()
        );
    }
    use harness::checklist::{backend, clocks, identity, locks, membership, storage};
    for rule in [
        identity::SAME_VERSION,
        identity::SAME_SECURE_KEY,
        identity::IDENTICAL_CONFIG,
        storage::SHARED_STORAGE,
        membership::CLUSTER_MEMBERSHIP,
        membership::STATUS_ENDPOINT_CLOSED,
        membership::BALANCER_HEALTH_CHECK,
        locks::LOCK_CORRECTNESS,
        clocks::SYNCHRONIZED_CLOCKS,
        backend::POSTGRESQL,
    ] {
        assert!(
            !reports::proofs::proven_by(rule).is_empty(),
            "{rule} has no planted fault named"
        );
    }
}
