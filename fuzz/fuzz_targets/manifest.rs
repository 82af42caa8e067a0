//! The manifest parser and validator on arbitrary bytes: a plain manifest or an envelope,
//! validated as a parent and as a child. Nothing may panic, hang or allocate without bound.
#![no_main]

use handrail::manifest::{self, ValidationContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = manifest::parse_document(data) else {
        return;
    };
    let known = |id: &str| id.starts_with("microsoft/");
    for level in [0, 1] {
        let errors = document.manifest().validate(&ValidationContext {
            is_handler_known: &known,
            level,
        });
        if let Err(errors) = errors {
            let _ = errors.to_string();
        }
    }
    if let Some(envelope) = document.envelope() {
        let reparsed = manifest::parse_manifest(envelope.manifest_json.as_bytes());
        assert_eq!(reparsed.ok().as_ref(), Some(&envelope.manifest));
    }
});
