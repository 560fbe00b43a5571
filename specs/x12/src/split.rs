//! Cuts an X12 byte stream into items, streaming: the input is read in chunks and only the
//! transaction set being assembled (plus one chunk) is held, so memory stays flat however large
//! the file is (invariant 7 of DESIGN.md).
//!
//! Rules:
//! - Outside an interchange, a UTF-8 BOM, line breaks, spaces and tabs are skipped; an
//!   interchange starts where `ISA` and a non-alphanumeric byte are. Other bytes (a mail header,
//!   a truncated interchange, an ISA [`crate::codec::read_isa`] rejects) become one
//!   [`Item::Stray`] up to the next `ISA`, with the reason, so the runtime can send them to the
//!   DLQ: nothing is lost.
//! - Inside an interchange, segments are cut at the terminator its ISA names (line breaks before
//!   a segment are layout and skipped). The text `ISA` inside an element is data; only a
//!   segment whose id is `ISA` (an interchange whose IEA is missing) starts a new interchange.
//! - `ST` through `SE` is one [`Item::Set`]: its bytes are one contiguous range of the input,
//!   terminators and line breaks included. A set not closed by `SE` before the next `ST`, `GS`,
//!   `GE`, `IEA`, `ISA` or the end of the stream is returned with `closed: false`.
//! - With a set limit ([`Splitter::with_set_limit`]), a set longer than the limit is handed on
//!   instead as [`Item::SetPart`]s of whole segments, one after another, which together are
//!   the bytes the whole set would have been: only one part is held, so memory stays flat
//!   inside a set too. Without a limit, parts never come.
//! - Every other segment (ISA, GS, GE, IEA, TA1, and segments out of place between sets) is an
//!   [`Item::Envelope`], in stream order. `IEA` ends the interchange.
//! - Items come out in stream order; together with the skipped layout bytes they cover the
//!   input exactly.

use std::collections::VecDeque;
use std::io::{self, Read};

use memchr::{memchr, memmem};

use crate::codec::{self, BOM, Delimiters, IsaError, MAX_ISA_LEN, is_layout};

const CHUNK: usize = 64 * 1024;

/// One item cut from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A segment outside any transaction set, without its terminator.
    Envelope { offset: usize, delimiters: Delimiters, bytes: Vec<u8> },
    /// A transaction set, `ST` through `SE` (terminators included).
    Set(RawSet),
    /// Part of a transaction set longer than the splitter's set limit (only from
    /// [`Splitter::with_set_limit`]): whole segments, in order, terminators and line breaks
    /// included. The first part starts with the set's `ST`; the last has `last` (and its
    /// `closed` says whether `SE` ended the set); the parts of one set come one after another.
    SetPart { part: RawSet, first: bool, last: bool },
    /// Bytes outside any interchange, with the code and reason they were not read.
    Stray { offset: usize, bytes: Vec<u8>, code: &'static str, reason: &'static str },
}

impl Item {
    pub fn offset(&self) -> usize {
        match self {
            Item::Envelope { offset, .. } | Item::Stray { offset, .. } => *offset,
            Item::Set(s) | Item::SetPart { part: s, .. } => s.offset,
        }
    }

    /// The segment id of an envelope item (`ISA`, `GS`, ...), empty otherwise.
    pub fn envelope_id(&self) -> &[u8] {
        match self {
            Item::Envelope { delimiters, bytes, .. } => match memchr(delimiters.element, bytes) {
                Some(i) => &bytes[..i],
                None => bytes,
            },
            _ => b"",
        }
    }
}

/// One transaction set as cut from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSet {
    /// Byte offset of `ST` in the stream.
    pub offset: usize,
    pub delimiters: Delimiters,
    pub bytes: Vec<u8>,
    /// Ended by its `SE` (false: cut short by another envelope segment or the end of input).
    pub closed: bool,
}

impl RawSet {
    /// The set's segments, borrowed; offsets are stream offsets.
    pub fn segments(&self) -> codec::Segments<'_> {
        codec::segments(&self.bytes, self.delimiters, self.offset)
    }
}

/// The streaming splitter; an `Iterator` of `io::Result<Item>`.
pub struct Splitter<R> {
    reader: R,
    buf: Vec<u8>,
    /// Next unread byte in `buf`.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: usize,
    eof: bool,
    delimiters: Option<Delimiters>,
    /// Start in `buf` of the open transaction set (of its part not yet handed on).
    set_start: Option<usize>,
    /// Longest set held whole; a longer one is handed on in parts.
    set_limit: Option<usize>,
    /// Parts of the open set have been handed on.
    in_parts: bool,
    queue: VecDeque<Item>,
    failed: bool,
}

impl<R: Read> Splitter<R> {
    pub fn new(reader: R) -> Self {
        Splitter {
            reader,
            buf: Vec::new(),
            pos: 0,
            base: 0,
            eof: false,
            delimiters: None,
            set_start: None,
            set_limit: None,
            in_parts: false,
            queue: VecDeque::new(),
            failed: false,
        }
    }

    /// A splitter that hands on a set longer than `limit` bytes in parts of whole segments
    /// ([`Item::SetPart`]) instead of holding it whole: memory stays flat inside a set too,
    /// for a reader that can take a set in parts (the envelope checker can).
    pub fn with_set_limit(reader: R, limit: usize) -> Self {
        Splitter { set_limit: Some(limit.max(1)), ..Splitter::new(reader) }
    }

    /// Bytes held in the internal buffer (for memory checks: one set plus about one chunk).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads one more chunk; false at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let keep = self.set_start.unwrap_or(self.pos).min(self.pos);
        if keep > 0 && keep >= self.buf.len() / 2 {
            self.buf.drain(..keep);
            self.base += keep;
            self.pos -= keep;
            if let Some(s) = self.set_start.as_mut() {
                *s -= keep;
            }
        }
        // `read_to_end` on `take` fills spare capacity without zeroing it first (a small read
        // from a pipe would otherwise cost a 64 KiB memset).
        let n = (&mut self.reader).take(CHUNK as u64).read_to_end(&mut self.buf)?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Outside an interchange: skip layout, then read an ISA or a run of stray bytes.
    fn outside(&mut self) -> io::Result<Option<Item>> {
        loop {
            let skip = skip_outside(self.avail());
            self.pos += skip;
            if self.pos < self.buf.len() || !self.fill()? {
                break;
            }
        }
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        loop {
            match codec::read_isa(self.avail()) {
                Ok(isa) => {
                    let offset = self.base + self.pos;
                    let (len, delimiters) = (isa.len, isa.delimiters);
                    let bytes = self.avail()[..len - 1].to_vec();
                    self.delimiters = Some(delimiters);
                    self.pos += len;
                    return Ok(Some(Item::Envelope { offset, delimiters, bytes }));
                }
                Err(IsaError::Incomplete) if !self.eof && self.avail().len() < MAX_ISA_LEN => {
                    self.fill()?;
                }
                Err(IsaError::Incomplete) => return self.stray("X12001", "the input ends inside an ISA header"),
                Err(IsaError::Invalid(code, reason)) => return self.stray(code, reason),
            }
        }
    }

    /// Bytes up to the next `ISA` (after the first byte) or the end, as one stray item.
    fn stray(&mut self, code: &'static str, reason: &'static str) -> io::Result<Option<Item>> {
        let mut from = 1;
        let end = loop {
            if let Some(i) = find_isa(&self.avail()[from.min(self.avail().len())..]) {
                break from + i;
            }
            from = self.avail().len().saturating_sub(3).max(1);
            if !self.fill()? {
                break self.avail().len();
            }
        };
        let offset = self.base + self.pos;
        let bytes = self.avail()[..end].to_vec();
        self.pos += end;
        Ok(Some(Item::Stray { offset, bytes, code, reason }))
    }

    /// Inside an interchange: reads segments until one makes an item (the segments of an open
    /// set only extend it). `Ok(None)` when the interchange ended without an item.
    fn inside(&mut self, d: Delimiters) -> io::Result<Option<Item>> {
        loop {
            loop {
                while self.pos < self.buf.len() && is_layout(self.buf[self.pos], d.segment) {
                    self.pos += 1;
                }
                if self.pos < self.buf.len() || !self.fill()? {
                    break;
                }
            }
            if self.pos >= self.buf.len() {
                self.delimiters = None;
                return Ok(self.close_set(self.buf.len(), false, d));
            }
            let mut searched = 0;
            let end = loop {
                if let Some(i) = memchr(d.segment, &self.avail()[searched..]) {
                    break Some(self.pos + searched + i);
                }
                searched = self.avail().len();
                if !self.fill()? {
                    break None;
                }
            };
            let start = self.pos;
            let seg_end = end.unwrap_or(self.buf.len());
            let next = end.map_or(self.buf.len(), |e| e + 1);
            let raw = &self.buf[start..seg_end];
            let id = match memchr(d.element, raw) {
                Some(i) => &raw[..i],
                None => raw,
            };
            match id {
                b"ISA" => {
                    // A new interchange whose predecessor lacks its IEA: read it as an ISA.
                    self.delimiters = None;
                    return Ok(self.close_set(start, false, d));
                }
                b"ST" => {
                    let previous = self.close_set(start, false, d);
                    self.set_start = Some(start);
                    self.pos = next;
                    if previous.is_some() {
                        return Ok(previous);
                    }
                }
                b"SE" if self.set_start.is_some() => {
                    self.pos = next;
                    return Ok(self.close_set(next, true, d));
                }
                b"GS" | b"GE" | b"IEA" | b"TA1" => {
                    let is_iea = id == b"IEA";
                    let item = Item::Envelope { offset: self.base + start, delimiters: d, bytes: raw.to_vec() };
                    let previous = self.close_set(start, false, d);
                    if is_iea {
                        self.delimiters = None;
                    }
                    self.pos = next;
                    return Ok(Some(match previous {
                        Some(p) => {
                            self.queue.push_back(item);
                            p
                        }
                        None => item,
                    }));
                }
                _ if self.set_start.is_some() => {
                    self.pos = next;
                    if let Some(part) = self.part_due(d) {
                        return Ok(Some(part));
                    }
                }
                _ => {
                    let item = Item::Envelope { offset: self.base + start, delimiters: d, bytes: raw.to_vec() };
                    self.pos = next;
                    return Ok(Some(item));
                }
            }
        }
    }

    /// Ends the open set at `end` (exclusive, in `buf`), if one is open: the whole set, or its
    /// last part.
    fn close_set(&mut self, end: usize, closed: bool, delimiters: Delimiters) -> Option<Item> {
        let start = self.set_start.take()?;
        let mut bytes = self.buf[start..end].to_vec();
        if !closed {
            // Layout after the last segment is not part of the set.
            while bytes.last().is_some_and(|&b| is_layout(b, delimiters.segment)) {
                bytes.pop();
            }
        }
        let set = RawSet { offset: self.base + start, delimiters, bytes, closed };
        if std::mem::take(&mut self.in_parts) {
            return Some(Item::SetPart { part: set, first: false, last: true });
        }
        Some(Item::Set(set))
    }

    /// The open set's next part, when what is held of it (whole segments, up to `pos`) has
    /// reached the set limit.
    fn part_due(&mut self, delimiters: Delimiters) -> Option<Item> {
        let (limit, start) = (self.set_limit?, self.set_start?);
        if self.pos - start < limit {
            return None;
        }
        let first = !std::mem::replace(&mut self.in_parts, true);
        let bytes = self.buf[start..self.pos].to_vec();
        self.set_start = Some(self.pos);
        let part = RawSet { offset: self.base + start, delimiters, bytes, closed: false };
        Some(Item::SetPart { part, first, last: false })
    }
}

impl<R: Read> Iterator for Splitter<R> {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<io::Result<Item>> {
        if let Some(item) = self.queue.pop_front() {
            return Some(Ok(item));
        }
        if self.failed {
            return None;
        }
        let step = match self.delimiters {
            Some(d) => self.inside(d),
            None => self.outside(),
        };
        match step {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) if self.delimiters.is_some() || self.pos < self.buf.len() => self.next(),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Layout bytes outside an interchange: BOM, line breaks, spaces, tabs.
fn skip_outside(bytes: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if bytes[i..].starts_with(BOM) {
            i += BOM.len();
        } else if matches!(bytes.get(i), Some(b'\r' | b'\n' | b' ' | b'\t')) {
            i += 1;
        } else {
            return i;
        }
    }
}

/// The first `ISA` followed by a byte that is not a letter or digit (or by the end).
fn find_isa(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memmem::find(&bytes[from..], b"ISA") {
        let at = from + i;
        match bytes.get(at + 3) {
            Some(b) if b.is_ascii_alphanumeric() => from = at + 1,
            _ => return Some(at),
        }
    }
    None
}
