//! End-to-end runs of hand-built plans over files in temp directories.

mod common;

use common::*;
use sluice_compiler::plan::*;
use sluice_runtime::{RunOptions, run, verify_audit_chain};
use sluice_spec_core::ValueType;

/// PHI written into the inputs; none of it may appear outside sinks' masked values and DLQ `raw`.
const PHI: &[&str] = &["DOE", "JOHN", "123-45-6789", "MRN001", "987654", "SMITH", "555-123-4567"];

fn opts(threads: usize) -> RunOptions {
    RunOptions { fixed_clock: Some(CLOCK.into()), threads: Some(threads), ..Default::default() }
}

struct Fixture {
    dir: TempDir,
    plan: Plan,
}

fn full_pipeline(name: &str) -> Fixture {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("in/sub")).unwrap();
    std::fs::write(dir.join("mask.key"), "test-key\n").unwrap();
    let good = Adt::default().text();
    let oru = Adt { kind: "ORU^R01", control: "MSG0002", name: "SMITH^ANNA", sex: "F", ..Default::default() }.text();
    let bad_dob = Adt { control: "MSG0003", dob: "1980", ..Default::default() }.text();
    let no_id = Adt { kind: "ADT^A08", control: "MSG0004", ids: "", ..Default::default() }.text();
    let file_a = format!("{good}\r\n{oru}\r\n{bad_dob}\r\n");
    // A message whose name is not UTF-8.
    let mut bad_bytes = Adt { control: "MSG0005", ..Default::default() }.text().into_bytes();
    let pos = bad_bytes.windows(3).position(|w| w == b"DOE").unwrap();
    bad_bytes[pos + 1] = 0xff;
    let mut file_b = no_id.into_bytes();
    file_b.extend_from_slice(b"\r\n");
    file_b.extend_from_slice(&bad_bytes);
    std::fs::write(dir.join("in/a.hl7"), file_a).unwrap();
    std::fs::write(dir.join("in/sub/b.hl7"), file_b).unwrap();
    std::fs::write(dir.join("in/garbage.hl7"), b"hello\x00\xff\xfe world\nnot hl7 at all\n").unwrap();
    std::fs::write(dir.join("in/empty.hl7"), b"").unwrap();
    std::fs::write(dir.join("in/ignored.txt"), b"MSH|not matched by the glob").unwrap();
    let key = format!("${{file:{}}}", p(&dir, "mask.key"));
    let rules = vec![
        rule("pid3_required", "PID-3", RuleCheck::Required { value: hl7("PID-3", ValueType::Identifier) }),
        rule(
            "dob_format",
            "PID-7",
            RuleCheck::Format { value: hl7("PID-7", ValueType::DateTime), format: "date".into() },
        ),
        rule(
            "sex_values",
            "PID-8",
            RuleCheck::ValueSet {
                value: hl7("PID-8", ValueType::Code),
                values: vec!["M".into(), "F".into(), "U".into()],
            },
        ),
        rule(
            "ssn_pattern",
            "PID-19",
            RuleCheck::Pattern { value: hl7("PID-19", ValueType::String), pattern: r"\d{3}-\d{2}-\d{4}".into() },
        ),
    ];
    let components = vec![
        source("hl7_in", vec![p(&dir, "in/**/*.hl7")], "parse"),
        validate("check", "hl7_in", Mode::Lenient, rules),
        patient_map("to_event", "check"),
        mask("phi", "to_event", Some(key)),
        component(
            "by_type",
            vec![input("phi")],
            CANONICAL,
            ComponentKind::Route(RoutePlan {
                branches: vec![(
                    "adt".into(),
                    call(
                        sluice_compiler::expr::ast::Function::StartsWith,
                        vec![field("metadata.message_type"), lit("ADT")],
                    ),
                )],
                default: Some("other".into()),
            }),
        ),
        sink("adt_out", branch("by_type", "adt"), CANONICAL, p(&dir, "out/adt.jsonl")),
        sink("other_out", branch("by_type", "other"), CANONICAL, p(&dir, "out/other.jsonl")),
    ];
    let plan = plan(name, &dir, components);
    Fixture { dir, plan }
}

#[test]
fn full_pipeline_delivers_masks_and_balances() {
    let f = full_pipeline("full");
    let summary = run(&f.plan, &opts(2)).unwrap();
    let out = |rel: &str| p(&f.dir, rel);
    // a.hl7: 3 messages; sub/b.hl7: 2 messages; garbage.hl7: 1 raw chunk; empty.hl7: none.
    assert_eq!(summary.records.records_in, 6, "{summary:?}\n{}", read(&out("out/dlq.jsonl")));
    assert_eq!(summary.records.delivered, 3);
    assert_eq!(summary.records.dlq, 3);
    assert_eq!(summary.records.filtered, 0);
    assert!(summary.balanced);
    assert_eq!(summary.per_sink, vec![("adt_out".into(), 2), ("other_out".into(), 1)]);
    assert_eq!(summary.per_source, vec![("hl7_in".into(), 6)]);

    let adt = lines(&out("out/adt.jsonl"));
    assert_eq!(adt.len(), 2);
    let first = &adt[0];
    assert_eq!(first["metadata"]["message_type"], "ADT^A01");
    assert_eq!(first["metadata"]["message_id"], "MSG0001");
    assert_eq!(first["metadata"]["received_at"], "2024-01-15T10:30:00-05:00");
    assert_eq!(first["metadata"]["processed_at"], CLOCK);
    assert_eq!(first["metadata"]["validation_status"], "valid");
    assert_eq!(first["patient"]["name"], "[REDACTED]");
    assert_eq!(first["patient"]["ssn"], "***-**-6789");
    assert_eq!(first["patient"]["dob"], "1980-01-15");
    assert_eq!(first["patient"]["gender"], "male");
    let id = first["patient"]["id"].as_str().unwrap();
    assert!(id.starts_with("h:") && id.len() == 66);
    let idents = first["patient"]["identifiers"].as_array().unwrap();
    assert_eq!(idents.len(), 2);
    assert_eq!(idents[0]["type"], "MR");
    assert_eq!(idents[0]["value"], id, "same key, same value, same pseudonym");
    assert_eq!(idents[1]["type"], "SS");
    assert!(idents[1]["value"].as_str().unwrap().starts_with("h:"));
    assert_eq!(first["encounter"]["admit_date"], "2024-01-15T08:00:00-05:00");
    assert_eq!(first["compliance"]["hipaa_compliant"], true);
    assert_eq!(first["compliance"]["pii_masked"], false, "dob and dates are kept");
    let audit_id = first["compliance"]["audit_log_id"].as_str().unwrap();
    assert_eq!(audit_id, format!("{}-1", summary.run_id));
    assert_eq!(first["errors"], serde_json::json!([]));
    // Decimals are kept as written.
    assert!(read(&out("out/adt.jsonl")).contains("\"charge\":72.50"));

    // The bad date: lenient error from validation plus a conversion warning, still delivered.
    let second = &adt[1];
    assert_eq!(second["metadata"]["message_id"], "MSG0003");
    assert_eq!(second["metadata"]["validation_status"], "error");
    assert_eq!(second["patient"]["dob"], serde_json::Value::Null);
    assert_eq!(second["errors"][0]["code"], "RT204");
    assert_eq!(second["errors"][0]["path"], "PID-7");
    assert_eq!(second["warnings"][0]["code"], "RT302");
    assert_eq!(second["warnings"][0]["path"], "patient.dob");

    let other = lines(&out("out/other.jsonl"));
    assert_eq!(other[0]["metadata"]["message_type"], "ORU^R01");
    assert_eq!(other[0]["patient"]["gender"], "female");

    // DLQ: required output missing, invalid UTF-8, garbage.
    let dlq = lines(&out("out/dlq.jsonl"));
    let codes: Vec<&str> = dlq.iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), 3, "{codes:?}");
    assert!(codes.contains(&"RT307"));
    assert!(codes.contains(&"RT101"));
    let missing = dlq.iter().find(|e| e["code"] == "RT307").unwrap();
    assert_eq!(missing["stage"], "to_event");
    assert_eq!(missing["findings"][0]["path"], "patient.id");
    assert!(missing["raw"].as_str().unwrap().contains("MSG0004"));
    let utf8 = dlq.iter().find(|e| e["code"] == "RT101" && e["file"].as_str().unwrap().ends_with("b.hl7")).unwrap();
    assert_eq!(utf8["stage"], "hl7_in");
    assert_eq!(utf8["message_index"], 1);
    let garbage = dlq.iter().find(|e| e["file"].as_str().unwrap().ends_with("garbage.hl7")).unwrap();
    assert_eq!(garbage["offset"], 0);
    for entry in &dlq {
        for k in ["run_id", "source", "file", "offset", "message_index", "stage", "code", "reason", "findings", "raw"] {
            assert!(entry.get(k).is_some(), "DLQ entry lacks {k}");
        }
        let reason = entry["reason"].as_str().unwrap();
        let findings = entry["findings"].to_string();
        for phi in PHI {
            assert!(!reason.contains(phi) && !findings.contains(phi), "PHI `{phi}` in DLQ reason: {reason}");
        }
    }

    // Audit: one entry per record plus run_completed, chain intact, no PHI.
    let audit = read(&out("out/audit.jsonl"));
    for phi in PHI {
        assert!(!audit.contains(phi), "PHI `{phi}` in the audit log");
    }
    assert_eq!(verify_audit_chain(out("out/audit.jsonl")), Ok(8));
    let all = lines(&out("out/audit.jsonl"));
    assert_eq!(all[0]["event"], "run_started");
    assert_eq!(all[0]["seq"], 0);
    assert_eq!(all[0]["input_files"], 4);
    assert_eq!(all[0]["sluice_version"], env!("CARGO_PKG_VERSION"));
    let entries = &all[1..];
    assert_eq!(entries[0]["event"], "delivered");
    assert_eq!(entries[0]["seq"], 1);
    assert_eq!(entries[0]["offset"], 0);
    assert_eq!(entries[0]["message_id"], "MSG0001");
    assert_eq!(entries[0]["sinks"], serde_json::json!(["adt_out"]));
    assert_eq!(entries[0]["at"], CLOCK);
    assert!(entries[0]["masked"].as_u64().unwrap() > 0, "the mask stage masked PHI: {}", entries[0]);
    assert_eq!(entries[6]["event"], "run_completed");
    assert_eq!(entries[6]["records_in"], 6);
    assert_eq!(entries[6]["balanced"], true);
    let files: Vec<&str> = entries[..6].iter().map(|e| e["record"].as_str().unwrap()).collect();
    assert!(files[0].starts_with("hl7_in:") && files[0].ends_with("a.hl7#0"), "{files:?}");
    assert!(files[3].ends_with("garbage.hl7#0"), "files are read in sorted order: {files:?}");
}

#[test]
fn output_is_deterministic_across_runs_and_thread_counts() {
    let f = full_pipeline("determinism");
    let files = ["out/adt.jsonl", "out/other.jsonl", "out/dlq.jsonl", "out/audit.jsonl"];
    let first_summary = run(&f.plan, &opts(1)).unwrap();
    let first: Vec<Vec<u8>> = files.iter().map(|r| std::fs::read(f.dir.join(r)).unwrap()).collect();
    let second_summary = run(&f.plan, &opts(8)).unwrap();
    let second: Vec<Vec<u8>> = files.iter().map(|r| std::fs::read(f.dir.join(r)).unwrap()).collect();
    assert_eq!(first_summary.run_id, second_summary.run_id);
    for (i, name) in files.iter().enumerate() {
        assert!(!first[i].is_empty(), "{name} is empty");
        assert_eq!(first[i], second[i], "{name} differs between runs");
    }
}

#[test]
fn audit_tampering_is_detected() {
    let f = full_pipeline("tamper");
    run(&f.plan, &opts(2)).unwrap();
    let path = p(&f.dir, "out/audit.jsonl");
    assert!(verify_audit_chain(&path).is_ok());
    let text = read(&path);
    std::fs::write(&path, text.replacen("\"event\":\"dlq\"", "\"event\":\"delivered\"", 1)).unwrap();
    assert!(verify_audit_chain(&path).is_err());
    let mut kept: Vec<&str> = text.lines().collect();
    kept.remove(2);
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let err = verify_audit_chain(&path).unwrap_err();
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn strict_validation_sends_failures_to_dlq_with_every_rule() {
    let dir = temp_dir("strict");
    let good = Adt::default().text();
    let bad = Adt { control: "MSG0009", dob: "19801345", sex: "X", ssn: "123456789", ..Default::default() }.text();
    let a08 = Adt { kind: "MDM^T02", control: "MSG0010", ..Default::default() }.text();
    std::fs::write(dir.join("in.hl7"), format!("{good}\r{bad}\r{a08}\r")).unwrap();
    let rules = vec![
        rule(
            "dob_format",
            "PID-7",
            RuleCheck::Format { value: hl7("PID-7", ValueType::DateTime), format: "date".into() },
        ),
        rule(
            "sex_values",
            "PID-8",
            RuleCheck::ValueSet { value: hl7("PID-8", ValueType::Code), values: vec!["M".into(), "F".into()] },
        ),
        rule(
            "ssn_pattern",
            "PID-19",
            RuleCheck::Pattern { value: hl7("PID-19", ValueType::String), pattern: r"\d{3}-\d{2}-\d{4}".into() },
        ),
        rule("name_len", "PID-5", RuleCheck::MaxLength { value: hl7("PID-5", ValueType::String), max: 2 }),
    ];
    let mut rules = rules;
    // Applies only to women: skipped for all of these.
    rules[3].when = Some(eq(hl7("PID-8", ValueType::Code), lit("F")));
    let plan = plan(
        "strict",
        &dir,
        vec![
            source("in", vec![p(&dir, "in.hl7")], "parse"),
            validate("check", "in", Mode::Strict, rules),
            sink("raw_out", input("check"), "hl7v2/2.5.1", p(&dir, "out/hl7.jsonl")),
        ],
    );
    let s = run(&plan, &opts(2)).unwrap();
    assert_eq!((s.records.records_in, s.records.delivered, s.records.dlq, s.records.filtered), (3, 1, 2, 0));
    let out = lines(&p(&dir, "out/hl7.jsonl"));
    assert_eq!(out[0]["segments"][0][0], "MSH");
    let dlq = lines(&p(&dir, "out/dlq.jsonl"));
    assert_eq!(dlq[0]["code"], "RT207");
    let rules: Vec<&str> = dlq[0]["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["dob_format", "sex_values", "ssn_pattern"]);
    let reason = dlq[0]["reason"].as_str().unwrap();
    assert!(reason.contains("dob_format (PID-7, RT204)"), "{reason}");
    for phi in ["19801345", "123456789", "DOE"] {
        assert!(!reason.contains(phi) && !dlq[0]["findings"].to_string().contains(phi));
    }
    assert_eq!(dlq[1]["code"], "RT201");
}

#[test]
fn filter_drops_records_as_filtered() {
    let dir = temp_dir("filter");
    let m = Adt::default().text();
    let f = Adt { control: "MSG0002", sex: "F", ..Default::default() }.text();
    std::fs::write(dir.join("in.hl7"), format!("{m}\n{f}\n{m}\n")).unwrap();
    let plan = plan(
        "filter",
        &dir,
        vec![
            source("in", vec![p(&dir, "*.hl7")], "parse"),
            component(
                "women",
                vec![input("in")],
                "hl7v2/2.5.1",
                ComponentKind::Filter(FilterPlan { keep: eq(hl7("PID-8", ValueType::Code), lit("F")) }),
            ),
            sink("out", input("women"), "hl7v2/2.5.1", p(&dir, "out/w.jsonl")),
        ],
    );
    let s = run(&plan, &opts(2)).unwrap();
    assert_eq!((s.records.records_in, s.records.delivered, s.records.dlq, s.records.filtered), (3, 1, 0, 2));
    let audit = lines(&p(&dir, "out/audit.jsonl"));
    assert_eq!(audit[1]["event"], "filtered");
    assert_eq!(audit[1]["component"], "women");
}

#[test]
fn route_without_default_filters_and_fan_out_counts_once() {
    let dir = temp_dir("route");
    let m = Adt::default().text();
    let f = Adt { control: "MSG0002", sex: "F", ..Default::default() }.text();
    std::fs::write(dir.join("in.hl7"), format!("{m}\r{f}\r")).unwrap();
    let plan = plan(
        "route",
        &dir,
        vec![
            source("in", vec![p(&dir, "in.hl7")], "parse"),
            component(
                "split",
                vec![input("in")],
                "hl7v2/2.5.1",
                ComponentKind::Route(RoutePlan {
                    branches: vec![("women".into(), eq(hl7("PID-8", ValueType::Code), lit("F")))],
                    default: None,
                }),
            ),
            sink("women_out", branch("split", "women"), "hl7v2/2.5.1", p(&dir, "out/w.jsonl")),
            // Fan-out: every record also goes to the archive.
            sink("archive", input("in"), "hl7v2/2.5.1", p(&dir, "out/all.jsonl")),
        ],
    );
    let s = run(&plan, &opts(2)).unwrap();
    assert_eq!((s.records.records_in, s.records.delivered, s.records.dlq, s.records.filtered), (2, 2, 0, 0));
    assert_eq!(s.per_sink, vec![("women_out".into(), 1), ("archive".into(), 2)]);
}

#[test]
fn garbage_only_input_is_all_dlq_and_nothing_panics() {
    let dir = temp_dir("garbage");
    let mut noise = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    std::fs::write(dir.join("random.bin"), &noise).unwrap();
    std::fs::write(dir.join("latin1.hl7"), b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X|P|2.5.1\rPID|1||1||M\xfcller\r")
        .unwrap();
    std::fs::write(dir.join("empty.hl7"), b"").unwrap();
    std::fs::write(dir.join("only_msh.hl7"), b"MSH|\r").unwrap();
    let plan = plan(
        "garbage",
        &dir,
        vec![
            source("in", vec![p(&dir, "*")], "fail"),
            patient_map("to_event", "in"),
            sink("out", input("to_event"), CANONICAL, p(&dir, "out/o.jsonl")),
        ],
    );
    let s = run(&plan, &opts(4)).unwrap();
    assert!(s.records.records_in >= 3, "{s:?}");
    assert_eq!(s.records.delivered, 0);
    assert_eq!(s.records.dlq, s.records.records_in);
    assert!(s.balanced);
    let dlq = lines(&p(&dir, "out/dlq.jsonl"));
    assert_eq!(dlq.len() as u64, s.records.dlq);
    assert!(dlq.iter().any(|e| e["code"] == "RT101"));
    assert_eq!(verify_audit_chain(p(&dir, "out/audit.jsonl")), Ok(s.records.records_in + 2));
}

#[test]
fn unexpected_segments_fail_skip_or_parse() {
    let dir = temp_dir("zseg");
    let text = format!("{}\rZXY|1|secret\r", Adt::default().text());
    std::fs::write(dir.join("in.hl7"), &text).unwrap();
    for (policy, dlq, warnings) in [("fail", 1, 0), ("skip", 0, 1), ("parse", 0, 0)] {
        let plan = plan(
            "zseg",
            &dir,
            vec![
                source("in", vec![p(&dir, "in.hl7")], policy),
                sink("out", input("in"), "hl7v2/2.5.1", p(&dir, "out/o.jsonl")),
            ],
        );
        let s = run(&plan, &opts(1)).unwrap();
        assert_eq!((s.records.dlq, s.records.warnings), (dlq, warnings), "policy {policy}");
        let out = read(&p(&dir, "out/o.jsonl"));
        assert_eq!(out.contains("ZXY"), policy == "parse", "policy {policy}");
        if policy == "fail" {
            let e = &lines(&p(&dir, "out/dlq.jsonl"))[0];
            assert_eq!(e["code"], "RT105");
            assert!(!e["reason"].as_str().unwrap().contains("secret"));
        }
    }
}

#[test]
fn missing_hash_key_stops_the_run_before_any_output() {
    let dir = temp_dir("nokey");
    std::fs::write(dir.join("in.hl7"), Adt::default().text()).unwrap();
    let plan = plan(
        "nokey",
        &dir,
        vec![
            source("in", vec![p(&dir, "in.hl7")], "parse"),
            patient_map("to_event", "in"),
            mask("phi", "to_event", Some("${SLUICE_TEST_SURELY_UNSET_MASK_KEY}".into())),
            sink("out", input("phi"), CANONICAL, p(&dir, "out/o.jsonl")),
        ],
    );
    let err = run(&plan, &opts(1)).unwrap_err();
    assert_eq!(err.code, "RT002");
    assert!(err.message.contains("SLUICE_TEST_SURELY_UNSET_MASK_KEY"));
    assert!(!dir.join("out").exists(), "nothing may be written");

    let mut no_ref = plan.clone();
    if let ComponentKind::Mask(m) = &mut no_ref.components[2].kind {
        m.hash_key = None;
    }
    assert_eq!(run(&no_ref, &opts(1)).unwrap_err().code, "RT007");
}

#[test]
fn classed_leaf_without_rule_is_nulled_and_not_compliant() {
    let dir = temp_dir("unruled");
    std::fs::write(dir.join("in.hl7"), Adt::default().text()).unwrap();
    let mut m = mask("phi", "to_event", None);
    if let ComponentKind::Mask(mp) = &mut m.kind {
        mp.classes.retain(|(c, _)| *c != sluice_spec_core::PhiClass::Ssn && *c != sluice_spec_core::PhiClass::Mrn);
        mp.fields.push(("patient.id".into(), treatment(MaskAction::Null, None, None)));
        mp.fields.push(("patient.identifiers".into(), treatment(MaskAction::Redact, None, None)));
    }
    let plan = plan(
        "unruled",
        &dir,
        vec![
            source("in", vec![p(&dir, "in.hl7")], "parse"),
            patient_map("to_event", "in"),
            m,
            sink("out", input("phi"), CANONICAL, p(&dir, "out/o.jsonl")),
        ],
    );
    let s = run(&plan, &opts(1)).unwrap();
    assert_eq!(s.records.delivered, 1);
    let rec = &lines(&p(&dir, "out/o.jsonl"))[0];
    assert_eq!(rec["patient"]["ssn"], serde_json::Value::Null);
    assert_eq!(rec["patient"]["id"], serde_json::Value::Null);
    assert_eq!(rec["patient"]["identifiers"][1]["value"], "[REDACTED]");
    assert_eq!(rec["warnings"][0]["code"], "RT401");
    assert_eq!(rec["metadata"]["validation_status"], "warning");
    assert_eq!(rec["compliance"]["hipaa_compliant"], false);
}

#[test]
fn no_mask_stage_means_not_compliant_and_bad_clock_is_rejected() {
    let dir = temp_dir("nomask");
    std::fs::write(dir.join("in.hl7"), Adt::default().text()).unwrap();
    let plan = plan(
        "nomask",
        &dir,
        vec![
            source("in", vec![p(&dir, "in.hl7")], "parse"),
            patient_map("to_event", "in"),
            sink("out", input("to_event"), CANONICAL, p(&dir, "out/o.jsonl")),
        ],
    );
    run(&plan, &opts(1)).unwrap();
    let rec = &lines(&p(&dir, "out/o.jsonl"))[0];
    assert_eq!(rec["compliance"]["hipaa_compliant"], false);
    assert_eq!(rec["compliance"]["pii_masked"], false);
    let bad = RunOptions { fixed_clock: Some("yesterday".into()), threads: None, ..Default::default() };
    assert_eq!(run(&plan, &bad).unwrap_err().code, "RT006");
    let mut missing = plan.clone();
    if let ComponentKind::Source(s) = &mut missing.components[0].kind {
        s.paths = vec![p(&dir, "nope.hl7")];
    }
    assert_eq!(run(&missing, &opts(1)).unwrap_err().code, "RT005");
}
