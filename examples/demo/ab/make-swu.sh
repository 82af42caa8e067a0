#!/usr/bin/env bash
# Builds the demo's update image into OUT: a signed .swu of the contoso demo-device root
# file system 2.0 for the A/B slot files in SLOTS (an absolute folder). Its
# sw-description has the two selections microsoft/swupdate:2 chooses between:
# stable,copy1 writes SLOTS/slot-a.img and stable,copy2 writes SLOTS/slot-b.img.
#
# Built the way a device vendor builds one, with the real tools: openssl signs
# sw-description (CMS; swupdate as Debian builds it takes signed images only) and cpio
# archives it (newc with checksums). The build is reproducible — no signing time, fixed
# owners, dates and inode numbers — so the same SLOTS give the same bytes, and the demo
# manifest carries their hash (scripts/refresh-demo-hashes.py runs this script).
#
# signer.key.pem beside this script is a demo key published with the demo: nothing but
# the demo's own configuration may trust its certificate (signer.pem).
set -euo pipefail
slots=${1:?usage: make-swu.sh SLOTS OUT.swu}
out=${2:?usage: make-swu.sh SLOTS OUT.swu}
case "$slots" in
    /*) ;;
    *) echo "make-swu.sh: SLOTS must be an absolute folder, not $slots" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

# The image: a header line with its version (what reboot.sh reads as the running
# version once the slot boots), then the "file system".
printf 'HANDRAIL-DEMO-ROOTFS version=2.0\ncontoso demo-device root file system, release 2.0\n' \
    > "$build/rootfs.img"
sha=$(sha256sum "$build/rootfs.img" | cut -d' ' -f1)
copy() {
    printf '{ images: ( { filename = "rootfs.img"; type = "raw"; device = "%s"; sha256 = "%s"; } ); }' \
        "$slots/slot-$1.img" "$sha"
}
cat > "$build/sw-description" <<DESCRIPTION
software =
{
  version = "2.0";
  description = "contoso demo-device root file system";
  hardware-compatibility = [ "1.0" ];
  stable = {
    copy1 = $(copy a);
    copy2 = $(copy b);
  };
}
DESCRIPTION
openssl cms -sign -binary -noattr -nosmimecap -outform DER \
    -in "$build/sw-description" -out "$build/sw-description.sig" \
    -signer "$here/signer.pem" -inkey "$here/signer.key.pem"
chmod 0644 "$build"/*
touch -d @0 "$build"/*
# sw-description first: swupdate reads it (and its signature) before any image.
(cd "$build" && printf '%s\n' sw-description sw-description.sig rootfs.img |
    cpio --quiet -o -H crc --reproducible --owner=0:0) > "$out.new"
mv "$out.new" "$out"
