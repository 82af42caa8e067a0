//! Builds Handrail guest handler crates for `wasm32-wasip2` from a build script.
//!
//! A crate that embeds or tests handlers calls [`build`] from its `build.rs`. It runs a
//! nested `cargo build --release --target wasm32-wasip2` of the guest crate with a target
//! folder of its own (beside the outer build's, shared by every crate of the same
//! profile, so guests compile once), copies the component into `OUT_DIR`, and tells
//! cargo to rebuild when the guest's sources change. Nothing built is ever committed.
//!
//! ```no_run
//! // build.rs
//! let wasm = handrail_guest_build::build(
//!     "../script/Cargo.toml",
//!     &["../../sdk/rust", "../../sdk/contract", "../../wit"],
//! );
//! println!("cargo:rustc-env=SCRIPT_HANDLER_WASM={}", wasm.display());
//! ```

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Variables of the outer build that must not leak into the nested one: flags and
/// wrappers meant for the host crates (clippy's driver, coverage flags, a host target).
const OUTER_BUILD_VARIABLES: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_LLVM_COV",
    "CARGO_LLVM_COV_TARGET_DIR",
];

/// Builds the guest crate at `manifest_path` (relative to the calling crate's folder, or
/// absolute) and returns the path of its component, copied into `OUT_DIR`.
///
/// `also_watch` lists further folders or files (relative like `manifest_path`) whose
/// changes must rebuild the guest, typically the SDK and the WIT package it depends on.
///
/// # Panics
///
/// When not run from a build script, or when the nested build fails: a build script
/// reports failure by panicking, and the panic message carries cargo's exit status (its
/// diagnostics are on the build script's stderr).
pub fn build(manifest_path: impl AsRef<Path>, also_watch: &[&str]) -> PathBuf {
    let here = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let manifest = here.join(manifest_path.as_ref());
    let guest_dir = manifest
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent folder", manifest.display()))
        .to_path_buf();
    let package = package_name(&manifest);

    println!("cargo:rerun-if-changed={}", manifest.display());
    println!("cargo:rerun-if-changed={}", guest_dir.join("src").display());
    for path in also_watch {
        println!("cargo:rerun-if-changed={}", here.join(path).display());
    }

    let target_dir = guest_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", GUEST_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    for name in OUTER_BUILD_VARIABLES {
        command.env_remove(name);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the guest {package}: {e}"));
    assert!(
        status.success(),
        "building the guest {package} for {GUEST_TARGET} failed ({status}); see the errors above"
    );

    let file_name = format!("{}.wasm", package.replace('-', "_"));
    let built = target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join(&file_name);
    let copied = out_dir.join(&file_name);
    std::fs::copy(&built, &copied).unwrap_or_else(|e| {
        panic!(
            "cannot copy the guest component {} to {}: {e}",
            built.display(),
            copied.display()
        )
    });
    copied
}

/// `<target>/<profile>/wasm-guests` for an `OUT_DIR` of
/// `<target>/[<triple>/]<profile>/build/<crate>-<hash>/out`: one folder per outer
/// profile, shared by every crate that builds guests.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(3)
        .map(|profile| profile.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"))
}

/// The `name` of a Cargo.toml's `[package]` (the first `name = "…"` line after it).
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest.display()));
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(value) = line.strip_prefix("name")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            return value.trim().trim_matches('"').to_owned();
        }
    }
    panic!("{} has no [package] name", manifest.display())
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{name} is not set: call this from a build script"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_target_dir_is_per_profile() {
        assert_eq!(
            guest_target_dir(Path::new("/t/debug/build/x-123/out")),
            Path::new("/t/debug/wasm-guests")
        );
        assert_eq!(
            guest_target_dir(Path::new(
                "/t/x86_64-unknown-linux-gnu/release/build/x-1/out"
            )),
            Path::new("/t/x86_64-unknown-linux-gnu/release/wasm-guests")
        );
    }

    #[test]
    fn package_name_is_read_from_the_package_table() {
        let dir = std::env::temp_dir().join(format!("guest-build-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[lib]\nname = \"other\"\n\n[package]\nversion = \"1\"\nname = \"my-guest\"\n",
        )
        .unwrap();
        assert_eq!(package_name(&manifest), "my-guest");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
