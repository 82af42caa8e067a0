//! What loading and calling a handler costs, measured side by side in one run.
//!
//! - **load**: a cold load (a new host over an empty compiled-handler cache, so Cranelift
//!   compiles the component) and a warm load (a new host over the cache the cold loads
//!   filled, so the machine code is deserialised), each up to a described, ready
//!   handler; for the built-in `microsoft/script:1` and for `bench/noop:1`, a no-op
//!   handler built with the SDK from `guest/`;
//! - **call**: one `install` of the no-op through [`LoadedHandler::invoke`], loaded warm,
//!   with the per-action sandbox, store and instance it sets up, against the same no-op
//!   as an in-process Rust handler ([`handrail::in_process`]);
//! - **engine**: the same two through a whole 100-step deployment, per step (journal,
//!   work folder, result file, events).
//!
//! Every figure is a median; ratios compare medians. Run it with
//! `cargo run --release -p handrail-bench`.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handrail::host::{Description, HandlerHost, Invocation, InvocationEnd, LoadedHandler};
use handrail::in_process::{InProcessHandler, InProcessHost};
use handrail::registry::{Capabilities, HandlerKind, Limits, Registration, Registry, sha256_file};
use handrail::{AdmitOptions, CancelToken, DeploymentStatus, Event, Runtime};
use handrail_contract::{Action, CONTRACT_VERSION, ResultFile, StepContext, UpdateId, codes};
use handrail_wasm_host::WasmHost;
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Cold loads per handler (each compiles).
const COLD_LOADS: usize = 10;
/// Warm loads per handler.
const WARM_LOADS: usize = 50;
/// `install` calls per host.
const CALLS: usize = 2000;
/// Steps of the benchmark deployment.
const ENGINE_STEPS: usize = 100;
/// Deployments per host.
const ENGINE_RUNS: usize = 5;

const NOOP_ID: &str = "bench/noop:1";
const NOOP_WASM: &[u8] = include_bytes!(env!("HANDRAIL_BENCH_NOOP_WASM"));

/// The no-op as an in-process handler.
struct NoopInProcess;

impl InProcessHandler for NoopInProcess {
    fn describe(&self) -> Description {
        Description {
            id: NOOP_ID.into(),
            actions: vec![Action::Install],
            contract: CONTRACT_VERSION,
        }
    }

    fn run(&self, _: Action, _: &StepContext, _: &CancelToken) -> Option<ResultFile> {
        Some(ResultFile::new(codes::INSTALL_SUCCESS, ""))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let script = handrail_builtin_handlers::builtin_handlers()
        .into_iter()
        .find(|h| h.id == "microsoft/script:1")
        .ok_or("the built-in script handler is missing")?;
    let script = wasm_registration(dir, script.id, script.wasm, script.capabilities)?;
    let noop = wasm_registration(dir, NOOP_ID, NOOP_WASM, Capabilities::default())?;

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Handrail handler benchmark ({cpus} CPUs): medians of {COLD_LOADS} cold and \
         {WARM_LOADS} warm loads, {CALLS} calls, {ENGINE_RUNS} deployments of {ENGINE_STEPS} steps"
    );
    println!();
    println!(
        "{:<34} {:>15} {:>13} {:>13}",
        "load (to a described handler)", "cold (compile)", "warm (cache)", "warm/cold"
    );
    let script_loads = loads(dir, &script).await?;
    let noop_loads = loads(dir, &noop).await?;
    for (registration, loads) in [(&script, &script_loads), (&noop, &noop_loads)] {
        println!(
            "{:<34} {:>15} {:>13} {:>13}",
            format!(
                "{} ({} KiB)",
                registration.id,
                size_of(registration)? / 1024
            ),
            show(loads.cold),
            show(loads.warm),
            format!("{:.4}", ratio(loads.warm, loads.cold)),
        );
    }

    let wasm_host = WasmHost::new(noop_loads.cache.clone())?;
    let wasm = wasm_host.load(&noop).await?;
    let in_process_host = InProcessHost::new().with(NoopInProcess);
    let in_process_registration = in_process_host
        .registrations()
        .pop()
        .ok_or("no in-process registration")?;
    let in_process = in_process_host.load(&in_process_registration).await?;
    let wasm_call = calls(wasm.as_ref(), &dir.join("calls-wasm")).await?;
    let in_process_call = calls(in_process.as_ref(), &dir.join("calls-in-process")).await?;

    let payloads = dir.join("payloads");
    fs::create_dir_all(&payloads)?;
    let wasm_engine = Runtime::builder(dir.join("state-wasm"))
        .allow_unsigned()
        .registry(registry(noop.clone())?)
        .host(WasmHost::new(noop_loads.cache)?)
        .open()?;
    let in_process_engine = Runtime::builder(dir.join("state-in-process"))
        .allow_unsigned()
        .registry(registry(in_process_registration)?)
        .host(in_process_host)
        .open()?;
    let wasm_step = per_step(&wasm_engine, &payloads, "wasm").await?;
    let in_process_step = per_step(&in_process_engine, &payloads, "in-process").await?;

    println!();
    println!(
        "{:<34} {:>15} {:>13} {:>13}",
        "no-op install (warm)", "WebAssembly", "in-process", "wasm/in-proc"
    );
    let engine = format!("engine, per step ({ENGINE_STEPS} steps)");
    for (what, wasm, in_process) in [
        (
            "LoadedHandler::invoke, per call",
            wasm_call,
            in_process_call,
        ),
        (engine.as_str(), wasm_step, in_process_step),
    ] {
        println!(
            "{:<34} {:>15} {:>13} {:>13}",
            what,
            show(wasm),
            show(in_process),
            format!("{:.2}x", ratio(wasm, in_process)),
        );
    }
    Ok(())
}

/// Writes `wasm` as an artifact in `dir` and registers it.
fn wasm_registration(
    dir: &Path,
    id: &str,
    wasm: &[u8],
    capabilities: Capabilities,
) -> Result<Registration> {
    let artifact = dir.join(format!("{}.wasm", id.replace(['/', ':'], "_")));
    fs::write(&artifact, wasm)?;
    Ok(Registration {
        id: id.to_owned(),
        kind: HandlerKind::Wasm,
        sha256: sha256_file(&artifact)?,
        artifact,
        capabilities,
        limits: Limits::default(),
        config: Default::default(),
        source: None,
    })
}

fn size_of(registration: &Registration) -> Result<usize> {
    Ok(usize::try_from(
        fs::metadata(&registration.artifact)?.len(),
    )?)
}

fn registry(registration: Registration) -> Result<Registry> {
    let mut registry = Registry::new();
    registry.insert(registration)?;
    Ok(registry)
}

/// Median cold and warm load times, and the cache the cold loads filled.
struct Loads {
    cold: Duration,
    warm: Duration,
    cache: PathBuf,
}

async fn loads(dir: &Path, registration: &Registration) -> Result<Loads> {
    let name = registration.id.replace(['/', ':'], "_");
    let mut cold = Vec::with_capacity(COLD_LOADS);
    let mut cache = PathBuf::new();
    for i in 0..COLD_LOADS {
        cache = dir.join(format!("cache-{name}-{i}"));
        let host = WasmHost::new(cache.clone())?;
        let started = Instant::now();
        host.load(registration).await?;
        cold.push(started.elapsed());
        if host.cache_stats().compiles != 1 {
            return Err(format!("a cold load of {name} did not compile").into());
        }
    }
    let mut warm = Vec::with_capacity(WARM_LOADS);
    for _ in 0..WARM_LOADS {
        let host = WasmHost::new(cache.clone())?;
        let started = Instant::now();
        host.load(registration).await?;
        warm.push(started.elapsed());
        let stats = host.cache_stats();
        if stats.compiles != 0 || stats.disk_hits != 1 {
            return Err(format!("a warm load of {name} missed the cache: {stats:?}").into());
        }
    }
    Ok(Loads {
        cold: median(cold),
        warm: median(warm),
        cache,
    })
}

/// Median time of one `install` through `handler.invoke`, in a work folder under `dir`.
async fn calls(handler: &dyn LoadedHandler, dir: &Path) -> Result<Duration> {
    let work = dir.join("work");
    fs::create_dir_all(&work)?;
    let result = work.join("result-install.json");
    let context = StepContext {
        workflow_id: "bench".into(),
        update_id: UpdateId {
            provider: "bench".into(),
            name: "noop".into(),
            version: "1.0".into(),
        },
        step_index: 0,
        level: 0,
        handler_id: NOOP_ID.into(),
        handler_properties: Default::default(),
        handler_config: Default::default(),
        files: Vec::new(),
        work_folder: work.display().to_string(),
        result_file: result.display().to_string(),
        installed_criteria: None,
        component: None,
    };
    let progress: handrail::host::ProgressFn = Arc::new(|_, _| {});
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        // The engine clears the result file before every action; so does the benchmark,
        // untimed.
        if let Err(e) = fs::remove_file(&result)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e.into());
        }
        let invocation = Invocation {
            action: Action::Install,
            context: context.clone(),
            cancel: CancelToken::new(),
            progress: progress.clone(),
        };
        let started = Instant::now();
        let end = handler.invoke(invocation).await;
        times.push(started.elapsed());
        if end != InvocationEnd::Returned {
            return Err(format!("the no-op install ended with {end:?}").into());
        }
    }
    let written = ResultFile::interpret(Action::Install, fs::read(&result).ok().as_deref());
    if written.result_code != codes::INSTALL_SUCCESS {
        return Err(format!("the no-op install reported {written:?}").into());
    }
    Ok(median(times))
}

/// Median time from one step's end to the next's over [`ENGINE_RUNS`] deployments of
/// [`ENGINE_STEPS`] no-op steps.
async fn per_step(runtime: &Runtime, payloads: &Path, name: &str) -> Result<Duration> {
    let steps: Vec<_> = (0..ENGINE_STEPS)
        .map(|i| {
            json!({
                "description": format!("no-op {i}"),
                "handler": NOOP_ID,
                "files": [],
                "handlerProperties": {},
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "updateId": {"provider": "bench", "name": "noop", "version": "1.0"},
        "isDeployable": true,
        "compatibility": [{"manufacturer": "contoso", "model": "bench"}],
        "instructions": {"steps": steps},
        "manifestVersion": "5.0",
        "createdDateTime": "2026-11-22T00:00:00Z"
    }))?;
    let mut per_step = Vec::with_capacity(ENGINE_RUNS * ENGINE_STEPS);
    for run in 0..ENGINE_RUNS {
        let options = AdmitOptions {
            deployment_id: Some(format!("bench-{name}-{run}")),
            ..AdmitOptions::default()
        };
        let mut deployment = runtime.deploy(&manifest, payloads, options).await?;
        let mut previous: Option<Instant> = None;
        while let Some(event) = deployment.next_event().await {
            if let Event::StepFinished { .. } = event {
                let now = Instant::now();
                if let Some(previous) = previous {
                    per_step.push(now - previous);
                }
                previous = Some(now);
            }
        }
        let report = deployment.finish().await?;
        if report.status != DeploymentStatus::Succeeded {
            return Err(format!("the {name} deployment ended {}", report.status).into());
        }
    }
    Ok(median(per_step))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn show(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} µs", secs * 1e6)
    }
}
