//! X12 trading-partner profiles (`kind: profile`, `format: x12`): who sends which transaction
//! sets in which version, which checks are errors for each, their guide overlays and the
//! delimiters of what Sluice writes back to them.
//!
//! Invariants: a plan this module returns converts to `sluice_x12::partner::Partners`
//! ([`to_partners`]) without error, as every version, transaction set, overlay and delimiter
//! was checked here against the bundled guides (SL432-SL436); `processing` is merged (partner
//! keys over profile keys over the defaults, all `true`), so the plan says per partner what
//! the runtime does. Diagnostics quote only what the profile wrote.

use std::collections::HashMap;

use sluice_x12::guide::{self, Guide, Usage};
use sluice_x12::partner::{self, OutputDelimiters, Overlay, Partner, Partners, Processing};

use super::reader::{self, Cx, Obj, Spanned};
use super::shape;
use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plan::{X12DelimitersPlan, X12OverlayPlan, X12PartnerPlan, X12PartnersPlan};
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

fn overlay_of(o: &X12OverlayPlan) -> Overlay {
    Overlay {
        path: o.path.clone(),
        usage: o.usage.as_deref().and_then(usage),
        min_length: o.min_length,
        max_length: o.max_length,
        add_codes: o.add_codes.clone(),
    }
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
        let Some(path) = obj.get("path").and_then(|n| reader::string(cx, n, "`path`")) else { continue };
        let usage_s = obj.get("usage").and_then(|n| reader::one_of(cx, n, shape::X12_USAGES, "usage"));
        let min_length = obj.get("min_length").and_then(|n| reader::integer(cx, n, "`min_length`"));
        let max_length = obj.get("max_length").and_then(|n| reader::integer(cx, n, "`max_length`"));
        let add_codes: Vec<String> = obj
            .get("add_codes")
            .map(|n| reader::string_list(cx, n, "`add_codes`", false))
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.text)
            .collect();
        if usage_s.is_none() && min_length.is_none() && max_length.is_none() && add_codes.is_empty() {
            cx.push(
                Diagnostic::error(codes::X12_OVERLAY, format!("the overlay of `{}` changes nothing", path.text))
                    .label(path.span, "nothing to change here")
                    .help("give `usage`, `min_length`, `max_length` or `add_codes`"),
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
        let reads = |v: &str| bundled.id == v || bundled.aliases.iter().any(|a| a == v);
        let versions_fit = match partner::edition_prefix(&p.version) {
            Some(prefix) => bundled.id.starts_with(prefix),
            None => reads(&p.version),
        };
        if version_ok && (!p.transaction_sets.contains(&bundled.set_id) || !versions_fit) {
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
            path: path.text.clone(),
            usage: usage_s.map(|u| u.text),
            min_length: min_length.map(|n| n as usize),
            max_length: max_length.map(|n| n as usize),
            add_codes,
        };
        let copy = copies.entry(g.text.clone()).or_insert_with(|| bundled.clone());
        match partner::apply(copy, &[overlay_of(&plan)]) {
            Ok(next) => {
                *copy = next;
                out.push(plan);
            }
            Err((_, why)) => cx.push(
                Diagnostic::error(
                    codes::X12_OVERLAY,
                    format!("the overlay of `{}` does not fit guide {}: {why}", path.text, bundled.id),
                )
                .label(path.span, "does not fit the guide")
                .help("paths are `LOOP`, `LOOP/SEG`, `LOOP/SEG(QUAL)` or `LOOP/SEG-EE[-CC]` as in specs/x12/guides/"),
            ),
        }
    }
    out
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
