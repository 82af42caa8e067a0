//! `handrail precompile` through the real binary: the built-in handlers precompiled into
//! a state directory take over from the bundled ones and deploy; one component into a
//! `.cwasm`; bad inputs refused with exit 2, naming the file. (The lean build deploying
//! with what the full build precompiled is in `cross.rs`, built with the ARM ones.)

mod common;

use std::fs;

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
