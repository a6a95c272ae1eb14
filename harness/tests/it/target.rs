//! `harness scenario --target URL --read-only` against a pre-seeded node on loopback: the
//! corpus is discovered from what the node serves, every install is of a served package, and
//! nothing is uploaded. The negative control assumes a corpus the node does not serve
//! (`--no-publish`) and fails.

use std::time::Instant;

use harness::infra::Infra;
use harness::infra::local::{self, LocalOptions};
use scenarios::corpus::{Corpus, CorpusConfig};
use scenarios::daily_installs::{UploadTokens, upload_corpus};

use crate::support::{client, get, harness_command, pkgnode};

/// What the node lists: each repo's transactions (a new upload adds one).
fn transactions(base: &str) -> (String, String) {
    let client = client();
    let (status_py, py) = get(&client, &format!("{base}/__api__/repos/pypi/transactions"));
    let (status_r, r) = get(&client, &format!("{base}/__api__/repos/cran/transactions"));
    assert_eq!((status_py, status_r), (200, 200), "{py} {r}");
    (py, r)
}

#[test]
fn read_only_installs_only_what_a_pre_seeded_node_serves_and_uploads_nothing() {
    let began = Instant::now();
    let mut cluster = local::start(LocalOptions {
        nodes: 1,
        pkgnode_bin: pkgnode(),
        reason: "integration test".into(),
        ..LocalOptions::default()
    })
    .expect("local cluster starts");
    eprintln!("one-node cluster up in {:?}", began.elapsed());
    let endpoints = cluster.endpoints().clone();
    // Seeded with a corpus other than the harness's default one (other seed, 10 packages).
    let seeded = Corpus::generate(&CorpusConfig {
        packages: 10,
        size_median_bytes: 8_000,
        size_max_bytes: 60_000,
        seed: 99,
        ..CorpusConfig::default()
    })
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(upload_corpus(
            &reqwest::Client::new(),
            &endpoints.base_url,
            UploadTokens {
                python: &endpoints.pypi_token,
                r: &endpoints.cran_token,
            },
            &endpoints.pypi_source,
            &endpoints.cran_source,
            &seeded,
        ))
        .expect("seeding uploads");
    let before = transactions(&endpoints.base_url);

    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("read-only");
    let load = |out: &std::path::Path, mode: &str| {
        harness_command(
            tmp.path(),
            out,
            &[
                "scenario",
                "daily-installs",
                "--target",
                &endpoints.base_url,
                mode,
                "--quiet",
                "--installs-per-day",
                "400000",
                "--duration",
                "8s",
                "--threshold",
                "error_rate<=0",
                "--threshold",
                "rate_ratio>=0.95",
            ],
        )
        .output()
        .unwrap()
    };
    let result = load(&out, "--read-only");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(result.status.code(), Some(0), "{log}");
    let record = reports::store::read_run_dir(&out).unwrap();
    // It found exactly the seeded packages (no wheel-less project, nothing else)…
    assert_eq!(
        record.meta.config["served_packages"],
        serde_json::json!({ "python": seeded.python().len(), "r": seeded.r().len() }),
        "{log}"
    );
    assert_eq!(record.meta.config["corpus_source"], "discover");
    assert_eq!(record.meta.config["uploaded"]["python_files"], 0);
    // …installed them without one failure (an unserved package would be a 404)…
    let installs = &record.metrics.kinds["install"];
    assert!(installs.ok() > 20, "{} installs", installs.ok());
    assert_eq!(installs.err(), 0, "{:?}", installs.errors());
    for kind in ["pypi_simple", "pypi_file", "cran_packages", "cran_tarball"] {
        assert!(record.metrics.kinds[kind].ok() > 0, "no {kind}");
    }
    // …and wrote nothing: the node lists the same transactions as before.
    assert_eq!(transactions(&endpoints.base_url), before);

    // Negative control: the generated corpus, which the node does not serve, assumed served:
    // the harness refuses to load a target that does not serve what it would install.
    let wrong = out_dir.path().join("not-served");
    let result = load(&wrong, "--no-publish");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("did not show the published corpus"),
        "{stderr}"
    );
    assert_eq!(transactions(&endpoints.base_url), before);

    cluster.teardown().unwrap();
}
