-- named queues, concurrency keys and rate limits: each job's queue and key as columns (the
-- limited and fair claims filter, count and take turns on them), each queue's settings as a
-- row (the columns the claim reads, and the whole record as JSON), and the rate buckets.
ALTER TABLE {s}.jobs ADD COLUMN queue text COLLATE "C" NOT NULL DEFAULT 'default',
    ADD COLUMN concurrency_key text COLLATE "C";
-- Runnable jobs with a key, by key: a fair claim walks the keys (a skip scan) and takes each
-- key's first jobs.
CREATE INDEX jobs_keyed ON {s}.jobs (queue, concurrency_key, priority DESC, scheduled_at, seq)
    WHERE status = 'PENDING' AND scheduled_at IS NOT NULL AND concurrency_key IS NOT NULL;
CREATE TABLE {s}.queues (
    name text COLLATE "C" PRIMARY KEY,
    paused boolean NOT NULL,
    concurrency integer,
    key_concurrency integer,
    record text NOT NULL,
    -- Whether the settings hold any claim back (a pause, a limit, a rate): a claim on the fast
    -- path looks at it, so that a limit another host just set holds at once.
    limited boolean NOT NULL DEFAULT false
);
-- The generic cell rate algorithm's state per bucket (a queue's, or a key's within a queue):
-- its theoretical arrival time, and when it admits its next start.
CREATE TABLE {s}.rate_buckets (
    bucket text COLLATE "C" PRIMARY KEY,
    tat bigint NOT NULL,
    reopen bigint NOT NULL
);
CREATE INDEX rate_buckets_reopen ON {s}.rate_buckets (reopen);
