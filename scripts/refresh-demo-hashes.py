#!/usr/bin/env python3
"""Rewrites sizeInBytes and hashes.sha256 of the demo manifests from the payload files.

Run after changing anything under examples/demo/payloads or the demo's update image
(examples/demo/ab/make-swu.sh): the child manifest first (it is itself a payload of the
parent), then the parent. The update image is not kept in the repository: it is built
(reproducibly) for the demo device's slots, as scripts/demo.sh builds it.
"""
import base64, hashlib, json, pathlib, subprocess, tempfile

demo = pathlib.Path(__file__).resolve().parent.parent / "examples" / "demo"
payloads = demo / "payloads"
SWU = "demo-device-rootfs-2.0.swu"
SLOTS = "/var/tmp/handrail-demo/ab/slots"

def built_swu():
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / SWU
        subprocess.run([str(demo / "ab" / "make-swu.sh"), SLOTS, str(out)], check=True)
        return out.read_bytes()

def contents(name):
    return built_swu() if name == SWU else (payloads / name).read_bytes()

def refresh(path):
    doc = json.loads(path.read_text())
    for entry in doc["files"].values():
        data = contents(entry["fileName"])
        entry["sizeInBytes"] = len(data)
        entry["hashes"]["sha256"] = base64.b64encode(hashlib.sha256(data).digest()).decode()
    path.write_text(json.dumps(doc, indent=2) + "\n")

refresh(payloads / "contoso.virtual-camera.2.0.json")
refresh(demo / "update.json")
