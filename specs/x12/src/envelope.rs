//! Envelope checks over the items of [`crate::split::Splitter`]: ISA/IEA (fixed widths, dates,
//! times, control numbers, group count), GS/GE (dates, times, control numbers, set count) and
//! ST/SE (segment count, control numbers, segment ids).
//!
//! Invariants:
//! - No input makes the [`Checker`] panic; it only reads the items.
//! - A [`Finding`] never holds a value of the data (values may be PHI, and control numbers are
//!   identifiers): it names an element position (`ISA09`, `SE01`), a stream offset, a code and
//!   a fixed explanation; counts may be said.
//! - Every code is registered in [`CODES`] (listed in docs/diagnostics.md).
//! - [`Mode::Strict`] rejects: a set is accepted only when neither it nor its group or
//!   interchange has an error. [`Mode::Lenient`] reports the same problems as warnings and goes
//!   on, except what makes the bytes unreadable (`X12001`, `X12003`), which stays an error.
//! - Every transaction set ends up in exactly one [`SetResult`], inside the [`GroupResult`]
//!   and [`InterchangeResult`] that enclose it (a set outside any group gets a group with an
//!   empty GS), so acknowledgments can be built from the results alone.
//! - A set is checked a segment at a time (begun at its ST, ended after its last segment), so a
//!   set read in parts ([`crate::split::Item::SetPart`]) gets exactly the findings and result
//!   it would get whole, and only the open loops and the set's HL ids are held between parts.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::codec::{Segment, is_segment_id};
use crate::split::{Item, RawSet};

pub use sluice_spec_core::Severity;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Strict,
    Lenient,
}

/// One problem found. Never holds a value of the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `X12nnn`, registered in [`CODES`].
    pub code: &'static str,
    /// Stream offset of the segment concerned.
    pub offset: usize,
    /// Where: an element (`ISA09`, `SE01`, `CLM05-1`) or a segment id (`GE`).
    pub position: String,
    /// 1-based position of the segment in its transaction set (0 outside sets).
    pub segment_number: usize,
    pub message: String,
    /// For findings against an implementation guide: what a 999 IK3/IK4 (997 AK3/AK4) says.
    pub guide: Option<GuideDetail>,
}

/// Where a guide finding sits, for acknowledgments: IK301 (segment id), IK302 (the finding's
/// `segment_number`), IK303 (loop id), IK304 (segment code) and, for element findings, IK401
/// (element, component; component 0 for a simple element) and IK403 (element code). Never a
/// value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuideDetail {
    pub segment_id: String,
    pub loop_id: String,
    pub segment_code: &'static str,
    pub element: Option<(usize, usize)>,
    pub element_code: Option<&'static str>,
}

/// The default severity of a registered code (error for an unknown one).
pub fn default_severity(code: &str) -> Severity {
    CODES.iter().find(|c| c.0 == code).map_or(Severity::Error, |c| c.1)
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}: {}", self.severity, self.code, self.position, self.message)
    }
}

/// The result of one transaction set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetResult {
    pub offset: usize,
    /// ST01 (`837`), ST02 (control number), ST03 (implementation guide, 5010).
    pub id: String,
    pub control: String,
    pub guide: String,
    /// Every finding on the set (envelope and guide), all severities.
    pub findings: Vec<Finding>,
}

impl SetResult {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// The result of one functional group (GS..GE).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupResult {
    pub offset: usize,
    /// GS01 (functional identifier, `HC`), GS06 (control number), GS08 (version).
    pub functional_id: String,
    pub control: String,
    pub version: String,
    pub sets: Vec<SetResult>,
    /// Findings on GS and GE.
    pub findings: Vec<Finding>,
}

impl GroupResult {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// The result of one interchange (ISA..IEA).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterchangeResult {
    pub offset: usize,
    /// ISA elements as written (trimmed): used to address a TA1 or an acknowledgment back.
    pub isa: Vec<String>,
    pub groups: Vec<GroupResult>,
    /// Findings on ISA, IEA, TA1 and segments out of place.
    pub findings: Vec<Finding>,
    /// The trading partner (its profile name) that sent the interchange, when the checker
    /// knows partners ([`Checker::with_partners`]) and ISA05/ISA06 name one.
    pub partner: Option<String>,
}

impl InterchangeResult {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// ISA element `n` (1-based), trimmed.
    pub fn isa_element(&self, n: usize) -> &str {
        self.isa.get(n.wrapping_sub(1)).map_or("", String::as_str)
    }

    /// Sets accepted: no error on the set, its group or the interchange.
    pub fn accepted_sets(&self) -> usize {
        if self.has_errors() {
            return 0;
        }
        self.groups.iter().filter(|g| !g.has_errors()).flat_map(|g| &g.sets).filter(|s| !s.has_errors()).count()
    }

    pub fn total_sets(&self) -> usize {
        self.groups.iter().map(|g| g.sets.len()).sum()
    }
}

/// Checks items in stream order and gathers their results.
#[derive(Debug, Default)]
pub struct Checker {
    mode: Mode,
    /// Validate each set against its implementation guide ([`crate::validate`]).
    guides: bool,
    interchange: Option<Open>,
    /// Bytes outside interchanges and their findings, in an interchange of their own.
    done: Vec<InterchangeResult>,
    /// The configured trading partners, if any ([`crate::partner`]).
    partners: Option<Arc<crate::partner::Partners>>,
    /// The partner of the open interchange (index in `partners`).
    partner: Option<usize>,
    /// The set being checked (a set read in parts stays open between its parts).
    set: Option<OpenSet>,
}

/// A transaction set being checked, a segment at a time.
struct OpenSet {
    result: SetResult,
    /// Whether a functional group was open at its ST.
    group_open: bool,
    /// Segments whose id is malformed (X12046), in segment order.
    id_findings: Vec<Finding>,
    /// What its ST and the envelopes around it showed.
    st_findings: Vec<Finding>,
    /// Its guide validation ([`Checker::with_guides`]).
    validator: Option<crate::validate::SetValidator>,
    /// Segments so far.
    count: usize,
    /// Offset of its last segment so far.
    last_offset: Option<usize>,
}

impl fmt::Debug for OpenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSet")
            .field("offset", &self.result.offset)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Open {
    result: InterchangeResult,
    group_open: bool,
    group_controls: HashSet<String>,
    set_controls: HashSet<String>,
}

impl Checker {
    /// Envelope checks only.
    pub fn new(mode: Mode) -> Self {
        Checker { mode, ..Checker::default() }
    }

    /// Envelope checks, then each set against its implementation guide (chosen from ISA12,
    /// GS01, GS08 and ST03): loops, segments, elements, codes.
    pub fn with_guides(mode: Mode) -> Self {
        Checker { mode, guides: true, ..Checker::default() }
    }

    /// [`Checker::with_guides`] for the trading partners of a profile: each interchange's
    /// sender must be one of them (unless `accept_unknown`), its groups and sets what the
    /// partner is configured for, its guides the partner's overlaid copies, and the checks
    /// its `processing` turns off are warnings ([`crate::partner`]).
    pub fn with_partners(mode: Mode, partners: Arc<crate::partner::Partners>) -> Self {
        Checker { mode, guides: true, partners: Some(partners), ..Checker::default() }
    }

    /// The partner of the open interchange.
    pub fn partner(&self) -> Option<&crate::partner::Partner> {
        self.partners.as_deref().zip(self.partner).and_then(|(ps, i)| ps.partners.get(i))
    }

    /// Checks one item. Returns the findings it produced (also kept in the results).
    pub fn check(&mut self, item: &Item) -> Vec<Finding> {
        let mut found = Vec::new();
        match item {
            Item::Stray { offset, bytes, code, reason } => {
                self.close_interchange(*offset, &mut found);
                let f = self.finding(
                    code,
                    *offset,
                    "",
                    0,
                    format!("{} bytes outside any interchange: {reason}", bytes.len()),
                );
                found.push(f.clone());
                self.done.push(InterchangeResult {
                    offset: *offset,
                    findings: vec![f],
                    ..InterchangeResult::default()
                });
            }
            Item::Envelope { offset, delimiters, bytes } => {
                let seg = Segment { offset: *offset, raw: bytes, delimiters: *delimiters };
                self.envelope(&seg, &mut found);
            }
            Item::Set(set) => self.set(set, &mut found),
            Item::SetPart { part, first, last } => self.set_part(part, *first, *last, &mut found),
        }
        found
    }

    /// Adds findings to the last set checked (guide validation runs after [`Checker::check`]).
    pub fn add_to_last_set(&mut self, findings: Vec<Finding>) {
        let findings: Vec<Finding> = findings.into_iter().map(|f| self.apply_mode(f)).collect();
        if let Some(set) =
            self.interchange.as_mut().and_then(|o| o.result.groups.last_mut()).and_then(|g| g.sets.last_mut())
        {
            set.findings.extend(findings);
        }
    }

    /// The interchanges completed so far (taken: each is returned once).
    pub fn take_done(&mut self) -> Vec<InterchangeResult> {
        std::mem::take(&mut self.done)
    }

    /// Ends the stream: an open set, group or interchange lacks its trailer.
    pub fn finish(&mut self, end_offset: usize) -> Vec<Finding> {
        let mut found = Vec::new();
        self.close_interchange(end_offset, &mut found);
        found
    }

    fn apply_mode(&self, mut f: Finding) -> Finding {
        if self.mode == Mode::Lenient && f.severity == Severity::Error && !matches!(f.code, "X12001" | "X12003") {
            f.severity = Severity::Warning;
        }
        if f.severity == Severity::Error
            && let Some(p) = self.partner()
            && crate::partner::check_class(&f).is_some_and(|c| !p.processing.enforces(c))
        {
            f.severity = Severity::Warning;
        }
        f
    }

    /// A partner finding: always an error (neither lenient mode nor `processing` changes who
    /// may send what).
    fn partner_finding(
        code: &'static str,
        offset: usize,
        position: &str,
        segment_number: usize,
        message: String,
    ) -> Finding {
        Finding {
            severity: Severity::Error,
            code,
            offset,
            position: position.to_string(),
            segment_number,
            message,
            guide: None,
        }
    }

    fn finding(
        &self,
        code: &'static str,
        offset: usize,
        position: &str,
        segment_number: usize,
        message: String,
    ) -> Finding {
        let severity = default_severity(code);
        self.apply_mode(Finding {
            severity,
            code,
            offset,
            position: position.to_string(),
            segment_number,
            message,
            guide: None,
        })
    }

    fn close_interchange(&mut self, offset: usize, found: &mut Vec<Finding>) {
        let Some(mut open) = self.interchange.take() else { return };
        if open.group_open {
            let f = self.finding("X12030", offset, "GE", 0, "the functional group has no GE trailer".into());
            found.push(f.clone());
            if let Some(g) = open.result.groups.last_mut() {
                g.findings.push(f);
            }
        }
        let f = self.finding("X12020", offset, "IEA", 0, "the interchange has no IEA trailer".into());
        found.push(f.clone());
        open.result.findings.push(f);
        self.done.push(open.result);
    }

    fn envelope(&mut self, seg: &Segment, found: &mut Vec<Finding>) {
        let offset = seg.offset;
        match seg.id() {
            b"ISA" => {
                self.close_interchange(offset, found);
                let mut result = InterchangeResult { offset, ..InterchangeResult::default() };
                result.isa = seg.elements().map(|e| String::from_utf8_lossy(e).trim().to_string()).collect();
                let mut fs = Vec::new();
                self.partner = None;
                if let Some(ps) = self.partners.clone() {
                    let found = ps.identify(result.isa_element(5), result.isa_element(6));
                    self.partner = found.and_then(|p| ps.partners.iter().position(|q| std::ptr::eq(p, q)));
                    result.partner = found.map(|p| p.name.clone());
                    if found.is_none() && !ps.accept_unknown {
                        let ids: Vec<String> = ps.partners.iter().map(|p| format!("{} ({})", p.name, p.id)).collect();
                        fs.push(Self::partner_finding(
                            crate::partner::UNKNOWN_PARTNER,
                            offset,
                            "ISA06",
                            0,
                            format!(
                                "the interchange sender (ISA05/ISA06) is not a configured trading partner; configured: {}",
                                ids.join(", ")
                            ),
                        ));
                    }
                }
                self.isa_checks(seg, &mut fs);
                found.extend(fs.iter().cloned());
                result.findings = fs;
                self.interchange = Some(Open { result, ..Open::default() });
            }
            b"IEA" => {
                let Some(mut open) = self.interchange.take() else { return };
                let mut fs = Vec::new();
                if open.group_open {
                    let f = self.finding("X12030", offset, "GE", 0, "the functional group has no GE trailer".into());
                    if let Some(g) = open.result.groups.last_mut() {
                        g.findings.push(f.clone());
                    }
                    found.push(f);
                }
                if seg.element_str(2) != open.result.isa_element(13) {
                    fs.push(self.finding("X12021", offset, "IEA02", 0, "IEA02 does not match ISA13".into()));
                }
                let groups = open.result.groups.iter().filter(|g| !g.functional_id.is_empty()).count();
                if seg.element_str(1).parse::<usize>().ok() != Some(groups) {
                    fs.push(self.finding(
                        "X12022",
                        offset,
                        "IEA01",
                        0,
                        format!("IEA01 does not give the number of functional groups ({groups})"),
                    ));
                }
                found.extend(fs.iter().cloned());
                open.result.findings.extend(fs);
                self.done.push(open.result);
            }
            b"GS" => {
                let Some(open) = self.interchange.as_ref() else { return };
                let previous_open = open.group_open;
                let control = seg.element_str(6).to_string();
                let duplicate = open.group_controls.contains(&control);
                if previous_open {
                    let f = self.finding(
                        "X12030",
                        offset,
                        "GE",
                        0,
                        "the previous functional group has no GE trailer".into(),
                    );
                    found.push(f.clone());
                    if let Some(g) = self.interchange.as_mut().and_then(|o| o.result.groups.last_mut()) {
                        g.findings.push(f);
                    }
                }
                let mut checks = Vec::new();
                if duplicate {
                    checks.push((
                        "X12047",
                        "GS06",
                        "the group control number is used twice in this interchange".into(),
                    ));
                }
                gs_checks(seg, &mut checks);
                let mut made: Vec<Finding> =
                    checks.into_iter().map(|(code, pos, msg)| self.finding(code, offset, pos, 0, msg)).collect();
                if let Some(p) = self.partner() {
                    if let Some(gs_id) = &p.gs_id
                        && seg.element_str(2).trim() != gs_id
                    {
                        made.push(Self::partner_finding(
                            crate::partner::WRONG_GS02,
                            offset,
                            "GS02",
                            0,
                            format!("GS02 is not the application sender code of trading partner {} ({gs_id})", p.name),
                        ));
                    }
                    if !crate::partner::version_accepts(&p.version, seg.element_str(8)) {
                        made.push(Self::partner_finding(
                            crate::partner::WRONG_VERSION,
                            offset,
                            "GS08",
                            0,
                            format!(
                                "GS08 is not the version trading partner {} is configured for ({})",
                                p.name, p.version
                            ),
                        ));
                    }
                }
                found.extend(made.iter().cloned());
                let group = GroupResult {
                    offset,
                    functional_id: seg.element_str(1).to_string(),
                    control: control.clone(),
                    version: seg.element_str(8).to_string(),
                    findings: made,
                    ..GroupResult::default()
                };
                let open = self.interchange.as_mut().expect("checked above");
                open.group_controls.insert(control);
                open.group_open = true;
                open.set_controls.clear();
                open.result.groups.push(group);
            }
            b"GE" => {
                let group_open = self.interchange.as_ref().is_some_and(|o| o.group_open);
                if !group_open {
                    self.out_of_place(seg, found);
                    return;
                }
                let open = self.interchange.as_ref().expect("group open");
                let group = open.result.groups.last().expect("group open");
                let mut fs = Vec::new();
                if seg.element_str(2) != group.control {
                    fs.push(self.finding("X12031", offset, "GE02", 0, "GE02 does not match GS06".into()));
                }
                let sets = group.sets.len();
                if seg.element_str(1).parse::<usize>().ok() != Some(sets) {
                    fs.push(self.finding(
                        "X12032",
                        offset,
                        "GE01",
                        0,
                        format!("GE01 does not give the number of transaction sets ({sets})"),
                    ));
                }
                let open = self.interchange.as_mut().expect("group open");
                open.group_open = false;
                found.extend(fs.iter().cloned());
                open.result.groups.last_mut().expect("group open").findings.extend(fs);
            }
            b"TA1" => {
                let f =
                    self.finding("X12050", offset, "TA1", 0, "an interchange acknowledgment (TA1) was received".into());
                found.push(f.clone());
                if let Some(open) = self.interchange.as_mut() {
                    open.result.findings.push(f);
                }
            }
            _ => self.out_of_place(seg, found),
        }
    }

    fn out_of_place(&mut self, seg: &Segment, found: &mut Vec<Finding>) {
        let what = if seg.raw.is_empty() { "an empty segment".to_string() } else { "a segment".to_string() };
        // Only a well-formed id is named: without one, the "id" may be a run of data.
        let id = if is_segment_id(seg.id()) { seg.id_str() } else { "" };
        let f = self.finding(
            "X12005",
            seg.offset,
            id,
            0,
            format!("{what} outside any transaction set, or a trailer without its header"),
        );
        found.push(f.clone());
        if let Some(open) = self.interchange.as_mut() {
            open.result.findings.push(f);
        }
    }

    /// A whole set: begun at its ST, fed every segment, ended.
    fn set(&mut self, set: &RawSet, found: &mut Vec<Finding>) {
        let mut last = None;
        for seg in set.segments() {
            self.set_segment(&seg, set.offset, set.closed);
            last = Some(seg);
        }
        self.end_set(last, set.closed, found);
    }

    /// A part of a set read in parts ([`Item::SetPart`]); the last one ends the set.
    fn set_part(&mut self, part: &RawSet, first: bool, last_part: bool, found: &mut Vec<Finding>) {
        if first && self.set.is_some() {
            // Cannot happen with the splitter (a set's parts come together); kept total.
            self.end_set(None, false, found);
        }
        let mut last = None;
        for seg in part.segments() {
            // Until the last part, an SE is expected to end the set.
            self.set_segment(&seg, part.offset, true);
            last = Some(seg);
        }
        if last_part {
            self.end_set(last.filter(|_| part.closed), part.closed, found);
        }
    }

    /// The open set's next segment (its first begins the set, `offset` being the set's).
    fn set_segment(&mut self, seg: &Segment, offset: usize, closed: bool) {
        if self.set.is_none() {
            self.begin_set(seg, offset, closed);
        }
        let Some(open) = self.set.as_mut() else { return };
        open.count += 1;
        open.last_offset = Some(seg.offset);
        let count = open.count;
        if !is_segment_id(seg.id()) {
            let f = self.finding(
                "X12046",
                seg.offset,
                &format!("segment {count}"),
                count,
                "the segment id is not 2 or 3 uppercase letters or digits".into(),
            );
            self.set.as_mut().expect("open above").id_findings.push(f);
        }
        if let Some(v) = self.set.as_mut().and_then(|s| s.validator.as_mut()) {
            v.push(seg);
        }
    }

    /// Opens a set at its ST: the checks ST and the envelopes around it allow at once, and the
    /// guide validation it will be fed to.
    fn begin_set(&mut self, st: &Segment, offset: usize, closed: bool) {
        let mut fs = Vec::new();
        let control = st.element_str(2).to_string();
        let result = SetResult {
            offset,
            id: st.element_str(1).to_string(),
            control: control.clone(),
            guide: st.element_str(3).to_string(),
            findings: Vec::new(),
        };
        if !(4..=9).contains(&control.len()) {
            fs.push(self.finding("X12044", st.offset, "ST02", 1, "ST02 must have 4 to 9 characters".into()));
        }
        if self.interchange.is_none() {
            // Cannot happen with the splitter (sets come inside interchanges); kept total.
            self.interchange = Some(Open::default());
        }
        let open = self.interchange.as_mut().expect("set above");
        let group_open = open.group_open;
        let version = open.result.groups.last().map(|g| g.version.clone()).unwrap_or_default();
        let duplicate = group_open && !open.set_controls.insert(control.clone());
        if !group_open {
            fs.push(self.finding(
                "X12043",
                st.offset,
                "ST",
                1,
                "the transaction set is not inside a functional group (GS)".into(),
            ));
        }
        if duplicate {
            fs.push(self.finding(
                "X12047",
                st.offset,
                "ST02",
                1,
                "the set control number is used twice in this group".into(),
            ));
        }
        if group_open && !result.guide.is_empty() && result.guide != version {
            fs.push(self.finding("X12045", st.offset, "ST03", 1, "ST03 differs from GS08".into()));
        }
        if let Some(p) = self.partner()
            && !p.transaction_sets.contains(&result.id)
        {
            fs.push(Self::partner_finding(
                crate::partner::SET_NOT_CONFIGURED,
                st.offset,
                "ST01",
                1,
                format!(
                    "ST01 is not a transaction set trading partner {} is configured for ({})",
                    p.name,
                    p.transaction_sets.join(", ")
                ),
            ));
        }
        let validator = self.guides.then(|| {
            let open = self.interchange.as_ref().expect("set above");
            let group = open.result.groups.last().filter(|_| group_open);
            let selector = crate::guide::Selector {
                isa12: open.result.isa_element(12),
                gs01: group.map_or("", |g| g.functional_id.as_str()),
                gs08: group.map_or("", |g| g.version.as_str()),
                st01: &result.id,
                st03: &result.guide,
            };
            crate::validate::SetValidator::new(&selector, self.partner(), st.offset, closed)
        });
        self.set = Some(OpenSet {
            result,
            group_open,
            id_findings: Vec::new(),
            st_findings: fs,
            validator,
            count: 0,
            last_offset: None,
        });
    }

    /// Ends the open set: `se`, its last segment when an SE ended it (`closed`).
    fn end_set(&mut self, se: Option<Segment>, closed: bool, found: &mut Vec<Finding>) {
        let Some(set) = self.set.take() else { return };
        let OpenSet { mut result, group_open, id_findings, st_findings, validator, count, last_offset } = set;
        let mut fs = id_findings;
        fs.extend(st_findings);
        match se.filter(|_| closed) {
            Some(se) => {
                if se.element_str(1).parse::<usize>().ok() != Some(count) {
                    fs.push(self.finding(
                        "X12041",
                        se.offset,
                        "SE01",
                        count,
                        format!("SE01 does not give the number of segments from ST to SE ({count})"),
                    ));
                }
                if se.element_str(2) != result.control {
                    fs.push(self.finding("X12042", se.offset, "SE02", count, "SE02 does not match ST02".into()));
                }
            }
            None => {
                let end = last_offset.unwrap_or(result.offset);
                fs.push(self.finding("X12040", end, "SE", count, "the transaction set has no SE trailer".into()));
            }
        }
        if let Some(validator) = validator {
            let guide_findings = validator.finish(closed);
            fs.extend(guide_findings.into_iter().map(|f| self.apply_mode(f)));
            fs.sort_by_key(|f| f.segment_number);
        }
        found.extend(fs.iter().cloned());
        result.findings = fs;
        let open = self.interchange.as_mut().expect("set above");
        if !open.group_open {
            open.result.groups.push(GroupResult { offset: result.offset, ..GroupResult::default() });
            open.group_open = true;
        }
        open.result.groups.last_mut().expect("pushed above").sets.push(result);
        if !group_open {
            // The placeholder group closes with the set.
            open.group_open = false;
        }
    }

    fn isa_checks(&self, seg: &Segment, fs: &mut Vec<Finding>) {
        let offset = seg.offset;
        let el: Vec<&[u8]> = seg.elements().collect();
        let get = |n: usize| el.get(n - 1).copied().unwrap_or(b"");
        if el.len() != 16 || !el.iter().zip(crate::codec::ISA_WIDTHS).all(|(e, w)| e.len() == w) {
            fs.push(self.finding("X12002", offset, "ISA", 0, "the ISA elements do not have their fixed widths".into()));
        }
        let code_in = |n: usize, allowed: &[&[u8]]| allowed.contains(&get(n));
        for (n, allowed) in
            [(1, &[&b"00"[..], b"03"][..]), (3, &[b"00", b"01"]), (14, &[b"0", b"1"]), (15, &[b"P", b"T", b"I"])]
        {
            if !code_in(n, allowed) {
                fs.push(self.finding(
                    "X12010",
                    offset,
                    &format!("ISA{n:02}"),
                    0,
                    format!("ISA{n:02} is not one of its codes"),
                ));
            }
        }
        for n in [5, 7] {
            let v = get(n);
            if v.len() != 2 || !v.iter().all(u8::is_ascii_alphanumeric) {
                fs.push(self.finding(
                    "X12010",
                    offset,
                    &format!("ISA{n:02}"),
                    0,
                    format!("ISA{n:02} is not a 2-character qualifier"),
                ));
            }
        }
        if !valid_date(get(9), false) {
            fs.push(self.finding("X12011", offset, "ISA09", 0, "ISA09 is not a date (YYMMDD)".into()));
        }
        if !valid_time(get(10)) {
            fs.push(self.finding("X12012", offset, "ISA10", 0, "ISA10 is not a time (HHMM)".into()));
        }
        let version = get(12);
        if version.len() != 5 || !version.iter().all(u8::is_ascii_digit) {
            fs.push(self.finding("X12010", offset, "ISA12", 0, "ISA12 is not a 5-digit version".into()));
        } else if version < &b"00402"[..] && get(11) != b"U" {
            fs.push(self.finding("X12010", offset, "ISA11", 0, "ISA11 must be U before version 00402".into()));
        }
        let control = get(13);
        if control.len() != 9 || !control.iter().all(u8::is_ascii_digit) {
            fs.push(self.finding("X12013", offset, "ISA13", 0, "ISA13 is not a 9-digit control number".into()));
        }
    }
}

/// Splits and checks a whole stream, returning every interchange's result (the bytes outside
/// interchanges in results of their own). For callers that do not print findings as they go.
pub fn check_stream<R: std::io::Read>(reader: R, mode: Mode) -> std::io::Result<Vec<InterchangeResult>> {
    run_checker(reader, Checker::new(mode))
}

/// [`check_stream`] with implementation-guide validation ([`Checker::with_guides`]).
pub fn check_stream_with_guides<R: std::io::Read>(reader: R, mode: Mode) -> std::io::Result<Vec<InterchangeResult>> {
    run_checker(reader, Checker::with_guides(mode))
}

fn run_checker<R: std::io::Read>(reader: R, mut checker: Checker) -> std::io::Result<Vec<InterchangeResult>> {
    let mut end = 0;
    let mut out = Vec::new();
    for item in crate::split::Splitter::new(reader) {
        let item = item?;
        end = item.offset();
        checker.check(&item);
        out.extend(checker.take_done());
    }
    checker.finish(end);
    out.extend(checker.take_done());
    Ok(out)
}

/// GS element checks: `(code, position, message)`.
fn gs_checks(seg: &Segment, out: &mut Vec<(&'static str, &'static str, String)>) {
    let id = seg.element(1).unwrap_or(b"");
    if id.len() != 2 || !id.iter().all(u8::is_ascii_uppercase) {
        out.push(("X12033", "GS01", "GS01 is not a 2-letter functional identifier".into()));
    }
    // GS04 has a century from version 004010 on; before it, it is YYMMDD.
    let version = seg.element(8).unwrap_or(b"");
    let century = !(version.starts_with(b"002") || version.starts_with(b"003"));
    if !valid_date(seg.element(4).unwrap_or(b""), century) {
        let want = if century { "CCYYMMDD" } else { "YYMMDD before version 004010" };
        out.push(("X12011", "GS04", format!("GS04 is not a date ({want})")));
    }
    let time = seg.element(5).unwrap_or(b"");
    let hhmm = time.get(..4).unwrap_or(b"");
    let rest_ok = matches!(time.len(), 4 | 6 | 7 | 8) && time.iter().all(u8::is_ascii_digit);
    if !valid_time(hhmm) || !rest_ok || time.get(4..6).is_some_and(|s| s > &b"59"[..]) {
        out.push(("X12012", "GS05", "GS05 is not a time (HHMM, HHMMSS, HHMMSSD or HHMMSSDD)".into()));
    }
    let control = seg.element(6).unwrap_or(b"");
    if control.is_empty() || control.len() > 9 || !control.iter().all(u8::is_ascii_digit) {
        out.push(("X12013", "GS06", "GS06 is not a control number of 1 to 9 digits".into()));
    }
    if seg.element(8).unwrap_or(b"").is_empty() {
        out.push(("X12033", "GS08", "GS08 (version) is empty".into()));
    }
}

/// `YYMMDD` (or `CCYYMMDD` when `century`) naming a real calendar day.
pub fn valid_date(v: &[u8], century: bool) -> bool {
    let want = if century { 8 } else { 6 };
    if v.len() != want || !v.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |s: &[u8]| s.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    let year = if century { num(&v[..4]) } else { 2000 + num(&v[..2]) };
    let (month, day) = (num(&v[want - 4..want - 2]), num(&v[want - 2..]));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// `HHMM` with hours 00-23 and minutes 00-59.
pub fn valid_time(v: &[u8]) -> bool {
    v.len() == 4 && v.iter().all(u8::is_ascii_digit) && v[..2] <= b"23"[..] && v[2..] <= b"59"[..]
}

/// Every code a [`Finding`] can carry: `(code, default severity, title, explanation)`.
pub const CODES: &[(&str, Severity, &str, &str)] = &[
    (
        "X12002",
        Severity::Error,
        "The ISA elements do not have their fixed widths.",
        "ISA elements are fixed width (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1 characters; the segment is 106 bytes with its terminator). Many receivers find the delimiters by position, so pad the elements with spaces. Sluice still reads the delimiters by counting separators.",
    ),
    (
        "X12005",
        Severity::Error,
        "A segment is outside any transaction set.",
        "Between ST/SE pairs only GS, GE, IEA and TA1 may appear; this segment (or a GE/SE without its header, or an empty segment) is not part of any set.",
    ),
    (
        "X12010",
        Severity::Error,
        "An ISA element has an invalid value.",
        "ISA01 is 00 or 03, ISA03 00 or 01, ISA05 and ISA07 2-character qualifiers, ISA11 `U` before version 00402, ISA12 a 5-digit version, ISA14 0 or 1, ISA15 P, T or I.",
    ),
    (
        "X12011",
        Severity::Error,
        "An envelope date is not a date.",
        "ISA09 is YYMMDD and GS04 CCYYMMDD (YYMMDD in versions before 004010), naming a real calendar day.",
    ),
    (
        "X12012",
        Severity::Error,
        "An envelope time is not a time.",
        "ISA10 is HHMM; GS05 is HHMM, HHMMSS, HHMMSSD or HHMMSSDD (hours 00-23, minutes and seconds 00-59).",
    ),
    (
        "X12013",
        Severity::Error,
        "An envelope control number is malformed.",
        "ISA13 is exactly 9 digits; GS06 is 1 to 9 digits.",
    ),
    (
        "X12020",
        Severity::Error,
        "The interchange has no IEA trailer.",
        "The input ended, or another ISA started, before the IEA of this interchange.",
    ),
    (
        "X12021",
        Severity::Error,
        "IEA02 does not match ISA13.",
        "The interchange control number in the trailer must repeat the header's.",
    ),
    (
        "X12022",
        Severity::Error,
        "IEA01 is not the number of functional groups.",
        "IEA01 counts the GS/GE groups of the interchange.",
    ),
    (
        "X12030",
        Severity::Error,
        "A functional group has no GE trailer.",
        "Another GS, the IEA, or the end of the input came before the GE of this group.",
    ),
    (
        "X12031",
        Severity::Error,
        "GE02 does not match GS06.",
        "The group control number in the trailer must repeat the header's.",
    ),
    (
        "X12032",
        Severity::Error,
        "GE01 is not the number of transaction sets.",
        "GE01 counts the ST/SE sets of the group.",
    ),
    (
        "X12033",
        Severity::Error,
        "A GS element has an invalid value.",
        "GS01 is a 2-letter functional identifier code (HC, HP, FA, ...) and GS08 names the version (005010X222A1).",
    ),
    (
        "X12040",
        Severity::Error,
        "A transaction set has no SE trailer.",
        "Another ST, an envelope segment, or the end of the input came before the SE of this set.",
    ),
    (
        "X12041",
        Severity::Error,
        "SE01 is not the number of segments.",
        "SE01 counts the segments of the set, ST and SE included.",
    ),
    (
        "X12042",
        Severity::Error,
        "SE02 does not match ST02.",
        "The set control number in the trailer must repeat the header's.",
    ),
    (
        "X12043",
        Severity::Error,
        "A transaction set is outside any functional group.",
        "ST must come after a GS and before its GE.",
    ),
    ("X12044", Severity::Error, "ST02 is malformed.", "The transaction set control number has 4 to 9 characters."),
    (
        "X12045",
        Severity::Warning,
        "ST03 differs from GS08.",
        "In 5010, ST03 names the implementation guide and should equal GS08 of its group.",
    ),
    (
        "X12046",
        Severity::Error,
        "A segment id is malformed.",
        "Segment ids are 2 or 3 uppercase letters or digits starting with a letter. Often the segment terminator or element separator is wrong, or a line was broken inside a segment.",
    ),
    (
        "X12047",
        Severity::Warning,
        "A control number is used twice.",
        "GS06 must be unique within its interchange and ST02 within its group; a receiver may treat the second as a duplicate.",
    ),
    (
        "X12050",
        Severity::Info,
        "An interchange acknowledgment (TA1) was received.",
        "TA1 segments may appear after the ISA or between groups; they acknowledge another interchange and are not part of any set.",
    ),
    (
        "X12051",
        Severity::Info,
        "No bundled implementation guide fits the transaction set.",
        "The guide is chosen from ST03 (5010) or GS08 (4010 has no ST03), and must be for ST01; the finding names what was found and the bundled guides (5010 837P 005010X222A1, also read for 005010X222A2; 837I 005010X223A2, also for 005010X223A3; 837D 005010X224A2; 835 005010X221A1; 270 and 271 005010X279A1; 276 and 277 005010X212; 834 005010X220A1; 999 005010X231A1; 997 005010X230; 4010 837P 004010X098A1, 837I 004010X096A1, 835 004010X091A1, 270 and 271 004010X092A1, 276 and 277 004010X093A1, 834 004010X095A1 and the 4010 997). The set's envelopes are still checked; its loops and elements are not.",
    ),
    (
        "X12052",
        Severity::Error,
        "A segment is not in the implementation guide.",
        "The guide has no segment with this id anywhere in the transaction set (IK304 6). Often a segment of another transaction set, a typing error in the id, or a segment the partner adds on its own.",
    ),
    (
        "X12053",
        Severity::Error,
        "A segment is not expected where it is.",
        "The guide has this segment, but not here: out of order in its loop (IK304 7) or in a loop where it does not belong, or with a qualifier no place here accepts (IK304 2). The message names the loop the segment was read in; check the order of segments against the guide.",
    ),
    (
        "X12054",
        Severity::Error,
        "A required segment or loop is missing.",
        "The loop named in the message ended (another loop, segment or SE came) before a segment or loop the guide requires in it (IK304 3).",
    ),
    (
        "X12055",
        Severity::Error,
        "A segment repeats too often.",
        "The guide allows this segment at most the number of times the message says in its loop (IK304 5).",
    ),
    (
        "X12056",
        Severity::Error,
        "A loop repeats too often.",
        "The guide allows this loop at most the number of times the message says (IK304 4): for example 100 claims (2300) per subscriber or patient, 50 service lines (2400) per claim in the 837P.",
    ),
    (
        "X12057",
        Severity::Error,
        "A required element is missing.",
        "The guide requires this element (or component of a composite) where the segment is (IK403 1).",
    ),
    (
        "X12058",
        Severity::Error,
        "An element the guide does not use is present.",
        "The implementation guide marks this element (or component) as not used at this place (IK403 I10). Leave it empty.",
    ),
    (
        "X12059",
        Severity::Error,
        "Too many elements or components.",
        "The segment has more elements than its definition (IK403 3), or an element has more components than its composite, or a simple element holds the component separator (IK403 13).",
    ),
    (
        "X12060",
        Severity::Error,
        "An element is too short or too long.",
        "Each element has a minimum and maximum length (IK403 4 and 5); numbers count their digits only (no sign, no decimal point).",
    ),
    (
        "X12061",
        Severity::Error,
        "An element has characters its type does not allow.",
        "N0/N2 elements are whole numbers (an optional leading minus and digits), R elements decimal numbers (digits and at most one point); text holds no control characters and is UTF-8 (IK403 6).",
    ),
    (
        "X12062",
        Severity::Error,
        "An element is not one of the guide's codes.",
        "At this place the implementation guide allows only the codes it lists for this element (IK403 7): qualifiers such as NM101, REF01 or DTP01, and codes such as CLM05-3 or CLP02.",
    ),
    (
        "X12063",
        Severity::Error,
        "An element is not a date.",
        "DT elements are CCYYMMDD naming a real day; DTP03 follows DTP02 and DMG02 follows DMG01: D8 a date, RD8 two dates joined by a hyphen (IK403 8).",
    ),
    (
        "X12064",
        Severity::Error,
        "An element is not a time.",
        "TM elements are HHMM, HHMMSS, HHMMSSD or HHMMSSDD with hours 00-23 and minutes and seconds 00-59 (IK403 9).",
    ),
    (
        "X12065",
        Severity::Error,
        "An element repeats where the guide allows one value, or more often than it allows.",
        "The element holds the repetition separator (ISA11), but the guide allows a single value here, or more values than the element's maximum repeats (99 for EQ01 and EB03 of the 270/271) (IK403 12).",
    ),
    (
        "X12066",
        Severity::Error,
        "The HL hierarchy is broken.",
        "HL01 is unique within the transaction set; HL02 names an earlier HL, of the level the guide puts above this one (in the 837: a subscriber 2000B under a billing provider 2000A, a patient 2000C under a subscriber 2000B).",
    ),
    (
        "X12067",
        Severity::Warning,
        "GS01 does not fit the transaction set.",
        "The functional group's identifier (GS01) is not the one the implementation guide names for this transaction set (HC for an 837, HP for an 835, HS for a 270, HB for a 271, HR for a 276, HN for a 277, BE for an 834, FA for a 999).",
    ),
    (
        "X12068",
        Severity::Error,
        "The interchange sender is not a configured trading partner.",
        "With a trading-partner profile (`sluice validate --profile`, a source's `profile`), ISA06 (and ISA05 where the partner names its `qualifier`) must be one of the partners' ids, unless the profile says `unknown_partners: accept`. The interchange is rejected (TA1 note 006), and every set in it. The message lists the configured partners, not what was sent.",
    ),
    (
        "X12069",
        Severity::Error,
        "The trading partner is not configured for this transaction set.",
        "ST01 is not in the partner's `transaction_sets`; the set is rejected (IK5/AK5 code 1, transaction set not supported). Add the set to the partner in the profile if it is expected.",
    ),
    (
        "X12070",
        Severity::Error,
        "GS08 is not the trading partner's version.",
        "The partner's `version` is `5010` (any GS08 starting 005010), `4010` (004010...) or one full version (005010X222A1); the group is rejected (AK905 2, version not supported), and its sets.",
    ),
    (
        "X12071",
        Severity::Error,
        "GS02 is not the trading partner's application sender code.",
        "The partner's `gs_id` names the GS02 its groups carry; a group with another GS02 is rejected, and its sets.",
    ),
];
