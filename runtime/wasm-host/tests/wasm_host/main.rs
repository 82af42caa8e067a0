//! The WASM host with real wasmtime, real components and real files.

mod cache;
mod pipeline;
mod precompiled;
mod run_confined;
mod sandbox;
mod script;
mod support;
