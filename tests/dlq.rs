//! `sluice dlq list | show | replay` through the real binary, on the quick start: a fix to a
//! rule, then a replay that delivers the fixed record and sends the others to the DLQ again;
//! a replay that fails is undone, one that was killed is undone before the next; raw messages
//! are encrypted, and bytes that are not UTF-8 come back exactly.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{text, workspace};

const CLOCK: &str = "2024-01-01T00:00:00Z";

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().unwrap()
}

fn list(dir: &Path) -> Vec<serde_json::Value> {
    let out = sluice(dir, &["dlq", "list", "pipelines/quickstart.yaml", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn replay(dir: &Path, ids: &[&str]) -> Output {
    let mut args = vec!["dlq", "replay", "pipelines/quickstart.yaml", "--summary", "json", "--fixed-clock", CLOCK];
    args.extend_from_slice(ids);
    sluice(dir, &args)
}

fn error_code(out: &Output) -> String {
    let err = text(&out.stderr);
    err.strip_prefix("error[").and_then(|e| e.split(']').next()).unwrap_or_default().to_string()
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn run_quickstart(dir: &Path) {
    let out = sluice(dir, &["run", "pipelines/quickstart.yaml", "--fixed-clock", CLOCK]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn fix_a_rule_then_replay_delivers_the_fixed_record_and_keeps_the_rest() {
    let dir = workspace("dlq-replay");
    run_quickstart(&dir);
    let out = dir.join("out/quickstart");
    let pending = list(&dir);
    assert_eq!(pending.len(), 6, "the six rejected messages of rejects.hl7");
    assert!(pending.iter().all(|r| r["status"] == "pending"));
    let gender = pending.iter().find(|r| r["reason"].as_str().unwrap().contains("gender")).unwrap();
    let gender_id = gender["id"].as_str().unwrap().to_string();

    // `show` gives the findings and the size of the message, not the message.
    let shown = sluice(&dir, &["dlq", "show", "pipelines/quickstart.yaml", &gender_id]);
    assert!(shown.status.success());
    assert!(text(&shown.stdout).contains("\"raw_bytes\"") && !text(&shown.stdout).contains("TESTPATIENT"));
    let with_raw = sluice(&dir, &["dlq", "show", "pipelines/quickstart.yaml", &gender_id, "--raw"]);
    assert!(text(&with_raw.stdout).contains("BADGENDER"), "--raw prints the message");

    // The fix: `Q` becomes an accepted gender code. The plan changes; the replay uses it.
    let rules = dir.join("mappings/base/rules/patient-event.yaml");
    let spec = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(&rules, spec.replace("in: [M, F, O, U, A, N]", "in: [M, F, O, U, A, N, Q]")).unwrap();
    let sink_before = lines(&out.join("patient-events.jsonl")).len();
    let replayed = replay(&dir, &[]);
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    let s: serde_json::Value = serde_json::from_str(text(&replayed.stdout).trim()).unwrap();
    assert_eq!((s["replayed"].as_u64(), s["delivered"].as_u64(), s["dlq"].as_u64()), (Some(6), Some(1), Some(5)));

    let sink = lines(&out.join("patient-events.jsonl"));
    assert_eq!(sink.len(), sink_before + 1, "appended, not rewritten");
    assert_eq!(sink.last().unwrap()["metadata"]["message_id"], "BAD0002");
    // One chain: the run (run_started, 66 records, run_completed), then the replay
    // (dlq_replay_started, 6 records, dlq_replay_completed).
    let audit = out.join("audit.jsonl");
    assert_eq!(sluice_runtime::verify_audit_chain(&audit), Ok(68 + 8));
    let entries = lines(&audit);
    assert_eq!(entries.last().unwrap()["event"], "dlq_replay_completed");
    assert_eq!(entries.last().unwrap()["records_in"], 6);

    let after = list(&dir);
    assert_eq!(after.len(), 11, "6 replayed + 5 new entries for the records that failed again");
    let status_of = |id: &str| after.iter().find(|r| r["id"] == id).unwrap()["status"].clone();
    assert_eq!(status_of(&gender_id), "replayed: delivered");
    assert_eq!(after.iter().filter(|r| r["status"] == "replayed: dlq").count(), 5);
    assert_eq!(after.iter().filter(|r| r["status"] == "pending").count(), 5);

    // A replayed id is refused, and so is an unknown one.
    assert_eq!(error_code(&replay(&dir, &[&gender_id])), "RT017");
    assert_eq!(error_code(&replay(&dir, &["nope-1"])), "RT017");
    // Replaying one pending id replays that one only.
    let one = after.iter().find(|r| r["status"] == "pending").unwrap()["id"].as_str().unwrap().to_string();
    let single = replay(&dir, &[&one]);
    assert!(single.status.success(), "{}", text(&single.stderr));
    let s: serde_json::Value = serde_json::from_str(text(&single.stdout).trim()).unwrap();
    assert_eq!(s["replayed"], 1);
    assert_eq!(list(&dir).iter().filter(|r| r["status"] == "pending").count(), 5, "4 left + its new entry");

    // No patient data in what the commands print (without --raw).
    let listed = text(&sluice(&dir, &["dlq", "list", "pipelines/quickstart.yaml"]).stdout);
    for printed in [listed, text(&replayed.stdout), text(&shown.stdout)] {
        assert!(!printed.contains("TESTPATIENT") && !printed.contains("BADGENDER"), "{printed}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_replay_that_fails_is_undone_and_its_records_stay_pending() {
    let dir = workspace("dlq-undo");
    run_quickstart(&dir);
    let out = dir.join("out/quickstart");
    let len = |f: &str| std::fs::metadata(out.join(f)).unwrap().len();
    let (dlq_before, audit_before) = (len("dlq.jsonl"), len("audit.jsonl"));
    // The sink's disk is full for the replay.
    let sink = out.join("patient-events.jsonl");
    let kept = std::fs::read(&sink).unwrap();
    std::fs::remove_file(&sink).unwrap();
    std::os::unix::fs::symlink("/dev/full", &sink).unwrap();
    // And a crash had left a partial line at the end of the DLQ.
    let mut f = std::fs::OpenOptions::new().append(true).open(out.join("dlq.jsonl")).unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\":\"torn").unwrap();
    drop(f);
    let failed = replay(&dir, &[]);
    assert_eq!(error_code(&failed), "RT003", "{}", text(&failed.stderr));
    assert_eq!((len("dlq.jsonl"), len("audit.jsonl")), (dlq_before, audit_before), "undone");
    assert!(list(&dir).iter().all(|r| r["status"] == "pending"), "nothing marked replayed");
    std::fs::remove_file(&sink).unwrap();
    std::fs::write(&sink, &kept).unwrap();

    // A replay killed before it completed (its row says `running`, its output is on disk):
    // the next replay undoes it first.
    {
        let target = sluice_compiler::plan::StateTarget {
            kind: "sqlite".into(),
            path: out.join("state.db").display().to_string(),
            url: None,
            checkpoint_every_ms: 1000,
        };
        let store = sluice_runtime::state::Store::open(&target, Some("quickstart")).unwrap();
        let lengths: Vec<(String, u64)> = ["patient-events.jsonl", "dlq.jsonl", "audit.jsonl"]
            .iter()
            .map(|f| (format!("out/quickstart/{f}"), len(f)))
            .collect();
        store.begin_replay("killed", "quickstart", CLOCK, &lengths).unwrap();
    }
    let mut dlq = std::fs::OpenOptions::new().append(true).open(out.join("dlq.jsonl")).unwrap();
    std::io::Write::write_all(&mut dlq, b"{\"id\":\"half-written").unwrap();
    drop(dlq);
    let after_kill = replay(&dir, &[]);
    assert!(after_kill.status.success(), "{}", text(&after_kill.stderr));
    let s: serde_json::Value = serde_json::from_str(text(&after_kill.stdout).trim()).unwrap();
    assert_eq!(s["undid_incomplete_replay"], true);
    assert_eq!(s["replayed"], 6);
    assert_eq!(sluice_runtime::verify_audit_chain(out.join("audit.jsonl")), Ok(68 + 8));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn raw_bytes_that_are_not_utf8_are_kept_exactly_and_replayed() {
    let dir = workspace("dlq-latin1");
    // An ISO 8859-1 message (É is one byte, 0xC9) with a gender code the rules refuse.
    let mut msg = b"MSH|^~\\&|SENDAPP|CLINIC|RECVAPP|FAC|20240115103000||ADT^A01^ADT_A01|LATIN1|P|2.5.1||||||8859/1\r\
EVN|A01|20240115103000\rPID|1||777^^^HOSP^MR||\xc9LODIE^ZO\xc9||19800115|Q\rPV1|1|I\r"
        .to_vec();
    msg.extend_from_slice(b"\r\n");
    std::fs::write(dir.join("examples/hl7/latin1.hl7"), &msg).unwrap();
    run_quickstart(&dir);
    // Sealed in the DLQ; opened with the pipeline's key, the exact bytes.
    let entries = sluice_runtime::dlq::read_entries(&dir.join("out/quickstart/dlq.jsonl")).unwrap();
    let latin = entries.iter().find(|e| e.file.ends_with("latin1.hl7")).unwrap();
    assert_eq!(latin.raw_encoding.as_deref(), Some("aes-256-gcm"));
    let key =
        sluice_runtime::dlq::DlqKey::parse(&std::fs::read(dir.join("examples/dlq-example.key")).unwrap()).unwrap();
    // (The splitter keeps the message without the line breaks that end it.)
    let message = msg.strip_suffix(b"\r\r\n").unwrap();
    assert_eq!(latin.raw_bytes(Some(&key)).unwrap(), message);
    let id = latin.id.clone();
    let rules = dir.join("mappings/base/rules/patient-event.yaml");
    let spec = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(&rules, spec.replace("in: [M, F, O, U, A, N]", "in: [M, F, O, U, A, N, Q]")).unwrap();
    let out = replay(&dir, &[&id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sink = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    let record = sink.last().unwrap();
    assert_eq!(record["metadata"]["message_id"], "LATIN1");
    assert_eq!(record["patient"]["name"], "ZOÉ ÉLODIE", "decoded from the exact bytes: {record}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_needs_a_state_store() {
    let dir = workspace("dlq-nostate");
    let p = dir.join("pipelines/quickstart.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, spec.replace("state:\n  path: ../out/quickstart/state.db\n", "")).unwrap();
    run_quickstart(&dir);
    let out = replay(&dir, &[]);
    assert_eq!(error_code(&out), "RT016", "{}", text(&out.stderr));
    // Listing works without one: everything is pending.
    assert!(list(&dir).iter().all(|r| r["status"] == "pending"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn purge_removes_replayed_or_chosen_records_atomically_and_on_the_record() {
    let dir = workspace("dlq-purge");
    run_quickstart(&dir);
    let out = dir.join("out/quickstart");
    let purge = |args: &[&str]| {
        let mut all = vec!["dlq", "purge", "pipelines/quickstart.yaml"];
        all.extend_from_slice(args);
        sluice(&dir, &all)
    };
    // Nothing replayed yet: nothing to purge.
    let none = purge(&["--replayed"]);
    assert!(none.status.success(), "{}", text(&none.stderr));
    assert!(text(&none.stdout).contains("purged 0 records"), "{}", text(&none.stdout));
    // An unknown id is refused, and nothing changes.
    let before = std::fs::read(out.join("dlq.jsonl")).unwrap();
    assert_eq!(error_code(&purge(&["nope-1"])), "RT017");
    assert_eq!(std::fs::read(out.join("dlq.jsonl")).unwrap(), before);

    // Replay everything (all fail again), then purge the replayed ones: the new entries stay.
    assert!(replay(&dir, &[]).status.success());
    assert_eq!(list(&dir).len(), 12);
    let purged = purge(&["--replayed"]);
    assert!(purged.status.success(), "{}", text(&purged.stderr));
    assert!(text(&purged.stdout).contains("purged 6 records"), "{}", text(&purged.stdout));
    let left = list(&dir);
    assert_eq!(left.len(), 6);
    assert!(left.iter().all(|r| r["status"] == "pending"), "only the new entries are left");

    // One by id.
    let one = left[0]["id"].as_str().unwrap().to_string();
    assert!(purge(&[&one]).status.success());
    assert_eq!(list(&dir).len(), 5);

    // Both purges are in the audit log, by id, and the chain holds.
    let audit = out.join("audit.jsonl");
    assert_eq!(sluice_runtime::verify_audit_chain(&audit), Ok(68 + 8 + 2));
    let entries = lines(&audit);
    let purges: Vec<&serde_json::Value> = entries.iter().filter(|e| e["event"] == "dlq_purged").collect();
    assert_eq!(purges.len(), 2);
    assert_eq!(purges[0]["records"], 6);
    assert_eq!(purges[1]["ids"], serde_json::json!([one]));
    assert!(!dir.join("out/quickstart/dlq.jsonl.purge-tmp").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
