//! `microsoft/apt:1` against the real apt-get and dpkg, through the whole runtime: the
//! built-in component registered with the WebAssembly host, deployments admitted and run
//! by the engine, packages installed, upgraded and rolled back on this machine.
//!
//! The tests build their own packages with `dpkg-deb` (`handrail-test-hello` 1.0 and 2.0,
//! each installing `/usr/share/handrail-test/handrail-test-hello.txt`, and
//! `handrail-test-broken`, whose postinst fails), serve them from a flat file repository
//! and point apt at it through the registration's `config.apt_options` (their own sources
//! list, lists and cache folders), so the device's own apt configuration is neither used
//! nor changed. The test packages are purged before and after each test, also when it
//! fails. Installing needs root: as another user the tests that install say so and pass
//! without running.
//!
//! Each failure is checked as ADU's apt handler reports it: in the same action, with the
//! same extended result code. The handler does not answer is-installed (the runtime
//! answers it from its records of installed criteria), so the actions checked here are
//! the handler's own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use handrail::contract::Action;
use handrail::contract::codes;
use handrail::host::HandlerHost;
use handrail::registry::{HandlerKind, Registration, Registry};
use handrail::{AdmitOptions, DeploymentStatus, Report, Runtime, StepOutcome};
use handrail_test_support::manifest::{Update, inline_step};
use handrail_test_support::{MachineLock, registration};
use handrail_wasm_host::WasmHost;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const ID: &str = "microsoft/apt:1";
const HELLO: &str = "handrail-test-hello";
const BROKEN: &str = "handrail-test-broken";
const SHARE: &str = "/usr/share/handrail-test";

/// apt and dpkg take system-wide locks, and fail rather than wait for them: one test on
/// the machine at a time touches them (the demo's end-to-end test too).
fn one_apt_user() -> MachineLock {
    MachineLock::apt()
}

/// True when this process may install packages; otherwise says why not.
fn can_install() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = [
        "/usr/bin/apt-get",
        "/usr/bin/dpkg-query",
        "/usr/bin/dpkg-deb",
    ]
    .iter()
    .all(|p| Path::new(p).exists());
    if !(root && tools) {
        let why = "installing packages for real needs root and apt-get, dpkg-query and dpkg-deb";
        // CI runs as root on Debian: there, this is a failure, never a silent skip.
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipping: {why}");
    }
    root && tools
}

/// Purges the test packages when created and when dropped, so a failed test leaves
/// nothing behind.
struct Purge;

impl Purge {
    fn now() -> Purge {
        purge();
        Purge
    }
}

impl Drop for Purge {
    fn drop(&mut self) {
        purge();
    }
}

fn purge() {
    let status = Command::new("dpkg")
        .args(["--purge", HELLO, BROKEN])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output();
    if let Ok(out) = status
        && !out.status.success()
    {
        eprintln!(
            "dpkg --purge of the test packages: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What dpkg says about a package: `(status, version)` of its first line, if any.
fn dpkg_state(name: &str) -> Option<(String, String)> {
    let out = Command::new("dpkg-query")
        .args(["-W", "--showformat=${Status}\t${Version}\n", name])
        .output()
        .expect("dpkg-query runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    let (status, version) = line.split_once('\t')?;
    Some((status.to_owned(), version.to_owned()))
}

/// The version of `name` dpkg has fully installed, if any.
fn installed(name: &str) -> Option<String> {
    dpkg_state(name)
        .filter(|(status, _)| status.ends_with(" installed"))
        .map(|(_, version)| version)
}

fn shared_file(name: &str) -> Option<String> {
    fs::read_to_string(Path::new(SHARE).join(format!("{name}.txt"))).ok()
}

/// Builds `name_version_all.deb` into `repo`: a file under [`SHARE`] holding the
/// version, and a postinst that fails when `broken`.
fn build_deb(work: &Path, repo: &Path, name: &str, version: &str, broken: bool) {
    let root = work.join(format!("{name}-{version}"));
    let share = root.join(SHARE.trim_start_matches('/'));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join(format!("{name}.txt")), format!("{version}\n")).unwrap();
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Handrail tests <tests@handrail.invalid>\nDescription: Handrail apt handler test package\n Installs {SHARE}/{name}.txt.\n"
        ),
    )
    .unwrap();
    if broken {
        use std::os::unix::fs::PermissionsExt;
        let postinst = root.join("DEBIAN/postinst");
        fs::write(
            &postinst,
            "#!/bin/sh\necho 'handrail-test-broken: refusing to configure' >&2\nexit 1\n",
        )
        .unwrap();
        fs::set_permissions(&postinst, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let deb = repo.join(format!("{name}_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg("--build")
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb runs");
    assert!(
        out.status.success(),
        "dpkg-deb --build {name} {version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the flat repository's `Packages` index, as `dpkg-scanpackages` would: each
/// package's control fields plus where the file is and its size and hash.
fn write_index(repo: &Path) {
    let mut debs: Vec<PathBuf> = fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    let mut index = String::new();
    for deb in debs {
        let control = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .output()
            .unwrap();
        assert!(control.status.success());
        let bytes = fs::read(&deb).unwrap();
        index.push_str(String::from_utf8_lossy(&control.stdout).trim_end());
        index.push_str(&format!(
            "\nFilename: ./{}\nSize: {}\nSHA256: {}\n\n",
            deb.file_name().unwrap().to_string_lossy(),
            bytes.len(),
            handrail::registry::hex(&Sha256::digest(&bytes)),
        ));
    }
    fs::write(repo.join("Packages"), index).unwrap();
}

/// The test's package repository and apt's folders for it; returns the apt options that
/// point apt there and nowhere else.
fn package_repository(dir: &Path) -> Vec<String> {
    let repo = dir.join("repo");
    let build = dir.join("build");
    for sub in [
        "repo",
        "build",
        "sources.list.d",
        "lists/partial",
        "cache/archives/partial",
    ] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    build_deb(&build, &repo, HELLO, "1.0", false);
    build_deb(&build, &repo, HELLO, "2.0", false);
    build_deb(&build, &repo, BROKEN, "1.0", true);
    write_index(&repo);
    let sources = dir.join("sources.list");
    fs::write(
        &sources,
        format!("deb [trusted=yes] file:{} ./\n", repo.display()),
    )
    .unwrap();
    let option =
        |name: &str, value: &Path| ["-o".to_owned(), format!("{name}={}", value.display())];
    [
        option("Dir::Etc::SourceList", &sources),
        option("Dir::Etc::SourceParts", &dir.join("sources.list.d")),
        option("Dir::State::Lists", &dir.join("lists")),
        option("Dir::Cache", &dir.join("cache")),
        option("Dir::Cache::Archives", &dir.join("cache/archives")),
        // The repository is in a private temporary folder apt's download user cannot read.
        ["-o".to_owned(), "APT::Sandbox::User=root".to_owned()],
    ]
    .concat()
}

/// A payload file: its name and content.
type Payload = (String, String);

/// A runtime with the built-in apt handler registered with `config`, and a payload folder.
struct Fixture {
    dir: TempDir,
    runtime: Runtime,
    deployed: usize,
}

/// The built-in apt handler's registration with `config`, its artifact written in `dir`.
fn apt_registration(dir: &Path, config: serde_json::Map<String, Value>) -> Registration {
    let builtin = handrail_builtin_handlers::builtin_handlers()
        .into_iter()
        .find(|h| h.id == ID)
        .expect("the built-in apt handler");
    let artifact = dir.join("apt.wasm");
    fs::write(&artifact, builtin.wasm).unwrap();
    Registration {
        config,
        ..registration(ID, HandlerKind::Wasm, &artifact, builtin.capabilities)
    }
}

impl Fixture {
    fn new(with_repository: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = serde_json::Map::new();
        if with_repository {
            config.insert("apt_options".into(), json!(package_repository(dir.path())));
        }
        let mut registry = Registry::new();
        registry
            .insert(apt_registration(dir.path(), config))
            .unwrap();
        fs::create_dir_all(dir.path().join("payloads")).unwrap();
        let host = WasmHost::new(dir.path().join("wasm-cache")).unwrap();
        let runtime = Runtime::builder(dir.path().join("state"))
            .allow_unsigned()
            .registry(registry)
            .host(host)
            .open()
            .unwrap();
        Fixture {
            dir,
            runtime,
            deployed: 0,
        }
    }

    /// Deploys one update of apt steps, each `(installedCriteria, payload files)` with
    /// the files as `(name, content)`; an empty criteria leaves it out.
    async fn deploy(&mut self, steps: &[(&str, Vec<Payload>)]) -> Report {
        self.deployed += 1;
        let payloads = self.dir.path().join("payloads");
        let steps: Vec<Value> = steps
            .iter()
            .map(|(criteria, files)| {
                for (name, content) in files {
                    fs::write(payloads.join(name), content).unwrap();
                }
                let mut properties = serde_json::Map::new();
                if !criteria.is_empty() {
                    properties.insert("installedCriteria".into(), json!(criteria));
                }
                let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
                inline_step(ID, &names, Value::Object(properties))
            })
            .collect();
        let manifest = Update::new("handrail-test", "apt", &format!("{}.0", self.deployed))
            .compatible_with("handrail", "test")
            .steps(steps);
        self.runtime
            .deploy(&manifest.to_vec(), &payloads, AdmitOptions::default())
            .await
            .unwrap()
            .finish()
            .await
            .unwrap()
    }
}

/// An apt manifest file named `name` listing `packages` as `(name, version)`.
fn apt_manifest(name: &str, packages: &[(&str, &str)], restart: bool) -> Payload {
    let packages: Vec<Value> = packages
        .iter()
        .map(|(p, v)| {
            if v.is_empty() {
                json!({"name": p})
            } else {
                json!({"name": p, "version": v})
            }
        })
        .collect();
    let body = json!({
        "name": name.trim_end_matches(".json"),
        "version": "1.0",
        "packages": packages,
        "agentRestartRequired": restart,
    });
    (name.to_owned(), body.to_string())
}

/// `(action, resultCode)` of every action the handler ran for a step: is-installed,
/// which the handler leaves to the runtime, is left out.
fn handler_ran(report: &Report, step: usize) -> Vec<(Action, i32)> {
    report.steps[step]
        .actions
        .iter()
        .filter(|a| a.action != Action::IsInstalled)
        .map(|a| (a.action, a.result.result_code))
        .collect()
}

/// The failure of a one-step deployment that must fail.
fn failure_of(report: Report, case: &str) -> handrail::report::FailureReport {
    assert_ne!(
        report.status,
        DeploymentStatus::Succeeded,
        "{case}: {report:#?}"
    );
    report
        .failure
        .unwrap_or_else(|| panic!("{case}: the failure is reported"))
}

#[tokio::test]
async fn the_handler_leaves_is_installed_to_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let registration = apt_registration(dir.path(), serde_json::Map::new());
    let host = WasmHost::new(dir.path().join("wasm-cache")).unwrap();
    let handler = host.load(&registration).await.unwrap();
    assert_eq!(handler.description().id, ID);
    assert_eq!(
        handler.description().actions,
        [
            Action::Download,
            Action::Backup,
            Action::Install,
            Action::Apply,
            Action::Restore,
            Action::Cancel,
        ]
    );
}

#[tokio::test]
async fn installs_and_upgrades() {
    if !can_install() {
        return;
    }
    let _apt = one_apt_user();
    let _purge = Purge::now();
    let mut fx = Fixture::new(true);
    let hello_1 = apt_manifest("hello-1.0.json", &[(HELLO, "1.0")], false);

    let report = fx.deploy(&[("hello-1.0", vec![hello_1])]).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    assert_eq!(
        handler_ran(&report, 0),
        [
            (Action::Download, codes::DOWNLOAD_SUCCESS),
            (Action::Backup, codes::BACKUP_SUCCESS),
            (Action::Install, codes::INSTALL_SUCCESS),
            (Action::Apply, codes::APPLY_SUCCESS),
        ]
    );
    assert_eq!(installed(HELLO).as_deref(), Some("1.0"));
    assert_eq!(shared_file(HELLO).as_deref(), Some("1.0\n"));

    // The upgrade's manifest asks for an agent restart: apply answers 707, the
    // deployment waits for the restart and finishes when resumed.
    let hello_2 = apt_manifest("hello-2.0.json", &[(HELLO, "2.0")], true);
    let upgrade = fx.deploy(&[("hello-2.0", vec![hello_2])]).await;
    assert_eq!(upgrade.status, DeploymentStatus::Suspended, "{upgrade:#?}");
    assert_eq!(
        handler_ran(&upgrade, 0).last(),
        Some(&(Action::Apply, codes::APPLY_REQUIRED_IMMEDIATE_AGENT_RESTART))
    );
    assert_eq!(installed(HELLO).as_deref(), Some("2.0"));
    assert_eq!(shared_file(HELLO).as_deref(), Some("2.0\n"));
    let resumed = fx
        .runtime
        .resume()
        .unwrap()
        .expect("the suspended upgrade")
        .finish()
        .await
        .unwrap();
    assert_eq!(resumed.status, DeploymentStatus::Succeeded, "{resumed:#?}");
    assert_eq!(installed(HELLO).as_deref(), Some("2.0"));
}

#[tokio::test]
async fn packages_and_versions_apt_cannot_find_fail_the_download() {
    if !can_install() {
        return;
    }
    let _apt = one_apt_user();
    let _purge = Purge::now();
    let mut fx = Fixture::new(true);
    let cases = [
        (
            "hello-9.9",
            apt_manifest("hello-9.9.json", &[(HELLO, "9.9")], false),
            "Version '9.9' for 'handrail-test-hello' was not found",
        ),
        (
            "nowhere-1.0",
            apt_manifest(
                "nowhere.json",
                &[(HELLO, "1.0"), ("handrail-test-nowhere", "")],
                false,
            ),
            "Unable to locate package handrail-test-nowhere",
        ),
    ];
    for (criteria, manifest, said) in cases {
        let failure = failure_of(fx.deploy(&[(criteria, vec![manifest])]).await, criteria);
        assert_eq!(failure.action, Action::Download, "{criteria}");
        assert_eq!(
            failure.extended_result_code, 0x3020_0100,
            "{criteria}: {}",
            failure.result_details
        );
        for said in [said, "exited with code 100"] {
            assert!(
                failure.result_details.contains(said),
                "{criteria}: details lack `{said}`: {}",
                failure.result_details
            );
        }
        assert_eq!(installed(HELLO), None, "{criteria}: nothing is installed");
    }
}

#[tokio::test]
async fn a_failed_install_is_restored_from_the_backup() {
    if !can_install() {
        return;
    }
    let _apt = one_apt_user();
    let _purge = Purge::now();
    let mut fx = Fixture::new(true);
    let before = fx
        .deploy(&[(
            "hello-1.0",
            vec![apt_manifest("hello-1.0.json", &[(HELLO, "1.0")], false)],
        )])
        .await;
    assert_eq!(before.status, DeploymentStatus::Succeeded, "{before:#?}");

    // Step 0 upgrades hello; step 1 downgrades it again together with the broken
    // package, whose postinst fails.
    let report = fx
        .deploy(&[
            (
                "hello-2.0",
                vec![apt_manifest("hello-2.0.json", &[(HELLO, "2.0")], false)],
            ),
            (
                "broken-1.0",
                vec![apt_manifest(
                    "broken-1.0.json",
                    &[(BROKEN, "1.0"), (HELLO, "1.0")],
                    false,
                )],
            ),
        ])
        .await;
    assert_ne!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    let failure = report.failure.clone().expect("the failure is reported");
    assert_eq!((failure.step, failure.action), (1, Action::Install));
    assert_eq!(
        failure.extended_result_code, 0x3020_0200,
        "ADU's PACKAGE_INSTALL_FAILURE: {}",
        failure.result_details
    );
    for said in [
        "apt-get install handrail-test-broken=1.0 handrail-test-hello=1.0",
        "exited with code 100",
        "handrail-test-broken",
        "post-installation script subprocess returned error exit status 1",
    ] {
        assert!(
            failure.result_details.contains(said),
            "details lack `{said}`: {}",
            failure.result_details
        );
    }
    assert_eq!(report.steps[1].outcome, StepOutcome::Failed);
    let restore = report.steps[1]
        .actions
        .iter()
        .find(|a| a.action == Action::Restore)
        .expect("the failed step is restored");
    assert_eq!(
        restore.result.result_code,
        codes::RESTORE_SUCCESS,
        "{restore:?}"
    );
    assert!(
        restore
            .result
            .result_details
            .contains("removed handrail-test-broken")
            && restore
                .result
                .result_details
                .contains("reinstalled handrail-test-hello=2.0"),
        "{}",
        restore.result.result_details
    );

    assert!(
        dpkg_state(BROKEN).is_none_or(|(status, _)| status.ends_with("not-installed")),
        "the broken package is gone: {:?}",
        dpkg_state(BROKEN)
    );
    assert_eq!(shared_file(BROKEN), None);
    // Step 1's restore put hello back at 2.0, as step 0 left it; a runtime that also
    // rolls back earlier steps then restores step 0's backup, 1.0.
    let step_0_restored = report.steps[0]
        .actions
        .iter()
        .any(|a| a.action == Action::Restore && a.result.is_success());
    let want = if step_0_restored { "1.0" } else { "2.0" };
    assert_eq!(installed(HELLO).as_deref(), Some(want), "{report:#?}");
    assert_eq!(shared_file(HELLO), Some(format!("{want}\n")));
}

#[tokio::test]
async fn bad_steps_and_manifests_fail_the_download_with_adus_codes_before_apt_runs() {
    let mut fx = Fixture::new(false);
    let good = || apt_manifest("good.json", &[(HELLO, "1.0")], false);
    let raw = |name: &str, body: &str| (name.to_owned(), body.to_owned());
    let cases: Vec<(&str, Vec<Payload>, i32, &str)> = vec![
        // ADU's codes.
        (
            "",
            vec![good()],
            0x3020_0007,
            "installedCriteria (handlerProperties.installedCriteria) is missing or empty",
        ),
        (
            "c-two",
            vec![good(), raw("extra.json", "{}")],
            0x3020_0004,
            "good.json, extra.json",
        ),
        ("c-none", vec![], 0x3020_0004, "has 0 (none)"),
        (
            "c-json",
            vec![raw("bad.json", "{\"name\": ")],
            0x3000_0068,
            "apt manifest `bad.json`: not valid JSON",
        ),
        (
            "c-no-name",
            vec![raw(
                "no-name.json",
                r#"{"version":"1","packages":[{"name":"a"}]}"#,
            )],
            0x3000_0068,
            "apt manifest `no-name.json`: name: missing",
        ),
        (
            "c-no-version",
            vec![raw(
                "no-version.json",
                r#"{"name":"n","packages":[{"name":"a"}]}"#,
            )],
            0x3000_0068,
            "apt manifest `no-version.json`: version: missing",
        ),
        (
            "c-empty",
            vec![raw(
                "empty.json",
                r#"{"name":"n","version":"1","packages":[]}"#,
            )],
            0x3000_0068,
            "apt manifest `empty.json`: packages: empty",
        ),
        (
            "c-field",
            vec![raw(
                "field.json",
                r#"{"name":"n","version":"1","packages":[{"name":"a"},{"version":"1"}]}"#,
            )],
            0x3000_0068,
            "packages[1].name: missing",
        ),
        // No `packages` at all parses, as in ADU, and then has nothing to download.
        (
            "c-no-packages",
            vec![raw("no-packages.json", r#"{"name":"n","version":"1"}"#)],
            0x3020_0100,
            "apt manifest `no-packages.json` (n 1) has no `packages`",
        ),
        // Handrail's own: what apt would misread is refused before it runs.
        (
            "c-option",
            vec![apt_manifest(
                "option.json",
                &[("--allow-unauthenticated", "")],
                false,
            )],
            0x3020_0011,
            "read as an option",
        ),
        (
            "c-glob",
            vec![apt_manifest("glob.json", &[("handrail-test-*", "")], false)],
            0x3020_0011,
            "glob",
        ),
        (
            "c-space",
            vec![apt_manifest("space.json", &[("hello world", "")], false)],
            0x3020_0011,
            "whitespace",
        ),
        (
            "c-release",
            vec![apt_manifest(
                "release.json",
                &[("hello/unstable", "")],
                false,
            )],
            0x3020_0011,
            "release",
        ),
        (
            "c-version",
            vec![apt_manifest("version.json", &[(HELLO, "1.*")], false)],
            0x3020_0012,
            "packages[0].version",
        ),
    ];
    for (criteria, files, code, said) in cases {
        let failure = failure_of(fx.deploy(&[(criteria, files)]).await, criteria);
        assert_eq!(failure.action, Action::Download, "{criteria}");
        assert_eq!(
            failure.extended_result_code, code,
            "{criteria}: {}",
            failure.result_details
        );
        assert!(
            failure.result_details.contains(said),
            "{criteria}: details lack `{said}`: {}",
            failure.result_details
        );
    }
}
