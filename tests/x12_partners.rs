//! X12 trading partners end to end with the real binary (`examples/x12-partners`: a profile of
//! two partners and one file per case): the pipeline delivers each partner's accepted sets
//! with `interchange.partner`, sends an unknown sender's, an unconfigured transaction set's
//! and a wrong version's sets to the DLQ (RT178, RT179, RT180) with reasons naming positions
//! and partner ids only; a partner's relaxed checks (`validate_gs: false`,
//! `strict_segment_order: false`) and overlays (a required element made optional, a code
//! added) make its sets pass, and only its; its 999 is written with its delimiters;
//! `sluice validate` and `sluice ack --format x12 --profile` agree; and no name, member id or
//! date of birth of the fixtures reaches stderr, the DLQ's reasons or the acknowledgments.

use std::path::Path;

use serde_json::Value;

mod common;
use common::runs;
use common::{json_lines as lines, sluice_debug as sluice, text};

const CLOCK: &str = "2024-01-20T12:00:00Z";
const PIPELINE: &str = "pipelines/x12-partners.yaml";
const PROFILE: &str = "examples/x12-partners/partners.yaml";
const DATA: &str = "examples/x12-partners/data";
const OUT: &str = "out/x12-partners";

/// Names, member ids and dates of birth in the fixtures (NM1*IL/QC NM103, NM104, NM109; DMG02).
fn known_phi(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir.join(DATA)).unwrap().flatten() {
        let s = std::fs::read_to_string(f.path()).unwrap();
        for seg in s.split('~') {
            let e: Vec<&str> = seg.trim().split('*').collect();
            if matches!(e.first(), Some(&"NM1")) && matches!(e.get(1), Some(&"IL") | Some(&"QC")) {
                out.extend([3, 4, 9].iter().filter_map(|&i| e.get(i)).filter(|v| v.len() > 2).map(|v| v.to_string()));
            }
            if matches!(e.first(), Some(&"DMG")) {
                out.extend(e.get(2).map(|v| v.to_string()));
            }
        }
    }
    assert!(out.len() >= 6, "{out:?}");
    out
}

fn findings(out: &std::process::Output) -> Vec<Value> {
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn codes(fs: &[Value]) -> Vec<(String, String)> {
    fs.iter().map(|f| (f["code"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string())).collect()
}

fn pair(code: &str, severity: &str) -> (String, String) {
    (code.to_string(), severity.to_string())
}

#[test]
fn the_pipeline_delivers_each_partners_sets_and_rejects_by_partner() {
    let dir = common::workspace("x12-partners-run");
    // Fails unless the run succeeds and balances.
    let (run, summary) = runs::run(&dir, PIPELINE, CLOCK);
    assert_eq!(runs::counts(&summary), [6, 3, 3, 0], "{summary}");
    let out = dir.join(OUT);

    // Accepted: ACME's two 837s (a GE01 that miscounts, CLM08 left out, CLM07 `Z`: all its
    // profile allows) and Beta's 835 (N4 before N3), each carrying its partner's name.
    let sets = lines(&out.join("transaction-sets.jsonl"));
    let got: Vec<(String, String, String)> = sets
        .iter()
        .map(|r| {
            (
                r["interchange"]["partner"].as_str().unwrap().to_string(),
                r["set"]["id"].as_str().unwrap().to_string(),
                r["set"]["control"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |p: &str, id: &str, c: &str| (p.to_string(), id.to_string(), c.to_string());
    assert_eq!(
        got,
        [
            want("acme_clearinghouse", "837", "0001"),
            want("acme_clearinghouse", "837", "0002"),
            want("beta_payer", "835", "0001"),
        ]
    );

    // Rejected, one code per reason, with positions and the profile's partner ids.
    let dlq = lines(&out.join("dlq.jsonl"));
    let by_code = |code: &str| dlq.iter().find(|d| d["code"] == code).unwrap_or_else(|| panic!("{code}: {dlq:?}"));
    let unconfigured = by_code("RT179");
    assert_eq!(unconfigured["findings"][0]["code"], "X12069");
    assert_eq!(unconfigured["findings"][0]["path"], "segment 1 ST01");
    let reason = unconfigured["reason"].as_str().unwrap();
    assert!(reason.contains("acme_clearinghouse is configured for (837)"), "{reason}");
    let version = by_code("RT180");
    assert_eq!(version["findings"][0]["code"], "X12070");
    assert!(version["reason"].as_str().unwrap().contains("GS08 is not the version trading partner beta_payer"));
    let unknown = by_code("RT178");
    assert_eq!(unknown["findings"][0]["code"], "X12068");
    let reason = unknown["reason"].as_str().unwrap();
    assert!(reason.contains("at ISA06") && reason.contains("acme_clearinghouse (ACMECH), beta_payer (BETAPAYER)"));
    assert!(!reason.contains("STRANGER"), "what the unknown sender wrote is not echoed: {reason}");
    assert_eq!(dlq.len(), 3);

    // ACME's 999, with its delimiters, accepting both sets; itself a clean interchange.
    let acks = out.join("acks");
    let acme = std::fs::read_to_string(acks.join("acme-claims.x12.000000301.999")).unwrap();
    assert!(acme.starts_with("ISA|00|          |00|          |ZZ|RECEIVER719    |ZZ|ACMECH         |"), "{acme}");
    assert!(acme.contains("|!|00501|") && acme.lines().next().unwrap().ends_with("|P|>~"), "{acme}");
    assert!(
        acme.contains("AK2|837|0001|005010X222A1~\nIK5|A~\nAK2|837|0002|005010X222A1~\nIK5|A~\nAK9|A|2|2|2~"),
        "{acme}"
    );
    let v = sluice(&dir, &["validate", "--format", "x12", &format!("{OUT}/acks/acme-claims.x12.000000301.999")]);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    // The set ACME may not send: IK5 R 1 (transaction set not supported), default delimiters
    // nowhere (the partner's are used for all its acknowledgments).
    let acme835 = std::fs::read_to_string(acks.join("acme-remits.x12.000000302.999")).unwrap();
    assert!(acme835.contains("IK5|R|1~\nAK9|R|1|1|0~"), "{acme835}");
    // The unknown sender: a TA1 rejecting the interchange, note 006 (invalid sender id).
    let stranger = std::fs::read_to_string(acks.join("stranger-claims.x12.000000501.ta1")).unwrap();
    assert!(stranger.contains("TA1*000000501*240115*1030*R*006~"), "{stranger}");
    // Beta's 4010 group: rejected, AK905 2 (version not supported).
    let beta4010 = std::fs::read_to_string(acks.join("beta-remits-4010.x12.000000402.997")).unwrap();
    assert!(beta4010.contains("AK9*R*1*1*0*2~"), "{beta4010}");
    // Beta's 835 with N4 before N3: accepted with an error noted (E).
    let beta = std::fs::read_to_string(acks.join("beta-remits.x12.000000401.999")).unwrap();
    assert!(beta.contains("IK5*E~\nAK9*A*1*1*1~"), "{beta}");

    // No PHI from the fixtures outside the PHI-allowed sink.
    let phi = known_phi(&dir);
    let mut places = vec![
        ("stdout", text(&run.stdout)),
        ("stderr", text(&run.stderr)),
        ("dlq", std::fs::read_to_string(out.join("dlq.jsonl")).unwrap()),
        ("audit", std::fs::read_to_string(out.join("audit.jsonl")).unwrap()),
    ];
    for f in std::fs::read_dir(&acks).unwrap().flatten() {
        places.push(("ack", std::fs::read_to_string(f.path()).unwrap()));
    }
    // The plan says who the partners are and what is relaxed for each.
    let plan = sluice(&dir, &["plan", PIPELINE]);
    let plan = text(&plan.stdout) + &text(&plan.stderr);
    assert!(
        plan.contains("trading partners `clearinghouses`: acme_clearinghouse (837 5010), GS warnings, 5 overlay(s) adding 2300/REF(ZZ), 2300/2310Z; beta_payer (835 005010X221A1), any segment order; unknown senders rejected (RT178)"),
        "{plan}"
    );
    places.push(("plan", plan));
    for (place, s) in &places {
        for v in &phi {
            assert!(!s.contains(v.as_str()), "{v} leaked into {place}");
        }
    }
    let sink = std::fs::read_to_string(out.join("transaction-sets.jsonl")).unwrap();
    assert!(phi.iter().any(|v| sink.contains(v.as_str())), "the grep can find what it looks for");
}

#[test]
fn validate_with_a_profile_applies_each_partners_checks_and_overlays() {
    let dir = common::workspace("x12-partners-validate");
    let acme = format!("{DATA}/acme-claims.x12");
    // Without the profile: CLM07 `Z` and CLM08 missing in each claim of set 2; in its first
    // claim a REF*ZZ (read at a REF place ahead, so REF01 and REF02 are not its codes), a
    // second NTE, an NM1*ZZ and a REF*G2 the 837P has no place for; and the GE01 count.
    let plain = sluice(&dir, &["validate", "--format", "x12", "--output", "json", &acme]);
    assert_eq!(plain.status.code(), Some(1));
    let fs = findings(&plain);
    let mut got = codes(&fs);
    got.dedup();
    assert_eq!(
        got,
        [
            pair("X12062", "error"),
            pair("X12057", "error"),
            pair("X12062", "error"),
            pair("X12055", "error"),
            pair("X12053", "error"),
            pair("X12062", "error"),
            pair("X12057", "error"),
            pair("X12062", "error"),
            pair("X12057", "error"),
            pair("X12032", "error")
        ]
    );
    assert!(fs.iter().all(|f| f.get("partner").is_none()), "no profile, no partner key");

    // With it: the overlays (the changes and the additions) accept set 2, `validate_gs:
    // false` makes the count a warning.
    let with = sluice(&dir, &["validate", "--format", "x12", "--profile", PROFILE, "--output", "json", &acme]);
    assert_eq!(with.status.code(), Some(0), "{}{}", text(&with.stdout), text(&with.stderr));
    let fs = findings(&with);
    assert_eq!(codes(&fs), [pair("X12032", "warning")]);
    assert_eq!(fs[0]["partner"], "acme_clearinghouse");
    assert!(text(&with.stderr).contains("2 accepted, 0 rejected"), "{}", text(&with.stderr));

    // Beta's out-of-order N3: an error (and N3 missing) without the profile; a warning with it.
    let beta = format!("{DATA}/beta-remits.x12");
    let plain = sluice(&dir, &["validate", "--format", "x12", "--output", "json", &beta]);
    assert_eq!(codes(&findings(&plain)), [pair("X12053", "error"), pair("X12054", "error")]);
    let with = sluice(&dir, &["validate", "--format", "x12", "--profile", PROFILE, "--output", "json", &beta]);
    assert_eq!(with.status.code(), Some(0));
    let fs = findings(&with);
    assert_eq!(codes(&fs), [pair("X12053", "warning")]);
    assert_eq!(fs[0]["partner"], "beta_payer");

    // A partner's overlays and relaxed checks are its own: Beta sending ACME's claims is
    // refused for the set (835 only) and keeps every guide error of the bundled guide.
    let claims = std::fs::read_to_string(dir.join(&acme)).unwrap().replace("ACMECH         ", "BETAPAYER      ");
    std::fs::write(dir.join("as-beta.x12"), claims).unwrap();
    let as_beta =
        sluice(&dir, &["validate", "--format", "x12", "--profile", PROFILE, "--output", "json", "as-beta.x12"]);
    assert_eq!(as_beta.status.code(), Some(1));
    let got = codes(&findings(&as_beta));
    assert!(got.contains(&pair("X12069", "error")) && got.contains(&pair("X12057", "error")), "{got:?}");
    assert!(got.contains(&pair("X12032", "error")), "validate_gs is ACME's only: {got:?}");

    // Wrong transaction set, wrong version, unknown sender: rejected with the partner codes.
    for (file, code, position) in [
        ("acme-remits.x12", "X12069", "ST01"),
        ("beta-remits-4010.x12", "X12070", "GS08"),
        ("stranger-claims.x12", "X12068", "ISA06"),
    ] {
        let out = sluice(
            &dir,
            &["validate", "--format", "x12", "--profile", PROFILE, "--output", "json", &format!("{DATA}/{file}")],
        );
        assert_eq!(out.status.code(), Some(1), "{file}");
        let fs = findings(&out);
        let f = fs.iter().find(|f| f["code"] == code).unwrap_or_else(|| panic!("{file}: {fs:?}"));
        assert_eq!((f["position"].as_str().unwrap(), f["severity"].as_str().unwrap()), (position, "error"));
    }

    // `unknown_partners: accept`: the stranger is read with the defaults, its partner null.
    let accepting = std::fs::read_to_string(dir.join(PROFILE))
        .unwrap()
        .replace("unknown_partners: reject", "unknown_partners: accept");
    std::fs::write(dir.join("accepting.yaml"), accepting).unwrap();
    let out = sluice(
        &dir,
        &[
            "validate",
            "--format",
            "x12",
            "--profile",
            "accepting.yaml",
            "--output",
            "json",
            &format!("{DATA}/stranger-claims.x12"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.stdout.is_empty());

    // Nothing printed names a patient.
    let phi = known_phi(&dir);
    for out in [&plain, &with, &as_beta] {
        for v in &phi {
            assert!(!text(&out.stdout).contains(v.as_str()) && !text(&out.stderr).contains(v.as_str()), "{v} leaked");
        }
    }
}

#[test]
fn ack_with_a_profile_follows_the_partner() {
    let dir = common::workspace("x12-partners-ack");
    let clock = ["--fixed-clock", CLOCK];
    let acme = format!("{DATA}/acme-claims.x12");
    let out = sluice(&dir, &[&["ack", "--format", "x12", "--profile", PROFILE][..], &clock, &[&acme]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ack = text(&out.stdout);
    assert!(ack.contains("ST|999|0001|005010X231A1~") && ack.contains("AK9|A|2|2|2~"), "{ack}");
    // Without the profile the same file is answered with the default delimiters and rejections.
    let out = sluice(&dir, &[&["ack", "--format", "x12"][..], &clock, &[&acme]].concat());
    assert_eq!(out.status.code(), Some(1));
    let ack = text(&out.stdout);
    assert!(ack.contains("IK5*R*5~") && ack.contains("AK9*R*2*2*0*5~"), "{ack}");
}

#[test]
fn a_profile_of_the_wrong_format_or_with_errors_stops_the_command() {
    let dir = common::workspace("x12-partners-bad-profile");
    std::fs::write(dir.join("hl7.yaml"), "kind: profile\nname: site\nformat: hl7v2\nversion: \"2.5.1\"\n").unwrap();
    let out =
        sluice(&dir, &["validate", "--format", "x12", "--profile", "hl7.yaml", &format!("{DATA}/acme-claims.x12")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("HL7 v2 parser profile"), "{}", text(&out.stderr));
    let broken = "kind: profile\nname: p\nformat: x12\npartners:\n  - {name: a, id: A, transaction_sets: [\"837\"], version: \"5100\"}\n";
    std::fs::write(dir.join("broken.yaml"), broken).unwrap();
    let out = sluice(&dir, &["ack", "--format", "x12", "--profile", "broken.yaml", &format!("{DATA}/acme-claims.x12")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("SL432"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing acknowledged with a broken profile");
    // An X12 profile is not an HL7 one either.
    let out =
        sluice(&dir, &["validate", "--format", "hl7v2", "--profile", PROFILE, "examples/hl7/feed-2024-01-15.hl7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("X12 trading-partner profile"), "{}", text(&out.stderr));
    // `parse` takes a broken profile no more than `validate` does.
    let out =
        sluice(&dir, &["parse", "--format", "x12", "--profile", "broken.yaml", &format!("{DATA}/acme-claims.x12")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// The segments and loop ACME's overlays add (a REF*ZZ, a third NTE place, the 2310Z repricer
/// loop) are its own: the same claims from another 837 partner without those overlays are
/// rejected with the bundled guide's findings and one IK3 per such segment; `parse` places
/// them in 2310Z for ACME and leaves them in 2300 for the other partner.
#[test]
fn a_partners_added_segments_and_loops_are_its_own() {
    let dir = common::workspace("x12-partners-additions");
    let profile = std::fs::read_to_string(dir.join(PROFILE)).unwrap().replace(
        "  - name: beta_payer\n",
        "  - name: gamma_clearinghouse\n    id: GAMMACH\n    transaction_sets: [\"837\"]\n    version: \"5010\"\n    processing: {validate_gs: false}\n    overlays:\n      - {guide: 005010X222A1, path: 2300/CLM-08, usage: optional}\n      - {guide: 005010X222A1, path: 2300/CLM-07, add_codes: [Z]}\n  - name: beta_payer\n",
    );
    assert!(profile.contains("gamma_clearinghouse"));
    std::fs::write(dir.join("three.yaml"), profile).unwrap();
    let acme = format!("{DATA}/acme-claims.x12");
    let claims = std::fs::read_to_string(dir.join(&acme)).unwrap().replace("ACMECH         ", "GAMMACH        ");
    std::fs::write(dir.join("as-gamma.x12"), claims).unwrap();

    let validate = |file: &str| {
        sluice(&dir, &["validate", "--format", "x12", "--profile", "three.yaml", "--output", "json", file])
    };
    let from_acme = validate(&acme);
    assert_eq!(from_acme.status.code(), Some(0), "{}{}", text(&from_acme.stdout), text(&from_acme.stderr));
    let from_gamma = validate("as-gamma.x12");
    assert_eq!(from_gamma.status.code(), Some(1));
    let fs = findings(&from_gamma);
    let got: Vec<(&str, &str)> =
        fs.iter().map(|f| (f["code"].as_str().unwrap(), f["position"].as_str().unwrap())).collect();
    assert_eq!(
        got,
        [
            ("X12062", "REF01"),
            ("X12062", "REF02"),
            ("X12055", "NTE"),
            ("X12053", "NM1"),
            ("X12053", "REF"),
            ("X12032", "GE01")
        ],
        "only the additions are errors for gamma (its own overlays cover CLM07/CLM08)"
    );
    assert!(fs.iter().all(|f| f["partner"] == "gamma_clearinghouse"));

    // The acknowledgments: ACME's accepts both sets; gamma's rejects set 2 with an IK3 for
    // each segment the bundled guide has no place for, and none for ACME's.
    let ack = |file: &str| {
        let out = sluice(&dir, &["ack", "--format", "x12", "--profile", "three.yaml", "--fixed-clock", CLOCK, file]);
        text(&out.stdout)
    };
    let acme_ack = ack(&acme);
    assert!(!acme_ack.contains("IK3") && acme_ack.contains("AK9|A|2|2|2~"), "{acme_ack}");
    let gamma_ack = ack("as-gamma.x12");
    for ik3 in ["IK3*REF*19*2300*8~", "IK3*NTE*21*2300*5~", "IK3*NM1*23*2300*2~", "IK3*REF*24*2300*7~"] {
        assert!(gamma_ack.contains(ik3), "{ik3}: {gamma_ack}");
    }
    assert!(gamma_ack.contains("AK2*837*0002*005010X222A1~") && gamma_ack.contains("IK5*R*5~"), "{gamma_ack}");

    // `parse` with the profile: each set names its partner, and ACME's added loop holds the
    // repricer's NM1 and REF.
    let loops_of = |file: &str| {
        let out = sluice(&dir, &["parse", "--format", "x12", "--profile", "three.yaml", file]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let set: Value = serde_json::from_str(text(&out.stdout).lines().nth(1).unwrap()).unwrap();
        let pairs: Vec<(String, String)> = set["segments"]
            .as_array()
            .unwrap()
            .iter()
            .zip(set["loops"].as_array().unwrap())
            .map(|(s, l)| (s[0].as_str().unwrap().to_string(), l.as_str().unwrap().to_string()))
            .collect();
        (set["partner"].clone(), pairs[22..24].to_vec())
    };
    let nm1_ref = |l: &str| vec![("NM1".to_string(), l.to_string()), ("REF".to_string(), l.to_string())];
    assert_eq!(loops_of(&acme), (Value::from("acme_clearinghouse"), nm1_ref("2310Z")));
    assert_eq!(loops_of("as-gamma.x12"), (Value::from("gamma_clearinghouse"), nm1_ref("2300")));
}

#[test]
fn bus_sources_take_a_trading_partner_profile_too() {
    let dir = common::workspace("x12-partners-bus");
    let pipeline = |profile: &str| {
        format!(
            "kind: pipeline\nname: claims-from-amqp\nsources:\n  claims:\n    type: amqp\n    format: x12\n    url: amqp://127.0.0.1:5672/%2f\n    queue: claims.inbound\n    profile: {profile}\nsinks:\n  sets:\n    type: jsonl\n    inputs: [claims]\n    path: out/sets.jsonl\n    phi: {{allowed: true, reason: test}}\ndlq:\n  path: out/dlq.jsonl\n  plaintext_reason: synthetic test fixture\n"
        )
    };
    std::fs::write(dir.join("bus.yaml"), pipeline(PROFILE)).unwrap();
    let plan = sluice(&dir, &["plan", "bus.yaml", "--format", "json"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan: Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
    let partners = &plan["components"][0]["x12"]["partners"];
    assert_eq!(partners["partners"][0]["name"], "acme_clearinghouse", "{plan}");
    assert_eq!(partners["partners"][1]["strict_segment_order"], false);
    std::fs::write(dir.join("bus-hl7.yaml"), pipeline("mappings/base/profiles/default.yaml")).unwrap();
    let check = sluice(&dir, &["check", "bus-hl7.yaml"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check.stderr).contains("SL431"), "{}", text(&check.stderr));
}
