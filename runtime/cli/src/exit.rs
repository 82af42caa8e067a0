//! How `handrail` ends: its exit codes, and the [`Failure`] that decides one.
//!
//! Every error a command meets becomes a `Failure` through its type — bad input, a busy
//! state directory, an internal fault — where it is met, so no guess is made from the
//! error that reaches `main`: an I/O error reading the manifest the user named is bad
//! input, one writing the state directory is internal.

use handrail::components::EnumeratorError;
use handrail::config::ConfigError;
use handrail::registry::RegistryError;
use handrail::state::StateError;
use handrail::{AdmitError, RuntimeError};

/// A deployment (or check) that succeeded.
pub const SUCCESS: u8 = 0;
/// A failed deployment.
pub const FAILED: u8 = 1;
/// Bad input: usage, an invalid manifest, configuration or registration, a refused
/// payload, a file the user named that cannot be read.
pub const BAD_INPUT: u8 = 2;
/// A reboot is required.
pub const REBOOT: u8 = 3;
/// An agent restart is required.
pub const RESTART: u8 = 4;
/// The deployment was cancelled.
pub const CANCELLED: u8 = 5;
/// Another process owns the state directory, or a deployment is pending.
pub const BUSY: u8 = 6;
/// The deployment ran past its time limit.
pub const TIMED_OUT: u8 = 7;
/// The handler does not conform (`handrail conform`): a failure, like a failed
/// deployment's.
pub const NONCONFORMING: u8 = FAILED;
/// An internal fault: the state could not be read or written, a host could not start.
pub const INTERNAL: u8 = 10;

/// An error and the exit code its kind calls for.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// Bad input: the user gave something that cannot be used.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: BAD_INPUT,
            error: error.into(),
        }
    }

    /// Busy: another process holds the state directory, or the deployment is not done.
    pub fn busy(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: BUSY,
            error: error.into(),
        }
    }

    /// Cancelled (by Ctrl-C or SIGTERM) before it finished.
    pub fn cancelled(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: CANCELLED,
            error: error.into(),
        }
    }

    /// An internal fault.
    pub fn internal(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: INTERNAL,
            error: error.into(),
        }
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The error, to show.
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Failure {
        let code = match &e {
            RuntimeError::Admit(_)
            | RuntimeError::Registry(_)
            | RuntimeError::Trust(_)
            | RuntimeError::GrantsForUnknownHandler { .. } => BAD_INPUT,
            RuntimeError::Busy { .. } | RuntimeError::State(StateError::Locked { .. }) => BUSY,
            _ => INTERNAL,
        };
        Failure {
            code,
            error: e.into(),
        }
    }
}

/// Errors that are always about what the user gave.
macro_rules! bad_input {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Failure {
                Failure::bad_input(e)
            }
        }
    )*};
}

bad_input!(
    AdmitError,
    ConfigError,
    RegistryError,
    EnumeratorError,
    handrail_conformance::ProfileError,
);

#[cfg(feature = "compiler")]
bad_input!(handrail_wasm_host::PrecompileError);

impl From<handrail_conformance::KitError> for Failure {
    fn from(e: handrail_conformance::KitError) -> Failure {
        match e {
            handrail_conformance::KitError::Setup(_) => Failure::internal(e),
            other => Failure::bad_input(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_what_their_place_says() {
        let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Failure::bad_input(missing()).code(), BAD_INPUT);
        assert_eq!(Failure::internal(missing()).code(), INTERNAL);
        // The state directory failing is internal, not bad input.
        let state = RuntimeError::State(StateError::Io {
            path: "/var/lib/handrail/journal.log".into(),
            source: missing(),
        });
        assert_eq!(Failure::from(state).code(), INTERNAL);
    }

    #[test]
    fn a_busy_state_directory_is_busy() {
        let busy = RuntimeError::Busy {
            deployment: "d1".into(),
            status: "suspended".into(),
        };
        assert_eq!(Failure::from(busy).code(), BUSY);
    }
}
