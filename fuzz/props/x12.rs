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

/// The items of `stream` split with a set limit ([`Splitter::with_set_limit`]), each set read
/// in parts joined back into one: the parts of a set come together, first to last, each
/// starting where the one before ended. Also returns how many parts there were.
fn split_in_parts(stream: &[u8], limit: usize) -> (Vec<Item>, Vec<Item>, usize) {
    let parted: Vec<Item> = Splitter::with_set_limit(stream, limit).map(|i| i.expect("in memory")).collect();
    let mut joined = Vec::new();
    let mut open: Option<sluice_x12::split::RawSet> = None;
    let mut parts = 0;
    for item in &parted {
        match item {
            Item::SetPart { part, first, last } => {
                parts += 1;
                assert_eq!(*first, open.is_none(), "only a set's first part is `first`");
                let set = open.get_or_insert_with(|| sluice_x12::split::RawSet { bytes: Vec::new(), ..part.clone() });
                assert_eq!(part.offset, set.offset + set.bytes.len(), "parts are contiguous");
                assert!(*last || part.bytes.len() >= limit, "a part before the last holds the limit");
                set.bytes.extend_from_slice(&part.bytes);
                if *last {
                    let mut set = open.take().expect("opened above");
                    set.closed = part.closed;
                    joined.push(Item::Set(set));
                }
            }
            other => {
                assert!(open.is_none(), "nothing comes between the parts of a set");
                joined.push(other.clone());
            }
        }
    }
    assert!(open.is_none(), "every set read in parts ends");
    (parted, joined, parts)
}

/// Every finding and result a checker gives over `items`.
fn check_items(
    mut checker: Checker,
    items: &[Item],
    end: usize,
) -> (Vec<envelope::Finding>, Vec<envelope::InterchangeResult>) {
    let mut found = Vec::new();
    let mut done = Vec::new();
    for item in items {
        found.extend(checker.check(item));
        done.extend(checker.take_done());
    }
    found.extend(checker.finish(end));
    done.extend(checker.take_done());
    (found, done)
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
            Item::Set(s) | Item::SetPart { part: s, .. } => (s.offset, s.bytes.as_slice(), None),
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
    // Read with a set limit (from the read sizes), sets come in parts that join back into the
    // same items, and the checker gives the same findings and results from the parts.
    let limit = 1 + sizes.iter().map(|&s| usize::from(s)).sum::<usize>() % 64;
    let (parted, joined, _) = split_in_parts(stream, limit);
    assert_eq!(joined, whole, "set limit {limit} changed the split of {stream:?}");
    assert_eq!(
        check_items(Checker::new(Mode::Strict), &parted, stream.len()),
        check_items(Checker::new(Mode::Strict), &whole, stream.len()),
        "set limit {limit}: the checker read parts differently"
    );
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

/// The guides `loops_check` picks from with byte 0: (ST01, guide id, GS01).
const GUIDES: [(&str, &str, &str); 5] = [
    ("837", "005010X222A1", "HC"),
    ("835", "005010X221A1", "HP"),
    ("999", "005010X231A1", "FA"),
    ("997", "005010X230", "FA"),
    ("997", "004010", "FA"),
];

/// Paths tried on every identified set (valid in at least one guide each).
const PATHS: &[&str] = &[
    "2300/CLM-01",
    "2400[*]/SV1-01-2",
    "2010BA/NM1-09",
    "2010AA/REF(EI)-02",
    "BHT-04",
    "2100[*]/CLP-01",
    "2110[*]/SVC-01-2",
    "2000[*]/IK5-01",
];

/// Every loop id of the guide below `root`, `root`'s own first.
fn loop_ids(root: &'static sluice_x12::guide::Loop) -> Vec<&'static str> {
    let mut out = vec![root.id.as_str()];
    for n in &root.children {
        if let sluice_x12::guide::Node::Loop(l) = n {
            out.extend(loop_ids(l));
        }
    }
    out
}

/// `x12_loops`: byte 0 picks a guide (837P, 835, 999, 997 5010 and 4010); the rest is the body of one transaction
/// set (`*`, `:`, `^`, `~` delimiters), wrapped in ST/SE, GS/GE and ISA/IEA. Loop
/// identification places every segment in exactly one loop instance and builds a consistent
/// tree; guide validation gives registered codes, segment numbers inside the set, the same
/// findings in both modes (lenient only lowers severities) and **never a value**: the same set
/// with a marker (U+2603) in front of every element value gives no finding holding the marker;
/// fixed paths resolve to non-empty slices of the set and check against the guide without
/// panicking; cutting the set in two passes (`cut_stream`) at a loop the body picks gives the
/// whole-set cut's parts; a path read from the body parses and prints back to itself; the acknowledgment
/// answering the interchange (999 or 997, or a TA1, whose receipt is info `X12050`) validates
/// clean, against the 999/997 guides too.
pub fn loops_check(data: &[u8]) {
    use sluice_x12::envelope::check_stream_with_guides;
    use sluice_x12::guide;
    use sluice_x12::loops::identify;

    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (st01, guide_id, gs01) = GUIDES[usize::from(pick) % GUIDES.len()];
    let body = String::from_utf8_lossy(body);
    let wrap = |body: &str| {
        let count = body.split('~').filter(|s| !s.trim_matches(['\r', '\n']).is_empty()).count() + 2;
        format!(
            "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240115*1030*^*00501*000000001*0*P*:~\
             GS*{gs01}*S*R*20240115*1030*1*X*{guide_id}~ST*{st01}*0001*{guide_id}~{body}~SE*{count}*0001~GE*1*1~IEA*1*000000001~"
        )
    };
    let text = wrap(&body);
    let items = split_all(text.as_bytes());
    let g = guide::by_id(guide_id).expect("bundled");
    for item in &items {
        let Item::Set(set) = item else { continue };
        let segments: Vec<_> = set.segments().collect();
        let n = segments.len();
        let id = identify(g, segments, set.closed);
        assert_eq!(id.placements.len(), n, "every segment is placed");
        let mut seen = vec![0u32; n];
        for (i, inst) in id.instances.iter().enumerate() {
            for &s in &inst.segments {
                seen[s] += 1;
                assert_eq!(id.placements[s].instance, i, "placement and instance agree");
            }
            for &c in &inst.children {
                assert_eq!(id.instances[c].parent, Some(i), "child {c} of {i} points back");
                assert!(c > i, "instances are created in document order");
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "each segment in exactly one loop instance");
        // Cut in two passes at a loop the body picks: the whole-set cut's parts; a cutter fed
        // other segments than its survey saw gives wrong parts, never a panic.
        let loops = loop_ids(&g.root);
        let at = [loops[body.len() % loops.len()]];
        let streamed = sluice_x12::cut_stream::cut_any_streaming(g, &id.segments, &at);
        assert_eq!(streamed, sluice_x12::cut::cut_any(&id, &at), "cut at {at:?} in two passes");
        let mut survey = sluice_x12::cut_stream::Survey::new(g, &at);
        id.segments.iter().take(n / 2).for_each(|s| survey.push(s));
        let mut cutter = sluice_x12::cut_stream::Cutter::new(g, &at, survey.finish());
        id.segments.iter().rev().for_each(|s| cutter.push(s));
        cutter.finish();
        while cutter.next_part().is_some() {}
        for p in PATHS {
            let path = sluice_x12::path::parse(p).expect("fixed paths parse");
            let values = path.resolve(&id);
            assert!(path.many() || values.len() <= 1, "{p}: at most one value without [*]");
            for v in values {
                assert!(!v.is_empty());
                let start = v.as_ptr() as usize - set.bytes.as_ptr() as usize;
                assert!(start + v.len() <= set.bytes.len(), "{p}: a value is a slice of the set");
            }
            let _ = sluice_x12::path::check(g, p);
        }
    }
    if let Ok(p) = sluice_x12::path::parse(&body) {
        assert_eq!(p.to_string(), body, "a parsed path prints as its text");
    }

    let strict = check_stream_with_guides(text.as_bytes(), Mode::Strict).expect("in memory");
    let lenient = check_stream_with_guides(text.as_bytes(), Mode::Lenient).expect("in memory");
    // Guide validation of the set read in parts (a limit from the body) gives the same results.
    let limit = 1 + body.len() % 97;
    let (parted, joined, _) = split_in_parts(text.as_bytes(), limit);
    assert_eq!(joined, items, "set limit {limit} changed the split");
    assert_eq!(
        check_items(Checker::with_guides(Mode::Strict), &parted, text.len()),
        check_items(Checker::with_guides(Mode::Strict), &items, text.len()),
        "set limit {limit}: guide validation read parts differently"
    );
    let set_findings = |res: &[envelope::InterchangeResult]| -> Vec<envelope::Finding> {
        res.iter().flat_map(|ic| &ic.groups).flat_map(|g| &g.sets).flat_map(|s| s.findings.clone()).collect()
    };
    let (s, l) = (set_findings(&strict), set_findings(&lenient));
    assert_eq!(s.len(), l.len(), "modes change severities, not findings");
    let segments = items.iter().map(|i| if let Item::Set(set) = i { set.segments().count() } else { 0 }).sum::<usize>();
    for (a, b) in s.iter().zip(&l) {
        assert!(registered(a.code), "unregistered code {}", a.code);
        assert_eq!((a.code, a.offset, &a.position, &a.message), (b.code, b.offset, &b.position, &b.message));
        assert!(a.segment_number <= segments + 1, "{} points past the set", a.code);
        if b.severity == Severity::Error {
            assert!(matches!(b.code, "X12001" | "X12003"), "lenient keeps {} as an error", b.code);
        }
    }

    // No finding quotes a value: mark every element value and look for the marker.
    let marked: Vec<String> = body
        .split('~')
        .map(|seg| {
            let mut parts = seg.split('*');
            let id = parts.next().unwrap_or("").to_string();
            std::iter::once(id)
                .chain(parts.map(|v| if v.is_empty() { String::new() } else { format!("\u{2603}{v}") }))
                .collect::<Vec<_>>()
                .join("*")
        })
        .collect();
    let marked = wrap(&marked.join("~"));
    for f in set_findings(&check_stream_with_guides(marked.as_bytes(), Mode::Strict).expect("in memory")) {
        assert!(!f.message.contains('\u{2603}') && !f.position.contains('\u{2603}'), "a finding quotes a value: {f:?}");
    }

    // Our 999 (or TA1) validates clean, against the 999 guide too.
    let options = sluice_x12::ack::AckOptions {
        date: "20240116".into(),
        time: "0900".into(),
        interchange_control: 7,
        group_control: 1,
        delimiters: None,
    };
    for ic in &strict {
        let Some(ack) = sluice_x12::ack::acknowledge(ic, &options) else { continue };
        let res = check_stream_with_guides(ack.as_bytes(), Mode::Strict).expect("in memory");
        let all: Vec<&envelope::Finding> = res
            .iter()
            .flat_map(|ic| {
                ic.findings.iter().chain(
                    ic.groups.iter().flat_map(|g| g.findings.iter().chain(g.sets.iter().flat_map(|s| &s.findings))),
                )
            })
            // A TA1 is reported as received (info): that is the TA1 we wrote.
            .filter(|f| f.code != "X12050")
            .collect();
        assert!(all.is_empty(), "our acknowledgment has findings {all:?}:\n{ack}");
    }
}
