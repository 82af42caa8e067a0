#!/usr/bin/env bash
# Runs Handrail's whole test suite: formatting, then unit, integration, doc (the README's
# Rust examples among them) and end-to-end tests of the real binary, missing docs an
# error. Arguments go to `cargo test`.
# Clippy, a second full build, is `scripts/lint.sh`, run before every commit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all --check
cargo test --workspace --locked "$@"
