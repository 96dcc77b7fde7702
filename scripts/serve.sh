#!/usr/bin/env bash
# Builds the example jobs into ./jobs and serves them: the one command to run queuemgr.
# Extra arguments go to `queuemgr serve` (see `--help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
./scripts/build-jobs.sh "$root/jobs"
# The Python examples (componentize-py from PyPI the first time; skipped when unchanged). The
# host serves while they compile for the first time, listing them as loading.
for py in my_job primes; do
  ./scripts/build-python-job.sh "example-jobs/python/$py.py" -o "$root/jobs/${py}_py.wasm"
done
exec cargo run --release -p queuemgr -- serve --jobs-dir "$root/jobs" --default-job-type my_job "$@"
