-- counts per job type too (for `/metrics`), recounted from the table once.
ALTER TABLE {s}.job_counts ADD COLUMN job_type text NOT NULL DEFAULT '';
ALTER TABLE {s}.job_counts DROP CONSTRAINT job_counts_pkey;
DELETE FROM {s}.job_counts;
INSERT INTO {s}.job_counts (slot, status, waiting, job_type, n)
    SELECT 0, status, scheduled_at IS NOT NULL, job_type, count(*) FROM {s}.jobs
    GROUP BY status, scheduled_at IS NOT NULL, job_type;
ALTER TABLE {s}.job_counts ADD PRIMARY KEY (slot, status, waiting, job_type);
CREATE OR REPLACE FUNCTION {s}.count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_slot integer := pg_backend_pid() % 64;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO {s}.job_counts AS c (slot, status, waiting, job_type, n)
        SELECT v_slot, o.status, o.scheduled_at IS NOT NULL, o.job_type, -count(*)
        FROM old_rows o
        GROUP BY o.status, o.scheduled_at IS NOT NULL, o.job_type
        ON CONFLICT (slot, status, waiting, job_type) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO {s}.job_counts AS c (slot, status, waiting, job_type, n)
        SELECT v_slot, r.status, r.scheduled_at IS NOT NULL, r.job_type, count(*)
        FROM new_rows r
        GROUP BY r.status, r.scheduled_at IS NOT NULL, r.job_type
        ON CONFLICT (slot, status, waiting, job_type) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
