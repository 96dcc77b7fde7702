-- named queues and concurrency keys: each job's queue and key as columns (the limited claim
-- filters and counts on them), and each queue's settings as a row (the columns the claim reads,
-- and the whole record as JSON).
ALTER TABLE {s}.jobs ADD COLUMN queue text COLLATE "C" NOT NULL DEFAULT 'default',
    ADD COLUMN concurrency_key text COLLATE "C";
CREATE INDEX jobs_running_queue ON {s}.jobs (queue, concurrency_key) WHERE status = 'RUNNING';
CREATE TABLE {s}.queues (
    name text COLLATE "C" PRIMARY KEY,
    paused boolean NOT NULL,
    concurrency integer,
    key_concurrency integer,
    record text NOT NULL
);
