//! Properties of the X12 codec, for the `x12_*` fuzz targets and the regression tests of
//! `specs/x12/tests/fuzz_regressions.rs` (which include this file with `#[path]`).

use std::io::{self, Read};

use sluice_x12::envelope::{self, Checker, Mode, Severity};
use sluice_x12::split::{Item, Splitter};

/// A reader that hands out `data` in the given chunk sizes (cycled; 0 = the rest).
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: &'a [u8],
    next: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let size = match self.sizes.get(self.next % self.sizes.len().max(1)) {
            None | Some(0) => self.data.len(),
            Some(&s) => usize::from(s),
        };
        self.next += 1;
        let n = size.min(out.len()).min(self.data.len() - self.pos);
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn split_all<R: Read>(reader: R) -> Vec<Item> {
    Splitter::new(reader).map(|item| item.expect("the reader never fails, so neither does the splitter")).collect()
}

fn registered(code: &str) -> bool {
    envelope::CODES.iter().any(|c| c.0 == code) || sluice_x12::codec::ERROR_CODES.iter().any(|c| c.0 == code)
}

/// `x12_split`: byte 0 is the number of read sizes (mod 16), then the sizes, then the stream.
/// The splitter returns the same items whatever the read sizes; items are in order, do not
/// overlap, and each is the input at its offset; the bytes no item holds are layout (line
/// breaks, spaces, tabs, BOM bytes) or the terminator right after an envelope segment, so
/// nothing is lost. The envelope checker, strict and lenient, does not panic, gives registered
/// codes and the same findings in both modes apart from severity (lenient leaves errors only
/// for unreadable bytes); every set tokenizes and prints as JSON.
pub fn split_check(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let whole = split_all(stream);
    let chunked = split_all(Chunked { data: stream, pos: 0, sizes, next: 0 });
    assert_eq!(chunked, whole, "read sizes {sizes:?} changed the split of {stream:?}");

    let mut covered = vec![false; stream.len()];
    let mut next_free = 0;
    for (i, item) in whole.iter().enumerate() {
        let (offset, bytes, terminator) = match item {
            Item::Envelope { offset, delimiters, bytes } => (*offset, bytes.as_slice(), Some(delimiters.segment)),
            Item::Set(s) => (s.offset, s.bytes.as_slice(), None),
            Item::Stray { offset, bytes, .. } => (*offset, bytes.as_slice(), None),
        };
        assert!(offset >= next_free, "item {i} overlaps the one before: {stream:?}");
        let end = offset + bytes.len();
        assert_eq!(stream.get(offset..end), Some(bytes), "item {i} is not the input at its offset: {stream:?}");
        covered[offset..end].iter_mut().for_each(|c| *c = true);
        next_free = end;
        if let Some(t) = terminator
            && stream.get(end) == Some(&t)
        {
            covered[end] = true;
            next_free = end + 1;
        }
        if let Item::Set(s) = item {
            let segments: Vec<_> = s.segments().collect();
            assert!(segments.first().is_some_and(|seg| seg.id() == b"ST"), "a set starts with ST: {stream:?}");
            let _ = sluice_x12::json::set_to_json(s, &sluice_x12::json::SetContext::default()).to_string();
        }
    }
    for (i, (&b, &c)) in stream.iter().zip(&covered).enumerate() {
        assert!(
            c || matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0xEF | 0xBB | 0xBF),
            "byte {i} ({b:#04x}) is in no item and is not layout: {stream:?}"
        );
    }

    let check = |mode| {
        let mut checker = Checker::new(mode);
        let mut found = Vec::new();
        for item in &whole {
            found.extend(checker.check(item));
        }
        found.extend(checker.finish(stream.len()));
        let sets: usize = checker.take_done().iter().map(|ic| ic.total_sets()).sum();
        (found, sets)
    };
    let (strict, strict_sets) = check(Mode::Strict);
    let (lenient, lenient_sets) = check(Mode::Lenient);
    assert_eq!(strict_sets, whole.iter().filter(|i| matches!(i, Item::Set(_))).count(), "every set has a result");
    assert_eq!(strict_sets, lenient_sets);
    assert_eq!(strict.len(), lenient.len(), "modes change severities, not findings");
    for (s, l) in strict.iter().zip(&lenient) {
        assert!(registered(s.code), "unregistered code {}", s.code);
        assert!(s.message.is_ascii(), "finding messages are fixed ASCII text: {:?}", s.message);
        assert_eq!((s.code, s.offset, &s.position), (l.code, l.offset, &l.position));
        if l.severity == Severity::Error {
            assert!(matches!(l.code, "X12001" | "X12003"), "lenient keeps {} as an error", l.code);
        }
    }
}
