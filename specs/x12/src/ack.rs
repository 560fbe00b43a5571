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
//! Sets with errors carry their IK5/AK5 codes (2, 3, 4, 5, 7, 23). Errors found against the
//! implementation guide ([`crate::validate`]) are detailed: one IK3 (AK3 in a 997) per segment
//! in error, with its position, loop and code, followed by one IK4 (AK4) per element in error
//! (position, code; never the bad value, IK404 is left out as it may be PHI). At most
//! [`MAX_SEGMENT_NOTES`] IK3 per set.

use std::fmt::Write as _;

use crate::envelope::{Finding, GroupResult, InterchangeResult, SetResult, Severity};

/// The most IK3/AK3 segment notes written for one transaction set.
pub const MAX_SEGMENT_NOTES: usize = 100;

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
    /// The delimiters to write with (the partner's, [`crate::partner::OutputDelimiters`]);
    /// `None`: `*`, `:`, `^`, `~` and a line feed.
    pub delimiters: Option<crate::partner::OutputDelimiters>,
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
        ("X12068", _) => "006",
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
        "X12069" => "1",
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
        ("X12070", _) => Some("2"),
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
        qualifier(ic.isa_element(7)),
        pad(&echo(ic.isa_element(8), 1, 15, false), 15),
        qualifier(ic.isa_element(5)),
        pad(&echo(ic.isa_element(6), 1, 15, false), 15),
        options.date.get(2..8).unwrap_or("000101"),
        options.time.get(..4).unwrap_or("0000"),
        if ic.isa_element(15) == "T" { "T" } else { "P" },
    ));
    if wants_ta1 {
        let note = errors(&ic.findings).next().map_or("000", ta1_note);
        let status = if rejected { "R" } else { "A" };
        let (isa13, isa09, isa10) = (
            echo(ic.isa_element(13), 9, 9, true),
            echo(ic.isa_element(9), 6, 6, true),
            echo(ic.isa_element(10), 4, 4, true),
        );
        segs.push(format!("TA1*{isa13}*{isa09}*{isa10}*{status}*{note}"));
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
    match options.delimiters {
        None => {
            for s in segs {
                let _ = writeln!(out, "{s}~");
            }
        }
        Some(d) => {
            // Segments are built with `*`, `:` and `^` only as delimiters (echoed values never
            // hold them, see `echo`), so each maps to the partner's.
            for s in segs {
                out.extend(s.chars().map(|c| match c {
                    '*' => char::from(d.element),
                    ':' => char::from(d.component),
                    '^' => char::from(d.repetition),
                    c => c,
                }));
                out.push(char::from(d.segment));
                if d.line_break {
                    out.push('\n');
                }
            }
        }
    }
    Some(out)
}

fn functional_ack(group: &GroupResult, ic: &InterchangeResult, control: u32, o: &AckOptions, segs: &mut Vec<String>) {
    let v5010 = is_5010(group, ic);
    let guide = if v5010 { "005010X231A1" } else { "004010" };
    let (from, to) = (echo(ic.isa_element(8), 1, 15, false), echo(ic.isa_element(6), 1, 15, false));
    segs.push(format!("GS*FA*{from}*{to}*{}*{}*{control}*X*{guide}", o.date, o.time));
    let (fid, gcontrol, gversion) =
        (echo(&group.functional_id, 2, 2, false), echo(&group.control, 1, 9, true), echo(&group.version, 1, 12, false));
    let start = segs.len();
    if v5010 {
        segs.push(format!("ST*999*0001*{guide}"));
        segs.push(format!("AK1*{fid}*{gcontrol}*{gversion}"));
    } else {
        segs.push("ST*997*0001".to_string());
        segs.push(format!("AK1*{fid}*{gcontrol}"));
    }
    let mut accepted = 0;
    for set in &group.sets {
        if v5010 {
            let (id, control, guide) =
                (echo(&set.id, 3, 3, false), echo(&set.control, 4, 9, false), echo(&set.guide, 0, 35, false));
            segs.push(format!("AK2*{id}*{control}*{guide}").trim_end_matches('*').to_string());
        } else {
            segs.push(format!("AK2*{}*{}", echo(&set.id, 3, 3, false), echo(&set.control, 4, 9, false)));
        }
        segment_notes(set, v5010, segs);
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

/// An identifier the partner sent, fit to be echoed: only ASCII letters, digits, spaces and the
/// punctuation no acknowledgment uses as a delimiter (`*`, `:`, `^`, `~` and the partner's own
/// are dropped), at most `max` characters; digits only when `digits`. What the partner sent
/// well comes back unchanged; what it did not cannot break the acknowledgment's syntax: too
/// short a value is padded with leading zeros to `min` characters.
fn echo(v: &str, min: usize, max: usize, digits: bool) -> String {
    let kept: String = v
        .chars()
        .filter(|c| {
            if digits { c.is_ascii_digit() } else { c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '.' | '_') }
        })
        .take(max)
        .collect();
    format!("{kept:0>min$}")
}

/// An id qualifier (ISA05, ISA07) echoed into our ISA: the received one when it is two letters
/// or digits, as the ISA requires, else `ZZ` (mutually defined), so a reply to an interchange
/// with a broken qualifier (`..`) still reads back without an envelope error.
fn qualifier(v: &str) -> String {
    if v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphanumeric()) { v.to_string() } else { "ZZ".to_string() }
}

/// AK304 (997) for an IK304 code: the `I` codes of the 999 have no 997 equivalent.
fn ak3_code(ik304: &'static str) -> &'static str {
    match ik304 {
        "I4" | "I9" => "2",
        "I6" | "I7" | "I8" => "3",
        c => c,
    }
}

/// AK403 (997) for an IK403 code.
fn ak4_code(ik403: &'static str) -> &'static str {
    match ik403 {
        "I10" | "I13" => "10",
        "I12" | "I6" => "7",
        "12" | "13" | "I11" => "3",
        "I9" => "2",
        c => c,
    }
}

/// IK3/IK4 (or AK3/AK4) for the set's guide errors, in segment order: one segment note per
/// segment and segment code, the element notes of its element errors after it.
fn segment_notes(set: &SetResult, v5010: bool, segs: &mut Vec<String>) {
    let mut notes: Vec<(usize, &str, &str, &'static str, Vec<String>)> = Vec::new();
    for f in errors(&set.findings) {
        let Some(d) = &f.guide else { continue };
        if d.segment_id.is_empty() {
            continue; // IK301 must be a segment id; IK5 still says 5.
        }
        let code = if v5010 { d.segment_code } else { ak3_code(d.segment_code) };
        let element = d.element.zip(d.element_code).map(|((e, c), code)| {
            let code = if v5010 { code } else { ak4_code(code) };
            let at = if c == 0 { e.to_string() } else { format!("{e}:{c}") };
            format!("{}*{at}**{code}", if v5010 { "IK4" } else { "AK4" })
        });
        let same = notes.last_mut().filter(|n| n.0 == f.segment_number && n.1 == d.segment_id && n.3 == code);
        match same {
            Some(n) => n.4.extend(element),
            None => {
                if notes.len() == MAX_SEGMENT_NOTES {
                    break;
                }
                // IK303 is the loop id of the base standard (4 characters): 2010 for 2010AA.
                let loop_id = d.loop_id.get(..4).unwrap_or(&d.loop_id);
                notes.push((f.segment_number, &d.segment_id, loop_id, code, element.into_iter().collect()));
            }
        }
    }
    for (number, id, loop_id, code, elements) in notes {
        let name = if v5010 { "IK3" } else { "AK3" };
        segs.push(format!("{name}*{id}*{number}*{loop_id}*{code}"));
        segs.extend(elements);
    }
}
