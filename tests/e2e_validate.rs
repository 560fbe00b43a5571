//! `sluice validate` end to end on the bundled examples: exit codes, the text and JSON line
//! shapes, the profile option, and that no patient name from the input reaches the output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(root()).args(args).output().expect("sluice runs")
}

fn examples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("examples/hl7"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "hl7"))
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

/// Every PID-5 family and given name in the files (the names a leak would show).
fn patient_names(files: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(root().join(f)).unwrap()).into_owned();
        for line in text.split(['\r', '\n']).filter(|l| l.starts_with("PID|")) {
            let Some(pid5) = line.split('|').nth(5) else { continue };
            for rep in pid5.split('~') {
                for name in rep.split('^').take(2) {
                    if name.len() >= 3 {
                        names.push(name.to_string());
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn validate_examples_json_lines_exit_codes_and_no_phi() {
    let files = examples();
    assert!(files.iter().any(|f| f.ends_with("rejects.hl7")));
    let mut args = vec!["validate", "--format", "hl7v2", "--output", "json"];
    args.extend(files.iter().map(String::as_str));
    let out = sluice(&args);
    assert_eq!(out.status.code(), Some(1), "rejects.hl7 has invalid messages");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("validated 66 messages in 2 files"), "{stderr}");
    let mut codes = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let o = v.as_object().unwrap();
        for key in ["file", "message_index", "byte_offset", "severity", "code", "path", "segment", "message"] {
            assert!(o.contains_key(key), "{key} missing in {line}");
        }
        assert!(o["message_index"].as_u64().unwrap() >= 1);
        assert!(["error", "warning", "info"].contains(&o["severity"].as_str().unwrap()));
        codes.push((o["file"].as_str().unwrap().to_string(), o["code"].as_str().unwrap().to_string()));
    }
    let rejects = |code: &str| codes.iter().any(|(f, c)| f.ends_with("rejects.hl7") && c == code);
    for code in ["HL7001", "HL7V201", "HL7V311", "HL7V003", "HL7V301"] {
        assert!(rejects(code), "{code} not reported for rejects.hl7:\n{stdout}");
    }
    let names = patient_names(&files);
    assert!(names.len() > 20, "{names:?}");
    for name in &names {
        assert!(!stdout.contains(name.as_str()) && !stderr.contains(name.as_str()), "patient name {name} leaked");
    }
}

#[test]
fn validate_text_output_and_exit_codes() {
    let out = sluice(&["validate", "--format", "hl7v2", "examples/hl7/rejects.hl7"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("examples/hl7/rejects.hl7:message 2 (BAD0001) error HL7V201 PID-3: required field (Patient Identifier List) is empty"),
        "{stdout}"
    );
    assert!(stdout.contains("examples/hl7/rejects.hl7:message 1 error HL7001 byte 0:"), "{stdout}");

    // A valid message (warnings allowed) exits 0.
    let dir = std::env::temp_dir().join(format!("sluice-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.hl7");
    std::fs::write(
        &good,
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|C1|P|2.5.1\r\
         PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F\r\
         OBR|1|O1||24331-1^Lipid panel^LN\r\
         OBX|1|NM|2093-3^Cholesterol^LN||185|mg/dL|||||F\r",
    )
    .unwrap();
    let out = sluice(&["validate", "--format", "hl7v2", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // Usage errors exit 2.
    assert_eq!(sluice(&["validate", "--format", "hl7v2"]).status.code(), Some(2));
    assert_eq!(sluice(&["validate", "--format", "hl7v2", "no/such/file.hl7"]).status.code(), Some(2));
    let out =
        sluice(&["validate", "--format", "hl7v2", "--profile", "pipelines/quickstart.yaml", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a pipeline is not a profile");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn validate_with_profile_declares_z_segments() {
    let profile = "mappings/base/profiles/default.yaml";
    assert!(Path::new(&root().join(profile)).exists());
    let out = sluice(&[
        "validate",
        "--format",
        "hl7v2",
        "--profile",
        profile,
        "--output",
        "json",
        "examples/hl7/rejects.hl7",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // ZXX is not declared by the default profile (which declares ZPI): an error under `fail`.
    let zxx = stdout.lines().find(|l| l.contains("HL7V106")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(zxx.contains("\"severity\":\"error\"") && zxx.contains("\"path\":\"ZXX\""), "{zxx}");
    let out = sluice(&["explain", "HL7V104"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("HL7V104: A segment is out of order."));
}

/// A profile with `encoding_characters: tolerant` reads a doubled escape character in MSH-2 the
/// way `sluice run` does: a warning (HL7006 on MSH-2) instead of the strict HL7003 error; and
/// `sluice parse` and `sluice ack` accept the message under the same profile.
#[test]
fn validate_parse_and_ack_read_encoding_characters_as_the_profile_says() {
    let dir = std::env::temp_dir().join(format!("sluice-tolerant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let message = dir.join("doubled-escape.hl7");
    std::fs::write(
        &message,
        "MSH|^~\\\\&|A|B|C|D|20240101||ADT^A01|T1|P|2.5\rEVN|A01|20240101\rPID|1||123^^^H^MR||ROE^JANE||19800101|F\rPV1|1|I\r",
    )
    .unwrap();
    let profile = dir.join("tolerant.yaml");
    std::fs::write(
        &profile,
        "kind: profile\nname: tolerant\nformat: hl7v2\nversion: \"2.5\"\nencoding_characters: tolerant\n",
    )
    .unwrap();
    let (message, profile) = (message.to_str().unwrap(), profile.to_str().unwrap());

    let strict = sluice(&["validate", "--format", "hl7v2", "--output", "json", message]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stdout).contains("\"code\":\"HL7003\""));

    let tolerant = sluice(&["validate", "--format", "hl7v2", "--output", "json", "--profile", profile, message]);
    let stdout = String::from_utf8(tolerant.stdout).unwrap();
    assert_eq!(tolerant.status.code(), Some(0), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("HL7006")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("\"severity\":\"warning\"") && line.contains("\"path\":\"MSH-2\""), "{line}");
    assert!(!stdout.contains("ROE") && !stdout.contains("JANE"), "{stdout}");

    let parsed = sluice(&["parse", "--format", "hl7v2", "--profile", profile, message]);
    assert_eq!(parsed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&parsed.stderr).contains("warning[HL7006]"));
    assert!(String::from_utf8(parsed.stdout).unwrap().starts_with("{\"segments\":[[\"MSH\""));
    assert_eq!(sluice(&["parse", "--format", "hl7v2", message]).status.code(), Some(1), "strict without a profile");

    let ack = sluice(&["ack", "--profile", profile, "--fixed-clock", "2024-01-01T00:00:00Z", message]);
    assert_eq!(ack.status.code(), Some(0));
    assert!(String::from_utf8(ack.stdout).unwrap().contains("\rMSA|AA|T1"));
    std::fs::remove_dir_all(&dir).unwrap();
}
