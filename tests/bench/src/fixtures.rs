//! What the benchmark runs: handler registrations, manifests and the no-op script.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use handrail::registry::{Capabilities, HandlerKind, Limits, Registration, Registry, sha256_file};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Result;

/// The no-op handlers' id (WebAssembly, native and in-process alike).
pub const NOOP_ID: &str = "bench/noop:1";
/// The built-in script handler's id.
pub const SCRIPT_ID: &str = "microsoft/script:1";
/// The no-op component, built from `guest/` with the SDK.
pub const NOOP_WASM: &[u8] = include_bytes!(env!("HANDRAIL_BENCH_NOOP_WASM"));
/// The no-op native library, built from `noop.c`.
pub const NOOP_NATIVE: &str = env!("HANDRAIL_BENCH_NOOP_NATIVE");
/// The script every script step runs, and the Mender-style baseline forks: it answers
/// each action with its success code in the result file, as ADU scripts do.
pub const NOOP_SCRIPT: &str = r#"#!/bin/sh
action=""; result=""
while [ $# -gt 0 ]; do
    case "$1" in
        --action-*) action="${1#--action-}" ;;
        --result-file) result="$2"; shift ;;
    esac
    shift
done
case "$action" in
    is-installed) code=901 ;;
    download) code=500 ;;
    install) code=600 ;;
    apply) code=700 ;;
    *) code=0 ;;
esac
printf '{"resultCode":%s,"extendedResultCode":0,"resultDetails":""}' "$code" > "$result"
"#;
/// The script's file name in the payload folder.
pub const NOOP_SCRIPT_NAME: &str = "noop.sh";

/// Writes `bytes` as the artifact of handler `id` in `dir` and registers it.
pub fn registration(
    dir: &Path,
    id: &str,
    kind: HandlerKind,
    bytes: &[u8],
    capabilities: Capabilities,
) -> Result<Registration> {
    let extension = match kind {
        HandlerKind::Native => "so",
        _ => "wasm",
    };
    let artifact = dir.join(format!("{}.{extension}", id.replace(['/', ':'], "_")));
    fs::write(&artifact, bytes)?;
    Ok(Registration {
        id: id.to_owned(),
        kind,
        sha256: sha256_file(&artifact)?,
        artifact,
        capabilities,
        limits: Limits::default(),
        config: Default::default(),
        source: None,
    })
}

/// A registry of one handler.
pub fn registry(registration: Registration) -> Result<Registry> {
    let mut registry = Registry::new();
    registry.insert(registration)?;
    Ok(registry)
}

/// A payload folder holding the no-op script.
pub fn payloads(dir: &Path) -> Result<PathBuf> {
    let payloads = dir.join("payloads");
    fs::create_dir_all(&payloads)?;
    fs::write(payloads.join(NOOP_SCRIPT_NAME), NOOP_SCRIPT)?;
    Ok(payloads)
}

/// A v5 manifest of `steps` steps, each a no-op of `handler` (the script handler's steps
/// run the no-op script).
pub fn manifest(handler: &str, steps: usize) -> Result<Vec<u8>> {
    let script = handler == SCRIPT_ID;
    let steps: Vec<Value> = (0..steps)
        .map(|i| {
            if script {
                json!({
                    "description": format!("no-op script {i}"),
                    "handler": handler,
                    "files": ["noop"],
                    "handlerProperties": {
                        "scriptFileName": NOOP_SCRIPT_NAME,
                        "installedCriteria": format!("noop-{i}"),
                    },
                })
            } else {
                json!({
                    "description": format!("no-op {i}"),
                    "handler": handler,
                    "files": [],
                    "handlerProperties": {},
                })
            }
        })
        .collect();
    let mut manifest = json!({
        "updateId": {"provider": "bench", "name": "noop", "version": "1.0"},
        "isDeployable": true,
        "compatibility": [{"manufacturer": "contoso", "model": "bench"}],
        "instructions": {"steps": steps},
        "manifestVersion": "5.0",
        "createdDateTime": "2026-11-22T00:00:00Z"
    });
    if script {
        let digest = Sha256::digest(NOOP_SCRIPT.as_bytes());
        manifest["files"] = json!({
            "noop": {
                "fileName": NOOP_SCRIPT_NAME,
                "sizeInBytes": NOOP_SCRIPT.len(),
                "hashes": {"sha256": base64::engine::general_purpose::STANDARD.encode(digest)},
            }
        });
    }
    Ok(serde_json::to_vec(&manifest)?)
}

/// The device configuration the command-line runs use: the manifests' device, unsigned
/// manifests accepted.
pub const CONFIG_TOML: &str = "[device]\nmanufacturer = \"contoso\"\nmodel = \"bench\"\n\n\
                               [signing]\nrequired = false\n";
