//! The file-system view of one action: the step's payload files read-only under
//! `/payload`, the action's work folder read-write under `/work`, the host folders the
//! registration grants ([`GrantedFolder`]) at their own paths, nothing else.
//!
//! The engine hands over a [`StepContext`] with host paths. [`Sandbox::prepare`] gathers
//! the step's payload files into a private folder (hard links, or copies where a hard
//! link cannot be made, e.g. across file systems) so the guest sees exactly the files of
//! its step, and rewrites the context into the paths the guest sees. The same mapping,
//! run backwards, turns a `sandbox-path` argument of the `run` import into a host path.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use handrail::registry::Registration;
use handrail_contract::StepContext;
use tempfile::TempDir;
use wasmtime_wasi::FsPerms;

/// Where the payload files appear inside the sandbox.
pub const PAYLOAD_DIR: &str = "/payload";
/// Where the work folder appears inside the sandbox.
pub const WORK_DIR: &str = "/work";

/// The file-system view of one action. Dropping it removes the payload folder (the
/// links or copies, never the payload files themselves).
#[derive(Debug)]
pub(crate) struct Sandbox {
    payload: PayloadView,
    work: PathBuf,
}

/// What the guest sees as `/payload`.
#[derive(Debug)]
enum PayloadView {
    /// The step's files, linked into a folder of the action's own.
    Own(TempDir),
    /// A step without files: the host's one empty folder ([`EmptyFolder`]), so no
    /// folder is made and removed for the action.
    Empty(PathBuf),
}

/// An empty folder, read-only to everyone, that every file-less step's `/payload` shows;
/// removed when dropped.
#[derive(Debug)]
pub(crate) struct EmptyFolder(TempDir);

impl EmptyFolder {
    /// A new empty folder in the temporary folder.
    pub(crate) fn new() -> io::Result<EmptyFolder> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(".handrail-empty-payload-")
            .tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555))?;
        Ok(EmptyFolder(dir))
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

impl PayloadView {
    fn path(&self) -> &Path {
        match self {
            PayloadView::Own(dir) => dir.path(),
            PayloadView::Empty(dir) => dir,
        }
    }
}

impl Sandbox {
    /// Builds the view for `context` (host paths) and returns it with the context the
    /// guest is given (sandbox paths); a step without files sees `empty`.
    pub(crate) fn prepare(
        context: &StepContext,
        empty: &EmptyFolder,
    ) -> Result<(Sandbox, StepContext), String> {
        let work = work_folder(&context.work_folder)?;
        let result_name = result_file_name(context, &work)?;
        let payload = if context.files.is_empty() {
            PayloadView::Empty(empty.path().to_owned())
        } else {
            PayloadView::Own(payload_folder(context)?)
        };
        let mut guest = context.clone();
        for file in &mut guest.files {
            if !is_plain_name(&file.name) {
                return Err(format!(
                    "payload file name `{}` is not a plain file name",
                    file.name
                ));
            }
            let link = payload.path().join(&file.name);
            link_or_copy(Path::new(&file.path), &link).map_err(|e| {
                format!(
                    "cannot place payload file {} in the sandbox: {e}",
                    file.path
                )
            })?;
            file.path = format!("{PAYLOAD_DIR}/{}", file.name);
        }
        guest.work_folder = WORK_DIR.to_owned();
        guest.result_file = format!("{WORK_DIR}/{result_name}");
        Ok((Sandbox { payload, work }, guest))
    }

    /// The host folder shown as `/payload`.
    pub(crate) fn payload_dir(&self) -> &Path {
        self.payload.path()
    }

    /// The host folder shown as `/work`.
    pub(crate) fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The host path of a path inside the sandbox (`/payload/…` or `/work/…`).
    ///
    /// Refused: anything outside those two folders, `..` components, and paths
    /// whose existing part resolves (through symbolic links the guest may have made in
    /// its work folder) outside the folder.
    pub(crate) fn host_path(&self, sandbox_path: &str) -> Result<PathBuf, String> {
        let refuse = |why: &str| format!("`{sandbox_path}` {why}");
        let path = Path::new(sandbox_path);
        let mut parts = path.components();
        if parts.next() != Some(Component::RootDir) {
            return Err(refuse("is not an absolute sandbox path"));
        }
        let root = match parts.next() {
            Some(Component::Normal(top)) if top == "payload" => self.payload_dir(),
            Some(Component::Normal(top)) if top == "work" => self.work.as_path(),
            _ => return Err(refuse("is not under /payload or /work")),
        };
        let mut host = root.to_path_buf();
        for part in parts {
            match part {
                Component::Normal(name) => host.push(name),
                _ => return Err(refuse("has `..` components")),
            }
        }
        // Resolve the part that exists; it must stay inside the root.
        let root =
            fs::canonicalize(root).map_err(|e| refuse(&format!("cannot be resolved: {e}")))?;
        let mut existing = host.as_path();
        loop {
            match fs::canonicalize(existing) {
                Ok(resolved) if resolved.starts_with(&root) => break,
                Ok(_) => return Err(refuse("resolves outside the sandbox")),
                Err(_) => match existing.parent() {
                    Some(parent) => existing = parent,
                    None => return Err(refuse("cannot be resolved")),
                },
            }
        }
        Ok(host)
    }
}

/// A host folder the registration grants (`capabilities.read` or `capabilities.write`),
/// shown to the guest at the same absolute path: read-only for `read`, read-write for
/// `write`. Only folders can be granted: WASI opens a view of a folder, not of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrantedFolder {
    /// The folder, on the host and in the guest.
    pub(crate) path: String,
    /// What the guest may do in it.
    pub(crate) perms: FsPerms,
}

impl GrantedFolder {
    /// The folders `registration` grants, `write` grants last so that a folder granted
    /// both ways is writable. Refused: a path that is not UTF-8 (the guest names
    /// folders with strings), that is or lies inside `/payload` or `/work` (it would
    /// hide, or be hidden by, the sandbox's own folders), or that exists and is not a
    /// folder.
    pub(crate) fn of(registration: &Registration) -> Result<Vec<GrantedFolder>, String> {
        let capabilities = &registration.capabilities;
        let read = capabilities
            .read
            .iter()
            .map(|p| ("read", p, FsPerms::ReadOnly));
        let write = capabilities
            .write
            .iter()
            .map(|p| ("write", p, FsPerms::ReadWrite));
        let mut folders: Vec<GrantedFolder> = Vec::new();
        for (field, path, perms) in read.chain(write) {
            let refuse = |why: &str| format!("capabilities.{field}: `{}` {why}", path.display());
            let Some(text) = path.to_str() else {
                return Err(refuse("is not valid UTF-8"));
            };
            if [PAYLOAD_DIR, WORK_DIR]
                .iter()
                .any(|own| path.starts_with(own))
            {
                return Err(refuse(&format!(
                    "lies inside the sandbox's own {PAYLOAD_DIR} or {WORK_DIR}"
                )));
            }
            if path.exists() && !path.is_dir() {
                return Err(refuse("is not a folder; grant the folder that holds it"));
            }
            let text = text.trim_end_matches('/');
            let text = if text.is_empty() { "/" } else { text };
            folders.retain(|f| f.path != text);
            folders.push(GrantedFolder {
                path: text.to_owned(),
                perms,
            });
        }
        Ok(folders)
    }
}

/// The work folder as an absolute path; it must be a folder.
fn work_folder(given: &str) -> Result<PathBuf, String> {
    let unusable = |e: io::Error| format!("work folder {given} is not usable: {e}");
    let work = std::path::absolute(given).map_err(unusable)?;
    if !fs::metadata(&work).map_err(unusable)?.is_dir() {
        return Err(unusable(io::Error::other("not a folder")));
    }
    Ok(work)
}

/// The result file's name, which must sit directly in the work folder: its parent is the
/// work folder as written (what the engine hands over), or resolves to the same folder.
fn result_file_name(context: &StepContext, work: &Path) -> Result<String, String> {
    let result = Path::new(&context.result_file);
    let name = result
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| is_plain_name(n));
    let in_work = result.parent().is_some_and(|parent| {
        std::path::absolute(parent).is_ok_and(|p| p == work)
            || fs::canonicalize(parent)
                .ok()
                .zip(fs::canonicalize(work).ok())
                .is_some_and(|(p, w)| p == w)
    });
    match name {
        Some(name) if in_work => Ok(name.to_owned()),
        _ => Err(format!(
            "result file {} is not a file directly inside the work folder {}",
            context.result_file, context.work_folder
        )),
    }
}

/// A private folder for the step's payload files, on the payload's own file system
/// when possible so hard links work.
fn payload_folder(context: &StepContext) -> Result<TempDir, String> {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix(".handrail-payload-");
        b
    };
    let beside_payload = context
        .files
        .first()
        .and_then(|f| Path::new(&f.path).parent())
        .and_then(|dir| builder.tempdir_in(dir).ok());
    match beside_payload {
        Some(dir) => Ok(dir),
        None => builder
            .tempdir()
            .map_err(|e| format!("cannot create the payload folder: {e}")),
    }
}

fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if !fs::metadata(from)?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(_) => fs::copy(from, to).map(|_| ()),
    }
}

/// True for a single, normal path component.
fn is_plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use handrail_contract::{PayloadFile, UpdateId};

    fn context(dir: &Path, files: &[(&str, &str)]) -> StepContext {
        let payload = dir.join("downloads");
        fs::create_dir_all(&payload).unwrap();
        let work = dir.join("work");
        fs::create_dir_all(&work).unwrap();
        StepContext {
            workflow_id: "w".into(),
            update_id: UpdateId {
                provider: "p".into(),
                name: "n".into(),
                version: "1".into(),
            },
            step_index: 0,
            level: 0,
            handler_id: "a/b:1".into(),
            handler_properties: Default::default(),
            files: files
                .iter()
                .map(|(name, body)| {
                    let path = payload.join(name);
                    fs::write(&path, body).unwrap();
                    PayloadFile {
                        name: (*name).into(),
                        path: path.display().to_string(),
                        size: body.len() as u64,
                    }
                })
                .collect(),
            work_folder: work.display().to_string(),
            result_file: work.join("result.json").display().to_string(),
            installed_criteria: None,
            handler_config: Default::default(),
            component: None,
        }
    }

    #[test]
    fn guest_sees_only_the_steps_files_under_sandbox_paths() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), &[("a.sh", "echo a"), ("fw.bin", "xx")]);
        fs::write(dir.path().join("downloads/other-step.bin"), "no").unwrap();
        let (sandbox, guest) = Sandbox::prepare(&ctx, &EmptyFolder::new().unwrap()).unwrap();
        assert_eq!(guest.files[0].path, "/payload/a.sh");
        assert_eq!(guest.files[1].path, "/payload/fw.bin");
        assert_eq!(guest.work_folder, "/work");
        assert_eq!(guest.result_file, "/work/result.json");
        let mut names: Vec<_> = fs::read_dir(sandbox.payload_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.sh", "fw.bin"]);
        let payload = sandbox.payload_dir().to_path_buf();
        drop(sandbox);
        assert!(!payload.exists());
        assert!(dir.path().join("downloads/a.sh").exists());
    }

    #[test]
    fn a_step_without_files_sees_the_shared_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let empty = EmptyFolder::new().unwrap();
        let ctx = context(dir.path(), &[]);
        let (sandbox, guest) = Sandbox::prepare(&ctx, &empty).unwrap();
        assert_eq!(sandbox.payload_dir(), empty.path());
        assert_eq!(guest.work_folder, "/work");
        assert_eq!(fs::read_dir(empty.path()).unwrap().count(), 0);
        drop(sandbox);
        assert!(empty.path().is_dir(), "shared: outlives each action");
        let path = empty.path().to_owned();
        drop(empty);
        assert!(!path.exists());
    }

    #[test]
    fn sandbox_paths_map_back_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), &[("a.sh", "echo a")]);
        let (sandbox, _) = Sandbox::prepare(&ctx, &EmptyFolder::new().unwrap()).unwrap();
        assert_eq!(
            sandbox.host_path("/payload/a.sh").unwrap(),
            sandbox.payload_dir().join("a.sh")
        );
        assert_eq!(
            sandbox.host_path("/work/new/out.json").unwrap(),
            sandbox.work_dir().join("new/out.json")
        );
        assert_eq!(sandbox.host_path("/work").unwrap(), sandbox.work_dir());
        std::os::unix::fs::symlink("/etc", sandbox.work_dir().join("etc")).unwrap();
        for bad in [
            "/etc/passwd",
            "payload/a.sh",
            "/payload/../work/x",
            "/",
            "/work/etc/passwd",
            "/work/etc",
        ] {
            assert!(sandbox.host_path(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bad_contexts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = context(dir.path(), &[("a.sh", "x")]);
        ctx.files[0].name = "../a.sh".into();
        assert!(
            Sandbox::prepare(&ctx, &EmptyFolder::new().unwrap())
                .unwrap_err()
                .contains("plain file name")
        );
        let mut ctx = context(dir.path(), &[]);
        ctx.result_file = "/tmp/result.json".into();
        assert!(
            Sandbox::prepare(&ctx, &EmptyFolder::new().unwrap())
                .unwrap_err()
                .contains("result file")
        );
    }

    fn granting(read: &[&Path], write: &[&Path]) -> Registration {
        Registration {
            id: "a/b:1".into(),
            kind: handrail::registry::HandlerKind::Wasm,
            artifact: PathBuf::new(),
            sha256: String::new(),
            capabilities: handrail::registry::Capabilities {
                run: Vec::new(),
                read: read.iter().map(|p| p.to_path_buf()).collect(),
                write: write.iter().map(|p| p.to_path_buf()).collect(),
                ..Default::default()
            },
            limits: Default::default(),
            config: Default::default(),
            source: None,
        }
    }

    #[test]
    fn granted_folders_keep_their_path_and_write_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let folders = GrantedFolder::of(&granting(&[&a, &b], &[&dir.path().join("b/")])).unwrap();
        let text = |p: &Path| p.to_str().unwrap().to_owned();
        assert_eq!(
            folders,
            [
                GrantedFolder {
                    path: text(&a),
                    perms: FsPerms::ReadOnly
                },
                GrantedFolder {
                    path: text(&b),
                    perms: FsPerms::ReadWrite
                },
            ]
        );
    }

    #[test]
    fn granted_files_and_folders_inside_the_sandbox_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("device.conf");
        fs::write(&file, "x").unwrap();
        let err = GrantedFolder::of(&granting(&[&file], &[])).unwrap_err();
        assert!(
            err.starts_with("capabilities.read:") && err.contains("not a folder"),
            "{err}"
        );
        for inside in ["/work", "/payload/x"] {
            let err = GrantedFolder::of(&granting(&[], &[Path::new(inside)])).unwrap_err();
            assert!(
                err.starts_with("capabilities.write:") && err.contains("inside"),
                "{err}"
            );
        }
    }
}
