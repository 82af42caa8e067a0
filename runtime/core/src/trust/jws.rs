//! Compact JWS (RFC 7515): `base64url(header) . base64url(payload) . base64url(signature)`,
//! split and decoded with bounds, the header read as a JSON object.

use serde_json::{Map, Value};

use super::key::{Algorithm, decode_b64url};

/// Largest compact JWS accepted, in bytes. An ADU signature with an RSA-4096 signing key
/// is about 3 KiB; the bound keeps a hostile one from costing more than a little work.
pub const MAX_JWS_BYTES: usize = 32 * 1024;

/// A decoded compact JWS whose signature is not yet checked.
#[derive(Debug)]
pub struct Jws<'a> {
    /// `header . payload` as sent: the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The protected header.
    pub header: Map<String, Value>,
    /// The header's `alg`.
    pub algorithm: Algorithm,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Splits and decodes `token`; the error says which part is wrong.
    pub fn parse(token: &'a str) -> Result<Jws<'a>, String> {
        if token.len() > MAX_JWS_BYTES {
            return Err(format!(
                "is {} bytes long; the limit is {MAX_JWS_BYTES}",
                token.len()
            ));
        }
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(header_part), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("is not a compact JWS (three base64url parts joined by `.`)".into());
        };
        let decode = |part: &str, what: &str| {
            decode_b64url(part).ok_or_else(|| format!("its {what} is not base64url"))
        };
        let header_bytes = decode(header_part, "header")?;
        let header = match serde_json::from_slice::<Value>(&header_bytes) {
            Ok(Value::Object(map)) => map,
            _ => return Err("its header is not a JSON object".into()),
        };
        // RFC 7515 §4.1.11: extensions a verifier does not understand must be refused.
        if header.contains_key("crit") {
            return Err(
                "its header lists critical extensions (`crit`), which are not supported".into(),
            );
        }
        let algorithm = match header.get("alg") {
            Some(Value::String(alg)) => Algorithm::from_jws(alg).ok_or_else(|| {
                format!("algorithm `{alg}` is not accepted (RS256, ES256 or EdDSA)")
            })?,
            Some(_) => return Err("its header's `alg` is not a string".into()),
            None => return Err("its header has no `alg`".into()),
        };
        let signing_input = &token.as_bytes()[..header_part.len() + 1 + payload.len()];
        Ok(Jws {
            signing_input,
            header,
            algorithm,
            payload: decode(payload, "payload")?,
            signature: decode(signature, "signature")?,
        })
    }

    /// Header member `name` as a string.
    pub fn header_string(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tokens_say_what_is_wrong() {
        for (token, want) in [
            ("a.b", "three base64url parts"),
            ("a.b.c.d", "three base64url parts"),
            ("!!.e30.AA", "header is not base64url"),
            ("WzFd.e30.AA", "not a JSON object"),
            ("e30.e30.AA", "no `alg`"),
            ("eyJhbGciOiJub25lIn0.e30.", "`none` is not accepted"),
            ("eyJhbGciOiJIUzI1NiJ9.e30.AA", "`HS256` is not accepted"),
            (
                "eyJhbGciOiJFZERTQSIsImNyaXQiOlsieCJdfQ.e30.AA",
                "critical extensions",
            ),
        ] {
            let e = Jws::parse(token).unwrap_err();
            assert!(e.contains(want), "{token}: {e} lacks {want}");
        }
        let long = "a".repeat(MAX_JWS_BYTES + 1);
        assert!(Jws::parse(&long).unwrap_err().contains("limit"));
    }

    #[test]
    fn the_signing_input_is_the_first_two_parts_as_sent() {
        let jws = Jws::parse("eyJhbGciOiJFZERTQSJ9.e30.AAAA").unwrap();
        assert_eq!(jws.signing_input, b"eyJhbGciOiJFZERTQSJ9.e30");
        assert_eq!(jws.algorithm, Algorithm::EdDsa);
        assert_eq!(jws.payload, b"{}");
        assert_eq!(jws.signature, [0, 0, 0]);
    }
}
