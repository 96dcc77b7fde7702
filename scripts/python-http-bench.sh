#!/usr/bin/env bash
# An HTTP loop from Python against the same loop from Rust: `fetch` (example-jobs/python/
# fetch.py, queuemgr_job.http) and `fetch_url` (Rust), each one job of 1 GET and one of 400
# GETs to one local HTTP/1.1 keep-alive server, three rounds, alternating, on a release
# server (docs/benchmarks.md, I8). Needs: cargo build --release -p queuemgr-tests --bin
# queuemgr-e2e-server, and the example jobs built (scripts/build-jobs.sh or the tests).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
W="$(mktemp -d)"; mkdir -p $W/jobs
"$root/scripts/build-python-job.sh" "$root/example-jobs/python/fetch.py" -o "$root/target/python-jobs/fetch_py.wasm"
cp "$root/target/python-jobs/fetch_py.wasm" $W/jobs/fetch_py.wasm
cp "$root/example-jobs/target/wasm32-wasip2/release/fetch_url.wasm" $W/jobs/fetch_url.wasm
printf '[http]\nallow = ["http://127.0.0.1:*"]\nmax_requests = 100000\n' > $W/jobs/fetch_py.toml
cp $W/jobs/fetch_py.toml $W/jobs/fetch_url.toml
cat > $W/server.py <<'PY'
import socket, sys, threading
# A minimal HTTP/1.1 keep-alive server: reads a request head, answers 5 bytes, loops.
def serve(c):
    buf = b""
    with c:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d: return
                buf += d
            buf = buf[buf.index(b"\r\n\r\n") + 4:]
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 $W/server.py 18931 & SP=$!
"$root/target/release/queuemgr-e2e-server" serve --listen 127.0.0.1:18930 --jobs-dir $W/jobs --registry $W/reg.jsonl > $W/server.log 2>&1 & HP=$!
trap 'kill $SP $HP 2>/dev/null; rm -rf $W' EXIT
for i in $(seq 1 600); do curl -s localhost:18930/health | grep -q fetch_py && curl -s -X POST localhost:18930/api/v1/execute -H 'content-type: application/json' -d '{"command":"queue","params":{"action":"list_job_types"}}' | grep -q '"job_type":"fetch_py"' && break; sleep 1; done
run() { # type repeat id
  curl -s -X POST localhost:18930/api/v1/execute -H 'content-type: application/json' -d "{\"command\":\"queue\",\"params\":{\"action\":\"add_job\",\"job_type\":\"$1\",\"job_id\":\"$3\",\"start\":true,\"params\":{\"url\":\"http://127.0.0.1:18931/x\",\"repeat\":$2}}}" >/dev/null
  for i in $(seq 1 600); do
    s=$(curl -s -X POST localhost:18930/api/v1/execute -H 'content-type: application/json' -d "{\"command\":\"queue\",\"params\":{\"action\":\"get_status\",\"job_id\":\"$3\"}}")
    echo "$s" | grep -q '"COMPLETED"\|"ERROR"' && { echo "$s"; return; }; sleep 0.05; done
}
for r in 1 2 3; do
  for t in fetch_url fetch_py; do
    a=$(run $t 1 "$t-a$r" | python3 -c 'import sys,json,datetime as D; d=json.load(sys.stdin)["result"]["data"]; d=d.get("status",d) if isinstance(d.get("status"),dict) else d; f=D.datetime.fromisoformat; print(round((f(d["completed_at"])-f(d["started_at"])).total_seconds()*1000,2),"ms", d["status"])' 2>&1 || true)
    b=$(run $t 400 "$t-b$r" | python3 -c 'import sys,json,datetime as D; d=json.load(sys.stdin)["result"]["data"]; d=d.get("status",d) if isinstance(d.get("status"),dict) else d; f=D.datetime.fromisoformat; print(round((f(d["completed_at"])-f(d["started_at"])).total_seconds()*1000,2),"ms", d["status"])' 2>&1 || true)
    echo "$t round $r: 1 request: $a | 400 requests: $b"
  done
done
