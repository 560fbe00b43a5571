//! Properties of the HL7 v2 codec, splitter, escapes and paths (fuzz targets `hl7_*`).
//!
//! Shared by the fuzz crate and `specs/hl7v2/tests/fuzz_regressions.rs` (through `#[path]`).

use std::io::{self, BufRead, Read};
use std::sync::OnceLock;

use sluice_hl7v2::codec::{self, Delimiters, EncodingCharacters, Message, ParseOptions, SegmentSeparator};
use sluice_hl7v2::json;
use sluice_hl7v2::path::Path;
use sluice_hl7v2::split::{MessageSplitter, RawMessage};

/// The tree with segment offsets zeroed and `Mixed` read as CR (what `encode` writes), for
/// comparing the trees of two texts that differ only in layout.
fn shape(m: &Message) -> Message<'static> {
    let mut m = m.clone().into_owned();
    for s in &mut m.segments {
        s.offset = 0;
    }
    if m.segment_separator == SegmentSeparator::Mixed {
        m.segment_separator = SegmentSeparator::Cr;
    }
    m
}

/// `hl7_parse`: bytes -> lossy UTF-8 -> `parse_message`. A parsed message encodes to text that
/// parses to the same tree (offsets aside), encoding is stable, and the full JSON shape reads
/// back to the same tree. Tolerant encoding characters ([`tolerant_parse`]) are checked too.
pub fn parse_round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    tolerant_parse(&text);
    let Ok(m) = codec::parse_message(&text) else {
        return;
    };
    let owned = codec::parse_message_owned(&text, ParseOptions::default()).map(|p| p.message);
    assert_eq!(owned, Ok(m.clone().into_owned()), "parse_message_owned differs from parse + into_owned");
    let _ = (m.message_type(), m.control_id(), m.version());
    let encoded = codec::encode(&m);
    let again = match codec::parse_message(&encoded) {
        Ok(again) => again,
        Err(e) => panic!("the encoded message does not parse: {e}\ninput:   {text:?}\nencoded: {encoded:?}"),
    };
    assert_eq!(shape(&m), shape(&again), "encode + parse changed the tree\ninput:   {text:?}\nencoded: {encoded:?}");
    assert_eq!(codec::encode(&again), encoded, "encoding is not stable\ninput: {text:?}");

    let full = json::message_to_json(&m, true);
    let back = json::json_to_message(&full).unwrap_or_else(|| panic!("full JSON does not read back: {full}"));
    let mut expected = shape(&again);
    expected.segment_separator = SegmentSeparator::Cr;
    assert_eq!(shape(&back), expected, "JSON round trip changed the tree\ninput: {text:?}");
    if again.segment_separator == SegmentSeparator::Cr {
        // Offsets too: json_to_message gives those of the CR-encoded text.
        assert_eq!(back, again, "JSON round trip changed the offsets\ninput: {text:?}");
    }
    let _ = json::message_to_json(&m, false);
}

/// `encoding_characters: tolerant` accepts everything strict accepts, with the same tree and no
/// warning; what it accepts beyond that carries a warning, keeps MSH-2 verbatim (so encoding
/// gives MSH-2 back unchanged), and its encoded text parses (tolerantly) to the same tree.
pub fn tolerant_parse(text: &str) {
    let tolerant = ParseOptions { encoding_characters: EncodingCharacters::Tolerant };
    let strict = codec::parse_message(text);
    let loose = codec::parse_message_with(text, tolerant);
    match (&strict, &loose) {
        (Ok(s), Ok(l)) => {
            assert_eq!(s, &l.message, "tolerant parse differs from strict\ninput: {text:?}");
            assert!(l.warnings.is_empty(), "warning on a strictly valid message\ninput: {text:?}");
        }
        (Ok(_), Err(e)) => panic!("tolerant mode rejects what strict accepts: {e}\ninput: {text:?}"),
        (Err(_), Err(_)) => {}
        (Err(_), Ok(l)) => {
            assert!(!l.warnings.is_empty(), "tolerated without a warning\ninput: {text:?}");
            let encoded = codec::encode(&l.message);
            let msh2 = |m: &Message| m.segments.first().and_then(|s| s.fields.get(1)).cloned().map(|f| f.into_owned());
            let again = codec::parse_message_with(&encoded, tolerant)
                .unwrap_or_else(|e| panic!("encoded tolerated message does not parse: {e}\ninput: {text:?}"));
            assert_eq!(shape(&again.message), shape(&l.message), "tolerant encode + parse changed the tree");
            assert_eq!(msh2(&again.message), msh2(&l.message), "MSH-2 not kept verbatim");
            assert_eq!(
                again.warnings.iter().map(|w| w.code).collect::<Vec<_>>(),
                l.warnings.iter().map(|w| w.code).collect::<Vec<_>>()
            );
        }
    }
}

/// A reader that hands out `data` in chunks of the given sizes (cycled; 0 = all the rest).
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    sizes: &'a [u8],
    next: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Chunked<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            let size = match self.sizes.get(self.next % self.sizes.len().max(1)) {
                None | Some(0) => self.data.len(),
                Some(&s) => usize::from(s),
            };
            self.next += 1;
            self.end = self.pos.saturating_add(size).min(self.data.len());
        }
        Ok(&self.data[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

fn split_all<R: BufRead>(reader: R) -> Vec<RawMessage> {
    MessageSplitter::new(reader)
        .map(|item| item.expect("the reader never fails, so neither does the splitter"))
        .collect()
}

/// `hl7_split`: the first byte is how many read sizes follow (mod 16), then the sizes, then the
/// stream. Whatever the read sizes, the splitter returns the same items as on one whole buffer;
/// items are numbered in order, non-empty, non-overlapping, each the contiguous input range at
/// its offset, and never hold an MLLP frame end (0x1C).
pub fn split_consistent(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let whole = split_all(stream);
    let chunked = split_all(Chunked { data: stream, pos: 0, end: 0, sizes, next: 0 });
    assert_eq!(chunked, whole, "read sizes {sizes:?} changed the split of {stream:?}");

    let mut next_free = 0;
    for (i, m) in whole.iter().enumerate() {
        assert_eq!(m.index, i, "items are numbered in order: {stream:?}");
        assert!(!m.bytes.is_empty(), "item {i} is empty: {stream:?}");
        assert!(m.offset >= next_free, "item {i} overlaps the one before: {stream:?}");
        let end = m.offset + m.bytes.len();
        assert_eq!(
            stream.get(m.offset..end),
            Some(m.bytes.as_slice()),
            "item {i} is not the input at its offset: {stream:?}"
        );
        assert!(!m.bytes.contains(&0x1C), "item {i} holds a frame end: {stream:?}");
        next_free = end;
    }
}

const DELIMITER_SETS: &[&str] =
    &["|^~\\&", "|^~\\&#", "!@#$%", "|^~\\&\u{2016}", "\u{b6}\u{a7}~\u{a4}&", "|^~ &", "\t^~\\&"];

/// The delimiters of `MSH<chars>`, if the codec accepts them.
fn delimiters(chars: &str) -> Option<Delimiters> {
    codec::parse_message(&format!("MSH{chars}")).ok().map(|m| m.delimiters)
}

/// `hl7_escape`: the first byte picks the delimiters (high bit set: the first 4 or 5 chars of the
/// text are MSH-1 and MSH-2, if the codec accepts them; else one of [`DELIMITER_SETS`]), the rest
/// is a value. `unescape(escape(v)) == v`; the escaped text holds no delimiter, CR or LF (so it
/// survives being split into subcomponents); `unescape_strict` agrees with `unescape` whenever it
/// succeeds; escaping the unescaped text reads back the same.
pub fn escape_inverse(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (d, value) = if sel & 0x80 != 0 {
        let k = if sel & 1 == 0 { 4 } else { 5 };
        let split = text.char_indices().nth(k).map_or(text.len(), |(i, _)| i);
        match delimiters(&text[..split]) {
            Some(d) => (d, &text[split..]),
            None => return,
        }
    } else {
        let set = DELIMITER_SETS[usize::from(sel) % DELIMITER_SETS.len()];
        (delimiters(set).expect("the preset delimiter sets are valid"), &text[..])
    };

    let escaped = codec::escape(value, &d);
    let bad = |c: char| {
        c == d.field || c == d.component || c == d.repetition || c == d.subcomponent || c == '\r' || c == '\n'
    };
    assert!(!escaped.contains(bad), "escape left a delimiter in {escaped:?} (value {value:?}, delimiters {d:?})");
    assert_eq!(
        codec::unescape(&escaped, &d),
        value,
        "unescape(escape(v)) != v (escaped {escaped:?}, delimiters {d:?})"
    );
    // Strict unescaping may reject what escape keeps verbatim (`\XC3\`: hex that is not UTF-8),
    // but when it accepts, it agrees.
    if let Ok(strict) = codec::unescape_strict(&escaped, &d) {
        assert_eq!(strict, value, "unescape_strict(escape(v)) != v (escaped {escaped:?})");
    }

    // The value read as raw (delimiter-free) text.
    if !value.contains(bad) {
        let decoded = codec::unescape(value, &d);
        if let Ok(strict) = codec::unescape_strict(value, &d) {
            assert_eq!(strict, decoded, "unescape_strict and unescape disagree on {value:?}");
        }
        let again = codec::escape(&decoded, &d);
        assert_eq!(codec::unescape(&again, &d), decoded, "re-escaping {value:?} does not read back");
    }
    let none = Delimiters { escape: None, ..d };
    assert_eq!(codec::escape(value, &none), value);
    assert_eq!(codec::unescape(value, &none), value);
}

const PATH_MESSAGE: &str = "MSH|^~\\&|APP|FAC|RECV|RFAC|20240115103000||ORU^R01^ORU_R01|MSG1|P|2.5.1\r\
PID|1||123^^^HOSP^MR~456^^^SSA^SS||DOE^JOHN^Q&X&Y^JR||19800115|M|||1 MAIN ST^^TOWN^ST^12345\r\
OBR|1|ORD1|FIL1|CBC^Complete blood count\r\
OBX|1|NM|WBC^White cells||7.5|10*9/L|4.0-11.0|N|||F\r\
OBX|2|ST|NOTE^Note||line one\\.br\\line two~second rep|||A|||F\r\
OBX|3|TX|ESC^Escapes||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f||||||F\r\
ZPI|1|\"\"|x&y&z^w\r";

fn path_message() -> &'static Message<'static> {
    static M: OnceLock<Message<'static>> = OnceLock::new();
    M.get_or_init(|| codec::parse_message(PATH_MESSAGE).expect("the fixed message parses").into_owned())
}

/// `hl7_path`: bytes -> lossy UTF-8 -> `Path::parse`. A parsed path prints back as the same
/// text and reparses to itself; selecting it on a fixed message gives non-empty values, at most
/// one unless the path has `[*]`. Errors point inside the text.
pub fn path_round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Path::parse(&text) {
        Ok(p) => {
            let printed = p.to_string();
            assert_eq!(printed, text, "a parsed path does not print back as written");
            assert_eq!(Path::parse(&printed).as_ref(), Ok(&p));
            let values = path_message().select(&p);
            assert!(values.iter().all(|v| !v.is_empty()), "select gave an empty value for {p}");
            assert!(p.is_multi() || values.len() <= 1, "{p} is not multi but selected {values:?}");
        }
        Err(e) => {
            assert!(e.len >= 1, "path error with zero length: {e:?}");
            assert!(e.offset <= text.chars().count(), "path error points past the text: {e:?} for {text:?}");
        }
    }
}
