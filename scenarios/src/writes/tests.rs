//! Writer configuration, artifacts and outcome classification.

use super::*;

#[test]
fn invalid_config_names_every_problem() {
    let config = WriterConfig {
        writes_per_s: -1.0,
        tag: "Bad-Tag".into(),
        max_in_flight: 0,
        ..WriterConfig::default()
    };
    let Err(ScenarioError::InvalidConfig { problems, .. }) = config.validate() else {
        panic!("accepted an invalid writer config");
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn artifacts_are_unique_per_sequence_and_alternate_formats() {
    let config = WriterConfig {
        tag: "t1".into(),
        ..WriterConfig::default()
    };
    let (f0, n0, a0) = artifact(&config, 0).unwrap();
    let (f1, n1, a1) = artifact(&config, 1).unwrap();
    let (_, n2, a2) = artifact(&config, 2).unwrap();
    assert_eq!((f0, f1), (WriteFormat::Python, WriteFormat::R));
    assert_eq!(n0, "ledger-t1-0");
    assert_eq!(n1, "ledger.t1.1");
    assert_eq!(a1.file_name, "ledger.t1.1_1.0.tar.gz");
    assert_ne!(n0, n2);
    assert_ne!(a0.sha256_hex(), a2.sha256_hex());
}

#[test]
fn gateway_errors_are_unknown_and_refusals_failed() {
    assert_eq!(classify(200, ""), WriteOutcome::Ok);
    assert_eq!(classify(201, ""), WriteOutcome::Ok);
    assert_eq!(classify(502, ""), WriteOutcome::Unknown);
    assert_eq!(classify(504, ""), WriteOutcome::Unknown);
    assert_eq!(classify(503, "database unavailable"), WriteOutcome::Failed);
    assert_eq!(classify(400, ""), WriteOutcome::Failed);
    assert_eq!(classify(500, ""), WriteOutcome::Failed);
    assert_eq!(
        classify(
            503,
            "the upload may or may not be stored: send the same file again"
        ),
        WriteOutcome::Unknown
    );
}
