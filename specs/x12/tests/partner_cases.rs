//! Trading partners in the envelope checker (`Checker::with_partners`): partner findings stay
//! errors in lenient mode, `validate_isa: false` turns ISA findings into warnings (and the
//! acknowledgment accepts), partners without overlays share the bundled guide, and the 999's
//! codes for partner rejections (IK5 1, AK905 2, TA1 006).

use std::sync::Arc;

use sluice_x12::ack::{AckOptions, acknowledge};
use sluice_x12::envelope::{Checker, InterchangeResult, Mode, Severity};
use sluice_x12::guide::Usage;
use sluice_x12::partner::{Addition, NewElement, NewSegment, Overlay, Partner, Partners, Processing, overlaid};
use sluice_x12::split::Splitter;

const CLAIMS: &str = include_str!("fixtures/claims-837p.x12");

fn partner(id: &str, sets: &[&str], version: &str, processing: Processing) -> Partner {
    Partner {
        name: format!("p_{id}"),
        id: id.into(),
        qualifier: Some("ZZ".into()),
        gs_id: None,
        transaction_sets: sets.iter().map(|s| s.to_string()).collect(),
        version: version.into(),
        processing,
        guides: vec![],
        delimiters: None,
    }
}

fn check(text: &str, partners: Partners, mode: Mode) -> Vec<InterchangeResult> {
    let mut checker = Checker::with_partners(mode, Arc::new(partners));
    let mut end = 0;
    let mut out = Vec::new();
    for item in Splitter::new(text.as_bytes()) {
        let item = item.unwrap();
        end = item.offset();
        checker.check(&item);
        out.extend(checker.take_done());
    }
    checker.finish(end);
    out.extend(checker.take_done());
    out
}

fn options() -> AckOptions {
    AckOptions {
        date: "20240116".into(),
        time: "0900".into(),
        interchange_control: 5,
        group_control: 1,
        delimiters: None,
    }
}

#[test]
fn an_isa_error_is_a_warning_for_a_partner_that_does_not_validate_isa() {
    // ISA09 `241399` is no date.
    let text = CLAIMS.replacen("*240115*1030*", "*241399*1030*", 1);
    let relaxed = Processing { validate_isa: false, ..Processing::default() };
    let ps = Partners { partners: vec![partner("SUBMITTER903", &["837"], "5010", relaxed)], accept_unknown: false };
    let ic = &check(&text, ps, Mode::Strict)[0];
    assert_eq!(ic.partner.as_deref(), Some("p_SUBMITTER903"));
    let f = ic.findings.iter().find(|f| f.code == "X12011").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(ic.accepted_sets(), 1);
    let ack = acknowledge(ic, &options()).unwrap();
    assert!(!ack.contains("TA1") && ack.contains("IK5*A~") && ack.contains("AK9*A*1*1*1~"), "{ack}");

    // The same interchange for a partner that validates ISA: rejected, TA1 R.
    let ps = Partners {
        partners: vec![partner("SUBMITTER903", &["837"], "5010", Processing::default())],
        accept_unknown: false,
    };
    let ic = &check(&text, ps, Mode::Strict)[0];
    assert_eq!(ic.accepted_sets(), 0);
    assert!(acknowledge(ic, &options()).unwrap().contains("TA1*000000001*241399*1030*R*014~"));
}

#[test]
fn partner_checks_stay_errors_in_lenient_mode_and_carry_their_ack_codes() {
    let ps = || Partners {
        partners: vec![partner("SUBMITTER903", &["835"], "5010", Processing::default())],
        accept_unknown: false,
    };
    let ic = &check(CLAIMS, ps(), Mode::Lenient)[0];
    let set = &ic.groups[0].sets[0];
    let f = set.findings.iter().find(|f| f.code == "X12069").unwrap();
    assert_eq!((f.severity, f.position.as_str()), (Severity::Error, "ST01"));
    assert!(acknowledge(ic, &options()).unwrap().contains("IK5*R*1~"));

    let ps = Partners {
        partners: vec![partner("SUBMITTER903", &["837"], "4010", Processing::default())],
        accept_unknown: false,
    };
    let ic = &check(CLAIMS, ps, Mode::Lenient)[0];
    assert!(ic.groups[0].findings.iter().any(|f| f.code == "X12070" && f.severity == Severity::Error));
    assert!(acknowledge(ic, &options()).unwrap().contains("AK9*R*1*1*0*2~"));

    // A qualifier that differs: no partner; unknown senders rejected, or read when accepted.
    let mut other = partner("SUBMITTER903", &["837"], "5010", Processing::default());
    other.qualifier = Some("01".into());
    let ic = &check(CLAIMS, Partners { partners: vec![other.clone()], accept_unknown: false }, Mode::Lenient)[0];
    assert_eq!(ic.partner, None);
    assert!(ic.findings.iter().any(|f| f.code == "X12068" && f.severity == Severity::Error && f.position == "ISA06"));
    assert!(acknowledge(ic, &options()).unwrap().contains("*R*006~"));
    let stranger = partner("OTHERID", &["837"], "5010", Processing::default());
    let ic = &check(CLAIMS, Partners { partners: vec![stranger], accept_unknown: false }, Mode::Strict)[0];
    let f = ic.findings.iter().find(|f| f.code == "X12068").unwrap();
    assert!(f.message.contains("p_OTHERID (OTHERID)") && !f.message.contains("SUBMITTER903"), "{}", f.message);
    let ic = &check(CLAIMS, Partners { partners: vec![other], accept_unknown: true }, Mode::Strict)[0];
    assert_eq!((ic.partner.as_deref(), ic.accepted_sets()), (None, 1));
}

/// The fixture with what a partner adds to its first claim: a REF qualified ZZ (its claim
/// tracking number), three NTEs where the guide allows one, and a repricer loop (NM1*ZZ with
/// a REF*G2) the 837P does not have; SE01 counts them.
fn with_partner_additions() -> String {
    let text = CLAIMS.replacen("*Y*A*Y*Y~\n", "*Y*A*Y*Y~\nREF*ZZ*CH7781~\n", 1).replacen(
        "HI*ABK:R079~\n",
        "NTE*ADD*ONE~\nNTE*ADD*TWO~\nNTE*ADD*THREE~\nHI*ABK:R079~\nNM1*ZZ*2*REPRICER~\nREF*G2*RP1234~\n",
        1,
    );
    let se = text.lines().find(|l| l.starts_with("SE*")).unwrap();
    let n: usize = se.split('*').nth(1).unwrap().parse().unwrap();
    text.replacen(se, &format!("SE*{}*0001~", n + 6), 1)
}

fn additions() -> Vec<Overlay> {
    vec![
        Overlay {
            path: "2300/REF(ZZ)".into(),
            add: Some(Addition::Segment(vec![NewElement {
                position: 2,
                max_length: Some(10),
                ..NewElement::default()
            }])),
            ..Overlay::default()
        },
        Overlay { path: "2300/NTE".into(), max_use: Some(3), ..Overlay::default() },
        Overlay {
            path: "2300/2310Z".into(),
            // Among the 2310 loops, before the other payers (2320) and the lines (2400).
            after: Some("2310F".into()),
            add: Some(Addition::Loop(vec![
                NewSegment {
                    segment: "NM1(ZZ)".into(),
                    elements: vec![NewElement { position: 3, usage: Some(Usage::Required), ..NewElement::default() }],
                    ..NewSegment::default()
                },
                NewSegment { segment: "REF(G2)".into(), ..NewSegment::default() },
            ])),
            ..Overlay::default()
        },
    ]
}

#[test]
fn a_partners_added_segments_and_loop_are_accepted_for_it_only() {
    let text = with_partner_additions();
    let bundled = sluice_x12::guide::by_id("005010X222A1").unwrap();
    let overlaid = overlaid(bundled, &additions()).unwrap();
    let mut with = partner("SUBMITTER903", &["837"], "5010", Processing::default());
    with.guides = vec![overlaid];
    let without = partner("SUBMITTER903", &["837"], "5010", Processing::default());

    // With the overlays: accepted, no finding, a 999 without IK3.
    let ic = &check(&text, Partners { partners: vec![with.clone()], accept_unknown: false }, Mode::Strict)[0];
    let set = &ic.groups[0].sets[0];
    assert!(set.findings.is_empty(), "{:?}", set.findings);
    assert_eq!(ic.accepted_sets(), 1);
    let ack = acknowledge(ic, &options()).unwrap();
    assert!(!ack.contains("IK3") && ack.contains("IK5*A~"), "{ack}");

    // The same file from a partner without them (or with no profile): rejected, one IK3 per
    // segment the bundled guide has no place for.
    for partners in [Partners { partners: vec![without], accept_unknown: false }, Partners::default()] {
        let accept_any = partners.partners.is_empty();
        let partners = Partners { accept_unknown: accept_any, ..partners };
        let ic = &check(&text, partners, Mode::Strict)[0];
        assert_eq!(ic.accepted_sets(), 0);
        let codes: Vec<&str> = ic.groups[0].sets[0].findings.iter().map(|f| f.code).collect();
        assert!(codes.contains(&"X12055"), "the second and third NTE: {codes:?}");
        assert!(codes.contains(&"X12053"), "NM1*ZZ has no place: {codes:?}");
        let ack = acknowledge(ic, &options()).unwrap();
        assert!(ack.contains("IK3*NTE*") && ack.contains("IK3*NM1*") && ack.contains("IK5*R*5~"), "{ack}");
    }

    // Each added place is validated: a REF*ZZ longer than the 10 characters declared, a
    // repricer NM1 without its name, a fourth NTE, a second REF*ZZ.
    let bad = text
        .replacen("REF*ZZ*CH7781~", "REF*ZZ*CH77810000000~\nREF*ZZ*2~", 1)
        .replacen("NM1*ZZ*2*REPRICER~", "NM1*ZZ*2~", 1)
        .replacen("NTE*ADD*ONE~", "NTE*ADD*ONE~\nNTE*ADD*FOUR~", 1);
    let se = bad.lines().find(|l| l.starts_with("SE*")).unwrap();
    let n: usize = se.split('*').nth(1).unwrap().parse().unwrap();
    let bad = bad.replacen(se, &format!("SE*{}*0001~", n + 2), 1);
    let ic = &check(&bad, Partners { partners: vec![with], accept_unknown: false }, Mode::Strict)[0];
    let got: Vec<(&str, &str)> = ic.groups[0].sets[0].findings.iter().map(|f| (f.code, f.position.as_str())).collect();
    assert_eq!(got, [("X12060", "REF02"), ("X12055", "REF"), ("X12055", "NTE"), ("X12057", "NM103")], "{got:?}");

    // A required addition that does not come is missing (IK3 code 3), in each claim.
    let mut required = additions();
    required[0].usage = Some(Usage::Required);
    let mut strict = partner("SUBMITTER903", &["837"], "5010", Processing::default());
    strict.guides = vec![sluice_x12::partner::overlaid(bundled, &required).unwrap()];
    let ic = &check(CLAIMS, Partners { partners: vec![strict], accept_unknown: false }, Mode::Strict)[0];
    let missing: Vec<&str> =
        ic.groups[0].sets[0].findings.iter().filter(|f| f.code == "X12054").map(|f| f.message.as_str()).collect();
    assert_eq!(missing.len(), 3, "three claims: {missing:?}");
    assert!(missing.iter().all(|m| m.contains("required segment REF is missing (loop 2300)")), "{missing:?}");
    assert!(acknowledge(ic, &options()).unwrap().contains("*2300*3~"));
}

/// Claim segments and a partner's additions, well and badly formed, in any order.
const SEGMENTS: &[&str] = &[
    "HL*1**20*1~",
    "NM1*85*2*GROUP*****XX*1234567893~",
    "HL*2*1*22*0~",
    "SBR*P*18*******CI~",
    "NM1*IL*1*DOE*J****MI*1~",
    "NM1*PR*2*PLAN*****PI*1~",
    "CLM*A1*100***11:B:1*Y*A*Y*Y~",
    "REF*ZZ*CH7781~",
    "REF*ZZ*CH77810000000000~",
    "REF*ZZ~",
    "REF*G2*RP1~",
    "NTE*ADD*X~",
    "NTE*XYZ~",
    "NM1*ZZ*2*REPRICER~",
    "NM1*ZZ*1~",
    "HI*ABK:R079~",
    "LX*1~",
    "SV1*HC:99213*100*UN*1***1~",
    "DTP*472*D8*20240216~",
    "*~",
];

proptest::proptest! {
    /// A partner's overlaid guide on arbitrary segment sequences: the checker never panics,
    /// and every acknowledgment it leads to is a clean 999.
    #[test]
    fn an_overlaid_guide_never_panics_and_its_acks_validate(
        picks in proptest::collection::vec(proptest::sample::select(SEGMENTS), 0..40),
    ) {
        let body: String = picks.concat();
        let count = picks.len() + 2;
        let text = CLAIMS.split("ST*837").next().unwrap().to_string()
            + &format!("ST*837*0001*005010X222A1~\nBHT*0019*00*1*20240115*1030*CH~\n{body}SE*{count}*0001~\nGE*1*1~\nIEA*1*000000001~\n");
        let mut with = partner("SUBMITTER903", &["837"], "5010", Processing::default());
        with.guides = vec![overlaid(sluice_x12::guide::by_id("005010X222A1").unwrap(), &additions()).unwrap()];
        for ic in check(&text, Partners { partners: vec![with], accept_unknown: false }, Mode::Strict) {
            let Some(ack) = acknowledge(&ic, &options()) else { continue };
            let res = sluice_x12::envelope::check_stream_with_guides(ack.as_bytes(), Mode::Strict).unwrap();
            proptest::prop_assert!(res.iter().all(|r| !r.has_errors()), "{ack}");
        }
    }
}
