//! Builds the WASM host's test guests.

fn main() {
    let sources = &[
        "../../../../sdk/rust",
        "../../../../sdk/contract",
        "../../../../wit",
    ];
    let hostile = handrail_guest_build::build("../guests/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_HOSTILE_GUEST_WASM={}",
        hostile.display()
    );
}
