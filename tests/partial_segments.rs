//! Partial processing of HL7 v2 messages (`bad_segments: drop` in the parser profile), through
//! the real binary: a message with stray lines among good segments is delivered without them,
//! with the fields after them; each dropped segment is in the DLQ on its own (its exact bytes,
//! encrypted), named by the record's audit entry and counted in the summary; `sluice dlq`
//! shows such an entry as a part and never replays it; no value reaches the console, the audit
//! or the DLQ's reasons. With the default profile (`reject`), the same message is rejected whole.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{dlq_raws, text, workspace};

const CLOCK: &str = "2024-01-01T00:00:00Z";

/// A stray line of free text holding a name and an SSN, and a segment with an invalid id.
const NOTE: &str = "Call GARBAGEPERSON back re SSN 987-65-4329";
const BAD_ID: &str = "P@D|1||55501^^^HOSP^MR||LEAKEDNAME^ONE";

fn feed() -> String {
    [
        "MSH|^~\\&|SENDAPP|CITY CLINIC|RECVAPP|RECVFAC|20240115103000||ADT^A01^ADT_A01|PART0001|P|2.5.1",
        "EVN|A01|20240115103000",
        NOTE,
        "PID|1||70020001^^^HOSP^MR||PARTIALNAME^KEPT^^^^^L||19800115|F|||1 MAIN ST^^SPRINGFIELD^IL^62701||||||||123-45-6789",
        BAD_ID,
        "PV1|1|I|WARD^101^A||||1234^DOC^ANNA|||MED||||||||V1001",
        "",
        "MSH|^~\\&|SENDAPP|CITY CLINIC|RECVAPP|RECVFAC|20240115103100||ADT^A04^ADT_A01|PART0002|P|2.5.1",
        "EVN|A04|20240115103100",
        "PID|1||70020002^^^HOSP^MR||CLEANNAME^TWO^^^^^L||19800116|M",
        "PV1|1|O",
        "",
        // MSH-2 too short: the whole message is unreadable, so it is rejected whole.
        "MSH|^~|SENDAPP|CITY CLINIC|RECVAPP|RECVFAC|20240115103200||ADT^A01|PART0003|P|2.5.1",
        "PID|1||70020003^^^HOSP^MR||UNREADABLE^THREE",
        "",
    ]
    .join("\r")
}

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().unwrap()
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The quick start pipeline reading only `examples/partial/*.hl7`, writing to `out/partial/`,
/// with the base profile and `bad_segments` set as given (`None`: left out, the default).
fn setup(name: &str, bad_segments: Option<&str>) -> common::Workspace {
    let dir = workspace(name);
    std::fs::create_dir_all(dir.join("examples/partial")).unwrap();
    std::fs::write(dir.join("examples/partial/feed.hl7"), feed()).unwrap();
    let profile = std::fs::read_to_string(dir.join("mappings/base/profiles/default.yaml")).unwrap();
    let profile = match bad_segments {
        Some(mode) => format!("{profile}bad_segments: {mode}\n"),
        None => profile,
    };
    std::fs::write(dir.join("mappings/base/profiles/partial.yaml"), profile).unwrap();
    let pipeline = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let pipeline = pipeline
        .replace("name: quickstart", "name: partial")
        .replace("../examples/hl7/*.hl7", "../examples/partial/*.hl7")
        .replace("profiles/default.yaml", "profiles/partial.yaml")
        .replace("out/quickstart/", "out/partial/");
    std::fs::write(dir.join("pipelines/partial.yaml"), pipeline).unwrap();
    dir
}

const PIPELINE: &str = "pipelines/partial.yaml";

/// No value of the data in `s`: the names and SSNs of the feed, and the dropped lines' text.
fn assert_no_phi(what: &str, s: &str) {
    for value in
        ["GARBAGEPERSON", "987-65-4329", "LEAKEDNAME", "PARTIALNAME", "CLEANNAME", "UNREADABLE", "123-45-6789", "P@D"]
    {
        assert!(!s.contains(value), "{what} holds `{value}`:\n{s}");
    }
}

#[test]
fn a_message_with_bad_segments_is_delivered_without_them_and_they_are_in_the_dlq() {
    let dir = setup("partial-drop", Some("drop"));
    let check = sluice(&dir, &["check", PIPELINE]);
    assert!(check.status.success(), "{}{}", text(&check.stdout), text(&check.stderr));

    let run = sluice(&dir, &["run", PIPELINE, "--fixed-clock", CLOCK, "--summary", "json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let s: serde_json::Value = serde_json::from_str(text(&run.stdout).trim()).unwrap();
    let counts = ["records_in", "delivered", "dlq", "filtered", "parts_dropped"].map(|k| s[k].as_u64().unwrap());
    assert_eq!(counts, [3, 2, 1, 0, 2], "{s}");
    assert_eq!(s["balanced"], true);
    assert_no_phi("the run's stderr", &text(&run.stderr));

    // The delivered record has the fields after the dropped segments, and says what was dropped.
    let out = dir.join("out/partial");
    let sink = lines(&out.join("patient-events.jsonl"));
    assert_eq!(sink.len(), 2);
    let first = &sink[0];
    assert_eq!(first["metadata"]["message_id"], "PART0001");
    assert_eq!(first["patient"]["id"], "70020001", "PID-3, after the first dropped line");
    assert_eq!(first["patient"]["dob"], "1980-01-15", "PID-7");
    assert_eq!(first["metadata"]["validation_status"], "warning");
    let warnings: Vec<(&str, &str)> = first["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["code"].as_str().unwrap(), w["path"].as_str().unwrap()))
        .collect();
    assert_eq!(warnings, [("RT114", "segment 3"), ("RT114", "segment 5")]);
    assert_eq!(sink[1]["metadata"]["message_id"], "PART0002");
    assert_eq!(sink[1]["warnings"], serde_json::json!([]));

    // The DLQ: the unreadable message whole, then the two segments, each on its own, encrypted.
    let feed = feed();
    let at = |line: &str| feed.find(line).unwrap() as u64;
    let dlq = lines(&out.join("dlq.jsonl"));
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    let record_id = first["compliance"]["audit_log_id"].as_str().unwrap().to_string();
    let parts: Vec<&serde_json::Value> = dlq.iter().filter(|e| e.get("part").is_some()).collect();
    assert_eq!(parts.len(), 2);
    for (e, (segment, line)) in parts.iter().zip([(3, NOTE), (5, BAD_ID)]) {
        assert_eq!(e["id"], format!("{record_id}.seg{segment}"));
        assert_eq!(e["stage"], "hl7_files");
        assert_eq!(e["code"], "HL7004");
        assert_eq!(e["offset"].as_u64(), Some(at(line)), "the segment's own offset in the file");
        assert_eq!(e["message_index"], 0);
        assert_eq!(e["raw_encoding"], "aes-256-gcm");
        let part = &e["part"];
        assert_eq!(
            (&part["kind"], &part["record"], &part["message_id"], &part["segment"], &part["message_offset"]),
            (&"segment".into(), &record_id.clone().into(), &"PART0001".into(), &segment.into(), &0.into())
        );
        assert_no_phi("a DLQ reason", &format!("{} {}", e["reason"], e["findings"]));
        assert!(e["reason"].as_str().unwrap().contains(&format!("segment {segment}")), "{e}");
    }
    let whole = dlq.iter().find(|e| e.get("part").is_none()).unwrap();
    assert_eq!(whole["code"], "HL7002");
    let raws = dlq_raws(&out.join("dlq.jsonl"));
    let raw_of = |id: &serde_json::Value| raws[dlq.iter().position(|e| &e["id"] == id).unwrap()].clone();
    assert_eq!(raw_of(&parts[0]["id"]), NOTE, "exactly the dropped line's bytes");
    assert_eq!(raw_of(&parts[1]["id"]), BAD_ID);
    assert!(raw_of(&whole["id"]).starts_with("MSH|^~|"), "a rejected message keeps all its bytes");

    // The audit: the chain verifies; the record is delivered, with what it went on without.
    let audit_path = out.join("audit.jsonl");
    let verify = sluice(&dir, &["audit", "verify", audit_path.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    let audit = lines(&audit_path);
    let entry = audit.iter().find(|e| e["message_id"] == "PART0001").unwrap();
    assert_eq!(entry["event"], "delivered");
    let expected = serde_json::json!([
        {"segment": 3, "offset": at(NOTE), "code": "HL7004", "dlq": format!("{record_id}.seg3")},
        {"segment": 5, "offset": at(BAD_ID), "code": "HL7004", "dlq": format!("{record_id}.seg5")},
    ]);
    assert_eq!(entry["dropped"], expected);
    assert!(audit.iter().filter(|e| e["message_id"] != "PART0001").all(|e| e.get("dropped").is_none()));
    let completed = audit.last().unwrap();
    assert_eq!((&completed["event"], &completed["parts_dropped"]), (&"run_completed".into(), &2.into()));
    assert_eq!(completed["balanced"], true);
    assert_no_phi("the audit log", &std::fs::read_to_string(&audit_path).unwrap());

    // The text summary counts the dropped segments apart from the balance.
    let again = sluice(&dir, &["run", PIPELINE, "--fixed-clock", CLOCK, "--restart"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let summary = text(&again.stdout);
    assert!(summary.contains("in 3 = delivered 2 + dlq 1 + filtered 0 (balanced)"), "{summary}");
    assert!(summary.contains("2 segments dropped from records that went on"), "{summary}");
    assert_no_phi("the run's stdout", &summary);

    // `dlq list` shows the parts as such; `show` says the entry is no message.
    let list = sluice(&dir, &["dlq", "list", PIPELINE]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed = text(&list.stdout);
    assert!(listed.contains(&format!("dropped segment 3 of {record_id}")), "{listed}");
    assert!(
        listed.contains("1 record in the DLQ, 1 pending replay; 2 segments dropped from records that went on"),
        "{listed}"
    );
    assert_no_phi("dlq list", &listed);
    let part_id = format!("{record_id}.seg3");
    let show = sluice(&dir, &["dlq", "show", PIPELINE, &part_id]);
    assert!(show.status.success());
    assert!(text(&show.stderr).contains("not a whole message"), "{}", text(&show.stderr));
    assert_no_phi("dlq show", &text(&show.stdout));
    let show_raw = sluice(&dir, &["dlq", "show", PIPELINE, &part_id, "--raw"]);
    assert!(text(&show_raw.stdout).contains("GARBAGEPERSON"), "--raw prints the segment");

    // A part is never replayed: named, the replay refuses and changes nothing; replaying
    // everything pending skips the parts and replays the one message.
    let dlq_before = std::fs::read(out.join("dlq.jsonl")).unwrap();
    let refused = sluice(&dir, &["dlq", "replay", PIPELINE, &part_id, "--fixed-clock", CLOCK]);
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(err.starts_with("error[RT025]") && err.contains("not a whole message"), "{err}");
    assert_eq!(std::fs::read(out.join("dlq.jsonl")).unwrap(), dlq_before, "nothing replayed");
    let all = sluice(&dir, &["dlq", "replay", PIPELINE, "--summary", "json", "--fixed-clock", CLOCK]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let r: serde_json::Value = serde_json::from_str(text(&all.stdout).trim()).unwrap();
    assert_eq!((r["replayed"].as_u64(), r["skipped_parts"].as_u64(), r["dlq"].as_u64()), (Some(1), Some(2), Some(1)));
    let human = sluice(&dir, &["dlq", "replay", PIPELINE, "--fixed-clock", CLOCK]);
    assert!(text(&human.stdout).contains("skipped 2 DLQ entries"), "{}", text(&human.stdout));
}

#[test]
fn by_default_a_bad_segment_still_rejects_the_whole_message() {
    let dir = setup("partial-reject", None);
    let run = sluice(&dir, &["run", PIPELINE, "--fixed-clock", CLOCK, "--summary", "json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let s: serde_json::Value = serde_json::from_str(text(&run.stdout).trim()).unwrap();
    let counts = ["records_in", "delivered", "dlq", "parts_dropped"].map(|k| s[k].as_u64().unwrap());
    assert_eq!(counts, [3, 1, 2, 0], "{s}");
    let out = dir.join("out/partial");
    let dlq = lines(&out.join("dlq.jsonl"));
    assert_eq!(dlq.iter().map(|e| e["code"].as_str().unwrap()).collect::<Vec<_>>(), ["HL7004", "HL7002"]);
    assert!(dlq.iter().all(|e| e.get("part").is_none()));
    let raws = dlq_raws(&out.join("dlq.jsonl"));
    assert!(raws[0].contains(NOTE) && raws[0].contains("PARTIALNAME"), "the whole message");
    let audit = lines(&out.join("audit.jsonl"));
    assert!(audit.iter().all(|e| e.get("dropped").is_none() && e.get("parts_dropped").is_none()));
}

#[test]
fn an_unknown_bad_segments_policy_is_refused_by_check() {
    let dir = setup("partial-typo", Some("skip"));
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(1));
    let out = text(&check.stdout) + &text(&check.stderr);
    assert!(out.contains("SL203") && out.contains("bad_segments"), "{out}");
}
