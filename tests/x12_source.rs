//! End-to-end tests of the `format: x12` files source (`pipelines/x12-claims.yaml`) with the
//! real binary: a file with one bad transaction set delivers the others, sends the bad one to
//! the DLQ (codes and locations, never values) and answers a partial 999 (`AK9*P`); the run
//! balances; ack control numbers never repeat across runs; stray bytes and guide filtering;
//! the plan; and no name or member id from the data anywhere but the PHI-allowed sink.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{json_lines as lines, sluice_debug as sluice, text};

const CLOCK: &str = "2024-01-20T12:00:00Z";
const PIPELINE: &str = "pipelines/x12-claims.yaml";
const DATA: &str = "examples/x12-claims/data";
const OUT: &str = "out/x12-claims";

fn run(dir: &Path) -> (Value, Output) {
    let out = sluice(dir, &["run", PIPELINE, "--summary", "json", "--fixed-clock", CLOCK, "--log-format", "json"]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    let summary: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    (summary, out)
}

fn counts(summary: &Value) -> [u64; 4] {
    ["records_in", "delivered", "dlq", "filtered"].map(|k| summary[k].as_u64().unwrap())
}

/// Names and member ids written in the example data (subscribers' NM103/NM104 and NM109).
fn known_phi(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir.join(DATA)).unwrap().flatten() {
        let s = std::fs::read_to_string(f.path()).unwrap();
        for seg in s.split('~') {
            let e: Vec<&str> = seg.trim().split('*').collect();
            if matches!(e.first(), Some(&"NM1")) && matches!(e.get(1), Some(&"IL") | Some(&"QC")) {
                out.extend([3, 4, 9].iter().filter_map(|&i| e.get(i)).filter(|v| v.len() > 2).map(|v| v.to_string()));
            }
            if matches!(e.first(), Some(&"DMG")) {
                out.extend(e.get(2).map(|v| v.to_string()));
            }
        }
    }
    assert!(out.len() >= 6, "{out:?}");
    out
}

#[test]
fn one_bad_set_goes_to_the_dlq_the_others_are_delivered_and_the_999_is_partial() {
    let dir = common::workspace("x12-source-partial");
    let (summary, run_out) = run(&dir);
    // claims-837p.x12: 3 sets, the second with a DMG02 that is not a date; remits-835.x12: 2.
    assert_eq!(counts(&summary), [5, 4, 1, 0], "{summary}");
    assert_eq!(summary["balanced"], Value::Bool(true));
    let out = dir.join(OUT);
    let sets = lines(&out.join("transaction-sets.jsonl"));
    let ids: Vec<(String, String, String)> = sets
        .iter()
        .map(|r| {
            (
                r["set"]["id"].as_str().unwrap().to_string(),
                r["set"]["control"].as_str().unwrap().to_string(),
                r["set"]["guide"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |id: &str, c: &str, g: &str| (id.to_string(), c.to_string(), g.to_string());
    assert_eq!(
        ids,
        [
            want("837", "0001", "005010X222A1"),
            want("837", "0003", "005010X222A1"),
            want("835", "0001", "005010X221A1"),
            want("835", "0002", "005010X221A1"),
        ]
    );
    // Envelope context on each record.
    assert_eq!(sets[0]["interchange"]["control"], "000000001");
    assert_eq!(sets[0]["group"]["control"], "1");
    assert_eq!(sets[0]["interchange"]["sender_id"], "SUBMITTER624");
    assert_eq!(sets[0]["segments"][0][0], "ST");
    let clms = sets[0]["segments"].as_array().unwrap().iter().filter(|s| s[0] == "CLM").count();
    assert_eq!(clms, 2, "two claims per set");

    // The DLQ: the bad set, its guide code and location, never its value.
    let dlq = lines(&out.join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["code"], "RT140");
    let f = &dlq[0]["findings"][0];
    assert_eq!(f["code"], "X12063");
    assert_eq!(f["path"], "segment 16 DMG02 (loop 2010BA)");
    assert!(!dlq[0].to_string().contains("19801345"));
    // Its bytes are the set alone in an interchange, which validates on its own to the same error.
    let raws = common::dlq_raws(&out.join("dlq.jsonl"));
    assert!(raws[0].starts_with("ISA*") && raws[0].contains("ST*837*0002*") && raws[0].ends_with("IEA*1*000000001~"));
    let alone = dir.join("alone.x12");
    std::fs::write(&alone, &raws[0]).unwrap();
    let v = sluice(&dir, &["validate", "--format", "x12", "alone.x12"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(text(&v.stdout).contains("X12063"), "{}", text(&v.stdout));

    // The 999 of the 837 file: set 2 rejected with IK3/IK4, the group partially accepted.
    let ack = std::fs::read_to_string(out.join("acks/claims-837p.x12.000000001.999")).unwrap();
    assert!(ack.contains("AK2*837*0002*005010X222A1~\nIK3*DMG*16*"), "{ack}");
    assert!(ack.contains("IK5*R*5~") && ack.contains("AK9*P*3*3*2~"), "{ack}");
    assert!(
        ack.contains("ISA*00*          *00*          *ZZ*RECEIVER579    *ZZ*SUBMITTER624   *240120*1200*"),
        "{ack}"
    );
    let ack835 = std::fs::read_to_string(out.join("acks/remits-835.x12.000000001.999")).unwrap();
    assert!(ack835.contains("AK9*A*2*2*2~"), "{ack835}");
    // Our acknowledgments are valid X12 (and 999s per the bundled X231A1 guide).
    let v = sluice(&dir, &["validate", "--format", "x12", &format!("{OUT}/acks/claims-837p.x12.000000001.999")]);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));

    // The audit: one entry per record, the chain verifies.
    let audit = lines(&out.join("audit.jsonl"));
    let events: Vec<&str> =
        audit.iter().filter(|e| e["record"].is_string()).map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events.len(), 5);
    assert_eq!(events.iter().filter(|e| **e == "dlq").count(), 1);
    let verify = sluice(&dir, &["audit", "verify", &format!("{OUT}/audit.jsonl")]);
    assert!(verify.status.success(), "{}{}", text(&verify.stdout), text(&verify.stderr));

    // No name, member id or date of birth from the data outside the PHI-allowed sink.
    let phi = known_phi(&dir);
    let mut places = vec![
        ("stdout", text(&run_out.stdout)),
        ("stderr", text(&run_out.stderr)),
        ("dlq", std::fs::read_to_string(out.join("dlq.jsonl")).unwrap()),
        ("audit", std::fs::read_to_string(out.join("audit.jsonl")).unwrap()),
    ];
    for f in std::fs::read_dir(out.join("acks")).unwrap().flatten() {
        places.push(("ack", std::fs::read_to_string(f.path()).unwrap()));
    }
    let plan = sluice(&dir, &["plan", PIPELINE]);
    places.push(("plan", text(&plan.stdout) + &text(&plan.stderr)));
    for (place, s) in &places {
        for v in &phi {
            assert!(!s.contains(v.as_str()), "{v} leaked into {place}");
        }
    }
    // ... while the sink does hold them (the grep above can find what it looks for).
    let sink = std::fs::read_to_string(out.join("transaction-sets.jsonl")).unwrap();
    assert!(phi.iter().any(|v| sink.contains(v.as_str())));

    // A second run answers the same interchanges with new control numbers (state store).
    let (summary, _) = run(&dir);
    assert_eq!(counts(&summary), [5, 4, 1, 0]);
    let again = std::fs::read_to_string(out.join("acks/claims-837p.x12.000000001.999")).unwrap();
    let isa13 = |a: &str| a.split('*').nth(13).unwrap().to_string();
    assert_ne!(isa13(&ack), isa13(&again));
    let gs06 = |a: &str| a.lines().nth(1).unwrap().split('*').nth(6).unwrap().to_string();
    let mut numbers = vec![gs06(&ack), gs06(&again)];
    numbers.dedup();
    assert_eq!(numbers.len(), 2, "{numbers:?}");
}

#[test]
fn stray_bytes_filtered_guides_and_lenient_mode() {
    let dir = common::workspace("x12-source-stray");
    let data = dir.join(DATA);
    let claims = std::fs::read_to_string(data.join("claims-837p.x12")).unwrap();
    // Text before the interchange, and a second copy of it after: 1 stray + 3 sets + 1 stray + 3 sets.
    std::fs::write(data.join("claims-837p.x12"), format!("From: clearinghouse\n{claims}\nnot x12 at all\n{claims}"))
        .unwrap();
    // Read 837Ps only, leniently.
    let p = dir.join(PIPELINE);
    let spec = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        spec.replace("guides: [005010X222A1, 005010X221A1]", "guides: [005010X222A1]")
            .replace("mode: strict", "mode: lenient"),
    )
    .unwrap();
    let (summary, _) = run(&dir);
    // 2 strays + 6 837 sets (all delivered: lenient) + 2 835 sets (filtered).
    assert_eq!(counts(&summary), [10, 6, 2, 2], "{summary}");
    let dlq = lines(&dir.join(OUT).join("dlq.jsonl"));
    assert!(dlq.iter().all(|e| e["code"] == "RT141"), "{dlq:?}");
    assert!(dlq[0]["reason"].as_str().unwrap().contains("at file offset 0"), "{}", dlq[0]["reason"]);
    // Lenient: the bad date is a warning on the delivered record (one per copy of the file).
    let sets = lines(&dir.join(OUT).join("transaction-sets.jsonl"));
    assert_eq!(sets.len(), 6);
    assert_eq!(summary["warnings"], 2, "{summary}");
    let plan = sluice(&dir, &["plan", PIPELINE]);
    assert!(text(&plan.stdout).contains("x12: guides 005010X222A1, validation lenient"), "{}", text(&plan.stdout));
}

#[test]
fn corpus_files_never_stop_a_run() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/x12");
    if !corpus.exists() {
        eprintln!("SKIPPED: {} is not there (the X12 corpus is outside the repository)", corpus.display());
        return;
    }
    let dir = common::workspace("x12-source-corpus");
    let data = dir.join(DATA);
    for f in std::fs::read_dir(&data).unwrap().flatten() {
        std::fs::remove_file(f.path()).unwrap();
    }
    let mut n = 0;
    for f in walk(&corpus) {
        n += 1;
        std::fs::copy(&f, data.join(format!("{n:05}.x12"))).unwrap();
    }
    assert!(n > 0);
    let p = dir.join(PIPELINE);
    let spec = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, spec.replace("    guides: [005010X222A1, 005010X221A1]\n", "")).unwrap();
    let (summary, _) = run(&dir);
    let [records, delivered, dlq, filtered] = counts(&summary);
    assert_eq!(records, delivered + dlq + filtered, "{summary}");
    assert!(delivered > 0 && dlq > 0, "{summary}");
    eprintln!("x12 corpus through the source: {n} files, {records} records, {delivered} delivered, {dlq} to the DLQ");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|e| {
            matches!(e.to_str(), Some("x12" | "edi" | "837" | "837i" | "835" | "834" | "270" | "271" | "276" | "277"))
        }) {
            out.push(p);
        }
    }
    out
}

#[test]
fn sluice_ack_with_the_state_store_continues_the_control_numbers_of_the_pipelines_acks() {
    let dir = common::workspace("x12-source-ack-state");
    run(&dir);
    let out = dir.join(OUT);
    let isa13 = |a: &str| a.split('*').nth(13).unwrap().to_string();
    let gs06 = |a: &str| a.lines().nth(1).unwrap().split('*').nth(6).unwrap().to_string();
    let by_run = std::fs::read_to_string(out.join("acks/claims-837p.x12.000000001.999")).unwrap();
    assert_eq!((isa13(&by_run), gs06(&by_run)), ("000000001".to_string(), "1".to_string()));

    // `sluice ack --state` on the run's store: the next numbers of the same counters (one per
    // id the acknowledgment is sent as, here ZZ:RECEIVER579), then the pipeline goes on after.
    let state = format!("{OUT}/state.db");
    let claims = format!("{DATA}/claims-837p.x12");
    let ack = || sluice(&dir, &["ack", "--format", "x12", "--fixed-clock", CLOCK, "--state", &state, &claims]);
    let first = ack();
    assert_eq!(first.status.code(), Some(1), "one set is rejected: {}", text(&first.stderr));
    let first = text(&first.stdout);
    assert_eq!((isa13(&first), gs06(&first)), ("000000002".to_string(), "2".to_string()), "{first}");
    assert!(first.trim_end().ends_with("IEA*1*000000002~"), "{first}");
    let second = text(&ack().stdout);
    assert_eq!((isa13(&second), gs06(&second)), ("000000003".to_string(), "3".to_string()));
    run(&dir);
    let by_rerun = std::fs::read_to_string(out.join("acks/claims-837p.x12.000000001.999")).unwrap();
    assert_eq!((isa13(&by_rerun), gs06(&by_rerun)), ("000000004".to_string(), "4".to_string()));
    // Apart from the control numbers, the same acknowledgment as without a store.
    let plain = text(&sluice(&dir, &["ack", "--format", "x12", "--fixed-clock", CLOCK, &claims]).stdout);
    let envelope = ["ISA*", "GS*", "GE*", "IEA*"];
    let inside = |a: &str| {
        a.lines().filter(|l| !envelope.iter().any(|e| l.starts_with(e))).map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(inside(&first), inside(&plain));
    assert!(first.contains("\nGE*1*2~\n"), "{first}");

    // A password on the command line is refused, and not echoed.
    let refused =
        sluice(&dir, &["ack", "--format", "x12", "--state", "postgres://sluice:hunter2pw@127.0.0.1:1/db", &claims]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("error[RT010]") && stderr.contains("--state '${VAR}'"), "{stderr}");
    assert!(!stderr.contains("hunter2pw") && refused.stdout.is_empty(), "{stderr}");
    // `--state` belongs to X12 acknowledgments.
    let hl7 = sluice(&dir, &["ack", "--state", &state, "examples/hl7/feed-2024-01-15.hl7"]);
    assert_eq!(hl7.status.code(), Some(2), "{}", text(&hl7.stderr));
}

#[test]
fn sluice_ack_with_a_postgresql_state_store_numbers_each_acknowledgment_anew() {
    let Some(url) = common::pg_database("x12-ack-state") else { return };
    let dir = common::workspace("x12-ack-state-pg");
    let claims = format!("{DATA}/claims-837p.x12");
    let ack = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&*dir)
            .args(["ack", "--format", "x12", "--fixed-clock", CLOCK, "--state", "${SLUICE_STATE_URL}", &claims])
            .env("SLUICE_STATE_URL", &url)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "one set is rejected: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let isa13 = |a: &str| a.split('*').nth(13).unwrap().to_string();
    assert_eq!(isa13(&ack()), "000000001");
    assert_eq!(isa13(&ack()), "000000002");
    let rows = common::pg_rows(&url, "SELECT name, last FROM x12_control_numbers ORDER BY name");
    let rows: Vec<Vec<String>> = rows.into_iter().map(|r| r.into_iter().map(Option::unwrap).collect()).collect();
    assert_eq!(rows, [["gs ZZ:RECEIVER579", "2"], ["isa ZZ:RECEIVER579", "2"]]);
}
