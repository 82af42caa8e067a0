//! Builds the C test handlers as shared libraries with the C compiler the `cc` crate finds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (environment variable, source, extra compiler flags)
const LIBRARIES: &[(&str, &str, &[&str])] = &[
    (
        "HANDRAIL_C_MARKER",
        "../../../../sdk/c/examples/marker.c",
        &[],
    ),
    ("HANDRAIL_C_HOSTILE", "hostile.c", &[]),
    (
        "HANDRAIL_C_FUTURE_ABI",
        "hostile.c",
        &["-DHOSTILE_ABI_MAJOR=2"],
    ),
    ("HANDRAIL_C_NO_ENTRY", "hostile.c", &["-DHOSTILE_NO_ENTRY"]),
];

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let include = here.join("../../../../sdk/c");
    println!("cargo:rerun-if-changed={}", include.display());
    let compiler = cc::Build::new().get_compiler();
    for (variable, source, flags) in LIBRARIES {
        let source = here.join(source);
        println!("cargo:rerun-if-changed={}", source.display());
        let library = out.join(format!("lib{}.so", variable.to_lowercase()));
        build(&compiler, &source, &include, flags, &library);
        println!("cargo:rustc-env={variable}={}", library.display());
    }
}

fn build(compiler: &cc::Tool, source: &Path, include: &Path, flags: &[&str], library: &Path) {
    let mut command: Command = compiler.to_command();
    command
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11",
        ])
        .arg("-D_GNU_SOURCE")
        .arg("-I")
        .arg(include)
        .args(flags)
        .arg("-o")
        .arg(library)
        .arg(source);
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler: {e}"));
    assert!(
        status.success(),
        "compiling {} failed ({status}); see the errors above",
        source.display()
    );
}
