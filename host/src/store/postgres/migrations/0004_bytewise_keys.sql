-- the keys compare bytewise (`COLLATE "C"`): ids, types and statuses are never sorted
-- for people, and a locale's comparison costs every index lookup and insert several times
-- a `memcmp`. A host's running jobs are found through `jobs_lease` (they are few), so
-- `jobs_running` no longer costs every claim an index entry.
ALTER TABLE {s}.jobs
    ALTER COLUMN job_id TYPE text COLLATE "C",
    ALTER COLUMN job_type TYPE text COLLATE "C",
    ALTER COLUMN status TYPE text COLLATE "C",
    ALTER COLUMN host TYPE text COLLATE "C",
    ALTER COLUMN unique_key TYPE text COLLATE "C";
DROP INDEX {s}.jobs_running;
