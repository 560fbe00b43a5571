//! The map stage: an HL7 message to an output document, field by field, in field order.
//! List fields are built by producers: one item per repetition (`each: PID-3[*]`), per segment
//! group instance (`each: group(ORDER_OBSERVATION)`, partitioned by [`crate::groups`] on
//! first use), per X12 loop occurrence (`each: loop(2400)`, below the occurrence bound around
//! it), per element of a finance object's array (`each: Line[*]`, bound for the paths on the
//! variable; the object stays readable), or a single item; list items may hold nested lists,
//! built by their own producers in the item's scope (its loop, group and item variables). A mapping with `each: loop(ID)` at its top
//! maps records its source cut at that loop; one holding another number of occurrences goes to
//! the DLQ (RT144). With several HL levels (`each: loop(2000C, 2000D)`) a record is one person
//! when cutting it again at those levels gives it back whole as one of the parts. An X12
//! mapping's sets are placed in the loops of the guide made when the stage was prepared
//! ([`x12_guide`]): a trading partner's copy when the mapping names a partner, and then a set
//! of any other sender goes to the DLQ (RT312) instead of being read with a copy not its own.
//!
//! Invariants:
//! - Dotted output paths become nested objects, created in the order fields are listed, so the
//!   document's key order is the mapping's (deterministic bytes).
//! - A conversion failure gives null plus a warning on the record; a `required` field that ends
//!   up null or empty sends the record to the DLQ (one finding per such field).
//! - For every leaf it writes whose plan carries PHI classes, the stage records the classes
//!   under the leaf's concrete JSON pointer (`/patient/identifiers/1/value`,
//!   `/orders/0/observations/2/observed_at`) with its field pattern
//!   (`orders[*].observations[*].observed_at`), for the mask stage. The previous map's classes
//!   are replaced.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_compiler::expr::ast::Expr;
use sluice_compiler::plan::{FieldValue, GroupEach, ItemPlan, MapPlan, Producer};
use sluice_hl7v2::schema::Version;
use sluice_hl7v2::view::parts;
use sluice_spec_core::{PhiClass, ValueType};

use super::{Step, message_type_accepted};
use crate::dlq::{Finding, Rejection};
use crate::eval::{Prepared, Provenance, Scope, Tables, Val, coercion_can_warn};
use crate::findings;
use crate::groups::{self, Partition};
use crate::hl7::{self, Binding, Hl7Message, Reader};
use crate::record::{ClassedLeaf, Doc, Issue, Payload, Record, pointer_token};

/// Builds the lookup tables of a map stage.
pub fn tables(plan: &MapPlan) -> Tables {
    plan.tables.iter().map(|t| (t.name.clone(), t.entries.iter().cloned().collect())).collect()
}

/// The JSON pointer of a dotted path (`patient.name` -> `/patient/name`).
fn dotted_pointer(dotted: &str) -> String {
    let mut pointer = String::with_capacity(dotted.len() + 1);
    push_dotted_pointer(&mut pointer, dotted);
    pointer
}

fn push_dotted_pointer(pointer: &mut String, dotted: &str) {
    for part in parts(dotted, '.') {
        pointer.push('/');
        pointer.push_str(&pointer_token(part));
    }
}

/// The pointer of item `i` of the list at `list`, then of `dotted` inside it (none when
/// empty): `/patient/identifiers/1/type`. Written in one buffer: one is made per classed leaf
/// of every item, where `format!` costs more than the copying (a property test compares them).
fn item_pointer(list: &str, i: usize, dotted: &str) -> String {
    let mut pointer = String::with_capacity(list.len() + dotted.len() + 8);
    pointer.push_str(list);
    pointer.push('/');
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = i;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only.
    pointer.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
    if !dotted.is_empty() {
        push_dotted_pointer(&mut pointer, dotted);
    }
    pointer
}

/// Sets `value` at a dotted path (at [`dotted_pointer`]), creating objects on the way.
fn insert(doc: &mut Doc, dotted: &str, value: Doc) {
    let mut value = Some(value);
    let mut cur = doc;
    let mut parts = parts(dotted, '.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            if let Some(v) = value.take() {
                cur.set(part, v);
            }
            break;
        }
        match cur.object_at(part) {
            Some(next) => cur = next,
            None => break,
        }
    }
}

struct Out<'r> {
    classes: BTreeMap<String, ClassedLeaf>,
    warnings: &'r mut Vec<Issue>,
}

impl Out<'_> {
    /// Records the classes of a leaf; the pointer and pattern are only formatted for a leaf
    /// that has classes.
    fn class(&mut self, pointer: impl FnOnce() -> String, pattern: impl FnOnce() -> String, classes: &[PhiClass]) {
        if !classes.is_empty() {
            self.classes.insert(pointer(), ClassedLeaf { pattern: pattern(), classes: classes.to_vec() });
        }
    }
}

fn list_inner(vt: &ValueType) -> &ValueType {
    match vt {
        ValueType::List(inner) => inner,
        other => other,
    }
}

/// The record's message, partitioned into segment group instances on first use (only
/// mappings that iterate groups pay for it, and for the message's full tree).
pub(crate) struct Groups<'m> {
    /// `None` for a FHIR resource: nothing to partition.
    msg: Option<&'m Hl7Message>,
    version: Option<Version>,
    partition: OnceCell<Partition>,
}

impl<'m> Groups<'m> {
    pub(crate) fn new(msg: &'m Hl7Message, version: Option<Version>) -> Self {
        Groups { msg: Some(msg), version, partition: OnceCell::new() }
    }

    /// For a record that is not an HL7 message (group producers then yield nothing).
    fn none() -> Self {
        Groups { msg: None, version: None, partition: OnceCell::new() }
    }

    fn partition(&self, msg: &Hl7Message, field: &str, warnings: &mut Vec<Issue>) -> &Partition {
        self.partition.get_or_init(|| {
            let (p, why) = groups::partition(msg.tree(), self.version);
            if let Some(why) = why {
                warnings.push(Issue::new(findings::GROUPS_FALLBACK, field, why));
            }
            p
        })
    }
}

/// The instances `each: group(...)` / `segment(...)` iterates over, within the group
/// instance bound to `each.within` when it names one (none when that variable is unbound).
pub(crate) fn group_instances(
    scope: &Scope<'_>,
    each: &GroupEach,
    g: &Groups<'_>,
    field: &str,
    warnings: &mut Vec<Issue>,
) -> Vec<groups::Instance> {
    let parent = match &each.within {
        Some(w) => match scope.groups.iter().rev().find(|(n, _)| n == w) {
            Some((_, inst)) => Some(*inst),
            None => return Vec::new(),
        },
        None => None,
    };
    let Some(msg) = g.msg else { return Vec::new() };
    if each.segment {
        groups::segments(msg.tree(), &each.shape.name, parent)
    } else {
        g.partition(msg, field, warnings).instances(msg.tree(), each, parent)
    }
}

/// The bindings a producer iterates over: repetitions for an HL7 path (within a group
/// instance for `order.NTE[*]-3`), else one single-value binding per value of the expression.
pub(crate) fn bindings<'a>(scope: &Scope<'a>, each: &Expr, warnings: &mut Vec<Issue>) -> Vec<Binding<'a>> {
    if let (Expr::Hl7 { path, .. } | Expr::Within { path, .. }, Some(msg)) = (each, scope.msg)
        && let Some(p) = scope.prepared.path(path)
    {
        let among = match each {
            Expr::Within { var, .. } => match scope.groups.iter().rev().find(|(n, _)| n == var) {
                Some((_, g)) => Some(&g.visible[..]),
                None => return Vec::new(),
            },
            _ => None,
        };
        return match among {
            None => msg.repetitions(p),
            Some(_) => hl7::repetitions_among(msg.tree(), among, p),
        };
    }
    let values = match scope.eval(each, warnings) {
        Val::List(items) => items,
        Val::Null => Vec::new(),
        other => vec![other],
    };
    values.iter().filter_map(Val::text).filter(|t| !t.is_empty()).map(|t| vec![vec![Cow::Owned(t)]]).collect()
}

/// The DLQ rejection of a record whose required output `what`s (paths, in order) came out empty.
pub(crate) fn required_empty(component: &str, what: &str, missing: &[String]) -> Rejection {
    let findings = missing
        .iter()
        .map(|p| Finding {
            code: findings::REQUIRED_OUTPUT_EMPTY,
            rule: None,
            path: Some(p.clone()),
            message: format!("required {what} is empty"),
        })
        .collect();
    let reason = format!("required {what}(s) empty in map stage `{component}`: {}", missing.join(", "));
    Rejection { code: findings::REQUIRED_OUTPUT_EMPTY, reason, findings, attempts: 1 }
}

/// Where produced items go: the list's field pattern (`orders[*].observations`) and the JSON
/// pointer of the concrete list (`/orders/1/observations`).
struct Target<'t> {
    pattern: &'t str,
    pointer: &'t str,
    item_type: &'t ValueType,
}

fn emit(
    scope: &Scope<'_>,
    t: &Target<'_>,
    producer: &Producer,
    items: &mut Vec<Doc>,
    out: &mut Out<'_>,
    g: &Groups<'_>,
) {
    if let Some(when) = &producer.when
        && !scope.eval(when, out.warnings).truthy()
    {
        return;
    }
    let i = items.len();
    match &producer.item {
        ItemPlan::Scalar { expr, classes } => {
            let v = scope.eval_coerced(expr, t.item_type, t.pattern, out.warnings);
            items.push(v.into_doc());
            out.class(|| item_pointer(t.pointer, i, ""), || [t.pattern, "[*]"].concat(), classes);
        }
        ItemPlan::Struct { members, lists } => {
            let mut obj = Doc::Obj(Vec::new());
            for m in members {
                // The member's pattern names it in classes and conversion warnings: formatted
                // only for a member that can have either.
                let member_path = if m.classes.is_empty() && !coercion_can_warn(&m.value_type) {
                    String::new()
                } else {
                    [t.pattern, "[*].", &m.name].concat()
                };
                let v = scope.eval_coerced(&m.expr, &m.value_type, &member_path, out.warnings);
                insert(&mut obj, &m.name, v.into_doc());
                out.class(|| item_pointer(t.pointer, i, &m.name), || member_path, &m.classes);
            }
            for l in lists {
                let pattern = format!("{}[*].{}", t.pattern, l.name);
                let pointer = format!("{}/{i}/{}", t.pointer, pointer_token(&l.name));
                let inner = Target { pattern: &pattern, pointer: &pointer, item_type: list_inner(&l.value_type) };
                let mut nested = Vec::new();
                for p in &l.producers {
                    produce(scope, &inner, p, &mut nested, out, g);
                }
                insert(&mut obj, &l.name, Doc::Arr(nested));
            }
            items.push(obj);
        }
    }
}

fn produce(
    scope: &Scope<'_>,
    t: &Target<'_>,
    producer: &Producer,
    items: &mut Vec<Doc>,
    out: &mut Out<'_>,
    g: &Groups<'_>,
) {
    let var = producer.var.as_deref().unwrap_or("it");
    if let (Some(id), Some(set)) = (&producer.x12_loop, scope.x12) {
        for at in crate::x12_path::occurrences(set, id, scope.x12_at) {
            let inner = Scope { vars: scope.vars.clone(), groups: scope.groups.clone(), x12_at: Some(at), ..*scope };
            emit(&inner, t, producer, items, out, g);
        }
        return;
    }
    if let Some(array) = &producer.array {
        // `each: Line[*]` over a finance object: one item per element, in the array's order.
        let from = match &array.within {
            None => scope.doc,
            Some(v) => scope.items.iter().rev().find(|(n, _)| n == v).map(|(_, d)| *d),
        };
        let elements = from.map(|d| crate::fhir_path::select_in(d, None, &array.path)).unwrap_or_default();
        for element in elements {
            let bound: Vec<(&str, &Doc)> = scope.items.iter().copied().chain([(var, element)]).collect();
            let inner = Scope { items: &bound, vars: scope.vars.clone(), groups: scope.groups.clone(), ..*scope };
            emit(&inner, t, producer, items, out, g);
        }
        return;
    }
    if let Some(each) = &producer.group {
        let instances = group_instances(scope, each, g, t.pattern, out.warnings);
        for inst in &instances {
            let mut groups = scope.groups.clone();
            groups.push((var, inst));
            let inner = Scope { groups, vars: scope.vars.clone(), ..*scope };
            emit(&inner, t, producer, items, out, g);
        }
        return;
    }
    match &producer.each {
        None => emit(scope, t, producer, items, out, g),
        Some(each) => {
            let bs = bindings(scope, each, out.warnings);
            for b in &bs {
                let mut vars = scope.vars.clone();
                vars.push((var, b));
                let inner = Scope { vars, groups: scope.groups.clone(), ..*scope };
                emit(&inner, t, producer, items, out, g);
            }
        }
    }
}

/// Where a record came from, beyond its payload: the Bundle of a FHIR resource (for
/// `resolve()`), the finance source of a Stripe, Plaid or QuickBooks object (for `connection()`
/// and `envelope(...)`).
pub struct Origin<'a> {
    pub bundle: Option<&'a crate::fhir_source::BundleIndex>,
    pub provenance: Option<&'a crate::compile::SourceProvenance>,
    /// The guide of an X12 mapping ([`x12_guide`]), made when the stage was prepared.
    pub x12_guide: Option<&'static sluice_x12::guide::Guide>,
}

/// The guide an X12 mapping reads its sets with: the bundled guide its `input_schema` names
/// (`x12/<guide>`, or `x12/<guide>/<set>` where guides share an id, the 270 and 271), or, with
/// `x12_partner`, that partner's copy (its overlays applied; made once per process). `None`
/// for other mappings; `Err` only for a plan the compiler did not make.
pub fn x12_guide(plan: &MapPlan) -> Result<Option<&'static sluice_x12::guide::Guide>, String> {
    let Some(id) = plan.input_schema.strip_prefix(sluice_compiler::x12::MAPPING_SCHEMA_PREFIX) else {
        return Ok(None);
    };
    let bundled = sluice_x12::guide::by_schema_name(id).ok_or_else(|| format!("X12 guide {id} is not bundled"))?;
    match &plan.x12_partner {
        None => Ok(Some(bundled)),
        Some(p) => sluice_compiler::spec::x12_profile::partner_copy(bundled, &p.overlays).map(Some),
    }
}

pub fn run<'p>(
    component: &str,
    emits: &Arc<str>,
    plan: &MapPlan,
    tables: &Tables,
    prepared: &Prepared<'_>,
    mut rec: Record,
    origin: Origin<'_>,
) -> Step<'p> {
    let bundle = origin.bundle;
    if !message_type_accepted(&plan.message_types, rec.env.message_type.as_deref()) {
        let (path, what) = if plan.input_schema == sluice_compiler::fhir::SCHEMA {
            ("resourceType", "resource type")
        } else if plan.input_schema.starts_with(sluice_compiler::stripe::SCHEMA_PREFIX) {
            ("object", "Stripe object type")
        } else if plan.input_schema.starts_with(sluice_compiler::x12::MAPPING_SCHEMA_PREFIX) {
            ("ST-01", "X12 transaction set id (ST01)")
        } else {
            ("MSH-9", "message type (MSH-9)")
        };
        let r = Rejection::single(
            findings::MAP_TYPE_NOT_ACCEPTED,
            Some(path),
            format!("{what} is not accepted by mapping `{}` in map stage `{component}`", plan.mapping),
        );
        return Step::Dlq(rec, r);
    }
    let x12_guide = origin.x12_guide;
    if let (Payload::Doc(d), Some(guide)) = (&rec.payload, x12_guide.map(|g| g.id.as_str())) {
        // An X12 set of another guide with the same set id (837I into an 837P mapping).
        if !matches!(d.get("set").and_then(|s| s.get("guide")), Some(Doc::Str(g)) if g == guide) {
            let r = Rejection::single(
                findings::MAP_TYPE_NOT_ACCEPTED,
                Some("set.guide"),
                format!(
                    "the X12 guide is not {guide}, which mapping `{}` in map stage `{component}` reads",
                    plan.mapping
                ),
            );
            return Step::Dlq(rec, r);
        }
        // A partner's copy reads that partner's sets only: another sender's (or an accepted
        // unknown sender's) set would be placed in loops that are not its own.
        if let Some(p) = &plan.x12_partner
            && !matches!(d.get("interchange").and_then(|i| i.get("partner")), Some(Doc::Str(s)) if *s == p.name)
        {
            let r = Rejection::single(
                findings::X12_OTHER_PARTNER,
                Some("interchange.partner"),
                format!(
                    "the X12 set is not from trading partner `{}`, whose copy of {guide} mapping `{}` in map stage `{component}` reads",
                    p.name, plan.mapping
                ),
            );
            return Step::Dlq(rec, r);
        }
    }
    let doc_input = plan.input_schema == sluice_compiler::fhir::SCHEMA
        || x12_guide.is_some()
        || plan.input_schema.starts_with(sluice_compiler::stripe::SCHEMA_PREFIX)
        || plan.input_schema.starts_with(sluice_compiler::quickbooks::SCHEMA_PREFIX)
        || plan.input_schema.starts_with(sluice_compiler::plaid::SCHEMA_PREFIX);
    if matches!(rec.payload, Payload::Doc(_)) && doc_input {
        // A FHIR resource or an X12 set: the payload is replaced by the output document anyway.
        let resource = match std::mem::replace(&mut rec.payload, Payload::Doc(Doc::Null)) {
            Payload::Doc(d) => d,
            Payload::Hl7(_) => Doc::Null,
        };
        // An X12 set's loops are identified once, for every path of every field.
        let set_bytes = x12_guide.and_then(|g| crate::x12_path::SetBytes::of(&rec.raw, &resource, g));
        let identified = match (&set_bytes, x12_guide) {
            (Some(b), Some(g)) => Some(b.identify(g)),
            _ => None,
        };
        // `each: loop(ID)`: the source cut the set there, so the record holds one occurrence.
        if let (false, Some(set)) = (plan.x12_each.is_empty(), &identified)
            && let Some(r) = not_one_occurrence(set, &plan.x12_each, &plan.mapping, component)
        {
            rec.payload = Payload::Doc(resource);
            return Step::Dlq(rec, r);
        }
        let input = Input {
            reader: None,
            resource: Some(&resource),
            bundle,
            x12: identified.as_ref(),
            provenance: origin.provenance,
        };
        return fields(component, emits, plan, tables, prepared, rec, input, &Groups::none());
    }
    let Payload::Hl7(msg) = &rec.payload else {
        let r = Rejection::single(
            findings::MAP_INPUT_NOT_HL7,
            None,
            format!("map stage `{component}` received a record that is not an HL7 message"),
        );
        return Step::Dlq(rec, r);
    };
    let msg = Arc::clone(msg);
    let reader = Reader::new(&msg);
    if let Some(bundle) = &plan.fhir {
        return crate::fhir_output::run(component, emits, bundle, tables, prepared, rec, &reader);
    }
    let version = rec.schema.strip_prefix("hl7v2/").and_then(Version::parse);
    let groups = Groups::new(&msg, version);
    let input = Input { reader: Some(&reader), resource: None, bundle: None, x12: None, provenance: None };
    fields(component, emits, plan, tables, prepared, rec, input, &groups)
}

/// What a mapping reads: an HL7 message, a FHIR resource and the Bundle it came from, or an
/// X12 set (its document, and its segments placed in the guide's loops).
struct Input<'a> {
    reader: Option<&'a Reader<'a>>,
    resource: Option<&'a Doc>,
    bundle: Option<&'a crate::fhir_source::BundleIndex>,
    x12: Option<&'a sluice_x12::loops::Identified<'a>>,
    provenance: Option<&'a crate::compile::SourceProvenance>,
}

/// Fills the mapping's output fields from its input and hands the record on (or to the DLQ
/// when a required field is empty).
#[allow(clippy::too_many_arguments)]
fn fields<'p>(
    component: &str,
    emits: &Arc<str>,
    plan: &MapPlan,
    tables: &Tables,
    prepared: &Prepared<'_>,
    mut rec: Record,
    input: Input<'_>,
    groups: &Groups<'_>,
) -> Step<'p> {
    let zone = Arc::clone(&rec.env.timezone);
    let mut warnings = std::mem::take(&mut rec.env.warnings);
    let mut out = Out { classes: BTreeMap::new(), warnings: &mut warnings };
    let mut doc = Doc::Obj(Vec::new());
    let mut missing = Vec::new();
    let bus = rec.env.bus.clone();
    let provenance = input.provenance.map(|source| Provenance { source, bus: bus.as_deref() });
    for field in &plan.fields {
        let root = Scope::root(prepared, input.reader, input.resource, Some(tables), &zone, &field.path);
        let scope = Scope { bundle: input.bundle, x12: input.x12, provenance, ..root };
        let value = match &field.value {
            FieldValue::Scalar { expr, classes } => {
                let v = scope.eval_coerced(expr, &field.value_type, &field.path, out.warnings);
                let d = v.into_doc();
                let empty = d.is_empty_value();
                insert(&mut doc, &field.path, d);
                out.class(|| dotted_pointer(&field.path), || field.path.clone(), classes);
                empty
            }
            FieldValue::List { producers } => {
                let mut items = Vec::new();
                let pointer = dotted_pointer(&field.path);
                let t = Target { pattern: &field.path, pointer: &pointer, item_type: list_inner(&field.value_type) };
                for p in producers {
                    produce(&scope, &t, p, &mut items, &mut out, groups);
                }
                let empty = items.is_empty();
                insert(&mut doc, &field.path, Doc::Arr(items));
                empty
            }
        };
        // A deletion's record holds only what identifies the resource: its other required
        // fields are empty by design (the sink deletes by key, or marks it `_deleted`).
        if field.required && value && !rec.env.deleted() {
            missing.push(field.path.clone());
        }
    }
    let classes = out.classes;
    rec.env.warnings = warnings;
    if !missing.is_empty() {
        return Step::Dlq(rec, required_empty(component, "output field", &missing));
    }
    rec.env.classes = classes;
    rec.env.masking = None;
    rec.payload = Payload::Doc(doc);
    rec.schema = Arc::clone(emits);
    Step::Next(rec, None)
}

/// RT144: a record of an `each: loop(...)` mapping must be one occurrence of its loop, as the
/// source cuts it. One loop: exactly one occurrence. Several HL levels (`2000C`, `2000D`): cut
/// again at them, one of the parts must be the record whole (a dependent's part holds its
/// subscriber's level too, but not the subscriber's benefits; a whole set replayed does not
/// pass).
fn not_one_occurrence(
    set: &sluice_x12::loops::Identified,
    loops: &[String],
    mapping: &str,
    component: &str,
) -> Option<Rejection> {
    let (one, n) = match loops {
        [id] => {
            let n = crate::x12_path::occurrences(set, id, None).len();
            (n == 1, n)
        }
        _ => {
            let ids: Vec<&str> = loops.iter().map(String::as_str).collect();
            let parts = sluice_x12::cut::cut_any(set, &ids);
            let whole = parts.iter().any(|p| p.segment_count == set.segments.len());
            (whole, parts.len())
        }
    };
    if one {
        return None;
    }
    let each = loops.join(", ");
    let what = loops.join(" or ");
    Some(Rejection::single(
        findings::X12_NOT_ONE_OCCURRENCE,
        Some(loops[0].as_str()),
        format!(
            "the record holds {n} occurrences of loop {what} (not one as its source cuts them); mapping `{mapping}` in map stage `{component}` maps one per record (`each: loop({each})`)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_compiler::plan::{ArrayEach, ListMemberPlan, MemberPlan};

    fn converted_type_of(e: &Expr) -> ValueType {
        match e {
            Expr::Item { value_type, .. } | Expr::Fhir { value_type, .. } => value_type.clone(),
            _ => ValueType::String,
        }
    }

    fn item(var: &str, path: &str, vt: ValueType) -> Expr {
        Expr::Item { var: var.into(), path: path.into(), value_type: vt, multi: false }
    }

    /// `each: Line[*]` (as `line`), and inside each line `each: line.LinkedTxn[*]` (as `txn`):
    /// one item per element in order, paths on the variables read their element, the entity
    /// stays readable, and classed members are recorded under their concrete pointers.
    #[test]
    fn finance_arrays_give_one_item_per_element_nested_in_the_items_scope() {
        let doc = Doc::from_json(&serde_json::json!({
            "DocNumber": "49",
            "Line": [
                {"Amount": 125.5, "Name": "A", "LinkedTxn": [{"TxnId": "7"}, {"TxnId": "8"}]},
                {"Amount": 6.25, "Name": "B"},
            ],
            "Empty": [],
        }));
        let txns = Producer {
            each: None,
            group: None,
            x12_loop: None,
            array: Some(ArrayEach { within: Some("line".into()), path: "LinkedTxn".into() }),
            var: Some("txn".into()),
            when: None,
            item: ItemPlan::Scalar { classes: vec![], expr: item("txn", "TxnId", ValueType::Identifier) },
        };
        let member = |name: &str, expr: Expr, classes: Vec<PhiClass>| MemberPlan {
            name: name.into(),
            value_type: converted_type_of(&expr),
            expr,
            classes,
        };
        let lines = Producer {
            each: None,
            group: None,
            x12_loop: None,
            array: Some(ArrayEach { within: None, path: "Line".into() }),
            var: Some("line".into()),
            when: None,
            item: ItemPlan::Struct {
                members: vec![
                    member("amount", item("line", "Amount", ValueType::Decimal), vec![]),
                    member("name", item("line", "Name", ValueType::String), vec![PhiClass::Name]),
                    member(
                        "doc",
                        Expr::Fhir { path: "DocNumber".into(), value_type: ValueType::String, multi: false },
                        vec![],
                    ),
                ],
                lists: vec![ListMemberPlan {
                    name: "txns".into(),
                    value_type: ValueType::List(Box::new(ValueType::Identifier)),
                    producers: vec![txns],
                }],
            },
        };
        let prepared = Prepared::default();
        let root = Scope::root(&prepared, None, Some(&doc), None, "UTC", "");
        let mut warnings = Vec::new();
        let mut out = Out { classes: BTreeMap::new(), warnings: &mut warnings };
        let t = Target { pattern: "lines", pointer: "/lines", item_type: &ValueType::Struct };
        let mut items = Vec::new();
        produce(&root, &t, &lines, &mut items, &mut out, &Groups::none());
        let got: Vec<serde_json::Value> =
            items.iter().map(|d| serde_json::from_str(&d.to_json_string()).unwrap()).collect();
        assert_eq!(
            got,
            [
                serde_json::json!({"amount": 125.5, "name": "A", "doc": "49", "txns": ["7", "8"]}),
                serde_json::json!({"amount": 6.25, "name": "B", "doc": "49", "txns": []}),
            ]
        );
        assert_eq!(out.classes.keys().collect::<Vec<_>>(), ["/lines/0/name", "/lines/1/name"]);
        assert_eq!(out.classes["/lines/1/name"].pattern, "lines[*].name");
        // An empty or missing array: no item.
        for path in ["Empty", "Missing"] {
            let none = Producer { array: Some(ArrayEach { within: None, path: path.into() }), ..lines.clone() };
            let mut items = Vec::new();
            produce(&root, &t, &none, &mut items, &mut out, &Groups::none());
            assert!(items.is_empty(), "{path}");
        }
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    proptest! {
        /// An item's pointer is the one `format!` builds.
        #[test]
        fn item_pointer_is_the_formatted_pointer(
            list in "(/[a-z~]{1,4}){0,3}",
            i in prop_oneof![0usize..12, any::<usize>()],
            dotted in "|[a-z/]{1,4}(\\.[a-z~]{1,4}){0,2}",
        ) {
            let simple = if dotted.is_empty() {
                format!("{list}/{i}")
            } else {
                format!("{list}/{i}{}", dotted_pointer(&dotted))
            };
            prop_assert_eq!(item_pointer(&list, i, &dotted), simple);
        }
    }
}
