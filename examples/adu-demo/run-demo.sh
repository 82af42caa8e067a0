#!/usr/bin/env bash
# Runs the ADU-style demo with a built `handrail` and contoso components enumerator:
#
#   run-demo.sh <handrail binary> <contoso-components-enumerator.wasm> [<device root>]
#
# It resets the device root (default /var/tmp/handrail-adu-demo): the contoso virtual
# vacuum's folders and inventory from contoso-devices/, the update files from
# update-files/, a fresh state directory, the enumerator's registration; the demo's
# files name /var/tmp/handrail-adu-demo, which is replaced by the device root where they
# are copied (the payload files, which the manifests hash, name no path). Then it
# deploys the three updates and shows the firmware versions and `handrail status` after
# each one, and the history at the end:
#
#   1.0  firmware 1.1 on the host, the three motors and the two cameras;
#   2.0  motors and cameras to 1.2 (the host's 1.1 is found installed): status then
#        lists only the 1.2 records of the motors and cameras;
#   3.0  cameras to 1.3 in two steps, with the rear camera unplugged: after every step's
#        download, the front camera installs both steps, the rear camera's firmware
#        step fails, and the deployment is reported failed at that step. Nothing is
#        restored: as in ADU, the script handler has no backup (1001), so the front
#        camera keeps 1.3.
#
# Each update is marked in the calls log the demo's script writes ($root/logs/calls.log)
# by a line `== update <version> ==`.
#
# Exits 0 when the updates end so (the third one failed), 1 otherwise.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 <handrail binary> <contoso-components-enumerator.wasm> [<device root>]" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
handrail=$1
wasm=$2
demo_root=/var/tmp/handrail-adu-demo
root=${3:-$demo_root}
case "$root" in
    /*) ;;
    *) echo "the device root must be an absolute path: $root" >&2; exit 2 ;;
esac

# Copies file $1 to $2, the demo root replaced by the device root, in plain and in
# escaped (`\/`) form, as the inventory writes paths.
relocate() {
    if ! grep -qF "$demo_root" "$1" && ! grep -qF "${demo_root//\//\\/}" "$1"; then
        cp "$1" "$2"
        return
    fi
    local text
    text=$(<"$1")
    text=${text//"$demo_root"/"$root"}
    text=${text//"${demo_root//\//\\/}"/"${root//\//\\/}"}
    printf '%s\n' "$text" > "$2"
}

# A fresh device, as it shipped: every component's firmware 1.0.
rm -rf "$root/contoso-devices" "$root/update-files" "$root/state" "$root/enumerator" "$root/logs" "$root/config.toml"
mkdir -p "$root/update-files" "$root/state" "$root/enumerator" "$root/logs"
cp -R "$here/contoso-devices" "$root/contoso-devices"
relocate "$here/contoso-devices/components-inventory.json" "$root/contoso-devices/components-inventory.json"
for file in "$here"/update-files/*; do
    relocate "$file" "$root/update-files/$(basename "$file")"
done

# The enumerator's registration: the built component, its hash, then its grants and
# configuration.
cp "$wasm" "$root/enumerator/contoso-components-enumerator.wasm"
registration="$root/enumerator/contoso-components.toml"
{
    echo 'id = "contoso/components:1"'
    echo 'kind = "wasm"'
    echo 'artifact = "contoso-components-enumerator.wasm"'
    echo "sha256 = \"$(sha256sum "$wasm" | cut -d' ' -f1)\""
    echo
} > "$registration.head"
relocate "$here/enumerator.toml" "$registration.tail"
cat "$registration.head" "$registration.tail" > "$registration"
rm "$registration.head" "$registration.tail"

relocate "$here/config.toml" "$root/config.toml"
export HANDRAIL_STATE_DIR="$root/state" HANDRAIL_CONFIG="$root/config.toml" HANDRAIL_ENUMERATOR="$registration"
vacuum="$root/contoso-devices/vacuum-1"

show_versions() {
    echo "-- firmware versions:"
    local component
    for component in hostfw motors/contoso-motor-serial-0000{0,1,2} cameras/contoso-camera-serial-0000{0,1}; do
        printf '   %-40s %s\n' "$component" "$(grep -o '"version": "[^"]*"' "$vacuum/$component/firmware.json" 2>/dev/null || echo unplugged)"
    done
}

# Deploys update $1 and checks it ends with exit code $2.
deploy() {
    local manifest="$root/update-files/contoso.virtual-vacuum.$1.importmanifest.json" status=0
    echo "== update $1 ==" >> "$root/logs/calls.log"
    "$handrail" validate "$manifest"
    "$handrail" deploy "$manifest" --payloads "$root/update-files" || status=$?
    show_versions
    echo "== handrail status after update $1 =="
    "$handrail" status
    if [ "$status" -ne "$2" ]; then
        echo "update $1 ended with exit code $status, expected $2" >&2
        exit 1
    fi
}

show_versions
echo "== update 1.0: firmware 1.1 on the host, the motors and the cameras =="
deploy 1.0 0
echo "== update 2.0: motors and cameras to 1.2; the host already has 1.1 =="
deploy 2.0 0
echo "== unplugging the rear camera (its folder and firmware data file are gone) =="
rm -rf "$vacuum/cameras/contoso-camera-serial-00001"
echo "== update 3.0: cameras to 1.3 in two steps; the rear camera's firmware step fails =="
deploy 3.0 1
echo "-- the script calls of update 3.0, in order (every step's download comes first):"
sed -n '/^== update 3.0 ==$/,$ s/^.*\] \[I\] call \([^ ]*\) \([^ ]*\) .*$/   \1 \2/p' "$root/logs/calls.log"
echo "-- both camera steps share the installed criteria 1.3, as ADU's demo updates do: 1.3 is"
echo "   recorded once the last of them succeeds, so for the front camera only; the rear"
echo "   camera's record stays at 1.2."
echo "== handrail history =="
"$handrail" history
