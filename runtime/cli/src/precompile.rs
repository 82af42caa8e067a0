//! `handrail precompile`: handlers compiled ahead of time for the lean build (no
//! compiler), which runs only precompiled components.
//!
//! Two forms: one component into a `.cwasm` (its sha256 printed for the registration),
//! or the built-in handlers into a folder, each `.cwasm` with a registration naming it
//! and granting what the built-in needs, ready to be copied into a device's
//! `<state-dir>/handlers/`. Their file names do not start with `bundled-`, so a full
//! build sharing that folder takes them as the owner's registrations of those ids and
//! steps its own bundled copies aside. Every file is written atomically (temporary
//! file, fsync, rename), the artifact before the registration naming it.
//!
//! Precompiled code is for this wasmtime and this engine configuration, and for this
//! machine's CPU features or, with a [`Target`], for another architecture at its
//! baseline CPU and the features named: a build host precompiles for its devices.

use std::path::{Path, PathBuf};

use handrail::bundled;
use handrail::registry::{HandlerKind, Limits, Registration, sha256_hex};
use handrail_wasm_host::{PrecompileError, Precompiler, Target};

use crate::exit::{self, Failure};
use crate::output::Output;

/// The extension of precompiled components.
const PRECOMPILED_EXTENSION: &str = "cwasm";

/// Precompiles the component `input` into `output` (default: `input` with `.cwasm`).
pub fn component(
    input: &Path,
    output: Option<&Path>,
    target: Option<&Target>,
    out: &Output,
) -> Result<u8, Failure> {
    let output = output
        .map(Path::to_owned)
        .unwrap_or_else(|| input.with_extension(PRECOMPILED_EXTENSION));
    let sha256 = precompiler(target)?.precompile_file(input, &output)?;
    out.message(&format!(
        "wrote {} for {} (sha256 {sha256}): register it as a `wasm` handler with this sha256",
        output.display(),
        machine(target)
    ));
    Ok(exit::SUCCESS)
}

/// The precompiler for `target`, or for this machine.
fn precompiler(target: Option<&Target>) -> Result<Precompiler, Failure> {
    match target {
        Some(target) => Ok(Precompiler::for_target(target)?),
        None => Precompiler::new().map_err(Failure::internal),
    }
}

/// The machine precompiled code is for, for people.
fn machine(target: Option<&Target>) -> String {
    match target {
        None => "this machine's CPU".to_owned(),
        Some(target) => {
            let mut machine = target.triple().to_owned();
            if target.engine_triple() != target.triple() {
                machine += &format!(" (wasmtime's {} interpreter)", target.engine_triple());
            }
            // The interpreter runs on any CPU of its architecture.
            if !target.engine_triple().starts_with("pulley") {
                if target.features().is_empty() {
                    machine += ", baseline CPU";
                } else {
                    machine += &format!(", CPU with {}", target.features().join(", "));
                }
            }
            machine
        }
    }
}

/// Precompiles the built-in handlers into `dir` (created when missing), each with its
/// registration.
pub fn builtins(dir: &Path, target: Option<&Target>, out: &Output) -> Result<u8, Failure> {
    let write_error = |path: &Path| {
        let output = path.display().to_string();
        move |source| PrecompileError::Write { output, source }
    };
    let dir = std::path::absolute(dir).map_err(write_error(dir))?;
    handrail::durable::create_dir_all(&dir).map_err(write_error(&dir))?;
    let precompiler = precompiler(target)?;
    let mut written = Vec::new();
    for handler in handrail_builtin_handlers::builtin_handlers() {
        let stem = bundled::file_stem(handler.id);
        let artifact = PathBuf::from(format!("{stem}.{PRECOMPILED_EXTENSION}"));
        let precompiled =
            precompiler.precompile(&format!("built-in {}", handler.id), handler.wasm)?;
        let artifact_path = dir.join(&artifact);
        handrail::durable::write_atomic(&artifact_path, &precompiled)
            .map_err(write_error(&artifact_path))?;
        let registration = Registration {
            id: handler.id.to_owned(),
            kind: HandlerKind::Wasm,
            artifact,
            sha256: sha256_hex(&precompiled),
            capabilities: handler.capabilities,
            limits: Limits::default(),
            config: Default::default(),
            source: None,
        };
        let registration_path = dir.join(format!("{stem}.toml"));
        let text = bundled::registration_text(
            &format!(
                "Built-in handler precompiled by `handrail precompile --builtins` (handrail {}) for {}.\nRuns only on a build of the same version, on that kind of machine.",
                env!("CARGO_PKG_VERSION"),
                machine(target)
            ),
            &registration,
        )
        .map_err(write_error(&registration_path))?;
        handrail::durable::write_atomic(&registration_path, text.as_bytes())
            .map_err(write_error(&registration_path))?;
        written.push(handler.id);
    }
    out.message(&format!(
        "precompiled {} for {} into {}: copy its files into the device's <state-dir>/handlers/",
        written.join(", "),
        machine(target),
        dir.display()
    ));
    Ok(exit::SUCCESS)
}
