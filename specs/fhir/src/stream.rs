//! Reading FHIR content that is too large to hold as one tree: Bulk Data NDJSON (one resource
//! per line) and large JSON Bundles, split entry by entry as the bytes stream in.
//!
//! [`BundleSplitter`] scans a JSON document with a small state machine (strings, escapes,
//! nesting depth; no tree), and hands out the Bundle's members without `entry` ([`Part::Start`]
//! when the entry array begins, [`Part::End`] with the members after it too), and each entry's
//! bytes ([`Part::Entry`]); each part is then read with [`crate::json`] like any resource.
//!
//! Invariants:
//! - Memory is flat: at most one entry (bounded by [`Limits::max_bytes`]), the members outside
//!   `entry`, and a fixed read buffer are held; an entry over the limit is skipped (its bytes
//!   are not kept) and reported as [`codes::TOO_LARGE`].
//! - The scanner never recurses (depth is a counter) and never panics; malformed JSON is
//!   passed on in the parts and reported by the JSON reader.
//! - [`NdjsonReader`] holds one line at a time, likewise bounded.

use std::io::{BufRead, Read};

use crate::codes;
use crate::json::{CodecError, Limits};
use crate::tree::Node;

/// A piece of a Bundle read by [`BundleSplitter`].
#[derive(Debug)]
pub enum Part {
    /// The members before `entry`, as a JSON object (the Bundle's `type` is in there).
    Start(Vec<u8>),
    /// One entry: its 0-based index, byte offset in the input and bytes (or why it was not kept).
    Entry { index: usize, offset: usize, bytes: Result<Vec<u8>, CodecError> },
    /// All members except `entry`, as a JSON object. Without an `entry` array this is the
    /// whole document. Always `Ok` from JSON input (whose bytes are passed on as read, for the
    /// JSON reader to judge); from XML input ([`crate::xml_stream`]), the reason the Bundle's
    /// other elements, or the document, could not be read.
    End(Result<Vec<u8>, CodecError>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Outside `entry`: bytes go to the header.
    Header,
    /// Inside the `entry` array, between entries.
    Between,
    /// Inside one entry.
    Entry,
    /// After the end of the document.
    Done,
}

/// Splits a JSON Bundle into its header and entries while reading.
pub struct BundleSplitter<R: Read> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Absolute offset of `buf[0]`.
    base: usize,
    limits: Limits,
    mode: Mode,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// In the header: expecting a member name at depth 1.
    expect_key: bool,
    key_start: Option<usize>,
    last_key: Vec<u8>,
    header: Vec<u8>,
    /// The `entry` member was the first: the `,` after its array must go.
    drop_next_comma: bool,
    entry: Vec<u8>,
    entry_offset: usize,
    entry_too_large: bool,
    index: usize,
    pending: std::collections::VecDeque<Part>,
    started: bool,
    finished: bool,
    /// Tests: every byte through [`Self::step`], the reference [`Self::entry_run`] must match.
    #[cfg(test)]
    byte_by_byte: bool,
}

impl<R: Read> BundleSplitter<R> {
    pub fn new(reader: R, limits: Limits) -> Self {
        BundleSplitter {
            reader,
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            base: 0,
            limits,
            mode: Mode::Header,
            depth: 0,
            in_string: false,
            escape: false,
            expect_key: false,
            key_start: None,
            last_key: Vec::new(),
            header: Vec::new(),
            drop_next_comma: false,
            entry: Vec::new(),
            entry_offset: 0,
            entry_too_large: false,
            index: 0,
            pending: std::collections::VecDeque::new(),
            started: false,
            finished: false,
            #[cfg(test)]
            byte_by_byte: false,
        }
    }

    fn header_byte(&mut self, b: u8) {
        if self.header.len() <= self.limits.max_bytes {
            self.header.push(b);
        }
    }

    fn entry_byte(&mut self, b: u8) {
        if self.entry.len() < self.limits.max_bytes {
            self.entry.push(b);
        } else {
            self.entry_too_large = true;
        }
    }

    /// Inside an entry: copies the bytes that cannot change the scanner's state (string
    /// content; outside strings, anything but brackets, quotes and commas, and whitespace
    /// where the entry itself ends) in one go, then steps the byte that ends the run. The
    /// same result as [`Self::step`] byte by byte, without the per-byte dispatch: entries are
    /// nearly all of a Bundle's bytes.
    fn entry_run(&mut self) {
        let rest = &self.buf[self.pos..self.len];
        let plain = if self.escape {
            0
        } else if self.in_string {
            crate::json::plain_len(rest)
        } else {
            let stops = if self.depth == 2 { STRUCTURAL | BLANK } else { STRUCTURAL };
            rest.iter().position(|&b| ENTRY_BYTES[usize::from(b)] & stops != 0).unwrap_or(rest.len())
        };
        let room = self.limits.max_bytes.saturating_sub(self.entry.len());
        self.entry.extend_from_slice(&rest[..plain.min(room)]);
        if plain > room {
            self.entry_too_large = true;
        }
        self.pos += plain;
        if self.pos < self.len {
            let b = self.buf[self.pos];
            self.pos += 1;
            self.entry_step(b);
        }
    }

    fn finish_entry(&mut self) {
        let bytes = if self.entry_too_large {
            Err(CodecError {
                code: codes::TOO_LARGE,
                offset: self.entry_offset,
                message: format!("the entry is larger than the limit of {} bytes", self.limits.max_bytes),
            })
        } else {
            Ok(std::mem::take(&mut self.entry))
        };
        self.entry.clear();
        self.entry_too_large = false;
        self.pending.push_back(Part::Entry { index: self.index, offset: self.entry_offset, bytes });
        self.index += 1;
        self.mode = Mode::Between;
    }

    /// Feeds one byte (at absolute offset `at`) through the state machine.
    fn step(&mut self, b: u8, at: usize) {
        match self.mode {
            Mode::Done => {}
            Mode::Header => self.header_step(b),
            Mode::Between => match b {
                b' ' | b'\t' | b'\r' | b'\n' | b',' => {}
                b']' => {
                    self.mode = Mode::Header;
                    self.depth = 1;
                    self.expect_key = false;
                }
                _ => {
                    self.mode = Mode::Entry;
                    self.entry_offset = at;
                    self.depth = 2;
                    self.entry_step(b);
                }
            },
            Mode::Entry => self.entry_step(b),
        }
    }

    fn entry_step(&mut self, b: u8) {
        if self.in_string {
            self.entry_byte(b);
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                if self.depth == 2 {
                    self.finish_entry();
                }
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.entry_byte(b);
            }
            b'{' | b'[' => {
                self.depth += 1;
                self.entry_byte(b);
            }
            b'}' | b']' if self.depth > 2 => {
                self.depth -= 1;
                self.entry_byte(b);
                if self.depth == 2 {
                    self.finish_entry();
                }
            }
            b']' | b',' if self.depth == 2 => {
                // The end of a scalar entry.
                self.finish_entry();
                if b == b']' {
                    self.mode = Mode::Header;
                    self.depth = 1;
                    self.expect_key = false;
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' if self.depth == 2 => {}
            _ => self.entry_byte(b),
        }
    }

    fn header_step(&mut self, b: u8) {
        if self.in_string {
            self.header_byte(b);
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                if let Some(start) = self.key_start.take() {
                    self.last_key = self.header.get(start + 1..self.header.len() - 1).unwrap_or_default().to_vec();
                }
            }
            return;
        }
        if self.drop_next_comma {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => return,
                b',' => {
                    self.drop_next_comma = false;
                    self.expect_key = true;
                    return;
                }
                _ => self.drop_next_comma = false,
            }
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.expect_key {
                    self.key_start = Some(self.header.len());
                    self.expect_key = false;
                }
                self.header_byte(b);
            }
            b'{' | b'[' => {
                if b == b'[' && self.depth == 1 && self.last_key == b"entry" {
                    self.begin_entries();
                    return;
                }
                self.depth += 1;
                if self.depth == 1 {
                    self.expect_key = true;
                }
                self.last_key.clear();
                self.header_byte(b);
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                self.header_byte(b);
                if self.depth == 0 {
                    self.mode = Mode::Done;
                }
            }
            b',' => {
                if self.depth == 1 {
                    self.expect_key = true;
                    self.last_key.clear();
                }
                self.header_byte(b);
            }
            b':' => self.header_byte(b),
            _ => {
                if !b.is_ascii_whitespace() && self.depth == 1 {
                    self.last_key.clear();
                }
                self.header_byte(b);
            }
        }
    }

    /// `"entry": [` seen at depth 1: cut the member out of the header and emit the start.
    fn begin_entries(&mut self) {
        // Drop `"entry" :` (and the comma before it, or the one after the array).
        let key_at = find_last_key(&self.header);
        self.header.truncate(key_at);
        while self.header.last().is_some_and(|b| b.is_ascii_whitespace()) {
            self.header.pop();
        }
        if self.header.last() == Some(&b',') {
            self.header.pop();
        } else {
            self.drop_next_comma = true;
        }
        if !self.started {
            let mut start = self.header.clone();
            start.push(b'}');
            self.pending.push_back(Part::Start(start));
            self.started = true;
        }
        self.mode = Mode::Between;
        self.depth = 2;
        self.last_key.clear();
    }
}

/// [`ENTRY_BYTES`] flags: a byte that can change the scanner's state inside an entry, outside
/// strings; JSON whitespace (which matters only between an entry's end and the next comma).
const STRUCTURAL: u8 = 1;
const BLANK: u8 = 2;

/// Per byte value, its [`STRUCTURAL`] and [`BLANK`] flags.
static ENTRY_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'"' | b'{' | b'[' | b'}' | b']' | b',' => STRUCTURAL,
            b' ' | b'\t' | b'\r' | b'\n' => BLANK,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Where the last `"entry"` member name starts in the header.
fn find_last_key(header: &[u8]) -> usize {
    let mut i = header.len();
    while i > 0 && header[i - 1] != b'"' {
        i -= 1;
    }
    // `i - 1` is the closing quote of the name; its opening quote is 6 bytes earlier.
    i.saturating_sub(1).saturating_sub(6)
}

impl<R: Read> Iterator for BundleSplitter<R> {
    type Item = std::io::Result<Part>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(Ok(p));
            }
            if self.finished {
                return None;
            }
            if self.pos >= self.len {
                self.base += self.len;
                self.len = match self.reader.read(&mut self.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Some(Err(e)),
                };
                self.pos = 0;
                if self.len == 0 {
                    self.finished = true;
                    if self.mode == Mode::Entry {
                        // Cut off inside an entry: the reader reports what is there.
                        self.finish_entry();
                    }
                    if !self.header.is_empty() || self.started {
                        self.pending.push_back(Part::End(Ok(std::mem::take(&mut self.header))));
                    }
                    continue;
                }
            }
            while self.pos < self.len && self.pending.is_empty() {
                #[cfg(test)]
                let fast = !self.byte_by_byte;
                #[cfg(not(test))]
                let fast = true;
                if fast && self.mode == Mode::Entry {
                    self.entry_run();
                    continue;
                }
                let b = self.buf[self.pos];
                let at = self.base + self.pos;
                self.pos += 1;
                if self.mode == Mode::Done {
                    // Text after the document: keep it so the JSON reader reports it.
                    self.header_byte(b);
                    continue;
                }
                self.step(b, at);
            }
        }
    }
}

/// One line of an NDJSON input.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// Byte offset of the line's start.
    pub offset: usize,
    pub resource: Result<Node, CodecError>,
}

/// Reads Bulk Data NDJSON: one resource per line; blank lines are skipped.
pub struct NdjsonReader<R: BufRead> {
    reader: R,
    limits: Limits,
    number: usize,
    offset: usize,
    line: Vec<u8>,
}

impl<R: BufRead> NdjsonReader<R> {
    pub fn new(reader: R, limits: Limits) -> Self {
        NdjsonReader { reader, limits, number: 0, offset: 0, line: Vec::new() }
    }
}

impl<R: BufRead> Iterator for NdjsonReader<R> {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            let start = self.offset;
            let mut too_long = false;
            let mut saw_any = false;
            loop {
                let chunk = match self.reader.fill_buf() {
                    Ok(c) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Some(Err(e)),
                };
                if chunk.is_empty() {
                    break;
                }
                saw_any = true;
                let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                if self.line.len() + take <= self.limits.max_bytes + 1 {
                    self.line.extend_from_slice(&chunk[..take]);
                } else {
                    too_long = true;
                }
                self.reader.consume(take);
                self.offset += take;
                if end {
                    break;
                }
            }
            if !saw_any {
                return None;
            }
            self.number += 1;
            if too_long {
                let e = CodecError {
                    code: codes::TOO_LARGE,
                    offset: start,
                    message: format!("the line is longer than the limit of {} bytes", self.limits.max_bytes),
                };
                return Some(Ok(Line { number: self.number, offset: start, resource: Err(e) }));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let resource = crate::json::parse_with(&self.line, self.limits).map_err(|mut e| {
                e.offset += start;
                e
            });
            return Some(Ok(Line { number: self.number, offset: start, resource }));
        }
    }
}

/// The parts of a Bundle file, JSON or XML (told by its first bytes): the same [`Part`]s,
/// JSON in both cases.
pub enum Parts<R: BufRead> {
    Json(BundleSplitter<R>),
    Xml(crate::xml_stream::XmlBundleSplitter<R>),
}

impl<R: BufRead> Parts<R> {
    pub fn new(mut reader: R, limits: Limits) -> std::io::Result<Self> {
        let xml = crate::is_xml(reader.fill_buf()?);
        Ok(if xml {
            Parts::Xml(crate::xml_stream::XmlBundleSplitter::new(reader, limits))
        } else {
            Parts::Json(BundleSplitter::new(reader, limits))
        })
    }
}

impl<R: BufRead> Iterator for Parts<R> {
    type Item = std::io::Result<Part>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Parts::Json(p) => p.next(),
            Parts::Xml(p) => p.next(),
        }
    }
}

/// Whether JSON text is NDJSON: its first non-blank line is a complete JSON object and another
/// non-blank line follows.
pub fn looks_like_ndjson(prefix: &[u8]) -> bool {
    let mut lines = prefix.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let Some(first) = lines.next() else { return false };
    matches!(crate::json::parse(first), Ok(Node::Object(_))) && lines.next().is_some()
}

/// Validates a Bundle (or any resource), JSON or XML, as it streams: entries are read,
/// checked and dropped one at a time ([`crate::bundle::BundleChecker`]). An entry that cannot be read
/// becomes an error finding at `Bundle.entry[i]`; a document that is not a resource at all is
/// an `Err`.
pub fn validate_streaming<R: Read>(
    reader: R,
    limits: Limits,
    options: &crate::validate::Options<'_>,
) -> std::io::Result<Result<Vec<crate::validate::Finding>, CodecError>> {
    use crate::validate::{Finding, Severity};
    let mut checker: Option<crate::bundle::BundleChecker<'_>> = None;
    let mut unreadable = Vec::new();
    for part in Parts::new(std::io::BufReader::new(reader), limits)? {
        match part? {
            Part::Start(bytes) => match crate::json::parse_with(&bytes, limits) {
                Ok(start) => checker = Some(crate::bundle::BundleChecker::new(&start, options)),
                Err(e) => return Ok(Err(e)),
            },
            Part::Entry { index, offset, bytes } => {
                let entry = bytes.and_then(|b| {
                    crate::json::parse_with(&b, limits).map_err(|mut e| {
                        e.offset += offset;
                        e
                    })
                });
                match (entry, checker.as_mut()) {
                    (Ok(e), Some(c)) => c.entry(&e),
                    (Err(e), Some(c)) => {
                        unreadable.push(Finding {
                            severity: Severity::Error,
                            code: e.code,
                            location: format!("Bundle.entry[{index}]"),
                            message: format!("{} (byte {})", e.message, e.offset),
                        });
                        c.skip_entry();
                    }
                    (_, None) => {}
                }
            }
            Part::End(bytes) => {
                let header = match bytes.and_then(|b| crate::json::parse_with(&b, limits)) {
                    Ok(h) => h,
                    Err(e) => return Ok(Err(e)),
                };
                if header.resource_type().is_none() {
                    return Ok(Err(CodecError {
                        code: codes::NOT_A_RESOURCE,
                        offset: 0,
                        message: "the JSON value is not an object with a `resourceType` string".into(),
                    }));
                }
                return Ok(Ok(match checker.take() {
                    Some(c) => {
                        let mut f = c.finish(&header);
                        f.extend(unreadable);
                        f
                    }
                    None => crate::validate::validate(&header, options),
                }));
            }
        }
    }
    Ok(Err(CodecError { code: codes::JSON_SYNTAX, offset: 0, message: "the input is empty".into() }))
}

/// A reader that hands out its bytes `.1` at a time: the splitters' tests check that what
/// they cut does not depend on where reads end.
#[cfg(test)]
pub(crate) struct Chunked<'a>(pub &'a [u8], pub usize);

#[cfg(test)]
impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(out.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, chunk: usize) -> Vec<String> {
        BundleSplitter::new(Chunked(text.as_bytes(), chunk), Limits::default())
            .map(|p| match p.unwrap() {
                Part::Start(h) => format!("S {}", String::from_utf8_lossy(&h)),
                Part::Entry { index, offset, bytes } => {
                    format!("E{index}@{offset} {}", String::from_utf8_lossy(&bytes.unwrap()))
                }
                Part::End(h) => format!("X {}", String::from_utf8_lossy(&h.unwrap())),
            })
            .collect()
    }

    #[test]
    fn splits_entries_whatever_the_chunks() {
        let b = r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","name":[{"given":["a]}\"{"]}]}},
 {"fullUrl":"x"} ],"signature":{"type":[]}}"#;
        for chunk in [1, 2, 7, 64, 100_000] {
            assert_eq!(
                split(b, chunk),
                [
                    r#"S {"resourceType":"Bundle","type":"collection"}"#.to_string(),
                    r#"E0@54 {"resource":{"resourceType":"Patient","name":[{"given":["a]}\"{"]}]}}"#.into(),
                    r#"E1@126 {"fullUrl":"x"}"#.into(),
                    r#"X {"resourceType":"Bundle","type":"collection","signature":{"type":[]}}"#.into(),
                ],
                "chunk {chunk}"
            );
        }
        let first = r#"{"entry":[{"a":1}],"type":"batch"}"#;
        assert_eq!(split(first, 3), [r#"S {}"#, r#"E0@10 {"a":1}"#, r#"X {"type":"batch"}"#]);
        assert_eq!(split(r#"{"resourceType":"Patient"}"#, 5), [r#"X {"resourceType":"Patient"}"#]);
    }

    proptest::proptest! {
        /// Runs copied in one go cut the same parts as every byte stepped alone, whatever the
        /// read sizes and the entry size limit.
        #[test]
        fn entry_runs_cut_what_byte_steps_cut(
            body in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::Just(b'"'), proptest::prelude::Just(b'\\'), proptest::prelude::Just(b'{'),
                proptest::prelude::Just(b'}'), proptest::prelude::Just(b'['), proptest::prelude::Just(b']'),
                proptest::prelude::Just(b','), proptest::prelude::Just(b' '), proptest::prelude::Just(b'\n'),
                proptest::prelude::Just(b':'), proptest::prelude::Just(b'a'), proptest::prelude::Just(0x1f_u8),
                proptest::prelude::Just(0xc3_u8), proptest::prelude::Just(0xa9_u8),
            ], 0..120),
            chunk in 1usize..40,
            max_bytes in 1usize..64,
        ) {
            let mut doc = br#"{"resourceType":"Bundle","entry":["#.to_vec();
            doc.extend_from_slice(&body);
            let limits = Limits { max_bytes, ..Limits::default() };
            let cut = |chunk: usize, byte_by_byte: bool| -> Vec<String> {
                let mut s = BundleSplitter::new(Chunked(&doc, chunk), limits);
                s.byte_by_byte = byte_by_byte;
                s.map(|p| format!("{:?}", p.unwrap())).collect()
            };
            let reference = cut(usize::MAX, true);
            proptest::prop_assert_eq!(cut(usize::MAX, false), reference.clone());
            proptest::prop_assert_eq!(cut(chunk, false), reference);
        }
    }

    #[test]
    fn ndjson_lines() {
        let text = "{\"resourceType\":\"Patient\"}\n\n{bad\n{\"resourceType\":\"Observation\"}";
        let lines: Vec<_> = NdjsonReader::new(text.as_bytes(), Limits::default()).map(|l| l.unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!((lines[1].number, lines[1].offset), (3, 28));
        assert!(lines[1].resource.is_err() && lines[2].resource.is_ok());
        assert!(looks_like_ndjson(text.as_bytes()));
        assert!(!looks_like_ndjson(b"{\n \"resourceType\": \"Patient\"\n}\n"));
    }
}
