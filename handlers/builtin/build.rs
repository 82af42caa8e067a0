//! Builds the built-in handler components from their sources in `handlers/`.

fn main() {
    let sources = &["../../sdk/rust", "../../sdk/contract", "../../wit"];
    let script = handrail_guest_build::build("../script/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_SCRIPT_HANDLER_WASM={}",
        script.display()
    );
}
