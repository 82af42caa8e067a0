#!/usr/bin/env bash
# Runs Handrail's whole test suite (unit, integration, end-to-end with the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --locked "$@"
