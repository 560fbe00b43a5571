//! End-to-end tests of the `format: fhir` files source (`pipelines/fhir-patients.yaml`) with
//! the real binary: a Bundle with bad entries delivers the rest (the bad ones in the DLQ and
//! the audit, the run balanced), NDJSON and XML input, a file that is not JSON at all, the plan
//! and the PHI proof over FHIR paths, and no name or SSN from the data anywhere but the sink.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::{json_lines as lines, sluice_debug as sluice, text};

const CLOCK: &str = "2024-01-20T12:00:00Z";
const PIPELINE: &str = "pipelines/fhir-patients.yaml";
const DATA: &str = "examples/fhir-patients/data";

/// A Bundle whose second entry is not JSON, third breaks strict validation (a `birthDate` that
/// is not a date) and whose others are sound: a Patient and an Observation (filtered).
const BROKEN_BUNDLE: &str = r#"{"resourceType":"Bundle","type":"collection","entry":[
{"fullUrl":"urn:uuid:aa000000-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","id":"bb-1","identifier":[{"system":"urn:oid:2.16.840.1.113883.19.5","value":"MRN-80000001"}],"name":[{"family":"Brokenbundle","given":["Golf"]}],"gender":"male","birthDate":"1970-05-05"}},
{"fullUrl":"urn:uuid:aa000000-0000-4000-8000-000000000002","resource":{"resourceType":"Patient","id":"bb-2","name":[{"family":"Unparseable" "given":["Hotel"]}]}},
{"fullUrl":"urn:uuid:aa000000-0000-4000-8000-000000000003","resource":{"resourceType":"Patient","id":"bb-3","identifier":[{"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-00-4321"}],"name":[{"family":"Notadate","given":["India"]}],"birthDate":"05/05/1970"}},
{"fullUrl":"urn:uuid:aa000000-0000-4000-8000-000000000004","resource":{"resourceType":"Observation","id":"bb-obs","status":"final","code":{"text":"pulse"},"subject":{"reference":"urn:uuid:aa000000-0000-4000-8000-000000000001"}}}
]}"#;

/// A DLQ entry as the test compares it: file, index in the file, code, findings (code, path).
type DlqEntry = (String, u64, String, Vec<(String, String)>);

/// A copy of the bundled pipelines and examples with the broken Bundle added to the data.
fn workspace(name: &str) -> common::Workspace {
    let dir = common::workspace(&format!("fhir-source-{name}"));
    std::fs::write(dir.join(DATA).join("zz-broken-bundle.json"), BROKEN_BUNDLE).unwrap();
    dir
}

fn run(dir: &Path) -> (Value, Output) {
    let out = sluice(dir, &["run", PIPELINE, "--summary", "json", "--fixed-clock", CLOCK, "--log-format", "json"]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    let summary: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    (summary, out)
}

#[test]
fn a_bundle_with_bad_entries_delivers_the_rest_and_the_run_balances() {
    let dir = workspace("partial");
    let (summary, _) = run(&dir);
    // bulk-patients.ndjson: 2; clinic-bundle.json: 4 (an Observation, a Patient with an
    // invalid gender); referral-patient.xml: 1; zz-broken-bundle.json: 4.
    assert_eq!(
        (&summary["records_in"], &summary["delivered"], &summary["dlq"], &summary["filtered"], &summary["balanced"]),
        (&Value::from(11), &Value::from(6), &Value::from(3), &Value::from(2), &Value::Bool(true)),
        "{summary}"
    );
    let out = dir.join("out/fhir-patients");
    let ids: Vec<String> = lines(&out.join("patient-events.jsonl"))
        .iter()
        .map(|r| r["metadata"]["message_id"].as_str().unwrap().to_string())
        .collect();
    // NDJSON lines, the Bundle's good entries, the XML resource and the broken Bundle's good
    // entry, in file order.
    assert_eq!(ids, ["fx-2001", "fx-2002", "fx-1001", "fx-1003", "fx-3001", "bb-1"]);

    let dlq = lines(&out.join("dlq.jsonl"));
    let described: Vec<DlqEntry> = dlq
        .iter()
        .map(|e| {
            let findings = e["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["code"].as_str().unwrap().to_string(), f["path"].as_str().unwrap_or("").to_string()))
                .collect();
            (
                e["file"].as_str().unwrap().to_string(),
                e["message_index"].as_u64().unwrap(),
                e["code"].as_str().unwrap().to_string(),
                findings,
            )
        })
        .collect();
    let bundle = format!("{DATA}/clinic-bundle.json");
    let broken = format!("{DATA}/zz-broken-bundle.json");
    assert_eq!(
        described,
        [
            (bundle, 2, "RT116".into(), vec![("FHIR106".into(), "Bundle.entry[2].resource.gender".into())]),
            (broken.clone(), 1, "RT115".into(), vec![("FHIR001".into(), String::new())]),
            (broken, 2, "RT116".into(), vec![("FHIR103".into(), "Bundle.entry[2].resource.birthDate".into())]),
        ]
    );
    // The unreadable entry's reason gives the byte offset of the error in the file.
    let reason = dlq[1]["reason"].as_str().unwrap();
    let at: usize = reason.split("file offset ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
    assert_eq!(at, BROKEN_BUNDLE.find(r#" "given":["Hotel"]"#).unwrap() + 1, "{reason}");
    // The DLQ keeps each bad entry's bytes exactly (encrypted at rest).
    let raws = common::dlq_raws(&out.join("dlq.jsonl"));
    assert!(raws[1].starts_with(r#"{"fullUrl":"urn:uuid:aa000000-0000-4000-8000-000000000002""#), "{}", raws[1]);
    assert!(BROKEN_BUNDLE.contains(&raws[2]));

    // The audit has one entry per record, the DLQ ones with their code; the chain verifies.
    let audit = lines(&out.join("audit.jsonl"));
    let events: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e["record"].is_string())
        .map(|e| (e["record"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(events.len(), 11);
    assert!(events.contains(&(&format!("fhir_files:{DATA}/zz-broken-bundle.json#1"), "dlq")), "{events:?}");
    assert!(events.contains(&(&format!("fhir_files:{DATA}/zz-broken-bundle.json#3"), "filtered")), "{events:?}");
    let verify = sluice(&dir, &["audit", "verify", "out/fhir-patients/audit.jsonl"]);
    assert!(verify.status.success(), "{}{}", text(&verify.stdout), text(&verify.stderr));
}

#[test]
fn a_file_that_is_not_json_is_one_dlq_record_with_its_offset() {
    let dir = common::workspace("fhir-source-garbage");
    let data = dir.join(DATA);
    for f in std::fs::read_dir(&data).unwrap().flatten() {
        std::fs::remove_file(f.path()).unwrap();
    }
    let garbage = "{\"resourceType\": \"Patient\", \"id\": ]";
    std::fs::write(data.join("a.json"), garbage).unwrap();
    std::fs::write(data.join("b.json"), "").unwrap();
    let (summary, _) = run(&dir);
    assert_eq!(
        (&summary["records_in"], &summary["dlq"], &summary["balanced"]),
        (&Value::from(2), &Value::from(2), &Value::Bool(true))
    );
    let dlq = lines(&dir.join("out/fhir-patients/dlq.jsonl"));
    assert_eq!(dlq[0]["code"], "RT115");
    let at = format!("file offset {}:", garbage.find(']').unwrap());
    assert!(dlq[0]["reason"].as_str().unwrap().contains(&at), "{}", dlq[0]["reason"]);
    assert_eq!(dlq[1]["code"], "RT115");
}

/// An XML Bundle: a good Patient, one with an invalid gender, one whose markup is broken, and
/// an Observation. The entries are streamed one by one like a JSON Bundle's.
const XML_BUNDLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Bundle xmlns="http://hl7.org/fhir">
  <type value="collection"/>
  <entry>
    <fullUrl value="urn:uuid:cc000000-0000-4000-8000-000000000001"/>
    <resource><Patient><id value="xb-1"/><meta><lastUpdated value="2024-01-18T10:00:00Z"/></meta><identifier><system value="urn:oid:2.16.840.1.113883.19.5"/><value value="MRN-70050001"/></identifier><name><family value="Xmlbundlea"/><given value="Juliet"/></name><gender value="female"/><birthDate value="1971-02-03"/></Patient></resource>
  </entry>
  <entry>
    <resource><Patient><id value="xb-2"/><name><family value="Xmlbundleb"/><given value="Kilo"/></name><gender value="womanish"/></Patient></resource>
  </entry>
  <entry>
    <resource><Patient><id value="xb-3"/><name><family value="Xmlbundlec"/><given value="Lima"></name></Patient></resource>
  </entry>
  <entry>
    <resource><Observation><id value="xb-4"/><status value="final"/><code><text value="weight"/></code></Observation></resource>
  </entry>
</Bundle>
"#;

#[test]
fn an_xml_bundle_streams_entry_by_entry_with_bad_entries_in_the_dlq() {
    let dir = common::workspace("fhir-source-xml-bundle");
    let data = dir.join(DATA);
    for f in std::fs::read_dir(&data).unwrap().flatten() {
        std::fs::remove_file(f.path()).unwrap();
    }
    std::fs::write(data.join("bundle.xml"), XML_BUNDLE).unwrap();
    let (summary, out) = run(&dir);
    assert_eq!(
        (&summary["records_in"], &summary["delivered"], &summary["dlq"], &summary["filtered"], &summary["balanced"]),
        (&Value::from(4), &Value::from(1), &Value::from(2), &Value::from(1), &Value::Bool(true)),
        "{summary}"
    );
    let out_dir = dir.join("out/fhir-patients");
    let events = lines(&out_dir.join("patient-events.jsonl"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["metadata"]["message_id"], "xb-1");
    let dlq = lines(&out_dir.join("dlq.jsonl"));
    let codes: Vec<(u64, &str)> =
        dlq.iter().map(|e| (e["message_index"].as_u64().unwrap(), e["code"].as_str().unwrap())).collect();
    assert_eq!(codes, [(1, "RT116"), (2, "RT115")]);
    assert_eq!(dlq[0]["findings"][0]["path"], "Bundle.entry[1].resource.gender");
    // The broken entry's reason gives the byte offset of the entry in the file.
    let reason = dlq[1]["reason"].as_str().unwrap();
    let at: usize = reason.split("file offset ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
    let third = XML_BUNDLE.match_indices("<entry>").nth(2).unwrap().0;
    assert_eq!(at, third, "{reason}");
    // The DLQ keeps the invalid entry as the JSON it was converted to.
    let raws = common::dlq_raws(&out_dir.join("dlq.jsonl"));
    assert!(raws[0].starts_with(r#"{"resource":{"resourceType":"Patient","id":"xb-2""#), "{}", raws[0]);
    // No name from the data in the logs.
    let logs = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for name in ["Xmlbundlea", "Xmlbundleb", "Xmlbundlec", "Juliet", "Kilo", "Lima"] {
        assert!(!logs.contains(name), "{name} leaked");
    }
}

/// Names and SSNs in the example data (and the broken Bundle): what a leak would show.
fn phi_values(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let collect = |v: &Value, out: &mut Vec<String>| {
        for n in v["name"].as_array().into_iter().flatten() {
            out.extend(n["family"].as_str().map(String::from));
            out.extend(
                n["given"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str())
                    .filter(|g| g.len() > 1)
                    .map(String::from),
            );
        }
        for i in v["identifier"].as_array().into_iter().flatten() {
            if i["system"] == "http://hl7.org/fhir/sid/us-ssn" {
                out.extend(i["value"].as_str().map(String::from));
            }
        }
    };
    let data = dir.join(DATA);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&data).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let parsed: Vec<Value> = if f.extension().is_some_and(|e| e == "ndjson") {
            text(&bytes).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
        } else if f.extension().is_some_and(|e| e == "xml") {
            let node = sluice_fhir::read(&bytes).unwrap();
            vec![serde_json::from_str(&node.to_json()).unwrap()]
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => v["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect(),
                // The broken Bundle is not JSON: its names are known.
                Err(_) => {
                    out.extend(
                        ["Brokenbundle", "Golf", "Unparseable", "Hotel", "Notadate", "India", "999-00-4321"]
                            .map(String::from),
                    );
                    vec![]
                }
            }
        };
        parsed.iter().for_each(|v| collect(v, &mut out));
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn no_name_or_ssn_leaves_except_as_the_policy_says() {
    let dir = workspace("phi");
    let phi = phi_values(&dir);
    assert!(
        phi.len() >= 20 && phi.contains(&"Testpatient".to_string()) && phi.contains(&"999-00-1234".to_string()),
        "{phi:?}"
    );
    let (_, run_out) = run(&dir);
    let plan = sluice(&dir, &["plan", PIPELINE]);
    let check = sluice(&dir, &["check", PIPELINE]);
    let out = dir.join("out/fhir-patients");
    let mut places: Vec<(String, String)> = vec![
        ("run stdout".into(), text(&run_out.stdout)),
        ("run stderr (debug logs)".into(), text(&run_out.stderr)),
        ("plan".into(), text(&plan.stdout) + &text(&plan.stderr)),
        ("check".into(), text(&check.stdout) + &text(&check.stderr)),
        ("audit".into(), std::fs::read_to_string(out.join("audit.jsonl")).unwrap()),
        // The DLQ's readable part (its raw bytes are encrypted).
        ("dlq".into(), std::fs::read_to_string(out.join("dlq.jsonl")).unwrap()),
        // Names are redacted and SSNs cut to their last four digits in the sink.
        ("sink".into(), std::fs::read_to_string(out.join("patient-events.jsonl")).unwrap()),
    ];
    places.push(("all".into(), places.iter().map(|(_, t)| t.as_str()).collect()));
    for (place, hay) in &places {
        for value in &phi {
            assert!(!hay.contains(value.as_str()), "`{value}` found in the {place}");
        }
    }
}

#[test]
fn the_plan_shows_the_fhir_source_and_the_masking_matrix() {
    let dir = common::workspace("fhir-source-plan");
    let plan = sluice(&dir, &["plan", PIPELINE]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let p = text(&plan.stdout);
    for want in [
        "source fhir_files  [emits fhir/r4/Patient]",
        "files examples/fhir-patients/data/* (fhir)",
        "fhir R4: resource types Patient, validation strict, profile none",
        "mapping fhir-patient-event (examples/fhir-patients/patient-event.yaml): fhir/r4 -> canonical/patient-event@1",
        "patient.name: string  PHI: name",
    ] {
        assert!(p.contains(want), "`{want}` not in the plan:\n{p}");
    }
    let matrix: Vec<Vec<&str>> = p
        .lines()
        .skip_while(|l| !l.starts_with("masking matrix"))
        .skip(1)
        .map(|l| l.split_whitespace().take(4).collect())
        .filter(|r: &Vec<&str>| r.len() == 4)
        .collect();
    assert_eq!(
        matrix,
        [
            ["patient_events", "patient.dob", "dob", "keep"],
            ["patient_events", "patient.id", "mrn", "keep"],
            ["patient_events", "patient.identifiers[*].value", "ssn", "partial"],
            ["patient_events", "patient.identifiers[*].value", "mrn", "keep"],
            ["patient_events", "patient.name", "name", "redact"],
        ]
    );
}

#[test]
fn a_patient_name_sent_unmasked_is_refused_and_masking_fixes_it() {
    let dir = common::workspace("fhir-source-proof");
    let policy = dir.join("examples/fhir-patients/policy.yaml");
    let original = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, original.replace("  name: redact\n", "")).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(1));
    let err = text(&check.stderr);
    assert!(err.contains("SL601") && err.contains("`patient.name` carries PHI class `name`"), "{err}");
    let run = sluice(&dir, &["run", PIPELINE]);
    assert_eq!(run.status.code(), Some(1), "a refused plan does not run");
    assert!(!dir.join("out/fhir-patients/patient-events.jsonl").exists());
    std::fs::write(&policy, original).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn a_mapping_path_that_does_not_exist_is_refused_where_it_is_written() {
    let dir = common::workspace("fhir-source-path");
    let mapping = dir.join("examples/fhir-patients/patient-event.yaml");
    let m = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(&mapping, m.replace("    dob: birthDate\n", "    dob: birthdate\n")).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(1));
    let err = text(&check.stderr);
    assert!(err.contains("SL232") && err.contains("did you mean `birthDate`?"), "{err}");
    assert!(err.contains("patient-event.yaml:19:10"), "{err}");
}

#[test]
fn references_resolve_to_other_entries_of_the_bundle_in_mappings() {
    let dir = common::workspace("fhir-source-resolve");
    std::fs::write(
        dir.join("obs.yaml"),
        r#"kind: mapping
name: fhir-observation-subject
input:
  schema: fhir/r4
  resource_type: Observation
output: canonical/patient-event@1
fields:
  metadata:
    source_system: '"fhir"'
    message_type: '"Observation"'
    message_id: id
    received_at: effective.as(dateTime)
  patient:
    id: subject.resolve().identifier[0].value
    dob: subject.resolve().birthDate
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("policy.yaml"),
        "kind: masking\nname: obs\nclasses:\n  mrn: {action: keep, reason: \"join key\"}\n  date: {action: keep, reason: \"measurement time\"}\n",
    )
    .unwrap();
    let pipeline = format!(
        "kind: pipeline\nname: fhir-observations\nsources:\n  fhir_files:\n    type: files\n    format: fhir\n    path: {DATA}/clinic-bundle.json\n    resource_types: [Observation]\nstages:\n  to_event:\n    type: map\n    inputs: [fhir_files]\n    mapping: obs.yaml\n  mask:\n    type: mask\n    inputs: [to_event]\n    policy: policy.yaml\nsinks:\n  events:\n    type: jsonl\n    inputs: [mask]\n    path: out/events.jsonl\ndlq:\n  path: out/dlq.jsonl\n  plaintext_reason: synthetic test data\n"
    );
    std::fs::write(dir.join("obs-pipeline.yaml"), pipeline).unwrap();
    // The resolved birth date carries class `dob`, which the policy does not name: refused.
    let check = sluice(&dir, &["check", "obs-pipeline.yaml"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check.stderr).contains("`patient.dob` carries PHI class `dob`"), "{}", text(&check.stderr));
    let policy = std::fs::read_to_string(dir.join("policy.yaml")).unwrap();
    std::fs::write(dir.join("policy.yaml"), policy + "  dob: {action: keep, reason: \"cohort rules\"}\n").unwrap();
    let out = sluice(&dir, &["run", "obs-pipeline.yaml", "--summary", "json", "--fixed-clock", CLOCK]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = lines(&dir.join("out/events.jsonl"));
    assert_eq!(events.len(), 1);
    // The Observation's subject is `urn:uuid:...0001`: the first Patient of the Bundle.
    assert_eq!(events[0]["patient"]["id"], "MRN-70020001");
    assert_eq!(events[0]["patient"]["dob"], "1980-01-15");
    assert_eq!(events[0]["metadata"]["received_at"], "2024-01-15T10:00:00Z");
}
