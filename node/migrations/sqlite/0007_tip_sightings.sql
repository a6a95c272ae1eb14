-- What the git builders' polls saw, apart from what they queued: the first time a check of a
-- builder's remote (a poll, or `run`) saw a commit as its branch tip (or a tag's commit), and
-- which node looked (`cli` for `pkgnode run git-builder`). Written as soon as `git ls-remote`
-- answers, before the build is queued, in a statement of its own: a commit seen but never queued
-- stays visible, and a checker can tell a commit pushed over before any poll (superseded) from
-- one a poll saw and lost. One row per (builder, commit), the first sighting, so rows <= commits.
-- first_seen_at_ms is the looking node's clock in epoch milliseconds.
CREATE TABLE git_tip_sightings (
    builder_id BIGINT NOT NULL REFERENCES git_builders (id),
    commit_sha TEXT NOT NULL,
    first_seen_at_ms BIGINT NOT NULL,
    node_id TEXT NOT NULL,
    PRIMARY KEY (builder_id, commit_sha)
);
