//! One loaded native handler: what it said about itself, the sandbox each of its calls
//! gets, and how a worker run becomes an [`InvocationEnd`].

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use handrail::host::{BoxFuture, Description, Invocation, InvocationEnd, LoadedHandler};
use handrail::registry::{Capabilities, Limits, Registration};
use handrail_contract::{Action, StepContext};

use crate::process::{self, Finished, Stop};
use crate::protocol::{Call, Report, Request, WorkerLimits};
use handrail::confinement::LandlockPolicy;
use handrail_confine::{CgroupLimits, Confinement, Grants};

/// How long loading a library and calling `describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A native handler ready to run actions, each in a worker process of its own.
pub(crate) struct NativeHandler {
    worker: Arc<Path>,
    id: String,
    library: PathBuf,
    sha256: String,
    capabilities: Capabilities,
    limits: Limits,
    policy: LandlockPolicy,
    description: Description,
}

impl NativeHandler {
    /// Loads the registration's library in a worker, asks it to describe itself, and
    /// checks the answer. Errors say why, for a [`LoadError`](handrail::host::LoadError).
    pub(crate) async fn load(
        worker: Arc<Path>,
        registration: &Registration,
    ) -> Result<NativeHandler, String> {
        let policy = LandlockPolicy::from_config(&registration.config)?;
        if !worker.is_file() {
            return Err(format!(
                "the native worker program {} does not exist; install `handrail-native-worker` beside the runtime's executable",
                worker.display()
            ));
        }
        // The worker runs in the work folder: a relative path would name another file there.
        let library = std::path::absolute(&registration.artifact).map_err(|e| {
            format!(
                "cannot resolve the library path {}: {e}",
                registration.artifact.display()
            )
        })?;
        let mut handler = NativeHandler {
            worker,
            id: registration.id.clone(),
            library,
            sha256: registration.sha256.clone(),
            capabilities: registration.capabilities.clone(),
            limits: registration.limits.clone(),
            policy,
            description: Description {
                id: registration.id.clone(),
                actions: Vec::new(),
                contract: (0, 0),
            },
        };
        let request = handler.request(Call::Describe, DESCRIBE_TIMEOUT.as_secs());
        let finished = process::run(
            &handler.id,
            &handler.worker,
            &request,
            handler.confinement(None)?,
            handler.cgroup_limits(),
            Path::new("/"),
            DESCRIBE_TIMEOUT,
            None,
            None,
        )
        .await?;
        handler.log_output("describe", &finished);
        let description = match (&finished.stop, finished.final_report()) {
            (_, Some(Report::Described { description })) => description.clone(),
            (_, Some(Report::Refused { reason })) => return Err(reason.clone()),
            (Stop::Exited(status), _) => {
                return Err(format!(
                    "the worker {} while loading the library or calling `describe`{}",
                    process::describe_exit(*status),
                    finished.output_tail()
                ));
            }
            (Stop::TimedOut | Stop::Cancelled, _) => {
                return Err(format!(
                    "loading the library and calling `describe` took longer than {} s",
                    DESCRIBE_TIMEOUT.as_secs()
                ));
            }
        };
        if description.id != registration.id {
            return Err(format!(
                "it describes itself as `{}`, not as the registered `{}`",
                description.id, registration.id
            ));
        }
        handler.description = description;
        Ok(handler)
    }

    fn request(&self, call: Call, cpu_secs: u64) -> Request {
        Request {
            library: self.library.clone(),
            sha256: self.sha256.clone(),
            call,
            limits: WorkerLimits {
                memory_mib: self.limits.memory_mib,
                cpu_secs,
            },
        }
    }

    /// The confinement of one call: the view every handler's process gets (the system's
    /// folders), the library read-only and the worker program executable; for an action
    /// also the step's payload files read-only, its work folder read-write, and what the
    /// registration grants. `describe` gets nothing more than the library.
    fn confinement(&self, context: Option<&StepContext>) -> Result<Confinement, String> {
        let library = [self.library.clone()];
        let worker = [self.worker.to_path_buf()];
        let Some(context) = context else {
            return Confinement::prepare(
                &Grants {
                    payload: &[],
                    work: None,
                    read: &library,
                    write: &[],
                    run: &worker,
                    sockets: &[],
                    privileges: &[],
                },
                self.policy,
            );
        };
        let payload: Vec<PathBuf> = context
            .files
            .iter()
            .map(|f| PathBuf::from(&f.path))
            .collect();
        let read: Vec<PathBuf> = library
            .into_iter()
            .chain(self.capabilities.read.iter().cloned())
            .collect();
        let run: Vec<PathBuf> = worker
            .into_iter()
            .chain(self.capabilities.run.iter().cloned())
            .collect();
        Confinement::prepare(
            &Grants {
                payload: &payload,
                work: Some(Path::new(&context.work_folder)),
                read: &read,
                write: &self.capabilities.write,
                run: &run,
                sockets: &self.capabilities.sockets,
                privileges: &self.capabilities.privileges,
            },
            self.policy,
        )
    }

    /// The limits of a worker's cgroup.
    fn cgroup_limits(&self) -> CgroupLimits {
        CgroupLimits {
            max_processes: self.limits.max_processes,
            memory_bytes: self.limits.process_memory_mib.saturating_mul(1024 * 1024),
        }
    }

    async fn run_action(&self, invocation: Invocation) -> InvocationEnd {
        let Invocation {
            action,
            context,
            cancel,
            progress,
        } = invocation;
        let work = PathBuf::from(&context.work_folder);
        let confinement = match self.confinement(Some(&context)) {
            Ok(confinement) => confinement,
            Err(why) => return InvocationEnd::HostFailure(why),
        };
        let request = self.request(
            Call::Action {
                action,
                context: Box::new(context),
            },
            self.limits.timeout_secs,
        );
        let timeout = Duration::from_secs(self.limits.timeout_secs);
        let finished = match process::run(
            &self.id,
            &self.worker,
            &request,
            confinement,
            self.cgroup_limits(),
            &work,
            timeout,
            Some(&cancel),
            Some(progress),
        )
        .await
        {
            Ok(f) => f,
            Err(e) => return InvocationEnd::HostFailure(e),
        };
        self.log_output(action.as_str(), &finished);
        end_of(action, &finished)
    }

    /// Writes the handler's captured output to the log.
    fn log_output(&self, call: &str, finished: &Finished) {
        let text = finished.output.trim_end();
        if !text.is_empty() {
            let cut = if finished.output_truncated {
                " [cut]"
            } else {
                ""
            };
            tracing::info!(handler = %self.id, call, "handler output:\n{text}{cut}");
        }
    }
}

/// How an action ended, from how its worker ended and what it reported.
fn end_of(action: Action, finished: &Finished) -> InvocationEnd {
    let status = match (&finished.stop, finished.final_report()) {
        (Stop::TimedOut, _) => return InvocationEnd::TimedOut,
        (Stop::Cancelled, _) => return InvocationEnd::Cancelled,
        (Stop::Exited(status), report) => (*status, report),
    };
    match status {
        (_, Some(Report::Returned { status: 0 })) => InvocationEnd::Returned,
        (_, Some(Report::Returned { status })) => InvocationEnd::Trapped(format!(
            "`{action}` returned status {status} instead of 0: the handler could not run it{}",
            finished.output_tail()
        )),
        (_, Some(Report::Refused { reason })) => InvocationEnd::HostFailure(format!(
            "the native worker did not run `{action}`: {reason}"
        )),
        (exit, _) if exit.signal() == Some(libc::SIGXCPU) => InvocationEnd::TimedOut,
        (exit, _) => {
            let hint = if exit.code().is_some() {
                " (the library called exit())"
            } else {
                ""
            };
            InvocationEnd::WorkerDied(format!(
                "the worker {} before `{action}` returned{hint}{}",
                process::describe_exit(exit),
                finished.output_tail()
            ))
        }
    }
}

impl LoadedHandler for NativeHandler {
    fn description(&self) -> &Description {
        &self.description
    }

    fn invoke(&self, invocation: Invocation) -> BoxFuture<'_, InvocationEnd> {
        Box::pin(self.run_action(invocation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    fn finished(stop: Stop, reports: Vec<Report>) -> Finished {
        Finished {
            stop,
            reports,
            output: "boom".into(),
            output_truncated: false,
        }
    }

    #[test]
    fn every_way_a_worker_ends_has_its_invocation_end() {
        let exited = |raw| Stop::Exited(ExitStatus::from_raw(raw));
        let returned = |status| vec![Report::Returned { status }];
        assert_eq!(
            end_of(Action::Install, &finished(exited(0), returned(0))),
            InvocationEnd::Returned
        );
        assert!(matches!(
            end_of(Action::Install, &finished(exited(0), returned(2))),
            InvocationEnd::Trapped(m) if m.contains("status 2") && m.contains("boom")
        ));
        assert!(matches!(
            end_of(Action::Install, &finished(exited(libc::SIGSEGV), vec![])),
            InvocationEnd::WorkerDied(m) if m.contains("SIGSEGV") && m.contains("`install`")
        ));
        assert!(matches!(
            end_of(Action::Install, &finished(exited(3 << 8), vec![])),
            InvocationEnd::WorkerDied(m) if m.contains("status 3") && m.contains("exit()")
        ));
        assert_eq!(
            end_of(Action::Install, &finished(exited(libc::SIGXCPU), vec![])),
            InvocationEnd::TimedOut
        );
        assert_eq!(
            end_of(Action::Apply, &finished(Stop::TimedOut, vec![])),
            InvocationEnd::TimedOut
        );
        assert_eq!(
            end_of(Action::Apply, &finished(Stop::Cancelled, returned(0))),
            InvocationEnd::Cancelled
        );
        assert!(matches!(
            end_of(
                Action::Apply,
                &finished(
                    exited(0),
                    vec![Report::Refused {
                        reason: "no".into()
                    }]
                )
            ),
            InvocationEnd::HostFailure(m) if m.contains("no")
        ));
    }
}
