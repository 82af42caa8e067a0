#!/usr/bin/env python3
"""Writes the import manifests of the ADU-style demo (examples/adu-demo/update-files).

The three updates of the contoso virtual vacuum, in the format ADU's tools
(New-AduImportManifest) write: a parent per update with an inline step for the host
firmware and reference steps (by updateId) to one child update per component group,
each child selecting its group through its compatibility (`{"group": "motors"}`).
Every file a step names is listed with its size and sha256, computed here from the
files in update-files; run this after changing one of them.
"""
import base64, hashlib, json, pathlib

files_dir = pathlib.Path(__file__).resolve().parent.parent / "examples" / "adu-demo" / "update-files"
PROVIDER = "contoso"
DEVICE = {"manufacturer": "contoso", "model": "virtual-vacuum-v1"}
SCRIPT = "contoso-component-installscript.sh"
# Where the demo keeps its device; examples/adu-demo/run-demo.sh moves it when asked.
ROOT = "/var/tmp/handrail-adu-demo"
LOG = f"--log-file {ROOT}/logs/calls.log"
# The script handler replaces each `-val` token with the selected component's value.
COMPONENT = "--component-name --component-name-val --component-group --component-group-val --component-prop path --component-prop-val path"
# ADU's tools stamp the time of writing; a fixed one keeps the files reproducible.
CREATED = "2026-01-15T09:30:00.0000000Z"


def update_id(name, version):
    return {"provider": PROVIDER, "name": name, "version": version}


def file_name(name, version):
    return f"{PROVIDER}.{name}.{version}.importmanifest.json"


def file_entry(name):
    data = (files_dir / name).read_bytes()
    return {
        "filename": name,
        "sizeInBytes": len(data),
        "hashes": {"sha256": base64.b64encode(hashlib.sha256(data).digest()).decode()},
    }


def script_step(description, version, arguments, firmware=None):
    files = [SCRIPT] + ([firmware] if firmware else [])
    if firmware:
        arguments = f"--firmware-file {firmware} {arguments}"
    return {
        "type": "inline",
        "description": description,
        "handler": "microsoft/script:1",
        "files": files,
        "handlerProperties": {
            "scriptFileName": SCRIPT,
            "arguments": f"{arguments} {LOG}",
            "installedCriteria": version,
        },
    }


def firmware_step(group, kind, version):
    return script_step(
        f"{group.capitalize()} firmware {version}", version, COMPONENT, f"{kind}-firmware-{version}.json"
    )


def host_step(version):
    host = f"--component-name hostfw --component-group firmware --component-prop path {ROOT}/contoso-devices/vacuum-1/hostfw"
    return script_step(f"Host firmware {version}", version, host, f"host-firmware-{version}.json")


def reference_step(description, child):
    return {"type": "reference", "description": description, "updateId": child}


def manifest(uid, description, deployable, compatibility, steps):
    names = []
    for step in steps:
        for name in step.get("files", []):
            if name not in names:
                names.append(name)
    doc = {
        "updateId": uid,
        "description": description,
        "isDeployable": deployable,
        "compatibility": compatibility,
        "instructions": {"steps": steps},
    }
    if names:
        doc["files"] = [file_entry(n) for n in names]
    doc["createdDateTime"] = CREATED
    doc["manifestVersion"] = "4.0"
    return doc


def write(doc):
    uid = doc["updateId"]
    path = files_dir / file_name(uid["name"], uid["version"])
    path.write_text(json.dumps(doc, indent=4) + "\n")
    return uid


def child(group, kind, version, steps):
    return write(manifest(
        update_id(f"virtual-vacuum-{group}", version),
        f"Firmware {version} for every component of the group {group}",
        False,
        [{"group": group}],
        steps,
    ))


def parent(version, description, steps):
    write(manifest(update_id("virtual-vacuum", version), description, True, [DEVICE], steps))


# Update 1.0: firmware 1.1 on the host, every motor and every camera.
parent("1.0", "Firmware 1.1 for the host, the motors and the cameras", [
    host_step("1.1"),
    reference_step("Motors firmware 1.1", child("motors", "motor", "1.1", [firmware_step("motors", "motor", "1.1")])),
    reference_step("Cameras firmware 1.1", child("cameras", "camera", "1.1", [firmware_step("cameras", "camera", "1.1")])),
])

# Update 2.0: the host keeps 1.1 (installed, skipped); motors and cameras move to 1.2.
parent("2.0", "Firmware 1.2 for the motors and the cameras", [
    host_step("1.1"),
    reference_step("Motors firmware 1.2", child("motors", "motor", "1.2", [firmware_step("motors", "motor", "1.2")])),
    reference_step("Cameras firmware 1.2", child("cameras", "camera", "1.2", [firmware_step("cameras", "camera", "1.2")])),
])

# Update 3.0: camera firmware 1.3 after a pre-install step; with the rear camera
# unplugged, its firmware step fails once the front camera has both steps installed.
parent("3.0", "Firmware 1.3 for the cameras", [
    reference_step("Cameras firmware 1.3", child("cameras", "camera", "1.3", [
        script_step("Cameras pre-install check", "1.3", f"--pre-install-sim-success {COMPONENT}"),
        firmware_step("cameras", "camera", "1.3"),
    ])),
])
