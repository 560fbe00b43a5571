//! End-to-end tests of the `sluice` binary on the bundled quick start and on broken input.
//!
//! Each test copies what it needs into its own temporary directory, so tests run in parallel
//! and never touch the user's `out/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A fresh directory holding a copy of the bundled pipelines, mappings and examples.
fn workspace(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["pipelines", "mappings", "examples"] {
        copy_dir(&root().join(sub), &dir.join(sub));
    }
    dir
}

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().expect("sluice runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const CLOCK: &str = "2024-01-15T10:30:01Z";

fn run_quickstart(dir: &Path) -> Output {
    let out = sluice(dir, &["run", "pipelines/quickstart.yaml", "--summary", "json", "--fixed-clock", CLOCK]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

/// Names (4+ letters) and SSNs that appear in the example input, read with the codec.
fn phi_in_examples(dir: &Path) -> BTreeSet<String> {
    let mut phi = BTreeSet::new();
    for entry in std::fs::read_dir(dir.join("examples/hl7")).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        for raw in sluice_hl7v2::split::MessageSplitter::new(&bytes[..]).flatten() {
            let Ok(t) = std::str::from_utf8(&raw.bytes) else { continue };
            let Ok(m) = sluice_hl7v2::codec::parse_message(t) else { continue };
            for path in ["PID-5[*].1", "PID-5[*].2", "PID-19", "NK1-2.1", "NK1-2.2"] {
                let p = sluice_hl7v2::path::Path::parse(path).unwrap();
                phi.extend(m.select(&p).into_iter().filter(|v| v.chars().count() >= 4).map(String::from));
            }
            let ids = sluice_hl7v2::path::Path::parse("PID-3[*].1").unwrap();
            phi.extend(
                m.select(&ids).into_iter().filter(|v| v.len() == 11 && v.as_bytes()[3] == b'-').map(String::from),
            );
        }
    }
    phi
}

#[test]
fn quickstart_produces_canonical_records_dlq_and_audit() {
    let dir = workspace("quickstart");
    let out = run_quickstart(&dir);
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(summary["balanced"], true);
    let (records_in, delivered, dlq, filtered) = (
        summary["records_in"].as_u64().unwrap(),
        summary["delivered"].as_u64().unwrap(),
        summary["dlq"].as_u64().unwrap(),
        summary["filtered"].as_u64().unwrap(),
    );
    assert_eq!(records_in, delivered + dlq + filtered);
    assert!(delivered > 20 && filtered > 0 && dlq >= 6, "{summary}");

    let records = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    assert_eq!(records.len() as u64, delivered);
    for r in &records {
        for key in ["metadata", "patient", "encounter", "compliance", "errors", "warnings"] {
            assert!(r.get(key).is_some(), "record lacks {key}: {r}");
        }
        let m = &r["metadata"];
        assert_eq!(m["source_system"], "hl7");
        assert_eq!(m["processed_at"], CLOCK);
        assert!(["valid", "warning", "error"].contains(&m["validation_status"].as_str().unwrap()));
        assert!(r["patient"]["id"].as_str().is_some_and(|s| !s.is_empty()));
        let c = &r["compliance"];
        assert!(c["audit_log_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(c["pii_masked"].is_boolean() && c["hipaa_compliant"].is_boolean());
        for id in r["patient"]["identifiers"].as_array().unwrap() {
            if id["type"] == "SSN" {
                let v = id["value"].as_str().unwrap();
                assert!(v.starts_with("***-**-") && v.len() == 11, "SSN not masked: {v}");
            }
        }
        if let Some(dob) = r["patient"]["dob"].as_str() {
            assert_eq!(dob.len(), 10, "dob is a date: {dob}");
        }
    }
    assert!(records.iter().any(|r| r["patient"]["identifiers"].as_array().unwrap().iter().any(|i| i["type"] == "SSN")));

    let dlq_entries = lines(&dir.join("out/quickstart/dlq.jsonl"));
    assert_eq!(dlq_entries.len() as u64, dlq);
    for e in &dlq_entries {
        assert!(e["code"].as_str().is_some_and(|c| !c.is_empty()), "{e}");
        assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
        assert!(e["raw"].is_string(), "the DLQ keeps the raw message: {e}");
    }
    let codes: BTreeSet<&str> = dlq_entries.iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert!(codes.len() >= 4, "each reject fails differently: {codes:?}");

    let audit = dir.join("out/quickstart/audit.jsonl");
    let verified = sluice_runtime::verify_audit_chain(&audit).expect("audit chain verifies");
    assert!(verified > records_in, "an entry per record plus the run entry");
}

#[test]
fn no_phi_in_console_audit_or_dlq_reasons() {
    let dir = workspace("phi");
    let out = run_quickstart(&dir);
    let phi = phi_in_examples(&dir);
    assert!(phi.len() > 30, "the examples hold names and SSNs to look for: {}", phi.len());
    let console = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let audit = std::fs::read_to_string(dir.join("out/quickstart/audit.jsonl")).unwrap();
    let dlq_reasons: String = lines(&dir.join("out/quickstart/dlq.jsonl"))
        .iter()
        .map(|e| format!("{} {} {}", e["reason"], e["findings"], e["code"]))
        .collect();
    let plan = text(&sluice(&dir, &["plan", "pipelines/quickstart.yaml", "--format", "json"]).stdout);
    let sink = std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    for value in &phi {
        for (what, haystack) in
            [("console", &console), ("audit", &audit), ("DLQ reasons", &dlq_reasons), ("plan", &plan)]
        {
            assert!(!haystack.contains(value.as_str()), "PHI value found in {what}");
        }
        if value.len() == 11 && value.as_bytes()[3] == b'-' {
            assert!(!sink.contains(value.as_str()), "an SSN reached the sink unmasked");
        }
    }
}

#[test]
fn runs_are_byte_identical_under_a_fixed_clock() {
    let dir = workspace("determinism");
    let read = |f: &str| std::fs::read(dir.join("out/quickstart").join(f)).unwrap();
    run_quickstart(&dir);
    let first: Vec<Vec<u8>> = ["patient-events.jsonl", "dlq.jsonl", "audit.jsonl"].iter().map(|f| read(f)).collect();
    let out = sluice(&dir, &["run", "pipelines/quickstart.yaml", "--fixed-clock", CLOCK, "--threads", "1"]);
    assert!(out.status.success());
    let second: Vec<Vec<u8>> = ["patient-events.jsonl", "dlq.jsonl", "audit.jsonl"].iter().map(|f| read(f)).collect();
    assert!(first == second, "output differs between runs (or thread counts)");
}

#[test]
fn check_accepts_the_bundled_specs() {
    let out = sluice(&root(), &["check", "pipelines", "mappings"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("0 errors"));
}

#[test]
fn plan_json_is_stable_and_hashed() {
    let a = sluice(&root(), &["plan", "pipelines/quickstart.yaml", "--format", "json"]);
    let b = sluice(&root(), &["plan", "pipelines/quickstart.yaml", "--format", "json"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let plan: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert!(plan["hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        plan["masking_matrix"].as_array().unwrap().iter().any(|r| r["class"] == "ssn" && r["treatment"] == "partial")
    );
    for format in ["text", "dot", "mermaid"] {
        let out = sluice(&root(), &["plan", "pipelines/quickstart.yaml", "--format", format]);
        assert!(out.status.success() && text(&out.stdout).contains("to_patient_event"), "{format}");
    }
}

#[test]
fn a_typo_is_reported_at_its_line_and_column_with_a_suggestion() {
    let dir = workspace("typo");
    let mapping = dir.join("mappings/base/hl7v2-patient-event.yaml");
    let text_before = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(&mapping, text_before.replace("dob: date(PID-7)", "dob: date(PDI-7)")).unwrap();
    let out = sluice(&dir, &["check", "pipelines", "mappings", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let first: serde_json::Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["code"], "SL402");
    assert_eq!(first["file"], "mappings/base/hl7v2-patient-event.yaml");
    let line = text_before.lines().position(|l| l.contains("dob: date(PID-7)")).unwrap() + 1;
    let column = text_before.lines().nth(line - 1).unwrap().find("PID-7").unwrap() + 1;
    assert_eq!((first["line"].as_u64(), first["column"].as_u64()), (Some(line as u64), Some(column as u64)));
    assert_eq!(first["help"], "did you mean `PID`?");
    let human = sluice(&dir, &["check", "mappings"]);
    assert!(text(&human.stderr).contains(&format!("hl7v2-patient-event.yaml:{line}:{column}")));
    let gh = sluice(&dir, &["check", "mappings", "--format", "github"]);
    assert!(
        text(&gh.stdout)
            .starts_with(&format!("::error file=mappings/base/hl7v2-patient-event.yaml,line={line},col={column}"))
    );
}

#[test]
fn parse_prints_the_documented_shapes() {
    let dir = workspace("parse");
    let file = dir.join("one.hl7");
    std::fs::write(
        &file,
        "MSH|^~\\&|APP|FAC|||20240115||ADT^A01|M1|P|2.5.1\rPID|1||123^^^H^MR~456^^^H^PI||DOE^JANE&Q\\T\\R\r",
    )
    .unwrap();
    let compact = sluice(&dir, &["parse", "--format", "hl7v2", "one.hl7"]);
    assert!(compact.status.success(), "{}", text(&compact.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&compact.stdout).trim()).unwrap();
    assert_eq!(v["segments"][0][1], "|");
    assert_eq!(v["segments"][0][2], "^~\\&");
    assert_eq!(v["segments"][0][9], serde_json::json!(["ADT", "A01"]));
    assert_eq!(v["segments"][1][3], serde_json::json!([["123", "", "", "H", "MR"], ["456", "", "", "H", "PI"]]));
    assert_eq!(v["segments"][1][5], serde_json::json!(["DOE", ["JANE", "Q&R"]]));
    let full = sluice(&dir, &["parse", "--format", "hl7v2", "--shape", "full", "one.hl7"]);
    let v: serde_json::Value = serde_json::from_str(text(&full.stdout).trim()).unwrap();
    assert_eq!(v["segments"][0][1], serde_json::json!([[["|"]]]));
    assert_eq!(v["segments"][1][1], serde_json::json!([[["1"]]]));
    assert_eq!(v["segments"][1][5], serde_json::json!([[["DOE"], ["JANE", "Q&R"]]]));
}

#[test]
fn broken_input_never_panics() {
    let dir = workspace("broken");
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("empty.hl7", vec![]),
        ("binary.hl7", (0..=255u8).cycle().take(5000).collect()),
        ("bad-utf8.hl7", b"MSH|^~\\&|A|B|||20240101||ADT^A01|X|P|2.5.1\rPID|1||1^^^H^MR||\xff\xfe\r".to_vec()),
        ("short-msh.hl7", b"MSH|^\r".to_vec()),
        ("only-segments.hl7", b"PID|1\rPV1|1\r".to_vec()),
    ];
    for (name, bytes) in &garbage {
        std::fs::write(dir.join(name), bytes).unwrap();
        let out = sluice(&dir, &["parse", "--format", "hl7v2", name]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{name}: {:?}", out.status);
        assert!(!text(&out.stderr).contains("panicked"), "{name}");
        std::fs::copy(dir.join(name), dir.join("examples/hl7").join(name)).unwrap();
    }
    let out = sluice(&dir, &["run", "pipelines/quickstart.yaml", "--summary", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(summary["balanced"], true);
    for (name, bytes) in [
        ("a.yaml", &b"kind: [\n"[..]),
        ("b.yaml", b"\xff\xfe"),
        ("c.yaml", b"kind: pipeline\nsources: 3\n"),
        ("d.yaml", b"- - - -"),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
        for cmd in [&["check", name][..], &["plan", name]] {
            let out = sluice(&dir, cmd);
            assert!(matches!(out.status.code(), Some(1 | 2)), "{name} {cmd:?}: {:?} {}", out.status, text(&out.stderr));
            assert!(!text(&out.stderr).contains("panicked"), "{name}");
        }
    }
}

#[test]
fn keyed_hash_pseudonyms_are_stable_and_join_across_fields() {
    let dir = workspace("hash");
    std::fs::write(dir.join("mask.key"), "test-key-not-a-secret\n").unwrap();
    let policy = "kind: masking\nname: pseudonyms\nhash_key: ${file:../../../mask.key}\nclasses:\n  \
                  ssn: {action: partial, keep_last: 4}\n  mrn: hash\n  account_number: hash\n  name: hash\n  \
                  dob: null\n  date: {action: keep, reason: bed management}\n";
    std::fs::write(dir.join("mappings/base/policies/quickstart.yaml"), policy).unwrap();
    let read = || std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    run_quickstart(&dir);
    let first = read();
    run_quickstart(&dir);
    assert_eq!(first, read(), "pseudonyms are stable across runs");
    for line in first.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = r["patient"]["id"].as_str().unwrap();
        assert!(id.starts_with("h:") && id.len() == 66, "{id}");
        assert!(r["patient"]["dob"].is_null());
        let mrn = r["patient"]["identifiers"].as_array().unwrap().iter().find(|i| i["type"] == "MRN").unwrap();
        assert_eq!(mrn["value"], id, "the same MRN gives the same pseudonym in every field");
        assert_eq!(r["compliance"]["pii_masked"], false, "dates are kept");
        assert_eq!(r["compliance"]["hipaa_compliant"], true);
    }
    std::fs::write(dir.join("mask.key"), "another-key\n").unwrap();
    run_quickstart(&dir);
    assert_ne!(first, read(), "another key gives other pseudonyms");
}

#[test]
fn every_bundled_pipeline_plans_and_runs_balanced() {
    let dir = workspace("all");
    let mut pipelines: Vec<String> = std::fs::read_dir(dir.join("pipelines"))
        .unwrap()
        .flatten()
        .map(|e| format!("pipelines/{}", e.file_name().to_string_lossy()))
        .collect();
    pipelines.sort();
    assert!(pipelines.len() >= 2, "{pipelines:?}");
    for p in &pipelines {
        let plan = sluice(&dir, &["plan", p, "--format", "json"]);
        assert!(plan.status.success(), "{p}: {}", text(&plan.stderr));
        // A listening (mllp) pipeline runs until stopped: tests/mllp.rs runs it and stops it.
        let plan: serde_json::Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
        if plan["components"].as_array().unwrap().iter().any(|c| c["kind"] == "mllp") {
            continue;
        }
        let out = sluice(&dir, &["run", p, "--summary", "json", "--fixed-clock", CLOCK]);
        assert!(out.status.success(), "{p}: {}", text(&out.stderr));
        let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        assert_eq!(summary["balanced"], true, "{p}: {summary}");
    }
}

#[test]
fn lenient_validation_delivers_records_with_their_errors() {
    let dir = workspace("lenient");
    let out = sluice(&dir, &["run", "pipelines/adt-oru-split.yaml", "--summary", "json", "--fixed-clock", CLOCK]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = lines(&dir.join("out/adt-oru-split/events.jsonl"));
    let with_errors: Vec<&serde_json::Value> =
        events.iter().filter(|r| r["metadata"]["validation_status"] == "error").collect();
    assert!(!with_errors.is_empty());
    for r in &with_errors {
        let errors = r["errors"].as_array().unwrap();
        assert!(!errors.is_empty() && errors.iter().all(|e| e["code"].is_string() && e["path"].is_string()), "{r}");
    }
    assert!(
        events
            .iter()
            .filter(|r| r["metadata"]["validation_status"] == "valid")
            .all(|r| r["errors"] == serde_json::json!([]))
    );
    let inpatients = lines(&dir.join("out/adt-oru-split/inpatient-events.jsonl"));
    assert!(!inpatients.is_empty() && inpatients.len() < events.len());
    assert!(inpatients.iter().all(|r| r["encounter"]["type"] == "inpatient"));
}

#[test]
fn profile_encoding_decides_how_bytes_are_read() {
    let dir = workspace("latin1");
    for entry in std::fs::read_dir(dir.join("examples/hl7")).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    // MSH-18 (character set) is 8859/1.
    let msg = b"MSH|^~\\&|A|B|||20240115103000||ADT^A01|L1|P|2.5.1||||||8859/1\rEVN|A01|20240115103000\r\
                PID|1||1234^^^H^MR||M\xdcLLER^J\xd6RG^^^^^L||19800115|M\rPV1|1|I\r";
    std::fs::write(dir.join("examples/hl7/latin1.hl7"), msg).unwrap();
    // The bundled profile says `encoding: auto`: MSH-18 (8859/1) decides, and the message is read.
    run_quickstart(&dir);
    let records = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    assert_eq!(records[0]["patient"]["name"], "J\u{d6}RG M\u{dc}LLER");
    assert!(lines(&dir.join("out/quickstart/dlq.jsonl")).is_empty());
    // A profile fixed to UTF-8 overrides MSH-18: the message is refused with the byte offset.
    let profile = dir.join("mappings/base/profiles/default.yaml");
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("encoding: auto"));
    std::fs::write(&profile, text.replace("encoding: auto", "encoding: utf-8")).unwrap();
    run_quickstart(&dir);
    let dlq = lines(&dir.join("out/quickstart/dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["code"], "RT101");
    assert_eq!(dlq[0]["findings"][0]["code"], "HL7011");
    let offset = msg.iter().position(|b| *b == 0xdc).unwrap();
    assert!(dlq[0]["reason"].as_str().unwrap().contains(&format!("offset {offset}")), "{}", dlq[0]);
    // Fixed to Latin-1, it is decoded again.
    let text = std::fs::read_to_string(&profile).unwrap().replace("encoding: utf-8", "encoding: iso-8859-1");
    std::fs::write(&profile, text).unwrap();
    run_quickstart(&dir);
    let records = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    assert_eq!(records[0]["patient"]["name"], "J\u{d6}RG M\u{dc}LLER");
}

#[test]
fn strict_hl7_checks_reject_segments_out_of_order() {
    let dir = workspace("hl7checks");
    for entry in std::fs::read_dir(dir.join("examples/hl7")).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let good = "MSH|^~\\&|A|B|||20240115103000||ORU^R01^ORU_R01|OK1|P|2.5.1\rPID|1||1234^^^H^MR||TEST^ONE||19800115|F\r\
                OBR|1|ORD1||24331-1^Lipid panel^LN\rOBX|1|NM|2093-3^Cholesterol^LN||185|mg/dL|||||F\r";
    let swapped = "MSH|^~\\&|A|B|||20240115103000||ORU^R01^ORU_R01|BAD1|P|2.5.1\rPID|1||1235^^^H^MR||TEST^TWO||19800115|F\r\
                   OBX|1|NM|2093-3^Cholesterol^LN||185|mg/dL|||||F\rOBR|1|ORD1||24331-1^Lipid panel^LN\r";
    std::fs::write(dir.join("examples/hl7/two.hl7"), format!("{good}\n{swapped}\n")).unwrap();
    let rules = dir.join("mappings/base/rules/patient-event.yaml");
    let text = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(&rules, text.replacen("rules:\n", "hl7_checks: {structure: true}\nrules:\n", 1)).unwrap();
    run_quickstart(&dir);
    let delivered = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["metadata"]["message_id"], "OK1");
    let dlq = lines(&dir.join("out/quickstart/dlq.jsonl"));
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let findings = dlq[0]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["code"] == "HL7V104" && f["message"].as_str().unwrap().contains("OBX before OBR")),
        "{findings:?}"
    );
}

#[test]
fn utf16_files_are_read_as_they_stream() {
    let dir = workspace("utf16");
    for entry in std::fs::read_dir(dir.join("examples/hl7")).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let msg = |id: &str| {
        format!(
            "MSH|^~\\&|A|B|||20240115103000||ADT^A01^ADT_A01|{id}|P|2.5.1|||||||UNICODE UTF-16\r\
             EVN|A01|20240115103000\rPID|1||1234^^^H^MR||M\u{dc}LLER^J\u{d6}RG^^^^^L||19800115|M\rPV1|1|I\r\n"
        )
    };
    let text = format!("{}{}", msg("U1"), msg("U2"));
    for (name, bom, le) in [("le-bom.hl7", true, true), ("be-nobom.hl7", false, false)] {
        let mut bytes: Vec<u8> = Vec::new();
        if bom {
            bytes.extend_from_slice(&[0xFF, 0xFE]);
        }
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&if le { unit.to_le_bytes() } else { unit.to_be_bytes() });
        }
        std::fs::write(dir.join("examples/hl7").join(name), bytes).unwrap();
    }
    let out = run_quickstart(&dir);
    let summary: serde_json::Value = serde_json::from_str(text_of(&out).trim()).unwrap();
    assert_eq!((summary["records_in"].as_u64(), summary["delivered"].as_u64()), (Some(4), Some(4)), "{summary}");
    for r in lines(&dir.join("out/quickstart/patient-events.jsonl")) {
        assert_eq!(r["patient"]["name"], "J\u{d6}RG M\u{dc}LLER");
    }
}

fn text_of(out: &Output) -> String {
    text(&out.stdout)
}

#[test]
fn explain_prints_a_code() {
    let out = sluice(&root(), &["explain", "SL201"]);
    assert!(out.status.success() && text(&out.stdout).contains("Unknown key"));
    assert_eq!(sluice(&root(), &["explain", "SL999"]).status.code(), Some(2));
}
