//! Hand-written messages for `structure` and `validate`: the matcher (order, missing segments and
//! groups, repetitions, Z-segments, version differences) and each field check.

use sluice_hl7v2::codec::parse_message;
use sluice_hl7v2::schema::Version;
use sluice_hl7v2::validate::{Finding, Options, Severity, validate};

fn run(text: &str, options: &Options) -> Vec<Finding> {
    let text = text.trim().replace('\n', "\r");
    let msg = parse_message(&text).expect("test message parses");
    validate(&msg, options)
}

fn check(text: &str) -> Vec<Finding> {
    run(text, &Options::default())
}

/// `code path` of every finding at or above `min`.
fn summary(findings: &[Finding], min: Severity) -> Vec<String> {
    findings.iter().filter(|f| f.severity >= min).map(|f| format!("{} {}", f.code, f.path)).collect()
}

const ORU_OK: &str = "
MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|C1|P|2.5.1
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
PV1|1|O
ORC|RE|O1
OBR|1|O1||24331-1^Lipid panel^LN
OBX|1|NM|2093-3^Cholesterol^LN||185|mg/dL|||||F
NTE|1||fasting
OBX|2|NM|2571-8^Triglyceride^LN||150|mg/dL|||||F
OBR|2|O2||58410-2^CBC^LN
OBX|1|NM|6690-2^WBC^LN||4.7|10*3/uL|||||F
SPM|1|S1||BLD
OBX|1|ST|X^Y^L||ok||||||F
";

#[test]
fn valid_oru_has_no_errors() {
    let f = check(ORU_OK);
    assert!(summary(&f, Severity::Warning).is_empty(), "{f:#?}");
}

#[test]
fn obx_before_obr_is_reported_with_the_group_and_segment_number() {
    let f = check(
        "
MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|C1|P|2.5.1
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
OBX|1|NM|2093-3^Cholesterol^LN||185|mg/dL|||||F
OBR|1|O1||24331-1^Lipid panel^LN
",
    );
    let ooo: Vec<&Finding> = f.iter().filter(|f| f.code == "HL7V104").collect();
    assert_eq!(ooo.len(), 1, "{f:#?}");
    assert_eq!(ooo[0].message, "OBX before OBR in ORDER_OBSERVATION group (segment 3)");
    assert_eq!(ooo[0].segment, 3);
    assert_eq!(ooo[0].path, "OBX");
    assert_eq!(ooo[0].severity, Severity::Error);
}

#[test]
fn missing_pid_in_adt_a01() {
    let f = check(
        "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1
EVN|A01|20240101120000
PV1|1|I
",
    );
    assert_eq!(summary(&f, Severity::Error), ["HL7V101 PID"], "{f:#?}");
    assert!(f[0].message.contains("required segment PID is missing in ADT_A01 (before segment 3)"), "{f:#?}");
}

#[test]
fn missing_required_group_at_the_end() {
    let f = check(
        "
MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|C1|P|2.5.1
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
",
    );
    assert_eq!(summary(&f, Severity::Error), ["HL7V102 OBR"], "{f:#?}");
    assert!(f[0].message.contains("ORDER_OBSERVATION"), "{f:#?}");
}

#[test]
fn repeated_groups_and_too_many_repetitions() {
    // Two PATIENT_RESULT groups, each with several ORDER_OBSERVATIONs: valid.
    let two_patients = format!("{}\nPID|2||456^^^HOSP^MR||DOE^JOHN||19700101|M\nOBR|1|O3||1^X^L\n", ORU_OK.trim());
    assert!(summary(&check(&two_patients), Severity::Warning).is_empty());
    // A second EVN in ADT_A01: EVN occurs once.
    let f = check(
        "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1
EVN|A01|20240101120000
EVN|A01|20240101120000
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
PV1|1|I
",
    );
    assert_eq!(summary(&f, Severity::Error), ["HL7V105 EVN[2]"], "{f:#?}");
    // A second PV2 inside the same VISIT group.
    let f = check(
        "
MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|C1|P|2.5.1
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
PV1|1|O
PV2|||
PV2|||
OBR|1|O1||1^X^L
",
    );
    assert_eq!(summary(&f, Severity::Error), ["HL7V105 PV2[2]"], "{f:#?}");
}

#[test]
fn segment_that_belongs_earlier_is_out_of_order() {
    let f = check(
        "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1
EVN|A01|20240101120000
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
PV1|1|I
NK1|1|DOE^JOHN
",
    );
    assert_eq!(summary(&f, Severity::Error), ["HL7V104 NK1"], "{f:#?}");
    assert_eq!(f[0].message, "NK1 after PV1 (segment 4) is out of order: it belongs earlier in ADT_A01 (segment 5)");
    // EVN after PID: reported as out of order, not also as missing.
    let f = check(
        "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
EVN|A01|20240101120000
PV1|1|I
",
    );
    assert_eq!(summary(&f, Severity::Error), ["HL7V104 EVN"], "{f:#?}");
}

#[test]
fn z_segments_are_allowed_anywhere_unless_the_profile_declares_them() {
    let text = "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1
ZAA|1
EVN|A01|20240101120000
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
ZPI|1|VIP
PV1|1|I
ZBB|x
";
    assert!(summary(&check(text), Severity::Info).is_empty());
    let declared = Options { z_segments: Some(vec!["ZPI".into()]), ..Options::default() };
    let f = run(text, &declared);
    assert_eq!(summary(&f, Severity::Error), ["HL7V106 ZAA", "HL7V106 ZBB"], "{f:#?}");
    let lenient = Options { unexpected_segments: Severity::Warning, ..declared };
    assert!(summary(&run(text, &lenient), Severity::Error).is_empty());
}

#[test]
fn unexpected_segment_and_severity_override() {
    let text = "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A02|C1|P|2.5.1
EVN|A02|20240101120000
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
PV1|1|I
DG1|1||I10^Hypertension^I10|||F
";
    let f = check(text);
    assert_eq!(summary(&f, Severity::Error), ["HL7V103 DG1"], "{f:#?}");
    assert!(f[0].message.starts_with("segment DG1 is not part of ADT_A02"));
    let lenient = Options { severity_overrides: vec![("HL7V103".into(), Severity::Warning)], ..Options::default() };
    assert!(summary(&run(text, &lenient), Severity::Error).is_empty());
}

#[test]
fn structure_choice_by_event_and_version() {
    // A04 without MSH-9.3 uses ADT_A01; an invented MSH-9.3 falls back with an info finding.
    let a04 = "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A04^ADT_A04|C1|P|2.5.1
EVN|A04|20240101120000
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
PV1|1|O
";
    let f = check(a04);
    assert_eq!(summary(&f, Severity::Info), ["HL7V002 MSH-9"], "{f:#?}");
    assert!(f[0].message.contains("checked as ADT_A01"));
    // Unknown message type: info, fields still checked.
    let f = check(
        "
MSH|^~\\&|X|Y|Z|W|20240101120000||QRY^Q01|C1|P|2.5.1
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|Q
",
    );
    assert_eq!(summary(&f, Severity::Info), ["HL7V001 MSH-9", "HL7V311 PID-8"], "{f:#?}");
    // v2.3 ORU has no SPECIMEN group: SPM is not part of it.
    let v23 = ORU_OK.replace("|2.5.1", "|2.3");
    let f = check(&v23);
    assert!(summary(&f, Severity::Error).contains(&"HL7V103 SPM".to_string()), "{f:#?}");
    // Version override and versions outside 2.3-2.8.
    let forced = Options { version: Some(Version::V2_5_1), ..Options::default() };
    assert!(summary(&run(&v23, &forced), Severity::Warning).is_empty());
    let f = check(&ORU_OK.replace("|2.5.1", "|2.2"));
    assert_eq!(f[0].code, "HL7V003");
    assert!(f[0].message.contains("checked as v2.3"));
    let f = check(&ORU_OK.replace("|2.5.1", "|"));
    assert!(summary(&f, Severity::Info).contains(&"HL7V004 MSH-12".to_string()));
    assert!(summary(&f, Severity::Error).contains(&"HL7V201 MSH-12".to_string()));
}

#[test]
fn adt_a17_and_a39_shapes() {
    let a17 = "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A17|C1|P|2.5.1
EVN|A17|20240101120000
PID|1||1^^^H^MR||A^B
PV1|1|I
PID|2||2^^^H^MR||C^D
PV1|1|I
";
    assert!(summary(&check(a17), Severity::Warning).is_empty());
    let a40 = "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A40|C1|P|2.5.1
EVN|A40|20240101120000
PID|1||1^^^H^MR||A^B
MRG|9^^^H^MR
PID|2||2^^^H^MR||C^D
MRG|8^^^H^MR
";
    assert!(summary(&check(a40), Severity::Warning).is_empty());
    // Without MRG: the PATIENT group lacks its required MRG.
    let f = check(&a40.replace("MRG|9^^^H^MR\n", ""));
    assert_eq!(summary(&f, Severity::Error), ["HL7V101 MRG"], "{f:#?}");
}

#[test]
fn field_checks_report_paths_and_never_values() {
    let f = check(
        "
MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240231120000||ORU^R01|C1|P|2.5.1
PID|X||123^^^HOSP^XY~456^^^HOSP^MR||SECRETNAME^JANE||1980-01-01|Q|||||||||||||||||||||||||||||||||||||extra
PV1|1|Z
OBR|1|O1||1^X^L
OBX|1|NM|2093-3^Cholesterol^LN||12 mg|mg/dL||ZZ|||Q
OBX|2|DT|1^X^L||20241301||||||F
OBX|3|TM|1^X^L||2561||||||F|||2024010112
",
    );
    let s = summary(&f, Severity::Info);
    for expected in [
        "HL7V301 MSH-7.1",
        "HL7V305 PID-1",
        "HL7V311 PID-3[1].5",
        "HL7V301 PID-7.1",
        "HL7V311 PID-8",
        "HL7V203 PID-45",
        "HL7V311 PV1-2",
        "HL7V304 OBX-5",
        "HL7V311 OBX-8",
        "HL7V310 OBX-11",
        "HL7V302 OBX[2]-5",
        "HL7V303 OBX[3]-5",
    ] {
        assert!(s.contains(&expected.to_string()), "{expected} not in {s:#?}");
    }
    assert!(!s.iter().any(|x| x.starts_with("HL7V301 OBX[3]-14")), "a valid DTM is not reported: {s:#?}");
    for finding in &f {
        for value in ["SECRETNAME", "1980-01-01", "12 mg", "20241301", "2561"] {
            assert!(!finding.message.contains(value), "value {value:?} leaked into {finding:?}");
        }
    }
    let severity = |code: &str| f.iter().find(|x| x.code == code).map(|x| x.severity);
    assert_eq!(severity("HL7V310"), Some(Severity::Error));
    assert_eq!(severity("HL7V311"), Some(Severity::Info));
}

#[test]
fn required_fields_repetitions_lengths_and_nulls() {
    let long = "A".repeat(300);
    let text = format!(
        "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A01|C1|P|2.5.1
EVN|A01|20240101120000
PID|1||\"\"||{long}^JANE||19800101|F~M
PV1|1|I
"
    );
    let f = check(&text);
    let s = summary(&f, Severity::Info);
    assert!(s.contains(&"HL7V204 PID-5".to_string()), "{s:#?}");
    assert!(s.contains(&"HL7V202 PID-8".to_string()), "{s:#?}");
    assert!(!s.iter().any(|x| x.contains("PID-3")), "an explicit null counts as present: {s:#?}");
    let no_lengths = Options { lengths: false, tables: false, ..Options::default() };
    assert!(!summary(&run(&text, &no_lengths), Severity::Info).contains(&"HL7V204 PID-5".to_string()));
    let f = check(
        "
MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A01|C1|P|2.5.1
EVN|A01|20240101120000
PID|1||||DOE^JANE
PV1|1|
",
    );
    assert_eq!(summary(&f, Severity::Error), ["HL7V201 PID-3", "HL7V201 PV1-2"], "{f:#?}");
    assert_eq!(
        f.iter().find(|x| x.path == "PID-3").unwrap().message,
        "required field (Patient Identifier List) is empty"
    );
}

#[test]
fn second_occurrence_paths() {
    let f = check(
        "
MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|C1|P|2.5.1
PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F
OBR|1|O1||1^X^L
OBX|1|NM|1^X^L||1|||||||F
OBX|2|NM|1^X^L||1||||||F
OBX|3|NM|1^X^L||x||||||F
",
    );
    let s = summary(&f, Severity::Info);
    assert!(s.contains(&"HL7V201 OBX-11".to_string()), "{s:#?}");
    assert!(s.contains(&"HL7V301 OBX-12.1".to_string()), "{s:#?}");
    assert!(s.contains(&"HL7V304 OBX[3]-5".to_string()), "{s:#?}");
    assert_eq!(f.iter().find(|x| x.path == "OBX[3]-5").unwrap().segment, 6);
}
