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

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use crate::schema::{ElementDef, Fnv, Kind, Schema};

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

/// One child of a context with everything the walkers need, computed once: its JSON name
/// (one per type for a choice: `valueQuantity`, `valueString`...), the element and type, the
/// kind of its values and, for complex values, the context of their children.
#[derive(Debug)]
pub struct Child {
    pub json_name: String,
    /// [`name_key`] of `json_name`: most lookups are decided by comparing it and the length.
    key: u64,
    pub found: Found<'static>,
    pub kind: ValueKind,
    /// Where the children of a complex value are looked up (empty for other kinds).
    pub context: &'static str,
}

/// The first eight bytes of `name` as one word (zero bytes after a shorter name). Two names of
/// the same length up to eight bytes are equal exactly when their keys are.
fn name_key(name: &str) -> u64 {
    let mut word = [0u8; 8];
    let n = name.len().min(8);
    word[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_le_bytes(word)
}

/// The children of one context (a type, or a backbone element's path).
#[derive(Debug, Default)]
pub struct Context {
    children: Vec<Child>,
    /// Elements whose cardinality needs counting: min above 0 or a max above 1.
    counted: Vec<&'static ElementDef>,
}

impl Context {
    /// The child whose JSON name is `name`.
    pub fn child(&self, name: &str) -> Option<&Child> {
        // Every member of every object is looked up here, against up to a hundred children,
        // many of the same length: comparing the first eight bytes as one word settles nearly
        // every candidate without a call to memcmp, and names of eight bytes or fewer entirely.
        let key = name_key(name);
        self.children
            .iter()
            .find(|c| c.key == key && c.json_name.len() == name.len() && (name.len() <= 8 || c.json_name == name))
    }

    /// The elements whose number of values must be checked.
    pub fn counted(&self) -> &[&'static ElementDef] {
        &self.counted
    }
}

/// The children of every context of the R4 schema, built once ([`index`]). Lookups hash the
/// context name with FNV-1a (short keys, no untrusted-input collision concern: keys come from
/// the schema, and a name from the data is only compared, never inserted).
pub struct Index {
    contexts: HashMap<&'static str, Context, BuildHasherDefault<Fnv>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("contexts", &self.contexts.len()).finish()
    }
}

/// The index of the bundled R4 schema.
pub fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| Index::build(crate::schema::schema()))
}

impl Index {
    fn build(schema: &'static Schema) -> Index {
        let mut names: Vec<&'static str> = Vec::new();
        for t in schema.types() {
            names.push(&t.name);
            for e in &t.elements {
                if schema.has_children(&e.path) {
                    names.push(&e.path);
                }
            }
        }
        let mut contexts = HashMap::default();
        for name in names {
            let mut ctx = Context::default();
            for def in schema.children(name) {
                if def.min > 0 || matches!(def.max, crate::schema::Max::N(n) if n > 1) {
                    ctx.counted.push(def);
                }
                let types: Vec<(String, &'static str)> = if def.choice {
                    def.types
                        .iter()
                        .map(|t| (format!("{}{}", def.name, upper_first(&t.code)), t.code.as_str()))
                        .collect()
                } else {
                    vec![(def.name.clone(), child(schema, name, &def.name).map_or("", |f| f.type_code))]
                };
                for (json_name, type_code) in types {
                    let found = Found { def, type_code };
                    let kind = value_kind(schema, found);
                    let context = if kind == ValueKind::Complex { context_of(schema, found) } else { "" };
                    ctx.children.push(Child { key: name_key(&json_name), json_name, found, kind, context });
                }
            }
            contexts.insert(name, ctx);
        }
        Index { contexts }
    }

    /// The children of `context`: looked up once for all the members of an object.
    pub fn context(&self, context: &str) -> Option<&Context> {
        self.contexts.get(context)
    }

    /// The child of `context` whose JSON name is `name`.
    pub fn child(&self, context: &str, name: &str) -> Option<&Child> {
        self.context(context)?.child(name)
    }

    /// The elements of `context` whose number of values must be checked.
    pub fn counted(&self, context: &str) -> &[&'static ElementDef] {
        self.context(context).map_or(&[], Context::counted)
    }
}

fn upper_first(code: &str) -> String {
    let mut c = code.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
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
        let idx = index();
        let q = idx.child("Observation", "valueQuantity").unwrap();
        assert_eq!((q.found.type_code, q.kind, q.context), ("Quantity", ValueKind::Complex, "Quantity"));
        assert!(idx.child("Observation", "value").is_none());
        assert_eq!(idx.child("Questionnaire.item", "item").unwrap().context, "Questionnaire.item");
        assert!(idx.counted("Observation").iter().any(|d| d.name == "status"));
        let item = child(s, "Questionnaire.item", "item").unwrap();
        assert_eq!(context_of(s, item), "Questionnaire.item");
        let name = child(s, "Patient", "name").unwrap();
        assert_eq!(context_of(s, name), "HumanName");
        assert_eq!(value_kind(s, child(s, "Patient", "contained").unwrap()), ValueKind::Resource);
        assert_eq!(value_kind(s, child(s, "Quantity", "value").unwrap()), ValueKind::Primitive(JsonKind::Number));
    }
}
