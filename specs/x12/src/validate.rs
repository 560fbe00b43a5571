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
    let st = set.segments().next();
    let at = st.map_or(set.offset, |s| s.offset);
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
            return vec![f];
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
    let mut identifier = Identifier::new(guide, set.closed, strict_order, false);
    // Element findings after the structural ones of the same segment, as the sort below keeps
    // them (it is stable).
    let mut element_findings = Vec::new();
    for (i, seg) in set.segments().enumerate() {
        let placed = identifier.push(&seg);
        if let Some(use_) = placed.use_ {
            crate::elements::check_segment(&seg, use_, i + 1, &placed.loop_def.id, &mut element_findings);
        }
    }
    findings.extend(identifier.finish().findings);
    findings.extend(element_findings);
    findings.sort_by_key(|f| f.segment_number);
    findings
}
