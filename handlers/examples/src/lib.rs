//! The example plugins, as WebAssembly components built from `handlers/` by this crate's
//! build script. They are examples, not built-in handlers: a device registers them
//! itself (see each crate's documentation), and the end-to-end tests do.
//!
//! ```
//! assert!(handrail_example_handlers::VIRTUAL_CAMERA.starts_with(b"\0asm"));
//! assert!(handrail_example_handlers::VIRTUAL_CAMERAS_ENUMERATOR.starts_with(b"\0asm"));
//! assert!(handrail_example_handlers::CONTOSO_COMPONENTS_ENUMERATOR.starts_with(b"\0asm"));
//! ```

/// The `contoso/virtual-camera:1` step handler (`handlers/virtual-camera`).
pub const VIRTUAL_CAMERA: &[u8] = include_bytes!(env!("HANDRAIL_VIRTUAL_CAMERA_WASM"));

/// The virtual-cameras component enumerator (`handlers/virtual-cameras-enumerator`).
pub const VIRTUAL_CAMERAS_ENUMERATOR: &[u8] =
    include_bytes!(env!("HANDRAIL_VIRTUAL_CAMERAS_ENUMERATOR_WASM"));

/// The component enumerator that reads an ADU-style components inventory, as ADU's
/// contoso enumerator does (`handlers/contoso-components-enumerator`).
pub const CONTOSO_COMPONENTS_ENUMERATOR: &[u8] =
    include_bytes!(env!("HANDRAIL_CONTOSO_COMPONENTS_ENUMERATOR_WASM"));
