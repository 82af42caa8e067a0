//! The worker process of the native host: runs one call of a native handler, confined.
//!
//! Started by `handrail_native_host::NativeHost`, never by people: it reads its request
//! on stdin and reports on stdout (see the crate documentation).

fn main() {
    handrail_native_host::worker::main()
}
