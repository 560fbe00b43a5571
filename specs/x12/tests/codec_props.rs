//! Property tests for the X12 tokenizer, splitter and envelope checks.
//!
//! Generated interchanges have random delimiters, random segments and elements (text that
//! holds no delimiter), random layout (nothing, LF or CRLF after each terminator, a BOM) and
//! correct envelopes. For those, the splitter gives back exactly the generated sets, segment by
//! segment and element by element, and the checker accepts every set; a wrong SE01 is always
//! caught. Arbitrary bytes go through the fuzz target's property.

use proptest::prelude::*;
use sluice_x12::codec::Delimiters;
use sluice_x12::envelope::{Mode, check_stream};
use sluice_x12::split::{Item, Splitter};

#[allow(dead_code)]
#[path = "../../../fuzz/props/x12.rs"]
mod props;

const DELIMITER_POOL: &[u8] = b"*|^:~!#$%&+<>?@{}\\";

fn delimiters() -> impl Strategy<Value = (Delimiters, bool)> {
    (Just(DELIMITER_POOL.to_vec()).prop_shuffle(), any::<bool>(), any::<bool>()).prop_map(|(pool, newline, rep)| {
        let segment = if newline { b'\n' } else { pool[3] };
        (Delimiters { element: pool[0], component: pool[1], repetition: Some(pool[2]).filter(|_| rep), segment }, rep)
    })
}

/// A generated segment: its id and its elements, each a list of components.
type Seg = (String, Vec<Vec<String>>);

/// A segment: an id, then elements of text with no delimiter, some with components.
fn segment() -> impl Strategy<Value = Seg> {
    let id = "[A-Z][A-Z0-9]{1,2}".prop_filter("not an envelope id", |id| {
        !matches!(id.as_str(), "ISA" | "IEA" | "GS" | "GE" | "ST" | "SE" | "TA1")
    });
    let value = "[A-Za-z0-9 .,'-]{0,8}";
    (id, prop::collection::vec(prop::collection::vec(value, 1..3), 0..6))
}

fn sets() -> impl Strategy<Value = Vec<Vec<Seg>>> {
    prop::collection::vec(prop::collection::vec(segment(), 0..6), 1..4)
}

/// Writes one interchange of one group holding `sets`; layout 0: none, 1: LF, 2: CRLF.
fn encode(d: &Delimiters, repetition: bool, sets: &[Vec<Seg>], layout: u8, bom: bool) -> Vec<u8> {
    let (e, c, t) = (d.element as char, d.component as char, d.segment as char);
    let after = if d.segment == b'\n' { "" } else { ["", "\n", "\r\n"][usize::from(layout % 3)] };
    let isa11 = if repetition { d.repetition.unwrap() as char } else { 'U' };
    let version = if repetition { "00501" } else { "00401" };
    let mut out = String::new();
    if bom {
        out.push('\u{feff}');
    }
    out += &format!(
        "ISA{e}00{e}          {e}00{e}          {e}ZZ{e}SUBMITTER      {e}ZZ{e}RECEIVER       {e}240115{e}1030{e}{isa11}{e}{version}{e}000000042{e}0{e}P{e}{c}{t}{after}"
    );
    out += &format!("GS{e}HC{e}S{e}R{e}20240115{e}1030{e}9{e}X{e}005010X222A1{t}{after}");
    for (i, set) in sets.iter().enumerate() {
        let control = format!("{:04}", i + 1);
        out += &format!("ST{e}837{e}{control}{t}{after}");
        for (id, elements) in set {
            out += id;
            for el in elements {
                out.push(e);
                out += &el.join(&c.to_string());
            }
            out.push(t);
            out += after;
        }
        out += &format!("SE{e}{}{e}{control}{t}{after}", set.len() + 2);
    }
    out += &format!("GE{e}{}{e}9{t}{after}IEA{e}1{e}000000042{t}{after}", sets.len());
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_interchanges_split_back_exactly(
        (d, rep) in delimiters(), body in sets(), layout in 0u8..3, bom in any::<bool>()
    ) {
        let bytes = encode(&d, rep, &body, layout, bom);
        let got: Vec<_> = Splitter::new(bytes.as_slice())
            .map(|i| i.unwrap())
            .filter_map(|i| if let Item::Set(s) = i { Some(s) } else { None })
            .collect();
        prop_assert_eq!(got.len(), body.len());
        for (set, want) in got.iter().zip(&body) {
            prop_assert!(set.closed);
            let segs: Vec<_> = set.segments().collect();
            prop_assert_eq!(segs.len(), want.len() + 2);
            for (seg, (id, elements)) in segs[1..].iter().zip(want) {
                prop_assert_eq!(seg.id_str(), id.as_str());
                prop_assert_eq!(seg.element_count(), elements.len());
                for (n, el) in elements.iter().enumerate() {
                    for (k, comp) in el.iter().enumerate() {
                        prop_assert_eq!(seg.component(n + 1, k + 1), Some(comp.as_bytes()));
                    }
                }
            }
        }
        let results = check_stream(bytes.as_slice(), Mode::Strict).unwrap();
        prop_assert_eq!(results.len(), 1);
        prop_assert_eq!(results[0].accepted_sets(), body.len(), "{:?}", results[0]);
        props::split_check(&[&[0u8][..], &bytes].concat());
    }

    #[test]
    fn a_wrong_segment_count_is_always_caught((d, rep) in delimiters(), body in sets(), extra in 1usize..5) {
        let bytes = encode(&d, rep, &body, 0, false);
        let e = d.element as char;
        let right = format!("SE{e}{}{e}0001", body[0].len() + 2);
        let wrong = format!("SE{e}{}{e}0001", body[0].len() + 2 + extra);
        let text = String::from_utf8(bytes).unwrap().replacen(&right, &wrong, 1);
        let results = check_stream(text.as_bytes(), Mode::Strict).unwrap();
        let set = &results[0].groups[0].sets[0];
        prop_assert!(set.findings.iter().any(|f| f.code == "X12041"), "{:?}", set);
        prop_assert_eq!(results[0].accepted_sets(), body.len() - 1);
    }

    #[test]
    fn arbitrary_bytes_keep_the_split_properties(data in prop::collection::vec(any::<u8>(), 0..600)) {
        props::split_check(&data);
    }

    #[test]
    fn mutated_interchanges_keep_the_split_properties(
        (d, rep) in delimiters(), body in sets(), cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = encode(&d, rep, &body, 1, false);
        for (at, b) in cuts {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        props::split_check(&[&[3u8, 1, 7, 0][..], &bytes].concat());
    }
}
