#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, then every test (the build script of
# tests/ builds the example jobs for wasm32-wasip2 itself).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
cargo fmt --all --check
(cd guest-sdk && cargo fmt --check)
(cd example-jobs && cargo fmt --all --check)
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
(cd example-jobs && cargo test -p cpu-core)
