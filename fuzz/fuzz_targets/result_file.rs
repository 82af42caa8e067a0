//! The result-file reader on arbitrary bytes, for every action: it always answers with a
//! result, and a failure never carries extended code 0.
#![no_main]

use handrail_contract::{Action, ResultFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for action in Action::ALL {
        let result = ResultFile::interpret(action, Some(data));
        assert!(
            result.is_success() || result.extended_result_code != 0,
            "an anonymous failure: {result:?}"
        );
        let _ = result.to_json();
    }
});
