//! The JSON Schema of the spec language, for editors (YAML language servers read it).
//!
//! Generated from [`crate::spec::shape`], the same tables the compiler checks keys with, so the
//! schema cannot drift from what `sluice check` accepts. Deterministic: object keys keep the
//! order of the shape tables.

use serde_json::{Map, Value, json};

use crate::spec::shape::{self, KeyType, Shape};

/// The schema for every kind of spec file, selected by `kind`.
pub fn spec_schema() -> Value {
    let kinds: Vec<Value> = shape::KINDS
        .iter()
        .filter_map(|k| shape::for_kind(k))
        .map(|s| json!({"if": {"properties": {"kind": {"const": s.name}}, "required": ["kind"]}, "then": {"$ref": format!("#/$defs/{}", s.name)}}))
        .collect();
    let mut defs = Map::new();
    for k in shape::KINDS {
        if let Some(s) = shape::for_kind(k) {
            add_shape(&mut defs, s);
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://sluice.dev/schema/spec-v1.json",
        "title": "Sluice spec (pipeline, mapping, profile, rules, masking, test)",
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": shape::KINDS}},
        "allOf": kinds,
        "$defs": defs,
    })
}

fn add_shape(defs: &mut Map<String, Value>, s: &'static Shape) {
    if defs.contains_key(s.name) {
        return;
    }
    defs.insert(s.name.to_string(), Value::Null);
    let mut props = Map::new();
    for k in s.keys {
        let mut v = key_schema(defs, &k.ty);
        if let Value::Object(o) = &mut v {
            o.insert("description".into(), Value::String(k.doc.into()));
        }
        props.insert(k.name.to_string(), v);
    }
    let required: Vec<&str> = s.keys.iter().filter(|k| k.required).map(|k| k.name).collect();
    defs.insert(
        s.name.to_string(),
        json!({"type": "object", "description": s.doc, "properties": props, "required": required, "additionalProperties": false}),
    );
}

fn reference(defs: &mut Map<String, Value>, s: &'static Shape) -> Value {
    add_shape(defs, s);
    json!({"$ref": format!("#/$defs/{}", s.name)})
}

fn key_schema(defs: &mut Map<String, Value>, ty: &KeyType) -> Value {
    let expr = json!({"type": ["string", "number", "boolean", "null"]});
    match ty {
        KeyType::String => json!({"type": ["string", "number"]}),
        KeyType::Integer => json!({"type": "integer", "minimum": 0}),
        KeyType::Bool => json!({"type": "boolean"}),
        KeyType::Expr => expr,
        KeyType::Enum(values) => json!({"enum": values}),
        KeyType::StringOrList => json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
        KeyType::ListOfStrings => json!({"type": "array", "items": {"type": ["string", "number"]}}),
        KeyType::Duration => json!({"type": "string", "pattern": "^[0-9]+(ms|s|m|min|h)$"}),
        KeyType::Rate => json!({"type": "string", "pattern": "^[0-9]+/(s|sec|second|min|minute|h|hour|day)$"}),
        KeyType::Secret => json!({"type": "string", "pattern": "^\\$\\{([A-Za-z0-9_]+|file:.+)\\}$"}),
        KeyType::Object(s) => reference(defs, s),
        KeyType::MapOf(s) => json!({"type": "object", "additionalProperties": reference(defs, s)}),
        KeyType::MapOfStrings => json!({"type": "object", "additionalProperties": {"type": ["string", "object"]}}),
        KeyType::ListOf(s) => json!({"type": "array", "items": reference(defs, s)}),
        KeyType::Components(shapes) => {
            let variants: Vec<Value> = shapes.iter().map(|s| reference(defs, s)).collect();
            json!({"type": "object", "additionalProperties": {"oneOf": variants}})
        }
        KeyType::FieldMap => {
            let producer = reference(defs, &shape::PRODUCER);
            json!({"type": ["object", "string", "number", "boolean", "null"], "additionalProperties": {"oneOf": [
                expr, {"type": "object"}, {"type": "array", "items": producer}
            ]}})
        }
        KeyType::Any => json!({}),
        KeyType::TreatmentMap => {
            let t = reference(defs, &shape::TREATMENT);
            json!({"type": "object", "additionalProperties": {"oneOf": [{"enum": shape::MASK_ACTIONS}, {"type": "null"}, t]}})
        }
    }
}
