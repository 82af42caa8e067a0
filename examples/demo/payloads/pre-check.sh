#!/bin/sh
# Demo step 0: check the device before updating. ADU script-handler arguments:
#   --device-dir <dir> --action-<action> --work-folder <dir> --result-file <file> [--installed-criteria <c>]
# Scripts run with PATH and nothing else of the agent's environment.
device=""; action=""; result=""; criteria=""
while [ $# -gt 0 ]; do
    case "$1" in
        --device-dir) device="$2"; shift ;;
        --action-*) action="${1#--action-}" ;;
        --result-file) result="$2"; shift ;;
        --installed-criteria) criteria="$2"; shift ;;
    esac
    shift
done
write() { printf '{"resultCode":%s,"extendedResultCode":%s,"resultDetails":"%s"}' "$1" "$2" "$3" > "$result"; }
case "$action" in
    is-installed)
        if [ -e "$device/$criteria" ]; then write 900 0 "checked before"; else write 901 0 "not checked yet"; fi ;;
    download) write 500 0 "nothing to download: the runtime has the payload" ;;
    install)
        mkdir -p "$device" 2>/dev/null || { write 0 838860801 "cannot create $device"; exit 0; }
        if [ ! -w "$device" ]; then write 0 838860802 "$device is not writable"; exit 0; fi
        write 600 0 "device folder $device is ready" ;;
    apply)
        : > "$device/$criteria"
        write 700 0 "pre-update check recorded" ;;
    cancel) write 800 0 "nothing to cancel" ;;
    *) write 0 838860803 "unexpected action $action" ;;
esac
exit 0
