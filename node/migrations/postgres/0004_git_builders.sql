-- Git builders (PPM's `git` and `git-python` sources): each builder watches one remote for new
-- commits or tags; each (builder, commit) is built at most once and published at most once.
-- git_builds is the build queue shared by every node: a worker claims a queued build with a lease
-- (lease_expires_at_ms, renewed while it builds, lease_token naming the claim); an expired lease
-- puts the build back in the queue. A succeeded build's row is updated in the same database
-- transaction that publishes its package files (transaction_id). Times are epoch milliseconds.
CREATE TABLE git_builders (
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT NOT NULL REFERENCES sources (id),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    branch TEXT,
    build_trigger TEXT NOT NULL,
    sub_dir TEXT,
    clone_depth BIGINT NOT NULL DEFAULT 1,
    created_at_ms BIGINT NOT NULL,
    -- Polling: one node at a time holds a builder's poll lease.
    next_poll_at_ms BIGINT NOT NULL DEFAULT 0,
    poll_owner TEXT,
    poll_lease_until_ms BIGINT NOT NULL DEFAULT 0,
    last_polled_at_ms BIGINT,
    last_poll_error TEXT,
    UNIQUE (source_id, name)
);

CREATE TABLE git_builds (
    id BIGSERIAL PRIMARY KEY,
    builder_id BIGINT NOT NULL REFERENCES git_builders (id),
    commit_sha TEXT NOT NULL,
    tag TEXT,
    version TEXT,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    node_id TEXT,
    lease_token TEXT,
    lease_expires_at_ms BIGINT,
    queued_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT,
    finished_at_ms BIGINT,
    transaction_id BIGINT REFERENCES transactions (id),
    error TEXT,
    log TEXT,
    UNIQUE (builder_id, commit_sha)
);
CREATE INDEX git_builds_state ON git_builds (state, queued_at_ms);
CREATE INDEX git_builds_transaction ON git_builds (transaction_id);
