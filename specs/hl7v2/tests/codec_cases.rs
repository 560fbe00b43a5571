//! Hand-written codec, splitter, path and JSON cases, plus a round trip over the shared HL7 v2
//! corpus (skipped, loudly, when the corpus is not checked out next to the workspace).

mod common;

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use sluice_hl7v2::codec::{
    BadSegments, EncodingCharacters, Message, ParseOptions, Segment, SegmentSeparator, encode, parse_message,
    parse_message_with,
};
use sluice_hl7v2::split::MessageSplitter;
use sluice_hl7v2::view::MessageView;

/// Separators normalised to CR: what `encode` writes for a message with mixed separators.
fn to_cr(text: &str) -> String {
    text.replace("\r\n", "\r").replace('\n', "\r")
}

fn strip_offsets(m: &Message<'_>) -> Vec<Segment<'static>> {
    let mut segments = m.clone().into_owned().segments;
    for s in &mut segments {
        s.offset = 0;
    }
    segments
}

#[derive(Default)]
struct Tally {
    files: usize,
    messages: usize,
    parsed: usize,
    exact: usize,
    other_chunks: usize,
    /// Parsed only with `encoding_characters: tolerant` (listed with the warning code).
    tolerated: Vec<String>,
    /// Rejected on purpose (see [`EXPECTED_REJECTIONS`]).
    rejected: Vec<String>,
    failures: Vec<String>,
}

/// Corpus messages that must be rejected, even in tolerant mode, with the code and why. They
/// are hl7apy's own negative tests (`test_parser.py` asserts that parsing them raises).
const EXPECTED_REJECTIONS: &[(&str, &str, &str)] = &[
    (
        "hl7apy-tests-extracted/test_parser_L215_138c5059dd.hl7",
        "HL7003",
        "MSH-2 `^&&^` repeats two delimiters: no reading of it is unambiguous (hl7apy test: must raise)",
    ),
    (
        "hl7apy-tests-extracted/test_parser_L218_60a99a7ccb.hl7",
        "HL7003",
        "MSH-2 `^&&^##` holds 6 characters and repeats delimiters (hl7apy test: must raise)",
    ),
];

/// Paths compared between the lazy view and the tree on every corpus message.
const VIEW_PATHS: &[&str] = &[
    "MSH-1",
    "MSH-2",
    "MSH-9.1",
    "MSH-9.2",
    "MSH-10",
    "MSH-12",
    "PID-3[*].1",
    "PID-3[1].4.2",
    "PID-5.1",
    "PID-5.2",
    "PID-7",
    "PID-8",
    "PID-11[*].3",
    "OBX[*]-5",
    "OBX[*]-5[*].2",
    "NK1[*]-2",
    "NTE[*]-3",
];

const TOLERANT: ParseOptions =
    ParseOptions { encoding_characters: EncodingCharacters::Tolerant, bad_segments: BadSegments::Reject };

#[test]
fn corpus_round_trip() {
    let Some((dir, files)) = common::hl7_corpus() else {
        return;
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut broken_invariant = Vec::new();
    let mut not_exact = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&dir).unwrap_or(file);
        let folder = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        let name = rel.display().to_string();
        let tally = tallies.entry(folder).or_default();
        tally.files += 1;
        let bytes = std::fs::read(file).expect("read corpus file");
        for item in MessageSplitter::new(bytes.as_slice()) {
            let item = item.expect("in-memory read cannot fail");
            if !item.bytes.starts_with(b"MSH") {
                tally.other_chunks += 1;
                continue;
            }
            tally.messages += 1;
            let Ok(text) = std::str::from_utf8(&item.bytes) else {
                tally.failures.push(format!("{name} #{}: not UTF-8", item.index));
                continue;
            };
            let expected_rejection = EXPECTED_REJECTIONS.iter().find(|(f, _, _)| rel == FsPath::new(f));
            let mut options = ParseOptions::default();
            let message = match (parse_message(text), expected_rejection) {
                (Ok(_), Some(_)) => {
                    tally.failures.push(format!("{name} #{}: parsed, but is an expected rejection", item.index));
                    continue;
                }
                (Ok(m), None) => m,
                (Err(e), Some((_, code, why))) => {
                    let tolerant = parse_message_with(text, TOLERANT);
                    if e.code == *code && tolerant.as_ref().err().map(|t| t.code) == Some(code) {
                        tally.rejected.push(format!("{name} #{}: {code}: {why}", item.index));
                    } else {
                        tally
                            .failures
                            .push(format!("{name} #{}: expected rejection {code}, got {}", item.index, e.code));
                    }
                    continue;
                }
                (Err(e), None) => match parse_message_with(text, TOLERANT) {
                    Ok(p) => {
                        let codes: Vec<&str> = p.warnings.iter().map(|w| w.code).collect();
                        tally.tolerated.push(format!(
                            "{name} #{}: strict {}, tolerant ok with {}",
                            item.index,
                            e.code,
                            codes.join(", ")
                        ));
                        options = TOLERANT;
                        p.message
                    }
                    Err(e) => {
                        tally.failures.push(format!(
                            "{name} #{}: parse {} at byte {}: {}",
                            item.index, e.code, e.offset, e.message
                        ));
                        continue;
                    }
                },
            };
            tally.parsed += 1;
            // The lazy view reads the same values as the tree.
            match MessageView::parse_with(text, options) {
                Ok(view) => {
                    for p in VIEW_PATHS {
                        let path = sluice_hl7v2::path::Path::parse(p).expect("valid path");
                        let got: Vec<String> = view.select(&path).into_iter().map(|v| v.into_owned()).collect();
                        if got != message.select(&path) {
                            broken_invariant.push(format!("{name} #{}: view and tree differ at {p}", item.index));
                        }
                    }
                }
                Err(e) => broken_invariant.push(format!("{name} #{}: view rejects: {}", item.index, e.code)),
            }
            let encoded = encode(&message);
            // The invariant that must hold for every message: the re-encoded text parses to the
            // same tree (segment offsets aside).
            match parse_message_with(&encoded, options).map(|p| p.message) {
                Ok(again) => {
                    if strip_offsets(&again) != strip_offsets(&message) || again.delimiters != message.delimiters {
                        broken_invariant.push(format!("{name} #{}: tree changed", item.index));
                    }
                }
                Err(e) => broken_invariant.push(format!("{name} #{}: re-parse {}", item.index, e.code)),
            }
            let expected =
                if message.segment_separator == SegmentSeparator::Mixed { to_cr(text) } else { text.to_string() };
            if encoded == expected {
                tally.exact += 1;
            } else {
                let at = encoded
                    .bytes()
                    .zip(expected.bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or(encoded.len().min(expected.len()));
                let failure = format!(
                    "{name} #{}: re-encoded text differs from byte {at} (length {} vs {})",
                    item.index,
                    encoded.len(),
                    expected.len()
                );
                not_exact.push(failure.clone());
                tally.failures.push(failure);
            }
        }
    }
    println!("\nHL7 v2 corpus round trip ({}):", dir.display());
    println!(
        "{:<40} {:>5} {:>8} {:>7} {:>9} {:>7} {:>8} {:>6}",
        "folder", "files", "messages", "parsed", "tolerated", "exact", "rejected", "non-message chunks"
    );
    for (folder, t) in &tallies {
        println!(
            "{:<40} {:>5} {:>8} {:>7} {:>9} {:>7} {:>8} {:>6}",
            folder,
            t.files,
            t.messages,
            t.parsed,
            t.tolerated.len(),
            t.exact,
            t.rejected.len(),
            t.other_chunks
        );
        for f in &t.tolerated {
            println!("    tolerated: {f}");
        }
        for f in &t.rejected {
            println!("    expected rejection: {f}");
        }
        for f in &t.failures {
            println!("    FAILED: {f}");
        }
    }
    let failures: Vec<&String> = tallies.values().flat_map(|t| &t.failures).collect();
    assert!(failures.is_empty(), "corpus messages that neither parse nor are expected rejections: {failures:#?}");
    // Every message of the corpus that parses re-encodes byte for byte (mixed separators aside,
    // compared after `to_cr`), however its escapes are spelled ("Spellings" in the codec docs);
    // a message that does not shows up here with the byte where it differs.
    assert!(not_exact.is_empty(), "parse -> encode changed these messages: {not_exact:#?}");
    assert!(broken_invariant.is_empty(), "parse(encode(parse(x))) != parse(x): {broken_invariant:#?}");
}

// ---------------------------------------------------------------------------------------------
// Hand-written cases
// ---------------------------------------------------------------------------------------------

use std::borrow::Cow;

use sluice_hl7v2::codec::{Delimiters, escape, unescape};
use sluice_hl7v2::json::{json_to_message, message_to_json};
use sluice_hl7v2::path::{Index, Path};
use sluice_hl7v2::split::{RawMessage, split_str};

const ADT: &str = "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL123|P|2.5.1\r\
EVN|A01|20240101120000\r\
PID|1||MRN1^^^HOSP^MR~ALT9^^^OTHER^PI||DOE^JANE^Q||19800101|F|||1 MAIN ST^^TOWN^ST^12345\r\
OBX|1|TX|CODE1||first value||||||F\r\
OBX|2|TX|CODE2||second value||||||F\r\
OBX|3|TX|CODE3||\"\"||||||F";

fn round_trips(text: &str) {
    let m = parse_message(text).expect("parses");
    assert_eq!(encode(&m), text);
}

fn split_all(bytes: &[u8]) -> Vec<RawMessage> {
    MessageSplitter::new(bytes).collect::<Result<Vec<_>, _>>().expect("in-memory read")
}

#[test]
fn basic_tree_and_accessors() {
    let m = parse_message(ADT).unwrap();
    assert_eq!(m.delimiters, Delimiters::default());
    assert_eq!(m.segment_separator, SegmentSeparator::Cr);
    assert_eq!(m.segments.len(), 6);
    assert_eq!(m.message_type().as_deref(), Some("ADT^A01"));
    assert_eq!(m.control_id(), Some("CTRL123"));
    assert_eq!(m.version(), Some("2.5.1"));
    let msh = &m.segments[0];
    assert_eq!(msh.field(1).and_then(|f| f.first()), Some("|"));
    assert_eq!(msh.field(2).and_then(|f| f.first()), Some("^~\\&"));
    assert_eq!(msh.field(3).and_then(|f| f.first()), Some("APP"));
    assert!(msh.field(0).is_none());
    let pid = m.segments_named("PID").next().unwrap();
    assert_eq!(pid.line, 3);
    assert_eq!(pid.offset, ADT.find("PID").unwrap());
    assert_eq!(pid.field(3).unwrap().repetitions.len(), 2);
    // zero-copy when no escape is present
    let family = &pid.field(5).unwrap().repetitions[0].components[0].subcomponents[0];
    assert!(matches!(family, Cow::Borrowed("DOE")));
    assert_eq!(m.segments_named("OBX").count(), 3);
    round_trips(ADT);
    let owned = m.clone().into_owned();
    assert_eq!(owned, m);
}

#[test]
fn segment_separators() {
    let cr = "MSH|^~\\&|A\rPID|1\rPV1|1";
    let lf = cr.replace('\r', "\n");
    let crlf = cr.replace('\r', "\r\n");
    let mixed = "MSH|^~\\&|A\rPID|1\nPV1|1\r\nZZ1|x";
    for (text, sep) in
        [(cr.to_string(), SegmentSeparator::Cr), (lf, SegmentSeparator::Lf), (crlf, SegmentSeparator::CrLf)]
    {
        let m = parse_message(&text).unwrap();
        assert_eq!(m.segment_separator, sep);
        assert_eq!(m.segments.len(), 3);
        assert_eq!(encode(&m), text);
    }
    let m = parse_message(mixed).unwrap();
    assert_eq!(m.segment_separator, SegmentSeparator::Mixed);
    assert_eq!(m.segments.len(), 4);
    assert_eq!(m.segments[3].offset, mixed.find("ZZ1").unwrap());
    assert_eq!(encode(&m), "MSH|^~\\&|A\rPID|1\rPV1|1\rZZ1|x");
    // trailing blank lines are not segments, and the terminator after the last one is not
    // part of the separator kind
    let m = parse_message("MSH|^~\\&|A\nPID|1\r\n\r\n  \n").unwrap();
    assert_eq!(m.segments.len(), 2);
    assert_eq!(m.segment_separator, SegmentSeparator::Lf);
    assert_eq!(encode(&m), "MSH|^~\\&|A\nPID|1");
}

#[test]
fn bom_is_ignored_and_offsets_count_it() {
    let text = "\u{feff}MSH|^~\\&|A\rPID|1";
    let m = parse_message(text).unwrap();
    assert_eq!(m.segments[0].offset, 3);
    assert_eq!(m.segments[1].offset, text.find("PID").unwrap());
    assert_eq!(encode(&m), &text[3..]);
    let items = split_all(text.as_bytes());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].offset, 3);
    assert!(items[0].bytes.starts_with(b"MSH"));
}

#[test]
fn non_default_encoding_characters() {
    let text = "MSH|@%$#|APP|FAC|||||ADT@A01|C1|P|2.3\rPID|1||ID1@@@AUTH%ID2||SMITH@JOHN#JR|$F$ in text";
    let m = parse_message(text).unwrap();
    let d = m.delimiters;
    assert_eq!((d.field, d.component, d.repetition, d.escape, d.subcomponent), ('|', '@', '%', Some('$'), '#'));
    assert_eq!(m.message_type().as_deref(), Some("ADT^A01"));
    let pid = &m.segments[1];
    assert_eq!(pid.field(3).unwrap().repetitions.len(), 2);
    let name = &pid.field(5).unwrap().repetitions[0].components[1];
    assert_eq!(name.subcomponents, vec!["JOHN", "JR"]);
    assert_eq!(pid.field(6).and_then(|f| f.first()), Some("| in text"));
    round_trips(text);

    // another field separator; truncation character (v2.7)
    let text = "MSH!$r?@!LIP!LIP!!!20111207!!RSP$K11!430102!D!2.5";
    let m = parse_message(text).unwrap();
    assert_eq!(m.delimiters.field, '!');
    assert_eq!(m.delimiters.repetition, 'r');
    assert_eq!(m.message_type().as_deref(), Some("RSP^K11"));
    round_trips(text);
    let text = "MSH|^~\\&#|A|B|||||ORU^R01|1|P|2.7\rNTE|1||Apt #5 \\E\\ ok";
    let m = parse_message(text).unwrap();
    assert_eq!(m.delimiters.truncation, Some('#'));
    assert_eq!(m.segments[1].field(3).and_then(|f| f.first()), Some("Apt #5 \\ ok"));
    round_trips(text);
}

#[test]
fn header_errors() {
    let code = |t: &str| parse_message(t).map(|_| ()).unwrap_err().code;
    assert_eq!(code(""), "HL7001");
    assert_eq!(code("PID|1"), "HL7001");
    assert_eq!(code("FHS|^~\\&|X\rMSH|^~\\&|A"), "HL7001");
    assert_eq!(code(" MSH|^~\\&"), "HL7001");
    assert_eq!(code("MSH"), "HL7002");
    assert_eq!(code("MSH\rPID|1"), "HL7002");
    assert_eq!(code("MSH|^~"), "HL7002");
    assert_eq!(code("MSH|^~}|A"), "HL7002");
    assert_eq!(code("MSH|^&&^|A"), "HL7003");
    assert_eq!(code("MSH|^~\\\\&|A"), "HL7003");
    assert_eq!(code("MSH|^~\\&#@|A"), "HL7003");
    assert_eq!(code("MSHA^~\\&A"), "HL7003");
    let e = parse_message("MSH|^~\\&|A\rPID|1\rpv1|x\r").unwrap_err();
    assert_eq!((e.code, e.offset), ("HL7004", 17));
    for bad in ["PI|x", "PIDX|1", "1AB|x", "// comment", "ZZé|1"] {
        let e = parse_message(&format!("MSH|^~\\&|A\r{bad}")).unwrap_err();
        assert_eq!(e.code, "HL7004", "{bad}");
    }
    // errors never quote the message
    let e = parse_message("MSH|^~\\&|A\rSECRET-NAME|x").unwrap_err();
    assert!(!e.to_string().contains("SECRET"));
    assert!(e.to_string().starts_with("HL7004 at byte 11"));
}

#[test]
fn bad_segments_drop_keeps_the_good_ones() {
    use sluice_hl7v2::view::MessageView;
    let drop = ParseOptions { bad_segments: BadSegments::Drop, ..ParseOptions::default() };
    let text = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|X1|P|2.5.1\rEVN|A01\rSMITH, JOHN 123-45-6789\r\rP@D|x\rPID|1||123\rpv1|1|I\rPV1|1|I";
    assert_eq!(parse_message(text).unwrap_err().code, "HL7004");
    let p = parse_message_with(text, drop).unwrap();
    let kept: Vec<(&str, usize)> = p.message.segments.iter().map(|s| (s.id.as_ref(), s.line)).collect();
    assert_eq!(kept, [("MSH", 1), ("EVN", 2), ("PID", 5), ("PV1", 7)]);
    let dropped: Vec<(usize, &str, &str)> =
        p.dropped.iter().map(|d| (d.line, &text[d.range.clone()], d.error.code)).collect();
    assert_eq!(dropped, [(3, "SMITH, JOHN 123-45-6789", "HL7004"), (4, "P@D|x", "HL7004"), (6, "pv1|1|I", "HL7004")]);
    // the messages say where, never what
    assert!(p.dropped.iter().all(|d| !d.error.message.contains("SMITH") && d.error.offset == d.range.start));
    assert_eq!(p.message.segments[2].field(3).and_then(|f| f.first()), Some("123"));
    // the view drops the same segments and reads the same values
    let v = MessageView::parse_with(text, drop).unwrap();
    assert_eq!(v.dropped, p.dropped);
    let pid3 = sluice_hl7v2::path::Path::parse("PID-3").unwrap();
    assert_eq!(v.select(&pid3), ["123"]);
    // and the index taken from it reads them again
    let index = v.index(text).unwrap();
    assert_eq!(MessageView::from_index(text, &index).select(&pid3), ["123"]);
    // a message that cannot be read at all is still refused
    for whole in ["garbage\rPID|1", "MSH|^~|A\rbad line"] {
        let strict = parse_message(whole).unwrap_err();
        assert_eq!(parse_message_with(whole, drop).unwrap_err(), strict);
    }
    // nothing to drop: the same tree as without the option
    let good = "MSH|^~\\&|A\rPID|1";
    let p = parse_message_with(good, drop).unwrap();
    assert!(p.dropped.is_empty());
    assert_eq!(p.message, parse_message(good).unwrap());
    assert_eq!(BadSegments::from_name("drop"), Some(BadSegments::Drop));
    assert_eq!(BadSegments::NAMES.iter().filter_map(|n| BadSegments::from_name(n)).count(), 2);
}

#[test]
fn empty_and_truncated_fields() {
    let text = "MSH|^~\\&|A\rPID\rPV1|\rOBX||~|^|&||x^&^~||";
    let m = parse_message(text).unwrap();
    assert!(m.segments[1].fields.is_empty());
    assert_eq!(m.segments[2].fields.len(), 1);
    assert!(m.segments[2].fields[0].repetitions.is_empty());
    let obx = &m.segments[3];
    assert_eq!(obx.fields.len(), 8);
    assert!(obx.fields[0].repetitions.is_empty());
    assert_eq!(obx.fields[1].repetitions.len(), 2);
    assert!(obx.fields[1].repetitions.iter().all(|r| r.components.is_empty()));
    assert_eq!(obx.fields[2].repetitions[0].components.len(), 2);
    assert_eq!(obx.fields[3].repetitions[0].components[0].subcomponents, vec!["", ""]);
    assert_eq!(obx.fields[5].first(), Some("x"));
    assert_eq!(obx.fields[5].repetitions.len(), 2);
    round_trips(text);
    // MSH with only its first two fields, or a header segment cut short later on
    round_trips("MSH|^~\\&");
    round_trips("MSH|^~\\&|");
    round_trips("MSH|^~\\&|A\rBHS|\rMSH");
}

#[test]
fn large_field_value() {
    let value: String = "0123456789ABCDEF".repeat(85 * 1024 / 16);
    let text = format!("MSH|^~\\&|A\rOBX|1|ED|PDF||^application^pdf^Base64^{value}|x");
    let m = parse_message(&text).unwrap();
    let comps = &m.segments[1].field(5).unwrap().repetitions[0].components;
    assert_eq!(comps[4].subcomponents[0].len(), 85 * 1024);
    assert_eq!(encode(&m), text);
    let items = split_all(text.as_bytes());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].bytes, text.as_bytes());
}

#[path = "../../../bench/feed.rs"]
#[allow(dead_code)]
mod feed;

/// A 5 MB OBX-5 value is borrowed from the message text by both the tree and the lazy view:
/// parsing copies none of it (a correctness property; its speed is in docs/benchmarks.md).
#[test]
fn large_obx5_payload_is_borrowed_not_copied() {
    let text = feed::large_obx5_message(5 * 1024 * 1024);
    let within = |v: &str| {
        let (start, end) = (text.as_ptr() as usize, text.as_ptr() as usize + text.len());
        let p = v.as_ptr() as usize;
        v.len() == 5 * 1024 * 1024 && p >= start && p + v.len() <= end
    };
    let m = parse_message(&text).unwrap();
    let sub = &m.segments[3].field(5).unwrap().repetitions[0].components[4].subcomponents[0];
    assert!(matches!(sub, Cow::Borrowed(_)) && within(sub), "the tree copied the payload");
    let view = MessageView::parse(&text).unwrap();
    let value = view.first(&sluice_hl7v2::path::Path::parse("OBX-5.5").unwrap()).unwrap();
    assert!(matches!(value, Cow::Borrowed(_)) && within(&value), "the view copied the payload");
}

#[test]
fn escapes() {
    let d = Delimiters::default();
    let text = "MSH|^~\\&|A\rOBX|1|FT|||\\X41\\\\XC3A9\\ a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\H\\bold\\N\\\\Zlocal\\\\X0D\\\\X0A\\";
    let m = parse_message(text).unwrap();
    assert_eq!(
        m.segments[1].field(5).and_then(|f| f.first()),
        Some("Aé a|b^c&d~e\\f\\.br\\g\\H\\bold\\N\\\\Zlocal\\\r\n")
    );
    // hex that spells text decodes to the text, and is written back as it was spelled
    round_trips(text);
    let standard = text.replace("\\X41\\\\XC3A9\\", "Aé");
    round_trips(&standard);
    assert!(parse_message(&standard).unwrap().segments[1].spellings.is_empty());

    // invalid hex, invalid UTF-8 and unknown sequences are kept literally
    for raw in ["\\XZZ\\", "\\XE9\\", "\\X4\\", "\\.sp2\\", "\\C2842\\", "\\Zab\\"] {
        assert_eq!(unescape(raw, &d), raw);
        assert_eq!(escape(raw, &d), raw);
    }
    // unknown sequences: the escape character is a literal character
    assert_eq!(unescape("\\Q\\", &d), "\\Q\\");
    assert_eq!(escape("\\Q\\", &d), "\\E\\Q\\E\\");
    // a properly escaped path survives exactly
    round_trips("MSH|^~\\&|A\rOBX|1|TX|||C:\\E\\dir\\E\\file");
    // unpaired escape characters are literal on decode and written as \E\
    assert_eq!(unescape("C:\\temp", &d), "C:\\temp");
    assert_eq!(escape("C:\\temp", &d), "C:\\E\\temp");
    assert_eq!(unescape("a\\\\b", &d), "a\\\\b");
    // the rule for an escape character followed by a kept sequence: written as the sequence
    assert_eq!(unescape("\\E\\.br\\E\\", &d), "\\.br\\");
    assert_eq!(escape("\\.br\\", &d), "\\.br\\");
    // a body holding a delimiter is not a sequence
    assert_eq!(escape("\\a^b\\", &d), "\\E\\a\\S\\b\\E\\");
    assert_eq!(unescape("\\E\\a\\S\\b\\E\\", &d), "\\a^b\\");
    // no escape character: nothing is decoded or encoded
    let none = Delimiters { escape: None, ..Delimiters::default() };
    assert_eq!(unescape("\\F\\", &none), "\\F\\");
    assert_eq!(escape("a\\b", &none), "a\\b");
}

/// Values the standard escape writes differently are written back as they were spelled, as
/// long as the value is unchanged; changed values get the standard spelling.
#[test]
fn non_standard_spellings_round_trip() {
    for raw in [
        "C:\\temp",
        "end\\",
        "\\Q\\",
        "\\X41\\",
        "\\X0d\\",
        "\\X0D0A\\",
        "\\xc3\\",
        "\\E\\.br\\E\\",
        "a\\\\b",
        "SEIZURES~VOMITING\\r",
    ] {
        let raw = raw.replace('~', "\\R\\");
        let text = format!("MSH|^~\\&|A\rOBX|1|TX|||{raw}^plain&x\\E\\y");
        let m = parse_message(&text).unwrap();
        assert_eq!(encode(&m), text, "{raw:?}");
        let obx = &m.segments[1];
        let comps = &obx.fields[4].repetitions[0].components;
        // only the non-standard value is recorded, borrowed from the text like the values
        assert_eq!(obx.spellings.len(), 1, "{raw:?}");
        assert_eq!(obx.spellings[0].at, [4, 0, 0, 0]);
        assert!(matches!(obx.spellings[0].raw, Cow::Borrowed(_)));
        assert!(matches!(comps[1].subcomponents[0], Cow::Borrowed(_)));
        assert_eq!(unescape(&obx.spellings[0].raw, &m.delimiters), comps[0].subcomponents[0]);
        // the owned tree and the full JSON shape keep the spelling
        assert_eq!(encode(&m.clone().into_owned()), text);
        assert_eq!(encode(&json_to_message(&message_to_json(&m, true)).unwrap()), text);

        // an edited value is escaped the standard way; the others keep their spelling
        let mut edited = m.clone();
        let value = &mut edited.segments[1].fields[4].repetitions[0].components[0].subcomponents[0];
        let changed = format!("{value}|");
        *value = Cow::Owned(changed.clone());
        let expected = text.replacen(&raw, &escape(&changed, &m.delimiters), 1);
        assert_eq!(encode(&edited), expected, "{raw:?}");
        // so is every value when the delimiters change
        let mut other = m.clone();
        other.delimiters.escape = Some('#');
        other.segments[0].fields[1] = parse_message("MSH|^~#&").unwrap().segments[0].fields[1].clone();
        let written = encode(&other);
        let again = parse_message(&written).unwrap();
        assert_eq!(again.segments[1].fields, m.segments[1].fields, "{raw:?} with # as escape: {written:?}");
    }
    // a standard spelling records nothing
    let m = parse_message("MSH|^~\\&|A\rOBX|1|TX|||C:\\E\\temp\\F\\\\X0D\\\\.br\\").unwrap();
    assert!(m.segments.iter().all(|s| s.spellings.is_empty()));
    // the compact JSON shape is for reading: no spellings in it
    let m = parse_message("MSH|^~\\&|A\rOBX|1|TX|||C:\\temp").unwrap();
    assert!(message_to_json(&m, false).get("spellings").is_none());
    assert_eq!(message_to_json(&m, true)["spellings"], serde_json::json!([{"at": [1, 5, 0, 0, 0], "raw": "C:\\temp"}]));
}

#[test]
fn select_paths() {
    let m = parse_message(ADT).unwrap();
    let sel = |p: &str| m.select(&Path::parse(p).unwrap());
    assert_eq!(sel("PID-3"), vec!["MRN1"]);
    assert_eq!(sel("PID-3[*].1"), vec!["MRN1", "ALT9"]);
    assert_eq!(sel("PID-3[1].4"), vec!["OTHER"]);
    assert_eq!(sel("PID-3[*].5"), vec!["MR", "PI"]);
    assert_eq!(sel("PID-3[2]"), Vec::<&str>::new());
    assert_eq!(sel("PID-5"), vec!["DOE"]);
    assert_eq!(sel("PID-5.2"), vec!["JANE"]);
    assert_eq!(sel("PID-5.2.1"), vec!["JANE"]);
    assert_eq!(sel("PID-5.2.2"), Vec::<&str>::new());
    assert_eq!(sel("PID-11.2"), Vec::<&str>::new()); // present but empty: omitted
    assert_eq!(sel("PID-99"), Vec::<&str>::new());
    assert_eq!(sel("OBX-5"), vec!["first value"]);
    assert_eq!(sel("OBX[*]-5"), vec!["first value", "second value", "\"\""]);
    assert_eq!(sel("OBX[1]-3"), vec!["CODE2"]);
    assert_eq!(sel("OBX[7]-3"), Vec::<&str>::new());
    assert_eq!(sel("MSH-1"), vec!["|"]);
    assert_eq!(sel("MSH-2"), vec!["^~\\&"]);
    assert_eq!(sel("MSH-9.2"), vec!["A01"]);
    assert_eq!(sel("ZPI-2"), Vec::<&str>::new());
}

#[test]
fn path_syntax() {
    for canonical in [
        "PID-5",
        "PID-5.1",
        "PID-3[*].1",
        "PID-3[1].4.2",
        "OBX[*]-5",
        "MSH-9.2",
        "ZPI-2",
        "OBX[0]-5[0]",
        "Z01[12]-100[*].3.4",
    ] {
        let p = Path::parse(canonical).unwrap();
        assert_eq!(p.to_string(), canonical);
    }
    let p = Path::parse("PID-3[1].4.2").unwrap();
    assert_eq!(
        p,
        Path {
            segment: "PID".into(),
            occurrence: Index::First,
            field: 3,
            repetition: Index::Nth(1),
            component: Some(4),
            subcomponent: Some(2),
        }
    );
    assert!(!p.is_multi());
    assert!(Path::parse("OBX[*]-5").unwrap().is_multi());
    for (bad, offset) in [
        ("", 0),
        ("pid-5", 0),
        ("PI-5", 0),
        ("1ID-5", 0),
        ("PID", 3),
        ("PID5", 3),
        ("PID-", 4),
        ("PID-0", 4),
        ("PID-05", 4),
        ("PID-5.", 6),
        ("PID-5.0", 6),
        ("PID-5.1.", 8),
        ("PID-5.1.2.3", 9),
        ("PID[x]-5", 4),
        ("PID[1-5", 3),
        ("PID-5[]", 6),
        ("PID-99999999999999999999999", 4),
        ("PÏD-5", 0),
        ("PID-5 ", 5),
    ] {
        let e = Path::parse(bad).unwrap_err();
        assert_eq!(e.offset, offset, "{bad:?}: {e:?}");
        assert!(e.len >= 1);
    }
}

#[test]
fn json_shapes() {
    let text = "MSH|^~\\&|APP||||||ADT^A01|1|P|2.5\rPID|1||A~B^&x||D\\S\\E";
    let m = parse_message(text).unwrap();
    let full = message_to_json(&m, true);
    assert_eq!(full["segments"][0][1], serde_json::json!([[["|"]]]), "MSH-1 literal");
    assert_eq!(full["segments"][0][2], serde_json::json!([[["^~\\&"]]]));
    assert_eq!(full["segments"][1][0], "PID");
    assert_eq!(full["segments"][1][2], serde_json::json!([]));
    assert_eq!(full["segments"][1][3], serde_json::json!([[["A"]], [["B"], ["", "x"]]]));
    let compact = message_to_json(&m, false);
    assert_eq!(compact["segments"][0][1], "|");
    assert_eq!(compact["segments"][0][2], "^~\\&");
    assert_eq!(compact["segments"][0][9], serde_json::json!(["ADT", "A01"]));
    assert_eq!(compact["segments"][1][2], "");
    assert_eq!(compact["segments"][1][3], serde_json::json!(["A", ["B", ["", "x"]]]));
    assert_eq!(compact["segments"][1][5], "D^E");
    let back = json_to_message(&full).unwrap();
    assert_eq!(back, m);
    assert_eq!(encode(&back), text);
    assert!(json_to_message(&serde_json::json!({"segments": [["PID", "1"]]})).is_none());
    assert!(json_to_message(&serde_json::json!({"segments": 3})).is_none());
}

#[test]
fn split_line_endings_and_blank_lines() {
    let a = "MSH|^~\\&|A|1\rPID|1";
    let b = "MSH|^~\\&|B|2\r\nPID|2\r\n\r\nNTE|1";
    let c = "MSH|^~\\&|C|3\nPID|3";
    let stream = format!("\n\n{a}\r\n\r\n{b}\n\n  \n{c}\n");
    let parts = split_str(&stream);
    let texts: Vec<&str> = parts.iter().map(|p| p.1).collect();
    assert_eq!(texts, vec![a, b, c]);
    for (offset, text) in &parts {
        assert_eq!(&stream[*offset..offset + text.len()], *text);
    }
    let items = split_all(stream.as_bytes());
    assert_eq!(items.iter().map(|m| m.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    // an MSH inside a value is not a message start
    let parts = split_str("MSH|^~\\&|A\rOBX|1|TX|||see MSH|^~ above\rMSH|^~\\&|B");
    assert_eq!(parts.len(), 2);
}

#[test]
fn split_batch_file() {
    let bytes = std::fs::read(FsPath::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/batch.hl7")).unwrap();
    let items = split_all(&bytes);
    assert_eq!(items.len(), 2);
    for (i, item) in items.iter().enumerate() {
        assert!(item.bytes.starts_with(b"MSH"));
        assert_eq!(item.index, i);
        assert_eq!(&bytes[item.offset..item.offset + item.bytes.len()], &item.bytes[..]);
        let text = std::str::from_utf8(&item.bytes).unwrap();
        let m = parse_message(text).unwrap();
        assert_eq!(m.segments.len(), 2);
        assert_eq!(encode(&m), text);
    }
    assert_eq!(parse_message(std::str::from_utf8(&items[1].bytes).unwrap()).unwrap().control_id(), Some("MSG0002"));
    // parse_message on the whole batch file refuses it
    assert_eq!(parse_message(std::str::from_utf8(&bytes).unwrap()).unwrap_err().code, "HL7001");
}

#[test]
fn split_mllp_stream() {
    let a = "MSH|^~\\&|A|1\rPID|1";
    let b = "MSH|^~\\&|B|2\rPID|2";
    let mut stream = Vec::new();
    for m in [a, b] {
        stream.push(0x0B);
        stream.extend_from_slice(m.as_bytes());
        stream.extend_from_slice(b"\r\x1c\r");
    }
    // frame end right after the last segment, without its CR
    stream.extend_from_slice(b"\x0bMSH|^~\\&|C|3\x1c\r");
    let items = split_all(&stream);
    let texts: Vec<&[u8]> = items.iter().map(|m| &m.bytes[..]).collect();
    assert_eq!(texts, vec![a.as_bytes(), b.as_bytes(), b"MSH|^~\\&|C|3".as_slice()]);
    assert_eq!(items[0].offset, 1);
    for item in &items {
        assert_eq!(&stream[item.offset..item.offset + item.bytes.len()], &item.bytes[..]);
    }
    // frames back to back with no CR after the frame end; CRLF after it
    let stream = b"\x0bMSH|^~\\&|A\rPID|1\x1c\x0bMSH|^~\\&|B\x1c\r\n\x0bMSH|^~\\&|C\r\x1c\r";
    let items = split_all(stream);
    let texts: Vec<&[u8]> = items.iter().map(|m| &m.bytes[..]).collect();
    assert_eq!(texts, vec![b"MSH|^~\\&|A\rPID|1".as_slice(), b"MSH|^~\\&|B".as_slice(), b"MSH|^~\\&|C".as_slice()]);
    for item in &items {
        assert_eq!(&stream[item.offset..item.offset + item.bytes.len()], &item.bytes[..]);
    }
}

#[test]
fn split_keeps_garbage() {
    let stream = "junk line\rmore junk\r\nMSH|^~\\&|A\rPID|1\rBTS|1\rtrailing junk\r";
    let parts = split_str(stream);
    let texts: Vec<&str> = parts.iter().map(|p| p.1).collect();
    assert_eq!(texts, vec!["junk line\rmore junk", "MSH|^~\\&|A\rPID|1", "trailing junk"]);
    assert_eq!(parts[0].0, 0);
    // non-UTF-8 bytes pass through untouched
    let bytes = b"MSH|^~\\&|A\rPID|1||\xff\xfe\r";
    let items = split_all(bytes);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].bytes, &bytes[..bytes.len() - 1]);
}

/// A reader that hands out one byte at a time, to exercise chunk boundaries (CR | LF split).
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0[0];
        self.0 = &self.0[1..];
        Ok(1)
    }
}

#[test]
fn split_is_streaming_across_chunk_boundaries() {
    let stream = "\u{feff}MSH|^~\\&|A\r\nPID|1\r\n\r\nMSH|^~\\&|B\r\nPID|2\r\n";
    let whole = split_all(stream.as_bytes());
    let reader = std::io::BufReader::with_capacity(1, Trickle(stream.as_bytes()));
    let trickled: Vec<RawMessage> = MessageSplitter::new(reader).map(|r| r.unwrap()).collect();
    assert_eq!(whole, trickled);
    assert_eq!(whole.len(), 2);
    assert_eq!(whole[0].bytes, b"MSH|^~\\&|A\r\nPID|1");
}

#[test]
fn synthetic_corpus_splits_and_parses() {
    let script = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/synth.py");
    if !script.is_file() {
        println!("\n*** SKIPPED: ../shared/bench/synth.py not found ***\n");
        return;
    }
    for framing in ["newline", "mllp", "none"] {
        let out = std::env::temp_dir().join(format!("sluice-hl7v2-synth-{}-{framing}.hl7", std::process::id()));
        let status = std::process::Command::new("python3")
            .arg(&script)
            .args(["hl7", "--count", "200", "--framing", framing])
            .arg(&out)
            .status();
        match status {
            Ok(s) if s.success() => {}
            _ => {
                println!("\n*** SKIPPED: could not run python3 synth.py ***\n");
                return;
            }
        }
        let bytes = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        let items = split_all(&bytes);
        assert_eq!(items.len(), 200, "framing {framing}");
        for item in &items {
            let text = std::str::from_utf8(&item.bytes).unwrap();
            let m = parse_message(text).unwrap_or_else(|e| panic!("framing {framing} #{}: {e}", item.index));
            assert_eq!(encode(&m), text, "framing {framing} #{}", item.index);
        }
    }
}

#[test]
fn stray_lines_after_a_message_are_their_own_item() {
    let text = "MSH|^~\\&|A|B|||20240101||ADT^A01|1|P|2.5\rPID|1\r\n\n// *** a comment\nnot a segment either\n\
                MSH|^~\\&|A|B|||20240101||ADT^A01|2|P|2.5\rPID|1\rZZZ is prose\rPV1|1\r\nthe end\n";
    let items = split_str(text);
    let texts: Vec<&str> = items.iter().map(|(_, t)| *t).collect();
    assert_eq!(
        texts,
        [
            "MSH|^~\\&|A|B|||20240101||ADT^A01|1|P|2.5\rPID|1",
            "// *** a comment\nnot a segment either",
            // A non-segment line followed by more segments stays inside its message.
            "MSH|^~\\&|A|B|||20240101||ADT^A01|2|P|2.5\rPID|1\rZZZ is prose\rPV1|1",
            "the end",
        ]
    );
    // Every item is the exact range of the input at its offset: nothing lost or reordered.
    for (offset, t) in &items {
        assert_eq!(&text[*offset..*offset + t.len()], *t);
    }
    assert!(parse_message(texts[0]).is_ok());
    assert!(parse_message(texts[2]).is_err(), "prose inside a message still fails it");
}
