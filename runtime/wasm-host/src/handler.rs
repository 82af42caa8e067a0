//! One loaded WebAssembly handler: its pre-linked component, what it said about itself,
//! and how each action runs (fresh store, sandbox, limits, cancel).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handrail::CancelToken;
use handrail::host::{BoxFuture, Description, Invocation, InvocationEnd, LoadedHandler};
use handrail::registry::Registration;
use handrail_contract::{Action, CONTRACT_VERSION, StepContext};
use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::Shared;
use crate::bindings::StepHandlerPre;
use crate::bindings::handrail::handler::types as wit;
use crate::run::{ProgramGrants, RunScope};
use crate::sandbox::{GrantedFolder, PAYLOAD_DIR, Sandbox, WORK_DIR};
use crate::state::{ActionScope, HostState, truncate};
use crate::stdio::CappedOutput;

/// Most guest stdout (and, separately, stderr) kept per action.
const GUEST_OUTPUT_CAP: usize = 64 * 1024;

/// Longest trap description kept (the guest's stderr tail comes on top).
const MAX_TRAP_MESSAGE_BYTES: usize = 8 * 1024;

/// How long `describe` may take at load.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A handler ready to run actions.
pub(crate) struct WasmHandler {
    shared: Arc<Shared>,
    pre: StepHandlerPre<HostState>,
    description: Description,
    id: Arc<str>,
    programs: Arc<ProgramGrants>,
    folders: Arc<[GrantedFolder]>,
    memory_limit: usize,
    timeout: Duration,
    cancel_grace: Duration,
}

/// How a guest call ended, as the store saw it.
enum CallEnd {
    Returned,
    Failed(wasmtime::Error),
    TimedOut,
    Cancelled,
}

impl WasmHandler {
    /// Pre-links `component` and asks it to describe itself.
    pub(crate) async fn new(
        shared: Arc<Shared>,
        registration: &Registration,
        component: &Component,
    ) -> Result<WasmHandler, String> {
        let pre = shared
            .linker
            .instantiate_pre(component)
            .and_then(StepHandlerPre::new)
            .map_err(|e| {
                format!(
                    "the component does not target the handrail:handler/step-handler world: {e:#}"
                )
            })?;
        let memory_limit = usize::try_from(registration.limits.memory_mib)
            .ok()
            .and_then(|mib| mib.checked_mul(1024 * 1024))
            .unwrap_or(usize::MAX);
        let mut handler = WasmHandler {
            shared,
            pre,
            description: Description {
                id: registration.id.clone(),
                actions: Vec::new(),
                contract: (0, 0),
            },
            id: registration.id.as_str().into(),
            programs: Arc::new(ProgramGrants::of(registration)?),
            folders: GrantedFolder::of(registration)?.into(),
            memory_limit,
            timeout: Duration::from_secs(registration.limits.timeout_secs),
            cancel_grace: Duration::from_secs(registration.limits.cancel_grace_secs),
        };
        let description = handler.describe().await?;
        let (major, minor) = description.contract;
        if major != CONTRACT_VERSION.0 || minor > CONTRACT_VERSION.1 {
            return Err(format!(
                "it was built for handler contract {major}.{minor}; this runtime implements {}.{} (same major, minor up to {} accepted)",
                CONTRACT_VERSION.0, CONTRACT_VERSION.1, CONTRACT_VERSION.1
            ));
        }
        if description.id != registration.id {
            return Err(format!(
                "it describes itself as `{}`, not as the registered `{}`",
                description.id, registration.id
            ));
        }
        handler.description = description;
        Ok(handler)
    }

    fn store(&self, wasi: WasiCtx, action: Option<ActionScope>) -> Store<HostState> {
        let state = HostState::new(wasi, self.memory_limit, self.id.clone(), action);
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Yield to the async runtime at every epoch tick, so a busy guest never holds a
        // worker thread and the timers that stop it can fire.
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        store.set_epoch_deadline(1);
        store
    }

    async fn describe(&self) -> Result<Description, String> {
        let stderr = CappedOutput::new(GUEST_OUTPUT_CAP);
        let wasi = sandboxed_wasi(&CappedOutput::new(GUEST_OUTPUT_CAP), &stderr).build();
        let mut store = self.store(wasi, None);
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance
                .handrail_handler_handler()
                .call_describe(&mut store)
                .await
        };
        let described = match tokio::time::timeout(DESCRIBE_TIMEOUT, call).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                let oom = store.data().limiter.exceeded;
                let why = match end_of_failure(e, oom, self.memory_limit, &stderr) {
                    InvocationEnd::OutOfMemory(m) => format!("out of memory: {m}"),
                    InvocationEnd::Trapped(m) => m,
                    other => format!("{other:?}"),
                };
                return Err(format!("`describe` failed: {why}"));
            }
            Err(_) => {
                return Err(format!(
                    "`describe` did not return within {} s",
                    DESCRIBE_TIMEOUT.as_secs()
                ));
            }
        };
        let mut actions: Vec<Action> = described.actions.into_iter().map(action_of).collect();
        actions.sort();
        actions.dedup();
        Ok(Description {
            id: described.id,
            actions,
            contract: (described.contract_major, described.contract_minor),
        })
    }

    async fn run_action(&self, invocation: Invocation) -> InvocationEnd {
        let action = invocation.action;
        let (sandbox, guest_context) =
            match Sandbox::prepare(&invocation.context, &self.shared.empty_payload) {
                Ok(prepared) => prepared,
                Err(e) => return InvocationEnd::HostFailure(e),
            };
        let sandbox = Arc::new(sandbox);
        // `cancel` is what runs *because* the deployment was cancelled; the cancelled
        // token must not stop it.
        let cancel = if action == Action::Cancel {
            CancelToken::new()
        } else {
            invocation.cancel.clone()
        };
        let stdout = CappedOutput::new(GUEST_OUTPUT_CAP);
        let stderr = CappedOutput::new(GUEST_OUTPUT_CAP);
        let inline_files = self.folders.is_empty() && self.programs.run.is_empty();
        let mut wasi = match action_wasi(&sandbox, &stdout, &stderr, inline_files) {
            Ok(wasi) => wasi,
            Err(e) => return InvocationEnd::HostFailure(e),
        };
        if let Err(e) = self.mount_granted_folders(&mut wasi) {
            return InvocationEnd::HostFailure(e);
        }
        let scope = ActionScope {
            progress: invocation.progress.clone(),
            run: RunScope {
                programs: self.programs.clone(),
                sandbox: sandbox.clone(),
                deadline: Instant::now() + self.timeout,
                cancel: cancel.clone(),
            },
        };
        let mut store = self.store(wasi.build(), Some(scope));
        let context = to_wit(&guest_context);
        tracing::debug!(handler = %self.id, %action, "running a WebAssembly handler action");

        let end = {
            let call = async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                let handler = instance.handrail_handler_handler();
                match action {
                    Action::IsInstalled => handler.call_is_installed(&mut store, &context).await,
                    Action::Download => handler.call_download(&mut store, &context).await,
                    Action::Backup => handler.call_backup(&mut store, &context).await,
                    Action::Install => handler.call_install(&mut store, &context).await,
                    Action::Apply => handler.call_apply(&mut store, &context).await,
                    Action::Restore => handler.call_restore(&mut store, &context).await,
                    Action::Cancel => handler.call_cancel(&mut store, &context).await,
                }
            };
            let call = tokio::time::timeout(self.timeout, call);
            tokio::pin!(call);
            let ended = |ended: Result<wasmtime::Result<()>, _>| match ended {
                Ok(Ok(())) => CallEnd::Returned,
                Ok(Err(e)) => CallEnd::Failed(e),
                Err(_) => CallEnd::TimedOut,
            };
            // A guest that has returned keeps its result even when the cancel came at the
            // same moment (`biased`: the call is polled first). One still running once
            // cancelled has the grace to notice and stop by itself, as a handler should,
            // and is stopped past it.
            tokio::select! {
                biased;
                end = &mut call => ended(end),
                () = cancel.cancelled() => {
                    match tokio::time::timeout(self.cancel_grace, &mut call).await {
                        Ok(end) => ended(end),
                        Err(_) => CallEnd::Cancelled,
                    }
                }
            }
        };
        self.log_output("stdout", &stdout);
        self.log_output("stderr", &stderr);
        match end {
            CallEnd::Returned => InvocationEnd::Returned,
            CallEnd::TimedOut => InvocationEnd::TimedOut,
            CallEnd::Cancelled => InvocationEnd::Cancelled,
            CallEnd::Failed(e) => {
                let oom = store.data().limiter.exceeded;
                end_of_failure(e, oom, self.memory_limit, &stderr)
            }
        }
    }

    /// Shows each granted folder at its own path. A folder that does not exist (an
    /// unmounted medium, say) is left out, so the guest finds it missing as a native
    /// program would.
    fn mount_granted_folders(&self, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        for folder in self.folders.iter() {
            if !Path::new(&folder.path).exists() {
                tracing::warn!(handler = %self.id, folder = %folder.path, "a granted folder does not exist; the handler will not see it");
                continue;
            }
            wasi.preopened_dir(&folder.path, &folder.path, folder.perms)
                .map_err(|e| format!("cannot open the granted folder {}: {e:#}", folder.path))?;
        }
        Ok(())
    }

    fn log_output(&self, stream: &str, output: &CappedOutput) {
        let (bytes, dropped) = output.contents();
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        if dropped > 0 {
            tracing::info!(target: "handrail::handler", handler = %self.id, stream, "{}\n[{dropped} more bytes dropped]", text.trim_end());
        } else {
            tracing::info!(target: "handrail::handler", handler = %self.id, stream, "{}", text.trim_end());
        }
    }
}

impl LoadedHandler for WasmHandler {
    fn description(&self) -> &Description {
        &self.description
    }

    fn invoke(&self, invocation: Invocation) -> BoxFuture<'_, InvocationEnd> {
        Box::pin(self.run_action(invocation))
    }
}

/// A WASI context with nothing in it but the given output streams: no files, no
/// network, no environment, no arguments. Callers add the preopened folders.
pub(crate) fn sandboxed_wasi(stdout: &CappedOutput, stderr: &CappedOutput) -> WasiCtxBuilder {
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    wasi
}

/// The WASI context of one action: [`sandboxed_wasi`] with the sandbox's payload folder
/// (read-only) and work folder (read-write) opened; granted folders come on top.
///
/// With `inline_files`, the guest's file calls run on the thread that runs the guest
/// instead of going through the async runtime's blocking pool, whose two thread
/// hand-offs per call are most of a no-op action's time. That is for a guest that can
/// reach only regular files: the step's payload files and what it made itself in its
/// work folder (WASI makes no FIFOs or devices). A guest granted folders, or programs
/// that could make a FIFO in its work folder, may open a file that waits forever; on
/// the pool its time limit and cancel still end the action.
fn action_wasi(
    sandbox: &Sandbox,
    stdout: &CappedOutput,
    stderr: &CappedOutput,
    inline_files: bool,
) -> Result<WasiCtxBuilder, String> {
    let mut wasi = sandboxed_wasi(stdout, stderr);
    wasi.allow_blocking_current_thread(inline_files);
    wasi.preopened_dir(sandbox.payload_dir(), PAYLOAD_DIR, FsPerms::ReadOnly)
        .and_then(|w| w.preopened_dir(sandbox.work_dir(), WORK_DIR, FsPerms::ReadWrite))
        .map_err(|e| format!("cannot open the sandbox folders: {e:#}"))?;
    Ok(wasi)
}

/// Builds, then drops, the file-system sandbox and WASI context an action of a handler
/// with no granted folders gets for `context` — the sandbox's share of a call, which the
/// benchmark measures on its own.
pub(crate) fn sandbox_setup(shared: &Shared, context: &StepContext) -> Result<(), String> {
    let (sandbox, _) = Sandbox::prepare(context, &shared.empty_payload)?;
    let stdout = CappedOutput::new(GUEST_OUTPUT_CAP);
    let stderr = CappedOutput::new(GUEST_OUTPUT_CAP);
    drop(action_wasi(&sandbox, &stdout, &stderr, true)?.build());
    Ok(())
}

/// What a failed guest call means: out of memory when the limiter refused a growth,
/// else a trap, with the end of the guest's stderr (a Rust panic message, say).
fn end_of_failure(
    error: wasmtime::Error,
    asked: Option<usize>,
    limit: usize,
    stderr: &CappedOutput,
) -> InvocationEnd {
    if let Some(asked) = asked {
        return InvocationEnd::OutOfMemory(format!(
            "the handler asked for {asked} bytes of memory; its limit is {limit} bytes"
        ));
    }
    // The whole of it, the guest's backtrace included (not `{:?}`, which adds the
    // host's), goes to the log; the report gets one line, the panic message first.
    let full = truncate(&format!("{error:#}"), MAX_TRAP_MESSAGE_BYTES).into_owned();
    let (bytes, _) = stderr.contents();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_end();
    let mut start = text.len().saturating_sub(2048);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    tracing::warn!(
        "the handler trapped: {full}{}{tail}",
        if tail.is_empty() {
            ""
        } else {
            "\nhandler stderr: "
        }
    );
    let message = trap_summary(&error, tail);
    InvocationEnd::Trapped(message)
}

/// One line for a trap: `panicked at <file:line:col>: <message> (<trap>)` when the
/// guest's stderr holds a Rust panic, else the trap's causes (their first lines, the
/// backtrace left out) and the last line the guest wrote to stderr.
fn trap_summary(error: &wasmtime::Error, stderr: &str) -> String {
    let mut causes: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches(':');
        if first.is_empty()
            || first.starts_with("error while executing at wasm backtrace")
            || causes.iter().any(|c| c.contains(first))
        {
            continue;
        }
        causes.push(first.to_owned());
    }
    let trap = if causes.is_empty() {
        "a trap".to_owned()
    } else {
        causes.join(": ")
    };
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(at) = lines.iter().rposition(|l| l.contains(" panicked at ")) {
        let location = lines[at]
            .split_once(" panicked at ")
            .map_or("", |(_, l)| l)
            .trim_end_matches(':');
        let message: Vec<&str> = lines[at + 1..]
            .iter()
            .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace"))
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        return truncate(
            &format!("panicked at {location}: {} ({trap})", message.join(" ")),
            MAX_TRAP_MESSAGE_BYTES,
        )
        .into_owned();
    }
    let mut line = trap;
    if let Some(last) = lines.iter().rev().find(|l| !l.trim().is_empty()) {
        line.push_str("; the handler's last line on stderr: ");
        line.push_str(last.trim());
    }
    truncate(&line, MAX_TRAP_MESSAGE_BYTES).into_owned()
}

fn action_of(action: wit::Action) -> Action {
    match action {
        wit::Action::IsInstalled => Action::IsInstalled,
        wit::Action::Download => Action::Download,
        wit::Action::Backup => Action::Backup,
        wit::Action::Install => Action::Install,
        wit::Action::Apply => Action::Apply,
        wit::Action::Restore => Action::Restore,
        wit::Action::Cancel => Action::Cancel,
    }
}

/// The WIT record of a step context (already rewritten to sandbox paths).
fn to_wit(ctx: &StepContext) -> wit::StepContext {
    wit::StepContext {
        workflow_id: ctx.workflow_id.clone(),
        update_id: wit::UpdateId {
            provider: ctx.update_id.provider.clone(),
            name: ctx.update_id.name.clone(),
            version: ctx.update_id.version.clone(),
        },
        step_index: ctx.step_index,
        level: ctx.level,
        handler_id: ctx.handler_id.clone(),
        handler_properties_json: serde_json::Value::Object(ctx.handler_properties.clone())
            .to_string(),
        handler_config_json: serde_json::Value::Object(ctx.handler_config.clone()).to_string(),
        files: ctx
            .files
            .iter()
            .map(|f| wit::PayloadFile {
                name: f.name.clone(),
                path: f.path.clone(),
                size: f.size,
            })
            .collect(),
        work_folder: ctx.work_folder.clone(),
        result_file: ctx.result_file.clone(),
        installed_criteria: ctx.installed_criteria.clone(),
        component: ctx.component.as_ref().map(|c| wit::Component {
            id: c.id.clone(),
            name: c.name.clone(),
            group: c.group.clone(),
            manufacturer: c.manufacturer.clone(),
            model: c.model.clone(),
            version: c.version.clone(),
            properties_json: serde_json::Value::Object(c.properties.clone()).to_string(),
        }),
    }
}
