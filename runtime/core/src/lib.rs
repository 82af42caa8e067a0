//! Handrail core: runs the steps of an over-the-air update through pluggable handlers.
//!
//! Data flows one way: a [`manifest`] is parsed and validated, admitted into a [`plan`]
//! (reference steps expanded into child workflows), executed step by step by the
//! [`engine`] through [`host`]s (WebAssembly, native, in-process), with every transition
//! written to the [`journal`] first, and reported. [`state`] holds what outlives a
//! deployment: the lock, installed-criteria records and history.

pub mod cancel;
pub mod host;
pub mod manifest;
pub mod registry;

pub use cancel::CancelToken;
pub use handrail_contract as contract;
