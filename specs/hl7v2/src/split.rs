//! Cuts a byte stream into HL7 v2 messages, streaming: input is read line by line through the
//! reader's buffer and only the message being assembled is held in memory.
//!
//! Rules:
//! - A message starts at each `MSH` at the start of a segment (start of stream, or after CR or
//!   LF), optionally preceded by the MLLP start byte 0x0B.
//! - MLLP framing is stripped: 0x0B before a segment or a new item, and the frame end 0x1C
//!   (with the CR that follows it). A frame end also ends the message; 0x1C is never data.
//! - Batch envelope segments `FHS`, `BHS`, `BTS` and `FTS` end the current message: they belong
//!   to no message. The `Iterator` drops them; [`MessageSplitter::next_item`] returns them as
//!   [`SplitItem::Envelope`] in stream order, so [`crate::batch`] can check the counts in BTS/FTS.
//! - Blank lines (empty, or only spaces and tabs) between messages are dropped; blank lines
//!   inside a message are kept. A UTF-8 BOM at the start of the stream, or right before an
//!   `MSH`, is dropped.
//! - Bytes outside any message (before the first `MSH`, or after an envelope segment or a frame
//!   end) are returned as their own [`RawMessage`], so the runtime can send them to the DLQ:
//!   nothing is lost silently.
//! - Lines that are not segments (no segment id followed by the message's field separator) at the
//!   end of a message, before the next `MSH`, envelope segment, frame end or the end of the
//!   stream, are not part of it: comments and stray text between messages become their own
//!   [`RawMessage`] (for the DLQ) instead of breaking the message before them. Such lines in
//!   the middle of a message, followed by more segments, stay in it (and its parse fails).
//! - A message's bytes keep its own segment separators but not the line breaks after its last
//!   segment. They are always one contiguous range of the input, starting at `offset`.
//!
//! Bytes are not decoded here: a message that is not UTF-8 is still returned whole.

use std::collections::VecDeque;
use std::io::{self, BufRead};

const MLLP_START: u8 = 0x0B;
const MLLP_END: u8 = 0x1C;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One message (or one run of bytes outside any message) cut from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// Byte offset of the first byte of `bytes` in the stream.
    pub offset: usize,
    /// 0-based number of this item among those the splitter returned.
    pub index: usize,
    pub bytes: Vec<u8>,
}

/// A batch envelope segment (`FHS`, `BHS`, `BTS` or `FTS`) as it appeared in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeSegment {
    /// Byte offset of the segment in the stream.
    pub offset: usize,
    /// The segment's bytes, without its line break (and without MLLP or BOM bytes before it).
    pub bytes: Vec<u8>,
}

impl EnvelopeSegment {
    /// The segment id: `FHS`, `BHS`, `BTS` or `FTS`.
    pub fn id(&self) -> &str {
        std::str::from_utf8(self.bytes.get(..3).unwrap_or_default()).unwrap_or_default()
    }
}

/// One item of [`MessageSplitter::next_item`]: a message (or a run of bytes outside any message)
/// or an envelope segment. Envelope segments carry no `index`: `index` counts raw messages only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitItem {
    Message(RawMessage),
    Envelope(EnvelopeSegment),
}

/// What the message being assembled is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Current {
    None,
    Message,
    Garbage,
}

pub struct MessageSplitter<R: BufRead> {
    reader: R,
    /// Stream offset of the next byte to read.
    pos: usize,
    line: Vec<u8>,
    current: Current,
    start: usize,
    bytes: Vec<u8>,
    /// The line break after the last content line of `bytes`, plus any blank lines since: part
    /// of the message only if another of its segments follows.
    gap: Vec<u8>,
    /// Field separator of the message being assembled (MSH-1).
    field_separator: u8,
    /// Non-segment lines after the message's last segment so far, their stream offset, and the
    /// break before them: they join the message only if another of its segments follows.
    tail: Vec<u8>,
    tail_start: usize,
    tail_gap: Vec<u8>,
    ready: VecDeque<SplitItem>,
    index: usize,
    done: bool,
}

impl<R: BufRead> MessageSplitter<R> {
    pub fn new(reader: R) -> Self {
        MessageSplitter {
            reader,
            pos: 0,
            line: Vec::new(),
            current: Current::None,
            start: 0,
            bytes: Vec::new(),
            gap: Vec::new(),
            field_separator: b'|',
            tail: Vec::new(),
            tail_start: 0,
            tail_gap: Vec::new(),
            ready: VecDeque::new(),
            index: 0,
            done: false,
        }
    }

    /// Reads one line into `self.line`, without its break. Returns the line's stream offset and
    /// its break: CR, LF, CRLF, an MLLP frame end (0x1C, with the CR after it) or nothing at
    /// end of stream. `None` at end of stream.
    fn read_line(&mut self) -> io::Result<Option<(usize, &'static [u8])>> {
        self.line.clear();
        let start = self.pos;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(if self.line.is_empty() { None } else { Some((start, b"")) });
            }
            match crate::bytes::find_any(buf, [b'\r', b'\n', MLLP_END]) {
                Some(i) => {
                    let stop = buf[i];
                    self.line.extend_from_slice(&buf[..i]);
                    self.reader.consume(i + 1);
                    self.pos += i + 1;
                    let (alone, with_next): (&'static [u8], &'static [u8]) = match stop {
                        b'\n' => return Ok(Some((start, b"\n"))),
                        b'\r' => (b"\r", b"\r\n"),
                        _ => (b"\x1c", b"\x1c\r"),
                    };
                    let next = if stop == b'\r' { b'\n' } else { b'\r' };
                    if self.peek()? == Some(next) {
                        self.reader.consume(1);
                        self.pos += 1;
                        return Ok(Some((start, with_next)));
                    }
                    return Ok(Some((start, alone)));
                }
                None => {
                    let n = buf.len();
                    self.line.extend_from_slice(buf);
                    self.reader.consume(n);
                    self.pos += n;
                }
            }
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.reader.fill_buf() {
                Ok(b) => return Ok(b.first().copied()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends the item being assembled, if any, queueing it to be returned.
    fn finish(&mut self) {
        if self.current != Current::None && !self.bytes.is_empty() {
            self.ready.push_back(SplitItem::Message(RawMessage {
                offset: self.start,
                index: self.index,
                bytes: std::mem::take(&mut self.bytes),
            }));
            self.index += 1;
        }
        if !self.tail.is_empty() {
            self.ready.push_back(SplitItem::Message(RawMessage {
                offset: self.tail_start,
                index: self.index,
                bytes: std::mem::take(&mut self.tail),
            }));
            self.index += 1;
        }
        self.bytes.clear();
        self.gap.clear();
        self.tail.clear();
        self.tail_gap.clear();
        self.current = Current::None;
    }

    /// Handles the line in `self.line`; may make an item ready.
    fn take_line(&mut self, line_start: usize, brk: &[u8]) {
        let line = std::mem::take(&mut self.line);
        let mut content: &[u8] = &line;
        if line_start == 0 && content.starts_with(BOM) {
            content = &content[BOM.len()..];
        }
        // A start byte is only stripped where it cannot be message data: before a new segment
        // or item (frame ends were already taken as line breaks by `read_line`).
        if let Some(rest) = content.strip_prefix(&[MLLP_START]) {
            let after_bom = rest.strip_prefix(BOM).unwrap_or(rest);
            if starts_segment(after_bom) {
                content = after_bom;
            } else if self.current == Current::None || is_blank(rest) {
                content = rest;
            }
        } else if let Some(rest) = content.strip_prefix(BOM)
            && starts_segment(rest)
        {
            content = rest;
        }
        let content_start = line_start + (line.len() - content.len());
        let frame_end = brk.first() == Some(&MLLP_END);

        if is_blank(content) {
            if self.current != Current::None && !frame_end {
                self.gap.extend_from_slice(&line);
                self.gap.extend_from_slice(brk);
            }
        } else if is_envelope(content) {
            self.finish();
            self.ready
                .push_back(SplitItem::Envelope(EnvelopeSegment { offset: content_start, bytes: content.to_vec() }));
        } else {
            let is_msh = content.starts_with(b"MSH");
            if is_msh {
                self.finish();
            }
            if self.current == Current::None {
                self.current = if is_msh { Current::Message } else { Current::Garbage };
                self.start = content_start;
                if is_msh {
                    self.field_separator = content.get(3).copied().unwrap_or(b'|');
                }
                self.bytes.extend_from_slice(content);
            } else if self.current == Current::Message && !is_segment(content, self.field_separator) {
                if self.tail.is_empty() {
                    self.tail_gap = std::mem::take(&mut self.gap);
                    self.tail_start = content_start;
                } else {
                    self.tail.extend_from_slice(&self.gap);
                }
                self.tail.extend_from_slice(content);
            } else {
                if !self.tail.is_empty() {
                    // More segments follow: the lines were inside the message after all.
                    self.bytes.append(&mut self.tail_gap);
                    self.bytes.append(&mut self.tail);
                }
                self.bytes.extend_from_slice(&self.gap);
                self.bytes.extend_from_slice(content);
            }
            self.gap.clear();
            self.gap.extend_from_slice(brk);
        }
        if frame_end {
            self.finish();
        }
        self.line = line;
    }
}

impl<R: BufRead> MessageSplitter<R> {
    /// The next message or envelope segment, in stream order; `None` at end of stream. After an
    /// error, `None`.
    pub fn next_item(&mut self) -> Option<io::Result<SplitItem>> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Some(Ok(m));
            }
            if self.done {
                return None;
            }
            match self.read_line() {
                Ok(Some((start, brk))) => self.take_line(start, brk),
                Ok(None) => {
                    self.done = true;
                    self.finish();
                }
                Err(e) => {
                    // The stream is broken: the partial item is not a message; report the error
                    // and stop.
                    self.done = true;
                    self.bytes.clear();
                    self.gap.clear();
                    self.tail.clear();
                    self.tail_gap.clear();
                    self.current = Current::None;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for MessageSplitter<R> {
    type Item = io::Result<RawMessage>;

    /// The next message; envelope segments are skipped.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_item()? {
                Ok(SplitItem::Message(m)) => return Some(Ok(m)),
                Ok(SplitItem::Envelope(_)) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Splits a whole string; returns each item's byte offset and text. For tests and small inputs.
pub fn split_str(text: &str) -> Vec<(usize, &str)> {
    MessageSplitter::new(text.as_bytes())
        .filter_map(|m| m.ok())
        .filter_map(|m| {
            let s = text.get(m.offset..m.offset + m.bytes.len())?;
            Some((m.offset, s))
        })
        .collect()
}

fn starts_segment(b: &[u8]) -> bool {
    b.starts_with(b"MSH") || is_envelope(b)
}

/// A segment line: an id (upper-case letter, then upper-case letters or digits) followed by the
/// field separator or the end of the line.
fn is_segment(b: &[u8], field_separator: u8) -> bool {
    b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1..3].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && b.get(3).is_none_or(|&c| c == field_separator)
}

fn is_envelope(b: &[u8]) -> bool {
    let id = match b.get(..3) {
        Some(id) => id,
        None => return false,
    };
    matches!(id, b"FHS" | b"BHS" | b"BTS" | b"FTS") && b.get(3).is_none_or(|c| !c.is_ascii_alphanumeric())
}

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b' ' || c == b'\t')
}
