//! Builds the built-in handler components from their sources in `handlers/`.

fn main() {
    // The guest's dependencies: the SDK, the contract, the WIT world and the lock file
    // that pins the rest.
    let sources = &[
        "../../sdk/rust",
        "../../sdk/contract",
        "../../wit",
        "../../Cargo.lock",
    ];
    let script = handrail_guest_build::build("../script/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_SCRIPT_HANDLER_WASM={}",
        script.display()
    );
    let apt = handrail_guest_build::build("../apt/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_APT_HANDLER_WASM={}",
        apt.display()
    );
    let swupdate = handrail_guest_build::build("../swupdate/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_SWUPDATE_HANDLER_WASM={}",
        swupdate.display()
    );
}
