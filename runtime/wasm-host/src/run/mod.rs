//! The `run` import: starts a program the registration grants, with an argument list
//! (never a shell string), an empty environment plus the given pairs, the work folder as
//! working directory, a time limit and the action's cancel token.
//!
//! Nothing the program starts outlives it. Where the runtime can make cgroups, the program
//! runs in a cgroup of its own ([`handrail_confine::cgroup`]), joined before exec, with
//! `pids.max` at `limits.max_processes` and its memory limit at
//! `limits.process_memory_mib`; when it has exited, timed out or was cancelled, the
//! whole cgroup is killed and removed before `run` returns. Where it cannot, the program's
//! process group is killed instead, which catches what stays in the group but not a
//! daemon that made a session of its own (`setsid`): the log says so. Its output is
//! captured up to [`MAX_OUTPUT`] bytes per stream.
//!
//! The environment is checked first ([`environment`]): loader and interpreter variables
//! are refused, and the run fails naming them.
//!
//! The program is confined by [`handrail_confine`] from before its first instruction: the
//! child joins its cgroup, drops every capability the registration does not grant
//! (`capabilities.privileges`), then puts `no_new_privs`, Landlock (the payload, the work
//! folder, the registration's grants, the system folders; no TCP unless granted; signals
//! and abstract sockets scoped) and a seccomp filter (no kernel interfaces, no
//! namespaces, no socket of a family `capabilities.sockets` does not grant) in force
//! between fork and exec. What is built for that — the ruleset, the filters, the
//! cgroup — is built here, before the fork; the child makes system calls only. Where the
//! kernel has no Landlock, `config.landlock` decides whether the program is refused
//! (`require`, the default) or runs with a warning.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handrail::CancelToken;
use handrail::confinement::{LandlockPolicy, Privilege, SocketFamily};
use handrail::registry::Registration;
use handrail_confine::{CgroupLimits, Confinement, Grants, Launch};
use tokio::io::{AsyncRead, AsyncReadExt};

mod environment;

use crate::bindings::handrail::handler::types::{Arg, RunError, RunOutput};
use crate::sandbox::Sandbox;
use crate::stdio::CappedOutput;

/// Most output kept per stream (stdout, stderr) of a program.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// How long to keep reading output after the program exited, for output still held by
/// processes it left behind.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// What a `run` call may use: granted programs, the sandbox, the action's deadline and
/// cancel token.
pub(crate) struct RunScope {
    pub(crate) programs: Arc<ProgramGrants>,
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) deadline: Instant,
    pub(crate) cancel: CancelToken,
}

/// What a registration lets the programs its handler runs do.
pub(crate) struct ProgramGrants {
    /// The handler's id.
    pub(crate) handler: String,
    /// `capabilities.run`: the programs.
    pub(crate) run: Vec<PathBuf>,
    /// `capabilities.read`.
    pub(crate) read: Vec<PathBuf>,
    /// `capabilities.write`.
    pub(crate) write: Vec<PathBuf>,
    /// `capabilities.sockets`.
    pub(crate) sockets: Vec<SocketFamily>,
    /// `capabilities.privileges`.
    pub(crate) privileges: Vec<Privilege>,
    /// `config.landlock`: whether a program may run where Landlock is missing.
    pub(crate) policy: LandlockPolicy,
    /// `limits.max_processes` and `limits.process_memory_mib`: the program's cgroup's.
    pub(crate) limits: CgroupLimits,
}

impl ProgramGrants {
    /// The grants of `registration`; `Err` when its `config.landlock` is not valid.
    pub(crate) fn of(registration: &Registration) -> Result<ProgramGrants, String> {
        let capabilities = &registration.capabilities;
        Ok(ProgramGrants {
            handler: registration.id.clone(),
            run: capabilities.run.clone(),
            read: capabilities.read.clone(),
            write: capabilities.write.clone(),
            sockets: capabilities.sockets.clone(),
            privileges: capabilities.privileges.clone(),
            policy: LandlockPolicy::from_config(&registration.config)?,
            limits: CgroupLimits {
                max_processes: registration.limits.max_processes,
                memory_bytes: registration
                    .limits
                    .process_memory_mib
                    .saturating_mul(1024 * 1024),
            },
        })
    }
}

/// One `run` request of the guest.
pub(crate) struct RunRequest {
    pub(crate) program: String,
    pub(crate) args: Vec<Arg>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout_ms: u64,
}

impl RunScope {
    /// Runs the request to its end.
    pub(crate) async fn run(&self, request: RunRequest) -> Result<RunOutput, RunError> {
        if !self
            .programs
            .run
            .iter()
            .any(|p| p.as_os_str() == request.program.as_str())
        {
            return Err(RunError::NotGranted(format!(
                "`{}` is not among the programs this handler's registration grants (capabilities.run)",
                request.program
            )));
        }
        environment::check(&request.env).map_err(RunError::NotGranted)?;
        // Once the deployment is cancelled nothing new starts: a program that would exit
        // at once (a shell that backgrounds its work) must not race the cancel and win.
        if self.cancel.is_cancelled() {
            return Err(RunError::Cancelled);
        }
        let args = request
            .args
            .into_iter()
            .map(|arg| match arg {
                Arg::Literal(s) => Ok(OsString::from(s)),
                Arg::SandboxPath(p) => self
                    .sandbox
                    .host_path(&p)
                    .map(PathBuf::into_os_string)
                    .map_err(RunError::BadPath),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = Duration::from_millis(request.timeout_ms).min(remaining);

        // A program the Landlock policy refuses is refused before its cgroup is made.
        let payload = [self.sandbox.payload_dir().to_owned()];
        let confinement = Confinement::prepare(
            &Grants {
                payload: &payload,
                work: Some(self.sandbox.work_dir()),
                read: &self.programs.read,
                write: &self.programs.write,
                run: &self.programs.run,
                sockets: &self.programs.sockets,
                privileges: &self.programs.privileges,
            },
            self.programs.policy,
        )
        .map_err(|why| RunError::SpawnFailed(format!("{}: {why}", request.program)))?;
        let mut child = Launch::new(&request.program)
            .args(args)
            .envs(request.env)
            .current_dir(self.sandbox.work_dir())
            .spawn(
                &confinement,
                self.programs.limits,
                &format!("the program {}", request.program),
            )
            .map_err(|e| RunError::SpawnFailed(e.to_string()))?;
        let stdout = CappedOutput::new(MAX_OUTPUT);
        let stderr = CappedOutput::new(MAX_OUTPUT);
        let readers = [
            tokio::spawn(drain(child.stdout.take(), stdout.clone())),
            tokio::spawn(drain(child.stderr.take(), stderr.clone())),
        ];

        // A program that has exited keeps its status even when its time ran out or the
        // cancel came at the same moment (`biased`: its exit is polled first). One that is
        // stopped is waited for, so it is gone when the action hears why.
        let stopped = tokio::select! {
            biased;
            status = child.wait() => Ok(status.map_err(|e| RunError::SpawnFailed(e.to_string()))?),
            () = tokio::time::sleep(timeout) => Err(RunError::TimedOut),
            () = self.cancel.cancelled() => Err(RunError::Cancelled),
        };
        // Whatever the program started goes with it, however it ended; what outlived a
        // program that exited by itself is its own doing, what a time limit or a cancel
        // stopped is not.
        child.end(&self.programs.handler, stopped.is_ok()).await;
        let status = stopped?;
        // Without a cgroup, what left the process group may live on and keep the output
        // open, so wait for the rest of the output only for a while.
        let [out_reader, err_reader] = readers;
        let (out_abort, err_abort) = (out_reader.abort_handle(), err_reader.abort_handle());
        let all_read = tokio::time::timeout(OUTPUT_GRACE, async {
            let _ = tokio::join!(out_reader, err_reader);
        })
        .await
        .is_ok();
        out_abort.abort();
        err_abort.abort();
        let (stdout, out_dropped) = stdout.contents();
        let (stderr, err_dropped) = stderr.contents();
        use std::os::unix::process::ExitStatusExt;
        Ok(RunOutput {
            exit_code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            truncated: out_dropped > 0 || err_dropped > 0 || !all_read,
        })
    }
}

/// Reads a stream to its end into `into` (which keeps what fits under its cap).
async fn drain(stream: Option<impl AsyncRead + Unpin>, into: CappedOutput) {
    let Some(mut stream) = stream else {
        return;
    };
    let mut chunk = vec![0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        into.push(&chunk[..n]);
    }
}
