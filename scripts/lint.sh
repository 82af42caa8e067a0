#!/usr/bin/env bash
# The checks a reviewer makes before a commit: formatting, and clippy over every target
# with every warning an error (the workspace lints too: missing docs, allows without a
# reason). A build of its own, so kept out of the test command's time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
