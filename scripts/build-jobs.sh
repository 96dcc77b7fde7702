#!/usr/bin/env bash
# Builds the example jobs for wasm32-wasip2 and copies them into a jobs directory (default ./jobs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/jobs}"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
# From example-jobs/, so that its .cargo/config.toml (wasm SIMD) applies.
(cd "$root/example-jobs" && cargo build --release --target wasm32-wasip2 --workspace \
  --target-dir "$root/example-jobs/target")
mkdir -p "$dest"
# The example jobs; `other-world` (deliberately *not* a job) and `probe` (a capability probe)
# are for the tests only.
for job in my_job cpu_heavy failing hostile noop process_data fetch_url order_flow order_item; do
  cp "$root/example-jobs/target/wasm32-wasip2/release/$job.wasm" "$dest/"
done
echo "example jobs in $dest: $(cd "$dest" && ls *.wasm | tr '\n' ' ')"
