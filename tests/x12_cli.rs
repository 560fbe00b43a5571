//! `sluice parse|validate|ack --format x12` end to end on the fixtures of `specs/x12/tests/fixtures`
//! (synthetic data from `synth.py x12`): one JSON line per transaction set, findings with codes
//! and exit codes, acknowledgments that are themselves clean interchanges, no patient data in
//! validate or ack output, and `sluice ack` still defaulting to HL7 v2.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(root()).args(args).output().expect("sluice runs")
}

const CLAIMS: &str = "specs/x12/tests/fixtures/claims-837p.x12";
const REMITS: &str = "specs/x12/tests/fixtures/remits-835.x12";
const BROKEN: &str = "specs/x12/tests/fixtures/broken-837p.x12";
/// Names and member ids in the fixtures: never in validate or ack output.
const PHI: &[&str] = &["GARCIA", "JOHNSON", "MARTINEZ", "273878287", "566537775"];

#[test]
fn parse_prints_one_json_line_per_transaction_set() {
    let out = sluice(&["parse", "--format", "x12", CLAIMS, REMITS]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["set_id"], "837");
    assert_eq!(lines[0]["version"], "005010X222A1");
    assert_eq!(lines[0]["functional_id"], "HC");
    assert_eq!(lines[1]["set_id"], "835");
    let segs = lines[0]["segments"].as_array().unwrap();
    assert_eq!(segs[0], serde_json::json!(["ST", "837", "0001", "005010X222A1"]));
    // CLM05 is a composite: a list of its components.
    let clm = segs.iter().find(|s| s[0] == "CLM").unwrap();
    assert_eq!(clm[5], serde_json::json!(["11", "B", "1"]));
    assert_eq!(lines[0]["file"], CLAIMS);
}

#[test]
fn validate_accepts_clean_files_and_lists_findings_of_broken_ones() {
    let out = sluice(&["validate", "--format", "x12", CLAIMS, REMITS]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("validated 2 transaction sets in 2 files: 2 accepted, 0 rejected"), "{stderr}");

    let out = sluice(&["validate", "--format", "x12", "--output", "json", BROKEN]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let findings: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let codes: Vec<&str> = findings.iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["X12001", "X12041", "X12032"]);
    assert_eq!(findings[1]["position"], "SE01");
    assert_eq!(findings[1]["set_index"], 1);
    assert_eq!(findings[0]["byte_offset"], 0);
    for name in PHI {
        assert!(!stdout.contains(name), "validate output holds {name}");
    }
}

#[test]
fn ack_answers_with_a_999_that_validates() {
    let clock = ["--fixed-clock", "2024-01-16T09:00:00Z"];
    let out = sluice(&[&["ack", "--format", "x12"][..], &clock, &[CLAIMS, BROKEN]].concat());
    assert_eq!(out.status.code(), Some(1), "the broken set is rejected");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(
            "ST*999*0001*005010X231A1~\nAK1*HC*1*005010X222A1~\nAK2*837*0001*005010X222A1~\nIK5*A~\nAK9*A*1*1*1~"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("IK5*R*4~\nAK9*R*1*1*0*5~"), "{stdout}");
    for name in PHI {
        assert!(!stdout.contains(name), "ack output holds {name}");
    }
    let again = sluice(&[&["ack", "--format", "x12"][..], &clock, &[CLAIMS, BROKEN]].concat());
    assert_eq!(again.stdout, stdout.as_bytes(), "deterministic under a fixed clock");
    // The acknowledgments are clean interchanges themselves.
    let dir = std::env::temp_dir().join(format!("sluice-x12-ack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("acks.x12");
    std::fs::write(&file, &stdout).unwrap();
    let check = sluice(&["validate", "--format", "x12", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn ack_without_format_is_still_hl7() {
    let out = sluice(&["ack", "--fixed-clock", "2024-01-15T10:30:00Z", "examples/hl7/feed-2024-01-15.hl7"]);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("MSH|"));
}

#[test]
fn explain_knows_x12_codes() {
    let out = sluice(&["explain", "X12041"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("X12041: SE01 is not the number of segments."));
}

#[test]
fn a_profile_that_is_no_trading_partner_profile_is_refused_for_x12() {
    // Trading-partner profiles themselves are tested in tests/x12_partners.rs.
    let out = sluice(&["validate", "--format", "x12", "--profile", "mappings/base/whatever.yaml", CLAIMS]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("cannot read"), "a missing file");
    let out = sluice(&["validate", "--format", "x12", "--profile", "mappings/base/profiles/default.yaml", CLAIMS]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("is an HL7 v2 parser profile"));
}

#[test]
fn lenient_validation_reports_envelope_errors_as_warnings_and_accepts_the_sets() {
    let dir = std::env::temp_dir().join(format!("sluice-x12-lenient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let claims = std::fs::read_to_string(root().join(CLAIMS)).unwrap();
    assert!(claims.contains("SE*62*0001"));
    let miscounted = dir.join("miscounted.x12");
    std::fs::write(&miscounted, claims.replace("SE*62*0001", "SE*63*0001")).unwrap();
    let file = miscounted.to_str().unwrap();

    let strict = sluice(&["validate", "--format", "x12", "--output", "json", file]);
    assert_eq!(strict.status.code(), Some(1));
    let finding: serde_json::Value =
        serde_json::from_str(String::from_utf8(strict.stdout).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!((finding["code"].as_str(), finding["severity"].as_str()), (Some("X12041"), Some("error")));

    let lenient = sluice(&["validate", "--format", "x12", "--lenient", "--output", "json", file]);
    assert_eq!(lenient.status.code(), Some(0), "{}", String::from_utf8_lossy(&lenient.stderr));
    let finding: serde_json::Value =
        serde_json::from_str(String::from_utf8(lenient.stdout).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!((finding["code"].as_str(), finding["severity"].as_str()), (Some("X12041"), Some("warning")));
    assert!(String::from_utf8(lenient.stderr).unwrap().contains("1 accepted, 0 rejected"));

    // What makes the bytes unreadable stays an error.
    let broken = sluice(&["validate", "--format", "x12", "--lenient", BROKEN]);
    assert_eq!(broken.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_and_ack_report_implementation_guide_errors() {
    let dir = std::env::temp_dir().join(format!("sluice-x12-guide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let claims = std::fs::read_to_string(root().join(CLAIMS)).unwrap();
    assert!(claims.contains("CLM*PC29071478*490***11:B:1*Y*A*Y*Y"));
    let bad = dir.join("bad-code.x12");
    std::fs::write(&bad, claims.replace("CLM*PC29071478*490***11:B:1*", "CLM*PC29071478*490***11:B:9*")).unwrap();
    let file = bad.to_str().unwrap();

    let out = sluice(&["validate", "--format", "x12", "--output", "json", file]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let f: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!((f["code"].as_str(), f["position"].as_str()), (Some("X12062"), Some("CLM05-3")), "{stdout}");
    assert_eq!(f["message"], "CLM05-3 is not one of the guide's codes (loop 2300)");
    assert_eq!(f["segment"], 18);
    for name in PHI {
        assert!(!stdout.contains(name), "validate output holds {name}");
    }
    let lenient = sluice(&["validate", "--format", "x12", "--lenient", file]);
    assert_eq!(lenient.status.code(), Some(0), "lenient: guide errors are warnings");

    let ack = sluice(&["ack", "--format", "x12", "--fixed-clock", "2024-01-16T09:00:00Z", file]);
    assert_eq!(ack.status.code(), Some(1));
    let text = String::from_utf8(ack.stdout).unwrap();
    assert!(text.contains("AK2*837*0001*005010X222A1~\nIK3*CLM*18*2300*8~\nIK4*5:3**7~\nIK5*R*5~"), "{text}");
    let acks = dir.join("acks.x12");
    std::fs::write(&acks, &text).unwrap();
    let check = sluice(&["validate", "--format", "x12", acks.to_str().unwrap()]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "the 999 validates against 005010X231A1: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    // A set without a bundled guide is named, as info, and still accepted.
    let other = dir.join("institutional.x12");
    std::fs::write(&other, claims.replace("005010X222A1", "005010X291")).unwrap();
    let out = sluice(&["validate", "--format", "x12", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("info X12051 ST01"), "{stdout}");
    assert!(stdout.contains("no bundled implementation guide for transaction set 837 version 005010X291"), "{stdout}");

    let explain = sluice(&["explain", "X12062"]);
    assert!(
        String::from_utf8(explain.stdout).unwrap().starts_with("X12062: An element is not one of the guide's codes.")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn institutional_and_dental_claims_validate_and_get_999s_that_validate() {
    const INST: &str = "tests/fixtures/x12/claims/institutional-837i.x12";
    const DENT: &str = "tests/fixtures/x12/claims/dental-837d.x12";
    /// Patient names and member ids of the two fixtures.
    const CLAIM_PHI: &[&str] = &["ZYLSTRA", "HOLLOWAY", "FAIRWEATHER", "ASHCOMBE", "SYN0000001A", "DSYN000002"];
    let out = sluice(&["validate", "--format", "x12", INST, DENT]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("validated 2 transaction sets in 2 files: 2 accepted, 0 rejected"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("sluice-x12-837id-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inst = std::fs::read_to_string(root().join(INST)).unwrap();
    let bad = dir.join("bad-unit.x12");
    std::fs::write(&bad, inst.replace("SV2*0450*HC:99284*850.75*UN*1~", "SV2*0450*HC:99284*850.75*XX*1~")).unwrap();
    let out = sluice(&["validate", "--format", "x12", "--output", "json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let f: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!((f["code"].as_str(), f["position"].as_str()), (Some("X12062"), Some("SV204")), "{stdout}");

    let clock = ["--fixed-clock", "2024-03-02T08:00:00Z"];
    let ack = sluice(&[&["ack", "--format", "x12"][..], &clock, &[INST, DENT, bad.to_str().unwrap()]].concat());
    assert_eq!(ack.status.code(), Some(1), "the broken set is rejected");
    let text = String::from_utf8(ack.stdout).unwrap();
    assert!(text.contains("AK1*HC*101*005010X223A2~\nAK2*837*0001*005010X223A2~\nIK5*A~"), "{text}");
    assert!(text.contains("AK1*HC*101*005010X224A2~\nAK2*837*0001*005010X224A2~\nIK5*A~"), "{text}");
    assert!(text.contains("IK3*SV2*"), "{text}");
    for name in CLAIM_PHI {
        assert!(!text.contains(name) && !stdout.contains(name), "output holds {name}");
    }
    let acks = dir.join("acks.x12");
    std::fs::write(&acks, &text).unwrap();
    let check = sluice(&["validate", "--format", "x12", acks.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(check.status.code(), Some(0), "the 999s validate: {}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn the_corpus_institutional_and_dental_claims_validate_and_their_999s_validate() {
    let root_dir = root().join("../shared/corpus/x12/stupidedi-fixtures/005010");
    if !root_dir.is_dir() {
        println!("\n*** SKIPPED: ../shared/corpus not found (looked for {}) ***\n", root_dir.display());
        return;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for guide in ["X223A2 HC837 Health Care Claim Institutional", "X224A2 HC837 Health Care Claim Dental"] {
        for entry in std::fs::read_dir(root_dir.join(guide).join("pass")).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    assert_eq!(files.len(), 13);
    // The one documented disagreement (specs/x12/tests/codec_cases.rs): DTP*434*RD8 with one date.
    let documented = "837-institutional-claim.edi";
    let dir = std::env::temp_dir().join(format!("sluice-x12-corpus-837id-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in &files {
        let path = file.to_str().unwrap();
        let out = sluice(&["validate", "--format", "x12", "--output", "json", path]);
        let want = if file.ends_with(documented) { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{path}: {}", String::from_utf8_lossy(&out.stdout));
        let ack = sluice(&["ack", "--format", "x12", "--fixed-clock", "2024-03-02T08:00:00Z", path]);
        assert_eq!(ack.status.code(), Some(want), "{path}");
        let text = String::from_utf8(ack.stdout).unwrap();
        assert!(text.contains(if want == 0 { "IK5*A~" } else { "IK5*R*" }), "{path}: {text}");
        let acks = dir.join("ack.x12");
        std::fs::write(&acks, &text).unwrap();
        let check = sluice(&["validate", "--format", "x12", acks.to_str().unwrap()]);
        assert_eq!(check.status.code(), Some(0), "{path}: {}", String::from_utf8_lossy(&check.stdout));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_4010_claims_and_remittances_validate_and_get_997s_that_validate() {
    const P: &str = "tests/fixtures/x12/claims/professional-4010-837p.x12";
    const I: &str = "tests/fixtures/x12/claims/institutional-4010-837i.x12";
    const R: &str = "tests/fixtures/x12/claims/remittance-4010-835.x12";
    /// Patient names and member ids of the three fixtures.
    const CLAIM_PHI: &[&str] = &["EXAMPLE", "SAMPLE", "MEMBER0001", "MEMBER0010", "MEMBER0003"];
    let out = sluice(&["validate", "--format", "x12", P, I, R]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("validated 3 transaction sets in 3 files: 3 accepted, 0 rejected (0 errors"), "{stderr}");

    // A 5010 qualifier in a 4010 claim: the 4010 guide (chosen from GS08) rejects it.
    let dir = std::env::temp_dir().join(format!("sluice-x12-4010-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let claims = std::fs::read_to_string(root().join(P)).unwrap();
    let bad = dir.join("bad-taxonomy.x12");
    std::fs::write(&bad, claims.replace("PRV*PE*ZZ*207Q00000X~", "PRV*PE*PXC*207Q00000X~")).unwrap();
    let out = sluice(&["validate", "--format", "x12", "--output", "json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let f: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!((f["code"].as_str(), f["position"].as_str()), (Some("X12062"), Some("PRV02")), "{stdout}");
    assert_eq!(f["message"], "PRV02 is not one of the guide's codes (loop 2310B)");

    let clock = ["--fixed-clock", "2024-03-02T08:00:00Z"];
    let ack = sluice(&[&["ack", "--format", "x12"][..], &clock, &[P, I, R, bad.to_str().unwrap()]].concat());
    assert_eq!(ack.status.code(), Some(1), "the broken set is rejected");
    let text = String::from_utf8(ack.stdout).unwrap();
    // 4010 groups get 997s (no AK103/AK203), in 4010 envelopes.
    assert!(!text.contains("ST*999"), "{text}");
    assert!(text.contains("*U*00401*"), "{text}");
    assert!(text.contains("GS*FA*SYNTHRECEIVER*SYNTHSENDER*20240302*0800*"), "{text}");
    assert!(text.contains("*X*004010~\nST*997*0001~\nAK1*HC*201~\nAK2*837*0001~\nAK5*A~"), "{text}");
    assert!(text.contains("AK1*HC*203~\nAK2*837*0001~\nAK5*A~"), "{text}");
    assert!(text.contains("AK1*HP*202~\nAK2*835*0001~\nAK5*A~"), "{text}");
    // AK303 (loop id, at most 4 characters) and AK403 7 (a code not in the list).
    assert!(text.contains("AK3*PRV*33*2310*8~\nAK4*2**7~\nAK5*R*5~"), "{text}");
    for name in CLAIM_PHI {
        assert!(!text.contains(name) && !stdout.contains(name), "output holds {name}");
    }
    let acks = dir.join("acks.x12");
    std::fs::write(&acks, &text).unwrap();
    let check = sluice(&["validate", "--format", "x12", "--output", "json", acks.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        check.status.code(),
        Some(0),
        "the 997s validate against the 4010 997 guide: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(String::from_utf8(check.stdout).unwrap(), "", "no finding, not even X12051 (no guide)");
}

/// The claim status fixtures (276/277, 5010 and 4010): synthetic, see their README.
const STATUS: [&str; 4] = [
    "tests/fixtures/x12/status/status-276.x12",
    "tests/fixtures/x12/status/status-277.x12",
    "tests/fixtures/x12/status/status-4010-276.x12",
    "tests/fixtures/x12/status/status-4010-277.x12",
];

/// Every subscriber's and dependent's name, member id, patient control number and date of
/// birth in the claim status fixtures: what a leak would show.
fn status_phi() -> Vec<String> {
    let mut phi = Vec::new();
    for f in STATUS {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        for seg in text.split('~').map(str::trim) {
            let el: Vec<&str> = seg.split('*').collect();
            match (el[0], el.get(1).copied()) {
                ("NM1", Some("IL" | "QC")) => phi.extend(el[3..].iter().filter(|v| v.len() > 3).map(|v| v.to_string())),
                ("DMG", _) | ("REF", Some("EJ")) => phi.push(el[2].to_string()),
                _ => {}
            }
        }
    }
    phi.retain(|v| !v.is_empty() && v != "MI");
    phi.sort();
    phi.dedup();
    assert!(phi.len() >= 14, "{phi:?}");
    phi
}

#[test]
fn claim_status_requests_and_responses_validate_and_get_999s_and_997s_that_validate() {
    let phi = status_phi();
    let out = sluice(&[&["validate", "--format", "x12"][..], &STATUS].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("validated 4 transaction sets in 4 files: 4 accepted, 0 rejected (0 errors"), "{stderr}");

    // One broken copy per kind of mistake: a required segment missing, a code outside the
    // guide's list, an HL under the wrong parent.
    let dir = std::env::temp_dir().join(format!("sluice-x12-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let request = std::fs::read_to_string(root().join(STATUS[0])).unwrap();
    let response = std::fs::read_to_string(root().join(STATUS[1])).unwrap();
    let old_response = std::fs::read_to_string(root().join(STATUS[3])).unwrap();
    let broken = [
        (
            "no-subscriber-name.x12",
            request.replace("NM1*IL*1*TESTSUBJECT*MORGAN****MI*ZZ900111222~\n", "").replace("SE*32*", "SE*31*"),
            "X12054",
            "NM1",
        ),
        ("bad-payment-method.x12", response.replace("*CHK*20260310*", "*XYZ*20260310*"), "X12062", "STC07"),
        ("dependent-under-provider.x12", old_response.replace("HL*5*4*23~", "HL*5*3*23~"), "X12066", "HL02"),
    ];
    let mut bad_paths = Vec::new();
    for (name, text, code, position) in &broken {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = sluice(&["validate", "--format", "x12", "--output", "json", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let f: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(f.len(), 1, "{name}: {stdout}");
        assert_eq!((f[0]["code"].as_str(), f[0]["position"].as_str()), (Some(*code), Some(*position)), "{name}");
        for v in &phi {
            assert!(
                !stdout.contains(v.as_str()) && !text_of(&out.stderr).contains(v.as_str()),
                "{name}: output holds {v}"
            );
        }
        bad_paths.push(path.to_str().unwrap().to_string());
    }

    let clock = ["--fixed-clock", "2026-03-12T07:00:00Z"];
    let files: Vec<&str> = STATUS.iter().copied().chain(bad_paths.iter().map(String::as_str)).collect();
    let ack = sluice(&[&["ack", "--format", "x12"][..], &clock, &files].concat());
    assert_eq!(ack.status.code(), Some(1), "the broken sets are rejected");
    let text = String::from_utf8(ack.stdout).unwrap();
    // 5010 groups get 999s naming the guide, 4010 groups 997s.
    assert!(text.contains("AK1*HR*601*005010X212~\nAK2*276*0001*005010X212~\nIK5*A~"), "{text}");
    assert!(text.contains("AK1*HN*602*005010X212~\nAK2*277*0001*005010X212~\nIK5*A~"), "{text}");
    assert!(text.contains("AK1*HR*701~\nAK2*276*0001~\nAK5*A~"), "{text}");
    assert!(text.contains("AK1*HN*702~\nAK2*277*0001~\nAK5*A~"), "{text}");
    assert!(text.contains("IK3*NM1*"), "{text}");
    assert!(text.contains("IK4*7**7~"), "the payment method (STC07) is not a code of the guide: {text}");
    assert!(text.contains("AK3*HL*"), "{text}");
    for v in &phi {
        assert!(!text.contains(v.as_str()) && !text_of(&ack.stderr).contains(v.as_str()), "ack output holds {v}");
    }
    let acks = dir.join("acks.x12");
    std::fs::write(&acks, &text).unwrap();
    let check = sluice(&["validate", "--format", "x12", "--output", "json", acks.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(check.status.code(), Some(0), "the 999s and 997s validate: {}", text_of(&check.stdout));
    assert_eq!(text_of(&check.stdout), "", "no finding, not even X12051 (no guide)");
    let stderr = text_of(&check.stderr);
    assert!(stderr.contains("validated 7 transaction sets in 1 file: 7 accepted"), "{stderr}");
}

/// The loop of every segment of every set in `files`, as `sluice_x12::loops::identify` places
/// them against the guide the envelopes choose (GS01, GS08, ST01, ST03).
fn library_loops(files: &[&str]) -> Vec<Vec<String>> {
    use sluice_x12::guide::{Selector, select};
    use sluice_x12::split::{Item, Splitter};
    let mut all = Vec::new();
    for file in files {
        let mut gs = (String::new(), String::new());
        for item in Splitter::new(std::fs::File::open(root().join(file)).unwrap()) {
            match item.unwrap() {
                Item::Envelope { offset, delimiters, bytes }
                    if bytes.starts_with(&[b'G', b'S', delimiters.element]) =>
                {
                    let seg = sluice_x12::codec::Segment { offset, raw: &bytes, delimiters };
                    gs = (seg.element_str(1).to_string(), seg.element_str(8).to_string());
                }
                Item::Set(set) => {
                    let st = set.segments().next().unwrap();
                    let selector = Selector {
                        gs01: &gs.0,
                        gs08: &gs.1,
                        st01: st.element_str(1),
                        st03: st.element_str(3),
                        ..Default::default()
                    };
                    let guide = select(&selector).unwrap();
                    let id = sluice_x12::loops::identify(guide, set.segments().collect(), set.closed);
                    all.push((0..id.segments.len()).map(|i| id.loop_of(i).to_string()).collect());
                }
                _ => {}
            }
        }
    }
    all
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn parse_places_every_claim_status_segment_in_its_loop() {
    let out = sluice(&[&["parse", "--format", "x12"][..], &STATUS].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out.stderr));
    let sets: Vec<serde_json::Value> = text_of(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(sets.len(), 4);
    // Each segment as `SEG*first-element loop`.
    let placed = |set: &serde_json::Value| -> Vec<String> {
        let segs = set["segments"].as_array().unwrap();
        let loops = set["loops"].as_array().unwrap();
        assert_eq!(segs.len(), loops.len());
        segs.iter()
            .zip(loops)
            .map(|(s, l)| {
                let first = match &s[1] {
                    serde_json::Value::Array(parts) => {
                        parts.iter().map(|p| p.as_str().unwrap()).collect::<Vec<_>>().join(":")
                    }
                    v => v.as_str().unwrap_or("").to_string(),
                };
                format!("{}*{first} {}", s[0].as_str().unwrap(), l.as_str().unwrap()).trim_end().to_string()
            })
            .collect()
    };
    // The loops are the library's placements (specs/x12/tests/claim_status_cases.rs holds the
    // expected layout of each set): one per segment, in order, for every set of every file.
    let cli_loops: Vec<Vec<String>> = sets
        .iter()
        .map(|set| set["loops"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect())
        .collect();
    assert_eq!(cli_loops, library_loops(&STATUS));
    let request = placed(&sets[0]);
    assert_eq!(sets[0]["guide"], "005010X212/276");
    assert_eq!(&request[..4], ["ST*276", "BHT*0010", "HL*1 2000A", "NM1*PR 2100A"]);
    assert!(request.contains(&"SVC*HC:85025:QW 2210D".to_string()), "{request:?}");
    let response = placed(&sets[1]);
    assert_eq!(sets[1]["guide"], "005010X212/277");
    assert_eq!(response.iter().filter(|s| s.starts_with("STC*") && s.ends_with(" 2220D")).count(), 2);
    assert!(response.contains(&"STC*A1:20 2200B".to_string()), "{response:?}");
    // The 4010 sets: chosen from GS08 (no ST03); the same loops.
    assert_eq!(sets[2]["guide"], "004010X093A1/276");
    assert_eq!(sets[3]["guide"], "004010X093A1/277");
    let old_request = placed(&sets[2]);
    assert!(old_request.contains(&"DTP*232 2200D".to_string()), "{old_request:?}");
    assert!(old_request.contains(&"SVC*HC:93000 2210D".to_string()), "{old_request:?}");
    let old_response = placed(&sets[3]);
    assert_eq!(old_response.iter().filter(|s| s.starts_with("STC*") && s.ends_with(" 2220D")).count(), 2);
    assert!(old_response.contains(&"STC*P1:20:PR 2200E".to_string()), "{old_response:?}");
    // Every HL level and claim segment has a loop; only ST, BHT and SE sit in the set itself.
    for set in [&request, &response, &old_request, &old_response] {
        let unplaced: Vec<&String> = set.iter().filter(|s| !s.contains(' ')).collect();
        assert_eq!(unplaced.len(), 3, "{unplaced:?}");
    }
    // Sets of the other guides are placed too; a set no bundled guide fits (a 278) has neither
    // `guide` nor `loops`.
    let out = sluice(&["parse", "--format", "x12", CLAIMS]);
    let v: serde_json::Value = serde_json::from_str(text_of(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["guide"], "005010X222A1");
    assert!(v["loops"].as_array().unwrap().iter().any(|l| l == "2300"));
    let dir = std::env::temp_dir().join(format!("sluice-x12-parse-278-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("review-278.x12");
    let text = std::fs::read_to_string(root().join(STATUS[0])).unwrap();
    std::fs::write(
        &other,
        text.replace("GS*HR*", "GS*HI*").replace("ST*276*0001*005010X212~", "ST*278*0001*005010X217~"),
    )
    .unwrap();
    let out = sluice(&["parse", "--format", "x12", other.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_str(text_of(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["set_id"], "278");
    assert!(v.get("guide").is_none() && v.get("loops").is_none(), "{v}");
}

/// One 837P set of `subscribers` subscribers with a claim each (about 330 bytes apiece): a
/// subscriber without its SBR at 1,000, a claim line date that is no date at 2,000, and an SE01
/// that miscounts.
fn long_set(subscribers: usize) -> String {
    let mut s = String::from(
        "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240115*1030*^*00501*000000001*0*P*:~\
         GS*HC*S*R*20240115*1030*1*X*005010X222A1~ST*837*0001*005010X222A1~BHT*0019*00*REF1*20240101*1200*CH~\
         NM1*41*2*SUBMITTER*****46*S1~PER*IC*JANE*TE*5555551212~NM1*40*2*RECEIVER*****46*R1~\
         HL*1**20*1~NM1*85*2*PROVIDER*****XX*1000000001~N3*1 MAIN ST~N4*TOWN*NY*10001~REF*EI*123456789~",
    );
    for m in 0..subscribers {
        let hl = m + 2;
        s.push_str(&format!("HL*{hl}*1*22*0~"));
        if m != 1000 {
            s.push_str("SBR*P*18*******CI~");
        }
        let date = if m == 2000 { "20241399" } else { "20240101" };
        s.push_str(&format!(
            "NM1*IL*1*LAST{m}*FIRST****MI*M{m}~NM1*PR*2*PAYER*****PI*P1~CLM*C{m}*20***11:B:1*Y*A*Y*Y~HI*ABK:J449~\
             LX*1~SV1*HC:99213*10*UN*1***1~DTP*472*D8*{date}~LX*2~SV1*HC:85025*10*UN*1***1~DTP*472*D8*20240101~"
        ));
    }
    s.push_str("SE*7*0001~GE*1*1~IEA*1*000000001~");
    s
}

#[test]
fn a_set_longer_than_the_read_limit_is_validated_in_parts_with_the_findings_of_the_whole_set() {
    let text = long_set(10_000);
    assert!(text.len() > 2 << 20, "more than two parts at the 1 MiB set limit of validate and ack: {}", text.len());
    let dir = std::env::temp_dir().join(format!("sluice-x12-long-set-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("long.x12");
    std::fs::write(&file, &text).unwrap();
    let out = sluice(&["validate", "--format", "x12", "--output", "json", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Vec<(String, u64, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["byte_offset"].as_u64().unwrap(),
                f["position"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The library's checker over the whole set, held whole.
    let results =
        sluice_x12::envelope::check_stream_with_guides(text.as_bytes(), sluice_x12::envelope::Mode::Strict).unwrap();
    let whole: Vec<(String, u64, String)> = results
        .iter()
        .flat_map(|ic| ic.groups.iter().flat_map(|g| g.sets.iter().flat_map(|s| s.findings.iter())))
        .map(|f| (f.code.to_string(), f.offset as u64, f.position.clone()))
        .collect();
    assert_eq!(cli, whole);
    let codes: Vec<&str> = cli.iter().map(|f| f.0.as_str()).collect();
    assert!(
        codes.contains(&"X12041")
            && codes.contains(&"X12054")
            && codes.iter().any(|c| *c == "X12062" || *c == "X12063"),
        "{codes:?}"
    );
    let out = sluice(&["ack", "--format", "x12", "--fixed-clock", "2024-01-16T09:00:00Z", file.to_str().unwrap()]);
    let ack = String::from_utf8(out.stdout).unwrap();
    assert!(ack.contains("IK5*R"), "the set is rejected in the 999: {ack}");
    let _ = std::fs::remove_dir_all(&dir);
}
