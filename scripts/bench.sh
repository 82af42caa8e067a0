#!/usr/bin/env bash
# The benchmark: builds it, the `handrail` binary and the native worker (release, side by
# side in one target folder), then prints every figure and ratio in one run.
# HANDRAIL_BENCH_DIR chooses where its scratch files go (default: target/bench, on the
# disk the build is on; the temp folder may be in memory, where fsync costs nothing); the
# hashing figure needs 1 GiB free there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p handrail-bench -p handrail-cli -p handrail-native-host
target="${CARGO_TARGET_DIR:-target}"
export HANDRAIL_BENCH_DIR="${HANDRAIL_BENCH_DIR:-$target/bench}"
mkdir -p "$HANDRAIL_BENCH_DIR"
exec "$target/release/handrail-bench" "$@"
