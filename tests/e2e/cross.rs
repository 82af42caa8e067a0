//! Handrail for ARM devices, built on this x86_64 host by the documented command
//! (`scripts/cross.sh <triple>…`, both targets in one cargo run) and run under qemu-user:
//! the lean build has no compiler, deploys with the built-in handlers this host
//! precompiled for the device's architecture, and refuses by name a `.wasm` component
//! and handlers precompiled for another architecture. (The lean build is the same code
//! on every architecture; it is built for the two the devices have.)
//!
//! What qemu-user cannot show: it answers `seccomp` and Landlock's system calls itself
//! (`ENOSYS`) instead of passing them to the kernel, so under emulation a confined
//! program or native worker gets neither; the registrations here opt into
//! `best-effort`, and the test checks that the runtime says the programs ran without
//! them. The confinement itself is what the x86_64 suite proves on the real kernel
//! (`hostile_run`, the native host's and the confine crate's tests), with the same code;
//! what differs by architecture, the seccomp filter's system-call numbers and
//! architecture check, is built by seccompiler for aarch64 (and refused for 32-bit ARM,
//! which it does not support: see the README).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Device, handrail_bin, script_manifest};
use handrail_test_support::manifest::inline_step;

/// A target the project cross-builds: its Rust triple and the qemu-user program that
/// runs its binaries, with the folder holding its C library.
struct Cross {
    triple: &'static str,
    qemu: &'static str,
    sysroot: &'static str,
    /// The prefix of Debian's cross tools (`aarch64-linux-gnu-gcc`).
    gnu: &'static str,
}

const AARCH64: Cross = Cross {
    triple: "aarch64-unknown-linux-gnu",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    gnu: "aarch64-linux-gnu",
};

const ARMV7: Cross = Cross {
    triple: "armv7-unknown-linux-gnueabihf",
    qemu: "qemu-arm",
    sysroot: "/usr/arm-linux-gnueabihf",
    gnu: "arm-linux-gnueabihf",
};

/// What `scripts/cross.sh` wrote for `cross`: the folder with `handrail`,
/// `handrail-native-worker` and `handlers/`. Both targets are built by one run of the
/// script, once per test run (debug profile without debug information, not
/// incremental, its own target folder, the binary under test precompiling), whichever
/// test asks first.
///
/// `scripts/test.sh` starts that build in the background while the other tests run and
/// names its folder in `HANDRAIL_CROSS_BUILD`: then this waits for its `status` file
/// (the script's exit code), within an hour.
fn cross_build(cross: &Cross) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("HANDRAIL_CROSS_BUILD").map(PathBuf::from) {
            let status = dir.join("status");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
            while !status.exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the background cross build ({}) did not end within an hour",
                    dir.display()
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let code = fs::read_to_string(&status).unwrap();
            assert_eq!(
                code.trim(),
                "0",
                "scripts/cross.sh failed:\n{}",
                fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            return dir.join("out");
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = tmp.join("cross");
        let run = Command::new(root.join("scripts/cross.sh"))
            .args([AARCH64.triple, ARMV7.triple])
            .arg("--debug")
            .arg("--out")
            .arg(&out)
            .arg("--handrail")
            .arg(handrail_bin())
            .env("CARGO_TARGET_DIR", tmp.join("cross-target"))
            // Built once to be run, not debugged: no debug information and no
            // incremental state make it quicker.
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .env("CARGO_INCREMENTAL", "0")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "scripts/cross.sh failed:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        out
    });
    let out = built.join(cross.triple);
    for file in ["handrail", "handrail-native-worker"] {
        let elf = fs::read(out.join(file)).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF", "{file}");
        let machine = u16::from_le_bytes([elf[18], elf[19]]);
        // e_machine: 0xb7 AArch64, 0x28 ARM, 0x3e x86-64.
        let expected = match cross.triple.split('-').next() {
            Some("aarch64") => 0xb7,
            Some("x86_64") => 0x3e,
            _ => 0x28,
        };
        assert_eq!(
            machine, expected,
            "{file} is not built for {}",
            cross.triple
        );
    }
    out
}

/// A `handrail` the tests can run: the cross-built one, copied into a folder of its own
/// with a script that runs it under qemu, and beside it, as the runtime looks for it, a
/// `handrail-native-worker` that runs the cross-built worker under qemu. (The runtime
/// executes its worker; without qemu registered with the kernel's `binfmt_misc`, which
/// this host does not have, the kernel cannot execute an ARM program itself.)
fn emulated(cross: &Cross, built: &Path, device: &Device) -> PathBuf {
    let dir = device.tmp.path().join("emulated");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(built.join("handrail"), dir.join("handrail")).unwrap();
    let script = |name: &str, program: &Path| {
        let path = dir.join(name);
        fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec {} -L {} {} \"$@\"\n",
                cross.qemu,
                cross.sysroot,
                program.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    script(
        "handrail-native-worker",
        &built.join("handrail-native-worker"),
    );
    script("emulated-handrail", &dir.join("handrail"))
}

/// Registers the precompiled built-ins and the SDK's C example handler, built for the
/// target with its cross compiler; every registration opts into best-effort
/// confinement (see the module's notes on qemu).
fn install_handlers(cross: &Cross, built: &Path, device: &Device) {
    let handlers = device.state.join("handlers");
    fs::create_dir_all(&handlers).unwrap();
    let best_effort = "\n[config]\nlandlock = \"best-effort\"\n";
    for entry in fs::read_dir(built.join("handlers")).unwrap() {
        let path = entry.unwrap().path();
        let target = handlers.join(path.file_name().unwrap());
        if path.extension().is_some_and(|e| e == "toml") {
            let text = fs::read_to_string(&path).unwrap();
            fs::write(&target, format!("{text}{best_effort}")).unwrap();
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let library = handlers.join("libmarker.so");
    let compiler = format!("{}-gcc", cross.gnu);
    let built = Command::new(&compiler)
        .args(["-shared", "-fPIC", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I"])
        .arg(root.join("sdk/c"))
        .arg("-o")
        .arg(&library)
        .arg(root.join("sdk/c/examples/marker.c"))
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e}"));
    assert!(
        built.status.success(),
        "{compiler}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let sha256 = handrail::registry::sha256_file(&library).unwrap();
    let device_dir = device.device.display();
    fs::write(
        handlers.join("marker.toml"),
        format!(
            "id = \"contoso/marker:1\"\nkind = \"native\"\nartifact = \"libmarker.so\"\nsha256 = \"{sha256}\"\n\
             [capabilities]\nwrite = [\"{device_dir}\"]\n\
             [config]\nmarkerDir = \"{device_dir}\"\nlandlock = \"best-effort\"\n"
        ),
    )
    .unwrap();
}

fn deploys_under_emulation(cross: &Cross, other: &Cross) {
    let built = cross_build(cross);
    let device = Device::new();
    let handrail = emulated(cross, &built, &device);
    let version = device.run_bin(&handrail, &["--version"]);
    assert_eq!(version.code(), Some(0), "{}", version.stderr());

    install_handlers(cross, &built, &device);
    let health = device.run_bin(&handrail, &["health"]);
    assert_eq!(
        health.code(),
        Some(0),
        "{}\n{}",
        health.stdout(),
        health.stderr()
    );

    // Two script steps (the built-in script handler, precompiled on this host, running
    // bash) and a native step (the C handler, in the cross-built worker).
    let mut update = script_manifest(&device, &["one", "two"], &[]);
    update["instructions"]["steps"]
        .as_array_mut()
        .unwrap()
        .push(inline_step(
            "contoso/marker:1",
            &[],
            serde_json::json!({"installedCriteria": "marker-1.0"}),
        ));
    let manifest = device.manifest("update.json", &update);
    let payloads = device.payloads.to_str().unwrap();
    let deploy = ["deploy", manifest.to_str().unwrap(), "--payloads", payloads];
    let run = device.run_bin(&handrail, &deploy);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    for installed in ["one", "two", "marker-1.0.installed"] {
        assert!(device.device.join(installed).exists(), "{installed}");
    }
    // Under qemu the kernel's confinement is out of reach, and the runtime says so.
    let said = run.stderr();
    assert!(
        said.contains("seccomp filtering is not available")
            && said.contains("Landlock is not available"),
        "{said}"
    );
    // Run again, the same update is installed: every step answers is-installed.
    let again = device.run_bin(&handrail, &deploy);
    assert_eq!(
        again.code(),
        Some(0),
        "{}\n{}",
        again.stdout(),
        again.stderr()
    );

    // No compiler: nothing to precompile with, and a `.wasm` component registered on
    // the device is refused by name, health saying this binary cannot serve it.
    let run = device.run_bin(&handrail, &["precompile", "x.wasm"]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    let handlers = device.state.join("handlers");
    let wasm = handlers.join("camera.wasm");
    fs::write(&wasm, handrail_example_handlers::VIRTUAL_CAMERA).unwrap();
    let camera = handlers.join("camera.toml");
    fs::write(
        &camera,
        format!(
            "id = \"contoso/virtual-camera:1\"\nkind = \"wasm\"\nartifact = \"camera.wasm\"\nsha256 = \"{}\"\n",
            handrail::registry::sha256_file(&wasm).unwrap()
        ),
    )
    .unwrap();
    let health = device.run_bin(&handrail, &["health"]);
    let said = format!("{}{}", health.stdout(), health.stderr());
    assert_ne!(health.code(), Some(0), "{said}");
    assert!(
        said.contains("contoso/virtual-camera:1")
            && said.contains("runs only precompiled handlers"),
        "{said}"
    );
    fs::remove_file(&camera).unwrap();

    // A handler precompiled for another architecture is refused by name.
    let foreign = cross_build(other).join("handlers/microsoft-script-1.cwasm");
    fs::copy(&foreign, handlers.join("microsoft-script-1.cwasm")).unwrap();
    let registration = handlers.join("microsoft-script-1.toml");
    let text = fs::read_to_string(&registration).unwrap();
    let sha256 = handrail::registry::sha256_file(&foreign).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("sha256") {
                format!("sha256 = \"{sha256}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&registration, text).unwrap();
    let health = device.run_bin(&handrail, &["health"]);
    let said = format!("{}{}", health.stdout(), health.stderr());
    assert_ne!(health.code(), Some(0), "{said}");
    assert!(
        said.contains("microsoft/script:1") && said.contains("precompiled for another engine"),
        "{said}"
    );
}

#[test]
fn the_aarch64_lean_build_deploys_the_builtins_precompiled_here() {
    deploys_under_emulation(&AARCH64, &ARMV7);
}

#[test]
fn the_armv7_lean_build_deploys_the_builtins_precompiled_here() {
    deploys_under_emulation(&ARMV7, &AARCH64);
}
