//! Builds the WASM host's test guests.

fn main() {
    let sources = &[
        "../../../../sdk/rust",
        "../../../../sdk/contract",
        "../../../../wit",
        "../../../../Cargo.lock",
    ];
    for (variable, manifest) in [
        ("HANDRAIL_HOSTILE_GUEST_WASM", "../guests/Cargo.toml"),
        (
            "HANDRAIL_FUTURE_CONTRACT_GUEST_WASM",
            "../guest-future-contract/Cargo.toml",
        ),
    ] {
        let wasm = handrail_guest_build::build(manifest, sources);
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}
