//! The corpus cache end to end: on the local provider the first run seeds the cluster and saves
//! it, the second restores it (nothing uploaded, the corpus served and installed), a run with
//! another corpus seed seeds anew, and `harness corpus-cache clear` empties the cache; on the
//! docker provider a seeded run saves (Garage's container stopped, copied and started again
//! from inside the running harness) and the next restores.

use std::path::Path;
use std::process::Command;

use crate::support::harness_command;

/// A short run of the small corpus at a light rate, caching into `cache`.
fn run(tmp: &Path, out: &Path, cache: &Path, seed: &str) -> serde_json::Value {
    run_on("local", tmp, out, cache, seed)
}

fn run_on(infra: &str, tmp: &Path, out: &Path, cache: &Path, seed: &str) -> serde_json::Value {
    let mut command = harness_command(
        tmp,
        out,
        &[
            "scenario",
            "daily-installs",
            "--infra",
            infra,
            "--quiet",
            "--corpus",
            "small",
            "--packages",
            "24",
            "--installs-per-day",
            "300000",
            "--duration",
            "5s",
            "--threshold",
            "error_rate<=0",
        ],
    );
    command
        .arg("--corpus-cache")
        .arg(cache)
        .args(["--seed", seed]);
    let result = command.output().unwrap();
    assert_eq!(
        result.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    record["meta"]["config"].clone()
}

fn entries(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("manifest.json").exists())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn second_run_restores_and_another_corpus_seeds_anew() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");

    let first = run(tmp.path(), &work.path().join("one"), &cache, "5");
    assert_eq!(first["corpus_seeding"]["how"], "uploaded", "{first}");
    assert_eq!(entries(&cache), 1);
    let files = first["uploaded"]["python_files"].as_u64().unwrap()
        + first["uploaded"]["r_files"].as_u64().unwrap();
    assert!(files > 24, "{first}");

    // Same corpus: restored, and the installs of the run (error_rate<=0) found every file.
    let second = run(tmp.path(), &work.path().join("two"), &cache, "5");
    assert_eq!(second["corpus_seeding"]["how"], "restored", "{second}");
    assert_eq!(
        second["corpus_seeding"]["cache_entry"],
        first["corpus_seeding"]["cache_entry"]
    );
    assert_eq!(second["corpus_stats"], first["corpus_stats"]);
    assert_eq!(entries(&cache), 1);

    // Another corpus (seed) is another key: seeded by upload, a second entry.
    let third = run(tmp.path(), &work.path().join("three"), &cache, "6");
    assert_eq!(third["corpus_seeding"]["how"], "uploaded", "{third}");
    assert_eq!(entries(&cache), 2);

    let cleared = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["corpus-cache", "clear", "--corpus-cache"])
        .arg(&cache)
        .output()
        .unwrap();
    assert!(cleared.status.success());
    assert!(
        String::from_utf8_lossy(&cleared.stdout).contains("removed 2 entries"),
        "{}",
        String::from_utf8_lossy(&cleared.stdout)
    );
    assert_eq!(entries(&cache), 0);
}

#[test]
fn docker_saves_a_seeded_corpus_and_restores_it() {
    let _one_docker_cluster_at_a_time = crate::infra_docker::serial();
    let tmp = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let first = run_on("docker", tmp.path(), &work.path().join("one"), &cache, "7");
    assert_eq!(first["corpus_seeding"]["how"], "uploaded", "{first}");
    assert_eq!(entries(&cache), 1, "{first}");
    let second = run_on("docker", tmp.path(), &work.path().join("two"), &cache, "7");
    assert_eq!(second["corpus_seeding"]["how"], "restored", "{second}");
    assert_eq!(second["corpus_stats"], first["corpus_stats"]);
}
