//! Builds the no-op handlers the benchmark loads and calls: the WebAssembly one from
//! `guest/` (with the SDK) and the native one from `noop.c` (with the C SDK header).

use std::path::PathBuf;

fn main() {
    let sources = &[
        "../../sdk/rust",
        "../../sdk/contract",
        "../../wit",
        "../../Cargo.lock",
    ];
    let wasm = handrail_guest_build::build("guest/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_BENCH_NOOP_WASM={}",
        wasm.display()
    );

    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let include = here.join("../../sdk/c");
    let source = here.join("noop.c");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed={}", include.display());
    let library = out.join("libbench_noop.so");
    let status = cc::Build::new()
        .get_compiler()
        .to_command()
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11",
        ])
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&library)
        .arg(&source)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler: {e}"));
    assert!(
        status.success(),
        "compiling {} failed ({status})",
        source.display()
    );
    println!(
        "cargo:rustc-env=HANDRAIL_BENCH_NOOP_NATIVE={}",
        library.display()
    );
}
