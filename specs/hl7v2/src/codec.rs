//! HL7 v2 codec: one message's text to a tree (segments, fields, repetitions, components,
//! subcomponents) and back.
//!
//! The delimiters come from MSH-1 (field separator) and MSH-2 (component, repetition, escape,
//! subcomponent and, from v2.7, truncation characters). MSH-2 must hold 4 or 5 distinct
//! characters (fewer: `HL7002`; more, or a repeat: `HL7003`); the field separator must not be a
//! letter or digit, nor MSH-2 hold one of `FSTREXDA0`, the characters [`escape`] writes in its
//! sequences (`HL7003`). [`EncodingCharacters::Tolerant`] (a parser profile's
//! `encoding_characters: tolerant`) also reads a doubled escape character (`HL7006`) and a
//! 3-character MSH-2 (`HL7007`) as warnings, not errors; the tree and the round trip are the
//! same as for any other message, because MSH-2 is kept verbatim.
//!
//! Segments are separated by CR, LF or CRLF in any mix; a leading UTF-8 BOM and blank lines
//! (empty, or only spaces and tabs) are skipped. Every other line must start with a segment id
//! of 3 characters, an uppercase letter then uppercase letters or digits (`HL7004`), which
//! fails the parse, or, with [`BadSegments::Drop`] (a parser profile's `bad_segments: drop`),
//! leaves that one segment out and lists it in [`Parsed::dropped`] with its number and byte
//! range, so the kept segments and the dropped ones are together every segment of the text.
//! `Segment::line` counts segments, not skipped lines (a dropped segment keeps its number).
//! This layout is read by one function (`scan`), shared with the lazy [`crate::view`].
//!
//! # Tree shape
//!
//! `Segment::fields[0]` is field 1. In header segments (`MSH`, `FHS`, `BHS`) `fields[0]` is the
//! field separator and `fields[1]` the encoding characters, both as one literal value that is
//! neither split nor unescaped; on encode, field 1 is always written as `Delimiters::field` and
//! field 2 verbatim from the tree (keep it in step with [`Message::delimiters`]).
//!
//! Empty text is the empty list at every level: an empty field has no repetitions, an empty
//! repetition no components, an empty component no subcomponents. So the *canonical* tree, the
//! one `parse_message` builds, never holds a list whose only element is empty (`[""]`,
//! `[Component { [] }]`, ...): such a list encodes to the same text as the empty list. Encode
//! trims nothing, so `parse_message(&encode(t)) == t` for every canonical tree `t` whose values
//! round trip through [`escape`] (see below) and whose spellings are those parsing records (none
//! for standard escapes), whose header segments have the shape above and
//! whose segment offsets and lines are those of the encoded text.
//!
//! # Escapes and the round-trip rule
//!
//! [`unescape`] decodes `\F\ \S\ \T\ \R\ \E\` to the delimiter characters and `\Xhh..\` (an even
//! number of hex digits that spell valid UTF-8) to text. Recognised sequences that are not
//! decoded are kept literally, escape characters included: formatting (`\.br\ \H\ \N\ \.sp2\
//! \.in-4\` ...), charset (`\C2842\ \M2442\`), local (`\Zxx\`), `\P\` when MSH-2 has a truncation
//! character, and `\X..\` that is not valid hex or not UTF-8 (no data is guessed). Any other
//! escape character (unpaired, `\\`, an unknown body like `\Q\`, or a body holding a delimiter)
//! is a literal character; the text after it is read on as usual.
//!
//! [`escape`] is the exact inverse for every string `s` (`unescape(escape(s)) == s`):
//! - field, component, repetition and subcomponent characters become `\F\ \S\ \R\ \T\`;
//! - CR and LF become `\X0D\` and `\X0A\`;
//! - an escape character that, together with the text up to the next escape character, spells a
//!   sequence `unescape` keeps (like `\.br\`) is written as is, sequence and all;
//! - any other escape character becomes `\E\`.
//!
//! The truncation character is not a delimiter inside values and is never escaped.
//!
//! # Spellings and the round trip
//!
//! Some texts read to a value that [`escape`] writes differently: a stray escape character
//! (`C:\temp`, `\Q\`, an unpaired `\` at the end), hex that is not how `escape` writes it
//! (`\X41\` for `A`, `\X0d\`, `\X0D0A\`), or `\E\` followed by text that completes a kept
//! sequence (`\E\.br\E\`). For each such value the parser records a [`Spelling`] in its
//! segment: where the value is and its text as written (borrowed, like the values). A value
//! without the escape character is its own escape, so the common case costs one scan for the
//! escape character, as before, and leaves [`Segment::spellings`] empty (no allocation).
//!
//! [`encode`] writes a value's recorded spelling instead of `escape(value)` when the spelling
//! still reads back to the value in the tree ([`Spelling::reads_back_to`]: no delimiter or line
//! break in it, and [`unescape`] gives the value under the message's delimiters). A value that
//! was changed, moved, or whose delimiters changed is thus escaped the standard way, and the
//! written text always reads back to the tree's values. Comparing with the decoded value, not a
//! "dirty" flag, keeps the public tree plain data that callers may edit in place.
//!
//! Hence `encode(parse_message_with(t, o)) == t` byte for byte, under strict and tolerant
//! options, for every text `t` that parses, except for the segment layout: a leading BOM,
//! blank lines and trailing line breaks are dropped, and a text that mixes segment separators
//! is written with CR throughout (`Message::segment_separator` records one separator, not one
//! per line). Trees built by hand, or edited, are written with standard escapes.
//!
//! Errors ([`ParseError`]) carry a code and a byte offset, never message content.

use std::borrow::Cow;
use std::fmt;

/// The delimiter characters of a message, from MSH-1 and MSH-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    /// `None` only when built by hand: values are then written unescaped, and a value holding a
    /// delimiter does not survive a round trip.
    pub escape: Option<char>,
    pub subcomponent: char,
    /// v2.7+ truncation character (5th character of MSH-2); not special inside values.
    pub truncation: Option<char>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: Some('\\'),
            subcomponent: '&',
            truncation: None,
        }
    }
}

impl Delimiters {
    /// MSH-2 for these delimiters: component, repetition, escape, subcomponent, truncation.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::with_capacity(5);
        s.push(self.component);
        s.push(self.repetition);
        if let Some(e) = self.escape {
            s.push(e);
        }
        s.push(self.subcomponent);
        if let Some(t) = self.truncation {
            s.push(t);
        }
        s
    }

    fn is_separator(&self, c: char) -> bool {
        c == self.field || c == self.component || c == self.repetition || c == self.subcomponent
    }
}

/// The segment separator seen while parsing, and the one `encode` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SegmentSeparator {
    #[default]
    Cr,
    Lf,
    CrLf,
    /// More than one kind was seen; `encode` writes CR.
    Mixed,
}

impl SegmentSeparator {
    /// The text `encode` writes between segments.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentSeparator::Lf => "\n",
            SegmentSeparator::CrLf => "\r\n",
            SegmentSeparator::Cr | SegmentSeparator::Mixed => "\r",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message<'a> {
    pub delimiters: Delimiters,
    pub segments: Vec<Segment<'a>>,
    pub segment_separator: SegmentSeparator,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Segment<'a> {
    pub id: Cow<'a, str>,
    /// `fields[0]` is field 1 (for `MSH`, MSH-1).
    pub fields: Vec<Field<'a>>,
    /// Byte offset of the segment in the text given to `parse_message`.
    pub offset: usize,
    /// 1-based segment number in the message.
    pub line: usize,
    /// How the values of this segment that [`escape`] would write differently were written in
    /// the parsed text, ordered by position; empty for almost every segment. See "Spellings" in
    /// the module docs.
    pub spellings: Vec<Spelling<'a>>,
}

/// The text a value was written as, kept because [`escape`] writes that value differently
/// (a stray escape character, lower-case hex, `\X41\` for `A`, ...).
///
/// `encode` writes `raw` instead of escaping the value at `at` as long as `raw` still reads back
/// to that value ([`Spelling::reads_back_to`]); a value changed since parsing is escaped the
/// standard way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spelling<'a> {
    /// Where the value is, all 0-based: index in [`Segment::fields`], repetition, component,
    /// subcomponent.
    pub at: [usize; 4],
    /// The value as written, escape sequences undecoded.
    pub raw: Cow<'a, str>,
}

impl Spelling<'_> {
    /// Whether writing `raw` in place of `value` reads back as `value` under `d`: `raw` holds no
    /// delimiter or line break (so it stays one subcomponent) and [`unescape`] gives `value`.
    pub fn reads_back_to(&self, value: &str, d: &Delimiters) -> bool {
        !self.raw.contains(|c: char| d.is_separator(c) || c == '\r' || c == '\n') && unescape(&self.raw, d) == value
    }

    pub fn into_owned(self) -> Spelling<'static> {
        Spelling { at: self.at, raw: owned(self.raw) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Field<'a> {
    pub repetitions: Vec<Repetition<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Repetition<'a> {
    pub components: Vec<Component<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Component<'a> {
    /// Decoded values; borrowed from the message text when they held no escape sequence.
    pub subcomponents: Vec<Cow<'a, str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub code: &'static str,
    /// Describes the problem without quoting the message (it may hold PHI).
    pub message: String,
    /// Byte offset in the parsed text.
    pub offset: usize,
}

impl ParseError {
    fn new(code: &'static str, message: &str, offset: usize) -> Self {
        ParseError { code, message: message.to_string(), offset }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.code, self.offset, self.message)
    }
}

impl std::error::Error for ParseError {}

const BOM: &str = "\u{feff}";

fn is_header_id(id: &str) -> bool {
    matches!(id, "MSH" | "FHS" | "BHS")
}

fn is_valid_segment_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 3 && b[0].is_ascii_uppercase() && b[1..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_blank(line: &str) -> bool {
    line.bytes().all(|b| b == b' ' || b == b'\t')
}

/// How strictly MSH-2 (the encoding characters) is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EncodingCharacters {
    /// MSH-2 must hold 4 or 5 distinct characters (`HL7002`, `HL7003` otherwise).
    #[default]
    Strict,
    /// Also accepts two spellings real senders use, each with a warning: a doubled escape
    /// character (`^~\\&`, `HL7006`: read as `^~\&`) and only 3 characters (`^~\`, `HL7007`:
    /// component, repetition and escape; the subcomponent separator is taken to be `&`). MSH-2 is
    /// kept verbatim in the tree, so the message still round trips byte for byte. Everything
    /// else strict rejects is still rejected.
    Tolerant,
}

impl EncodingCharacters {
    /// The profile spellings (`strict`, `tolerant`).
    pub const NAMES: &'static [&'static str] = &["strict", "tolerant"];

    pub fn from_name(name: &str) -> Option<EncodingCharacters> {
        match name {
            "strict" => Some(EncodingCharacters::Strict),
            "tolerant" => Some(EncodingCharacters::Tolerant),
            _ => None,
        }
    }
}

/// What a parse does with a segment that cannot be read: a line inside the message whose
/// segment id is not valid (`HL7004`: a stray line of text, `P@D|...`, a lower-case id).
/// Problems that make the whole message unreadable (no MSH, bad delimiters) fail the parse
/// under either mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BadSegments {
    /// The parse fails with the segment's error (the message is rejected whole).
    #[default]
    Reject,
    /// The segment is left out of the tree (and the view) and reported in `dropped`
    /// ([`DroppedSegment`]: its number, byte range and error); the other segments are read as
    /// usual and keep their numbers.
    Drop,
}

impl BadSegments {
    /// The profile spellings (`reject`, `drop`).
    pub const NAMES: &'static [&'static str] = &["reject", "drop"];

    pub fn from_name(name: &str) -> Option<BadSegments> {
        match name {
            "reject" => Some(BadSegments::Reject),
            "drop" => Some(BadSegments::Drop),
            _ => None,
        }
    }
}

/// Options for [`parse_message_with`]; the default is what [`parse_message`] does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ParseOptions {
    pub encoding_characters: EncodingCharacters,
    pub bad_segments: BadSegments,
}

/// A segment a [`BadSegments::Drop`] parse left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedSegment {
    /// 1-based number of the segment in the message, counted as [`Segment::line`] counts (the
    /// dropped segments included), so the kept segments and the dropped ones number 1..=n.
    pub line: usize,
    /// Byte range of the segment's text in the parsed text, without its line break.
    pub range: std::ops::Range<usize>,
    /// Why it was dropped: code and content-free message; `offset` is `range.start`.
    pub error: ParseError,
}

/// Something a tolerant parse accepted but that a strict one rejects: same shape as a
/// [`ParseError`] (code, content-free message, byte offset).
pub type ParseWarning = ParseError;

/// A message and the warnings its parse produced (empty under [`EncodingCharacters::Strict`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub message: Message<'a>,
    pub warnings: Vec<ParseWarning>,
    /// The segments left out under [`BadSegments::Drop`], in message order (always empty under
    /// `Reject`).
    pub dropped: Vec<DroppedSegment>,
}

/// The subcomponent separator assumed when a tolerated 3-character MSH-2 leaves it out.
const ASSUMED_SUBCOMPONENT: char = '&';

/// Reads the delimiters from the start of `body` (which starts with `MSH`). `base` is the offset
/// of `body` in the parsed text, for errors; a tolerated spelling adds a warning to `warnings`.
fn read_delimiters(
    body: &str,
    base: usize,
    mode: EncodingCharacters,
    warnings: &mut Vec<ParseWarning>,
) -> Result<Delimiters, ParseError> {
    let after_id = body.get(3..).unwrap_or("");
    let mut chars = after_id.chars();
    let field = match chars.next() {
        Some(c) if c != '\r' && c != '\n' => c,
        _ => {
            return Err(ParseError::new("HL7002", "MSH segment ends before the field separator", base + 3));
        }
    };
    if field.is_ascii_alphanumeric() {
        return Err(ParseError::new("HL7003", "field separator must not be a letter or digit", base + 3));
    }
    let enc_start = 3 + field.len_utf8();
    let mut enc: Vec<char> = chars.take_while(|&c| c != field && c != '\r' && c != '\n').collect();
    // Positions (in chars of MSH-2) that a tolerated spelling dropped, for error offsets.
    let mut dropped = None;
    if mode == EncodingCharacters::Tolerant {
        if enc.len() >= 5 && enc[2] == enc[3] {
            enc.remove(3);
            dropped = Some(3);
            warnings.push(ParseError::new(
                "HL7006",
                "MSH-2 repeats the escape character; read as if written once (tolerant encoding characters)",
                base + enc_start + enc[..2].iter().map(|c| c.len_utf8()).sum::<usize>(),
            ));
        } else if enc.len() == 3 && !enc.contains(&ASSUMED_SUBCOMPONENT) && field != ASSUMED_SUBCOMPONENT {
            enc.push(ASSUMED_SUBCOMPONENT);
            warnings.push(ParseError::new(
                "HL7007",
                "MSH-2 holds 3 encoding characters; subcomponent separator `&` assumed (tolerant encoding characters)",
                base + enc_start,
            ));
        }
    }
    if enc.len() < 4 {
        return Err(ParseError::new("HL7002", "MSH-2 must hold at least 4 encoding characters", base + enc_start));
    }
    if enc.len() > 5 {
        return Err(ParseError::new("HL7003", "MSH-2 holds more than 5 encoding characters", base + enc_start));
    }
    let mut seen = vec![field];
    let mut pos = base + enc_start;
    for (i, &c) in enc.iter().enumerate() {
        if dropped == Some(i) {
            // The dropped repeat of the escape character sits before this one in the text.
            pos += enc[2].len_utf8();
        }
        // `escape` writes `\F\ \S\ \T\ \R\ \E\ \X0D\ \X0A\`: one of their characters as a delimiter
        // would split them, and values could not round trip.
        if "FSTREXDA0".contains(c) {
            return Err(ParseError::new("HL7003", "encoding characters must not be one of F S T R E X D A 0", pos));
        }
        if seen.contains(&c) {
            return Err(ParseError::new("HL7003", "duplicate delimiter character", pos));
        }
        seen.push(c);
        pos += c.len_utf8();
    }
    Ok(Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: Some(enc[2]),
        subcomponent: enc[3],
        truncation: enc.get(4).copied(),
    })
}

/// Parses one message with the default (strict) options. See the module docs for the tree
/// shape and what is tolerated.
pub fn parse_message(text: &str) -> Result<Message<'_>, ParseError> {
    parse_message_with(text, ParseOptions::default()).map(|p| p.message)
}

/// Parses one message under `options`; the warnings list what a tolerant option accepted.
pub fn parse_message_with(text: &str, options: ParseOptions) -> Result<Parsed<'_>, ParseError> {
    parse_into(text, options, |v| v)
}

/// Like [`parse_message_with`] followed by [`Message::into_owned`], in one pass: each value is
/// copied once, as it is cut out (for callers that must keep the tree past the text's lifetime).
pub fn parse_message_owned(text: &str, options: ParseOptions) -> Result<Parsed<'static>, ParseError> {
    parse_into(text, options, owned)
}

/// Parses with `value` applied to every id and value of the tree: the identity (borrowed tree)
/// or [`owned`].
fn parse_into<'a, 'o>(
    text: &'a str,
    options: ParseOptions,
    value: impl Fn(Cow<'a, str>) -> Cow<'o, str> + Copy,
) -> Result<Parsed<'o>, ParseError> {
    let mut segments = Vec::with_capacity(count(text, '\r') + 1);
    let scanned = scan(text, options, |line| {
        segments.push(parse_segment(line, segments.len() + 1, value));
    })?;
    if !scanned.dropped.is_empty() {
        renumber(&mut segments, &scanned.dropped);
    }
    let message = Message { delimiters: scanned.delimiters, segments, segment_separator: scanned.separator };
    Ok(Parsed { message, warnings: scanned.warnings, dropped: scanned.dropped })
}

/// Gives each kept segment its number in the message, the dropped segments counted (they were
/// numbered as they came, without them).
#[cold]
fn renumber(segments: &mut [Segment<'_>], dropped: &[DroppedSegment]) {
    let mut before = 0;
    for s in segments {
        while dropped.get(before).is_some_and(|d| d.range.start < s.offset) {
            before += 1;
        }
        s.line += before;
    }
}

/// What [`scan`] found besides the segments.
pub(crate) struct Scanned {
    pub delimiters: Delimiters,
    pub separator: SegmentSeparator,
    pub warnings: Vec<ParseWarning>,
    pub dropped: Vec<DroppedSegment>,
}

/// One segment's text as [`scan`] hands it out: the id checked, the text after the first field
/// separator (`None` when the segment has no field separator), and where it starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line<'a> {
    pub id: &'a str,
    /// The field separator as written after the id (empty when there is none).
    pub separator: &'a str,
    pub rest: Option<&'a str>,
    pub offset: usize,
    pub delimiters: Delimiters,
}

/// The one reading of a message's layout, shared by [`parse_message_with`] and the lazy
/// [`crate::view`]: BOM, MSH and its delimiters, lines cut at CR/LF/CRLF, blank lines skipped,
/// segment ids checked (so both accept and reject exactly the same texts). Calls `segment` for
/// each segment, in order. A segment whose id is not valid fails the scan, or under
/// [`BadSegments::Drop`] is recorded in [`Scanned::dropped`] instead: that check runs only on
/// the invalid id, so the common path costs what it did.
pub(crate) fn scan<'a>(
    text: &'a str,
    options: ParseOptions,
    mut segment: impl FnMut(Line<'a>),
) -> Result<Scanned, ParseError> {
    let start = if text.starts_with(BOM) { BOM.len() } else { 0 };
    let body = text.get(start..).unwrap_or("");
    if !body.starts_with("MSH") {
        return Err(ParseError::new("HL7001", "message does not start with an MSH segment", start));
    }
    let mut warnings = Vec::new();
    let delimiters = read_delimiters(body, start, options.encoding_characters, &mut warnings)?;

    let bytes = text.as_bytes();
    // (saw CR, saw LF, saw CRLF) between segments
    let mut kinds = [false; 3];
    let mut pending_kind: Option<usize> = None;
    let mut dropped = Vec::new();
    let mut pos = start;
    while pos < bytes.len() {
        let end = crate::bytes::find_any(&bytes[pos..], [b'\r', b'\n']).map_or(bytes.len(), |i| pos + i);
        let (kind, term_len) = match bytes.get(end) {
            Some(b'\r') if bytes.get(end + 1) == Some(&b'\n') => (Some(2), 2),
            Some(b'\r') => (Some(0), 1),
            Some(_) => (Some(1), 1),
            None => (None, 0),
        };
        let line = text.get(pos..end).unwrap_or("");
        if !is_blank(line) {
            if let Some(k) = pending_kind.take() {
                kinds[k] = true;
            }
            let fl = delimiters.field.len_utf8();
            let (id, separator, rest) = match line.find(delimiters.field) {
                Some(i) => (&line[..i], &line[i..i + fl], Some(&line[i + fl..])),
                None => (line, "", None),
            };
            if is_valid_segment_id(id) {
                segment(Line { id, separator, rest, offset: pos, delimiters });
            } else {
                bad_segment(options.bad_segments, text, start, pos..end, &mut dropped)?;
            }
            pending_kind = kind;
        }
        pos = end + term_len;
    }
    let separator = match kinds {
        [_, false, false] => SegmentSeparator::Cr,
        [false, true, false] => SegmentSeparator::Lf,
        [false, false, true] => SegmentSeparator::CrLf,
        _ => SegmentSeparator::Mixed,
    };
    Ok(Scanned { delimiters, separator, warnings, dropped })
}

/// A line (`range` in `text`, whose segments start at `start`) whose segment id is not valid:
/// the parse's error (`Reject`), or one more entry in `dropped` (`Drop`). Out of line, and the
/// segment's number is counted here, from the text, rather than by the scan's loop, which thus
/// does what it did before the option existed (measured: docs/benchmarks.md).
#[cold]
#[inline(never)]
fn bad_segment(
    mode: BadSegments,
    text: &str,
    start: usize,
    range: std::ops::Range<usize>,
    dropped: &mut Vec<DroppedSegment>,
) -> Result<(), ParseError> {
    let error = ParseError::new(
        "HL7004",
        "segment id must be 3 characters: an uppercase letter, then uppercase letters or digits",
        range.start,
    );
    if mode == BadSegments::Reject {
        return Err(error);
    }
    let before = text.get(start..range.start).unwrap_or("");
    let line = 1 + before.split(['\r', '\n']).filter(|l| !is_blank(l)).count();
    dropped.push(DroppedSegment { line, range, error });
    Ok(())
}

fn parse_segment<'a, 'o>(
    line: Line<'a>,
    number: usize,
    value: impl Fn(Cow<'a, str>) -> Cow<'o, str> + Copy,
) -> Segment<'o> {
    let Line { id, separator, rest, offset, delimiters: d } = line;
    let mut fields = Vec::new();
    let mut spellings: Vec<Spelling<'o>> = Vec::new();
    if let Some(rest) = rest {
        let mut pieces = rest.split(d.field);
        if is_header_id(id) {
            fields.push(literal_field(separator, value));
            if !rest.is_empty() {
                if let Some(enc) = pieces.next() {
                    fields.push(literal_field(enc, value));
                }
            } else {
                pieces.next();
            }
        }
        fields.reserve_exact(count(rest, d.field) + 1);
        let mut spelled = false;
        fields.extend(pieces.map(|raw| parse_field(raw, &d, value, &mut spelled)));
        if spelled {
            spellings = segment_spellings(rest, &d, is_header_id(id), value);
        }
    }
    Segment { id: value(Cow::Borrowed(id)), fields, offset, line: number, spellings }
}

/// How many times `c` occurs in `s` (a byte count for ASCII delimiters, the usual case).
fn count(s: &str, c: char) -> usize {
    if c.is_ascii() {
        let b = c as u8;
        s.bytes().filter(|&x| x == b).count()
    } else {
        s.matches(c).count()
    }
}

/// `s` split at `sep`, each piece mapped by `f`, in a vector allocated once at its final size
/// (parsing allocates a vector per level of every field; growing them cost more than splitting).
fn split_map<'a, T>(s: &'a str, sep: char, f: impl FnMut(&'a str) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(count(s, sep) + 1);
    out.extend(s.split(sep).map(f));
    out
}

fn literal_field<'a, 'o>(text: &'a str, value: impl Fn(Cow<'a, str>) -> Cow<'o, str>) -> Field<'o> {
    if text.is_empty() {
        return Field::default();
    }
    let subcomponents = vec![value(Cow::Borrowed(text))];
    Field { repetitions: vec![Repetition { components: vec![Component { subcomponents }] }] }
}

/// Parses one field; sets `spelled` when a value's text is not what [`escape`] writes for it.
fn parse_field<'a, 'o>(
    raw: &'a str,
    d: &Delimiters,
    value: impl Fn(Cow<'a, str>) -> Cow<'o, str> + Copy,
    spelled: &mut bool,
) -> Field<'o> {
    if raw.is_empty() {
        return Field::default();
    }
    Field { repetitions: split_map(raw, d.repetition, |r| parse_repetition(r, d, value, spelled)) }
}

fn parse_repetition<'a, 'o>(
    raw: &'a str,
    d: &Delimiters,
    value: impl Fn(Cow<'a, str>) -> Cow<'o, str> + Copy,
    spelled: &mut bool,
) -> Repetition<'o> {
    if raw.is_empty() {
        return Repetition::default();
    }
    Repetition {
        components: split_map(raw, d.component, |c| {
            if c.is_empty() {
                Component::default()
            } else {
                Component {
                    subcomponents: split_map(c, d.subcomponent, |s| match d.escape {
                        Some(e) if s.contains(e) => value(read_escaped(s, d, spelled)),
                        _ => value(Cow::Borrowed(s)),
                    }),
                }
            }
        }),
    }
}

/// The [`Spelling`]s of a segment (`rest`: its text after the id's field separator), in
/// order: a second pass, only over a segment in which [`parse_field`] found a non-standard
/// spelling (rare), so that the common path keeps no positions.
#[cold]
fn segment_spellings<'a, 'o>(
    rest: &'a str,
    d: &Delimiters,
    header: bool,
    value: impl Fn(Cow<'a, str>) -> Cow<'o, str>,
) -> Vec<Spelling<'o>> {
    let mut spellings = Vec::new();
    // In a header segment the first piece is MSH-2, `fields[1]`, a literal.
    let skip = usize::from(header);
    for (i, field) in rest.split(d.field).enumerate().skip(skip) {
        for (ri, rep) in field.split(d.repetition).enumerate() {
            for (ci, comp) in rep.split(d.component).enumerate() {
                for (si, sub) in comp.split(d.subcomponent).enumerate() {
                    if read_value(sub, d).1 {
                        spellings.push(Spelling { at: [i + skip, ri, ci, si], raw: value(Cow::Borrowed(sub)) });
                    }
                }
            }
        }
    }
    spellings
}

/// One subcomponent's value, and whether its text is not what [`escape`] writes for it (then the
/// caller records the text as a [`Spelling`]). Only a text holding the escape character can be:
/// any other is its own escape.
fn read_value<'a>(raw: &'a str, d: &Delimiters) -> (Cow<'a, str>, bool) {
    let mut spelled = false;
    let value = match d.escape {
        Some(e) if raw.contains(e) => read_escaped(raw, d, &mut spelled),
        _ => Cow::Borrowed(raw),
    };
    (value, spelled)
}

/// [`read_value`] of a text holding the escape character (kept out of line: the common value
/// holds none, and the parser's inner loop stays small). Sets `spelled` for a non-standard
/// spelling.
#[inline(never)]
fn read_escaped<'a>(raw: &'a str, d: &Delimiters, spelled: &mut bool) -> Cow<'a, str> {
    let decoded = unescape(raw, d);
    if escape(&decoded, d) != raw {
        *spelled = true;
    }
    decoded
}

/// Writes a message: segments joined by `message.segment_separator` (CR for `Mixed`), with no
/// separator after the last segment; values are escaped with [`escape`].
pub fn encode(message: &Message) -> String {
    let d = &message.delimiters;
    let sep = message.segment_separator.as_str();
    let mut out = String::new();
    for (i, seg) in message.segments.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        encode_segment(&mut out, seg, d);
    }
    out
}

fn encode_segment(out: &mut String, seg: &Segment, d: &Delimiters) {
    // Two instances of one writer: the common segment has no spellings, and its inner loop
    // then only escapes.
    if seg.spellings.is_empty() {
        write_segment(out, seg, d, |out, _, sub| out.push_str(&escape(sub, d)));
    } else {
        write_segment(out, seg, d, |out, at, sub| {
            match seg.spellings.binary_search_by_key(&at, |s| s.at).ok().map(|i| &seg.spellings[i]) {
                Some(s) if s.reads_back_to(sub, d) => out.push_str(&s.raw),
                _ => out.push_str(&escape(sub, d)),
            }
        });
    }
}

/// Writes a segment, each value through `value(out, position, value)` (positions as in
/// [`Spelling::at`]).
fn write_segment(
    out: &mut String,
    seg: &Segment,
    d: &Delimiters,
    mut value: impl FnMut(&mut String, [usize; 4], &str),
) {
    out.push_str(&seg.id);
    let mut fields = seg.fields.iter().enumerate();
    if is_header_id(&seg.id) {
        if fields.next().is_none() {
            return;
        }
        out.push(d.field);
        if let Some((at, enc)) = fields.next() {
            match literal_value(enc) {
                Some(v) => out.push_str(v),
                None => write_field(out, enc, d, at, &mut value),
            }
        }
    }
    for (at, f) in fields {
        out.push(d.field);
        write_field(out, f, d, at, &mut value);
    }
}

fn literal_value<'s>(f: &'s Field) -> Option<&'s str> {
    match f.repetitions.as_slice() {
        [] => Some(""),
        [r] => match r.components.as_slice() {
            [c] => match c.subcomponents.as_slice() {
                [s] => Some(s),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Writes field `at` of a segment.
fn write_field(
    out: &mut String,
    f: &Field,
    d: &Delimiters,
    at: usize,
    value: &mut impl FnMut(&mut String, [usize; 4], &str),
) {
    for (ri, rep) in f.repetitions.iter().enumerate() {
        if ri > 0 {
            out.push(d.repetition);
        }
        for (ci, comp) in rep.components.iter().enumerate() {
            if ci > 0 {
                out.push(d.component);
            }
            for (si, sub) in comp.subcomponents.iter().enumerate() {
                if si > 0 {
                    out.push(d.subcomponent);
                }
                value(out, [at, ri, ci, si], sub);
            }
        }
    }
}

/// What an escape sequence body (the text between two escape characters) decodes to.
enum Body {
    Char(char),
    Text(String),
    /// Kept literally, escape characters included.
    Keep,
    /// Not a sequence: the opening escape character is a literal character.
    Lone,
}

fn classify(body: &str, d: &Delimiters) -> Body {
    match body {
        "F" => return Body::Char(d.field),
        "S" => return Body::Char(d.component),
        "T" => return Body::Char(d.subcomponent),
        "R" => return Body::Char(d.repetition),
        "E" => {
            if let Some(e) = d.escape {
                return Body::Char(e);
            }
        }
        _ => {}
    }
    if body.chars().any(|c| d.is_separator(c) || c == '\r' || c == '\n') {
        return Body::Lone;
    }
    if body.starts_with('X') {
        return match decode_hex(body) {
            Some(s) => Body::Text(s),
            None => Body::Keep,
        };
    }
    if is_known_sequence(body, d) { Body::Keep } else { Body::Lone }
}

fn decode_hex(body: &str) -> Option<String> {
    let hex = body.strip_prefix('X')?.as_bytes();
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        bytes.push((hi * 16 + lo) as u8);
    }
    String::from_utf8(bytes).ok()
}

/// Decodes escape sequences in one raw subcomponent. See the module docs for which sequences are
/// decoded and which are kept. Returns borrowed text when nothing was decoded.
pub fn unescape<'a>(raw: &'a str, d: &Delimiters) -> Cow<'a, str> {
    let Some(e) = d.escape else {
        return Cow::Borrowed(raw);
    };
    // Most values hold no escape: an ASCII escape character is looked for a word at a time.
    let absent =
        if e.is_ascii() { crate::bytes::find_any(raw.as_bytes(), [e as u8]).is_none() } else { !raw.contains(e) };
    if absent {
        return Cow::Borrowed(raw);
    }
    let el = e.len_utf8();
    let mut out = String::with_capacity(raw.len());
    let mut changed = false;
    let mut rest = raw;
    while let Some(i) = rest.find(e) {
        out.push_str(&rest[..i]);
        let after = &rest[i + el..];
        let Some(j) = after.find(e) else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let body = &after[..j];
        match classify(body, d) {
            Body::Char(c) => {
                out.push(c);
                changed = true;
                rest = &after[j + el..];
            }
            Body::Text(s) => {
                out.push_str(&s);
                changed = true;
                rest = &after[j + el..];
            }
            Body::Keep => {
                out.push_str(&rest[i..i + el + j + el]);
                rest = &after[j + el..];
            }
            Body::Lone => {
                out.push(e);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(raw) }
}

/// Like [`unescape`], but fails with `HL7005` on a sequence that is neither a delimiter escape,
/// valid hex, nor a recognised formatting (`\H\ \N\ \.br\ \.sp\ \.in\ \.ti\ \.sk\ \.ce\ \.fi\
/// \.nf\`), charset (`\C..\ \M..\`), truncation (`\P\`) or local (`\Z..\`) escape. The offset is
/// the byte offset of the sequence in `raw`.
pub fn unescape_strict<'a>(raw: &'a str, d: &Delimiters) -> Result<Cow<'a, str>, ParseError> {
    if let Some(e) = d.escape {
        let el = e.len_utf8();
        let mut pos = 0;
        while let Some(i) = raw.get(pos..).and_then(|r| r.find(e)) {
            let start = pos + i;
            let after = &raw[start + el..];
            let Some(j) = after.find(e) else {
                return Err(ParseError::new("HL7005", "unterminated escape sequence", start));
            };
            let body = &after[..j];
            let ok = match classify(body, d) {
                Body::Char(_) | Body::Text(_) => true,
                Body::Lone => false,
                Body::Keep => !body.starts_with('X'),
            };
            if !ok {
                return Err(ParseError::new("HL7005", "bad escape sequence", start));
            }
            pos = start + el + j + el;
        }
    }
    Ok(unescape(raw, d))
}

/// Formatting (`\H\ \N\ \.br\ \.sp\ \.in\ \.ti\ \.sk\ \.ce\ \.fi\ \.nf\`), charset
/// (`\Cxxyy\ \Mxxyy\ \Mxxyyzz\`), truncation (`\P\`, when MSH-2 defines a truncation character)
/// and local (`\Z..\`) escape bodies.
fn is_known_sequence(body: &str, d: &Delimiters) -> bool {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let signed = |s: &str| digits(s.strip_prefix(['+', '-']).unwrap_or(s));
    let hex = |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
    match body {
        "H" | "N" | ".br" | ".ce" | ".fi" | ".nf" => true,
        "P" => d.truncation.is_some(),
        _ => {
            if let Some(n) = body.strip_prefix(".sp").or_else(|| body.strip_prefix(".sk")) {
                digits(n.trim_start())
            } else if let Some(n) = body.strip_prefix(".in").or_else(|| body.strip_prefix(".ti")) {
                signed(n.trim_start())
            } else if let Some(h) = body.strip_prefix('C') {
                hex(h, &[4])
            } else if let Some(h) = body.strip_prefix('M') {
                hex(h, &[4, 6])
            } else {
                body.len() > 1 && body.starts_with('Z')
            }
        }
    }
}

/// Escapes one value for writing as a subcomponent; the exact inverse of [`unescape`] (see the
/// module docs for the rule). Returns borrowed text when nothing needed escaping.
pub fn escape<'v>(value: &'v str, d: &Delimiters) -> Cow<'v, str> {
    let Some(e) = d.escape else {
        return Cow::Borrowed(value);
    };
    let needs = |c: char| d.is_separator(c) || c == e || c == '\r' || c == '\n';
    let Some(first) = value.find(needs) else {
        return Cow::Borrowed(value);
    };
    let el = e.len_utf8();
    let mut out = String::with_capacity(value.len() + 8);
    out.push_str(&value[..first]);
    let mut rest = &value[first..];
    while let Some(c) = rest.chars().next() {
        let cl = c.len_utf8();
        if c == e {
            let after = &rest[el..];
            if let Some(j) = after.find(e)
                && matches!(classify(&after[..j], d), Body::Keep)
            {
                out.push_str(&rest[..el + j + el]);
                rest = &after[j + el..];
                continue;
            }
            push_seq(&mut out, e, "E");
        } else if c == d.field {
            push_seq(&mut out, e, "F");
        } else if c == d.component {
            push_seq(&mut out, e, "S");
        } else if c == d.repetition {
            push_seq(&mut out, e, "R");
        } else if c == d.subcomponent {
            push_seq(&mut out, e, "T");
        } else if c == '\r' {
            push_seq(&mut out, e, "X0D");
        } else if c == '\n' {
            push_seq(&mut out, e, "X0A");
        } else {
            out.push(c);
        }
        rest = &rest[cl..];
    }
    Cow::Owned(out)
}

fn push_seq(out: &mut String, e: char, body: &str) {
    out.push(e);
    out.push_str(body);
    out.push(e);
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl<'a> Message<'a> {
    /// All segments with this id, in order.
    pub fn segments_named<'s>(&'s self, id: &'s str) -> impl Iterator<Item = &'s Segment<'a>> {
        self.segments.iter().filter(move |s| s.id == id)
    }

    fn msh(&self) -> Option<&Segment<'a>> {
        self.segments.first().filter(|s| s.id == "MSH")
    }

    /// MSH-9.1 and MSH-9.2 joined by `^` (`ADT^A01`), or MSH-9.1 alone when 9.2 is empty.
    pub fn message_type(&self) -> Option<String> {
        let rep = self.msh()?.field(9)?.repetitions.first()?;
        let comp = |i: usize| {
            rep.components.get(i).and_then(|c| c.subcomponents.first()).map(|s| s.as_ref()).filter(|s| !s.is_empty())
        };
        let code = comp(0)?;
        Some(match comp(1) {
            Some(event) => format!("{code}^{event}"),
            None => code.to_string(),
        })
    }

    /// MSH-10, the message control id.
    pub fn control_id(&self) -> Option<&str> {
        self.msh()?.field(10)?.first()
    }

    /// MSH-12.1, the version id.
    pub fn version(&self) -> Option<&str> {
        self.msh()?.field(12)?.first()
    }

    pub fn into_owned(self) -> Message<'static> {
        Message {
            delimiters: self.delimiters,
            segment_separator: self.segment_separator,
            segments: self
                .segments
                .into_iter()
                .map(|s| Segment {
                    id: owned(s.id),
                    offset: s.offset,
                    line: s.line,
                    fields: s.fields.into_iter().map(Field::into_owned).collect(),
                    spellings: s.spellings.into_iter().map(Spelling::into_owned).collect(),
                })
                .collect(),
        }
    }
}

impl<'a> Segment<'a> {
    /// Field `n`, 1-based (`field(3)` is PID-3; for MSH, `field(1)` is MSH-1).
    pub fn field(&self, n: usize) -> Option<&Field<'a>> {
        self.fields.get(n.checked_sub(1)?)
    }
}

impl<'a> Field<'a> {
    /// The first subcomponent of the first component of the first repetition, unless empty.
    pub fn first(&self) -> Option<&str> {
        self.repetitions
            .first()?
            .components
            .first()?
            .subcomponents
            .first()
            .map(|s| s.as_ref())
            .filter(|s| !s.is_empty())
    }

    pub fn into_owned(self) -> Field<'static> {
        Field {
            repetitions: self
                .repetitions
                .into_iter()
                .map(|r| Repetition {
                    components: r
                        .components
                        .into_iter()
                        .map(|c| Component { subcomponents: c.subcomponents.into_iter().map(owned).collect() })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Every code a [`ParseError`] (or a caller decoding bytes for this codec) can carry, with what
/// it means; `docs/diagnostics.md` is generated from this list.
pub const ERROR_CODES: &[(&str, &str, &str)] = &[
    (
        "HL7001",
        "The message does not start with MSH.",
        "An HL7 v2 message begins with an MSH segment (FHS and BHS only open batch envelopes). The record goes to the DLQ; check what the sender put before the first MSH.",
    ),
    (
        "HL7002",
        "MSH is too short to hold the delimiters.",
        "MSH-1 (the field separator) and MSH-2 (four or five encoding characters) define how the rest of the message is split. Without them nothing can be read.",
    ),
    (
        "HL7003",
        "The delimiter characters are invalid.",
        "The field separator must not be a letter or digit; the encoding characters in MSH-2 must be distinct, differ from the field separator, and not be one of F S T R E X D A 0 (those spell escape sequences such as \\F\\ and \\X0D\\, which such a delimiter would split). A common cause is a doubled escape character (`^~\\\\&`) written by a tool that escaped it twice.",
    ),
    (
        "HL7004",
        "A segment id is not valid.",
        "Segment ids are three characters: an upper-case letter, then upper-case letters or digits. A line that is not a segment (a comment, a stray line of text) inside a message causes this.",
    ),
    (
        "HL7005",
        "An escape sequence is not valid.",
        "Only reported in strict decoding: an escape character starts a sequence that is not one of \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ or a formatting escape.",
    ),
    (
        "HL7006",
        "Warning: MSH-2 repeats the escape character (tolerated).",
        "Only with the profile option `encoding_characters: tolerant`: MSH-2 reads `^~\\\\&`, the escape character written twice (a tool escaped it). The message is read as if MSH-2 were `^~\\&` and MSH-2 is kept as sent, so the message round-trips unchanged. Under the default (`strict`) this is HL7003.",
    ),
    (
        "HL7007",
        "Warning: MSH-2 holds only 3 encoding characters (tolerated).",
        "Only with the profile option `encoding_characters: tolerant`: MSH-2 has component, repetition and escape characters but no subcomponent separator; `&` is assumed (as in the standard default). Under the default (`strict`) this is HL7002. Fix the sender if its values contain `&`, which is then read as a subcomponent separator.",
    ),
    (
        "HL7010",
        "The message is not valid UTF-8.",
        "The bytes at the reported offset are not UTF-8. Set the profile's encoding to what the sender really uses, or fix the sender.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_rule_examples() {
        let d = Delimiters::default();
        for (value, raw) in [
            ("a|b^c~d&e", r"a\F\b\S\c\R\d\T\e"),
            (r"C:\x", r"C:\E\x"),
            (r"line\.br\next", r"line\.br\next"),
            ("cr\r\nlf", r"cr\X0D\\X0A\lf"),
            (r"\\", r"\E\\E\"),
            (r"\a|b\", r"\E\a\F\b\E\"),
        ] {
            assert_eq!(escape(value, &d), raw, "escape {value:?}");
            assert_eq!(unescape(raw, &d), value, "unescape {raw:?}");
        }
        assert_eq!(unescape(r"\X41\\XC3A9\", &d), "Aé");
        assert_eq!(unescape(r"\XE9\", &d), r"\XE9\");
        assert!(matches!(unescape("plain", &d), Cow::Borrowed(_)));
        assert!(matches!(unescape(r"\H\x\N\", &d), Cow::Borrowed(_)));
    }

    #[test]
    fn strict_unescape() {
        let d = Delimiters::default();
        assert!(unescape_strict(r"\H\bold\N\ \.sp2\ \.in-4\", &d).is_ok());
        assert_eq!(unescape_strict(r"ab\Q\", &d).unwrap_err().offset, 2);
        assert_eq!(unescape_strict(r"ab\x", &d).unwrap_err().code, "HL7005");
    }
}
