//! The JSON bodies of token responses, written field by field. A string that needs no
//! escaping (no `"`, `\` or control character, RFC 8259 §7) is copied as is, as the
//! tokens always are (a compact JWS is base64url and dots, RFC 7515 §7.1): serde_json's
//! escaper reads a string byte by byte, and the ~700-byte tokens made that the largest
//! cost of `/auth` and `/token` outside signing (BENCHMARKS.md, "What each change
//! gained"). Every other value goes through serde_json, so the output is the same bytes
//! serde_json writes for the same fields in the same order (tested below and beside
//! each response type).

use std::io::Write as _;

/// A JSON object under construction.
#[derive(Debug)]
pub(super) struct JsonObject {
    body: Vec<u8>,
}

impl JsonObject {
    /// An empty object with room for `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let mut body = Vec::with_capacity(capacity);
        body.push(b'{');
        Self { body }
    }

    fn name(&mut self, name: &'static str) {
        debug_assert!(!needs_escaping(name), "field names are plain");
        if self.body.len() > 1 {
            self.body.push(b',');
        }
        self.body.push(b'"');
        self.body.extend_from_slice(name.as_bytes());
        self.body.extend_from_slice(b"\":");
    }

    /// Adds a string field.
    pub(super) fn string(&mut self, name: &'static str, value: &str) {
        self.name(name);
        if needs_escaping(value) {
            serde_json::to_writer(&mut self.body, value)
                .expect("serializing a str into a Vec cannot fail");
        } else {
            self.body.push(b'"');
            self.body.extend_from_slice(value.as_bytes());
            self.body.push(b'"');
        }
    }

    /// Adds an integer field.
    pub(super) fn integer(&mut self, name: &'static str, value: i64) {
        self.name(name);
        write!(self.body, "{value}").expect("writing into a Vec cannot fail");
    }

    /// The finished object.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.body.push(b'}');
        self.body
    }
}

/// Whether `text` holds a character JSON must escape (RFC 8259 §7). Written as a fold
/// rather than `any` so that the compiler checks many bytes per instruction.
fn needs_escaping(text: &str) -> bool {
    text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_the_bytes_serde_json_writes() {
        for value in [
            "",
            "plain",
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_",
            "quote \" and backslash \\",
            "control \u{1} \n \t \u{1f}",
            "unicode é € 😀 \u{7f}",
        ] {
            let mut object = JsonObject::with_capacity(16);
            object.string("a", value);
            object.integer("n", -42);
            object.string("b", value);
            #[derive(serde::Serialize)]
            struct Fields<'a> {
                a: &'a str,
                n: i64,
                b: &'a str,
            }
            let expected = serde_json::to_vec(&Fields {
                a: value,
                n: -42,
                b: value,
            })
            .expect("json");
            assert_eq!(
                String::from_utf8(object.finish()).expect("utf-8"),
                String::from_utf8(expected).expect("utf-8"),
                "{value:?}"
            );
        }
        assert_eq!(JsonObject::with_capacity(0).finish(), b"{}");
    }

    #[test]
    fn only_quotes_backslashes_and_controls_need_escaping() {
        assert!(!needs_escaping("a.b-c_d é/"));
        for text in ["\"", "\\", "\u{0}", "x\u{1f}"] {
            assert!(needs_escaping(text), "{text:?}");
        }
    }
}
