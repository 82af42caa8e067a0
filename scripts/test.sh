#!/usr/bin/env bash
# Runs Handrail's whole test suite: formatting, then unit, integration, doc (the README's
# Rust examples among them) and end-to-end tests of the real binary, missing docs an
# error. Arguments go to `cargo test`.
# Clippy, a second full build, is `scripts/lint.sh`, run before every commit.
#
# The ARM lean builds the cross test runs under qemu are made by `scripts/cross.sh` in
# the background from the start, beside the tests' own build and then while the other
# tests run (at a lower priority: most tests wait on processes, fsync and emulation more
# than on the processor); the cross test waits for them. Given arguments (a filter), the suite runs as plain `cargo test`, and the cross
# test builds them itself when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all --check
if [ $# -eq 0 ]; then
    target_dir=${CARGO_TARGET_DIR:-target}
    export HANDRAIL_CROSS_BUILD="$PWD/$target_dir/cross-test"
    [[ $target_dir = /* ]] && HANDRAIL_CROSS_BUILD="$target_dir/cross-test"
    rm -rf "$HANDRAIL_CROSS_BUILD"
    mkdir -p "$HANDRAIL_CROSS_BUILD"
    # In a session of its own, so that stopping the suite stops the whole build.
    setsid bash -c '
        status=0
        CARGO_TARGET_DIR="$1/cross-target" CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 \
            nice -n 10 scripts/cross.sh aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf \
            --debug --out "$2/out" --handrail "$1/debug/handrail" --handrail-ready "$2/host-ready" \
            >"$2/log" 2>&1 || status=$?
        echo "$status" >"$2/status.tmp" && mv "$2/status.tmp" "$2/status"
    ' cross-build "$target_dir" "$HANDRAIL_CROSS_BUILD" &
    cross=$!
    trap 'kill -- -"$cross" 2>/dev/null || true' EXIT
    # The tests' build, beside the cross build (which takes what the processors have
    # left, and waits for this build's `handrail` to precompile with).
    cargo test --workspace --locked --no-run
    : >"$HANDRAIL_CROSS_BUILD/host-ready"
fi
cargo test --workspace --locked "$@"
