//! Batch and file envelopes (FHS/BHS/BTS/FTS) and continuation messages (DSC/ADD), over the
//! stream of [`crate::split::MessageSplitter`].
//!
//! [`BatchReader`] yields the same messages as the splitter, in the same order, plus
//! [`Problem`] items. It is what a source should read when it must account for every byte.
//!
//! # Envelopes ([`EnvelopeTracker`])
//!
//! `[FHS] { [BHS] { MSH... } [BTS] } [FTS]` (HL7 v2.5 §2.10.3). Every message (an item starting
//! with `MSH`) counts toward the open batch; messages outside any batch open an *implicit* one
//! (as python-hl7 and HAPI read BHS-less files), which a BTS may close and which needs no trailer.
//! Every batch counts toward the file (FHS to FTS, or stream start to FTS when there is no FHS).
//! A trailer whose count (BTS-1 batch message count, FTS-1 file batch count) is present and
//! differs from what was read, or is not a number, gives `HL7020`. `HL7021`: a BHS or FHS never
//! closed by its trailer (another header of the same kind, an FHS after a BHS, an FTS before the
//! BTS, or the end of the stream comes first), a BTS with neither a BHS nor messages before it,
//! an FTS right after another FTS.
//! Messages flow on whatever the envelope says: an envelope problem is an extra item, it never
//! holds a message back.
//!
//! # Continuations ([`Continuations`], HL7 v2.5 §2.10.2)
//!
//! - A message whose last segment is `DSC` with a non-empty DSC-1 (continuation pointer) and
//!   DSC-2 (continuation style) not `I` (interactive, a query protocol) is a *fragment*: it is
//!   held, without its DSC segment, until a message whose MSH-14 equals the pointer arrives.
//!   That message's segments after its MSH are appended to the held fragment (its MSH is
//!   dropped); if it ends with DSC too, the chain goes on. Other messages may arrive in between
//!   and pass through; a reassembled message is yielded when its last fragment arrives, with the
//!   offset of its first fragment. It counts as one message.
//! - A segment cut in two is marked by an `ADD` segment after it in the first fragment (no
//!   fields) and continued by an `ADD` segment right after MSH in the next one, whose fields
//!   1..N are the rest of the cut segment: [`join_add_segments`] (applied to decoded text) joins
//!   every `ADD` onto the last non-`ADD` segment before it by plain concatenation of the text
//!   after `ADD` and its field separator, so ADD-1 continues the cut segment's last field (a
//!   fragmented OBX-5) and further ADD fields become its next fields. The same applies to `ADD`
//!   segments inside one message. Segments that may not be continued (MSH, MSA, DSC, PID, QRD,
//!   QRF, URD, URS and the envelope segments) keep a following `ADD` as a segment of its own.
//! - A fragment whose continuation never arrives (end of stream, or more than
//!   [`MAX_PENDING`] chains or [`MAX_PENDING_BYTES`] bytes held) gives `HL7022`, with every byte
//!   of the fragments; a message with a continuation pointer in MSH-14 that starts with `ADD`
//!   (so is a continuation) and matches no held fragment gives `HL7023`, with its bytes.
//!
//! Invariants:
//! - Nothing is lost: every message the splitter yields comes out, alone or inside a
//!   reassembled message, or inside an `HL7022`/`HL7023` problem's bytes; every envelope
//!   problem is its own item.
//! - Memory: besides the splitter's one message, at most [`MAX_PENDING`] fragment chains (and
//!   about [`MAX_PENDING_BYTES`] bytes) are held.
//! - Deterministic, and scans raw bytes as ASCII (separators, segment ids, MSH-14, DSC-1), so it
//!   works for every ASCII-compatible character set. Problem messages hold counts and codes,
//!   never message content.
//! - `index` of the items is renumbered 0.. in the order they are yielded.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, BufRead};

use crate::charset::raw_msh_field;
use crate::split::{EnvelopeSegment, MessageSplitter, RawMessage, SplitItem};

/// Error codes of this module, for the docs: (code, title, explanation).
pub const ERROR_CODES: &[(&str, &str, &str)] = &[
    (
        "HL7020",
        "A batch or file trailer's count does not match.",
        "BTS-1 (batch message count) or FTS-1 (file batch count) differs from the number of messages in the batch, or batches in the file, that were actually read, or is not a number. Every message read is still processed; the finding says that some may be missing or duplicated upstream.",
    ),
    (
        "HL7021",
        "A batch or file envelope is malformed.",
        "A BHS or FHS never closed by its BTS or FTS (another header of the same kind, an FHS after a BHS, an FTS before the BTS, or the end of the stream comes first), a BTS with neither a BHS nor messages before it, or an FTS right after another FTS. Messages outside any BHS form an implicit batch that needs no trailer. The messages themselves are processed as usual.",
    ),
    (
        "HL7022",
        "A message fragment's continuation never arrived.",
        "A message ends with a DSC segment whose continuation pointer (DSC-1) no later message names in MSH-14 before the end of the stream (or too many fragments were waiting). The fragments are kept whole in the finding's raw bytes so they can be replayed together with the rest.",
    ),
    (
        "HL7023",
        "A continuation message has no first part.",
        "A message names a continuation pointer in MSH-14 and starts with an ADD segment, so it continues an earlier message, but no earlier message ended with a DSC segment holding that pointer.",
    ),
];

/// Fragment chains held at once; beyond it the oldest is given up as `HL7022`.
pub const MAX_PENDING: usize = 16;
/// Bytes of fragments held at once; beyond it the oldest chains are given up as `HL7022`.
pub const MAX_PENDING_BYTES: usize = 64 << 20;

/// A problem found in the stream's structure rather than in one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset of the segment or message concerned.
    pub offset: usize,
    /// 0-based number of this item among those [`BatchReader`] yielded.
    pub index: usize,
    /// `HL7020`..`HL7023`.
    pub code: &'static str,
    /// Counts and segment ids only, never content.
    pub message: String,
    /// The bytes concerned: the envelope segment, or the fragments.
    pub bytes: Vec<u8>,
}

/// One item of [`BatchReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Message(RawMessage),
    Problem(Problem),
}

impl Item {
    pub fn offset(&self) -> usize {
        match self {
            Item::Message(m) => m.offset,
            Item::Problem(p) => p.offset,
        }
    }

    pub fn index(&self) -> usize {
        match self {
            Item::Message(m) => m.index,
            Item::Problem(p) => p.index,
        }
    }

    fn set_index(&mut self, i: usize) {
        match self {
            Item::Message(m) => m.index = i,
            Item::Problem(p) => p.index = i,
        }
    }
}

fn problem(offset: usize, code: &'static str, message: String, bytes: Vec<u8>) -> Problem {
    Problem { offset, index: 0, code, message, bytes }
}

/// Field 1 of a segment (`BTS-1`, `FTS-1`, `DSC-1`) or field 2, read with the separator after
/// the segment id; trimmed.
fn seg_field(seg: &[u8], n: usize) -> &[u8] {
    let Some(&fs) = seg.get(3) else { return b"" };
    let f = seg[4..].split(|&c| c == fs).nth(n - 1).unwrap_or_default();
    f.trim_ascii()
}

#[derive(Clone, Debug)]
struct Open {
    offset: usize,
    bytes: Vec<u8>,
    count: u64,
    /// Opened by a header segment; an implicit batch (messages without BHS) needs no trailer.
    explicit: bool,
}

/// Checks FHS/BHS/BTS/FTS structure and counts (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct EnvelopeTracker {
    /// An open FHS.
    file: Option<Open>,
    batch: Option<Open>,
    /// Batches (explicit or implicit) since the stream start, the last FHS or the last FTS.
    file_batches: u64,
    /// An FTS has closed a file and no batch has started since.
    after_fts: bool,
}

impl EnvelopeTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a message (items not starting with `MSH` are not messages and are not counted).
    /// A message outside any batch opens an implicit one.
    pub fn message(&mut self, raw: &RawMessage) {
        if !raw.bytes.starts_with(b"MSH") {
            return;
        }
        let batch = self.batch.get_or_insert_with(|| {
            self.file_batches += 1;
            self.after_fts = false;
            Open { offset: raw.offset, bytes: Vec::new(), count: 0, explicit: false }
        });
        batch.count += 1;
    }

    fn unclosed(open: Open, header: &str, trailer: &str, why: &str) -> Problem {
        problem(open.offset, "HL7021", format!("{header} is not closed by its {trailer} ({why})"), open.bytes)
    }

    /// Closes the open batch before `why`: an explicit one is a problem, an implicit one is not.
    fn close_batch(&mut self, why: &str, out: &mut Vec<Problem>) {
        if let Some(b) = self.batch.take()
            && b.explicit
        {
            out.push(Self::unclosed(b, "BHS", "BTS", why));
        }
    }

    /// Takes an envelope segment; returns the problems it reveals.
    pub fn segment(&mut self, seg: EnvelopeSegment) -> Vec<Problem> {
        let mut out = Vec::new();
        match seg.id() {
            "FHS" => {
                self.close_batch("an FHS follows", &mut out);
                if let Some(f) = self.file.take() {
                    out.push(Self::unclosed(f, "FHS", "FTS", "another FHS follows"));
                }
                self.file = Some(Open { offset: seg.offset, bytes: seg.bytes, count: 0, explicit: true });
                self.file_batches = 0;
                self.after_fts = false;
            }
            "BHS" => {
                self.close_batch("another BHS follows", &mut out);
                self.file_batches += 1;
                self.after_fts = false;
                self.batch = Some(Open { offset: seg.offset, bytes: seg.bytes, count: 0, explicit: true });
            }
            "BTS" => match self.batch.take() {
                None => {
                    out.push(problem(seg.offset, "HL7021", "BTS without a BHS or messages before it".into(), seg.bytes))
                }
                Some(b) => out.extend(check_count(&seg, "BTS-1 (batch message count)", b.count, "messages")),
            },
            _ => {
                self.close_batch("the FTS comes first", &mut out);
                let batches = std::mem::take(&mut self.file_batches);
                if self.file.take().is_none() && self.after_fts && batches == 0 {
                    out.push(problem(
                        seg.offset,
                        "HL7021",
                        "FTS without an FHS or batches before it".into(),
                        seg.bytes,
                    ));
                } else {
                    out.extend(check_count(&seg, "FTS-1 (file batch count)", batches, "batches"));
                }
                self.after_fts = true;
            }
        }
        out
    }

    /// End of stream: headers still open.
    pub fn finish(&mut self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.close_batch("the stream ends", &mut out);
        if let Some(f) = self.file.take() {
            out.push(Self::unclosed(f, "FHS", "FTS", "the stream ends"));
        }
        out
    }
}

fn check_count(seg: &EnvelopeSegment, what: &str, seen: u64, unit: &str) -> Option<Problem> {
    let raw = seg_field(&seg.bytes, 1);
    if raw.is_empty() {
        return None;
    }
    let message = match std::str::from_utf8(raw).ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(n) if n == seen => return None,
        Some(n) => format!("{what} says {n} but {seen} {unit} were read"),
        None => format!("{what} is not a number ({seen} {unit} were read)"),
    };
    Some(problem(seg.offset, "HL7020", message, seg.bytes.clone()))
}

/// The first line break in `bytes` (CRLF, CR or LF), CR when none.
fn line_break(bytes: &[u8]) -> &'static [u8] {
    match bytes.iter().position(|&c| c == b'\r' || c == b'\n') {
        Some(i) if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') => b"\r\n",
        Some(i) if bytes[i] == b'\n' => b"\n",
        _ => b"\r",
    }
}

/// Start of the last segment (after the last CR or LF) of `bytes`.
fn last_segment_start(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&c| c == b'\r' || c == b'\n').map_or(0, |i| i + 1)
}

/// End of the first segment and start of the second (after its break).
fn second_segment_start(bytes: &[u8]) -> Option<usize> {
    let i = bytes.iter().position(|&c| c == b'\r' || c == b'\n')?;
    let mut j = i + 1;
    if bytes[i] == b'\r' && bytes.get(j) == Some(&b'\n') {
        j += 1;
    }
    Some(j)
}

fn is_segment(bytes: &[u8], id: &[u8; 3], fs: u8) -> bool {
    bytes.starts_with(id) && bytes.get(3).is_none_or(|&c| c == fs)
}

#[derive(Clone, Debug)]
struct Pending {
    pointer: Vec<u8>,
    offset: usize,
    /// The reassembled message so far, without the DSC segment.
    joined: Vec<u8>,
    /// Every byte of the fragments, as read (CR between fragments).
    original: Vec<u8>,
    fragments: usize,
}

/// Reassembles DSC/MSH-14 continuation chains (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Continuations {
    pending: VecDeque<Pending>,
    held_bytes: usize,
}

/// If `bytes` ends with a DSC segment that continues it: (start of the DSC segment, pointer).
fn trailing_dsc(bytes: &[u8], fs: u8) -> Option<(usize, Vec<u8>)> {
    let start = last_segment_start(bytes);
    let seg = &bytes[start..];
    if !is_segment(seg, b"DSC", fs) {
        return None;
    }
    let pointer = seg_field(seg, 1);
    let style = seg_field(seg, 2);
    (!pointer.is_empty() && !style.eq_ignore_ascii_case(b"I")).then(|| (start, pointer.to_vec()))
}

impl Continuations {
    pub fn new() -> Self {
        Self::default()
    }

    fn orphan(p: Pending) -> Problem {
        let msg = format!(
            "message fragment ({} part(s)) ends with a DSC continuation pointer that no later message names in MSH-14",
            p.fragments
        );
        problem(p.offset, "HL7022", msg, p.original)
    }

    /// Takes a message (or any splitter item); returns what can go on now.
    pub fn push(&mut self, raw: RawMessage) -> Vec<Item> {
        let mut out = Vec::new();
        let Some(&fs) = raw.bytes.get(3).filter(|_| raw.bytes.starts_with(b"MSH")) else {
            out.push(Item::Message(raw));
            return out;
        };
        let pointer = raw_msh_field(&raw.bytes, 14)
            .map(|(_, v)| {
                // First component only: MSH-14 is ST, but a few senders add components.
                let comp = raw.bytes.get(4).copied();
                let v = match comp {
                    Some(c) => v.split(|&b| b == c).next().unwrap_or_default(),
                    None => v,
                };
                v.trim_ascii().to_vec()
            })
            .filter(|p| !p.is_empty());
        let mut current: Option<Pending> = None;
        if let Some(ptr) = pointer {
            if let Some(i) = self.pending.iter().position(|p| p.pointer == ptr) {
                let mut p = self.pending.remove(i).unwrap_or_else(|| unreachable!());
                self.held_bytes = self.held_bytes.saturating_sub(p.joined.len() + p.original.len());
                if let Some(rest) = second_segment_start(&raw.bytes) {
                    let brk = line_break(&p.joined);
                    p.joined.extend_from_slice(brk);
                    p.joined.extend_from_slice(&raw.bytes[rest..]);
                }
                p.original.push(b'\r');
                p.original.extend_from_slice(&raw.bytes);
                p.fragments += 1;
                current = Some(p);
            } else if second_segment_start(&raw.bytes).is_some_and(|s| is_segment(&raw.bytes[s..], b"ADD", fs)) {
                let msg = "message continues an earlier message (MSH-14 and a leading ADD segment), \
                           but no earlier message ended with a DSC segment holding its pointer"
                    .to_string();
                out.push(Item::Problem(problem(raw.offset, "HL7023", msg, raw.bytes)));
                return out;
            }
        }
        let mut p = current.unwrap_or_else(|| Pending {
            pointer: Vec::new(),
            offset: raw.offset,
            joined: raw.bytes.clone(),
            original: raw.bytes,
            fragments: 1,
        });
        match trailing_dsc(&p.joined, fs) {
            Some((start, ptr)) => {
                // Drop the DSC segment and the line break before it.
                let mut cut = start;
                while cut > 0 && matches!(p.joined[cut - 1], b'\r' | b'\n') {
                    cut -= 1;
                }
                p.joined.truncate(cut);
                if let Some(i) = self.pending.iter().position(|q| q.pointer == ptr)
                    && let Some(old) = self.pending.remove(i)
                {
                    self.held_bytes = self.held_bytes.saturating_sub(old.joined.len() + old.original.len());
                    out.push(Item::Problem(Self::orphan(old)));
                }
                p.pointer = ptr;
                self.held_bytes += p.joined.len() + p.original.len();
                self.pending.push_back(p);
                while self.pending.len() > MAX_PENDING
                    || (self.held_bytes > MAX_PENDING_BYTES && self.pending.len() > 1)
                {
                    let Some(old) = self.pending.pop_front() else { break };
                    self.held_bytes = self.held_bytes.saturating_sub(old.joined.len() + old.original.len());
                    out.push(Item::Problem(Self::orphan(old)));
                }
            }
            None => out.push(Item::Message(RawMessage { offset: p.offset, index: raw.index, bytes: p.joined })),
        }
        out
    }

    /// End of stream: every held fragment is an orphan.
    pub fn finish(&mut self) -> Vec<Problem> {
        self.held_bytes = 0;
        self.pending.drain(..).map(Self::orphan).collect()
    }
}

/// Segments an `ADD` may not continue.
fn continuable(id: &str) -> bool {
    !matches!(id, "MSH" | "MSA" | "DSC" | "PID" | "QRD" | "QRF" | "URD" | "URS" | "ADD" | "FHS" | "BHS" | "BTS" | "FTS")
}

/// Joins each `ADD` segment onto the last non-`ADD` segment before it (see the module docs).
/// Borrowed when there is nothing to join. `text` is one message (it starts with `MSH`, maybe
/// after a BOM); the field separator is MSH-1.
pub fn join_add_segments(text: &str) -> Cow<'_, str> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(fs) = body.strip_prefix("MSH").and_then(|r| r.chars().next()) else {
        return Cow::Borrowed(text);
    };
    if !text.contains("\rADD") && !text.contains("\nADD") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last: Option<&str> = None;
    let mut brk = "";
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let blen = match rest.as_bytes().get(end) {
            Some(b'\r') if rest.as_bytes().get(end + 1) == Some(&b'\n') => 2,
            Some(_) => 1,
            None => 0,
        };
        let line_brk = &rest[end..end + blen];
        rest = &rest[end + blen..];
        let is_add = line.starts_with("ADD") && line[3..].chars().next().is_none_or(|c| c == fs);
        if is_add && last.is_some_and(continuable) {
            out.push_str(line.get(3 + fs.len_utf8()..).unwrap_or(""));
            changed = true;
        } else {
            out.push_str(brk);
            out.push_str(line);
            let id = line.get(..3).unwrap_or("");
            last = (!line.trim_matches([' ', '\t']).is_empty()).then_some(id);
        }
        brk = line_brk;
    }
    out.push_str(brk);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

/// The splitter's messages plus envelope and continuation problems (see the module docs).
pub struct BatchReader<R: BufRead> {
    splitter: MessageSplitter<R>,
    envelopes: EnvelopeTracker,
    continuations: Continuations,
    ready: VecDeque<Item>,
    index: usize,
    done: bool,
}

impl<R: BufRead> BatchReader<R> {
    pub fn new(reader: R) -> Self {
        BatchReader {
            splitter: MessageSplitter::new(reader),
            envelopes: EnvelopeTracker::new(),
            continuations: Continuations::new(),
            ready: VecDeque::new(),
            index: 0,
            done: false,
        }
    }

    fn queue(&mut self, items: impl IntoIterator<Item = Item>) {
        for mut item in items {
            item.set_index(self.index);
            self.index += 1;
            self.ready.push_back(item);
        }
    }
}

impl<R: BufRead> Iterator for BatchReader<R> {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            match self.splitter.next_item() {
                Some(Ok(SplitItem::Message(raw))) => {
                    self.envelopes.message(&raw);
                    let items = self.continuations.push(raw);
                    self.queue(items);
                }
                Some(Ok(SplitItem::Envelope(seg))) => {
                    let problems = self.envelopes.segment(seg);
                    self.queue(problems.into_iter().map(Item::Problem));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    let mut problems = self.continuations.finish();
                    problems.extend(self.envelopes.finish());
                    self.queue(problems.into_iter().map(Item::Problem));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::parse_message;

    fn items(input: &str) -> Vec<Item> {
        BatchReader::new(input.as_bytes()).map(|i| i.unwrap()).collect()
    }

    fn codes(items: &[Item]) -> Vec<&'static str> {
        items.iter().map(|i| if let Item::Problem(p) = i { p.code } else { "msg" }).collect()
    }

    const M1: &str = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1";
    const M2: &str = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|2|P|2.5\rPID|2";

    #[test]
    fn good_batch_yields_the_messages_only() {
        let input = format!("FHS|^~\\&\rBHS|^~\\&\r{M1}\r{M2}\rBTS|2\rFTS|1\r");
        let got = items(&input);
        assert_eq!(codes(&got), ["msg", "msg"]);
        let plain: Vec<RawMessage> = MessageSplitter::new(input.as_bytes()).map(|m| m.unwrap()).collect();
        assert_eq!(got, plain.into_iter().map(Item::Message).collect::<Vec<_>>());
        // Empty counts are not checked; several batches are counted.
        let two = format!("FHS|^\rBHS|^\r{M1}\rBTS|\rBHS\r{M2}\rBTS|1\rFTS|2");
        assert_eq!(codes(&items(&two)), ["msg", "msg"]);
    }

    #[test]
    fn wrong_counts() {
        let got = items(&format!("BHS|^~\\&\r{M1}\r{M2}\rBTS|3\r"));
        assert_eq!(codes(&got), ["msg", "msg", "HL7020"]);
        let Item::Problem(p) = &got[2] else { unreachable!() };
        assert!(p.message.contains("says 3 but 2 messages"), "{}", p.message);
        assert_eq!((p.index, p.bytes.as_slice()), (2, &b"BTS|3"[..]));
        let got = items(&format!("FHS|^\rBHS\r{M1}\rBTS|1\rFTS|2"));
        assert_eq!(codes(&got), ["msg", "HL7020"]);
        assert_eq!(codes(&items(&format!("BHS\r{M1}\rBTS|one"))), ["msg", "HL7020"]);
    }

    #[test]
    fn missing_and_orphan_trailers() {
        // BHS never closed by BTS: found at FTS, and at end of stream.
        let got = items(&format!("FHS|^\rBHS|^\r{M1}\rFTS|1"));
        assert_eq!(codes(&got), ["msg", "HL7021"]);
        let Item::Problem(p) = &got[1] else { unreachable!() };
        assert_eq!((p.offset, p.bytes.as_slice()), (6, &b"BHS|^"[..]));
        assert_eq!(codes(&items(&format!("BHS|^\r{M1}"))), ["msg", "HL7021"]);
        assert_eq!(codes(&items(&format!("FHS|^\r{M1}"))), ["msg", "HL7021"]);
        // Implicit batch and file (no BHS, no FHS): counted, no trailer needed.
        assert_eq!(codes(&items(&format!("{M1}\r{M2}\rBTS|2\rFTS|1"))), ["msg", "msg"]);
        assert_eq!(codes(&items(&format!("FHS|^\r{M1}\r{M2}\rFTS|1"))), ["msg", "msg"]);
        assert_eq!(codes(&items(&format!("{M1}\rBTS|2"))), ["msg", "HL7020"]);
        // Trailers with nothing to close.
        assert_eq!(codes(&items(&format!("{M1}\rBTS|1\rBTS|0"))), ["msg", "HL7021"]);
        assert_eq!(codes(&items(&format!("{M1}\rFTS|1\rFTS|0"))), ["msg", "HL7021"]);
    }

    #[test]
    fn nested_headers() {
        let got = items(&format!("FHS|^\rBHS|^\r{M1}\rBHS|^\r{M2}\rBTS|1\rFHS|^\rFTS|0"));
        // The first BHS is closed by the second; the first FHS by the second.
        assert_eq!(codes(&got), ["msg", "HL7021", "msg", "HL7021"]);
        let msgs = got.iter().filter(|i| matches!(i, Item::Message(_))).count();
        assert_eq!(msgs, 2);
        let idx: Vec<usize> = got.iter().map(Item::index).collect();
        assert_eq!(idx, [0, 1, 2, 3]);
    }

    fn parsed(text: &str) -> String {
        let joined = join_add_segments(text);
        let m = parse_message(&joined).unwrap();
        crate::codec::encode(&m)
    }

    #[test]
    fn dsc_add_two_parts_equal_one() {
        let whole = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rPID|1||42\rOBR|1\rOBX|1|TX|N||first part second part||||||F\rNTE|1||note";
        let part1 =
            "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rPID|1||42\rOBR|1\rOBX|1|TX|N||first part\rADD\rDSC|PTR-1|F";
        let part2 = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|2|P|2.5||PTR-1\rADD| second part||||||F\rNTE|1||note";
        let other = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|9|P|2.5\rPID|9";
        let got = items(&format!("{part1}\r{other}\r{part2}\r"));
        assert_eq!(codes(&got), ["msg", "msg"]);
        let (Item::Message(o), Item::Message(m)) = (&got[0], &got[1]) else { unreachable!() };
        assert_eq!(o.bytes, other.as_bytes());
        assert_eq!((m.offset, m.index), (0, 1));
        let text = std::str::from_utf8(&m.bytes).unwrap();
        assert_eq!(parsed(text), parsed(whole));
        // Three parts, split on a segment boundary then inside OBX-5.
        let a = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rPID|1||42\rDSC|P1";
        let b = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|2|P|2.5||P1\rOBR|1\rOBX|1|TX|N||first\rADD\rDSC|P2|F";
        let c = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|3|P|2.5||P2\rADD| part second part||||||F\rNTE|1||note";
        let got = items(&format!("{a}\n{b}\n{c}"));
        let [Item::Message(m)] = got.as_slice() else { panic!("{got:?}") };
        assert_eq!(parsed(std::str::from_utf8(&m.bytes).unwrap()), parsed(whole));
        // Interactive continuation (DSC-2 = I) and an empty DSC-1 are left alone.
        let q = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rPID|1\rDSC|P9|I";
        assert_eq!(codes(&items(q)), ["msg"]);
        assert_eq!(codes(&items("MSH|^~\\&|A\rDSC|")), ["msg"]);
    }

    #[test]
    fn obx5_add_continuation_in_one_message() {
        let split = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rOBX|1|TX|N||AAAA\rADD|BBBB\rADD|CC^DD||||||F";
        let whole = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rOBX|1|TX|N||AAAABBBBCC^DD||||||F";
        assert_eq!(join_add_segments(split), whole);
        let m = parse_message(&join_add_segments(split)).unwrap().into_owned();
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.segments[1].fields[10].repetitions[0].components[0].subcomponents[0], "F");
    }

    #[test]
    fn orphans_are_kept_whole() {
        let part1 = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rOBX|1|TX|N||first\rADD\rDSC|LOST";
        let got = items(&format!("{part1}\r{M2}"));
        assert_eq!(codes(&got), ["msg", "HL7022"]);
        let Item::Problem(p) = &got[1] else { unreachable!() };
        assert_eq!((p.offset, p.bytes.as_slice()), (0, part1.as_bytes()));
        // A continuation without its first part.
        let cont = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|2|P|2.5||NOPE\rADD|rest";
        let got = items(&format!("{M1}\r{cont}"));
        assert_eq!(codes(&got), ["msg", "HL7023"]);
        let Item::Problem(p) = &got[1] else { unreachable!() };
        assert_eq!(p.bytes, cont.as_bytes());
        // MSH-14 set on an ordinary message: passed through.
        assert_eq!(codes(&items("MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||X\rPID|1")), ["msg"]);
        // Too many open chains: the oldest are given up.
        let many: String = (0..MAX_PENDING + 2)
            .map(|i| format!("MSH|^~\\&|A|B|C|D|2024||ORU^R01|{i}|P|2.5\rOBX|1\rDSC|P{i}\r"))
            .collect();
        let got = items(&many);
        assert_eq!(got.len(), MAX_PENDING + 2);
        assert!(got.iter().all(|i| matches!(i, Item::Problem(p) if p.code == "HL7022")));
    }

    #[test]
    fn add_join() {
        let t = "MSH|^~\\&|A\rOBX|1|TX|x||Hello wo\rADD|rld|||F\rADD\rNTE|1";
        assert_eq!(join_add_segments(t), "MSH|^~\\&|A\rOBX|1|TX|x||Hello world|||F\rNTE|1");
        let t = "MSH|^~\\&|A\rPID|1\rADD|x";
        assert!(matches!(join_add_segments(t), Cow::Borrowed(_)));
        assert!(matches!(join_add_segments("MSH|^~\\&|A\rPID|1"), Cow::Borrowed(_)));
        assert_eq!(join_add_segments("MSH|^~\\&|A\r\nOBX|1|a\r\nADD|b\r\n"), "MSH|^~\\&|A\r\nOBX|1|ab\r\n");
    }
}
