//! Segment groups in mappings: `each: group(NAME)`, `each: var.group(NAME)`, single segments
//! (`each: segment(AL1)`, `each: var.segment(NTE)`) and paths within such a variable
//! (`order.OBR-4.1`), checked against the HL7 v2 message structures
//! (`sluice_hl7v2::structure`) of the mapping's message types and input version.
//!
//! Invariants:
//! - A group name is valid when at least one structure of the mapping's message types has a
//!   group of that name (at the top level of the message for `group(NAME)`, inside the
//!   variable's group for `var.group(NAME)`); a path within a group variable must name a
//!   segment that occurs in that group. Everything else is a diagnostic with a code, never a
//!   guess.
//! - The plan records, per group iteration, the segments that open an instance and the
//!   segments that belong to it (unions over the structures), so the runtime's fallback rule
//!   for messages that do not follow their structure needs nothing but the plan.

use std::collections::BTreeSet;

use sluice_hl7v2::schema::Version;
use sluice_hl7v2::structure::{self, Group, Kind};

use super::check::{Env, ExprCx, Typed, Var};
use super::syntax::{Syn, SynKind};
use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plan::{GroupEach, GroupShape};

/// The message structures a mapping's messages follow, in one version.
pub struct Structures {
    pub version: Version,
    /// Structure names and their root groups, sorted by name, without duplicates.
    pub roots: Vec<(&'static str, &'static Group)>,
}

impl Structures {
    /// The structures of `message_types` (`ORU^R01`, `ADT^*`) in `version`; every bundled
    /// structure of the version when the mapping lists no message types.
    pub fn of(message_types: &[String], version: Version) -> Structures {
        let t = structure::tables();
        let mut names: BTreeSet<&'static str> = BTreeSet::new();
        if message_types.is_empty() {
            names.extend(t.names(version));
        }
        for mt in message_types {
            let (code, event) = mt.split_once('^').unwrap_or((mt.as_str(), ""));
            if event == "*" {
                names.extend(t.events().filter(|(c, _, _)| *c == code).map(|(_, _, s)| s));
            } else if let Some(s) = t.for_event(code, event) {
                names.insert(s);
            }
        }
        let roots = names.into_iter().filter_map(|n| t.structure(n, version).map(|g| (n, g))).collect();
        Structures { version, roots }
    }

    fn describe(&self) -> String {
        match self.roots.len() {
            0 => format!("the mapping's message types (no bundled structure in HL7 v{})", self.version),
            1..=3 => {
                format!("{} (HL7 v{})", self.roots.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "), self.version)
            }
            n => format!("the {n} message structures of the mapping's message types (HL7 v{})", self.version),
        }
    }

    fn all_groups(&self) -> Vec<&'static Group> {
        self.roots.iter().flat_map(|(_, g)| g.subgroups()).collect()
    }
}

/// A group variable: the group's name and its definitions in the mapping's structures.
#[derive(Clone, Debug)]
pub struct GroupVar {
    pub name: String,
    pub defs: Vec<&'static Group>,
    /// Bound by `each: segment(SEG)`: one segment, not a group (`defs` is empty).
    pub segment: bool,
}

impl GroupVar {
    /// Segment ids that occur in the group at any depth, sorted.
    pub fn members(&self) -> Vec<&'static str> {
        let mut m: Vec<&'static str> = self.defs.iter().flat_map(|g| g.segment_ids()).collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    /// Segment ids a path on the variable can read: the group's own segments and those of its
    /// non-repeating subgroups (one instance per instance of the group), sorted.
    pub fn visible(&self) -> Vec<String> {
        if self.segment {
            return vec![self.name.clone()];
        }
        let mut out = BTreeSet::new();
        for g in &self.defs {
            reach(g, &mut out, &mut Vec::new());
        }
        out.into_iter().map(String::from).collect()
    }

    /// The repeating subgroups reached through non-repeating ones.
    pub fn hidden(&self) -> Vec<&'static Group> {
        let mut hidden = Vec::new();
        for g in &self.defs {
            reach(g, &mut BTreeSet::new(), &mut hidden);
        }
        hidden
    }

    pub fn shape(&self, structures: &Structures) -> GroupShape {
        shape(&self.name, &self.defs, structures)
    }
}

fn reach(g: &'static Group, visible: &mut BTreeSet<&'static str>, hidden: &mut Vec<&'static Group>) {
    for item in &g.items {
        match &item.kind {
            Kind::Segment(id) => {
                visible.insert(id.as_str());
            }
            Kind::Group(sub) if item.repeating => hidden.push(sub),
            Kind::Group(sub) => reach(sub, visible, hidden),
        }
    }
}

fn shape(name: &str, defs: &[&'static Group], structures: &Structures) -> GroupShape {
    let set = |f: fn(&'static Group) -> Vec<&'static str>| {
        defs.iter().flat_map(|g| f(g)).map(String::from).collect::<BTreeSet<String>>()
    };
    let members = set(Group::segment_ids);
    let closers = structures
        .roots
        .iter()
        .flat_map(|(_, root)| root.segment_ids())
        .filter(|s| !members.contains(*s))
        .map(String::from)
        .collect::<BTreeSet<_>>();
    GroupShape {
        name: name.to_string(),
        starts: set(Group::first_segments).into_iter().collect(),
        members: members.into_iter().collect(),
        closers: closers.into_iter().collect(),
    }
}

fn names(groups: &[&'static Group]) -> Vec<&'static str> {
    let mut n: Vec<&'static str> = groups.iter().map(|g| g.name.as_str()).collect();
    n.sort_unstable();
    n.dedup();
    n
}

fn list(items: &[&str]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

/// Whether an `each:` expression iterates over segment groups or segments (`group(...)`,
/// `x.group(...)`, `segment(...)`, `x.segment(...)`).
pub fn is_group_call(syn: &Syn) -> bool {
    let SynKind::Call { name, .. } = &syn.kind else { return false };
    let last = name.rsplit('.').next().unwrap_or("");
    last == "group" || last == "segment"
}

/// The group variable named `var_name` (at `var_span`), or the diagnostic.
fn group_var<'e>(cx: &mut ExprCx, env: &'e Env, var_name: &str, var_span: crate::source::Span) -> Option<&'e GroupVar> {
    let Some(var) = env.vars.iter().rev().find(|v| v.name == var_name) else {
        let d = Diagnostic::error(codes::UNKNOWN_VARIABLE, format!("unknown name `{var_name}`"))
            .label(var_span, "not a variable of an enclosing `each`");
        let known: Vec<&str> = env.vars.iter().filter(|v| v.group.is_some()).map(|v| v.name.as_str()).collect();
        return cx.fail(d.suggest(var_name, known));
    };
    match &var.group {
        Some(g) => Some(g),
        None => cx.fail(not_a_group(var, var_span)),
    }
}

/// `each: segment(SEG)` / `each: var.segment(SEG)`: one item per SEG segment of the message, or
/// among the segments a path on `var` reads (its group's own, not those of repeating
/// subgroups). The variable reads that one segment (`al.AL1-2`).
fn check_segment_each(
    cx: &mut ExprCx,
    env: &Env,
    within: Option<(&str, crate::source::Span)>,
    wanted: &str,
    wanted_span: crate::source::Span,
) -> Option<(GroupEach, GroupVar)> {
    let super::check::Scope::Hl7(hl7) = env.scope else { return None };
    // Resolving the segment's first field gives the standard unknown-segment diagnostic.
    if let Err(d) = hl7.resolve(&format!("{wanted}-1"), wanted_span) {
        return cx.fail(d);
    }
    if let Some((var_name, var_span)) = within {
        let parent = group_var(cx, env, var_name, var_span)?;
        if !parent.visible().iter().any(|v| v == wanted) {
            return cx.fail(outside(parent, var_name, wanted, wanted_span, &format!("{wanted}-1")));
        }
    }
    let one = vec![wanted.to_string()];
    let shape = GroupShape { name: wanted.to_string(), starts: one.clone(), members: one, closers: vec![] };
    let each = GroupEach { shape, within: within.map(|(w, _)| w.to_string()), hidden: vec![], segment: true };
    Some((each, GroupVar { name: wanted.to_string(), defs: vec![], segment: true }))
}

/// Checks `each: group(NAME)` / `each: var.group(NAME)` (and the `segment(SEG)` forms); returns
/// the plan's iteration and the variable the item scope gets.
pub fn check_each(cx: &mut ExprCx, syn: &Syn, env: &Env, structures: &Structures) -> Option<(GroupEach, GroupVar)> {
    let SynKind::Call { name, name_span, args } = &syn.kind else { return None };
    let arg = match &args[..] {
        [a] if a.name.is_none() => a,
        _ => {
            return cx.fail(
                Diagnostic::error(codes::WRONG_ARGUMENTS, format!("`{name}` takes one name"))
                    .label(cx.span(&syn.span), "this call")
                    .help("write `group(ORDER_OBSERVATION)`, `order.group(OBSERVATION)` or `segment(AL1)`"),
            );
        }
    };
    let SynKind::Name(parts) = &arg.value.kind else {
        return cx.fail(
            Diagnostic::error(codes::WRONG_ARGUMENTS, "a segment group or segment is named without quotes")
                .label(cx.span(&arg.value.span), "expected a name")
                .help("write the name as the standard spells it: `group(ORDER_OBSERVATION)`, `segment(AL1)`"),
        );
    };
    let wanted = parts.join(".");
    let wanted_span = cx.span(&arg.value.span);
    // `var.group(...)`: the variable and its span.
    let within = name.rsplit_once('.').map(|(var, _)| (var, cx.span(&(name_span.start..name_span.start + var.len()))));
    if name.ends_with("segment") {
        return check_segment_each(cx, env, within, &wanted, wanted_span);
    }
    let (candidates, parent) = match within {
        None => (structures.all_groups(), None),
        Some((var_name, var_span)) => {
            let g = group_var(cx, env, var_name, var_span)?;
            (g.defs.iter().flat_map(|d| d.subgroups()).collect(), Some(g))
        }
    };
    let within = within.map(|(w, _)| w);
    let defs: Vec<&'static Group> = candidates.iter().copied().filter(|g| g.name == wanted).collect();
    if defs.is_empty() {
        let everywhere = structures.all_groups();
        let elsewhere = names(&everywhere).contains(&wanted.as_str());
        if let (true, Some(parent)) = (elsewhere, parent) {
            let inside: Vec<&str> = names(
                &everywhere
                    .iter()
                    .copied()
                    .filter(|g| g.subgroups().iter().any(|s| s.name == wanted))
                    .collect::<Vec<_>>(),
            );
            let d = Diagnostic::error(
                codes::GROUP_NESTING,
                format!("segment group {wanted} is not inside {}", parent.name),
            )
            .label(wanted_span, format!("not part of {}", parent.name))
            .help(if inside.is_empty() {
                format!("{wanted} is a group of the message itself: iterate it with `each: group({wanted})`")
            } else {
                format!("{wanted} is inside {}: iterate it from a variable of that group", list(&inside))
            });
            return cx.fail(d);
        }
        let choices = names(&candidates);
        let where_ = match parent {
            Some(p) => format!("inside {} in {}", p.name, structures.describe()),
            None => format!("in {}", structures.describe()),
        };
        let d = Diagnostic::error(codes::UNKNOWN_GROUP, format!("no segment group `{wanted}` {where_}"))
            .label(wanted_span, "unknown segment group");
        let d = match did_you_mean(&wanted, choices.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None if choices.is_empty() => {
                d.help("these messages have no segment groups here; iterate repetitions with `each: SEG[*]-n` instead")
            }
            None => d.help(format!("segment groups here: {}", list(&choices))),
        };
        return cx.fail(d);
    }
    let var = GroupVar { name: wanted, defs, segment: false };
    let hidden_groups = var.hidden();
    let hidden = names(&hidden_groups)
        .into_iter()
        .map(|n| shape(n, &hidden_groups.iter().copied().filter(|g| g.name == n).collect::<Vec<_>>(), structures))
        .collect();
    let each = GroupEach { shape: var.shape(structures), within: within.map(String::from), hidden, segment: false };
    Some((each, var))
}

fn not_a_group(var: &Var, span: crate::source::Span) -> Diagnostic {
    Diagnostic::error(codes::NOT_A_GROUP, format!("`{}` is a value, not a segment group", var.name))
        .label(span, "bound to one repetition of a field")
        .help(format!("read its components with `{}.1`; paths like `x.OBR-4` need `each: group(...)`", var.name))
}

/// Checks `var.SEG-n...`: a path within the segment group instance bound to `var`.
pub fn check_scoped(cx: &mut ExprCx, syn: &Syn, env: &Env) -> Option<Typed> {
    let SynKind::Scoped { var: var_name, path, path_span } = &syn.kind else { return None };
    let var_span = cx.span(&(syn.span.start..syn.span.start + var_name.len()));
    let Some(var) = env.vars.iter().rev().find(|v| &v.name == var_name) else {
        let d = Diagnostic::error(codes::UNKNOWN_VARIABLE, format!("unknown name `{var_name}`"))
            .label(var_span, "not a variable of an enclosing `each`");
        let known: Vec<&str> = env.vars.iter().filter(|v| v.group.is_some()).map(|v| v.name.as_str()).collect();
        let d = match did_you_mean(var_name, known.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.help("bind a segment group with `each: group(NAME)` and `as: name`"),
        };
        return cx.fail(d);
    };
    let Some(group) = &var.group else {
        return cx.fail(not_a_group(var, var_span));
    };
    let super::check::Scope::Hl7(hl7) = env.scope else { return None };
    let span = cx.span(path_span);
    let resolved = match hl7.resolve(path, span) {
        Ok(r) => r,
        Err(d) => return cx.fail(d),
    };
    let visible = group.visible();
    let visible: Vec<&str> = visible.iter().map(String::as_str).collect();
    let seg = resolved.path.segment.clone();
    if !visible.contains(&seg.as_str()) {
        let example = format!("{seg}-{}", resolved.path.field);
        return cx.fail(outside(group, var_name, &seg, span.sub(0, 3), &example));
    }
    Some(Typed {
        expr: super::ast::Expr::Within {
            var: var_name.clone(),
            path: resolved.path.to_string(),
            value_type: resolved.value_type.clone(),
            multi: resolved.multi,
        },
        ty: resolved.value_type,
        multi: resolved.multi,
        classes: resolved.phi.into_iter().collect(),
    })
}

/// SL510 for segment `seg` (written at `span`), which a path on group variable `var_name` cannot
/// read: it repeats with a subgroup (iterate that), or it is not in the group at all.
/// `example` is how the segment was addressed (`OBX-11`).
fn outside(group: &GroupVar, var_name: &str, seg: &str, span: crate::source::Span, example: &str) -> Diagnostic {
    let visible = group.visible();
    let visible: Vec<&str> = visible.iter().map(String::as_str).collect();
    let inner = names(&group.hidden().into_iter().filter(|g| g.segment_ids().contains(&seg)).collect::<Vec<_>>());
    let (message, label, help) = match inner.first() {
        Some(sub) => (
            format!("segment {seg} repeats with group {sub} inside {}", group.name),
            format!("in {sub}, one per {sub} instance"),
            format!("iterate them: `- each: {var_name}.group({sub})` with `as: x`, then read `x.{example}`"),
        ),
        None => (
            format!("segment {seg} is not part of segment group {}", group.name),
            format!("not in {}", group.name),
            match did_you_mean(seg, visible.iter().copied()) {
                Some(best) => format!("did you mean `{best}`? {} holds {}", group.name, list(&visible)),
                None => format!(
                    "{} holds {}; read other segments with a plain path such as `{example}`",
                    group.name,
                    list(&visible)
                ),
            },
        ),
    };
    Diagnostic::error(codes::SEGMENT_NOT_IN_GROUP, message).label(span, label).help(help)
}

/// The error for a group iteration used as a value, or a group variable read as a value.
pub fn group_as_value(cx: &mut ExprCx, syn: &Syn, what: &str) -> Option<Typed> {
    cx.fail(
        Diagnostic::error(codes::NOT_A_GROUP, format!("{what} is a segment group, not a value"))
            .label(cx.span(&syn.span), "a segment group")
            .help("iterate groups in a list field with `- each: group(NAME)` and `as:`; read a group's segments with paths such as `order.OBR-4`"),
    )
}
