//! The map stage: an HL7 message to an output document, field by field, in field order.
//!
//! Invariants:
//! - Dotted output paths become nested objects, created in the order fields are listed, so the
//!   document's key order is the mapping's (deterministic bytes).
//! - A conversion failure gives null plus a warning on the record; a `required` field that ends
//!   up null or empty sends the record to the DLQ (one finding per such field).
//! - For every leaf it writes whose plan carries PHI classes, the stage records the classes
//!   under the leaf's concrete JSON pointer (`/patient/identifiers/1/value`) with its field
//!   pattern (`patient.identifiers[*].value`), for the mask stage. The previous map's classes
//!   are replaced.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_compiler::expr::ast::Expr;
use sluice_compiler::plan::{FieldValue, ItemPlan, MapPlan, Producer};
use sluice_spec_core::{PhiClass, ValueType};

use super::{Step, message_type_accepted};
use crate::dlq::{Finding, Rejection};
use crate::eval::{Prepared, Scope, Tables, Val, coerce};
use crate::findings;
use crate::hl7::{self, Binding};
use crate::record::{ClassedLeaf, Doc, Issue, Payload, Record, pointer_token};

/// Builds the lookup tables of a map stage.
pub fn tables(plan: &MapPlan) -> Tables {
    plan.tables.iter().map(|t| (t.name.clone(), t.entries.iter().cloned().collect())).collect()
}

/// Sets `value` at a dotted path, creating objects on the way; returns the JSON pointer.
fn insert(doc: &mut Doc, dotted: &str, value: Doc) -> String {
    let parts: Vec<&str> = dotted.split('.').collect();
    let mut cur = doc;
    let mut pointer = String::new();
    for (i, part) in parts.iter().enumerate() {
        pointer.push('/');
        pointer.push_str(&pointer_token(part));
        if i + 1 == parts.len() {
            cur.set(part, value);
            break;
        }
        match cur.object_at(part) {
            Some(next) => cur = next,
            None => break,
        }
    }
    pointer
}

struct Out<'r> {
    classes: BTreeMap<String, ClassedLeaf>,
    warnings: &'r mut Vec<Issue>,
}

impl Out<'_> {
    fn class(&mut self, pointer: String, pattern: String, classes: &[PhiClass]) {
        if !classes.is_empty() {
            self.classes.insert(pointer, ClassedLeaf { pattern, classes: classes.to_vec() });
        }
    }
}

fn list_inner(vt: &ValueType) -> &ValueType {
    match vt {
        ValueType::List(inner) => inner,
        other => other,
    }
}

/// The bindings a producer iterates over: repetitions for an HL7 path, else one single-value
/// binding per value of the expression.
fn bindings(scope: &Scope<'_>, each: &Expr, warnings: &mut Vec<Issue>) -> Vec<Binding> {
    if let (Expr::Hl7 { path, .. }, Some(msg)) = (each, scope.msg)
        && let Some(p) = scope.prepared.path(path)
    {
        return hl7::repetitions(msg, p);
    }
    let values = match scope.eval(each, warnings) {
        Val::List(items) => items,
        Val::Null => Vec::new(),
        other => vec![other],
    };
    values.iter().filter_map(Val::text).filter(|t| !t.is_empty()).map(|t| vec![vec![t]]).collect()
}

fn produce(
    scope: &Scope<'_>,
    field_path: &str,
    item_type: &ValueType,
    producer: &Producer,
    items: &mut Vec<Doc>,
    out: &mut Out<'_>,
) {
    let pointer_base = format!("/{}", field_path.split('.').map(pointer_token).collect::<Vec<_>>().join("/"));
    let emit = |scope: &Scope<'_>, items: &mut Vec<Doc>, out: &mut Out<'_>| {
        if let Some(when) = &producer.when
            && !scope.eval(when, out.warnings).truthy()
        {
            return;
        }
        let i = items.len();
        match &producer.item {
            ItemPlan::Scalar { expr, classes } => {
                let v = coerce(
                    scope.eval_for(expr, item_type, out.warnings),
                    item_type,
                    scope.zone,
                    field_path,
                    out.warnings,
                );
                items.push(v.to_doc());
                out.class(format!("{pointer_base}/{i}"), format!("{field_path}[*]"), classes);
            }
            ItemPlan::Struct { members } => {
                let mut obj = Doc::Obj(Vec::new());
                for m in members {
                    let member_path = format!("{field_path}[*].{}", m.name);
                    let v = coerce(
                        scope.eval_for(&m.expr, &m.value_type, out.warnings),
                        &m.value_type,
                        scope.zone,
                        &member_path,
                        out.warnings,
                    );
                    let rel = insert(&mut obj, &m.name, v.to_doc());
                    out.class(format!("{pointer_base}/{i}{rel}"), format!("{field_path}[*].{}", m.name), &m.classes);
                }
                items.push(obj);
            }
        }
    };
    match &producer.each {
        None => emit(scope, items, out),
        Some(each) => {
            let bs = bindings(scope, each, out.warnings);
            let var = producer.var.as_deref().unwrap_or("it");
            for b in &bs {
                let mut vars = scope.vars.clone();
                vars.push((var, b));
                let inner = Scope { vars, ..*scope };
                emit(&inner, items, out);
            }
        }
    }
}

pub fn run<'p>(
    component: &str,
    emits: &Arc<str>,
    plan: &MapPlan,
    tables: &Tables,
    prepared: &Prepared<'_>,
    mut rec: Record,
) -> Step<'p> {
    if !message_type_accepted(&plan.message_types, rec.env.message_type.as_deref()) {
        let r = Rejection::single(
            findings::MAP_TYPE_NOT_ACCEPTED,
            Some("MSH-9"),
            format!("message type (MSH-9) is not accepted by mapping `{}` in map stage `{component}`", plan.mapping),
        );
        return Step::Dlq(rec, r);
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
    let zone = Arc::clone(&rec.env.timezone);
    let mut warnings = std::mem::take(&mut rec.env.warnings);
    let mut out = Out { classes: BTreeMap::new(), warnings: &mut warnings };
    let mut doc = Doc::Obj(Vec::new());
    let mut missing = Vec::new();
    for field in &plan.fields {
        let scope = Scope {
            prepared,
            msg: Some(&msg),
            doc: None,
            tables: Some(tables),
            vars: Vec::new(),
            zone: &zone,
            raw: false,
            field: &field.path,
        };
        let value = match &field.value {
            FieldValue::Scalar { expr, classes } => {
                let v = coerce(
                    scope.eval_for(expr, &field.value_type, out.warnings),
                    &field.value_type,
                    &zone,
                    &field.path,
                    out.warnings,
                );
                let d = v.to_doc();
                let empty = d.is_empty_value();
                let pointer = insert(&mut doc, &field.path, d);
                out.class(pointer, field.path.clone(), classes);
                empty
            }
            FieldValue::List { producers } => {
                let mut items = Vec::new();
                for p in producers {
                    produce(&scope, &field.path, list_inner(&field.value_type), p, &mut items, &mut out);
                }
                let empty = items.is_empty();
                insert(&mut doc, &field.path, Doc::Arr(items));
                empty
            }
        };
        if field.required && value {
            missing.push(field.path.clone());
        }
    }
    let classes = out.classes;
    rec.env.warnings = warnings;
    if !missing.is_empty() {
        let findings = missing
            .iter()
            .map(|p| Finding {
                code: findings::REQUIRED_OUTPUT_EMPTY,
                rule: None,
                path: Some(p.clone()),
                message: "required output field is empty".into(),
            })
            .collect();
        let reason = format!("required output field(s) empty in map stage `{component}`: {}", missing.join(", "));
        return Step::Dlq(rec, Rejection { code: findings::REQUIRED_OUTPUT_EMPTY, reason, findings });
    }
    rec.env.classes = classes;
    rec.env.masking = None;
    rec.payload = Payload::Doc(doc);
    rec.schema = Arc::clone(emits);
    Step::Next(rec, None)
}
