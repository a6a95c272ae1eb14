//! What the builds checker reads — the builders, the commits, the builds listing, what the
//! watchers saw, the database's publications and the polls' sightings — and the counts it
//! gives the report.

use std::collections::{BTreeMap, BTreeSet};

use scenarios::git_builders::{BuildRow, BuilderSpec, PushedCommit};
use serde::Serialize;

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
