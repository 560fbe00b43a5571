//! A plan run over batch files, continuation messages and messages in several character sets:
//! envelope and continuation problems become DLQ records of their own, reassembled messages are
//! delivered as if sent whole, MSH-18 decides the character set under `encoding: auto`, and the
//! run still balances.

mod common;

use common::*;
use sluice_compiler::plan::*;
use sluice_runtime::{RunOptions, run, verify_audit_chain};

fn opts() -> RunOptions {
    RunOptions { fixed_clock: Some(CLOCK.into()), threads: Some(2), ..Default::default() }
}

fn pipeline(dir: &std::path::Path, pattern: &str, encoding: &str) -> Plan {
    let mut src = source("in", vec![p(dir, pattern)], "parse");
    if let ComponentKind::Source(s) = &mut src.kind {
        s.profile.encoding = encoding.into();
    }
    plan(
        "envelopes",
        dir,
        vec![src, patient_map("to_event", "in"), sink("out", input("to_event"), CANONICAL, p(dir, "out/o.jsonl"))],
    )
}

fn adt(control: &str, msh18: &str) -> String {
    let text = Adt { control, ..Default::default() }.text();
    text.replacen("|P|2.5.1", &format!("|P|2.5.1||||||{msh18}"), 1)
}

fn dlq_codes(dir: &std::path::Path) -> Vec<(String, String)> {
    lines(&p(dir, "out/dlq.jsonl"))
        .iter()
        .map(|e| (e["code"].as_str().unwrap().to_string(), e["findings"][0]["code"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn batches_continuations_and_charsets_balance() {
    let dir = temp_dir("envelopes");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let (a, b, c) = (adt("B1", ""), adt("B2", ""), adt("B3", ""));
    // A good batch file, and one whose BTS count is wrong and whose FTS is missing.
    std::fs::write(dir.join("in/1-good.hl7"), format!("FHS|^~\\&\rBHS|^~\\&\r{a}\r{b}\rBTS|2\rFTS|1\r")).unwrap();
    std::fs::write(dir.join("in/2-bad.hl7"), format!("FHS|^~\\&\rBHS|^~\\&\r{c}\rBTS|5\r")).unwrap();
    // A message cut in PV1-44 (the admit date) and sent in two parts, another message in between.
    let whole = adt("C1", "");
    let cut = whole.find("20240115080000").unwrap() + 6;
    let part1 = format!("{}\rADD\rDSC|PTR-7|F", &whole[..cut]);
    let part2 =
        format!("MSH|^~\\&|SEND|FAC|RECV|FAC|20240115103000||ADT^A01|C1b|P|2.5.1||PTR-7\rADD|{}", &whole[cut..]);
    let between = adt("C2", "");
    std::fs::write(dir.join("in/3-continued.hl7"), format!("{part1}\r{between}\r{part2}\r")).unwrap();
    // A fragment whose continuation never comes.
    std::fs::write(dir.join("in/4-orphan.hl7"), format!("{}\rDSC|LOST", adt("C3", ""))).unwrap();
    // Character sets: Latin-1 as declared, UTF-8 declared as Latin-1 (a lie), an unsupported set.
    let latin1 = adt("L1", "8859/1").replace("DOE^JOHN", "M\u{dc}LLER^J\u{d6}RG");
    let latin1: Vec<u8> = latin1.chars().map(|ch| ch as u32 as u8).collect();
    let lying = adt("L2", "8859/1").replace("DOE^JOHN", "GARC\u{cd}A^ZO\u{cb}");
    let mut charsets = latin1;
    charsets.push(b'\r');
    charsets.extend_from_slice(lying.as_bytes());
    charsets.push(b'\r');
    charsets.extend_from_slice(adt("L3", "UNICODE UTF-32").as_bytes());
    std::fs::write(dir.join("in/5-charsets.hl7"), &charsets).unwrap();

    let plan = pipeline(&dir, "in/*.hl7", "auto");
    let s = run(&plan, &opts()).unwrap();
    // In: 2 + (1 + 1 envelope) + 2 (one reassembled) + 1 orphan + 3 = 11.
    assert_eq!((s.records.records_in, s.records.delivered, s.records.dlq, s.records.filtered), (11, 7, 4, 0), "{s:?}");
    assert!(s.balanced);
    let mut codes = dlq_codes(&dir);
    codes.sort();
    let want = [("RT108", "HL7012"), ("RT109", "HL7020"), ("RT109", "HL7021"), ("RT110", "HL7022")];
    assert_eq!(codes, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let dlq = lines(&p(&dir, "out/dlq.jsonl"));
    let count = dlq.iter().find(|e| e["findings"][0]["code"] == "HL7020").unwrap();
    assert_eq!(count["raw"], "BTS|5");
    assert!(count["reason"].as_str().unwrap().contains("says 5 but 1 messages"));
    let orphan = dlq.iter().find(|e| e["code"] == "RT110").unwrap();
    assert_eq!(orphan["raw"].as_str().unwrap(), format!("{}\rDSC|LOST", adt("C3", "")));
    for e in &dlq {
        assert!(!e["reason"].as_str().unwrap().contains("DOE"));
    }

    let out = lines(&p(&dir, "out/o.jsonl"));
    let by_id = |id: &str| out.iter().find(|r| r["metadata"]["message_id"] == id).unwrap().clone();
    // The reassembled message reads like the message sent whole.
    let joined = by_id("C1");
    assert_eq!(joined["encounter"], by_id("C2")["encounter"]);
    assert_eq!(joined["encounter"]["admit_date"], "2024-01-15T08:00:00-05:00");
    assert_eq!(joined["patient"], by_id("C2")["patient"]);
    assert_eq!(by_id("L1")["patient"]["name"], "J\u{d6}RG M\u{dc}LLER");
    assert_eq!(by_id("L2")["patient"]["name"], "ZO\u{cb} GARC\u{cd}A");
    assert_eq!(verify_audit_chain(p(&dir, "out/audit.jsonl")), Ok(s.records.records_in + 2));

    // A profile fixed to UTF-8 ignores MSH-18: the Latin-1 message goes to the DLQ with its offset,
    // and the unsupported MSH-18 no longer matters.
    let plan = pipeline(&dir, "in/5-charsets.hl7", "utf-8");
    let s = run(&plan, &opts()).unwrap();
    assert_eq!((s.records.records_in, s.records.delivered, s.records.dlq), (3, 2, 1));
    let dlq = lines(&p(&dir, "out/dlq.jsonl"));
    assert_eq!(dlq[0]["code"], "RT101");
    let at = charsets.iter().position(|&b| b == 0xdc).unwrap();
    assert!(dlq[0]["reason"].as_str().unwrap().contains(&format!("file offset {at}")), "{}", dlq[0]["reason"]);
}
