//! `sluice parse --format fhir` and `sluice validate --format fhir` end to end on
//! `examples/fhir/`: JSON, XML and NDJSON in; JSON lines, findings (text and JSON lines) and
//! exit codes out; a StructureDefinition profile; Bundle references; and that no name,
//! identifier or date from the input reaches the findings.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(root()).args(args).output().expect("sluice runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Values in the example files a leak would show.
const PHI: &[&str] =
    &["Qwertyson", "Zyxwva", "Plorkington", "Vexalia", "MRN-000123", "000123", "1982-02-30", "1970-03-30", "Vex\""];

#[test]
fn parse_prints_one_json_line_per_resource_from_json_xml_and_ndjson() {
    let o = sluice(&["parse", "--format", "fhir", "examples/fhir/patient.json", "examples/fhir/patient.xml"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    // XML and JSON give the same resource (member order aside).
    assert_eq!(lines[0], lines[1]);
    let text = stdout(&o);
    assert!(text.contains(r#""valueDecimal":3.250"#), "decimal precision kept: {text}");
    assert!(text.contains(r#""_birthDate":{"extension""#));
    assert!(text.contains(r#""contained":[{"resourceType":"Organization""#));

    let o = sluice(&["parse", "--format", "fhir", "examples/fhir/observations.ndjson"]);
    assert_eq!(o.status.code(), Some(0));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 3);
    assert!(stdout(&o).lines().next().unwrap().contains(r#""value":72.50"#));
}

#[test]
fn parse_reports_unreadable_input_with_code_and_offset_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("sluice-fhir-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Qwertyson\"},]}").unwrap();
    let deep = dir.join("deep.json");
    std::fs::write(&deep, format!("{{\"resourceType\":\"Patient\",\"x\":{}", "[".repeat(200_000))).unwrap();
    let o = sluice(&["parse", "--format", "fhir", bad.to_str().unwrap(), deep.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[FHIR001]") && err.contains("(byte 57)"), "{err}");
    assert!(err.contains("error[FHIR002]"), "{err}");
    assert!(!err.contains("Qwertyson"), "{err}");
    let o = sluice(&["parse", "--format", "fhir", dir.join("missing.json").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_exits_0_for_valid_and_1_with_located_findings() {
    let o = sluice(&["validate", "--format", "fhir", "examples/fhir/patient.json", "examples/fhir/patient.xml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).is_empty());

    let o = sluice(&["validate", "--format", "fhir", "--output", "json", "examples/fhir/patient-invalid.json"]);
    assert_eq!(o.status.code(), Some(1));
    let found: Vec<(String, String, String)> = json_lines(&o)
        .iter()
        .map(|v| {
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, ["file", "severity", "code", "location", "message"]);
            (
                v["severity"].as_str().unwrap().into(),
                v["code"].as_str().unwrap().into(),
                v["location"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("error", "FHIR103", "Patient.id"),
        ("error", "FHIR108", "Patient.name[0].given[1]"),
        ("error", "FHIR106", "Patient.gender"),
        ("error", "FHIR103", "Patient.birthDate"),
        ("error", "FHIR101", "Patient.nickname"),
        ("error", "FHIR107", "Patient.deceasedDateTime"),
        ("error", "FHIR201", "Patient.managingOrganization.reference"),
    ];
    let expect: Vec<(String, String, String)> =
        expect.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(found, expect);
    for p in PHI {
        assert!(!stdout(&o).contains(p), "`{p}` leaked: {}", stdout(&o));
    }

    // Lenient: the unknown element is a warning, the rest stay errors.
    let o = sluice(&["validate", "--format", "fhir", "--lenient", "examples/fhir/patient-invalid.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("warning FHIR101 Patient.nickname"), "{}", stdout(&o));
}

#[test]
fn validate_ndjson_reports_the_line() {
    let o = sluice(&["validate", "--format", "fhir", "--output", "json", "examples/fhir/observations.ndjson"]);
    assert_eq!(o.status.code(), Some(1));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["code"], "FHIR104");
    assert_eq!(lines[0]["location"], "Observation");
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(summary.contains("validated 3 resources in 1 file: 2 valid, 1 with errors"), "{summary}");
}

#[test]
fn a_structure_definition_profile_requires_identifier_name_and_gender() {
    let dir = std::env::temp_dir().join(format!("sluice-fhir-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bare = dir.join("bare.json");
    std::fs::write(&bare, r#"{"resourceType":"Patient","name":[{"family":"Qwertyson"}]}"#).unwrap();
    let profile = "examples/fhir/us-core-patient-min.json";
    let o = sluice(&[
        "validate",
        "--format",
        "fhir",
        "--profile",
        profile,
        bare.to_str().unwrap(),
        "examples/fhir/patient.json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with(
            "error FHIR120 Patient: `identifier` is required by profile USCorePatientMinimum (min 1), found 0"
        )
    );
    assert!(lines[1].contains("`gender` is required by profile"));
    // Without the profile the same resource is valid.
    assert_eq!(sluice(&["validate", "--format", "fhir", bare.to_str().unwrap()]).status.code(), Some(0));
    // A profile naming an element Patient does not have is refused (exit 2).
    let broken = dir.join("broken.json");
    std::fs::write(&broken, r#"{"resourceType":"StructureDefinition","type":"Patient","differential":{"element":[{"path":"Patient.gendre","min":1}]}}"#).unwrap();
    let o = sluice(&["validate", "--format", "fhir", "--profile", broken.to_str().unwrap(), bare.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("FHIR123"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bundle_references_resolve_and_a_missing_target_is_a_warning() {
    let o = sluice(&["validate", "--format", "fhir", "--output", "json", "examples/fhir/transaction.json"]);
    assert_eq!(o.status.code(), Some(0), "warnings only: {}", stdout(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1, "{}", stdout(&o));
    assert_eq!(lines[0]["severity"], "warning");
    assert_eq!(lines[0]["code"], "FHIR201");
    assert_eq!(lines[0]["location"], "Bundle.entry[2].resource.encounter");
}

#[test]
fn hl7_validate_is_unchanged_and_refuses_lenient() {
    let o = sluice(&["validate", "--format", "hl7v2", "--lenient", "examples/hl7/feed-2024-01-15.hl7"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--lenient is for --format fhir"));
}

#[test]
fn explain_knows_fhir_codes() {
    let o = sluice(&["explain", "FHIR120"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("FHIR120: An element the profile requires is missing."));
}

/// A large Bundle, validated entry by entry as it is read, gives through the command exactly
/// the findings of reading the whole tree and validating it, in order; and a broken one the
/// reader's error.
#[test]
fn a_large_bundle_validated_while_read_gives_the_whole_tree_findings() {
    let dir = common::scratch("fhir-cli-large");
    let entry = |i: usize| {
        format!(
            r#"{{"fullUrl":"urn:uuid:00000000-0000-0000-0000-{i:012}","resource":{{"resourceType":"Observation","id":"o{i}","status":"{}","code":{{"text":"weight"}},"subject":{{"reference":"Patient/p{}"}},"valueQuantity":{{"value":72.50,"unit":"kg"}}}}}}"#,
            if i.is_multiple_of(97) { "bogus" } else { "final" },
            i % 5
        )
    };
    let entries: Vec<String> = (0..2_000).map(entry).collect();
    let bundle = format!(r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#, entries.join(",\n"));
    let path = dir.join("large.json");
    std::fs::write(&path, &bundle).unwrap();

    let o = sluice(&["validate", "--format", "fhir", "--output", "json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "bogus status codes are errors");
    let got: Vec<(String, String, String)> = json_lines(&o)
        .iter()
        .map(|l| (l["severity"].to_string(), l["code"].to_string(), l["location"].to_string()))
        .collect();
    let tree = sluice_fhir::read(bundle.as_bytes()).unwrap();
    let expected: Vec<(String, String, String)> =
        sluice_fhir::validate::validate(&tree, &sluice_fhir::validate::Options::default())
            .into_iter()
            .map(|f| {
                let severity = serde_json::Value::from(f.severity.to_string()).to_string();
                (severity, serde_json::Value::from(f.code).to_string(), serde_json::Value::from(f.location).to_string())
            })
            .collect();
    assert!(expected.len() > 2_000, "unresolved references and bad codes: {}", expected.len());
    assert_eq!(got, expected);

    let broken = format!(r#"{{"resourceType":"Bundle","type":"collection","entry":[{},{{"x":]}}"#, entries.join(","));
    std::fs::write(&path, &broken).unwrap();
    let o = sluice(&["validate", "--format", "fhir", "--output", "json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let lines = json_lines(&o);
    let e = sluice_fhir::read(broken.as_bytes()).unwrap_err();
    assert_eq!(lines.len(), 1, "{}", stdout(&o));
    assert_eq!(lines[0]["code"], e.code);
    assert!(lines[0]["message"].as_str().unwrap().contains(&format!("(byte {})", e.offset)), "{}", lines[0]);
}
