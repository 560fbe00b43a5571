//! A mapping that reads a trading partner's copy of its guide, end to end with the real binary
//! (`examples/x12-partners`: ACME's profile adds a `REF*ZZ` and a `2310Z` repricer loop to
//! the 837P): `input: {schema: x12/005010X222A1, profile: ..., partner: acme_clearinghouse}`
//! lets its paths name what the overlays add (`2310Z/NM1-03`, `2300/REF(ZZ)-02`); the source
//! with the same profile and the map stage place the sets in the same copy, so the values
//! arrive; an added element's PHI class (written, or taken from the guide's own segment)
//! feeds the masking proof, so one mapped unmasked is refused at compile time; a source
//! that does not read the partner's sets with that copy is refused (SL484); and sets of other
//! senders the source accepts go to the DLQ (RT312) rather than being mapped with a copy not
//! their own. An added loop may be the record (`each: loop(2310Z)`): the source cuts the
//! partner's sets at it with the same copy.

use std::path::Path;

use serde_json::Value;

mod common;
use common::runs;
use common::{json_lines as lines, sluice_debug as sluice, text};

const CLOCK: &str = "2024-01-20T12:00:00Z";
const PROFILE: &str = "examples/x12-partners/partners.yaml";

/// The canonical claim has no field for a repricer or a clearinghouse tracking number: this
/// test borrows `billing_provider.name` and `.tax_id` to see the partner's values arrive.
const MAPPING: &str = "\
kind: mapping
name: acme-claim
input:
  schema: x12/005010X222A1
  profile: ../examples/x12-partners/partners.yaml
  partner: acme_clearinghouse
output: canonical/claim@1
each: loop(2300)
fields:
  reference_id: BHT-03
  claim_id: 2300/CLM-01
  total_charge: 2300/CLM-02
  billing_provider:
    name: 2310Z/NM1-03
    tax_id: 2300/REF(ZZ)-02
";

const POLICY: &str = "\
kind: masking
name: acme-claims
classes:
  other_id: {action: partial, keep_last: 4}
  account_number: {action: keep, reason: \"the patient control number is how the billing office finds the claim\"}
";

fn pipeline(source_profile: &str, files: &str, mask: bool) -> String {
    let (map_to, mask_stage) = if mask {
        ("mask", "  mask:\n    type: mask\n    inputs: [claim]\n    policy: policy.yaml\n")
    } else {
        ("claim", "")
    };
    format!(
        "kind: pipeline
name: acme-claims
sources:
  claims:
    type: files
    format: x12
    path: {files}
    profile: {source_profile}
stages:
  claim:
    type: map
    inputs: [claims]
    mapping: mapping.yaml
{mask_stage}sinks:
  out:
    type: jsonl
    inputs: [{map_to}]
    path: ../out/acme/claims.jsonl
dlq:
  path: ../out/acme/dlq.jsonl
  plaintext_reason: synthetic test fixture
"
    )
}

fn setup(dir: &Path) {
    std::fs::create_dir_all(dir.join("acme")).unwrap();
    std::fs::write(dir.join("acme/mapping.yaml"), MAPPING).unwrap();
    std::fs::write(dir.join("acme/policy.yaml"), POLICY).unwrap();
}

fn check(dir: &Path, pipeline_text: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("acme/pipeline.yaml"), pipeline_text).unwrap();
    let out = sluice(dir, &["check", "acme/pipeline.yaml"]);
    (out.status.code(), text(&out.stderr))
}

#[test]
fn a_partners_mapping_reads_its_added_segments_and_loops() {
    let dir = common::workspace("x12-partner-mapping-run");
    setup(&dir);
    let p = pipeline("../examples/x12-partners/partners.yaml", "../examples/x12-partners/data/acme-claims.x12", true);
    std::fs::write(dir.join("acme/pipeline.yaml"), p).unwrap();
    let (_, summary) = runs::run(&dir, "acme/pipeline.yaml", CLOCK);
    // Two sets of three claims each, cut at 2300: every claim delivered.
    assert_eq!(runs::counts(&summary), [6, 6, 0, 0], "{summary}");
    let claims = lines(&dir.join("out/acme/claims.jsonl"));
    let got: Vec<(&str, &Value, &Value)> = claims
        .iter()
        .map(|c| (c["claim_id"].as_str().unwrap(), &c["billing_provider"]["name"], &c["billing_provider"]["tax_id"]))
        .collect();
    // Set 0002's first claim carries ACME's REF*ZZ*CH7781 and the 2310Z NM1*ZZ*2*VALLEY
    // REPRICING: the repricer's name in clear (the profile says `phi: none`), the tracking
    // number as `other_id` (the guide's REF02 classes), kept to its last four characters.
    let none = Value::Null;
    let repricer = Value::from("VALLEY REPRICING");
    let tracking = Value::from("**7781");
    assert_eq!(
        got,
        [
            ("PC29071478", &none, &none),
            ("PC99743456", &none, &none),
            ("PC89220365", &none, &none),
            ("PC29071478", &repricer, &tracking),
            ("PC99743456", &none, &none),
            ("PC89220365", &none, &none),
        ]
    );
    let human = sluice(&dir, &["plan", "acme/pipeline.yaml"]);
    assert!(
        text(&human.stdout).contains("trading partner acme_clearinghouse: its copy of the guide (5 overlay(s))"),
        "{}",
        text(&human.stdout)
    );
    // The plan says whose copy the map stage reads, with the partner's overlays of the guide.
    let plan = sluice(&dir, &["plan", "acme/pipeline.yaml", "--format", "json"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan: Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
    let map = plan["components"].as_array().unwrap().iter().find(|c| c["name"] == "claim").unwrap();
    let partner = &map["x12_partner"];
    assert_eq!(partner["name"], "acme_clearinghouse", "{map}");
    let overlays: Vec<&Value> = partner["overlays"].as_array().unwrap().iter().collect();
    assert_eq!(overlays.len(), 5, "{partner}");
    assert_eq!(overlays[4]["add_loop"], "2300/2310Z");
    assert_eq!(overlays[4]["segments"][0]["elements"][1]["phi"], "none");
}

#[test]
fn an_added_element_mapped_unmasked_is_refused() {
    let dir = common::workspace("x12-partner-mapping-phi");
    setup(&dir);
    let data = "../examples/x12-partners/data/acme-claims.x12";
    // Without the mask stage: REF02 of the added REF(ZZ) is `other_id`, CLM01 the guide's
    // `account_number`; the repricer's name is no PHI (`phi: none` in the profile).
    let (code, err) = check(&dir, &pipeline("../examples/x12-partners/partners.yaml", data, false));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`billing_provider.tax_id` carries PHI class `other_id`"), "{err}");
    assert!(err.contains("`claim_id` carries PHI class `account_number`"), "{err}");
    assert!(!err.contains("billing_provider.name"), "{err}");
    assert_eq!(err.matches("SL601").count(), 2, "{err}");
    // Without `phi: none`, the added NM1's name is `name`, as the guide's own NM1s have it:
    // the policy (which has no rule for names) no longer covers it.
    let profile = std::fs::read_to_string(dir.join(PROFILE)).unwrap();
    let unsaid = profile.replace("{position: 3, usage: required, phi: none}", "{position: 3, usage: required}");
    assert_ne!(unsaid, profile);
    std::fs::write(dir.join("acme/unsaid.yaml"), unsaid).unwrap();
    std::fs::write(
        dir.join("acme/mapping.yaml"),
        MAPPING.replace("../examples/x12-partners/partners.yaml", "unsaid.yaml"),
    )
    .unwrap();
    let (code, err) = check(&dir, &pipeline("unsaid.yaml", data, true));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`billing_provider.name` carries PHI class `name`"), "{err}");
    assert_eq!(err.matches("SL601").count(), 1, "{err}");
}

#[test]
fn the_source_and_the_mapping_read_the_partner_with_one_copy() {
    let dir = common::workspace("x12-partner-mapping-sources");
    setup(&dir);
    let data = "../examples/x12-partners/data/acme-claims.x12";
    // A source without the profile would validate ACME's additions against the bundled guide.
    let no_profile = pipeline("x", data, true).replace("    profile: x\n", "");
    let (code, err) = check(&dir, &no_profile);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("SL484") && err.contains("without a trading-partner profile"), "{err}");
    // A profile whose ACME overlays the 837P otherwise (no 2310Z).
    let profile = std::fs::read_to_string(dir.join(PROFILE)).unwrap();
    let start = profile.find("      - guide: 005010X222A1\n        add_loop: 2300/2310Z").unwrap();
    let end = profile.find("    # ACME's translator").unwrap();
    let fewer = format!("{}{}", &profile[..start], &profile[end..]);
    std::fs::write(dir.join("acme/fewer.yaml"), fewer).unwrap();
    let (code, err) = check(&dir, &pipeline("fewer.yaml", data, true));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("SL484") && err.contains("with other overlays"), "{err}");
}

/// A profile with a second 837 partner (gamma, without ACME's additions) that accepts unknown
/// senders: the source reads all three senders' claims; only ACME's are mapped, the others go
/// to the DLQ as RT312, with the mapping's partner named and nothing the senders wrote.
#[test]
fn sets_of_other_senders_go_to_the_dlq() {
    let dir = common::workspace("x12-partner-mapping-others");
    setup(&dir);
    let profile = std::fs::read_to_string(dir.join(PROFILE)).unwrap();
    let three = profile.replace("unknown_partners: reject", "unknown_partners: accept").replace(
        "  - name: beta_payer\n",
        "  - name: gamma_clearinghouse\n    id: GAMMACH\n    transaction_sets: [\"837\"]\n    version: \"5010\"\n    processing: {validate_gs: false}\n    overlays:\n      - {guide: 005010X222A1, path: 2300/CLM-08, usage: optional}\n      - {guide: 005010X222A1, path: 2300/CLM-07, add_codes: [Z]}\n  - name: beta_payer\n",
    );
    assert!(three.contains("gamma_clearinghouse") && three.contains("accept"));
    std::fs::write(dir.join("acme/three.yaml"), three).unwrap();
    std::fs::create_dir_all(dir.join("acme/data")).unwrap();
    let acme = std::fs::read_to_string(dir.join("examples/x12-partners/data/acme-claims.x12")).unwrap();
    std::fs::write(dir.join("acme/data/1-acme.x12"), &acme).unwrap();
    // Gamma's copy of ACME's first set (the second holds ACME's additions, which gamma's
    // profile does not allow: the source rejects it).
    let (second_set, group_end) = (acme.find("ST*837*0002").unwrap(), acme.rfind("GE*").unwrap());
    let gamma = format!("{}{}", &acme[..second_set], &acme[group_end..]).replace("ACMECH         ", "GAMMACH        ");
    std::fs::write(dir.join("acme/data/2-gamma.x12"), gamma).unwrap();
    let stranger = std::fs::read_to_string(dir.join("examples/x12-partners/data/stranger-claims.x12")).unwrap();
    std::fs::write(dir.join("acme/data/3-stranger.x12"), stranger).unwrap();

    std::fs::write(dir.join("acme/pipeline.yaml"), pipeline("three.yaml", "data/*.x12", true)).unwrap();
    let (run, summary) = runs::run(&dir, "acme/pipeline.yaml", CLOCK);
    // ACME's six claims delivered; gamma's three and the unknown sender's three to the DLQ.
    assert_eq!(runs::counts(&summary), [12, 6, 6, 0], "{summary}");
    let entries = lines(&dir.join("out/acme/dlq.jsonl"));
    let other: Vec<&Value> = entries.iter().filter(|e| e["code"] == "RT312").collect();
    assert_eq!(other.len(), 6, "only RT312: {entries:?}");
    for e in &other {
        let reason = e["reason"].as_str().unwrap();
        assert!(reason.contains("not from trading partner `acme_clearinghouse`"), "{reason}");
        assert!(!reason.contains("GAMMACH") && !reason.contains("STRANGER"), "{reason}");
    }
    let claims = lines(&dir.join("out/acme/claims.jsonl"));
    assert_eq!(claims.iter().filter(|c| c["billing_provider"]["name"] == "VALLEY REPRICING").count(), 1);
    assert!(!text(&run.stderr).contains("VALLEY REPRICING"));
}

/// An added loop is a loop of the partner's copy like the guide's own: a mapping may map one
/// record per occurrence of it (`each: loop(2310Z)`), and the source cuts the partner's sets
/// there with the same copy. A set without the loop goes to the DLQ whole (RT143).
#[test]
fn an_added_loop_can_be_the_record() {
    let dir = common::workspace("x12-partner-mapping-loop");
    setup(&dir);
    let per_repricer = MAPPING
        .replace("name: acme-claim", "name: acme-repricing")
        .replace("each: loop(2300)", "each: loop(2310Z)")
        .replace("    tax_id: 2300/REF(ZZ)-02\n", "");
    std::fs::write(dir.join("acme/mapping.yaml"), per_repricer).unwrap();
    let p = pipeline("../examples/x12-partners/partners.yaml", "../examples/x12-partners/data/acme-claims.x12", true);
    std::fs::write(dir.join("acme/pipeline.yaml"), p).unwrap();
    let (_, summary) = runs::run(&dir, "acme/pipeline.yaml", CLOCK);
    assert_eq!(runs::counts(&summary), [2, 1, 1, 0], "{summary}");
    let claims = lines(&dir.join("out/acme/claims.jsonl"));
    assert_eq!(claims[0]["claim_id"], "PC29071478");
    assert_eq!(claims[0]["billing_provider"]["name"], "VALLEY REPRICING");
    let dlq = lines(&dir.join("out/acme/dlq.jsonl"));
    assert_eq!(dlq[0]["code"], "RT143", "the first set has no 2310Z: {dlq:?}");
}
