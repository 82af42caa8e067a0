//! `handrail precompile` through the real binary: the built-in handlers precompiled into
//! a state directory take over from the bundled ones and deploy; one component into a
//! `.cwasm`; bad inputs refused with exit 2, naming the file; and the lean build for
//! devices (no compiler), built here, deploying with what the full build precompiled.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::{Device, script_manifest};

#[test]
fn precompiled_builtins_replace_the_bundled_ones_and_deploy() {
    let device = Device::new();
    let handlers = device.state.join("handlers");
    let run = device.run(&["precompile", "--builtins", handlers.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stdout().contains("microsoft/script:1"),
        "{}",
        run.stdout()
    );
    for stem in [
        "microsoft-script-1",
        "microsoft-apt-1",
        "microsoft-swupdate-2",
    ] {
        assert!(handlers.join(format!("{stem}.cwasm")).is_file(), "{stem}");
        assert!(handlers.join(format!("{stem}.toml")).is_file(), "{stem}");
    }

    let list = device.run(&["--json", "handlers", "list"]).last_json();
    let script = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "microsoft/script:1")
        .unwrap();
    assert!(
        script["artifact"]
            .as_str()
            .unwrap()
            .ends_with("microsoft-script-1.cwasm"),
        "{script}"
    );
    assert_eq!(script["capabilities"]["run"][0], "/bin/sh");
    assert!(
        !handlers.join("bundled-microsoft-script-1.toml").exists(),
        "the bundled registration stepped aside"
    );

    let manifest = device.manifest("update.json", &script_manifest(&device, &["one"], &[]));
    let run = device.deploy(&manifest);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(device.device.join("one").exists());
    let health = device.run(&["health"]);
    assert_eq!(health.code(), Some(0), "{}", health.stderr());
}

#[test]
fn one_component_is_precompiled_and_bad_inputs_are_named() {
    let device = Device::new();
    let dir = device.tmp.path();
    let wasm = dir.join("enumerator.wasm");
    fs::write(&wasm, handrail_example_handlers::VIRTUAL_CAMERAS_ENUMERATOR).unwrap();
    let run = device.run(&["precompile", wasm.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let cwasm = dir.join("enumerator.cwasm");
    let sha256 = handrail::registry::sha256_file(&cwasm).unwrap();
    assert!(run.stdout().contains(&sha256), "{}", run.stdout());

    let not_wasm = dir.join("notes.txt");
    fs::write(&not_wasm, "not a component").unwrap();
    let file = dir.join("a-file");
    fs::write(&file, "").unwrap();
    let wasm_path = wasm.to_str().unwrap();
    let cases: [(&[&str], &str, &str); 7] = [
        (&[cwasm.to_str().unwrap()], "precompiled already", ""),
        (
            &[not_wasm.to_str().unwrap()],
            "not a valid WebAssembly component",
            "",
        ),
        (&["missing.wasm"], "cannot read missing.wasm", ""),
        (&["--builtins", file.to_str().unwrap()], "cannot write", ""),
        (
            &[wasm_path, "--target", "mips-unknown-linux-gnu"],
            "cannot precompile for",
            "aarch64-unknown-linux-gnu",
        ),
        (
            &[
                wasm_path,
                "--target",
                "aarch64-unknown-linux-gnu",
                "--cpu-features",
                "warp-drive",
            ],
            "has_warp-drive",
            "--cpu-features takes Cranelift's names",
        ),
        (
            &[
                wasm_path,
                "--target",
                "armv7-unknown-linux-gnueabihf",
                "--cpu-features",
                "neon",
            ],
            "Pulley interpreter",
            "no CPU features",
        ),
    ];
    for (args, want, also) in cases {
        let run = device.run(&[&["precompile"], args].concat());
        assert_eq!(run.code(), Some(2), "{args:?}: {}", run.stderr());
        assert!(run.stderr().contains(also), "{args:?}: {}", run.stderr());
        let named = args
            .iter()
            .rev()
            .find(|a| !a.starts_with("--") && !["warp-drive", "neon"].contains(a))
            .unwrap();
        assert!(
            run.stderr().contains(want) && run.stderr().contains(named),
            "{args:?}: {}",
            run.stderr()
        );
    }
    // For a device: its architecture at the baseline, plus the features named.
    let arm = dir.join("enumerator-aarch64.cwasm");
    let run = device.run(&[
        "precompile",
        wasm_path,
        "-o",
        arm.to_str().unwrap(),
        "--target",
        "aarch64-unknown-linux-gnu",
        "--cpu-features",
        "lse",
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stdout()
            .contains("for aarch64-unknown-linux-gnu, CPU with has_lse"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        &fs::read(&arm).unwrap()[18..20],
        &[0xb7, 0],
        "an AArch64 ELF"
    );
    let usage = device.run(&["precompile", "-o", "x.cwasm"]);
    assert_eq!(usage.code(), Some(2), "{}", usage.stderr());
}

/// Builds the lean `handrail` (`--no-default-features`) into its own target folder, so
/// the full build's features stay as they are; incremental after the first time.
fn lean_binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lean");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--locked",
            "-p",
            "handrail-cli",
            "--no-default-features",
        ])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the lean build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("debug").join("handrail")
}

#[test]
fn the_lean_build_deploys_precompiled_handlers_and_refuses_a_component() {
    let lean = lean_binary();
    let device = Device::new();
    let handlers = device.state.join("handlers");
    // Until the built-ins are precompiled, no handler is registered to grant anything to.
    let config = device.state.join("config.toml");
    fs::remove_file(&config).unwrap();

    // No compiler: nothing to precompile with, and no built-in handler to deploy with.
    let run = device.run_bin(&lean, &["precompile", "x.wasm"]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    let list = device
        .run_bin(&lean, &["--json", "handlers", "list"])
        .last_json();
    let wasm_handlers: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "wasm")
        .collect();
    assert!(wasm_handlers.is_empty(), "{list}");

    // The full build precompiles the built-ins into the device's state directory...
    let run = device.run(&["precompile", "--builtins", handlers.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    device.write_config(&config, "");
    // ...and the lean one deploys with them.
    let manifest = device.manifest("update.json", &script_manifest(&device, &["one"], &[]));
    let payloads = device.payloads.to_str().unwrap();
    let run = device.run_bin(
        &lean,
        &["deploy", manifest.to_str().unwrap(), "--payloads", payloads],
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(device.device.join("one").exists());
    let health = device.run_bin(&lean, &["health"]);
    assert_eq!(health.code(), Some(0), "{}", health.stderr());

    // A `.wasm` component registered on the device is refused by name, and health says
    // this binary cannot serve the device.
    let wasm = handlers.join("camera.wasm");
    fs::write(&wasm, handrail_example_handlers::VIRTUAL_CAMERA).unwrap();
    fs::write(
        handlers.join("camera.toml"),
        format!(
            "id = \"contoso/virtual-camera:1\"\nkind = \"wasm\"\nartifact = \"camera.wasm\"\nsha256 = \"{}\"\n",
            handrail::registry::sha256_file(&wasm).unwrap()
        ),
    )
    .unwrap();
    let health = device.run_bin(&lean, &["health"]);
    assert_ne!(health.code(), Some(0), "{}", health.stdout());
    let said = format!("{}{}", health.stdout(), health.stderr());
    assert!(
        said.contains("contoso/virtual-camera:1")
            && said.contains("runs only precompiled handlers"),
        "{said}"
    );
}
