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

use std::collections::{BTreeMap, BTreeSet};

use reports::record::{CheckerResult, Event, EventKind, Validity};
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
    /// What the polls saw, or why it could not be read (unbuilt commits are then undecided).
    pub sightings: &'a Result<Sightings, String>,
}

/// The first time a check of a builder's remote (a poll, or `run`) saw a commit there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sighting {
    /// Seconds since the run start, on the time line of [`PushedCommit::pushed_s`]: the node's
    /// clock (epoch milliseconds) minus the harness's wall clock at the run start. The two
    /// agree up to the offset between the node's clock and the harness's: nil here, where the
    /// harness and the nodes share one host; on separate hosts that offset (which the
    /// `synchronized-clocks` rule bounds only between nodes and database) shifts every sighting.
    pub seen_at_s: f64,
    /// The node that looked (`cli` for `pkgnode run git-builder`).
    pub node_id: String,
}

/// (builder name, full commit id) → the commit's first sighting.
pub type Sightings = BTreeMap<(String, String), Sighting>;

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
    /// Commits never built, never seen by a poll, pushed over by a commit a poll saw after
    /// their push (commits trigger).
    pub superseded: usize,
    /// Commits a poll saw that were never built (counted in `lost` too).
    pub seen_not_built: usize,
    /// Unbuilt commits not judged: the sightings could not be read.
    pub undecided: usize,
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

/// The polls on the run's time line, without flooding it (a run has 100 builders and thousands
/// of sightings): one note for all of them — how many commits the polls saw, how many were
/// superseded — and one note per commit a poll saw and no build followed (at most
/// [`EXAMPLES`]), at the time of that poll: the moments worth finding on a chart. Every
/// sighting's time is in the checker's evidence, per commit, not here.
pub fn poll_events(history: &BuildsHistory, counts: &BuildCounts) -> Vec<Event> {
    let Ok(sightings) = history.sightings else {
        return vec![Event {
            at_s: 0.0,
            end_s: None,
            kind: EventKind::Note,
            message: "the polls' sightings could not be read: unbuilt commits are undecided".into(),
        }];
    };
    let in_run = sightings.values().filter(|s| s.seen_at_s >= 0.0).count();
    let builders: BTreeSet<&str> = sightings.keys().map(|(b, _)| b.as_str()).collect();
    let mut events = vec![Event {
        at_s: 0.0,
        end_s: None,
        kind: EventKind::Note,
        message: format!(
            "polls saw {in_run} new commits during the run ({} before it) on {} builders: {} commits superseded, {} seen and never built",
            sightings.len() - in_run,
            builders.len(),
            counts.superseded,
            counts.seen_not_built
        ),
    }];
    let built: BTreeSet<(&str, &str)> = history
        .builds
        .iter()
        .map(|b| (b.builder.as_str(), b.commit_sha.as_str()))
        .collect();
    let on_commits: BTreeSet<usize> = history
        .builders
        .iter()
        .filter(|b| b.trigger == scenarios::git_builders::BuildTrigger::Commits)
        .map(|b| b.index)
        .collect();
    let seen_not_built = history
        .commits
        .iter()
        .filter(|c| c.seq > 0 && c.pushed_s.is_some() && on_commits.contains(&c.builder))
        .filter_map(|c| {
            let sha = c.sha.as_deref()?;
            let seen = sightings.get(&(c.builder_name.clone(), sha.to_string()))?;
            (!built.contains(&(c.builder_name.as_str(), sha))).then_some((c, sha, seen))
        });
    events.extend(seen_not_built.take(EXAMPLES).map(|(c, sha, seen)| Event {
        at_s: seen.seen_at_s.max(0.0),
        end_s: None,
        kind: EventKind::Note,
        message: format!(
            "a poll on node {} saw {} {} ({}) and it was never built",
            seen.node_id,
            c.builder_name,
            c.version,
            &sha[..sha.len().min(12)]
        ),
    }));
    events
}

/// What an unbuilt commit of a builder on commits was.
#[derive(Debug)]
enum Unbuilt<'a> {
    /// No poll saw it; a poll after its push saw `by` (the first such sighting).
    Superseded {
        by: &'a PushedCommit,
        sha: &'a str,
        seen: &'a Sighting,
    },
    /// A poll saw it: it should have been queued.
    SeenNotBuilt(&'a Sighting),
    /// No poll saw it nor anything newer after its push: nothing excuses it.
    NothingNewerSeen,
    /// Its builder's newest commit: nothing could supersede it.
    Newest,
    /// The sightings could not be read.
    Undecided,
}

/// Judges an unbuilt commit of a builder on commits, `of_builder` being that builder's pushed
/// commits. A newer commit can only be pushed after this one, so any sighting of it is, in real
/// time, after this push; the time comparison checks that the record agrees (a sighting stamped
/// before the push would be a clock offset or a bug, and never excuses the commit).
fn unbuilt<'a>(
    commit: &PushedCommit,
    sha: &str,
    of_builder: &'a [&'a PushedCommit],
    sightings: &'a Result<Sightings, String>,
) -> Unbuilt<'a> {
    let mut later = of_builder
        .iter()
        .filter(|later| later.seq > commit.seq)
        .peekable();
    let newest = later.peek().is_none();
    let Ok(sightings) = sightings else {
        // Nothing newer was pushed: lost, whatever the polls saw.
        return if newest {
            Unbuilt::Newest
        } else {
            Unbuilt::Undecided
        };
    };
    let key = |name: &str, sha: &str| (name.to_string(), sha.to_string());
    if let Some(seen) = sightings.get(&key(&commit.builder_name, sha)) {
        return Unbuilt::SeenNotBuilt(seen);
    }
    let pushed_s = commit.pushed_s.unwrap_or(f64::INFINITY);
    later
        .filter_map(|later| {
            let later_sha = later.sha.as_deref()?;
            let seen = sightings.get(&key(&later.builder_name, later_sha))?;
            (seen.seen_at_s > pushed_s).then_some((*later, later_sha, seen))
        })
        .min_by(|a, b| a.2.seen_at_s.total_cmp(&b.2.seen_at_s))
        .map_or(Unbuilt::NothingNewerSeen, |(by, sha, seen)| {
            Unbuilt::Superseded { by, sha, seen }
        })
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

    /// What the polls saw when they queued `builds`: each built commit, half a second after its
    /// push, on node n1.
    fn polls_of(commits: &[PushedCommit], builds: &[BuildRow]) -> Sightings {
        commits
            .iter()
            .filter(|c| builds.iter().any(|b| Some(&b.commit_sha) == c.sha.as_ref()))
            .map(|c| sighting(c, c.pushed_s.unwrap() + 0.5, "n1"))
            .collect()
    }

    fn sighting(c: &PushedCommit, at_s: f64, node: &str) -> ((String, String), Sighting) {
        (
            (c.builder_name.clone(), c.sha.clone().unwrap()),
            Sighting {
                seen_at_s: at_s,
                node_id: node.into(),
            },
        )
    }

    fn judge_seen(
        commits: &[PushedCommit],
        builds: &[BuildRow],
        seen: &BTreeSet<(usize, String)>,
        sightings: &Result<Sightings, String>,
    ) -> (CheckerResult, BuildCounts) {
        let builders = builders();
        check(&BuildsHistory {
            builders: &builders,
            commits,
            builds,
            seen,
            publications: &Ok(published(builds)),
            sightings,
        })
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
            sightings: &Ok(polls_of(commits, builds)),
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
            sightings: &Ok(polls_of(&commits, &builds)),
        });
        assert_eq!(result.validity, Validity::Invalid);
        assert_eq!((counts.superseded, counts.lost), (0, 1));
    }

    /// Builder 1 gets commits 2 and 3 on top of the good history; only 3 is built.
    fn pushed_over() -> (Vec<PushedCommit>, Vec<BuildRow>, BTreeSet<(usize, String)>) {
        let (mut commits, mut builds, mut seen) = good_history();
        commits.push(commit(1, 2, false));
        commits.push(commit(1, 3, false));
        builds.push(build(8, &commits[6], "succeeded", "n1"));
        seen.insert((1, "1.0.3".to_string()));
        (commits, builds, seen)
    }

    #[test]
    fn a_commit_a_poll_saw_is_lost_when_never_built_though_a_later_one_was() {
        // The planted fault: a poll saw commit 2 as the tip (2.5 s, node n2) and did not queue
        // it; commit 3 was pushed, seen and built. Without the sightings that looks superseded.
        let (commits, builds, seen) = pushed_over();
        let mut sightings = polls_of(&commits, &builds);
        sightings.extend([sighting(&commits[5], 2.5, "n2")]);
        let sightings = Ok(sightings);
        let (result, counts) = judge_seen(&commits, &builds, &seen, &sightings);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert_eq!(
            (counts.lost, counts.seen_not_built, counts.superseded),
            (1, 1, 0)
        );
        let lost = &result.evidence["lost"][0];
        assert_eq!(lost["seq"], 2);
        assert_eq!(
            lost["why"],
            "seen by a poll at 2.5 s on node n2, never built"
        );
        // On the time line: the summary note, and one note at the poll that saw it.
        let builders = builders();
        let history = BuildsHistory {
            builders: &builders,
            commits: &commits,
            builds: &builds,
            seen: &seen,
            publications: &Ok(published(&builds)),
            sightings: &sightings,
        };
        let events = poll_events(&history, &counts);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            events[0].message.contains("1 seen and never built"),
            "{events:?}"
        );
        assert_eq!(events[1].at_s, 2.5);
        assert!(
            events[1].message.contains("node n2 saw gb-t-1 1.0.2"),
            "{events:?}"
        );
    }

    #[test]
    fn a_commit_no_poll_saw_is_superseded_by_a_newer_one_seen_after_its_push() {
        let (commits, builds, seen) = pushed_over();
        // Commit 2 pushed at 2.1 s, never seen; commit 3 seen at 3.6 s.
        let sightings = Ok(polls_of(&commits, &builds));
        let (result, counts) = judge_seen(&commits, &builds, &seen, &sightings);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert_eq!((counts.superseded, counts.lost), (1, 0));
        let superseded = &result.evidence["superseded"][0];
        assert_eq!(superseded["seq"], 2);
        assert_eq!(superseded["superseded_by"]["seq"], 3);
        assert_eq!(superseded["superseded_by"]["seen_at_s"], 3.6);
        // A sighting of the newer commit stamped before commit 2's push excuses nothing.
        let early: Sightings = sightings
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                if k.1 == "sha13" {
                    v.seen_at_s = 2.0;
                }
                (k.clone(), v)
            })
            .collect();
        let (result, counts) = judge_seen(&commits, &builds, &seen, &Ok(early));
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert_eq!((counts.superseded, counts.lost), (0, 1));
        assert_eq!(
            result.evidence["lost"][0]["why"],
            "never built; no poll saw it, nor a newer commit after its push"
        );
    }

    #[test]
    fn unreadable_sightings_leave_unbuilt_commits_unknown_not_valid() {
        let (commits, builds, seen) = pushed_over();
        let unreadable = Err("psql: the primary refused the connection".to_string());
        let (result, counts) = judge_seen(&commits, &builds, &seen, &unreadable);
        assert_eq!(result.validity, Validity::Unknown, "{}", result.summary);
        assert_eq!(
            (counts.undecided, counts.superseded, counts.lost),
            (1, 0, 0)
        );
        assert!(
            result.summary.contains("1 unbuilt commits undecided"),
            "{}",
            result.summary
        );
        assert_eq!(result.evidence["sightings"]["read"], "failed");
        // With every commit built there is nothing to decide: the sightings are not needed.
        let (commits, builds, seen) = good_history();
        let (result, counts) = judge_seen(&commits, &builds, &seen, &unreadable);
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert_eq!(counts.undecided, 0);
        // A builder's newest commit unbuilt is lost whatever could not be read: nothing newer
        // could have superseded it.
        let without: Vec<BuildRow> = builds.into_iter().filter(|b| b.id != 5).collect();
        let (result, counts) = judge_seen(&commits, &without, &seen, &unreadable);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert_eq!((counts.lost, counts.undecided), (1, 0));
    }
}
