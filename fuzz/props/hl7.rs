//! Properties of the HL7 v2 codec, splitter, batch reader, character sets, escapes, paths and
//! standard validation (fuzz targets `hl7_*`).
//!
//! Shared by the fuzz crate and `specs/hl7v2/tests/fuzz_regressions.rs` (through `#[path]`).

use std::io::{self, BufRead, Read};
use std::sync::OnceLock;

use sluice_hl7v2::charset::{self, Charset, CharsetPolicy};
use sluice_hl7v2::codec::{self, BadSegments, Delimiters, EncodingCharacters, Message, ParseOptions, SegmentSeparator};
use sluice_hl7v2::path::Path;
use sluice_hl7v2::split::{MessageSplitter, RawMessage};
use sluice_hl7v2::{batch, json, validate};

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

/// What `encode(parse(text))` must give back: `text` itself, except for the segment layout the
/// tree does not record (codec docs, "Spellings and the round trip"): a leading BOM, blank lines
/// (empty or only spaces and tabs) and trailing line breaks dropped, segments joined by the
/// separator `encode` writes (CR when the text mixes separators).
fn relayout(text: &str, separator: SegmentSeparator) -> String {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = body.split('\n').flat_map(|l| l.split('\r'));
    lines.filter(|l| !l.bytes().all(|b| b == b' ' || b == b'\t')).collect::<Vec<_>>().join(separator.as_str())
}

/// `hl7_parse`: bytes -> lossy UTF-8 -> `parse_message`. A parsed message encodes to the text it
/// was parsed from, byte for byte up to the segment layout ([`relayout`]), whatever the escape
/// spellings; that text parses to the same tree (offsets aside), encoding is stable, and the
/// full JSON shape reads back to the same tree. Tolerant encoding characters
/// ([`tolerant_parse`]) are checked too.
pub fn parse_round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    tolerant_parse(&text);
    drop_parse(&text);
    let Ok(m) = codec::parse_message(&text) else {
        return;
    };
    let encoded = codec::encode(&m);
    assert_eq!(encoded, relayout(&text, m.segment_separator), "encode(parse(text)) is not the text");
    let owned = codec::parse_message_owned(&text, ParseOptions::default()).map(|p| p.message);
    assert_eq!(owned, Ok(m.clone().into_owned()), "parse_message_owned differs from parse + into_owned");
    let _ = (m.message_type(), m.control_id(), m.version());
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
/// warning; what it accepts beyond that carries a warning, encodes to the text it was parsed
/// from (up to the layout, [`relayout`]; MSH-2 verbatim), and its encoded text parses
/// (tolerantly) to the same tree.
pub fn tolerant_parse(text: &str) {
    let tolerant =
        ParseOptions { encoding_characters: EncodingCharacters::Tolerant, bad_segments: BadSegments::Reject };
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
            assert_eq!(
                encoded,
                relayout(text, l.message.segment_separator),
                "tolerant encode(parse(text)) is not the text"
            );
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

/// `bad_segments: drop` ([`BadSegments::Drop`]) changes nothing for a text strict parsing
/// accepts, fails as strict does on what makes the whole message unreadable (anything but
/// `HL7004`), and otherwise keeps every readable segment: the kept segments and the dropped
/// ones number 1..=n without gap or overlap, in text order; each dropped range is one
/// non-blank line; the text without the dropped lines parses strictly to the same segments;
/// and the lazy view drops the same segments and keeps the same ones.
pub fn drop_parse(text: &str) {
    let lenient = ParseOptions { bad_segments: BadSegments::Drop, ..ParseOptions::default() };
    let strict = codec::parse_message(text);
    let dropping = codec::parse_message_with(text, lenient);
    let view = sluice_hl7v2::view::MessageView::parse_with(text, lenient);
    match (&dropping, &view) {
        (Ok(p), Ok(v)) => {
            assert_eq!(p.dropped, v.dropped, "view and parser drop different segments\ninput: {text:?}");
            let offsets: Vec<usize> = p.message.segments.iter().map(|s| s.offset).collect();
            assert_eq!(offsets, v.segments.iter().map(|s| s.offset).collect::<Vec<_>>(), "view keeps other segments");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "view and parser fail differently\ninput: {text:?}"),
        _ => panic!("view and parser disagree under bad_segments: drop\ninput: {text:?}"),
    }
    match (&strict, &dropping) {
        (Ok(s), Ok(d)) => {
            assert_eq!(s, &d.message, "drop changed a valid message\ninput: {text:?}");
            assert!(d.dropped.is_empty(), "dropped a segment of a valid message\ninput: {text:?}");
        }
        (Err(e), Err(d)) => {
            assert_ne!(e.code, "HL7004", "a bad segment still rejects the message\ninput: {text:?}");
            assert_eq!(e, d, "drop fails differently from strict\ninput: {text:?}");
        }
        (Ok(_), Err(e)) => panic!("drop rejects what strict accepts: {e}\ninput: {text:?}"),
        (Err(e), Ok(d)) => {
            assert_eq!(e.code, "HL7004", "drop accepted a message strict rejects as a whole\ninput: {text:?}");
            assert_eq!(d.dropped.first().map(|x| &x.error), Some(e), "the first drop is strict's error");
            // Every segment is kept or dropped, once, in text order.
            let mut all: Vec<(usize, usize)> = d.message.segments.iter().map(|s| (s.line, s.offset)).collect();
            all.extend(d.dropped.iter().map(|x| (x.line, x.range.start)));
            all.sort_unstable();
            for (i, (line, _)) in all.iter().enumerate() {
                assert_eq!(*line, i + 1, "segment numbers have a gap or a repeat\ninput: {text:?}");
            }
            assert!(all.windows(2).all(|w| w[0].1 < w[1].1), "segments out of text order\ninput: {text:?}");
            let mut rest = String::new();
            let mut at = 0;
            for x in &d.dropped {
                let line = &text[x.range.clone()];
                assert!(!line.contains(['\r', '\n']) && !line.bytes().all(|b| b == b' ' || b == b'\t'));
                assert_eq!(x.error.code, "HL7004");
                assert_eq!(x.error.offset, x.range.start);
                rest.push_str(&text[at..x.range.start]);
                at = x.range.end;
            }
            rest.push_str(&text[at..]);
            let kept = codec::parse_message(&rest)
                .unwrap_or_else(|e| panic!("the text without its dropped lines does not parse: {e}\ninput: {text:?}"));
            let ids_fields = |m: &Message| -> Vec<(String, String)> {
                let d = m.delimiters;
                let one = |s: &codec::Segment| {
                    codec::encode(&Message { delimiters: d, segments: vec![s.clone()], ..Message::default() })
                };
                m.segments.iter().map(|s| (s.id.to_string(), one(s))).collect()
            };
            assert_eq!(
                ids_fields(&kept),
                ids_fields(&d.message),
                "a good segment was lost or changed\ninput: {text:?}"
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

fn batch_all<R: BufRead>(reader: R) -> Vec<batch::Item> {
    batch::BatchReader::new(reader)
        .map(|item| item.expect("the reader never fails, so neither does the batch reader"))
        .collect()
}

/// The lines of `bytes` that carry message content, for counting what a reader kept: split at
/// CR and LF, without empty lines and without `MSH` and `DSC` lines (continuation reassembly
/// drops a continuation's MSH and a fragment's DSC; both may legitimately go).
fn content_lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"MSH") && !l.starts_with(b"DSC"))
        .collect()
}

/// `hl7_batch`: same input layout as `hl7_split`. Whatever the read sizes, [`batch::BatchReader`]
/// yields the same items; items are numbered 0.. in order; problems carry a module code, a
/// message without input bytes that are not ASCII graphic, and (for lost fragments) their bytes;
/// nothing is lost: every content line the splitter saw comes out in a message or in a
/// problem's bytes, as often as it went in; without `DSC` and `ADD` the messages are exactly the
/// splitter's.
pub fn batch_conserves(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let whole = batch_all(stream);
    let chunked = batch_all(Chunked { data: stream, pos: 0, end: 0, sizes, next: 0 });
    assert_eq!(chunked, whole, "read sizes {sizes:?} changed the batch items of {stream:?}");

    let mut kept: Vec<&[u8]> = Vec::new();
    for (i, item) in whole.iter().enumerate() {
        assert_eq!(item.index(), i, "items are numbered in order: {stream:?}");
        match item {
            batch::Item::Message(m) => kept.extend(content_lines(&m.bytes)),
            batch::Item::Problem(p) => {
                let known = batch::ERROR_CODES.iter().any(|(code, _, _)| *code == p.code);
                assert!(known, "unregistered problem code {}: {stream:?}", p.code);
                assert!(
                    p.message.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                    "problem message is not plain text: {:?}",
                    p.message
                );
                if matches!(p.code, "HL7022" | "HL7023") {
                    assert!(!p.bytes.is_empty(), "{} without the fragment bytes: {stream:?}", p.code);
                    kept.extend(content_lines(&p.bytes));
                }
            }
        }
    }
    let split = split_all(stream);
    let mut seen: Vec<&[u8]> = split.iter().flat_map(|m| content_lines(&m.bytes)).collect();
    kept.sort();
    seen.sort();
    assert_eq!(kept, seen, "content lines were lost or invented: {stream:?}");

    let has = |needle: &[u8]| stream.windows(3).any(|w| w == needle);
    if !has(b"DSC") && !has(b"ADD") {
        let messages: Vec<RawMessage> =
            whole.iter().filter_map(|i| if let batch::Item::Message(m) = i { Some(m.clone()) } else { None }).collect();
        let plain: Vec<Vec<u8>> = split.into_iter().map(|m| m.bytes).collect();
        let got: Vec<Vec<u8>> = messages.into_iter().map(|m| m.bytes).collect();
        assert_eq!(got, plain, "without continuations the messages are the splitter's: {stream:?}");
    }
}

/// The policies `hl7_charset` picks from with its first byte.
fn charset_policy(selector: u8) -> CharsetPolicy {
    const FIXED: &[Charset] = &[
        Charset::Ascii,
        Charset::Utf8,
        Charset::Utf16Le,
        Charset::Utf16Be,
        Charset::Iso8859(1),
        Charset::Iso8859(2),
        Charset::Iso8859(5),
        Charset::Iso8859(9),
        Charset::Iso8859(15),
        Charset::Windows1252,
        Charset::Gb18030,
        Charset::Big5,
        Charset::EucKr,
    ];
    match usize::from(selector) % (FIXED.len() + 2) {
        0 => CharsetPolicy::Auto,
        1 => CharsetPolicy::Utf16,
        i => CharsetPolicy::Fixed(FIXED[i - 2]),
    }
}

/// `hl7_charset`: byte 0 picks a policy (auto, UTF-16, or one fixed set), the rest are a
/// message's bytes. Decoding never replaces a byte silently: UTF-8 is the bytes themselves, a
/// single-byte set gives one character per byte; offsets map back monotonically and end at the
/// end of the bytes; an `HL7011` points inside the bytes, and everything before it decodes.
/// [`charset::Utf8Stream`] passes non-UTF-16 input through byte for byte and transcodes UTF-16
/// input to the same text as `decode`.
pub fn charset_decodes_faithfully(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let policy = charset_policy(selector);
    match charset::decode(bytes, &policy) {
        Ok(d) => {
            let text = d.text.as_ref();
            match d.charset {
                Charset::Utf8 | Charset::Ascii => assert_eq!(text.as_bytes(), bytes, "UTF-8 text is the bytes"),
                c if c.is_single_byte() => {
                    assert_eq!(text.chars().count(), bytes.len(), "{c:?}: one character per byte")
                }
                _ => {}
            }
            if !matches!(d.charset, Charset::Gb18030 | Charset::Big5 | Charset::EucKr) {
                // CJK sets map back by re-encoding, which is not exact for every character.
                let mut last = d.source_offset(0);
                for (i, _) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
                    let at = d.source_offset(i);
                    assert!(at >= last && at <= bytes.len(), "{:?}: offset {i} maps to {at}", d.charset);
                    last = at;
                }
                assert_eq!(last, bytes.len(), "{:?}: the end of the text is the end of the bytes", d.charset);
            }
        }
        Err(e) => {
            assert!(matches!(e.code, "HL7011" | "HL7012"), "unexpected code {}", e.code);
            assert!(e.offset <= bytes.len(), "{e} points past {} bytes", bytes.len());
            if let (Some(c), "HL7011") = (e.charset, e.code)
                && !c.is_utf16()
            {
                assert!(charset::decode_as(&bytes[..e.offset], c).is_ok(), "{c:?}: bytes before {e} do not decode");
            }
        }
    }

    let mut streamed = Vec::new();
    let (mut stream, utf16) = charset::Utf8Stream::new(bytes).expect("reading a slice does not fail");
    let read = stream.read_to_end(&mut streamed);
    match utf16 {
        None => {
            read.expect("a pass-through stream does not fail");
            assert_eq!(streamed, bytes, "a non-UTF-16 stream passes through unchanged");
        }
        Some(c) => match (read, charset::decode_as(bytes, c)) {
            (Ok(_), Ok((text, _))) => assert_eq!(streamed, text.as_bytes(), "{c:?}: stream and decode disagree"),
            (Err(_), Err(_)) => {}
            (r, d) => panic!("{c:?}: stream and decode disagree on validity: {:?} vs {:?}", r.is_ok(), d.is_ok()),
        },
    }
}

/// Put in front of every value by `validate_is_safe` to see whether a finding quotes one.
const VALUE_MARK: char = '\u{2603}';

/// `hl7_validate`: bytes -> lossy UTF-8 -> `parse_message`; byte 0 picks the options. If it
/// parses, `validate` does not panic; findings are sorted by segment number and point at
/// segments that exist; every code is registered; paths are segment ids with optional index,
/// field, component; and no finding quotes a value of the message (checked with a marker put
/// in front of every value).
pub fn validate_is_safe(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let Ok(m) = codec::parse_message(&text) else {
        return;
    };
    let options = validate::Options {
        version: None,
        default_version: None,
        structure: sel & 1 == 0,
        lengths: sel & 2 == 0,
        tables: sel & 4 == 0,
        unexpected_segments: if sel & 8 == 0 { validate::Severity::Error } else { validate::Severity::Warning },
        z_segments: if sel & 16 == 0 { None } else { Some(vec!["ZPI".to_string()]) },
        severity_overrides: Vec::new(),
    };
    let findings = validate::validate(&m, &options);
    let mut last = 0;
    for f in &findings {
        assert!(validate::CODES.iter().any(|(c, _, _)| *c == f.code), "unregistered code {}", f.code);
        assert!(f.segment >= last, "findings out of segment order: {findings:?}");
        assert!(f.segment <= m.segments.len(), "finding {f:?} past the last segment");
        last = f.segment;
        let path_ok = f.path.is_empty() || f.path.chars().all(|c| c.is_ascii_alphanumeric() || "[]-.*".contains(c));
        assert!(path_ok, "finding path is not a path: {f:?}");
    }

    // The same message with a marker in front of every value (MSH-1 and MSH-2 aside): no
    // finding may carry the marker, whatever the values are. A marker exactly spots quoting,
    // where searching for the values themselves would also hit fixed words of the messages.
    let d = &m.delimiters;
    if [d.field, d.component, d.repetition, d.subcomponent].contains(&VALUE_MARK) || d.escape == Some(VALUE_MARK) {
        return;
    }
    let mut marked = m.clone().into_owned();
    for (i, seg) in marked.segments.iter_mut().enumerate() {
        let skip = if i == 0 && seg.id == "MSH" { 2 } else { 0 };
        let subs = seg.fields.iter_mut().skip(skip).flat_map(|f| &mut f.repetitions).flat_map(|r| &mut r.components);
        for sub in subs.flat_map(|c| &mut c.subcomponents).filter(|v| !v.is_empty()) {
            *sub = format!("{VALUE_MARK}{sub}").into();
        }
    }
    for f in validate::validate(&marked, &options) {
        assert!(!f.message.contains(VALUE_MARK), "finding {} quotes a value: {f:?}", f.code);
        assert!(!f.path.contains(VALUE_MARK), "finding {} path quotes a value: {f:?}", f.code);
    }
}

/// `mllp_framer`: byte 0 picks `max_frame_bytes` (1 + byte 0 * 4, so 1..1021; oversize frames
/// are common), byte 1 the number of read sizes (mod 16), then the sizes, then the stream. The
/// [`sluice_hl7v2::mllp::Framer`] fed the stream in those chunks (cycled; 0 = the rest) gives
/// exactly the events it gives for the whole stream at once; frames and truncated frames hold
/// no VT or FS and at most `max_frame_bytes` bytes; oversize frames are longer than that and
/// keep at most `HEAD_BYTES`; offsets increase and each event's bytes are the input's bytes at
/// its offset; no byte is counted twice; the framer never holds more than
/// `max_frame_bytes + 2 * HEAD_BYTES` bytes; and a frame of the payloads re-framed with
/// `mllp::frame` gives them back.
pub fn mllp_consistent(data: &[u8]) {
    use sluice_hl7v2::mllp::{self, Event, Framer, HEAD_BYTES};
    let Some((&max_byte, rest)) = data.split_first() else { return };
    let max = 1 + usize::from(max_byte) * 4;
    let Some((&n, rest)) = rest.split_first() else { return };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let run = |chunks: &mut dyn Iterator<Item = &[u8]>| {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
            assert!(f.held_bytes() <= max + 2 * HEAD_BYTES, "the framer holds {} bytes", f.held_bytes());
        }
        f.finish(&mut out);
        out
    };
    let whole = run(&mut std::iter::once(stream));
    let mut pieces = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let size = sizes.get(i % sizes.len().max(1)).map_or(0, |&s| usize::from(s));
        let end = if size == 0 { stream.len() } else { (pos + size).min(stream.len()) };
        pieces.push(&stream[pos..end]);
        pos = end;
        i += 1;
    }
    let chunked = run(&mut pieces.into_iter());
    assert_eq!(whole, chunked, "chunking changed the events");
    let mut last_end = 0u64;
    let mut payloads = Vec::new();
    for e in &whole {
        let (offset, len, bytes) = match e {
            Event::Frame { offset, payload } => {
                payloads.push(payload.clone());
                (*offset, payload.len() as u64, payload.as_slice())
            }
            Event::Truncated { offset, payload } => (*offset, payload.len() as u64, payload.as_slice()),
            Event::Garbage { offset, len, head } => {
                assert!(head.len() <= HEAD_BYTES && head.len() as u64 <= *len && *len > 0);
                (*offset, *len, head.as_slice())
            }
            Event::Oversize { offset, len, head, .. } => {
                assert!(*len > max as u64 && head.len() <= HEAD_BYTES.min(max));
                (*offset, *len, head.as_slice())
            }
        };
        if let Event::Frame { payload, .. } | Event::Truncated { payload, .. } = e {
            assert!(payload.len() <= max);
            assert!(!payload.contains(&mllp::VT) && !payload.contains(&mllp::FS));
        }
        assert!(offset >= last_end, "events overlap or go back");
        let start = usize::try_from(offset).unwrap();
        assert_eq!(&stream[start..start + bytes.len()], bytes, "event bytes are not the input's");
        last_end = offset + len;
        assert!(last_end <= stream.len() as u64);
    }
    let reframed: Vec<u8> = payloads.iter().flat_map(|p| mllp::frame(p)).collect();
    let again: Vec<Vec<u8>> = run(&mut std::iter::once(reframed.as_slice()))
        .into_iter()
        .map(|e| match e {
            Event::Frame { payload, .. } => payload,
            other => panic!("re-framed payloads gave {other:?}"),
        })
        .collect();
    assert_eq!(again, payloads);
}

/// ACKs for any bytes (run by the regression tests over the `hl7_parse` and `mllp_framer`
/// corpora): the header salvaged from the bytes (or read from them when they parse) gives, in
/// both modes and for every outcome, ACKs that parse back to their own tree, echo the inbound
/// MSH-10 in MSA-2 and carry one ERR segment per finding.
pub fn ack_round_trip(data: &[u8]) {
    use sluice_hl7v2::ack::{self, AckFinding, AckMode, AckOptions, ErrSeverity, Header, Outcome, Status};
    let text = String::from_utf8_lossy(data);
    let parsed = codec::parse_message(&text).ok().and_then(|m| Header::from_message(&m));
    for header in parsed.into_iter().chain(Header::salvage(data)) {
        for status in [Status::Accepted, Status::Error, Status::Rejected] {
            let findings = if status == Status::Accepted {
                vec![]
            } else {
                vec![AckFinding {
                    hl7_code: ack::hl7_error_code("HL7V201"),
                    code: "HL7V201".into(),
                    location: Some("PID[2]-3.1".into()),
                    message: "required | field ^ empty \\ & ~".into(),
                    severity: ErrSeverity::Error,
                }]
            };
            let outcome = Outcome { status, findings };
            for mode in [AckMode::Original, AckMode::Enhanced] {
                let acks = ack::acknowledge(&header, &outcome, &AckOptions { mode, timestamp: "20240101", seed: "s" });
                for a in acks.accept.iter().chain(acks.application.iter()) {
                    let again = codec::parse_message(&a.text)
                        .unwrap_or_else(|e| panic!("the ACK does not parse: {e}\nack: {:?}", a.text));
                    assert_eq!(again, a.message, "the ACK's tree is not what its text parses to");
                    let msa = again.segments_named("MSA").next().expect("MSA");
                    assert_eq!(msa.field(2).and_then(|f| f.first()), header.control_id.as_deref());
                    assert_eq!(again.segments_named("ERR").count(), outcome.findings.len());
                }
            }
        }
    }
}
