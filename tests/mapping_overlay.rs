//! A customer's mapping as an overlay of the base (`extends`), through the real binary: only the
//! changed fields are written; the merged mapping is type-checked like a whole one (an error in
//! an override points at the customer's file); the run shows the overrides in the data; and
//! `sluice plan --explain FIELD` names the line that sets a field and the one it overrides.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::text;

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().expect("sluice runs")
}

const ACME: &str = "\
kind: mapping
name: acme-patient-event
description: Acme sends the birth date in PID-7 as usual, but codes visits its own way.
extends: ../../base/hl7v2-patient-event.yaml
tables:
  patient_class: {I: acme-inpatient, O: outpatient, E: emergency, X: day-surgery}
fields:
  encounter:
    type: lookup(PV1-2, patient_class, default=\"other\")
  patient:
    gender: lookup(PID-8, gender, default=\"unknown\")
";

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_customer_overlay_changes_only_its_fields_and_explains_them() {
    let dir = common::workspace("overlay");
    std::fs::create_dir_all(dir.join("mappings/customers/acme")).unwrap();
    std::fs::write(dir.join("mappings/customers/acme/patient-event.yaml"), ACME).unwrap();
    assert!(sluice(&dir, &["run", "pipelines/quickstart.yaml"]).status.success());
    let base = events(&dir);
    let pipeline = dir.join("pipelines/quickstart.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        spec.replace("../mappings/base/hl7v2-patient-event.yaml", "../mappings/customers/acme/patient-event.yaml"),
    )
    .unwrap();

    let check = sluice(&dir, &["check", "mappings/customers/acme/patient-event.yaml"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let explained = sluice(&dir, &["plan", "pipelines/quickstart.yaml", "--explain", "encounter.type"]);
    assert_eq!(
        text(&explained.stdout).trim(),
        "encounter.type in mappings/customers/acme/patient-event.yaml: set at mappings/customers/acme/patient-event.yaml:9, overrides mappings/base/hl7v2-patient-event.yaml:48"
    );
    let inherited = sluice(&dir, &["plan", "pipelines/quickstart.yaml", "--explain", "patient.dob"]);
    assert_eq!(
        text(&inherited.stdout).trim(),
        "patient.dob in mappings/customers/acme/patient-event.yaml: set at mappings/base/hl7v2-patient-event.yaml:22"
    );

    assert!(sluice(&dir, &["run", "pipelines/quickstart.yaml", "--restart"]).status.success());
    let acme = events(&dir);
    assert_eq!(base.len(), acme.len());
    let (mut changed, mut same) = (0, 0);
    for (b, a) in base.iter().zip(&acme) {
        assert_eq!(a["patient"]["dob"], b["patient"]["dob"], "inherited fields are as before");
        assert_eq!(a["patient"]["name"], b["patient"]["name"]);
        if b["encounter"]["type"] == "inpatient" {
            assert_eq!(a["encounter"]["type"], "acme-inpatient", "the customer's table");
            changed += 1;
        } else if b["encounter"]["type"] == a["encounter"]["type"] {
            same += 1;
        }
    }
    assert!(changed > 3 && same > 3, "{changed} changed, {same} unchanged");
    println!("{changed} visit types from the customer's table, {same} unchanged");

    // An override that does not type-check is reported at the customer's line.
    let broken = ACME.replace("lookup(PV1-2, patient_class, default=\"other\")", "lookup(PV1-2, acme_classes)");
    std::fs::write(dir.join("mappings/customers/acme/patient-event.yaml"), broken).unwrap();
    let check = sluice(&dir, &["check", "--format", "json", "mappings/customers/acme/patient-event.yaml"]);
    assert!(!check.status.success());
    let first: Value = serde_json::from_str(text(&check.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["code"], "SL505");
    assert_eq!(first["file"], "mappings/customers/acme/patient-event.yaml");
    assert_eq!(first["line"], 9);
}
