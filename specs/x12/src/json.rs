//! The JSON shape of one transaction set, as printed by `sluice parse --format x12` (one line
//! per set):
//!
//! ```json
//! {"offset": 106, "interchange_control": "000000001", "group_control": "1",
//!  "functional_id": "HC", "version": "005010X222A1", "set_id": "837", "set_control": "0001",
//!  "closed": true, "segments": [["ST", "837", "0001", "005010X222A1"], ["CLM", "A1", "100", "", "", ["11", "B", "1"]]],
//!  "guide": "005010X222A1", "loops": ["", "2300"]}
//! ```
//!
//! Each segment is a list: its id, then its elements in order (element 01 first). An element
//! holding the component separator is a list of its components; one holding the repetition
//! separator (5010) is a list of repetitions, each a string or a list of components. Bytes that
//! are not UTF-8 are replaced (U+FFFD). Trailing empty elements are kept as `""`.
//!
//! When a bundled implementation guide fits the set (chosen from the envelopes as validation
//! chooses it, [`crate::guide::select`]), `guide` names it as a mapping would
//! (`005010X212/277` where two guides share an id) and `loops` gives, for each segment in
//! order, the loop the guide places it in (`""` for the set's own header and trailer; a
//! segment the guide has no place for gets the loop it came in). Without a fitting guide both
//! keys are absent. With a trading partner ([`set_to_json_for`]), its copy of the guide places
//! the segments, so the segments and loops its overlays add get their loops (`2310Z`).

use serde_json::{Value, json};

use crate::codec::{Delimiters, Segment};
use crate::guide::{Selector, select};
use crate::loops::identify;
use crate::partner::Partner;
use crate::split::RawSet;

/// Where a set sits: the control numbers and version of its envelopes.
#[derive(Clone, Debug, Default)]
pub struct SetContext<'a> {
    pub interchange_control: &'a str,
    pub group_control: &'a str,
    pub functional_id: &'a str,
    pub version: &'a str,
    /// ISA12 (`00501`), named when no guide fits.
    pub isa12: &'a str,
}

/// The JSON object of one set.
pub fn set_to_json(set: &RawSet, ctx: &SetContext) -> Value {
    set_to_json_for(set, ctx, None)
}

/// [`set_to_json`], its loops placed in `partner`'s copy of the guide when it overlays it (so
/// the segments and loops its overlays add are placed, not unexpected).
pub fn set_to_json_for(set: &RawSet, ctx: &SetContext, partner: Option<&Partner>) -> Value {
    let segments: Vec<Value> = set.segments().map(|s| segment_to_json(&s)).collect();
    let st = set.segments().next();
    let el = |n| st.map(|s| s.element_str(n).to_string()).unwrap_or_default();
    let mut out = json!({
        "offset": set.offset,
        "interchange_control": ctx.interchange_control,
        "group_control": ctx.group_control,
        "functional_id": ctx.functional_id,
        "version": ctx.version,
        "set_id": el(1),
        "set_control": el(2),
        "closed": set.closed,
        "segments": segments,
    });
    if let Some((guide, loops)) = placement(set, ctx, &el(1), &el(3), partner) {
        out["guide"] = Value::String(guide);
        out["loops"] = Value::Array(loops.into_iter().map(Value::String).collect());
    }
    out
}

/// The schema name of the guide that fits the set, and the loop of each of its segments.
fn placement(
    set: &RawSet,
    ctx: &SetContext,
    st01: &str,
    st03: &str,
    partner: Option<&Partner>,
) -> Option<(String, Vec<String>)> {
    let selector = Selector { isa12: ctx.isa12, gs01: ctx.functional_id, gs08: ctx.version, st01, st03 };
    let bundled = select(&selector).ok()?;
    let guide = partner.map_or(bundled, |p| p.guide_for(bundled));
    let id = identify(guide, set.segments().collect(), set.closed);
    let loops = (0..id.segments.len()).map(|i| id.loop_of(i).to_string()).collect();
    Some((bundled.schema_name(), loops))
}

/// One segment as a list: id, then elements.
pub fn segment_to_json(seg: &Segment) -> Value {
    let mut out = vec![Value::String(String::from_utf8_lossy(seg.id()).into_owned())];
    out.extend(seg.elements().map(|e| element_to_json(e, &seg.delimiters)));
    Value::Array(out)
}

fn element_to_json(e: &[u8], d: &Delimiters) -> Value {
    if let Some(r) = d.repetition
        && e.contains(&r)
    {
        return Value::Array(e.split(|&b| b == r).map(|rep| components(rep, d)).collect());
    }
    components(e, d)
}

fn components(e: &[u8], d: &Delimiters) -> Value {
    if e.contains(&d.component) { Value::Array(e.split(|&b| b == d.component).map(text).collect()) } else { text(e) }
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}
