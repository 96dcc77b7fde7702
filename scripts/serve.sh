#!/usr/bin/env bash
# Builds the example jobs into ./jobs and serves them: the one command to run queuemgr.
# Extra arguments go to `queuemgr serve` (see `--help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
./scripts/build-jobs.sh "$root/jobs"
exec cargo run --release -p queuemgr -- serve --jobs-dir "$root/jobs" --default-job-type my_job "$@"
