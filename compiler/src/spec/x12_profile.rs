//! X12 trading-partner profiles (`kind: profile`, `format: x12`): who sends which transaction
//! sets in which version, which checks are errors for each, their guide overlays and the
//! delimiters of what Sluice writes back to them. Added elements may name their PHI class
//! (`phi: name`, `phi: none`; SL603 for an unknown one); without it they take the guide's
//! (`sluice_x12::partner::NewPhi`). A mapping reads one partner's copy of a guide
//! ([`sends`], [`overlays_on`], [`partner_copy`]).
//!
//! Invariants: a plan this module returns converts to `sluice_x12::partner::Partners`
//! ([`to_partners`]) without error, as every version, transaction set, overlay and delimiter
//! was checked here against the bundled guides (SL432-SL436); `processing` is merged (partner
//! keys over profile keys over the defaults, all `true`), so the plan says per partner what
//! the runtime does. Diagnostics quote only what the profile wrote.

use std::collections::HashMap;

use sluice_spec_core::PhiClass;
use sluice_x12::guide::{self, ElementType, Guide, Usage};
use sluice_x12::partner::{
    self, Addition, NewElement, NewPhi, NewSegment, OutputDelimiters, Overlay, OverlayError, OverlayErrorKind, Partner,
    Partners, Processing,
};

use super::reader::{self, Cx, Obj, Spanned};
use super::shape;
use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plan::{
    X12DelimitersPlan, X12NewElementPlan, X12NewSegmentPlan, X12OverlayPlan, X12PartnerPlan, X12PartnersPlan,
};
use crate::yaml::{Node, Value};

/// The keys of an HL7 v2 profile (refused in an X12 one, SL431).
pub const HL7_KEYS: &[&str] = &[
    "version",
    "accept_versions",
    "encoding",
    "segment_terminators",
    "unexpected_segments",
    "timezone",
    "encoding_characters",
    "bad_segments",
    "z_segments",
];

/// The keys of an X12 profile (refused in an HL7 v2 one, SL431).
pub const X12_KEYS: &[&str] = &["partners", "processing", "unknown_partners"];

/// SL431 for each key of `obj` that belongs to the other format.
pub fn other_format_keys(cx: &mut Cx, obj: &Obj, keys: &[&str], format: &str, other: &str) {
    for key in keys {
        if let Some(span) = obj.key_span(key) {
            cx.push(
                Diagnostic::error(
                    codes::X12_PROFILE_FORMAT,
                    format!("`{key}` is a key of `format: {other}` profiles, not of `format: {format}` ones"),
                )
                .label(span, format!("not read in a `format: {format}` profile"))
                .help(format!("remove it, or write it in a `format: {other}` profile")),
            );
        }
    }
}

/// The format a profile file declares (`hl7v2` when it says none or something else: the
/// reader reports that).
pub fn format_of(node: &Node) -> &str {
    let Value::Map(map) = &node.value else { return "hl7v2" };
    let format = map.iter().find(|(k, _)| k.as_str() == Some("format")).and_then(|(_, v)| v.as_str());
    if format == Some("x12") { "x12" } else { "hl7v2" }
}

/// Reads an X12 profile.
pub fn read(cx: &mut Cx, node: &Node) -> Option<X12PartnersPlan> {
    let obj = reader::object(cx, node, &shape::PROFILE, "the profile")?;
    other_format_keys(cx, &obj, HL7_KEYS, "x12", "hl7v2");
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
    let accept_unknown = obj
        .get("unknown_partners")
        .and_then(|n| reader::one_of(cx, n, shape::X12_UNKNOWN_PARTNERS, "`unknown_partners` policy"))
        .is_some_and(|s| s.text == "accept");
    let defaults = obj.get("processing").map_or_else(Processing::default, |n| processing(cx, n, Processing::default()));
    let mut partners: Vec<X12PartnerPlan> = Vec::new();
    match obj.get("partners") {
        None => cx.push(
            Diagnostic::error(codes::MISSING_KEY, "the profile is missing the required key `partners`")
                .label(obj.anchor(), "add `partners` here")
                .help("an X12 profile lists its trading partners: `partners: [{name, id, transaction_sets, version}]`"),
        ),
        Some(Node { value: Value::Seq(items), .. }) => {
            let mut seen: Vec<(Spanned, Spanned, Option<String>)> = Vec::new();
            for item in items {
                if let Some((p, name_s, id_s)) = one_partner(cx, item, defaults) {
                    duplicates(cx, &seen, &name_s, &id_s, p.qualifier.as_deref());
                    seen.push((name_s, id_s, p.qualifier.clone()));
                    partners.push(p);
                }
            }
        }
        Some(n) => {
            reader::string_list(cx, n, "`partners`", false);
        }
    }
    Some(X12PartnersPlan { name, accept_unknown, partners })
}

fn duplicates(cx: &mut Cx, seen: &[(Spanned, Spanned, Option<String>)], name: &Spanned, id: &Spanned, q: Option<&str>) {
    for (n, i, oq) in seen {
        if n.text == name.text {
            cx.push(
                Diagnostic::error(
                    codes::X12_PARTNER_DUPLICATE,
                    format!("two trading partners are named `{}`", name.text),
                )
                .label(name.span, "second partner with this name")
                .label(n.span, "first")
                .help("give each partner its own `name`: records and findings carry it"),
            );
        }
        let qualifiers_overlap = match (q, oq.as_deref()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if i.text == id.text && qualifiers_overlap {
            cx.push(
                Diagnostic::error(
                    codes::X12_PARTNER_DUPLICATE,
                    format!("two trading partners have the sender id `{}`", id.text),
                )
                .label(id.span, "an interchange from this id would match both")
                .label(i.span, "first")
                .help("merge them (one partner may send several transaction sets), or tell them apart by `qualifier` (ISA05)"),
            );
        }
    }
}

fn processing(cx: &mut Cx, node: &Node, base: Processing) -> Processing {
    let Some(obj) = reader::object(cx, node, &shape::X12_PROCESSING, "`processing`") else { return base };
    let mut p = base;
    let flag = |cx: &mut Cx, key: &str, into: &mut bool| {
        if let Some(b) = obj.get(key).and_then(|n| reader::boolean(cx, n, key)) {
            *into = b;
        }
    };
    flag(cx, "validate_isa", &mut p.validate_isa);
    flag(cx, "validate_gs", &mut p.validate_gs);
    flag(cx, "strict_segment_order", &mut p.strict_segment_order);
    p
}

/// Whether `version` is `5010`, `4010` or a bundled guide's version (id or alias).
fn version_known(version: &str) -> bool {
    partner::edition_prefix(version).is_some() || guide::catalog().iter().any(|g| g.reads_version(version))
}

/// Whether a bundled guide reads `set` in `version`.
fn set_known(version: &str, set: &str) -> bool {
    guide::catalog().iter().any(|g| {
        g.set_id == set
            && match partner::edition_prefix(version) {
                Some(prefix) => g.id.starts_with(prefix),
                None => g.reads_version(version),
            }
    })
}

fn one_partner(cx: &mut Cx, node: &Node, defaults: Processing) -> Option<(X12PartnerPlan, Spanned, Spanned)> {
    let obj = reader::object(cx, node, &shape::X12_PARTNER, "a trading partner")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`"))?;
    let id = obj.get("id").and_then(|n| reader::string(cx, n, "`id`"))?;
    let bad_id = |cx: &mut Cx, s: &Spanned, what: &str, max: usize| {
        let ok = !s.text.is_empty()
            && s.text.len() <= max
            && s.text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            && s.text.trim() == s.text;
        if !ok {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a valid {what}", s.text))
                    .label(s.span, format!("expected 1 to {max} printable ASCII characters, without padding"))
                    .help("write the id as the partner's ISA/GS carries it, without the trailing spaces"),
            );
        }
    };
    bad_id(cx, &id, "ISA06 sender id", 15);
    let qualifier = obj.get("qualifier").and_then(|n| reader::string(cx, n, "`qualifier`"));
    if let Some(q) = &qualifier
        && (q.text.len() != 2 || !q.text.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        cx.push(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not an ISA05 qualifier", q.text))
                .label(q.span, "expected 2 letters or digits")
                .help("ISA05 is the sender id's qualifier: `ZZ` (mutually defined), `01` (DUNS), `30` (federal tax id)..."),
        );
    }
    let gs_id = obj.get("gs_id").and_then(|n| reader::string(cx, n, "`gs_id`"));
    if let Some(g) = &gs_id {
        bad_id(cx, g, "GS02 application sender code", 15);
    }
    let version = obj.get("version").and_then(|n| reader::string(cx, n, "`version`"));
    let version_ok = version.as_ref().is_some_and(|v| {
        let known = version_known(&v.text);
        if !known {
            let mut names: Vec<&str> = vec!["5010", "4010"];
            names.extend(guide::catalog().iter().map(|g| g.id.as_str()));
            names.dedup();
            let d = Diagnostic::error(
                codes::X12_PARTNER_VERSION,
                format!("`{}` is not an X12 version Sluice has guides for", v.text),
            )
            .label(v.span, "unknown version");
            cx.push(match did_you_mean(&v.text, names.iter().copied()) {
                Some(best) => d.help(format!("did you mean `{best}`? Versions: {}", names.join(", "))),
                None => d.help(format!("versions: {}", names.join(", "))),
            });
        }
        known
    });
    let version = version.map(|v| v.text).unwrap_or_default();
    let mut sets = Vec::new();
    if let Some(n) = obj.get("transaction_sets") {
        for s in reader::string_list(cx, n, "`transaction_sets`", false) {
            if version_ok && !set_known(&version, &s.text) {
                let mut here: Vec<&str> = Vec::new();
                for g in guide::catalog() {
                    let fits = match partner::edition_prefix(&version) {
                        Some(prefix) => g.id.starts_with(prefix),
                        None => g.reads_version(&version),
                    };
                    if fits && !here.contains(&g.set_id.as_str()) {
                        here.push(&g.set_id);
                    }
                }
                cx.push(
                    Diagnostic::error(
                        codes::X12_PARTNER_SET,
                        format!("no bundled guide reads transaction set `{}` in version {version}", s.text),
                    )
                    .label(s.span, "not a transaction set of this version")
                    .help(format!("transaction sets of {version}: {}", here.join(", "))),
                );
            }
            sets.push(s.text);
        }
    }
    if let Some(n) = obj.get("transaction_sets")
        && matches!(&n.value, Value::Seq(items) if items.is_empty())
    {
        cx.push(
            Diagnostic::error(codes::X12_PARTNER_SET, format!("partner `{}` lists no transaction set", name.text))
                .label(n.span, "every set it sends would be rejected (RT179)")
                .help("list the ST01 values the partner sends, e.g. `[\"837\", \"835\"]`"),
        );
    }
    let processing = obj.get("processing").map_or(defaults, |n| processing(cx, n, defaults));
    let mut plan = X12PartnerPlan {
        name: name.text.clone(),
        id: id.text.clone(),
        qualifier: qualifier.map(|q| q.text),
        gs_id: gs_id.map(|g| g.text),
        transaction_sets: sets,
        version,
        validate_isa: processing.validate_isa,
        validate_gs: processing.validate_gs,
        strict_segment_order: processing.strict_segment_order,
        overlays: Vec::new(),
        delimiters: None,
    };
    if let Some(n) = obj.get("overlays") {
        plan.overlays = overlays(cx, n, &plan, version_ok);
    }
    if let Some(n) = obj.get("delimiters") {
        plan.delimiters = delimiters(cx, n);
    }
    Some((plan, name, id))
}

/// The usage an overlay's `usage` names.
pub fn usage(name: &str) -> Option<Usage> {
    match name {
        "required" => Some(Usage::Required),
        "optional" => Some(Usage::Situational),
        "not_used" => Some(Usage::NotUsed),
        _ => None,
    }
}

fn usage_of(s: &Option<String>) -> Option<Usage> {
    s.as_deref().and_then(usage)
}

fn element_of(e: &X12NewElementPlan) -> NewElement {
    NewElement {
        position: e.position,
        usage: usage_of(&e.usage),
        ty: e.ty.as_deref().and_then(ElementType::parse),
        min_length: e.min_length,
        max_length: e.max_length,
        codes: e.codes.clone(),
        phi: match e.phi.as_deref() {
            None => NewPhi::Inherit,
            Some("none") => NewPhi::None,
            Some(name) => PhiClass::parse(name).map_or(NewPhi::Inherit, NewPhi::Class),
        },
    }
}

fn overlay_of(o: &X12OverlayPlan) -> Overlay {
    let (path, add) = match (&o.add_segment, &o.add_loop) {
        (Some(p), _) => (p.clone(), Some(Addition::Segment(o.elements.iter().map(element_of).collect()))),
        (None, Some(p)) => (
            p.clone(),
            Some(Addition::Loop(
                o.segments
                    .iter()
                    .map(|s| NewSegment {
                        segment: s.segment.clone(),
                        usage: usage_of(&s.usage),
                        max_use: s.max_use,
                        elements: s.elements.iter().map(element_of).collect(),
                    })
                    .collect(),
            )),
        ),
        (None, None) => (o.path.clone(), None),
    };
    Overlay {
        path,
        usage: usage_of(&o.usage),
        min_length: o.min_length,
        max_length: o.max_length,
        add_codes: o.add_codes.clone(),
        max_use: o.max_use,
        after: o.after.clone(),
        add,
    }
}

/// What an overlay does: which of `path`, `add_segment`, `add_loop` it has, and the keys that
/// go with each (the others are SL452).
const OVERLAY_KINDS: &[(&str, &[&str])] = &[
    ("path", &["usage", "min_length", "max_length", "add_codes", "max_use"]),
    ("add_segment", &["usage", "max_use", "after", "elements"]),
    ("add_loop", &["usage", "max_use", "after", "segments"]),
];

/// The overlay's kind key (`path`, `add_segment`, `add_loop`) and its value; SL452 (and
/// `None`) unless there is exactly one, or for a key that does not go with it.
fn overlay_kind(cx: &mut Cx, obj: &Obj) -> Option<(&'static str, Spanned)> {
    let present: Vec<&'static str> = OVERLAY_KINDS.iter().map(|(k, _)| *k).filter(|k| obj.get(k).is_some()).collect();
    let kind = match present.as_slice() {
        [one] => *one,
        [] => {
            cx.push(
                Diagnostic::error(codes::X12_OVERLAY_KIND, "the overlay says neither what changes nor what it adds")
                    .label(obj.anchor(), "add `path`, `add_segment` or `add_loop` here")
                    .help("`path: 2300/CLM-08` changes what the guide has; `add_segment: 2300/REF(ZZ)` or `add_loop: 2300/2310Z` adds what it lacks"),
            );
            return None;
        }
        [first, second, ..] => {
            let span = obj.key_span(second).unwrap_or_else(|| obj.anchor());
            cx.push(
                Diagnostic::error(
                    codes::X12_OVERLAY_KIND,
                    format!("the overlay has both `{first}` and `{second}`: one overlay does one thing"),
                )
                .label(span, "a second thing to do")
                .help("split it into two overlays, one per change or addition"),
            );
            return None;
        }
    };
    let allowed = OVERLAY_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a).unwrap_or_default();
    let mut ok = true;
    for key in ["usage", "min_length", "max_length", "add_codes", "max_use", "after", "elements", "segments"] {
        if allowed.contains(&key) {
            continue;
        }
        if let Some(span) = obj.key_span(key) {
            ok = false;
            cx.push(
                Diagnostic::error(codes::X12_OVERLAY_KIND, format!("`{key}` does not go with `{kind}`"))
                    .label(span, format!("not read with `{kind}`"))
                    .help(format!(
                        "with `{kind}` an overlay takes {}",
                        allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    )),
            );
        }
    }
    let value = obj.get(kind).and_then(|n| reader::string(cx, n, &format!("`{kind}`")))?;
    ok.then_some((kind, value))
}

fn max_use(cx: &mut Cx, obj: &Obj) -> Option<u32> {
    let n = obj.get("max_use")?;
    let v = reader::integer(cx, n, "`max_use`")?;
    match u32::try_from(v) {
        Ok(v) if v >= 1 => Some(v),
        _ => {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`max_use: {v}` is not a number of repeats"))
                    .label(n.span, "expected 1 or more")
                    .help("write how many times the segment or loop may repeat (`usage: not_used` takes one out)"),
            );
            None
        }
    }
}

fn new_elements(cx: &mut Cx, node: &Node) -> Vec<X12NewElementPlan> {
    let Value::Seq(items) = &node.value else {
        reader::string_list(cx, node, "`elements`", false);
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        let Some(obj) = reader::object(cx, item, &shape::X12_NEW_ELEMENT, "an element") else { continue };
        let Some(position) = obj.get("position").and_then(|n| reader::integer(cx, n, "`position`")) else { continue };
        let usage = obj.get("usage").and_then(|n| reader::one_of(cx, n, shape::X12_USAGES, "usage")).map(|s| s.text);
        let ty = obj
            .get("type")
            .and_then(|n| reader::one_of(cx, n, shape::X12_ELEMENT_TYPES, "element type"))
            .map(|s| s.text);
        let length = |cx: &mut Cx, key: &str| {
            obj.get(key).and_then(|n| reader::integer(cx, n, &format!("`{key}`"))).map(|n| n as usize)
        };
        let min_length = length(cx, "min_length");
        let max_length = length(cx, "max_length");
        let codes = obj
            .get("codes")
            .map(|n| reader::string_list(cx, n, "`codes`", false))
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.text)
            .collect();
        // `phi: none`, or a class name (SL603 with did-you-mean otherwise).
        let phi = match obj.get("phi") {
            None => None,
            Some(n) if n.as_str() == Some("none") => Some("none".to_string()),
            Some(n) => match super::profile::phi_class(cx, n) {
                Some(c) => Some(c.as_str().to_string()),
                None => continue,
            },
        };
        out.push(X12NewElementPlan { position: position as usize, usage, ty, min_length, max_length, codes, phi });
    }
    out
}

fn new_segments(cx: &mut Cx, node: &Node) -> Vec<X12NewSegmentPlan> {
    let Value::Seq(items) = &node.value else {
        reader::string_list(cx, node, "`segments`", false);
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        let Some(obj) = reader::object(cx, item, &shape::X12_NEW_SEGMENT, "a segment of the loop") else { continue };
        let Some(segment) = obj.get("segment").and_then(|n| reader::string(cx, n, "`segment`")) else { continue };
        let usage = obj.get("usage").and_then(|n| reader::one_of(cx, n, shape::X12_USAGES, "usage")).map(|s| s.text);
        let max_use = max_use(cx, &obj);
        let elements = obj.get("elements").map(|n| new_elements(cx, n)).unwrap_or_default();
        out.push(X12NewSegmentPlan { segment: segment.text, usage, max_use, elements });
    }
    out
}

fn overlays(cx: &mut Cx, node: &Node, p: &X12PartnerPlan, version_ok: bool) -> Vec<X12OverlayPlan> {
    let Value::Seq(items) = &node.value else {
        reader::string_list(cx, node, "`overlays`", false);
        return vec![];
    };
    let mut out = Vec::new();
    // Each guide's copy as the overlays so far left it: an overlay applies to what the ones
    // before it made (an element made used, then given codes).
    let mut copies: HashMap<String, Guide> = HashMap::new();
    for item in items {
        let Some(obj) = reader::object(cx, item, &shape::X12_OVERLAY, "an overlay") else { continue };
        let Some(g) = obj.get("guide").and_then(|n| reader::string(cx, n, "`guide`")) else { continue };
        let Some((kind, path)) = overlay_kind(cx, &obj) else { continue };
        let usage_s = obj.get("usage").and_then(|n| reader::one_of(cx, n, shape::X12_USAGES, "usage"));
        let min_length = obj.get("min_length").and_then(|n| reader::integer(cx, n, "`min_length`"));
        let max_length = obj.get("max_length").and_then(|n| reader::integer(cx, n, "`max_length`"));
        let max_use = max_use(cx, &obj);
        let after = obj.get("after").and_then(|n| reader::string(cx, n, "`after`")).map(|s| s.text);
        let add_codes: Vec<String> = obj
            .get("add_codes")
            .map(|n| reader::string_list(cx, n, "`add_codes`", false))
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.text)
            .collect();
        let elements = obj.get("elements").map(|n| new_elements(cx, n)).unwrap_or_default();
        let segments = obj.get("segments").map(|n| new_segments(cx, n)).unwrap_or_default();
        if kind == "path"
            && usage_s.is_none()
            && min_length.is_none()
            && max_length.is_none()
            && add_codes.is_empty()
            && max_use.is_none()
        {
            cx.push(
                Diagnostic::error(codes::X12_OVERLAY, format!("the overlay of `{}` changes nothing", path.text))
                    .label(path.span, "nothing to change here")
                    .help("give `usage`, `min_length`, `max_length`, `add_codes` or `max_use`"),
            );
            continue;
        }
        if kind == "add_loop" && segments.is_empty() {
            let span = obj.key_span("segments").unwrap_or(path.span);
            cx.push(
                Diagnostic::error(codes::X12_OVERLAY, format!("the added loop `{}` has no segments", path.text))
                    .label(span, "list the loop's segments")
                    .help("`segments: [{segment: NM1(ZZ)}, {segment: N3}]`: the first one starts the loop"),
            );
            continue;
        }
        let Some(bundled) = guide::by_schema_name(&g.text) else {
            let names: Vec<&str> = guide::catalog().iter().map(|b| b.schema_name.as_str()).collect();
            let d =
                Diagnostic::error(codes::X12_OVERLAY, format!("`{}` is not a bundled implementation guide", g.text))
                    .label(g.span, "unknown guide");
            cx.push(match did_you_mean(&g.text, names.iter().copied()) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help(format!("bundled guides: {}", names.join(", "))),
            });
            continue;
        };
        if version_ok && !sends(p, bundled) {
            cx.push(
                Diagnostic::error(
                    codes::X12_OVERLAY,
                    format!("partner `{}` does not send guide {} ({} in {})", p.name, g.text, bundled.set_id, bundled.id),
                )
                .label(g.span, "not one of the partner's guides")
                .help(format!(
                    "the partner sends {} in version {}; overlay one of those guides, or add the set to `transaction_sets`",
                    p.transaction_sets.join(", "),
                    p.version
                )),
            );
            continue;
        }
        let plan = X12OverlayPlan {
            guide: g.text.clone(),
            path: if kind == "path" { path.text.clone() } else { String::new() },
            add_segment: (kind == "add_segment").then(|| path.text.clone()),
            add_loop: (kind == "add_loop").then(|| path.text.clone()),
            usage: usage_s.map(|u| u.text),
            min_length: min_length.map(|n| n as usize),
            max_length: max_length.map(|n| n as usize),
            add_codes,
            max_use,
            after,
            elements,
            segments,
        };
        let copy = copies.entry(g.text.clone()).or_insert_with(|| bundled.clone());
        match partner::apply(copy, &[overlay_of(&plan)]) {
            Ok(next) => {
                *copy = next;
                out.push(plan);
            }
            Err((_, why)) => cx.push(overlay_misfit(&obj, kind, &path, bundled, &why)),
        }
    }
    out
}

/// The diagnostic of an overlay `partner::apply` refused, by what kind of misfit it is.
fn overlay_misfit(obj: &Obj, kind: &str, path: &Spanned, bundled: &Guide, why: &OverlayError) -> Diagnostic {
    let what = match kind {
        "path" => format!("the overlay of `{}`", path.text),
        "add_segment" => format!("the segment added at `{}`", path.text),
        _ => format!("the loop added at `{}`", path.text),
    };
    match why.kind {
        OverlayErrorKind::Fit => {
            let (span, label) = match obj.key_span("after") {
                Some(span) if why.message.contains("to come after") || why.message.contains("after SE") => {
                    (span, "no such place in the loop")
                }
                _ => (path.span, "does not fit the guide"),
            };
            let help = if kind == "path" {
                "paths are `LOOP`, `LOOP/SEG`, `LOOP/SEG(QUAL)` or `LOOP/SEG-EE[-CC]` as in specs/x12/guides/"
            } else {
                "an added segment is `LOOP/SEG` or `LOOP/SEG(QUAL)`, an added loop `PARENT/ID` with a new id; `after` names a segment or inner loop of that loop (specs/x12/guides/)"
            };
            Diagnostic::error(codes::X12_OVERLAY, format!("{what} does not fit guide {}: {why}", bundled.id))
                .label(span, label)
                .help(help)
        }
        OverlayErrorKind::Ambiguous => Diagnostic::error(
            codes::X12_OVERLAY_AMBIGUOUS,
            format!("{what} would make loop identification in guide {} ambiguous: {why}", bundled.id),
        )
        .label(path.span, "a segment here could belong to either place")
        .help(
            "give the addition a qualifier that place does not use (`2300/REF(ZZ)`), or change the guide's own place instead (`path: 2300/NTE` with `max_use: 10`)",
        ),
        OverlayErrorKind::Elements => {
            let span = obj.key_span("elements").or_else(|| obj.key_span("segments")).unwrap_or(path.span);
            Diagnostic::error(codes::X12_OVERLAY_ELEMENTS, format!("{what} cannot be read in guide {}: {why}", bundled.id))
                .label(span, "elements as written")
                .help("an added segment takes its entry in specs/x12/guides/segments-5010.txt (or -4010), changed by `elements`; a segment not there lists every element in order with `type`, `min_length` and `max_length`")
        }
    }
}

fn delimiters(cx: &mut Cx, node: &Node) -> Option<X12DelimitersPlan> {
    let obj = reader::object(cx, node, &shape::X12_DELIMITERS, "`delimiters`")?;
    let d = OutputDelimiters::default();
    let mut ok = true;
    let mut one = |cx: &mut Cx, key: &str, default: u8| -> u8 {
        let Some(s) = obj.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`"))) else { return default };
        let problem = match s.text.as_bytes() {
            [c] => partner::delimiter_problem(*c),
            _ => Some("must be one character"),
        };
        match problem {
            None => s.text.as_bytes()[0],
            Some(why) => {
                ok = false;
                cx.push(
                    Diagnostic::error(codes::X12_DELIMITERS, format!("the {key} delimiter `{}` {why}", s.text))
                        .label(s.span, "cannot be written")
                        .help("common choices: `*` `:` `^` `~` (the default) or `|` `>` `!` `~`"),
                );
                default
            }
        }
    };
    let out = OutputDelimiters {
        element: one(cx, "element", d.element),
        component: one(cx, "component", d.component),
        repetition: one(cx, "repetition", d.repetition),
        segment: one(cx, "segment", d.segment),
        line_break: obj.get("line_break").and_then(|n| reader::boolean(cx, n, "line_break")).unwrap_or(d.line_break),
    };
    if !ok {
        return None;
    }
    if let Some(why) = out.problem() {
        cx.push(
            Diagnostic::error(codes::X12_DELIMITERS, format!("the acknowledgment delimiters clash: {why}"))
                .label(node.span, "each delimiter must be its own character")
                .help("choose four different characters, e.g. `*` `:` `^` `~`"),
        );
        return None;
    }
    Some(X12DelimitersPlan {
        element: char::from(out.element),
        component: char::from(out.component),
        repetition: char::from(out.repetition),
        segment: char::from(out.segment),
        line_break: out.line_break,
    })
}

/// Whether partner `p` sends the sets `guide` reads: its transaction set, in the partner's
/// version.
pub fn sends(p: &X12PartnerPlan, guide: &Guide) -> bool {
    let reads = |v: &str| guide.id == v || guide.aliases.iter().any(|a| a == v);
    let versions_fit = match partner::edition_prefix(&p.version) {
        Some(prefix) => guide.id.starts_with(prefix),
        None => reads(&p.version),
    };
    p.transaction_sets.contains(&guide.set_id) && versions_fit
}

/// The overlays of partner `p` on `guide` (however the profile names the guide), in order.
pub fn overlays_on(p: &X12PartnerPlan, guide: &Guide) -> Vec<X12OverlayPlan> {
    p.overlays
        .iter()
        .filter(|o| guide::by_schema_name(&o.guide).is_some_and(|g| g.id == guide.id && g.set_id == guide.set_id))
        .cloned()
        .collect()
}

/// The partner's copy of bundled `guide` with `overlays` (checked ones, from [`overlays_on`]
/// of a plan this module returned), made once per process (`partner::overlaid`).
pub fn partner_copy(guide: &'static Guide, overlays: &[X12OverlayPlan]) -> Result<&'static Guide, String> {
    let list: Vec<Overlay> = overlays.iter().map(overlay_of).collect();
    partner::overlaid(guide, &list).map_err(|(i, why)| format!("overlay {} of the partner: {why}", i + 1))
}

/// The runtime form of a checked plan: partners with their overlaid guides.
pub fn to_partners(plan: &X12PartnersPlan) -> Result<Partners, String> {
    let mut partners = Vec::new();
    for p in &plan.partners {
        let mut by_guide: Vec<(&str, Vec<Overlay>)> = Vec::new();
        for o in &p.overlays {
            match by_guide.iter_mut().find(|(g, _)| *g == o.guide) {
                Some((_, list)) => list.push(overlay_of(o)),
                None => by_guide.push((&o.guide, vec![overlay_of(o)])),
            }
        }
        let mut guides = Vec::new();
        for (name, list) in by_guide {
            let bundled = guide::by_schema_name(name).ok_or_else(|| format!("guide {name} is not bundled"))?;
            let g = partner::overlaid(bundled, &list)
                .map_err(|(i, why)| format!("overlay {} of partner {}: {why}", i + 1, p.name))?;
            guides.push(g);
        }
        let delimiters = match &p.delimiters {
            None => None,
            Some(d) => {
                let byte = |c: char| u8::try_from(c).map_err(|_| format!("delimiter `{c}` is not ASCII"));
                let out = OutputDelimiters {
                    element: byte(d.element)?,
                    component: byte(d.component)?,
                    repetition: byte(d.repetition)?,
                    segment: byte(d.segment)?,
                    line_break: d.line_break,
                };
                if let Some(why) = out.problem() {
                    return Err(why);
                }
                Some(out)
            }
        };
        partners.push(Partner {
            name: p.name.clone(),
            id: p.id.clone(),
            qualifier: p.qualifier.clone(),
            gs_id: p.gs_id.clone(),
            transaction_sets: p.transaction_sets.clone(),
            version: p.version.clone(),
            processing: Processing {
                validate_isa: p.validate_isa,
                validate_gs: p.validate_gs,
                strict_segment_order: p.strict_segment_order,
            },
            guides,
            delimiters,
        });
    }
    Ok(Partners { partners, accept_unknown: plan.accept_unknown })
}
