-- Core metadata: sources, repos, subscriptions, transactions and package files.
-- Every change is a transaction with an increasing id; rows carry the transaction that added them
-- (and removed them), so any snapshot can be rebuilt exactly.
CREATE TABLE transactions (
    id BIGSERIAL PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE INDEX transactions_created ON transactions (created_at_ms);

CREATE TABLE sources (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_tx BIGINT NOT NULL REFERENCES transactions (id)
);

CREATE TABLE repos (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    authenticated BIGINT NOT NULL DEFAULT 0,
    created_tx BIGINT NOT NULL REFERENCES transactions (id)
);

CREATE TABLE subscriptions (
    repo_id BIGINT NOT NULL REFERENCES repos (id),
    source_id BIGINT NOT NULL REFERENCES sources (id),
    priority BIGINT NOT NULL,
    added_tx BIGINT NOT NULL REFERENCES transactions (id),
    removed_tx BIGINT REFERENCES transactions (id),
    PRIMARY KEY (repo_id, source_id, added_tx)
);

CREATE TABLE packages (
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT NOT NULL REFERENCES sources (id),
    name TEXT NOT NULL,
    normalized TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    file_kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    metadata TEXT NOT NULL,
    added_tx BIGINT NOT NULL REFERENCES transactions (id),
    removed_tx BIGINT REFERENCES transactions (id),
    UNIQUE (source_id, filename)
);
CREATE INDEX packages_source_name ON packages (source_id, normalized);

CREATE TABLE download_counts (
    package_id BIGINT PRIMARY KEY REFERENCES packages (id),
    count BIGINT NOT NULL
);
