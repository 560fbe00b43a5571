//! De-identification through the real binary: the bundled message-tables pipeline run once
//! with a policy that keeps every value (for reference) and then with a research policy that generalizes (ZIP to 3 digits, birth date to year) and shifts dates per patient.
//! Compared record by record: every postal code is its first 3 digits (or `000`), every birth
//! date its year, and each patient's dates all move by the same number of days (so intervals
//! hold), the same in a second run; no original ZIP or birth date is left in the output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::text;

const POLICY: &str = "\
kind: masking
name: research-deid
hash_key: ${SLUICE_TEST_MASK_KEY}
classes:
  name: redact
  address: redact
  phone: redact
  email: redact
  ssn: redact
  other_id: redact
  account_number: redact
  mrn: hash
  dob: {action: generalize, to: year}
  date: {action: shift_date, subject: patient.id, max_days: 180}
fields:
  patient.postal_code: {action: generalize, to: zip3}
";

/// The reference run keeps every value, to compare with.
const KEEP_ALL: &str = "\
kind: masking
name: reference
classes:
  name: {action: keep, reason: test reference}
  address: {action: keep, reason: test reference}
  phone: {action: keep, reason: test reference}
  email: {action: keep, reason: test reference}
  ssn: {action: keep, reason: test reference}
  other_id: {action: keep, reason: test reference}
  account_number: {action: keep, reason: test reference}
  mrn: {action: keep, reason: test reference}
  dob: {action: keep, reason: test reference}
  date: {action: keep, reason: test reference}
";

const KEY: &str = "a-test-key-for-de-identification";

/// Runs the message-tables pipeline in `dir`; returns its ADT, ORM and ORU records by
/// message control id.
fn run(dir: &Path) -> BTreeMap<String, Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .env("SLUICE_TEST_MASK_KEY", KEY)
        .args(["run", "pipelines/hl7-message-tables.yaml", "--fixed-clock", "2024-01-15T10:30:01Z"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let mut records = BTreeMap::new();
    for table in ["adt_messages", "orm_messages", "oru_messages"] {
        let path = dir.join(format!("out/hl7-message-tables/{table}.jsonl"));
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            records.insert(v["message_control_id"].as_str().unwrap().to_string(), v);
        }
    }
    records
}

/// The text plan of the message-tables pipeline in `dir`.
fn plan(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(["plan", "pipelines/hl7-message-tables.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn days(date: &str) -> i64 {
    let (y, m, d) = (date[..4].parse().unwrap(), date[5..7].parse().unwrap(), date[8..10].parse().unwrap());
    sluice_runtime::time::days_from_civil(y, m, d)
}

/// Every `(path, date)` of the record's `date`-classed fields that are set (the masking
/// matrix of `sluice plan` lists them; MSH-7, `message_datetime`, is not one).
fn dates(record: &Value) -> Vec<(&'static str, String)> {
    [
        "/visit/admit_datetime",
        "/visit/discharge_datetime",
        "/event/recorded_datetime",
        "/event/planned_datetime",
        "/event/occurred_datetime",
        "/orders/0/observation_datetime",
        "/orders/0/requested_datetime",
        "/orders/0/transaction_datetime",
    ]
    .into_iter()
    .filter_map(|p| record.pointer(p).and_then(Value::as_str).map(|d| (p, d.to_string())))
    .collect()
}

#[test]
fn generalized_and_shifted_values_keep_what_research_needs() {
    let dir = common::workspace("deidentify");
    let policies = dir.join("mappings/base/policies");
    std::fs::write(policies.join("message-tables.yaml"), KEEP_ALL).unwrap();
    let reference = run(&dir);
    std::fs::write(policies.join("message-tables.yaml"), POLICY).unwrap();
    let plan = plan(&dir);
    assert!(plan.contains("generalize") && plan.contains("shift_date"), "the masking matrix shows them: {plan}");
    let masked = run(&dir);
    assert_eq!(masked, run(&dir), "a second run gives the same pseudonyms, years and shifts");
    assert_eq!(masked.len(), reference.len());

    let (mut zips, mut births, mut shifted) = (0, 0, 0);
    let mut shift_of: BTreeMap<String, i64> = BTreeMap::new();
    let mut originals = BTreeSet::new();
    for (id, before) in &reference {
        let after = &masked[id];
        if let Some(zip) = before.pointer("/patient/postal_code").and_then(Value::as_str) {
            originals.insert(zip.to_string());
            let expected = if zip.len() >= 5 && zip[..5].bytes().all(|b| b.is_ascii_digit()) {
                Value::from(if zip.starts_with("036") { "000" } else { &zip[..3] })
            } else {
                Value::Null
            };
            assert_eq!(after["patient"]["postal_code"], expected, "{id}");
            zips += 1;
        }
        if let Some(dob) = before.pointer("/patient/dob").and_then(Value::as_str) {
            originals.insert(dob.to_string());
            assert_eq!(after["patient"]["dob"], Value::from(&dob[..4]), "{id}");
            births += 1;
        }
        assert_eq!(after["message_datetime"], before["message_datetime"], "{id}: not PHI, kept");
        // The subject is the patient id before masking; after, it is a pseudonym, the same
        // for all of the patient's records.
        let Some(patient) = after.pointer("/patient/id").and_then(Value::as_str) else { continue };
        assert!(patient.starts_with("h:"), "{id}: the id is hashed");
        for ((path, was), (_, now)) in dates(before).iter().zip(dates(after)) {
            assert_eq!(was[10..], now[10..], "{id} {path}: the time of day stays");
            let shift = days(&now) - days(was);
            assert!(shift != 0 && shift.abs() <= 180, "{id} {path}: shifted {shift} days");
            let first = *shift_of.entry(patient.to_string()).or_insert(shift);
            assert_eq!(shift, first, "{id} {path}: all of a patient's dates move together");
            shifted += 1;
        }
    }
    println!("{zips} postal codes, {births} birth dates, {shifted} dates of {} patients", shift_of.len());
    assert!(zips > 10 && births > 10 && shifted > 20 && shift_of.len() > 3);
    let distinct: BTreeSet<i64> = shift_of.values().copied().collect();
    assert!(distinct.len() > 1, "patients get different shifts");
    let output = ["adt_messages", "orm_messages", "oru_messages"]
        .map(|t| std::fs::read_to_string(dir.join(format!("out/hl7-message-tables/{t}.jsonl"))).unwrap())
        .concat();
    for v in originals.iter().filter(|v| v.len() >= 5) {
        assert!(!output.contains(&format!("\"{v}\"")), "an original ZIP or birth date is in the output");
    }
}

/// Two admissions of people born 90 years before the run's date (2024-01-15, `run` pins the
/// clock) and one day later: the first is 90 that day, the second 89.
const BOUNDARY_ADMISSIONS: &str = "\
MSH|^~\\&|SENDAPP|GENERAL HOSP|RECVAPP|RECVFAC|20240110080000||ADT^A01|MSGBOUNDARY90|P|2.3|||AL|NE||\r\
EVN|A01|20240110080000\r\
PID|1||90000001^^^HOSP^MR||NONAGENARIAN^ADA^A^^^^L||19340115|F|||1 ELM ST^^MADISON^WI^53703^USA^H|||||W||ACC9000001|\r\
PV1|1|P|5W^218^A^HOSP||||3873^JOHNSON^ANNA^^^DR^MD|||MED|||||||3873^JOHNSON^ANNA^^^DR^MD||V9000001\r\
MSH|^~\\&|SENDAPP|GENERAL HOSP|RECVAPP|RECVFAC|20240110080100||ADT^A01|MSGBOUNDARY89|P|2.3|||AL|NE||\r\
EVN|A01|20240110080100\r\
PID|1||90000002^^^HOSP^MR||OCTOGENARIAN^BEA^A^^^^L||19340116|F|||2 ELM ST^^MADISON^WI^53703^USA^H|||||W||ACC9000002|\r\
PV1|1|P|5W^218^A^HOSP||||3873^JOHNSON^ANNA^^^DR^MD|||MED|||||||3873^JOHNSON^ANNA^^^DR^MD||V9000002\r";

/// What Safe Harbor makes of an ISO birth date on 2024-01-15, worked out independently of the
/// runtime: 90 or older (born on or before 1934-01-15) is `90+`, else the year.
fn safe_harbor_birth(dob: &str) -> Value {
    Value::from(if dob.get(..10).unwrap_or(dob) <= "1934-01-15" { "90+" } else { &dob[..4] })
}

/// The built-in Safe Harbor policy under a site's own: its rules apply where the site's do not,
/// the plan says which file and line decided each field, and the site's key serves its `hash`.
/// Birth dates of people 90 or older on the run's date become `90+`.
#[test]
fn a_policy_extends_the_built_in_safe_harbor_policy() {
    let dir = common::workspace("safe-harbor");
    std::fs::write(dir.join("examples/hl7/boundary-ages.hl7"), BOUNDARY_ADMISSIONS).unwrap();
    let policies = dir.join("mappings/base/policies");
    std::fs::write(policies.join("message-tables.yaml"), KEEP_ALL).unwrap();
    let reference = run(&dir);
    let site = "\
kind: masking
name: site-research
extends: hipaa_safe_harbor
hash_key: ${SLUICE_TEST_MASK_KEY}
classes:
  mrn: hash                                   # a pseudonym, to join extracts
fields:
  patient.postal_code: {action: generalize, to: zip3}
";
    std::fs::write(policies.join("message-tables.yaml"), site).unwrap();
    let plan = plan(&dir);
    let row = |field: &str, class: &str| {
        plan.lines()
            .find(|l| {
                l.contains("adt_messages") && l.contains(&format!(" {field} ")) && l.contains(&format!(" {class} "))
            })
            .unwrap_or_else(|| panic!("no matrix row for {field} ({class}): {plan}"))
            .to_string()
    };
    assert!(
        row("patient.dob", "dob").contains("generalize")
            && row("patient.dob", "dob").contains("<built-in>/hipaa_safe_harbor.yaml:")
    );
    assert!(row("patient.id", "mrn").contains("hash") && row("patient.id", "mrn").contains("message-tables.yaml:6"));
    assert!(row("patient.postal_code", "address").contains("message-tables.yaml:8"), "{plan}");
    assert_eq!(reference["MSGBOUNDARY90"]["patient"]["dob"], "1934-01-15", "the reference keeps the date");
    assert_eq!(reference["MSGBOUNDARY89"]["patient"]["dob"], "1934-01-16");
    let masked = run(&dir);
    assert_eq!(masked["MSGBOUNDARY90"]["patient"]["dob"], "90+", "90 on the run's date: one category");
    assert_eq!(masked["MSGBOUNDARY89"]["patient"]["dob"], "1934", "89 on the run's date: the year");
    let mut checked = 0;
    let mut nonagenarians = 0;
    for (id, before) in &reference {
        let after = &masked[id];
        if let Some(dob) = before.pointer("/patient/dob").and_then(Value::as_str) {
            assert_eq!(after["patient"]["dob"], safe_harbor_birth(dob), "{id}");
            nonagenarians += usize::from(after["patient"]["dob"] == "90+");
        }
        if let Some(admit) = before.pointer("/visit/admit_datetime").and_then(Value::as_str) {
            assert_eq!(after["visit"]["admit_datetime"], Value::from(&admit[..4]), "{id}: dates keep their year");
        }
        if before.pointer("/patient/family_name").and_then(Value::as_str).is_some() {
            assert_eq!(after["patient"]["family_name"], "[REDACTED]", "{id}");
        }
        if let Some(zip) = before.pointer("/patient/postal_code").and_then(Value::as_str) {
            assert_eq!(after["patient"]["postal_code"].as_str(), Some(&zip[..3]), "{id}");
        }
        assert!(after["patient"]["id"].as_str().is_none_or(|v| v.starts_with("h:")), "{id}");
        checked += 1;
    }
    assert!(checked > 40);
    assert!(nonagenarians > 1, "the boundary case and the example data's people over 89: {nonagenarians}");
    for (id, before) in &reference {
        if let Some(dob) =
            before.pointer("/patient/dob").and_then(Value::as_str).filter(|d| d.get(..10).unwrap_or(d) <= "1934-01-15")
        {
            let record = masked[id].to_string();
            assert!(!record.contains(&format!("\"{}\"", &dob[..4])), "{id}: the birth year of a person over 89");
        }
    }
}

/// A sink that declares `phi: {allowed: true, reason}` may take raw messages and unmasked
/// fields; the plan says so in capitals and puts each field in the masking matrix as `keep`,
/// decided at that line. Without the declaration the same pipeline does not compile (SL601).
#[test]
fn a_sink_that_allows_phi_gets_it_in_clear_and_the_plan_says_so() {
    let dir = common::workspace("phi-allowed");
    let spec = "\
kind: pipeline
name: archive
sources:
  hl7_files:
    type: files
    format: hl7v2
    path: ../examples/hl7/feed-2024-01-15.hl7
    profile: ../mappings/base/profiles/default.yaml
stages:
  to_event:
    type: map
    inputs: [hl7_files]
    mapping: ../mappings/base/hl7v2-patient-event.yaml
sinks:
  raw_archive:
    type: jsonl
    inputs: [hl7_files]
    path: ../out/archive/raw.jsonl
    phi: {allowed: true, reason: \"the covered entity's own message archive\"}
  ehr_events:
    type: jsonl
    inputs: [to_event]
    path: ../out/archive/events.jsonl
    phi:
      allowed: true
      reason: \"treatment: the care team's EHR feed\"
dlq:
  path: ../out/archive/dlq.jsonl
  plaintext_reason: synthetic test data
";
    std::fs::write(dir.join("pipelines/archive.yaml"), spec).unwrap();
    let sluice =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(&*dir).args(args).output().unwrap();
    let plan = sluice(&["plan", "pipelines/archive.yaml"]);
    let plan_text = text(&plan.stdout);
    assert!(plan.status.success(), "{plan_text}{}", text(&plan.stderr));
    assert!(plan_text.contains("PHI ALLOWED in clear: the covered entity's own message archive"), "{plan_text}");
    let ssn_row = plan_text
        .lines()
        .find(|l| l.contains("ehr_events") && l.contains(" ssn "))
        .unwrap_or_else(|| panic!("the matrix lists the SSN: {plan_text}"));
    assert!(
        ssn_row.contains("keep") && ssn_row.contains("pipelines/archive.yaml:25 (phi allowed: treatment"),
        "{ssn_row}"
    );
    let run = sluice(&["run", "pipelines/archive.yaml"]);
    assert!(run.status.success(), "{}{}", text(&run.stdout), text(&run.stderr));
    let raw = std::fs::read_to_string(dir.join("out/archive/raw.jsonl")).unwrap();
    let events = std::fs::read_to_string(dir.join("out/archive/events.jsonl")).unwrap();
    let phi = common::phi_values(&[dir.join("examples/hl7/feed-2024-01-15.hl7")]);
    assert!(phi.iter().any(|v| raw.contains(v.as_str())), "the archive holds the messages as they came");
    assert!(phi.iter().any(|v| events.contains(v.as_str())), "the EHR feed holds names in clear");
    assert!(events.contains("\"pii_masked\":false"), "and says it was not masked");

    let undeclared =
        spec.replace("    phi: {allowed: true, reason: \"the covered entity's own message archive\"}\n", "");
    std::fs::write(dir.join("pipelines/archive.yaml"), undeclared).unwrap();
    let check = sluice(&["check", "pipelines/archive.yaml"]);
    assert!(!check.status.success());
    assert!(text(&check.stdout).contains("SL601") || text(&check.stderr).contains("SL601"));
}

/// `--env staging` applies the quick start's staging policy (Safe Harbor over its own): the
/// plan says so, names and identifiers are redacted and dates keep their year, where the
/// production run keeps names; a misspelt environment is refused rather than run as production.
#[test]
fn the_staging_environment_masks_more_than_production() {
    let dir = common::workspace("env-staging");
    let sluice =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(&*dir).args(args).output().unwrap();
    let plan = sluice(&["plan", "pipelines/quickstart.yaml", "--env", "staging"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    assert!(
        text(&plan.stdout).contains("policy staging (mappings/base/policies/staging.yaml), for environment staging")
    );
    let events = |dir: &Path| -> Vec<Value> {
        std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert!(sluice(&["run", "pipelines/quickstart.yaml", "--restart"]).status.success());
    let production = events(&dir);
    // The clock pinned: Safe Harbor's birth years depend on the run's date.
    let run = sluice(&[
        "run",
        "pipelines/quickstart.yaml",
        "--env",
        "staging",
        "--restart",
        "--fixed-clock",
        "2024-01-15T10:30:01Z",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let staging = events(&dir);
    assert_eq!(production.len(), staging.len());
    let mut names = 0;
    for (p, s) in production.iter().zip(&staging) {
        if let Some(name) = p.pointer("/patient/name").and_then(Value::as_str) {
            assert!(!name.is_empty() && name != "[REDACTED]", "production keeps names");
            assert_eq!(s["patient"]["name"], "[REDACTED]");
            names += 1;
        }
        if let Some(dob) = p.pointer("/patient/dob").and_then(Value::as_str) {
            assert_eq!(s["patient"]["dob"], safe_harbor_birth(dob));
        }
        assert_eq!(s["compliance"]["pii_masked"], true, "nothing kept in clear in staging");
    }
    assert!(names > 10);
    let phi = common::phi_values(&[dir.join("examples/hl7/feed-2024-01-15.hl7")]);
    let staged = std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    assert!(phi.iter().all(|v| !staged.contains(&format!("\"{v}\""))), "no name or SSN in the staging output");
    let typo = sluice(&["run", "pipelines/quickstart.yaml", "--env", "stagng"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(text(&typo.stdout).contains("SL609") || text(&typo.stderr).contains("SL609"));
}
