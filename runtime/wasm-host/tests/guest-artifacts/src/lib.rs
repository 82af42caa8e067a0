//! The WASM host's test guests, built for `wasm32-wasip2` by this crate's build script.

/// The `test/hostile:1` component (`tests/guests`): misbehaves on request.
pub const HOSTILE: &[u8] = include_bytes!(env!("HANDRAIL_HOSTILE_GUEST_WASM"));

/// The `test/future:2` component (`tests/guest-future-contract`): built for handler
/// contract 2.0.
pub const FUTURE_CONTRACT: &[u8] = include_bytes!(env!("HANDRAIL_FUTURE_CONTRACT_GUEST_WASM"));
