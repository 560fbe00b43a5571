//! Acknowledgments: TA1 for envelope errors, 999 for 5010 groups, 997 for 4010 groups; every
//! acknowledgment is itself a clean interchange.

use sluice_x12::ack::{AckOptions, acknowledge};
use sluice_x12::envelope::{InterchangeResult, Mode, check_stream};

const ISA_5010: &str =
    "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240115*1030*^*00501*000000001*0*P*:~";

fn options() -> AckOptions {
    AckOptions {
        date: "20240116".into(),
        time: "0900".into(),
        interchange_control: 77,
        group_control: 5,
        delimiters: None,
    }
}

fn one(text: &str) -> InterchangeResult {
    let mut all = check_stream(text.as_bytes(), Mode::Strict).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn segments(ack: &str) -> Vec<&str> {
    ack.lines().map(|l| l.trim_end_matches('~')).collect()
}

/// The acknowledgment is a clean interchange: no finding from the same checker (but the note
/// that a TA1 is there).
fn assert_clean(ack: &str) {
    let ic = one(ack);
    assert!(ic.findings.iter().all(|f| f.code == "X12050"), "{ack}\n{:?}", ic.findings);
    for g in &ic.groups {
        assert!(g.findings.is_empty(), "{ack}\n{:?}", g.findings);
        for s in &g.sets {
            assert!(s.findings.is_empty(), "{ack}\n{:?}", s.findings);
        }
    }
}

fn group(version: &str, sets: &[&str]) -> String {
    format!("GS*HC*SUB*REC*20240115*1030*12*X*{version}~{}GE*{}*12~", sets.concat(), sets.len())
}

#[test]
fn accepted_and_rejected_sets_in_a_999() {
    let good = "ST*837*0001*005010X222A1~BHT*0019*00*1*20240115*1030*CH~SE*3*0001~";
    let bad_count = "ST*837*0002*005010X222A1~BHT*0019*00*1*20240115*1030*CH~SE*9*0002~";
    let text = format!("{ISA_5010}{}IEA*1*000000001~", group("005010X222A1", &[good, bad_count]));
    let ack = acknowledge(&one(&text), &options()).unwrap();
    assert_clean(&ack);
    let segs = segments(&ack);
    assert!(
        segs[0].starts_with(
            "ISA*00*          *00*          *ZZ*RECEIVER       *ZZ*SUBMITTER      *240116*0900*^*00501*000000077*0*P*:"
        ),
        "{ack}"
    );
    assert_eq!(
        segs[1..],
        [
            "GS*FA*RECEIVER*SUBMITTER*20240116*0900*5*X*005010X231A1",
            "ST*999*0001*005010X231A1",
            "AK1*HC*12*005010X222A1",
            "AK2*837*0001*005010X222A1",
            "IK5*A",
            "AK2*837*0002*005010X222A1",
            "IK5*R*4",
            "AK9*P*2*2*1",
            "SE*8*0001",
            "GE*1*5",
            "IEA*1*000000077",
        ]
    );
}

#[test]
fn a_4010_group_gets_a_997_and_group_errors_reach_ak9() {
    let isa = ISA_5010.replace("*^*00501*", "*U*00401*");
    let set = "ST*837*0001~BHT*0019*00*1*20240115*1030*CH~SE*3*0001~";
    let text = format!("{isa}{}IEA*1*000000001~", group("004010X098A1", &[set]).replace("GE*1*12", "GE*2*12"));
    let ack = acknowledge(&one(&text), &options()).unwrap();
    assert_clean(&ack);
    let segs = segments(&ack);
    assert_eq!(segs[2..8], ["ST*997*0001", "AK1*HC*12", "AK2*837*0001", "AK5*A", "AK9*R*1*1*0*5", "SE*6*0001"]);
    assert!(segs[0].contains("*U*00401*"));
}

#[test]
fn envelope_errors_get_a_ta1_and_no_functional_ack() {
    let set = "ST*837*0001*005010X222A1~SE*2*0001~";
    let text = format!("{ISA_5010}{}IEA*1*000000009~", group("005010X222A1", &[set]));
    let ack = acknowledge(&one(&text), &options()).unwrap();
    assert_clean(&ack);
    assert_eq!(segments(&ack)[1..], ["TA1*000000001*240115*1030*R*001", "IEA*0*000000077"]);
}

#[test]
fn stray_bytes_get_no_acknowledgment() {
    let all = check_stream(&b"not an interchange"[..], Mode::Strict).unwrap();
    assert_eq!(acknowledge(&all[0], &options()), None);
}
