#!/bin/sh
# Demo child step: install camera firmware onto one virtual camera. The handler replaces
# --component-name-val / --component-prop-val <p> with the selected camera's values and
# links the step's payload into the work folder (the script's working directory).
action=""; result=""; criteria=""; camera=""; slot=""; firmware=""
while [ $# -gt 0 ]; do
    case "$1" in
        --camera) camera="$2"; shift ;;
        --slot) slot="$2"; shift ;;
        --firmware-file) firmware="$2"; shift ;;
        --action-*) action="${1#--action-}" ;;
        --result-file) result="$2"; shift ;;
        --installed-criteria) criteria="$2"; shift ;;
    esac
    shift
done
write() { printf '{"resultCode":%s,"extendedResultCode":%s,"resultDetails":"%s"}' "$1" "$2" "$3" > "$result"; }
marker="$slot/$criteria"
case "$action" in
    is-installed)
        if [ -e "$marker" ]; then write 900 0 "$camera already runs $criteria"; else write 901 0 "$camera needs $criteria"; fi ;;
    download) write 500 0 "the firmware is in the work folder" ;;
    install)
        mkdir -p "$slot" 2>/dev/null || { write 0 838860801 "cannot create $slot"; exit 0; }
        if [ ! -r "$firmware" ]; then write 0 838860804 "firmware file $firmware missing"; exit 0; fi
        # Stage the firmware; apply makes it current.
        cp "$firmware" "$slot/firmware.staged" || { write 0 838860805 "cannot stage firmware in $slot"; exit 0; }
        write 600 0 "$camera: firmware staged" ;;
    apply)
        : > "$marker"
        write 700 0 "$camera now runs $criteria" ;;
    cancel) write 800 0 "cancelled" ;;
    *) write 0 838860803 "unexpected action $action" ;;
esac
exit 0
