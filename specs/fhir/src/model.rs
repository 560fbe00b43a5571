//! How element names found in FHIR content (JSON member names, XML element names) map onto the
//! schema: the XML reader and the validator both walk content through these functions, so
//! they agree on what an element is.
//!
//! A *context* is where children are looked up: a type name (`Patient`, `HumanName`) or the
//! path of an element with inline children (`Patient.contact`); a contentReference
//! (`Questionnaire.item.item`) continues at the element it names.
//!
//! Invariants: lookups never panic; a choice element matches only its JSON names
//! (`valueQuantity`, `valueDateTime`), never the bare `value`.

use crate::schema::{ElementDef, Kind, Schema};

/// How a primitive type is written in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    String,
    Number,
    Bool,
}

/// An element found by name, with the one type the name selects.
#[derive(Clone, Copy, Debug)]
pub struct Found<'s> {
    pub def: &'s ElementDef,
    /// The type: the element's only type, or the choice's type the name picked. For a
    /// contentReference, the referenced element's path (its children are the context).
    pub type_code: &'s str,
}

/// The element of `context` whose JSON name is `name`.
pub fn child<'s>(schema: &'s Schema, context: &str, name: &str) -> Option<Found<'s>> {
    for def in schema.children(context) {
        if def.choice {
            let Some(rest) = name.strip_prefix(def.name.as_str()) else { continue };
            if let Some(t) = def.types.iter().find(|t| upper_first_eq(&t.code, rest)) {
                return Some(Found { def, type_code: &t.code });
            }
        } else if def.name == name {
            let type_code = match (&def.content_reference, def.types.first()) {
                (Some(target), _) => target.as_str(),
                (None, Some(t)) => t.code.as_str(),
                (None, None) => "",
            };
            return Some(Found { def, type_code });
        }
    }
    None
}

/// `rest` is `code` with its first letter in upper case (`Quantity`, `DateTime` for `dateTime`).
fn upper_first_eq(code: &str, rest: &str) -> bool {
    let mut a = code.chars();
    let mut b = rest.chars();
    match (a.next(), b.next()) {
        (Some(x), Some(y)) if x.to_ascii_uppercase() == y => a.eq(b),
        _ => false,
    }
}

/// Where the children of a value of `found` are looked up.
pub fn context_of<'s>(schema: &'s Schema, found: Found<'s>) -> &'s str {
    if found.def.content_reference.is_some() {
        return found.type_code;
    }
    if schema.has_children(&found.def.path) { &found.def.path } else { found.type_code }
}

/// What kind of value a type holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A primitive written in JSON as this kind (`xhtml` is a string).
    Primitive(JsonKind),
    /// A resource (`contained`, `Bundle.entry.resource`).
    Resource,
    /// A complex datatype or a backbone element.
    Complex,
}

/// The kind of values of `found`.
pub fn value_kind(schema: &Schema, found: Found<'_>) -> ValueKind {
    if found.def.content_reference.is_some() {
        return ValueKind::Complex;
    }
    let t = found.type_code;
    if let Some(system) = t.strip_prefix("System.") {
        return ValueKind::Primitive(match system {
            "Boolean" => JsonKind::Bool,
            "Integer" | "Decimal" => JsonKind::Number,
            _ => JsonKind::String,
        });
    }
    match schema.type_def(t).map(|d| d.kind) {
        Some(Kind::Primitive) => ValueKind::Primitive(primitive_json_kind(t)),
        Some(Kind::Resource) => ValueKind::Resource,
        _ => ValueKind::Complex,
    }
}

/// How a FHIR primitive type is written in JSON.
pub fn primitive_json_kind(type_code: &str) -> JsonKind {
    match type_code {
        "boolean" => JsonKind::Bool,
        "integer" | "positiveInt" | "unsignedInt" | "decimal" => JsonKind::Number,
        _ => JsonKind::String,
    }
}

/// Whether `name` is a concrete (instantiable) resource type of R4.
pub fn is_concrete_resource(schema: &Schema, name: &str) -> bool {
    schema.type_def(name).is_some_and(|t| t.kind == Kind::Resource && !t.is_abstract)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::schema;

    #[test]
    fn finds_plain_choice_backbone_and_content_reference() {
        let s = schema();
        let f = child(s, "Observation", "valueQuantity").unwrap();
        assert_eq!((f.def.name.as_str(), f.type_code), ("value", "Quantity"));
        assert!(child(s, "Observation", "value").is_none());
        let f = child(s, "Patient", "deceasedDateTime").unwrap();
        assert_eq!(f.type_code, "dateTime");
        assert_eq!(value_kind(s, f), ValueKind::Primitive(JsonKind::String));
        let contact = child(s, "Patient", "contact").unwrap();
        assert_eq!(context_of(s, contact), "Patient.contact");
        let item = child(s, "Questionnaire.item", "item").unwrap();
        assert_eq!(context_of(s, item), "Questionnaire.item");
        let name = child(s, "Patient", "name").unwrap();
        assert_eq!(context_of(s, name), "HumanName");
        assert_eq!(value_kind(s, child(s, "Patient", "contained").unwrap()), ValueKind::Resource);
        assert_eq!(value_kind(s, child(s, "Quantity", "value").unwrap()), ValueKind::Primitive(JsonKind::Number));
    }
}
