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
    // The script handler and swupdate:2 run scripts with the shared ADU script crate.
    let script_sources = &[sources.as_slice(), &["../adu-script"]].concat();
    let script = handrail_guest_build::build("../script/Cargo.toml", script_sources);
    println!(
        "cargo:rustc-env=HANDRAIL_SCRIPT_HANDLER_WASM={}",
        script.display()
    );
    let apt = handrail_guest_build::build("../apt/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_APT_HANDLER_WASM={}",
        apt.display()
    );
    // The swupdate handlers' components are thin exports of the swupdate library.
    let swupdate_sources = &[
        script_sources.as_slice(),
        &["../swupdate/src", "../swupdate/Cargo.toml"],
    ]
    .concat();
    let swupdate = handrail_guest_build::build("../swupdate/v2/Cargo.toml", swupdate_sources);
    println!(
        "cargo:rustc-env=HANDRAIL_SWUPDATE_HANDLER_WASM={}",
        swupdate.display()
    );
    let swupdate_v1 = handrail_guest_build::build("../swupdate/v1/Cargo.toml", swupdate_sources);
    println!(
        "cargo:rustc-env=HANDRAIL_SWUPDATE_V1_HANDLER_WASM={}",
        swupdate_v1.display()
    );
}
