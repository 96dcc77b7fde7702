#!/usr/bin/env bash
# Measures "queued command" latency as seen by mcp-proxy-adapter's own client: the wall time of one
# `await JsonRpcClient.execute_command_unified("noop", {})` (open/reuse /ws, execute_command,
# wait for command_completed, fetch the result with queue_get_job_status), n calls one after the
# other after a warm-up, against
#   1. the ORIGINAL Python stack, queuemgr 1.0.25 + mcp-proxy-adapter 8.11.7
#      (tests/original/server.py: a `noop` command declared use_queue = True), and
#   2. only when QUEUEMGR_SERVER_CMD is set, OUR server, started as `$QUEUEMGR_SERVER_CMD
#      --listen 127.0.0.1:PORT` (a shell command line; this script appends --listen).
# Prints a markdown table (p50/p90/p99 ms and the client's WS_UNREACHABLE_RPC_POLLING_FALLBACK
# warnings: 0 means every call waited over /ws) and, when both ran, original p50 / ours p50.
#
#   scripts/command-bench.sh
#   BENCH_N=200 QUEUEMGR_SERVER_CMD='target/release/queuemgr serve' scripts/command-bench.sh
#
# The first run makes the venv target/original-venv (python3 -m venv) and installs
# queuemgr==1.0.25 and mcp-proxy-adapter==8.11.7 from the package index with pip (the only
# network use); later runs reuse it. Servers listen on free loopback ports only and are stopped
# at the end, also on failure. Environment:
#   BENCH_N            timed calls per stack (default 200)
#   BENCH_WARMUP       untimed calls first (default 20)
#   BENCH_COMMAND      command (default noop); BENCH_PARAMS its params as JSON (default {})
#   BENCH_API_KEY      sent as X-API-Key to both stacks (default: none)
#   BENCH_TIMEOUT_S    bound of one bench run, seconds (default 900)
#   BENCH_READY_S      how long a server may take to answer /health (default 120)
#   QUEUEMGR_SERVER_CMD  see above (default: unset, only the original is measured)
# Per-stack JSON results, server logs and one traced /ws exchange per stack (every frame the
# client sent and received, plus the queue_get_job_status answer) go to target/command-bench/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/original-venv"
out="$root/target/command-bench"
py="$venv/bin/python"
n="${BENCH_N:-200}"
warmup="${BENCH_WARMUP:-20}"
command="${BENCH_COMMAND:-noop}"
params="${BENCH_PARAMS:-{\}}"
bench_timeout="${BENCH_TIMEOUT_S:-900}"
ready_s="${BENCH_READY_S:-120}"
mkdir -p "$out"
# Keep tests/original/ free of __pycache__ (the queue workers import server.py by name).
export PYTHONDONTWRITEBYTECODE=1

# 1. The original stack, in its own venv (idempotent).
[ -x "$py" ] || python3 -m venv "$venv"
installed() {
  "$py" - <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
want = {"queuemgr": "1.0.25", "mcp-proxy-adapter": "8.11.7"}
sys.exit(0 if all(m.version(k) == v for k, v in want.items()) else 1)
EOF
}
if ! installed; then
  echo "command-bench: installing queuemgr==1.0.25 mcp-proxy-adapter==8.11.7 into $venv" >&2
  if ! "$py" -m pip install --disable-pip-version-check -q \
      "queuemgr==1.0.25" "mcp-proxy-adapter==8.11.7" >"$out/pip-install.log" 2>&1; then
    cat "$out/pip-install.log" >&2
    exit 1
  fi
fi

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Each server runs in its own session (setsid), so that stopping it also ends the queue's
# forkserver and job processes it started: TERM to the server, then KILL to its process group.
server_pid=""
stop_server() {
  local pid="$server_pid"
  [ -n "$pid" ] || return 0
  server_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# wait_health URL: wait until the server (ours) answers GET /health with 200.
wait_health() {
  "$py" - "$1" "$ready_s" "$server_pid" <<'EOF'
import os, sys, time, urllib.request
url, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("command-bench: the server exited before answering /health")
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(f"command-bench: {url}/health did not answer 200 within {limit:.0f} s")
EOF
}

# run_bench STACK URL: one bench_unified.py run; its JSON line goes to $out/STACK.json.
run_bench() {
  local stack="$1" url="$2" args
  args=(--url "$url" --command "$command" --params "$params" --n "$n" --warmup "$warmup"
        --trace "$out/trace-$stack.json")
  [ -z "${BENCH_API_KEY:-}" ] || args+=(--api-key "$BENCH_API_KEY")
  echo "command-bench: $stack: $warmup warm-up + $n timed calls of $command at $url" >&2
  if ! timeout "$bench_timeout" "$py" "$root/tests/original/bench_unified.py" "${args[@]}" \
      >"$out/$stack.json" 2>"$out/bench-$stack.log"; then
    echo "command-bench: $stack: bench failed (log: $out/bench-$stack.log)" >&2
    tail -n 30 "$out/bench-$stack.log" >&2
    exit 1
  fi
}

# 2. The original: tests/original/server.py prints `listening <url>` once /health answers.
port="$(free_port)"
# Truncate here, not in the background redirect: an old `listening` line must never be read.
: >"$out/server-original.out"
setsid "$py" "$root/tests/original/server.py" --port "$port" \
  >"$out/server-original.out" 2>"$out/server-original.log" &
server_pid=$!
deadline=$((SECONDS + ready_s))
until grep -q '^listening ' "$out/server-original.out" 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "command-bench: the original server did not start (log: $out/server-original.log)" >&2
    tail -n 30 "$out/server-original.log" >&2
    exit 1
  fi
  sleep 0.2
done
url="$(sed -n 's/^listening //p' "$out/server-original.out" | head -n 1)"
run_bench original "$url"
stop_server
stacks=(original)

# 3. Ours, only when asked.
if [ -n "${QUEUEMGR_SERVER_CMD:-}" ]; then
  port="$(free_port)"
  : >"$out/server-ours.out"
  setsid bash -c "$QUEUEMGR_SERVER_CMD --listen 127.0.0.1:$port" \
    >"$out/server-ours.out" 2>"$out/server-ours.log" &
  server_pid=$!
  if ! wait_health "http://127.0.0.1:$port"; then
    tail -n 30 "$out/server-ours.log" >&2
    exit 1
  fi
  run_bench ours "http://127.0.0.1:$port"
  stop_server
  stacks+=(ours)
fi

# 4. The table.
"$py" - "$out" "${stacks[@]}" <<'EOF'
import json, sys
out, stacks = sys.argv[1], sys.argv[2:]
rows = {s: json.loads(open(f"{out}/{s}.json").read().strip().splitlines()[-1]) for s in stacks}
names = {"original": "original (queuemgr 1.0.25 + mcp-proxy-adapter 8.11.7)", "ours": "ours"}
print("| stack | command | p50 ms | p90 ms | p99 ms | fallback warnings |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for s, r in rows.items():
    print(f"| {names[s]} | {r['command']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
          f"{r['p99_ms']:.1f} | {r['fallback_warnings']} |")
n = rows[stacks[0]]["n"]
print(f"\n{n} timed calls per stack, sequential; mode of the last answer: "
      + ", ".join(f"{s} {r.get('mode')}" for s, r in rows.items()) + ".")
if "original" in rows and "ours" in rows and rows["ours"]["p50_ms"] > 0:
    ratio = rows["original"]["p50_ms"] / rows["ours"]["p50_ms"]
    print(f"\noriginal p50 / ours p50 = {ratio:.2f}x")
EOF
