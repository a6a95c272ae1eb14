//! The git builders' exactly-once check, over the commit ledger, the final builds listing and
//! what the watchers saw: every broken commit's build failed and nothing else failed
//! (failed builds = broken commits, exactly); no (builder, commit) was published more than
//! once (**duplicates**, counted from the database: the transactions that added files
//! described as that build, `{source}/{builder}@{sha12}`, not the build rows, which a unique
//! constraint already limits to one per commit); every good commit pushed during the run was built, published and seen
//! by a client by the end of the run plus the grace period (else **lost**); no build exists
//! for a commit nobody pushed (**unexpected**). Any of those makes the history invalid.
//!
//! A builder on commits builds its branch's tip when it polls (as PPM does): a commit pushed
//! over by a later one before the poll is *superseded* — never built, allowed — when a later
//! commit of the same builder was built. The newest commit of each builder is never superseded.
//! Tag-triggered builders build every tag.
//!
//! The repositories' first commits (seq 0, pushed before the measured run) are judged when
//! built (they must succeed, once) but not required: whether creating a builder builds its
//! current head is the node's choice.

use std::collections::{BTreeMap, BTreeSet};

use reports::record::{CheckerResult, Validity};
use scenarios::git_builders::{BuildRow, BuilderSpec, PushedCommit};
use serde::Serialize;
use serde_json::json;

/// The checker's name in the run record.
pub const NAME: &str = "builds";

/// At most this many examples of each problem go into the evidence.
const EXAMPLES: usize = 20;

/// What the checker reads.
pub struct BuildsHistory<'a> {
    pub builders: &'a [BuilderSpec],
    /// Every commit the driver made, first commits included.
    pub commits: &'a [PushedCommit],
    /// Every build the nodes list, of every Git source.
    pub builds: &'a [BuildRow],
    /// (builder index, version) of every commit a watcher saw published.
    pub seen: &'a BTreeSet<(usize, String)>,
    /// What the database says was published, or why it could not be read (duplicates are
    /// then undecided).
    pub publications: &'a Result<Publications, String>,
}

/// (builder name, the commit's first 12 hex digits) → the database transactions that added
/// package files described as that build.
pub type Publications = BTreeMap<(String, String), usize>;

/// The key of a commit in [`Publications`].
pub fn publication_key(builder: &str, sha: &str) -> (String, String) {
    (builder.to_string(), sha[..sha.len().min(12)].to_string())
}

/// The counts the report shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BuildCounts {
    /// Commits pushed during the run (first commits not counted).
    pub commits: usize,
    pub good: usize,
    pub broken: usize,
    /// Commits whose push failed (not expected to be built).
    pub push_failed: usize,
    pub builds: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Builds still queued or running at the end.
    pub unfinished: usize,
    /// Builds that needed more than one attempt (a lease expired).
    pub retried: usize,
    /// Commits never built because a later commit of their builder was (commits trigger).
    pub superseded: usize,
    pub duplicates: usize,
    pub lost: usize,
    pub unexpected_failures: usize,
    pub broken_published: usize,
    pub unexpected_builds: usize,
    /// Finished builds per node id.
    pub per_node: BTreeMap<String, usize>,
}

/// Judges the history; returns the result and the counts.
pub fn check(history: &BuildsHistory) -> (CheckerResult, BuildCounts) {
    let names: BTreeMap<&str, usize> = history
        .builders
        .iter()
        .map(|b| (b.name.as_str(), b.index))
        .collect();
    let mut counts = BuildCounts::default();
    // (builder index, sha) → the builds of it.
    let mut by_commit: BTreeMap<(usize, &str), Vec<&BuildRow>> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let pushed: BTreeMap<(usize, &str), &PushedCommit> = history
        .commits
        .iter()
        .filter_map(|c| Some(((c.builder, c.sha.as_deref()?), c)))
        .collect();
    for build in history.builds {
        counts.builds += 1;
        match build.state.as_str() {
            "succeeded" => counts.succeeded += 1,
            "failed" => counts.failed += 1,
            _ => counts.unfinished += 1,
        }
        if build.attempts > 1 {
            counts.retried += 1;
        }
        if matches!(build.state.as_str(), "succeeded" | "failed") {
            let node = build.node_id.clone().unwrap_or_else(|| "unknown".into());
            *counts.per_node.entry(node).or_default() += 1;
        }
        let key = names
            .get(build.builder.as_str())
            .map(|&index| (index, build.commit_sha.as_str()));
        match key {
            Some(key) if pushed.contains_key(&key) => by_commit.entry(key).or_default().push(build),
            _ => {
                counts.unexpected_builds += 1;
                unexpected.push(json!({"builder": build.builder, "commit": build.commit_sha, "id": build.id, "state": build.state}));
            }
        }
    }
    let triggers: BTreeMap<usize, scenarios::git_builders::BuildTrigger> = history
        .builders
        .iter()
        .map(|b| (b.index, b.trigger))
        .collect();
    // Per builder on commits: the highest seq that has a build.
    let mut newest_built: BTreeMap<usize, usize> = BTreeMap::new();
    for commit in history.commits {
        let built = commit
            .sha
            .as_deref()
            .is_some_and(|sha| by_commit.contains_key(&(commit.builder, sha)));
        if built {
            let newest = newest_built.entry(commit.builder).or_default();
            *newest = (*newest).max(commit.seq);
        }
    }
    let superseded = |commit: &PushedCommit| {
        triggers.get(&commit.builder) == Some(&scenarios::git_builders::BuildTrigger::Commits)
            && newest_built
                .get(&commit.builder)
                .is_some_and(|&newest| newest > commit.seq)
    };
    let mut duplicates = Vec::new();
    let mut lost = Vec::new();
    let mut unexpected_failures = Vec::new();
    let mut broken_published = Vec::new();
    for commit in history.commits {
        let first = commit.seq == 0;
        if !first {
            counts.commits += 1;
        }
        let Some(sha) = commit.sha.as_deref().filter(|_| commit.pushed_s.is_some()) else {
            counts.push_failed += usize::from(!first);
            continue;
        };
        if !first {
            if commit.broken {
                counts.broken += 1;
            } else {
                counts.good += 1;
            }
        }
        let builds = by_commit
            .get(&(commit.builder, sha))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if builds.is_empty() && superseded(commit) {
            counts.superseded += usize::from(!first);
            continue;
        }
        let succeeded = builds.iter().filter(|b| b.state == "succeeded").count();
        let failed = builds.iter().filter(|b| b.state == "failed").count();
        let example = || {
            json!({
                "builder": commit.builder_name, "seq": commit.seq, "version": commit.version,
                "commit": sha, "tag": commit.tag, "pushed_at_s": commit.pushed_s,
                "builds": builds.iter().map(|b| json!({"id": b.id, "state": b.state, "node": b.node_id, "attempts": b.attempts, "error": b.error})).collect::<Vec<_>>(),
            })
        };
        let published_times = history
            .publications
            .as_ref()
            .ok()
            .and_then(|p| p.get(&publication_key(&commit.builder_name, sha)))
            .copied()
            .unwrap_or(0);
        if published_times > 1 {
            counts.duplicates += 1;
            let mut example = example();
            example["transactions"] = json!(published_times);
            duplicates.push(example);
        }
        if commit.broken {
            if succeeded > 0 {
                counts.broken_published += 1;
                broken_published.push(example());
            } else if failed == 0 && !first {
                // A broken commit never judged by a build: the queue lost it.
                counts.lost += 1;
                lost.push(example());
            }
            continue;
        }
        if failed > 0 && succeeded == 0 {
            counts.unexpected_failures += 1;
            unexpected_failures.push(example());
            continue;
        }
        let published = succeeded > 0
            && history
                .seen
                .contains(&(commit.builder, commit.version.clone()));
        if !published && !first {
            counts.lost += 1;
            lost.push(example());
        }
    }
    let problems = [
        (counts.duplicates, "published more than once"),
        (counts.lost, "lost (never published and seen)"),
        (
            counts.unexpected_failures,
            "good commits whose build failed",
        ),
        (counts.broken_published, "broken commits published"),
        (counts.unexpected_builds, "builds of commits nobody pushed"),
    ];
    let found: Vec<String> = problems
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    let validity = if !found.is_empty() {
        Validity::Invalid
    } else if counts.commits == 0 || history.publications.is_err() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let summary = if counts.commits == 0 {
        "no commit was pushed during the run: nothing to judge".to_string()
    } else if let (true, Err(why)) = (found.is_empty(), history.publications) {
        format!("duplicates undecided: the database's transactions could not be read ({why})")
    } else if found.is_empty() {
        format!(
            "{} commits: {} good published once each, {} broken failed as expected, {} superseded before a poll; {} builds, {} retried",
            counts.commits,
            counts.good - counts.superseded.min(counts.good),
            counts.broken,
            counts.superseded,
            counts.builds,
            counts.retried
        )
    } else {
        format!("{} commits: {}", counts.commits, found.join(", "))
    };
    let take = |v: Vec<serde_json::Value>| v.into_iter().take(EXAMPLES).collect::<Vec<_>>();
    let result = CheckerResult {
        name: NAME.into(),
        validity,
        summary,
        evidence: json!({
            "counts": counts,
            "publications": match history.publications {
                Ok(p) => json!({"read": "database", "builds_published": p.len()}),
                Err(why) => json!({"read": "failed", "detail": why}),
            },
            "duplicates": take(duplicates),
            "lost": take(lost),
            "unexpected_failures": take(unexpected_failures),
            "broken_published": take(broken_published),
            "unexpected_builds": take(unexpected),
        }),
    };
    (result, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenarios::corpus::Ecosystem;
    use scenarios::git_builders::BuildTrigger;

    fn builders() -> Vec<BuilderSpec> {
        (0..2)
            .map(|index| BuilderSpec {
                index,
                name: format!("gb-t-{index}"),
                package: format!("gb-t-{index}"),
                ecosystem: Ecosystem::Python,
                trigger: BuildTrigger::Commits,
            })
            .collect()
    }

    fn commit(builder: usize, seq: usize, broken: bool) -> PushedCommit {
        PushedCommit {
            builder,
            builder_name: format!("gb-t-{builder}"),
            seq,
            version: format!("1.0.{seq}"),
            sha: Some(format!("sha{builder}{seq}")),
            tag: None,
            broken,
            scheduled_s: seq as f64,
            pushed_s: Some(seq as f64 + 0.1),
            error: None,
        }
    }

    fn build(id: i64, c: &PushedCommit, state: &str, node: &str) -> BuildRow {
        BuildRow {
            id,
            builder: c.builder_name.clone(),
            commit_sha: c.sha.clone().unwrap(),
            tag: None,
            version: Some(c.version.clone()),
            state: state.into(),
            attempts: 1,
            node_id: Some(node.into()),
            queued_at: None,
            started_at: None,
            finished_at: None,
            transaction_id: None,
            error: None,
        }
    }

    /// Builder 0: first commit, good 1, broken 2; builder 1: first commit, good 1.
    fn good_history() -> (Vec<PushedCommit>, Vec<BuildRow>, BTreeSet<(usize, String)>) {
        let commits = vec![
            commit(0, 0, false),
            commit(1, 0, false),
            commit(0, 1, false),
            commit(0, 2, true),
            commit(1, 1, false),
        ];
        let builds = vec![
            build(1, &commits[0], "succeeded", "n1"),
            build(2, &commits[1], "succeeded", "n2"),
            build(3, &commits[2], "succeeded", "n1"),
            build(4, &commits[3], "failed", "n2"),
            build(5, &commits[4], "succeeded", "n2"),
        ];
        let seen = [(0, "1.0.1"), (1, "1.0.1")]
            .iter()
            .map(|(b, v)| (*b, v.to_string()))
            .collect();
        (commits, builds, seen)
    }

    fn judge(
        commits: &[PushedCommit],
        builds: &[BuildRow],
        seen: &BTreeSet<(usize, String)>,
    ) -> (CheckerResult, BuildCounts) {
        let publications = Ok(published(builds));
        judge_with(commits, builds, seen, &publications)
    }

    /// What the database holds for `builds`: one transaction per succeeded build.
    fn published(builds: &[BuildRow]) -> Publications {
        let mut publications = Publications::new();
        for b in builds.iter().filter(|b| b.state == "succeeded") {
            *publications
                .entry(publication_key(&b.builder, &b.commit_sha))
                .or_default() += 1;
        }
        publications
    }

    fn judge_with(
        commits: &[PushedCommit],
        builds: &[BuildRow],
        seen: &BTreeSet<(usize, String)>,
        publications: &Result<Publications, String>,
    ) -> (CheckerResult, BuildCounts) {
        let builders = builders();
        check(&BuildsHistory {
            builders: &builders,
            commits,
            builds,
            seen,
            publications,
        })
    }

    #[test]
    fn every_commit_built_once_as_expected_is_valid() {
        let (commits, builds, seen) = good_history();
        let (result, counts) = judge(&commits, &builds, &seen);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert_eq!(
            (counts.commits, counts.good, counts.broken, counts.failed),
            (3, 2, 1, 1)
        );
        assert_eq!(counts.per_node["n1"], 2);
        assert_eq!(counts.per_node["n2"], 3);
    }

    #[test]
    fn a_second_transaction_publishing_one_build_is_a_duplicate() {
        let (commits, builds, seen) = good_history();
        // One build row (the unique constraint allows no more), two transactions in the
        // database that added files described as it.
        let mut publications = published(&builds);
        *publications
            .get_mut(&publication_key(
                &commits[2].builder_name,
                commits[2].sha.as_deref().unwrap(),
            ))
            .unwrap() += 1;
        let (result, counts) = judge_with(&commits, &builds, &seen, &Ok(publications));
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.duplicates, 1);
        assert!(result.summary.contains("published more than once"));
        assert_eq!(result.evidence["duplicates"][0]["transactions"], 2);
    }

    #[test]
    fn without_the_database_duplicates_are_undecided() {
        let (commits, builds, seen) = good_history();
        let (result, _) = judge_with(&commits, &builds, &seen, &Err("psql: refused".into()));
        assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
        assert!(
            result.summary.contains("duplicates undecided"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_good_commit_never_built_or_never_seen_is_lost() {
        let (commits, builds, mut seen) = good_history();
        let without: Vec<BuildRow> = builds.iter().filter(|b| b.id != 5).cloned().collect();
        let (result, counts) = judge(&commits, &without, &seen);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.lost, 1);
        // Built, but no client ever saw the version.
        seen.remove(&(1, "1.0.1".to_string()));
        let (result, counts) = judge(&commits, &builds, &seen);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.lost, 1);
        // Still queued at the end is not published either.
        let mut queued = builds.clone();
        queued[4].state = "queued".into();
        seen.insert((1, "1.0.1".to_string()));
        let (_, counts) = judge(&commits, &queued, &seen);
        assert_eq!((counts.lost, counts.unfinished), (1, 1));
    }

    #[test]
    fn failures_must_equal_the_broken_commits_exactly() {
        let (commits, mut builds, seen) = good_history();
        // The broken commit published: invalid.
        builds[3].state = "succeeded".into();
        let (result, counts) = judge(&commits, &builds, &seen);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.broken_published, 1);
        // A good commit failed: invalid.
        let (commits, mut builds, seen) = good_history();
        builds[2].state = "failed".into();
        let (result, counts) = judge(&commits, &builds, &seen);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.unexpected_failures, 1);
        // The broken commit never built at all: lost.
        let (commits, builds, seen) = good_history();
        let without: Vec<BuildRow> = builds.into_iter().filter(|b| b.id != 4).collect();
        let (result, counts) = judge(&commits, &without, &seen);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.lost, 1);
    }

    #[test]
    fn a_build_of_an_unknown_commit_is_unexpected() {
        let (commits, mut builds, seen) = good_history();
        let mut stray = build(7, &commits[2], "succeeded", "n1");
        stray.commit_sha = "deadbeef".into();
        builds.push(stray);
        let (result, counts) = judge(&commits, &builds, &seen);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.unexpected_builds, 1);
    }

    #[test]
    fn first_commits_are_optional_and_no_commits_is_unknown() {
        let (commits, builds, seen) = good_history();
        let without_first: Vec<BuildRow> = builds.into_iter().filter(|b| b.id > 2).collect();
        let (result, _) = judge(&commits, &without_first, &seen);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        let (result, _) = judge(&commits[..2], &[], &BTreeSet::new());
        assert_eq!(result.validity, Validity::Unknown);
    }

    #[test]
    fn a_commit_whose_push_failed_is_not_expected() {
        let (mut commits, builds, seen) = good_history();
        let mut failed_push = commit(1, 2, false);
        failed_push.pushed_s = None;
        failed_push.error = Some("push refused".into());
        commits.push(failed_push);
        let (result, counts) = judge(&commits, &builds, &seen);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert_eq!(counts.push_failed, 1);
    }

    #[test]
    fn a_commit_pushed_over_before_a_poll_is_superseded_not_lost() {
        let (mut commits, mut builds, mut seen) = good_history();
        // Builder 1 gets commits 2 and 3; only 3 (the tip at the poll) is built.
        commits.push(commit(1, 2, false));
        commits.push(commit(1, 3, false));
        builds.push(build(8, &commits[6], "succeeded", "n1"));
        seen.insert((1, "1.0.3".to_string()));
        let (result, counts) = judge(&commits, &builds, &seen);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert_eq!((counts.superseded, counts.lost), (1, 0));
        // The newest commit itself unbuilt is lost, whatever came before.
        let without: Vec<BuildRow> = builds.iter().filter(|b| b.id != 8).cloned().collect();
        let (result, counts) = judge(&commits, &without, &seen);
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!(counts.lost, 2);
        // On tags every tag is built: nothing is superseded.
        let mut tagged = builders();
        tagged[1].trigger = BuildTrigger::Tags;
        let (result, counts) = check(&BuildsHistory {
            builders: &tagged,
            commits: &commits,
            builds: &builds,
            seen: &seen,
            publications: &Ok(published(&builds)),
        });
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!((counts.superseded, counts.lost), (0, 1));
    }
}
