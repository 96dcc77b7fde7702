#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, then every test under cargo-nextest (the
# build script of tests/ builds the example jobs for wasm32-wasip2 itself). Ends with one
# summary line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
# The dashboard's browser test drives Debian's chromium (Playwright comes from PyPI, into a venv
# under target/, made by the test itself).
if [ ! -x /usr/bin/chromium ]; then
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
cargo fmt --all --check
(cd guest-sdk && cargo fmt --check)
(cd example-jobs && cargo fmt --all --check)
cargo clippy --workspace --all-targets -- -D warnings
# The runner: cargo-nextest (each test a process of its own, run in parallel across binaries;
# settings in .config/nextest.toml). Installed here where it is missing.
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
(cd example-jobs && cargo nextest run -p cpu-core -p csv-summary --lib) 2>&1 | tee -a "$log"
(cd guest-sdk && cargo nextest run --lib) 2>&1 | tee -a "$log"
cargo nextest run --workspace 2>&1 | tee -a "$log"
# Each run ends with "Summary [...] N tests run: P passed, ..."; sum them for one line.
awk '/Summary \[/ && /tests? run:/ {
       for (i = 1; i <= NF; i++) { if ($i == "passed,"  || $i == "passed") p += $(i-1); if ($i == "failed,"  || $i == "failed") f += $(i-1) }
     }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$log"
