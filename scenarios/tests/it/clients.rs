//! The real clients against the uploaded corpus: pip resolves `Requires-Dist` through the
//! PEP 503 pages and picks the wheel of its own CPython among several platform tags, and R's
//! `install.packages` resolves `Imports:` through `PACKAGES.gz`, so the corpus's artifacts and
//! dependency metadata are proven installable end to end.

use std::process::Command;
use std::sync::Arc;

use scenarios::corpus::{Corpus, CorpusConfig, Ecosystem, PkgId, module_name};
use scenarios::daily_installs::{SeedProgress, UploadTokens, upload_corpus, upload_corpus_counted};

use crate::fake_server;

fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn seeded_server() -> (fake_server::FakeServer, Arc<Corpus>) {
    let corpus = Arc::new(
        Corpus::generate(&CorpusConfig {
            packages: 24,
            size_median_bytes: 4_000,
            size_sigma: 0.3,
            size_max_bytes: 20_000,
            seed: 3,
            ..CorpusConfig::default()
        })
        .unwrap(),
    );
    let server = fake_server::start("t").await;
    let progress = SeedProgress::default();
    let stats = upload_corpus_counted(
        &reqwest::Client::new(),
        &server.base_url,
        UploadTokens {
            python: "t",
            r: "t",
        },
        ("py", "r"),
        &corpus,
        &progress,
    )
    .await
    .unwrap();
    // The progress counted every file of the corpus, as it landed.
    let (done, total, bytes) = progress.counts();
    assert_eq!(
        (done, total, bytes),
        (stats.files() as u64, stats.files() as u64, stats.bytes)
    );
    assert_eq!(progress.eta(), Some(std::time::Duration::ZERO));
    (server, corpus)
}

/// The package of `ecosystem` with the largest install closure.
fn deepest(corpus: &Corpus, ecosystem: Ecosystem) -> PkgId {
    corpus
        .ids()
        .filter(|id| id.ecosystem == ecosystem)
        .max_by_key(|id| corpus.install_closure(*id).len())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_installs_a_package_with_its_dependencies() {
    assert!(
        available("python3", &["-m", "pip", "--version"]),
        "python3 -m pip is not available: run .ci/install.sh"
    );
    let (server, corpus) = seeded_server().await;
    let id = deepest(&corpus, Ecosystem::Python);
    let closure = corpus.install_closure(id);
    assert!(closure.len() > 1, "no package with dependencies");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("site");
    let index = format!("{}/pypi/latest/simple/", server.base_url);
    let name = corpus.name(id).to_string();
    let out = tokio::task::spawn_blocking({
        let target = target.clone();
        move || {
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                ])
                .args(["--quiet", "--index-url", &index, "--target"])
                .arg(&target)
                .arg(&name)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "pip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pkg in closure {
        let module = module_name(corpus.name(pkg));
        assert!(
            target.join(&module).join("__init__.py").exists(),
            "{module} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_installs_a_package_with_its_imports() {
    assert!(
        available("Rscript", &["--version"]),
        "Rscript is not available: run .ci/install.sh"
    );
    let (server, corpus) = seeded_server().await;
    // The fake index's PACKAGES.rds has no Imports column: R must read PACKAGES.gz here.
    server.shared.set_faults(fake_server::Faults {
        no_packages_rds: true,
        ..fake_server::Faults::default()
    });
    let id = deepest(&corpus, Ecosystem::R);
    let closure = corpus.install_closure(id);
    assert!(closure.len() > 1, "no package with imports");
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let script = format!(
        "options(warn = 2); install.packages('{name}', repos = '{base}/cran/latest', \
         lib = '{lib}', type = 'source', quiet = TRUE); \
         library('{name}', lib.loc = '{lib}', character.only = TRUE); cat(hello_{name}())",
        name = corpus.name(id),
        base = server.base_url,
        lib = lib.display(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("Rscript")
            .args(["-e", &script])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "R: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("hello from {}", corpus.name(id)))
    );
    for pkg in closure {
        let name = corpus.name(pkg);
        assert!(
            lib.join(name).join("DESCRIPTION").exists(),
            "{name} not installed"
        );
    }
}

/// `pip download --no-deps` of `name` from the server into a fresh dir; extra args pick the
/// target interpreter and platform. Returns the one file pip chose.
fn pip_download(index: &str, name: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-cache-dir",
            "--disable-pip-version-check",
        ])
        .args(["--quiet", "--no-deps", "--index-url", index, "--dest"])
        .arg(dir.path())
        .args(extra)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip download: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_picks_the_wheel_of_its_python_among_platform_tags() {
    assert!(
        available("python3", &["-m", "pip", "--version"]),
        "python3 -m pip is not available: run .ci/install.sh"
    );
    let corpus = Arc::new(
        Corpus::generate(&CorpusConfig {
            packages: 3,
            r_share: 0.0,
            size_median_bytes: 4_000,
            size_sigma: 0.0,
            platform_wheel_share: 1.0,
            seed: 9,
            ..CorpusConfig::default()
        })
        .unwrap(),
    );
    let pkg = &corpus.python()[0];
    assert_eq!(
        pkg.wheel_pythons.len(),
        scenarios::corpus::WHEEL_PYTHONS.len()
    );
    let server = fake_server::start("t").await;
    upload_corpus(
        &reqwest::Client::new(),
        &server.base_url,
        UploadTokens {
            python: "t",
            r: "t",
        },
        "py",
        "r",
        &corpus,
    )
    .await
    .unwrap();
    let index = format!("{}/pypi/latest/simple/", server.base_url);
    let name = pkg.name.clone();
    let version = pkg.latest().version.clone();
    let (native, py39, py313) = tokio::task::spawn_blocking(move || {
        let native = pip_download(&index, &name, &["--only-binary=:all:"]);
        // Another interpreter and the platform the wheels are built for: pip must switch tags.
        let other = |python: &str| {
            pip_download(
                &index,
                &name,
                &[
                    "--only-binary=:all:",
                    "--platform",
                    "manylinux2014_x86_64",
                    "--python-version",
                    python,
                    "--implementation",
                    "cp",
                ],
            )
        };
        (native, other("3.9"), other("3.13"))
    })
    .await
    .unwrap();
    let host = Command::new("python3")
        .args([
            "-c",
            "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')",
        ])
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&host.stdout).trim().to_string();
    let dist = scenarios::corpus::dist_file_name(&pkg.name);
    assert_eq!(
        native,
        format!(
            "{dist}-{version}-{}.whl",
            scenarios::corpus::wheel_tag(Some(&host))
        )
    );
    assert!(py39.contains("-cp39-cp39-manylinux"), "{py39}");
    assert!(py313.contains("-cp313-cp313-manylinux"), "{py313}");
    // Negative control: an interpreter no wheel is built for gets no wheel at all.
    let index = format!("{}/pypi/latest/simple/", server.base_url);
    let name = pkg.name.clone();
    let refused = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-cache-dir",
                "--disable-pip-version-check",
            ])
            .args([
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--index-url",
                &index,
            ])
            .args([
                "--platform",
                "manylinux2014_x86_64",
                "--python-version",
                "3.8",
            ])
            .args(["--implementation", "cp", "--dest"])
            .arg(tempfile::tempdir().unwrap().path())
            .arg(&name)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        !refused.status.success(),
        "pip found a wheel for CPython 3.8"
    );
}
