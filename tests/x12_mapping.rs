//! End-to-end tests of mappings over X12 paths (`pipelines/x12-claim-sets.yaml`, mapping
//! `examples/x12-claims/claim-set.yaml`) with the real binary: the values read with
//! `2300[*]/CLM-01`, `2400[*]/SV1-01-2`, `2010AA/NM1-09`, ... are those of the data file; the
//! subscriber's name and member id are masked; the plan's masking matrix shows the guide's PHI
//! classes; a name sent unmasked is refused by the PHI-flow proof (SL601); no name, member id
//! or date of birth from the data appears in any output, log or plan.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{json_lines as lines, sluice_debug as sluice, text};

const CLOCK: &str = "2024-01-20T12:00:00Z";
const PIPELINE: &str = "pipelines/x12-claim-sets.yaml";
const CLAIMS: &str = "examples/x12-claims/data/claims-837p.x12";
const OUT: &str = "out/x12-claim-sets";

/// The segments of each transaction set of the example 837P file, as element lists.
fn sets(dir: &Path) -> Vec<Vec<Vec<String>>> {
    let s = std::fs::read_to_string(dir.join(CLAIMS)).unwrap();
    let mut out: Vec<Vec<Vec<String>>> = Vec::new();
    for seg in s.split('~') {
        let e: Vec<String> = seg.trim().split('*').map(str::to_string).collect();
        match e[0].as_str() {
            "ST" => out.push(vec![e]),
            _ => {
                if let Some(set) = out.last_mut() {
                    set.push(e);
                }
            }
        }
    }
    assert_eq!(out.len(), 3, "the example file has 3 sets");
    out
}

/// The elements `n` of segments `id` (with `qualifier` as element 01 when given) in `set`.
fn elements(set: &[Vec<String>], id: &str, qualifier: Option<&str>, n: usize) -> Vec<String> {
    set.iter()
        .filter(|e| e[0] == id && qualifier.is_none_or(|q| e.get(1).is_some_and(|v| v == q)))
        .filter_map(|e| e.get(n).cloned())
        .collect()
}

#[test]
fn claim_sets_carry_the_values_of_their_x12_paths_masked() {
    let dir = common::workspace("x12-mapping-run");
    let out = sluice(&dir, &["run", PIPELINE, "--summary", "json", "--fixed-clock", CLOCK, "--log-format", "json"]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    let summary: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    // claims-837p.x12: 3 sets, the second with a DMG02 that is not a date (DLQ); the 2 sets
    // of remits-835.x12 are filtered by the source's `guides`.
    let counts = ["records_in", "delivered", "dlq", "filtered"].map(|k| summary[k].as_u64().unwrap());
    assert_eq!(counts, [5, 2, 1, 2], "{summary}");
    assert_eq!(summary["balanced"], Value::Bool(true));
    let rows = lines(&dir.join(OUT).join("claim-sets.jsonl"));
    let data = sets(&dir);
    let delivered = [&data[0], &data[2]];
    assert_eq!(rows.len(), 2);
    for (row, set) in rows.iter().zip(delivered) {
        assert_eq!(row["reference_id"], elements(set, "BHT", None, 3)[0], "{row}");
        let claims = elements(set, "CLM", None, 1);
        assert!(claims.len() >= 2, "two claims per set in the example");
        assert_eq!(row["claim_ids"], serde_json::json!(claims), "{row}");
        let charges: Vec<f64> = elements(set, "CLM", None, 2).iter().map(|c| c.parse().unwrap()).collect();
        let got: Vec<f64> = row["claim_charges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap())
            .collect();
        assert_eq!(got, charges, "{row}");
        let procedures: Vec<String> =
            elements(set, "SV1", None, 1).iter().map(|c| c.split(':').nth(1).unwrap().to_string()).collect();
        assert_eq!(row["procedure_codes"], serde_json::json!(procedures), "{row}");
        assert_eq!(row["billing_provider_npi"], elements(set, "NM1", Some("85"), 9)[0], "{row}");
        assert_eq!(row["payer_name"], elements(set, "NM1", Some("PR"), 3)[0], "{row}");
        // PHI: the name is redacted, the member id keeps its last 4 characters, the date of
        // birth is kept (policy), as a date.
        let last = &elements(set, "NM1", Some("IL"), 3)[0];
        assert_ne!(&row["subscriber_last_name"], last, "{row}");
        assert_ne!(&row["subscriber_first_name"], &elements(set, "NM1", Some("IL"), 4)[0], "{row}");
        let member = &elements(set, "NM1", Some("IL"), 9)[0];
        let masked = row["subscriber_id"].as_str().unwrap();
        assert!(masked != member && masked.ends_with(&member[member.len() - 4..]), "{row}");
        let dob = &elements(set, "DMG", None, 2)[0];
        assert_eq!(row["subscriber_dob"], format!("{}-{}-{}", &dob[..4], &dob[4..6], &dob[6..]), "{row}");
        assert_eq!(row["compliance"]["hipaa_compliant"], true, "{row}");
    }
    // No name or member id from the data in any output, the logs or the summary.
    let mut phi = Vec::new();
    for set in &data {
        for q in ["IL", "QC"] {
            phi.extend(elements(set, "NM1", Some(q), 3));
            phi.extend(elements(set, "NM1", Some(q), 4));
            phi.extend(elements(set, "NM1", Some(q), 9));
        }
    }
    phi.retain(|v| v.len() > 2);
    assert!(phi.len() >= 9, "{phi:?}");
    let mut texts = vec![("stdout".to_string(), text(&out.stdout)), ("stderr".to_string(), text(&out.stderr))];
    for f in std::fs::read_dir(dir.join(OUT)).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        texts.push((f.path().display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    for (what, t) in &texts {
        for v in &phi {
            assert!(!t.contains(v.as_str()), "`{v}` (PHI from the data) in {what}");
        }
    }
}

#[test]
fn the_plan_shows_the_x12_paths_phi_classes_and_a_name_unmasked_is_refused() {
    let dir = common::workspace("x12-mapping-proof");
    let plan = sluice(&dir, &["plan", PIPELINE]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let p = text(&plan.stdout);
    assert!(p.contains("x12/005010X222A1 -> canonical/claim-set@1"), "{p}");
    let matrix: Vec<Vec<&str>> = p
        .lines()
        .skip_while(|l| !l.starts_with("masking matrix"))
        .skip(1)
        .map(|l| l.split_whitespace().take(4).collect())
        .filter(|r: &Vec<&str>| r.len() == 4)
        .collect();
    for want in [
        ["claim_sets", "subscriber_last_name", "name", "redact"],
        ["claim_sets", "subscriber_first_name", "name", "redact"],
        ["claim_sets", "subscriber_id", "health_plan_id", "partial"],
        ["claim_sets", "subscriber_dob", "dob", "keep"],
    ] {
        assert!(matrix.iter().any(|r| r[..] == want[..]), "{want:?} not in the matrix {matrix:?}");
    }
    // Without a rule for names, the subscriber's name reaches the sink in clear: SL601 at the
    // sink, naming the field and the X12 path's class; nothing from the data.
    let policy = dir.join("examples/x12-claims/policy.yaml");
    let original = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, original.replace("  name: redact\n", "")).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stderr));
    let err = text(&check.stderr);
    assert!(err.contains("SL601") && err.contains("subscriber_last_name") && err.contains("name"), "{err}");
    // Masked again (another treatment), it passes.
    std::fs::write(&policy, original.replace("  name: redact\n", "  name: {action: partial, keep_last: 1}\n")).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
}

#[test]
fn a_wrong_x12_path_is_refused_at_its_characters_with_the_closest_element() {
    let dir = common::workspace("x12-mapping-path");
    let mapping = dir.join("examples/x12-claims/claim-set.yaml");
    let original = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(&mapping, original.replace("2010BA/NM1-03", "2010BA/NM1-33")).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(1));
    let err = text(&check.stderr);
    assert!(err.contains("SL414") && err.contains("claim-set.yaml:19:"), "{err}");
    assert!(err.contains("did you mean `NM1-03`?"), "{err}");
    std::fs::write(&mapping, original.replace("2010BB/NM1-03", "2010BX/NM1-03")).unwrap();
    let err = text(&sluice(&dir, &["check", PIPELINE]).stderr);
    assert!(err.contains("SL414") && err.contains("has no loop 2010BX") && err.contains("2010BB"), "{err}");
}

#[test]
fn a_map_stage_fed_raw_hl7_or_an_each_over_loops_is_refused_at_its_place() {
    let dir = common::workspace("x12-mapping-refusals");
    // SL415: the 837P mapping fed by an HL7 v2 source.
    let pipeline = dir.join(PIPELINE);
    let original = std::fs::read_to_string(&pipeline).unwrap();
    let hl7 =
        original.replace("format: x12", "format: hl7v2").replace("    guides: [005010X222A1]\n    mode: strict\n", "");
    std::fs::write(&pipeline, hl7).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(1));
    let err = text(&check.stderr);
    assert!(err.contains("SL415") && err.contains("x12-claim-sets.yaml:17:") && err.contains("1 error"), "{err}");
    assert!(err.contains("feed it from a `format: x12` source"), "{err}");
    std::fs::write(&pipeline, original).unwrap();
    // SL416: `each` over the 2300 claims.
    let mapping = dir.join("examples/x12-claims/claim-set.yaml");
    let original = std::fs::read_to_string(&mapping).unwrap();
    let each = "  claim_ids:\n    - each: 2300[*]/CLM-01\n      as: claim\n      value: claim\n";
    std::fs::write(&mapping, original.replace("  claim_ids: 2300[*]/CLM-01\n", each)).unwrap();
    let check = sluice(&dir, &["check", PIPELINE]);
    assert_eq!(check.status.code(), Some(1));
    let err = text(&check.stderr);
    assert!(err.contains("SL416") && err.contains("claim-set.yaml:14:"), "{err}");
    assert!(err.contains("map the list field to the path itself"), "{err}");
}

/// The corpus's 837P claims (stupidedi's X222A1 fixtures, read from `../shared/corpus` when
/// it is there) through the bundled claim-set mapping: every delivered row holds the claim
/// ids, procedure codes and billing NPI of its file, read here independently of Sluice's
/// codec (the file's own delimiters from its ISA); no subscriber or patient name reaches any
/// output.
#[test]
fn corpus_837p_claims_map_to_their_values() {
    let corpus = match std::env::var_os("SLUICE_CORPUS") {
        Some(r) => std::path::PathBuf::from(r).join("x12"),
        None => common::root().join("../shared/corpus/x12"),
    };
    let claims = corpus.join("stupidedi-fixtures/005010/X222A1 HC837 Health Care Claim Professional/pass");
    if !claims.is_dir() {
        println!("\n*** SKIPPED: the X12 corpus is not there (looked for {}) ***\n", claims.display());
        eprintln!("SKIPPED: ../shared/corpus not found");
        return;
    }
    let dir = common::workspace("x12-mapping-corpus");
    let input = dir.join("corpus");
    std::fs::create_dir_all(&input).unwrap();
    let mut expected = Vec::new();
    let mut phi = Vec::new();
    for f in std::fs::read_dir(&claims).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        let name = format!("{:03}.edi", expected.len());
        std::fs::write(input.join(&name), &bytes).unwrap();
        let t = String::from_utf8_lossy(&bytes).into_owned();
        let (el, comp, term) = (t.as_bytes()[3] as char, t.as_bytes()[104] as char, t.as_bytes()[105] as char);
        let segs: Vec<Vec<String>> = t.split(term).map(|s| s.trim().split(el).map(str::to_string).collect()).collect();
        let get = |id: &str, q: Option<&str>, n: usize| -> Vec<String> {
            segs.iter()
                .filter(|e| e[0] == id && q.is_none_or(|q| e.get(1).is_some_and(|v| v == q)))
                .filter_map(|e| e.get(n).cloned())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let procedures: Vec<String> =
            get("SV1", None, 1).iter().filter_map(|c| c.split(comp).nth(1).map(str::to_string)).collect();
        for q in ["IL", "QC"] {
            phi.extend(get("NM1", Some(q), 3));
            phi.extend(get("NM1", Some(q), 4));
        }
        expected.push((
            get("BHT", None, 3)[0].clone(),
            serde_json::json!(get("CLM", None, 1)),
            serde_json::json!(procedures),
            get("NM1", Some("85"), 9).first().cloned(),
        ));
    }
    phi.retain(|v| v.len() > 2);
    let pipeline = std::fs::read_to_string(dir.join(PIPELINE))
        .unwrap()
        .replace("../examples/x12-claims/data/*.x12", "../corpus/*.edi")
        .replace("mode: strict", "mode: lenient");
    std::fs::write(dir.join("pipelines/corpus.yaml"), pipeline).unwrap();
    let out = sluice(&dir, &["run", "pipelines/corpus.yaml", "--summary", "json", "--fixed-clock", CLOCK]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    let summary: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(summary["records_in"].as_u64(), Some(expected.len() as u64), "{summary}");
    assert_eq!(summary["balanced"], Value::Bool(true));
    let rows = lines(&dir.join(OUT).join("claim-sets.jsonl"));
    assert!(!rows.is_empty(), "{summary}");
    // Several fixtures share a BHT03, so each row must equal a distinct file's values.
    let mut unmatched = expected.clone();
    for row in &rows {
        let got = (
            row["reference_id"].as_str().unwrap_or_default().to_string(),
            row["claim_ids"].clone(),
            row["procedure_codes"].clone(),
            row["billing_provider_npi"].as_str().map(str::to_string),
        );
        let at = unmatched.iter().position(|e| *e == got);
        assert!(at.is_some(), "row {row} is no corpus file's values; expected one of {unmatched:?}");
        unmatched.remove(at.unwrap_or_default());
    }
    eprintln!(
        "x12 corpus mapped: {} 837P files, {} rows delivered, {} to the DLQ",
        expected.len(),
        rows.len(),
        summary["dlq"]
    );
    let mut texts = vec![text(&out.stdout).to_string(), text(&out.stderr).to_string()];
    for f in std::fs::read_dir(dir.join(OUT)).unwrap().flatten() {
        texts.push(String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned());
    }
    for t in &texts {
        for v in &phi {
            assert!(!contains_word(t, v), "`{v}` (PHI from the corpus) in the run's output");
        }
    }
}

/// Whether `word` is in `text` between characters that are not letters or digits (short
/// names such as `TED` are inside other words, `UNITED`, that are no leak).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}
