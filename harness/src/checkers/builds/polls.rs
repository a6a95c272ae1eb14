//! The polls on the run's time line: one note for all the sightings and one per commit a
//! poll saw that no build followed.

use std::collections::BTreeSet;

use reports::record::{Event, EventKind};

use super::EXAMPLES;
use super::history::{BuildCounts, BuildsHistory};

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
