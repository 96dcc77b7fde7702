#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, then every test (the build script of
# tests/ builds the example jobs for wasm32-wasip2 itself). Ends with one summary line.
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
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
(cd example-jobs && cargo test -p cpu-core --lib) 2>&1 | tee -a "$log"
(cd guest-sdk && cargo test --lib) 2>&1 | tee -a "$log"
cargo test --workspace 2>&1 | tee -a "$log"
# cargo test's last lines are the doc-tests' (often 0 tests): sum every runner's result.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$log"
