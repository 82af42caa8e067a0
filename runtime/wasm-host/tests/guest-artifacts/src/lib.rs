//! The WASM host's test guests, built for `wasm32-wasip2` by this crate's build script.

/// The `test/hostile:1` component (`tests/guests`).
pub const HOSTILE: &[u8] = include_bytes!(env!("HANDRAIL_HOSTILE_GUEST_WASM"));
