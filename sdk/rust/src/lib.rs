//! Write a Handrail step handler in Rust.
//!
//! A step handler is a WebAssembly component of the `handrail:handler/step-handler` world
//! (`wit/handler.wit`). This crate hides the bindings behind one trait, [`Handler`], and
//! one macro, [`export!`]: implement the actions your handler supports, return a
//! [`ResultFile`] from each, and the SDK writes it to the step's result file for you.
//! Actions you do not implement answer with the contract's "unsupported" codes
//! ([`Action::unsupported_code`]).
//!
//! Build the crate as a `cdylib` for `wasm32-wasip2`
//! (`cargo build --release --target wasm32-wasip2`); the `.wasm` file is the component
//! you register with the runtime.
//!
//! ```no_run
//! use handrail_sdk::{Action, Handler, ResultFile, StepContext, StepContextExt, codes, host};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     const ID: &'static str = "contoso/hello:1";
//!     const ACTIONS: &'static [Action] = &[Action::Install];
//!
//!     fn install(step: &StepContext) -> ResultFile {
//!         let greeting = step.property_str("greeting").unwrap_or("hello");
//!         host::info(&format!("{greeting} from step {}", step.step_index));
//!         ResultFile::new(codes::INSTALL_SUCCESS, greeting)
//!     }
//! }
//!
//! handrail_sdk::export!(Hello);
//! ```
//!
//! Inside the sandbox the handler sees its step's payload files read-only under
//! `/payload` (see [`StepContext::files`]) and its work folder read-write under `/work`;
//! anything more, such as running a program, goes through [`host::run`] and needs a
//! capability granted in the handler's registration.

mod context;
mod handler;
pub mod host;
pub mod native;

#[doc(hidden)]
pub mod bindings {
    //! Generated bindings of the `handrail:handler/step-handler` world.
    wit_bindgen::generate!({
        path: "../../wit",
        world: "step-handler",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "::handrail_sdk::bindings",
    });
}

pub use context::{PropertyError, StepContextExt};
pub use handler::{Handler, describe, extended, unsupported};
pub use handrail_contract::{
    Action, CONTRACT_VERSION, Component, ExtendedCode, PayloadFile, ResultFile, StepContext,
    UpdateId, codes, json,
};

/// Exports a [`Handler`] as the component's `handler` interface.
///
/// Use it once, at the top level of the handler crate. It expands to nothing when the
/// crate is compiled for anything but WebAssembly, so a handler crate's unit tests run
/// on the build machine.
///
/// ```no_run
/// # use handrail_sdk::{Action, Handler};
/// struct Noop;
/// impl Handler for Noop {
///     const ID: &'static str = "contoso/noop:1";
///     const ACTIONS: &'static [Action] = &[];
/// }
/// handrail_sdk::export!(Noop);
/// ```
#[macro_export]
macro_rules! export {
    ($handler:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct HandrailExport;

            impl $crate::bindings::exports::handrail::handler::handler::Guest for HandrailExport {
                fn describe() -> $crate::bindings::handrail::handler::types::Description {
                    $crate::__private::describe_wit::<$handler>()
                }
                fn is_installed(ctx: $crate::bindings::handrail::handler::types::StepContext) {
                    $crate::__private::dispatch::<$handler>($crate::Action::IsInstalled, ctx)
                }
                fn download(ctx: $crate::bindings::handrail::handler::types::StepContext) {
                    $crate::__private::dispatch::<$handler>($crate::Action::Download, ctx)
                }
                fn backup(ctx: $crate::bindings::handrail::handler::types::StepContext) {
                    $crate::__private::dispatch::<$handler>($crate::Action::Backup, ctx)
                }
                fn install(ctx: $crate::bindings::handrail::handler::types::StepContext) {
                    $crate::__private::dispatch::<$handler>($crate::Action::Install, ctx)
                }
                fn apply(ctx: $crate::bindings::handrail::handler::types::StepContext) {
                    $crate::__private::dispatch::<$handler>($crate::Action::Apply, ctx)
                }
                fn restore(ctx: $crate::bindings::handrail::handler::types::StepContext) {
                    $crate::__private::dispatch::<$handler>($crate::Action::Restore, ctx)
                }
                fn cancel(ctx: $crate::bindings::handrail::handler::types::StepContext) {
                    $crate::__private::dispatch::<$handler>($crate::Action::Cancel, ctx)
                }
            }

    $crate::bindings::export_world!(HandrailExport with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    //! What [`export!`](crate::export) expands to; not a stable API.
    pub use crate::handler::{describe_wit, dispatch};
}
