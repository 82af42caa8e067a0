//! The scratch device a handler is checked on: payload files, a device folder, a canary,
//! one work folder per action, and the call of one action through the real host.
//!
//! Layout of the bench's temporary folder:
//!
//! ```text
//! payload/   the profile's payload files (must never change)
//! canary/    a file no handler may touch
//! device/    the scratch device folder (emptied between scenarios, then given the
//!            profile's device files)
//! runs/NNN-<action>/   one work folder per action; holds its result file
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use handrail::CancelToken;
use handrail::host::{Invocation, InvocationEnd, LoadedHandler};
use handrail::registry::Registration;
use handrail_contract::{
    Action, MAX_RESULT_FILE_BYTES, PayloadFile, ResultFile, StepContext, UpdateId,
};
use sha2::{Digest, Sha256};

use crate::profile::{DEVICE_PLACEHOLDER, Profile};

/// The step an action is run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The profile's step.
    Realistic,
    /// The profile's step without its payload files.
    NoPayload,
    /// The profile's step with every handler property of the wrong type.
    MalformedProperties,
}

/// How one action ended, and what its result file said.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub action: Action,
    pub end: InvocationEnd,
    pub elapsed: Duration,
    /// The result as the runtime reads it; `None` unless the action returned.
    pub result: Option<ResultFile>,
    /// Why the result file is not one the runtime accepts as written.
    pub problem: Option<String>,
    /// The handler left a symbolic link where its result file goes.
    pub symlink: bool,
}

impl Outcome {
    /// `action` ended with code (and extended code), for reports.
    pub fn summary(&self) -> String {
        match (&self.end, &self.result) {
            (InvocationEnd::Returned, Some(r)) => format!(
                "{} → {} (0x{:08x}) {}",
                self.action,
                r.result_code,
                r.extended_result_code,
                r.result_details.trim()
            ),
            (end, _) => format!("{} → {end:?}", self.action),
        }
    }

    /// The result, when the action returned and wrote a valid result file.
    pub fn valid(&self) -> Option<&ResultFile> {
        match (&self.end, &self.problem) {
            (InvocationEnd::Returned, None) => self.result.as_ref(),
            _ => None,
        }
    }

    /// The result code and extended code, or how the action ended otherwise.
    pub fn codes(&self) -> String {
        match &self.result {
            Some(r) => format!("{} {}", r.result_code, r.extended_result_code),
            None => format!("{:?}", self.end),
        }
    }
}

/// The scratch device and the loaded handler.
pub(crate) struct Bench {
    root: PathBuf,
    handler: Arc<dyn LoadedHandler>,
    registration: Registration,
    profile: Profile,
    payload: Vec<PayloadFile>,
    next: AtomicUsize,
}

impl Bench {
    /// Lays out the bench in `root` (which exists and is empty) and returns it with the
    /// registration to load: the scratch device folder granted when the profile asks.
    pub fn prepare(
        root: &Path,
        registration: &Registration,
        profile: &Profile,
    ) -> std::io::Result<(Vec<PayloadFile>, Registration)> {
        for dir in ["payload", "canary", "device", "runs"] {
            fs::create_dir_all(root.join(dir))?;
        }
        fs::write(
            root.join("canary/canary.txt"),
            b"no handler may change this file",
        )?;
        let mut payload = Vec::new();
        for file in &profile.files {
            let path = root.join("payload").join(&file.name);
            fs::write(&path, &file.contents)?;
            payload.push(PayloadFile {
                name: file.name.clone(),
                path: path.display().to_string(),
                size: file.contents.len() as u64,
            });
        }
        let device = root.join("device");
        lay_device_files(&device, profile)?;
        let mut registration = registration.clone();
        // A cancelled action has the profile's bound to stop by itself; past it the host
        // stops it, and HC-007 says the handler ignored the cancel.
        registration.limits.cancel_grace_secs = profile.cancel_bound.as_secs().max(1);
        if profile.uses_device() {
            registration.capabilities.write.push(device.clone());
        }
        if let Some(key) = &profile.device_folder {
            registration
                .config
                .insert(key.clone(), device.display().to_string().into());
        }
        let settings = substitute(&profile.config, &device.display().to_string());
        registration.config.extend(settings);
        Ok((payload, registration))
    }

    pub fn new(
        root: &Path,
        handler: Arc<dyn LoadedHandler>,
        registration: Registration,
        profile: Profile,
        payload: Vec<PayloadFile>,
    ) -> Bench {
        Bench {
            root: root.to_owned(),
            handler,
            registration,
            profile,
            payload,
            next: AtomicUsize::new(0),
        }
    }

    pub fn handler(&self) -> &dyn LoadedHandler {
        self.handler.as_ref()
    }

    /// The registration the handler was loaded with.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// Empties the device folder and lays the profile's device files into it: the next
    /// scenario starts on a fresh device.
    pub fn reset_device(&self) -> std::io::Result<()> {
        let device = self.root.join("device");
        fs::remove_dir_all(&device)?;
        fs::create_dir_all(&device)?;
        lay_device_files(&device, &self.profile)
    }

    /// Runs `action` with `step` until it ends or `cancel` stops it.
    pub async fn invoke(&self, action: Action, step: Step, cancel: CancelToken) -> Outcome {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let work = self.root.join("runs").join(format!("{n:03}-{action}"));
        let result_path = work.join(format!("result-{action}.json"));
        if let Err(e) = fs::create_dir_all(&work) {
            return Outcome {
                action,
                end: InvocationEnd::HostFailure(format!("cannot create {}: {e}", work.display())),
                elapsed: Duration::ZERO,
                result: None,
                problem: None,
                symlink: false,
            };
        }
        let invocation = Invocation {
            action,
            context: self.context(step, &work, &result_path),
            cancel,
            progress: Arc::new(|_, _| {}),
        };
        let started = Instant::now();
        let end = self.handler.invoke(invocation).await;
        let elapsed = started.elapsed();
        let symlink = fs::symlink_metadata(&result_path).is_ok_and(|m| m.file_type().is_symlink());
        let (result, problem) = if end == InvocationEnd::Returned && !symlink {
            read_result(action, &result_path)
        } else {
            (None, None)
        };
        Outcome {
            action,
            end,
            elapsed,
            result,
            problem,
            symlink,
        }
    }

    fn context(&self, step: Step, work: &Path, result_path: &Path) -> StepContext {
        let device = self.root.join("device").display().to_string();
        let mut properties = substitute(&self.profile.handler_properties, &device);
        if step == Step::MalformedProperties {
            properties = malformed(&properties);
        }
        StepContext {
            workflow_id: "conformance".into(),
            update_id: UpdateId {
                provider: "handrail".into(),
                name: "conformance".into(),
                version: "1.0".into(),
            },
            step_index: 0,
            level: 0,
            handler_id: self.registration.id.clone(),
            handler_properties: properties,
            handler_config: self.registration.config.clone(),
            files: if step == Step::NoPayload {
                Vec::new()
            } else {
                self.payload.clone()
            },
            work_folder: work.display().to_string(),
            result_file: result_path.display().to_string(),
            installed_criteria: self.profile.installed_criteria.clone(),
            component: None,
        }
    }

    /// Every file of the bench outside the work folders and the device folder, with a
    /// hash of its contents (or its link target): what no handler may change.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut seen = BTreeMap::new();
        let skip = [self.root.join("runs"), self.root.join("device")];
        walk(&self.root, &skip, &mut seen);
        seen
    }
}

fn walk(dir: &Path, skip: &[PathBuf], seen: &mut BTreeMap<PathBuf, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.contains(&path) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let fingerprint = if meta.file_type().is_symlink() {
            format!(
                "link to {}",
                fs::read_link(&path).unwrap_or_default().display()
            )
        } else if meta.is_dir() {
            walk(&path, skip, seen);
            "folder".into()
        } else {
            let digest = fs::read(&path)
                .map(|bytes| Sha256::digest(&bytes).to_vec())
                .unwrap_or_default();
            format!("file {}", handrail::registry::hex(&digest))
        };
        seen.insert(path, fingerprint);
    }
}

/// Reads a result file as the runtime does (at most one byte past the limit, a regular
/// file only) and says whether it is valid as written.
fn read_result(action: Action, path: &Path) -> (Option<ResultFile>, Option<String>) {
    let bytes = match fs::File::open(path) {
        Ok(file) => {
            let mut buf = Vec::new();
            match file
                .take(MAX_RESULT_FILE_BYTES as u64 + 1)
                .read_to_end(&mut buf)
            {
                Ok(_) => Some(buf),
                Err(e) => {
                    let failure = format!("cannot read the result file: {e}");
                    return (None, Some(failure));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return (None, Some(format!("cannot open the result file: {e}"))),
    };
    let read = ResultFile::interpret(action, bytes.as_deref());
    let as_written = bytes
        .as_deref()
        .and_then(|b| serde_json::from_slice::<ResultFile>(b).ok());
    // Valid means the runtime takes the file exactly as the handler wrote it, with a code
    // of the action's own band (the runtime counts another band's success code as a
    // success, as ADU's agent does, but a handler must not rely on that).
    let problem = if as_written.as_ref() != Some(&read) {
        Some(read.result_details.clone())
    } else if !action.accepts(read.result_code) {
        Some(format!(
            "result code {} is not a valid answer to `{action}` (out of phase; handler said: {})",
            read.result_code, read.result_details
        ))
    } else {
        None
    };
    (Some(read), problem)
}

/// Writes the profile's device files into the (empty) device folder.
fn lay_device_files(device: &Path, profile: &Profile) -> std::io::Result<()> {
    for file in &profile.device_files {
        fs::write(device.join(&file.name), &file.contents)?;
    }
    Ok(())
}

/// `{device}` in the string values of `properties` (at any depth) replaced by `device`.
fn substitute(
    properties: &serde_json::Map<String, serde_json::Value>,
    device: &str,
) -> serde_json::Map<String, serde_json::Value> {
    fn value(v: &serde_json::Value, device: &str) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(s.replace(DEVICE_PLACEHOLDER, device)),
            Value::Array(items) => Value::Array(items.iter().map(|i| value(i, device)).collect()),
            Value::Object(map) => Value::Object(substitute(map, device)),
            other => other.clone(),
        }
    }
    properties
        .iter()
        .map(|(k, v)| (k.clone(), value(v, device)))
        .collect()
}

/// Every property turned into a value of another type, plus properties a handler cannot
/// expect; with no properties at all, a set of odd ones.
pub(crate) fn malformed(
    properties: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{Value, json};
    let mut out: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(k, v)| {
            let wrong = match v {
                Value::String(_) => json!(12345),
                Value::Number(_) => json!("not a number"),
                Value::Bool(_) => json!("maybe"),
                Value::Array(_) => json!({"not": "a list"}),
                Value::Object(_) => json!([null]),
                Value::Null => json!([]),
            };
            (k.clone(), wrong)
        })
        .collect();
    out.insert("".into(), Value::Null);
    out.insert(
        "handrailConformanceUnexpected".into(),
        json!({"nested": [1, null, {"deep": true}]}),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_at_any_depth() {
        let props = serde_json::json!({"a": "{device}/x", "b": ["{device}"], "c": {"d": "{device}"}, "e": 1});
        let out = substitute(props.as_object().unwrap(), "/dev0");
        assert_eq!(
            serde_json::Value::Object(out),
            serde_json::json!({"a": "/dev0/x", "b": ["/dev0"], "c": {"d": "/dev0"}, "e": 1})
        );
    }

    #[test]
    fn malformed_properties_change_every_type() {
        let props = serde_json::json!({"s": "x", "n": 1, "o": {}});
        let out = malformed(props.as_object().unwrap());
        assert!(out["s"].is_number() && out["n"].is_string() && out["o"].is_array());
        assert!(out.contains_key("handrailConformanceUnexpected"));
    }
}
