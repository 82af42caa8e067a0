//! Naming JSON values in error messages, one way for the runtime and every handler and
//! plugin that checks JSON it was given ("expected a string, found a number").

use serde_json::Value;

/// How the type of `value` is named in messages: `null`, `a boolean`, `a number`,
/// `a string`, `an array` or `an object`.
///
/// ```
/// assert_eq!(handrail_contract::json::kind(&serde_json::json!([1])), "an array");
/// ```
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
