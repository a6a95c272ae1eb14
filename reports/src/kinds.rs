//! The request kinds the report knows by name: the recorder's kinds its summary, charts and
//! thresholds single out. Their one home; the workloads (`scenarios`) record under these names.

/// A whole install, scheduled to finished: [`crate::summary::Summary::installs`] and
/// [`crate::summary::Summary::rate`] count these, and a threshold that names no kind judges them.
pub const INSTALL_KIND: &str = "install";
/// Commit → published: from a push's return to the version's first appearance in the
/// repository's index (the git-builders run's primary kind).
pub const COMMIT_KIND: &str = "commit_to_published";
/// A build's run time on a node (started → finished).
pub const BUILD_KIND: &str = "build_time";
