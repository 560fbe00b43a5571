//! Validation of one transaction set against its implementation guide: choose the guide from
//! the envelopes ([`crate::guide::select`]), place every segment in its loop
//! ([`crate::loops::Identifier`]), and check each segment's elements as it is placed
//! ([`crate::elements::check_segment`]).
//!
//! Invariants: total on any input; findings are in segment order and never hold a value of
//! the data (guide identifiers from the envelopes, such as ST01 or GS08, may be named); a set
//! without a bundled guide gets one `X12051` info finding and no other guide finding. Beside
//! the set, memory holds the open loops, the set's HL ids and the findings: no placement per
//! segment, no segment list (a set of 20,000 claims is checked in about its own size).

use crate::codec::Segment;
use crate::envelope::{Finding, default_severity};
use crate::guide::{self, Selector};
use crate::loops::Identifier;
use crate::split::RawSet;

/// Validates `set`; returns the findings, at their default severities (the caller applies
/// strict or lenient mode).
pub fn validate_set(set: &RawSet, selector: &Selector) -> Vec<Finding> {
    validate_set_for(set, selector, None)
}

/// [`validate_set`] against `partner`'s copy of the guide when it overlays it.
pub fn validate_set_for(set: &RawSet, selector: &Selector, partner: Option<&crate::partner::Partner>) -> Vec<Finding> {
    let at = set.segments().next().map_or(set.offset, |s| s.offset);
    let mut validator = SetValidator::new(selector, partner, at, set.closed);
    for seg in set.segments() {
        validator.push(&seg);
    }
    validator.finish(set.closed)
}

/// The validation of one set fed a segment at a time (ST first), for a set read in parts: what
/// [`validate_set_for`] does over a whole set.
pub struct SetValidator {
    /// The identifier of the set's guide; `None` when no bundled guide fits.
    identifier: Option<Identifier>,
    /// Selection and structural findings.
    findings: Vec<Finding>,
    /// Element findings, kept apart: after the structural ones of the same segment once sorted
    /// (the sort is stable).
    element_findings: Vec<Finding>,
    /// Segments pushed.
    count: usize,
}

impl SetValidator {
    /// Chooses the guide (`selector`, `partner`'s copy when it overlays it); `at`: the offset of
    /// the set's ST; `closed`: whether an SE is expected to end it (see
    /// [`Identifier::ended`] when that changes).
    pub fn new(selector: &Selector, partner: Option<&crate::partner::Partner>, at: usize, closed: bool) -> Self {
        let guide = match guide::select(selector) {
            Ok(g) => partner.map_or(g, |p| p.guide_for(g)),
            Err(guide::Unknown(message)) => {
                let f = Finding {
                    severity: default_severity("X12051"),
                    code: "X12051",
                    offset: at,
                    position: "ST01".into(),
                    segment_number: 1,
                    message,
                    guide: None,
                };
                return SetValidator { identifier: None, findings: vec![f], element_findings: Vec::new(), count: 0 };
            }
        };
        let mut findings = Vec::new();
        if guide::gs01_mismatch(guide, selector.gs01) {
            findings.push(Finding {
                severity: default_severity("X12067"),
                code: "X12067",
                offset: at,
                position: "GS01".into(),
                segment_number: 1,
                message: format!("GS01 should be {} for a {} ({})", guide.functional_id, guide.set_id, guide.id),
                guide: None,
            });
        }
        let strict_order = partner.is_none_or(|p| p.processing.strict_segment_order);
        let identifier = Identifier::new(guide, closed, strict_order, false);
        SetValidator { identifier: Some(identifier), findings, element_findings: Vec::new(), count: 0 }
    }

    /// Places and checks the set's next segment.
    pub fn push(&mut self, seg: &Segment) {
        self.count += 1;
        let Some(identifier) = self.identifier.as_mut() else { return };
        let placed = identifier.push(seg);
        if let Some(use_) = placed.use_ {
            crate::elements::check_segment(seg, use_, self.count, &placed.loop_def.id, &mut self.element_findings);
        }
    }

    /// The set's findings, in segment order; `closed`: it ended with its SE.
    pub fn finish(mut self, closed: bool) -> Vec<Finding> {
        if let Some(mut identifier) = self.identifier.take() {
            identifier.ended(closed);
            self.findings.extend(identifier.finish().findings);
        }
        self.findings.append(&mut self.element_findings);
        self.findings.sort_by_key(|f| f.segment_number);
        self.findings
    }
}
