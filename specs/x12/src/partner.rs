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
//! - Overlays ([`Overlay`]) change a copy of a bundled guide: usage and repeats of a loop or
//!   segment, usage of an element, element lengths, added codes ([`overlaid`]); or add to it a
//!   segment or loop the guide lacks ([`Addition`]), read with the edition's dictionary entry
//!   or declared elements, each with a PHI class: the one written (`phi`), else the one the
//!   guide gives that element of its own segments with the same id ([`NewPhi::Inherit`]), so
//!   an added `NM1` name is `name` unless the profile says otherwise. An addition loop identification could confuse with a place the
//!   guide has (the same segment id where the engine could also choose that place, keys that
//!   do not tell them apart) is refused ([`OverlayErrorKind::Ambiguous`]): an addition never
//!   takes a segment the bundled guide would have placed elsewhere. A copy is made once per process per
//!   distinct (guide, overlays) and lives as long as the process (loop identification holds
//!   guides as `'static`): the number of copies is bounded by the distinct overlays written in
//!   the profiles loaded, not by the data read.
//!
//! Invariants: total on any input (an overlay that does not fit its guide is an `Err`, never a
//! panic); the partner checks are never downgraded by a `processing` flag or by lenient mode
//! (they say who may send, not how well).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sluice_spec_core::PhiClass;

use crate::envelope::Finding;
use crate::guide::{ElementType, ElementUse, Guide, Loop, Node, SegmentUse, Usage};

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

/// One overlay: what changes at one place of a guide, or what is added there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Overlay {
    /// `LOOP[/LOOP...]` a loop; `[LOOP/...]SEG[(QUAL)]` a segment; `[LOOP/...]SEG[(QUAL)]-EE[-CC]`
    /// an element or component. Every loop with the id (at any depth below the step before)
    /// and every segment use with the id (and qualifier) in it is changed. With [`Self::add`]:
    /// where the addition goes (`2300/REF(ZZ)`: a REF qualified `ZZ` in every 2300;
    /// `2300/2300ZZ`: a loop `2300ZZ` in every 2300).
    pub path: String,
    pub usage: Option<Usage>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub add_codes: Vec<String>,
    /// Segments and loops: how many times they may repeat (the guide's maximum, or the added
    /// place's; an added one repeats once unless told).
    pub max_use: Option<u32>,
    /// Additions: the place of the loop the addition follows (`PWK`, `REF(G1)`, `2310A`);
    /// `None`: after the loop's last segment before its first inner loop (a segment, or a loop
    /// in a loop without inner loops), or after its last inner loop (a loop).
    pub after: Option<String>,
    /// What the overlay adds at `path` (`None`: it changes what the guide has there).
    pub add: Option<Addition>,
}

/// A segment or loop a partner sends that the bundled guide does not have.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addition {
    /// A segment, read with its dictionary entry (every element situational) changed by these
    /// elements, or, for a segment the dictionary does not define, with these elements only.
    Segment(Vec<NewElement>),
    /// A loop of these segments, the first one starting it (a required place).
    Loop(Vec<NewSegment>),
}

/// One segment of an added loop.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NewSegment {
    /// `SEG` or `SEG(QUAL)`.
    pub segment: String,
    pub usage: Option<Usage>,
    pub max_use: Option<u32>,
    pub elements: Vec<NewElement>,
}

/// One element of an added segment: its requirement, type, lengths and codes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NewElement {
    /// 1-based.
    pub position: usize,
    pub usage: Option<Usage>,
    /// Only for a segment the dictionary does not define (there it is required).
    pub ty: Option<ElementType>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// The codes the element may hold (`None` when empty: any value of its type).
    pub codes: Vec<String>,
    /// The PHI class of its values (see [`NewPhi`]).
    pub phi: NewPhi,
}

/// The PHI class of an added element's values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NewPhi {
    /// Not said: the class the guide gives the same element (and component) of its own
    /// segments with that id ([`inherited_class`]), or none when it gives none. An added
    /// `NM1(ZZ)` of an 837P takes `name` at NM103 and `health_plan_id` at NM109, as the
    /// subscriber's NM1 has them: an addition is never less protected than the guide's own
    /// segment of that id unless the profile says so.
    #[default]
    Inherit,
    /// `phi: none`: the values are no PHI (an organization's name).
    None,
    /// `phi: name`, `phi: other_id`, ...
    Class(PhiClass),
}

/// Why an overlay does not fit its guide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayError {
    pub kind: OverlayErrorKind,
    pub message: String,
}

/// What kind of misfit (the compiler gives each its own code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayErrorKind {
    /// The path, a change or an `after` does not fit the guide.
    Fit,
    /// An addition would make loop identification ambiguous, or take segments the guide
    /// places elsewhere.
    Ambiguous,
    /// An added segment's elements cannot be defined as written.
    Elements,
}

impl OverlayError {
    fn fit(message: impl Into<String>) -> Self {
        OverlayError { kind: OverlayErrorKind::Fit, message: message.into() }
    }
    fn elements(message: impl Into<String>) -> Self {
        OverlayError { kind: OverlayErrorKind::Elements, message: message.into() }
    }
}

impl std::fmt::Display for OverlayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
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
pub fn apply(guide: &Guide, overlays: &[Overlay]) -> Result<Guide, (usize, OverlayError)> {
    let mut g = guide.clone();
    for (i, o) in overlays.iter().enumerate() {
        let done = match &o.add {
            None => change(&mut g, o).map_err(OverlayError::fit),
            Some(a) => add(&mut g, o, a),
        };
        done.map_err(|e| (i, e))?;
    }
    Ok(g)
}

fn change(g: &mut Guide, o: &Overlay) -> Result<(), String> {
    let (steps, target) = parse_target(&o.path)?;
    let guide_id = g.id.clone();
    let mut loops = Vec::new();
    loops_mut(&mut g.root, &steps, &mut loops);
    if loops.is_empty() {
        return Err(format!("guide {guide_id} has no loop {}", steps.join("/")));
    }
    if o.after.is_some() {
        return Err("`after` places an addition; a change stays where the guide has it".into());
    }
    if o.max_use == Some(0) {
        return Err("`max_use` is at least 1 (`usage: not_used` takes a place out)".into());
    }
    let element_change = o.min_length.is_some() || o.max_length.is_some() || !o.add_codes.is_empty();
    match target {
        Target::Loop => {
            if element_change {
                return Err("a loop takes only `usage` and `max_use`; lengths and codes are for elements".into());
            }
            for l in loops {
                if let Some(u) = o.usage {
                    l.usage = u;
                }
                if let Some(m) = o.max_use {
                    l.max = Some(m);
                }
            }
        }
        Target::Segment { id, qualifier } => {
            if element_change {
                return Err("a segment takes only `usage` and `max_use`; lengths and codes are for elements".into());
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
                        if let Some(m) = o.max_use {
                            s.max = Some(m);
                        }
                    }
                }
            }
            if n == 0 {
                return Err(no_segment(&steps, &id, qualifier.as_deref()));
            }
        }
        Target::Element { id, qualifier, element, component } => {
            if o.max_use.is_some() {
                return Err("`max_use` is for segments and loops; an element's repeats are the dictionary's".into());
            }
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

/// Segment ids that belong to the envelopes: a set never holds them.
const ENVELOPE_SEGMENTS: &[&str] = &["ISA", "IEA", "GS", "GE", "ST", "SE", "TA1"];

/// Adds a segment or a loop at every place of the guide `o.path` names, after checking that
/// loop identification can still tell every segment's place (see [`conflict`]).
fn add(g: &mut Guide, o: &Overlay, a: &Addition) -> Result<(), OverlayError> {
    if o.min_length.is_some() || o.max_length.is_some() || !o.add_codes.is_empty() {
        return Err(OverlayError::fit(
            "an addition takes `usage`, `max_use`, `after` and its elements or segments; lengths and codes go in `elements`",
        ));
    }
    if o.max_use == Some(0) {
        return Err(OverlayError::fit("`max_use` is at least 1"));
    }
    let (steps, target) = parse_target(&o.path).map_err(OverlayError::fit)?;
    let (parent_steps, new): (&[String], Node) = match (a, target) {
        (Addition::Segment(elements), Target::Segment { id, qualifier }) => {
            let usage = o.usage.unwrap_or(Usage::Situational);
            let s = new_segment(g, &id, qualifier.as_deref(), usage, o.max_use, elements)?;
            (&steps, Node::Segment(s))
        }
        (Addition::Segment(_), _) => {
            return Err(OverlayError::fit(format!(
                "`{}` is not a segment: an added segment is written `LOOP/SEG` or `LOOP/SEG(QUAL)`",
                o.path
            )));
        }
        (Addition::Loop(segments), Target::Loop) => {
            let (id, parents) = steps.split_last().expect("a loop target has a step");
            if let Some(l) = g.root.find(id) {
                return Err(OverlayError::fit(format!(
                    "guide {} already has a loop {}{}: give the added loop an id of its own",
                    g.id,
                    l.id,
                    if l.title.is_empty() { String::new() } else { format!(" ({})", l.title) }
                )));
            }
            (parents, Node::Loop(new_loop(g, id, o, segments)?))
        }
        (Addition::Loop(_), _) => {
            return Err(OverlayError::fit(format!(
                "`{}` is not a loop id: an added loop is written `PARENT/ID` (`2300/2300ZZ`)",
                o.path
            )));
        }
    };
    let mut targets = Vec::new();
    loop_paths(&g.root, parent_steps, &mut Vec::new(), &mut targets);
    if targets.is_empty() {
        return Err(OverlayError::fit(format!("guide {} has no loop {}", g.id, parent_steps.join("/"))));
    }
    let mut inserts = Vec::new();
    for path in &targets {
        let (chain, at) = walk(&g.root, path);
        let index = insertion(at, &new, o.after.as_deref()).map_err(OverlayError::fit)?;
        check_addition(&chain, at, index, &new)?;
        inserts.push(index);
    }
    // The targets are disjoint subtrees (a step's search stops at a loop with the id), so an
    // insertion leaves the other targets' index paths valid.
    for (path, index) in targets.iter().zip(inserts) {
        let mut at = &mut g.root;
        for &i in path {
            let Node::Loop(l) = &mut at.children[i] else { unreachable!("an index path goes through loops") };
            at = l;
        }
        at.children.insert(index, new.clone());
    }
    Ok(())
}

/// The index paths (child indices from the root) of every loop `steps` reaches, as
/// [`loops_mut`] finds them.
fn loop_paths(at: &Loop, steps: &[String], prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(prefix.clone());
        return;
    };
    fn find_all(l: &Loop, id: &str, prefix: &mut Vec<usize>, found: &mut Vec<Vec<usize>>) {
        for (i, c) in l.children.iter().enumerate() {
            if let Node::Loop(child) = c {
                prefix.push(i);
                if child.id == id {
                    found.push(prefix.clone());
                } else {
                    find_all(child, id, prefix, found);
                }
                prefix.pop();
            }
        }
    }
    let mut found = Vec::new();
    find_all(at, first, prefix, &mut found);
    for mut p in found {
        let mut l = at;
        for &i in &p[prefix.len()..] {
            let Node::Loop(next) = &l.children[i] else { unreachable!("found through loops") };
            l = next;
        }
        loop_paths(l, rest, &mut p, out);
    }
}

/// The loops from the root to the one at `path`, each with the index of the child the path
/// goes through, and that loop.
fn walk<'g>(root: &'g Loop, path: &[usize]) -> (Vec<(&'g Loop, usize)>, &'g Loop) {
    let mut chain = Vec::new();
    let mut at = root;
    for &i in path {
        chain.push((at, i));
        let Node::Loop(l) = &at.children[i] else { unreachable!("an index path goes through loops") };
        at = l;
    }
    (chain, at)
}

/// Where in `at.children` the addition goes (see [`Overlay::after`]).
fn insertion(at: &Loop, new: &Node, after: Option<&str>) -> Result<usize, String> {
    let here = if at.id.is_empty() { "the set level".to_string() } else { format!("loop {}", at.id) };
    if let Some(after) = after {
        let (id, qualifier) = match after.split_once('(') {
            Some((id, q)) => (id, q.strip_suffix(')').filter(|q| !q.is_empty())),
            None => (after, None),
        };
        let found = at.children.iter().rposition(|c| match c {
            Node::Segment(s) => segment_fits(s, id, qualifier) && (qualifier.is_some() || !after.contains('(')),
            Node::Loop(l) => l.id == after,
        });
        return match found {
            Some(i) if matches!(&at.children[i], Node::Segment(s) if s.id == "SE") => {
                Err("nothing comes after SE, the set's trailer".into())
            }
            Some(i) => Ok(i + 1),
            None => Err(format!(
                "{here} has no `{after}` to come after (a segment id such as `PWK` or `REF(G1)`, or an inner loop id)"
            )),
        };
    }
    if let Node::Segment(new) = new
        && let Some(last) = at.children.iter().rposition(|c| matches!(c, Node::Segment(s) if s.id == new.id))
    {
        // After the places of the same id: X12 does not order the repeats of one position.
        return Ok(last + 1);
    }
    let first_loop = at.children.iter().position(|c| matches!(c, Node::Loop(_)));
    let last_loop = at.children.iter().rposition(|c| matches!(c, Node::Loop(_)));
    Ok(match (new, first_loop, last_loop) {
        (Node::Loop(_), _, Some(last)) => last + 1,
        (_, Some(first), _) => first,
        _ => {
            // No inner loop: at the end, before the set's trailer when it is there.
            let n = at.children.len();
            if matches!(at.children.last(), Some(Node::Segment(s)) if s.id == "SE") { n - 1 } else { n }
        }
    })
}

/// Refuses an addition loop identification could confuse with what the guide has: its first
/// segment (or, for a loop, each of its segments) must not match a place the engine could
/// also choose when such a segment comes (see [`crate::loops`]: the open loop's places, then
/// the enclosing loops' places from the open one on, and HL loops anywhere).
fn check_addition(chain: &[(&Loop, usize)], at: &Loop, index: usize, new: &Node) -> Result<(), OverlayError> {
    let first = new.trigger().expect("additions start with a segment");
    if let Some(why) = conflict(chain, at.children.iter().collect(), first) {
        return Err(ambiguous(first, at, &why));
    }
    if let Node::Loop(l) = new {
        let mut outer = chain.to_vec();
        outer.push((at, index));
        for (i, s) in l.children.iter().enumerate().skip(1) {
            let Node::Segment(s) = s else { continue };
            if let Some(why) = conflict(&outer, l.children[..i].iter().collect(), s) {
                return Err(ambiguous(s, l, &why));
            }
        }
    }
    Ok(())
}

fn ambiguous(s: &SegmentUse, at: &Loop, why: &str) -> OverlayError {
    let here = if at.id.is_empty() { "the set level".to_string() } else { format!("loop {}", at.id) };
    OverlayError {
        kind: OverlayErrorKind::Ambiguous,
        message: format!("{} added to {here} could not be told apart from {why}", describe(s)),
    }
}

/// `REF (REF01 ZZ)`, `NTE`.
fn describe(s: &SegmentUse) -> String {
    match &s.key {
        Some((e, c, codes)) => {
            let at = if *c == 0 { format!("{}{e:02}", s.id) } else { format!("{}{e:02}-{c}", s.id) };
            format!("{} ({at} {})", s.id, codes.join(","))
        }
        None => s.id.clone(),
    }
}

/// The place among `siblings` (the loop the segment goes in) or the enclosing loops' places the
/// engine could choose for segment `s` as well, described; `None` when there is none.
fn conflict(chain: &[(&Loop, usize)], siblings: Vec<&Node>, s: &SegmentUse) -> Option<String> {
    let clash = |n: &Node| n.trigger().is_some_and(|t| t.id == s.id && keys_overlap(t, s));
    for n in &siblings {
        if clash(n) {
            let what = match n {
                Node::Segment(t) => format!("the {} the loop already has", describe(t)),
                Node::Loop(x) => {
                    format!("loop {} (started by {})", x.id, x.trigger().map(describe).unwrap_or_default())
                }
            };
            return Some(what);
        }
    }
    for (l, branch) in chain.iter().rev() {
        for (i, n) in l.children.iter().enumerate() {
            let reachable = i >= *branch || matches!(n, Node::Loop(x) if x.is_hierarchical());
            if reachable && clash(n) {
                let here = if l.id.is_empty() { "the set level".to_string() } else { format!("loop {}", l.id) };
                return Some(match n {
                    Node::Segment(t) => format!("the {} of {here} that follows it", describe(t)),
                    Node::Loop(x) => format!(
                        "loop {} (started by {}) of {here}",
                        x.id,
                        x.trigger().map(describe).unwrap_or_default()
                    ),
                });
            }
        }
    }
    None
}

/// Whether a segment could fit both places: either has no key, the keys are on different
/// elements, or they share a code.
fn keys_overlap(a: &SegmentUse, b: &SegmentUse) -> bool {
    match (&a.key, &b.key) {
        (Some((ea, ca, xa)), Some((eb, cb, xb))) => (ea, ca) != (eb, cb) || xa.iter().any(|c| xb.contains(c)),
        _ => true,
    }
}

/// The place of an added segment `id` (qualified by `qualifier` in the element other places of
/// the segment key on, else its first), with `elements` applied.
fn new_segment(
    g: &Guide,
    id: &str,
    qualifier: Option<&str>,
    usage: Usage,
    max_use: Option<u32>,
    elements: &[NewElement],
) -> Result<SegmentUse, OverlayError> {
    if ENVELOPE_SEGMENTS.contains(&id) {
        return Err(OverlayError::fit(format!("{id} belongs to the envelopes: a transaction set cannot gain one")));
    }
    if max_use == Some(0) {
        return Err(OverlayError::fit("`max_use` is at least 1"));
    }
    let defined = crate::guide::dictionary_elements(&g.id, id);
    let mut uses = match &defined {
        Some(list) => list.iter().cloned().map(situational).collect(),
        None => {
            if elements.is_empty() {
                return Err(OverlayError::elements(format!(
                    "the {} segment dictionary does not define {id}: list its `elements`, each with `type`, `min_length` and `max_length`",
                    edition_name(&g.id)
                )));
            }
            Vec::new()
        }
    };
    for (n, e) in elements.iter().enumerate() {
        let at = format!("{id}{:02}", e.position);
        if defined.is_none() {
            if e.position != n + 1 {
                return Err(OverlayError::elements(format!(
                    "{id} is not in the dictionary, so its elements are listed in order from 01: expected {id}{:02}, found {at}",
                    n + 1
                )));
            }
            let (Some(ty), Some(min), Some(max)) = (e.ty, e.min_length, e.max_length) else {
                return Err(OverlayError::elements(format!(
                    "{at}: {id} is not in the dictionary, so each element needs `type`, `min_length` and `max_length`"
                )));
            };
            if ty == ElementType::Composite {
                return Err(OverlayError::elements(format!(
                    "{at}: a composite needs its components, which an added segment cannot list; use a simple type"
                )));
            }
            uses.push(ElementUse {
                position: n + 1,
                usage: Usage::Situational,
                ty,
                min,
                max,
                codes: None,
                phi: None,
                repeats: 1,
                components: Vec::new(),
            });
        }
        let Some(u) = uses.get_mut(e.position.wrapping_sub(1)) else {
            return Err(OverlayError::elements(format!("{id} has no element {:02}", e.position)));
        };
        if let Some(ty) = e.ty
            && defined.is_some()
            && ty != u.ty
        {
            return Err(OverlayError::elements(format!(
                "the dictionary defines {at} as {}: leave `type` out (it is only for segments the dictionary lacks)",
                u.ty.as_str()
            )));
        }
        if let Some(usage) = e.usage {
            u.usage = usage;
        }
        let (min, max) = (e.min_length.unwrap_or(u.min), e.max_length.unwrap_or(u.max));
        if u.ty == ElementType::Composite && (e.min_length.is_some() || e.max_length.is_some() || !e.codes.is_empty()) {
            return Err(OverlayError::elements(format!(
                "{at} is a composite: lengths and codes are its components', which keep the dictionary's"
            )));
        }
        if u.ty != ElementType::Composite && (min > max || max == 0) {
            return Err(OverlayError::elements(format!(
                "{at}: the lengths would be {min} to {max}: the minimum must not exceed the maximum, which is at least 1"
            )));
        }
        u.min = min;
        u.max = max;
        if !e.codes.is_empty() {
            u.codes = Some(Arc::new(e.codes.clone()));
        }
        if u.ty == ElementType::Composite && e.phi != NewPhi::Inherit {
            return Err(OverlayError::elements(format!(
                "{at} is a composite: its components keep the classes the guide gives them (leave `phi` out)"
            )));
        }
    }
    // PHI classes: as written, else the guide's for the same element of its own segments
    // with this id (an addition is never less protected than the guide's own segment).
    let mut classes = Vec::new();
    guide_classes(&g.root, id, &mut classes);
    for (i, u) in uses.iter_mut().enumerate() {
        let written = elements.iter().rev().find(|e| e.position == i + 1).map_or(NewPhi::Inherit, |e| e.phi);
        u.phi = match written {
            NewPhi::Inherit => inherited_class(&classes, i + 1, 0),
            NewPhi::None => None,
            NewPhi::Class(c) => Some(c),
        };
        for (j, c) in u.components.iter_mut().enumerate() {
            c.phi = inherited_class(&classes, i + 1, j + 1);
        }
    }
    let key = match qualifier {
        None => None,
        Some(q) => {
            let (e, c) = key_position(&g.root, id).unwrap_or((1, 0));
            let Some(el) = uses.get_mut(e - 1) else {
                return Err(OverlayError::elements(format!("{id} has no element to hold the qualifier {q}")));
            };
            let target = if c == 0 {
                el
            } else {
                el.components.get_mut(c - 1).ok_or_else(|| {
                    OverlayError::elements(format!("{id}{e:02} has no component {c} to hold the qualifier {q}"))
                })?
            };
            if target.usage != Usage::Required && elements.iter().any(|x| x.position == e && x.usage.is_some()) {
                return Err(OverlayError::elements(format!(
                    "{id}{e:02} holds the qualifier {q}, which selects the added place: it stays required"
                )));
            }
            if target.codes.as_ref().is_some_and(|codes| !codes.iter().any(|x| x == q)) {
                return Err(OverlayError::elements(format!(
                    "{id}{e:02} holds the qualifier {q}: its `codes` must include it"
                )));
            }
            if q.len() < target.min || q.len() > target.max {
                return Err(OverlayError::elements(format!(
                    "the qualifier {q} does not fit {id}{e:02} ({} to {} characters)",
                    target.min, target.max
                )));
            }
            target.usage = Usage::Required;
            let codes = Arc::new(vec![q.to_string()]);
            target.codes = Some(codes.clone());
            Some((e, c, codes))
        }
    };
    Ok(SegmentUse { id: id.to_string(), usage, max: Some(max_use.unwrap_or(1)), elements: uses, key })
}

/// Every PHI class the guide gives an element (or component) of its segments `id`:
/// (position, component or 0, class).
fn guide_classes(l: &Loop, id: &str, out: &mut Vec<(usize, usize, PhiClass)>) {
    for c in &l.children {
        match c {
            Node::Segment(s) if s.id == id => {
                for (i, e) in s.elements.iter().enumerate() {
                    out.extend(e.phi.map(|p| (i + 1, 0, p)));
                    for (j, k) in e.components.iter().enumerate() {
                        out.extend(k.phi.map(|p| (i + 1, j + 1, p)));
                    }
                }
            }
            Node::Segment(_) => {}
            Node::Loop(inner) => guide_classes(inner, id, out),
        }
    }
}

/// The class an added element without `phi` takes from `classes` (see [`guide_classes`]):
/// the one class the guide gives that place, `other_id` when it gives several (REF02 is a
/// social security number after REF*SY, a medical record number after REF*EA: an added REF's
/// is an identifier of a kind the guide cannot say), none when it gives none.
pub fn inherited_class(classes: &[(usize, usize, PhiClass)], position: usize, component: usize) -> Option<PhiClass> {
    let mut found = classes.iter().filter(|(p, c, _)| *p == position && *c == component).map(|(_, _, k)| *k);
    let first = found.next()?;
    Some(if found.all(|k| k == first) { first } else { PhiClass::OtherId })
}

/// A dictionary element made situational for an added segment (its components too).
fn situational(mut e: ElementUse) -> ElementUse {
    e.usage = Usage::Situational;
    e.components = e.components.into_iter().map(situational).collect();
    e
}

/// The element (and component) other places of segment `id` key on in the guide.
fn key_position(l: &Loop, id: &str) -> Option<(usize, usize)> {
    l.children.iter().find_map(|c| match c {
        Node::Segment(s) if s.id == id => s.key.as_ref().map(|(e, c, _)| (*e, *c)),
        Node::Segment(_) => None,
        Node::Loop(inner) => key_position(inner, id),
    })
}

fn edition_name(guide_id: &str) -> &'static str {
    if guide_id.starts_with("004010") { "4010" } else { "5010" }
}

fn new_loop(g: &Guide, id: &str, o: &Overlay, segments: &[NewSegment]) -> Result<Loop, OverlayError> {
    if segments.is_empty() {
        return Err(OverlayError::fit(format!("the added loop {id} lists no segments: its first one starts it")));
    }
    let mut children = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let (seg_id, qualifier) = match parse_target(&s.segment) {
            Ok((steps, Target::Segment { id, qualifier })) if steps.is_empty() => (id, qualifier),
            _ => {
                return Err(OverlayError::fit(format!(
                    "`{}` is not a segment of the loop (`NM1`, `REF(ZZ)`: no loop, no element)",
                    s.segment
                )));
            }
        };
        let usage = match (i, s.usage) {
            (0, None | Some(Usage::Required)) => Usage::Required,
            (0, Some(_)) => {
                return Err(OverlayError::fit(format!(
                    "{seg_id} starts loop {id}: it is required in the loop (make the loop optional instead)"
                )));
            }
            (_, u) => u.unwrap_or(Usage::Situational),
        };
        if i == 0 && seg_id == "HL" {
            return Err(OverlayError::fit(
                "an added loop cannot start with HL: the hierarchy's levels are the guide's",
            ));
        }
        children.push(Node::Segment(new_segment(g, &seg_id, qualifier.as_deref(), usage, s.max_use, &s.elements)?));
    }
    Ok(Loop {
        id: id.to_string(),
        title: "added by a trading-partner overlay".into(),
        usage: o.usage.unwrap_or(Usage::Situational),
        max: Some(o.max_use.unwrap_or(1)),
        parent: None,
        children,
    })
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
pub fn overlaid(guide: &'static Guide, overlays: &[Overlay]) -> Result<&'static Guide, (usize, OverlayError)> {
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
        let bad = |path: &str, o: Overlay| apply(base, &[Overlay { path: path.into(), ..o }]).unwrap_err().1.message;
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

    fn ref_zz() -> Overlay {
        Overlay {
            path: "2300/REF(ZZ)".into(),
            max_use: Some(3),
            add: Some(Addition::Segment(vec![NewElement {
                position: 2,
                max_length: Some(20),
                ..NewElement::default()
            }])),
            ..Overlay::default()
        }
    }

    fn segment_in<'g>(l: &'g Loop, id: &str, key: Option<&str>) -> Option<(usize, &'g SegmentUse)> {
        l.children.iter().enumerate().find_map(|(i, c)| match c {
            Node::Segment(s) if s.id == id && key.is_none_or(|k| s.key_matches(Some(k.as_bytes()))) => Some((i, s)),
            _ => None,
        })
    }

    #[test]
    fn an_added_segment_takes_its_dictionary_entry_and_a_place_after_its_kin() {
        let base = by_id("005010X222A1").unwrap();
        let g = apply(base, &[ref_zz()]).unwrap();
        for parent in ["2000B", "2000C"] {
            let l2300 = g.root.find(parent).unwrap().find("2300").unwrap();
            let (at, s) = segment_in(l2300, "REF", Some("ZZ")).unwrap();
            assert_eq!((s.usage, s.max), (Usage::Situational, Some(3)));
            assert_eq!(s.elements[0].usage, Usage::Required, "REF01 holds the qualifier");
            assert_eq!((s.elements[1].usage, s.elements[1].max), (Usage::Situational, 20));
            assert_eq!(s.elements[3].components[0].usage, Usage::Situational, "REF04 from the dictionary");
            // Right after the guide's last REF (1J), so the REFs stay one position.
            assert!(matches!(&l2300.children[at - 1], Node::Segment(r) if r.id == "REF" && r.key_matches(Some(b"1J"))));
        }
        assert!(
            segment_in(base.root.find("2300").unwrap(), "REF", Some("ZZ")).is_none(),
            "the bundled guide is unchanged"
        );
        // A changed maximum, on what the guide has.
        let more_nte = Overlay { path: "2300/NTE".into(), max_use: Some(10), ..Overlay::default() };
        let g = apply(base, &[more_nte]).unwrap();
        assert_eq!(segment_in(g.root.find("2300").unwrap(), "NTE", None).unwrap().1.max, Some(10));
    }

    #[test]
    fn an_added_segment_takes_the_guides_classes_unless_told() {
        let base = by_id("005010X222A1").unwrap();
        let repricer = |elements: Vec<NewElement>| Overlay {
            path: "2300/2310Z".into(),
            after: Some("2310F".into()),
            add: Some(Addition::Loop(vec![
                NewSegment { segment: "NM1(ZZ)".into(), elements, ..NewSegment::default() },
                NewSegment { segment: "N3".into(), ..NewSegment::default() },
                NewSegment { segment: "DTP(472)".into(), ..NewSegment::default() },
            ])),
            ..Overlay::default()
        };
        let classes = |g: &Guide| {
            let l = g.root.find("2300").unwrap().find("2310Z").unwrap();
            let Node::Segment(s) = &l.children[0] else { panic!("NM1 starts the loop") };
            let n3 = match &l.children[1] {
                Node::Segment(n3) => n3.elements[0].phi,
                Node::Loop(_) => panic!("N3 is a segment"),
            };
            let dtp = match &l.children[2] {
                Node::Segment(d) => d.elements[2].phi,
                Node::Loop(_) => panic!("DTP is a segment"),
            };
            (s.elements.iter().map(|e| e.phi).collect::<Vec<_>>(), n3, dtp)
        };
        // The 837P's subscriber and patient NM1s class NM103-NM105 and NM107 `name`, NM109
        // `health_plan_id`; its N3s `address`; its DTP03s `date`.
        let (nm1, n3, dtp) = classes(&apply(base, &[repricer(vec![])]).unwrap());
        assert_eq!(nm1[2], Some(PhiClass::Name));
        assert_eq!(nm1[3], Some(PhiClass::Name));
        assert_eq!(nm1[8], Some(PhiClass::HealthPlanId));
        assert_eq!((nm1[0], nm1[1], nm1[7]), (None, None, None), "codes carry no class");
        assert_eq!(n3, Some(PhiClass::Address));
        assert_eq!(dtp, base_class(base, "DTP", 3));
        // Said in the profile: a class, or none.
        let told = vec![
            NewElement { position: 3, phi: NewPhi::None, ..NewElement::default() },
            NewElement { position: 9, phi: NewPhi::Class(PhiClass::OtherId), ..NewElement::default() },
        ];
        let (nm1, _, _) = classes(&apply(base, &[repricer(told)]).unwrap());
        assert_eq!((nm1[2], nm1[3], nm1[8]), (None, Some(PhiClass::Name), Some(PhiClass::OtherId)));
        // REF02's classes differ by qualifier in the guide (ssn, other_id, mrn): an added
        // REF's is `other_id`.
        let g = apply(base, &[ref_zz()]).unwrap();
        let (_, s) = segment_in(g.root.find("2300").unwrap(), "REF", Some("ZZ")).unwrap();
        assert_eq!(s.elements[1].phi, Some(PhiClass::OtherId));
        assert_eq!(s.elements[0].phi, None);
        // A composite's components keep theirs: `phi` on one is refused.
        let composite = Overlay {
            path: "2300/REF(ZZ)".into(),
            add: Some(Addition::Segment(vec![NewElement { position: 4, phi: NewPhi::None, ..NewElement::default() }])),
            ..Overlay::default()
        };
        let (_, why) = apply(base, &[composite]).unwrap_err();
        assert_eq!(why.kind, OverlayErrorKind::Elements);
        assert!(why.message.contains("composite"), "{why}");
    }

    #[test]
    fn a_segment_the_dictionary_lacks_takes_the_classes_written() {
        let base = by_id("005010X222A1").unwrap();
        let declared = |position, phi| NewElement {
            position,
            ty: Some(ElementType::Text),
            min_length: Some(1),
            max_length: Some(30),
            phi,
            ..NewElement::default()
        };
        let o = Overlay {
            path: "2300/ZZ1".into(),
            add: Some(Addition::Segment(vec![
                declared(1, NewPhi::Inherit),
                declared(2, NewPhi::Class(PhiClass::Name)),
            ])),
            ..Overlay::default()
        };
        let g = apply(base, &[o]).unwrap();
        let (_, s) = segment_in(g.root.find("2300").unwrap(), "ZZ1", None).unwrap();
        assert_eq!((s.elements[0].phi, s.elements[1].phi), (None, Some(PhiClass::Name)));
    }

    /// The one class the guide gives element `n` of its segments `id`, if any.
    fn base_class(g: &Guide, id: &str, n: usize) -> Option<PhiClass> {
        let mut all = Vec::new();
        guide_classes(&g.root, id, &mut all);
        inherited_class(&all, n, 0)
    }

    #[test]
    fn an_added_loop_starts_with_its_first_segment() {
        let base = by_id("005010X222A1").unwrap();
        let o = Overlay {
            path: "2300/2310Z".into(),
            usage: Some(Usage::Situational),
            max_use: Some(2),
            after: Some("2310F".into()),
            add: Some(Addition::Loop(vec![
                NewSegment { segment: "NM1(ZZ)".into(), ..NewSegment::default() },
                NewSegment { segment: "N3".into(), ..NewSegment::default() },
                NewSegment {
                    segment: "ZZ1".into(),
                    elements: vec![NewElement {
                        position: 1,
                        usage: Some(Usage::Required),
                        ty: Some(ElementType::Text),
                        min_length: Some(1),
                        max_length: Some(10),
                        ..NewElement::default()
                    }],
                    ..NewSegment::default()
                },
            ])),
            ..Overlay::default()
        };
        let g = apply(base, std::slice::from_ref(&o)).unwrap();
        let l = g.root.find("2310Z").unwrap();
        assert_eq!((l.usage, l.max), (Usage::Situational, Some(2)));
        let nm1 = l.trigger().unwrap();
        assert_eq!((nm1.usage, nm1.key.as_ref().map(|k| (k.0, k.1))), (Usage::Required, Some((1, 0))));
        let Node::Segment(zz1) = &l.children[2] else { panic!() };
        assert_eq!((zz1.elements.len(), zz1.elements[0].ty, zz1.elements[0].max), (1, ElementType::Text, 10));
        let l2300 = g.root.find("2300").unwrap();
        let at = l2300.children.iter().position(|c| matches!(c, Node::Loop(x) if x.id == "2310Z")).unwrap();
        assert!(matches!(&l2300.children[at - 1], Node::Loop(x) if x.id == "2310F"));
    }

    #[test]
    fn additions_that_identification_could_confuse_are_refused() {
        let base = by_id("005010X222A1").unwrap();
        let seg =
            |path: &str| Overlay { path: path.into(), add: Some(Addition::Segment(vec![])), ..Overlay::default() };
        let refused = |o: Overlay| apply(base, &[o]).unwrap_err().1;
        // The loop has NTE already: more of them is `max_use` on it.
        let e = refused(seg("2300/NTE"));
        assert_eq!(e.kind, OverlayErrorKind::Ambiguous);
        assert!(e.message.contains("NTE added to loop 2300 could not be told apart from the NTE"), "{}", e.message);
        // A REF without qualifier, or with one the guide uses there.
        assert_eq!(refused(seg("2300/REF")).kind, OverlayErrorKind::Ambiguous);
        assert!(refused(seg("2300/REF(G1)")).message.contains("REF (REF01 G1)"));
        // A CLM in a service line would take the next claim's CLM; an NM1*DN in 2300 the
        // referring provider loop's.
        let e = refused(seg("2400/CLM"));
        assert!(e.message.contains("loop 2300 (started by CLM)"), "{}", e.message);
        assert!(refused(seg("2300/NM1(DN)")).message.contains("loop 2310A"));
        // HL anywhere would take the hierarchy's.
        assert_eq!(refused(seg("2300/HL")).kind, OverlayErrorKind::Ambiguous);
        // A loop whose second segment the enclosing loop places later.
        let o = Overlay {
            path: "2300/2399".into(),
            after: Some("HCP".into()),
            add: Some(Addition::Loop(vec![
                NewSegment { segment: "NM1(ZZ)".into(), ..NewSegment::default() },
                NewSegment { segment: "LX".into(), ..NewSegment::default() },
            ])),
            ..Overlay::default()
        };
        let e = refused(o);
        assert!(e.message.contains("LX added to loop 2399") && e.message.contains("loop 2400"), "{}", e.message);
        // What does not fit.
        let e = refused(seg("2300/ZZ9"));
        assert_eq!(e.kind, OverlayErrorKind::Elements);
        assert!(e.message.contains("does not define ZZ9"), "{}", e.message);
        assert!(refused(seg("2300/SE")).message.contains("envelopes"));
        assert!(refused(Overlay { after: Some("XYZ".into()), ..seg("2300/REF(ZZ)") }).message.contains("no `XYZ`"));
        let existing = Overlay { add: Some(Addition::Loop(vec![NewSegment::default()])), ..seg("2300/2310A") };
        assert!(refused(existing).message.contains("already has a loop 2310A"));
        let typed =
            Addition::Segment(vec![NewElement { position: 2, ty: Some(ElementType::Id), ..NewElement::default() }]);
        assert!(refused(Overlay { add: Some(typed), ..seg("2300/REF(ZZ)") }).message.contains("defines REF02 as AN"));
    }

    /// Overlay additions as a user might write them: a path, kind, place and elements.
    fn any_addition() -> impl proptest::strategy::Strategy<Value = Overlay> {
        use proptest::prelude::*;
        let element = (
            1usize..14,
            proptest::option::of(0u8..3),
            proptest::option::of(0usize..6),
            proptest::option::of(0usize..40),
            proptest::option::of(0usize..40),
            proptest::collection::vec("[A-Z0-9]{1,3}", 0..2),
        )
            .prop_map(|(position, usage, ty, min_length, max_length, codes)| NewElement {
                position,
                usage: usage.map(|u| [Usage::Required, Usage::Situational, Usage::NotUsed][u as usize]),
                ty: ty.and_then(|t| ElementType::parse(["AN", "ID", "N0", "R", "DT", "C"][t])),
                min_length,
                max_length,
                codes,
                phi: NewPhi::Inherit,
            });
        let segment = "(REF|NTE|K3|NM1|N3|N4|PER|DTP|AMT|QTY|LX|HL|CLM|ZZ1)(\\((ZZ|G1|DN|IL|X4|85)\\))?";
        let new_segment = (
            segment,
            proptest::option::of(0u8..3),
            proptest::option::of(0u32..4),
            proptest::collection::vec(element.clone(), 0..3),
        )
            .prop_map(|(segment, usage, max_use, elements)| NewSegment {
                segment,
                usage: usage.map(|u| [Usage::Required, Usage::Situational, Usage::NotUsed][u as usize]),
                max_use,
                elements,
            });
        (
            "(2300/|2400/|2000B/|2010BA/|2300/2310B/)?",
            segment,
            "(2[0-9]{3}[A-Z]?)",
            proptest::bool::ANY,
            proptest::option::of("(REF|NTE|HI|PWK|SE|ST|LX|2310A|2400|2320|REF\\(G1\\))"),
            proptest::option::of(0u32..4),
            proptest::collection::vec(element, 0..3),
            proptest::collection::vec(new_segment, 0..4),
        )
            .prop_map(|(at, seg, loop_id, is_loop, after, max_use, elements, segments)| {
                let (path, add) = if is_loop {
                    (format!("{at}{loop_id}"), Addition::Loop(segments))
                } else {
                    (format!("{at}{seg}"), Addition::Segment(elements))
                };
                Overlay { path, after, max_use, add: Some(add), ..Overlay::default() }
            })
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
            max_use in proptest::option::of(0u32..4),
            codes in proptest::collection::vec("[A-Z0-9]{1,3}", 0..3),
        ) {
            let base = by_id("005010X222A1").unwrap();
            let before = base.clone();
            let usage = usage.map(|u| [Usage::Required, Usage::Situational, Usage::NotUsed][u as usize]);
            let path = if use_junk { junk } else { path };
            let o = Overlay { path, usage, min_length: min, max_length: max, add_codes: codes, max_use, ..Overlay::default() };
            if let Ok(g) = apply(base, std::slice::from_ref(&o)) {
                proptest::prop_assert_eq!(&g.id, &base.id);
            }
            proptest::prop_assert_eq!(base, &before);
        }

        /// Additions, right or wrong: refused or applied without panic; what is applied leaves
        /// the bundled guide unchanged, adds what it says, and never gives one segment two
        /// places the engine could both choose (two added places with one id in one loop have
        /// keys that tell them apart).
        #[test]
        fn any_addition_is_applied_or_refused_without_panic(o in any_addition(), then in any_addition()) {
            let base = by_id("005010X222A1").unwrap();
            let before = base.clone();
            if let Ok(g) = apply(base, &[o.clone(), then]) {
                proptest::prop_assert!(g != *base);
                fn check(l: &Loop) -> Result<(), String> {
                    for (i, a) in l.children.iter().enumerate().skip(1) {
                        for b in &l.children[i + 1..] {
                            let (Some(x), Some(y)) = (a.trigger(), b.trigger()) else { continue };
                            if x.id == y.id && keys_overlap(x, y) && (x.key.is_some() || y.key.is_some()) && x.key != y.key {
                                return Err(format!("{} in {} twice", x.id, l.id));
                            }
                        }
                        if let Node::Loop(inner) = a {
                            check(inner)?;
                        }
                    }
                    Ok(())
                }
                proptest::prop_assert!(check(&g.root).is_ok(), "{:?}", check(&g.root));
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
