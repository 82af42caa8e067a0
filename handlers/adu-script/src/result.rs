//! The result file a script writes: `{"resultCode": n, "extendedResultCode": n,
//! "resultDetails": "…"}`, read as ADU reads it (a missing `extendedResultCode` is 0).
//!
//! ```
//! use handrail_adu_script::{ResultProblem, parse_result};
//! let r = parse_result(Some(br#"{"resultCode":600,"resultDetails":"done"}"#)).unwrap();
//! assert_eq!((r.result_code, r.extended_result_code, r.result_details.as_str()), (600, 0, "done"));
//! assert!(matches!(parse_result(None), Err(ResultProblem::Missing)));
//! assert!(matches!(parse_result(Some(b"[1]")), Err(ResultProblem::NotAnObject)));
//! ```

use handrail_sdk::ResultFile;

/// Why a script's result file cannot be taken as its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultProblem {
    /// The script wrote no result file.
    Missing,
    /// The file is not a JSON object.
    NotAnObject,
    /// The object is not a result (a field of the wrong type, no `resultCode`).
    NotAResult(String),
}

impl std::fmt::Display for ResultProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultProblem::Missing => {
                f.write_str("the script wrote no result file (--result-file)")
            }
            ResultProblem::NotAnObject => {
                f.write_str("the script's result file is not a JSON object")
            }
            ResultProblem::NotAResult(e) => write!(
                f,
                "the script's result file is not a {{resultCode, extendedResultCode, resultDetails}} object: {e}"
            ),
        }
    }
}

impl std::error::Error for ResultProblem {}

/// The result a script wrote (`None` when it wrote no file), as written.
pub fn parse_result(bytes: Option<&[u8]>) -> Result<ResultFile, ResultProblem> {
    let bytes = bytes.ok_or(ResultProblem::Missing)?;
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v @ serde_json::Value::Object(_)) => serde_json::from_value::<ResultFile>(v)
            .map_err(|e| ResultProblem::NotAResult(e.to_string())),
        Ok(_) => Err(ResultProblem::NotAnObject),
        Err(e) => Err(ResultProblem::NotAResult(e.to_string())),
    }
}
