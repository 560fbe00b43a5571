//! Typed addresses into an HL7 v2 message, and selecting the values at one.
//!
//! Syntax: `SEG[occ]-FIELD[rep].COMP.SUB`, e.g. `PID-5`, `PID-5.1`, `PID-3[*].1`,
//! `PID-3[1].4.2`, `OBX[*]-5`, `MSH-9.2`, `ZPI-2`.
//! - `SEG`: 3 characters, an uppercase letter then uppercase letters or digits.
//! - `[occ]` (segment occurrence) and `[rep]` (field repetition) are optional; each is `*` (all)
//!   or a 0-based number. Without one, the first is meant.
//! - `FIELD`, `COMP` and `SUB` are 1-based numbers, as in the HL7 standard, written without
//!   leading zeros.
//!
//! Invariants: parsing never panics; `Path::parse(&p.to_string()) == Ok(p)` for every parsed
//! path, and the text of a canonical path (no leading zeros; `[0]` is kept as written, distinct
//! from no index) prints back unchanged. Errors carry a char offset and length into the path
//! text, which is spec text, not message content.

use std::fmt;

use crate::codec::{Component, Field, Message, Segment};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Index {
    /// No index written: the first.
    First,
    /// `[*]`
    All,
    /// `[n]`, 0-based.
    Nth(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    pub segment: String,
    pub occurrence: Index,
    /// 1-based.
    pub field: usize,
    pub repetition: Index,
    /// 1-based; `None` means the first component.
    pub component: Option<usize>,
    /// 1-based; `None` means the first subcomponent.
    pub subcomponent: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    pub message: String,
    /// Char offset within the path text where it went wrong.
    pub offset: usize,
    pub len: usize,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset)
    }
}

impl std::error::Error for PathError {}

struct Cursor {
    chars: Vec<char>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn err(&self, message: &str, offset: usize, len: usize) -> PathError {
        PathError { message: message.to_string(), offset, len: len.max(1) }
    }

    /// A 1-based or 0-based number without leading zeros.
    fn number(&mut self, what: &str) -> Result<usize, PathError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err(&format!("expected {what}"), start, 1));
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(self.err(&format!("{what} must not have leading zeros"), start, self.pos - start));
        }
        digits.parse().map_err(|_| self.err(&format!("{what} is too large"), start, self.pos - start))
    }

    fn positive(&mut self, what: &str) -> Result<usize, PathError> {
        let start = self.pos;
        let n = self.number(what)?;
        if n == 0 {
            return Err(self.err(&format!("{what} starts at 1"), start, 1));
        }
        Ok(n)
    }

    fn index(&mut self) -> Result<Index, PathError> {
        if self.peek() != Some('[') {
            return Ok(Index::First);
        }
        let open = self.pos;
        self.pos += 1;
        let index = if self.peek() == Some('*') {
            self.pos += 1;
            Index::All
        } else {
            Index::Nth(self.number("an index (a number or *)")?)
        };
        if self.peek() != Some(']') {
            return Err(self.err("expected ] to close the index", open, self.pos - open + 1));
        }
        self.pos += 1;
        Ok(index)
    }
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let mut c = Cursor { chars: text.chars().collect(), pos: 0 };
        let seg: String = c.chars.iter().take(3).collect();
        let seg_ok = seg.chars().count() == 3
            && seg.chars().enumerate().all(|(i, ch)| ch.is_ascii_uppercase() || (i > 0 && ch.is_ascii_digit()));
        if !seg_ok {
            return Err(c.err(
                "segment id must be 3 characters: an uppercase letter, then uppercase letters or digits",
                0,
                3,
            ));
        }
        c.pos = 3;
        let occurrence = c.index()?;
        if c.peek() != Some('-') {
            return Err(c.err("expected - and a field number", c.pos, 1));
        }
        c.pos += 1;
        let field = c.positive("field number")?;
        let repetition = c.index()?;
        let mut component = None;
        let mut subcomponent = None;
        if c.peek() == Some('.') {
            c.pos += 1;
            component = Some(c.positive("component number")?);
            if c.peek() == Some('.') {
                c.pos += 1;
                subcomponent = Some(c.positive("subcomponent number")?);
            }
        }
        if c.pos < c.chars.len() {
            return Err(c.err("unexpected text after the path", c.pos, c.chars.len() - c.pos));
        }
        Ok(Path { segment: seg, occurrence, field, repetition, component, subcomponent })
    }

    /// Whether the path can select more than one value (any `[*]`).
    pub fn is_multi(&self) -> bool {
        self.occurrence == Index::All || self.repetition == Index::All
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Index::First => Ok(()),
            Index::All => f.write_str("[*]"),
            Index::Nth(n) => write!(f, "[{n}]"),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}-{}{}", self.segment, self.occurrence, self.field, self.repetition)?;
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
            if let Some(s) = self.subcomponent {
                write!(f, ".{s}")?;
            }
        }
        Ok(())
    }
}

fn pick<T>(items: &[T], index: Index) -> &[T] {
    match index {
        Index::All => items,
        Index::First => items.get(..1).unwrap_or(&[]),
        Index::Nth(n) => items.get(n..n.saturating_add(1)).unwrap_or(&[]),
    }
}

fn component_value<'m>(comp: &'m Component<'_>, sub: Option<usize>) -> Option<&'m str> {
    let i = sub.unwrap_or(1).checked_sub(1)?;
    comp.subcomponents.get(i).map(|s| s.as_ref())
}

impl<'a> Message<'a> {
    /// The values at `path`, in message order.
    ///
    /// - Without a component (`PID-7`), the first component is meant; without a subcomponent,
    ///   the first subcomponent (HL7 convention: `PID-7` means `PID-7.1`).
    /// - Empty values are omitted, so a missing and an empty value both give no entry; a path
    ///   that is not in the message gives an empty vec.
    /// - The HL7 "delete" value `""` (two double quotes) is returned as is; the mapping decides
    ///   what it means.
    /// - `MSH-1` and `MSH-2` give the literal field separator and encoding characters.
    pub fn select(&self, path: &Path) -> Vec<&str> {
        self.select_in(self.segments.iter(), path)
    }

    /// [`Message::select`] among some of the message's segments only (the segments of one
    /// segment group instance, in message order): occurrences are counted among them.
    pub fn select_in<'m>(&'m self, among: impl Iterator<Item = &'m Segment<'a>>, path: &Path) -> Vec<&'m str> {
        let mut out = Vec::new();
        let segments: Vec<_> = among.filter(|s| s.id == path.segment.as_str()).collect();
        for seg in pick(&segments, path.occurrence) {
            let Some(field) = seg.field(path.field) else {
                continue;
            };
            collect_field(field, path, &mut out);
        }
        out
    }
}

fn collect_field<'m>(field: &'m Field<'_>, path: &Path, out: &mut Vec<&'m str>) {
    let Some(ci) = path.component.unwrap_or(1).checked_sub(1) else {
        return;
    };
    for rep in pick(&field.repetitions, path.repetition) {
        if let Some(v) = rep.components.get(ci).and_then(|c| component_value(c, path.subcomponent))
            && !v.is_empty()
        {
            out.push(v);
        }
    }
}
