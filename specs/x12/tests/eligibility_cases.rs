//! The eligibility guides (270 and 271, 005010X279A1): the synthetic fixtures in
//! `tests/fixtures/x12/eligibility/` validate cleanly, one change gives the finding it should (without the
//! data in its message), and the conformance report of the 270, 271 and 834 (005010X220A1)
//! guides over `../shared/corpus/x12` (SKIPPED, loudly, when the corpus is not there).

mod common;

use std::path::{Path, PathBuf};

use common::{corpus_root, files};
use sluice_x12::envelope::{InterchangeResult, Mode, Severity, check_stream_with_guides};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/x12/eligibility").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(text: &str) -> Vec<InterchangeResult> {
    check_bytes(text.as_bytes())
}

fn check_bytes(bytes: &[u8]) -> Vec<InterchangeResult> {
    check_stream_with_guides(bytes, Mode::Strict).unwrap()
}

/// Every finding of every set: (code, severity, message).
fn findings(res: &[InterchangeResult]) -> Vec<(String, Severity, String)> {
    let sets = res.iter().flat_map(|ic| &ic.groups).flat_map(|g| &g.sets);
    sets.flat_map(|s| &s.findings).map(|f| (f.code.to_string(), f.severity, f.message.clone())).collect()
}

/// Whether the file is accepted: sets found, all accepted, no errors anywhere, and each set
/// met a bundled guide (no X12051).
fn clean(res: &[InterchangeResult]) -> bool {
    let sets: usize = res.iter().map(|ic| ic.total_sets()).sum();
    let accepted: usize = res.iter().map(|ic| ic.accepted_sets()).sum();
    sets > 0
        && sets == accepted
        && res.iter().all(|ic| !ic.has_errors())
        && !findings(res).iter().any(|(code, _, _)| code == "X12051")
}

#[test]
fn synthetic_fixtures_validate_cleanly() {
    for (name, guide) in [
        ("eligibility-270.x12", "005010X279A1"),
        ("eligibility-271.x12", "005010X279A1"),
        ("eligibility-271-family.x12", "005010X279A1"),
        ("enrollment-834.x12", "005010X220A1"),
    ] {
        let res = check(&fixture(name));
        assert!(clean(&res), "{name}: {:?}", findings(&res));
        assert!(res[0].groups[0].sets.iter().all(|s| s.guide == guide), "{name}");
    }
}

#[test]
fn one_change_one_finding_without_the_data() {
    let text = fixture("eligibility-271.x12");
    // EB02 (coverage level) outside the guide's codes.
    let bad = text.replace("EB*1*IND*30**SYNTH SILVER PLAN~", "EB*1*XYZ*30**SYNTH SILVER PLAN~");
    let f = findings(&check(&bad));
    assert!(f.iter().any(|(c, s, m)| c == "X12062" && *s == Severity::Error && m.starts_with("EB02 ")), "{f:?}");
    // More repeats than EB03 allows (99).
    let many = vec!["30"; 100].join("^");
    let bad = text.replace("EB*A*IND*1^33^98****.2~", &format!("EB*A*IND*{many}****.2~"));
    let f = findings(&check(&bad));
    assert!(f.iter().any(|(c, _, m)| c == "X12065" && m.starts_with("EB03 ")), "{f:?}");
    // A repetition that is not a code of the element's type (too long).
    let bad = text.replace("EB*A*IND*1^33^98****.2~", "EB*A*IND*1^33^TOOLONG****.2~");
    let f = findings(&check(&bad));
    assert!(f.iter().any(|(c, _, m)| c == "X12060" && m.starts_with("EB03 ")), "{f:?}");
    // The subscriber name is required in 2100C; its date of birth must be a date.
    let inquiry = fixture("eligibility-270.x12");
    let bad = inquiry.replace("DMG*D8*19800101*F~", "DMG*D8*19801301*F~");
    let f = findings(&check(&bad));
    assert!(f.iter().any(|(c, _, m)| c == "X12063" && m.contains("DMG02") && m.contains("2100C")), "{f:?}");
    let bad = inquiry.replace("NM1*IL*1*TESTPERSON*AVERY****MI*ZZ000111222~", "").replace("SE*20*", "SE*19*");
    let f = findings(&check(&bad));
    assert!(f.iter().any(|(_, s, m)| *s == Severity::Error && m.contains("2100C")), "{f:?}");
    // A 271 set in an HS (270) group: the 271 guide still applies (ST01), with a GS01 warning.
    let bad = text.replace("GS*HB*", "GS*HS*");
    let f = findings(&check(&bad));
    assert!(f.iter().any(|(c, s, _)| c == "X12067" && *s == Severity::Warning), "{f:?}");
    assert!(!f.iter().any(|(_, s, _)| *s == Severity::Error), "{f:?}");
    for (_, _, m) in f.iter().chain(findings(&check(&inquiry.replace("DMG*D8*19800101", "DMG*D8*1980"))).iter()) {
        for phi in ["TESTPERSON", "AVERY", "ROWAN", "ZZ000111222", "19800101", "100 EXAMPLE WAY", "SAMPLETOWN"] {
            assert!(!m.contains(phi), "a finding shows data: {m}");
        }
    }
}

// ---- corpus conformance ----

/// Corpus files Sluice refuses though they are not in a `fail/` folder, and why.
const DISAGREEMENTS: &[(&str, &str)] =
    &[("271_005010X279A1/subscriber-health-benefit-check-error.271", "X12042: SE02 (4323) differs from ST02 (4321)")];

#[test]
fn corpus_conformance_270_271_834() {
    let Some(root) = corpus_root() else { return };
    let stupidedi = root.join("stupidedi-fixtures/005010");
    let lfh = root.join("linuxforhealth-x12");
    let suites: &[(&str, PathBuf, PathBuf)] = &[
        (
            "270 005010X279A1",
            stupidedi.join("X279A1 HS270 Health Care Eligibility Benefit Inquiry and Response"),
            lfh.join("270_005010X279A1"),
        ),
        (
            "271 005010X279A1",
            stupidedi.join("X279A1 HB271 Health Care Eligibility Benefit Inquiry and Response"),
            lfh.join("271_005010X279A1"),
        ),
        (
            "834 005010X220A1",
            stupidedi.join("X220A1 BE834 Benefit Enrollment and Maintenance"),
            lfh.join("834_005010X220A1"),
        ),
    ];
    println!("\nX12 eligibility and enrollment guides against the corpus under {} (strict)", root.display());
    let mut disagreements = Vec::new();
    for (guide, fixtures, others) in suites {
        let mut counts = [(0, 0); 3];
        for (kind, dir) in [(0, fixtures.join("pass")), (1, fixtures.join("fail")), (2, others.clone())] {
            for file in files(&dir) {
                let res = check_bytes(&std::fs::read(&file).unwrap());
                let ok = clean(&res) == (kind != 1);
                counts[kind].1 += 1;
                if ok {
                    counts[kind].0 += 1;
                } else {
                    let rel = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
                    let codes: Vec<String> = findings(&res)
                        .into_iter()
                        .filter(|(_, s, _)| *s == Severity::Error)
                        .map(|(c, _, m)| format!("{c} {m}"))
                        .collect();
                    println!("  disagreement: {rel}: {codes:?}");
                    disagreements.push(rel);
                }
            }
        }
        let [(p, pt), (f, ft), (o, ot)] = counts;
        println!(
            "  {guide}: stupidedi pass {p}/{pt} accepted, fail {f}/{ft} refused; linuxforhealth {o}/{ot} accepted"
        );
        assert!(pt > 0 && ot > 0, "{guide}: the corpus folders moved ({})", fixtures.display());
    }
    let expected: Vec<String> = DISAGREEMENTS
        .iter()
        .map(|(f, why)| {
            println!("  documented: {f}: {why}");
            format!("linuxforhealth-x12/{f}")
        })
        .collect();
    assert_eq!(disagreements, expected, "the disagreements changed: update DISAGREEMENTS with the reasons");
}

/// A synthetic 834 (every name and id made up): a subscriber added to a health plan.
const ENROLLMENT: &str = "ISA*00*          *00*          *ZZ*SYNTHSPONSOR   *ZZ*SYNTHPAYER     *260115*0930*^*00501*000000401*0*T*:~\
GS*BE*SYNTHSPONSOR*SYNTHPAYER*20260115*0930*401*X*005010X220A1~\
ST*834*0001*005010X220A1~\
BGN*00*SYN834*20260115*0930****2~\
N1*P5*EXAMPLE EMPLOYER*FI*999999999~\
N1*IN*EXAMPLE HEALTH PLAN*FI*888888888~\
INS*Y*18*021*28*A***FT~\
REF*0F*ZZ000333444~\
DTP*356*D8*20260201~\
NM1*IL*1*TESTMEMBER*QUINN****34*999001234~\
DMG*D8*19850303*U~\
HD*021**HLT**IND~\
DTP*348*D8*20260201~\
SE*12*0001~GE*1*401~IEA*1*000000401~";

#[test]
fn the_834_guide_checks_members_and_coverage() {
    let res = check(ENROLLMENT);
    assert!(clean(&res), "{:?}", findings(&res));
    assert_eq!(res[0].groups[0].sets[0].guide, "005010X220A1");
    // INS03 (maintenance type) outside the guide's codes.
    let f = findings(&check(&ENROLLMENT.replace("INS*Y*18*021*", "INS*Y*18*999*")));
    assert!(f.iter().any(|(c, _, m)| c == "X12062" && m.starts_with("INS03 ") && m.contains("loop 2000")), "{f:?}");
    // The subscriber identifier (REF*0F) is required in each member loop.
    let f = findings(&check(&ENROLLMENT.replace("REF*0F*ZZ000333444~", "").replace("SE*12*", "SE*11*")));
    assert!(f.iter().any(|(c, s, m)| c == "X12054" && *s == Severity::Error && m.contains("REF")), "{f:?}");
    // HD05 coverage level codes; the health coverage loop needs its DTP.
    let f = findings(&check(&ENROLLMENT.replace("HD*021**HLT**IND~", "HD*021**HLT**ZZZ~")));
    assert!(f.iter().any(|(c, _, m)| c == "X12062" && m.starts_with("HD05 ")), "{f:?}");
    for (_, _, m) in &f {
        for phi in ["TESTMEMBER", "QUINN", "999001234", "ZZ000333444", "19850303"] {
            assert!(!m.contains(phi), "a finding shows data: {m}");
        }
    }
}
