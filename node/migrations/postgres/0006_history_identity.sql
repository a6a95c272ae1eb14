-- A transaction's identity: a random value no server hands out twice. Ids come from a sequence
-- that a promoted standby, missing the newest commits of the old primary, draws again; a node
-- whose head is (id, uid) sees that its head is gone when the same id now has another uid.
ALTER TABLE transactions ADD COLUMN uid TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text);
