-- Load balancing, after Posit Workbench: the cluster definition written by the first node to come
-- online (the key's fingerprint, never the key), and one row per node with its address, status and
-- last check-in. Times are epoch milliseconds of the database's clock.
CREATE TABLE cluster (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    key_fingerprint TEXT NOT NULL,
    protocol TEXT NOT NULL,
    version TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    defined_by TEXT NOT NULL,
    defined_at_ms BIGINT NOT NULL
);

CREATE TABLE nodes (
    id BIGSERIAL PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    ipv4 TEXT NOT NULL,
    port BIGINT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    desired TEXT NOT NULL DEFAULT 'online',
    started_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    load1_milli BIGINT NOT NULL DEFAULT 0,
    load5_milli BIGINT NOT NULL DEFAULT 0,
    load15_milli BIGINT NOT NULL DEFAULT 0,
    in_flight BIGINT NOT NULL DEFAULT 0,
    clock_offset_ms BIGINT NOT NULL DEFAULT 0
);
