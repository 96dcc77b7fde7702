-- durable execution: each child job names the job whose run enqueued it, so that a flow's
-- jobs are found by their parent (`get_flow`, a stop that stops a parent's live children).
ALTER TABLE {s}.jobs ADD COLUMN parent text COLLATE "C";
CREATE INDEX jobs_parent ON {s}.jobs (parent, seq) WHERE parent IS NOT NULL;
