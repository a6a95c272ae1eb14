-- A transaction's identity: a random value no server hands out twice (see the PostgreSQL
-- migration). SQLite cannot add a column with a volatile default: the node supplies it.
ALTER TABLE transactions ADD COLUMN uid TEXT;
UPDATE transactions SET uid = lower(hex(randomblob(16)));
