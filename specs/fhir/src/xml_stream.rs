//! Large FHIR XML Bundles, split entry by entry as the bytes stream in: the XML counterpart of
//! [`crate::stream::BundleSplitter`], handing out the same [`Part`]s with each part already
//! converted to FHIR JSON, so that everything downstream reads XML and JSON files alike.
//!
//! [`XmlBundleSplitter`] scans the markup with a small state machine (tags, attribute quotes,
//! comments, CDATA, processing instructions; nesting depth as a counter, no tree). Below a
//! `<Bundle>` root, each `<entry>` element's bytes are cut out and read by [`crate::xml`]
//! inside a copy of the root's start tag (so its namespace declarations hold), then converted
//! to JSON; the Bundle's other elements (`type`, `link`, `signature`, ...) are kept and read
//! the same way for [`Part::Start`] (at the first entry) and [`Part::End`]. A root that is not
//! a Bundle is read whole, as [`crate::xml::parse_with`] would.
//!
//! Invariants:
//! - Memory is flat: one entry (bounded by [`Limits::max_bytes`]; a larger one is skipped, its
//!   bytes not kept, and reported as [`codes::TOO_LARGE`]), the Bundle's other elements (same
//!   bound) and a fixed read buffer.
//! - Never recurses, never panics. The scanner only finds where elements start and end;
//!   well-formedness, namespaces, the schema and depth limits are checked by the XML reader on
//!   each part, and its errors are reported at their byte offset in the file. A DTD is refused
//!   (as [`crate::xml`] does): no entity expansion.
//! - Errors quote no content: codes, offsets and what kind of markup was wrong.

use std::io::Read;

use crate::codes;
use crate::json::{CodecError, Limits};
use crate::stream::Part;
use crate::tree::Node;

const READ_BUFFER: usize = 64 * 1024;

/// One piece of markup, read after its `<`.
#[derive(Debug, PartialEq, Eq)]
enum Markup {
    /// `<name ...>`, with its qualified name.
    Start(Vec<u8>),
    /// `<name .../>`.
    Empty(Vec<u8>),
    /// `</name>`, with its qualified name.
    End(Vec<u8>),
    /// A comment or a processing instruction (`<?xml ...?>`): no content.
    Ignorable,
    /// `<![CDATA[...]]>`: character data.
    CData,
    /// `<!DOCTYPE ...>` or another declaration: refused.
    Declaration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the root element.
    Prolog,
    /// Between the children of a `<Bundle>` root.
    Bundle,
    Done,
}

/// Splits an XML Bundle into its entries (as JSON) while reading.
pub struct XmlBundleSplitter<R: Read> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Bytes consumed so far: the offset of the next byte in the input.
    offset: usize,
    limits: Limits,
    state: State,
    /// Whether consumed bytes are copied into `capture`.
    capturing: bool,
    /// The bytes of the element being cut out, from its `<`.
    capture: Vec<u8>,
    /// The element being cut out passed `limits.max_bytes`: its bytes are no longer kept.
    capture_over: bool,
    /// Everything before and including the root's start tag (prolog and `<Bundle ...>`).
    root_tag: Vec<u8>,
    /// Offset of the root's start tag.
    root_offset: usize,
    /// The root's qualified name, for the closing tag of the documents built around parts.
    root_name: Vec<u8>,
    /// The Bundle's children other than `entry`, as written.
    header: Vec<u8>,
    header_over: bool,
    entries: usize,
    /// The first entry, handed out after the [`Part::Start`] it brought on.
    pending: Option<Part>,
}

impl<R: Read> XmlBundleSplitter<R> {
    pub fn new(reader: R, limits: Limits) -> Self {
        XmlBundleSplitter {
            reader,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            pos: 0,
            len: 0,
            offset: 0,
            limits,
            state: State::Prolog,
            capturing: false,
            capture: Vec::new(),
            capture_over: false,
            root_tag: Vec::new(),
            root_offset: 0,
            root_name: Vec::new(),
            header: Vec::new(),
            header_over: false,
            entries: 0,
            pending: None,
        }
    }

    /// The next byte (copied into `capture` when capturing), `None` at the end of the input.
    fn byte(&mut self) -> std::io::Result<Option<u8>> {
        if self.pos == self.len {
            self.len = loop {
                match self.reader.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.pos = 0;
            if self.len == 0 {
                return Ok(None);
            }
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        self.offset += 1;
        if self.capturing && !self.capture_over {
            if self.capture.len() < self.limits.max_bytes {
                self.capture.push(b);
            } else {
                self.capture_over = true;
                self.capture = Vec::new();
            }
        }
        Ok(Some(b))
    }

    fn syntax(&self, message: &str) -> CodecError {
        CodecError { code: codes::XML_SYNTAX, offset: self.offset, message: format!("not well-formed XML: {message}") }
    }

    /// Consumes bytes up to and including `end` (`-->`, `?>`, `]]>`: at most three bytes).
    fn skip_past(&mut self, end: &[u8], what: &str) -> std::io::Result<Result<(), CodecError>> {
        // The last bytes read, compared whole: `]]]>` ends a CDATA section after its first `]`.
        let mut last = [0u8; 3];
        let mut seen = 0;
        while let Some(b) = self.byte()? {
            last = [last[1], last[2], b];
            seen += 1;
            if seen >= end.len() && last.ends_with(end) {
                return Ok(Ok(()));
            }
        }
        Ok(Err(self.syntax(&format!("the end of the input inside {what}"))))
    }

    /// Reads one piece of markup; its `<` was consumed.
    fn markup(&mut self) -> std::io::Result<Result<Markup, CodecError>> {
        let Some(first) = self.byte()? else {
            return Ok(Err(self.syntax("the end of the input after `<`")));
        };
        match first {
            b'?' => return Ok(self.skip_past(b"?>", "a processing instruction")?.map(|()| Markup::Ignorable)),
            b'!' => {
                let mut lead = Vec::new();
                while lead.len() < 7 {
                    match self.byte()? {
                        Some(b) => lead.push(b),
                        None => return Ok(Err(self.syntax("the end of the input inside a declaration"))),
                    }
                    if lead == b"--" {
                        return Ok(self.skip_past(b"-->", "a comment")?.map(|()| Markup::Ignorable));
                    }
                }
                if lead == b"[CDATA[" {
                    return Ok(self.skip_past(b"]]>", "a CDATA section")?.map(|()| Markup::CData));
                }
                return Ok(Ok(Markup::Declaration));
            }
            b'/' => {
                let mut name = Vec::new();
                loop {
                    match self.byte()? {
                        None => return Ok(Err(self.syntax("the end of the input inside a tag"))),
                        Some(b'>') => return Ok(Ok(Markup::End(name))),
                        Some(b) if b.is_ascii_whitespace() => break,
                        Some(b) => name.push(b),
                    }
                }
                return Ok(self.tag_rest()?.map(|_| Markup::End(name)));
            }
            _ => {}
        }
        let mut name = vec![first];
        loop {
            match self.byte()? {
                None => return Ok(Err(self.syntax("the end of the input inside a tag"))),
                Some(b'>') => return Ok(Ok(Markup::Start(name))),
                Some(b'/') => {
                    return Ok(match self.byte()? {
                        Some(b'>') => Ok(Markup::Empty(name)),
                        _ => Err(self.syntax("`/` not followed by `>` in a tag")),
                    });
                }
                Some(b) if b.is_ascii_whitespace() => break,
                Some(b) => name.push(b),
            }
        }
        Ok(self.tag_rest()?.map(|empty| if empty { Markup::Empty(name) } else { Markup::Start(name) }))
    }

    /// Consumes the rest of a tag through its `>` (attribute values may hold `>` and `/`);
    /// whether it ended with `/>`.
    fn tag_rest(&mut self) -> std::io::Result<Result<bool, CodecError>> {
        let mut quote = None;
        let mut slash = false;
        while let Some(b) = self.byte()? {
            match (quote, b) {
                (Some(q), b) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(b),
                (None, b'>') => return Ok(Ok(slash)),
                _ => {}
            }
            slash = quote.is_none() && b == b'/';
        }
        Ok(Err(self.syntax("the end of the input inside a tag")))
    }

    /// Consumes the content of the element `name` whose start tag was read, through its end
    /// tag. End tags are matched by name, so that an element with broken markup still ends
    /// where its own end tag is, and the elements after it are cut out right: an end tag that
    /// closes an outer element closes the inner ones too, a stray one is passed over; either
    /// makes the element broken (`Ok(Some(error))`, at the first such tag). `Err`: the input
    /// ends inside the element, or holds a declaration.
    fn element_rest(&mut self, name: Vec<u8>) -> std::io::Result<Result<Option<CodecError>, CodecError>> {
        // The names of the open elements, innermost last, bounded like the reader's depth.
        let mut open = vec![name];
        let mut broken = None;
        loop {
            match self.byte()? {
                None => return Ok(Err(self.syntax("the end of the input inside an element"))),
                Some(b'<') => {
                    let at = self.offset - 1;
                    match self.markup()? {
                        Err(e) => return Ok(Err(e)),
                        Ok(Markup::Start(n)) => {
                            if open.len() > self.limits.max_depth.saturating_mul(2) {
                                return Ok(Err(CodecError {
                                    code: codes::TOO_DEEP,
                                    offset: at,
                                    message: format!("elements are nested more than {} deep", self.limits.max_depth),
                                }));
                            }
                            open.push(n);
                        }
                        Ok(Markup::End(n)) => {
                            if open.last() != Some(&n) {
                                broken.get_or_insert(CodecError {
                                    code: codes::XML_SYNTAX,
                                    offset: at,
                                    message: "not well-formed XML: a closing tag that does not match its opening tag"
                                        .into(),
                                });
                                match open.iter().rposition(|o| *o == n) {
                                    Some(i) => open.truncate(i + 1),
                                    None => continue,
                                }
                            }
                            open.pop();
                            if open.is_empty() {
                                return Ok(Ok(broken));
                            }
                        }
                        Ok(Markup::Declaration) => return Ok(Err(self.syntax("a declaration inside an element"))),
                        Ok(Markup::Empty(_) | Markup::Ignorable | Markup::CData) => {}
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// A document made of the root's start tag, `body` and the root's end tag.
    fn around(&self, body: &[u8]) -> Vec<u8> {
        let mut doc = Vec::with_capacity(self.root_tag.len() + body.len() + self.root_name.len() + 3);
        doc.extend_from_slice(&self.root_tag);
        doc.extend_from_slice(body);
        doc.extend_from_slice(b"</");
        doc.extend_from_slice(&self.root_name);
        doc.push(b'>');
        doc
    }

    /// Reads `doc` (built by [`Self::around`] from bytes that began at `body_offset` in the
    /// input) with the XML reader. `root_tag` is the input's first bytes, so an error in it is
    /// at the same offset; one in the body is moved to where the body is in the input.
    fn read(&self, doc: &[u8], body_offset: usize) -> Result<Node, CodecError> {
        let limits = Limits { max_bytes: self.limits.max_bytes.saturating_add(doc.len()), ..self.limits };
        crate::xml::parse_with(doc, limits).map_err(|mut e| {
            if e.offset >= self.root_tag.len() {
                e.offset = body_offset + (e.offset - self.root_tag.len());
            }
            e
        })
    }

    /// The Bundle's elements other than `entry` as FHIR JSON.
    fn header_json(&self) -> Result<Vec<u8>, CodecError> {
        if self.header_over {
            return Err(CodecError {
                code: codes::TOO_LARGE,
                offset: self.root_offset,
                message: format!(
                    "the Bundle's elements other than its entries are larger than the limit of {} bytes",
                    self.limits.max_bytes
                ),
            });
        }
        let doc = self.around(&self.header);
        // The header's elements come from all over the file: offsets point at the root.
        let node = crate::xml::parse_with(&doc, Limits { max_bytes: usize::MAX, ..self.limits }).map_err(|mut e| {
            e.offset = self.root_offset;
            e
        })?;
        Ok(node.to_json().into_bytes())
    }

    fn prolog(&mut self) -> std::io::Result<Result<Option<Part>, CodecError>> {
        self.capturing = true;
        loop {
            let Some(b) = self.byte()? else {
                return Ok(Err(CodecError {
                    code: codes::XML_SYNTAX,
                    offset: self.offset,
                    message: "not well-formed XML: no root element".into(),
                }));
            };
            if b != b'<' {
                continue;
            }
            let at = self.offset - 1;
            match self.markup()? {
                Err(e) => return Ok(Err(e)),
                Ok(Markup::Declaration) => {
                    return Ok(Err(CodecError {
                        code: codes::XML_SYNTAX,
                        offset: at,
                        message: "not well-formed XML: a DTD, which FHIR forbids".into(),
                    }));
                }
                Ok(Markup::Ignorable) => {}
                Ok(Markup::End(_) | Markup::CData) => {
                    return Ok(Err(CodecError {
                        code: codes::XML_SYNTAX,
                        offset: at,
                        message: "not well-formed XML: markup before the root element".into(),
                    }));
                }
                Ok(Markup::Empty(_)) => {
                    // `<Bundle/>` or an empty resource: the whole document is read.
                    self.capturing = false;
                    let doc = std::mem::take(&mut self.capture);
                    return Ok(Ok(Some(Part::End(self.whole(doc)))));
                }
                Ok(Markup::Start(name)) => {
                    self.root_offset = at;
                    let local = name.rsplit(|&b| b == b':').next().unwrap_or_default();
                    if local != b"Bundle" {
                        return self.rest_whole().map(|p| Ok(Some(p)));
                    }
                    self.capturing = false;
                    self.root_tag = std::mem::take(&mut self.capture);
                    self.root_name = name;
                    self.state = State::Bundle;
                    return Ok(Ok(None));
                }
            }
        }
    }

    /// A document whose root is not a Bundle: the rest of the input is read and the whole
    /// converted.
    fn rest_whole(&mut self) -> std::io::Result<Part> {
        while self.byte()?.is_some() {
            if self.capture_over {
                // Counted but not kept: the size is all the error needs.
                self.capturing = false;
            }
        }
        self.capturing = false;
        self.state = State::Done;
        if self.capture_over {
            return Ok(Part::End(Err(CodecError {
                code: codes::TOO_LARGE,
                offset: 0,
                message: format!("the input is larger than the limit of {} bytes", self.limits.max_bytes),
            })));
        }
        let doc = std::mem::take(&mut self.capture);
        Ok(Part::End(self.whole(doc)))
    }

    fn whole(&mut self, doc: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        self.state = State::Done;
        crate::xml::parse_with(&doc, self.limits).map(|n| n.to_json().into_bytes())
    }

    /// The next child of the Bundle root: an entry, or the end of the Bundle.
    fn child(&mut self) -> std::io::Result<Result<Option<Part>, CodecError>> {
        loop {
            let Some(b) = self.byte()? else {
                return Ok(Err(self.syntax("the end of the input inside the Bundle")));
            };
            if b != b'<' {
                // Text directly in a Bundle is not FHIR; kept so the reader reports it.
                if !b.is_ascii_whitespace() {
                    self.push_header(&[b]);
                }
                continue;
            }
            let at = self.offset - 1;
            self.capture.clear();
            self.capture.push(b'<');
            self.capture_over = false;
            self.capturing = true;
            let mut markup = self.markup()?;
            let mut broken = None;
            if let Ok(Markup::Start(name)) = &markup {
                match self.element_rest(name.clone())? {
                    Ok(b) => broken = b,
                    Err(e) => markup = Err(e),
                }
            }
            self.capturing = false;
            let markup = match markup {
                Ok(m) => m,
                Err(e) => return Ok(Err(e)),
            };
            let name = match markup {
                Markup::Start(n) | Markup::Empty(n) => n,
                Markup::End(name) => {
                    self.state = State::Done;
                    if name != self.root_name {
                        return Ok(Err(CodecError {
                            code: codes::XML_SYNTAX,
                            offset: at,
                            message: "not well-formed XML: a closing tag that does not match its opening tag".into(),
                        }));
                    }
                    return Ok(Ok(Some(Part::End(self.header_json()))));
                }
                Markup::Ignorable => continue,
                Markup::CData => {
                    let bytes = std::mem::take(&mut self.capture);
                    self.push_header(&bytes);
                    continue;
                }
                Markup::Declaration => {
                    return Ok(Err(CodecError {
                        code: codes::XML_SYNTAX,
                        offset: at,
                        message: "not well-formed XML: a declaration inside the Bundle".into(),
                    }));
                }
            };
            let local = name.rsplit(|&b| b == b':').next().unwrap_or_default();
            if local != b"entry" {
                if self.capture_over {
                    self.header_over = true;
                } else {
                    let bytes = std::mem::take(&mut self.capture);
                    self.push_header(&bytes);
                }
                continue;
            }
            let index = self.entries;
            self.entries += 1;
            let bytes = if let Some(e) = broken {
                Err(e)
            } else if self.capture_over {
                Err(CodecError {
                    code: codes::TOO_LARGE,
                    offset: at,
                    message: format!("the entry is larger than the limit of {} bytes", self.limits.max_bytes),
                })
            } else {
                let doc = self.around(&self.capture);
                self.read(&doc, at).and_then(|bundle| {
                    match bundle.get("entry").and_then(Node::as_array).and_then(<[Node]>::first) {
                        Some(entry) => Ok(entry.to_json().into_bytes()),
                        None => Err(CodecError {
                            code: codes::XML_SYNTAX,
                            offset: at,
                            message: "not well-formed XML: an entry that cannot be read".into(),
                        }),
                    }
                })
            };
            return Ok(Ok(Some(Part::Entry { index, offset: at, bytes })));
        }
    }

    fn push_header(&mut self, bytes: &[u8]) {
        if self.header.len() + bytes.len() > self.limits.max_bytes {
            self.header_over = true;
            self.header = Vec::new();
        } else if !self.header_over {
            self.header.extend_from_slice(bytes);
        }
    }
}

impl<R: Read> Iterator for XmlBundleSplitter<R> {
    type Item = std::io::Result<Part>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.pending.take() {
            return Some(Ok(entry));
        }
        loop {
            let step = match self.state {
                State::Done => return None,
                State::Prolog => self.prolog(),
                State::Bundle => {
                    let first = self.entries == 0;
                    match self.child() {
                        // The header so far, before the first entry: JSON streams the same way.
                        Ok(Ok(Some(entry @ Part::Entry { .. }))) if first => {
                            let start = self.header_json().unwrap_or_else(|_| br#"{"resourceType":"Bundle"}"#.to_vec());
                            self.pending = Some(entry);
                            return Some(Ok(Part::Start(start)));
                        }
                        other => other,
                    }
                }
            };
            match step {
                Err(e) => {
                    self.state = State::Done;
                    return Some(Err(e));
                }
                Ok(Err(e)) => {
                    self.state = State::Done;
                    return Some(Ok(Part::End(Err(e))));
                }
                Ok(Ok(Some(part))) => return Some(Ok(part)),
                Ok(Ok(None)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::stream::Chunked;

    fn split(text: &str, chunk: usize, limits: Limits) -> Vec<String> {
        XmlBundleSplitter::new(Chunked(text.as_bytes(), chunk), limits)
            .map(|p| match p.unwrap() {
                Part::Start(h) => format!("S {}", String::from_utf8_lossy(&h)),
                Part::Entry { index, offset, bytes: Ok(b) } => {
                    format!("E{index}@{offset} {}", String::from_utf8_lossy(&b))
                }
                Part::Entry { index, offset, bytes: Err(e) } => format!("E{index}@{offset} ! {} @{}", e.code, e.offset),
                Part::End(Ok(h)) => format!("X {}", String::from_utf8_lossy(&h)),
                Part::End(Err(e)) => format!("X ! {} @{}", e.code, e.offset),
            })
            .collect()
    }

    const BUNDLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment with <entry> in it -->
<Bundle xmlns="http://hl7.org/fhir">
  <id value="b1"/>
  <type value="collection"/>
  <entry>
    <fullUrl value="urn:uuid:1"/>
    <resource>
      <Patient>
        <id value="p1"/>
        <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>a &gt; b <![CDATA[</entry>]]]></p></div></text>
        <gender value="female"/>
      </Patient>
    </resource>
  </entry>
  <entry><resource><Observation><id value="o1"/><status value="final"/><code><text value="x/>y"/></code></Observation></resource></entry>
  <signature><type><system value="urn:iso-astm:E1762-95:2013"/><code value="1.2.840.10065.1.12.1.1"/></type><when value="2024-01-01T00:00:00Z"/><who><reference value="Practitioner/1"/></who><sigFormat value="application/signature+xml"/></signature>
</Bundle>
"#;

    #[test]
    fn entries_are_the_json_the_whole_document_reader_makes_whatever_the_chunks() {
        let whole = crate::xml::parse(BUNDLE.as_bytes()).unwrap();
        let entries: Vec<String> = whole.get("entry").unwrap().as_array().unwrap().iter().map(Node::to_json).collect();
        let mut rest = whole.clone();
        if let Node::Object(m) = &mut rest {
            m.retain(|(k, _)| k != "entry");
        }
        for chunk in [1, 2, 7, 64, 100_000] {
            let parts = split(BUNDLE, chunk, Limits::default());
            assert_eq!(parts.len(), 4, "chunk {chunk}: {parts:?}");
            assert_eq!(parts[0], r#"S {"resourceType":"Bundle","id":"b1","type":"collection"}"#, "chunk {chunk}");
            let first_at = BUNDLE.find("<entry>\n").unwrap();
            assert_eq!(parts[1], format!("E0@{first_at} {}", entries[0]), "chunk {chunk}");
            let second_at = BUNDLE.find("<entry><resource>").unwrap();
            assert_eq!(parts[2], format!("E1@{second_at} {}", entries[1]), "chunk {chunk}");
            assert_eq!(parts[3], format!("X {}", rest.to_json()), "chunk {chunk}");
        }
    }

    #[test]
    fn a_resource_that_is_not_a_bundle_is_read_whole() {
        let patient = r#"<Patient xmlns="http://hl7.org/fhir"><id value="x"/><active value="true"/></Patient>"#;
        assert_eq!(split(patient, 3, Limits::default()), [r#"X {"resourceType":"Patient","id":"x","active":true}"#]);
        let empty = r#"<Bundle xmlns="http://hl7.org/fhir"/>"#;
        assert_eq!(split(empty, 3, Limits::default()), [r#"X {"resourceType":"Bundle"}"#]);
        let no_entries = r#"<Bundle xmlns="http://hl7.org/fhir"><type value="batch"/></Bundle>"#;
        assert_eq!(split(no_entries, 5, Limits::default()), [r#"X {"resourceType":"Bundle","type":"batch"}"#]);
    }

    #[test]
    fn a_broken_entry_is_reported_at_its_place_and_the_others_go_on() {
        let text = r#"<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/><entry><resource><Patient><id value="a"/></Patient></resource></entry><entry><resource><Patient><id value="b"></Patient></resource></entry><entry><resource><Patient><id value="c"/></Patient></resource></entry></Bundle>"#;
        let parts = split(text, 16, Limits::default());
        assert_eq!(parts.len(), 5, "{parts:?}");
        let second_at = text.match_indices("<entry>").nth(1).unwrap().0;
        let third_at = text.match_indices("<entry>").nth(2).unwrap().0;
        // The reader sees `</Patient>` where `</id>` belongs: the error is inside the entry.
        let bad = parts[2].strip_prefix(&format!("E1@{second_at} ! FHIR006 @")).expect(&parts[2]);
        let at: usize = bad.parse().unwrap();
        assert!((second_at..third_at).contains(&at), "{at} not in the second entry");
        assert!(parts[3].starts_with(&format!("E2@{third_at} {{\"resource\"")), "{}", parts[3]);
        assert_eq!(parts[4], r#"X {"resourceType":"Bundle","type":"collection"}"#);
    }

    #[test]
    fn an_entry_over_the_limit_is_skipped_not_kept() {
        let big = "x".repeat(600);
        let text = format!(
            r#"<Bundle xmlns="http://hl7.org/fhir"><entry><resource><Patient><id value="{big}"/></Patient></resource></entry><entry><resource><Patient><id value="small"/></Patient></resource></entry></Bundle>"#
        );
        let limits = Limits { max_bytes: 200, ..Limits::default() };
        let parts = split(&text, 50, limits);
        assert_eq!(parts.len(), 4, "{parts:?}");
        assert_eq!(parts[1], "E0@36 ! FHIR003 @36");
        assert!(parts[2].contains(r#""id":"small""#), "{}", parts[2]);
    }

    #[test]
    fn a_dtd_truncation_and_no_root_are_errors_not_panics() {
        let dtd = r#"<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY a "b">]><Bundle xmlns="http://hl7.org/fhir"/>"#;
        assert_eq!(split(dtd, 4, Limits::default()), ["X ! FHIR006 @21"]);
        let cut = &BUNDLE[..BUNDLE.find("<entry><resource>").unwrap() + 30];
        let parts = split(cut, 9, Limits::default());
        assert!(parts.last().unwrap().starts_with("X ! FHIR006"), "{parts:?}");
        assert_eq!(split("  <!-- only a comment -->", 4, Limits::default()), ["X ! FHIR006 @25"]);
        assert_eq!(split("", 4, Limits::default()), ["X ! FHIR006 @0"]);
    }

    proptest! {
        #[test]
        fn any_bytes_end_in_parts_or_errors(bytes in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..40) {
            let parts: Vec<_> = XmlBundleSplitter::new(Chunked(&bytes, chunk), Limits { max_bytes: 128, max_depth: 8 }).collect();
            prop_assert!(parts.len() < bytes.len() + 2);
        }

        #[test]
        fn bundle_like_markup_never_panics(
            pieces in proptest::collection::vec(prop_oneof![
                Just("<entry>"), Just("</entry>"), Just("<resource>"), Just("</resource>"),
                Just("<Patient>"), Just("</Patient>"), Just("<id value=\"a>b\"/>"), Just("<!--"), Just("-->"),
                Just("<![CDATA["), Just("]]>"), Just("<?pi x?>"), Just("/>"), Just("<"), Just("\""), Just("text"),
            ], 0..40),
            chunk in 1usize..16,
        ) {
            let text = format!("<Bundle xmlns=\"http://hl7.org/fhir\">{}</Bundle>", pieces.concat());
            let parts: Vec<_> = XmlBundleSplitter::new(Chunked(text.as_bytes(), chunk), Limits::default()).collect();
            prop_assert!(parts.iter().all(Result::is_ok));
            prop_assert!(matches!(parts.last(), Some(Ok(Part::End(_)))));
        }
    }
}
