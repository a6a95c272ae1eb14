//! The lost-writes checker against a real cluster's database: an acknowledged upload whose row
//! is deleted behind the nodes' back is *lost* although the nodes may still list it, a row
//! planted with no upload is *phantom*, and a stored upload the ledger records as a definite
//! failure is *failed-but-applied*. The final reads are the library's own
//! (`run::ground_truth`), the database is read through `Infra::query_primary`.

use std::time::{Duration, Instant};

use harness::infra::local::{self, LocalOptions};
use harness::infra::{Infra, Member, PackageStorage};
use reports::record::Validity;
use scenarios::writes::{self, WriteFormat, WriteOutcome, WriterConfig};

use crate::support::pkgnode;

#[test]
fn a_deleted_row_is_lost_a_planted_row_phantom_and_a_stored_refusal_failed_but_applied() {
    let cluster = local::start(LocalOptions {
        nodes: 2,
        pkgnode_bin: pkgnode(),
        synchronous: true,
        // Which store holds the bytes does not matter here: no S3 server needed.
        package_storage: PackageStorage::SharedDirectory,
        reason: "ground truth test".into(),
        ..LocalOptions::default()
    })
    .expect("local cluster starts");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    let tag = format!("gt{}", std::process::id());
    let config = WriterConfig {
        writes_per_s: 4.0,
        duration: Duration::from_secs(2),
        tag: tag.clone(),
        ..WriterConfig::default()
    };
    let target = cluster.endpoints().write_target();
    let mut ledger = runtime
        .block_on(writes::run_writer(
            &client,
            &target,
            &config,
            Instant::now(),
        ))
        .expect("the writer runs");
    let acknowledged: Vec<_> = ledger
        .iter()
        .filter(|e| e.outcome == WriteOutcome::Ok && e.format == WriteFormat::Python)
        .collect();
    assert!(acknowledged.len() >= 3, "{ledger:#?}");
    let (victim, model, refused) = (
        acknowledged[0].clone(),
        acknowledged[1].clone(),
        acknowledged[2].seq,
    );

    // Untouched, every upload is stable.
    let check = |ledger: &[scenarios::writes::LedgerEntry], settle_s: u64| {
        runtime.block_on(harness::run::ground_truth::check_lost_writes(
            &cluster,
            &client,
            ledger,
            &tag,
            Duration::from_secs(settle_s),
            &[],
        ))
    };
    let clean = check(&ledger, 5);
    assert_eq!(
        clean.validity,
        Validity::Valid,
        "{}: {:#}",
        clean.summary,
        clean.evidence
    );
    assert_eq!(clean.evidence["database"]["read"], "rows");

    // The history says the server refused this one with a 500; the database holds it.
    let entry = ledger.iter_mut().find(|e| e.seq == refused).unwrap();
    entry.outcome = WriteOutcome::Failed;
    entry.status = Some(500);
    cluster
        .psql(
            &Member::DatabasePrimary,
            &format!(
                "DELETE FROM download_counts WHERE package_id IN \
                 (SELECT id FROM packages WHERE filename = '{0}'); \
                 DELETE FROM packages WHERE filename = '{0}'",
                victim.file_name
            ),
        )
        .expect("the row is deleted");
    let planted = format!("ledger_{tag}_999-1.0-py3-none-any.whl");
    cluster
        .psql(
            &Member::DatabasePrimary,
            &format!(
                "INSERT INTO packages (source_id, name, normalized, version, filename, \
                 file_kind, sha256, md5, size_bytes, metadata, added_tx) \
                 SELECT source_id, 'ledger-{tag}-999', 'ledger-{tag}-999', version, '{planted}', \
                 file_kind, sha256, md5, size_bytes, metadata, added_tx \
                 FROM packages WHERE filename = '{}'",
                model.file_name
            ),
        )
        .expect("the row is planted");

    let result = check(&ledger, 2);
    assert_eq!(
        result.validity,
        Validity::Invalid,
        "{}: {:#}",
        result.summary,
        result.evidence
    );
    let counts = &result.evidence["counts"];
    assert_eq!(counts["lost"], 1, "{:#}", result.evidence);
    assert_eq!(counts["phantom"], 1, "{:#}", result.evidence);
    assert_eq!(counts["failed-but-applied"], 1, "{:#}", result.evidence);
    let bad = result.evidence["bad_entries"]
        .as_array()
        .expect("bad entries");
    let lost = bad
        .iter()
        .find(|e| e["state"] == "lost")
        .expect("the lost entry is named");
    assert_eq!(lost["file"], victim.file_name.as_str());
    assert_eq!(lost["database"]["stored"], false);
    assert_eq!(lost["reads"].as_array().map(Vec::len), Some(2), "{lost:#}");
    let phantom = bad
        .iter()
        .find(|e| e["state"] == "phantom")
        .expect("the phantom row is named");
    assert_eq!(phantom["file"], planted.as_str());
    let applied = bad
        .iter()
        .find(|e| e["state"] == "failed-but-applied")
        .expect("the failed-but-applied entry is named");
    assert_eq!(applied["seq"], refused);
    assert_eq!(applied["database"]["stored"], true);

    // The builds checker's publications come from the same database: no Git build ran here.
    let publications =
        harness::run::git_builders::read_publications(&cluster).expect("transactions are read");
    assert!(publications.is_empty(), "{publications:?}");
}
