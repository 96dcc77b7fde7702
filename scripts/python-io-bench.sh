#!/usr/bin/env bash
# A Python job's 64 MiB read and write (example-jobs/python/files.py) with the mount's I/O
# inline against the blocking pool (io = "pool"), five rounds alternating, on a release server
# (docs/benchmarks.md, I7). Needs: cargo build --release -p queuemgr-tests --bin
# queuemgr-e2e-server. Prints each run's time from started_at to completed_at.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
W="$(mktemp -d)"; mkdir -p $W/jobs $W/data
"$root/scripts/build-python-job.sh" "$root/example-jobs/python/files.py" -o "$root/target/python-jobs/files_py.wasm"
cp "$root/target/python-jobs/files_py.wasm" $W/jobs/files_in.wasm
cp "$root/target/python-jobs/files_py.wasm" $W/jobs/files_pool.wasm
head -c $((64<<20)) /dev/zero | tr '\0' 'q' > $W/data/big.bin
printf '[limits]\nmemory_mib = 512\n[[dirs]]\nhost = "%s"\nguest = "/data"\nmode = "rw"\n' $W/data > $W/jobs/files_in.toml
printf '[limits]\nmemory_mib = 512\n[[dirs]]\nhost = "%s"\nguest = "/data"\nmode = "rw"\nio = "pool"\n' $W/data > $W/jobs/files_pool.toml
"$root/target/release/queuemgr-e2e-server" serve --listen 127.0.0.1:18940 --jobs-dir $W/jobs --registry $W/reg.jsonl > $W/server.log 2>&1 & HP=$!
trap 'kill $HP 2>/dev/null; rm -rf $W' EXIT
for i in $(seq 1 600); do
  types=$(curl -s -X POST localhost:18940/api/v1/execute -H 'content-type: application/json' -d '{"command":"queue","params":{"action":"list_job_types"}}' || true)
  case "$types" in *'"job_type":"files_pool"'*'"job_type":"files_in"'*|*'"job_type":"files_in"'*'"job_type":"files_pool"'*) break ;; esac
  sleep 1
done
curl -s -X POST localhost:18940/api/v1/execute -H 'content-type: application/json' -d '{"command":"queue","params":{"action":"list_job_types"}}' | python3 -c 'import sys,json; d=json.load(sys.stdin)["result"]["data"]; print([ (t["job_type"], t["grants"]["dirs"][0]["io"]) for t in d["job_types"] if t["job_type"].startswith("files")])'
run() {
  curl -s -X POST localhost:18940/api/v1/execute -H 'content-type: application/json' -d "{\"command\":\"queue\",\"params\":{\"action\":\"add_job\",\"job_type\":\"$1\",\"job_id\":\"$3\",\"start\":true,\"params\":$2}}" >/dev/null
  for i in $(seq 1 600); do
    s=$(curl -s -X POST localhost:18940/api/v1/execute -H 'content-type: application/json' -d "{\"command\":\"queue\",\"params\":{\"action\":\"get_status\",\"job_id\":\"$3\"}}")
    case "$s" in *'"COMPLETED"'*|*'"ERROR"'*) echo "$s" | python3 -c 'import sys,json,datetime as D; d=json.load(sys.stdin)["result"]["data"]; f=D.datetime.fromisoformat; d=d.get("status",d); print(round((f(d["completed_at"])-f(d["started_at"])).total_seconds()*1000,1),"ms", d["status"])'; return ;; esac
    sleep 0.02
  done
}
for r in 1 2 3 4 5; do
  for t in files_in files_pool; do
    echo "$t read r$r: $(run $t '{"op":"read","path":"/data/big.bin"}' $t-r$r)"
    echo "$t write r$r: $(run $t "{\"op\":\"write\",\"path\":\"/data/o-$t.bin\",\"bytes\":$((64<<20))}" $t-w$r)"
  done
done
