//! JSON as ADU's agent holds it: parsed with its object members in the order they were
//! written, and re-serialised compactly the way its JSON library (parson) does, because
//! that re-serialisation, not the file's own bytes, is what a root key package's
//! signatures cover.
//!
//! Compact means: no whitespace; members in their original order; strings as raw UTF-8
//! with `"` `\` and control characters escaped (`\b \f \n \r \t`, the rest `\u00xx` in
//! lower-case hex) and `/` written `\/`; numbers as C's `printf("%1.17g")` prints the
//! double they parse to, so `1675972876` stays `1675972876` and `1.0` becomes `1`.
//! A document with a duplicate member name anywhere is refused, as parson refuses it.

use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their members' order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// Every number as the double parson parses it to.
    Number(f64),
    String(String),
    Array(Vec<Json>),
    /// Members in the order written; names are unique.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole document (a leading UTF-8 byte-order mark is skipped, as parson
    /// skips it).
    pub(crate) fn parse(text: &str) -> Result<Json, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Json::deserialize(&mut de).map_err(|e| format!("not JSON: {e}"))?;
        de.end().map_err(|e| format!("not JSON: {e}"))?;
        Ok(value)
    }

    /// Member `name` of an object.
    pub(crate) fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// The compact serialisation parson's `json_serialize_to_string` writes.
    pub(crate) fn to_parson_string(&self) -> String {
        let mut out = String::new();
        self.write_parson(&mut out);
        out
    }

    fn write_parson(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&format_g17(*n)),
            Json::String(s) => write_parson_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_parson(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (name, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_parson_string(name, out);
                    out.push(':');
                    value.write_parson(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_parson_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `value` as C's `printf("%1.17g", value)` prints it: 17 significant digits, trailing
/// zeros dropped, exponent form when the exponent is below -4 or at least 17.
fn format_g17(value: f64) -> String {
    const PRECISION: i32 = 17;
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // The exponent %g decides by is the one of the value rounded to 17 digits.
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes a decimal exponent");
    if !(-4..PRECISION).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            trim_fraction_zeros(mantissa),
            exponent.abs()
        )
    } else {
        let decimals = (PRECISION - 1 - exponent) as usize;
        trim_fraction_zeros(&format!("{value:.decimals$}")).to_owned()
    }
}

fn trim_fraction_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct Value;
        impl<'de> Visitor<'de> for Value {
            type Value = Json;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
                Ok(Json::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut members: Vec<(String, Json)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if members.iter().any(|(k, _)| *k == name) {
                        return Err(de::Error::custom(format!(
                            "member `{name}` appears twice in one object"
                        )));
                    }
                    let value = map.next_value()?;
                    members.push((name, value));
                }
                Ok(Json::Object(members))
            }
        }
        d.deserialize_any(Value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(text: &str) -> String {
        Json::parse(text).unwrap().to_parson_string()
    }

    #[test]
    fn members_keep_their_order_and_whitespace_goes() {
        assert_eq!(
            compact("{ \"z\": 1,\n  \"a\": [true, false, null], \"m\": {\"y\": \"\", \"b\": {}} }"),
            r#"{"z":1,"a":[true,false,null],"m":{"y":"","b":{}}}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_parson_escapes_them() {
        assert_eq!(
            compact(r#"["a/b", "q\"b\\s", "\b\f\n\r\t", "\u0001\u001F\u007f", "é€😀", "\/"]"#),
            "[\"a\\/b\",\"q\\\"b\\\\s\",\"\\b\\f\\n\\r\\t\",\"\\u0001\\u001f\u{7f}\",\"é€😀\",\"\\/\"]"
        );
    }

    #[test]
    fn numbers_print_as_printf_1_17g_prints_their_double() {
        for (written, printed) in [
            ("1675972876", "1675972876"),
            ("65537", "65537"),
            ("1.0", "1"),
            ("-2.50", "-2.5"),
            ("0", "0"),
            ("-0.0", "-0"),
            ("0.1", "0.10000000000000001"),
            ("1e16", "10000000000000000"),
            ("1e17", "1e+17"),
            ("123456789012345678901", "1.2345678901234568e+20"),
            ("0.0001", "0.0001"),
            ("0.00001", "1.0000000000000001e-05"),
            ("18446744073709551615", "1.8446744073709552e+19"),
            // Cross-checked with C's printf("%1.17g") of the same doubles.
            ("5e-324", "4.9406564584124654e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("0.3", "0.29999999999999999"),
            ("1234.5678", "1234.5678"),
            ("9007199254740993", "9007199254740992"),
            ("123456.789e3", "123456789"),
            ("-1e-7", "-9.9999999999999995e-08"),
        ] {
            assert_eq!(compact(written), printed, "{written}");
        }
    }

    #[test]
    fn duplicate_members_and_trailing_text_are_refused() {
        for text in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"x": {"a": 1, "a": 1}}"#,
            r#"{"a": 1} x"#,
            "",
        ] {
            assert!(Json::parse(text).is_err(), "{text}");
        }
        assert!(Json::parse("\u{feff}{}").is_ok());
    }
}
