//! `sluice test` through the real binary: the bundled mapping tests pass; a wrong expectation
//! fails with a per-field diff and exit 1; `--update` rewrites exactly the expectation (the
//! file comes back byte for byte); JUnit XML parses and counts right; a broken test file is a
//! coded diagnostic with exit 2; a keyed policy runs with the test-only key and refuses without
//! one; the pipeline's own outputs are never written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{root, text, workspace};

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().expect("sluice runs")
}

const PATIENT_EVENT: &str = "mappings/base/hl7v2-patient-event.test.yaml";

#[test]
fn env_is_refused_rather_than_ignored() {
    let out = sluice(&root(), &["test", "--env", "staging", PATIENT_EVENT]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("does not take `--env`") && err.contains("policy:"), "{err}");
    assert!(text(&out.stdout).is_empty(), "no case ran");
}

#[test]
fn bundled_mapping_tests_pass() {
    let out = sluice(&root(), &["test", "mappings", "tests/sluice_test", "docs/templates"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // Every bundled mapping has a test file next to it.
    for entry in std::fs::read_dir(root().join("mappings/base")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // The pack's manifest is not a mapping.
        if let Some(stem) = name.strip_suffix(".yaml").filter(|s| !s.ends_with(".test") && *s != "pack") {
            let test = root().join(format!("mappings/base/{stem}.test.yaml"));
            assert!(test.exists(), "{name} has no {}", test.display());
        }
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_diff_and_update_restores_the_file() {
    let dir = workspace("test-update");
    let file = dir.join(PATIENT_EVENT);
    let original = std::fs::read_to_string(&file).unwrap();
    assert!(original.contains("              gender: F\n"));
    std::fs::write(&file, original.replacen("              gender: F\n", "              gender: M\n", 1)).unwrap();

    let out = sluice(&dir, &["test", PATIENT_EVENT]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL   mappings/base/hl7v2-patient-event.test.yaml :: admission is mapped and masked"));
    assert!(
        stdout.contains("  outputs.output[0]:\n    - patient.gender: \"M\"\n    + patient.gender: \"F\"\n"),
        "{stdout}"
    );
    assert!(stdout.contains("ok     mappings/base/hl7v2-patient-event.test.yaml :: bad gender goes to the DLQ"));
    assert!(stdout.contains("ran 3 cases in 1 file: 2 passed, 1 failed"), "{stdout}");

    let out = sluice(&dir, &["test", "--update", PATIENT_EVENT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("updated 1 expectation in"));
    // The expectations were written by `--update` in the first place: the same bytes come back,
    // comments between cases included.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert_eq!(sluice(&dir, &["test", PATIENT_EVENT]).status.code(), Some(0));
}

#[test]
fn update_writes_a_missing_expectation_after_the_input() {
    let dir = workspace("test-insert");
    let file = dir.join(PATIENT_EVENT);
    let original = std::fs::read_to_string(&file).unwrap();
    // Drop the expectation of the second case (from its `expect:` to the next case's comment).
    let start = original.find("    expect:\n      dlq:").unwrap();
    let end = start + original[start..].find("  - name: a message").unwrap();
    let without = format!("{}{}", &original[..start], &original[end..]);
    std::fs::write(&file, &without).unwrap();

    let out = sluice(&dir, &["test", PATIENT_EVENT]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("  dlq: expected 0, got 1\n  dlq[0]: produced, not expected\n    + {"));
    let out = sluice(&dir, &["test", "--update", PATIENT_EVENT]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
}

#[test]
fn junit_output_is_well_formed_with_the_right_counts() {
    let dir = workspace("test-junit");
    let file = dir.join(PATIENT_EVENT);
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, original.replacen("code: RT207", "code: RT208", 1)).unwrap();
    let broken = dir.join("mappings/base/broken.test.yaml");
    std::fs::write(&broken, "kind: test\ncases: []\n").unwrap();

    let out = sluice(&dir, &["test", "mappings", "--format", "junit", "--output", "report.xml"]);
    assert_eq!(out.status.code(), Some(2), "a broken file wins: {}", text(&out.stderr));
    let xml = std::fs::read_to_string(dir.join("report.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suites = doc.root_element();
    assert_eq!(suites.tag_name().name(), "testsuites");
    let attr = |n: roxmltree::Node, a: &str| n.attribute(a).unwrap().to_string();
    let cases: Vec<_> = suites.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(attr(suites, "tests"), cases.len().to_string());
    assert_eq!(attr(suites, "failures"), "1");
    assert_eq!(attr(suites, "errors"), "1");
    let failed: Vec<_> = cases.iter().filter(|c| c.children().any(|x| x.has_tag_name("failure"))).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(attr(*failed[0], "name"), "bad gender goes to the DLQ");
    assert_eq!(attr(*failed[0], "classname"), PATIENT_EVENT);
    let failure = failed[0].children().find(|x| x.has_tag_name("failure")).unwrap();
    assert!(failure.text().unwrap().contains("  dlq[0]:\n    - code: \"RT208\"\n    + code: \"RT207\"\n"));
    let errored: Vec<_> = cases.iter().filter(|c| c.children().any(|x| x.has_tag_name("error"))).collect();
    assert_eq!(errored.len(), 1);
    assert!(errored[0].children().find(|x| x.has_tag_name("error")).unwrap().text().unwrap().contains("SL801"));
    for suite in suites.children().filter(|n| n.has_tag_name("testsuite")) {
        let n = suite.children().filter(|c| c.has_tag_name("testcase")).count();
        assert_eq!(attr(suite, "tests"), n.to_string());
    }
    // Without `--output`, the XML is on stdout and the summary on stderr.
    std::fs::remove_file(&broken).unwrap();
    let out = sluice(&dir, &["test", "mappings", "--format", "junit"]);
    assert_eq!(out.status.code(), Some(1));
    roxmltree::Document::parse(&text(&out.stdout)).expect("well-formed XML on stdout");
    assert!(text(&out.stderr).contains(" passed, 1 failed"));
}

#[test]
fn a_broken_test_file_is_a_coded_diagnostic_and_exit_2() {
    let out = sluice(&root(), &["test", "tests/ui/SL802-unsupported-test-input/claims-test.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("SL802\n"), "{stderr}");
    assert!(stderr.contains("tests/ui/SL802-unsupported-test-input/claims-test.yaml:7:7"), "{stderr}");
    assert!(text(&out.stdout).contains("BROKEN tests/ui/SL802-unsupported-test-input/claims-test.yaml"));
    let empty = common::scratch("test-none");
    let none = sluice(&empty, &["test"]);
    assert_eq!(none.status.code(), Some(2), "no test files is a usage error");
    assert!(text(&none.stderr).contains("no test files"));
}

#[test]
fn a_mapping_test_without_its_policy_is_told_where_to_name_it() {
    let dir = workspace("test-nopolicy");
    let file = dir.join(PATIENT_EVENT);
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, original.replace("policy: policies/quickstart.yaml\n", "")).unwrap();
    let out = sluice(&dir, &["test", PATIENT_EVENT]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("SL601\n"), "{stderr}");
    assert!(stderr.contains("name the masking policy its output goes through with `policy:` in the test file"));
}

#[test]
fn a_pipeline_test_writes_nothing_to_the_pipelines_outputs() {
    let dir = workspace("test-pipeline");
    common::copy_dir(&root().join("tests/sluice_test"), &dir.join("tests/sluice_test"));
    let out = sluice(&dir, &["test", "tests/sluice_test"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!dir.join("out").exists(), "the quick start's out/ was written");
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", text(&out.stderr));
}

#[test]
fn a_keyed_policy_runs_with_the_test_key_and_refuses_without_it() {
    let dir = workspace("test-keyed");
    let base = dir.join("mappings/base");
    std::fs::write(
        base.join("policies/keyed.yaml"),
        "kind: masking\nname: keyed\nextends: quickstart.yaml\nhash_key: ${SLUICE_TEST_KEY_NEVER_SET}\nclasses:\n  mrn: hash\n",
    )
    .unwrap();
    let case = "kind: test\nmapping: hl7v2-patient-event.yaml\npolicy: policies/keyed.yaml\n{KEY}cases:\n  - name: hashed mrn\n    input:\n      hl7v2: |\n        MSH|^~\\&|A|B|C|D|20240115103000||ADT^A01^ADT_A01|K1|P|2.5.1\n        PID|1||70080001^^^HOSP^MR||TESTPATIENT^KILO^^^^^L||19800115|F\n        PV1|1|I\n";
    let file = base.join("keyed.test.yaml");
    std::fs::write(&file, case.replace("{KEY}", "")).unwrap();
    let out = sluice(&dir, &["test", "mappings/base/keyed.test.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ERROR  mappings/base/keyed.test.yaml :: hashed mrn"), "{stdout}");
    assert!(stdout.contains("error[RT002]") && stdout.contains("mask_key"), "{stdout}");

    std::fs::write(&file, case.replace("{KEY}", "mask_key: test-only-key\n")).unwrap();
    assert_eq!(sluice(&dir, &["test", "--update", "mappings/base/keyed.test.yaml"]).status.code(), Some(0));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(!written.contains("value: \"70080001\""), "the MRN is hashed:\n{written}");
    assert_eq!(sluice(&dir, &["test", "mappings/base/keyed.test.yaml"]).status.code(), Some(0));
    std::fs::write(&file, written.replace("mask_key: test-only-key", "mask_key: another-key")).unwrap();
    assert_eq!(sluice(&dir, &["test", "mappings/base/keyed.test.yaml"]).status.code(), Some(1), "the key matters");
}
