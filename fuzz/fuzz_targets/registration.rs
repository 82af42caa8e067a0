//! Handler registration files (TOML) on arbitrary text.
#![no_main]

use std::path::Path;

use handrail::registry::Registration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Registration::parse(Path::new("/etc/handrail/handlers/fuzz.toml"), text) {
        let _ = e.to_string();
    }
});
