#!/bin/bash

# A demo install script for the components of the contoso virtual vacuum, written the way
# Azure Device Update's contoso demo scripts are: it is run by the script handler
# (microsoft/script:1) with ADU's command line, once per selected component, and
# "installs" firmware by copying a firmware data file into the component's folder.
#
# Only for demonstrations: a real update script installs real firmware.
#
# Command line (the script handler puts the action first, then the step's `arguments`
# with the component placeholders replaced, then the folders and the criteria):
#
#   --action-is-installed | --action-download | --action-install | --action-apply | --action_cancel
#   --component-id|--component-name|--component-group|--component-manufacturer|--component-vendor
#   --component-model|--component-version <value>
#   --component-prop <name> <value>        e.g. --component-prop path /var/tmp/.../motors/m0
#   --firmware-file <file>                 the firmware data file, in the work folder
#   --pre-install-sim-success | --post-install-sim-success   a step that only reports success
#   --restart-to-apply | --restart-agent-to-apply            apply asks for a restart
#   --work-folder <folder> --result-file <file> --installed-criteria <version>
#   --log-file <file> --log-level <0-3>
#
# The component's current firmware is described by <path>/firmware.json, e.g.
#   {"version": "1.0", "description": "left motor firmware"}
# and an update is installed when that file has `"version": "<installed criteria>"`.
#
# Every run writes one `call` line to the log file (when one is given): the component,
# the action, the shell running the script and its whole command line.

# Started with `. script.sh`, a failure must not end the caller's shell.
if [[ $0 != "${BASH_SOURCE[0]}" ]]; then
    ret='return'
else
    ret='exit'
fi

ret_val=0

# 0=debug 1=info 2=warning 3=error
log_level=1

component_id=
component_name=
component_group=
component_vendor=
component_model=
component_version=

# The component's further properties (`path` above all), by name.
declare -A component_props

workfolder=
firmware_file=
result_file=
log_file=

action=
installed_criteria=
restart_to_apply=
restart_agent_to_apply=
simulate_preinstall_success=
simulate_postinstall_success=

command_line="$*"

error() { echo -e "\033[1;31mError:\033[0m $*" >&2; }

timestamp() { date +'%Y/%m/%d:%H%M%S'; }

log() {
    local level=$1
    shift
    if [[ -z $log_file ]]; then
        echo -e "[$(timestamp)] [$level] $*"
    else
        echo "[$(timestamp)] [$level] $*" >> "$log_file"
    fi
}

log_debug() { if [[ $log_level -le 0 ]]; then log D "$@"; fi; }
log_info() { if [[ $log_level -le 1 ]]; then log I "$@"; fi; }
log_error() { if [[ $log_level -le 3 ]]; then log E "$@"; fi; }

# Writes the ADUC_Result the script handler reads (never with a timestamp).
result() {
    if [[ -z $result_file ]]; then
        echo "$@"
    else
        echo "$@" > "$result_file"
    fi
}

# Reports resultCode, extendedResultCode and resultDetails ($1, $2, $3).
report() {
    local aduc_result="{\"resultCode\":$1, \"extendedResultCode\":$2,\"resultDetails\":\"$3\"}"
    echo "Result: $aduc_result"
    result "$aduc_result"
}

# The option $1 needs a value, $2, that is not another option.
require_value() {
    if [[ -z $2 || $2 == -* ]]; then
        error "$1 needs a value."
        $ret 1
    fi
}

while [[ $1 != "" ]]; do
    case $1 in
    --component-id)
        require_value "$1" "$2"
        component_id=$2
        shift
        shift
        ;;
    --component-name)
        require_value "$1" "$2"
        component_name=$2
        shift
        shift
        ;;
    --component-group)
        require_value "$1" "$2"
        component_group=$2
        shift
        shift
        ;;
    --component-manufacturer | --component-vendor)
        require_value "$1" "$2"
        component_vendor=$2
        shift
        shift
        ;;
    --component-model)
        require_value "$1" "$2"
        component_model=$2
        shift
        shift
        ;;
    --component-version)
        require_value "$1" "$2"
        component_version=$2
        shift
        shift
        ;;
    --component-prop)
        require_value "$1" "$2"
        require_value "$1 $2" "$3"
        component_props["$2"]="$3"
        shift
        shift
        shift
        ;;
    --action-is-installed)
        action=is-installed
        shift
        ;;
    --action-download)
        action=download
        shift
        ;;
    --action-install)
        action=install
        shift
        ;;
    --action-apply)
        action=apply
        shift
        ;;
    --action_cancel)
        action=cancel
        shift
        ;;
    --installed-criteria)
        require_value "$1" "$2"
        installed_criteria=$2
        shift
        shift
        ;;
    --restart-to-apply)
        restart_to_apply=yes
        shift
        ;;
    --restart-agent-to-apply)
        restart_agent_to_apply=yes
        shift
        ;;
    --pre-install-sim-success)
        simulate_preinstall_success=yes
        shift
        ;;
    --post-install-sim-success)
        simulate_postinstall_success=yes
        shift
        ;;
    --firmware-file)
        require_value "$1" "$2"
        firmware_file=$2
        shift
        shift
        ;;
    --work-folder)
        require_value "$1" "$2"
        workfolder=$2
        shift
        shift
        ;;
    --result-file)
        require_value "$1" "$2"
        result_file=$2
        # A fresh result file, in a folder that exists.
        rm -f -r "$result_file"
        mkdir -p "$result_file"
        rm -f -r "$result_file"
        shift
        shift
        ;;
    --log-file)
        require_value "$1" "$2"
        log_file=$2
        shift
        shift
        ;;
    --log-level)
        require_value "$1" "$2"
        log_level=$2
        shift
        shift
        ;;
    *)
        error "Unknown option '$1'."
        $ret 1
        ;;
    esac
done

path_key=path
component_path=${component_props[$path_key]}
component_file_path="$component_path/firmware.json"

log_info "call $component_name $action (bash $BASH_VERSION): $command_line"
log_debug "component id:$component_id group:$component_group vendor:$component_vendor model:$component_model version:$component_version"

# Whether the component's firmware data file says `"version": "<criteria>"` (the space
# after the colon included, as the demo's firmware files are written).
has_installed_version() {
    grep -F "\"version\": \"$installed_criteria\"" "$component_file_path" > /dev/null
}

IsInstalled() {
    if [[ -z $installed_criteria ]]; then
        ret_val=1
        report 0 12345 "Invalid installedCriteria value."
    elif [[ -f $component_file_path ]]; then
        if has_installed_version; then
            report 900 0 ""
        else
            report 901 0 "installedCriteria not met: '$installed_criteria'."
        fi
    else
        # The component is switched off, unplugged or broken: its data cannot be read.
        # ADUC_ERC_UPDATE_CONTENT_HANDLER_ISINSTALLED_FAILURE_COMPONENT_UNAVAILABLE
        report 0 $((0x300001F6)) "Cannot communicate with the component. Name:$component_name, Id:$component_id"
    fi
}

Download() {
    # The agent has already put the step's files in the work folder.
    log_info "$component_name: nothing to download."
    report 502 0 "installedCriteria not met: '$installed_criteria'."
}

Install() {
    if [[ -z $installed_criteria ]]; then
        log_error "No --installed-criteria given."
        # ADUC_ERC_SCRIPT_HANDLER_MISSING_INSTALLED_CRITERIA
        report 0 $((0x30500002)) "Script call missing '--installed-criteria' argument."
    elif has_installed_version; then
        log_info "$component_name already has $installed_criteria."
        report 603 0 ""
    else
        log_info "$component_name: installing $workfolder/$firmware_file into $component_path."
        cp -f "$workfolder/$firmware_file" "$component_file_path"
        copy_ret=$?
        if [[ $copy_ret -ne 0 ]]; then
            log_error "Cannot install the firmware into '$component_path' (cp exit code $copy_ret)."
            # ADUC_ERC_SCRIPT_HANDLER_CHILD_PROCESS_FAILURE_EXITCODE(exit code)
            report 0 $((0x30501000 + copy_ret)) "Firmware installation failed. Component: $component_name"
        else
            report 600 0 ""
        fi
    fi
}

Apply() {
    if [[ $restart_to_apply == yes ]]; then
        report 705 0 ""
    elif [[ $restart_agent_to_apply == yes ]]; then
        report 707 0 ""
    else
        report 700 0 ""
    fi
}

SimulateSuccess() {
    log_info "$component_name: simulating a successful $1 step."
    report 700 0 ""
}

case $action in
is-installed)
    IsInstalled
    ;;
cancel)
    $ret 0
    ;;
*)
    if [[ $simulate_preinstall_success == yes ]]; then
        SimulateSuccess pre-install
    elif [[ $simulate_postinstall_success == yes ]]; then
        SimulateSuccess post-install
    else
        case $action in
        download) Download ;;
        install) Install ;;
        apply) Apply ;;
        *)
            error "No action given (--action-is-installed, --action-download, --action-install, --action-apply or --action_cancel)."
            $ret 1
            ;;
        esac
    fi
    ;;
esac

$ret $ret_val
