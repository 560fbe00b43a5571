//! Property tests for the HL7 v2 codec, splitter, paths and JSON shape.
//!
//! Generated trees are canonical (see `codec` docs): a list with one element never holds an
//! empty element, header segments have the literal MSH-1/MSH-2 shape, offsets and segment
//! numbers are those of the encoded text. For such trees `parse(encode(t)) == t`.

use std::borrow::Cow;

use proptest::prelude::*;
use sluice_hl7v2::codec::{
    BadSegments, Component, Delimiters, EncodingCharacters, Field, Message, ParseOptions, Repetition, Segment,
    SegmentSeparator, encode, escape, parse_message, parse_message_with, unescape,
};
use sluice_hl7v2::json::{json_to_message, message_to_json};
use sluice_hl7v2::path::{Index, Path};
use sluice_hl7v2::split::MessageSplitter;
use sluice_hl7v2::view::MessageView;

/// The fuzz targets' properties, for the ones these tests share (tolerant parsing).
#[allow(dead_code)]
#[path = "../../../fuzz/props/hl7.rs"]
mod props;

/// Characters allowed as the field separator.
const FIELD_POOL: &[char] = &['|', '!', '#', '$', '%', '*', '+', ':', ';', '/', '?', '@', '§', '€', ' ', '\t'];
/// Characters allowed for the other delimiters (letters included: HL7 does not forbid them).
const OTHER_POOL: &[char] =
    &['^', '~', '\\', '&', '#', '@', '%', '$', '!', '*', '=', '{', '}', 'r', 'Z', 'é', '€', ' '];

fn delimiters() -> impl Strategy<Value = Delimiters> {
    (
        proptest::sample::select(FIELD_POOL),
        Just(OTHER_POOL.to_vec()).prop_shuffle(),
        any::<bool>(),
        prop_oneof![1 => Just(true), 3 => Just(false)],
    )
        .prop_map(|(field, others, trunc, default)| {
            if default {
                return Delimiters::default();
            }
            let mut o = others.into_iter().filter(|&c| c != field);
            let mut next = || o.next().unwrap_or('\u{1}');
            Delimiters {
                field,
                component: next(),
                repetition: next(),
                escape: Some(next()),
                subcomponent: next(),
                truncation: if trunc { Some(next()) } else { None },
            }
        })
}

/// Building blocks for values: delimiters (by role), escape-sequence look-alikes, line breaks,
/// and arbitrary text.
#[derive(Clone, Debug)]
enum Tok {
    Delim(u8),
    Text(String),
}

fn tok() -> impl Strategy<Value = Tok> {
    prop_oneof![
        3 => (0u8..6).prop_map(Tok::Delim),
        2 => prop_oneof![
            Just("F"), Just("S"), Just("T"), Just("R"), Just("E"), Just("X41"), Just("X0D"),
            Just("XC3A9"), Just("XE9"), Just(".br"), Just("H"), Just("N"), Just(".sp2"),
            Just("Zx"), Just("C2842"), Just("P"), Just("X"), Just(""), Just("\r"), Just("\n"),
            Just("\r\n"), Just("\"\""), Just("X0d"), Just("X0D0A"), Just("Xc3a9"), Just("X7C"), Just("Q"),
        ]
        .prop_map(|s| Tok::Text(s.to_string())),
        2 => "[a-zA-Z0-9 ]{1,4}".prop_map(Tok::Text),
        1 => any::<String>().prop_map(Tok::Text),
    ]
}

fn render(toks: &[Tok], d: &Delimiters) -> String {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Delim(i) => s.push(match i {
                0 => d.field,
                1 => d.component,
                2 => d.repetition,
                3 => d.escape.unwrap_or('\\'),
                4 => d.subcomponent,
                _ => d.truncation.unwrap_or('#'),
            }),
            Tok::Text(x) => s.push_str(x),
        }
    }
    s
}

fn value_toks() -> impl Strategy<Value = Vec<Tok>> {
    prop::collection::vec(tok(), 0..6)
}

type RawField = Vec<Vec<Vec<Vec<Tok>>>>;

fn raw_field() -> impl Strategy<Value = RawField> {
    prop::collection::vec(prop::collection::vec(prop::collection::vec(value_toks(), 0..3), 0..3), 0..3)
}

fn build_field(raw: &RawField, d: &Delimiters) -> Field<'static> {
    let mut repetitions: Vec<Repetition<'static>> = raw
        .iter()
        .map(|rep| {
            let mut components: Vec<Component<'static>> = rep
                .iter()
                .map(|comp| {
                    let mut subcomponents: Vec<Cow<'static, str>> =
                        comp.iter().map(|v| Cow::Owned(render(v, d))).collect();
                    if subcomponents.len() == 1 && subcomponents[0].is_empty() {
                        subcomponents.clear();
                    }
                    Component { subcomponents }
                })
                .collect();
            if components.len() == 1 && components[0].subcomponents.is_empty() {
                components.clear();
            }
            Repetition { components }
        })
        .collect();
    if repetitions.len() == 1 && repetitions[0].components.is_empty() {
        repetitions.clear();
    }
    Field { repetitions }
}

fn literal(s: String) -> Field<'static> {
    Field { repetitions: vec![Repetition { components: vec![Component { subcomponents: vec![Cow::Owned(s)] }] }] }
}

fn segment_id() -> impl Strategy<Value = String> {
    // header ids have their own shape; batch trailers are dropped by the splitter
    "[A-Z][A-Z0-9]{2}"
        .prop_filter("not a header or envelope id", |id| !matches!(id.as_str(), "MSH" | "FHS" | "BHS" | "BTS" | "FTS"))
}

fn message_tree() -> impl Strategy<Value = Message<'static>> {
    (
        delimiters(),
        prop::collection::vec(raw_field(), 0..5),
        prop::collection::vec((segment_id(), prop::collection::vec(raw_field(), 0..5)), 0..5),
        prop_oneof![Just(SegmentSeparator::Cr), Just(SegmentSeparator::Lf), Just(SegmentSeparator::CrLf)],
    )
        .prop_map(|(d, msh_fields, others, sep)| {
            let mut fields = vec![literal(d.field.to_string()), literal(d.encoding_characters())];
            fields.extend(msh_fields.iter().map(|f| build_field(f, &d)));
            let mut segments =
                vec![Segment { id: Cow::Borrowed("MSH"), fields, offset: 0, line: 1, spellings: Vec::new() }];
            for (i, (id, raw)) in others.iter().enumerate() {
                segments.push(Segment {
                    id: Cow::Owned(id.clone()),
                    fields: raw.iter().map(|f| build_field(f, &d)).collect(),
                    offset: 0,
                    line: i + 2,
                    spellings: Vec::new(),
                });
            }
            let segment_separator = if segments.len() == 1 { SegmentSeparator::Cr } else { sep };
            let mut m = Message { delimiters: d, segments, segment_separator };
            set_offsets(&mut m);
            m
        })
}

/// Offsets as in the encoded text: values never hold a raw line break, so separators are exact.
fn set_offsets(m: &mut Message<'static>) {
    let text = encode(m);
    let sep = m.segment_separator.as_str();
    let mut offset = 0;
    for seg in &mut m.segments {
        seg.offset = offset;
        offset = text[offset..].find(sep).map_or(text.len(), |i| offset + i + sep.len());
    }
}

fn without_offsets(m: &Message<'_>) -> (Delimiters, Vec<Segment<'static>>) {
    let mut segments = m.clone().into_owned().segments;
    for s in &mut segments {
        s.offset = 0;
    }
    (m.delimiters, segments)
}

fn index() -> impl Strategy<Value = Index> {
    prop_oneof![Just(Index::First), Just(Index::All), (0usize..1000).prop_map(Index::Nth)]
}

fn path() -> impl Strategy<Value = Path> {
    (
        "[A-Z][A-Z0-9]{2}",
        index(),
        1usize..300,
        index(),
        proptest::option::of(1usize..30),
        proptest::option::of(1usize..30),
    )
        .prop_map(|(segment, occurrence, field, repetition, component, sub)| Path {
            segment,
            occurrence,
            field,
            repetition,
            subcomponent: component.and(sub),
            component,
        })
}

/// A reader that hands out the input in chunks of the given sizes, to move chunk boundaries.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes.get(self.i % self.sizes.len().max(1)).copied().unwrap_or(1);
        self.i += 1;
        let n = size.max(1).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    // failures are printed, not saved next to the sources; PROPTEST_CASES=n runs more cases
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn dropping_bad_segments_keeps_every_good_one(
        tree in message_tree(),
        garbage in prop::collection::vec(("[ -~]{0,12}", 0usize..6), 0..4),
        s in any::<String>(),
    ) {
        // Lines that are not segments (no valid id before the first `|`), put between the
        // segments of a valid message: the drop parse gives back the message, and exactly those lines.
        let text = encode(&tree);
        let sep = tree.segment_separator.as_str();
        let mut lines: Vec<String> = text.split(sep).map(str::to_string).collect();
        let mut bad = Vec::new();
        for (g, at) in &garbage {
            let line = format!("x#{g}");
            let at = 1 + at % lines.len().max(1);
            lines.insert(at.min(lines.len()), line.clone());
            bad.push(line);
        }
        let noisy = lines.join(sep);
        let drop = ParseOptions { bad_segments: BadSegments::Drop, ..ParseOptions::default() };
        let p = parse_message_with(&noisy, drop).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let dropped: Vec<&str> = p.dropped.iter().map(|d| &noisy[d.range.clone()]).collect();
        let expected: Vec<&str> = lines.iter().filter(|l| bad.contains(l)).map(String::as_str).collect();
        prop_assert_eq!(dropped, expected);
        prop_assert_eq!(p.message.segments.len() + p.dropped.len(), lines.len());
        prop_assert_eq!(encode(&p.message), text);
        // and on any text, the properties of `drop_parse`
        props::drop_parse(&s);
        props::drop_parse(&noisy);
    }

    #[test]
    fn parse_inverts_encode(tree in message_tree()) {
        let text = encode(&tree);
        let parsed = parse_message(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &tree);
        // encoder output is canonical: it round trips as text too
        prop_assert_eq!(encode(&parsed), text);
    }

    #[test]
    fn encode_inverts_parse_for_any_spelling(
        d in delimiters(),
        segments in prop::collection::vec((segment_id(), prop::collection::vec(value_toks(), 0..4)), 0..4),
        sep in prop_oneof![Just("\r"), Just("\n"), Just("\r\n")],
    ) {
        // Raw text as a sender may write it: stray escape characters, lower-case and multi-byte
        // hex, delimiters inside would-be sequences, ... (line breaks only between segments).
        let value = |toks: &Vec<Tok>| render(toks, &d).replace(['\r', '\n'], "");
        let mut lines = vec![format!("MSH{}{}", d.field, d.encoding_characters())];
        for (id, values) in &segments {
            let mut line = id.clone();
            for v in values {
                line.push(d.field);
                line.push_str(&value(v));
            }
            lines.push(line);
        }
        let text = lines.join(sep);
        let tolerant = ParseOptions { encoding_characters: EncodingCharacters::Tolerant, bad_segments: BadSegments::Reject };
        for options in [ParseOptions::default(), tolerant] {
            let Ok(parsed) = parse_message_with(&text, options) else { continue };
            let m = parsed.message;
            prop_assert_eq!(encode(&m), text.as_str());
            prop_assert_eq!(encode(&m.clone().into_owned()), text.as_str());
            // the full JSON shape carries the spellings, so it writes the same text too
            let back = json_to_message(&message_to_json(&m, true)).expect("full JSON reads back");
            if sep == "\r" {
                prop_assert_eq!(encode(&back), text.as_str());
            }
            // a value changed by the caller is escaped the standard way
            let mut edited = m.clone();
            for seg in edited.segments.iter_mut().skip(1) {
                for sub in seg.fields.iter_mut().flat_map(|f| &mut f.repetitions).flat_map(|r| &mut r.components).flat_map(|c| &mut c.subcomponents) {
                    sub.to_mut().push('x');
                }
            }
            let mut canonical = edited.clone();
            for seg in &mut canonical.segments {
                seg.spellings.clear();
            }
            prop_assert_eq!(encode(&edited), encode(&canonical));
            let written = encode(&edited);
            let reparsed = parse_message_with(&written, options).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<_> = reparsed.message.segments.iter().map(|s| &s.fields).collect();
            let want: Vec<_> = edited.segments.iter().map(|s| &s.fields).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn json_full_shape_round_trips(mut tree in message_tree()) {
        tree.segment_separator = SegmentSeparator::Cr;
        set_offsets(&mut tree);
        let v = message_to_json(&tree, true);
        prop_assert_eq!(json_to_message(&v), Some(tree.clone()));
        let _ = message_to_json(&tree, false);
    }

    #[test]
    fn unescape_inverts_escape(d in delimiters(), toks in value_toks(), s in any::<String>()) {
        for value in [render(&toks, &d), s] {
            let e = escape(&value, &d);
            let back = unescape(&e, &d).into_owned();
            prop_assert_eq!(back.as_str(), value.as_str());
            // the escaped form holds no raw delimiter or line break
            prop_assert!(!e.contains([d.field, d.component, d.repetition, d.subcomponent, '\r', '\n']));
            // escaped text is canonical
            let again = escape(&back, &d).into_owned();
            prop_assert_eq!(again, e.clone().into_owned());
        }
    }

    #[test]
    fn unescape_never_panics(d in delimiters(), toks in value_toks()) {
        let raw = render(&toks, &d);
        let v = unescape(&raw, &d);
        let e = escape(&v, &d).into_owned();
        let back = unescape(&e, &d).into_owned();
        prop_assert_eq!(back, v.into_owned());
    }

    #[test]
    fn parse_never_panics(s in any::<String>(), tail in value_toks(), d in delimiters()) {
        let _ = parse_message(&s);
        let text = format!("MSH{}{}{}", d.field, d.encoding_characters(), render(&tail, &d));
        for t in [text.as_str(), s.as_str()] {
            if let Ok(m) = parse_message(t) {
                // whatever parses re-encodes to text that parses to the same tree
                let encoded = encode(&m);
                let again = parse_message(&encoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(without_offsets(&again), without_offsets(&m));
                let _ = (m.message_type(), m.control_id(), m.version());
                let _ = message_to_json(&m, false);
            }
        }
    }

    #[test]
    fn tolerant_headers_parse_and_round_trip(
        d in delimiters(),
        doubled in any::<bool>(),
        tail in value_toks(),
        s in any::<String>(),
    ) {
        // The two tolerated MSH-2 spellings, built from valid delimiters, then whatever follows.
        let e = d.escape.unwrap_or('\\');
        let msh2 = if doubled {
            format!("{}{}{e}{e}{}{}", d.component, d.repetition, d.subcomponent, d.truncation.map(String::from).unwrap_or_default())
        } else {
            format!("{}{}{e}", d.component, d.repetition)
        };
        let text = format!("MSH{}{msh2}{}{}", d.field, d.field, render(&tail, &d));
        let tolerant = ParseOptions { encoding_characters: EncodingCharacters::Tolerant, bad_segments: BadSegments::Reject };
        prop_assert!(parse_message(&text).is_err(), "strict must reject {:?}", text);
        match parse_message_with(&text, tolerant) {
            Ok(p) => {
                let code = if doubled { "HL7006" } else { "HL7007" };
                prop_assert_eq!(p.warnings.iter().map(|w| w.code).collect::<Vec<_>>(), vec![code]);
                if doubled {
                    prop_assert_eq!(p.message.delimiters, Delimiters { escape: Some(e), ..d });
                }
                let encoded = encode(&p.message);
                prop_assert!(encoded.starts_with(&format!("MSH{}{msh2}", d.field)), "MSH-2 not kept: {:?}", encoded);
                let again = parse_message_with(&encoded, tolerant).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(without_offsets(&again.message), without_offsets(&p.message));
            }
            // MSH-2 is refused only in the 3-character form, when `&` is already a delimiter;
            // the rest of the (random) text may still fail to parse.
            Err(err) => prop_assert!(
                !matches!(err.code, "HL7002" | "HL7003") || (!doubled && (msh2.contains('&') || d.field == '&')),
                "{}: {:?}",
                err,
                text
            ),
        }
        // On any text: tolerant accepts what strict accepts, with the same tree and no warning.
        props::tolerant_parse(&s);
        props::tolerant_parse(&text);
    }

    #[test]
    fn splitter_never_panics_and_keeps_contiguous_ranges(
        parts in prop::collection::vec(prop_oneof![
            Just(b"MSH|^~\\&|A".to_vec()), Just(b"\r".to_vec()), Just(b"\n".to_vec()),
            Just(b"\x0b".to_vec()), Just(b"\x1c".to_vec()), Just(b"\xEF\xBB\xBF".to_vec()),
            Just(b"BHS|x".to_vec()), Just(b"FTS".to_vec()), Just(b"PID|1".to_vec()),
            Just(b"  ".to_vec()), prop::collection::vec(any::<u8>(), 0..8),
        ], 0..24),
        sizes in prop::collection::vec(1usize..9, 1..4),
    ) {
        let input: Vec<u8> = parts.concat();
        let whole: Vec<_> = MessageSplitter::new(input.as_slice()).map(|r| r.unwrap()).collect();
        let reader = std::io::BufReader::with_capacity(3, Chunked { data: &input, sizes, i: 0 });
        let chunked: Vec<_> = MessageSplitter::new(reader).map(|r| r.unwrap()).collect();
        prop_assert_eq!(&whole, &chunked);
        let mut last_end = 0;
        for (i, m) in whole.iter().enumerate() {
            prop_assert_eq!(m.index, i);
            prop_assert!(!m.bytes.is_empty());
            prop_assert!(m.offset >= last_end);
            prop_assert_eq!(input.get(m.offset..m.offset + m.bytes.len()), Some(&m.bytes[..]));
            prop_assert!(!m.bytes.ends_with(b"\r") && !m.bytes.ends_with(b"\n"));
            last_end = m.offset + m.bytes.len();
        }
    }

    #[test]
    fn split_and_parse_generated_streams(trees in prop::collection::vec(message_tree(), 1..5)) {
        let texts: Vec<String> = trees.iter().map(encode).collect();
        let stream = texts.join("\r\n");
        let items: Vec<_> = MessageSplitter::new(stream.as_bytes()).map(|r| r.unwrap()).collect();
        // a value may not start a line with MSH (line breaks in values are escaped), so each
        // tree is one item
        prop_assert_eq!(items.len(), texts.len());
        for (item, text) in items.iter().zip(&texts) {
            prop_assert_eq!(&item.bytes[..], text.as_bytes());
        }
    }

    #[test]
    fn path_parse_never_panics(s in any::<String>(), t in "[A-Z0-9\\[\\]*.\\-]{0,16}") {
        for text in [s, t] {
            if let Ok(p) = Path::parse(&text) {
                prop_assert_eq!(p.to_string(), text.clone());
                prop_assert_eq!(Path::parse(&p.to_string()), Ok(p));
            }
        }
    }

    #[test]
    fn path_display_round_trips(p in path()) {
        prop_assert_eq!(Path::parse(&p.to_string()), Ok(p));
    }

    #[test]
    fn select_never_panics(tree in message_tree(), p in path(), field in 0usize..4, comp in 0usize..3) {
        let mut p = p;
        if let Some(seg) = tree.segments.get(1) {
            p.segment = seg.id.to_string();
        }
        let _ = tree.select(&p);
        // hand-built paths may hold zeros
        p.field = field;
        p.component = Some(comp);
        p.subcomponent = Some(comp);
        let _ = tree.select(&p);
    }

    #[test]
    fn the_lazy_view_selects_what_the_tree_selects(
        tree in message_tree(),
        p in path(),
        seg in 0usize..4,
        field in 0usize..6,
        rep in prop_oneof![Just(Index::First), Just(Index::All), (0usize..3).prop_map(Index::Nth)],
        comp in prop::option::of(0usize..4),
        sub in prop::option::of(0usize..3),
        s in any::<String>(),
    ) {
        let text = encode(&tree);
        let parsed = parse_message(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let view = MessageView::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(view.delimiters, parsed.delimiters);
        prop_assert_eq!(view.segments.len(), parsed.segments.len());
        let mut p = p;
        if let Some(s) = parsed.segments.get(seg) {
            p.segment = s.id.to_string();
        }
        // The view rebuilt from its index reads the same.
        let index = view.index(&text).ok_or_else(|| TestCaseError::fail("no index"))?;
        let rebuilt = MessageView::from_index(&text, &index);
        prop_assert_eq!(&rebuilt.segments, &view.segments);
        // Fields found through the index's separator offsets are the ones found by scanning.
        for (scanned, indexed) in view.segments.iter().zip(&rebuilt.segments) {
            for n in 0..12 {
                prop_assert_eq!(rebuilt.raw_field(indexed, n), view.raw_field(scanned, n), "{} field {}", scanned.id, n);
            }
        }
        for path in [p.clone(), Path { field, repetition: rep, component: comp, subcomponent: sub, ..p }] {
            let from_view: Vec<String> = view.select(&path).into_iter().map(|v| v.into_owned()).collect();
            prop_assert_eq!(&from_view, &parsed.select(&path), "path {}", path);
            let first = view.first(&path).map(|v| v.into_owned());
            prop_assert_eq!(first.as_ref(), from_view.first(), "first of {}", path);
            prop_assert_eq!(rebuilt.first(&path).map(|v| v.into_owned()), first, "first of {}", path);
            let from_rebuilt: Vec<String> = rebuilt.select(&path).into_iter().map(|v| v.into_owned()).collect();
            prop_assert_eq!(from_rebuilt, from_view, "path {}", path);
        }
        // Any text: the view accepts what the codec accepts, with the same error.
        match (parse_message(&s), MessageView::parse(&s)) {
            (Ok(m), Ok(v)) => prop_assert_eq!(m.segments.len(), v.segments.len()),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "codec {:?} but view {:?}", a.err(), b.err()),
        }
    }
}
