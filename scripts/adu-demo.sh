#!/usr/bin/env bash
# The ADU-style demo (examples/adu-demo): the contoso virtual vacuum of Azure Device
# Update's component demo, with three motors, two cameras and a host firmware listed by
# the contoso components enumerator plugin from an ADU-style components-inventory.json.
# Three updates in ADU's import-manifest format, each a parent with reference steps to
# one child update per component group, run ADU's own style of bash install script once
# per selected component: 1.0 installs firmware 1.1 everywhere, 2.0 moves the motors
# and cameras to 1.2, 3.0 fails on the unplugged rear camera and is reported failed.
# Everything lives under /var/tmp/handrail-adu-demo (state directory included), reset
# at each run, so it can be run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
target=${CARGO_TARGET_DIR:-target}
cargo build --locked -p handrail-cli
# The enumerator is built as the example handlers' build script builds it (same target
# folder, so it is compiled once for both).
cargo build --locked --release --target wasm32-wasip2 \
    --manifest-path handlers/contoso-components-enumerator/Cargo.toml \
    --target-dir "$target/debug/wasm-guests"
exec examples/adu-demo/run-demo.sh "$target/debug/handrail" \
    "$target/debug/wasm-guests/wasm32-wasip2/release/handrail_contoso_components_enumerator.wasm"
