//! Handrail core: runs the steps of an over-the-air update through pluggable handlers.
//!
//! Data flows one way: a [`manifest`] is parsed and validated, [`admit`]ted into a
//! [`plan`] (payloads verified and staged, reference steps expanded into child
//! workflows), executed step by step by the [`engine`] through [`host`]s (WebAssembly,
//! native, in-process), with every transition written to the [`journal`] first, and
//! [`report`]ed. [`state`] holds what outlives a deployment: the lock, installed-criteria
//! records and history. [`Runtime`] is the embedding API over all of it.

pub mod admit;
pub mod bundle;
pub mod bundled;
pub mod cancel;
pub mod clock;
pub mod components;
pub mod config;
pub mod confinement;
pub mod download;
pub mod durable;
pub mod engine;
pub mod hooks;
pub mod host;
pub mod in_process;
pub mod journal;
pub mod limits;
pub mod manifest;
pub mod plan;
pub mod preflight;
pub mod registry;
pub mod report;
mod runtime;
pub mod state;
pub mod trust;

pub use admit::{AdmitError, AdmitOptions};
pub use cancel::CancelToken;
pub use engine::{EngineError, Event, Phase};
pub use handrail_contract as contract;
pub use report::{DeploymentStatus, Report, StepOutcome};
pub use runtime::{Deployment, Runtime, RuntimeBuilder, RuntimeError};
