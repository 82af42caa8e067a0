//! The kit over real handlers: every built-in WebAssembly handler, the example native
//! handlers and the vendor template pass; each deliberately broken handler fails
//! exactly the checks it breaks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use handrail::registry::{Capabilities, HandlerKind, Registration};
use handrail_conformance::{Check, Kit, Profile, Report};
use handrail_conformance_guests as guests;
use handrail_test_support::{MachineLock, registration};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Compiled handlers are cached across the tests of this run.
fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-cache")
}

fn kit(registration: Registration, profile: Option<&Path>) -> Kit {
    let kit = Kit::new(registration)
        .cache_dir(cache())
        .native_worker(env!("CARGO_BIN_EXE_conformance-native-worker"));
    match profile {
        Some(p) => kit.profile(Profile::load(p).unwrap()),
        None => kit,
    }
}

fn failed(report: &Report) -> BTreeSet<&'static str> {
    report.failed().iter().map(|c| c.id()).collect()
}

fn assert_passes(report: &Report) {
    assert!(report.passed(), "{}", report.to_human());
}

/// A built-in handler's component, written out as an artifact.
fn builtin(id: &str, dir: &Path) -> Registration {
    let handler = handrail_builtin_handlers::builtin_handlers()
        .into_iter()
        .find(|h| h.id == id)
        .unwrap();
    let artifact = dir.join(format!("{}.wasm", id.replace(['/', ':'], "-")));
    std::fs::write(&artifact, handler.wasm).unwrap();
    registration(id, HandlerKind::Wasm, &artifact, handler.capabilities)
}

#[test]
fn the_script_handler_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let reg = builtin("microsoft/script:1", dir.path());
    let report = kit(reg, Some(&repo("handlers/script/conform.toml")))
        .run()
        .unwrap();
    assert_passes(&report);
    assert!(report.skipped().is_empty(), "{}", report.to_human());
}

#[test]
fn the_apt_handler_conforms_in_what_can_run_without_installing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = builtin("microsoft/apt:1", dir.path());
    let report = kit(reg, Some(&repo("handlers/apt/conform.toml")))
        .run()
        .unwrap();
    assert_passes(&report);
    // Install is not run on the machine running the tests, so what depends on it is
    // skipped, with the profile's reason; is-installed is not the handler's to answer
    // (the runtime answers it from its records, as ADU's agent does for apt).
    assert_eq!(
        report.skipped(),
        [
            Check::IsInstalledAnswers,
            Check::InstalledAfterInstall,
            Check::IdempotentInstall
        ]
    );
    let why = report.to_human();
    assert!(why.contains("installs packages on the machine"), "{why}");
}

#[test]
fn the_swupdate_handler_conforms_on_a_scratch_ab_device() {
    // swupdate, run by several test binaries at once, fails now and then in ways that
    // have nothing to do with the handler: one run on the machine at a time.
    let _swupdate = MachineLock::swupdate();
    let dir = tempfile::tempdir().unwrap();
    let reg = builtin("microsoft/swupdate:2", dir.path());
    let report = kit(reg, Some(&repo("handlers/swupdate/conform.toml")))
        .run()
        .unwrap();
    assert_passes(&report);
    // Apply asks for an immediate reboot, after which alone is-installed can verify:
    // the kit skips HC-004 itself, saying so; every other check runs.
    assert_eq!(report.skipped(), [Check::InstalledAfterInstall]);
    let why = report.to_human();
    assert!(why.contains("asks for a reboot (705)"), "{why}");
}

#[test]
fn the_swupdate_v1_handler_conforms_with_the_same_profile() {
    // :1 reads no swuFileName: the profile's one payload file is its image.
    // swupdate, run by several test binaries at once, fails now and then in ways that
    // have nothing to do with the handler: one run on the machine at a time.
    let _swupdate = MachineLock::swupdate();
    let dir = tempfile::tempdir().unwrap();
    let reg = builtin("microsoft/swupdate:1", dir.path());
    let report = kit(reg, Some(&repo("handlers/swupdate/conform.toml")))
        .run()
        .unwrap();
    assert_eq!(report.handler, "microsoft/swupdate:1");
    assert_passes(&report);
    assert_eq!(report.skipped(), [Check::InstalledAfterInstall]);
}

#[test]
fn the_c_example_native_handler_conforms() {
    let reg = registration(
        "contoso/marker:1",
        HandlerKind::Native,
        Path::new(handrail_test_native_guests::C_MARKER),
        Capabilities::default(),
    );
    let report = kit(
        reg,
        Some(&repo("tests/conformance/profiles/c-marker.conform.toml")),
    )
    .run()
    .unwrap();
    assert_passes(&report);
}

#[test]
fn the_rust_example_native_handler_conforms() {
    let reg = registration(
        "test/rust-marker:1",
        HandlerKind::Native,
        &handrail_test_native_guests::rust_marker_library(),
        Capabilities::default(),
    );
    let report = kit(
        reg,
        Some(&repo("tests/conformance/profiles/rust-marker.conform.toml")),
    )
    .run()
    .unwrap();
    assert_passes(&report);
}

#[test]
fn the_vendor_template_conforms() {
    let report = kit(
        Kit::from_path(Path::new(guests::TEMPLATE))
            .unwrap()
            .registration()
            .clone(),
        Some(&repo("sdk/template/conform.toml")),
    )
    .run()
    .unwrap();
    assert_eq!(report.handler, "vendor/template:1");
    assert_passes(&report);
    assert!(report.skipped().is_empty(), "{}", report.to_human());
}

/// The kit over a broken guest, registered as a bare artifact (the id comes from its
/// describe), with `profile` as its step.
fn broken(artifact: &str, profile: &str) -> Report {
    let reg = Kit::from_path(Path::new(artifact))
        .unwrap()
        .registration()
        .clone();
    kit(reg, None)
        .profile(Profile::parse(Path::new("inline.toml"), profile).unwrap())
        .run()
        .unwrap()
}

#[test]
fn an_out_of_phase_code_fails_only_the_result_file_check() {
    let report = broken(guests::OUT_OF_PHASE, "");
    assert_eq!(failed(&report), ["HC-002"].into(), "{}", report.to_human());
}

#[test]
fn a_trap_on_malformed_properties_fails_only_that_check() {
    let report = broken(
        guests::TRAPS_ON_MALFORMED,
        "[handlerProperties]\nversion = \"1.0\"",
    );
    assert_eq!(failed(&report), ["HC-009"].into(), "{}", report.to_human());
}

#[test]
fn a_handler_that_ignores_cancel_fails_only_the_cancel_check() {
    // Its install does its work anyway (however quick), and its cancel action never
    // returns.
    let report = broken(guests::IGNORES_CANCEL, "cancelBoundSecs = 2");
    assert_eq!(failed(&report), ["HC-007"].into(), "{}", report.to_human());
    let said = report.to_human();
    assert!(
        said.contains("ran to its end and reported success")
            && said.contains("cancel action did not return within 2.0 s"),
        "{said}"
    );
    // An install that runs on without polling is stopped by the host at the bound, and
    // named.
    let report = broken(
        guests::IGNORES_CANCEL,
        "cancelBoundSecs = 1\n[handlerProperties]\nspin = true\n",
    );
    assert_eq!(failed(&report), ["HC-007"].into(), "{}", report.to_human());
    let said = report.to_human();
    assert!(
        said.contains("ignored the cancel: it was still running 1.0 s after it"),
        "{said}"
    );
}

#[test]
fn an_is_installed_that_lies_after_install_fails_only_that_check() {
    let report = broken(guests::LYING_IS_INSTALLED, "");
    assert_eq!(failed(&report), ["HC-004"].into(), "{}", report.to_human());
}

#[test]
fn a_non_deterministic_handler_fails_only_the_determinism_check() {
    let report = broken(guests::NON_DETERMINISTIC, "");
    assert_eq!(failed(&report), ["HC-012"].into(), "{}", report.to_human());
}

#[test]
fn a_handler_whose_programs_leave_processes_running_fails_only_the_limits_check() {
    let mut reg = Kit::from_path(Path::new(guests::LEAVES_PROCESS))
        .unwrap()
        .registration()
        .clone();
    reg.capabilities.run = vec!["/bin/sh".into()];
    let report = kit(reg, None).run().unwrap();
    assert_eq!(failed(&report), ["HC-011"].into(), "{}", report.to_human());
    assert!(
        report.to_human().contains("left") && report.to_human().contains("processes running"),
        "{}",
        report.to_human()
    );
}

#[test]
fn a_bad_describe_fails_only_the_describe_check() {
    let report = broken(guests::BAD_DESCRIBE, "");
    assert_eq!(failed(&report), ["HC-001"].into(), "{}", report.to_human());
}

#[test]
fn a_handler_that_cannot_load_fails_describe_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = builtin("microsoft/script:1", dir.path());
    reg.id = "contoso/not-script:1".into();
    let report = kit(reg, None).run().unwrap();
    assert_eq!(failed(&report), ["HC-001"].into());
    assert_eq!(report.skipped().len(), Check::ALL.len() - 1);
    assert!(report.to_human().contains("describes itself as"));
}
