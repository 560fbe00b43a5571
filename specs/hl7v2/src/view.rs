//! A lazy, zero-copy view of one message: the segments are located (one pass over the text,
//! one small entry per segment), and fields, repetitions, components and subcomponents are
//! only cut out, and their escapes decoded, when a value is read.
//!
//! For callers that read a few values per message (extracting fields, routing on MSH-9) this
//! avoids building [`crate::codec::Message`], which allocates a vector per level of every field.
//!
//! Invariants:
//! - Accepts and rejects exactly the texts [`crate::codec::parse_message_with`] does, with the
//!   same errors and warnings, and under `BadSegments::Drop` drops the same segments (both read
//!   the layout through the same `codec::scan`).
//! - [`MessageView::select`] returns the values [`crate::codec::Message::select`] returns for
//!   the same path, in the same order (a property test holds them together).
//! - A value without escape sequences is borrowed from the text (`Cow::Borrowed`), however
//!   large: nothing is copied until an escape has to be decoded.
//! - [`ViewIndex`] is a view without the borrow (byte ranges into the text), for callers that
//!   keep the text and want to read it again later without locating the segments again;
//!   [`MessageView::from_index`] over the same text gives back the same view.
//! - The index also holds where every field separator of every segment is (found once, when
//!   the index is taken), so a view rebuilt from it finds field `n` without scanning the
//!   fields before it. [`MessageView::raw_field`] returns the same text either way (a property
//!   test compares a parsed view with the one rebuilt from its index, field by field).

use std::borrow::Cow;

use crate::codec::{
    self, Delimiters, DroppedSegment, ParseError, ParseOptions, ParseWarning, SegmentSeparator, unescape,
};
use crate::path::{Index, Path};

/// One segment: its id and the text after the id's field separator.
#[derive(Clone, Copy, Debug)]
pub struct SegmentView<'a> {
    pub id: &'a str,
    /// The field separator as written (MSH-1 of a header segment); empty when there is none.
    separator: &'a str,
    /// Text after the first field separator; `None` when the segment has none.
    rest: Option<&'a str>,
    /// Byte offset of the segment in the text.
    pub offset: usize,
    /// Byte offsets in `rest` of its field separators, when the view was rebuilt from an index
    /// ([`ViewIndex`]); `None`: fields are found by scanning `rest`.
    separators: Option<&'a [u32]>,
}

/// The same segment of the same text: where its field separators are known or not does not
/// change what it reads.
impl PartialEq for SegmentView<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.id, self.separator, self.rest, self.offset) == (other.id, other.separator, other.rest, other.offset)
    }
}

impl Eq for SegmentView<'_> {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView<'a> {
    pub delimiters: Delimiters,
    pub segment_separator: SegmentSeparator,
    pub segments: Vec<SegmentView<'a>>,
    /// What a tolerant option accepted (see [`codec::EncodingCharacters`]).
    pub warnings: Vec<ParseWarning>,
    /// Segments left out under [`codec::BadSegments::Drop`], as [`codec::Parsed::dropped`].
    pub dropped: Vec<DroppedSegment>,
}

/// One located segment as byte ranges into the message text.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SegmentSpan {
    id: (u32, u32),
    separator: (u32, u32),
    rest: Option<(u32, u32)>,
    offset: usize,
    /// Range in [`ViewIndex::separators`] of this segment's field separators; `None` when they
    /// were not located (a field separator that is not ASCII).
    separators: Option<(u32, u32)>,
}

/// A [`MessageView`] as byte ranges into its text: what to keep next to the text to read it
/// again without scanning it again ([`MessageView::from_index`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewIndex {
    delimiters: Delimiters,
    segment_separator: SegmentSeparator,
    segments: Vec<SegmentSpan>,
    /// Byte offsets of the field separators in each segment's rest, segment after segment.
    separators: Vec<u32>,
}

impl<'a> MessageView<'a> {
    /// The byte ranges of this view, which was parsed from `text`, with the offsets of every
    /// field separator (one pass over the text). `None` when a part does not lie inside `text`
    /// or the text is 4 GiB or more.
    pub fn index(&self, text: &str) -> Option<ViewIndex> {
        let base = text.as_ptr() as usize;
        u32::try_from(text.len()).ok()?;
        let span = |part: &str| -> Option<(u32, u32)> {
            // An empty part may not point into the text (a literal `""`); any empty range reads
            // the same.
            if part.is_empty() {
                return Some((0, 0));
            }
            let start = (part.as_ptr() as usize).checked_sub(base)?;
            let end = start.checked_add(part.len())?;
            (end <= text.len()).then_some((start as u32, end as u32))
        };
        let field = self.delimiters.field;
        // About one field per 8 bytes in real messages.
        let mut separators = Vec::with_capacity(if field.is_ascii() { text.len() / 8 } else { 0 });
        let segments = self
            .segments
            .iter()
            .map(|s| {
                let located = match s.rest {
                    Some(rest) if field.is_ascii() => {
                        let start = separators.len() as u32;
                        push_separators(rest, field as u8, &mut separators);
                        Some((start, separators.len() as u32))
                    }
                    _ => None,
                };
                Some(SegmentSpan {
                    id: span(s.id)?,
                    separator: span(s.separator)?,
                    rest: match s.rest {
                        Some(r) => Some(span(r)?),
                        None => None,
                    },
                    offset: s.offset,
                    separators: located,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ViewIndex { delimiters: self.delimiters, segment_separator: self.segment_separator, segments, separators })
    }

    /// The view `index` was taken from, over the same `text` (no warnings nor dropped segments:
    /// they were reported when the text was first parsed). A range outside `text` reads as
    /// empty.
    pub fn from_index(text: &'a str, index: &'a ViewIndex) -> MessageView<'a> {
        let part = |(start, end): (u32, u32)| text.get(start as usize..end as usize).unwrap_or("");
        MessageView {
            delimiters: index.delimiters,
            segment_separator: index.segment_separator,
            segments: index
                .segments
                .iter()
                .map(|s| SegmentView {
                    id: part(s.id),
                    separator: part(s.separator),
                    rest: s.rest.map(part),
                    offset: s.offset,
                    separators: s
                        .separators
                        .and_then(|(start, end)| index.separators.get(start as usize..end as usize)),
                })
                .collect(),
            warnings: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// Locates the segments of one message with the default (strict) options.
    pub fn parse(text: &'a str) -> Result<MessageView<'a>, ParseError> {
        Self::parse_with(text, ParseOptions::default())
    }

    pub fn parse_with(text: &'a str, options: ParseOptions) -> Result<MessageView<'a>, ParseError> {
        let mut segments = Vec::with_capacity(16);
        let scanned = codec::scan(text, options, |line| {
            segments.push(SegmentView {
                id: line.id,
                separator: line.separator,
                rest: line.rest,
                offset: line.offset,
                separators: None,
            });
        })?;
        Ok(MessageView {
            delimiters: scanned.delimiters,
            segment_separator: scanned.separator,
            segments,
            warnings: scanned.warnings,
            dropped: scanned.dropped,
        })
    }

    /// The values at `path`, in message order: the same values as [`codec::Message::select`]
    /// (first component and subcomponent when none is named, empty values left out), decoded.
    pub fn select(&self, path: &Path) -> Vec<Cow<'a, str>> {
        let mut out = Vec::new();
        self.each(path, |v| {
            out.push(v);
            true
        });
        out
    }

    /// The first value at `path`, decoded; `None` when there is none.
    pub fn first(&self, path: &Path) -> Option<Cow<'a, str>> {
        if path.occurrence != Index::All && path.repetition != Index::All {
            return self.single(path);
        }
        let mut found = None;
        self.each(path, |v| {
            found = Some(v);
            false
        });
        found
    }

    /// [`MessageView::first`] of a path that names one segment and one repetition: the one
    /// candidate value, found directly (a property test compares it with `select`'s first).
    fn single(&self, path: &Path) -> Option<Cow<'a, str>> {
        let d = &self.delimiters;
        let ci = path.component.unwrap_or(1).checked_sub(1)?;
        let si = path.subcomponent.unwrap_or(1).checked_sub(1)?;
        let nth = |i: Index| match i {
            Index::Nth(n) => n,
            _ => 0,
        };
        let seg = self.named(&path.segment).nth(nth(path.occurrence))?;
        let raw = self.raw_field(seg, path.field)?;
        if is_header(seg.id) && path.field <= 2 {
            // MSH-1 and MSH-2 are one literal value: neither split nor unescaped.
            let first_rep = nth(path.repetition) == 0;
            return (first_rep && ci == 0 && si == 0 && !raw.is_empty()).then_some(Cow::Borrowed(raw));
        }
        let rep = nth_part(raw, d.repetition, nth(path.repetition))?;
        let sub = nth_part(rep, d.component, ci).and_then(|c| nth_part(c, d.subcomponent, si))?;
        if sub.is_empty() {
            return None;
        }
        let value = unescape(sub, d);
        (!value.is_empty()).then_some(value)
    }

    /// The raw (still escaped) text of field `n` (1-based) of `seg`. For a header segment,
    /// field 1 is the field separator and field 2 the encoding characters, as written.
    pub fn raw_field(&self, seg: &SegmentView<'a>, n: usize) -> Option<&'a str> {
        let rest = seg.rest?;
        let k = if is_header(seg.id) {
            match n {
                0 => return None,
                1 => return Some(seg.separator),
                n => n - 2,
            }
        } else {
            n.checked_sub(1)?
        };
        match seg.separators {
            // Field k runs from after separator k-1 to separator k (or the end of `rest`).
            Some(seps) => {
                let start = match k {
                    0 => 0,
                    k => *seps.get(k - 1)? as usize + 1,
                };
                let end = seps.get(k).map_or(rest.len(), |&e| e as usize);
                rest.get(start..end)
            }
            None => nth_part(rest, self.delimiters.field, k),
        }
    }

    /// The segments with id `id`, in message order. Ids are compared by an inlined loop: they
    /// are three bytes, where a call to `memcmp` costs more than the comparison.
    pub fn named<'s>(&'s self, id: &'s str) -> impl Iterator<Item = &'s SegmentView<'a>> + 's {
        let id = id.as_bytes();
        self.segments.iter().filter(move |s| s.id.len() == id.len() && s.id.bytes().zip(id).all(|(a, &b)| a == b))
    }

    /// Calls `f` with each value at `path` until it returns false.
    fn each(&self, path: &Path, mut f: impl FnMut(Cow<'a, str>) -> bool) {
        let d = &self.delimiters;
        let Some(ci) = path.component.unwrap_or(1).checked_sub(1) else {
            return;
        };
        let Some(si) = path.subcomponent.unwrap_or(1).checked_sub(1) else {
            return;
        };
        let segments = self.named(&path.segment);
        for seg in pick(segments, path.occurrence) {
            let Some(raw) = self.raw_field(seg, path.field) else {
                continue;
            };
            if is_header(seg.id) && path.field <= 2 {
                // MSH-1 and MSH-2 are one literal value: neither split nor unescaped.
                let first_rep = matches!(path.repetition, Index::First | Index::All | Index::Nth(0));
                if first_rep && ci == 0 && si == 0 && !raw.is_empty() && !f(Cow::Borrowed(raw)) {
                    return;
                }
                continue;
            }
            if raw.is_empty() {
                continue;
            }
            for rep in pick(parts(raw, d.repetition), path.repetition) {
                let Some(sub) = nth_part(rep, d.component, ci).and_then(|c| nth_part(c, d.subcomponent, si)) else {
                    continue;
                };
                if sub.is_empty() {
                    continue;
                }
                let value = unescape(sub, d);
                if !value.is_empty() && !f(value) {
                    return;
                }
            }
        }
    }
}

/// `s.split(sep).nth(n)`, by a byte loop when `sep` is ASCII (delimiters almost always are):
/// the parts read here are short, where `split`'s searcher costs more than it saves.
pub fn nth_part(s: &str, sep: char, n: usize) -> Option<&str> {
    if !sep.is_ascii() {
        return s.split(sep).nth(n);
    }
    let sep = sep as u8;
    let mut start = 0;
    let mut seen = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b == sep {
            if seen == n {
                // An ASCII byte is a char boundary on both sides.
                return s.get(start..i);
            }
            seen += 1;
            start = i + 1;
        }
    }
    if seen == n { s.get(start..) } else { None }
}

/// `s.split(sep)`, by a byte loop when `sep` is ASCII (see [`nth_part`]; a property test
/// compares the two).
pub fn parts(s: &str, sep: char) -> Parts<'_> {
    if sep.is_ascii() { Parts::Ascii { rest: Some(s), sep: sep as u8 } } else { Parts::Other(s.split(sep)) }
}

/// The iterator [`parts`] returns.
pub enum Parts<'a> {
    Ascii { rest: Option<&'a str>, sep: u8 },
    Other(std::str::Split<'a, char>),
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            Parts::Ascii { rest, sep } => {
                let r = (*rest)?;
                match r.bytes().position(|b| b == *sep) {
                    // An ASCII byte is a char boundary on both sides.
                    Some(i) => {
                        *rest = r.get(i + 1..);
                        r.get(..i)
                    }
                    None => {
                        *rest = None;
                        Some(r)
                    }
                }
            }
            Parts::Other(split) => split.next(),
        }
    }
}

/// Appends the byte offset of each `sep` in `s` to `out`.
fn push_separators(s: &str, sep: u8, out: &mut Vec<u32>) {
    // `s` lies in a text shorter than 4 GiB (checked by the caller).
    crate::bytes::for_each(s.as_bytes(), sep, |i| out.push(i as u32));
}

fn is_header(id: &str) -> bool {
    matches!(id, "MSH" | "FHS" | "BHS")
}

/// The items `index` picks from `items`, lazily (stops after the one it wants).
pub fn pick<T>(items: impl Iterator<Item = T>, index: Index) -> impl Iterator<Item = T> {
    let wanted = move |i: usize| match index {
        Index::All => true,
        Index::First => i == 0,
        Index::Nth(n) => i == n,
    };
    let limit = if index == Index::All { usize::MAX } else { 1 };
    items.enumerate().filter(move |(i, _)| wanted(*i)).map(|(_, x)| x).take(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn nth_part_is_split_nth(s in "[a|€^]{0,12}", sep in proptest::sample::select(vec!['|', '^', '€']), n in 0usize..6) {
            prop_assert_eq!(nth_part(&s, sep, n), s.split(sep).nth(n));
        }

        #[test]
        fn parts_is_split(s in "[a|€^.]{0,12}", sep in proptest::sample::select(vec!['|', '^', '€', '.'])) {
            prop_assert_eq!(parts(&s, sep).collect::<Vec<_>>(), s.split(sep).collect::<Vec<_>>());
        }
    }
}
