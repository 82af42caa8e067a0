//! Builds the conformance kit's test handlers.

fn main() {
    let sources = &[
        "../../../sdk/rust",
        "../../../sdk/contract",
        "../../../wit",
        "../../../Cargo.lock",
    ];
    for (variable, manifest) in [
        ("BROKEN_OUT_OF_PHASE", "../broken/out-of-phase/Cargo.toml"),
        (
            "BROKEN_TRAPS_ON_MALFORMED",
            "../broken/traps-on-malformed/Cargo.toml",
        ),
        (
            "BROKEN_IGNORES_CANCEL",
            "../broken/ignores-cancel/Cargo.toml",
        ),
        (
            "BROKEN_LYING_IS_INSTALLED",
            "../broken/lying-is-installed/Cargo.toml",
        ),
        (
            "BROKEN_NON_DETERMINISTIC",
            "../broken/non-deterministic/Cargo.toml",
        ),
        ("BROKEN_BAD_DESCRIBE", "../broken/bad-describe/Cargo.toml"),
        (
            "BROKEN_LEAVES_PROCESS",
            "../broken/leaves-process/Cargo.toml",
        ),
        ("HANDLER_TEMPLATE", "../../../sdk/template/Cargo.toml"),
    ] {
        let wasm = handrail_guest_build::build(manifest, sources);
        println!(
            "cargo:rustc-env=HANDRAIL_{variable}_WASM={}",
            wasm.display()
        );
    }
}
