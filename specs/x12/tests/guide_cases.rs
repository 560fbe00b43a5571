//! Implementation-guide validation, loop identification and mapping paths on small 837P, 835
//! and 999 sets: each case changes one thing in a clean set and checks the finding it gives.

use sluice_spec_core::{PhiClass, ValueType};
use sluice_x12::envelope::{Finding, InterchangeResult, Mode, Severity, check_stream_with_guides};
use sluice_x12::guide::{ElementType, by_id};
use sluice_x12::loops::{Identified, identify};
use sluice_x12::path::{self, Index};
use sluice_x12::split::{Item, RawSet, Splitter};

const ISA: &str =
    "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240115*1030*^*00501*000000001*0*P*:~\n";

/// A clean 837P: billing provider with pay-to address, a subscriber who is not the patient,
/// a patient with one claim of two service lines, the second with a rendering provider.
const CLAIM: &[&str] = &[
    "ST*837*0001*005010X222A1",
    "BHT*0019*00*244579*20240115*1023*CH",
    "NM1*41*2*PREMIER BILLING*****46*TGJ23",
    "PER*IC*JERRY*TE*3055552222*EX*231",
    "NM1*40*2*KEY INSURANCE*****46*66783JJT",
    "HL*1**20*1",
    "PRV*BI*PXC*203BF0100Y",
    "NM1*85*2*BEN KILDARE SERVICE*****XX*9876543210",
    "N3*234 SEAWAY ST",
    "N4*MIAMI*FL*33111",
    "REF*EI*587654321",
    "NM1*87*2",
    "N3*2345 OCEAN BLVD",
    "N4*MIAMI*FL*33111",
    "HL*2*1*22*1",
    "SBR*P**2222-SJ******CI",
    "NM1*IL*1*SMITH*JANE****MI*JS00111223333",
    "DMG*D8*19430501*F",
    "NM1*PR*2*KEY INSURANCE*****PI*999996666",
    "HL*3*2*23*0",
    "PAT*19",
    "NM1*QC*1*SMITH*TED",
    "N3*236 N MAIN ST",
    "N4*MIAMI*FL*33413",
    "DMG*D8*19730501*M",
    "CLM*26463774*100***11:B:1*Y*A*Y*I",
    "REF*D9*17312345600006351",
    "HI*BK:0340*BF:V7389",
    "LX*1",
    "SV1*HC:99213*40*UN*1***1",
    "DTP*472*D8*20240103",
    "LX*2",
    "SV1*HC:87070*60*UN*1***1",
    "DTP*472*RD8*20240103-20240105",
    "NM1*82*1*KILDARE*BEN****XX*1234567893",
];

fn interchange(gs: &str, set: &[&str]) -> String {
    let mut body: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    body.push(format!("SE*{}*0001", set.len() + 1));
    format!("{ISA}{gs}~\n{}~\nGE*1*1~\nIEA*1*000000001~\n", body.join("~\n"))
}

fn claim_with(edit: impl Fn(&mut Vec<&'static str>)) -> String {
    let mut set = CLAIM.to_vec();
    edit(&mut set);
    interchange("GS*HC*S*R*20240115*1030*1*X*005010X222A1", &set)
}

fn findings_in(text: &str, mode: Mode) -> Vec<Finding> {
    let res: Vec<InterchangeResult> = check_stream_with_guides(text.as_bytes(), mode).unwrap();
    let mut out = Vec::new();
    for ic in res {
        out.extend(ic.findings);
        for g in ic.groups {
            out.extend(g.findings);
            for s in g.sets {
                out.extend(s.findings);
            }
        }
    }
    out
}

fn findings(text: &str) -> Vec<(&'static str, String)> {
    findings_in(text, Mode::Strict).into_iter().map(|f| (f.code, f.message)).collect()
}

fn raw_set(text: &str) -> RawSet {
    Splitter::new(text.as_bytes())
        .find_map(|i| match i.unwrap() {
            Item::Set(s) => Some(s),
            _ => None,
        })
        .unwrap()
}

fn identified<'a>(set: &'a RawSet, guide: &str) -> Identified<'a> {
    identify(by_id(guide).unwrap(), set.segments().collect(), set.closed)
}

#[test]
fn a_clean_claim_has_no_finding_and_every_segment_finds_its_loop() {
    let text = claim_with(|_| {});
    assert_eq!(findings(&text), []);
    let set = raw_set(&text);
    let id = identified(&set, "005010X222A1");
    let loops: Vec<(&str, &str)> = (0..id.segments.len()).map(|i| (id.segments[i].id_str(), id.loop_of(i))).collect();
    let want = [
        ("ST", ""),
        ("BHT", ""),
        ("NM1", "1000A"),
        ("PER", "1000A"),
        ("NM1", "1000B"),
        ("HL", "2000A"),
        ("PRV", "2000A"),
        ("NM1", "2010AA"),
        ("N3", "2010AA"),
        ("N4", "2010AA"),
        ("REF", "2010AA"),
        ("NM1", "2010AB"),
        ("N3", "2010AB"),
        ("N4", "2010AB"),
        ("HL", "2000B"),
        ("SBR", "2000B"),
        ("NM1", "2010BA"),
        ("DMG", "2010BA"),
        ("NM1", "2010BB"),
        ("HL", "2000C"),
        ("PAT", "2000C"),
        ("NM1", "2010CA"),
        ("N3", "2010CA"),
        ("N4", "2010CA"),
        ("DMG", "2010CA"),
        ("CLM", "2300"),
        ("REF", "2300"),
        ("HI", "2300"),
        ("LX", "2400"),
        ("SV1", "2400"),
        ("DTP", "2400"),
        ("LX", "2400"),
        ("SV1", "2400"),
        ("DTP", "2400"),
        ("NM1", "2420A"),
        ("SE", ""),
    ];
    assert_eq!(loops, want);
    // The claim sits under the patient level, the rendering provider under the second line.
    let claim = id.placements[25].instance;
    let parent = id.instances[claim].parent.unwrap();
    assert_eq!(id.instances[parent].def.id, "2000C");
    assert_eq!(id.instances.iter().filter(|l| l.def.id == "2400").count(), 2);
}

#[test]
fn the_bundled_fixtures_validate_clean() {
    for file in ["tests/fixtures/claims-837p.x12", "tests/fixtures/remits-835.x12"] {
        let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        assert_eq!(findings(&text), [], "{file}");
    }
}

#[test]
fn structure_problems_are_found_with_their_loop() {
    // A required segment missing: N4 of the billing provider.
    let text = claim_with(|s| s.retain(|l| *l != "N4*MIAMI*FL*33111"));
    let f = findings(&text);
    assert!(f.contains(&("X12054", "required segment N4 is missing (loop 2010AA)".into())), "{f:?}");
    // A required loop missing: the payer (2010BB).
    let text = claim_with(|s| s.retain(|l| !l.starts_with("NM1*PR")));
    assert!(findings(&text).contains(&("X12054", "required loop 2010BB is missing (loop 2010BB)".into())));
    // A segment the 837P does not have, and one out of its place.
    let text = claim_with(|s| s.insert(27, "BPR*I*1*C*ACH"));
    assert_eq!(findings(&text)[0].0, "X12052");
    let text = claim_with(|s| s.insert(30, "PRV*PE*PXC*203BF0100Y"));
    let f = findings(&text);
    assert_eq!(f[0], ("X12053", "the segment is not expected here (loop 2400)".into()), "{f:?}");
    // Too many repeats: DTP*472 is once per line.
    let text = claim_with(|s| s.insert(31, "DTP*472*D8*20240104"));
    assert_eq!(findings(&text)[0], ("X12055", "DTP repeats more than the 1 times the guide allows (loop 2400)".into()));
    // Too many loops: 51 service lines.
    let text = claim_with(|s| {
        for _ in 0..50 {
            s.extend(["LX*3", "SV1*HC:99213*40*UN*1***1", "DTP*472*D8*20240103"]);
        }
    });
    assert_eq!(
        findings(&text)[0],
        ("X12056", "loop 2400 repeats more than the 50 times the guide allows (loop 2400)".into())
    );
}

#[test]
fn element_problems_name_the_element_and_never_the_value() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "CLM*26463774*100***11:B:1*Y*A*Y*I",
            "CLM*26463774*100***11:B:9*Y*A*Y*I",
            "X12062",
            "CLM05-3 is not one of the guide's codes (loop 2300)",
        ),
        (
            "CLM*26463774*100***11:B:1*Y*A*Y*I",
            "CLM*26463774*1O0***11:B:1*Y*A*Y*I",
            "X12061",
            "CLM02 is not a decimal number (loop 2300)",
        ),
        (
            "CLM*26463774*100***11:B:1*Y*A*Y*I",
            "CLM*26463774*100***11::1*Y*A*Y*I",
            "X12057",
            "CLM05-2 is required and missing (loop 2300)",
        ),
        (
            "CLM*26463774*100***11:B:1*Y*A*Y*I",
            "CLM*26463774*100*X**11:B:1*Y*A*Y*I",
            "X12058",
            "CLM03 is not used by this implementation guide (loop 2300)",
        ),
        ("NM1*QC*1*SMITH*TED", "NM1*QC*1**TED", "X12057", "NM103 is required and missing (loop 2010CA)"),
        (
            "DMG*D8*19730501*M",
            "DMG*D8*19730231*M",
            "X12063",
            "DMG02 is not a date (CCYYMMDD, as DMG01 says) (loop 2010CA)",
        ),
        (
            "DTP*472*D8*20240103",
            "DTP*472*D8*20241303",
            "X12063",
            "DTP03 is not a date (CCYYMMDD, as DTP02 says) (loop 2400)",
        ),
        (
            "BHT*0019*00*244579*20240115*1023*CH",
            "BHT*0019*00*244579*20240115*1073*CH",
            "X12064",
            "BHT05 is not a time (HHMM, HHMMSS, HHMMSSD or HHMMSSDD)",
        ),
        ("N4*MIAMI*FL*33413", "N4*M*FL*33413", "X12060", "N401 is shorter than 2 characters (loop 2010CA)"),
        ("LX*1", "LX*1*2", "X12059", "LX02 is beyond the elements the segment has (loop 2400)"),
        // Reported at the first position LX lacks (a 999's IK401 has two digits), saying where
        // the value is.
        (
            "LX*1",
            "LX*1***********************************************************************************************************2",
            "X12059",
            "LX02 is beyond the elements the segment has (the first value is at position 108) (loop 2400)",
        ),
        ("PAT*19", "PAT*19^20", "X12065", "PAT01 repeats; the guide allows one value (loop 2000C)"),
        ("LX*1", "LX*1:2", "X12059", "LX01 has components; it is a simple element (loop 2400)"),
    ];
    for (from, to, code, message) in cases {
        let text = claim_with(|s| {
            let i = s.iter().position(|l| l == from).unwrap();
            s[i] = to;
        });
        let f = findings_in(&text, Mode::Strict);
        assert_eq!(f.len(), 1, "{to}: {f:?}");
        assert_eq!((f[0].code, f[0].message.as_str()), (*code, *message), "{to}");
        let detail = f[0].guide.as_ref().unwrap();
        assert_eq!(detail.segment_code, "8");
        assert!(detail.element.is_some() && detail.element_code.is_some());
    }
}

#[test]
fn the_hl_hierarchy_is_checked() {
    // A patient level under the billing provider instead of the subscriber.
    let text = claim_with(|s| s[19] = "HL*3*1*23*0");
    let f = findings(&text);
    assert_eq!(f, [("X12066", "HL02 names a loop 2000A HL; a 2000C HL belongs under 2000B (loop 2000C)".into())]);
    let text = claim_with(|s| s[19] = "HL*2*9*23*0");
    let f = findings(&text);
    assert!(f.contains(&("X12066", "HL01 repeats the id of an earlier HL in this set (loop 2000C)".into())), "{f:?}");
    assert!(f.contains(&("X12066", "HL02 does not name an earlier HL of this set (loop 2000C)".into())), "{f:?}");
    // An HL level the guide does not have: its key (HL03) fits no loop.
    let text = claim_with(|s| s[19] = "HL*3*2*99*0");
    assert_eq!(findings(&text)[0].0, "X12053");
}

#[test]
fn lenient_mode_reports_guide_errors_as_warnings() {
    let text = claim_with(|s| s[25] = "CLM*26463774*100***11:B:9*Y*A*Y*I");
    let f = findings_in(&text, Mode::Lenient);
    assert_eq!((f[0].code, f[0].severity), ("X12062", Severity::Warning));
    let ic = &check_stream_with_guides(text.as_bytes(), Mode::Lenient).unwrap()[0];
    assert_eq!(ic.accepted_sets(), 1);
    let ic = &check_stream_with_guides(text.as_bytes(), Mode::Strict).unwrap()[0];
    assert_eq!(ic.accepted_sets(), 0);
}

#[test]
fn an_unknown_guide_is_named() {
    let text = interchange(
        "GS*HC*S*R*20240115*1030*1*X*005010X291",
        &["ST*837*0001*005010X291", "BHT*0019*00*1*20240115*1030*CH"],
    );
    let f = findings_in(&text, Mode::Strict);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].code, f[0].severity), ("X12051", Severity::Info));
    assert!(f[0].message.starts_with("no bundled implementation guide for transaction set 837 version 005010X291 (GS01 HC, ISA12 00501); bundled: 837 005010X222A1, 837 005010X223A2, 837 005010X224A2"), "{}", f[0].message);
    // A known guide in the wrong functional group.
    let text = interchange("GS*HP*S*R*20240115*1030*1*X*005010X222A1", CLAIM);
    assert_eq!(findings(&text), [("X12067", "GS01 should be HC for a 837 (005010X222A1)".into())]);
}

const REMIT: &[&str] = &[
    "ST*835*0001",
    "BPR*C*150000*C*ACH*CTX*01*999999992*DA*123456*1512345678**01*999988880*DA*98765*20240115",
    "TRN*1*12345*1512345678",
    "DTM*405*20240114",
    "N1*PR*INSURANCE COMPANY OF TIMBUCKTU",
    "N3*1 MAIN STREET",
    "N4*TIMBUCKTU*AK*89111",
    "PER*BL*JOHN WAYNE*TE*8005551212",
    "N1*PE*REGIONAL HOPE HOSPITAL*XX*6543210903",
    "LX*110212",
    "CLP*666123*1*211366.97*138018.4**MA*1999999444444*11*1",
    "CAS*CO*45*73348.57",
    "NM1*QC*1*JONES*SAM*O***MI*66666666A",
    "DTM*232*20240101",
    "SVC*HC:99211*800*500",
    "DTM*472*20240101",
    "CAS*PR*1*300",
    "CLP*777123*1*211366.97*138018.4**MA*1999999444445*11*1",
    "NM1*QC*1*BAKER*ANN****MI*77777777A",
];

#[test]
fn a_remittance_finds_its_claims_and_service_lines() {
    let text = interchange("GS*HP*S*R*20240115*1030*1*X*005010X221A1", REMIT);
    assert_eq!(findings(&text), []);
    let set = raw_set(&text);
    let id = identified(&set, "005010X221A1");
    let loops: Vec<&str> = (0..id.segments.len()).map(|i| id.loop_of(i)).collect();
    assert_eq!(
        loops,
        [
            "", "", "", "", "1000A", "1000A", "1000A", "1000A", "1000B", "2000", "2100", "2100", "2100", "2100",
            "2110", "2110", "2110", "2100", "2100", ""
        ]
    );
    assert_eq!(path::parse("2100[*]/CLP-01").unwrap().resolve_strings(&id), ["666123", "777123"]);
    assert_eq!(path::parse("2110/CAS-01").unwrap().resolve_strings(&id), ["PR"]);
    // The patient name is required in every claim.
    let mut short = REMIT.to_vec();
    short.pop();
    let text = interchange("GS*HP*S*R*20240115*1030*1*X*005010X221A1", &short);
    assert_eq!(findings(&text), [("X12054", "required segment NM1 is missing (loop 2100)".into())]);
}

#[test]
fn paths_resolve_values_in_document_order() {
    let text = claim_with(|_| {});
    let set = raw_set(&text);
    let id = identified(&set, "005010X222A1");
    let get = |p: &str| path::parse(p).unwrap().resolve_strings(&id);
    assert_eq!(get("2300/CLM-01"), ["26463774"]);
    assert_eq!(get("2300/CLM-05-1"), ["11"]);
    assert_eq!(get("2400[*]/SV1-01-2"), ["99213", "87070"]);
    assert_eq!(get("2400/SV1-01-2"), ["99213"], "without [*], the first");
    assert_eq!(get("2400[2]/SV1-02"), ["60"]);
    assert_eq!(get("2010BA/NM1-09"), ["JS00111223333"]);
    assert_eq!(get("2000C/2010CA/NM1-03"), ["SMITH"]);
    assert_eq!(get("2010AA/REF(EI)-02"), ["587654321"]);
    assert_eq!(get("2010AA/REF(SY)-02"), Vec::<String>::new());
    assert_eq!(get("BHT-04"), ["20240115"]);
    assert_eq!(get("2400[*]/2420A/NM1-09"), ["1234567893"]);
    assert_eq!(get("2000B/2300/CLM-01"), Vec::<String>::new(), "this claim is the patient's");
    assert_eq!(get("2400[3]/SV1-02"), Vec::<String>::new());
}

#[test]
fn paths_are_checked_against_the_guide() {
    let g = by_id("005010X222A1").unwrap();
    let info = path::check(g, "2010BA/NM1-03").unwrap();
    assert_eq!(
        (info.phi, info.ty, info.loop_id.as_str(), info.required),
        (Some(PhiClass::Name), ElementType::Text, "2010BA", true)
    );
    assert_eq!(path::check(g, "2010BA/NM1-09").unwrap().phi, Some(PhiClass::HealthPlanId));
    assert_eq!(path::check(g, "2010CA/DMG-02").unwrap().phi, Some(PhiClass::Dob));
    assert_eq!(path::check(g, "2010BA/N3-01").unwrap().phi, Some(PhiClass::Address));
    assert_eq!(path::check(g, "2010BA/REF(SY)-02").unwrap().phi, Some(PhiClass::Ssn));
    assert_eq!(path::check(g, "2010AA/NM1-03").unwrap().phi, None, "a provider's name is not PHI");
    let sv1 = path::check(g, "2400[*]/SV1-01-2").unwrap();
    assert!(sv1.many);
    assert_eq!(sv1.value_type, ValueType::String);
    let clm = path::check(g, "2300/CLM-02").unwrap();
    assert_eq!((clm.ty, clm.value_type.clone()), (ElementType::Decimal, ValueType::Decimal));
    assert_eq!(path::check(g, "2300/CLM-05-3").unwrap().codes.unwrap(), ["1", "7", "8"]);
    let e = path::check(g, "2300/2499/SV1-01").unwrap_err();
    assert_eq!((e.offset, e.len, e.message.as_str()), (5, 4, "loop 2300 has no loop 2499"));
    let e = path::check(g, "2300/CLM-03").unwrap_err();
    assert_eq!(e.message, "CLM03 does not exist or is not used in loop 2300");
    let e = path::check(g, "2010BA/SV1-01").unwrap_err();
    assert!(e.message.starts_with("loop 2010BA has no segment SV1 (it has NM1, N3, N4, DMG, REF"), "{}", e.message);
    assert!(path::check(g, "2010AA/REF(ZZ)-02").unwrap_err().message.contains("qualifier ZZ"));
    for bad in [
        "",
        "2300/",
        "2300/CLM",
        "2300/CLM-1",
        "2300/CLM-00",
        "2300/clm-01",
        "23 00/CLM-01",
        "2300[0]/CLM-01",
        "2300[*/CLM-01",
        "2300/CLM-01-x",
        "2300/CLM-01-2-3",
        "2300/REF()-02",
    ] {
        let e = path::parse(bad).unwrap_err();
        assert!(e.offset <= bad.len() && e.len >= 1, "{bad}: {e:?}");
    }
    let p = path::parse("2400[*]/SV1-01-2").unwrap();
    assert_eq!(
        (p.loops[0].index, p.element, p.component, p.to_string()),
        (Index::All, 1, 2, "2400[*]/SV1-01-2".to_string())
    );
}

#[test]
fn our_999_validates_against_the_999_guide() {
    use sluice_x12::ack::{AckOptions, acknowledge};
    let bad = claim_with(|s| s[25] = "CLM*26463774*100***11:B:9*Y*A*Y*I");
    let good = claim_with(|_| {});
    for text in [good, bad] {
        let res = check_stream_with_guides(text.as_bytes(), Mode::Strict).unwrap();
        let options = AckOptions {
            date: "20240116".into(),
            time: "0900".into(),
            interchange_control: 7,
            group_control: 1,
            delimiters: None,
        };
        let ack = acknowledge(&res[0], &options).unwrap();
        assert_eq!(findings(&ack), [], "{ack}");
    }
}

#[test]
fn our_997_validates_against_the_4010_997_guide() {
    use sluice_x12::ack::{AckOptions, acknowledge};
    let isa = ISA.replace("*^*00501*", "*U*00401*");
    // A 4010 278 (health care services review): no bundled guide.
    let set = "ST*278*0001~BHT*0007*13*1*20240115*1030~SE*4*0001~";
    let text = format!("{isa}GS*HI*S*R*20240115*1030*1*X*004010X094A1~{set}GE*1*1~IEA*1*000000001~");
    let res = check_stream_with_guides(text.as_bytes(), Mode::Strict).unwrap();
    let codes: Vec<&str> = res[0].groups[0].sets[0].findings.iter().map(|f| f.code).collect();
    assert_eq!(codes, ["X12051", "X12041"], "no bundled 4010 278 guide (at ST); SE01 is wrong (at SE)");
    let options = AckOptions {
        date: "20240116".into(),
        time: "0900".into(),
        interchange_control: 7,
        group_control: 1,
        delimiters: None,
    };
    let ack = acknowledge(&res[0], &options).unwrap();
    assert!(ack.contains("ST*997*0001~\nAK1*HI*1~\nAK2*278*0001~\nAK5*R*4~"), "{ack}");
    assert_eq!(findings(&ack), [], "{ack}");
    // And the 997 guide catches a broken one.
    let broken = ack.replace("AK5*R*4~", "AK5*Q*4~");
    assert_eq!(findings(&broken), [("X12062", "AK501 is not one of the guide's codes (loop 2000)".into())]);
}
