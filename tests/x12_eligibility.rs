//! End-to-end tests of one record per person of a 271 eligibility response (`each: loop(2000C,
//! 2000D)`) with the real binary, on `pipelines/x12-eligibility.yaml` and the base pack's
//! `x12-271-eligibility.yaml`, over the synthetic files of `tests/fixtures/x12/eligibility/`:
//! - each subscriber (2000C) and dependent (2000D) is exactly one record, in file order, with
//!   its own benefits (a dependent's record holds its subscriber's identity, not the
//!   subscriber's benefits), masked as the policy says;
//! - a 271 without a subscriber level (the payer answered for no one) is one DLQ record
//!   (RT143) at its own offset, and the run balances;
//! - no name, member id, street, city or date of birth of the files reaches the run's output,
//!   logs, audit, DLQ file or the plan;
//! - each 834 member (2000, INS) is exactly one record with its own ids, dates and coverages;
//! - a whole 271 replayed into the per-person mapping goes back to the DLQ (RT144);
//! - corpus conformance (`../shared/corpus/x12`, skipped loudly when absent): records = people.

use serde_json::{Value, json};

mod common;
use common::runs::{self, assert_absent, counts, mapped, normalized, outputs_and_plans, with};
use common::{json_lines as lines, sluice_debug as sluice, text, x12_corpus};

const CLOCK: &str = "2026-03-01T12:00:00Z";
const PIPELINE: &str = "pipelines/x12-eligibility.yaml";
const OUT: &str = "out/x12-eligibility";
const FILES: &[&str] = &["eligibility-271.x12", "eligibility-271-family.x12", "enrollment-834.x12"];

/// The workspace with the example data replaced by these fixtures.
fn workspace_with_fixtures(name: &str, files: &[&str]) -> common::Workspace {
    let dir = common::workspace(name);
    let data = dir.join("examples/x12-eligibility/data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    for f in files {
        std::fs::copy(fixtures().join(f), data.join(f)).unwrap();
    }
    dir
}

fn fixtures() -> std::path::PathBuf {
    common::root().join("tests/fixtures/x12/eligibility")
}

/// The segments of an X12 file (`*` elements, `~` terminators, as the fixtures are written).
fn segments(text: &str) -> Vec<Vec<String>> {
    text.split('~').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.split('*').map(String::from).collect()).collect()
}

/// Every person's name, member id, street, city and date of birth in the files (as sent and
/// as a converted date): what a leak would show.
fn phi_of(files: &[&str]) -> Vec<String> {
    let mut phi = Vec::new();
    for f in files {
        let t = std::fs::read_to_string(fixtures().join(f)).unwrap();
        for s in segments(&t) {
            let el = |n: usize| s.get(n).cloned().unwrap_or_default();
            match (s[0].as_str(), el(1).as_str()) {
                ("NM1", "IL" | "03") => phi.extend([el(3), el(4), el(9)]),
                ("N3", _) | ("N4", _) => phi.push(el(1)),
                ("PER", "IP") => phi.push(el(4)),
                ("REF", "0F") => phi.push(el(2)),
                ("DMG", _) => {
                    let d = el(2);
                    phi.push(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]));
                    phi.push(d);
                }
                _ => {}
            }
        }
    }
    phi.retain(|v| v.len() > 3);
    phi.sort();
    phi.dedup();
    phi
}

fn benefit(info: &str, level: &str, types: &[&str]) -> Value {
    json!({
        "info_code": info, "coverage_level": level, "service_types": types, "insurance_type": null,
        "plan_description": null, "time_period": null, "amount": null, "percent": null,
        "quantity_qualifier": null, "quantity": null, "authorization_required": null, "in_network": null,
        "procedure_code": null, "dates": [], "messages": [], "rejection_reason": null,
    })
}

const NO_DEPENDENT: fn() -> Value =
    || json!({"last_name": null, "first_name": null, "dob": null, "gender": null, "relationship": null});

fn family_subscriber() -> Value {
    json!({
        "member_id": "*******4555", "last_name": "[REDACTED]", "first_name": "[REDACTED]", "dob": "1975",
        "gender": "M", "address": "[REDACTED]", "city": "[REDACTED]", "state": "MN", "zip": "559",
        "group_number": "***0042",
    })
}

fn context() -> Value {
    json!({
        "payer": {"name": "EXAMPLE HEALTH PLAN", "id": "99999"},
        "receiver": {"name": "EXAMPLE FAMILY CLINIC", "id": "1999999984", "id_type": "XX"},
    })
}

/// The rows the fixtures give, in file order (`eligibility-271-family.x12` sorts first), read
/// off the files by hand.
fn expected_rows() -> Vec<Value> {
    let single = with(
        context(),
        json!({
            "reference_id": "SYN270A", "created_date": "2026-01-15", "hl_id": "3", "level": "subscriber",
            "trace_number": "SYN-TRACE-1",
            "subscriber": {
                "member_id": "*******1222", "last_name": "[REDACTED]", "first_name": "[REDACTED]", "dob": "1980",
                "gender": "F", "address": "[REDACTED]", "city": "[REDACTED]", "state": "MN", "zip": "559",
                "group_number": null,
            },
            "dependent": NO_DEPENDENT(),
            "benefits": [
                with(benefit("1", "IND", &["30"]), json!({"plan_description": "SYNTH SILVER PLAN"})),
                with(
                    benefit("C", "IND", &["30"]),
                    json!({"time_period": "23", "amount": 500.0,
                           "dates": [{"qualifier": "291", "format": "D8", "value": "20260115"}]}),
                ),
                with(
                    benefit("A", "IND", &["1", "33", "98"]),
                    json!({"amount": 0.2, "messages": ["COINSURANCE AFTER DEDUCTIBLE"]}),
                ),
                benefit("L", "", &[]),
            ],
            "rejections": [],
        }),
    );
    // EB*L has no coverage level nor service types.
    let mut single = single;
    single["benefits"][3]["coverage_level"] = Value::Null;
    let subscriber = with(
        context(),
        json!({
            "reference_id": "SYN271M", "created_date": "2026-03-01", "hl_id": "3", "level": "subscriber",
            "trace_number": "SYN-TRACE-11", "subscriber": family_subscriber(), "dependent": NO_DEPENDENT(),
            "benefits": [
                with(
                    benefit("1", "FAM", &["30"]),
                    json!({"plan_description": "SYNTH GOLD PLAN",
                           "dates": [{"qualifier": "291", "format": "RD8", "value": "20260101-20261231"}]}),
                ),
                with(
                    benefit("C", "IND", &["30"]),
                    json!({"time_period": "23", "amount": 1000,
                           "dates": [{"qualifier": "348", "format": "D8", "value": "20260101"}]}),
                ),
                with(
                    benefit("B", "IND", &["98"]),
                    json!({"time_period": "27", "amount": 25, "in_network": "Y",
                           "messages": ["PRIMARY CARE OFFICE VISIT"]}),
                ),
                with(benefit("A", "IND", &["1", "33"]), json!({"percent": 0.2, "in_network": "N"})),
            ],
            "rejections": [],
        }),
    );
    let dependent = with(
        context(),
        json!({
            "reference_id": "SYN271M", "created_date": "2026-03-01", "hl_id": "4", "level": "dependent",
            "trace_number": "SYN-TRACE-12", "subscriber": family_subscriber(),
            "dependent": {"last_name": "[REDACTED]", "first_name": "[REDACTED]", "dob": "2012", "gender": "F",
                          "relationship": "19"},
            "benefits": [
                with(benefit("1", "DEP", &["30"]), json!({"plan_description": "SYNTH GOLD PLAN"})),
                with(
                    benefit("F", "IND", &["AL"]),
                    json!({"time_period": "29", "quantity_qualifier": "VS", "quantity": 12,
                           "authorization_required": "Y",
                           "dates": [{"qualifier": "292", "format": "RD8", "value": "20260101-20261231"}]}),
                ),
            ],
            "rejections": [],
        }),
    );
    let not_found = with(
        context(),
        json!({
            "reference_id": "SYN271M", "created_date": "2026-03-01", "hl_id": "5", "level": "subscriber",
            "trace_number": "SYN-TRACE-13",
            "subscriber": {
                "member_id": "*******9888", "last_name": "[REDACTED]", "first_name": "[REDACTED]", "dob": null,
                "gender": null, "address": null, "city": null, "state": null, "zip": null, "group_number": null,
            },
            "dependent": NO_DEPENDENT(),
            "benefits": [],
            "rejections": [{"level": "subscriber", "valid_request": "Y", "reason": "72", "follow_up": "C"}],
        }),
    );
    vec![subscriber, dependent, not_found, single]
}

#[test]
fn each_subscriber_and_dependent_is_one_record_with_its_own_benefits() {
    let dir = workspace_with_fixtures("x12-elig-run", FILES);
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    // responses: 3 + 1 people, the 271 that answers for no one (one record, to the DLQ) and
    // the 834 set, filtered; enrollments: 4 members and the three 271 sets, filtered.
    assert_eq!(counts(&summary), [13, 8, 1, 4], "{summary}");
    let rows = lines(&dir.join(OUT).join("eligibility.jsonl"));
    let got: Vec<Value> = rows.iter().map(|r| normalized(&mapped(r))).collect();
    let want: Vec<Value> = expected_rows().iter().map(normalized).collect();
    assert_eq!(got.len(), want.len(), "{rows:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "\n got: {g}\nwant: {w}");
    }
    assert!(rows.iter().all(|r| r["metadata"]["validation_status"] == "valid"), "{rows:?}");
    // The set without a subscriber level: one DLQ record at its own ST, RT143.
    let dlq = lines(&dir.join(OUT).join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let family = std::fs::read_to_string(fixtures().join("eligibility-271-family.x12")).unwrap();
    let st = family.find("ST*271*0002").unwrap() as u64;
    assert_eq!((dlq[0]["code"].as_str(), dlq[0]["offset"].as_u64()), (Some("RT143"), Some(st)), "{dlq:?}");
    assert!(dlq[0]["reason"].as_str().unwrap().contains("no loop 2000C or 2000D"), "{dlq:?}");
    // The DLQ keeps that set's bytes (encrypted), readable as a one-set interchange.
    let raws = common::dlq_raws(&dir.join(OUT).join("dlq.jsonl"));
    assert!(raws[0].contains("ST*271*0002") && raws[0].contains("AAA*Y**42*R"), "{raws:?}");
    // No PHI anywhere the run wrote, nor in the plan.
    let phi = phi_of(FILES);
    for v in ["SAMPLEFAM", "ZZ000999888", "999000222", "5550101234", "1977-07-07"] {
        assert!(phi.iter().any(|p| p == v), "{v} in {phi:?}");
    }
    let texts = outputs_and_plans(&out, &dir, &dir.join(OUT), PIPELINE);
    assert_absent(&texts, &phi);
    // The plan says how the source cuts the 271s.
    let plan = sluice(&dir, &["plan", PIPELINE, "--format", "json"]);
    let p: Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
    let source = p["components"].as_array().unwrap().iter().find(|c| c["name"] == "responses").unwrap().clone();
    assert_eq!(source["x12"]["split"], json!([{"guide": "005010X279A1/271", "loops": ["2000C", "2000D"]}]), "{p}");
    let source = p["components"].as_array().unwrap().iter().find(|c| c["name"] == "enrollments").unwrap().clone();
    assert_eq!(source["x12"]["split"], json!([{"guide": "005010X220A1", "loops": ["2000"]}]), "{p}");
}

/// The 834 members, as the fixture has them (masked as the policy says).
fn expected_members() -> Vec<Value> {
    let set = json!({
        "reference_id": "SYN834A", "created_date": "2026-02-01", "purpose": "00", "action": "2",
        "sponsor": {"name": "EXAMPLE EMPLOYER INC", "id": "990000001"},
        "payer": {"name": "EXAMPLE HEALTH PLAN", "id": "990000002"},
    });
    let member = |last: &str, fields: Value| {
        let none = json!({
            "last_name": last, "first_name": "[REDACTED]", "middle_name": null, "ssn": null, "phone": null,
            "address": null, "city": null, "state": null, "zip": null, "dob": null, "gender": null,
            "marital_status": null,
        });
        with(none, fields)
    };
    let coverage = |line: &str, plan: &str, level: &str, begin: &str, end: Value| {
        json!({"maintenance_type": if end.is_null() { "021" } else { "024" }, "insurance_line": line,
               "plan_description": plan, "coverage_level": level, "begin_date": begin, "end_date": end})
    };
    let gold = coverage("HLT", "SYNTH GOLD PLAN", "FAM", "2026-01-01", Value::Null);
    let added = |rel: &str, flag: &str| {
        json!({"subscriber_flag": flag, "relationship": rel, "maintenance_type": "021", "maintenance_reason": "28",
               "benefit_status": "A", "employment_status": null, "subscriber_id": "*******4555",
               "group_number": null, "member_ids": [], "dates": []})
    };
    vec![
        with(
            with(set.clone(), added("18", "Y")),
            json!({
                "employment_status": "FT", "group_number": "GRP0042",
                "member_ids": [{"type": "23", "value": "***-7001"}],
                "dates": [{"qualifier": "356", "date": "2026-01-01"}],
                "member": member("[REDACTED]", json!({"middle_name": "[REDACTED]", "ssn": "[REDACTED]",
                    "phone": "[REDACTED]", "address": "[REDACTED]", "city": "[REDACTED]", "state": "MN",
                    "zip": "559", "dob": "1975", "gender": "M", "marital_status": "M"})),
                "coverages": [gold.clone(), coverage("DEN", "SYNTH DENTAL", "FAM", "2026-01-01", Value::Null)],
            }),
        ),
        with(
            with(set.clone(), added("01", "N")),
            json!({
                "member_ids": [{"type": "23", "value": "***-**01-01"}],
                "member": member("[REDACTED]", json!({"ssn": "[REDACTED]", "dob": "1977", "gender": "F",
                    "marital_status": "M"})),
                "coverages": [gold.clone()],
            }),
        ),
        with(
            with(set.clone(), added("19", "N")),
            json!({"member": member("[REDACTED]", json!({"dob": "2012", "gender": "F"})), "coverages": [gold]}),
        ),
        with(
            set,
            json!({
                "subscriber_flag": "Y", "relationship": "18", "maintenance_type": "024", "maintenance_reason": "07",
                "benefit_status": "T", "employment_status": "TE", "subscriber_id": "*******9888",
                "group_number": null, "member_ids": [],
                "dates": [{"qualifier": "357", "date": "2026-01-31"}],
                "member": member("[REDACTED]", json!({"dob": "1990", "gender": "U"})),
                "coverages": [coverage("HLT", "SYNTH SILVER PLAN", "IND", "2025-01-01", json!("2026-01-31"))],
            }),
        ),
    ]
}

#[test]
fn each_834_member_is_one_record_with_its_own_coverages() {
    let dir = workspace_with_fixtures("x12-elig-834", FILES);
    runs::run(&dir, PIPELINE, CLOCK);
    let rows = lines(&dir.join(OUT).join("enrollment.jsonl"));
    let got: Vec<Value> = rows.iter().map(mapped).collect();
    let want = expected_members();
    assert_eq!(got.len(), want.len(), "one row per INS: {rows:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "\n got: {g}\nwant: {w}");
    }
}

#[test]
fn a_whole_271_replayed_into_the_per_person_mapping_goes_back_to_the_dlq() {
    // A per-set pipeline over the 271s sends every set to the DLQ (a required field it cannot
    // fill); the pipeline is then changed to the base pack's per-person mapping and the DLQ
    // replayed: a whole set is not one person, so it goes back to the DLQ with RT144.
    let dir = workspace_with_fixtures("x12-elig-replay", &FILES[..2]);
    let per_set = "kind: mapping\nname: eligibility-sets\ninput:\n  schema: x12/005010X279A1/271\n\
output: canonical/eligibility@1\nfields:\n  reference_id: BHT-03\n  hl_id: 2000C[3]/HL-01\n  level: '\"subscriber\"'\n";
    std::fs::write(dir.join("mappings/eligibility-sets.yaml"), per_set).unwrap();
    let pipeline = dir.join(PIPELINE);
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    let sets = spec.replace("../mappings/base/x12-271-eligibility.yaml", "../mappings/eligibility-sets.yaml")
        + "state:\n  path: ../out/x12-eligibility/state.db\n";
    std::fs::write(&pipeline, &sets).unwrap();
    let (_, summary) = runs::run(&dir, PIPELINE, CLOCK);
    // Three sets, none with a third subscriber (the 834 source filters them).
    assert_eq!(counts(&summary), [6, 0, 3, 3], "{summary}");
    std::fs::write(&pipeline, spec + "state:\n  path: ../out/x12-eligibility/state.db\n").unwrap();
    let replay = sluice(&dir, &["dlq", "replay", PIPELINE]);
    assert!(replay.status.success(), "{}{}", text(&replay.stdout), text(&replay.stderr));
    let dlq = lines(&dir.join(OUT).join("dlq.jsonl"));
    let again: Vec<&Value> = dlq.iter().filter(|e| e["code"] == "RT144").collect();
    // The family set holds three people and the payer-unavailable set none; the
    // single-subscriber set is one person and maps.
    let reasons: Vec<&str> = again.iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{dlq:?}");
    assert!(reasons[0].contains("holds 3 occurrences of loop 2000C or 2000D"), "{reasons:?}");
    assert!(reasons[1].contains("holds 0 occurrences of loop 2000C or 2000D"), "{reasons:?}");
    let rows = lines(&dir.join(OUT).join("eligibility.jsonl"));
    assert_eq!(rows.iter().map(|r| r["reference_id"].as_str().unwrap()).collect::<Vec<_>>(), ["SYN270A"], "{rows:?}");
}

/// The corpus's 271 and 834 files (stupidedi's X279A1 HB271 and X220A1 BE834 `pass` files and
/// the linuxforhealth samples, read from `../shared/corpus` when it is there): every 271 gives
/// one record per subscriber and dependent HL (22, 23), every 834 one per INS, and a set
/// without one is one record in the DLQ; the runs balance.
#[test]
fn corpus_responses_and_enrollments_give_one_record_per_person() {
    let Some(dirs) = x12_corpus::folders(&[
        "stupidedi-fixtures/005010/X279A1 HB271 Health Care Eligibility Benefit Inquiry and Response/pass",
        "linuxforhealth-x12/271_005010X279A1",
        "stupidedi-fixtures/005010/X220A1 BE834 Benefit Enrollment and Maintenance/pass",
        "linuxforhealth-x12/834_005010X220A1",
    ]) else {
        return;
    };
    let dir = common::workspace("x12-elig-corpus");
    let input = dir.join("corpus");
    // Per source: the people of its sets (subscriber and dependent HLs; INS), at least one a set.
    let (responses, want_responses) = x12_corpus::copy_counting(&dirs[..2], "r", &input, |set| {
        set.iter().filter(|e| e[0] == "HL" && matches!(e.get(3).map(String::as_str), Some("22" | "23"))).count()
    });
    let (enrollments, want_enrollments) =
        x12_corpus::copy_counting(&dirs[2..], "e", &input, |set| set.iter().filter(|e| e[0] == "INS").count());
    let (files, want) = (responses + enrollments, [want_responses, want_enrollments]);
    let pipeline = std::fs::read_to_string(dir.join(PIPELINE))
        .unwrap()
        .replacen("../examples/x12-eligibility/data/*.x12", "../corpus/r*.edi", 1)
        .replacen("../examples/x12-eligibility/data/*.x12", "../corpus/e*.edi", 1)
        .replace("mode: strict", "mode: lenient");
    std::fs::write(dir.join("pipelines/corpus.yaml"), pipeline).unwrap();
    let (_, summary) = runs::run(&dir, "pipelines/corpus.yaml", CLOCK);
    let per = |name: &str| {
        summary["per_source"].as_array().unwrap().iter().find(|s| s[0] == name).and_then(|s| s[1].as_u64()).unwrap()
    };
    let rows =
        lines(&dir.join(OUT).join("eligibility.jsonl")).len() + lines(&dir.join(OUT).join("enrollment.jsonl")).len();
    eprintln!(
        "x12 corpus per person: {files} files; records responses {} (want {}), enrollments {} (want {}); {rows} delivered, {} to the DLQ, {} filtered",
        per("responses"),
        want[0],
        per("enrollments"),
        want[1],
        summary["dlq"],
        summary["filtered"]
    );
    assert_eq!((per("responses") as usize, per("enrollments") as usize), (want[0], want[1]), "{summary}");
    assert!(rows > 0, "{summary}");
}
