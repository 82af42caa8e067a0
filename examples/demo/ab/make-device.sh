#!/usr/bin/env bash
# Sets up the demo's A/B device in DIR (default /var/tmp/handrail-demo/ab), where the
# demo's microsoft/swupdate:2 step installs (examples/demo/config.toml names these
# files). What is there already is left as it is, so a second demo run finds the update
# the first one installed (and the slot it switched to):
#
#   slots/slot-a.img, slot-b.img   the two root file system slots (64 KiB files); a holds 1.0
#   boot/bootenv                   the boot environment: boot_slot=a, upgrade_available=0, ustate=0
#   running/sw-version             the running system's version, written at boot by reboot.sh
#   keys/signer.pem                the certificate swupdate checks the image's signature with
set -euo pipefail
dir=${1:-/var/tmp/handrail-demo/ab}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/slots" "$dir/boot" "$dir/running" "$dir/keys"
if [ ! -f "$dir/slots/slot-a.img" ]; then
    printf 'HANDRAIL-DEMO-ROOTFS version=1.0\ncontoso demo-device root file system, release 1.0\n' \
        > "$dir/slots/slot-a.img"
    truncate -s 64K "$dir/slots/slot-a.img"
fi
[ -f "$dir/slots/slot-b.img" ] || truncate -s 64K "$dir/slots/slot-b.img"
[ -f "$dir/boot/bootenv" ] || printf 'boot_slot=a\nupgrade_available=0\nustate=0\n' > "$dir/boot/bootenv"
cp "$here/signer.pem" "$dir/keys/signer.pem"
# The device's first boot.
[ -f "$dir/running/sw-version" ] || "$here/reboot.sh" "$dir" >/dev/null
