//! Writing what the runtime reads, so nobody computes a size, a base64 sha256 or a hex
//! one by hand: `handrail manifest new | add-file | add-step` and `handrail handlers add`.
//! Each writes its file atomically and reads it back through the same parser the
//! runtime uses, so what it writes is what a deployment will take.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use handrail::registry::{Capabilities, HandlerKind, Limits, Registration, Registry};
use serde_json::{Map, Value, json};

use crate::exit::Failure;

fn bad(e: anyhow::Error) -> Failure {
    Failure::bad_input(e)
}

/// Reads a manifest this module writes to (a plain update manifest, not an envelope).
fn read_manifest(path: &Path) -> Result<Map<String, Value>, Failure> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(bad)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) if m.contains_key("updateManifest") => Err(bad(anyhow!(
            "{}: an envelope (updateManifest): edit the manifest it was made from, then sign it again",
            path.display()
        ))),
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad(anyhow!("{}: not a JSON object", path.display()))),
        Err(e) => Err(bad(anyhow!("{}: not JSON: {e}", path.display()))),
    }
}

/// Writes `manifest` to `path` (atomically), after parsing it as the runtime would.
fn write_manifest(path: &Path, manifest: Map<String, Value>) -> Result<(), Failure> {
    let bytes = serde_json::to_vec_pretty(&Value::Object(manifest)).expect("JSON");
    handrail::manifest::parse_document(&bytes).map_err(|e| {
        bad(anyhow!(
            "{}: the result would not be a valid manifest: {e}",
            path.display()
        ))
    })?;
    let mut bytes = bytes;
    bytes.push(b'\n');
    handrail::durable::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(bad)
}

/// `handrail manifest new`.
pub fn manifest_new(
    out: &Path,
    update: &str,
    compatibility: &[String],
    force: bool,
) -> Result<String, Failure> {
    if out.exists() && !force {
        return Err(bad(anyhow!(
            "{} exists; give --force to replace it",
            out.display()
        )));
    }
    let parts: Vec<&str> = update.split('/').collect();
    let [provider, name, version] = parts[..] else {
        return Err(bad(anyhow!(
            "--update `{update}`: give provider/name/version, e.g. contoso/toaster/1.2"
        )));
    };
    let mut compat = Vec::new();
    for entry in compatibility {
        let mut props = Map::new();
        for pair in entry.split(',') {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(bad(anyhow!(
                    "--compatibility `{entry}`: give key=value pairs, e.g. manufacturer=contoso,model=toaster"
                )));
            };
            props.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
        }
        compat.push(Value::Object(props));
    }
    if compat.is_empty() {
        return Err(bad(anyhow!(
            "--compatibility: give at least one (e.g. manufacturer=contoso,model=toaster): a manifest names the devices it is for"
        )));
    }
    let Value::Object(manifest) = json!({
        "updateId": {"provider": provider, "name": name, "version": version},
        "isDeployable": true,
        "compatibility": compat,
        "instructions": {"steps": []},
        "files": {},
        "manifestVersion": "5.0",
        "createdDateTime": handrail::clock::now_rfc3339(),
    }) else {
        unreachable!()
    };
    write_manifest(out, manifest)?;
    Ok(format!("{}: update {update}, no steps yet", out.display()))
}

/// `handrail manifest add-file`: each file's entry (size and sha256 computed), added or
/// brought up to date.
pub fn manifest_add_files(
    path: &Path,
    files: &[PathBuf],
    id: Option<&str>,
) -> Result<String, Failure> {
    if id.is_some() && files.len() != 1 {
        return Err(bad(anyhow!(
            "--id names one file; {} were given",
            files.len()
        )));
    }
    let mut manifest = read_manifest(path)?;
    let entries = manifest
        .entry("files")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(entries) = entries else {
        return Err(bad(anyhow!("{}: files is not an object", path.display())));
    };
    let mut said = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad(anyhow!("{}: not a file name", file.display())))?
            .to_owned();
        if let Some(problem) = handrail::manifest::file_name_problem(&name) {
            return Err(bad(anyhow!("{}: {problem}", file.display())));
        }
        let meta = std::fs::metadata(file)
            .with_context(|| format!("cannot read {}", file.display()))
            .map_err(bad)?;
        if !meta.is_file() {
            return Err(bad(anyhow!("{}: not a regular file", file.display())));
        }
        let hex = handrail::registry::sha256_file(file)
            .with_context(|| format!("cannot read {}", file.display()))
            .map_err(bad)?;
        let digest = handrail::registry::unhex::<32>(&hex).expect("sha256_file gives hex");
        let existing = entries
            .iter()
            .find(|(_, e)| e["fileName"] == name.as_str())
            .map(|(k, _)| k.clone());
        let key = match (id, existing) {
            (Some(id), _) => id.to_owned(),
            (None, Some(k)) => k,
            (None, None) => (1..)
                .map(|n| format!("f{n}"))
                .find(|k| !entries.contains_key(k))
                .expect("a free id"),
        };
        entries.insert(
            key.clone(),
            json!({
                "fileName": name,
                "sizeInBytes": meta.len(),
                "hashes": {"sha256": handrail::admit::b64(&digest)},
            }),
        );
        said.push(format!("{key}: {name}, {} bytes", meta.len()));
    }
    write_manifest(path, manifest)?;
    Ok(format!("{}: {}", path.display(), said.join("; ")))
}

/// `handrail manifest add-step`: an inline step after the steps there are.
pub fn manifest_add_step(
    path: &Path,
    handler: &str,
    files: &[String],
    properties: &[String],
    installed_criteria: Option<&str>,
    description: Option<&str>,
) -> Result<String, Failure> {
    if !handrail::registry::is_valid_handler_id(handler) {
        return Err(bad(anyhow!(
            "--handler `{handler}`: not a handler id of the form vendor/name:major"
        )));
    }
    let mut manifest = read_manifest(path)?;
    for f in files {
        let known = manifest["files"]
            .as_object()
            .is_some_and(|e| e.values().any(|e| e["fileName"] == f.as_str()));
        if !known {
            return Err(bad(anyhow!(
                "--file `{f}` is not in the manifest's files: add it first (handrail manifest add-file)"
            )));
        }
    }
    let mut props = Map::new();
    for p in properties {
        let Some((k, v)) = p.split_once('=') else {
            return Err(bad(anyhow!("--property `{p}`: give key=value")));
        };
        // JSON where the value is JSON (numbers, true, objects), else a string.
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        props.insert(k.to_owned(), value);
    }
    if let Some(c) = installed_criteria {
        props.insert("installedCriteria".into(), Value::String(c.to_owned()));
    }
    let mut step = json!({"handler": handler, "files": files, "handlerProperties": props});
    if let Some(d) = description {
        step["description"] = Value::String(d.to_owned());
    }
    let steps = manifest
        .get_mut("instructions")
        .and_then(|i| i.get_mut("steps"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| {
            bad(anyhow!(
                "{}: instructions.steps is not a list",
                path.display()
            ))
        })?;
    steps.push(step);
    let n = steps.len() - 1;
    write_manifest(path, manifest)?;
    Ok(format!("{}: step {n} runs {handler}", path.display()))
}

/// What `handrail handlers add` grants and limits.
pub struct Grants<'a> {
    pub run: &'a [PathBuf],
    pub read: &'a [PathBuf],
    pub write: &'a [PathBuf],
    pub sockets: &'a [String],
    pub privileges: &'a [String],
    pub memory_mib: Option<u64>,
    pub timeout_secs: Option<u64>,
}

/// `handrail handlers add`: a registration in `<state>/handlers/`, its sha256
/// computed, root's and not writable by others.
pub fn handlers_add(
    handlers_dir: &Path,
    artifact: &Path,
    id: &str,
    kind: Option<HandlerKind>,
    grants: &Grants<'_>,
    replace: bool,
) -> Result<String, Failure> {
    let artifact = std::path::absolute(artifact)
        .with_context(|| format!("{}", artifact.display()))
        .map_err(bad)?;
    let kind = match kind {
        Some(k) => k,
        None => match artifact.extension().and_then(|x| x.to_str()) {
            Some("wasm" | "cwasm") => HandlerKind::Wasm,
            Some("so") => HandlerKind::Native,
            _ => {
                return Err(bad(anyhow!(
                    "{}: say --kind wasm or --kind native (the name does not tell)",
                    artifact.display()
                )));
            }
        },
    };
    let sha256 = handrail::registry::sha256_file(&artifact)
        .with_context(|| format!("cannot read the artifact {}", artifact.display()))
        .map_err(bad)?;
    let mut limits = Limits::default();
    if let Some(m) = grants.memory_mib {
        limits.memory_mib = m;
    }
    if let Some(t) = grants.timeout_secs {
        limits.timeout_secs = t;
    }
    let registration = Registration {
        id: id.to_owned(),
        kind,
        artifact: artifact.clone(),
        sha256,
        capabilities: Capabilities {
            run: grants.run.to_vec(),
            read: grants.read.to_vec(),
            write: grants.write.to_vec(),
            sockets: named("socket", grants.sockets)?,
            privileges: named("privilege", grants.privileges)?,
        },
        limits,
        config: Map::new(),
        source: None,
    };
    let file = handlers_dir.join(format!("{}.toml", id.replace(['/', ':'], "-")));
    let text = toml::to_string(&registration)
        .map_err(|e| bad(anyhow!("cannot write the registration: {e}")))?;
    let text = format!("# Written by `handrail handlers add`.\n{text}");
    // Read back as the runtime reads it: every check it makes, made now.
    Registration::parse(&file, &text).map_err(|e| bad(e.into()))?;
    if !replace {
        if file.exists() {
            bail_input(format!(
                "{} exists; give --replace to write it again",
                file.display()
            ))?;
        }
        if let Ok(registry) = Registry::load_dir(handlers_dir)
            && let Some(other) = registry.get(id)
        {
            bail_input(format!(
                "`{id}` is registered already ({}); give --replace to write it again",
                other
                    .source
                    .as_ref()
                    .map_or_else(|| "elsewhere".into(), |p| p.display().to_string())
            ))?;
        }
    }
    handrail::durable::create_dir_all(handlers_dir)
        .with_context(|| format!("cannot make {}", handlers_dir.display()))
        .map_err(bad)?;
    handrail::durable::write_atomic(&file, text.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))
        .map_err(bad)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot set the mode of {}", file.display()))
        .map_err(bad)?;
    // The whole folder as the runtime loads it.
    Registry::load_dir(handlers_dir).map_err(|e| bad(e.into()))?;
    Ok(format!(
        "{}: {id} ({kind}), {}",
        file.display(),
        registration.artifact.display()
    ))
}

/// Each of `list` read as the registration's name for it (`--what` in errors).
fn named<T: serde::de::DeserializeOwned>(what: &str, list: &[String]) -> Result<Vec<T>, Failure> {
    list.iter()
        .map(|s| {
            serde_json::from_value(Value::String(s.clone()))
                .map_err(|e| bad(anyhow!("--{what} `{s}`: {e}")))
        })
        .collect()
}

fn bail_input(message: String) -> Result<(), Failure> {
    Err(bad(anyhow::Error::msg(message)))
}
