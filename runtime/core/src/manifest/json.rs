//! Reading untrusted JSON: size and nesting limits, syntax errors with line and column, and
//! a [`Reader`] that takes typed values out of a [`serde_json::Value`] while recording a
//! path-named problem for every field that is missing or of the wrong type.
//!
//! Walking a `Value` by hand, rather than deriving `Deserialize`, is what lets every
//! problem name its field and lets parsing go on after the first one.

use serde_json::{Map, Value};

use super::error::{self, ManifestError, ManifestErrors, Problem};
use super::{MAX_NESTING_DEPTH, MAX_STRING_BYTES};

/// Parses `bytes` as JSON after checking its size against `limit` and its nesting depth.
pub(crate) fn read(bytes: &[u8], limit: usize) -> Result<Value, ManifestError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.len() > limit {
        return Err(ManifestError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    if let Some(offset) = too_deep_at(bytes, MAX_NESTING_DEPTH) {
        let (line, column) = line_column(bytes, offset);
        return Err(ManifestError::TooDeep {
            line,
            column,
            limit: MAX_NESTING_DEPTH,
        });
    }
    serde_json::from_slice::<Checked>(bytes)
        .map(|c| c.0)
        .map_err(|e| {
            let text = e.to_string();
            // serde_json appends " at line L column C"; the numbers are kept as fields.
            let message = match text.rfind(" at line ") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            ManifestError::Syntax {
                line: e.line(),
                column: e.column(),
                message,
            }
        })
}

/// A JSON value read with one rule more than serde_json's own: an object may not name a
/// member twice (serde_json keeps the last, so two readers of one manifest could see two
/// different updates). The error has the duplicate's line and column.
struct Checked(Value);

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor).map(Checked)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Checked(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "member `{key}` appears twice in one object"
                )));
            }
            let Checked(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Offset of the first `[` or `{` (outside strings) opening a level deeper than `limit`.
///
/// Scanning before parsing bounds the work and the stack a hostile document can cost, and
/// gives a clear error instead of serde_json's own recursion limit.
fn too_deep_at(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// 1-based line and byte column of `offset`.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

/// Reports every string (and object key) longer than [`MAX_STRING_BYTES`] under `value`.
/// Root members named in `exempt` are skipped (an envelope's embedded manifest and
/// signature are bounded by the document size instead).
pub(crate) fn check_string_lengths(value: &Value, exempt: &[&str], errors: &mut ManifestErrors) {
    fn walk(value: &Value, path: &str, exempt: &[&str], errors: &mut ManifestErrors) {
        match value {
            Value::String(s) if s.len() > MAX_STRING_BYTES => errors.report(
                display_path(path),
                Problem::StringTooLong {
                    len: s.len(),
                    limit: MAX_STRING_BYTES,
                },
            ),
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &error::item(path, i), &[], errors);
                }
            }
            Value::Object(members) => {
                for (k, v) in members {
                    if exempt.contains(&k.as_str()) {
                        continue;
                    }
                    if k.len() > MAX_STRING_BYTES {
                        let shown: String = k.chars().take(32).collect();
                        errors.report(
                            format!("{} (the key starting {shown:?})", display_path(path)),
                            Problem::StringTooLong {
                                len: k.len(),
                                limit: MAX_STRING_BYTES,
                            },
                        );
                        continue;
                    }
                    walk(v, &error::child(path, k), &[], errors);
                }
            }
            _ => {}
        }
    }
    walk(value, "", exempt, errors);
}

/// `path`, or the root's name when it is empty.
pub(crate) fn display_path(path: &str) -> &str {
    if path.is_empty() {
        error::ROOT_PATH
    } else {
        path
    }
}

/// Takes typed values out of JSON, recording a problem for every field that does not fit.
///
/// Each accessor returns `None` when the value is unusable (and, unless the field was
/// simply absent and optional, records why), so parsing can continue past a bad field.
#[derive(Default)]
pub(crate) struct Reader {
    pub errors: ManifestErrors,
}

impl Reader {
    /// Records a problem.
    pub fn report(&mut self, path: impl Into<String>, problem: Problem) {
        self.errors.report(path, problem);
    }

    fn wrong_type(&mut self, path: &str, expected: &'static str, found: &Value) {
        self.report(
            display_path(path),
            Problem::WrongType {
                expected,
                found: error::kind(found),
            },
        );
    }

    /// `value` as an object.
    pub fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(m) => Some(m),
            other => {
                self.wrong_type(path, "an object", other);
                None
            }
        }
    }

    /// `value` as an array.
    pub fn array<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(a) => Some(a),
            other => {
                self.wrong_type(path, "an array", other);
                None
            }
        }
    }

    /// `value` as a string.
    pub fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(path, "a string", other);
                None
            }
        }
    }

    /// `value` as a boolean.
    pub fn boolean(&mut self, value: &Value, path: &str) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(path, "a boolean (true or false)", other);
                None
            }
        }
    }

    /// `value` as a non-negative integer.
    pub fn unsigned(&mut self, value: &Value, path: &str) -> Option<u64> {
        match value.as_u64() {
            Some(n) => Some(n),
            None => {
                self.wrong_type(path, "a non-negative integer", value);
                None
            }
        }
    }

    /// Member `key` of `object`, recording `missing` when it is absent or `null`.
    pub fn required<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        key: &str,
        parent: &str,
    ) -> Option<&'v Value> {
        match object.get(key) {
            None | Some(Value::Null) => {
                self.report(error::child(parent, key), Problem::Missing);
                None
            }
            Some(v) => Some(v),
        }
    }

    /// Member `key` of `object`; `None` when absent or `null` (no problem recorded).
    pub fn optional<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
        object.get(key).filter(|v| !v.is_null())
    }

    /// Required string member.
    pub fn required_string(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        parent: &str,
    ) -> Option<String> {
        let v = self.required(object, key, parent)?;
        self.string(v, &error::child(parent, key))
    }

    /// Optional string member (a wrong type is recorded and yields `None`).
    pub fn optional_string(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        parent: &str,
    ) -> Option<String> {
        let v = Self::optional(object, key)?;
        self.string(v, &error::child(parent, key))
    }

    /// Optional object member, cloned; empty when absent.
    pub fn optional_object(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        parent: &str,
    ) -> Map<String, Value> {
        match Self::optional(object, key) {
            None => Map::new(),
            Some(v) => self
                .object(v, &error::child(parent, key))
                .cloned()
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = read(b"{\n  \"a\": 1,\n  \"b\" 2\n}", 1024).unwrap_err();
        let ManifestError::Syntax { line, column, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((*line, *column), (3, 7));
        assert!(
            err.to_string().starts_with("not valid JSON: expected `:`"),
            "{err}"
        );
        assert!(err.to_string().ends_with("(line 3, column 7)"), "{err}");
    }

    #[test]
    fn a_member_named_twice_is_refused_with_its_place_and_values_read_as_before() {
        let err = read(
            b"{\"updateId\": {\"name\": \"a\",\n \"name\": \"b\"}}",
            1024,
        )
        .unwrap_err();
        let ManifestError::Syntax { line, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*line, 2);
        assert!(
            err.to_string().contains("member `name` appears twice"),
            "{err}"
        );
        // The same key in two objects is fine, and every kind of value reads as serde_json
        // reads it.
        let text =
            r#"{"a": {"k": 1}, "b": {"k": [true, null, -2, 3.5, 18446744073709551615, "s"]}}"#;
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(read(text.as_bytes(), 1024).unwrap(), plain);
    }

    #[test]
    fn depth_is_limited_before_parsing_and_brackets_in_strings_do_not_count() {
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        let err = read(deep.as_bytes(), 1024).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::TooDeep {
                    line: 1,
                    column: 33,
                    limit: 32
                }
            ),
            "{err:?}"
        );
        let ok = format!("{}\"[[[[{{{{\\\"[[\"{}", "[".repeat(32), "]".repeat(32));
        assert!(read(ok.as_bytes(), 1024).is_ok());
    }

    #[test]
    fn size_is_limited_and_a_bom_is_ignored() {
        assert!(matches!(
            read(b"[1, 2, 3]", 4),
            Err(ManifestError::TooLarge { size: 9, limit: 4 })
        ));
        assert_eq!(read(b"\xEF\xBB\xBF[]", 4).ok(), Some(Value::Array(vec![])));
    }

    #[test]
    fn long_strings_and_keys_are_reported_except_exempt_root_members() {
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        let value = serde_json::json!({"a": [long.clone()], "skip": long.clone(), long.clone(): 1});
        let mut errors = ManifestErrors::default();
        check_string_lengths(&value, &["skip"], &mut errors);
        let text = errors.to_string();
        assert_eq!(errors.len(), 2, "{text}");
        assert!(text.contains("a[0]: string is 4097 bytes long"), "{text}");
        assert!(
            text.contains("(document) (the key starting \"xxx"),
            "{text}"
        );
    }
}
