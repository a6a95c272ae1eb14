//! The rule for a commit of a builder on commits that was never built: superseded only when
//! no poll saw it and a poll after its push saw a newer commit; lost when a poll saw it or
//! nothing newer was seen; undecided when the sightings could not be read.

use scenarios::git_builders::PushedCommit;

use super::history::{Sighting, Sightings};

/// What an unbuilt commit of a builder on commits was.
#[derive(Debug)]
pub(super) enum Unbuilt<'a> {
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
pub(super) fn unbuilt<'a>(
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
