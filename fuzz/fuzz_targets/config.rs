//! The runtime configuration (TOML) on arbitrary text.
#![no_main]

use std::path::Path;

use handrail::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(Path::new("/etc/handrail/config.toml"), text) {
        let _ = e.to_string();
    }
});
