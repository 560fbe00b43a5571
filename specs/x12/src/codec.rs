//! X12 tokenizer: delimiters from the ISA header, then segments and elements as borrowed slices
//! of the input (zero-copy: nothing is allocated per segment or element).
//!
//! # Delimiters
//!
//! The ISA segment names them. In a well-formed ISA (106 bytes, fixed widths) the element
//! separator is byte 3, the repetition separator byte 82 (ISA11, from version 00402 on; in 4010
//! and earlier ISA11 is the standards identifier `U`), the component separator byte 104 (ISA16)
//! and the segment terminator byte 105. [`read_isa`] does not trust the widths: it takes the
//! element separator at byte 3, counts 16 of them, and reads ISA16 and the terminator right
//! after the 16th, so an ISA with padding missing (a common partner error) still tokenizes and
//! the width problem is reported by [`crate::envelope`] instead.
//!
//! # Segments
//!
//! A segment ends at the terminator. Line breaks (CR, LF) right before a segment are layout,
//! not data, so `~`, `~\n` and `~\r\n` all work, and so does a terminator that is itself CR or
//! LF. The id is the text before the first element separator. Elements are numbered from 1
//! (`CLM01` is `element(1)`); an element absent at the end of a segment and an empty one are
//! both `None`/empty, as X12 treats them alike.
//!
//! Invariant: no function here panics on any input; errors carry a code and an offset, never
//! content.

use memchr::memchr;

/// A UTF-8 byte order mark, allowed (and skipped) before an ISA.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The four delimiters of an interchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delimiters {
    pub element: u8,
    /// ISA11 when the version (ISA12) is 00402 or later and ISA11 is not a letter or digit.
    pub repetition: Option<u8>,
    pub component: u8,
    pub segment: u8,
}

impl Default for Delimiters {
    /// `*`, `^`, `:`, `~`: the delimiters of most health care interchanges.
    fn default() -> Self {
        Delimiters { element: b'*', repetition: Some(b'^'), component: b':', segment: b'~' }
    }
}

/// The ISA header as read by [`read_isa`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isa<'a> {
    pub delimiters: Delimiters,
    /// ISA01..ISA16 (`elements[0]` is ISA01), as written (padding included).
    pub elements: [&'a [u8]; 16],
    /// Bytes from `ISA` through the segment terminator.
    pub len: usize,
    /// Every element has its fixed width and the terminator is byte 105.
    pub fixed_width: bool,
}

/// The fixed widths of ISA01..ISA16.
pub const ISA_WIDTHS: [usize; 16] = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

/// Why the ISA header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsaError {
    /// The bytes end before the header does: more input may complete it.
    Incomplete,
    /// Not an ISA header: the code and a fixed explanation (no content).
    Invalid(&'static str, &'static str),
}

/// The longest ISA [`read_isa`] accepts: beyond it, missing separators are not waited for.
pub const MAX_ISA_LEN: usize = 512;

/// Reads the ISA header at the start of `bytes` (after any BOM and line breaks were skipped).
pub fn read_isa(bytes: &[u8]) -> Result<Isa<'_>, IsaError> {
    if bytes.len() < 4 {
        return if b"ISA".starts_with(&bytes[..bytes.len().min(3)]) {
            Err(IsaError::Incomplete)
        } else {
            Err(IsaError::Invalid("X12001", "the interchange does not start with ISA"))
        };
    }
    if &bytes[..3] != b"ISA" {
        return Err(IsaError::Invalid("X12001", "the interchange does not start with ISA"));
    }
    let element = bytes[3];
    if element.is_ascii_alphanumeric() || element == b' ' || element == b'\r' || element == b'\n' {
        return Err(IsaError::Invalid("X12003", "the element separator (ISA byte 3) is a letter, digit or space"));
    }
    let mut elements: [&[u8]; 16] = [&[]; 16];
    let mut start = 4;
    for slot in elements.iter_mut().take(15) {
        let window = &bytes[start..bytes.len().min(MAX_ISA_LEN)];
        match memchr(element, window) {
            Some(i) => {
                *slot = &window[..i];
                start += i + 1;
            }
            None if bytes.len() >= MAX_ISA_LEN => {
                return Err(IsaError::Invalid("X12001", "the ISA segment does not have 16 elements"));
            }
            None => return Err(IsaError::Incomplete),
        }
    }
    if bytes.len() < start + 2 {
        return Err(IsaError::Incomplete);
    }
    let component = bytes[start];
    let segment = bytes[start + 1];
    elements[15] = &bytes[start..start + 1];
    if component == element || segment == element || segment == component {
        return Err(IsaError::Invalid("X12003", "the ISA delimiters are not distinct"));
    }
    if segment.is_ascii_alphanumeric() || component.is_ascii_alphanumeric() {
        return Err(IsaError::Invalid(
            "X12003",
            "the component separator (ISA16) or the segment terminator is a letter or digit",
        ));
    }
    let len = start + 2;
    let fixed_width = len == 106 && elements.iter().zip(ISA_WIDTHS).all(|(e, w)| e.len() == w);
    let repetition = repetition_separator(elements[10], elements[11], [element, component, segment]);
    Ok(Isa { delimiters: Delimiters { element, repetition, component, segment }, elements, len, fixed_width })
}

/// ISA11 is a repetition separator from version 00402 on, when it is not a letter or digit
/// (4010 and earlier put the standards identifier `U` there) and differs from the others.
fn repetition_separator(isa11: &[u8], isa12: &[u8], others: [u8; 3]) -> Option<u8> {
    let &[r] = isa11 else { return None };
    let version: u32 = std::str::from_utf8(isa12).ok()?.trim().parse().ok()?;
    (version >= 402 && !r.is_ascii_alphanumeric() && r != b' ' && !others.contains(&r)).then_some(r)
}

/// One segment, borrowed from the buffer it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Offset of the segment's first byte in the buffer passed to [`segments`] (plus its base).
    pub offset: usize,
    /// The segment without its terminator and without line breaks before it.
    pub raw: &'a [u8],
    pub delimiters: Delimiters,
}

impl<'a> Segment<'a> {
    /// The segment id (`ST`, `CLM`, `NM1`), the bytes before the first element separator.
    pub fn id(&self) -> &'a [u8] {
        match find_short(self.delimiters.element, self.raw) {
            Some(i) => &self.raw[..i],
            None => self.raw,
        }
    }

    /// The id as text (empty when it is not UTF-8).
    pub fn id_str(&self) -> &'a str {
        std::str::from_utf8(self.id()).unwrap_or("")
    }

    /// Element `n` (1-based), `None` when the segment has fewer elements.
    pub fn element(&self, n: usize) -> Option<&'a [u8]> {
        if n == 0 {
            return None;
        }
        self.elements().nth(n - 1)
    }

    /// Element `n` as text, empty when absent or not UTF-8.
    pub fn element_str(&self, n: usize) -> &'a str {
        self.element(n).and_then(|e| std::str::from_utf8(e).ok()).unwrap_or("")
    }

    /// The elements after the id, in order (`CLM01` first).
    pub fn elements(&self) -> Elements<'a> {
        let sep = self.delimiters.element;
        let rest = find_short(sep, self.raw).map(|i| &self.raw[i + 1..]);
        Elements { rest, sep }
    }

    /// Number of elements after the id (trailing empty ones included).
    pub fn element_count(&self) -> usize {
        self.raw.iter().filter(|&&b| b == self.delimiters.element).count()
    }

    /// Component `c` (1-based) of element `n`.
    pub fn component(&self, n: usize, c: usize) -> Option<&'a [u8]> {
        let e = self.element(n)?;
        if c == 0 {
            return None;
        }
        e.split(|&b| b == self.delimiters.component).nth(c - 1)
    }
}

/// Iterator over a segment's elements.
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
}

impl<'a> Iterator for Elements<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match find_short(self.sep, rest) {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// The first `needle` in `hay`, for haystacks that are mostly a few bytes long (elements):
/// the first bytes are compared one by one, as `memchr`'s set-up costs more than the scan
/// there; longer ones go to `memchr`.
fn find_short(needle: u8, hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    let head = &hay[..hay.len().min(SHORT)];
    match head.iter().position(|&b| b == needle) {
        Some(i) => Some(i),
        None if hay.len() > SHORT => memchr(needle, &hay[SHORT..]).map(|i| i + SHORT),
        None => None,
    }
}

/// Iterator over the segments of a buffer that uses `delimiters`; see [`segments`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
    delimiters: Delimiters,
}

/// The segments of `bytes` (one transaction set, or a whole interchange after its ISA), read
/// with `delimiters`. `base` is added to every offset (the buffer's place in its file). A last
/// segment without a terminator is returned too. Line breaks before a segment are skipped.
pub fn segments(bytes: &[u8], delimiters: Delimiters, base: usize) -> Segments<'_> {
    Segments { bytes, pos: 0, base, delimiters }
}

/// Bytes skipped before a segment: line breaks (layout), unless one is the terminator.
pub fn is_layout(b: u8, terminator: u8) -> bool {
    (b == b'\r' || b == b'\n') && b != terminator
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;
    fn next(&mut self) -> Option<Segment<'a>> {
        let term = self.delimiters.segment;
        while self.pos < self.bytes.len() && is_layout(self.bytes[self.pos], term) {
            self.pos += 1;
        }
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let end = memchr(term, &self.bytes[start..]).map_or(self.bytes.len(), |i| start + i);
        self.pos = end + 1;
        Some(Segment { offset: self.base + start, raw: &self.bytes[start..end], delimiters: self.delimiters })
    }
}

/// A segment id is 2 or 3 uppercase letters or digits, starting with a letter.
pub fn is_segment_id(id: &[u8]) -> bool {
    (2..=3).contains(&id.len())
        && id[0].is_ascii_uppercase()
        && id.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The codec's error codes: `(code, title, explanation)`. Listed in docs/diagnostics.md.
pub const ERROR_CODES: &[(&str, &str, &str)] = &[
    (
        "X12001",
        "The ISA header cannot be read.",
        "An interchange starts with `ISA`, its element separator at byte 3, then 16 elements; ISA16 (the component separator) and the segment terminator follow the 16th separator. The bytes are kept (as stray bytes, for the DLQ) and reading goes on at the next ISA.",
    ),
    (
        "X12003",
        "The ISA delimiters are unusable.",
        "The element separator, component separator (ISA16) and segment terminator must be three different characters, none a letter or digit (and the element separator not a space). Fix the sender's ISA.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_short_agrees_with_memchr_around_the_short_limit() {
        for len in 0..40 {
            let mut hay = vec![b'A'; len];
            assert_eq!(find_short(b'*', &hay), None, "len {len}");
            for at in 0..len {
                hay[at] = b'*';
                assert_eq!(find_short(b'*', &hay), memchr(b'*', &hay), "len {len}, first at {at}");
                hay[at] = b'A';
            }
            if len > 2 {
                hay[len - 1] = b'*';
                hay[len / 2] = b'*';
                assert_eq!(find_short(b'*', &hay), Some(len / 2));
            }
        }
    }
}
