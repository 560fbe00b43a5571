//! End-to-end tests of HL7 v2 -> FHIR R4 (`pipelines/hl7-to-fhir.yaml`) with the real binary:
//! exact resources, references within each Bundle, deterministic ids and bytes, balanced runs,
//! and no PHI in what the run prints or audits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

mod common;
use common::{root, text};

const CLOCK: &str = "2024-01-15T10:30:01Z";

/// A fresh copy of the bundled pipelines, mappings and examples; the run's output files.
fn run(name: &str, threads: &str) -> (common::Workspace, Output) {
    let dir = common::workspace(&format!("e2e-fhir-{name}"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["run", "pipelines/hl7-to-fhir.yaml", "--summary", "json", "--fixed-clock", CLOCK, "--threads", threads])
        .output()
        .unwrap();
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    (dir, out)
}

fn bundles(dir: &Path) -> Vec<Value> {
    let s = std::fs::read_to_string(dir.join("out/hl7-to-fhir/bundles.jsonl")).unwrap();
    s.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn resources<'b>(bundle: &'b Value, ty: &str) -> Vec<&'b Value> {
    bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).filter(|r| r["resourceType"] == ty).collect()
}

fn full_url(r: &Value) -> String {
    format!("urn:uuid:{}", r["id"].as_str().unwrap())
}

/// Every value in the document is non-empty (FHIR JSON has no empty elements).
fn assert_no_empty(v: &Value, at: &str) {
    match v {
        Value::Null => panic!("null at {at}"),
        Value::String(s) => assert!(!s.is_empty(), "empty string at {at}"),
        Value::Array(a) => {
            assert!(!a.is_empty(), "empty array at {at}");
            a.iter().enumerate().for_each(|(i, x)| assert_no_empty(x, &format!("{at}/{i}")));
        }
        Value::Object(o) => {
            assert!(!o.is_empty(), "empty object at {at}");
            o.iter().for_each(|(k, x)| assert_no_empty(x, &format!("{at}/{k}")));
        }
        _ => {}
    }
}

#[test]
fn results_become_a_transaction_bundle_with_exact_resources_and_references() {
    let (dir, out) = run("oru", "2");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["balanced"], true, "{summary}");
    let all = bundles(&dir);
    assert_eq!(all.len(), 45, "one Bundle per ADT and ORU^R01 message");
    // The first message of the feed: ORU^R01 MSG0000000000, one order with four results.
    let b = &all[0];
    assert_eq!((&b["resourceType"], &b["type"]), (&json!("Bundle"), &json!("transaction")));
    let patient = resources(b, "Patient")[0];
    assert_eq!(patient["id"], "5e501eda-aab1-82a4-b7c4-abb75441a061", "ids are fhir_id(type, keys) as documented");
    assert_eq!(
        patient,
        &json!({
            "resourceType": "Patient",
            "id": "5e501eda-aab1-82a4-b7c4-abb75441a061",
            "identifier": [{"value": "52992313", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
            "name": [{"use": "official", "family": "GARCÍA", "given": ["DMITRI", "A"]}],
            "gender": "male",
            "birthDate": "1997-02-08",
            "address": [{"use": "home", "line": ["951 MAPLE DR"], "city": "ALBANY", "state": "NY", "postalCode": "12207", "country": "USA"}],
            "telecom": [{"system": "phone", "use": "home", "value": "419629072"}]
        }),
        "the SSN repetition of PID-3 is not written"
    );
    let encounter = resources(b, "Encounter")[0];
    assert_eq!(encounter["status"], "finished");
    assert_eq!(
        encounter["class"],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER", "display": "emergency"})
    );
    assert_eq!(encounter["identifier"], json!([{"value": "V1728987"}]));
    assert_eq!(encounter["period"], json!({"start": "2024-10-19T20:12:23Z", "end": "2024-12-03T18:03:39Z"}));
    assert_eq!(encounter["subject"]["reference"], full_url(patient));
    let report = resources(b, "DiagnosticReport")[0];
    assert_eq!(
        report["code"]["coding"][0],
        json!({"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel"})
    );
    assert_eq!(report["status"], "unknown", "OBR-25 is empty");
    assert_eq!(report["effectiveDateTime"], "2024-06-15T18:59:29Z");
    let observations = resources(b, "Observation");
    assert_eq!(observations.len(), 4);
    let result_refs: Vec<&Value> = report["result"].as_array().unwrap().iter().map(|r| &r["reference"]).collect();
    let obs_urls: Vec<Value> = observations.iter().map(|o| json!(full_url(o))).collect();
    assert_eq!(result_refs, obs_urls.iter().collect::<Vec<_>>(), "the report lists its results in OBX order");
    let hdl = observations[0];
    assert_eq!(hdl["status"], "final");
    assert_eq!(
        hdl["code"]["coding"][0],
        json!({"system": "http://loinc.org", "code": "2085-9", "display": "HDL Cholesterol"})
    );
    assert_eq!(hdl["valueQuantity"], json!({"value": 25.7, "unit": "mg/dL"}));
    assert_eq!(hdl["effectiveDateTime"], "2024-08-11T23:28:18Z");
    assert_eq!(hdl["referenceRange"], json!([{"text": ">40"}]));
    assert_eq!(hdl["subject"]["reference"], full_url(patient));
    assert_eq!(hdl["encounter"]["reference"], full_url(encounter));
    // Every Bundle: PUT entries keyed by id, references that resolve inside it, no empties.
    let mut patient_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, b) in all.iter().enumerate() {
        assert_no_empty(b, &format!("bundle {i}"));
        let entries = b["entry"].as_array().unwrap();
        let urls: BTreeSet<String> = entries.iter().map(|e| e["fullUrl"].as_str().unwrap().to_string()).collect();
        assert_eq!(urls.len(), entries.len(), "fullUrls are unique in bundle {i}");
        for e in entries {
            let (r, ty) = (&e["resource"], e["resource"]["resourceType"].as_str().unwrap());
            assert_eq!(e["fullUrl"], json!(full_url(r)));
            assert_eq!(e["request"], json!({"method": "PUT", "url": format!("{ty}/{}", r["id"].as_str().unwrap())}));
            let text = r.to_string();
            for reference in text.split("\"reference\":\"").skip(1) {
                let target = reference.split('"').next().unwrap();
                assert!(urls.contains(target), "bundle {i}: {target} is not an entry");
            }
        }
        let p = resources(b, "Patient")[0];
        let Some(mrn) = p["identifier"][0]["value"].as_str() else { continue };
        patient_ids.entry(mrn.to_string()).or_default().insert(p["id"].as_str().unwrap().to_string());
    }
    assert!(patient_ids.values().all(|ids| ids.len() == 1), "one patient, one id, in every message");
}

#[test]
fn adt_events_give_related_persons_allergies_and_conditions() {
    let (dir, _) = run("adt", "1");
    let all = bundles(&dir);
    let with = |ty: &str| all.iter().filter(|b| !resources(b, ty).is_empty()).count();
    assert!(with("RelatedPerson") >= 5 && with("AllergyIntolerance") >= 3 && with("Condition") >= 5);
    let allergy = all.iter().flat_map(|b| resources(b, "AllergyIntolerance")).next().unwrap();
    let b = all.iter().find(|b| resources(b, "AllergyIntolerance").contains(&allergy)).unwrap();
    assert_eq!(allergy["patient"]["reference"], json!(full_url(resources(b, "Patient")[0])));
    assert_eq!(allergy["clinicalStatus"]["coding"][0]["code"], "active");
    for c in all.iter().flat_map(|b| resources(b, "Condition")) {
        assert!(c["code"]["coding"][0]["code"].is_string(), "{c}");
        assert!(c["subject"]["reference"].as_str().unwrap().starts_with("urn:uuid:"));
    }
}

#[test]
fn same_input_same_bytes_and_no_phi_in_console_audit_or_dlq() {
    let (dir, first) = run("determinism-a", "2");
    let (dir2, _) = run("determinism-b", "1");
    for f in ["bundles.jsonl", "dlq.jsonl", "audit.jsonl"] {
        let a = std::fs::read(dir.join("out/hl7-to-fhir").join(f)).unwrap();
        let b = std::fs::read(dir2.join("out/hl7-to-fhir").join(f)).unwrap();
        assert!(a == b, "{f} differs between runs (or thread counts)");
    }
    let sink = std::fs::read_to_string(dir.join("out/hl7-to-fhir/bundles.jsonl")).unwrap();
    let phi = ["GARCÍA", "DMITRI", "MÜLLER", "52992313", "951 MAPLE DR", "766-07-1187", "617-78-8392"];
    assert!(phi.iter().take(5).all(|v| sink.contains(v)), "the EHR policy keeps names, MRNs and addresses");
    assert!(!sink.contains("766-07-1187") && !sink.contains("617-78-8392"), "SSNs never reach FHIR");
    let console = format!("{}{}", text(&first.stdout), text(&first.stderr));
    let audit = std::fs::read_to_string(dir.join("out/hl7-to-fhir/audit.jsonl")).unwrap();
    let dlq: String = std::fs::read_to_string(dir.join("out/hl7-to-fhir/dlq.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!("{} {}", v["reason"], v["findings"])
        })
        .collect();
    for value in phi {
        for (what, haystack) in [("console", &console), ("audit", &audit), ("DLQ reasons", &dlq)] {
            assert!(!haystack.contains(value), "PHI value found in {what}");
        }
    }
}

/// Runs a one-stage FHIR pipeline (mapping text, masking policy text) over `messages` in a
/// fresh directory; the Bundles, the DLQ entries and the run's output.
fn run_mapping(name: &str, mapping: &str, policy: &str, messages: &str) -> (Vec<Value>, Vec<Value>, Output) {
    let dir = common::scratch(&format!("e2e-fhir-{name}"));
    std::fs::write(dir.join("mapping.yaml"), mapping).unwrap();
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
    std::fs::write(dir.join("in.hl7"), messages.replace('\n', "\r")).unwrap();
    let profile = root().join("mappings/base/profiles/default.yaml");
    std::fs::write(
        dir.join("pipeline.yaml"),
        format!(
            "kind: pipeline\nname: t\nsources:\n  src: {{type: files, format: hl7v2, path: [in.hl7], profile: {}}}\n\
             stages:\n  map: {{type: map, inputs: [src], mapping: mapping.yaml}}\n  mask: {{type: mask, inputs: [map], policy: policy.yaml}}\n\
             sinks:\n  out: {{type: jsonl, inputs: [mask], path: out/bundles.jsonl}}\ndlq: {{path: out/dlq.jsonl, plaintext_reason: synthetic test data}}\n",
            profile.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .env("SLUICE_MASK_KEY", "test-key-0123456789")
        .args(["run", "pipeline.yaml", "--fixed-clock", CLOCK])
        .output()
        .unwrap();
    let read = |f: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.join("out").join(f))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (read("bundles.jsonl"), read("dlq.jsonl"), out)
}

const ORU: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240108013554||ORU^R01|MSG1|P|2.5.1\n\
PID|1||123^^^HOSP^MR||DOE^JANE||19800615|F\n\
OBR|1|P1|F1|58410-2^CBC^LN\n\
OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL|||||F\n\
OBX|2|NM|6690-2^WBC^LN||7.1|10*3/uL|||||\n\
";

const KEEP_ALL: &str = "kind: masking\nname: keep\nfields:\n  Patient.name[*].given[*]: \"null\"\nclasses:\n  name: {action: hash}\n  dob: {action: keep, reason: \"test\"}\n  mrn: {action: keep, reason: \"test\"}\n  date: {action: keep, reason: \"test\"}\nhash_key: ${SLUICE_MASK_KEY}\n";

fn oru_mapping(observation_id: &str, status: &str) -> String {
    format!(
        "kind: mapping\nname: t\ninput: {{schema: hl7v2/2.5.1, message_types: [\"ORU^R01\"]}}\noutput: fhir/r4/Bundle\n\
         resources:\n  patient:\n    type: Patient\n    id: PID-3[0].1\n    fields:\n      name[0].family: PID-5.1.1\n      name[0].given:\n        - item: PID-5.2\n      birthDate: date(PID-7)\n\
         \x20 observation:\n    type: Observation\n    each: group(OBSERVATION)\n    as: obs\n    id: [{observation_id}]\n    fields:\n\
         \x20     status: {status}\n      code.coding[0].code: obs.OBX-3.1\n      subject: ref(patient)\n"
    )
}

#[test]
fn masking_applies_to_bundle_leaves_and_bad_resources_go_to_the_dlq() {
    // A hash rule on `name` reaches Patient.name[0].family inside the Bundle.
    // OBX-11 `F` is not a FHIR code: written as is, it is left out (RT311), and a resource
    // without its required status sends the message to the DLQ.
    let (bundles, dlq, out) =
        run_mapping("raw", &oru_mapping("'obs.OBX-1'", "obs.OBX-11"), KEEP_ALL, &ORU.replace("|||||\n", "|||||F\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bundles.is_empty() && dlq[0]["code"] == "RT307", "{dlq:?}");
    let status = r#"'if(obs.OBX-11 == "F", "final", null)'"#;
    let (bundles, dlq, _) = run_mapping("mask", &oru_mapping("'obs.OBX-1'", status), KEEP_ALL, ORU);
    assert_eq!(dlq.len(), 1, "the second OBX has no status (OBX-11): {dlq:?}");
    assert_eq!(dlq[0]["code"], "RT307");
    assert_eq!(dlq[0]["findings"][0]["path"], "Observation.status");
    assert!(bundles.is_empty());
    let ok = ORU.replace("10*3/uL|||||\n", "10*3/uL|||||F\n");
    let (bundles, dlq, _) = run_mapping("mask-ok", &oru_mapping("'obs.OBX-1'", status), KEEP_ALL, &ok);
    assert!(dlq.is_empty(), "{dlq:?}");
    let patient = resources(&bundles[0], "Patient")[0];
    let family = patient["name"][0]["family"].as_str().unwrap();
    assert!(family.starts_with("h:") && family.len() == 66, "hashed by the policy: {family}");
    assert_eq!(patient["name"][0].as_object().unwrap().len(), 1, "the nulled given name is left out: {patient}");
    assert_eq!(patient["birthDate"], "1980-06-15");
    assert_eq!(resources(&bundles[0], "Observation").len(), 2);
    // Two observations with the same key: the message goes to the DLQ, not a Bundle whose
    // entries overwrite each other.
    let (bundles, dlq, _) = run_mapping("dup", &oru_mapping("MSH-10", status), KEEP_ALL, &ok);
    assert!(bundles.is_empty());
    assert_eq!(dlq[0]["code"], "RT310");
}

#[test]
fn check_refuses_a_resource_without_its_required_elements() {
    let dir = common::scratch("e2e-fhir-required");
    let mapping = oru_mapping("'obs.OBX-1'", "obs.OBX-11").replace("      status: obs.OBX-11\n", "");
    assert!(!mapping.contains("status"));
    std::fs::write(dir.join("mapping.yaml"), mapping).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(&dir).args(["check", "mapping.yaml"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("SL408") && err.contains("Observation requires `status`, which is not mapped"), "{err}");
}

#[test]
fn check_refuses_filters_on_bundles() {
    let dir = common::scratch("e2e-fhir-filter");
    let base = root().join("mappings/base");
    let pipeline = format!(
        "kind: pipeline\nname: t\nsources:\n  src: {{type: files, format: hl7v2, path: [x.hl7], profile: {b}/profiles/default.yaml}}\n\
         stages:\n  m: {{type: map, inputs: [src], mapping: {b}/hl7v2-fhir-oru.yaml}}\n  f: {{type: filter, inputs: [m], keep: 'type == \"transaction\"'}}\n\
         \x20 k: {{type: mask, inputs: [f], policy: {b}/policies/fhir-ehr.yaml}}\nsinks:\n  o: {{type: jsonl, inputs: [k], path: o.jsonl}}\ndlq: {{path: d.jsonl, plaintext_reason: synthetic test data}}\n",
        b = base.display()
    );
    std::fs::write(dir.join("p.yaml"), pipeline).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(&dir).args(["check", "p.yaml"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(err.contains("SL306") && err.contains("its input emits FHIR Bundles"), "{err}");
}
