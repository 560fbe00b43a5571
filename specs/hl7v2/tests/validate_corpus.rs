//! `validate` over every message of the shared HL7 v2 corpus (skipped, loudly, when the corpus
//! is not checked out next to the workspace), and a property test that `validate` never panics
//! on parsed arbitrary messages.
//!
//! The corpus test asserts no panic and prints, per source, how many messages have errors and
//! which codes: real messages have real problems, so it does not assert zero. It does assert
//! that most messages of a bundled structure match it (structure codes are rare); if they did
//! not, the structures would be wrong, not the corpus.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_hl7v2::codec::parse_message;
use sluice_hl7v2::split::MessageSplitter;
use sluice_hl7v2::validate::{Options, Severity, validate};

#[derive(Default)]
struct Tally {
    messages: usize,
    with_errors: usize,
    structure_checked: usize,
    structure_errors: usize,
    codes: BTreeMap<&'static str, usize>,
}

const STRUCTURE_CODES: &[&str] = &["HL7V101", "HL7V102", "HL7V103", "HL7V104", "HL7V105"];

#[test]
fn corpus_validates_without_panic() {
    let Some((dir, files)) = common::hl7_corpus() else {
        return;
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let verbose = std::env::var_os("SLUICE_VALIDATE_VERBOSE").is_some();
    for file in &files {
        let rel = file.strip_prefix(&dir).unwrap_or(file);
        let source = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        let tally = tallies.entry(source).or_default();
        let bytes = std::fs::read(file).expect("read corpus file");
        for item in MessageSplitter::new(bytes.as_slice()) {
            let item = item.expect("in-memory read cannot fail");
            let Ok(text) = std::str::from_utf8(&item.bytes) else {
                continue;
            };
            let Ok(msg) = parse_message(text) else {
                continue;
            };
            tally.messages += 1;
            let findings = validate(&msg, &Options::default());
            if findings.iter().any(|f| f.severity == Severity::Error) {
                tally.with_errors += 1;
            }
            if !findings.iter().any(|f| f.code == "HL7V001") {
                tally.structure_checked += 1;
                if findings.iter().any(|f| STRUCTURE_CODES.contains(&f.code)) {
                    tally.structure_errors += 1;
                }
            }
            for f in &findings {
                if f.severity == Severity::Error {
                    *tally.codes.entry(f.code).or_default() += 1;
                }
                if verbose && STRUCTURE_CODES.contains(&f.code) {
                    println!("  {} #{} {} {}: {}", rel.display(), item.index + 1, f.code, f.path, f.message);
                }
            }
        }
    }
    println!("\nvalidate over the HL7 v2 corpus (errors only; SLUICE_VALIDATE_VERBOSE=1 lists structure findings):");
    let (mut checked, mut structure_errors) = (0, 0);
    for (source, t) in &tallies {
        let codes: Vec<String> = t.codes.iter().map(|(c, n)| format!("{c}x{n}")).collect();
        println!(
            "  {source}: {} messages, {} with errors; structure checked for {}, {} with structure errors; {}",
            t.messages,
            t.with_errors,
            t.structure_checked,
            t.structure_errors,
            codes.join(" ")
        );
        checked += t.structure_checked;
        structure_errors += t.structure_errors;
    }
    assert!(checked > 0, "no corpus message had a bundled structure");
    assert!(
        structure_errors * 4 <= checked,
        "{structure_errors} of {checked} structure-checked messages fail it: the structures are probably wrong"
    );
}

/// Segments of plausible ids, in any order, with fields of arbitrary text.
fn message() -> impl Strategy<Value = String> {
    let ids = proptest::sample::select(vec![
        "PID", "PV1", "PV2", "OBR", "OBX", "ORC", "NTE", "EVN", "NK1", "AL1", "DG1", "SPM", "TQ1", "MRG", "ZPI", "SCH",
        "RGS", "AIS", "TXA", "IN1", "GT1", "PR1", "ROL", "FT1", "RXA", "MSA", "ERR", "MSH", "XYZ",
    ]);
    let field = proptest::string::string_regex("[A-Za-z0-9^~&\\\\ .+\\-\"]{0,12}").unwrap();
    let segment =
        (ids, proptest::collection::vec(field, 0..14)).prop_map(|(id, fields)| format!("{id}|{}", fields.join("|")));
    let types = proptest::sample::select(vec![
        "ADT^A01",
        "ADT^A04^ADT_A01",
        "ADT^A17",
        "ADT^A40",
        "ORU^R01",
        "ORU^R01^ORU_R01",
        "ORM^O01",
        "OML^O21",
        "MDM^T02",
        "SIU^S12",
        "DFT^P03",
        "VXU^V04",
        "ACK^A01",
        "ACK",
        "",
        "ZZZ^Z01^BOGUS",
    ]);
    let versions =
        proptest::sample::select(vec!["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.9", "", "x"]);
    (types, versions, proptest::collection::vec(segment, 0..25)).prop_map(|(t, v, segs)| {
        let mut m = format!("MSH|^~\\&|A|B|C|D|20240101||{t}|ID|P|{v}");
        for s in segs {
            m.push('\r');
            m.push_str(&s);
        }
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn validate_never_panics(text in message(), strict in any::<bool>()) {
        if let Ok(msg) = parse_message(&text) {
            let options = Options {
                lengths: strict,
                z_segments: if strict { Some(vec!["ZPI".into()]) } else { None },
                ..Options::default()
            };
            let findings = validate(&msg, &options);
            for f in &findings {
                prop_assert!(f.segment >= 1 && f.segment <= msg.segments.len(), "{f:?}");
                prop_assert!(f.code.starts_with("HL7V"));
            }
        }
    }
}
