//! Per-sink audiences through the real binary: the quick start gets a second sink,
//! `analytics`, with `audience: analyst`, and a role `analyst` whose `masking` policy redacts
//! names and generalizes dates. The compiler puts that policy's mask stage in front of the sink
//! (`analytics~analyst`); `sluice plan` (text and JSON) shows per sink which audience decided
//! each treatment; the stronger action wins (the analyst policy's `keep` of SSNs does not undo
//! the stage's `partial` in the matrix; at run time a field's strongest class rule applies). After a run, the care-team sink still has the names (kept with a
//! reason) and the analytics sink has none of the names or SSNs of the data, nor a full date
//! of birth.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{phi_values, text};

const PIPELINE: &str = "pipelines/quickstart.yaml";

const ANALYST_POLICY: &str = "\
kind: masking
name: analyst
description: For analysts, who count and compare and never need to know who.
classes:
  name: redact
  mrn: redact
  dob: {action: generalize, to: birth_year}
  date: {action: generalize, to: year}
  ssn: {action: keep, reason: \"weaker than the stage's partial: the stronger action stands\"}
  account_number: redact
";

/// Whether `value` is in `hay` as a word of its own.
fn holds(hay: &str, value: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    hay.match_indices(value)
        .any(|(i, _)| boundary(hay[..i].chars().next_back()) && boundary(hay[i + value.len()..].chars().next()))
}

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().unwrap()
}

/// The quick start with an `analytics` sink for the `analyst` audience.
fn with_audience(dir: &Path) {
    let path = dir.join(PIPELINE);
    let spec = std::fs::read_to_string(&path).unwrap();
    let sink = "sinks:\n  analytics:\n    type: jsonl\n    inputs: [mask]\n    path: ../out/quickstart/analytics.jsonl\n    audience: analyst\n";
    let roles = format!(
        "roles:\n  analyst:\n    key_sha256: {}\n    may: []\n    masking: ../mappings/base/policies/analyst.yaml\n",
        sluice_runtime::access::key_sha256(b"analyst-key")
    );
    assert!(spec.contains("sinks:\n"));
    std::fs::write(&path, format!("{}{roles}", spec.replacen("sinks:\n", sink, 1))).unwrap();
    std::fs::write(dir.join("mappings/base/policies/analyst.yaml"), ANALYST_POLICY).unwrap();
}

#[test]
fn an_audience_policy_masks_its_sink_and_the_plan_says_so() {
    let dir = common::workspace("audience");
    with_audience(&dir);

    let plan = sluice(&dir, &["plan", PIPELINE]);
    let shown = text(&plan.stdout);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    assert!(shown.contains("audience analyst: masked with"), "{shown}");
    let row = |sink: &str, field: &str, class: &str| -> String {
        shown
            .lines()
            .find(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.len() > 3 && words[0] == sink && words[1] == field && words[2] == class
            })
            .unwrap_or_else(|| panic!("no matrix row for {sink} {field} {class}:\n{shown}"))
            .to_string()
    };
    let name = row("analytics", "patient.name", "name");
    assert!(name.contains("redact") && name.contains("analyst.yaml") && name.ends_with("(audience analyst)"), "{name}");
    let kept = row("patient_events", "patient.name", "name");
    assert!(kept.contains("keep") && !kept.contains("audience"), "{kept}");
    let ssn = row("analytics", "patient.identifiers[*].value", "ssn");
    assert!(ssn.contains("partial") && ssn.contains("quickstart.yaml") && !ssn.contains("audience"), "{ssn}");

    let json: serde_json::Value = serde_json::from_slice(&sluice(&dir, &["plan", PIPELINE, "--format", "json"]).stdout)
        .expect("the plan as JSON");
    let matrix = json["masking_matrix"].as_array().unwrap();
    let by_audience: Vec<&serde_json::Value> = matrix.iter().filter(|r| r["audience"] == "analyst").collect();
    assert!(!by_audience.is_empty() && by_audience.iter().all(|r| r["sink"] == "analytics"), "{matrix:?}");
    assert!(matrix.iter().filter(|r| r["sink"] == "patient_events").all(|r| r.get("audience").is_none()));
    let stage = json["components"].as_array().unwrap().iter().find(|c| c["name"] == "analytics~analyst");
    assert_eq!(stage.expect("the audience's mask stage")["type"], "mask");
    let role = &json["roles"][0];
    assert!(role["masking"].as_str().unwrap().ends_with("mappings/base/policies/analyst.yaml"), "{role}");

    let run = sluice(&dir, &["run", PIPELINE]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let examples = [dir.join("examples/hl7/feed-2024-01-15.hl7")];
    let phi = phi_values(&examples);
    let names: Vec<&String> = phi.iter().filter(|v| !v.contains('-')).collect();
    assert!(names.len() > 5 && phi.len() > names.len(), "names and SSNs to look for");
    let care = std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    let analytics = std::fs::read_to_string(dir.join("out/quickstart/analytics.jsonl")).unwrap();
    assert_eq!(care.lines().count(), analytics.lines().count(), "both sinks get every record");
    assert!(names.iter().any(|n| holds(&care, n)), "the care team keeps names");
    for v in &phi {
        assert!(!holds(&analytics, v), "a name or SSN reached the analytics sink");
    }
    for line in analytics.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        let p = &rec["patient"];
        if let Some(dob) = p["dob"].as_str() {
            assert!(dob.len() == 4 || dob == "90+", "a birth year only: {dob}");
        }
        // An SSN keeps the stage's `partial` (the analyst's `keep` is weaker), unless its leaf
        // also carries `mrn` (SSNs in PID-3), whose analyst `redact` is then the strongest rule.
        for id in p["identifiers"].as_array().into_iter().flatten() {
            let value = id["value"].as_str().unwrap_or("");
            match id["type"].as_str() {
                Some("SSN") => assert!(value == "[REDACTED]" || value.starts_with("***-**-"), "{id}"),
                _ => assert_eq!(value, "[REDACTED]", "the analyst policy redacts MRNs: {id}"),
            }
        }
    }
    let verify = sluice(&dir, &["audit", "verify", "out/quickstart/audit.jsonl"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}
