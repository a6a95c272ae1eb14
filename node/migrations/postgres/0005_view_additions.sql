-- A repository's view is built from the previous one plus the files the transactions since
-- added (and a check that none removed a file): both found without scanning every package.
CREATE INDEX packages_added ON packages (added_tx);
CREATE INDEX packages_removed ON packages (removed_tx) WHERE removed_tx IS NOT NULL;
