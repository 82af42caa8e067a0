//! The measurements behind each section of the report.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handrail::host::{
    Description, HandlerHost, Invocation, InvocationEnd, LoadedHandler, ProgressFn,
};
use handrail::in_process::{InProcessHandler, InProcessHost};
use handrail::registry::{Capabilities, HandlerKind, Registration};
use handrail::{AdmitOptions, CancelToken, DeploymentStatus, Event, Runtime};
use handrail_contract::{Action, CONTRACT_VERSION, ResultFile, StepContext, UpdateId, codes};
use handrail_native_host::NativeHost;
use handrail_wasm_host::WasmHost;

use crate::fixtures::{self, NOOP_ID, SCRIPT_ID};
use crate::{
    CALLS, COLD_LOADS, ENGINE_RUNS, ENGINE_STEPS, LONG_STEPS, NATIVE_CALLS, Programs, Result,
    WARM_LOADS,
};

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

/// Registrations, payloads and folders shared by the measurements.
pub struct Bench {
    dir: PathBuf,
    handrail: PathBuf,
    builtins: Vec<Registration>,
    script: Registration,
    noop_wasm: Registration,
    noop_native: Registration,
    payloads: PathBuf,
    /// The compiled-handler cache the call and step measurements load from (warm).
    cache: PathBuf,
}

/// Median cold and warm load times.
pub struct Loads {
    pub cold: Duration,
    pub warm: Duration,
}

/// Median time of one no-op action per way of running it.
pub struct Calls {
    pub fork_exec: Duration,
    pub in_process: Duration,
    pub sandbox: Duration,
    pub wasm: Duration,
    pub native: Duration,
}

/// One host's deployments, per step.
pub struct StepRow {
    pub what: &'static str,
    pub per_step: Duration,
    pub actions: usize,
}

/// The long deployment against the fsync floor.
pub struct Durability {
    pub deployment: Duration,
    /// Durable writes (records) the deployment made.
    pub writes: u64,
    /// fsyncs it made for them (deferred records share one) and for folders.
    pub syncs: u64,
    pub floor: Duration,
    /// Making what each step makes on disk, bare: a work folder and a result file.
    pub creations: Duration,
}

/// Starting a process, bare and confined, and a native call, bare and confined.
pub struct Launches {
    /// fork/exec of `/bin/true`, waited for.
    pub bare: Duration,
    /// The same with a hook between fork and exec that does nothing: a plain `fork`
    /// where the bare start may use `posix_spawn`.
    pub hooked: Duration,
    /// Confined (capabilities, `no_new_privs`, Landlock, seccomp) in a cgroup of its
    /// own, killed and removed after: how every handler process starts. The
    /// confinement is prepared and the cgroup made within the time.
    pub confined: Duration,
    /// The same where no cgroup can be made: under a reaper.
    pub reaped: Duration,
    /// A no-op native `install`: its worker started bare, request in, report out.
    pub native_bare: Duration,
    /// The same through the native host: the worker confined.
    pub native_confined: Duration,
}

/// Hashing the same file both ways.
pub struct Hashing {
    pub handrail: Duration,
    pub sha256sum: Duration,
}

impl Bench {
    pub fn new(dir: &Path, programs: &Programs) -> Result<Bench> {
        let artifacts = dir.join("artifacts");
        fs::create_dir_all(&artifacts)?;
        let builtins = handrail_builtin_handlers::builtin_handlers()
            .into_iter()
            .map(|h| {
                fixtures::registration(&artifacts, h.id, HandlerKind::Wasm, h.wasm, h.capabilities)
            })
            .collect::<Result<Vec<_>>>()?;
        let script = builtins
            .iter()
            .find(|r| r.id == SCRIPT_ID)
            .cloned()
            .ok_or("the built-in script handler is missing")?;
        let noop_wasm = fixtures::registration(
            &artifacts,
            NOOP_ID,
            HandlerKind::Wasm,
            fixtures::NOOP_WASM,
            Capabilities::default(),
        )?;
        let native = fs::read(fixtures::NOOP_NATIVE)
            .map_err(|e| format!("cannot read {}: {e}", fixtures::NOOP_NATIVE))?;
        let noop_native = fixtures::registration(
            &artifacts,
            NOOP_ID,
            HandlerKind::Native,
            &native,
            Capabilities::default(),
        )?;
        Ok(Bench {
            dir: dir.to_owned(),
            handrail: programs.handrail.clone(),
            builtins,
            script,
            noop_wasm,
            noop_native,
            payloads: fixtures::payloads(dir)?,
            cache: dir.join("cache"),
        })
    }

    /// Fills the compiled-handler cache the deployments start from with the no-op (when
    /// no section before did), so that they measure warm loads.
    async fn warm_cache(&self) -> Result<()> {
        WasmHost::new(self.cache.clone())?
            .load(&self.noop_wasm)
            .await?;
        Ok(())
    }

    /// Cold and warm loads of every built-in handler and of the no-op.
    pub async fn loads(&self) -> Result<Vec<(String, Loads)>> {
        let mut rows = Vec::new();
        for registration in self.builtins.iter().chain([&self.noop_wasm]) {
            let size = fs::metadata(&registration.artifact)?.len() / 1024;
            rows.push((
                format!("{} ({size} KiB)", registration.id),
                self.load_times(registration).await?,
            ));
        }
        Ok(rows)
    }

    async fn load_times(&self, registration: &Registration) -> Result<Loads> {
        let name = registration.id.replace(['/', ':'], "_");
        let mut cold = Vec::with_capacity(COLD_LOADS);
        let mut cache = PathBuf::new();
        for i in 0..COLD_LOADS {
            cache = self.dir.join(format!("cache-{name}-{i}"));
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
        })
    }

    /// One no-op `install` per way of running it.
    pub async fn calls(&self) -> Result<Calls> {
        let wasm_host = WasmHost::new(self.cache.clone())?;
        let wasm = wasm_host.load(&self.noop_wasm).await?;
        let native_host = NativeHost::beside_current_exe()?;
        let native = native_host.load(&self.noop_native).await?;
        let in_process_host = InProcessHost::new().with(NoopInProcess);
        let registration = in_process_host
            .registrations()
            .pop()
            .ok_or("no in-process registration")?;
        let in_process_handler = in_process_host.load(&registration).await?;

        let folder = self.dir.join("calls");
        let mut fork_exec = Caller::new(&folder.join("fork-exec"));
        let mut in_process = Caller::new(&folder.join("in-process"));
        let mut sandbox = Caller::new(&folder.join("sandbox"));
        let mut wasm_calls = Caller::new(&folder.join("wasm"));
        let mut native_calls = Caller::new(&folder.join("native"));
        let script = self.payloads.join(fixtures::NOOP_SCRIPT_NAME);
        // Round by round, one call of each kind: a machine that slows down or speeds up
        // during the run does so for every row alike, so the ratios hold.
        for round in 0..CALLS {
            fork_exec.fork_exec(&script)?;
            in_process.invoke(in_process_handler.as_ref()).await?;
            sandbox.sandbox_setup(&wasm_host)?;
            wasm_calls.invoke(wasm.as_ref()).await?;
            // Each native call starts a worker process: fewer of them.
            if round % (CALLS / NATIVE_CALLS) == 0 {
                native_calls.invoke(native.as_ref()).await?;
            }
        }
        Ok(Calls {
            fork_exec: fork_exec.median(),
            in_process: in_process.median(),
            sandbox: sandbox.median(),
            wasm: wasm_calls.median(),
            native: native_calls.median(),
        })
    }

    /// Starting `/bin/true` bare and confined, and a no-op native call with its worker
    /// bare and confined, round by round.
    pub async fn launches(&self) -> Result<Launches> {
        use handrail::confinement::LandlockPolicy;
        use handrail_confine::{ActionCgroup, CgroupLimits, Confinement, Grants, Launch};
        let program = fs::canonicalize("/bin/true")?;
        let work = self.dir.join("launches");
        fs::create_dir_all(&work)?;
        let run = [program.clone()];
        let payload = [self.payloads.clone()];
        let grants = Grants {
            payload: &payload,
            work: Some(&work),
            read: &[],
            write: &[],
            run: &run,
            sockets: &[],
            privileges: &[],
        };
        let limits = CgroupLimits {
            max_processes: 256,
            memory_bytes: 1 << 30,
        };
        let native_host = NativeHost::beside_current_exe()?;
        let native = native_host.load(&self.noop_native).await?;
        let worker = std::env::current_exe()?
            .parent()
            .ok_or("no folder")?
            .join("handrail-native-worker");
        let mut native_confined = Caller::new(&self.dir.join("launch-native"));
        let mut native_bare = Caller::new(&self.dir.join("launch-native-bare"));
        let (mut bare, mut hooked, mut confined, mut reaped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let status = |ok: bool, what: &str| -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(format!("{what}: /bin/true failed").into())
            }
        };
        for round in 0..CALLS {
            let started = Instant::now();
            let ok = tokio::process::Command::new(&program)
                .current_dir(&work)
                .env_clear()
                .status()
                .await?
                .success();
            bare.push(started.elapsed());
            status(ok, "bare")?;

            let started = Instant::now();
            let mut command = tokio::process::Command::new(&program);
            command.current_dir(&work).env_clear();
            // SAFETY: the hook does nothing.
            unsafe {
                command.pre_exec(|| Ok(()));
            }
            let ok = command.status().await?.success();
            hooked.push(started.elapsed());
            status(ok, "hooked")?;

            let started = Instant::now();
            let mut child = Launch::new(&program).current_dir(&work).spawn_in(
                &Confinement::prepare(&grants, LandlockPolicy::Require)?,
                Some(ActionCgroup::create(limits)?),
            )?;
            let ok = child.wait().await?.success();
            child.end("bench", false).await;
            confined.push(started.elapsed());
            status(ok, "confined")?;

            let started = Instant::now();
            let mut child = Launch::new(&program).current_dir(&work).spawn_in(
                &Confinement::prepare(&grants, LandlockPolicy::Require)?,
                None,
            )?;
            let ok = child.wait().await?.success();
            child.end("bench", false).await;
            reaped.push(started.elapsed());
            status(ok, "confined under a reaper")?;

            if round % (CALLS / NATIVE_CALLS) == 0 {
                native_confined.invoke(native.as_ref()).await?;
                native_bare.bare_worker(&worker, &self.noop_native).await?;
            }
        }
        Ok(Launches {
            bare: median(bare),
            hooked: median(hooked),
            confined: median(confined),
            reaped: median(reaped),
            native_bare: native_bare.median(),
            native_confined: native_confined.median(),
        })
    }

    /// Deployments of [`ENGINE_STEPS`] no-op steps through each host.
    pub async fn steps(&self) -> Result<Vec<StepRow>> {
        let mut rows = Vec::new();
        let in_process_host = InProcessHost::new().with(NoopInProcess);
        let registration = in_process_host
            .registrations()
            .pop()
            .ok_or("no in-process registration")?;
        let runtime = self.runtime("state-in-process", registration, in_process_host)?;
        rows.push(
            self.per_step(&runtime, NOOP_ID, "in-process Rust handler")
                .await?,
        );
        let wasm = WasmHost::new(self.cache.clone())?;
        let runtime = self.runtime("state-wasm", self.noop_wasm.clone(), wasm)?;
        rows.push(
            self.per_step(&runtime, NOOP_ID, "WebAssembly component")
                .await?,
        );
        let native = NativeHost::beside_current_exe()?;
        let runtime = self.runtime("state-native", self.noop_native.clone(), native)?;
        rows.push(
            self.per_step(&runtime, NOOP_ID, "native library in its worker")
                .await?,
        );
        let wasm = WasmHost::new(self.cache.clone())?;
        let runtime = self.runtime("state-script", self.script.clone(), wasm)?;
        rows.push(
            self.per_step(&runtime, SCRIPT_ID, "script handler, no-op script")
                .await?,
        );
        Ok(rows)
    }

    /// A runtime over the state folder `state` in the scratch folder, with `registration`
    /// run by `host`, taking unsigned manifests.
    fn runtime(
        &self,
        state: &str,
        registration: Registration,
        host: impl HandlerHost + 'static,
    ) -> Result<Runtime> {
        Ok(Runtime::builder(self.dir.join(state))
            .allow_unsigned()
            .registry(fixtures::registry(registration)?)
            .host(host)
            .open()?)
    }

    /// Median time from one step's end to the next's, and the actions a step ran.
    async fn per_step(
        &self,
        runtime: &Runtime,
        handler: &str,
        what: &'static str,
    ) -> Result<StepRow> {
        let manifest = fixtures::manifest(handler, ENGINE_STEPS)?;
        let mut per_step = Vec::with_capacity(ENGINE_RUNS * ENGINE_STEPS);
        let mut actions = 0;
        for run in 0..ENGINE_RUNS {
            let options = AdmitOptions {
                deployment_id: Some(format!("bench-{run}")),
                ..AdmitOptions::default()
            };
            let mut deployment = runtime.deploy(&manifest, &self.payloads, options).await?;
            let mut previous: Option<Instant> = None;
            actions = 0;
            while let Some(event) = deployment.next_event().await {
                match event {
                    Event::StepFinished { .. } => {
                        let now = Instant::now();
                        if let Some(previous) = previous {
                            per_step.push(now - previous);
                        }
                        previous = Some(now);
                    }
                    Event::ActionFinished { .. } => actions += 1,
                    _ => {}
                }
            }
            let report = deployment.finish().await?;
            if report.status != DeploymentStatus::Succeeded {
                return Err(format!("the {what} deployment ended {}", report.status).into());
            }
        }
        Ok(StepRow {
            what,
            per_step: median(per_step),
            actions: actions / ENGINE_STEPS,
        })
    }

    /// A [`LONG_STEPS`]-step deployment of the WebAssembly no-op, then as many bare
    /// fsync'ed appends as it made durable writes (journal and state records), in the
    /// same folder: the cost of making each of its writes durable on its own, with no
    /// handler, sandbox or engine around it. Before both, the folders and files its
    /// steps make, made bare: what the file system charges for them, which the floor
    /// leaves out.
    pub async fn durability(&self) -> Result<Durability> {
        self.warm_cache().await?;
        // What the steps make, bare and first: kept until the end, so that no deletion
        // slows the deployment's own creations down.
        let made = self.dir.join("creations");
        fs::create_dir_all(&made)?;
        let started = Instant::now();
        for i in 0..LONG_STEPS {
            let work = made.join(format!("step-{i:04}"));
            fs::create_dir(&work)?;
            fs::write(work.join("result-install.json"), [b'x'; 64])?;
        }
        let creations = started.elapsed();

        let state = self.dir.join("state-long");
        let wasm = WasmHost::new(self.cache.clone())?;
        let runtime = self.runtime("state-long", self.noop_wasm.clone(), wasm)?;
        let manifest = fixtures::manifest(NOOP_ID, LONG_STEPS)?;
        let writes_before = handrail::durable::writes_so_far();
        let syncs_before = handrail::durable::syncs_so_far();
        let started = Instant::now();
        let deployment = runtime
            .deploy(&manifest, &self.payloads, AdmitOptions::default())
            .await?;
        let report = deployment.finish().await?;
        let elapsed = started.elapsed();
        let writes = handrail::durable::writes_so_far() - writes_before;
        let syncs = handrail::durable::syncs_so_far() - syncs_before;
        if report.status != DeploymentStatus::Succeeded {
            return Err(format!("the {LONG_STEPS}-step deployment ended {}", report.status).into());
        }
        drop(runtime);

        // A journal record of the engine is about this long.
        let record = [b'x'; 160];
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join("floor.log"))?;
        let started = Instant::now();
        for _ in 0..writes {
            log.write_all(&record)?;
            log.write_all(b"\n")?;
            log.sync_data()?;
        }
        Ok(Durability {
            deployment: elapsed,
            writes,
            syncs,
            floor: started.elapsed(),
            creations,
        })
    }

    /// sha256 of a `bytes`-long file, Handrail's hasher against `sha256sum`, alternating,
    /// after one untimed read that puts the file in the page cache.
    pub fn hashing(&self, bytes: u64) -> Result<Hashing> {
        let file = self.dir.join("payload.bin");
        write_pseudo_random(&file, bytes)?;
        let ours = handrail::registry::sha256_file(&file)?;
        let mut handrail = Vec::new();
        let mut sha256sum = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let digest = handrail::registry::sha256_file(&file)?;
            handrail.push(started.elapsed());
            if digest != ours {
                return Err("the hash of the same file changed".into());
            }
            let started = Instant::now();
            let output = Command::new("sha256sum").arg(&file).output()?;
            sha256sum.push(started.elapsed());
            let theirs = String::from_utf8_lossy(&output.stdout);
            if !output.status.success() || !theirs.starts_with(&ours) {
                return Err(format!("sha256sum disagrees: {theirs} vs {ours}").into());
            }
        }
        fs::remove_file(&file)?;
        Ok(Hashing {
            handrail: median(handrail),
            sha256sum: median(sha256sum),
        })
    }

    /// A state directory `name` for the real binary: the no-op registered, the
    /// benchmark's configuration, and the compiled handler cached first, as on a device
    /// that ran it before.
    fn noop_state(&self, name: &str) -> Result<PathBuf> {
        let state = self.dir.join(name);
        fs::create_dir_all(state.join("handlers"))?;
        fs::write(
            state.join("handlers").join("noop.toml"),
            handrail::bundled::registration_text("Written by the benchmark.", &self.noop_wasm)?,
        )?;
        fs::write(state.join("config.toml"), fixtures::CONFIG_TOML)?;
        fs::create_dir_all(state.join("cache"))?;
        for entry in fs::read_dir(&self.cache)? {
            let entry = entry?;
            fs::copy(entry.path(), state.join("cache").join(entry.file_name()))?;
        }
        Ok(state)
    }

    /// Peak RSS (KiB) of `handrail deploy` of the WebAssembly no-op, per step count.
    pub async fn peak_rss(&self, step_counts: &[usize]) -> Result<Vec<(usize, u64)>> {
        self.warm_cache().await?;
        let mut rows = Vec::new();
        for &steps in step_counts {
            let state = self.noop_state(&format!("state-rss-{steps}"))?;
            let manifest = state.join("update.json");
            fs::write(&manifest, fixtures::manifest(NOOP_ID, steps)?)?;
            let child = Command::new(&self.handrail)
                .arg("--state-dir")
                .arg(&state)
                .arg("deploy")
                .arg(&manifest)
                .arg("--payloads")
                .arg(&self.payloads)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            let (status, max_rss_kib) = wait_with_rusage(child)?;
            if status != 0 {
                return Err(format!(
                    "`handrail deploy` of {steps} steps exited with {status} (state in {})",
                    state.display()
                )
                .into());
            }
            rows.push((steps, max_rss_kib));
        }
        Ok(rows)
    }
}

/// Downloading one payload file over loopback from nginx, side by side with curl.
pub struct Download {
    /// curl writing it to a file (median).
    pub curl: Duration,
    /// curl writing it, then the file fsync'ed: what a download that survives a power
    /// cut costs at the least (median).
    pub curl_synced: Duration,
    /// Handrail's downloader bringing it into a deployment folder: streamed, hashed,
    /// made durable as it goes, verified (median).
    pub handrail: Duration,
    /// Peak RSS (KiB) of `handrail deploy` of an envelope whose step's file is
    /// downloaded.
    pub deploy_rss_kib: u64,
    /// Bytes that deployment wrote to storage (its rusage's output blocks).
    pub deploy_written: u64,
}

impl Bench {
    /// Serves `bytes` of pseudo-random data from nginx and downloads it `runs` times
    /// with curl and with Handrail's downloader, alternately; then deploys it once with
    /// the real binary.
    pub async fn download(&self, bytes: u64, runs: usize) -> Result<Download> {
        use handrail::config::DownloadConfig;
        use handrail::download::{Downloader, Wanted};
        let nginx = handrail_test_support::nginx::Nginx::start(1, &|_, _| String::new());
        let served = nginx.path("payload.bin");
        write_pseudo_random(&served, bytes)?;
        let sha256: [u8; 32] = {
            use sha2::Digest as _;
            let mut hasher = sha2::Sha256::new();
            std::io::copy(&mut fs::File::open(&served)?, &mut hasher)?;
            hasher.finalize().into()
        };
        let url = nginx.url("payload.bin");
        let out = self.dir.join("downloaded.bin");
        let config = DownloadConfig::default();
        let transport = Arc::new(handrail_http::HttpTransport::new(&config)?);
        let downloader = Downloader::new(transport, self.dir.join("downloads"), config);
        let wanted = Wanted {
            url: &url,
            name: "payload.bin",
            size: bytes,
            hash: handrail::download::FileHash::Sha256(sha256),
            headers: &[],
        };
        let (mut curl, mut synced, mut ours) = (Vec::new(), Vec::new(), Vec::new());
        // Round 0 is not counted: the first gigabyte each writes lands in pages the
        // system had not used yet, which on a virtual machine cost the host a fault
        // each (a plain write loop runs at a quarter of its speed there), and whichever
        // runs first would pay for the others.
        for round in 0..=runs {
            let counted = round > 0;
            for sync in [false, true] {
                let _ = fs::remove_file(&out);
                let start = Instant::now();
                let status = Command::new("curl")
                    .args(["-sS", "--fail", "-o"])
                    .arg(&out)
                    .arg(&url)
                    .status()?;
                if sync {
                    fs::File::open(&out)?.sync_all()?;
                    if counted {
                        synced.push(start.elapsed());
                    }
                } else if counted {
                    curl.push(start.elapsed());
                }
                if !status.success() {
                    return Err(format!("curl {url} failed: {status}").into());
                }
                fs::remove_file(&out)?;
            }
            let start = Instant::now();
            let fetched = downloader.fetch(&wanted, &out, &mut |_| {}, &CancelToken::new())?;
            if counted {
                ours.push(start.elapsed());
            }
            if fetched.received != bytes {
                return Err(format!("the downloader received {} bytes", fetched.received).into());
            }
            downloader.forget_complete();
            fs::remove_file(&out)?;
        }
        // The real binary: one no-op step whose file the envelope's URL gives.
        self.warm_cache().await?;
        let state = self.noop_state("state-download")?;
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&fixtures::manifest(NOOP_ID, 1)?)?;
        manifest["instructions"]["steps"][0]["files"] = serde_json::json!(["payload.bin"]);
        let sha256_b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(sha256)
        };
        manifest["files"] = serde_json::json!({"f1": {
            "fileName": "payload.bin",
            "sizeInBytes": bytes,
            "hashes": {"sha256": sha256_b64},
        }});
        let envelope = state.join("envelope.json");
        fs::write(
            &envelope,
            serde_json::to_vec(&serde_json::json!({
                "workflow": {"action": 3, "id": "bench-download"},
                "updateManifest": manifest.to_string(),
                "updateManifestSignature": "",
                "fileUrls": {"f1": url},
            }))?,
        )?;
        let empty = self.dir.join("no-payloads");
        fs::create_dir_all(&empty)?;
        let child = Command::new(&self.handrail)
            .arg("--state-dir")
            .arg(&state)
            .arg("deploy")
            .arg(&envelope)
            .arg("--payloads")
            .arg(&empty)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let usage = wait_with_usage(child)?;
        if usage.code != 0 {
            return Err(format!(
                "`handrail deploy` of a downloaded file exited with {} (state in {})",
                usage.code,
                state.display()
            )
            .into());
        }
        fs::remove_dir_all(&state)?;
        Ok(Download {
            curl: median(curl),
            curl_synced: median(synced),
            handrail: median(ours),
            deploy_rss_kib: usage.max_rss_kib,
            deploy_written: usage.written,
        })
    }
}

/// One kind of no-op `install` call, timed call by call in its own folder.
///
/// Every call gets a new work folder, made untimed, and writes a new result file in it,
/// as every step of a deployment does. Nothing is deleted while the calls run: on ext4
/// without a journal, making a file skips the inodes deleted in the last half minute
/// one by one, so deleting a result file per call would make every later creation (of
/// every row) slower and slower.
struct Caller {
    dir: PathBuf,
    calls: usize,
    progress: ProgressFn,
    times: Vec<Duration>,
}

impl Caller {
    fn new(dir: &Path) -> Caller {
        Caller {
            dir: dir.to_owned(),
            calls: 0,
            progress: Arc::new(|_, _| {}),
            times: Vec::with_capacity(CALLS),
        }
    }

    /// The context of the next call, in a new work folder.
    fn next_context(&mut self) -> Result<StepContext> {
        self.calls += 1;
        step_context(&self.dir.join(format!("work-{}", self.calls)))
    }

    /// One `install` through `handler.invoke`; the result file it wrote must say success.
    async fn invoke(&mut self, handler: &dyn LoadedHandler) -> Result<()> {
        let context = self.next_context()?;
        let result = PathBuf::from(&context.result_file);
        let invocation = Invocation {
            action: Action::Install,
            context,
            cancel: CancelToken::new(),
            progress: self.progress.clone(),
        };
        let started = Instant::now();
        let end = handler.invoke(invocation).await;
        self.times.push(started.elapsed());
        if end != InvocationEnd::Returned {
            return Err(format!("the no-op install ended with {end:?}").into());
        }
        let written = ResultFile::interpret(Action::Install, fs::read(&result).ok().as_deref());
        if written.result_code != codes::INSTALL_SUCCESS {
            return Err(format!("the no-op install reported {written:?}").into());
        }
        Ok(())
    }

    /// One no-op `install` through the native worker started bare (no cgroup, no
    /// capability drop, no Landlock, no seccomp): the request written to it, its report
    /// and the result file read.
    async fn bare_worker(&mut self, worker: &Path, registration: &Registration) -> Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let context = self.next_context()?;
        let result = PathBuf::from(&context.result_file);
        let request = serde_json::json!({
            "library": registration.artifact,
            "sha256": registration.sha256,
            "call": {"action": {"action": "install", "context": context}},
            "limits": {"memory_mib": registration.limits.memory_mib, "cpu_secs": 600},
        });
        let request = serde_json::to_vec(&request)?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(worker)
            .env_clear()
            .current_dir(&context.work_folder)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(&request).await?;
        drop(stdin);
        let mut report = String::new();
        child
            .stdout
            .take()
            .ok_or("no stdout")?
            .read_to_string(&mut report)
            .await?;
        child.wait().await?;
        self.times.push(started.elapsed());
        let written = ResultFile::interpret(Action::Install, fs::read(&result).ok().as_deref());
        if !report.contains("returned") || written.result_code != codes::INSTALL_SUCCESS {
            return Err(format!("the bare worker reported {report}: {written:?}").into());
        }
        Ok(())
    }

    /// Mender-style: the no-op script started with `/bin/sh` for one action, waited
    /// for, its result file read.
    fn fork_exec(&mut self, script: &Path) -> Result<()> {
        let context = self.next_context()?;
        let started = Instant::now();
        let status = Command::new("/bin/sh")
            .arg(script)
            .arg("--action-install")
            .arg("--result-file")
            .arg(&context.result_file)
            .current_dir(&context.work_folder)
            .stdin(Stdio::null())
            .status()?;
        let written = fs::read(&context.result_file)?;
        self.times.push(started.elapsed());
        let written = ResultFile::interpret(Action::Install, Some(&written));
        if !status.success() || written.result_code != codes::INSTALL_SUCCESS {
            return Err(format!("the no-op script ended {status}: {written:?}").into());
        }
        Ok(())
    }

    /// The WebAssembly sandbox set-up of one action, alone.
    fn sandbox_setup(&mut self, host: &WasmHost) -> Result<()> {
        let context = self.next_context()?;
        let started = Instant::now();
        host.sandbox_setup(&context)?;
        self.times.push(started.elapsed());
        Ok(())
    }

    fn median(self) -> Duration {
        median(self.times)
    }
}

/// The step context of a no-op install with its work folder `work` (made here).
fn step_context(work: &Path) -> Result<StepContext> {
    fs::create_dir_all(work)?;
    Ok(StepContext {
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
        result_file: work.join("result-install.json").display().to_string(),
        installed_criteria: None,
        component: None,
    })
}

/// Writes `bytes` of incompressible-looking data (xorshift), 1 MiB at a time.
fn write_pseudo_random(path: &Path, bytes: u64) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = usize::try_from(left.min(chunk.len() as u64))?;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// How a child ended and what it used.
struct Usage {
    /// Its exit code (-1 for a signal).
    code: i32,
    /// Its peak RSS in KiB.
    max_rss_kib: u64,
    /// Bytes it wrote to storage (output blocks of 512 bytes).
    written: u64,
}

/// Waits for `child` and returns its exit code (-1 for a signal) and its peak RSS in KiB.
fn wait_with_rusage(child: std::process::Child) -> Result<(i32, u64)> {
    let usage = wait_with_usage(child)?;
    Ok((usage.code, usage.max_rss_kib))
}

/// Waits for `child` and returns how it ended and what it used.
fn wait_with_usage(mut child: std::process::Child) -> Result<Usage> {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        pipe.read_to_string(&mut stderr)?;
    }
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to live locals; `child` is not waited
    // for again afterwards (std's handle only closes its pipes on drop).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(std::io::Error::last_os_error().into());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    if code != 0 && !stderr.is_empty() {
        eprintln!("{}", stderr.trim_end());
    }
    Ok(Usage {
        code,
        max_rss_kib: u64::try_from(usage.ru_maxrss)?,
        written: u64::try_from(usage.ru_oublock)? * 512,
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
