//! `handrail/self-update:1`: the built-in handler that updates the `handrail` binary
//! itself (and with it the built-in handler set it carries).
//!
//! The step names exactly one payload file, the new binary. `is-installed` compares its
//! sha256 with the running binary's; `install` stages it beside the old one as
//! `<binary>.new` and checks it starts (`--version`); `apply` runs the optional
//! pre-self-update hook, keeps the old binary as `<binary>.prev`, switches the new one in
//! with an atomic rename, and health-checks it (`handrail health` on the same state
//! directory). A new binary that fails to come up is switched back at once — the device
//! keeps the version that worked — and the step fails; one that passes answers 707 so the
//! agent restarts into it. The journal, history and registrations live in the state
//! directory and are untouched by the switch. `restore` puts `<binary>.prev` back.
//!
//! Extended codes (facility 3, component 0x49): `0x34900001` not exactly one payload
//! file, `0x34900002` staging failed, `0x34900003` the new binary does not start,
//! `0x34900004` pre-self-update hook failed, `0x34900005` the switch failed,
//! `0x34900006` the new binary failed its health check and was rolled back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use handrail::CancelToken;
use handrail::contract::codes::{self, FACILITY_STEP_HANDLER};
use handrail::contract::{Action, CONTRACT_VERSION, ExtendedCode, ResultFile, StepContext};
use handrail::durable;
use handrail::hooks::{self, HookKind};
use handrail::host::Description;
use handrail::in_process::InProcessHandler;
use handrail::registry::sha256_file;

/// The handler id.
pub const ID: &str = "handrail/self-update:1";

/// Component of the self-update handler's extended codes.
const COMPONENT_SELF_UPDATE: u8 = 0x49;

fn erc(code: u32) -> ExtendedCode {
    ExtendedCode::new(FACILITY_STEP_HANDLER, COMPONENT_SELF_UPDATE, code)
}

/// Updates the runtime binary.
pub struct SelfUpdate {
    /// The binary to replace.
    pub binary: PathBuf,
    /// State directory the health check opens.
    pub state_dir: PathBuf,
    /// Configuration file handed to the health check.
    pub config: Option<PathBuf>,
    /// Hook before the switch.
    pub pre_hook: Option<PathBuf>,
    /// Hook after the switch (with `succeeded` or `rolled-back`).
    pub post_hook: Option<PathBuf>,
    /// Health-check time limit.
    pub health_timeout: Duration,
}

impl SelfUpdate {
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.binary.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.binary.with_file_name(name)
    }

    fn new_binary(&self) -> PathBuf {
        self.sibling(".new")
    }

    fn previous_binary(&self) -> PathBuf {
        self.sibling(".prev")
    }

    fn payload<'a>(&self, ctx: &'a StepContext) -> Result<&'a Path, ResultFile> {
        match ctx.files.as_slice() {
            [one] => Ok(Path::new(&one.path)),
            files => Err(ResultFile::failure(
                erc(1),
                format!(
                    "a self-update step names exactly one payload file (the new binary); this one names {}",
                    files.len()
                ),
            )),
        }
    }

    fn is_installed(&self, ctx: &StepContext) -> ResultFile {
        let payload = match self.payload(ctx) {
            Ok(p) => p,
            Err(failure) => return failure,
        };
        match (sha256_file(&self.binary), sha256_file(payload)) {
            (Ok(running), Ok(new)) if running == new => ResultFile::new(
                codes::IS_INSTALLED_INSTALLED,
                format!("{} is already this version", self.binary.display()),
            ),
            (Ok(_), Ok(_)) => ResultFile::new(codes::IS_INSTALLED_NOT_INSTALLED, ""),
            (Err(e), _) | (_, Err(e)) => {
                ResultFile::failure(erc(2), format!("cannot hash the binaries: {e}"))
            }
        }
    }

    fn install(&self, ctx: &StepContext) -> ResultFile {
        let payload = match self.payload(ctx) {
            Ok(p) => p,
            Err(failure) => return failure,
        };
        let staged = self.new_binary();
        if let Err(e) = stage(payload, &staged) {
            return ResultFile::failure(
                erc(2),
                format!("cannot stage the new binary at {}: {e}", staged.display()),
            );
        }
        match run_with_timeout(
            Command::new(&staged).arg("--version"),
            Duration::from_secs(10),
        ) {
            Ok(()) => ResultFile::new(
                codes::INSTALL_SUCCESS,
                format!("new binary staged at {}", staged.display()),
            ),
            Err(why) => {
                let _ = std::fs::remove_file(&staged);
                ResultFile::failure(erc(3), format!("the new binary does not start: {why}"))
            }
        }
    }

    fn hook(&self, kind: HookKind, path: Option<&PathBuf>, outcome: &str) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        if !hooks::check(kind, path)? {
            return Err(format!(
                "self-update hook {} does not exist",
                path.display()
            ));
        }
        let mut cmd = Command::new(path);
        cmd.arg(self.binary.as_os_str()).arg(outcome);
        run_with_timeout(&mut cmd, Duration::from_secs(120))
            .map_err(|why| format!("self-update hook {}: {why}", path.display()))
    }

    fn health_check(&self) -> Result<(), String> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--state-dir").arg(&self.state_dir);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("health");
        run_with_timeout(&mut cmd, self.health_timeout)
    }

    fn apply(&self, _ctx: &StepContext) -> ResultFile {
        let staged = self.new_binary();
        let previous = self.previous_binary();
        if let Err(why) = self.hook(HookKind::PreUpdate, self.pre_hook.as_ref(), "pre") {
            let _ = std::fs::remove_file(&staged);
            return ResultFile::failure(erc(4), why);
        }
        // Keep the running version, then switch atomically: the binary path always names a
        // complete executable, old or new.
        let switched = replace_link(&self.binary, &previous)
            .and_then(|()| std::fs::rename(&staged, &self.binary))
            .and_then(|()| sync_parent(&self.binary));
        if let Err(e) = switched {
            return ResultFile::failure(
                erc(5),
                format!(
                    "cannot switch {} to the new binary: {e}",
                    self.binary.display()
                ),
            );
        }
        match self.health_check() {
            Ok(()) => {
                let hook = self.hook(HookKind::PostUpdate, self.post_hook.as_ref(), "succeeded");
                ResultFile::new(
                    codes::APPLY_REQUIRED_IMMEDIATE_AGENT_RESTART,
                    format!(
                        "{} switched to the new version and healthy; restart the agent{}",
                        self.binary.display(),
                        hook.err().map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                )
            }
            Err(why) => {
                let back = std::fs::rename(&previous, &self.binary)
                    .and_then(|()| sync_parent(&self.binary));
                let _ = self.hook(HookKind::PostUpdate, self.post_hook.as_ref(), "rolled-back");
                ResultFile::failure(
                    erc(6),
                    match back {
                        Ok(()) => format!(
                            "the new binary failed its health check ({why}); the previous version was restored"
                        ),
                        Err(e) => format!(
                            "the new binary failed its health check ({why}) and restoring {} failed: {e}",
                            previous.display()
                        ),
                    },
                )
            }
        }
    }

    fn restore(&self) -> ResultFile {
        let previous = self.previous_binary();
        if !previous.exists() {
            return ResultFile::new(
                codes::RESTORE_SUCCESS_UNSUPPORTED,
                "no previous binary kept",
            );
        }
        match std::fs::rename(&previous, &self.binary).and_then(|()| sync_parent(&self.binary)) {
            Ok(()) => ResultFile::new(codes::RESTORE_SUCCESS, "previous binary restored"),
            Err(e) => {
                ResultFile::failure(erc(5), format!("cannot restore the previous binary: {e}"))
            }
        }
    }
}

impl InProcessHandler for SelfUpdate {
    fn describe(&self) -> Description {
        Description {
            id: ID.into(),
            actions: vec![
                Action::IsInstalled,
                Action::Install,
                Action::Apply,
                Action::Restore,
            ],
            contract: CONTRACT_VERSION,
        }
    }

    fn run(&self, action: Action, ctx: &StepContext, _cancel: &CancelToken) -> Option<ResultFile> {
        Some(match action {
            Action::IsInstalled => self.is_installed(ctx),
            Action::Install => self.install(ctx),
            Action::Apply => self.apply(ctx),
            Action::Restore => self.restore(),
            other => ResultFile::new(other.unsupported_code(), ""),
        })
    }
}

/// Copies the new binary into place as an executable, fsync'ed.
fn stage(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    std::fs::File::open(to)?.sync_all()?;
    sync_parent(to)
}

/// Makes `link` another name of `target`, replacing any older `link`.
fn replace_link(target: &Path, link: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::hard_link(target, link)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    durable::sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Runs a program to its end within `limit`; `Err` says how it failed.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {} s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
