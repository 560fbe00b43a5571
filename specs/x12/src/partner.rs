//! Trading partners: who may send what, how strictly their envelopes are read, and their
//! implementation-guide overlays (a profile's `partners:`, checked by the compiler, given to
//! [`crate::envelope::Checker::with_partners`]).
//!
//! - A partner is identified by the interchange sender: ISA06 (and ISA05 when the profile says
//!   which qualifier); [`Partners::identify`].
//! - Its envelopes are checked against what it is configured for: GS02 (when `gs_id` is
//!   given), GS08 against its `version` ([`version_accepts`]), ST01 against its transaction
//!   sets. The findings ([`UNKNOWN_PARTNER`], [`SET_NOT_CONFIGURED`], [`WRONG_VERSION`],
//!   [`WRONG_GS02`]) name positions and the profile's partner names and ids, never what the
//!   sender wrote (it is not one of the profile's values).
//! - `validate_isa: false`, `validate_gs: false`, `strict_segment_order: false` turn the errors
//!   of one class ([`check_class`]) into warnings, so acknowledgments and verdicts, which are
//!   built from severities, follow.
//! - Overlays ([`Overlay`]) change a copy of a bundled guide: usage of a loop, segment or
//!   element, element lengths, added codes ([`overlaid`]). A copy is made once per process per
//!   distinct (guide, overlays) and lives as long as the process (loop identification holds
//!   guides as `'static`): the number of copies is bounded by the distinct overlays written in
//!   the profiles loaded, not by the data read.
//!
//! Invariants: total on any input (an overlay that does not fit its guide is an `Err`, never a
//! panic); the partner checks are never downgraded by a `processing` flag or by lenient mode
//! (they say who may send, not how well).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::envelope::Finding;
use crate::guide::{ElementUse, Guide, Loop, Node, SegmentUse, Usage};

/// ISA05/ISA06 is not a configured partner (`unknown_partners: reject`).
pub const UNKNOWN_PARTNER: &str = "X12068";
/// ST01 is not one of the partner's transaction sets.
pub const SET_NOT_CONFIGURED: &str = "X12069";
/// GS08 is not the partner's version.
pub const WRONG_VERSION: &str = "X12070";
/// GS02 is not the partner's application sender code (`gs_id`).
pub const WRONG_GS02: &str = "X12071";

/// Which checks are made errors (`true`, the default) or warnings (`false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Processing {
    pub validate_isa: bool,
    pub validate_gs: bool,
    pub strict_segment_order: bool,
}

impl Default for Processing {
    fn default() -> Self {
        Processing { validate_isa: true, validate_gs: true, strict_segment_order: true }
    }
}

/// The delimiters of what Sluice writes to a partner (its acknowledgments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputDelimiters {
    pub element: u8,
    pub component: u8,
    /// ISA11 from 00501 on (4010 acknowledgments write `U` there).
    pub repetition: u8,
    pub segment: u8,
    /// A line feed after each segment terminator.
    pub line_break: bool,
}

impl Default for OutputDelimiters {
    fn default() -> Self {
        OutputDelimiters { element: b'*', component: b':', repetition: b'^', segment: b'~', line_break: true }
    }
}

impl OutputDelimiters {
    /// Why these delimiters cannot be written (`None`: they can): each a printable ASCII
    /// character that is not a letter, digit or space, nor one of `-`, `.`, `_` (which echoed
    /// identifiers may hold), and all four distinct.
    pub fn problem(&self) -> Option<String> {
        let all = [
            ("element", self.element),
            ("component", self.component),
            ("repetition", self.repetition),
            ("segment", self.segment),
        ];
        for (name, c) in all {
            if let Some(why) = delimiter_problem(c) {
                return Some(format!("the {name} separator {why}"));
            }
        }
        for (i, (a, x)) in all.iter().enumerate() {
            if let Some((b, _)) = all[i + 1..].iter().find(|(_, y)| y == x) {
                return Some(format!("the {a} and {b} separators are the same character"));
            }
        }
        None
    }
}

/// Why one byte cannot be a delimiter of an acknowledgment (`None`: it can).
pub fn delimiter_problem(c: u8) -> Option<&'static str> {
    if !c.is_ascii_graphic() {
        Some("must be a printable ASCII character other than space")
    } else if c.is_ascii_alphanumeric() {
        Some("must not be a letter or digit (they occur in the data)")
    } else if matches!(c, b'-' | b'.' | b'_') {
        Some("must not be `-`, `.` or `_` (identifiers echoed in acknowledgments hold them)")
    } else {
        None
    }
}

/// One configured partner.
#[derive(Clone, Debug)]
pub struct Partner {
    pub name: String,
    /// ISA06 of what the partner sends (trimmed).
    pub id: String,
    /// ISA05, when the profile names it; any qualifier otherwise.
    pub qualifier: Option<String>,
    /// GS02 of what the partner sends, when the profile names it.
    pub gs_id: Option<String>,
    /// ST01 values the partner sends (`837`, `835`).
    pub transaction_sets: Vec<String>,
    /// `5010`, `4010`, or a full GS08 (`005010X222A1`).
    pub version: String,
    pub processing: Processing,
    /// The partner's guides with its overlays applied (only those it overlays).
    pub guides: Vec<&'static Guide>,
    pub delimiters: Option<OutputDelimiters>,
}

impl Partner {
    /// The partner's copy of `guide` (overlaid), or `guide` itself.
    pub fn guide_for(&self, guide: &'static Guide) -> &'static Guide {
        self.guides.iter().copied().find(|g| g.id == guide.id && g.set_id == guide.set_id).unwrap_or(guide)
    }
}

/// The partners of one profile.
#[derive(Clone, Debug, Default)]
pub struct Partners {
    pub partners: Vec<Partner>,
    /// `unknown_partners: accept`: interchanges of other senders are read with the defaults.
    pub accept_unknown: bool,
}

impl Partners {
    /// The partner sending an interchange with this ISA05 and ISA06 (both trimmed).
    pub fn identify(&self, isa05: &str, isa06: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.id == isa06 && p.qualifier.as_deref().is_none_or(|q| q == isa05))
    }

    pub fn by_name(&self, name: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.name == name)
    }
}

/// `version` accepts GS08 `gs08`: `5010` any `005010...`, `4010` any `004010...`, a full
/// version only itself.
pub fn version_accepts(version: &str, gs08: &str) -> bool {
    match edition_prefix(version) {
        Some(prefix) => gs08.starts_with(prefix),
        None => version == gs08,
    }
}

/// The GS08 prefix of an edition written `5010` or `4010` (`None` for a full version).
pub fn edition_prefix(version: &str) -> Option<&'static str> {
    match version {
        "5010" => Some("005010"),
        "4010" => Some("004010"),
        _ => None,
    }
}

/// A class of checks a `processing` flag turns into warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckClass {
    /// ISA/IEA (`validate_isa`): widths, codes, dates, times, control numbers, counts.
    Interchange,
    /// GS/GE (`validate_gs`).
    Group,
    /// A segment out of order in its loop (`strict_segment_order`; IK304 7).
    SegmentOrder,
}

/// The class of a finding a `processing` flag governs (`None`: no flag does).
pub fn check_class(f: &Finding) -> Option<CheckClass> {
    let envelope = |p: &str| {
        if p.starts_with("ISA") || p.starts_with("IEA") {
            Some(CheckClass::Interchange)
        } else if p.starts_with("GS") || p.starts_with("GE") {
            Some(CheckClass::Group)
        } else {
            None
        }
    };
    match f.code {
        "X12002" | "X12010" | "X12020" | "X12021" | "X12022" => Some(CheckClass::Interchange),
        "X12030" | "X12031" | "X12032" | "X12033" | "X12067" => Some(CheckClass::Group),
        "X12011" | "X12012" | "X12013" | "X12047" => envelope(&f.position),
        "X12053" => f.guide.as_ref().filter(|g| g.segment_code == "7").map(|_| CheckClass::SegmentOrder),
        _ => None,
    }
}

impl Processing {
    /// Whether a finding of this class stays an error.
    pub fn enforces(&self, class: CheckClass) -> bool {
        match class {
            CheckClass::Interchange => self.validate_isa,
            CheckClass::Group => self.validate_gs,
            CheckClass::SegmentOrder => self.strict_segment_order,
        }
    }
}

/// One overlay: what changes at one place of a guide.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Overlay {
    /// `LOOP[/LOOP...]` a loop; `[LOOP/...]SEG[(QUAL)]` a segment; `[LOOP/...]SEG[(QUAL)]-EE[-CC]`
    /// an element or component. Every loop with the id (at any depth below the step before)
    /// and every segment use with the id (and qualifier) in it is changed.
    pub path: String,
    pub usage: Option<Usage>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub add_codes: Vec<String>,
}

/// What an overlay path addresses.
enum Target {
    Loop,
    Segment { id: String, qualifier: Option<String> },
    Element { id: String, qualifier: Option<String>, element: usize, component: usize },
}

fn parse_target(path: &str) -> Result<(Vec<String>, Target), String> {
    let steps: Vec<&str> = path.split('/').collect();
    let (last, loops) = steps.split_last().ok_or("an empty path")?;
    let loop_id =
        |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let mut ids = Vec::new();
    for s in loops {
        if !loop_id(s) || !s.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("`{s}` is not a loop id (such as 2300 or 2010BA)"));
        }
        ids.push(s.to_string());
    }
    if last.starts_with(|c: char| c.is_ascii_digit()) {
        if !loop_id(last) {
            return Err(format!("`{last}` is not a loop id (such as 2300 or 2010BA)"));
        }
        ids.push(last.to_string());
        return Ok((ids, Target::Loop));
    }
    if last.contains('[') {
        return Err("an overlay changes every occurrence: write no index (`[*]`, `[2]`)".into());
    }
    let (head, element) = match last.split_once('-') {
        Some((h, _)) => (h, true),
        None => (*last, false),
    };
    let (id, qualifier) = match head.split_once('(') {
        Some((id, q)) => {
            let q = q.strip_suffix(')').filter(|q| !q.is_empty()).ok_or("a qualifier is written `REF(EI)`")?;
            (id, Some(q.to_string()))
        }
        None => (head, None),
    };
    if !crate::codec::is_segment_id(id.as_bytes()) {
        return Err(format!("`{id}` is not a segment id (2 or 3 upper-case letters or digits)"));
    }
    if !element {
        return Ok((ids, Target::Segment { id: id.to_string(), qualifier }));
    }
    let p = crate::path::parse(last).map_err(|e| e.message)?;
    Ok((ids, Target::Element { id: id.to_string(), qualifier, element: p.element, component: p.component }))
}

/// Every loop reached by `steps` from `at` (each step at any depth below the one before).
fn loops_mut<'g>(at: &'g mut Loop, steps: &[String], out: &mut Vec<&'g mut Loop>) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(at);
        return;
    };
    fn find_all<'g>(l: &'g mut Loop, id: &str, out: &mut Vec<&'g mut Loop>) {
        for c in &mut l.children {
            if let Node::Loop(child) = c {
                if child.id == id {
                    out.push(child);
                } else {
                    find_all(child, id, out);
                }
            }
        }
    }
    let mut found = Vec::new();
    find_all(at, first, &mut found);
    for l in found {
        loops_mut(l, rest, out);
    }
}

fn segment_fits(s: &SegmentUse, id: &str, qualifier: Option<&str>) -> bool {
    s.id == id && qualifier.is_none_or(|q| s.key.as_ref().is_some_and(|(_, _, codes)| codes.iter().any(|c| c == q)))
}

/// Applies `overlays` in order to a copy of `guide`. `Err((index, why))` names the first
/// overlay that does not fit.
pub fn apply(guide: &Guide, overlays: &[Overlay]) -> Result<Guide, (usize, String)> {
    let mut g = guide.clone();
    for (i, o) in overlays.iter().enumerate() {
        apply_one(&mut g, o).map_err(|e| (i, e))?;
    }
    Ok(g)
}

fn apply_one(g: &mut Guide, o: &Overlay) -> Result<(), String> {
    let (steps, target) = parse_target(&o.path)?;
    let guide_id = g.id.clone();
    let mut loops = Vec::new();
    loops_mut(&mut g.root, &steps, &mut loops);
    if loops.is_empty() {
        return Err(format!("guide {guide_id} has no loop {}", steps.join("/")));
    }
    let element_change = o.min_length.is_some() || o.max_length.is_some() || !o.add_codes.is_empty();
    match target {
        Target::Loop => {
            if element_change {
                return Err("a loop takes only `usage`; lengths and codes are for elements".into());
            }
            for l in loops {
                if let Some(u) = o.usage {
                    l.usage = u;
                }
            }
        }
        Target::Segment { id, qualifier } => {
            if element_change {
                return Err("a segment takes only `usage`; lengths and codes are for elements".into());
            }
            let mut n = 0;
            for l in loops {
                for c in &mut l.children {
                    if let Node::Segment(s) = c
                        && segment_fits(s, &id, qualifier.as_deref())
                    {
                        n += 1;
                        if let Some(u) = o.usage {
                            s.usage = u;
                        }
                    }
                }
            }
            if n == 0 {
                return Err(no_segment(&steps, &id, qualifier.as_deref()));
            }
        }
        Target::Element { id, qualifier, element, component } => {
            let mut n = 0;
            for l in loops {
                for c in &mut l.children {
                    let Node::Segment(s) = c else { continue };
                    if !segment_fits(s, &id, qualifier.as_deref()) {
                        continue;
                    }
                    let is_key = s.key.as_ref().is_some_and(|(e, k, _)| *e == element && *k == component);
                    let Some(e) = s.elements.get_mut(element - 1) else {
                        return Err(format!("{id} has no element {element:02}"));
                    };
                    if component > 0 && e.usage == Usage::NotUsed && o.usage.is_some_and(|u| u != Usage::NotUsed) {
                        // A component is used only inside a used composite.
                        e.usage = Usage::Situational;
                    }
                    let t: &mut ElementUse = if component == 0 {
                        e
                    } else {
                        e.components
                            .get_mut(component - 1)
                            .ok_or_else(|| format!("{id}{element:02} has no component {component}"))?
                    };
                    if is_key && o.usage.is_some_and(|u| u != Usage::Required) {
                        return Err(format!(
                            "{id}{element:02} selects where the segment belongs (its qualifier): it stays required"
                        ));
                    }
                    change_element(t, o)?;
                    n += 1;
                }
            }
            if n == 0 {
                return Err(no_segment(&steps, &id, qualifier.as_deref()));
            }
        }
    }
    Ok(())
}

fn no_segment(steps: &[String], id: &str, qualifier: Option<&str>) -> String {
    let here = if steps.is_empty() { "the set level".to_string() } else { format!("loop {}", steps.join("/")) };
    match qualifier {
        Some(q) => format!("{here} has no segment {id} with the qualifier {q}"),
        None => format!("{here} has no segment {id}"),
    }
}

fn change_element(t: &mut ElementUse, o: &Overlay) -> Result<(), String> {
    if let Some(u) = o.usage {
        t.usage = u;
    }
    let (min, max) = (o.min_length.unwrap_or(t.min), o.max_length.unwrap_or(t.max));
    if min > max || max == 0 {
        return Err(format!(
            "the lengths would be {min} to {max}: the minimum must not exceed the maximum, which is at least 1"
        ));
    }
    t.min = min;
    t.max = max;
    if !o.add_codes.is_empty() {
        let Some(codes) = &t.codes else {
            return Err(
                "the guide lists no codes for this element (any value of its type is accepted): nothing to add to"
                    .into(),
            );
        };
        let mut all: Vec<String> = codes.as_ref().clone();
        for c in &o.add_codes {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        t.codes = Some(Arc::new(all));
    }
    Ok(())
}

/// `guide` with `overlays` applied, made once per process per distinct pair (see the module
/// docs for why it lives as long as the process).
pub fn overlaid(guide: &'static Guide, overlays: &[Overlay]) -> Result<&'static Guide, (usize, String)> {
    if overlays.is_empty() {
        return Ok(guide);
    }
    type Cache = Mutex<HashMap<(String, String, Vec<Overlay>), &'static Guide>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (guide.id.clone(), guide.set_id.clone(), overlays.to_vec());
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(g) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(g);
    }
    let made: &'static Guide = Box::leak(Box::new(apply(guide, overlays)?));
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    Ok(*map.entry(key).or_insert(made))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guide::by_id;

    fn element<'g>(g: &'g Guide, loop_id: &str, seg: &str, n: usize) -> &'g ElementUse {
        let l = g.root.find(loop_id).unwrap();
        let s = l
            .children
            .iter()
            .find_map(|c| match c {
                Node::Segment(s) if s.id == seg => Some(s),
                _ => None,
            })
            .unwrap();
        &s.elements[n - 1]
    }

    #[test]
    fn overlays_change_a_copy() {
        let base = by_id("005010X222A1").unwrap();
        let o = vec![
            Overlay { path: "2300/CLM-01".into(), usage: Some(Usage::Situational), ..Overlay::default() },
            Overlay { path: "2300/CLM-01".into(), max_length: Some(10), ..Overlay::default() },
            Overlay { path: "2010BA/NM1-08".into(), add_codes: vec!["ZZ".into()], ..Overlay::default() },
            Overlay { path: "2010BA".into(), usage: Some(Usage::Situational), ..Overlay::default() },
        ];
        let g = apply(base, &o).unwrap();
        let clm01 = element(&g, "2300", "CLM", 1);
        assert_eq!((clm01.usage, clm01.max), (Usage::Situational, 10));
        assert_eq!(element(base, "2300", "CLM", 1).usage, Usage::Required, "the bundled guide is unchanged");
        assert!(element(&g, "2010BA", "NM1", 8).codes.as_ref().unwrap().iter().any(|c| c == "ZZ"));
        assert_eq!(g.root.find("2010BA").unwrap().usage, Usage::Situational);
        // Both places of 2300 (under 2000B and 2000C) change.
        let c = g.root.find("2000C").unwrap().find("2300").unwrap().trigger().unwrap();
        assert_eq!(c.elements[0].usage, Usage::Situational);
        let again = overlaid(base, &o).unwrap();
        assert!(std::ptr::eq(again, overlaid(base, &o).unwrap()), "made once");
    }

    #[test]
    fn overlays_that_do_not_fit_say_why() {
        let base = by_id("005010X222A1").unwrap();
        let bad = |path: &str, o: Overlay| apply(base, &[Overlay { path: path.into(), ..o }]).unwrap_err().1;
        assert!(bad("2999/CLM-01", Overlay::default()).contains("no loop 2999"));
        assert!(bad("2300/XYZ-01", Overlay::default()).contains("no segment XYZ"));
        assert!(bad("2300/CLM-99", Overlay::default()).contains("no element 99"));
        assert!(bad("2300/CLM-01", Overlay { add_codes: vec!["X".into()], ..Overlay::default() }).contains("no codes"));
        assert!(
            bad("2300/CLM-01", Overlay { min_length: Some(5), max_length: Some(2), ..Overlay::default() })
                .contains("minimum")
        );
        assert!(
            bad("2010BA/NM1-01", Overlay { usage: Some(Usage::Situational), ..Overlay::default() })
                .contains("stays required")
        );
        assert!(bad("2300[2]/CLM-01", Overlay::default()).contains("loop id"));
    }

    proptest::proptest! {
        /// Overlay paths and changes as a user might write them, right or wrong: `apply` never
        /// panics, and what it accepts leaves the bundled guide unchanged.
        #[test]
        fn any_overlay_is_applied_or_refused_without_panic(
            path in "([0-9]{4}[A-E]?/){0,2}(CLM|NM1|REF|HI|SV1|DTP|ST|XX)?(\\([A-Z0-9]{1,3}\\))?(-[0-9]{1,2}(-[0-9])?)?",
            junk in "[ -~]{0,12}",
            use_junk in proptest::bool::ANY,
            usage in proptest::option::of(0u8..3),
            min in proptest::option::of(0usize..40),
            max in proptest::option::of(0usize..40),
            codes in proptest::collection::vec("[A-Z0-9]{1,3}", 0..3),
        ) {
            let base = by_id("005010X222A1").unwrap();
            let before = base.clone();
            let usage = usage.map(|u| [Usage::Required, Usage::Situational, Usage::NotUsed][u as usize]);
            let path = if use_junk { junk } else { path };
            let o = Overlay { path, usage, min_length: min, max_length: max, add_codes: codes };
            if let Ok(g) = apply(base, std::slice::from_ref(&o)) {
                proptest::prop_assert_eq!(&g.id, &base.id);
            }
            proptest::prop_assert_eq!(base, &before);
        }
    }

    #[test]
    fn versions_and_delimiters() {
        assert!(version_accepts("5010", "005010X222A1") && !version_accepts("5010", "004010X098A1"));
        assert!(version_accepts("005010X221A1", "005010X221A1") && !version_accepts("005010X221A1", "005010X222A1"));
        assert!(OutputDelimiters::default().problem().is_none());
        let d = OutputDelimiters { element: b'|', component: b'|', ..OutputDelimiters::default() };
        assert!(d.problem().unwrap().contains("same"));
        assert!(OutputDelimiters { segment: b'A', ..OutputDelimiters::default() }.problem().is_some());
        assert!(OutputDelimiters { element: b' ', ..OutputDelimiters::default() }.problem().is_some());
    }
}
