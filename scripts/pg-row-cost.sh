#!/usr/bin/env bash
# What PostgreSQL itself pays to write a job's row versions, apart from the host: pgbench, one
# client, the three writes of a job (insert PENDING, RUNNING, COMPLETED) each as one statement
# of 28 rows (the size of a 64-client group) with its commit, on the job store's real schema
# (`queuemgr migrate` into a schema of its own, dropped after). Then the same without the
# counters' statement trigger, without the two full secondary indexes, and with UPDATE … FROM
# instead of the upsert. Prints milliseconds per statement (docs/benchmarks.md, P3).
#
#   scripts/pg-row-cost.sh [postgres://postgres@127.0.0.1:5432/test] [seconds per run]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
url="${1:-postgres://postgres@127.0.0.1:5432/test}"
secs="${2:-12}"
schema="qm_rowcost_$$"
bin="$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)"
[ -x "$bin" ] || bin="$(command -v pgbench)"
work="$(mktemp -d)"
trap 'psql "$url" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$work"' EXIT

(cd "$root" && QUEUEMGR_LOG=warn cargo run -q --release -p queuemgr -- migrate --store "$url" --store-schema "$schema") >/dev/null

rows="FROM generate_series(1, 28) g"
id="'j' || :b || '-' || g"
cat >"$work/upsert.sql" <<EOF
\set b random(1, 1000000000)
INSERT INTO $schema.jobs AS j (job_id, job_type, status, priority, created_at, updated_at, record, queue) SELECT $id, 'noop', 'PENDING', 0, 1, 1, repeat('x', 700), 'default' $rows ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, record = EXCLUDED.record;
INSERT INTO $schema.jobs AS j (job_id, job_type, status, priority, host, lease_until, created_at, updated_at, record, queue) SELECT $id, 'noop', 'RUNNING', 0, 'h1', 5, 1, 2, repeat('y', 750), 'default' $rows ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status, host = EXCLUDED.host, lease_until = EXCLUDED.lease_until, updated_at = EXCLUDED.updated_at, record = EXCLUDED.record;
INSERT INTO $schema.jobs AS j (job_id, job_type, status, priority, host, created_at, updated_at, ended_at, record, queue) SELECT $id, 'noop', 'COMPLETED', 0, 'h1', 1, 3, 3, repeat('z', 800), 'default' $rows ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status, host = EXCLUDED.host, lease_until = NULL, updated_at = EXCLUDED.updated_at, ended_at = EXCLUDED.ended_at, record = EXCLUDED.record;
EOF
cat >"$work/update.sql" <<EOF
\set b random(1, 1000000000)
INSERT INTO $schema.jobs AS j (job_id, job_type, status, priority, created_at, updated_at, record, queue) SELECT $id, 'noop', 'PENDING', 0, 1, 1, repeat('x', 700), 'default' $rows;
UPDATE $schema.jobs j SET status = 'RUNNING', host = 'h1', lease_until = 5, updated_at = 2, record = v.r FROM (SELECT $id AS id, repeat('y', 750) AS r $rows) v WHERE j.job_id = v.id;
UPDATE $schema.jobs j SET status = 'COMPLETED', lease_until = NULL, updated_at = 3, ended_at = 3, record = v.r FROM (SELECT $id AS id, repeat('z', 800) AS r $rows) v WHERE j.job_id = v.id;
EOF

run() {
  local what="$1" file="$2"
  "$bin" "$url" -n -c 1 -T "$secs" -r -f "$file" 2>/dev/null |
    awk -v what="$what" '/^tps/ {tps = $3} /^ +[0-9.]+ +[0-9]+ +(INSERT|UPDATE)/ {ms = ms sprintf(" %s", $1)}
      END {printf "| %s | %s | %.0f |\n", what, ms, tps * 3 * 28}'
}
sql() { psql "$url" -q -c "$1" >/dev/null; }

echo "| variant | ms per statement of 28 rows (pending, running, completed) | row versions/s |"
echo "|---|---|---|"
run "the store's schema, upsert" "$work/upsert.sql"
run "the same, UPDATE … FROM for the two transitions" "$work/update.sql"
sql "ALTER TABLE $schema.jobs DISABLE TRIGGER USER"
run "no counters' trigger" "$work/upsert.sql"
sql "ALTER TABLE $schema.jobs ENABLE TRIGGER USER; DROP INDEX $schema.jobs_type_seq; DROP INDEX $schema.jobs_status_seq"
run "no (job_type, seq) and (status, seq) indexes" "$work/upsert.sql"
sql "ALTER TABLE $schema.jobs DISABLE TRIGGER USER"
run "neither" "$work/upsert.sql"
