#!/usr/bin/env bash
# Runs Handrail's whole test suite: the checks a reviewer makes (formatting, clippy with
# every warning an error, the workspace lints: missing docs, allows without a reason),
# then unit, integration, doc (the README's Rust examples among them) and end-to-end
# tests of the real binary. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
