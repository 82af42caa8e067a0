#!/usr/bin/env bash
# Handrail's main job: a real multi-step deployment with the built-in handlers on the
# default state directory (/var/lib/handrail as root, ~/.local/state/handrail otherwise).
# The demo update checks the device (script handler), installs a package from the demo's
# own apt repository (apt handler, the real apt), installs camera firmware on each camera
# the component list names (a child update run once per camera), and records the update.
# Run it twice: the second run finds every step installed (900) and runs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --locked -p handrail-cli
handrail=target/debug/handrail
demo=examples/demo
"$demo/make-apt-repo.sh" /var/tmp/handrail-demo/apt
export HANDRAIL_CONFIG="$demo/config.toml" HANDRAIL_COMPONENTS="$demo/components.json"
"$handrail" validate "$demo/update.json"
status=0
"$handrail" deploy "$demo/update.json" --payloads "$demo/payloads" || status=$?
"$handrail" status
"$handrail" history --limit 3
exit "$status"
