//! End-to-end tests of the `sluice` binary on the bundled quick start and on broken input.
//!
//! Each test copies what it needs into its own temporary directory, so tests run in parallel
//! and never touch the user's `out/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{root, text};

/// A fresh copy of the bundled specs and examples for one test.
fn workspace(name: &str) -> common::Workspace {
    common::workspace(&format!("e2e-{name}"))
}

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().expect("sluice runs")
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
        assert_eq!(e["raw_encoding"], "aes-256-gcm", "encrypted with the pipeline's key");
        assert!(!e["raw"].as_str().unwrap().contains("MSH"), "no plain text: {e}");
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
        // Run elsewhere, against what they need: a listening (mllp) pipeline runs until
        // stopped (tests/mllp.rs stops it); a FHIR server sync needs the server and its
        // PostgreSQL sink (tests/fhir_rest.rs); Stripe, QuickBooks and Plaid syncs need the
        // API (tests/stripe_source.rs, tests/quickbooks_source.rs and tests/plaid_source.rs run
        // local ones).
        let plan: serde_json::Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
        let elsewhere = ["mllp", "fhir.rest", "stripe", "quickbooks", "plaid"];
        if plan["components"].as_array().unwrap().iter().any(|c| elsewhere.iter().any(|k| c["kind"] == *k)) {
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

// ------------------------------------------------------------------------------------------
// The HL7 v2 message tables (pipelines/hl7-message-tables.yaml).

const TABLES: &str = "out/hl7-message-tables";

/// Every message of the files under `dirs` (relative to `dir`), parsed by the codec: its
/// text, for what the tables should hold.
fn messages_in(dir: &Path, dirs: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for d in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(d)).unwrap().flatten().map(|e| e.path()).collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "hl7"));
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            for raw in sluice_hl7v2::split::MessageSplitter::new(&bytes[..]).flatten() {
                if let Ok(t) = std::str::from_utf8(&raw.bytes)
                    && sluice_hl7v2::codec::parse_message(t).is_ok()
                {
                    out.push(t.to_string());
                }
            }
        }
    }
    out
}

fn value_at(msg: &str, path: &str) -> String {
    let m = sluice_hl7v2::codec::parse_message(msg).unwrap();
    let p = sluice_hl7v2::path::Path::parse(path).unwrap();
    m.select(&p).first().map(|s| s.to_string()).unwrap_or_default()
}

#[test]
fn message_tables_hold_one_row_per_message_with_orders_and_observations_nested() {
    let dir = workspace("tables");
    let out = sluice(&dir, &["run", "pipelines/hl7-message-tables.yaml", "--summary", "json", "--fixed-clock", CLOCK]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(summary["balanced"], true);
    assert_eq!(n("records_in"), n("delivered") + n("dlq") + n("filtered"), "{summary}");

    // Each table holds exactly the messages of its type that were not rejected: compared by
    // control id with what the codec reads from the input files.
    let dlq = lines(&dir.join(TABLES).join("dlq.jsonl"));
    assert_eq!(dlq.len() as u64, n("dlq"));
    let rejected: BTreeSet<String> = common::dlq_raws(&dir.join(TABLES).join("dlq.jsonl"))
        .iter()
        .map(String::as_str)
        .filter(|raw| sluice_hl7v2::codec::parse_message(raw).is_ok())
        .map(|raw| value_at(raw, "MSH-10"))
        .collect();
    let inputs = messages_in(&dir, &["examples/hl7", "examples/hl7-orders-results"]);
    let mut delivered = 0;
    for (table, code, event) in
        [("adt_messages", "ADT", None), ("orm_messages", "ORM", Some("O01")), ("oru_messages", "ORU", Some("R01"))]
    {
        let expected: Vec<String> = inputs
            .iter()
            .filter(|m| value_at(m, "MSH-9.1") == code && event.is_none_or(|e| value_at(m, "MSH-9.2") == e))
            .map(|m| value_at(m, "MSH-10"))
            .filter(|id| !rejected.contains(id))
            .collect();
        let rows = lines(&dir.join(TABLES).join(format!("{table}.jsonl")));
        let ids: Vec<String> = rows.iter().map(|r| r["message_control_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids, expected, "{table}: one row per message, in input order");
        assert!(!rows.is_empty(), "{table} has rows");
        for r in &rows {
            assert_eq!(r["message_type"], code);
            assert!(r["message_datetime"].as_str().is_some_and(|t| t.len() == 20), "{r}");
            assert_eq!(r["metadata"]["processed_at"], CLOCK);
            assert_eq!(r["compliance"]["hipaa_compliant"], true, "every PHI value had a decision");
        }
        delivered += rows.len() as u64;
    }
    assert_eq!(delivered, n("delivered"));

    let row = |table: &str, id: &str| -> serde_json::Value {
        let rows = lines(&dir.join(TABLES).join(format!("{table}.jsonl")));
        rows.into_iter().find(|r| r["message_control_id"] == id).unwrap_or_else(|| panic!("{id} in {table}"))
    };
    let codes = |order: &serde_json::Value| -> Vec<String> {
        order["observations"].as_array().unwrap().iter().map(|o| o["code"].as_str().unwrap().to_string()).collect()
    };
    // Two ORDER_OBSERVATION groups: each OBX under the OBR it follows, notes where they belong.
    let lab1 = row("oru_messages", "LAB0001");
    assert_eq!(lab1["message_datetime"], "2024-03-01T08:30:00Z");
    assert_eq!(lab1["sending_facility"], "NORTH LAB");
    assert_eq!(lab1["message_structure"], "ORU_R01");
    let orders = lab1["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0]["placer_order_number"], "PL1001");
    assert_eq!(orders[0]["service_text"], "Lipid panel");
    assert_eq!(orders[0]["results_reported_at"], "2024-03-01T08:00:00Z");
    assert_eq!(codes(&orders[0]), ["2093-3", "2085-9"]);
    assert_eq!(orders[0]["notes"], serde_json::json!(["Fasting specimen"]));
    let chol = &orders[0]["observations"][0];
    assert_eq!((chol["set_id"].as_i64(), chol["value"].as_str()), (Some(1), Some("212")));
    assert_eq!((chol["units"].as_str(), chol["reference_range"].as_str()), (Some("mg/dL"), Some("<200")));
    assert_eq!(chol["abnormal_flags"], "H");
    assert_eq!(chol["observed_at"], "2024-03-01T07:50:00Z");
    assert_eq!(chol["notes"], serde_json::json!(["Above target"]));
    assert_eq!(orders[1]["placer_order_number"], "PL1002");
    assert_eq!(codes(&orders[1]), ["6690-2", "718-7", "777-3"]);
    assert_eq!(orders[1]["notes"], serde_json::json!([]));
    assert_eq!(orders[1]["observations"][2]["notes"], serde_json::json!(["Platelet clumps seen"]));
    assert_eq!(lab1["patient"]["ssn"], "[REDACTED]");
    assert_eq!(lab1["patient"]["family_name"], "[REDACTED]");
    assert_eq!(lab1["patient"]["dob"], serde_json::Value::Null);
    assert_eq!(lab1["patient"]["account_number"], "******0001");
    assert_eq!(lab1["visit"]["admit_datetime"], "2024-03-01T07:00:00Z");
    assert_eq!(lab1["warnings"], serde_json::json!([]));
    // v2.3, OBR groups without ORC.
    let lab2 = row("oru_messages", "LAB0002");
    let orders = lab2["orders"].as_array().unwrap();
    assert_eq!(orders.iter().map(codes).collect::<Vec<_>>(), [["2951-2"], ["2823-3"]]);
    assert_eq!(orders[1]["result_status"], "P");
    assert_eq!(orders[1]["observations"][0]["notes"], serde_json::json!(["Repeat requested"]));
    // An OBX before the first OBR: the fallback rule, and a warning that says so.
    let lab3 = row("oru_messages", "LAB0003");
    assert_eq!(lab3["orders"].as_array().unwrap().iter().map(codes).collect::<Vec<_>>(), [["8867-4", "8480-6"]]);
    assert_eq!(lab3["warnings"][0]["code"], "RT309");
    assert_eq!(lab3["metadata"]["validation_status"], "warning");
    // ORM: one order per ORC, with its order detail (OBR), notes and observations.
    let orm = row("orm_messages", "ORD0001");
    let orders = orm["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    assert_eq!(
        (orders[0]["placer_order_number"].as_str(), orders[0]["service_code"].as_str()),
        (Some("PL2001"), Some("80048"))
    );
    assert_eq!((orders[0]["order_status"].as_str(), orders[0]["priority"].as_str()), (Some("SC"), Some("R")));
    assert_eq!(orders[0]["notes"], serde_json::json!(["Draw before insulin"]));
    assert_eq!(orders[0]["observations"], serde_json::json!([]));
    assert_eq!(orders[1]["ordering_provider_id"], "5521");
    assert_eq!(codes(&orders[1]), ["8661-1"]);
    assert_eq!(orm["patient"]["identifiers"][1]["value"], "[REDACTED]", "an SSN in PID-3 is masked as one");
    // ADT: the event and the visit.
    let adt = row("adt_messages", "MSG0000000002");
    assert_eq!(adt["event"]["type_code"], "A11");
    assert_eq!(adt["event"]["recorded_datetime"], "2024-09-12T05:22:49Z");
    assert_eq!(adt["diagnoses"][0]["code"], "I10");
    assert_eq!(adt["diagnoses"][0]["type"], "A");
    assert_eq!(adt["visit"]["patient_class"], "O");
    // `each: segment(AL1)`: the fields of one AL1 together.
    let allergy = &row("adt_messages", "MSG0000000006")["allergies"];
    assert_eq!(allergy, &serde_json::json!([{"type": "DA", "code": "4036", "text": "PENICILLIN", "severity": "SV"}]));

    // No name, SSN or street from any input file in the console, the tables, the audit or
    // the DLQ reasons. Table values are compared whole (a facility called "ST MARY & ST
    // JOSEPH" is not patient Mary); SSNs and streets, which hold digits, also as substrings.
    let mut phi = BTreeSet::new();
    for m in &inputs {
        let parsed = sluice_hl7v2::codec::parse_message(m).unwrap();
        for path in ["PID-5[*].1", "PID-5[*].2", "PID-19", "PID-3[*].1", "PID-11.1", "NK1-2.1", "NK1-2.2"] {
            let p = sluice_hl7v2::path::Path::parse(path).unwrap();
            let values = parsed.select(&p);
            let keep = |v: &&str| {
                if path.starts_with("PID-3") {
                    v.len() == 11 && v.as_bytes()[3] == b'-'
                } else {
                    v.chars().count() >= 4
                }
            };
            phi.extend(values.into_iter().filter(keep).map(String::from));
        }
    }
    assert!(phi.len() > 40, "names, SSNs and streets to look for: {}", phi.len());
    assert!(phi.contains("QUIMBY") && phi.contains("900-12-3456"));
    let mut haystacks = vec![("console".to_string(), format!("{}{}", text(&out.stdout), text(&out.stderr)))];
    haystacks.push(("audit".into(), std::fs::read_to_string(dir.join(TABLES).join("audit.jsonl")).unwrap()));
    let reasons: String = dlq.iter().map(|e| format!("{} {} {}", e["reason"], e["findings"], e["code"])).collect();
    haystacks.push(("DLQ reasons".into(), reasons));
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut table_values = Vec::new();
    for f in ["adt_messages.jsonl", "orm_messages.jsonl", "oru_messages.jsonl"] {
        lines(&dir.join(TABLES).join(f)).iter().for_each(|r| strings(r, &mut table_values));
    }
    for value in &phi {
        for (what, haystack) in &haystacks {
            assert!(!haystack.contains(value.as_str()), "PHI value found in {what}");
        }
        let digits = value.bytes().any(|b| b.is_ascii_digit());
        assert!(
            !table_values.iter().any(|t| t == value || (digits && t.contains(value.as_str()))),
            "PHI value found in a table"
        );
    }

    // The plan carries the table's write mode, key and cursor, and the masking matrix the
    // nested paths.
    let plan = text(&sluice(&dir, &["plan", "pipelines/hl7-message-tables.yaml"]).stdout);
    assert!(plan.contains("table: write mode append, primary key message_control_id, cursor message_datetime"));
    assert!(plan.contains("orders[*].observations[*].observed_at"), "{plan}");
    let json: serde_json::Value = serde_json::from_str(&text(
        &sluice(&dir, &["plan", "pipelines/hl7-message-tables.yaml", "--format", "json"]).stdout,
    ))
    .unwrap();
    let map = json["components"].as_array().unwrap().iter().find(|c| c["name"] == "to_oru_rows").unwrap();
    assert_eq!(
        map["table"],
        serde_json::json!({"write_mode": "append", "primary_key": ["message_control_id"], "cursor": "message_datetime"})
    );
    let matrix = json["masking_matrix"].as_array().unwrap();
    assert!(
        matrix.iter().any(|r| r["sink"] == "oru_messages" && r["field"] == "orders[*].observations[*].observed_at")
    );
}

/// Real ORU^R01 messages from the shared corpus (several OBR groups, specimens): every order
/// row holds the OBX segments between its OBR and the next OBR or SPM, in order.
#[test]
fn corpus_results_keep_each_observation_under_its_order() {
    let corpus = match std::env::var_os("SLUICE_CORPUS") {
        Some(r) => PathBuf::from(r).join("hl7v2"),
        None => root().join("../shared/corpus/hl7v2"),
    };
    if !corpus.is_dir() {
        println!("\n*** SKIPPED: ../shared/corpus not found (looked for {}) ***\n", corpus.display());
        eprintln!("SKIPPED: ../shared/corpus not found");
        return;
    }
    let dir = workspace("tables-corpus");
    let input = dir.join("corpus");
    std::fs::create_dir_all(&input).unwrap();
    let mut expected: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![corpus.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "hl7" || x == "txt") {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let mut n = 0;
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for raw in sluice_hl7v2::split::MessageSplitter::new(&bytes[..]).flatten() {
            let Ok(t) = std::str::from_utf8(&raw.bytes) else { continue };
            let t = t.trim_start_matches('\u{feff}');
            let Ok(m) = sluice_hl7v2::codec::parse_message(t) else { continue };
            let first = |p: &str| m.select(&sluice_hl7v2::path::Path::parse(p).unwrap()).first().map(|s| s.to_string());
            if first("MSH-9.1").as_deref() != Some("ORU") || first("MSH-9.2").as_deref() != Some("R01") {
                continue;
            }
            // The standard's grouping, read straight off the segment list.
            let mut orders: Vec<Vec<String>> = Vec::new();
            let mut in_specimen = false;
            for seg in &m.segments {
                match &*seg.id {
                    "OBR" => {
                        orders.push(Vec::new());
                        in_specimen = false;
                    }
                    "SPM" => in_specimen = true,
                    "OBX" if !in_specimen => {
                        if let Some(o) = orders.last_mut() {
                            let code =
                                seg.field(3).and_then(|f| f.repetitions.first()).and_then(|r| r.components.first());
                            o.push(
                                code.and_then(|c| c.subcomponents.first()).map(|s| s.to_string()).unwrap_or_default(),
                            );
                        }
                    }
                    _ => {}
                }
            }
            n += 1;
            let id = format!("CORPUS{n:04}");
            // Unique control ids, so rows can be matched; the rest of the message as sent.
            let text = t.replacen(&format!("|{}|", first("MSH-10").unwrap_or_default()), &format!("|{id}|"), 1);
            std::fs::write(input.join(format!("{id}.hl7")), text).unwrap();
            expected.push((id, orders));
        }
    }
    assert!(expected.iter().filter(|(_, o)| o.len() > 1).count() >= 2, "corpus ORU samples with several OBR groups");
    let profile = "kind: profile\nname: corpus\nformat: hl7v2\nversion: \"2.5.1\"\n\
                   accept_versions: [\"2.3\", \"2.3.1\", \"2.4\", \"2.5\", \"2.5.1\", \"2.6\", \"2.7\", \"2.8\"]\n\
                   unexpected_segments: parse\n";
    std::fs::write(dir.join("pipelines/corpus-profile.yaml"), profile).unwrap();
    let pipeline = std::fs::read_to_string(dir.join("pipelines/hl7-message-tables.yaml"))
        .unwrap()
        .replace("[../examples/hl7/*.hl7, ../examples/hl7-orders-results/*.hl7]", "../corpus/*.hl7")
        .replace("../mappings/base/profiles/default.yaml", "corpus-profile.yaml");
    std::fs::write(dir.join("pipelines/corpus.yaml"), pipeline).unwrap();
    let out = sluice(&dir, &["run", "pipelines/corpus.yaml", "--summary", "json", "--fixed-clock", CLOCK]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    let rows = lines(&dir.join(TABLES).join("oru_messages.jsonl"));
    let (mut checked, mut fallback) = (0, 0);
    for (id, orders) in &expected {
        let Some(r) = rows.iter().find(|r| r["message_control_id"] == id.as_str()) else {
            let dlq = common::dlq_raws(&dir.join(TABLES).join("dlq.jsonl")).join("\n");
            assert!(dlq.contains(&format!("|{id}|")), "{id} neither in the table nor in the DLQ");
            continue;
        };
        let got: Vec<Vec<String>> = r["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                o["observations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["code"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .collect();
        if r["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "RT309") {
            // Off its structure: the fallback rule may open an order at an ORC the standard
            // would not, but keeps every result OBX, in order.
            let flat: Vec<&String> = got.iter().flatten().collect();
            let mut it = flat.iter();
            for code in orders.iter().flatten() {
                assert!(it.any(|c| *c == code), "{id}: fallback kept {code} in order");
            }
            fallback += 1;
        } else {
            assert_eq!(&got, orders, "{id}: observations per order");
        }
        checked += 1;
    }
    println!(
        "checked {checked} corpus ORU^R01 messages ({} with several orders, {fallback} by the fallback rule)",
        expected.iter().filter(|(_, o)| o.len() > 1).count()
    );
    assert!(checked * 2 >= expected.len(), "most corpus ORU messages map: {checked} of {}", expected.len());
}

#[test]
fn workers_in_the_spec_set_the_pool_and_the_output_does_not_change() {
    let dir = workspace("workers");
    let spec_path = dir.join("pipelines/quickstart.yaml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    let clock = ["--fixed-clock", "2024-01-01T00:00:00Z"];
    let default = sluice(&dir, &["run", "pipelines/quickstart.yaml", clock[0], clock[1]]);
    assert!(default.status.success());
    // The plan (so its hash, so the run id) changes with `workers`; the records do not.
    let without_ids = |path: &Path| -> Vec<serde_json::Value> {
        lines(path)
            .into_iter()
            .map(|mut r| {
                r["compliance"]["audit_log_id"] = serde_json::Value::Null;
                r
            })
            .collect()
    };
    let before = without_ids(&dir.join("out/quickstart/patient-events.jsonl"));
    std::fs::write(&spec_path, spec.replace("  batch_size: 64", "  batch_size: 64\n  workers: 1")).unwrap();
    let plan = sluice(&dir, &["plan", "pipelines/quickstart.yaml"]);
    assert!(text(&plan.stdout).contains("defaults: batch 64, workers 1,"), "{}", text(&plan.stdout));
    let one = sluice(&dir, &["run", "pipelines/quickstart.yaml", clock[0], clock[1]]);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let after = without_ids(&dir.join("out/quickstart/patient-events.jsonl"));
    assert!(after.len() == 39 && after == before, "the same records with one worker");
    std::fs::write(&spec_path, spec.replace("  batch_size: 64", "  batch_size: 64\n  workers: 0")).unwrap();
    let zero = sluice(&dir, &["check", "pipelines/quickstart.yaml"]);
    assert_eq!(zero.status.code(), Some(1));
    assert!(text(&zero.stderr).contains("`workers` must be at least 1"), "{}", text(&zero.stderr));
}

/// The bundled reconciliation checks clean, runs, and accounts for every record
/// (tests/reconcile.rs checks its pairs and review entries one by one).
#[test]
fn the_bundled_reconciliation_checks_runs_and_balances() {
    let dir = workspace("reconcile");
    let spec = "examples/reconcile/stripe-payouts-vs-bank.yaml";
    let check = sluice(&dir, &["check", "examples/reconcile"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let out = sluice(&dir, &["reconcile", spec, "--summary", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let r = &summary["reconciliation"];
    assert_eq!(summary["records_in"], r["matched"].as_u64().unwrap() + r["unmatched"].as_u64().unwrap());
    assert_eq!(lines(&dir.join("out/reconcile/matched.jsonl")).len() as u64, summary["pairs"].as_u64().unwrap());
}
