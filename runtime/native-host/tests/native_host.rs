//! The native host end to end: real worker processes, real libraries (the SDK's C
//! example, a hostile C handler, a Rust handler exported with `export_native!`), real
//! files and real Landlock, driven through `handrail::Runtime`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use handrail::contract::codes::{self, ext};
use handrail::contract::{Action, ExtendedCode};
use handrail::host::HandlerHost;
use handrail::registry::{Capabilities, HandlerKind, Registration, Registry};
use handrail::{AdmitOptions, DeploymentStatus, Report, Runtime, StepOutcome};
use handrail_native_host::NativeHost;
use handrail_test_native_guests as guests;
use handrail_test_support::manifest::{Update, inline_step};
use handrail_test_support::registration;

fn host() -> NativeHost {
    NativeHost::new(env!("CARGO_BIN_EXE_handrail-native-worker"))
}

/// A temporary device: state directory, payload folder, and a folder handlers may be
/// granted (`device`).
struct Device {
    tmp: tempfile::TempDir,
    payloads: PathBuf,
    device: PathBuf,
}

impl Device {
    fn new() -> Device {
        let tmp = tempfile::tempdir().unwrap();
        let payloads = tmp.path().join("payloads");
        let device = tmp.path().join("device");
        fs::create_dir_all(&payloads).unwrap();
        fs::create_dir_all(&device).unwrap();
        fs::write(payloads.join("firmware.bin"), b"firmware 1.0").unwrap();
        Device {
            tmp,
            payloads,
            device,
        }
    }

    /// A runtime over this device's state directory with the native host and these
    /// registrations.
    fn runtime(&self, registrations: Vec<Registration>) -> Runtime {
        let mut registry = Registry::new();
        for r in registrations {
            registry.insert(r).unwrap();
        }
        Runtime::builder(self.tmp.path().join("state"))
            .allow_unsigned()
            .registry(registry)
            .host(host())
            .open()
            .unwrap()
    }

    /// A registration of `library` as `id` that grants the device folder read-write
    /// and names it as `config.markerDir`.
    fn registration(&self, id: &str, library: impl AsRef<Path>) -> Registration {
        let library = library.as_ref();
        let mut config = serde_json::Map::new();
        config.insert("markerDir".into(), self.device.display().to_string().into());
        let capabilities = Capabilities {
            write: vec![self.device.clone()],
            ..Capabilities::default()
        };
        Registration {
            config,
            ..registration(id, HandlerKind::Native, library, capabilities)
        }
    }

    fn hostile(&self, change: impl FnOnce(&mut Registration)) -> Registration {
        let mut r = self.registration("test/hostile:1", guests::C_HOSTILE);
        change(&mut r);
        r
    }
}

/// A manifest of inline steps: (handler, payload files, handler properties). Every step
/// gets installed criteria of its own, unique across the test run.
fn manifest(steps: &[(&str, &[&str], serde_json::Value)]) -> Vec<u8> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let steps = steps.iter().map(|(handler, files, props)| {
        let mut props = props.clone();
        if props.get("installedCriteria").is_none() {
            props["installedCriteria"] =
                format!("criteria-{}", NEXT.fetch_add(1, Ordering::SeqCst)).into();
        }
        inline_step(handler, files, props)
    });
    Update::new("test", "native", "1.0").steps(steps).to_vec()
}

async fn deploy(rt: &Runtime, manifest: &[u8], payloads: &Path) -> Report {
    rt.deploy(manifest, payloads, AdmitOptions::default())
        .await
        .unwrap()
        .finish()
        .await
        .unwrap()
}

/// Deploys one hostile step with these properties.
async fn hostile_step(rt: &Runtime, device: &Device, props: serde_json::Value) -> Report {
    deploy(
        rt,
        &manifest(&[("test/hostile:1", &["firmware.bin"], props)]),
        &device.payloads,
    )
    .await
}

/// The install result of a report's only step.
fn install_details(report: &Report) -> String {
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    let install = report.steps[0]
        .actions
        .iter()
        .find(|a| a.action == Action::Install)
        .unwrap();
    install.result.result_details.clone()
}

#[tokio::test]
async fn c_and_rust_native_handlers_run_a_two_step_manifest_end_to_end() {
    let device = Device::new();
    let rt = device.runtime(vec![
        device.registration("contoso/marker:1", guests::C_MARKER),
        device.registration("test/rust-marker:1", guests::rust_marker_library()),
    ]);
    let update = manifest(&[
        (
            "contoso/marker:1",
            &[],
            serde_json::json!({"installedCriteria": "c-marker-1.0"}),
        ),
        (
            "test/rust-marker:1",
            &["firmware.bin"],
            serde_json::json!({"installedCriteria": "rust-marker-1.0"}),
        ),
    ]);
    let report = deploy(&rt, &update, &device.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    let actions = |step: usize| -> Vec<Action> {
        report.steps[step]
            .actions
            .iter()
            .map(|a| a.action)
            .collect()
    };
    // ADU's two phases: is-installed (and a download neither implements), then again.
    assert_eq!(
        actions(0),
        [Action::IsInstalled, Action::IsInstalled, Action::Install]
    );
    assert_eq!(
        actions(1),
        [
            Action::IsInstalled,
            Action::IsInstalled,
            Action::Install,
            Action::Apply
        ]
    );
    assert!(device.device.join("c-marker-1.0.installed").exists());
    assert_eq!(
        fs::read(device.device.join("rust-marker-1.0.rust-installed")).unwrap(),
        b"firmware 1.0"
    );

    let again = deploy(&rt, &update, &device.payloads).await;
    assert_eq!(again.status, DeploymentStatus::Succeeded, "{again:#?}");
    for step in &again.steps {
        assert_eq!(step.outcome, StepOutcome::AlreadyInstalled, "{again:#?}");
        assert_eq!(step.actions.len(), 1);
    }
}

#[tokio::test]
async fn crash_abort_hang_exit_and_panic_fail_with_their_codes_and_the_runtime_carries_on() {
    let device = Device::new();
    let rt = device.runtime(vec![
        device.hostile(|r| r.limits.timeout_secs = 1),
        device.registration("test/rust-marker:1", guests::rust_marker_library()),
    ]);
    let cases: [(&str, serde_json::Value, ExtendedCode, &str); 5] = [
        (
            "test/hostile:1",
            serde_json::json!({"misbehave": "segfault"}),
            ext::WORKER_DIED,
            "SIGSEGV",
        ),
        (
            "test/hostile:1",
            serde_json::json!({"misbehave": "abort"}),
            ext::WORKER_DIED,
            "SIGABRT",
        ),
        (
            "test/hostile:1",
            serde_json::json!({"misbehave": "exit"}),
            ext::WORKER_DIED,
            "exited with status 3",
        ),
        (
            "test/hostile:1",
            serde_json::json!({"misbehave": "hang"}),
            ext::TIMED_OUT,
            "time limit",
        ),
        (
            "test/rust-marker:1",
            serde_json::json!({"panic": true}),
            ext::HANDLER_TRAPPED,
            "asked to panic in install",
        ),
    ];
    for (i, (handler, props, code, said)) in cases.into_iter().enumerate() {
        let report = deploy(
            &rt,
            &manifest(&[(handler, &["firmware.bin"], props.clone())]),
            &device.payloads,
        )
        .await;
        assert_eq!(
            report.status,
            DeploymentStatus::Failed,
            "{props}: {report:#?}"
        );
        assert_eq!(report.steps[0].outcome, StepOutcome::Failed);
        let failure = report.failure.expect("a failure");
        assert_eq!(failure.action, Action::Install, "{props}");
        assert_eq!(failure.result_code, codes::FAILURE, "{props}");
        assert_eq!(
            ExtendedCode::from_raw(failure.extended_result_code),
            code,
            "{props}: {}",
            failure.result_details
        );
        assert!(
            failure.result_details.contains(said),
            "{props}: {}",
            failure.result_details
        );
        // The failed deployment is finished and recorded; nothing is left in progress.
        assert!(rt.current().unwrap().is_none(), "{props}");
        assert_eq!(rt.history().unwrap().len(), i + 1);
    }
    // The same runtime, the same loaded handler: a good step goes through.
    let good = hostile_step(&rt, &device, serde_json::json!({})).await;
    assert_eq!(install_details(&good), "behaved");
    assert_eq!(rt.history().unwrap().len(), 6);
}

#[tokio::test]
async fn landlock_denies_shadow_and_writes_outside_the_work_folder() {
    // As root this process can read /etc/shadow: the denial below is Landlock's.
    let unconfined_can_read = fs::File::open("/etc/shadow").is_ok();
    let device = Device::new();
    let rt = device.runtime(vec![device.hostile(|_| ())]);
    let report = hostile_step(&rt, &device, serde_json::json!({"misbehave": "probe"})).await;
    assert_eq!(
        install_details(&report),
        "shadow=EACCES outside=EACCES tmp=EACCES payload=ok work=ok",
        "(this process itself can read /etc/shadow: {unconfined_can_read})"
    );
    assert!(!Path::new("/tmp/escaped-by-hostile").exists());
}

#[tokio::test]
async fn granted_programs_run_and_others_are_denied() {
    // A native handler is native code: starting the system's own programs gives it
    // nothing it cannot do itself under the same confinement, so they run; a program
    // anywhere else runs only where `capabilities.run` grants it.
    let device = Device::new();
    let tools = device.tmp.path().join("tools");
    fs::create_dir_all(&tools).unwrap();
    let program = tools.join("true");
    fs::copy(fs::canonicalize("/bin/true").unwrap(), &program).unwrap();
    let props = serde_json::json!({"misbehave": "run", "program": program});

    let granted = device.runtime(vec![device.hostile(|r| {
        r.capabilities.run = vec![program.clone()];
    })]);
    let report = hostile_step(&granted, &device, props.clone()).await;
    assert_eq!(install_details(&report), "run=exit:0");
    drop(granted);

    let denied = device.runtime(vec![device.hostile(|_| ())]);
    let report = hostile_step(&denied, &device, props).await;
    assert_eq!(install_details(&report), "run=EACCES");
}

#[tokio::test]
async fn the_memory_limit_holds() {
    let device = Device::new();
    let rt = device.runtime(vec![device.hostile(|r| r.limits.memory_mib = 64)]);
    let report = hostile_step(&rt, &device, serde_json::json!({"misbehave": "alloc"})).await;
    assert_eq!(install_details(&report), "alloc=refused");
}

#[tokio::test]
async fn cancel_kills_the_running_worker() {
    let device = Device::new();
    let rt = device.runtime(vec![device.hostile(|r| r.limits.timeout_secs = 600)]);
    let update = manifest(&[(
        "test/hostile:1",
        &[],
        serde_json::json!({"misbehave": "hang"}),
    )]);
    let mut deployment = rt
        .deploy(&update, &device.payloads, AdmitOptions::default())
        .await
        .unwrap();
    // The worker makes `hanging` in its work folder once it runs the action.
    let state = device.tmp.path().join("state");
    let canceller = deployment.cancel_token();
    let watcher = tokio::spawn(async move {
        for _ in 0..60_000 {
            if contains_file(&state, "hanging") {
                canceller.cancel();
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    });
    while deployment.next_event().await.is_some() {}
    let report = deployment.finish().await.unwrap();
    assert!(watcher.await.unwrap(), "the worker never ran the action");
    assert_eq!(report.status, DeploymentStatus::Cancelled, "{report:#?}");
    let failure = report.failure.unwrap();
    assert_eq!(failure.result_code, codes::FAILURE_CANCELLED);
    assert_eq!(failure.extended_result_code, ext::CANCELLED.value());
}

/// Whether a file named `name` is anywhere under `dir`.
fn contains_file(dir: &Path, name: &str) -> bool {
    fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
        let path = e.path();
        e.file_name() == name || (path.is_dir() && contains_file(&path, name))
    })
}

#[tokio::test]
async fn describe_reports_what_each_library_implements() {
    let device = Device::new();
    let rust = host()
        .load(&device.registration("test/rust-marker:1", guests::rust_marker_library()))
        .await
        .unwrap();
    assert_eq!(
        rust.description().actions,
        [Action::IsInstalled, Action::Install, Action::Apply]
    );
    assert_eq!(rust.description().contract, (1, 0));
    let c = host()
        .load(&device.registration("contoso/marker:1", guests::C_MARKER))
        .await
        .unwrap();
    assert_eq!(
        c.description().actions,
        [Action::IsInstalled, Action::Install]
    );
}

#[tokio::test]
async fn abi_mismatch_wrong_id_and_bad_policy_are_refused_at_load() {
    let device = Device::new();
    let refusal = |registration: Registration| async move {
        match host().load(&registration).await {
            Ok(_) => panic!("{} loaded", registration.artifact.display()),
            Err(e) => e.to_string(),
        }
    };
    let err = refusal(device.registration("test/hostile:1", guests::C_FUTURE_ABI)).await;
    assert!(
        err.contains("the ABI version of its function table is 2.0")
            && err.contains("this runtime implements handler contract 1.0"),
        "{err}"
    );
    let err = refusal(device.registration("test/hostile:1", guests::C_NO_ENTRY)).await;
    assert!(err.contains("exports no `handrail_handler_v1`"), "{err}");
    let err = refusal(device.registration("contoso/other:1", guests::C_MARKER)).await;
    assert!(
        err.contains("describes itself as `contoso/marker:1`"),
        "{err}"
    );
    let mut bad_policy = device.registration("contoso/marker:1", guests::C_MARKER);
    bad_policy.config.insert("landlock".into(), "off".into());
    let err = refusal(bad_policy).await;
    assert!(err.contains("config.landlock"), "{err}");
    let missing_worker = NativeHost::new(device.tmp.path().join("no-such-worker"))
        .load(&device.registration("contoso/marker:1", guests::C_MARKER))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        missing_worker.contains("native worker program"),
        "{missing_worker}"
    );

    // Through the runtime, the deployment is refused at admission, naming the handler and
    // the load failure, before anything runs.
    let rt = device.runtime(vec![
        device.registration("test/hostile:1", guests::C_FUTURE_ABI),
    ]);
    let refused = rt
        .deploy(
            &manifest(&[("test/hostile:1", &["firmware.bin"], serde_json::json!({}))]),
            &device.payloads,
            AdmitOptions::default(),
        )
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        refused.contains("handler `test/hostile:1`")
            && refused.contains(&ext::LOAD_FAILED.to_string()),
        "{refused}"
    );
    let history = rt.history().unwrap();
    assert_eq!(
        history.last().unwrap().report.status,
        DeploymentStatus::Rejected
    );
}

#[tokio::test]
async fn a_library_changed_after_load_is_refused_by_the_worker() {
    let device = Device::new();
    let library = device.tmp.path().join("libmarker.so");
    fs::copy(guests::C_MARKER, &library).unwrap();
    let rt = device.runtime(vec![device.registration("contoso/marker:1", &library)]);
    let first = deploy(
        &rt,
        &manifest(&[("contoso/marker:1", &[], serde_json::json!({}))]),
        &device.payloads,
    )
    .await;
    assert_eq!(first.status, DeploymentStatus::Succeeded, "{first:#?}");
    // Swap the library under the loaded handler: the next worker refuses it.
    fs::copy(guests::C_HOSTILE, &library).unwrap();
    let second = deploy(
        &rt,
        &manifest(&[("contoso/marker:1", &[], serde_json::json!({}))]),
        &device.payloads,
    )
    .await;
    let failure = second.failure.expect("refused");
    assert_eq!(failure.extended_result_code, ext::HOST_FAILURE.value());
    assert!(failure.result_details.contains("sha256"), "{failure:#?}");
}

#[tokio::test]
async fn a_native_worker_reaches_no_kernel_interface_socket_or_process_past_its_grants() {
    let device = Device::new();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let unix_path = device.tmp.path().join("agent.sock");
    let unix = std::os::unix::net::UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let pid_file = device.device.join("daemon.pid");
    let granted = device.device.clone();
    let rt = device.runtime(vec![
        device.hostile(|r| r.capabilities.write = vec![granted]),
    ]);
    let report = hostile_step(
        &rt,
        &device,
        serde_json::json!({
            "misbehave": "escape",
            "port": udp.local_addr().unwrap().port().to_string(),
            "unix": unix_path,
            "pidFile": pid_file,
        }),
    )
    .await;
    let daemon: libc::pid_t = fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("the handler never started its daemon ({e}): {report:?}"))
        .trim()
        .parse()
        .unwrap();
    let daemon_lives = handrail_test_support::process_running(daemon);
    if daemon_lives {
        // SAFETY: kill(2) on the process the test's handler started.
        unsafe {
            libc::kill(daemon, libc::SIGKILL);
        }
    }
    assert_eq!(
        install_details(&report),
        "unshare=EPERM reboot=EPERM packet=EPERM netlink=EPERM udp=EPERM unix=EPERM signal-runtime=EPERM disk=EACCES capeff=0"
    );
    let mut buf = [0u8; 16];
    assert!(
        udp.recv(&mut buf).is_err(),
        "the worker reached the test's UDP socket"
    );
    assert!(
        unix.accept().is_err(),
        "the worker reached the test's UNIX socket"
    );
    assert!(
        !daemon_lives,
        "the worker's daemon {daemon} outlived its action"
    );
}

#[tokio::test]
async fn the_sdks_host_functions_work_in_a_native_handler_and_its_progress_reaches_the_events() {
    let device = Device::new();
    let rt = device.runtime(vec![
        device.registration("test/rust-marker:1", guests::rust_marker_library()),
    ]);
    let update = manifest(&[(
        "test/rust-marker:1",
        &["firmware.bin"],
        serde_json::json!({"host": true}),
    )]);
    let mut deployment = rt
        .deploy(&update, &device.payloads, AdmitOptions::default())
        .await
        .unwrap();
    let mut progress = Vec::new();
    while let Some(event) = deployment.next_event().await {
        if let handrail::Event::Progress { done, total, .. } = event {
            progress.push((done, total));
        }
    }
    let report = deployment.finish().await.unwrap();
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    assert_eq!(
        install_details(&report),
        "cancelled=false run=Some(0) echoed"
    );
    // Coalesced, but the last report always arrives.
    assert_eq!(progress.last(), Some(&(2, 2)), "{progress:?}");
}
