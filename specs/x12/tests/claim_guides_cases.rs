//! The institutional (837I, 005010X223A2) and dental (837D, 005010X224A2) claim guides: the
//! synthetic fixtures in `tests/fixtures/x12/claims/` validate cleanly and every segment finds
//! its loop (2310 vs 2420 provider names, repeated 2320 other-subscriber loops, 2330 other-payer
//! providers), one change gives the finding it should without the data in its message, the A3
//! errata version reads with the A2 structure, and the 999 of each validates against the 999
//! guide.

mod common;

use sluice_x12::ack::{AckOptions, acknowledge};
use sluice_x12::envelope::Severity;

use common::{check, codes, findings, fixture, loop_of, placed};

/// (segment id with its first element, loop id) of every segment of the file's first set.
fn loops(text: &str, guide: &str) -> Vec<(String, String)> {
    placed(text, guide).0
}

#[test]
fn the_synthetic_claims_validate_cleanly_against_their_guides() {
    for (name, guide) in [("institutional-837i.x12", "005010X223A2"), ("dental-837d.x12", "005010X224A2")] {
        let res = check(&fixture(name));
        assert_eq!(codes(&fixture(name)), [], "{name}");
        assert_eq!(res[0].accepted_sets(), 1, "{name}");
        assert_eq!(res[0].groups[0].sets[0].guide, guide);
    }
}

#[test]
fn institutional_provider_names_and_other_payers_find_their_loops() {
    let all = loops(&fixture("institutional-837i.x12"), "005010X223A2");
    // Claim-level providers (2310) come before the lines; the same qualifiers after an LX are
    // the line's (2420): NM1*72 is 2310B before the lines and 2420A after one.
    assert_eq!(loop_of(&all, "NM1*71", 0), "2310A");
    assert_eq!(loop_of(&all, "PRV*AT", 0), "2310A");
    assert_eq!(loop_of(&all, "NM1*72", 0), "2310B");
    assert_eq!(loop_of(&all, "NM1*72", 1), "2420A");
    assert_eq!(loop_of(&all, "NM1*82", 0), "2420C");
    // Two other subscribers: 2320 twice, each with its own 2330A/2330B; an attending NM1 after
    // the second other payer is that payer's attending provider (2330C), not 2310A.
    assert_eq!(all.iter().filter(|(s, l)| s.starts_with("SBR") && l == "2320").count(), 2);
    assert_eq!(loop_of(&all, "NM1*IL", 1), "2330A");
    assert_eq!(loop_of(&all, "NM1*IL", 2), "2330A");
    assert_eq!(loop_of(&all, "NM1*PR", 2), "2330B");
    assert_eq!(loop_of(&all, "NM1*71", 1), "2330C");
    assert_eq!(loop_of(&all, "REF*G2", 0), "2330C");
    // The dependent's claim is under 2000C, its attending provider 2310A again.
    assert_eq!(loop_of(&all, "NM1*QC", 0), "2010CA");
    assert_eq!(loop_of(&all, "NM1*71", 2), "2310A");
    assert_eq!(loop_of(&all, "SV2*0510", 0), "2400");
    // Every HI segment of the claim is a 2300 segment, each at its own place.
    assert!(all.iter().filter(|(s, _)| s.starts_with("HI*")).all(|(_, l)| l == "2300"));
}

#[test]
fn dental_lines_and_teeth_find_their_loops() {
    let all = loops(&fixture("dental-837d.x12"), "005010X224A2");
    assert_eq!(loop_of(&all, "NM1*82", 0), "2310B");
    assert_eq!(loop_of(&all, "TOO*JP", 2), "2400");
    assert_eq!(loop_of(&all, "DN1*24", 0), "2300");
    assert_eq!(all.iter().filter(|(s, l)| s.starts_with("SV3") && l == "2400").count(), 4);
}

#[test]
fn one_change_one_finding_without_the_data() {
    let inst = fixture("institutional-837i.x12");
    // The statement dates are required in 2300.
    let bad = inst.replace("DTP*434*RD8*20240210-20240213~\n", "").replace("SE*74*", "SE*73*");
    assert_ne!(bad, inst);
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12054" && m.contains("DTP") && m.contains("2300")), "{f:?}");
    // A revenue-code line's unit must be DA or UN.
    let bad = inst.replace("SV2*0450*HC:99284*850.75*UN*1~", "SV2*0450*HC:99284*850.75*XX*1~");
    let f = codes(&bad);
    assert_eq!(f, [("X12062", "SV204 is not one of the guide's codes (loop 2400)".to_string())]);
    // The 837I does not use CLM06; the admission type is a CL1 code.
    let bad = inst.replace("CLM*INSTCLAIM01*1250.75***11:A:1**A*Y*Y~", "CLM*INSTCLAIM01*1250.75***11:A:1*Y*A*Y*Y~");
    assert_eq!(codes(&bad), [("X12058", "CLM06 is not used by this implementation guide (loop 2300)".to_string())]);
    // Statement dates that are not a range; the message names the element, not the value.
    let bad = inst.replace("DTP*434*RD8*20240210-20240213~", "DTP*434*RD8*20240210~");
    let f = findings(&check(&bad));
    assert_eq!(f.iter().map(|f| f.code).collect::<Vec<_>>(), ["X12063"]);
    assert!(!f[0].message.contains("20240210"), "{}", f[0].message);
    // Dental: a tooth surface outside the code list; an SV3 without its procedure.
    let dent = fixture("dental-837d.x12");
    let bad = dent.replace("TOO*JP*19*M:O~", "TOO*JP*19*M:Q~");
    assert_eq!(codes(&bad), [("X12062", "TOO03-2 is not one of the guide's codes (loop 2400)".to_string())]);
    let bad = dent.replace("SV3*AD:D1110*120****1~", "SV3**120****1~");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12057" && m.starts_with("SV301")), "{f:?}");
    assert!(findings(&check(&bad)).iter().all(|f| f.severity != Severity::Info || f.code != "X12051"));
}

#[test]
fn the_a3_errata_version_reads_with_the_a2_structure() {
    let text = fixture("institutional-837i.x12").replace("005010X223A2", "005010X223A3");
    let res = check(&text);
    assert_eq!(codes(&text), []);
    assert_eq!(res[0].groups[0].sets[0].guide, "005010X223A3", "the set keeps the version it names");
    // An 837 version with no bundled structure is still a clear X12051.
    let other = fixture("institutional-837i.x12").replace("005010X223A2", "005010X223A9");
    let f = codes(&other);
    assert!(f.iter().any(|(c, m)| *c == "X12051" && m.contains("837 version 005010X223A9")), "{f:?}");
}

#[test]
fn the_999_of_each_claim_guide_validates() {
    let options = AckOptions {
        date: "20240302".into(),
        time: "0800".into(),
        interchange_control: 9,
        group_control: 1,
        delimiters: None,
    };
    let inst = fixture("institutional-837i.x12");
    let dent = fixture("dental-837d.x12");
    let broken = inst.replace("SV2*0450*HC:99284*850.75*UN*1~", "SV2*0450*HC:99284*850.75*XX*1~");
    for (text, accepted) in [(inst, true), (dent, true), (broken, false)] {
        let res = check(&text);
        let ack = acknowledge(&res[0], &options).unwrap();
        let want = if accepted { "IK5*A~" } else { "IK5*R*" };
        assert!(ack.contains(want), "{ack}");
        if !accepted {
            assert!(ack.contains("IK3*SV2*"), "{ack}");
            assert!(ack.contains("*2400*"), "{ack}");
        }
        assert_eq!(codes(&ack), [], "{ack}");
    }
}
