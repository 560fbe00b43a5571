//! Reading X12 paths (`2300/CLM-01`, `2010BA/NM1-03`, `2400[*]/SV1-01-2`; checked by
//! `sluice_compiler::x12`) from a record of a `format: x12` source (`x12_source::decode`).
//!
//! A map stage calls [`SetBytes::of`] and [`SetBytes::identify`] once per record: the set's
//! segments are placed in the loops of the mapping's guide by the same loop identification
//! the source validated them with (`sluice_x12::loops::identify`), and every path of every
//! field is then picked from that one identified set by [`select`] (`Path::resolve`), so the
//! cost is one identification per set plus one walk per path, not one per path.
//!
//! Where the segments come from: the record's bytes (`Record::raw`, a one-set interchange, as
//! the source keeps it for the DLQ), read with the sender's own delimiters, so repetitions,
//! components and elements are exactly what was sent. Only when those bytes hold no set (a
//! record built some other way) are the segments of the record document used: written back
//! with control characters as delimiters (FS, GS, RS, US, which X12 health care data does not
//! carry). The document writes a repeated element and a composite alike (a list of strings);
//! the guide tells them apart: a list at a position the guide uses as a composite is its
//! components, anywhere else its repetitions.
//!
//! Inside a list's `each: loop(ID)`, [`select`] reads from the bound occurrence
//! (`Path::resolve_at`) and [`occurrences`] lists what such a list iterates.
//!
//! Invariants: never panics, whatever the path text, the bytes or the document; a record
//! without segments yields no values. Values are only returned, never logged.

use sluice_x12::codec::{self, Delimiters};
use sluice_x12::guide::{ElementType, Guide, Loop, Node};
use sluice_x12::loops::Identified;
use sluice_x12::path::{self, Path};
use sluice_x12::split::{Item, Splitter};

use crate::record::Doc;

/// The delimiters segments from a record document are written back with.
const DOC_DELIMITERS: Delimiters = Delimiters { element: 0x1D, repetition: Some(0x1E), component: 0x1F, segment: 0x1C };

/// The bytes of one transaction set (ST..SE) and the delimiters to read them with.
#[derive(Debug)]
pub struct SetBytes {
    bytes: Vec<u8>,
    delimiters: Delimiters,
    closed: bool,
}

impl SetBytes {
    /// The set of an X12 record: from its bytes `raw` when they hold one, else from the
    /// `segments` of its document `doc` (read as `guide` uses its elements). `None` when
    /// neither holds a segment.
    pub fn of(raw: &[u8], doc: &Doc, guide: &Guide) -> Option<SetBytes> {
        let from_raw = Splitter::new(raw).find_map(|item| match item {
            Ok(Item::Set(s)) => Some(SetBytes { bytes: s.bytes, delimiters: s.delimiters, closed: s.closed }),
            _ => None,
        });
        from_raw.or_else(|| {
            let Some(Doc::Arr(segments)) = doc.get("segments") else { return None };
            let bytes = doc_bytes(segments, guide);
            (!bytes.is_empty()).then_some(SetBytes { bytes, delimiters: DOC_DELIMITERS, closed: true })
        })
    }

    /// The segments placed in `guide`'s loops.
    pub fn identify(&self, guide: &'static Guide) -> Identified<'_> {
        let segments: Vec<codec::Segment> = codec::segments(&self.bytes, self.delimiters, 0).collect();
        sluice_x12::loops::identify(guide, segments, self.closed)
    }
}

/// A parsed path, or `None` when the text is not one (the compiler checked it).
pub fn parse(text: &str) -> Option<Path> {
    path::parse(text).ok()
}

/// The non-empty values `path` selects in `set`, in document order (at most one unless the
/// path has `[*]`; each repetition of a repeated element is one value); inside loop
/// occurrence `at` when a list's `each: loop(ID)` bound one (`Path::resolve_at`).
pub fn select(set: &Identified, path: &Path, at: Option<usize>) -> Vec<String> {
    path.resolve_at(set, at).into_iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

/// The occurrences of loop `id` an `each: loop(ID)` iterates: those below occurrence `at`
/// (the loop bound around it), or in the whole set; in document order.
pub fn occurrences(set: &Identified, id: &str, at: Option<usize>) -> Vec<usize> {
    sluice_x12::cut::occurrences(set, id).into_iter().filter(|&i| at.is_none_or(|a| below(set, i, a))).collect()
}

/// Whether instance `i` is below instance `a`.
fn below(set: &Identified, mut i: usize, a: usize) -> bool {
    while let Some(p) = set.instances.get(i).and_then(|x| x.parent) {
        if p == a {
            return true;
        }
        i = p;
    }
    false
}

/// Segments of a record document (lists: id, then elements) as bytes read with
/// [`DOC_DELIMITERS`].
fn doc_bytes(segments: &[Doc], guide: &Guide) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in segments {
        let Doc::Arr(parts) = seg else { continue };
        let Some(Doc::Str(id)) = parts.first() else { continue };
        write_text(id, &mut out);
        for (i, element) in parts.iter().enumerate().skip(1) {
            out.push(DOC_DELIMITERS.element);
            write_element(element, is_composite(&guide.root, id, i), &mut out);
        }
        out.push(DOC_DELIMITERS.segment);
    }
    out
}

/// Writes one element: a list of lists is repetitions of composites; a list of strings is
/// the components of a composite, or the repetitions of a simple element.
fn write_element(e: &Doc, composite: bool, out: &mut Vec<u8>) {
    let repetition = DOC_DELIMITERS.repetition.unwrap_or(0x1E);
    match e {
        Doc::Arr(items) if items.iter().any(|i| matches!(i, Doc::Arr(_))) || !composite => {
            for (i, rep) in items.iter().enumerate() {
                if i > 0 {
                    out.push(repetition);
                }
                write_components(rep, out);
            }
        }
        other => write_components(other, out),
    }
}

fn write_components(e: &Doc, out: &mut Vec<u8>) {
    match e {
        Doc::Arr(components) => {
            for (i, c) in components.iter().enumerate() {
                if i > 0 {
                    out.push(DOC_DELIMITERS.component);
                }
                if let Doc::Str(s) = c {
                    write_text(s, out);
                }
            }
        }
        Doc::Str(s) => write_text(s, out),
        _ => {}
    }
}

/// Text without the bytes used as delimiters.
fn write_text(s: &str, out: &mut Vec<u8>) {
    out.extend(s.bytes().filter(|b| !matches!(b, 0x1C..=0x1F)));
}

/// Whether element `position` of segment `id` is a composite wherever `at` (or a loop below
/// it) uses the segment. Composites are fixed by the X12 standard, not by the place.
fn is_composite(at: &Loop, id: &str, position: usize) -> bool {
    at.children.iter().any(|node| match node {
        Node::Segment(s) => {
            s.id == id && s.elements.iter().any(|e| e.position == position && e.ty == ElementType::Composite)
        }
        Node::Loop(l) => is_composite(l, id, position),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = "005010X222A1";

    fn guide() -> &'static Guide {
        sluice_x12::guide::by_id(GUIDE).expect("bundled")
    }

    /// A record as `x12_source::decode` makes it: the document with its segments, and the set
    /// in a one-set interchange as its bytes.
    fn record(set: &str) -> (Vec<u8>, Doc) {
        let d = Delimiters::default();
        let segments: Vec<Doc> = codec::segments(set.as_bytes(), d, 0)
            .map(|s| Doc::from_json(&sluice_x12::json::segment_to_json(&s)))
            .collect();
        let doc = Doc::Obj(vec![
            ("set".into(), Doc::Obj(vec![("guide".into(), Doc::Str(GUIDE.into()))])),
            ("segments".into(), Doc::Arr(segments)),
        ]);
        let raw = format!(
            "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*T*:~\
GS*HC*SENDER*RECEIVER*20240101*1200*1*X*005010X222A1~{set}GE*1*1~IEA*1*000000001~"
        );
        (raw.into_bytes(), doc)
    }

    const SET: &str = "ST*837*0001*005010X222A1~BHT*0019*00*1*20240101*1200*CH~\
NM1*41*2*SUBMITTER*****46*S1~PER*IC*JANE*TE*5555551212~NM1*40*2*RECEIVER*****46*R1~\
HL*1**20*1~NM1*85*2*BILLING PROVIDER*****XX*1234567893~N3*1 MAIN ST~N4*TOWN*NY*10001~REF*EI*123456789~\
HL*2*1*22*0~SBR*P*18*******CI~NM1*IL*1*DOE*JOHN****MI*M123~N3*2 ELM ST~N4*TOWN*NY*10001~DMG*D8*19800101*M~\
NM1*PR*2*PAYER*****PI*P1~\
CLM*A1*100***11:B:1*Y*A*Y*Y~HI*ABK:J449~\
LX*1~SV1*HC:99213*60*UN*1***1~DTP*472*D8*20240101~\
LX*2~SV1*HC:85025*40*UN*1***1~DTP*472*D8*20240101~\
SE*27*0001~";

    fn values_in(raw: &[u8], doc: &Doc, text: &str) -> Vec<String> {
        let set = SetBytes::of(raw, doc, guide()).expect("a set");
        let identified = set.identify(guide());
        select(&identified, &parse(text).unwrap_or_else(|| panic!("{text}")), None)
    }

    #[test]
    fn paths_resolve_over_the_identified_set_from_bytes_and_from_the_document() {
        let (raw, doc) = record(SET);
        for raw in [&raw[..], b"not x12"] {
            let values = |text: &str| values_in(raw, &doc, text);
            assert_eq!(values("2300/CLM-01"), ["A1"]);
            assert_eq!(values("2300/CLM-05-1"), ["11"]);
            assert_eq!(values("2010BA/NM1-03"), ["DOE"]);
            assert_eq!(values("2010BA/DMG-02"), ["19800101"]);
            assert_eq!(values("2400[*]/SV1-01-2"), ["99213", "85025"]);
            assert_eq!(values("2400/SV1-02"), ["60"]);
            assert_eq!(values("2400[2]/SV1-02"), ["40"]);
            assert_eq!(values("2010AA/REF(EI)-02"), ["123456789"]);
            assert_eq!(values("BHT-03"), ["1"]);
            assert_eq!(values("2300/CLM-02"), ["100"]);
            assert_eq!(values("2010BB/NM1-03"), ["PAYER"]);
        }
    }

    #[test]
    fn a_repeated_simple_element_is_not_read_as_a_composite() {
        // CLM07 (an ID element) sent twice with the repetition separator `^`.
        let set = SET.replace("CLM*A1*100***11:B:1*Y*A*", "CLM*A1*100***11:B:1*Y*A^B*");
        let (raw, doc) = record(&set);
        for raw in [&raw[..], b"not x12"] {
            assert_eq!(values_in(raw, &doc, "2300/CLM-07"), ["A"], "the first repetition");
            assert_eq!(values_in(raw, &doc, "2300[*]/CLM-07"), ["A", "B"], "each repetition");
            assert_eq!(values_in(raw, &doc, "2300/CLM-05-2"), ["B"], "a composite stays one");
        }
    }

    #[test]
    fn odd_records_yield_nothing() {
        for d in [Doc::Null, Doc::Obj(vec![]), Doc::Arr(vec![Doc::Null])] {
            assert!(SetBytes::of(b"", &d, guide()).is_none());
        }
        let odd = Doc::Obj(vec![("segments".into(), Doc::Arr(vec![Doc::Null, Doc::Arr(vec![Doc::Num("1".into())])]))]);
        assert!(SetBytes::of(b"ISA*garbage~", &odd, guide()).is_none());
    }
}
