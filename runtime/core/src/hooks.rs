//! Pre- and post-update hooks: the device owner's scripts around every deployment.
//!
//! A hook runs with an argument list `<hook> <deployment id> <update id> [<status>]`
//! and the environment `HANDRAIL_DEPLOYMENT`, `HANDRAIL_UPDATE_ID` (and
//! `HANDRAIL_STATUS` for the post hook). Because hooks run with the agent's privileges,
//! one is refused unless it is a regular file owned by root, executable, and not writable
//! by group or others. A refused, failing (non-zero exit) or timed-out pre hook fails the
//! deployment before any step runs; a post hook's failure is recorded on the report.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// Before the first step.
    PreUpdate,
    /// After the deployment ends.
    PostUpdate,
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookKind::PreUpdate => "pre-update",
            HookKind::PostUpdate => "post-update",
        })
    }
}

/// Checks that a hook may be run: a root-owned, executable regular file that group and
/// others cannot write. Returns `Ok(false)` when it does not exist.
pub fn check(kind: HookKind, path: &Path) -> Result<bool, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{kind} hook {}: {e}", path.display())),
    };
    let refuse = |why: String| Err(format!("{kind} hook {} refused: {why}", path.display()));
    if !meta.file_type().is_file() {
        return refuse("not a regular file (symbolic links are not followed)".into());
    }
    if meta.uid() != 0 {
        return refuse(format!("owned by uid {}, not root", meta.uid()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return refuse(format!(
            "mode {:o} lets group or others write it",
            mode & 0o7777
        ));
    }
    if mode & 0o100 == 0 {
        return refuse(format!(
            "mode {:o} is not executable by its owner",
            mode & 0o7777
        ));
    }
    Ok(true)
}

/// Runs a hook to its end (or its time limit) and returns `Err` with a message naming the
/// hook and what went wrong.
pub async fn run(
    kind: HookKind,
    path: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<(), String> {
    let spawn = || {
        tokio::process::Command::new(path)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
    };
    // A hook written a moment ago can still be open for writing in a process forked
    // meanwhile (ETXTBSY); that clears within milliseconds.
    let mut attempt = 0;
    let mut child = loop {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => {
                break other
                    .map_err(|e| format!("{kind} hook {} could not start: {e}", path.display()))?;
            }
        }
    };
    let mut stderr = child.stderr.take();
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let status = match waited {
        Ok(status) => status.map_err(|e| format!("{kind} hook {}: {e}", path.display()))?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "{kind} hook {} ran past its {} s limit and was killed",
                path.display(),
                timeout.as_secs()
            ));
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut tail = Vec::new();
    if let Some(err) = stderr.as_mut() {
        let _ = err.take(4096).read_to_end(&mut tail).await;
    }
    let said = String::from_utf8_lossy(&tail).trim().to_owned();
    Err(format!(
        "{kind} hook {} failed ({status}){}",
        path.display(),
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn hook(dir: &Path, body: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join("hook");
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn ownership_and_mode_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            check(HookKind::PreUpdate, &dir.path().join("none")),
            Ok(false)
        );
        let p = hook(dir.path(), "#!/bin/sh\n", 0o700);
        let owned_by_root = std::fs::metadata(&p).unwrap().uid() == 0;
        if owned_by_root {
            assert_eq!(check(HookKind::PreUpdate, &p), Ok(true));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o720)).unwrap();
            let e = check(HookKind::PreUpdate, &p).unwrap_err();
            assert!(e.contains("group or others write"), "{e}");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                check(HookKind::PreUpdate, &p)
                    .unwrap_err()
                    .contains("not executable")
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&p, Some(1000), None).unwrap();
        }
        let e = check(HookKind::PostUpdate, &p).unwrap_err();
        assert!(e.contains("not root") && e.contains("post-update"), "{e}");
    }

    #[tokio::test]
    async fn exit_status_and_time_limit_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = hook(
            dir.path(),
            "#!/bin/sh\necho \"no space for $1\" >&2\nexit 3\n",
            0o700,
        );
        let e = run(
            HookKind::PreUpdate,
            &p,
            &["dep-1"],
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("exit status: 3") && e.contains("no space for dep-1"),
            "{e}"
        );
        let p = hook(dir.path(), "#!/bin/sh\nexec sleep 30\n", 0o700);
        let e = run(
            HookKind::PreUpdate,
            &p,
            &[],
            &[],
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(e.contains("limit"), "{e}");
        let p = hook(
            dir.path(),
            "#!/bin/sh\n[ \"$HANDRAIL_DEPLOYMENT\" = d ]\n",
            0o700,
        );
        run(
            HookKind::PostUpdate,
            &p,
            &[],
            &[("HANDRAIL_DEPLOYMENT", "d")],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
}
