//! FHIR JSON text into a [`Node`] tree: a strict JSON reader (RFC 8259) that keeps numbers as
//! written (`72.50`), member order, and refuses duplicate member names, input nested deeper
//! than [`Limits::max_depth`] and input larger than [`Limits::max_bytes`]. Member names the
//! R4 schema knows are borrowed from its table ([`crate::model::names`], a [`Name`]) instead of
//! allocated per member; UTF-8 is checked once for the whole input.
//!
//! Invariants:
//! - No input panics or overflows the stack: nesting is counted and refused past the limit
//!   before the reader recurses, and every index is checked.
//! - Errors carry a registered code ([`crate::codes`]), the byte offset in the input and a
//!   message that never quotes the input (it may hold PHI).

use std::borrow::Cow;

use crate::codes;
use crate::model::Names;
use crate::tree::{Name, Node};

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
    read_document(input, limits, None).map(|(node, _)| node)
}

/// What [`parse_with_entry_sink`] hands out of a Bundle while reading it.
#[derive(Debug)]
pub enum BundlePiece {
    /// The Bundle's members read before `entry` (its `resourceType` and `type` among them).
    Start(Node),
    /// The next entry, in order.
    Entry(Node),
}

/// Reads one JSON value like [`parse_with`] (the same errors at the same offsets), except that
/// a Bundle whose `resourceType` and `type` come before a non-empty `entry` array hands its
/// entries to `sink` as they are read ([`BundlePiece::Start`] first), instead of keeping them:
/// the value returned is then the Bundle without `entry`, and the flag is `true`. Anything
/// else is returned whole with the flag `false`, and `sink` is not called.
pub fn parse_with_entry_sink(
    input: &[u8],
    limits: Limits,
    sink: &mut dyn FnMut(BundlePiece),
) -> Result<(Node, bool), CodecError> {
    read_document(input, limits, Some(sink))
}

fn read_document(
    input: &[u8],
    limits: Limits,
    sink: Option<&mut dyn FnMut(BundlePiece)>,
) -> Result<(Node, bool), CodecError> {
    limits.check_size(input.len())?;
    // UTF-8 is checked once for the whole input (std's check runs over whole words of ASCII),
    // not once per string: strings are then cut out of `text` at ASCII bytes, always char
    // boundaries.
    let text = std::str::from_utf8(input).map_err(|e| CodecError {
        code: codes::NOT_UTF8,
        offset: e.valid_up_to(),
        message: "the text is not valid UTF-8".to_string(),
    })?;
    let start = if input.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let mut r = Reader {
        s: input,
        text,
        i: start,
        depth: 0,
        max_depth: limits.max_depth,
        members: Vec::new(),
        items: Vec::new(),
        names: crate::model::names(),
        sink,
        streamed: false,
    };
    r.ws();
    let mut v = r.value().map_err(|e| *e)?;
    r.ws();
    if r.i != r.s.len() {
        return Err(*r.err(codes::JSON_SYNTAX, "unexpected text after the end of the JSON value"));
    }
    if r.streamed
        && let Node::Object(members) = &mut v
    {
        // The stand-in `entry` member kept for the duplicate check.
        members.retain(|(k, _)| k != "entry");
    }
    Ok((v, r.streamed))
}

struct Reader<'a, 'k> {
    s: &'a [u8],
    /// `s` as text (checked once).
    text: &'a str,
    i: usize,
    depth: usize,
    max_depth: usize,
    /// The members of the objects being read, innermost last: each object takes its own off
    /// the top when it ends, into a vector of exactly its size (growing one vector per object
    /// member by member cost a reallocation every few members).
    members: Vec<(Name, Node)>,
    /// The same for the items of arrays.
    items: Vec<Node>,
    /// Member names the schema knows: borrowed from it instead of allocated per member.
    names: &'static Names,
    /// Where a Bundle's entries go instead of into the tree ([`parse_with_entry_sink`]).
    sink: Option<&'k mut dyn FnMut(BundlePiece)>,
    /// Entries went to `sink`.
    streamed: bool,
}

/// The reader's own result: errors boxed, so a `Result<Node, _>` is no larger than a [`Node`]
/// (every value is returned through one; errors happen once per document at most).
type Read<T> = Result<T, Box<CodecError>>;

impl<'a> Reader<'a, '_> {
    #[cold]
    fn err(&self, code: &'static str, message: &str) -> Box<CodecError> {
        Box::new(CodecError { code, offset: self.i, message: message.to_string() })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    // `inline(always)` here and on `name`, `string` and `Names::get`: measured with callgrind,
    // the compiler's own choice cost 1.5 M more instructions per 5 MB Bundle (calls and
    // spills in the reader's hottest loop).
    #[inline(always)]
    fn ws(&mut self) {
        // Pretty-printed input is two fifths blanks, nearly all of them a line break and its
        // indentation: runs of spaces are skipped eight bytes at a time, and a call that finds
        // no blank (between `}` and `,`, say) costs one comparison.
        let s = self.s;
        let mut i = self.i;
        while let Some(&b) = s.get(i) {
            match b {
                b' ' => i += space_run(s, i),
                b'\n' | b'\r' | b'\t' => i += 1,
                _ => break,
            }
        }
        self.i = i;
    }

    fn expect(&mut self, b: u8, what: &str) -> Read<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(codes::JSON_SYNTAX, &format!("expected {what}")))
        }
    }

    fn value(&mut self) -> Read<Node> {
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

    fn literal(&mut self, word: &[u8], node: Node) -> Read<Node> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(node)
        } else {
            Err(self.err(codes::JSON_SYNTAX, "expected a JSON value"))
        }
    }

    fn enter(&mut self) -> Read<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(
                self.err(codes::TOO_DEEP, &format!("objects and arrays are nested more than {} deep", self.max_depth))
            );
        }
        Ok(())
    }

    fn object(&mut self) -> Read<Node> {
        self.enter()?;
        self.i += 1;
        let first = self.members.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Node::Object(Vec::new()));
        }
        let result = self.object_members(first);
        // On an error the members read so far are dropped with the rest.
        let members = take_from(&mut self.members, first);
        result?;
        self.depth -= 1;
        Ok(Node::Object(members))
    }

    /// The members of an object after its `{`, through its `}`, onto `self.members`.
    fn object_members(&mut self, first: usize) -> Read<()> {
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err(codes::JSON_SYNTAX, "expected a member name in double quotes"));
            }
            let key_at = self.i;
            let key = self.name()?;
            if self.members[first..].iter().any(|(k, _)| same_member(k, &key)) {
                return Err(Box::new(CodecError {
                    code: codes::DUPLICATE_MEMBER,
                    offset: key_at,
                    message: format!("the member `{key}` appears twice in one object"),
                }));
            }
            // `"name": value`, the usual spelling, without a call to skip blanks that are not
            // there or are one space.
            if self.peek() == Some(b':') {
                self.i += 1;
            } else {
                self.ws();
                self.expect(b':', "`:` after a member name")?;
            }
            match self.s.get(self.i..).and_then(<[u8]>::first_chunk::<2>) {
                Some([b' ', next]) if *next > b' ' => self.i += 1,
                _ => self.ws(),
            }
            if self.depth == 1 && key == "entry" && self.streams_entries(first) {
                self.entries_to_sink(first)?;
                // A stand-in, so a second `entry` is still refused as a duplicate.
                self.members.push((key, Node::Null));
            } else {
                let v = self.value()?;
                self.members.push((key, v));
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err(codes::JSON_SYNTAX, "expected `,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self) -> Read<Node> {
        self.enter()?;
        self.i += 1;
        let first = self.items.len();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Node::Array(Vec::new()));
        }
        let result = self.array_items();
        let items = take_from(&mut self.items, first);
        result?;
        self.depth -= 1;
        Ok(Node::Array(items))
    }

    /// The items of an array after its `[`, through its `]`, onto `self.items`.
    fn array_items(&mut self) -> Read<()> {
        loop {
            self.ws();
            let v = self.value()?;
            self.items.push(v);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err(codes::JSON_SYNTAX, "expected `,` or `]` in an array")),
            }
        }
    }

    /// At the value of the root object's `entry`: whether its items go to the sink (there is
    /// one, the array is not empty, and `resourceType` `Bundle` and `type` came before).
    fn streams_entries(&self, first: usize) -> bool {
        let header = &self.members[first..];
        let member = |name: &str| header.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        self.sink.is_some()
            && self.peek() == Some(b'[')
            && self.s.get(self.i + 1 + blank_len(self.s.get(self.i + 1..).unwrap_or_default())) != Some(&b']')
            && member("resourceType").and_then(Node::as_str) == Some("Bundle")
            && member("type").is_some()
    }

    /// The `entry` array, read like [`Self::array`] (same depth, same errors), each item handed
    /// to the sink as soon as it is read.
    fn entries_to_sink(&mut self, first: usize) -> Read<()> {
        let start = Node::Object(self.members[first..].to_vec());
        if let Some(sink) = self.sink.as_mut() {
            sink(BundlePiece::Start(start));
        }
        self.streamed = true;
        self.enter()?;
        self.i += 1;
        loop {
            self.ws();
            let v = self.value()?;
            if let Some(sink) = self.sink.as_mut() {
                sink(BundlePiece::Entry(v));
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.err(codes::JSON_SYNTAX, "expected `,` or `]` in an array")),
            }
        }
    }

    fn number(&mut self) -> Read<Node> {
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
        // Only ASCII was consumed: a char boundary.
        Ok(Node::Number(self.text.get(start..self.i).unwrap_or_default().to_string()))
    }

    fn hex4(&mut self) -> Read<u32> {
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

    /// The text of a string written without escapes (nearly every one), the reader moved past
    /// its closing quote; `None`, the reader on the string's first byte, when it has an
    /// escape. Both ends of the run are next to a quote: char boundaries of the checked text.
    #[inline(always)]
    fn plain_string(&mut self) -> Read<Option<&'a str>> {
        let start = self.i + 1; // after the opening quote
        let end = start + plain_len(self.s.get(start..).unwrap_or_default());
        if self.s.get(end) != Some(&b'"') {
            self.i = start;
            return Ok(None);
        }
        let Some(run) = self.text.get(start..end) else {
            return Err(Box::new(CodecError {
                code: codes::NOT_UTF8,
                offset: start,
                message: "the text is not valid UTF-8".to_string(),
            }));
        };
        self.i = end + 1;
        Ok(Some(run))
    }

    #[inline(always)]
    fn string(&mut self) -> Read<String> {
        match self.plain_string()? {
            // Allocated once, at its size.
            Some(run) => Ok(run.to_string()),
            None => self.escaped_string(),
        }
    }

    /// A member name: the schema's copy when it knows the name and it is written without
    /// escapes (nearly always), else an owned string like [`Self::string`]'s.
    #[inline(always)]
    fn name(&mut self) -> Read<Name> {
        if let Some(run) = self.plain_string()? {
            return Ok(match self.names.get(run) {
                Some(known) => Cow::Borrowed(known),
                None => Cow::Owned(run.to_string()),
            });
        }
        self.escaped_string().map(Cow::Owned)
    }

    /// A string with an escape (or an error) in it, from after its opening quote.
    #[cold]
    fn escaped_string(&mut self) -> Read<String> {
        let mut out = String::new();
        loop {
            let run_start = self.i;
            self.i += plain_len(self.s.get(self.i..).unwrap_or_default());
            // A run ends at an ASCII byte or at the end: a char boundary of the checked text.
            let Some(run) = self.text.get(run_start..self.i) else {
                return Err(Box::new(CodecError {
                    code: codes::NOT_UTF8,
                    offset: run_start,
                    message: "the text is not valid UTF-8".to_string(),
                }));
            };
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

/// Whether two member names are the same: two names borrowed from the schema's table are
/// the same exactly when they are the same string in it (the table holds each name once).
fn same_member(a: &Name, b: &Name) -> bool {
    match (a, b) {
        (Cow::Borrowed(x), Cow::Borrowed(y)) => std::ptr::eq(*x, *y),
        _ => a == b,
    }
}

/// The items of `stack` from `first` on, moved into a vector of exactly their number (one
/// copy of the block, not an item-by-item move as `drain(first..).collect()` does).
fn take_from<T>(stack: &mut Vec<T>, first: usize) -> Vec<T> {
    if first == 0 {
        // `split_off(0)` would hand over the stack's whole capacity and allocate another.
        let mut out = Vec::with_capacity(stack.len());
        out.append(stack);
        out
    } else {
        stack.split_off(first)
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is zero (exact for the lowest such byte, which is all
/// the callers use: a borrow only marks bytes above a zero one).
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// How many bytes at the start of `s` are plain string content: not `"`, `\\` or a control
/// character. Eight bytes at a time (strings are half of a FHIR document's bytes).
pub(crate) fn plain_len(s: &[u8]) -> usize {
    let mut n = 0;
    while let Some(chunk) = s.get(n..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        // Bytes below 0x20 (ASCII only: the high bit of the byte itself excluded), quotes and
        // backslashes.
        let special = (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
            | zero_bytes(w ^ (ONES * u64::from(b'"')))
            | zero_bytes(w ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            return n + (special.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + s[n..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(s.len() - n)
}

/// How many bytes at the start of `s` are JSON whitespace; runs of spaces (indentation) eight
/// at a time.
fn blank_len(s: &[u8]) -> usize {
    let mut n = 0;
    while let Some(&b) = s.get(n) {
        match b {
            b' ' => n += space_run(s, n),
            b'\n' | b'\r' | b'\t' => n += 1,
            _ => break,
        }
    }
    n
}

/// How many spaces start at `s[at]`, itself a space (so at least 1): eight bytes at a time,
/// up to the first other byte of a word; near the end of `s`, the one space.
fn space_run(s: &[u8], at: usize) -> usize {
    let mut n = 0;
    while let Some(chunk) = s.get(at + n..).and_then(<[u8]>::first_chunk::<8>) {
        let not_space = u64::from_le_bytes(*chunk) ^ (ONES * u64::from(b' '));
        if not_space != 0 {
            return n + (not_space.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn word_scans_agree_with_byte_scans(s in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let plain = s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(s.len());
            proptest::prop_assert_eq!(plain_len(&s), plain);
            let blank = s.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')).unwrap_or(s.len());
            proptest::prop_assert_eq!(blank_len(&s), blank);
        }

        #[test]
        fn word_scans_agree_on_json_like_bytes(
            s in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::Just(b' '), proptest::prelude::Just(b'\n'), proptest::prelude::Just(b'"'),
                proptest::prelude::Just(b'\\'), proptest::prelude::Just(0x1f_u8), proptest::prelude::Just(b'a'),
                proptest::prelude::Just(0xc3_u8), proptest::prelude::Just(0xa9_u8), proptest::prelude::Just(0x21_u8),
            ], 0..40),
        ) {
            let plain = s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(s.len());
            proptest::prop_assert_eq!(plain_len(&s), plain);
            let blank = s.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')).unwrap_or(s.len());
            proptest::prop_assert_eq!(blank_len(&s), blank);
        }
    }

    proptest::proptest! {
        #[test]
        fn blanks_between_tokens_change_nothing(blanks in proptest::collection::vec("[ \t\n\r]{0,20}", 24)) {
            // Every gap between two tokens gets its own run of blanks (pretty-printing's line
            // breaks and indentation, a single space after `:`, none, or a mix).
            let tokens = [
                "{", "\"a\"", ":", "[", "1", ",", "{", "\"b\"", ":", "\"x y\"", "}", ",", "true", ",", "[", "]", "]",
                ",", "\"c\"", ":", "null", "}",
            ];
            let mut text = String::new();
            for (token, blank) in tokens.iter().zip(&blanks) {
                text.push_str(blank);
                text.push_str(token);
            }
            text.push_str(&blanks[tokens.len()]);
            let node = parse(text.as_bytes()).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(node.to_json(), r#"{"a":[1,{"b":"x y"}],"c":null}"#.replace("}]", "},true,[]]"));
        }
    }

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
