//! Unit tests of the git-builders workload model: configuration, builders, schedule, trees.

use std::time::Duration;

use super::watch::file_is_version;
use super::*;

fn config() -> GitBuildersConfig {
    GitBuildersConfig {
        builders: 40,
        duration: Duration::from_secs(600),
        commits_per_builder_per_hour: 30.0,
        ..GitBuildersConfig::default()
    }
}

#[test]
fn every_config_problem_is_listed() {
    let bad = GitBuildersConfig {
        builders: 0,
        duration: Duration::ZERO,
        commits_per_builder_per_hour: -1.0,
        bad_commit_share: 1.5,
        tags_share: -0.1,
        watch_interval: Duration::from_millis(1),
        tag: "Bad_Tag".into(),
        ..GitBuildersConfig::default()
    };
    let Err(ScenarioError::InvalidConfig { problems, .. }) = bad.validate() else {
        panic!("accepted a bad config");
    };
    assert!(problems.len() >= 7, "{problems:?}");
    assert!(config().validate().is_ok());
    let silent = GitBuildersConfig {
        commits_per_builder_per_hour: 0.0,
        ..config()
    };
    assert!(silent.validate().is_err(), "no commits at all");
    let burst_only = GitBuildersConfig {
        burst: true,
        ..silent
    };
    assert!(burst_only.validate().is_ok());
}

#[test]
fn builders_have_the_asked_shares_and_valid_names() {
    let builders = config().builders();
    assert_eq!(builders.len(), 40);
    let python = builders
        .iter()
        .filter(|b| b.ecosystem == crate::corpus::Ecosystem::Python)
        .count();
    let tags = builders
        .iter()
        .filter(|b| b.trigger == BuildTrigger::Tags)
        .count();
    assert_eq!((python, tags), (20, 8));
    for b in &builders {
        assert!(b.name.starts_with("gb-g-"), "{}", b.name);
        match b.ecosystem {
            crate::corpus::Ecosystem::R => {
                assert!(
                    b.package
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.')
                )
            }
            crate::corpus::Ecosystem::Python => assert_eq!(b.package, b.name),
        }
    }
    assert_eq!(builders, config().builders(), "reproducible");
}

#[test]
fn the_schedule_is_open_reproducible_and_numbers_commits_per_builder() {
    let config = config();
    let plan = commit_plan(&config);
    assert_eq!(plan, commit_plan(&config));
    // 40 builders × 30/h × 10 min = 200 expected.
    assert!((140..=260).contains(&plan.len()), "{}", plan.len());
    assert!(plan.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(plan.iter().all(|c| c.at < config.duration));
    for builder in 0..config.builders {
        let seqs: Vec<usize> = plan
            .iter()
            .filter(|c| c.builder == builder)
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, (1..=seqs.len()).collect::<Vec<_>>());
    }
    let none_bad = commit_plan(&GitBuildersConfig {
        bad_commit_share: 0.0,
        ..config.clone()
    });
    assert!(none_bad.iter().all(|c| !c.broken));
    let many_bad = commit_plan(&GitBuildersConfig {
        bad_commit_share: 0.5,
        ..config
    });
    let broken = many_bad.iter().filter(|c| c.broken).count();
    assert!(broken > many_bad.len() / 4 && broken < many_bad.len() * 3 / 4);
}

#[test]
fn a_burst_pushes_to_every_builder_within_one_second() {
    let config = GitBuildersConfig {
        builders: 100,
        burst: true,
        commits_per_builder_per_hour: 0.0,
        ..GitBuildersConfig::default()
    };
    let plan = commit_plan(&config);
    assert_eq!(plan.len(), 100);
    assert!(
        plan.iter()
            .all(|c| c.at < Duration::from_secs(1) && c.seq == 1)
    );
    let mut builders: Vec<usize> = plan.iter().map(|c| c.builder).collect();
    builders.sort();
    builders.dedup();
    assert_eq!(builders.len(), 100);
}

#[test]
fn trees_carry_the_version_and_broken_ones_are_unparseable() {
    let builders = config().builders();
    let r = builders
        .iter()
        .find(|b| b.ecosystem == crate::corpus::Ecosystem::R);
    let python = builders
        .iter()
        .find(|b| b.ecosystem == crate::corpus::Ecosystem::Python);
    for builder in [r, python].into_iter().flatten().cloned() {
        let good = source_tree(&builder, 3, false);
        let bad = source_tree(&builder, 3, true);
        let manifest = |tree: &SourceTree| {
            tree.iter()
                .find(|(p, _)| p == "DESCRIPTION" || p == "pyproject.toml")
                .map(|(_, c)| c.clone())
                .unwrap()
        };
        assert!(manifest(&good).contains("1.0.3"));
        assert_ne!(manifest(&good), manifest(&bad));
        if builder.ecosystem == crate::corpus::Ecosystem::Python {
            // A key with two `=` is no TOML; the good file has none.
            assert!(manifest(&bad).contains("= ="));
            assert!(!manifest(&good).contains("= ="));
        } else {
            assert!(manifest(&bad).lines().any(|l| !l.contains(':')));
            assert!(manifest(&good).lines().all(|l| l.contains(':')));
        }
    }
}

#[test]
fn file_names_match_their_exact_version() {
    assert!(file_is_version(
        "gb_g_1-1.0.1-py3-none-any.whl",
        "gb-g-1",
        "1.0.1"
    ));
    assert!(file_is_version("gb-g-1-1.0.1.tar.gz", "gb-g-1", "1.0.1"));
    assert!(file_is_version("gb_g_1-1.0.1.tar.gz", "gb-g-1", "1.0.1"));
    assert!(!file_is_version(
        "gb_g_1-1.0.10-py3-none-any.whl",
        "gb-g-1",
        "1.0.1"
    ));
    assert!(!file_is_version(
        "gb_g_11-1.0.1-py3-none-any.whl",
        "gb-g-1",
        "1.0.1"
    ));
}
