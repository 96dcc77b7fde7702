-- jobs, hosts, leadership.
CREATE TABLE {s}.jobs (
    seq bigserial NOT NULL UNIQUE,
    job_id text PRIMARY KEY,
    job_type text NOT NULL,
    status text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    scheduled_at bigint,
    host text,
    lease_until bigint,
    unique_key text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    ended_at bigint,
    record text NOT NULL
);
CREATE INDEX jobs_runnable ON {s}.jobs (priority DESC, scheduled_at, seq)
    WHERE status = 'PENDING' AND scheduled_at IS NOT NULL;
CREATE INDEX jobs_scheduled ON {s}.jobs (scheduled_at)
    WHERE status = 'PENDING' AND scheduled_at IS NOT NULL;
CREATE INDEX jobs_running ON {s}.jobs (host, lease_until) WHERE status = 'RUNNING';
CREATE INDEX jobs_lease ON {s}.jobs (lease_until) WHERE status = 'RUNNING';
CREATE UNIQUE INDEX jobs_unique_key ON {s}.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('PENDING', 'RUNNING');
CREATE INDEX jobs_status_seq ON {s}.jobs (status, seq);
CREATE INDEX jobs_type_seq ON {s}.jobs (job_type, seq);
CREATE INDEX jobs_ended ON {s}.jobs (ended_at)
    WHERE status IN ('COMPLETED', 'ERROR', 'STOPPED', 'DELETED');
CREATE TABLE {s}.hosts (
    host_id text PRIMARY KEY,
    job_types text[] NOT NULL DEFAULT '{}',
    seen_at bigint NOT NULL
);
CREATE TABLE {s}.leader (
    name text PRIMARY KEY,
    host_id text NOT NULL,
    expires_at bigint NOT NULL
);
-- Counts per status kept by the writes themselves, so that health and list totals never
-- scan the table. Spread over 64 slots (by connection) so that connections writing at
-- once do not queue on one counter row; readers sum the slots.
CREATE TABLE {s}.job_counts (
    slot integer NOT NULL,
    status text NOT NULL,
    waiting boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (slot, status, waiting)
);
CREATE FUNCTION {s}.count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_slot integer := pg_backend_pid() % 64;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO {s}.job_counts AS c (slot, status, waiting, n)
        SELECT v_slot, o.status, o.scheduled_at IS NOT NULL, -count(*) FROM old_rows o
        GROUP BY o.status, o.scheduled_at IS NOT NULL
        ON CONFLICT (slot, status, waiting) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO {s}.job_counts AS c (slot, status, waiting, n)
        SELECT v_slot, r.status, r.scheduled_at IS NOT NULL, count(*) FROM new_rows r
        GROUP BY r.status, r.scheduled_at IS NOT NULL
        ON CONFLICT (slot, status, waiting) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON {s}.jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.count_jobs();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON {s}.jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.count_jobs();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON {s}.jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.count_jobs();
