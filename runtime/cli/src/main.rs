//! `handrail`: deploy, resume and inspect over-the-air updates from the command line.
//!
//! Exit codes (stable, for scripts and service managers):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (deployment succeeded, manifest valid, command done) |
//! | 1 | the deployment failed, or failed and was rolled back (the report names the step, action and codes) |
//! | 2 | bad input: usage error, invalid manifest, refused payload or registration |
//! | 3 | suspended: the device must reboot, then run `handrail resume` |
//! | 4 | suspended: the agent must restart, then run `handrail resume` |
//! | 5 | the deployment was cancelled |
//! | 6 | busy: another process owns the state directory, or a deployment is pending |
//! | 7 | the deployment ran past its time limit |
//! | 10 | internal error (state could not be read or written) |
//!
//! Built with the default `compiler` feature it compiles `.wasm` handlers, carries the
//! built-in handlers and offers `precompile`; built without it (the lean build for
//! devices) it runs only handlers precompiled by a full build, registered in the state
//! directory's `handlers/` folder.

mod args;
mod authoring;
mod cancel;
mod conform;
mod exit;
mod output;
#[cfg(feature = "compiler")]
mod precompile;
mod self_update;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use args::{Cli, Command, HandlersCommand, ManifestCommand};
use clap::Parser;
use exit::Failure;
use handrail::bundled::BundledHandler;
use handrail::components::FileEnumerator;
use handrail::config::Config;
use handrail::contract::codes::Interruption;
use handrail::in_process::InProcessHost;
use handrail::registry::{HandlerKind, Limits, Registration, Registry};
use handrail::state::StateView;
use handrail::trust::Trust;
use handrail::{AdmitOptions, DeploymentStatus, Report, Runtime, RuntimeError};

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANDRAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: never into journald, a pipe or a file,
    // nor with NO_COLOR set.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // A service's log says what it does (polls, actions, results) unless told less.
    let service = matches!(cli.command, Command::Ddi { .. });
    init_logging(cli.verbose.max(u8::from(service)));
    // Handlers run in folders of their own: a relative path would name another place
    // there (a native worker's library, a work folder).
    for path in [Some(&mut cli.state_dir), cli.cache_dir.as_mut()]
        .into_iter()
        .flatten()
    {
        if let Ok(absolute) = std::path::absolute(&*path) {
            *path = absolute;
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let out = output::Output::new(cli.json);
    match rt.block_on(run(&cli, &out)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            out.error(failure.error());
            ExitCode::from(failure.code())
        }
    }
}

/// The configuration file in force and its contents; `--allow-unsigned` turns the
/// signing requirement off.
fn load_config(cli: &Cli) -> Result<(Option<PathBuf>, Config), Failure> {
    let config_path = cli
        .config
        .clone()
        .or_else(|| Some(cli.state_dir.join("config.toml")).filter(|p| p.exists()));
    let mut config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if cli.allow_unsigned {
        config.signing.required = false;
    }
    Ok((config_path, config))
}

/// The built-in handlers this binary carries: none in the lean build, whose built-ins
/// are precompiled registrations in the state directory (`handrail precompile --builtins`).
fn bundled_handlers() -> Vec<BundledHandler> {
    #[cfg(feature = "compiler")]
    return handrail_builtin_handlers::bundled();
    #[cfg(not(feature = "compiler"))]
    Vec::new()
}

/// Opens the runtime with the built-in handlers, the WebAssembly host and the component
/// enumerator.
fn open(cli: &Cli) -> Result<Runtime, Failure> {
    let cache_dir = cli.cache_dir.clone();
    let bundled = bundled_handlers();
    let (config_path, config) = load_config(cli)?;
    let self_update = self_update::SelfUpdate {
        binary: match &config.self_update.binary {
            Some(b) => b.clone(),
            None => std::env::current_exe().map_err(|e| {
                Failure::internal(anyhow::anyhow!("cannot find the running executable: {e}"))
            })?,
        },
        state_dir: cli.state_dir.clone(),
        config: config_path.clone(),
        pre_hook: config.self_update.pre_hook.clone(),
        post_hook: config.self_update.post_hook.clone(),
        health_timeout: std::time::Duration::from_secs(
            config.self_update.health_timeout_secs.unwrap_or(30),
        ),
    };
    let mut builder = Runtime::builder(&cli.state_dir);
    if let Some(dir) = &cache_dir {
        builder = builder.protect("the compiled-handler cache", dir);
    }
    if let Some(binary) = &config.self_update.binary {
        builder = builder.protect("the runtime's executable", binary);
    }
    let transport = handrail_http::HttpTransport::new(&config.download)
        .with_context(|| match &config_path {
            Some(path) => format!("configuration {}", path.display()),
            None => "the default configuration".to_owned(),
        })
        .map_err(Failure::bad_input)?;
    let mut builder = builder
        .transport(std::sync::Arc::new(transport))
        .config(config)
        .in_process(InProcessHost::new().with(self_update))
        .bundled(bundled)
        .host_with(|_| handrail_native_host::NativeHost::beside_current_exe());
    if let Some(plugin) = &cli.enumerator {
        // The plugin runs on the same WebAssembly host (engine, cache) as the handlers.
        let cache_dir = cache_dir.unwrap_or_else(|| StateView::new(&cli.state_dir).cache_dir());
        let wasm = handrail_wasm_host::WasmHost::new(cache_dir).map_err(Failure::internal)?;
        let enumerator = wasm
            .load_enumerator(&enumerator_registration(plugin)?)
            .map_err(Failure::bad_input)?;
        builder = builder.host(wasm).enumerator(enumerator);
    } else {
        builder = builder.host_with(move |state| {
            handrail_wasm_host::WasmHost::new(cache_dir.unwrap_or_else(|| state.cache_dir()))
        });
        let components = cli
            .components
            .clone()
            .or_else(|| Some(cli.state_dir.join("components.json")).filter(|p| p.exists()));
        if let Some(path) = components {
            builder = builder.enumerator(FileEnumerator::new(&path));
        }
    }
    Ok(builder.open()?)
}

/// The registration of the `--enumerator` plugin: the file itself when it is a
/// registration, else a registration of the bare component that grants nothing.
fn enumerator_registration(path: &Path) -> Result<Registration, Failure> {
    if path.extension().is_some_and(|x| x == "toml") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the enumerator registration {}", path.display()))
            .map_err(Failure::bad_input)?;
        return Ok(Registration::parse(path, &text)?);
    }
    let sha256 = handrail::registry::sha256_file(path)
        .with_context(|| format!("cannot read the enumerator component {}", path.display()))
        .map_err(Failure::bad_input)?;
    Ok(Registration {
        id: "local/component-enumerator:1".into(),
        kind: HandlerKind::Wasm,
        artifact: path.to_owned(),
        sha256,
        capabilities: Default::default(),
        limits: Limits::default(),
        config: Default::default(),
        source: Some(path.to_owned()),
    })
}

async fn run(cli: &Cli, out: &output::Output) -> Result<u8, Failure> {
    match &cli.command {
        Command::Deploy {
            manifest,
            payloads,
            id,
            require_hashes,
            failure_policy,
        } => {
            let bytes = read_input(manifest)?;
            let runtime = open(cli)?;
            // Ctrl-C or SIGTERM while payloads download stops admission; once the
            // deployment runs, `follow` passes them to its cancel.
            let cancel = handrail::CancelToken::new();
            let watcher = output::cancel_on_signal(cancel.clone());
            let options = AdmitOptions {
                deployment_id: id.clone(),
                require_file_hashes: *require_hashes,
                failure_policy: *failure_policy,
                on_download: Some(out.downloads()),
                cancel: Some(cancel.clone()),
                ..AdmitOptions::default()
            };
            let deployment = runtime.deploy(&bytes, payloads, options).await;
            watcher.abort();
            let deployment = match deployment {
                Err(e) if cancel.is_cancelled() => return Err(Failure::cancelled(e)),
                other => other?,
            };
            // A signal after the last file was staged, before the deployment started:
            // it is cancelled before its first action, and ends as a cancel does.
            if cancel.is_cancelled() {
                deployment.cancel();
            }
            let report = out.follow(deployment).await?;
            Ok(exit_for(&report))
        }
        Command::Conform {
            handler,
            profile,
            junit,
        } => {
            conform::conform(
                handler,
                profile.as_deref(),
                junit.as_deref(),
                cli.cache_dir.as_deref(),
                cli.json,
            )
            .await
        }
        Command::Precompile {
            artifact,
            output,
            builtins,
            target,
            cpu_features,
        } => precompile(
            artifact.as_deref(),
            output.as_deref(),
            builtins.as_deref(),
            target.as_deref().map(|t| (t, cpu_features.as_slice())),
            out,
        ),
        Command::NewHandler { dir, id, sdk } => {
            conform::new_handler(dir, id, sdk.as_deref()).map_err(Failure::bad_input)?;
            out.message(&format!(
                "created {} for `{id}`: build and check it with\n  cd {} && cargo build --release --target wasm32-wasip2 && handrail conform {}\n(the kit finds the crate's conform.toml)",
                dir.display(),
                dir.display(),
                conform::built_artifact(id).display()
            ));
            Ok(exit::SUCCESS)
        }
        Command::Ddi { once } => {
            let (_, config) = load_config(cli)?;
            let Some(ddi) = &config.ddi else {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "handrail ddi needs a [ddi] section (server, tenant, controller_id) in the configuration"
                )));
            };
            let http = handrail_http::HttpTransport::new(&ddi.transport_config(&config.download))
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("{e}")))?;
            let runtime = open(cli)?;
            let client = handrail_ddi::DdiClient::new(runtime, &config, http)
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("{e}")))?;
            tracing::info!("taking updates from {}", client.controller_url());
            let stop = handrail::CancelToken::new();
            let watcher = output::cancel_on_signal(stop.clone());
            let result = client.run(stop, *once).await;
            watcher.abort();
            match result.map_err(|e| Failure::internal(anyhow::anyhow!("{e}")))? {
                // A step asked for a reboot (3) or an agent restart (4): the service
                // manager does it, and the next start resumes and reports.
                Some(suspended) => {
                    out.report(&suspended);
                    Ok(exit_for(&suspended))
                }
                None => Ok(0),
            }
        }
        Command::Bundle {
            manifest,
            payloads,
            output,
            version,
            hardware,
        } => bundle(
            manifest,
            payloads,
            output,
            version.as_deref(),
            hardware,
            out,
        ),
        Command::Resume => {
            let runtime = open(cli)?;
            follow_left(runtime.resume()?, "nothing to resume", out).await
        }
        Command::Abandon => {
            let runtime = open(cli)?;
            follow_left(runtime.abandon()?, "nothing to abandon", out).await
        }
        Command::Validate { manifest, payloads } => {
            let bytes = read_input(manifest)?;
            // The configuration, and the key files it names, are read once.
            let (registry, trust) = match open(cli) {
                Ok(runtime) => (runtime.registry().clone(), runtime.trust().clone()),
                Err(e) if e.code() == exit::BUSY => {
                    let trust = Trust::from_config(&load_config(cli)?.1.signing)
                        .map_err(RuntimeError::from)?;
                    (registry_of_busy(cli)?, trust)
                }
                Err(e) => return Err(e),
            };
            let folder = payloads.clone().unwrap_or_else(|| {
                manifest
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_owned)
            });
            let (document, _) = handrail::admit::validate(
                &bytes,
                &registry,
                &trust,
                &manifest.display().to_string(),
                Some(&folder),
            )?;
            // A handler whose artifact is not what its registration says would fail its
            // step: not valid on this device.
            for (i, step) in document.manifest().steps.iter().enumerate() {
                if let handrail::manifest::Step::Inline(step) = step
                    && let Some(registration) = registry.get(&step.handler)
                    && let Err(e) = registration.verify_artifact()
                {
                    return Err(Failure::bad_input(anyhow::anyhow!(
                        "{}: instructions.steps[{i}]: handler `{}` cannot be loaded: {e}",
                        manifest.display(),
                        step.handler
                    )));
                }
            }
            out.valid(manifest, document.manifest());
            Ok(exit::SUCCESS)
        }
        Command::Cancel { wait } => {
            cancel::cancel(&cli.state_dir, std::time::Duration::from_secs(*wait), out)
        }
        Command::Status => {
            let view = StateView::new(&cli.state_dir);
            let current = view.current().map_err(RuntimeError::from)?;
            let installed = view.installed().load().map_err(RuntimeError::from)?;
            out.status(current.as_ref(), &installed);
            Ok(exit::SUCCESS)
        }
        Command::History { limit } => {
            let view = StateView::new(&cli.state_dir);
            let mut entries = view.history().load().map_err(RuntimeError::from)?;
            if let Some(n) = limit {
                let skip = entries.len().saturating_sub(*n);
                entries.drain(..skip);
            }
            out.history(&entries);
            Ok(exit::SUCCESS)
        }
        Command::Health => {
            if let Some(path) = &cli.config {
                let config = Config::load(path)?;
                Trust::from_config(&config.signing).map_err(RuntimeError::from)?;
            }
            let view = StateView::new(&cli.state_dir);
            view.current().map_err(RuntimeError::from)?;
            // A damaged history entry is named, not fatal: it costs only itself, and the
            // binary is judged all the same.
            let damaged = view.history().damaged().map_err(RuntimeError::from)?;
            // The installed-criteria records answer is-installed for some handlers and
            // every `status`: damaged, they are judged as `status` judges them.
            view.installed().load().map_err(RuntimeError::from)?;
            let registry = Registry::load_dir(&view.handlers_dir()).map_err(RuntimeError::from)?;
            // A binary whose wasmtime cannot load the device's precompiled handlers (or,
            // lean, its `.wasm` ones) would fail every step: not healthy. Bundled ones are
            // the running binary's to rewrite (or, lean, to do without) when it opens.
            let own = registry
                .iter()
                .filter(|r| r.kind == HandlerKind::Wasm && !handrail::bundled::is_bundled(r));
            for registration in own {
                handrail_wasm_host::check_artifact(registration).map_err(Failure::internal)?;
            }
            #[cfg(feature = "compiler")]
            if bundled_handlers().is_empty() {
                return Err(Failure::internal(anyhow::anyhow!(
                    "this binary carries no built-in handlers"
                )));
            }
            for damage in &damaged {
                eprintln!("warning: {damage}; the next deployment sets it aside");
            }
            out.message("healthy");
            Ok(exit::SUCCESS)
        }
        Command::Handlers {
            command: HandlersCommand::List,
        } => {
            out.handlers(&registry_for_reading(cli)?);
            Ok(exit::SUCCESS)
        }
        Command::Handlers {
            command: HandlersCommand::Add(add),
        } => {
            let args::HandlerAdd {
                artifact,
                id,
                kind,
                run,
                read,
                write,
                sockets,
                privileges,
                memory_mib,
                timeout_secs,
                replace,
            } = &**add;
            let kind = kind.as_deref().map(|k| match k {
                "native" => HandlerKind::Native,
                _ => HandlerKind::Wasm,
            });
            let grants = authoring::Grants {
                run,
                read,
                write,
                sockets,
                privileges,
                memory_mib: *memory_mib,
                timeout_secs: *timeout_secs,
            };
            let said = authoring::handlers_add(
                &StateView::new(&cli.state_dir).handlers_dir(),
                artifact,
                id,
                kind,
                &grants,
                *replace,
            )?;
            out.message(&said);
            Ok(exit::SUCCESS)
        }
        Command::Manifest { command } => {
            let said = match command {
                ManifestCommand::New {
                    out,
                    update,
                    compatibility,
                    force,
                } => authoring::manifest_new(out, update, compatibility, *force)?,
                ManifestCommand::AddFile {
                    manifest,
                    files,
                    id,
                } => authoring::manifest_add_files(manifest, files, id.as_deref())?,
                ManifestCommand::AddStep {
                    manifest,
                    handler,
                    files,
                    properties,
                    installed_criteria,
                    description,
                } => authoring::manifest_add_step(
                    manifest,
                    handler,
                    files,
                    properties,
                    installed_criteria.as_deref(),
                    description.as_deref(),
                )?,
            };
            out.message(&said);
            Ok(exit::SUCCESS)
        }
    }
}

/// `handrail precompile`: one component, or the built-ins into a folder.
#[cfg(feature = "compiler")]
fn precompile(
    artifact: Option<&Path>,
    output: Option<&Path>,
    builtins: Option<&Path>,
    target: Option<(&str, &[String])>,
    out: &output::Output,
) -> Result<u8, Failure> {
    let target = target
        .map(|(triple, features)| handrail_wasm_host::Target::parse(triple, features))
        .transpose()?;
    match (artifact, builtins) {
        (_, Some(dir)) => precompile::builtins(dir, target.as_ref(), out),
        (Some(artifact), None) => precompile::component(artifact, output, target.as_ref(), out),
        (None, None) => Err(Failure::bad_input(anyhow::anyhow!(
            "give the component to precompile, or --builtins DIR"
        ))),
    }
}

/// `handrail precompile` in the lean build, which has no compiler to precompile with.
#[cfg(not(feature = "compiler"))]
fn precompile(
    _: Option<&Path>,
    _: Option<&Path>,
    _: Option<&Path>,
    _: Option<(&str, &[String])>,
    _: &output::Output,
) -> Result<u8, Failure> {
    Err(Failure::bad_input(anyhow::anyhow!(
        "this build of handrail has no compiler (the lean build): run `handrail precompile` with a full build of the same version (on any machine, with `--target` naming this one's)"
    )))
}

/// The registry, with the built-in handlers installed when the state directory is free;
/// read as it is while another process owns it.
/// `handrail bundle`: the manifest is parsed (not verified: the device does that) for
/// its version and checked to name only files the folder has.
fn bundle(
    manifest: &Path,
    payloads: &Path,
    output_path: &Path,
    version: Option<&str>,
    hardware: &[String],
    out: &output::Output,
) -> Result<u8, Failure> {
    let bytes = read_input(manifest)?;
    let document = handrail::manifest::parse_document_with(&bytes, &mut |entry| {
        let path = payloads.join(&entry.file_name);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    })
    .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", manifest.display())))?;
    let update = document.manifest().update_id.clone();
    let entries = std::fs::read_dir(payloads)
        .with_context(|| format!("cannot read the payload folder {}", payloads.display()))
        .map_err(Failure::bad_input)?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .with_context(|| format!("cannot read the payload folder {}", payloads.display()))
            .map_err(Failure::bad_input)?;
        let path = entry.path();
        let meta = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))
            .map_err(Failure::bad_input)?;
        if !meta.is_file() {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{}: not a regular file; a bundle carries a flat folder of files",
                path.display()
            )));
        }
        files.push((entry.file_name().to_string_lossy().into_owned(), path));
    }
    for entry in document.manifest().files.values() {
        if !files.iter().any(|(name, _)| *name == entry.file_name) {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{}: files.{} names `{}`, which is not in {}",
                manifest.display(),
                entry.file_id,
                entry.file_name,
                payloads.display()
            )));
        }
    }
    let version = version.map_or_else(|| update.version.to_string(), str::to_owned);
    let description = format!("{update}");
    let written = handrail::bundle::Bundle::write(
        output_path,
        &handrail::bundle::BundleSpec {
            version: &version,
            description: &description,
            hardware_compatibility: hardware,
            manifest: &bytes,
            files: &files,
        },
    )
    .map_err(|e| Failure::bad_input(anyhow::anyhow!("{e}")))?;
    out.message(&format!(
        "{}: bundle of {update} (version {version}), {} payload files, {written} bytes",
        output_path.display(),
        files.len()
    ));
    Ok(0)
}

fn registry_for_reading(cli: &Cli) -> Result<Registry, Failure> {
    match open(cli) {
        Ok(runtime) => Ok(runtime.registry().clone()),
        Err(e) if e.code() == exit::BUSY => registry_of_busy(cli),
        Err(e) => Err(e),
    }
}

/// The registrations of a state directory another process owns (opening is busy only
/// then), read as they are.
fn registry_of_busy(cli: &Cli) -> Result<Registry, Failure> {
    Ok(
        Registry::load_dir(&StateView::new(&cli.state_dir).handlers_dir())
            .map_err(RuntimeError::from)?,
    )
}

/// The bytes of a manifest or envelope the user named: one that cannot be read — not a
/// regular file (a FIFO, a device), or larger than an envelope may be — is bad input.
fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    handrail::limits::read(path, handrail::manifest::MAX_DOCUMENT_BYTES as u64)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("cannot read {}: {e}", path.display())))
}

/// Follows the deployment an earlier run left (resumed or abandoned) to its end, or says
/// `nothing` when there is none.
async fn follow_left(
    left: Option<handrail::Deployment>,
    nothing: &str,
    out: &output::Output,
) -> Result<u8, Failure> {
    match left {
        Some(deployment) => Ok(exit_for(&out.follow(deployment).await?)),
        None => {
            out.message(nothing);
            Ok(exit::SUCCESS)
        }
    }
}

fn exit_for(report: &Report) -> u8 {
    match report.status {
        DeploymentStatus::Succeeded => exit::SUCCESS,
        DeploymentStatus::Failed | DeploymentStatus::RolledBack | DeploymentStatus::Rejected => {
            exit::FAILED
        }
        DeploymentStatus::TimedOut => exit::TIMED_OUT,
        DeploymentStatus::Cancelled => exit::CANCELLED,
        DeploymentStatus::Suspended => match report.interruption {
            Some(Interruption::ImmediateAgentRestart | Interruption::DeferredAgentRestart) => {
                exit::RESTART
            }
            _ => exit::REBOOT,
        },
        DeploymentStatus::InProgress => exit::INTERNAL,
    }
}
