//! Preflight checks before a deployment is admitted: is the update for this device, and is
//! there room for it?
//!
//! Compatibility: a manifest lists property maps (`{manufacturer, model}`, `{group}`, …);
//! the device is compatible when every property of at least one map equals the device's
//! (configured properties plus the detected `architecture` and `os`). ADU's service
//! delivers the parent's maps with `deviceManufacturer` and `deviceModel` for what its
//! import manifests (and the `[device]` configuration) call `manufacturer` and `model`:
//! each name stands for the other. Disk space: the
//! file system holding the state directory needs the deployment's payload size times the
//! configured factor free (staging copies the payload, handlers unpack it).

use std::collections::BTreeMap;
use std::path::Path;

/// True when one of the manifest's compatibility maps matches the device.
///
/// ```
/// use std::collections::BTreeMap;
/// let device: BTreeMap<_, _> = [("manufacturer", "contoso"), ("model", "m1")]
///     .into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
/// let wanted = vec![[("model".to_string(), "m1".to_string())].into_iter().collect()];
/// assert!(handrail::preflight::compatible(&device, &wanted));
/// ```
pub fn compatible(
    device: &BTreeMap<String, String>,
    compatibility: &[BTreeMap<String, String>],
) -> bool {
    compatibility.iter().any(|wanted| {
        !wanted.is_empty() && wanted.iter().all(|(k, v)| property(device, k) == Some(v))
    })
}

/// The device's value of the property `name`, under either of its names.
fn property<'a>(device: &'a BTreeMap<String, String>, name: &str) -> Option<&'a String> {
    let other = match name {
        "deviceManufacturer" => "manufacturer",
        "manufacturer" => "deviceManufacturer",
        "deviceModel" => "model",
        "model" => "deviceModel",
        _ => return device.get(name),
    };
    device.get(name).or_else(|| device.get(other))
}

/// Explains why a manifest does not match the device.
pub fn incompatibility(
    device: &BTreeMap<String, String>,
    compatibility: &[BTreeMap<String, String>],
) -> String {
    let wanted: Vec<String> = compatibility
        .iter()
        .map(|m| {
            let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{{{}}}", pairs.join(", "))
        })
        .collect();
    let have: Vec<String> = device.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "compatibility: the update is for {} but this device is {{{}}}",
        wanted.join(" or "),
        have.join(", ")
    )
}

/// Bytes available to an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn any_map_must_match_entirely() {
        let device = map(&[
            ("manufacturer", "du-device"),
            ("model", "e2e-test"),
            ("os", "debian"),
        ]);
        assert!(compatible(
            &device,
            &[map(&[("manufacturer", "du-device"), ("model", "e2e-test")])]
        ));
        assert!(compatible(
            &device,
            &[map(&[("model", "other")]), map(&[("os", "debian")])]
        ));
        assert!(!compatible(
            &device,
            &[map(&[("manufacturer", "du-device"), ("model", "x")])]
        ));
        assert!(!compatible(&device, &[map(&[("group", "cameras")])]));
        assert!(!compatible(&device, &[map(&[])]));
        // As ADU's service delivers the parent's compatibility.
        assert!(compatible(
            &device,
            &[map(&[
                ("deviceManufacturer", "du-device"),
                ("deviceModel", "e2e-test")
            ])]
        ));
        assert!(!compatible(
            &device,
            &[map(&[
                ("deviceManufacturer", "du-device"),
                ("deviceModel", "x")
            ])]
        ));
        let why = incompatibility(&device, &[map(&[("model", "x")])]);
        assert!(
            why.contains("{model=x}") && why.contains("model=e2e-test"),
            "{why}"
        );
    }

    #[test]
    fn free_space_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
