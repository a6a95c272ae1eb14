//! Corpus tests: determinism, the dependency DAG, validation, and artifacts that the real
//! clients (pip, R) accept.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::*;

fn small() -> CorpusConfig {
    CorpusConfig {
        packages: 40,
        size_median_bytes: 8_000,
        size_sigma: 0.5,
        size_max_bytes: 50_000,
        seed: 42,
        ..CorpusConfig::default()
    }
}

/// `(path, content)` of every entry of a `.tar.gz`.
fn untar(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (path, content)
        })
        .collect()
}

#[test]
fn same_seed_same_corpus_other_seed_other_corpus() {
    let a = Corpus::generate(&small()).unwrap();
    let b = Corpus::generate(&small()).unwrap();
    assert_eq!(a.python(), b.python());
    assert_eq!(a.r(), b.r());
    let id = PkgId {
        ecosystem: Ecosystem::Python,
        index: 5,
    };
    assert_eq!(a.artifacts(id).unwrap(), b.artifacts(id).unwrap());
    let c = Corpus::generate(&CorpusConfig {
        seed: 43,
        ..small()
    })
    .unwrap();
    assert_ne!(a.python(), c.python());
}

#[test]
fn split_and_names_follow_the_popularity_list() {
    let corpus = Corpus::generate(&small()).unwrap();
    assert_eq!(corpus.python().len(), 20);
    assert_eq!(corpus.r().len(), 20);
    assert_eq!(corpus.python()[0].name, "boto3");
    assert_eq!(corpus.python()[0].latest().version, "1.44.5");
    assert_eq!(corpus.r()[0].name, "boto3");
    assert!(
        corpus
            .python()
            .iter()
            .all(|p| (1..=2).contains(&p.versions.len()))
    );
    assert!(corpus.python().iter().any(|p| p.versions.len() == 2));
    for (i, p) in corpus.python().iter().enumerate() {
        assert_eq!(p.rank, i + 1);
    }
}

#[test]
fn closure_is_deps_first_acyclic_and_complete() {
    let corpus = Corpus::generate(&CorpusConfig {
        packages: 400,
        ..small()
    })
    .unwrap();
    let mut largest = 0;
    for id in corpus.ids() {
        // Every dependency is strictly more popular: the graph is a DAG by construction.
        for dep in corpus.deps(id) {
            assert_eq!(dep.ecosystem, id.ecosystem);
            assert!(dep.index < id.index, "{id:?} depends on {dep:?}");
        }
        let closure = corpus.install_closure(id);
        assert_eq!(closure.last(), Some(&id));
        let unique: HashSet<_> = closure.iter().collect();
        assert_eq!(unique.len(), closure.len(), "duplicates in {closure:?}");
        let position: HashMap<PkgId, usize> =
            closure.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        for pkg in &closure {
            for dep in corpus.deps(*pkg) {
                let at = position.get(&dep).expect("closure holds every dependency");
                assert!(*at < position[pkg], "{dep:?} after {pkg:?}");
            }
        }
        largest = largest.max(closure.len());
    }
    assert!(corpus.ids().any(|id| corpus.install_closure(id).len() > 1));
    assert!(largest < 60, "closures grew to {largest} packages");
}

#[test]
fn python_requires_and_r_imports_name_the_deps() {
    let corpus = Corpus::generate(&small()).unwrap();
    for p in corpus.python() {
        let names: Vec<&str> = p
            .deps
            .iter()
            .map(|&d| corpus.python()[d].name.as_str())
            .collect();
        assert_eq!(p.requires, names);
    }
    for p in corpus.r() {
        let names: Vec<&str> = p
            .deps
            .iter()
            .map(|&d| corpus.r()[d].name.as_str())
            .collect();
        assert_eq!(p.imports, names);
    }
}

#[test]
fn sizes_are_log_normal_around_the_median_and_clipped() {
    let config = CorpusConfig {
        packages: 2_000,
        size_median_bytes: 100_000,
        size_sigma: 1.2,
        size_max_bytes: 2_000_000,
        ..CorpusConfig::default()
    };
    let corpus = Corpus::generate(&config).unwrap();
    let mut sizes: Vec<u64> = corpus
        .python()
        .iter()
        .flat_map(|p| &p.versions)
        .chain(corpus.r().iter().flat_map(|p| &p.versions))
        .map(|v| v.size_bytes)
        .collect();
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2] as f64;
    assert!((80_000.0..125_000.0).contains(&median), "median {median}");
    assert!(*sizes.last().unwrap() <= 2_000_000);
    assert!(*sizes.first().unwrap() >= MIN_SIZE_BYTES);
    assert!(
        sizes.iter().filter(|&&s| s == 2_000_000).count() > 0,
        "nothing clipped"
    );
}

#[test]
fn validate_reports_every_problem() {
    let bad = CorpusConfig {
        packages: 1,
        r_share: 0.5,
        size_median_bytes: 10,
        size_sigma: f64::NAN,
        size_max_bytes: 5,
        max_deps: 99,
        zipf_exponent: 0.0,
        seed: 0,
        max_versions: 0,
        older_version_probability: 2.0,
        platform_wheel_share: -1.0,
        install_r_share: Some(3.0),
    };
    let problems = bad.validate().unwrap_err();
    assert_eq!(problems.len(), 10, "{problems:#?}");
    let too_many = CorpusConfig {
        packages: 1_000_000,
        r_share: 1.5,
        ..CorpusConfig::default()
    };
    let problems = too_many.validate().unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("r_share"));
    let err = Corpus::generate(&bad).unwrap_err();
    assert!(err.to_string().contains("max_deps"), "{err}");
    assert!(CorpusConfig::default().validate().is_ok());
}

#[test]
fn wheel_parses_and_record_hashes_verify() {
    let corpus = Corpus::generate(&small()).unwrap();
    let pkg = corpus
        .python()
        .iter()
        .find(|p| !p.requires.is_empty())
        .expect("some package has deps");
    let version = pkg.latest();
    let wheel = wheel_bytes(pkg, version).unwrap();
    assert_eq!(wheel.file_name, wheel_file_name(pkg, version));
    assert!(wheel.file_name.ends_with("-py3-none-any.whl"));
    let ratio = wheel.bytes.len() as f64 / version.size_bytes as f64;
    assert!((0.9..1.1).contains(&ratio), "size ratio {ratio}");

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&wheel.bytes)).unwrap();
    let mut files = HashMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut content = Vec::new();
        f.read_to_end(&mut content).unwrap();
        files.insert(f.name().to_string(), content);
    }
    let dist_info = format!(
        "{}-{}.dist-info",
        dist_file_name(&pkg.name),
        version.version
    );
    let record = String::from_utf8(files[&format!("{dist_info}/RECORD")].clone()).unwrap();
    let mut listed = 0;
    for line in record.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 3, "{line}");
        if fields[0].ends_with("/RECORD") {
            assert_eq!((fields[1], fields[2]), ("", ""));
            continue;
        }
        let content = &files[fields[0]];
        let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(content));
        assert_eq!(fields[1], format!("sha256={digest}"), "{}", fields[0]);
        assert_eq!(fields[2], content.len().to_string());
        listed += 1;
    }
    assert_eq!(listed, files.len() - 1, "RECORD lists every other file");
    let metadata = String::from_utf8(files[&format!("{dist_info}/METADATA")].clone()).unwrap();
    assert!(metadata.contains(&format!("Name: {}\n", pkg.name)));
    for dep in &pkg.requires {
        assert!(
            metadata.contains(&format!("Requires-Dist: {dep}\n")),
            "{metadata}"
        );
    }
    let wheel_meta = String::from_utf8(files[&format!("{dist_info}/WHEEL")].clone()).unwrap();
    assert!(wheel_meta.contains("Root-Is-Purelib: true"));
    assert!(files.contains_key(&format!("{}/__init__.py", module_name(&pkg.name))));
}

#[test]
fn sdist_and_r_tarball_carry_metadata_with_deps() {
    let corpus = Corpus::generate(&small()).unwrap();
    let py = corpus
        .python()
        .iter()
        .find(|p| !p.requires.is_empty())
        .unwrap();
    let sdist = sdist_bytes(py, py.latest()).unwrap();
    let root = format!("{}-{}", dist_file_name(&py.name), py.latest().version);
    assert_eq!(sdist.file_name, format!("{root}.tar.gz"));
    let entries = untar(&sdist.bytes);
    let pkg_info = String::from_utf8(entries[&format!("{root}/PKG-INFO")].clone()).unwrap();
    for dep in &py.requires {
        assert!(pkg_info.contains(&format!("Requires-Dist: {dep}\n")));
    }
    assert!(entries.contains_key(&format!("{root}/pyproject.toml")));
    let ratio = sdist.bytes.len() as f64 / py.latest().size_bytes as f64;
    assert!((0.95..1.05).contains(&ratio), "sdist size ratio {ratio}");

    let r = corpus.r().iter().find(|p| !p.imports.is_empty()).unwrap();
    let tarball = r_tarball_bytes(r, r.latest()).unwrap();
    assert_eq!(
        tarball.file_name,
        format!("{}_{}.tar.gz", r.name, r.latest().version)
    );
    let entries = untar(&tarball.bytes);
    let description =
        String::from_utf8(entries[&format!("{}/DESCRIPTION", r.name)].clone()).unwrap();
    assert!(description.contains(&format!("Package: {}\n", r.name)));
    assert!(description.contains(&format!("Imports: {}\n", r.imports.join(", "))));
    assert!(description.contains("NeedsCompilation: no"));
    let namespace = String::from_utf8(entries[&format!("{}/NAMESPACE", r.name)].clone()).unwrap();
    assert_eq!(namespace, format!("export(hello_{})\n", r.name));
    let ratio = tarball.bytes.len() as f64 / r.latest().size_bytes as f64;
    assert!((0.95..1.05).contains(&ratio), "tarball size ratio {ratio}");
}

fn tool_available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn pip_installs_the_wheel() {
    assert!(
        tool_available("python3", &["-m", "pip", "--version"]),
        "python3 -m pip is not available: run .ci/install.sh"
    );
    let corpus = Corpus::generate(&small()).unwrap();
    let pkg = &corpus.python()[3];
    let wheel = wheel_bytes(pkg, pkg.latest()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&wheel.file_name);
    std::fs::write(&path, &wheel.bytes).unwrap();
    let target = dir.path().join("site");
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--no-index", "--no-deps", "--quiet"])
        .arg("--target")
        .arg(&target)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let module = module_name(&pkg.name);
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import {module}; print({module}.__version__)"),
        ])
        .env("PYTHONPATH", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pkg.latest().version
    );
}

#[test]
fn r_installs_the_tarball() {
    assert!(
        tool_available("R", &["--version"]),
        "R is not available: run .ci/install.sh"
    );
    let corpus = Corpus::generate(&small()).unwrap();
    // Rank 1 has no dependencies, so it installs on its own.
    let pkg = &corpus.r()[0];
    assert!(pkg.imports.is_empty());
    let tarball = r_tarball_bytes(pkg, pkg.latest()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&tarball.file_name);
    std::fs::write(&path, &tarball.bytes).unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let out = Command::new("R")
        .args(["CMD", "INSTALL", "--no-test-load"])
        .arg(format!("--library={}", lib.display()))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "R CMD INSTALL: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let call = format!(
        "library({name}, lib.loc = '{lib}'); cat(hello_{name}())",
        name = pkg.name,
        lib = lib.display()
    );
    let out = Command::new("Rscript")
        .args(["-e", &call])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hello from {} {}", pkg.name, pkg.latest().version)
    );
}
