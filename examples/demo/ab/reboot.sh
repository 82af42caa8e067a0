#!/usr/bin/env bash
# Reboots the demo's A/B device in DIR (default /var/tmp/handrail-demo/ab): its
# "bootloader" boots the slot the boot environment names (boot_slot), and the system that
# comes up writes its version — the one in the slot's image — to running/sw-version, the
# file microsoft/swupdate:2 verifies the update with. (A real bootloader also falls back
# to the other slot when the new one does not come up; then the handler reports the
# update failed after the reboot and rolls it back.)
set -euo pipefail
dir=${1:-/var/tmp/handrail-demo/ab}
slot=$(sed -n 's/^boot_slot=//p' "$dir/boot/bootenv" | tail -n 1)
case "$slot" in
    a | b) ;;
    *) echo "reboot.sh: $dir/boot/bootenv names no slot (boot_slot=$slot)" >&2; exit 1 ;;
esac
version=$(head -c 4096 "$dir/slots/slot-$slot.img" | tr -d '\0' |
    sed -n '/^HANDRAIL-DEMO-ROOTFS version=/{s///p;q}')
version=${version:-unknown}
printf '%s\n' "$version" > "$dir/running/sw-version.new"
mv "$dir/running/sw-version.new" "$dir/running/sw-version"
echo "rebooted into slot $slot: version $version"
