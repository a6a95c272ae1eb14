//! The builds checker against histories it must call valid, invalid or unknown.

use super::*;
use scenarios::corpus::Ecosystem;
use scenarios::git_builders::BuildTrigger;
use scenarios::git_builders::BuilderSpec;
use std::collections::BTreeSet;

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
