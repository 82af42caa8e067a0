//! Components compiled ahead of time: how the host tells them from `.wasm` components,
//! loads them, and (in a build with the `compiler` feature) makes them.
//!
//! A precompiled artifact (`.cwasm`) is wasmtime's serialised component, machine code in
//! an ELF object, as [`Precompiler`] writes it (`handrail precompile`). A registration of
//! kind `wasm` may name one instead of a `.wasm` component; the host recognises it by its
//! header, whatever its file name. It is the only kind of WebAssembly handler a build
//! without the `compiler` feature (no Cranelift) can run.
//!
//! Deserialising runs the machine code in the artifact, so it is trusted exactly as far
//! as its registration: the bytes the host deserialises are the ones whose sha256 it has
//! just checked against the registration, and registrations are the device owner's
//! configuration (root-owned, they already decide what a handler is granted). wasmtime
//! checks the rest: an artifact made by another wasmtime version, another engine
//! configuration or for a CPU without the features it was compiled for is refused, with
//! the advice to precompile it again with this build.
//!
//! Every build configures its engine with the same [`engine_config`](crate::engine_config),
//! so what the full build precompiles loads in the lean build on the same kind of CPU.

use std::fs;
use std::path::Path;

use handrail::host::LoadError;
use handrail::registry::Registration;
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

/// Why a build without the compiler refuses a `.wasm` component.
pub(crate) const NOT_PRECOMPILED: &str = "it is a WebAssembly component that is not precompiled, and this build of handrail runs only precompiled handlers (it has no compiler): precompile it with `handrail precompile` on a full build and register the .cwasm it writes";

/// What an artifact's bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArtifactForm {
    /// A WebAssembly component (or anything else wasmtime will have to compile, and
    /// refuse when it is not a component).
    Component,
    /// A component precompiled by wasmtime.
    Precompiled,
}

/// Tells a precompiled component from one to compile by its header.
pub(crate) fn form(bytes: &[u8]) -> Result<ArtifactForm, String> {
    match Engine::detect_precompiled(bytes) {
        Some(Precompiled::Component) => Ok(ArtifactForm::Precompiled),
        Some(Precompiled::Module) => Err(
            "it is a precompiled core module, not a component; precompile the component with `handrail precompile`".into(),
        ),
        None => Ok(ArtifactForm::Component),
    }
}

/// Loads a precompiled component whose bytes the caller has checked against the
/// registration's sha256.
pub(crate) fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    // SAFETY: the bytes are the registered artifact (sha256 checked by the caller on
    // these very bytes) and registrations are root-owned configuration: the module docs
    // say why that is the trust this machine code gets. wasmtime checks the header
    // (version, configuration, target, CPU features) before using any of it.
    unsafe { Component::deserialize(engine, bytes) }.map_err(|e| {
        format!(
            "it was precompiled for another engine (another wasmtime version, configuration or CPU) or is damaged: {e:#}; re-run `handrail precompile` with this build of handrail"
        )
    })
}

/// Checks, without compiling or running anything, that this build can load the
/// component a `wasm` registration names: its sha256, and for a precompiled artifact that
/// it was made for this engine (wasmtime version, configuration, CPU features). A build
/// without the compiler accepts only precompiled artifacts. `handrail health` runs it
/// over every registration, so a self-update to a binary that cannot load the device's
/// handlers is switched back.
pub fn check_artifact(registration: &Registration) -> Result<(), LoadError> {
    let fail = |reason: String| LoadError {
        id: registration.id.clone(),
        artifact: registration.artifact.display().to_string(),
        reason,
    };
    let bytes = read_verified(&registration.artifact, &registration.sha256).map_err(fail)?;
    match form(&bytes).map_err(fail)? {
        ArtifactForm::Precompiled => {
            let engine = Engine::new(&crate::engine_config())
                .map_err(|e| fail(format!("cannot create the WebAssembly engine: {e:#}")))?;
            deserialize(&engine, &bytes).map(drop).map_err(fail)
        }
        ArtifactForm::Component if cfg!(feature = "compiler") => Ok(()),
        ArtifactForm::Component => Err(fail(NOT_PRECOMPILED.to_owned())),
    }
}

#[cfg(feature = "compiler")]
pub use compile::{PrecompileError, Precompiler, Target};

#[cfg(feature = "compiler")]
mod compile {
    use std::path::Path;

    use wasmtime::Engine;

    use super::{ArtifactForm, form};
    use crate::WasmHostError;

    /// Error precompiling a component; each names the file (or built-in handler) at fault.
    #[derive(Debug, thiserror::Error)]
    pub enum PrecompileError {
        /// The component cannot be read (the cause is the error's source).
        #[error("cannot read {artifact}")]
        Read {
            /// The component.
            artifact: String,
            /// Cause.
            source: std::io::Error,
        },
        /// The input is precompiled already.
        #[error("{artifact} is precompiled already; precompile the .wasm component it came from")]
        AlreadyPrecompiled {
            /// The input.
            artifact: String,
        },
        /// wasmtime could not compile the input.
        #[error("{artifact} is not a valid WebAssembly component: {reason}")]
        NotAComponent {
            /// The input.
            artifact: String,
            /// wasmtime's reason.
            reason: String,
        },
        /// The target to precompile for is one wasmtime cannot compile for.
        #[error("cannot precompile for {triple}: {reason}")]
        Target {
            /// The target triple as given.
            triple: String,
            /// Why.
            reason: String,
        },
        /// The precompiled artifact cannot be written (the cause is the error's source).
        #[error("cannot write {output}")]
        Write {
            /// The output file.
            output: String,
            /// Cause.
            source: std::io::Error,
        },
    }

    /// The machine a precompiled component is for, when it is not this one: a Rust
    /// target triple and the CPU features to compile for beyond the target's baseline.
    ///
    /// This build compiles machine code for `x86_64` and `aarch64`. 32-bit ARM and x86
    /// have no code generator in wasmtime and run its Pulley interpreter, so their
    /// components are precompiled to Pulley bytecode (`pulley32` for
    /// `armv7-unknown-linux-gnueabihf`), which is what the engine of a build for that
    /// target loads.
    ///
    /// ```
    /// use handrail_wasm_host::Target;
    /// let arm64 = Target::parse("aarch64-unknown-linux-gnu", &["lse".into()])?;
    /// assert_eq!(arm64.engine_triple(), "aarch64-unknown-linux-gnu");
    /// let armv7 = Target::parse("armv7-unknown-linux-gnueabihf", &[])?;
    /// assert_eq!(armv7.engine_triple(), "pulley32");
    /// assert!(Target::parse("mips-unknown-linux-gnu", &["lse".into()]).is_err());
    /// # Ok::<(), handrail_wasm_host::PrecompileError>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Target {
        /// The triple as the user gave it.
        triple: String,
        /// The triple wasmtime compiles for.
        engine: String,
        /// Cranelift ISA flags (`has_lse`), each enabled beyond the baseline.
        features: Vec<String>,
    }

    impl Target {
        /// The target `triple` (a Rust target triple such as `aarch64-unknown-linux-gnu`,
        /// or a Pulley one) with the CPU `features` (Cranelift's names, `lse` or
        /// `has_lse`); refused, naming it, when wasmtime cannot run components there
        /// or a feature is asked for where there is only the interpreter.
        pub fn parse(triple: &str, features: &[String]) -> Result<Target, PrecompileError> {
            let bad = |reason: String| PrecompileError::Target {
                triple: triple.to_owned(),
                reason,
            };
            let arch = triple.split('-').next().unwrap_or_default();
            let engine = match arch {
                "x86_64" | "aarch64" => triple.to_owned(),
                "pulley32" | "pulley64" => arch.to_owned(),
                _ if arch.starts_with("armv") || arch.starts_with("thumbv") => "pulley32".into(),
                "arm" | "i586" | "i686" => "pulley32".into(),
                _ => {
                    return Err(bad(
                        "this build precompiles for x86_64 and aarch64 and, for wasmtime's Pulley interpreter, 32-bit ARM and x86 (e.g. aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf)".into(),
                    ));
                }
            };
            if engine.starts_with("pulley") && !features.is_empty() {
                return Err(bad(format!(
                    "{triple} runs the Pulley interpreter ({engine}), which has no CPU features to choose"
                )));
            }
            let features = features
                .iter()
                .map(|f| {
                    let f = f.trim();
                    if f.is_empty() {
                        Err(bad("an empty CPU feature name".into()))
                    } else if f.starts_with("has_") {
                        Ok(f.to_owned())
                    } else {
                        Ok(format!("has_{f}"))
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(Target {
                triple: triple.to_owned(),
                engine,
                features,
            })
        }

        /// The triple as it was given.
        pub fn triple(&self) -> &str {
            &self.triple
        }

        /// The triple wasmtime compiles for (`pulley32` for 32-bit ARM).
        pub fn engine_triple(&self) -> &str {
            &self.engine
        }

        /// The CPU features enabled beyond the target's baseline, as Cranelift names them.
        pub fn features(&self) -> &[String] {
            &self.features
        }
    }

    /// Compiles components ahead of time for the engine every build of this host uses, so
    /// a build without the compiler can run them.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use handrail_wasm_host::Precompiler;
    /// let precompiler = Precompiler::new()?;
    /// let sha256 = precompiler.precompile_file("camera.wasm".as_ref(), "camera.cwasm".as_ref())?;
    /// println!("register camera.cwasm with sha256 = \"{sha256}\"");
    /// # Ok(()) }
    /// ```
    pub struct Precompiler {
        engine: Engine,
    }

    impl Precompiler {
        /// A precompiler for this build's engine configuration and this machine's CPU.
        pub fn new() -> Result<Precompiler, WasmHostError> {
            let engine = Engine::new(&crate::engine_config())
                .map_err(|e| WasmHostError::Engine(format!("{e:#}")))?;
            Ok(Precompiler { engine })
        }

        /// A precompiler for this build's engine configuration on another machine: the
        /// `target`'s architecture at its baseline CPU plus the features it names, so
        /// what it writes loads on every CPU of that architecture that has them (and is
        /// refused at load, as any artifact for another engine, on one that has not).
        pub fn for_target(target: &Target) -> Result<Precompiler, PrecompileError> {
            let mut config = crate::engine_config();
            let bad = |reason: String| PrecompileError::Target {
                triple: target.triple.clone(),
                reason,
            };
            config
                .target(&target.engine)
                .map_err(|e| bad(format!("{e:#}")))?;
            for feature in &target.features {
                // SAFETY: an ISA flag only changes which instructions the compiled code
                // may use; wasmtime records the flags in the artifact and refuses it at
                // load on a CPU that lacks one, so the code never runs where it cannot.
                unsafe {
                    config.cranelift_flag_enable(feature);
                }
            }
            let engine = Engine::new(&config).map_err(|e| {
                let hint = if target.features.is_empty() {
                    ""
                } else {
                    "; --cpu-features takes Cranelift's names for the architecture (aarch64: lse, pauth, fp16, bti; x86_64: sse41, avx2, bmi2, …)"
                };
                bad(format!("{e:#}{hint}"))
            })?;
            Ok(Precompiler { engine })
        }

        /// The precompiled form of the component `bytes`; `artifact` names it in errors.
        pub fn precompile(&self, artifact: &str, bytes: &[u8]) -> Result<Vec<u8>, PrecompileError> {
            let not_a_component = |reason: String| PrecompileError::NotAComponent {
                artifact: artifact.to_owned(),
                reason,
            };
            match form(bytes).map_err(not_a_component)? {
                ArtifactForm::Precompiled => Err(PrecompileError::AlreadyPrecompiled {
                    artifact: artifact.to_owned(),
                }),
                ArtifactForm::Component => self
                    .engine
                    .precompile_component(bytes)
                    .map_err(|e| not_a_component(format!("{e:#}"))),
            }
        }

        /// Precompiles the component in `input` into `output` (written atomically:
        /// temporary file, fsync, rename) and returns the output's sha256, for its
        /// registration.
        pub fn precompile_file(
            &self,
            input: &Path,
            output: &Path,
        ) -> Result<String, PrecompileError> {
            let bytes = std::fs::read(input).map_err(|source| PrecompileError::Read {
                artifact: input.display().to_string(),
                source,
            })?;
            let precompiled = self.precompile(&input.display().to_string(), &bytes)?;
            // Absolute, so a bare file name has a folder to put the temporary file in.
            std::path::absolute(output)
                .and_then(|path| handrail::durable::write_atomic(&path, &precompiled))
                .map_err(|source| PrecompileError::Write {
                    output: output.display().to_string(),
                    source,
                })?;
            Ok(handrail::registry::sha256_hex(&precompiled))
        }
    }
}

/// The bytes of `artifact`, checked against the `sha256` the registry verified: what the
/// host loads is exactly what was verified, even if the file changed since.
pub(crate) fn read_verified(artifact: &Path, sha256: &str) -> Result<Vec<u8>, String> {
    let bytes = fs::read(artifact).map_err(|e| format!("cannot read the artifact: {e}"))?;
    let actual = handrail::registry::sha256_hex(&bytes);
    if actual != sha256 {
        return Err(format!(
            "the artifact's sha256 is {actual}, not the registered {sha256}; it changed after it was verified"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_of_a_component_says_what_to_do() {
        assert!(NOT_PRECOMPILED.contains("runs only precompiled handlers"));
        assert!(NOT_PRECOMPILED.contains("`handrail precompile`"));
    }

    #[test]
    fn forms_are_told_apart_by_their_header() {
        assert_eq!(
            form(handrail_test_guest_artifacts::HOSTILE),
            Ok(ArtifactForm::Component)
        );
        assert_eq!(form(b"not wasm at all"), Ok(ArtifactForm::Component));
    }

    #[test]
    fn a_file_that_only_looks_precompiled_is_refused_with_the_advice() {
        let engine = Engine::new(&crate::engine_config()).unwrap();
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        let err = deserialize(&engine, &elf).err().unwrap();
        assert!(err.contains("re-run `handrail precompile`"), "{err}");
    }
}
