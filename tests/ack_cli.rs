//! `sluice ack` end to end on the bundled examples: one ACK per message with the right MSA-2,
//! AA/AE/AR as `sluice validate` judges the message, ERR locations, byte-identical output under
//! a fixed clock, enhanced mode, exit codes, and no patient data in the output.

use std::path::PathBuf;
use std::process::{Command, Output};

use sluice_hl7v2::codec::parse_message;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(root()).args(args).output().expect("sluice runs")
}

/// MSH-10 of every message of the file that has an MSH segment, in order.
fn control_ids(file: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&std::fs::read(root().join(file)).unwrap()).into_owned();
    text.split(['\r', '\n'])
        .filter(|l| l.starts_with("MSH|"))
        .map(|l| l.split('|').nth(9).unwrap().to_string())
        .collect()
}

const FIXED: &str = "2024-01-15T10:30:00Z";

#[test]
fn one_ack_per_message_parsing_back_with_msa2_and_err_locations() {
    let files = ["examples/hl7/feed-2024-01-15.hl7", "examples/hl7/rejects.hl7"];
    let out = sluice(&["ack", "--fixed-clock", FIXED, files[0], files[1]]);
    assert_eq!(out.status.code(), Some(1), "rejects.hl7 holds invalid messages");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let acks: Vec<&str> = stdout.lines().collect();
    let expected: Vec<String> = files.iter().flat_map(|f| control_ids(f)).collect();
    assert_eq!(acks.len(), expected.len(), "one ACK per message with an MSH: {stderr}");
    let mut codes = std::collections::BTreeMap::new();
    for (ack, id) in acks.iter().zip(&expected) {
        let m = parse_message(ack).unwrap_or_else(|e| panic!("the ACK parses back: {e}"));
        assert_eq!(m.message_type().as_deref().map(|t| t.starts_with("ACK^")), Some(true));
        assert_eq!(m.segments[0].field(7).and_then(|f| f.first()), Some("20240115103000+0000"));
        let msa = &m.segments[1];
        assert_eq!(msa.id, "MSA");
        assert_eq!(msa.field(2).and_then(|f| f.first()), Some(id.as_str()));
        let code = msa.field(1).and_then(|f| f.first()).unwrap().to_string();
        let errs = m.segments.iter().filter(|s| s.id == "ERR").count();
        assert_eq!(code == "AA", errs == 0, "AE/AR carry ERR segments, AA none: {ack}");
        *codes.entry(code).or_insert(0) += 1;
    }
    assert!(codes.get("AA").is_some_and(|n| *n > 30) && codes.get("AE").is_some_and(|n| *n > 5), "{codes:?}");
    // BAD0005 has a bad PID-7: ERR-2 locates it, ERR-3 is HL70357 102.
    let bad = acks.iter().find(|a| a.contains("MSA|AE|BAD0005")).unwrap();
    assert!(bad.contains("ERR||PID^1^7^1^1|102^Data type error^HL70357|E|HL7V301|||"), "{bad}");
    // rejects.hl7 starts with text that is no message: said on stderr, without its content.
    assert!(stderr.contains("no MSH segment, no acknowledgement can be built"), "{stderr}");
    // No patient name of the data in any output.
    for name in ["DOE", "SMITH", "JOHNSON"] {
        let in_data = std::fs::read_to_string(root().join(files[0])).unwrap().contains(name);
        if in_data {
            assert!(!stdout.contains(name) && !stderr.contains(name), "{name} leaked");
        }
    }
    // Byte-identical across runs under a fixed clock.
    let again = sluice(&["ack", "--fixed-clock", FIXED, files[0], files[1]]);
    assert_eq!(again.stdout, stdout.as_bytes());
}

#[test]
fn enhanced_mode_exit_codes_and_usage() {
    let feed = "examples/hl7/feed-2024-01-15.hl7";
    let out = sluice(&["ack", "--mode", "enhanced", "--fixed-clock", FIXED, feed]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    for ack in stdout.lines() {
        let m = parse_message(ack).unwrap();
        let code = m.segments[1].field(1).and_then(|f| f.first()).unwrap();
        assert!(["CA", "CE", "CR", "AA", "AE", "AR"].contains(&code));
    }
    assert!(stdout.lines().any(|l| l.contains("MSA|CA|")));
    // A file of valid messages only exits 0.
    let dir = std::env::temp_dir().join(format!("sluice-ack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.hl7");
    std::fs::write(&good, "MSH|^~\\&|A|B|C|D|20240115||ACK^A01^ACK|X1|P|2.5.1\rMSA|AA|Y1\r").unwrap();
    let out = sluice(&["ack", "--fixed-clock", FIXED, good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().next().unwrap(),
        format!(
            "MSH|^~\\&|C|D|A|B|20240115103000+0000||ACK^A01^ACK|{}|P|2.5.1\rMSA|AA|X1",
            sluice_hl7v2::ack::ack_control_id(
                "X1",
                &format!("{FIXED}|{}|0", good.display()),
                sluice_hl7v2::ack::AckKind::Application
            )
        )
    );
    // Unparseable (bad segment id): AR with what the MSH line gives.
    std::fs::write(&good, "MSH|^~\\&|A|B|C|D|20240115||ADT^A01|X2|P|2.5.1\rpid|1\rPV1|1\r").unwrap();
    let out = sluice(&["ack", "--fixed-clock", FIXED, good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let ack = String::from_utf8(out.stdout).unwrap();
    assert!(ack.contains("\rMSA|AR|X2\rERR|||100^Segment sequence error^HL70357|E|HL7004|||"), "{ack}");
    // A profile (as for `sluice validate`): its `unexpected_segments: fail` makes a Z-segment it
    // does not declare an error, so the message gets AE with the segment as the location.
    std::fs::write(&good, "MSH|^~\\&|A|B|C|D|20240115||ADT^A01^ADT_A01|X3|P|2.5.1\rEVN|A01|20240115\rPID|1||1^^^H^MR||N^G\rPV1|1|I\rZZZ|1\r").unwrap();
    let profile = "mappings/base/profiles/default.yaml";
    let out = sluice(&["ack", "--profile", profile, "--fixed-clock", FIXED, good.to_str().unwrap()]);
    let ack = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{ack}");
    assert!(ack.contains("\rMSA|AE|X3\rERR||ZZZ^1|100^Segment sequence error^HL70357|E|"), "{ack}");
    let out = sluice(&["ack", "--fixed-clock", FIXED, good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "without the profile the Z-segment is allowed");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(sluice(&["ack", "missing.hl7"]).status.code(), Some(2));
    assert_eq!(sluice(&["ack", "--mode", "both", feed]).status.code(), Some(2));
}
