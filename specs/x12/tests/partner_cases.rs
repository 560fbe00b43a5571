//! Trading partners in the envelope checker (`Checker::with_partners`): partner findings stay
//! errors in lenient mode, `validate_isa: false` turns ISA findings into warnings (and the
//! acknowledgment accepts), partners without overlays share the bundled guide, and the 999's
//! codes for partner rejections (IK5 1, AK905 2, TA1 006).

use std::sync::Arc;

use sluice_x12::ack::{AckOptions, acknowledge};
use sluice_x12::envelope::{Checker, InterchangeResult, Mode, Severity};
use sluice_x12::partner::{Partner, Partners, Processing};
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
