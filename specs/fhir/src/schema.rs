//! The FHIR R4 schema: every resource, complex datatype and primitive type with its elements
//! (path, cardinality, types, choice, contentReference, flags, binding) and the PHI class of
//! identifying elements. [`crate::path`] resolves element paths against it.
//!
//! Invariants:
//! - The tables are data: `data/r4.txt` (generated from the official StructureDefinitions by
//!   [`crate::generate`]) and `data/phi.txt` (hand-written PHI rules) are embedded with
//!   `include_str!`. Nothing is read from disk at run time.
//! - The schema is built once, lazily ([`schema`] returns `&'static Schema`).
//! - A malformed table or a PHI rule naming an element that does not exist is a test failure
//!   (the unit test `bundled_tables_build`), never a runtime panic for users: [`schema`] may
//!   therefore `expect` an internal table error.
//! - Elements keep snapshot order within their type (the order FHIR JSON and XML write them).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use sluice_spec_core::{PhiClass, ValueType};

const R4_TXT: &str = include_str!("../data/r4.txt");
const PHI_TXT: &str = include_str!("../data/phi.txt");

/// What a StructureDefinition defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `boolean`, `string`, `dateTime`...: a value plus `id` and `extension`.
    Primitive,
    /// `HumanName`, `Identifier`, `Quantity`...
    Complex,
    /// `Patient`, `Observation`, and the abstract `Resource` and `DomainResource`.
    Resource,
}

/// A type as FHIR defines it.
#[derive(Debug, Clone)]
pub struct TypeDef {
    pub name: String,
    pub kind: Kind,
    /// The type it specializes (`DomainResource` for `Patient`); `None` for `Element` and
    /// `Resource`.
    pub base: Option<String>,
    pub is_abstract: bool,
    /// Every element of the snapshot except the root, in snapshot order.
    pub elements: Vec<ElementDef>,
}

/// Upper bound of a cardinality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Max {
    /// A number: `1` for a single value, `0` for a prohibited element.
    N(u32),
    /// `*`
    Many,
}

impl fmt::Display for Max {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Max::N(n) => write!(f, "{n}"),
            Max::Many => f.write_str("*"),
        }
    }
}

/// One allowed type of an element: `HumanName`, `Reference(Patient|Group)`, `canonical(ValueSet)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    /// The type's name (`Reference`, `Quantity`, `System.String`).
    pub code: String,
    /// Profiles the value conforms to (`SimpleQuantity`).
    pub profiles: Vec<String>,
    /// For `Reference` and `canonical`: the target types (`Patient`, `Resource` for any).
    pub targets: Vec<String>,
}

/// How strongly an element is bound to its value set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindingStrength {
    Required,
    Extensible,
    Preferred,
    Example,
}

impl BindingStrength {
    fn parse(s: &str) -> Option<BindingStrength> {
        Some(match s {
            "required" => BindingStrength::Required,
            "extensible" => BindingStrength::Extensible,
            "preferred" => BindingStrength::Preferred,
            "example" => BindingStrength::Example,
            _ => return None,
        })
    }
}

/// An element's terminology binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub strength: BindingStrength,
    /// Canonical URL without version (`http://hl7.org/fhir/ValueSet/administrative-gender`).
    pub value_set: String,
}

/// One element of a type.
#[derive(Debug, Clone)]
pub struct ElementDef {
    /// As in the StructureDefinition: `Patient.name`, `Observation.value[x]`.
    pub path: String,
    /// The last step without `[x]`: `name`, `value`.
    pub name: String,
    pub min: u32,
    pub max: Max,
    /// Allowed types; several for a choice. Empty when [`Self::content_reference`] is set.
    pub types: Vec<TypeRef>,
    /// A choice element (`value[x]`): JSON writes it `valueQuantity`, `valueString`...
    pub choice: bool,
    /// Same content as this element (`Questionnaire.item` for `Questionnaire.item.item`).
    pub content_reference: Option<String>,
    /// Part of the summary view.
    pub summary: bool,
    /// A modifier element: changes the meaning of its container.
    pub modifier: bool,
    pub binding: Option<Binding>,
    /// PHI class from `data/phi.txt`; what is inside the element inherits it.
    pub phi: Option<PhiClass>,
}

impl ElementDef {
    /// Whether the element may repeat (max above 1).
    pub fn is_list(&self) -> bool {
        match self.max {
            Max::Many => true,
            Max::N(n) => n > 1,
        }
    }

    /// Names of the allowed types.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(|t| t.code.as_str())
    }
}

/// Where an element lives: type index and element index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ElementRef {
    type_index: usize,
    element_index: usize,
}

/// The whole FHIR R4 schema.
pub struct Schema {
    types: Vec<TypeDef>,
    by_name: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    by_path: HashMap<String, ElementRef, BuildHasherDefault<Fnv>>,
    /// Children of a type (`Patient`) or of a backbone element (`Patient.contact`), in order.
    children: HashMap<String, Vec<ElementRef>, BuildHasherDefault<Fnv>>,
    /// Codes of required value sets, when the source enumerates them.
    value_sets: HashMap<String, Vec<String>, BuildHasherDefault<Fnv>>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema").field("types", &self.types.len()).field("elements", &self.by_path.len()).finish()
    }
}

/// The FHIR R4 schema, built on first use and kept for the life of the process.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The unit test `bundled_tables_build` builds the same embedded text, so this cannot
        // fail in a tested build.
        Schema::build(R4_TXT, PHI_TXT).expect("bundled FHIR tables are checked by the unit tests")
    })
}

impl Schema {
    /// The type with this name (`Patient`, `HumanName`, `dateTime`).
    pub fn type_def(&self, name: &str) -> Option<&TypeDef> {
        self.by_name.get(name).map(|&i| &self.types[i])
    }

    /// Every type, primitives first, then complex types, then resources; by name within each.
    pub fn types(&self) -> impl Iterator<Item = &TypeDef> {
        self.types.iter()
    }

    /// Names of the concrete (not abstract) resource types, sorted.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.types.iter().filter(|t| t.kind == Kind::Resource && !t.is_abstract).map(|t| t.name.as_str())
    }

    /// The element with this exact path as in the StructureDefinition (`Observation.value[x]`).
    pub fn element(&self, path: &str) -> Option<&ElementDef> {
        self.by_path.get(path).map(|r| self.get(*r))
    }

    /// The direct children of a type (`HumanName`) or of an element with inline children
    /// (`Patient.contact`, `Timing.repeat`), in order; empty if there are none.
    pub fn children(&self, parent: &str) -> impl Iterator<Item = &ElementDef> {
        self.children.get(parent).into_iter().flatten().map(|r| self.get(*r))
    }

    /// Whether `parent` (a type or element path) has children.
    pub fn has_children(&self, parent: &str) -> bool {
        self.children.contains_key(parent)
    }

    /// The codes of a required value set, if the source enumerates them (`None` for open or
    /// large value sets such as `mimetypes` or `currencies`; see docs/fhir-schema.md).
    pub fn value_set_codes(&self, url: &str) -> Option<&[String]> {
        self.value_sets.get(url).map(Vec::as_slice)
    }

    /// Whether type `name` is `ancestor` or specializes it (`Patient` is a `DomainResource`
    /// and a `Resource`; `Age` is a `Quantity`).
    pub fn is_a(&self, name: &str, ancestor: &str) -> bool {
        let mut current = Some(name);
        let mut steps = 0;
        while let Some(n) = current {
            if n == ancestor {
                return true;
            }
            steps += 1;
            if steps > 16 {
                return false;
            }
            current = self.type_def(n).and_then(|t| t.base.as_deref());
        }
        false
    }

    fn get(&self, r: ElementRef) -> &ElementDef {
        &self.types[r.type_index].elements[r.element_index]
    }

    /// Builds the schema from the element table and the PHI rules. Errors name the line.
    pub(crate) fn build(table: &str, phi_rules: &str) -> Result<Schema, String> {
        let mut types: Vec<TypeDef> = Vec::new();
        let mut value_sets = HashMap::default();
        for (n, line) in table.lines().enumerate() {
            let at = |msg: String| format!("data/r4.txt line {}: {msg}", n + 1);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('|').collect();
            match cols[0] {
                "T" => types.push(parse_type(&cols).map_err(at)?),
                "E" => {
                    let element = parse_element(&cols).map_err(at)?;
                    let owner = types.last_mut().ok_or_else(|| at("element before any type".into()))?;
                    if element.path.split('.').next() != Some(owner.name.as_str()) {
                        return Err(at(format!("element {} outside type {}", element.path, owner.name)));
                    }
                    owner.elements.push(element);
                }
                "V" if cols.len() == 3 => {
                    let codes: Vec<String> = cols[2].split(' ').filter(|c| !c.is_empty()).map(str::to_string).collect();
                    value_sets.insert(cols[1].to_string(), codes);
                }
                _ => return Err(at("unknown record".into())),
            }
        }

        let mut by_name = HashMap::default();
        let mut by_path = HashMap::default();
        let mut children: HashMap<String, Vec<ElementRef>, BuildHasherDefault<Fnv>> = HashMap::default();
        for (type_index, t) in types.iter().enumerate() {
            if by_name.insert(t.name.clone(), type_index).is_some() {
                return Err(format!("type {} defined twice", t.name));
            }
            for (element_index, e) in t.elements.iter().enumerate() {
                let r = ElementRef { type_index, element_index };
                if by_path.insert(e.path.clone(), r).is_some() {
                    return Err(format!("element {} defined twice", e.path));
                }
                let parent = e.path.rsplit_once('.').map_or("", |(p, _)| p);
                children.entry(parent.to_string()).or_default().push(r);
            }
        }
        let mut schema = Schema { types, by_name, by_path, children, value_sets };
        schema.check_references()?;
        schema.apply_phi_rules(phi_rules)?;
        Ok(schema)
    }

    /// Every type named by an element, base or contentReference exists; every parent exists.
    fn check_references(&self) -> Result<(), String> {
        for t in &self.types {
            if let Some(base) = &t.base
                && self.type_def(base).is_none()
            {
                return Err(format!("type {}: unknown base {base}", t.name));
            }
            for e in &t.elements {
                let parent = e.path.rsplit_once('.').map_or("", |(p, _)| p);
                if parent != t.name && !self.by_path.contains_key(parent) {
                    return Err(format!("{}: parent {parent} not defined", e.path));
                }
                if let Some(target) = &e.content_reference
                    && !self.by_path.contains_key(target)
                {
                    return Err(format!("{}: contentReference {target} not defined", e.path));
                }
                for tr in &e.types {
                    let known = tr.code.starts_with("System.") || self.type_def(&tr.code).is_some();
                    if !known {
                        return Err(format!("{}: unknown type {}", e.path, tr.code));
                    }
                    if let Some(bad) = tr.targets.iter().chain(&tr.profiles).find(|n| {
                        // Targets and profiles outside core keep their full URL; core ones are names.
                        !n.contains('/') && self.type_def(n).is_none() && !KNOWN_CORE_PROFILES.contains(&n.as_str())
                    }) {
                        return Err(format!("{}: unknown target or profile {bad}", e.path));
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_phi_rules(&mut self, rules: &str) -> Result<(), String> {
        for (n, line) in rules.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |msg: String| format!("data/phi.txt line {}: {msg}", n + 1);
            let (path, class) = line.split_once('|').ok_or_else(|| at("expected `<element path>|<class>`".into()))?;
            let (path, class) = (path.trim(), class.trim());
            let class = PhiClass::parse(class).ok_or_else(|| at(format!("unknown PHI class `{class}`")))?;
            let r = *self.by_path.get(path).ok_or_else(|| at(format!("no element `{path}` in FHIR R4")))?;
            let element = &mut self.types[r.type_index].elements[r.element_index];
            if element.phi.is_some() {
                return Err(at(format!("`{path}` classified twice")));
            }
            element.phi = Some(class);
        }
        Ok(())
    }
}

/// Core profiles used on element types that are constraints, not types (`Quantity:SimpleQuantity`).
const KNOWN_CORE_PROFILES: &[&str] = &["SimpleQuantity", "MoneyQuantity"];

fn parse_type(cols: &[&str]) -> Result<TypeDef, String> {
    let name = cols.get(1).filter(|s| !s.is_empty()).ok_or("type without a name")?;
    let kind = match cols.get(2).copied() {
        Some("primitive-type") => Kind::Primitive,
        Some("complex-type") => Kind::Complex,
        Some("resource") => Kind::Resource,
        other => return Err(format!("unknown kind {other:?}")),
    };
    let base = cols.get(3).filter(|s| !s.is_empty()).map(|s| s.to_string());
    let is_abstract = match cols.get(4).copied() {
        None | Some("") => false,
        Some("abstract") => true,
        Some(other) => return Err(format!("expected `abstract`, found {other:?}")),
    };
    Ok(TypeDef { name: name.to_string(), kind, base, is_abstract, elements: Vec::new() })
}

fn parse_element(cols: &[&str]) -> Result<ElementDef, String> {
    let col = |i: usize| cols.get(i).copied().unwrap_or("");
    let path = col(1);
    let (parent, last) = path.rsplit_once('.').ok_or_else(|| format!("element path {path:?} has no `.`"))?;
    if parent.is_empty() || last.is_empty() {
        return Err(format!("bad element path {path:?}"));
    }
    let (name, choice) = match last.strip_suffix("[x]") {
        Some(base) => (base, true),
        None => (last, false),
    };
    let (min, max) = col(2).split_once("..").ok_or_else(|| format!("{path}: bad cardinality {:?}", col(2)))?;
    let min: u32 = min.parse().map_err(|_| format!("{path}: bad min {min:?}"))?;
    let max = match max {
        "*" => Max::Many,
        n => Max::N(n.parse().map_err(|_| format!("{path}: bad max {n:?}"))?),
    };
    let types_text = col(3);
    let (types, content_reference) = match types_text.strip_prefix('@') {
        Some(target) => (Vec::new(), Some(target.to_string())),
        None => (split_types(types_text).map(parse_type_ref).collect::<Result<Vec<_>, _>>()?, None),
    };
    if types.is_empty() && content_reference.is_none() {
        return Err(format!("{path}: no type"));
    }
    if choice != (types.len() > 1) && content_reference.is_none() {
        return Err(format!("{path}: a `[x]` element must have several types and only it"));
    }
    let flags = col(4);
    if let Some(bad) = flags.chars().find(|c| !matches!(c, 'S' | 'M')) {
        return Err(format!("{path}: unknown flag {bad:?}"));
    }
    let binding = match (col(5), col(6)) {
        ("", "") => None,
        (strength, vs) => Some(Binding {
            strength: BindingStrength::parse(strength)
                .ok_or_else(|| format!("{path}: unknown strength {strength:?}"))?,
            value_set: vs.to_string(),
        }),
    };
    Ok(ElementDef {
        path: path.to_string(),
        name: name.to_string(),
        min,
        max,
        types,
        choice,
        content_reference,
        summary: flags.contains('S'),
        modifier: flags.contains('M'),
        binding,
        phi: None,
    })
}

/// Splits `Reference(A,B),string` at the commas outside parentheses.
fn split_types(text: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0i32;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter()
}

/// `Reference(Patient,Group)`, `Quantity:SimpleQuantity`, `System.String`.
fn parse_type_ref(text: &str) -> Result<TypeRef, String> {
    let (head, targets) = match text.split_once('(') {
        Some((head, rest)) => {
            let inner = rest.strip_suffix(')').ok_or_else(|| format!("unclosed `(` in {text:?}"))?;
            (head, inner.split(',').map(str::to_string).collect())
        }
        None => (text, Vec::new()),
    };
    let mut parts = head.split(':');
    let code = parts.next().filter(|c| !c.is_empty()).ok_or_else(|| format!("empty type in {text:?}"))?;
    Ok(TypeRef { code: code.to_string(), profiles: parts.map(str::to_string).collect(), targets })
}

/// The Sluice value type of a FHIR type: primitives map to scalars, complex types and resources
/// to `struct`.
pub fn value_type(fhir_type: &str) -> ValueType {
    match fhir_type {
        "boolean" | "System.Boolean" => ValueType::Boolean,
        "integer" | "positiveInt" | "unsignedInt" | "System.Integer" => ValueType::Integer,
        "decimal" | "System.Decimal" => ValueType::Decimal,
        "date" | "System.Date" => ValueType::Date,
        "dateTime" | "instant" | "System.DateTime" => ValueType::DateTime,
        "code" => ValueType::Code,
        "id" => ValueType::Identifier,
        "string" | "markdown" | "uri" | "url" | "canonical" | "oid" | "uuid" | "base64Binary" | "time" | "xhtml"
        | "System.String" | "System.Time" => ValueType::String,
        _ => ValueType::Struct,
    }
}

/// FNV-1a, for maps keyed by the schema's own names (types, paths, contexts): short keys,
/// and no untrusted-input collision concern, since names from the data are only looked up,
/// never inserted. Maps keyed by data (a Bundle's fullUrls) keep std's seeded SipHash.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_tables_build() {
        let s = Schema::build(R4_TXT, PHI_TXT).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.resource_types().count() >= 145, "R4 has 145+ concrete resources");
        assert!(s.type_def("HumanName").is_some_and(|t| t.kind == Kind::Complex));
        assert!(s.type_def("dateTime").is_some_and(|t| t.kind == Kind::Primitive));
    }

    #[test]
    fn malformed_tables_are_errors_with_a_line() {
        let bad = "T|X|resource\nE|X.a|0..|string\n";
        let err = Schema::build(bad, "").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = Schema::build("T|X|resource\nE|X.a|0..1|string\nT|string|primitive-type\n", "X.b|name").unwrap_err();
        assert!(err.contains("no element `X.b`"), "{err}");
        let err = Schema::build("T|X|resource\nE|X.a|0..1|Nope\n", "").unwrap_err();
        assert!(err.contains("unknown type Nope"), "{err}");
        let err =
            Schema::build("T|X|resource\nE|X.a|0..1|string\nT|string|primitive-type\n", "X.a|secret").unwrap_err();
        assert!(err.contains("unknown PHI class"), "{err}");
    }

    #[test]
    fn patient_elements_as_in_r4() {
        let s = schema();
        let gender = s.element("Patient.gender").unwrap();
        assert_eq!((gender.min, gender.max), (0, Max::N(1)));
        let binding = gender.binding.as_ref().unwrap();
        assert_eq!(binding.strength, BindingStrength::Required);
        assert_eq!(s.value_set_codes(&binding.value_set).unwrap(), ["male", "female", "other", "unknown"]);
        let deceased = s.element("Patient.deceased[x]").unwrap();
        assert!(deceased.choice && deceased.modifier && deceased.summary);
        assert_eq!(deceased.type_names().collect::<Vec<_>>(), ["boolean", "dateTime"]);
        let gp = s.element("Patient.generalPractitioner").unwrap();
        assert_eq!(gp.types[0].targets, ["Organization", "Practitioner", "PractitionerRole"]);
        assert_eq!(
            s.element("Questionnaire.item.item").unwrap().content_reference.as_deref(),
            Some("Questionnaire.item")
        );
        assert!(s.is_a("Patient", "Resource") && s.is_a("Age", "Quantity") && !s.is_a("Quantity", "Age"));
        assert_eq!(s.element("Patient.birthDate").unwrap().phi, Some(PhiClass::Dob));
    }
}
