//! `format: x12` files sources at compile time: their `guides` checked against the bundled
//! implementation guides (`sluice_x12::guide`), their plan, and the diagnostics that belong to
//! X12 records (SL260-SL262).
//!
//! What an X12 source emits ([`SCHEMA`]) is one record per transaction set: the envelope
//! context and the segments as read. Such records carry PHI (subscriber and patient names,
//! member ids, dates of birth), so the PHI-flow proof treats them as raw messages: a sink
//! receiving them needs `phi_allowed` (SL601), unless a map stage reads them first.
//!
//! Mappings with `input: {schema: x12/<guide>}` read the sets with X12 paths (`2300/CLM-01`,
//! `2010BA/NM1-03`, `2400[*]/SV1-01-2`): [`X12Env::resolve`] checks each against the guide
//! with `sluice_x12::path::check` (SL414 with a did-you-mean at the exact characters) and
//! gives its value type, whether it yields a list, and its PHI class, which feeds the
//! PHI-flow proof like an HL7 path's. Other stages that read paths refuse X12 records (SL260).
//! With `input: {..., profile: FILE, partner: NAME}` the guide is that trading partner's copy
//! (`sluice_x12::partner::overlaid`), so paths into what its overlays add (`2310Z/NM1-03`,
//! `2300/REF(ZZ)-02`) resolve, with the classes the profile gives them; [`check_partner_sources`]
//! then requires every source feeding such a map stage to read that partner's sets with the
//! same copy (SL484).
//!
//! One record per claim: a mapping with `each: loop(2300)` (`loop(2100)` for an 835) maps one
//! occurrence of the loop per record; [`X12Env::within`] is that loop (or a list's `- each:
//! loop(ID)`), and paths inside are checked against its context (SL426: no index on it or on a
//! loop around it, no HL level it is not under; SL425 an unknown loop, SL429 a list loop not
//! below it). [`plan_splits`] then tells each `format: x12` source feeding such a mapping to cut
//! that guide's sets at the loop, or reports SL428 when another consumer needs them whole.
//!
//! One record per person: `each: loop(2000C, 2000D)` names a chain of HL levels (each the HL
//! parent of the next, SL430 otherwise, [`X12Env::each_levels`]); a record is an occurrence of
//! any of them. A loop inside one HL level may stand for its level (`loop(2200D, 2200E)`: a
//! record per claim of a 277, the subscriber's or a dependent's). Paths are checked against
//! the last level (`within`), list loops may be below any level of the chain (`outer` is the
//! first).
//!
//! Invariants: diagnostics quote only what the spec wrote (guide ids, names, paths), never
//! data. The path the plan carries is the text as written (the runtime parses it again with
//! `sluice_x12::path::parse`, which accepted it here).

use sluice_spec_core::{PhiClass, ValueType};
use sluice_x12::guide::{Guide, Loop, Node};

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plan::X12SourcePlan;
use crate::source::Span;
use crate::spec::pipeline::X12Files;

/// The schema name of the records an X12 source emits.
pub const SCHEMA: &str = "x12/transaction-set";

/// The prefix of a mapping's X12 input schema: `x12/005010X222A1`.
pub const MAPPING_SCHEMA_PREFIX: &str = "x12/";

/// What X12 paths are checked against: one implementation guide, and the loop iterated where
/// the path is read (`each: loop(2300)`), if any.
#[derive(Clone, Copy, Debug)]
pub struct X12Env {
    pub guide: &'static Guide,
    /// The innermost loop bound by `each: loop(ID)` (the mapping's, or a list producer's).
    pub within: Option<&'static Loop>,
    /// With `each: loop(2000C, 2000D)` at the top of a mapping (a chain of HL levels), the
    /// first level named; `within` is the last. A record is one occurrence of any level of the
    /// chain, so paths are checked against the deepest and list loops may be below any of
    /// them. `None` inside a list item and with one loop.
    pub outer: Option<&'static Loop>,
}

/// What an X12 path addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The path as written.
    pub path: String,
    /// The type of one value.
    pub value_type: ValueType,
    pub phi: Option<PhiClass>,
    /// Several values (`[*]`).
    pub multi: bool,
}

impl X12Env {
    /// Resolves `text` written at `span` (the span of the path's characters).
    pub fn resolve(&self, text: &str, span: Span) -> Result<Resolved, Diagnostic> {
        match sluice_x12::path::check(self.guide, text) {
            Ok(info) => {
                if let Some(within) = self.within {
                    self.in_context(text, span, within)?;
                }
                Ok(Resolved { path: text.to_string(), value_type: info.value_type, phi: info.phi, multi: info.many })
            }
            Err(e) => {
                let at = if span.end - span.start == text.len() {
                    let end = (e.offset + e.len).min(text.len());
                    Span::new(span.file, span.start + e.offset.min(end), span.start + end)
                } else {
                    span
                };
                // An element candidate is `SEG-EE`: compare it with the last step as written.
                let wrong = if e.candidates.iter().any(|c| c.contains('-')) {
                    text.rsplit('/').next().unwrap_or(text)
                } else {
                    text.get(e.offset..(e.offset + e.len).min(text.len())).unwrap_or(text)
                };
                let valid = match e.candidates.len() {
                    0 => "X12 paths are written `LOOP/SEG-EE[-CC]`, e.g. `2300/CLM-01`, `2010BA/NM1-03`, `2400[*]/SV1-01-2`; docs/user-guide.md lists them".to_string(),
                    1..=16 => format!("valid here: {}", e.candidates.join(", ")),
                    n => format!("valid here: {}, ... ({n} in all)", e.candidates[..12].join(", ")),
                };
                let help = match did_you_mean(wrong, e.candidates.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`? {}", capitalized(&valid)),
                    None => valid,
                };
                Err(Diagnostic::error(
                    codes::X12_UNKNOWN_PATH,
                    format!("`{text}` is not a path of X12 guide {}: {}", self.guide.id, e.message),
                )
                .label(at, "not in the implementation guide here")
                .help(help))
            }
        }
    }
}

impl X12Env {
    /// SL426: inside `each: loop(I)`, a path must not index `I` or a loop enclosing it (each
    /// record or item holds one of them: an index would ask for another claim's), and must not
    /// read an HL level that is not above `I` (another subscriber's, another provider's).
    fn in_context(&self, text: &str, span: Span, within: &'static Loop) -> Result<(), Diagnostic> {
        let Ok(path) = sluice_x12::path::parse(text) else { return Ok(()) };
        let above = enclosing(self.guide, &within.id);
        for step in &path.loops {
            let Some(def) = self.guide.root.find(&step.id) else { continue };
            let at = Span::new(span.file, span.start + step.offset, span.start + step.offset + step.id.len());
            let at = if span.end - span.start == text.len() { at } else { span };
            let encloses = def.id == within.id || def.find(&within.id).is_some() || above.contains(&def.id);
            if encloses && step.index != sluice_x12::path::Index::First {
                let what = if def.id == within.id {
                    "the iterated loop".to_string()
                } else {
                    format!("loop {}, which encloses it", def.id)
                };
                return Err(Diagnostic::error(
                    codes::X12_PATH_OUTSIDE_EACH,
                    format!("`{text}` indexes {what}: inside `each: loop({})` there is one {} here", within.id, def.id),
                )
                .label(at, "one occurrence per record or item: an index is ambiguous")
                .help(format!(
                    "drop the index (`{}/...` reads the current {}), or iterate that loop in a list field with `- each: loop({})`",
                    def.id, def.id, def.id
                )));
            }
            // The HL levels holding this loop (itself, when it is one): one of them must be
            // the iterated loop, above it, or below it.
            let levels: Vec<&Loop> = self
                .guide
                .root
                .children
                .iter()
                .filter_map(|n| match n {
                    Node::Loop(l) if l.is_hierarchical() && (l.id == def.id || l.find(&def.id).is_some()) => Some(l),
                    _ => None,
                })
                .collect();
            let fits = |l: &&Loop| l.id == within.id || above.contains(&l.id) || within.find(&l.id).is_some();
            if !levels.is_empty() && !levels.iter().any(fits) {
                let level = levels[0].id.as_str();
                return Err(Diagnostic::error(
                    codes::X12_PATH_OUTSIDE_EACH,
                    format!("`{text}` reads HL level {level}, which is not above loop {} iterated here", within.id),
                )
                .label(at, format!("outside the context of each {}", within.id))
                .help(format!(
                    "inside `each: loop({})` the HL levels above it are {}; iterate {level} itself to read it",
                    within.id,
                    if above.is_empty() { "none".to_string() } else { above.join(", ") },
                )));
            }
        }
        Ok(())
    }

    /// The loops a record (or item) here is an occurrence of: `within`, and with `outer` the
    /// HL levels above it up to `outer` (or up to the level holding `outer`, then `outer`
    /// itself, when `outer` is a loop inside an HL level: `loop(2200D, 2200E)`).
    fn record_levels(&self) -> Vec<&'static Loop> {
        let mut levels: Vec<&'static Loop> = self.within.into_iter().collect();
        let Some(outer) = self.outer else { return levels };
        let outer_level = self.hl_level_of(outer);
        while let Some(last) = levels.last().copied() {
            if last.id == outer.id {
                break;
            }
            // Up one HL level from the one `last` is or is in; at `outer`'s level, `outer`.
            match self.hl_level_of(last).and_then(|l| l.parent.as_deref()).and_then(|p| self.guide.root.find(p)) {
                Some(l) if outer_level.is_some_and(|o| o.id == l.id) && l.id != outer.id => {
                    levels.push(outer);
                    break;
                }
                Some(l) => levels.push(l),
                None => break,
            }
        }
        levels
    }

    /// The HL level `l` is (itself) or is inside, when there is exactly one.
    fn hl_level_of(&self, l: &'static Loop) -> Option<&'static Loop> {
        if l.is_hierarchical() {
            return Some(l);
        }
        match self.hl_holders(&l.id).as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The HL levels whose loops hold loop `id` (the 837P's 2300 is in two: 2000B, 2000C).
    fn hl_holders(&self, id: &str) -> Vec<&'static Loop> {
        self.guide
            .root
            .children
            .iter()
            .filter_map(|n| match n {
                Node::Loop(h) if h.is_hierarchical() && h.find(id).is_some() => Some(h),
                _ => None,
            })
            .collect()
    }

    /// The loop `id` names, for `each: loop(ID)`, or SL425 at `span` with the closest id.
    pub fn each_loop(&self, id: &str, span: Span) -> Result<&'static Loop, Diagnostic> {
        if let Some(l) = self.guide.root.find(id) {
            let levels = self.record_levels();
            let nested = levels.is_empty() || levels.iter().any(|w| w.find(id).is_some());
            if nested {
                return Ok(l);
            }
            let w = levels.iter().rev().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", ");
            return Err(Diagnostic::error(
                codes::X12_LOOP_NOT_NESTED,
                format!("loop {id} is not inside loop {w}, which is iterated here"),
            )
            .label(span, format!("not below {w} in guide {}", self.guide.id))
            .help(format!(
                "a list inside `each: loop({w})` iterates a loop below it ({}), or read {id} with a plain path",
                levels.iter().rev().map(|l| below(l)).collect::<Vec<_>>().join("; ")
            )));
        }
        let mut ids = Vec::new();
        all_loops(&self.guide.root, &mut ids);
        let d = Diagnostic::error(codes::X12_UNKNOWN_LOOP, format!("X12 guide {} has no loop `{id}`", self.guide.id))
            .label(span, "not a loop of the implementation guide");
        let best = did_you_mean(id, ids.iter().copied());
        Err(match best {
            Some(b) => d.help(format!("did you mean `loop({b})`? The loops are {}", ids.join(", "))),
            None => d.help(format!("the loops of {} are {}", self.guide.id, ids.join(", "))),
        })
    }
}

impl X12Env {
    /// The loops of `each: loop(A, B, ...)` at the top of a mapping (`ids`: each id with where
    /// it is written). One loop is any loop of the guide (SL425 when unknown). Several must
    /// each be an HL level or a loop inside exactly one HL level, and those levels must form a
    /// chain, each under the one before (SL430, listing the guide's HL levels): a record per
    /// subscriber and per dependent (`loop(2000C, 2000D)` of a 271), or per claim of either
    /// (`loop(2200D, 2200E)` of a 277, the claim status loops of the subscriber and dependent
    /// levels). A chain is what [`sluice_x12::cut::cut_any`] gives each occurrence its own
    /// context for: a dependent's record keeps its subscriber's level, not the subscriber's
    /// own occurrences.
    pub fn each_levels(&self, ids: &[(&str, Span)]) -> Result<Vec<&'static Loop>, Diagnostic> {
        let mut loops: Vec<&'static Loop> = Vec::new();
        for (id, span) in ids {
            loops.push(self.each_loop(id, *span)?);
        }
        if loops.len() < 2 {
            return Ok(loops);
        }
        let hl_levels: Vec<&'static Loop> = self
            .guide
            .root
            .children
            .iter()
            .filter_map(|n| match n {
                Node::Loop(l) if l.is_hierarchical() => Some(l),
                _ => None,
            })
            .collect();
        let levels: Vec<String> = hl_levels
            .iter()
            .map(|l| match &l.parent {
                Some(p) => format!("{} (under {p})", l.id),
                None => l.id.clone(),
            })
            .collect();
        let guide = self.guide.schema_name();
        let fail = |span: Span, message: String, label: &str| {
            let help = if levels.is_empty() {
                format!("guide {guide} has no HL levels: iterate one loop, such as `each: loop({})`", ids[0].0)
            } else {
                format!(
                    "name a chain of HL levels, each under the one before (`each: loop(2000C, 2000D)`: a record per subscriber and per dependent), or a loop inside each of them (a 277's `loop(2200D, 2200E)`: a record per claim); the HL levels of {guide} are {}",
                    levels.join(", ")
                )
            };
            Err(Diagnostic::error(codes::X12_EACH_LEVELS, message).label(span, label.to_string()).help(help))
        };
        let mut chain: Vec<&'static Loop> = Vec::new();
        for (i, (l, (id, span))) in loops.iter().zip(ids).enumerate() {
            let level = if l.is_hierarchical() {
                *l
            } else {
                let holders = self.hl_holders(id);
                match holders.as_slice() {
                    [one] => *one,
                    [] => {
                        return fail(
                            *span,
                            format!(
                                "`each` names several loops, and loop {id} is neither an HL level of guide {guide} nor inside one"
                            ),
                            "not in an HL level",
                        );
                    }
                    _ => {
                        let names: Vec<&str> = holders.iter().map(|h| h.id.as_str()).collect();
                        return fail(
                            *span,
                            format!(
                                "`each` names several loops, and loop {id} is inside several HL levels of guide {guide} ({})",
                                names.join(", ")
                            ),
                            "in more than one HL level",
                        );
                    }
                }
            };
            if i > 0 && level.parent.as_deref() != Some(chain[i - 1].id.as_str()) {
                let prev = &chain[i - 1].id;
                let what = if level.id == *id {
                    format!("HL level {id}")
                } else {
                    format!("loop {id} (in HL level {})", level.id)
                };
                return fail(
                    *span,
                    format!("{what} is not under {prev}, the level named before it"),
                    &format!("its HL parent is {}", level.parent.as_deref().unwrap_or("none")),
                );
            }
            chain.push(level);
        }
        Ok(loops)
    }
}

/// The loop ids below `l` (for help texts).
fn below(l: &Loop) -> String {
    let mut ids = Vec::new();
    all_loops(l, &mut ids);
    if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
}

/// The loop ids below `at`, each once, in guide order.
fn all_loops<'g>(at: &'g Loop, out: &mut Vec<&'g str>) {
    for c in &at.children {
        if let Node::Loop(l) = c {
            if !out.contains(&l.id.as_str()) {
                out.push(&l.id);
            }
            all_loops(l, out);
        }
    }
}

/// The loops above loop `id`: those it is nested in, and for HL levels the levels their
/// `parent=` names, up to the top (`2000B`, `2000A` for `2300` in the 837P).
pub fn enclosing(guide: &Guide, id: &str) -> Vec<String> {
    /// Every chain of loops from the top to a loop `id` (a loop id may be at several places:
    /// the 837P's `2300` is under both `2000B` and `2000C`).
    fn chains<'g>(at: &'g Loop, id: &str, path: &mut Vec<&'g Loop>, out: &mut Vec<Vec<&'g Loop>>) {
        for c in &at.children {
            if let Node::Loop(l) = c {
                if l.id == id {
                    out.push(path.clone());
                    continue;
                }
                path.push(l);
                chains(l, id, path, out);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    chains(&guide.root, id, &mut Vec::new(), &mut found);
    let mut out: Vec<String> = Vec::new();
    let mut next: Vec<String> = Vec::new();
    for l in found.iter().flatten() {
        if !out.contains(&l.id) {
            out.push(l.id.clone());
        }
        next.extend(l.parent.clone());
    }
    next.extend(guide.root.find(id).and_then(|l| l.parent.clone()));
    // HL parents, transitively (HL levels are siblings in the guide; HL02 nests them).
    while let Some(p) = next.pop() {
        if out.contains(&p) || p == id {
            continue;
        }
        if let Some(l) = guide.root.find(&p) {
            next.extend(l.parent.clone());
        }
        out.push(p);
    }
    out
}

/// The loop ids of `each: loop(ID)` or `each: loop(A, B)` as written, each with its byte
/// offset in `text` (`None`: not that form).
pub fn loop_call(text: &str) -> Option<Vec<(&str, usize)>> {
    let start = text.find("loop(")? + "loop(".len();
    if !text[..start - "loop(".len()].trim().is_empty() {
        return None;
    }
    let inner = text[start..].trim_end().strip_suffix(')')?;
    let mut ids = Vec::new();
    let mut at = start;
    for piece in inner.split(',') {
        let id = piece.trim();
        if id.is_empty() {
            return None;
        }
        ids.push((id, at + (piece.len() - piece.trim_start().len())));
        at += piece.len() + 1;
    }
    Some(ids)
}

/// SL428: source `source` sends sets of `guide` to consumers that disagree on how they are
/// cut (per `loop` for one, whole or per another loop for `other`).
pub fn split_conflict(
    source: &str,
    guide: &str,
    wants: (&str, &str),
    other: (&str, &str),
    at: Span,
    other_at: Span,
) -> Diagnostic {
    Diagnostic::error(
        codes::X12_SPLIT_CONFLICT,
        format!("source `{source}` cannot give {guide} sets both {} and {}", wants.1, other.1),
    )
    .label(at, format!("map stage `{}` reads them {}", wants.0, wants.1))
    .label(other_at, format!("`{}` reads them {}", other.0, other.1))
    .help("a source cuts each set one way: read the sets with a second source on the same files (one per way), or give both mappings the same `each: loop(...)`")
}

/// How a consumer reads one guide's sets: cut at a loop (or several), or whole.
fn reading(loops: &[String]) -> String {
    match loops {
        [] => "whole".to_string(),
        l => format!("one per loop {}", l.join(" or ")),
    }
}

/// The `format: x12` sources upstream of component `i`, through components passing sets on.
fn x12_sources_of(comps: &[crate::plan::Component], i: usize) -> Vec<usize> {
    use crate::plan::ComponentKind;
    let index = |name: &str| comps.iter().position(|c| c.name == name);
    let mut out = Vec::new();
    let mut work = vec![i];
    let mut seen = vec![false; comps.len()];
    while let Some(j) = work.pop() {
        for input in &comps[j].inputs {
            let Some(k) = index(&input.component) else { continue };
            if std::mem::replace(&mut seen[k], true) {
                continue;
            }
            match &comps[k].kind {
                ComponentKind::Source(s) if s.x12.is_some() => out.push(k),
                _ if comps[k].emits == SCHEMA => work.push(k),
                _ => {}
            }
        }
    }
    out
}

/// SL484: every map stage whose mapping reads a partner's copy of its guide (`partner`) must
/// be fed by sources that read that partner's sets with the same copy: a profile with a
/// partner of that name whose overlays of the guide are the mapping's. A source without a
/// profile, or whose profile lacks the partner or overlays the guide otherwise, would validate
/// the sets with another guide than the one the mapping reads them with. `span_of` gives where
/// a component is named in the pipeline.
pub fn check_partner_sources(
    diags: &mut crate::diagnostics::Diagnostics,
    plan: &crate::plan::Plan,
    span_of: &dyn Fn(&str) -> Span,
) -> bool {
    use crate::plan::ComponentKind;
    let comps = &plan.components;
    let mut ok = true;
    for (i, c) in comps.iter().enumerate() {
        let ComponentKind::Map(m) = &c.kind else { continue };
        let Some(want) = &m.x12_partner else { continue };
        let Some(guide) =
            m.input_schema.strip_prefix(MAPPING_SCHEMA_PREFIX).and_then(sluice_x12::guide::by_schema_name)
        else {
            continue;
        };
        for s in x12_sources_of(comps, i) {
            let ComponentKind::Source(src) = &comps[s].kind else { continue };
            let partners = src.x12.as_ref().and_then(|x| x.partners.as_deref());
            let why = match partners {
                None => Some("reads its sets without a trading-partner profile (the bundled guides)".to_string()),
                Some(p) => match p.partners.iter().find(|x| x.name == want.name) {
                    None => Some(format!("has profile `{}`, which has no partner `{}`", p.name, want.name)),
                    Some(x) if crate::spec::x12_profile::overlays_on(x, guide) != want.overlays => Some(format!(
                        "reads partner `{}`'s {} sets with other overlays (profile `{}`)",
                        want.name, guide.id, p.name
                    )),
                    Some(_) => None,
                },
            };
            let Some(why) = why else { continue };
            ok = false;
            diags.push(
                Diagnostic::error(
                    codes::X12_MAPPING_PARTNER_SOURCE,
                    format!(
                        "map stage `{}` reads partner `{}`'s copy of {}, but source `{}` {why}",
                        c.name, want.name, guide.id, comps[s].name
                    ),
                )
                .label(span_of(&c.name), format!("mapping `{}` reads partner `{}`'s copy", m.mapping, want.name))
                .label(span_of(&comps[s].name), "validates and cuts the sets with another guide")
                .help("give the source the `profile` the mapping names (its `input.profile`), so both read the partner's sets with the same copy of the guide"),
            );
        }
    }
    ok
}

/// Wires `each: loop(ID)` mappings to their sources: every `format: x12` source feeding (through
/// routes and filters) a map stage whose mapping cuts a guide's sets at a loop gets that
/// [`crate::plan::X12Split`]. SL428 when another consumer of the same source reads the same
/// guide's sets another way (whole, or at another loop; a sink takes them whole). `span_of`
/// gives where a component is named in the pipeline.
pub fn plan_splits(
    diags: &mut crate::diagnostics::Diagnostics,
    plan: &mut crate::plan::Plan,
    span_of: &dyn Fn(&str) -> Span,
) -> bool {
    use crate::plan::ComponentKind;
    let comps = &plan.components;
    let sources_of = |i: usize| x12_sources_of(comps, i);
    // Per source: (guide or "" for any, how (the loops), consumer) of each consumer of its sets.
    let mut readers: Vec<Vec<(String, Vec<String>, usize)>> = vec![Vec::new(); comps.len()];
    for (i, c) in comps.iter().enumerate() {
        let read = match &c.kind {
            ComponentKind::Map(m) => match m.input_schema.strip_prefix(MAPPING_SCHEMA_PREFIX) {
                Some(g) => (g.to_string(), m.x12_each.clone()),
                None => continue,
            },
            ComponentKind::Sink(_) | ComponentKind::Validate(_) | ComponentKind::Mask(_) => (String::new(), Vec::new()),
            _ => continue,
        };
        for s in sources_of(i) {
            readers[s].push((read.0.clone(), read.1.clone(), i));
        }
    }
    let mut ok = true;
    let mut splits = Vec::new();
    for (s, rs) in readers.iter().enumerate() {
        let mut split: Vec<crate::plan::X12Split> = Vec::new();
        for (guide, l, by) in rs {
            if l.is_empty() || split.iter().any(|x| &x.guide == guide) {
                continue;
            }
            let other = rs.iter().find(|(g, h, _)| (g == guide || g.is_empty()) && h != l);
            if let Some((_, h, o)) = other {
                let (a, b) = (&comps[*by].name, &comps[*o].name);
                diags.push(split_conflict(
                    &comps[s].name,
                    guide,
                    (a, &reading(l)),
                    (b, &reading(h)),
                    span_of(a),
                    span_of(b),
                ));
                ok = false;
                continue;
            }
            split.push(crate::plan::X12Split { guide: guide.clone(), loops: l.clone() });
        }
        split.sort_by(|a, b| a.guide.cmp(&b.guide));
        splits.push((s, split));
    }
    for (s, split) in splits {
        if let ComponentKind::Source(src) = &mut plan.components[s].kind
            && let Some(x) = src.x12.as_mut()
        {
            x.split = split;
        }
    }
    ok
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// The bundled guide a mapping's `input.schema` names (`x12/005010X222A1`), or SL261 with the
/// closest id.
pub fn mapping_guide(schema: &str, span: Span) -> Result<&'static Guide, Diagnostic> {
    let id = schema.strip_prefix(MAPPING_SCHEMA_PREFIX).unwrap_or(schema);
    sluice_x12::guide::by_schema_name(id).ok_or_else(|| {
        let catalog = sluice_x12::guide::catalog();
        let known: Vec<String> = catalog.iter().map(|g| g.schema_name.clone()).collect();
        let sharing: Vec<String> =
            catalog.iter().filter(|g| g.id == id).map(|g| format!("`x12/{}`", g.schema_name)).collect();
        if sharing.len() > 1 {
            // The 270 and the 271 share `005010X279A1`: the set id says which.
            return Diagnostic::error(
                codes::X12_UNKNOWN_GUIDE,
                format!("`{schema}` names {} bundled X12 guides that share this id", sharing.len()),
            )
            .label(span, "add the transaction set id")
            .help(format!("write {}", sharing.join(" or ")));
        }
        if let Some(by) = alias_of(id) {
            return Diagnostic::error(
                codes::X12_UNKNOWN_GUIDE,
                format!("`{schema}` names no bundled X12 implementation guide"),
            )
            .label(span, format!("sets of this version are read by the {by} guide"))
            .help(format!("write `x12/{by}`: it maps {id} sets too"));
        }
        Diagnostic::error(codes::X12_UNKNOWN_GUIDE, format!("`{schema}` names no bundled X12 implementation guide"))
            .label(span, "not a guide id")
            .help(format!(
                "write `x12/<guide>`; the bundled guides are {}",
                known.iter().map(|g| format!("x12/{g}")).collect::<Vec<_>>().join(", ")
            ))
            .suggest(id, known.iter().map(String::as_str))
    })
}

/// SL415: a map stage whose mapping reads `guide` sets gets `wrong` records.
pub fn map_input_mismatch(stage: &str, guide: &str, wrong: &str, input_at: Span, mapping_at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::X12_MAP_INPUT_MISMATCH,
        format!("map stage `{stage}` maps X12 {guide} transaction sets, but its input emits {wrong}"),
    )
    .label(input_at, format!("emits {wrong}"))
    .label(mapping_at, format!("the mapping reads x12/{guide}"))
    .help(format!("feed it from a `format: x12` source reading {guide} (`guides: [{guide}]`)"))
}

/// The bundled guide that reads sets of `version` under another name (`005010X223A2` for the
/// `005010X223A3` errata), when one does.
fn alias_of(version: &str) -> Option<&'static str> {
    sluice_x12::guide::catalog().iter().find(|g| g.aliases.iter().any(|a| a == version)).map(|g| g.id.as_str())
}

/// The ids of the bundled guides (`005010X222A1`, ...).
pub fn guide_ids() -> Vec<&'static str> {
    let mut ids: Vec<&'static str> = Vec::new();
    for g in sluice_x12::guide::catalog() {
        // The 270 and the 271 share `005010X279A1`.
        if !ids.contains(&g.id.as_str()) {
            ids.push(g.id.as_str());
        }
    }
    ids
}

/// Checks an X12 source's keys; returns its plan (`acks`: the resolved directory).
pub fn source_plan(
    diags: &mut crate::diagnostics::Diagnostics,
    spec: &X12Files,
    acks: Option<String>,
) -> Option<X12SourcePlan> {
    let known = guide_ids();
    let mut ok = true;
    let mut guides = Vec::new();
    for g in &spec.guides {
        if known.contains(&g.text.as_str()) {
            guides.push(g.text.clone());
            continue;
        }
        ok = false;
        let d = Diagnostic::error(
            codes::X12_UNKNOWN_GUIDE,
            format!("`{}` is not a bundled X12 implementation guide", g.text),
        );
        // An errata version (`005010X223A3`) is read by a bundled guide: name that one.
        if let Some(by) = alias_of(&g.text) {
            diags.push(
                d.label(g.span, format!("sets of this version are read by the {by} guide"))
                    .help(format!("write `{by}`: it reads {} sets too (a set keeps the version it names)", g.text)),
            );
            continue;
        }
        let d = d.label(g.span, "not a guide id").help(format!("the bundled guides are {}", known.join(", ")));
        diags.push(d.suggest(&g.text, known.iter().copied()));
    }
    ok.then_some(X12SourcePlan { guides, mode: spec.mode, acks, split: Vec::new(), partners: None })
}

/// SL262: `acks` without a state store for the control numbers.
pub fn acks_need_state(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::X12_ACKS_NEED_STATE,
        format!("source `{source}` writes X12 acknowledgments, and the pipeline has no state store for their control numbers"),
    )
    .label(at, "acknowledgments need control numbers that never repeat")
    .help("add `state: {path: state/sluice.db}` (or `state: {url: ...}`) to the pipeline, or remove `acks`")
}

/// SL260: a stage or sink `name` that cannot take X12 transaction sets (`what` it needs).
pub fn input_mismatch(kind: &str, name: &str, what: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::X12_INPUT_MISMATCH,
        format!("{kind} `{name}` needs {what}, but its input emits raw X12 transaction sets"),
    )
    .label(at, format!("emits {SCHEMA}"))
    .help("X12 sets are validated by their source (`mode`) and read by a map stage whose mapping has `input: {schema: x12/<guide>}` (paths such as `2300/CLM-01`); or write the raw sets to a `jsonl` sink with `phi: {allowed: true, reason: ...}`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    fn env() -> X12Env {
        X12Env { guide: sluice_x12::guide::by_id("005010X222A1").expect("bundled"), within: None, outer: None }
    }

    fn span(text: &str) -> Span {
        Span::new(FileId(0), 100, 100 + text.len())
    }

    #[test]
    fn paths_give_types_lists_and_phi_classes() {
        let r = env().resolve("2010BA/NM1-03", span("2010BA/NM1-03")).unwrap();
        assert_eq!((r.value_type, r.phi, r.multi), (ValueType::String, Some(PhiClass::Name), false));
        let r = env().resolve("2300[*]/CLM-02", span("2300[*]/CLM-02")).unwrap();
        assert_eq!((r.value_type, r.multi), (ValueType::Decimal, true));
        assert_eq!(env().resolve("2010BA/DMG-02", span("2010BA/DMG-02")).unwrap().phi, Some(PhiClass::Dob));
    }

    #[test]
    fn inside_each_loop_paths_keep_to_the_iterated_loop_and_its_context() {
        let guide = env().guide;
        let claims = X12Env { guide, within: Some(guide.root.find("2300").unwrap()), outer: None };
        for ok in ["2300/CLM-01", "2400[*]/SV1-01-2", "2010BA/NM1-03", "2010AA/NM1-09", "BHT-03", "1000A/NM1-03"] {
            assert!(claims.resolve(ok, span(ok)).is_ok(), "{ok}");
        }
        for (bad, at) in [("2300[2]/CLM-01", 100..104), ("2000B[*]/SBR-01", 100..105)] {
            let d = claims.resolve(bad, span(bad)).unwrap_err();
            assert_eq!(d.code.code, "SL426", "{bad}");
            assert_eq!(d.labels[0].0.start..d.labels[0].0.end, at, "{bad}");
        }
        let providers = X12Env { guide, within: Some(guide.root.find("2000A").unwrap()), outer: None };
        assert_eq!(providers.resolve("2010BA/NM1-03", span("2010BA/NM1-03")).unwrap_err().code.code, "SL426");
        assert!(providers.resolve("2010AA/NM1-03", span("2010AA/NM1-03")).is_ok());
        let mut above = enclosing(guide, "2300");
        above.sort();
        assert_eq!(above, ["2000A", "2000B", "2000C"]);
        let d = env().each_loop("2030", span("2030")).unwrap_err();
        assert_eq!(d.code.code, "SL425");
        assert!(d.help.as_deref().is_some_and(|h| h.contains("`loop(2300)`")), "{:?}", d.help);
        assert_eq!(claims.each_loop("2000B", span("2000B")).unwrap_err().code.code, "SL429");
        assert!(claims.each_loop("2400", span("2400")).is_ok());
        assert_eq!(loop_call(" loop(2300) "), Some(vec![("2300", 6)]));
        assert_eq!(loop_call("loop(2000C, 2000D)"), Some(vec![("2000C", 5), ("2000D", 12)]));
        assert_eq!(loop_call("loop(2000C,)"), None);
        assert_eq!(loop_call("2300[*]/CLM-01"), None);
    }

    #[test]
    fn wrong_paths_point_at_the_wrong_characters_with_the_closest() {
        let text = "2010BA/NM1-33";
        let d = env().resolve(text, span(text)).unwrap_err();
        assert_eq!(d.code.code, "SL414");
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (111, 113));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("did you mean `NM1-03`")), "{:?}", d.help);
        let text = "2301/CLM-01";
        let d = env().resolve(text, span(text)).unwrap_err();
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (100, 104));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("`2300`")), "{:?}", d.help);
        let text = "2300/CLX-01";
        let d = env().resolve(text, span(text)).unwrap_err();
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (105, 108));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("`CLM`")), "{:?}", d.help);
        assert!(mapping_guide("x12/005010X222A2", span("x")).is_err());
        assert!(mapping_guide("x12/005010X221A1", span("x")).is_ok());
    }

    #[test]
    fn institutional_and_dental_paths_and_the_errata_version() {
        let g = mapping_guide("x12/005010X223A2", span("x")).unwrap();
        let env = X12Env { guide: g, within: None, outer: None };
        let r = env.resolve("2300/HI(ABK)-01-2", span("2300/HI(ABK)-01-2")).unwrap();
        assert_eq!(r.value_type, ValueType::String);
        assert_eq!(env.resolve("2300/HI(BBR)-01-4", span("2300/HI(BBR)-01-4")).unwrap().phi, Some(PhiClass::Date));
        assert_eq!(env.resolve("2300/CL1-03", span("2300/CL1-03")).unwrap().value_type, ValueType::Code);
        assert_eq!(env.resolve("2400/SV2-05", span("2400/SV2-05")).unwrap().value_type, ValueType::Decimal);
        assert_eq!(env.resolve("2300/HI(ABF)-01-9", span("2300/HI(ABF)-01-9")).unwrap().value_type, ValueType::Code);
        // The 837I has no SV1 and the 837P no CL1.
        assert_eq!(env.resolve("2400/SV1-02", span("2400/SV1-02")).unwrap_err().code.code, "SL414");
        let d = mapping_guide("x12/005010X223A3", span("x")).unwrap_err();
        assert_eq!(d.code.code, "SL261");
        assert_eq!(d.help.as_deref(), Some("write `x12/005010X223A2`: it maps 005010X223A3 sets too"));
        let g = mapping_guide("x12/005010X224A2", span("x")).unwrap();
        let env = X12Env { guide: g, within: None, outer: None };
        let r = env.resolve("2400[*]/TOO-02", span("2400[*]/TOO-02")).unwrap();
        assert!(r.multi);
        assert_eq!(env.resolve("2010BA/NM1-09", span("2010BA/NM1-09")).unwrap().phi, Some(PhiClass::HealthPlanId));
    }

    #[test]
    fn version_4010_guides_check_paths_against_their_own_elements() {
        let g = mapping_guide("x12/004010X098A1", span("x")).unwrap();
        let env = X12Env { guide: g, within: None, outer: None };
        assert_eq!(env.resolve("2300/CLM-01", span("2300/CLM-01")).unwrap().phi, Some(PhiClass::AccountNumber));
        assert_eq!(env.resolve("2010BA/NM1-03", span("2010BA/NM1-03")).unwrap().phi, Some(PhiClass::Name));
        // The billing provider's secondary ids are a 2010AA REF in 4010.
        assert!(env.resolve("2010AA/REF(1G)-02", span("2010AA/REF(1G)-02")).is_ok());
        // NM112 and the eighth C003 component came in 5010.
        assert!(env.resolve("2010BA/NM1-12", span("2010BA/NM1-12")).is_err());
        assert!(env.resolve("2400/SV1-01-8", span("2400/SV1-01-8")).is_err());
        assert!(mapping_guide("x12/004010X091A1", span("x")).is_ok());
        assert!(mapping_guide("x12/004010X096A1", span("x")).is_ok());
    }

    #[test]
    fn eligibility_mappings_name_the_set_where_the_270_and_271_share_a_guide_id() {
        let d = mapping_guide("x12/005010X279A1", span("x")).unwrap_err();
        assert_eq!(d.code.code, "SL261");
        let help = d.help.as_deref().unwrap_or("");
        assert!(help.contains("x12/005010X279A1/270") && help.contains("x12/005010X279A1/271"), "{help}");
        let g271 = mapping_guide("x12/005010X279A1/271", span("x")).unwrap();
        assert_eq!(g271.set_id, "271");
        let env = X12Env { guide: g271, within: None, outer: None };
        let r = env.resolve("2100C/NM1-03", span("2100C/NM1-03")).unwrap();
        assert_eq!((r.value_type, r.phi), (ValueType::String, Some(PhiClass::Name)));
        let r = env.resolve("2110C[*]/EB-01", span("2110C[*]/EB-01")).unwrap();
        assert_eq!((r.value_type, r.multi), (ValueType::Code, true));
        assert_eq!(env.resolve("2110C/EQ-01", span("2110C/EQ-01")).unwrap_err().code.code, "SL414");
        let g270 = mapping_guide("x12/005010X279A1/270", span("x")).unwrap();
        let env = X12Env { guide: g270, within: None, outer: None };
        assert_eq!(env.resolve("2100C/DMG-02", span("2100C/DMG-02")).unwrap().phi, Some(PhiClass::Dob));
        let g834 = mapping_guide("x12/005010X220A1", span("x")).unwrap();
        let env = X12Env { guide: g834, within: None, outer: None };
        assert_eq!(env.resolve("2100A/NM1-09", span("2100A/NM1-09")).unwrap().phi, Some(PhiClass::Ssn));
        assert_eq!(env.resolve("2300[*]/HD-03", span("2300[*]/HD-03")).unwrap().value_type, ValueType::Code);
        // One record per person: a chain of HL levels; lists may iterate below any of them.
        let spans = |ids: &[&'static str]| ids.iter().map(|i| (*i, span(i))).collect::<Vec<_>>();
        let top = X12Env { guide: g271, within: None, outer: None };
        let people = top.each_levels(&spans(&["2000C", "2000D"])).unwrap();
        assert_eq!(people.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["2000C", "2000D"]);
        let person = X12Env { guide: g271, within: Some(people[1]), outer: Some(people[0]) };
        assert!(person.each_loop("2110C", span("2110C")).is_ok());
        assert!(person.each_loop("2110D", span("2110D")).is_ok());
        assert_eq!(person.each_loop("2100B", span("2100B")).unwrap_err().code.code, "SL429");
        assert!(person.resolve("2100D/NM1-03", span("2100D/NM1-03")).is_ok());
        assert!(person.resolve("2100C/NM1-09", span("2100C/NM1-09")).is_ok());
        assert_eq!(person.resolve("2000C[2]/HL-01", span("2000C[2]/HL-01")).unwrap_err().code.code, "SL426");
        for bad in [&["2000D", "2000C"][..], &["2000C", "2110C"], &["2000B", "2000D"]] {
            let d = top.each_levels(&spans(bad)).unwrap_err();
            assert_eq!(d.code.code, "SL430", "{bad:?}");
            assert!(d.help.as_deref().is_some_and(|h| h.contains("2000D (under 2000C)")), "{:?}", d.help);
        }
        let enrollment = X12Env { guide: g834, within: None, outer: None };
        let d = enrollment.each_levels(&spans(&["2000", "2300"])).unwrap_err();
        assert!(d.help.as_deref().is_some_and(|h| h.contains("has no HL levels")), "{:?}", d.help);
        assert_eq!(enrollment.each_levels(&spans(&["2000"])).unwrap().len(), 1);
        // The sources' `guides` list names the id once.
        assert_eq!(guide_ids().iter().filter(|g| **g == "005010X279A1").count(), 1);
    }

    #[test]
    fn claim_status_paths_are_checked_against_the_276_and_277_guides() {
        let d = mapping_guide("x12/005010X212", span("x")).unwrap_err();
        assert_eq!(d.code.code, "SL261");
        let help = d.help.as_deref().unwrap_or("");
        assert!(help.contains("x12/005010X212/276") && help.contains("x12/005010X212/277"), "{help}");
        for schema in ["x12/005010X212/276", "x12/005010X212/277", "x12/004010X093A1/276", "x12/004010X093A1/277"] {
            let env = X12Env { guide: mapping_guide(schema, span("x")).unwrap(), within: None, outer: None };
            let r = env.resolve("2200D/TRN-02", span("2200D/TRN-02")).unwrap();
            assert_eq!((r.value_type, r.phi), (ValueType::String, None), "{schema}");
            let r = env.resolve("2100D/NM1-09", span("2100D/NM1-09")).unwrap();
            assert_eq!(r.phi, Some(PhiClass::HealthPlanId), "{schema}");
            assert_eq!(
                env.resolve("2100E/NM1-03", span("2100E/NM1-03")).unwrap().phi,
                Some(PhiClass::Name),
                "{schema}"
            );
            assert_eq!(
                env.resolve("2200D/REF(EJ)-02", span("2200D/REF(EJ)-02")).unwrap().phi,
                Some(PhiClass::AccountNumber)
            );
            assert!(env.resolve("2200D[*]/DTP-03", span("2200D[*]/DTP-03")).unwrap().multi, "{schema}");
        }
        let g276 = mapping_guide("x12/005010X212/276", span("x")).unwrap();
        let request = X12Env { guide: g276, within: None, outer: None };
        assert_eq!(request.resolve("2000D/DMG-02", span("2000D/DMG-02")).unwrap().phi, Some(PhiClass::Dob));
        assert_eq!(request.resolve("2210D[*]/SVC-02", span("2210D[*]/SVC-02")).unwrap().value_type, ValueType::Decimal);
        // Service lines are 2210D in the request, 2220D in the response; no STC in a request.
        assert_eq!(request.resolve("2220D/SVC-02", span("2220D/SVC-02")).unwrap_err().code.code, "SL414");
        assert_eq!(request.resolve("2200D/STC-01-1", span("2200D/STC-01-1")).unwrap_err().code.code, "SL414");
        let g277 = mapping_guide("x12/005010X212/277", span("x")).unwrap();
        let response = X12Env { guide: g277, within: None, outer: None };
        let r = response.resolve("2200D[*]/STC-01-2", span("2200D[*]/STC-01-2")).unwrap();
        assert_eq!((r.value_type, r.multi), (ValueType::String, true));
        assert_eq!(response.resolve("2200D/STC-04", span("2200D/STC-04")).unwrap().value_type, ValueType::Decimal);
        assert!(response.resolve("2220D[*]/SVC-03", span("2220D[*]/SVC-03")).is_ok());
        assert!(response.resolve("2200B/STC-01-1", span("2200B/STC-01-1")).is_ok());
        // One record per claim: a loop inside each HL level of a chain stands for its level;
        // lists iterate below either claim loop, not the receiver's (2200B is in 2000B).
        let spans = |ids: &[&'static str]| ids.iter().map(|i| (*i, span(i))).collect::<Vec<_>>();
        let claims = response.each_levels(&spans(&["2200D", "2200E"])).unwrap();
        let claim = X12Env { guide: g277, within: Some(claims[1]), outer: Some(claims[0]) };
        assert!(claim.each_loop("2220D", span("2220D")).is_ok());
        assert!(claim.each_loop("2220E", span("2220E")).is_ok());
        assert_eq!(claim.each_loop("2200B", span("2200B")).unwrap_err().code.code, "SL429");
        assert!(claim.resolve("2200D/TRN-02", span("2200D/TRN-02")).is_ok());
        assert!(claim.resolve("2100D/NM1-09", span("2100D/NM1-09")).is_ok());
        let d = response.each_levels(&spans(&["2200E", "2200D"])).unwrap_err();
        assert_eq!(d.code.code, "SL430");
        assert!(d.message.contains("loop 2200D (in HL level 2000D) is not under 2000E"), "{}", d.message);
        // The 837P's 2300 is in two HL levels (2000B and 2000C): it cannot stand for one.
        let claims_837 =
            X12Env { guide: mapping_guide("x12/005010X222A1", span("x")).unwrap(), within: None, outer: None };
        let d = claims_837.each_levels(&spans(&["2000A", "2300"])).unwrap_err();
        assert!(d.message.contains("inside several HL levels"), "{}", d.message);
        // C043-04 (code list qualifier) came in 5010.
        let g4010 = mapping_guide("x12/004010X093A1/277", span("x")).unwrap();
        let old = X12Env { guide: g4010, within: None, outer: None };
        assert!(old.resolve("2200D/STC-01-4", span("2200D/STC-01-4")).is_err());
        assert!(response.resolve("2200D/STC-01-4", span("2200D/STC-01-4")).is_ok());
        // One record per claim (`each: loop(2200D)`): its service lines are a list loop below it.
        let claims = X12Env { guide: g277, within: Some(g277.root.find("2200D").unwrap()), outer: None };
        assert!(claims.resolve("2100D/NM1-09", span("2100D/NM1-09")).is_ok());
        assert!(claims.each_loop("2220D", span("2220D")).is_ok());
        assert_eq!(guide_ids().iter().filter(|g| **g == "005010X212").count(), 1);
    }
}

/// A mapping that reads a trading partner's copy of its guide, through the driver: the
/// example profile (`examples/x12-partners/partners.yaml`), mappings and pipelines written to
/// a folder of their own.
#[cfg(test)]
mod partner_tests {
    use std::path::PathBuf;

    use crate::compile::Compiler;

    const MAPPING: &str = "kind: mapping
name: acme-claim
input:
  schema: x12/005010X222A1
  profile: partners.yaml
  partner: acme_clearinghouse
output: canonical/claim@1
each: loop(2300)
fields:
  reference_id: BHT-03
  claim_id: 2300/CLM-01
  total_charge: 2300/CLM-02
  billing_provider:
    name: 2310Z/NM1-03
    tax_id: 2300/REF(ZZ)-02
";

    const PIPELINE: &str = "kind: pipeline
name: acme
sources:
  claims:
    type: files
    format: x12
    path: data/*.x12
    profile: SOURCE_PROFILE
stages:
  claim:
    type: map
    inputs: [claims]
    mapping: mapping.yaml
sinks:
  out:
    type: jsonl
    inputs: [claim]
    path: out/claims.jsonl
    phi: {allowed: true, reason: test}
dlq:
  path: out/dlq.jsonl
  plaintext_reason: synthetic test fixture
";

    fn profile() -> String {
        let at = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/x12-partners/partners.yaml");
        std::fs::read_to_string(at).expect("the example profile")
    }

    /// Writes `files` to a folder of the test's own, checks `root`, and gives every
    /// diagnostic as (code, message, help).
    fn check(test: &str, files: &[(&str, String)], root: &str) -> Vec<(String, String, String)> {
        let dir = std::env::temp_dir().join(format!("sluice-x12-partner-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let mut c = Compiler::default();
        let id = c.load_root(&dir.join(root)).unwrap();
        c.check_file(id);
        let out = c
            .diags
            .items()
            .iter()
            .map(|d| (d.code.code.to_string(), d.message.clone(), d.help.clone().unwrap_or_default()))
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    fn codes(d: &[(String, String, String)]) -> Vec<&str> {
        d.iter().map(|(c, _, _)| c.as_str()).collect()
    }

    #[test]
    fn a_partners_mapping_reads_what_its_overlays_add() {
        let ok = check("ok", &[("partners.yaml", profile()), ("mapping.yaml", MAPPING.into())], "mapping.yaml");
        assert!(ok.is_empty(), "{ok:?}");
        // The bundled guide has no 2310Z and no REF(ZZ) in 2300.
        let bundled = MAPPING.replace("  profile: partners.yaml\n  partner: acme_clearinghouse\n", "");
        let d = check("bundled", &[("mapping.yaml", bundled)], "mapping.yaml");
        assert_eq!(codes(&d), ["SL414", "SL414"], "{d:?}");
    }

    #[test]
    fn profile_and_partner_go_together_and_must_fit() {
        let p = || ("partners.yaml", profile());
        let no_partner = MAPPING.replace("  partner: acme_clearinghouse\n", "");
        let d = check("no-partner", &[p(), ("mapping.yaml", no_partner)], "mapping.yaml");
        assert_eq!(codes(&d), ["SL481"], "{d:?}");
        assert!(d[0].2.contains("acme_clearinghouse, beta_payer"), "{d:?}");
        let no_profile = MAPPING.replace("  profile: partners.yaml\n", "");
        let d = check("no-profile", &[("mapping.yaml", no_profile)], "mapping.yaml");
        assert_eq!(codes(&d), ["SL481"], "{d:?}");
        let typo = MAPPING.replace("partner: acme_clearinghouse", "partner: acme_clearinghose");
        let d = check("typo", &[p(), ("mapping.yaml", typo)], "mapping.yaml");
        assert_eq!(codes(&d), ["SL482"], "{d:?}");
        assert!(d[0].2.starts_with("did you mean `acme_clearinghouse`?"), "{d:?}");
        let by_id = MAPPING.replace("partner: acme_clearinghouse", "partner: ACMECH");
        let d = check("by-id", &[p(), ("mapping.yaml", by_id)], "mapping.yaml");
        assert_eq!(codes(&d), ["SL482"], "{d:?}");
        let remits = MAPPING.replace("x12/005010X222A1", "x12/005010X221A1");
        let d = check("guide", &[p(), ("mapping.yaml", remits)], "mapping.yaml");
        assert_eq!(codes(&d), ["SL483"], "{d:?}");
        assert!(d[0].2.contains("sends 837 in version 5010"), "{d:?}");
        // A missing profile is the usual SL102; an HL7 v2 parser profile the usual SL431.
        let d = check("missing", &[("mapping.yaml", MAPPING.into())], "mapping.yaml");
        assert_eq!(codes(&d), ["SL102"], "{d:?}");
        let hl7 = "kind: profile\nname: hl7\nformat: hl7v2\nversion: \"2.5.1\"\n".to_string();
        let d = check("hl7", &[("partners.yaml", hl7), ("mapping.yaml", MAPPING.into())], "mapping.yaml");
        assert_eq!(codes(&d), ["SL431"], "{d:?}");
        // `partner` is for X12 inputs only.
        let hl7_mapping = "kind: mapping\nname: m\ninput: {schema: hl7v2/2.5.1, partner: acme_clearinghouse}\noutput: canonical/patient-event@1\nfields: {}\n";
        let d = check("hl7-partner", &[("mapping.yaml", hl7_mapping.into())], "mapping.yaml");
        assert!(codes(&d).contains(&"SL201"), "{d:?}");
    }

    #[test]
    fn added_elements_carry_the_class_written_or_the_guides() {
        let masked = |profile: String, test: &str| {
            let pipeline = PIPELINE
                .replace("SOURCE_PROFILE", "partners.yaml")
                .replace("    phi: {allowed: true, reason: test}\n", "");
            let files =
                [("partners.yaml", profile), ("mapping.yaml", MAPPING.to_string()), ("pipeline.yaml", pipeline)];
            check(test, &files, "pipeline.yaml")
                .into_iter()
                .filter(|(c, _, _)| c == "SL601")
                .map(|(_, m, _)| m)
                .filter(|m| m.contains("billing_provider"))
                .collect::<Vec<_>>()
        };
        // NM103 of the added NM1(ZZ) is `name`, as the guide's own NM1s have it; REF02 of the
        // added REF(ZZ) `other_id` (the guide's REF02s differ by qualifier).
        let inherit = profile().replace("{position: 3, usage: required, phi: none}", "{position: 3, usage: required}");
        assert_ne!(inherit, profile());
        let got = masked(inherit.clone(), "inherit");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("`billing_provider.name` carries PHI class `name`"), "{got:?}");
        assert!(got[1].contains("`billing_provider.tax_id` carries PHI class `other_id`"), "{got:?}");
        // Written: `phi: none` and another class.
        let told = inherit
            .replace("- {position: 3, usage: required}", "- {position: 3, usage: required, phi: none}")
            .replace("- {position: 2, max_length: 20}", "- {position: 2, max_length: 20, phi: account_number}");
        let got = masked(told, "told");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("`billing_provider.tax_id` carries PHI class `account_number`"), "{got:?}");
        // An unknown class is SL603 with the closest.
        let typo =
            profile().replace("- {position: 2, max_length: 20}", "- {position: 2, max_length: 20, phi: other-id}");
        let d = check("phi-typo", &[("partners.yaml", typo)], "partners.yaml");
        assert_eq!(codes(&d), ["SL603"], "{d:?}");
        assert!(d[0].2.contains("`other_id`"), "{d:?}");
    }

    #[test]
    fn the_source_must_read_the_partners_sets_with_the_same_copy() {
        let run = |test: &str, source_profile: Option<String>| {
            let mut pipeline = PIPELINE.replace("SOURCE_PROFILE", "source.yaml");
            let mut files = vec![("partners.yaml", profile()), ("mapping.yaml", MAPPING.to_string())];
            match source_profile {
                Some(p) => files.push(("source.yaml", p)),
                None => pipeline = pipeline.replace("    profile: source.yaml\n", ""),
            }
            files.push(("pipeline.yaml", pipeline));
            check(test, &files, "pipeline.yaml")
        };
        assert!(run("same", Some(profile())).is_empty());
        let d = run("none", None);
        assert_eq!(codes(&d), ["SL484"], "{d:?}");
        assert!(d[0].1.contains("without a trading-partner profile"), "{d:?}");
        let other = profile().replace("acme_clearinghouse", "acme_ch");
        let d = run("other", Some(other));
        assert_eq!(codes(&d), ["SL484"], "{d:?}");
        assert!(d[0].1.contains("no partner `acme_clearinghouse`"), "{d:?}");
        let fewer = profile().replace("      - guide: 005010X222A1\n        path: 2300/NTE\n        max_use: 3\n", "");
        assert_ne!(fewer, profile());
        let d = run("fewer", Some(fewer));
        assert_eq!(codes(&d), ["SL484"], "{d:?}");
        assert!(d[0].1.contains("with other overlays"), "{d:?}");
    }
}
