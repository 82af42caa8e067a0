#!/usr/bin/env python3
"""Rewrites sizeInBytes and hashes.sha256 of the demo manifests from the payload files.

Run after changing anything under examples/demo/payloads: the child manifest first (it is
itself a payload of the parent), then the parent.
"""
import base64, hashlib, json, pathlib

demo = pathlib.Path(__file__).resolve().parent.parent / "examples" / "demo"
payloads = demo / "payloads"

def refresh(path):
    doc = json.loads(path.read_text())
    for entry in doc["files"].values():
        data = (payloads / entry["fileName"]).read_bytes()
        entry["sizeInBytes"] = len(data)
        entry["hashes"]["sha256"] = base64.b64encode(hashlib.sha256(data).digest()).decode()
    path.write_text(json.dumps(doc, indent=2) + "\n")

refresh(payloads / "contoso.virtual-camera.2.0.json")
refresh(demo / "update.json")
