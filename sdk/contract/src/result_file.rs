//! The result file: how every handler reports the outcome of an action.
//!
//! A handler writes `{"resultCode": n, "extendedResultCode": n, "resultDetails": "…"}` to
//! the result-file path of its step context. The runtime reads it back with
//! [`ResultFile::interpret`], which never fails: a missing, oversized, non-UTF-8,
//! or malformed file becomes a failed result carrying one of the
//! [`ext`](crate::codes::ext) codes and details that say what was wrong.

use serde::{Deserialize, Serialize};

use crate::codes::{self, Action, ExtendedCode, ext};

/// Largest result file the runtime reads (64 KiB); anything larger is a failure.
pub const MAX_RESULT_FILE_BYTES: usize = 64 * 1024;

/// The outcome of one action.
///
/// ```
/// use handrail_contract::{ResultFile, Action, codes};
/// let r = ResultFile::interpret(Action::Install, Some(br#"{"resultCode":600,"extendedResultCode":0,"resultDetails":""}"#));
/// assert_eq!(r.result_code, codes::INSTALL_SUCCESS);
/// let bad = ResultFile::interpret(Action::Install, None);
/// assert_eq!(bad.result_code, codes::FAILURE);
/// assert_eq!(bad.extended_result_code, codes::ext::RESULT_FILE_MISSING.value());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultFile {
    /// ADU result code: > 0 success, ≤ 0 failure.
    pub result_code: i32,
    /// Extended result code (see [`ExtendedCode`]).
    #[serde(default)]
    pub extended_result_code: i32,
    /// Free text for people.
    #[serde(default)]
    pub result_details: String,
}

impl ResultFile {
    /// A result with the given code and no extended code.
    pub fn new(result_code: i32, details: impl Into<String>) -> Self {
        ResultFile {
            result_code,
            extended_result_code: 0,
            result_details: details.into(),
        }
    }

    /// A failure (`resultCode` 0) with an extended code and details.
    pub fn failure(erc: ExtendedCode, details: impl Into<String>) -> Self {
        ResultFile {
            result_code: codes::FAILURE,
            extended_result_code: erc.value(),
            result_details: details.into(),
        }
    }

    /// True when the result code is a success (> 0).
    pub fn is_success(&self) -> bool {
        codes::is_success(self.result_code)
    }

    /// The extended code, typed.
    pub fn extended(&self) -> ExtendedCode {
        ExtendedCode::from_raw(self.extended_result_code)
    }

    /// Serialises the result as the handler writes it.
    pub fn to_json(&self) -> String {
        // Serialising three plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the bytes of a result file written for `action`, enforcing the contract.
    ///
    /// `None` means the file does not exist. Every malformation becomes a failure with
    /// its own extended code; a failure reported with extended code 0 gets
    /// [`ext::FAILURE_WITHOUT_CODE`] so no failure is ever anonymous.
    pub fn interpret(action: Action, bytes: Option<&[u8]>) -> ResultFile {
        let Some(bytes) = bytes else {
            return ResultFile::failure(
                ext::RESULT_FILE_MISSING,
                format!("the handler wrote no result file for `{action}`"),
            );
        };
        if bytes.len() > MAX_RESULT_FILE_BYTES {
            return ResultFile::failure(
                ext::RESULT_FILE_TOO_LARGE,
                // Readers stop one byte past the limit, so the length is not the file's.
                format!(
                    "the result file for `{action}` is larger than the limit of {MAX_RESULT_FILE_BYTES} bytes"
                ),
            );
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return ResultFile::failure(
                ext::RESULT_FILE_NOT_UTF8,
                format!("the result file for `{action}` is not valid UTF-8"),
            );
        };
        // Parse as a value first: serde would also accept a JSON array for a struct.
        let parsed = serde_json::from_str::<serde_json::Value>(text).and_then(|v| {
            if v.is_object() {
                serde_json::from_value::<ResultFile>(v)
            } else {
                Err(serde::de::Error::custom("the top level is not an object"))
            }
        });
        let parsed = match parsed {
            Ok(r) => r,
            Err(e) => {
                return ResultFile::failure(
                    ext::RESULT_FILE_MALFORMED,
                    format!(
                        "the result file for `{action}` is not a {{resultCode, extendedResultCode, resultDetails}} object: {e}"
                    ),
                );
            }
        };
        parsed.checked()
    }

    /// Applies the contract to a result the handler returned directly: a failure without
    /// an extended code gets one. A success code of another action's band stays a
    /// success, as ADU's agent counts every code above 0 (see [`Action::accepts`] for
    /// telling it apart; the conformance kit reports it).
    pub fn checked(self) -> ResultFile {
        if !self.is_success() && self.extended_result_code == 0 {
            return ResultFile {
                extended_result_code: ext::FAILURE_WITHOUT_CODE.value(),
                ..self
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(action: Action, s: &str) -> ResultFile {
        ResultFile::interpret(action, Some(s.as_bytes()))
    }

    #[test]
    fn well_formed_results_pass_through() {
        let r = interp(
            Action::Apply,
            r#"{"resultCode":706,"extendedResultCode":0,"resultDetails":"reboot later"}"#,
        );
        assert_eq!(r.result_code, 706);
        assert_eq!(r.result_details, "reboot later");
        let r = interp(Action::IsInstalled, r#"{"resultCode":900}"#);
        assert_eq!(r.result_code, 900);
    }

    #[test]
    fn each_malformation_has_its_own_code() {
        let cases: [(Option<&[u8]>, ExtendedCode); 5] = [
            (None, ext::RESULT_FILE_MISSING),
            (
                Some(&[b' '; MAX_RESULT_FILE_BYTES + 1]),
                ext::RESULT_FILE_TOO_LARGE,
            ),
            (Some(&[0xff, 0xfe, b'{']), ext::RESULT_FILE_NOT_UTF8),
            (
                Some(b"{\"resultCode\": \"600\"}"),
                ext::RESULT_FILE_MALFORMED,
            ),
            (Some(b"[600]"), ext::RESULT_FILE_MALFORMED),
        ];
        for (bytes, want) in cases {
            let r = ResultFile::interpret(Action::Install, bytes);
            assert_eq!(r.result_code, codes::FAILURE);
            assert_eq!(r.extended(), want, "{:?}", r.result_details);
            assert!(!r.result_details.is_empty());
        }
    }

    #[test]
    fn a_success_code_of_another_action_stays_a_success() {
        // ADU's agent counts any code above 0 as success; `accepts` tells it apart.
        let r = interp(Action::Install, r#"{"resultCode":700}"#);
        assert_eq!(r.result_code, 700);
        assert!(r.is_success());
        assert!(!Action::Install.accepts(700));
    }

    #[test]
    fn anonymous_failure_gets_a_code_but_keeps_details() {
        let r = interp(
            Action::Install,
            r#"{"resultCode":0,"resultDetails":"disk full"}"#,
        );
        assert_eq!(r.extended(), ext::FAILURE_WITHOUT_CODE);
        assert_eq!(r.result_details, "disk full");
        let r = interp(
            Action::Install,
            r#"{"resultCode":0,"extendedResultCode":805306369}"#,
        );
        assert_eq!(r.extended_result_code, 805306369);
    }

    #[test]
    fn round_trip() {
        let r = ResultFile::new(codes::INSTALL_SUCCESS, "ok");
        assert_eq!(interp(Action::Install, &r.to_json()), r);
    }
}
