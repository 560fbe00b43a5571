//! The 4010 guides (837P 004010X098A1, 837I 004010X096A1, 835 004010X091A1, 270/271
//! 004010X092A1, 834 004010X095A1) and the 837P A2 errata: the synthetic
//! 4010 fixtures in `tests/fixtures/x12/claims/` validate cleanly, the guide is chosen from GS08
//! (4010 has no ST03) and read with the 4010 segment dictionary, 4010 places (2010AA REF
//! secondary ids, PRV under `ZZ`, 2310D service facility) find their loops, one change gives
//! the finding it should, and the 997 of each validates against the 4010 997 guide. The
//! eligibility and enrollment fixtures are in `tests/fixtures/x12/eligibility/`.

mod common;

use std::path::Path;

use sluice_x12::ack::{AckOptions, acknowledge};
use sluice_x12::guide::{ElementType, Selector, by_id, select};
use sluice_x12::loops::identify;

use common::{check, codes, findings, fixture, loop_of, placed, raw_set};

const CLAIMS: &str = "professional-4010-837p.x12";
const REMITS: &str = "remittance-4010-835.x12";
const INSTITUTIONAL: &str = "institutional-4010-837i.x12";

const INQUIRY: &str = "../eligibility/eligibility-4010-270.x12";
const RESPONSE: &str = "../eligibility/eligibility-4010-271.x12";
const ENROLLMENT: &str = "../eligibility/enrollment-4010-834.x12";

/// (segment id with its first element, loop id) of every segment of the file's first set,
/// which must place without structural findings.
fn loops(text: &str, guide: &str) -> Vec<(String, String)> {
    let (places, codes) = placed(text, guide);
    assert_eq!(codes, Vec::<&str>::new());
    places
}

#[test]
fn the_4010_fixtures_validate_cleanly_with_the_guide_gs08_names() {
    for (name, guide) in [
        (CLAIMS, "004010X098A1"),
        (INSTITUTIONAL, "004010X096A1"),
        (REMITS, "004010X091A1"),
        (INQUIRY, "004010X092A1"),
        (RESPONSE, "004010X092A1"),
        (ENROLLMENT, "004010X095A1"),
    ] {
        let text = fixture(name);
        assert!(text.contains("*U*00401*"), "{name}: a 4010 interchange (ISA11 is the standards identifier U)");
        let res = check(&text);
        // No finding at all: not even X12051 (no guide), so the set met its guide.
        assert_eq!(codes(&text), [], "{name}");
        assert_eq!(res[0].accepted_sets(), 1, "{name}");
        let set = &res[0].groups[0].sets[0];
        assert_eq!(set.guide, "", "{name}: no ST03 in 4010");
        let group = &res[0].groups[0];
        let selector = Selector {
            isa12: "00401",
            gs01: &group.functional_id,
            gs08: &group.version,
            st01: &set.id,
            st03: &set.guide,
        };
        assert_eq!(select(&selector).unwrap().id, guide, "{name}: chosen from GS08");
    }
}

#[test]
fn the_4010_guides_read_the_4010_dictionary() {
    let p = by_id("004010X098A1").unwrap();
    // NM1 has 11 elements in 4010 (NM112 came in 5010); NM103 is 1-35 (1-60 in 5010).
    let nm1 = p.root.find("2010BA").unwrap().trigger().unwrap();
    assert_eq!(nm1.elements.len(), 11);
    assert_eq!(nm1.elements[2].max, 35);
    assert_eq!(by_id("005010X222A1").unwrap().root.find("2010BA").unwrap().trigger().unwrap().elements.len(), 12);
    // SV101 (C003) has 7 components in 4010; ST has no ST03.
    let sv1 = p.root.find("2400").unwrap().children.iter().find_map(|n| n.trigger().filter(|s| s.id == "SV1"));
    assert_eq!(sv1.unwrap().elements[0].components.len(), 7);
    assert_eq!(p.root.trigger().unwrap().elements.len(), 2);
    // The 4010 997: AK1 without AK103, AK4's C030 with 2 components.
    let ack = by_id("004010").unwrap();
    let ak1 = ack.root.children.iter().find_map(|n| n.trigger().filter(|s| s.id == "AK1")).unwrap();
    assert_eq!(ak1.elements.len(), 2);
    assert_eq!(ak1.elements[1].ty, ElementType::Numeric(0));
    assert_eq!(by_id("004010X091A1").unwrap().set_id, "835");
}

#[test]
fn professional_4010_places_find_their_loops() {
    let all = loops(&fixture(CLAIMS), "004010X098A1");
    assert_eq!(loop_of(&all, "REF*87", 0), "", "the header's transmission type REF");
    assert_eq!(loop_of(&all, "PRV*BI", 0), "2000A");
    // Billing provider secondary ids: a REF of 2010AA in 4010 (5010 puts the NPI in NM109).
    assert_eq!(loop_of(&all, "REF*1G", 0), "2010AA");
    assert_eq!(loop_of(&all, "REF*EI", 0), "2010AA");
    assert_eq!(loop_of(&all, "NM1*87", 0), "2010AB");
    // DTP*439 before DTP*454: one position of the standard, in any order.
    assert_eq!(loop_of(&all, "DTP*454", 0), "2300");
    assert_eq!(loop_of(&all, "NM1*DN", 0), "2310A");
    assert_eq!(loop_of(&all, "PRV*RF", 0), "2310A");
    assert_eq!(loop_of(&all, "NM1*82", 0), "2310B");
    assert_eq!(loop_of(&all, "REF*1G", 1), "2310B");
    assert_eq!(loop_of(&all, "NM1*77", 0), "2310D", "the 4010 service facility is 2310D (2310C in 5010)");
    assert_eq!(loop_of(&all, "SBR*S", 0), "2320");
    assert_eq!(loop_of(&all, "NM1*IL", 1), "2330A");
    assert_eq!(loop_of(&all, "NM1*PR", 1), "2330B");
    assert_eq!(loop_of(&all, "REF*6R", 0), "2400");
    assert_eq!(loop_of(&all, "NM1*82", 1), "2420A");
    assert_eq!(loop_of(&all, "NM1*QC", 0), "2010CA");
    assert_eq!(loop_of(&all, "CLM*PACCT0002", 0), "2300");
}

#[test]
fn institutional_4010_places_find_their_loops() {
    let all = loops(&fixture(INSTITUTIONAL), "004010X096A1");
    assert_eq!(loop_of(&all, "REF*1J", 0), "2010AA");
    // Statement dates, admission and discharge in any order (one position of the standard).
    assert_eq!(loop_of(&all, "DTP*096", 0), "2300");
    assert_eq!(loop_of(&all, "CL1*1", 0), "2300");
    // The principal diagnosis HI carries the admitting diagnosis (BJ); other diagnoses,
    // procedures, occurrences, values and conditions are HIs of their own.
    assert!(all.iter().filter(|(s, _)| s.starts_with("HI*")).all(|(_, l)| l == "2300"));
    assert_eq!(loop_of(&all, "QTY*CA", 0), "2300");
    assert_eq!(loop_of(&all, "NM1*71", 0), "2310A");
    assert_eq!(loop_of(&all, "PRV*AT", 0), "2310A");
    assert_eq!(loop_of(&all, "NM1*72", 0), "2310B");
    assert_eq!(loop_of(&all, "SBR*S", 0), "2320");
    assert_eq!(loop_of(&all, "AMT*C4", 0), "2320");
    assert_eq!(loop_of(&all, "NM1*PR", 1), "2330B");
    assert_eq!(loop_of(&all, "SV2*0120", 0), "2400");
    // After a line, the operating physician is the line's (2420B).
    assert_eq!(loop_of(&all, "NM1*72", 1), "2420B");
}

#[test]
fn remittance_4010_places_find_their_loops() {
    let all = loops(&fixture(REMITS), "004010X091A1");
    assert_eq!(loop_of(&all, "PER*CX", 0), "1000A");
    assert_eq!(loop_of(&all, "REF*TJ", 0), "1000B");
    assert_eq!(loop_of(&all, "CLP*PACCT0002", 0), "2100");
    assert_eq!(loop_of(&all, "NM1*82", 0), "2100");
    assert_eq!(loop_of(&all, "SVC*HC:81002:QW", 0), "2110");
    assert_eq!(loop_of(&all, "LQ*HE", 0), "2110");
    assert_eq!(loop_of(&all, "PLB*990000001", 0), "");
}

#[test]
fn eligibility_and_enrollment_4010_places_find_their_loops() {
    // The 270 and 271 share 004010X092A1; ST01 picks the guide, as in 5010.
    let s = Selector { isa12: "00401", gs01: "HB", gs08: "004010X092A1", st01: "271", st03: "" };
    assert_eq!(select(&s).unwrap().set_id, "271");
    assert_eq!(select(&Selector { gs01: "HS", st01: "270", ..s }).unwrap().set_id, "270");
    assert_eq!(sluice_x12::guide::by_schema_name("004010X092A1/271").unwrap().set_id, "271");
    let g271 = sluice_x12::guide::by_schema_name("004010X092A1/271").unwrap();
    let set = raw_set(&fixture(RESPONSE));
    let id = identify(g271, set.segments().collect(), set.closed);
    assert_eq!(id.findings.iter().map(|f| f.code).collect::<Vec<_>>(), Vec::<&str>::new());
    let at = |seg: &str, n: usize| {
        (0..id.segments.len())
            .filter(|&i| id.segments[i].id_str() == seg)
            .nth(n)
            .map(|i| id.loop_of(i).to_string())
            .unwrap_or_else(|| panic!("no {seg} #{n}"))
    };
    assert_eq!(at("EB", 0), "2110C");
    assert_eq!(at("MSG", 0), "2110C");
    assert_eq!(at("NM1", 3), "2120C", "the benefit related entity between LS and LE");
    assert_eq!(at("EB", 3), "2110D");
    assert_eq!(at("AAA", 0), "2110D");
    // EB03 holds one service type code in 4010 (no repetition separator).
    let eb = g271.root.find("2110C").unwrap().trigger().unwrap();
    assert_eq!(eb.elements[2].repeats, 1);
    let all = loops(&fixture(ENROLLMENT), "004010X095A1");
    assert_eq!(all.iter().filter(|(s, l)| s.starts_with("INS") && l == "2000").count(), 2);
    assert_eq!(loop_of(&all, "NM1*IL", 1), "2100A");
    assert_eq!(loop_of(&all, "HD*021", 1), "2300");
}

#[test]
fn one_change_one_finding_without_the_data() {
    let claims = fixture(CLAIMS);
    // 4010 taxonomy codes are under ZZ; PXC is the 5010 qualifier.
    let bad = claims.replace("PRV*BI*ZZ*207Q00000X~", "PRV*BI*PXC*207Q00000X~");
    assert_eq!(codes(&bad), [("X12062", "PRV02 is not one of the guide's codes (loop 2000A)".to_string())]);
    // A 5010 facility code qualifier (CLM05-2 `B`) is not used in the 4010 837P.
    let bad = claims.replace("CLM*PACCT0001*150.00***11::1*", "CLM*PACCT0001*150.00***11:B:1*");
    assert_eq!(codes(&bad), [("X12058", "CLM05-2 is not used by this implementation guide (loop 2300)".to_string())]);
    // An ST03 is a 5010 element: 4010 has none.
    let bad = claims.replace("ST*837*0001~", "ST*837*0001*004010X098A1~");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12059" && m.starts_with("ST")), "{f:?}");
    // A name longer than the 4010 NM103 (35), within the 5010 one (60); the message has no data.
    let long = "A".repeat(40);
    let bad = claims.replace("NM1*IL*1*EXAMPLE*ALEX*", &format!("NM1*IL*1*{long}*ALEX*"));
    let f = findings(&check(&bad));
    assert_eq!(f.iter().map(|f| (f.code, f.position.as_str())).collect::<Vec<_>>(), [("X12060", "NM103")]);
    assert!(!f[0].message.contains(&long));
    // The header REF*87 is required.
    let bad = claims.replace("REF*87*004010X098A1~\n", "").replace("SE*67*", "SE*66*");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12054" && m.contains("REF")), "{f:?}");
    // 837I: statement dates are a range; the admitting diagnosis has its place in HI02.
    let inst = fixture(INSTITUTIONAL);
    let bad = inst.replace("DTP*434*RD8*20240210-20240213~", "DTP*434*D8*20240210~");
    assert_eq!(codes(&bad), [("X12062", "DTP02 is not one of the guide's codes (loop 2300)".to_string())]);
    let bad = inst.replace("HI*BK:4280*BJ:78650~", "HI*BK:4280*BF:78650~");
    assert_eq!(codes(&bad), [("X12062", "HI02-1 is not one of the guide's codes (loop 2300)".to_string())]);
    // 270: two service types in one EQ01 are a 5010 repetition, not 4010.
    let inquiry = fixture(INQUIRY);
    let bad = inquiry.replace("EQ*30~", "EQ*30^98~");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, m)| *c == "X12060" && m.starts_with("EQ01")), "{f:?}");
    // 834: the 5010 drop-off location loop (2100H) is not in the 4010 834.
    let enrollment = fixture(ENROLLMENT);
    let bad = enrollment.replace("NM1*IL*1*EXAMPLE*ROBIN~", "NM1*IL*1*EXAMPLE*ROBIN~\nNM1*45*1~");
    let f = codes(&bad.replace("SE*24*", "SE*25*"));
    assert_eq!(f, [("X12053", "the segment is not expected here (loop 2100A)".to_string())]);
    // 835: 5010's required technical contact (PER*BL) is not a 4010 segment use.
    let remits = fixture(REMITS);
    let bad = remits.replace("PER*CX*PROVIDER SERVICES*TE*5550100002~", "PER*BL*TECHNICAL*TE*5550100002~");
    let f = codes(&bad);
    assert!(f.iter().any(|(c, _)| *c == "X12062"), "{f:?}");
}

#[test]
fn the_a2_errata_of_the_837p_reads_with_the_a1_structure() {
    let p = by_id("005010X222A1").unwrap();
    assert!(p.aliases.iter().any(|a| a == "005010X222A2"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(dir.join("claims-837p.x12")).unwrap().replace("005010X222A1", "005010X222A2");
    let res = check(&text);
    assert_eq!(findings(&res).iter().map(|f| f.code).collect::<Vec<_>>(), Vec::<&str>::new());
    assert_eq!(res[0].groups[0].sets[0].guide, "005010X222A2", "the set keeps the version it names");
}

#[test]
fn the_997_of_each_4010_set_validates_against_the_4010_997_guide() {
    let options = AckOptions {
        date: "20240302".into(),
        time: "0800".into(),
        interchange_control: 9,
        group_control: 1,
        delimiters: None,
    };
    let claims = fixture(CLAIMS);
    let remits = fixture(REMITS);
    let broken = claims.replace("PRV*BI*ZZ*207Q00000X~", "PRV*BI*PXC*207Q00000X~");
    let inst = fixture(INSTITUTIONAL);
    let (inquiry, response, enrollment) = (fixture(INQUIRY), fixture(RESPONSE), fixture(ENROLLMENT));
    for (text, accepted) in [
        (claims, true),
        (inst, true),
        (remits, true),
        (inquiry, true),
        (response, true),
        (enrollment, true),
        (broken, false),
    ] {
        let res = check(&text);
        let ack = acknowledge(&res[0], &options).unwrap();
        assert!(ack.contains("ST*997*0001~"), "a 4010 group gets a 997: {ack}");
        assert!(ack.contains("*00401*"), "{ack}");
        let want = if accepted { "AK5*A~" } else { "AK5*R*" };
        assert!(ack.contains(want), "{ack}");
        if !accepted {
            assert!(ack.contains("AK3*PRV*"), "{ack}");
            assert!(ack.contains("AK4*2*"), "{ack}");
        }
        // No finding, not even X12051: the 997 met the 4010 997 guide (GS08 `004010`).
        assert_eq!(codes(&ack), [], "{ack}");
        assert!(ack.contains("*X*004010~"), "{ack}");
    }
}
