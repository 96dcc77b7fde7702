#!/usr/bin/env bash
# Builds the example jobs for wasm32-wasip2 and copies them into a jobs directory (default ./jobs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/jobs}"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 --workspace \
  --manifest-path "$root/example-jobs/Cargo.toml" --target-dir "$root/example-jobs/target"
mkdir -p "$dest"
# The example jobs; `other-world` (deliberately *not* a job) and `probe` (a capability probe)
# are for the tests only.
for job in my_job cpu_heavy failing hostile noop process_data fetch_url; do
  cp "$root/example-jobs/target/wasm32-wasip2/release/$job.wasm" "$dest/"
done
echo "example jobs in $dest: $(cd "$dest" && ls *.wasm | tr '\n' ' ')"
