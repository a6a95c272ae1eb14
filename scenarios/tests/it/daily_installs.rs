//! The daily-installs scenario end to end against the fake server: the corpus is uploaded
//! through the upload API, goose users install on schedule, and every request is accounted for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::metrics::Recorder;
use scenarios::ScenarioError;
use scenarios::arrival::{ArrivalPlan, DiurnalCurve, Schedule};
use scenarios::corpus::{Corpus, CorpusConfig, Ecosystem};
use scenarios::daily_installs::{self, InstallContext, InstallTarget, UploadTokens, upload_corpus};

use crate::fake_server::{self, Faults};

/// goose keeps process-wide state (its log, Ctrl-C handler, kill switch): one run at a time.
static GOOSE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOKEN: &str = "secret-token";

fn corpus() -> Arc<Corpus> {
    Arc::new(
        Corpus::generate(&CorpusConfig {
            packages: 16,
            size_median_bytes: 6_000,
            size_sigma: 0.5,
            size_max_bytes: 40_000,
            seed: 7,
            ..CorpusConfig::default()
        })
        .unwrap(),
    )
}

/// A flat plan of about `rate_per_s` installs a second for `seconds`.
fn plan(rate_per_s: f64, seconds: u64, seed: u64) -> ArrivalPlan {
    ArrivalPlan {
        installs_per_day: rate_per_s * 86_400.0,
        curve: DiurnalCurve::flat(),
        compression: 1.0,
        window_start_hour: 0.0,
        window_hours: seconds as f64 / 3600.0,
        seed,
    }
}

fn context(base_url: &str, corpus: Arc<Corpus>, schedule: Arc<Schedule>) -> InstallContext {
    let start = Instant::now() + Duration::from_millis(700);
    let recorder = Arc::new(Recorder::new(start, Duration::from_secs(1)));
    let target = InstallTarget {
        base_url: base_url.to_string(),
        pypi_repo: "pypi".to_string(),
        cran_repo: "cran".to_string(),
    };
    InstallContext::new(target, corpus, schedule, recorder)
}

/// Requests an all-successful run makes: (simple pages, wheels, PACKAGES.gz, tarballs).
fn expected_requests(corpus: &Corpus, schedule: &Schedule) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for arrival in schedule.arrivals() {
        let closure = corpus.install_closure(arrival.package).len();
        match arrival.ecosystem() {
            Ecosystem::Python => {
                counts.0 += closure;
                counts.1 += closure;
            }
            Ecosystem::R => {
                counts.2 += 1;
                counts.3 += closure;
            }
        }
    }
    counts
}

async fn upload(server: &fake_server::FakeServer, corpus: &Corpus) -> daily_installs::UploadStats {
    let client = reqwest::Client::new();
    upload_corpus(
        &client,
        &server.base_url,
        UploadTokens {
            python: TOKEN,
            r: TOKEN,
        },
        "local-python",
        "local",
        corpus,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_corpus_sends_every_artifact_once_and_is_idempotent() {
    let server = fake_server::start(TOKEN).await;
    let corpus = corpus();
    let stats = upload(&server, &corpus).await;
    let python_versions: usize = corpus.python().iter().map(|p| p.versions.len()).sum();
    let r_versions: usize = corpus.r().iter().map(|p| p.versions.len()).sum();
    assert_eq!(stats.python_files, 2 * python_versions);
    assert_eq!(stats.r_files, r_versions);
    {
        let inner = server.shared.inner.lock().unwrap();
        assert_eq!(inner.files.len(), stats.files());
        assert_eq!(
            stats.bytes,
            inner.files.values().map(|f| f.len() as u64).sum::<u64>()
        );
        assert_eq!(inner.python.len(), corpus.python().len());
        assert_eq!(inner.cran.len(), corpus.r().len());
        let wheel = inner
            .uploads
            .iter()
            .find(|u| u.file_name.ends_with(".whl"))
            .unwrap();
        assert_eq!(wheel.fields["filetype"], ["bdist_wheel"]);
        assert_eq!(wheel.fields["pyversion"], ["py3"]);
        assert_eq!(wheel.fields["protocol_version"], ["1"]);
        let sdist = inner
            .uploads
            .iter()
            .find(|u| u.file_name.ends_with(".tar.gz") && u.fields.contains_key("name"))
            .unwrap();
        assert_eq!(sdist.fields["filetype"], ["sdist"]);
        assert_eq!(sdist.fields["pyversion"], ["source"]);
    }
    // Same bytes again: the server answers 200 and nothing changes.
    let again = upload(&server, &corpus).await;
    assert_eq!(again.files(), stats.files());
    assert_eq!(
        server.shared.inner.lock().unwrap().files.len(),
        stats.files()
    );

    let client = reqwest::Client::new();
    let err = upload_corpus(
        &client,
        &server.base_url,
        UploadTokens {
            python: "wrong",
            r: "wrong",
        },
        "p",
        "r",
        &corpus,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ScenarioError::UploadRejected { status: 401, .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_installs_every_arrival_with_the_expected_requests() {
    let _goose = GOOSE.lock().await;
    let server = fake_server::start(TOKEN).await;
    let corpus = corpus();
    upload(&server, &corpus).await;
    let schedule = Arc::new(plan(20.0, 3, 11).schedule(&corpus));
    let n = schedule.len();
    assert!(n > 20, "only {n} arrivals");
    let ctx = Arc::new(context(
        &server.base_url,
        Arc::clone(&corpus),
        Arc::clone(&schedule),
    ));
    let recorder = Arc::clone(&ctx.recorder);
    let packages_cache = Arc::clone(&ctx.packages);

    daily_installs::execute(ctx, 12, Duration::from_secs(5))
        .await
        .unwrap();

    assert_eq!(schedule.remaining(), 0);
    let (simple, wheels, packages, tarballs) = expected_requests(&corpus, &schedule);
    let live = recorder.snapshot();
    let kind = |k: &str| {
        live.kinds
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("no {k} kind"))
    };
    let install = kind("install");
    assert_eq!(
        (install.scheduled, install.ok, install.err),
        (n as u64, n as u64, 0)
    );
    assert!(install.late < n as u64 / 2, "{} of {n} late", install.late);
    for (name, expected) in [
        ("pypi_simple", simple),
        ("pypi_file", wheels),
        ("cran_packages", packages),
        ("cran_tarball", tarballs),
    ] {
        let k = kind(name);
        assert_eq!((k.ok, k.err), (expected as u64, 0), "{name}");
        assert_eq!(k.scheduled, expected as u64, "{name}");
    }
    assert_eq!(server.shared.hits("simple"), simple);
    // Every project page was asked for and answered as PEP 691 JSON, as pip and uv ask.
    assert_eq!(server.shared.hits("simple_json"), simple);
    assert_eq!(server.shared.hits("file"), wheels);
    assert_eq!(server.shared.hits("packages"), packages);
    assert_eq!(server.shared.hits("tarball"), tarballs);
    // Every R install downloaded PACKAGES.gz, but the unchanged index was parsed once (twice
    // at most when the first installs raced for it).
    assert!(packages > 1, "only {packages} R installs");
    assert!(
        (1..=2).contains(&packages_cache.parses()),
        "{} parses",
        packages_cache.parses()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_recorded_by_kind() {
    let _goose = GOOSE.lock().await;
    let server = fake_server::start(TOKEN).await;
    let corpus = corpus();
    upload(&server, &corpus).await;
    let most_popular = corpus.python()[0].normalized();
    server.shared.set_faults(Faults {
        corrupt_wheels_of: Some(most_popular),
        packages_status: Some(503),
        html_only: false,
        ..Faults::default()
    });
    let schedule = Arc::new(plan(15.0, 2, 5).schedule(&corpus));
    let ctx = Arc::new(context(
        &server.base_url,
        Arc::clone(&corpus),
        Arc::clone(&schedule),
    ));
    let recorder = Arc::clone(&ctx.recorder);

    daily_installs::execute(ctx, 8, Duration::from_secs(4))
        .await
        .unwrap();

    let mut expected = BTreeMap::new();
    for arrival in schedule.arrivals() {
        let kind = match arrival.ecosystem() {
            Ecosystem::R => Some("http_503"),
            Ecosystem::Python => corpus
                .install_closure(arrival.package)
                .iter()
                .any(|p| p.index == 0)
                .then_some("hash_mismatch"),
        };
        if let Some(kind) = kind {
            *expected.entry(kind.to_string()).or_insert(0u64) += 1;
        }
    }
    assert!(
        expected.len() == 2,
        "the schedule should hit both faults: {expected:?}"
    );
    let finished = recorder.finish();
    let install = &finished.kinds["install"];
    assert_eq!(install.errors(), expected);
    assert_eq!(install.ok() + install.err(), schedule.len() as u64);
    assert_eq!(
        finished.kinds["cran_packages"].errors().get("http_503"),
        expected.get("http_503")
    );
    assert_eq!(
        finished.kinds["pypi_file"].errors().get("hash_mismatch"),
        expected.get("hash_mismatch")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_only_html_pages_still_serves_pip_installs() {
    let _goose = GOOSE.lock().await;
    let server = fake_server::start(TOKEN).await;
    let corpus = corpus();
    upload(&server, &corpus).await;
    server.shared.set_faults(Faults {
        html_only: true,
        ..Faults::default()
    });
    let schedule = Arc::new(plan(10.0, 2, 3).schedule(&corpus));
    let ctx = Arc::new(context(
        &server.base_url,
        Arc::clone(&corpus),
        Arc::clone(&schedule),
    ));
    let recorder = Arc::clone(&ctx.recorder);
    daily_installs::execute(ctx, 8, Duration::from_secs(3))
        .await
        .unwrap();
    let (simple, ..) = expected_requests(&corpus, &schedule);
    assert!(simple > 0, "the schedule has no pip install");
    assert_eq!(server.shared.hits("simple"), simple);
    assert_eq!(server.shared.hits("simple_json"), 0);
    let install = &recorder.finish().kinds["install"];
    assert_eq!(
        (install.ok(), install.err()),
        (schedule.len() as u64, 0),
        "{:?}",
        install.errors()
    );
}

#[tokio::test]
async fn execute_refuses_an_empty_run() {
    let corpus = corpus();
    let schedule = Arc::new(plan(1.0, 1, 1).schedule(&corpus));
    let ctx = Arc::new(context("http://127.0.0.1:9", corpus, schedule));
    let err = daily_installs::execute(ctx, 0, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScenarioError::EmptyRun { users: 0, .. }),
        "{err}"
    );
}
