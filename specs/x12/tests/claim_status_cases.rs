//! The claim status guides (276 request and 277 response; 5010 `005010X212`, 4010
//! `004010X093A1`): the synthetic fixtures in `tests/fixtures/x12/status/` validate cleanly
//! with the guide ST01 and GS08/ST03 choose, every segment finds its loop (2000A-2000E HL
//! levels, 2200D/E claims, 2210D/E service lines in the 276 and 2220D/E in the 277), one
//! change (a missing required segment, a code outside the guide's list, an HL under the wrong
//! parent) gives the finding it should without the data in its message, the 999 or 997 of
//! each validates against its own guide, and the conformance report of the 276/277 guides over
//! `../shared/corpus/x12` (SKIPPED, loudly, when the corpus is not there).

mod common;

use std::path::PathBuf;

use sluice_x12::ack::{AckOptions, acknowledge};
use sluice_x12::envelope::{InterchangeResult, Mode, Severity, check_stream_with_guides};
use sluice_x12::guide::{Selector, by_schema_name, select};

use common::{check, codes, corpus_root, files, findings, fixture, placed};

const REQUEST: &str = "../status/status-276.x12";
const RESPONSE: &str = "../status/status-277.x12";
const REQUEST_4010: &str = "../status/status-4010-276.x12";
const RESPONSE_4010: &str = "../status/status-4010-277.x12";

/// Names, member ids, patient control numbers and dates of birth of the four fixtures.
const PHI: &[&str] = &[
    "TESTSUBJECT",
    "MORGAN",
    "JORDAN",
    "ZZ900111222",
    "SYNPCN0001",
    "19790415",
    "20120820",
    "SAMPLEPERSON",
    "RILEY",
    "SKYLER",
    "ZZ800333444",
    "19700612",
];

/// Whether the file is accepted: sets found, all accepted, no finding at all (not even X12051,
/// so each set met a bundled guide).
fn clean(res: &[InterchangeResult]) -> bool {
    let sets: usize = res.iter().map(|ic| ic.total_sets()).sum();
    let accepted: usize = res.iter().map(|ic| ic.accepted_sets()).sum();
    sets > 0 && sets == accepted && findings(res).is_empty()
}

#[test]
fn the_status_fixtures_validate_cleanly_with_the_guide_the_envelopes_name() {
    for (name, guide, set_id, version) in [
        (REQUEST, "005010X212", "276", "00501"),
        (RESPONSE, "005010X212", "277", "00501"),
        (REQUEST_4010, "004010X093A1", "276", "00401"),
        (RESPONSE_4010, "004010X093A1", "277", "00401"),
    ] {
        let text = fixture(name);
        let res = check(&text);
        assert!(clean(&res), "{name}: {:?}", codes(&text));
        let group = &res[0].groups[0];
        let set = &group.sets[0];
        assert_eq!(set.id, set_id, "{name}");
        let selector = Selector {
            isa12: version,
            gs01: &group.functional_id,
            gs08: &group.version,
            st01: &set.id,
            st03: &set.guide,
        };
        let chosen = select(&selector).unwrap();
        assert_eq!((chosen.id.as_str(), chosen.set_id.as_str()), (guide, set_id), "{name}");
        // GS01: HR for the request, HN for the response.
        assert_eq!(chosen.functional_id, if set_id == "276" { "HR" } else { "HN" }, "{name}");
    }
    // The 276 and 277 share their id: mappings name them by id and set, like the 270/271.
    assert_eq!(by_schema_name("005010X212/277").unwrap().set_id, "277");
    assert_eq!(by_schema_name("004010X093A1/276").unwrap().set_id, "276");
    assert!(by_schema_name("005010X212").is_none(), "a shared id is ambiguous");
}

/// (segment with its first element, loop) of every segment, with no structural finding.
fn loops(name: &str, guide: &str) -> Vec<(String, String)> {
    let text = fixture(name);
    let set = common::raw_set(&text);
    let g = by_schema_name(guide).unwrap();
    let id = sluice_x12::loops::identify(g, set.segments().collect(), set.closed);
    assert_eq!(id.findings.iter().map(|f| f.code).collect::<Vec<_>>(), Vec::<&str>::new(), "{name}");
    (0..id.segments.len())
        .map(|i| {
            let s = &id.segments[i];
            (format!("{}*{}", s.id_str(), String::from_utf8_lossy(s.element(1).unwrap_or(b""))), id.loop_of(i).into())
        })
        .collect()
}

/// The loop of every segment, in order, as `SEG*first-element loop` lines.
fn layout(all: &[(String, String)]) -> Vec<String> {
    all.iter().map(|(s, l)| format!("{s} {l}").trim_end().to_string()).collect()
}

#[test]
fn every_segment_of_a_276_finds_its_loop() {
    let want = [
        "ST*276",
        "BHT*0010",
        "HL*1 2000A",
        "NM1*PR 2100A",
        "HL*2 2000B",
        "NM1*41 2100B",
        "HL*3 2000C",
        "NM1*1P 2100C",
        "HL*4 2000D",
        "DMG*D8 2000D",
        "NM1*IL 2100D",
        "TRN*1 2200D",
        "REF*1K 2200D",
        "REF*EJ 2200D",
        "AMT*T3 2200D",
        "DTP*472 2200D",
        "SVC*HC:99213 2210D",
        "REF*FJ 2210D",
        "DTP*472 2210D",
        "SVC*HC:85025:QW 2210D",
        "REF*FJ 2210D",
        "DTP*472 2210D",
        "HL*5 2000E",
        "DMG*D8 2000E",
        "NM1*QC 2100E",
        "TRN*1 2200E",
        "REF*EJ 2200E",
        "AMT*T3 2200E",
        "DTP*472 2200E",
        "SVC*HC:99212 2210E",
        "DTP*472 2210E",
        "SE*32",
    ];
    assert_eq!(layout(&loops(REQUEST, "005010X212/276")), want);
    // The 4010 request has the same loops (a statement date DTP*232 on the first claim).
    let all = loops(REQUEST_4010, "004010X093A1/276");
    assert_eq!(common::loop_of(&all, "DTP*232", 0), "2200D");
    assert_eq!(common::loop_of(&all, "SVC*HC:93000", 0), "2210D");
    assert_eq!(common::loop_of(&all, "NM1*QC", 0), "2100E");
    assert_eq!(common::loop_of(&all, "AMT*T3", 1), "2200E");
}

#[test]
fn every_segment_of_a_277_finds_its_loop() {
    let want = [
        "ST*277",
        "BHT*0010",
        "HL*1 2000A",
        "NM1*PR 2100A",
        "PER*IC 2100A",
        "HL*2 2000B",
        "NM1*41 2100B",
        "TRN*2 2200B",
        "STC*A1:20 2200B",
        "HL*3 2000C",
        "NM1*1P 2100C",
        "HL*4 2000D",
        "NM1*IL 2100D",
        "TRN*2 2200D",
        "STC*F1:65 2200D",
        "REF*1K 2200D",
        "REF*EJ 2200D",
        "DTP*472 2200D",
        "SVC*HC:99213 2220D",
        "STC*F1:65 2220D",
        "REF*FJ 2220D",
        "DTP*472 2220D",
        "SVC*HC:85025:QW 2220D",
        "STC*F1:65 2220D",
        "REF*FJ 2220D",
        "DTP*472 2220D",
        "HL*5 2000E",
        "NM1*QC 2100E",
        "TRN*2 2200E",
        "STC*P1:20:PR 2200E",
        "REF*1K 2200E",
        "REF*EJ 2200E",
        "DTP*472 2200E",
        "SE*34",
    ];
    assert_eq!(layout(&loops(RESPONSE, "005010X212/277")), want);
    let all = loops(RESPONSE_4010, "004010X093A1/277");
    assert_eq!(common::loop_of(&all, "STC*F1:65", 2), "2220D");
    assert_eq!(common::loop_of(&all, "STC*P1:20:PR", 0), "2200E");
    // 4010 has no receiver or provider status loops: a TRN under 2000B is out of place there.
    let (_, structural) = placed(
        &fixture(RESPONSE_4010).replace(
            "NM1*41*2*SYNTH BILLING SERVICE*****46*SYNTX0001~",
            "NM1*41*2*SYNTH BILLING SERVICE*****46*SYNTX0001~\nTRN*2*SYNREQ4010~",
        ),
        "004010X093A1",
    );
    assert!(!structural.is_empty());
}

#[test]
fn one_change_one_finding_without_the_data() {
    let request = fixture(REQUEST);
    // The subscriber name (2100D) is required.
    let bad = request.replace("NM1*IL*1*TESTSUBJECT*MORGAN****MI*ZZ900111222~\n", "").replace("SE*32*", "SE*31*");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12054" && m.contains("2100D")), "{f:?}");
    // The claim's trace number (TRN) starts 2200D: without it, the REFs have no place.
    let bad = request.replace("TRN*1*SYNTRACE0001~\n", "").replace("SE*32*", "SE*31*");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, _)| *c == "X12053"), "{f:?}");
    // A code outside the guide's list: the payer's id qualifier, a procedure qualifier.
    let bad =
        request.replace("NM1*PR*2*EXAMPLE HEALTH PLAN*****PI*99999~", "NM1*PR*2*EXAMPLE HEALTH PLAN*****QQ*99999~");
    assert_eq!(codes(&bad), [("X12062", "NM108 is not one of the guide's codes (loop 2100A)".to_string())]);
    let bad = request.replace("SVC*HC:99213*", "SVC*XX:99213*");
    assert_eq!(codes(&bad), [("X12062", "SVC01-1 is not one of the guide's codes (loop 2210D)".to_string())]);
    // The dependent's HL names the provider (HL 3) as its parent, not the subscriber (HL 4).
    let bad = request.replace("HL*5*4*23~", "HL*5*3*23~");
    let f = findings(&check(&bad));
    assert_eq!(f.iter().map(|f| (f.code, f.position.as_str())).collect::<Vec<_>>(), [("X12066", "HL02")], "{f:?}");
    assert_eq!(f[0].message, "HL02 names a loop 2000C HL; a 2000E HL belongs under 2000D (loop 2000E)");
    // A bad date of birth: the message names the element, not the value.
    let bad = request.replace("DMG*D8*19790415*F~", "DMG*D8*19791315*F~");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12063" && m.contains("DMG02") && m.contains("2000D")), "{f:?}");

    let response = fixture(RESPONSE);
    // Each claim (2200D) needs its status (STC).
    let bad = response
        .replace("STC*F1:65*20260309**245.00*200.00*20260309*CHK*20260310*SYNCHK0042~\n", "")
        .replace("SE*34*", "SE*33*");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12054" && m.contains("2200D")), "{f:?}");
    // STC07 (payment method) codes; the BHT of a response is 08 (status).
    let bad = response.replace("*CHK*20260310*", "*XYZ*20260310*");
    assert_eq!(codes(&bad), [("X12062", "STC07 is not one of the guide's codes (loop 2200D)".to_string())]);
    let bad = response.replace("BHT*0010*08*", "BHT*0010*13*");
    assert_eq!(codes(&bad), [("X12062", "BHT02 is not one of the guide's codes".to_string())]);
    // A claim status HL under the information receiver (HL 2) instead of a provider.
    let bad = response.replace("HL*4*3*22*1~", "HL*4*2*22*1~");
    let f = findings(&check(&bad));
    assert!(f.iter().any(|f| f.code == "X12066" && f.message.contains("belongs under 2000C")), "{f:?}");
    // 4010: C043 has three components (the code list qualifier came in 5010).
    let bad = fixture(RESPONSE_4010).replace("STC*P1:20:PR*", "STC*P1:20:PR:RX*");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12059" && m.starts_with("STC01")), "{f:?}");
    // A 277 in an HR (276) group: the 277 guide applies (ST01), with a GS01 warning.
    let f = findings(&check(&response.replace("GS*HN*", "GS*HR*")));
    assert_eq!(f.iter().map(|f| (f.code, f.severity)).collect::<Vec<_>>(), [("X12067", Severity::Warning)]);

    let mut all = Vec::new();
    for text in [
        request.replace("DMG*D8*19790415*F~", "DMG*D8*1979*F~"),
        request.replace(
            "NM1*IL*1*TESTSUBJECT*MORGAN****MI*ZZ900111222~",
            "NM1*IL*1*TESTSUBJECT*MORGAN****XX*ZZ900111222~",
        ),
        request.replace("REF*EJ*SYNPCN0001~", &format!("REF*EJ*SYNPCN0001{}~", "9".repeat(60))),
        response.replace("HL*5*4*23~", "HL*5*9*23~"),
    ] {
        let f = findings(&check(&text));
        assert!(!f.is_empty());
        all.extend(f);
    }
    for f in &all {
        for phi in PHI {
            assert!(!f.message.contains(phi), "a finding shows data: {}", f.message);
        }
    }
}

#[test]
fn the_999_or_997_of_each_status_set_validates_against_its_guide() {
    let options = AckOptions {
        date: "20260312".into(),
        time: "0700".into(),
        interchange_control: 11,
        group_control: 3,
        delimiters: None,
    };
    let broken = fixture(REQUEST).replace("HL*5*4*23~", "HL*5*3*23~");
    for (text, accepted, ack_set) in [
        (fixture(REQUEST), true, "999"),
        (fixture(RESPONSE), true, "999"),
        (fixture(REQUEST_4010), true, "997"),
        (fixture(RESPONSE_4010), true, "997"),
        (broken, false, "999"),
    ] {
        let res = check(&text);
        let ack = acknowledge(&res[0], &options).unwrap();
        assert!(ack.contains(&format!("ST*{ack_set}*0001")), "{ack}");
        let want = match (ack_set, accepted) {
            ("999", true) => "IK5*A~",
            ("999", false) => "IK5*R*",
            (_, true) => "AK5*A~",
            (_, false) => "AK5*R*",
        };
        assert!(ack.contains(want), "{ack}");
        if !accepted {
            assert!(ack.contains("IK3*HL*"), "{ack}");
        }
        // No finding, not even X12051: the acknowledgment met the 999 or 997 guide.
        assert_eq!(codes(&ack), [], "{ack}");
        for phi in PHI {
            assert!(!ack.contains(phi), "{ack}");
        }
    }
}

// ---- corpus conformance ----

/// Corpus files of the 276/277 folders Sluice refuses though they are not in a `fail/` folder,
/// and why.
const DISAGREEMENTS: &[(&str, &str)] = &[(
    "stupidedi-fixtures/005010/X212 HR277 Heatlh Care Information Status Notification/pass/1.era",
    "X12021: IEA02 (267365555) differs from ISA13 (269895334); the 277 set itself is clean against 005010X212",
)];

#[test]
fn corpus_conformance_276_277() {
    let Some(root) = corpus_root() else { return };
    let stupidedi = root.join("stupidedi-fixtures/005010");
    let lfh = root.join("linuxforhealth-x12");
    let suites: &[(&str, Vec<PathBuf>, Vec<PathBuf>)] = &[
        (
            "276 005010X212",
            vec![stupidedi.join("X212 HR276 Health Care Claim Status Request and Response/pass")],
            vec![lfh.join("276_005010X212")],
        ),
        (
            "277 005010X212",
            vec![
                stupidedi.join("X212 HN277 Health Care Claim Status Request and Response/pass"),
                stupidedi.join("X212 HR277 Heatlh Care Information Status Notification/pass"),
            ],
            vec![lfh.join("277_005010X212")],
        ),
    ];
    println!("\nX12 claim status guides against the corpus under {} (strict)", root.display());
    let mut disagreements = Vec::new();
    let mut guided = 0;
    for (guide, passes, others) in suites {
        let mut counts = [(0, 0); 2];
        for (kind, dirs) in [(0, passes), (1, others)] {
            for file in dirs.iter().flat_map(|d| files(d)) {
                let res = check_stream_with_guides(std::fs::read(&file).unwrap().as_slice(), Mode::Strict).unwrap();
                let all = findings(&res);
                guided += res
                    .iter()
                    .flat_map(|ic| &ic.groups)
                    .flat_map(|g| &g.sets)
                    .filter(|s| !s.findings.iter().any(|f| f.code == "X12051"))
                    .count();
                counts[kind].1 += 1;
                if clean(&res) {
                    counts[kind].0 += 1;
                } else {
                    let rel = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
                    let found: Vec<String> = all.iter().map(|f| format!("{} {}", f.code, f.message)).collect();
                    println!("  disagreement: {rel}: {found:?}");
                    disagreements.push(rel);
                }
            }
        }
        let [(p, pt), (o, ot)] = counts;
        println!("  {guide}: stupidedi pass {p}/{pt} accepted; linuxforhealth {o}/{ot} accepted");
        assert!(pt > 0 && ot > 0, "{guide}: the corpus folders moved");
    }
    let expected: Vec<String> = DISAGREEMENTS
        .iter()
        .map(|(f, why)| {
            println!("  documented: {f}: {why}");
            f.to_string()
        })
        .collect();
    assert_eq!(disagreements, expected, "the disagreements changed: update DISAGREEMENTS with the reasons");
    assert!(guided >= 13, "guide selection broke: only {guided} corpus status sets met a guide");
}
