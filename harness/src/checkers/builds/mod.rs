//! The git builders' exactly-once check, over the commit ledger, the final builds listing and
//! what the watchers saw: every broken commit's build failed and nothing else failed
//! (failed builds = broken commits, exactly); no (builder, commit) was published more than
//! once (**duplicates**, counted from the database: the transactions that added files
//! described as that build, `{source}/{builder}@{sha12}`, not the build rows, which a unique
//! constraint already limits to one per commit); every good commit pushed during the run was
//! built, published and seen by a client by the end of the run plus the grace period (else
//! **lost**); no build exists for a commit nobody pushed (**unexpected**). Any of those makes the
//! history invalid.
//!
//! A builder on commits builds its branch's tip when it polls (as PPM does), so a commit pushed
//! over by a later one before any poll looked is never built, and that is allowed: it is
//! *superseded*. Whether a poll looked is read from the nodes' own record of what their polls
//! saw ([`Sightings`]: the first time a poll, or `run`, saw each commit, written before the
//! build is queued), never inferred from the builds: an unbuilt commit is *superseded* only when
//! no poll saw it and a poll after its push saw a newer commit of its builder; it is **lost**
//! when a poll saw it (seen at T on node N, never built: the poll failed to queue it, or the
//! queue lost it) or when no poll saw anything newer (the newest commit of a builder is never
//! superseded). When the sightings could not be read, unbuilt commits are *undecided* and the
//! history is at best unknown. Tag-triggered builders build every tag: nothing is superseded.
//!
//! The repositories' first commits (seq 0, pushed before the measured run) are judged when
//! built (they must succeed, once) but not required: whether creating a builder builds its
//! current head is the node's choice.
//!
//! `history.rs` is what the checker reads and counts, `unbuilt.rs` the rule for a commit
//! never built (superseded, lost or undecided), `polls.rs` the polls on the time line.

mod history;
mod polls;
mod unbuilt;

use std::collections::BTreeMap;

use reports::record::{CheckerResult, Validity};
use scenarios::git_builders::{BuildRow, PushedCommit};
use serde_json::json;

pub use history::{BuildCounts, BuildsHistory, Publications, Sighting, Sightings, publication_key};
pub use polls::poll_events;
use unbuilt::{Unbuilt, unbuilt};

/// The checker's name in the run record.
pub const NAME: &str = "builds";

/// At most this many examples of each problem go into the evidence.
const EXAMPLES: usize = 20;

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
    // Per builder: its pushed commits, for "a newer commit a poll saw after this one's push".
    let mut of_builder: BTreeMap<usize, Vec<&PushedCommit>> = BTreeMap::new();
    for commit in history.commits.iter().filter(|c| c.pushed_s.is_some()) {
        of_builder.entry(commit.builder).or_default().push(commit);
    }
    let mut duplicates = Vec::new();
    let mut lost = Vec::new();
    let mut superseded = Vec::new();
    let mut undecided = Vec::new();
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
        let on_commits =
            triggers.get(&commit.builder) == Some(&scenarios::git_builders::BuildTrigger::Commits);
        if builds.is_empty() && first {
            // Not required (see the module comment).
            continue;
        }
        if builds.is_empty() && on_commits {
            let later = of_builder.get(&commit.builder).map(Vec::as_slice);
            let mut example = example();
            match unbuilt(commit, sha, later.unwrap_or(&[]), history.sightings) {
                Unbuilt::Undecided => {
                    counts.undecided += 1;
                    undecided.push(example);
                }
                Unbuilt::Superseded {
                    by,
                    sha: by_sha,
                    seen,
                } => {
                    counts.superseded += 1;
                    example["superseded_by"] = json!({
                        "seq": by.seq, "commit": by_sha, "pushed_at_s": by.pushed_s,
                        "seen_at_s": seen.seen_at_s, "node": seen.node_id,
                    });
                    superseded.push(example);
                }
                Unbuilt::SeenNotBuilt(seen) => {
                    counts.lost += 1;
                    counts.seen_not_built += 1;
                    example["why"] = json!(format!(
                        "seen by a poll at {:.1} s on node {}, never built",
                        seen.seen_at_s, seen.node_id
                    ));
                    example["seen"] = json!(seen);
                    lost.push(example);
                }
                Unbuilt::NothingNewerSeen => {
                    counts.lost += 1;
                    example["why"] =
                        json!("never built; no poll saw it, nor a newer commit after its push");
                    lost.push(example);
                }
                Unbuilt::Newest => {
                    counts.lost += 1;
                    example["why"] = json!("never built; its builder's newest commit");
                    lost.push(example);
                }
            }
            continue;
        }
        if commit.broken {
            if succeeded > 0 {
                counts.broken_published += 1;
                broken_published.push(example());
            } else if failed == 0 && !first {
                // A broken commit never judged by a build: the queue lost it.
                counts.lost += 1;
                let mut example = example();
                example["why"] = json!("never failed: no build ended");
                lost.push(example);
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
            let mut example = example();
            example["why"] = json!(if succeeded > 0 {
                "built, never seen published by a client"
            } else {
                "never built"
            });
            lost.push(example);
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
    // What could not be judged; never valid while any is left.
    let mut unjudged = Vec::new();
    if let Err(why) = history.publications {
        unjudged.push(format!(
            "duplicates undecided: the database's transactions could not be read ({why})"
        ));
    }
    if let (true, Err(why)) = (counts.undecided > 0, history.sightings) {
        unjudged.push(format!(
            "{} unbuilt commits undecided (superseded or lost): the polls' sightings could not be read ({why})",
            counts.undecided
        ));
    }
    let validity = if !found.is_empty() {
        Validity::Invalid
    } else if counts.commits == 0 || !unjudged.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let summary = if counts.commits == 0 {
        "no commit was pushed during the run: nothing to judge".to_string()
    } else if !found.is_empty() {
        format!("{} commits: {}", counts.commits, found.join(", "))
    } else if !unjudged.is_empty() {
        unjudged.join("; ")
    } else {
        format!(
            "{} commits: {} good published once each, {} broken failed as expected, {} superseded (pushed over before any poll saw them); {} builds, {} retried",
            counts.commits,
            counts.good - counts.superseded.min(counts.good),
            counts.broken,
            counts.superseded,
            counts.builds,
            counts.retried
        )
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
            "sightings": match history.sightings {
                Ok(seen) => json!({"read": "database", "commits_seen": seen.len()}),
                Err(why) => json!({"read": "failed", "detail": why}),
            },
            "duplicates": take(duplicates),
            "lost": take(lost),
            "superseded": take(superseded),
            "undecided": take(undecided),
            "unexpected_failures": take(unexpected_failures),
            "broken_published": take(broken_published),
            "unexpected_builds": take(unexpected),
        }),
    };
    (result, counts)
}

#[cfg(test)]
mod tests;
