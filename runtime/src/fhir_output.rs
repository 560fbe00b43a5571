//! The map stage for FHIR mappings: one HL7 message to one FHIR R4 `transaction` Bundle.
//!
//! Each resource kind of the plan is built once, once per instance of its `each:`, or once per
//! instance of the resource it is built `within` (in that instance's scope). Entries carry
//! `fullUrl: urn:uuid:<id>`, the resource, and `request: {method: PUT, url: <Type>/<id>}`;
//! references between resources (`ref(name)`) point at fullUrls.
//!
//! Invariants:
//! - Deterministic: ids are [`fhir_id`] of the resource type and the values of its `id:` keys;
//!   entries are in the order of the mapping's resources, then iteration order. The same
//!   message gives the same bytes.
//! - FHIR JSON rules: no null, empty string, empty object or empty array is written (a
//!   resource or list item whose values are all missing disappears, and references to a
//!   resource that was not built are left out); dates and datetimes are converted from HL7
//!   DT/DTM to FHIR `date` / `dateTime` (RFC 3339) forms.
//! - Two resources of one Bundle with the same id send the message to the DLQ (RT310), never a
//!   Bundle whose entries overwrite each other.
//! - PHI tags: every leaf of the finished Bundle whose pattern (`Patient.name[*].family`) the
//!   plan classes is tagged under its JSON pointer for the mask stage; after a mask stage,
//!   [`drop_nulled`] removes the leaves it nulled and re-tags what remains.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sluice_compiler::expr::ast::{Expr, Function};
use sluice_compiler::plan::GroupEach;
use sluice_compiler::plan::fhir::{
    FhirBundlePlan, FhirField, FhirItem, FhirProducer, FhirResourcePlan, FhirScalar, FhirStep, FhirValue,
};
use sluice_compiler::spec::fhir_output::satisfies;
use sluice_hl7v2::schema::Version;
use sluice_spec_core::{PhiClass, ValueType};

use crate::dlq::Rejection;
use crate::eval::{Prepared, Scope, Tables};
use crate::hl7::Reader;
use crate::record::{ClassedLeaf, Doc, Issue, Payload, Record, pointer_token};
use crate::stages::Step;
use crate::stages::map::{Groups, bindings, group_instances, required_empty};
use crate::{findings, time};

/// The deterministic id of a resource: SHA-256 over `sluice-fhir-id`, the resource type and
/// each key value (null as empty), NUL-separated, its first 16 bytes formatted as a UUID with
/// version 8 (RFC 9562 custom) and the RFC 4122 variant bits.
pub fn fhir_id(resource_type: &str, keys: &[Option<String>]) -> String {
    let mut h = Sha256::new();
    h.update(b"sluice-fhir-id\0");
    h.update(resource_type.as_bytes());
    for k in keys {
        h.update(b"\0");
        h.update(k.as_deref().unwrap_or("").as_bytes());
    }
    let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// A resource built for the Bundle, before ordering.
struct Built {
    /// (index of its kind in the plan, build order).
    order: (usize, usize),
    kind: usize,
    id: String,
    resource: Doc,
}

struct Ctx<'c> {
    plan: &'c FhirBundlePlan,
    groups: &'c Groups<'c>,
    warnings: Vec<Issue>,
    /// Ids of the resources built once per message (no `each`, no `within`); `None` when its
    /// `when` did not hold.
    singles: HashMap<&'c str, Option<String>>,
    built: Vec<Built>,
    /// Required elements missing from built resources (`Observation.status`).
    missing: Vec<String>,
}

/// What `ref(name)` can see from where a resource is built.
struct Refs<'r> {
    /// The instances this one is built within (name, id), innermost last, itself included.
    ancestors: &'r [(&'r str, String)],
    /// Ids of the resources built within this instance, by kind.
    children: HashMap<&'r str, Vec<String>>,
}

pub(crate) fn run<'p>(
    component: &str,
    emits: &Arc<str>,
    plan: &FhirBundlePlan,
    tables: &Tables,
    prepared: &Prepared<'_>,
    mut rec: Record,
    msg: &Reader<'_>,
) -> Step<'p> {
    let version = rec.schema.strip_prefix("hl7v2/").and_then(Version::parse);
    let groups = Groups::new(msg.message(), version);
    let zone = Arc::clone(&rec.env.timezone);
    let scope = Scope::root(prepared, Some(msg), None, Some(tables), &zone, "Bundle");
    let mut ctx = Ctx {
        plan,
        groups: &groups,
        warnings: std::mem::take(&mut rec.env.warnings),
        singles: HashMap::new(),
        built: Vec::new(),
        missing: Vec::new(),
    };
    for r in plan.resources.iter().filter(|r| is_single(r)) {
        let id = instance_id(&scope, r, &mut ctx.warnings);
        ctx.singles.insert(&r.name, id);
    }
    for (kind, r) in plan.resources.iter().enumerate() {
        if r.within.is_none() {
            build_kind(&mut ctx, kind, &scope, &[]);
        }
    }
    let Ctx { mut built, warnings, mut missing, .. } = ctx;
    rec.env.warnings = warnings;
    if !missing.is_empty() {
        missing.dedup();
        return Step::Dlq(rec, required_empty(component, "FHIR element", &missing));
    }
    built.sort_by_key(|b| b.order);
    let mut seen = HashMap::new();
    for b in &built {
        if let Some(first) = seen.insert(b.id.as_str(), b.kind) {
            let (a, z) = (&plan.resources[first].name, &plan.resources[b.kind].name);
            let r = Rejection::single(
                findings::FHIR_DUPLICATE_ID,
                None,
                format!("map stage `{component}`: resources `{a}` and `{z}` got the same id; add key parts to `id:`"),
            );
            return Step::Dlq(rec, r);
        }
    }
    let mut entries = Vec::with_capacity(built.len());
    for b in built {
        let r = &plan.resources[b.kind];
        entries.push(Doc::Obj(vec![
            ("fullUrl".into(), Doc::Str(format!("urn:uuid:{}", b.id))),
            ("resource".into(), b.resource),
            (
                "request".into(),
                Doc::Obj(vec![
                    ("method".into(), Doc::Str("PUT".into())),
                    ("url".into(), Doc::Str(format!("{}/{}", r.resource_type, b.id))),
                ]),
            ),
        ]));
    }
    let mut bundle =
        vec![("resourceType".into(), Doc::Str("Bundle".into())), ("type".into(), Doc::Str("transaction".into()))];
    if !entries.is_empty() {
        bundle.push(("entry".into(), Doc::Arr(entries)));
    }
    let bundle = Doc::Obj(bundle);
    let mut patterns: HashMap<&str, Vec<PhiClass>> = HashMap::new();
    for (p, c) in plan.resources.iter().flat_map(|r| r.classes.iter()) {
        patterns.entry(p.as_str()).or_default().extend(c.iter().copied());
    }
    rec.env.classes = classes_of(&bundle, &patterns);
    rec.env.masking = None;
    rec.payload = Payload::Doc(bundle);
    rec.schema = Arc::clone(emits);
    Step::Next(rec, None)
}

fn is_single(r: &FhirResourcePlan) -> bool {
    r.within.is_none() && r.each.is_none() && r.group.is_none()
}

/// The id of the instance in `scope`, or `None` when its `when` does not hold.
fn instance_id(scope: &Scope<'_>, r: &FhirResourcePlan, warnings: &mut Vec<Issue>) -> Option<String> {
    if let Some(when) = &r.when
        && !scope.eval(when, warnings).truthy()
    {
        return None;
    }
    let keys: Vec<Option<String>> = r.id.iter().map(|e| scope.eval(e, warnings).text()).collect();
    Some(fhir_id(&r.resource_type, &keys))
}

/// Calls `f` with the scope of every instance: one per value of `each`, per group instance,
/// or the scope itself.
fn for_each_instance(
    scope: &Scope<'_>,
    each: Option<&Expr>,
    group: Option<&GroupEach>,
    var: Option<&str>,
    groups: &Groups<'_>,
    warnings: &mut Vec<Issue>,
    f: &mut dyn FnMut(&Scope<'_>, &mut Vec<Issue>),
) {
    let var = var.unwrap_or("it");
    if let Some(each) = group {
        let instances = group_instances(scope, each, groups, scope.field, warnings);
        for inst in &instances {
            let mut gs = scope.groups.clone();
            gs.push((var, inst));
            let inner = Scope { groups: gs, vars: scope.vars.clone(), ..*scope };
            f(&inner, warnings);
        }
        return;
    }
    match each {
        None => f(scope, warnings),
        Some(each) => {
            let bs = bindings(scope, each, warnings);
            for b in &bs {
                let mut vars = scope.vars.clone();
                vars.push((var, b));
                let inner = Scope { vars, groups: scope.groups.clone(), ..*scope };
                f(&inner, warnings);
            }
        }
    }
}

/// Builds every instance of resource kind `kind` in `scope`, then what is built within each.
fn build_kind(ctx: &mut Ctx<'_>, kind: usize, scope: &Scope<'_>, ancestors: &[(&str, String)]) {
    let plan = ctx.plan;
    let r = &plan.resources[kind];
    let children: Vec<usize> = plan
        .resources
        .iter()
        .enumerate()
        .filter(|(_, c)| c.within.as_deref() == Some(&r.name))
        .map(|(i, _)| i)
        .collect();
    let mut warnings = std::mem::take(&mut ctx.warnings);
    for_each_instance(
        scope,
        r.each.as_ref(),
        r.group.as_ref(),
        r.var.as_deref(),
        ctx.groups,
        &mut warnings,
        &mut |inner, w| {
            let Some(id) = instance_id(inner, r, w) else { return };
            let mut chain = ancestors.to_vec();
            chain.push((&r.name, id.clone()));
            let mut child_ids = HashMap::new();
            for &c in &children {
                let cr = &plan.resources[c];
                let mut ids = Vec::new();
                for_each_instance(
                    inner,
                    cr.each.as_ref(),
                    cr.group.as_ref(),
                    cr.var.as_deref(),
                    ctx.groups,
                    w,
                    &mut |s, w2| {
                        ids.extend(instance_id(s, cr, w2));
                    },
                );
                child_ids.insert(cr.name.as_str(), ids);
            }
            let refs = Refs { ancestors: &chain, children: child_ids };
            let mut resource = Doc::Obj(vec![
                ("resourceType".into(), Doc::Str(r.resource_type.clone())),
                ("id".into(), Doc::Str(id.clone())),
            ]);
            let field = format!("{}.{}", r.resource_type, r.name);
            let inner = Scope { field: &field, vars: inner.vars.clone(), groups: inner.groups.clone(), ..*inner };
            for f in &r.fields {
                set_field(&mut resource, f, &inner, &ctx.singles, &refs, ctx.groups, w);
            }
            prune(&mut resource);
            for name in &r.required {
                let present = matches!(&resource, Doc::Obj(m) if m.iter().any(|(k, _)| satisfies(k, name)));
                if !present {
                    ctx.missing.push(format!("{}.{name}", r.resource_type));
                }
            }
            let n = ctx.built.len();
            ctx.built.push(Built { order: (kind, n), kind, id, resource });
            // The children are built with `ctx` (which `w` is not part of): hand them the
            // warnings gathered so far, then take them all back into `w`.
            let mut saved = std::mem::take(w);
            std::mem::swap(&mut ctx.warnings, &mut saved);
            for &c in &children {
                build_kind(ctx, c, &inner, &chain);
            }
            std::mem::swap(&mut ctx.warnings, &mut saved);
            w.append(&mut saved);
        },
    );
    ctx.warnings.append(&mut warnings);
}

/// A primitive's value, converted, and kept only when its binding allows it.
fn scalar_value(s: &FhirScalar, scope: &Scope<'_>, warnings: &mut Vec<Issue>) -> Doc {
    allowed(scalar(scope, &s.expr, &s.value_type, &s.fhir_type, warnings), &s.codes, scope.field, warnings)
}

/// The value of one field (`None` when there is nothing to write).
fn set_field(
    target: &mut Doc,
    f: &FhirField,
    scope: &Scope<'_>,
    singles: &HashMap<&str, Option<String>>,
    refs: &Refs<'_>,
    groups: &Groups<'_>,
    warnings: &mut Vec<Issue>,
) {
    let value = match &f.value {
        FhirValue::Scalar(s) => scalar_value(s, scope, warnings),
        FhirValue::Ref { target: name, many } => {
            let reference = |id: &String| Doc::Obj(vec![("reference".into(), Doc::Str(format!("urn:uuid:{id}")))]);
            if let Some((_, id)) = refs.ancestors.iter().rev().find(|(n, _)| n == name) {
                reference(id)
            } else if let Some(id) = singles.get(name.as_str()) {
                id.as_ref().map_or(Doc::Null, reference)
            } else {
                let ids = refs.children.get(name.as_str()).map(Vec::as_slice).unwrap_or_default();
                match (many, ids) {
                    (true, ids) => Doc::Arr(ids.iter().map(reference).collect()),
                    (false, [id, ..]) => reference(id),
                    (false, []) => Doc::Null,
                }
            }
        }
        FhirValue::List { producers } => {
            let mut items = Vec::new();
            for p in producers {
                produce(p, scope, singles, refs, groups, &mut items, warnings);
            }
            Doc::Arr(items)
        }
    };
    if !value.is_empty_value() {
        set_path(target, &f.path, value);
    }
}

/// `value` when `codes` is empty or holds it; else nothing, with warning RT311.
fn allowed(value: Doc, codes: &[String], field: &str, warnings: &mut Vec<Issue>) -> Doc {
    match &value {
        Doc::Str(s) if !codes.is_empty() && !codes.contains(s) => {
            warnings.push(Issue::new(
                findings::FHIR_CODE_NOT_ALLOWED,
                field,
                "value is not a code of the element's required value set",
            ));
            Doc::Null
        }
        _ => value,
    }
}

/// One primitive value. `date(x)` / `datetime(x)` written to a FHIR `date` / `dateTime`
/// keep the precision of the HL7 value (`1980`, `1980-06`, `1980-06-15`; a time gets seconds
/// and an offset, the value's own or the profile's), as FHIR allows partial dates.
fn scalar(scope: &Scope<'_>, expr: &Expr, value_type: &ValueType, fhir_type: &str, warnings: &mut Vec<Issue>) -> Doc {
    if let Expr::Call { function: f @ (Function::Date | Function::Datetime), args } = expr
        && let [arg] = args.as_slice()
        && matches!(fhir_type, "date" | "dateTime")
    {
        let raw = Scope { raw: true, vars: scope.vars.clone(), groups: scope.groups.clone(), ..*scope };
        let Some(text) = raw.eval(arg, warnings).text().filter(|t| !t.trim().is_empty()) else { return Doc::Null };
        let with_time = fhir_type == "dateTime" && *f == Function::Datetime;
        return match fhir_date(&text, scope.zone, with_time) {
            Some(d) => Doc::Str(d),
            None => {
                let (code, what) = if with_time {
                    (findings::BAD_DATETIME, "an HL7 datetime (YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ])")
                } else {
                    (findings::BAD_DATE, "an HL7 date (YYYY[MM[DD]])")
                };
                warnings.push(Issue::new(code, scope.field, format!("value is not {what}")));
                Doc::Null
            }
        };
    }
    scope.eval_coerced(expr, value_type, scope.field, warnings).into_doc()
}

/// HL7 DT/DTM text as a FHIR `date` (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) or, `with_time`, a FHIR
/// `dateTime` that keeps a date-only value's precision.
pub fn fhir_date(text: &str, zone: &str, with_time: bool) -> Option<String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let date_part = &t[..digits.min(8)];
    let valid_date = |d: &str| match d.len() {
        4 => Some(d.to_string()),
        6 => time::hl7_to_date(&format!("{d}01")).map(|x| x[..7].to_string()),
        8 => time::hl7_to_date(d),
        _ => None,
    };
    if with_time && digits > 8 {
        return time::hl7_to_datetime(t, zone);
    }
    if !with_time && digits > 8 {
        return valid_date(date_part).filter(|_| time::hl7_to_datetime(t, zone).is_some());
    }
    // A date alone may carry nothing else (a stray offset on a date is tolerated).
    let rest = &t[digits..];
    if !(rest.is_empty() || (rest.len() == 5 && rest.starts_with(['+', '-']))) {
        return None;
    }
    valid_date(date_part)
}

fn produce(
    p: &FhirProducer,
    scope: &Scope<'_>,
    singles: &HashMap<&str, Option<String>>,
    refs: &Refs<'_>,
    groups: &Groups<'_>,
    items: &mut Vec<Doc>,
    warnings: &mut Vec<Issue>,
) {
    for_each_instance(scope, p.each.as_ref(), p.group.as_ref(), p.var.as_deref(), groups, warnings, &mut |inner, w| {
        if let Some(when) = &p.when
            && !inner.eval(when, w).truthy()
        {
            return;
        }
        let mut item = match &p.item {
            FhirItem::Scalar(s) => scalar_value(s, inner, w),
            FhirItem::Fields { fields } => {
                let mut obj = Doc::Obj(Vec::new());
                for f in fields {
                    set_field(&mut obj, f, inner, singles, refs, groups, w);
                }
                obj
            }
        };
        prune(&mut item);
        if !is_empty(&item) {
            items.push(item);
        }
    });
}

/// Writes `value` at `steps`: objects are created on the way; a repeating step takes its
/// index (`name[1]`, the first item when none is given on the way), and a repeating last step
/// without index gets the value appended (a list's items, or the one value).
fn set_path(cur: &mut Doc, steps: &[FhirStep], value: Doc) {
    let Some((step, rest)) = steps.split_first() else { return };
    if !step.list {
        if rest.is_empty() {
            cur.set(&step.name, value);
        } else if let Some(next) = cur.object_at(&step.name) {
            set_path(next, rest, value);
        }
        return;
    }
    let Some(items) = array_at(cur, &step.name) else { return };
    match (step.index, rest.is_empty()) {
        (None, true) => match value {
            Doc::Arr(v) => items.extend(v),
            v => items.push(v),
        },
        (i, last) => {
            let i = i.unwrap_or(0);
            while items.len() <= i {
                items.push(Doc::Obj(Vec::new()));
            }
            if last {
                items[i] = value;
            } else {
                if !matches!(items[i], Doc::Obj(_)) {
                    items[i] = Doc::Obj(Vec::new());
                }
                set_path(&mut items[i], rest, value);
            }
        }
    }
}

/// The array member `key` of an object, created when missing.
fn array_at<'d>(doc: &'d mut Doc, key: &str) -> Option<&'d mut Vec<Doc>> {
    let Doc::Obj(m) = doc else { return None };
    let i = match m.iter().position(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            m.push((key.to_string(), Doc::Arr(Vec::new())));
            m.len() - 1
        }
    };
    if !matches!(m[i].1, Doc::Arr(_)) {
        m[i].1 = Doc::Arr(Vec::new());
    }
    match &mut m[i].1 {
        Doc::Arr(a) => Some(a),
        _ => None,
    }
}

fn is_empty(d: &Doc) -> bool {
    match d {
        Doc::Null => true,
        Doc::Str(s) => s.is_empty(),
        Doc::Arr(a) => a.is_empty(),
        Doc::Obj(m) => m.is_empty(),
        _ => false,
    }
}

/// Removes nulls, empty strings, empty objects and empty arrays, innermost first (FHIR JSON
/// has no empty elements).
fn prune(d: &mut Doc) {
    match d {
        Doc::Arr(items) => {
            items.iter_mut().for_each(prune);
            items.retain(|i| !is_empty(i));
        }
        Doc::Obj(members) => {
            members.iter_mut().for_each(|(_, v)| prune(v));
            members.retain(|(_, v)| !is_empty(v));
        }
        _ => {}
    }
}

/// The classed leaves of a Bundle, by JSON pointer, from the classes of their patterns.
fn classes_of(bundle: &Doc, patterns: &HashMap<&str, Vec<PhiClass>>) -> BTreeMap<String, ClassedLeaf> {
    let mut out = BTreeMap::new();
    if let Some(Doc::Arr(entries)) = bundle.get("entry") {
        for (i, e) in entries.iter().enumerate() {
            let Some(resource) = e.get("resource") else { continue };
            let Some(Doc::Str(ty)) = resource.get("resourceType") else { continue };
            tag(resource, ty, &format!("/entry/{i}/resource"), patterns, &mut out);
        }
    }
    out
}

/// After a mask stage: the leaves it set to null are removed (FHIR JSON has no nulls), and the
/// PHI tags follow the leaves that remain (their pointers may have moved within lists).
pub fn drop_nulled(rec: &mut Record) {
    let Payload::Doc(doc) = &mut rec.payload else { return };
    let mut patterns: HashMap<&str, Vec<PhiClass>> = HashMap::new();
    for leaf in rec.env.classes.values() {
        patterns.entry(leaf.pattern.as_str()).or_default().extend(leaf.classes.iter().copied());
    }
    prune(doc);
    let classes = classes_of(doc, &patterns);
    rec.env.classes = classes;
}

/// Tags the classed leaves of `d` (pattern `prefix.key[*]...`) under their JSON pointers.
fn tag(
    d: &Doc,
    pattern: &str,
    pointer: &str,
    patterns: &HashMap<&str, Vec<PhiClass>>,
    out: &mut BTreeMap<String, ClassedLeaf>,
) {
    match d {
        Doc::Obj(members) => {
            for (k, v) in members {
                let p = format!("{pattern}.{k}");
                let ptr = format!("{pointer}/{}", pointer_token(k));
                match v {
                    Doc::Arr(items) => {
                        let p = format!("{p}[*]");
                        for (i, item) in items.iter().enumerate() {
                            tag(item, &p, &format!("{ptr}/{i}"), patterns, out);
                        }
                    }
                    v => tag(v, &p, &ptr, patterns, out),
                }
            }
        }
        Doc::Arr(_) => {}
        _ => {
            if let Some(classes) = patterns.get(pattern) {
                out.insert(
                    pointer.to_string(),
                    ClassedLeaf { pattern: pattern.to_string(), classes: classes.to_vec() },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_uuids_that_depend_on_type_and_every_key() {
        let a = fhir_id("Patient", &[Some("123".into())]);
        assert_eq!(a, fhir_id("Patient", &[Some("123".into())]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "RFC 4122 variant");
        assert_ne!(a, fhir_id("Encounter", &[Some("123".into())]));
        assert_ne!(a, fhir_id("Patient", &[Some("1234".into())]));
        assert_ne!(
            fhir_id("Patient", &[Some("1".into()), Some("23".into())]),
            fhir_id("Patient", &[Some("12".into()), Some("3".into())])
        );
    }

    #[test]
    fn fhir_dates_keep_the_precision_of_the_hl7_value() {
        assert_eq!(fhir_date("1980", "Z", false).unwrap(), "1980");
        assert_eq!(fhir_date("198006", "Z", true).unwrap(), "1980-06");
        assert_eq!(fhir_date("19800615", "Z", true).unwrap(), "1980-06-15");
        assert_eq!(fhir_date("198808181126+0215", "Z", false).unwrap(), "1988-08-18");
        assert_eq!(fhir_date("198808181126+0215", "Z", true).unwrap(), "1988-08-18T11:26:00+02:15");
        assert_eq!(fhir_date("2024010812", "-05:00", true).unwrap(), "2024-01-08T12:00:00-05:00");
        for bad in ["", "19801", "19801340", "abc", "1980x", "20240230"] {
            assert!(fhir_date(bad, "Z", true).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn paths_create_lists_and_prune_empties() {
        let step = |name: &str, index: Option<usize>, list: bool| FhirStep { name: name.into(), index, list };
        let mut d = Doc::Obj(Vec::new());
        set_path(&mut d, &[step("name", Some(0), true), step("family", None, false)], Doc::Str("X".into()));
        set_path(&mut d, &[step("name", Some(0), true), step("given", None, true)], Doc::Str("Y".into()));
        set_path(&mut d, &[step("telecom", Some(1), true), step("value", None, false)], Doc::Str("5".into()));
        set_path(&mut d, &[step("gender", None, false)], Doc::Str(String::new()));
        prune(&mut d);
        assert_eq!(d.to_json_string(), r#"{"name":[{"family":"X","given":["Y"]}],"telecom":[{"value":"5"}]}"#);
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text: no panic, and what comes out is a FHIR date or dateTime form.
        #[test]
        fn fhir_date_never_panics_and_writes_fhir_forms(text in "\\PC{0,24}|[0-9]{0,14}([+-][0-9]{4})?", time in any::<bool>()) {
            if let Some(d) = fhir_date(&text, "Z", time) {
                let date = d.split('T').next().unwrap();
                prop_assert!(matches!(date.len(), 4 | 7 | 10), "{d}");
                prop_assert!(date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() }), "{d}");
                prop_assert!(time || !d.contains('T'), "{d}");
            }
        }

        /// Any values of any keys: a version 8 UUID, and the same keys the same id.
        #[test]
        fn ids_are_uuids(keys in proptest::collection::vec(proptest::option::of("\\PC{0,8}"), 0..4)) {
            let id = fhir_id("Observation", &keys);
            prop_assert_eq!(id.len(), 36);
            prop_assert_eq!(&id[14..15], "8");
            prop_assert_eq!(id.clone(), fhir_id("Observation", &keys));
        }
    }
}
