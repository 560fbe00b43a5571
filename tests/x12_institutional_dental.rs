//! End-to-end tests of institutional (837I) and dental (837D) claims with the real binary, on
//! `pipelines/x12-institutional-dental.yaml` and the base pack's `x12-837i-claim.yaml` and
//! `x12-837d-claim.yaml` (`canonical/claim@2`), over the synthetic files of
//! `tests/fixtures/x12/claims/`:
//! - each claim (2300 loop) is exactly one record with its own admission, diagnoses,
//!   procedures, providers and lines (the line-level rendering NM1 of the 837I is not the
//!   claim's), masked as the policy says;
//! - a set that breaks its guide sends each of its claims to the DLQ (RT140), and the run
//!   balances;
//! - no name, member id, street, city, date of birth or record number of the files reaches the
//!   run's output, logs, audit, DLQ file or the plan.

use serde_json::{Value, json};

mod common;
use common::json_lines as lines;
use common::runs::{self, assert_absent, counts, mapped, normalized, outputs, outputs_and_plans, with};

const CLOCK: &str = "2026-03-01T12:00:00Z";
const PIPELINE: &str = "pipelines/x12-institutional-dental.yaml";
const OUT: &str = "out/x12-institutional-dental";
const FILES: &[&str] = &["institutional-837i.x12", "dental-837d.x12"];

fn fixtures() -> std::path::PathBuf {
    common::root().join("tests/fixtures/x12/claims")
}

/// The workspace with the example data replaced by `files` (name, text).
fn workspace_with(name: &str, files: &[(&str, String)]) -> common::Workspace {
    let dir = common::workspace(name);
    let data = dir.join("examples/x12-institutional-dental/data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    for (f, t) in files {
        std::fs::write(data.join(f), t).unwrap();
    }
    dir
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

/// Every person's name, member id, street, city, date of birth and record number in the files
/// (as sent, and dates also as ISO dates).
fn phi_of(files: &[&str]) -> Vec<String> {
    let mut phi = Vec::new();
    for f in files {
        let t = fixture(f);
        let mut person = false;
        for seg in t.split('~').map(str::trim).filter(|s| !s.is_empty()) {
            let el: Vec<&str> = seg.split('*').collect();
            let get = |n: usize| el.get(n).copied().unwrap_or("").to_string();
            match (el[0], get(1).as_str()) {
                ("NM1", "IL" | "QC") => {
                    person = true;
                    phi.extend([get(3), get(4), get(9)]);
                }
                ("NM1", _) => person = false,
                ("N3" | "N4", _) if person => phi.push(get(1)),
                ("REF", "EA") => phi.push(get(2)),
                ("DMG", _) => {
                    let d = get(2);
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

fn nobody() -> Value {
    json!({"npi": null, "last_name": null, "first_name": null})
}

/// The rows the fixtures give, sorted by claim id (the two sources run side by side).
fn expected_rows() -> Vec<Value> {
    let hospital = json!({"npi": "1999999984", "name": "SYNTH GENERAL HOSPITAL", "tax_id": "990000001", "state": "IL"});
    let inst = json!({
        "claim_type": "institutional", "reference_id": "INST0001", "created_date": "2024-03-01",
        "frequency_code": "1", "billing_provider": hospital,
    });
    let unmasked_subscriber = json!({"dob": null, "gender": null, "address": null, "city": null, "zip": null});
    let redacted = "[REDACTED]";
    let attending = json!({"npi": "1888888885", "last_name": "QUARTZ", "first_name": "ODELIA"});
    let inst1 = with(
        inst.clone(),
        json!({
            "claim_id": "INSTCLAIM01", "total_charge": 1250.75, "place_of_service": "11", "type_of_bill": "111",
            "statement_from": "2024-02-10", "statement_to": "2024-02-13", "admission_date": "2024-02-10",
            "admission_type": "1", "admission_source": "7", "discharge_hour": "1130", "patient_status": "01",
            "principal_diagnosis": "I214", "principal_diagnosis_poa": "Y", "admitting_diagnosis": "R0789",
            "diagnoses": ["I214", "E119", "I10"], "other_diagnoses": ["E119", "I10"],
            "principal_procedure": {"code": "02703ZZ", "date": "2024-02-11"}, "other_procedures": ["B2111ZZ"],
            "attending_provider": with(attending.clone(), json!({"taxonomy": "207RC0000X"})),
            "operating_provider": {"npi": "1777777786", "last_name": "VANTERPOOL", "first_name": "BRISEIS"},
            // The NM1*82 of the file is a line's (2420C), not the claim's (2310D).
            "rendering_provider": nobody(),
            "subscriber": {
                "member_id": "*******001A", "last_name": redacted, "first_name": redacted, "dob": "1951",
                "gender": "M", "address": redacted, "city": redacted, "zip": "616", "relationship": "P",
            },
            "payer": {"name": "SYNTH MEDICARE PLAN", "id": "PAYER900"},
            "service_lines": [
                {"line_number": 1, "revenue_code": "0450", "procedure_code": "99284", "procedure_modifiers": [],
                 "charge": 850.75, "unit_basis": "UN", "units": 1, "service_date": "2024-02-10"},
                {"line_number": 2, "revenue_code": "0300", "procedure_code": "80053", "procedure_modifiers": ["QW"],
                 "charge": 400, "unit_basis": "UN", "units": 2, "service_date": "2024-02-11"},
            ],
        }),
    );
    let inst2 = with(
        inst,
        json!({
            "claim_id": "INSTCLAIM02", "total_charge": 310, "place_of_service": "13", "type_of_bill": "131",
            "statement_from": "2024-02-20", "statement_to": "2024-02-20", "admission_date": null,
            "admission_type": "3", "admission_source": null, "discharge_hour": null, "patient_status": "01",
            "principal_diagnosis": "J069", "principal_diagnosis_poa": null, "admitting_diagnosis": null,
            "diagnoses": ["J069"], "other_diagnoses": [],
            "principal_procedure": {"code": null, "date": null}, "other_procedures": [],
            "attending_provider": with(attending, json!({"taxonomy": null})),
            "operating_provider": nobody(), "rendering_provider": nobody(),
            "subscriber": with(unmasked_subscriber.clone(), json!({
                "member_id": "*******004D", "last_name": redacted, "first_name": redacted, "relationship": "P",
            })),
            "payer": {"name": "SYNTH COMMERCIAL PLAN", "id": "PAYER903"},
            "service_lines": [
                {"line_number": 1, "revenue_code": "0510", "procedure_code": "99213", "procedure_modifiers": [],
                 "charge": 310, "unit_basis": "UN", "units": 1, "service_date": "2024-02-20"},
            ],
        }),
    );
    let dent = json!({
        "claim_type": "dental", "reference_id": "DENT0001", "created_date": "2024-03-05", "place_of_service": "11",
        "frequency_code": "1",
        "billing_provider": {"npi": "1555555588", "name": "SYNTH SMILE DENTAL GROUP", "tax_id": "990000002", "state": "WI"},
        "payer": {"name": "SYNTH DENTAL PLAN", "id": "DPAYER01"},
    });
    let line = |n: u64, code: &str, charge: u64, cavity: Value, prosthesis: Value, date: Value, teeth: Value| {
        json!({"line_number": n, "procedure_code": code, "procedure_modifiers": [], "charge": charge, "units": 1,
               "oral_cavity_area": cavity, "prosthesis": prosthesis, "service_date": date, "tooth_numbers": teeth})
    };
    let day = json!("2024-02-28");
    let dent1 = with(
        dent.clone(),
        json!({
            "claim_id": "DENTCLAIM01", "total_charge": 425, "principal_diagnosis": "K0252",
            "diagnoses": ["K0252", "K0262"], "other_diagnoses": ["K0262"],
            "rendering_provider": {"npi": "1444444489", "last_name": "BRIGHTWATER", "first_name": "CELESTE"},
            "orthodontic": {"months_total": null, "months_remaining": null, "appliance_placed": null},
            "subscriber": {
                "member_id": "******0001", "last_name": redacted, "first_name": redacted, "dob": "1988",
                "gender": "M", "address": redacted, "city": redacted, "zip": "535", "relationship": "P",
            },
            // Lines without their own DTP*472 have the claim's date of service.
            "service_lines": [
                line(1, "D2392", 225, Value::Null, json!("R"), day.clone(), json!(["19"])),
                line(2, "D1110", 120, Value::Null, Value::Null, day.clone(), json!([])),
                line(3, "D7140", 80, json!("10"), json!("I"), day, json!(["1", "16"])),
            ],
        }),
    );
    let dent2 = with(
        dent,
        json!({
            "claim_id": "DENTCLAIM02", "total_charge": 2800, "principal_diagnosis": null, "diagnoses": [],
            "other_diagnoses": [], "rendering_provider": nobody(),
            "orthodontic": {"months_total": 24, "months_remaining": 20, "appliance_placed": "2024-03-01"},
            "subscriber": with(unmasked_subscriber, json!({
                "member_id": "******0002", "last_name": redacted, "first_name": redacted, "relationship": "P",
            })),
            "service_lines": [line(1, "D8080", 2800, Value::Null, Value::Null, Value::Null, json!([]))],
        }),
    );
    vec![dent1, dent2, inst1, inst2]
}

#[test]
fn each_institutional_and_dental_claim_is_one_record_with_its_own_details() {
    let files: Vec<(&str, String)> = FILES.iter().map(|f| (*f, fixture(f))).collect();
    let dir = workspace_with("x12-inst-dental-run", &files);
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    // Each source reads both files: 2 claims of its guide, the other guide's set filtered.
    assert_eq!(counts(&summary), [6, 4, 0, 2], "{summary}");
    let rows = lines(&dir.join(OUT).join("claims.jsonl"));
    let mut got: Vec<Value> = rows.iter().map(|r| normalized(&mapped(r))).collect();
    got.sort_by_key(|r| r["claim_id"].as_str().unwrap().to_string());
    let want: Vec<Value> = expected_rows().iter().map(normalized).collect();
    assert_eq!(got.len(), want.len(), "{rows:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "\n got: {g}\nwant: {w}");
    }
    assert!(rows.iter().all(|r| r["metadata"]["validation_status"] == "valid"), "{rows:?}");
    // No PHI anywhere the run wrote, nor in the plan.
    let phi = phi_of(FILES);
    for v in ["ZYLSTRA", "SYN0000004D", "12 ELM TEST RD", "URBANA", "1951-02-14", "MRN8080801", "TADDEO"] {
        assert!(phi.iter().any(|p| p == v), "{v} in {phi:?}");
    }
    let texts = outputs_and_plans(&out, &dir, &dir.join(OUT), PIPELINE);
    assert_absent(&texts, &phi);
}

#[test]
fn a_set_that_breaks_its_guide_sends_each_of_its_claims_to_the_dlq() {
    // The dental set's SV3 loses its procedure (SV301 is required): the 999 rejects the set.
    let dental = fixture("dental-837d.x12").replace("SV3*AD:D1110*120****1~", "SV3**120****1~");
    let files = [("institutional-837i.x12", fixture("institutional-837i.x12")), ("dental-837d.x12", dental)];
    let dir = workspace_with("x12-inst-dental-dlq", &files);
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    assert_eq!(counts(&summary), [6, 2, 2, 2], "{summary}");
    let rows = lines(&dir.join(OUT).join("claims.jsonl"));
    assert!(rows.iter().all(|r| r["claim_type"] == "institutional"), "{rows:?}");
    let dlq = lines(&dir.join(OUT).join("dlq.jsonl"));
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    for d in &dlq {
        assert_eq!(d["code"], "RT140", "{d}");
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.contains("X12057") && reason.contains("SV301"), "{reason}");
    }
    assert_absent(&outputs(&out, &dir.join(OUT)), &phi_of(FILES));
}
