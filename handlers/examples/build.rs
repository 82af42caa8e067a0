//! Builds the example plugins from their sources in `handlers/`.

fn main() {
    let sources = &[
        "../../sdk/rust",
        "../../sdk/contract",
        "../../wit",
        "../../Cargo.lock",
    ];
    for (variable, manifest) in [
        (
            "HANDRAIL_VIRTUAL_CAMERA_WASM",
            "../virtual-camera/Cargo.toml",
        ),
        (
            "HANDRAIL_VIRTUAL_CAMERAS_ENUMERATOR_WASM",
            "../virtual-cameras-enumerator/Cargo.toml",
        ),
        (
            "HANDRAIL_CONTOSO_COMPONENTS_ENUMERATOR_WASM",
            "../contoso-components-enumerator/Cargo.toml",
        ),
    ] {
        let wasm = handrail_guest_build::build(manifest, sources);
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}
