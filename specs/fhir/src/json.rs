//! FHIR JSON text into a [`Node`] tree: a strict JSON reader (RFC 8259) that keeps numbers as
//! written (`72.50`), member order, and refuses duplicate member names, input nested deeper
//! than [`Limits::max_depth`] and input larger than [`Limits::max_bytes`].
//!
//! Invariants:
//! - No input panics or overflows the stack: nesting is counted and refused past the limit
//!   before the reader recurses, and every index is checked.
//! - Errors carry a registered code ([`crate::codes`]), the byte offset in the input and a
//!   message that never quotes the input (it may hold PHI).

use crate::codes;
use crate::tree::Node;

/// How much a reader accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest nesting of objects and arrays (a resource is 1). FHIR resources seldom pass 20;
    /// deeply nested `Questionnaire.item` trees may reach 60.
    pub max_depth: usize,
    /// Largest input, in bytes, of one resource (or one Bundle entry when streaming).
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 128, max_bytes: 256 * 1024 * 1024 }
    }
}

impl Limits {
    /// FHIR003 when an input of `len` bytes is over `max_bytes` (JSON and XML alike).
    pub fn check_size(&self, len: usize) -> Result<(), CodecError> {
        if len <= self.max_bytes {
            return Ok(());
        }
        Err(CodecError {
            code: codes::TOO_LARGE,
            offset: self.max_bytes,
            message: format!("the input is {len} bytes, more than the limit of {}", self.max_bytes),
        })
    }
}

/// Why input could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    /// `FHIR0nn`, registered in [`crate::codes::CODES`].
    pub code: &'static str,
    /// Byte offset in the input.
    pub offset: usize,
    /// Says what was expected; never quotes the input.
    pub message: String,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}: {}", self.code, self.offset, self.message)
    }
}

impl std::error::Error for CodecError {}

/// Reads one JSON value (a resource) from `input`, with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Node, CodecError> {
    parse_with(input, Limits::default())
}

/// Reads one JSON value from `input`. A UTF-8 byte order mark is skipped.
pub fn parse_with(input: &[u8], limits: Limits) -> Result<Node, CodecError> {
    limits.check_size(input.len())?;
    let start = if input.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let mut r = Reader { s: input, i: start, depth: 0, max_depth: limits.max_depth };
    r.ws();
    let v = r.value()?;
    r.ws();
    if r.i != r.s.len() {
        return Err(r.err(codes::JSON_SYNTAX, "unexpected text after the end of the JSON value"));
    }
    Ok(v)
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn err(&self, code: &'static str, message: &str) -> CodecError {
        CodecError { code, offset: self.i, message: message.to_string() }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), CodecError> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(codes::JSON_SYNTAX, &format!("expected {what}")))
        }
    }

    fn value(&mut self) -> Result<Node, CodecError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Node::String(self.string()?)),
            Some(b't') => self.literal(b"true", Node::Bool(true)),
            Some(b'f') => self.literal(b"false", Node::Bool(false)),
            Some(b'n') => self.literal(b"null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err(codes::JSON_SYNTAX, "expected a JSON value")),
            None => Err(self.err(codes::JSON_SYNTAX, "unexpected end of input, expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8], node: Node) -> Result<Node, CodecError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(node)
        } else {
            Err(self.err(codes::JSON_SYNTAX, "expected a JSON value"))
        }
    }

    fn enter(&mut self) -> Result<(), CodecError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(
                self.err(codes::TOO_DEEP, &format!("objects and arrays are nested more than {} deep", self.max_depth))
            );
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Node, CodecError> {
        self.enter()?;
        self.i += 1;
        let mut members: Vec<(String, Node)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Node::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err(codes::JSON_SYNTAX, "expected a member name in double quotes"));
            }
            let key_at = self.i;
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                return Err(CodecError {
                    code: codes::DUPLICATE_MEMBER,
                    offset: key_at,
                    message: format!("the member `{key}` appears twice in one object"),
                });
            }
            self.ws();
            self.expect(b':', "`:` after a member name")?;
            self.ws();
            let v = self.value()?;
            members.push((key, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err(codes::JSON_SYNTAX, "expected `,` or `}` in an object")),
            }
        }
        self.depth -= 1;
        Ok(Node::Object(members))
    }

    fn array(&mut self) -> Result<Node, CodecError> {
        self.enter()?;
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Node::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err(codes::JSON_SYNTAX, "expected `,` or `]` in an array")),
            }
        }
        self.depth -= 1;
        Ok(Node::Array(items))
    }

    fn number(&mut self) -> Result<Node, CodecError> {
        let start = self.i;
        let digits = |r: &mut Self| {
            let from = r.i;
            while let Some(b'0'..=b'9') = r.peek() {
                r.i += 1;
            }
            r.i - from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.err(codes::JSON_SYNTAX, "expected a digit in a number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err(codes::JSON_SYNTAX, "expected a digit after `.` in a number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err(codes::JSON_SYNTAX, "expected a digit in a number's exponent"));
            }
        }
        // Only ASCII was consumed, so this cannot fail.
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        Ok(Node::Number(text.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, CodecError> {
        let Some(h) = self.s.get(self.i..self.i + 4) else {
            return Err(self.err(codes::JSON_SYNTAX, "expected four hex digits after `\\u`"));
        };
        let text = std::str::from_utf8(h).ok().filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()));
        let v = text
            .and_then(|t| u32::from_str_radix(t, 16).ok())
            .ok_or_else(|| self.err(codes::JSON_SYNTAX, "expected four hex digits after `\\u`"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            let run = std::str::from_utf8(&self.s[run_start..self.i]).map_err(|e| CodecError {
                code: codes::NOT_UTF8,
                offset: run_start + e.valid_up_to(),
                message: "the text is not valid UTF-8".to_string(),
            })?;
            out.push_str(run);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek();
                    self.i += 1;
                    match c {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(self.err(codes::JSON_SYNTAX, "a lone UTF-16 surrogate in `\\u`"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err(codes::JSON_SYNTAX, "a lone UTF-16 surrogate in `\\u`"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            let ch = char::from_u32(code)
                                .ok_or_else(|| self.err(codes::JSON_SYNTAX, "a lone UTF-16 surrogate in `\\u`"))?;
                            out.push(ch);
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.err(codes::JSON_SYNTAX, "unknown escape in a string"));
                        }
                    }
                }
                Some(_) => return Err(self.err(codes::JSON_SYNTAX, "a control character inside a string")),
                None => return Err(self.err(codes::JSON_SYNTAX, "unexpected end of input inside a string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_number_text_and_member_order() {
        let t = parse(
            br#"{"resourceType":"Observation","valueQuantity":{"value":72.50,"unit":"kg"},"a":[1e3,-0,null,true]}"#,
        )
        .unwrap();
        assert_eq!(
            t.to_json(),
            r#"{"resourceType":"Observation","valueQuantity":{"value":72.50,"unit":"kg"},"a":[1e3,-0,null,true]}"#
        );
    }

    #[test]
    fn refuses_deep_nesting_without_overflow() {
        let deep = "[".repeat(1_000_000);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert_eq!(e.code, codes::TOO_DEEP);
        assert_eq!(e.offset, 128);
    }

    #[test]
    fn refuses_large_input_and_duplicates() {
        let e = parse_with(b"{}   ", Limits { max_depth: 4, max_bytes: 3 }).unwrap_err();
        assert_eq!(e.code, codes::TOO_LARGE);
        let e = parse(br#"{"a":1,"a":2}"#).unwrap_err();
        assert_eq!((e.code, e.offset), (codes::DUPLICATE_MEMBER, 7));
    }

    #[test]
    fn strings_and_errors() {
        assert_eq!(parse(br#""\u00e9\ud83d\ude00\n""#).unwrap(), Node::String("é😀\n".into()));
        for bad in [&b"{"[..], b"[1,]", b"01", b"1.", b"\"\\ud800\"", b"\"\xff\"", b"{} x", b"tru"] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
