-- Every token the node issues, by its id (the `jti` claim), so a leaked one can be listed and
-- revoked. Tokens are checked against this table on every request they authenticate; a token
-- with no row here is refused. Times are epoch milliseconds.
CREATE TABLE tokens (
    guid TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    source TEXT,
    repo TEXT,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
