//! Builds the no-op guest handler the benchmark loads and calls.

fn main() {
    let sources = &[
        "../../sdk/rust",
        "../../sdk/contract",
        "../../wit",
        "../../Cargo.lock",
    ];
    let wasm = handrail_guest_build::build("guest/Cargo.toml", sources);
    println!(
        "cargo:rustc-env=HANDRAIL_BENCH_NOOP_WASM={}",
        wasm.display()
    );
}
