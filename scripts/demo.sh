#!/usr/bin/env bash
# Handrail's main job: a real multi-step deployment with the built-in handlers on the
# default state directory (/var/lib/handrail as root, ~/.local/state/handrail otherwise).
# The demo update checks the device (script handler), installs a package from the demo's
# own apt repository (apt handler, the real apt), installs a new root file system into
# the inactive slot of an A/B device with the real swupdate (swupdate handler), which
# asks for a reboot, installs camera firmware on each camera the component list names (a
# child update run once per camera), and records the update.
# The deployment stops for the reboot (exit code 3); the demo then reboots its A/B device
# (its bootloader boots the slot the boot environment names) and runs `handrail resume`,
# which verifies that 2.0 runs and carries on with the remaining steps.
# Run it twice: the second run finds every step installed (900) and runs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --locked -p handrail-cli
handrail=target/debug/handrail
demo=examples/demo
work=/var/tmp/handrail-demo
"$demo/make-apt-repo.sh" "$work/apt"
"$demo/ab/make-device.sh" "$work/ab"
# The folder the script steps install into: the configuration grants their programs it.
mkdir -p "$work/device"
# The payloads: the demo's files and the update image, built for the A/B device's slots.
payloads="$work/payloads"
mkdir -p "$payloads"
cp "$demo"/payloads/* "$payloads/"
"$demo/ab/make-swu.sh" "$work/ab/slots" "$payloads/demo-device-rootfs-2.0.swu"
export HANDRAIL_CONFIG="$demo/config.toml" HANDRAIL_COMPONENTS="$demo/components.json"

reboot_and_resume() {
    "$demo/ab/reboot.sh" "$work/ab"
    "$handrail" resume
}

# An earlier demo run interrupted before its reboot left its deployment suspended:
# finish that one first.
if grep -q '^deployment .*: suspended$' <<<"$("$handrail" status)"; then
    reboot_and_resume
fi
"$handrail" validate "$demo/update.json"
status=0
"$handrail" deploy "$demo/update.json" --payloads "$payloads" || status=$?
if [ "$status" -eq 3 ]; then
    echo "== the swupdate step asked for a reboot: rebooting the A/B device, then resuming =="
    status=0
    reboot_and_resume || status=$?
fi
"$handrail" status
"$handrail" history --limit 3
exit "$status"
