//! Acknowledgments built from the envelope checker's results ([`crate::envelope`]): a TA1 when
//! the interchange itself has errors (or ISA14 asks for one), else one functional
//! acknowledgment per functional group: a 999 (X231A1) when the group's version is 5010 or
//! later, a 997 before. Each reports every set (AK2, IK5/AK5 with its error codes) and the group
//! (AK9 with counts and error codes).
//!
//! Invariants:
//! - The acknowledgment is a complete interchange (ISA..IEA) with correct counts and control
//!   numbers: it passes [`crate::envelope::Checker`] with no finding (a unit test holds this).
//! - Sender and receiver are swapped from the original ISA/GS; the control numbers of the
//!   acknowledgment are the caller's ([`AckOptions`]); dates and times come from the caller (a
//!   fixed clock makes the output deterministic).
//! - Only what the partner sent is echoed (ids, control numbers, versions), never data elements.
//! - An interchange rejected at the envelope (TA1 with R) gets no functional acknowledgment:
//!   nothing in it was processed.
//!
//! Segment-level details (IK3/IK4, AK3/AK4) need implementation-guide validation, which is not
//! bundled yet; sets with errors carry their IK5/AK5 codes (2, 3, 4, 5, 7, 23).

use std::fmt::Write as _;

use crate::envelope::{Finding, GroupResult, InterchangeResult, Severity};

/// What the caller decides about the acknowledgment.
#[derive(Clone, Debug)]
pub struct AckOptions {
    /// CCYYMMDD and HHMM of the acknowledgment.
    pub date: String,
    pub time: String,
    /// ISA13 of the acknowledgment (at most 9 digits).
    pub interchange_control: u32,
    /// GS06 of the first functional acknowledgment; the next groups count up from it.
    pub group_control: u32,
}

/// TA105 note codes for interchange findings (`000`: no error).
fn ta1_note(f: &Finding) -> &'static str {
    match (f.code, f.position.as_str()) {
        ("X12021", _) => "001",
        ("X12022", _) => "021",
        ("X12020", _) => "023",
        ("X12011", _) => "014",
        ("X12012", _) => "015",
        ("X12013", _) => "018",
        ("X12010", "ISA01") => "010",
        ("X12010", "ISA03") => "012",
        ("X12010", "ISA05") => "005",
        ("X12010", "ISA07") => "007",
        ("X12010", "ISA11") => "016",
        ("X12010", "ISA12") => "017",
        ("X12010", "ISA14") => "019",
        ("X12010", "ISA15") => "020",
        ("X12005", _) => "024",
        _ => "022",
    }
}

/// IK502/AK502 codes for set findings.
fn set_code(f: &Finding) -> &'static str {
    match f.code {
        "X12040" => "2",
        "X12042" => "3",
        "X12041" => "4",
        "X12044" => "7",
        "X12047" => "23",
        _ => "5",
    }
}

/// AK905 codes for group findings (`None`: no code fits; the group is still rejected).
fn group_code(f: &Finding) -> Option<&'static str> {
    match (f.code, f.position.as_str()) {
        ("X12030", _) => Some("3"),
        ("X12031", _) => Some("4"),
        ("X12032", _) => Some("5"),
        ("X12013", "GS06") => Some("6"),
        ("X12047", "GS06") => Some("19"),
        _ => None,
    }
}

fn errors(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    findings.iter().filter(|f| f.severity == Severity::Error)
}

/// A 5010 (or later) group gets a 999, an older one a 997: GS08's first six digits, or ISA12
/// when GS08 does not start with a version.
fn is_5010(group: &GroupResult, ic: &InterchangeResult) -> bool {
    match group.version.get(..6).and_then(|v| v.parse::<u32>().ok()) {
        Some(v) => v >= 5010,
        None => ic.isa_element(12).parse::<u32>().is_ok_and(|v| v >= 501),
    }
}

/// The acknowledgment interchange for `ic`, segments ended by `~` and a line feed; `None` for
/// bytes that were not an interchange (no ISA to answer).
pub fn acknowledge(ic: &InterchangeResult, options: &AckOptions) -> Option<String> {
    if ic.isa.len() < 16 {
        return None;
    }
    let mut segs: Vec<String> = Vec::new();
    let pad = |s: &str, w: usize| format!("{s:<w$.w$}");
    let isa13 = format!("{:09}", options.interchange_control % 1_000_000_000);
    let rejected = ic.has_errors();
    let wants_ta1 = rejected || ic.isa_element(14) == "1";
    let any_5010 = ic.groups.iter().any(|g| is_5010(g, ic));
    let version = if any_5010 || ic.groups.is_empty() && ic.isa_element(12) >= "00501" { "00501" } else { "00401" };
    let isa11 = if version == "00501" { "^" } else { "U" };
    segs.push(format!(
        "ISA*00*{}*00*{}*{}*{}*{}*{}*{}*{}*{isa11}*{version}*{isa13}*0*{}*:",
        pad("", 10),
        pad("", 10),
        pad(ic.isa_element(7), 2),
        pad(ic.isa_element(8), 15),
        pad(ic.isa_element(5), 2),
        pad(ic.isa_element(6), 15),
        options.date.get(2..8).unwrap_or("000101"),
        options.time.get(..4).unwrap_or("0000"),
        if ic.isa_element(15) == "T" { "T" } else { "P" },
    ));
    if wants_ta1 {
        let note = errors(&ic.findings).next().map_or("000", ta1_note);
        let status = if rejected { "R" } else { "A" };
        segs.push(format!("TA1*{}*{}*{}*{status}*{note}", ic.isa_element(13), ic.isa_element(9), ic.isa_element(10)));
    }
    let mut groups = 0;
    if !rejected {
        for group in ic.groups.iter().filter(|g| !g.functional_id.is_empty()) {
            let control = options.group_control.wrapping_add(groups) % 1_000_000_000;
            groups += 1;
            functional_ack(group, ic, control, options, &mut segs);
        }
    }
    segs.push(format!("IEA*{groups}*{isa13}"));
    let mut out = String::new();
    for s in segs {
        let _ = writeln!(out, "{s}~");
    }
    Some(out)
}

fn functional_ack(group: &GroupResult, ic: &InterchangeResult, control: u32, o: &AckOptions, segs: &mut Vec<String>) {
    let v5010 = is_5010(group, ic);
    let guide = if v5010 { "005010X231A1" } else { "004010" };
    segs.push(format!("GS*FA*{}*{}*{}*{}*{control}*X*{guide}", ic.isa_element(8), ic.isa_element(6), o.date, o.time));
    let start = segs.len();
    if v5010 {
        segs.push(format!("ST*999*0001*{guide}"));
        segs.push(format!("AK1*{}*{}*{}", group.functional_id, group.control, group.version));
    } else {
        segs.push("ST*997*0001".to_string());
        segs.push(format!("AK1*{}*{}", group.functional_id, group.control));
    }
    let mut accepted = 0;
    for set in &group.sets {
        if v5010 {
            segs.push(format!("AK2*{}*{}*{}", set.id, set.control, set.guide).trim_end_matches('*').to_string());
        } else {
            segs.push(format!("AK2*{}*{}", set.id, set.control));
        }
        let mut codes: Vec<&str> = errors(&set.findings).map(set_code).collect();
        codes.sort_unstable();
        codes.dedup();
        codes.truncate(5);
        let status = if codes.is_empty() {
            accepted += 1;
            if set.findings.iter().any(|f| f.severity == Severity::Warning) { "E" } else { "A" }
        } else {
            "R"
        };
        let trailer = if v5010 { "IK5" } else { "AK5" };
        let mut line = format!("{trailer}*{status}");
        for c in &codes {
            line.push('*');
            line.push_str(c);
        }
        segs.push(line);
    }
    let group_errors: Vec<&Finding> = errors(&group.findings).collect();
    let mut codes: Vec<&str> = group_errors.iter().filter_map(|f| group_code(f)).collect();
    codes.sort_unstable();
    codes.dedup();
    codes.truncate(5);
    let received = group.sets.len();
    let status = if !group_errors.is_empty() || (accepted == 0 && received > 0) {
        "R"
    } else if accepted < received {
        "P"
    } else {
        "A"
    };
    let accepted = if status == "R" { 0 } else { accepted };
    let mut ak9 = format!("AK9*{status}*{received}*{received}*{accepted}");
    for c in &codes {
        ak9.push('*');
        ak9.push_str(c);
    }
    segs.push(ak9);
    let count = segs.len() - start + 1;
    segs.push(format!("SE*{count}*0001"));
    segs.push(format!("GE*1*{control}"));
}
