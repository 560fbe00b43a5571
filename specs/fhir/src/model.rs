//! How element names found in FHIR content (JSON member names, XML element names) map onto the
//! schema: the XML reader and the validator both walk content through these functions, so
//! they agree on what an element is.
//!
//! A *context* is where children are looked up: a type name (`Patient`, `HumanName`) or the
//! path of an element with inline children (`Patient.contact`); a contentReference
//! (`Questionnaire.item.item`) continues at the element it names.
//!
//! [`names`] is the table of every member name the schema knows, which the JSON reader borrows
//! names from ([`crate::tree::Name`]); a context finds such a borrowed name by its address,
//! any other by its text, with the same answer.
//!
//! Invariants: lookups never panic; a choice element matches only its JSON names
//! (`valueQuantity`, `valueDateTime`), never the bare `value`; a lookup by address and one by
//! text find the same child (tests hold the tables to a scan).

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
    /// [`name_tail`] of `json_name`.
    tail: u64,
    pub found: Found<'static>,
    pub kind: ValueKind,
    /// Where the children of a complex value are looked up (empty for other kinds).
    pub context: &'static str,
    /// `context`'s number in [`Index`] (see [`Index::context_at`]), found once here rather
    /// than by hashing its name for every object.
    context_id: Option<u32>,
    /// For primitive values, what the validator checks, worked out once here rather than for
    /// every value.
    pub primitive: PrimitiveRules,
}

/// How the values of a primitive child are checked.
#[derive(Clone, Copy, Debug)]
pub struct PrimitiveRules {
    /// The type the value's text must have: `type_code`, except a resource's logical `id`,
    /// typed `System.String` in the R4 snapshot but with the lexical form of `id` (the spec's
    /// fhir-type extension says so).
    pub type_name: &'static str,
    /// The lexical rule of `type_name`.
    pub rule: crate::primitive::Type,
    /// The codes of the element's required value set, for a `code` with one the schema lists.
    pub required_codes: Option<&'static [String]>,
    /// The element is `Reference.reference`.
    pub is_reference: bool,
}

impl PrimitiveRules {
    fn of(schema: &'static Schema, found: Found<'static>) -> PrimitiveRules {
        let def = found.def;
        let is_resource_id = def.name == "id" && def.path.matches('.').count() == 1 && {
            let owner = def.path.split('.').next().unwrap_or("");
            schema.type_def(owner).is_some_and(|t| t.kind == Kind::Resource)
        };
        let type_name = if is_resource_id { "id" } else { found.type_code };
        let required_codes = match &def.binding {
            Some(b) if b.strength == crate::schema::BindingStrength::Required && type_name == "code" => {
                schema.value_set_codes(&b.value_set)
            }
            _ => None,
        };
        PrimitiveRules {
            type_name,
            rule: crate::primitive::Type::of(type_name),
            required_codes,
            is_reference: def.path == "Reference.reference",
        }
    }
}

impl Child {
    /// The context of a complex value's children ([`Self::context`]) as its number in the
    /// [`Index`]; `None` when the context has no children in the schema.
    pub fn context_id(&self) -> Option<u32> {
        self.context_id
    }
}

/// The first eight bytes of `name` as one word (zero bytes after a shorter name). Two names of
/// the same length up to eight bytes are equal exactly when their keys are. Built from at most
/// three loads whatever the length (no copy of a variable length: this runs for every member
/// of every object validated).
fn name_key(name: &str) -> u64 {
    let b = name.as_bytes();
    match b.len() {
        0 => 0,
        1..=3 => {
            // The first, middle and last bytes cover every byte of 1 to 3.
            let (n, mid) = (b.len(), b.len() / 2);
            u64::from(b[0]) | u64::from(b[mid]) << (8 * mid) | u64::from(b[n - 1]) << (8 * (n - 1))
        }
        4..=7 => {
            // Two overlapping four-byte loads: the overlap holds the same bytes in both.
            let n = b.len();
            let lo = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let hi = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
            lo | hi << (8 * (n - 4))
        }
        _ => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

/// The last eight bytes of a name longer than eight bytes (0 otherwise). With [`name_key`]
/// and the length, it decides equality of names up to sixteen bytes without a call to memcmp.
fn name_tail(name: &str) -> u64 {
    match name.as_bytes().last_chunk::<8>() {
        Some(tail) if name.len() > 8 => u64::from_le_bytes(*tail),
        _ => 0,
    }
}

/// Whether a name stored with `key` and `tail` is `name` (whose key is `name_key`): equal keys,
/// lengths and tails settle names of up to sixteen bytes; longer ones are compared whole.
fn same_name(stored: &str, key: u64, tail: u64, name: &str, name_key: u64) -> bool {
    key == name_key
        && stored.len() == name.len()
        && (name.len() <= 8 || (tail == name_tail(name) && (name.len() <= 16 || stored == name)))
}

/// The slot of a name in a context's table of `1 << bits` slots: its key and length mixed by
/// one multiplication (Fibonacci hashing), the top bits kept.
fn slot_of(key: u64, len: usize, bits: u32) -> usize {
    (key ^ (len as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(bits) as usize & ((1 << bits) - 1)
}

/// The children of one context (a type, or a backbone element's path).
#[derive(Debug, Default)]
pub struct Context {
    children: Vec<Child>,
    /// Elements whose cardinality needs counting: min above 0 or a max above 1.
    counted: Vec<&'static ElementDef>,
    /// An open-addressing table over `children` (linear probing, at most half full): a slot
    /// holds a child's position plus one, 0 when empty. Every member of every object is
    /// looked up here, against up to a hundred children: a hash and one or two probes instead
    /// of a scan.
    slots: Vec<u16>,
    /// `slots.len()` is `1 << bits`.
    bits: u32,
    /// The same children keyed by where the [`names`] table keeps their name: a name the
    /// JSON reader borrowed from that table is found by its address, without hashing or
    /// comparing its text. `(address, length, position)`, 0 length for an empty slot; filled
    /// when the table is built.
    by_address: OnceLock<Vec<(usize, usize, u16)>>,
}

/// The slot of a name's address in a table of `1 << bits` slots.
fn address_slot(address: usize, bits: u32) -> usize {
    (address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(bits) as usize & ((1 << bits) - 1)
}

impl Context {
    fn new(children: Vec<Child>, counted: Vec<&'static ElementDef>) -> Context {
        let mut bits = 1;
        while (1usize << bits) < 2 * children.len() {
            bits += 1;
        }
        let mut slots = vec![0u16; 1 << bits];
        for (i, c) in children.iter().enumerate() {
            // Duplicate names cannot occur in the schema; the first one wins if they did.
            if Self::find(&children, &slots, bits, &c.json_name, c.key).is_some() {
                continue;
            }
            let mut at = slot_of(c.key, c.json_name.len(), bits);
            while slots[at] != 0 {
                at = (at + 1) & (slots.len() - 1);
            }
            slots[at] = u16::try_from(i + 1).unwrap_or(0);
        }
        Context { children, counted, slots, bits, by_address: OnceLock::new() }
    }

    /// Fills [`Self::by_address`] from the addresses `names` keeps the children's names at.
    fn index_addresses(&self, names: &Names) {
        let mut table = vec![(0usize, 0usize, 0u16); self.slots.len()];
        let mask = table.len().wrapping_sub(1);
        for (i, c) in self.children.iter().enumerate() {
            let Some(known) = names.get(&c.json_name) else { continue };
            let address = known.as_ptr() as usize;
            let mut at = address_slot(address, self.bits);
            let mut taken = false;
            while let Some(&(a, len, _)) = table.get(at)
                && len != 0
            {
                // The first child of a name wins, as in `find`.
                taken |= a == address && len == known.len();
                at = (at + 1) & mask;
            }
            if !taken && let Some(slot) = table.get_mut(at) {
                *slot = (address, known.len(), u16::try_from(i).unwrap_or(u16::MAX));
            }
        }
        let _ = self.by_address.set(table);
    }

    /// The child whose JSON name is `name`: by the name's address when the reader borrowed it
    /// from the [`names`] table, by its text otherwise (or when the address is not one of this
    /// context's names: a name borrowed from elsewhere).
    pub fn child_named(&self, name: &crate::tree::Name) -> Option<&Child> {
        if let std::borrow::Cow::Borrowed(known) = name
            && let Some(table) = self.by_address.get()
        {
            let address = known.as_ptr() as usize;
            let mask = table.len().wrapping_sub(1);
            let mut at = address_slot(address, self.bits);
            while let Some(&(a, len, i)) = table.get(at)
                && len != 0
            {
                if a == address && len == known.len() {
                    return self.children.get(usize::from(i));
                }
                at = (at + 1) & mask;
            }
        }
        self.child(name)
    }

    fn find<'c>(children: &'c [Child], slots: &[u16], bits: u32, name: &str, key: u64) -> Option<&'c Child> {
        let mask = slots.len().wrapping_sub(1);
        let mut at = slot_of(key, name.len(), bits);
        loop {
            let c = children.get(usize::from(*slots.get(at)?).checked_sub(1)?)?;
            if same_name(&c.json_name, c.key, c.tail, name, key) {
                return Some(c);
            }
            at = (at + 1) & mask;
        }
    }

    /// The child whose JSON name is `name`.
    pub fn child(&self, name: &str) -> Option<&Child> {
        Self::find(&self.children, &self.slots, self.bits, name, name_key(name))
    }

    /// The elements whose number of values must be checked.
    pub fn counted(&self) -> &[&'static ElementDef] {
        &self.counted
    }
}

/// The children of every context of the R4 schema, built once ([`index`]). Lookups by name
/// hash the context name with FNV-1a (short keys, no untrusted-input collision concern: keys
/// come from the schema, and a name from the data is only compared, never inserted); a
/// child's own context is found by its number ([`Child::context_id`]).
pub struct Index {
    ids: HashMap<&'static str, u32, BuildHasherDefault<Fnv>>,
    contexts: Vec<Context>,
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
        let mut ids: HashMap<&'static str, u32, BuildHasherDefault<Fnv>> = HashMap::default();
        for &name in &names {
            let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
            ids.entry(name).or_insert(next);
        }
        let mut contexts: Vec<Option<Context>> = (0..ids.len()).map(|_| None).collect();
        for name in names {
            let Some(&id) = ids.get(name) else { continue };
            let (mut children, mut counted) = (Vec::new(), Vec::new());
            for def in schema.children(name) {
                if def.min > 0 || matches!(def.max, crate::schema::Max::N(n) if n > 1) {
                    counted.push(def);
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
                    let context_id = ids.get(context).copied();
                    let primitive = PrimitiveRules::of(schema, found);
                    children.push(Child {
                        key: name_key(&json_name),
                        tail: name_tail(&json_name),
                        json_name,
                        found,
                        kind,
                        context,
                        context_id,
                        primitive,
                    });
                }
            }
            // A name listed twice (a type and a path of the same spelling) keeps its first.
            if let Some(slot @ None) = contexts.get_mut(id as usize) {
                *slot = Some(Context::new(children, counted));
            }
        }
        Index { ids, contexts: contexts.into_iter().map(Option::unwrap_or_default).collect() }
    }

    /// The children of `context`: looked up once for all the members of an object.
    pub fn context(&self, context: &str) -> Option<&Context> {
        self.context_at(*self.ids.get(context)?)
    }

    /// The context numbered `id` ([`Child::context_id`]).
    pub fn context_at(&self, id: u32) -> Option<&Context> {
        self.contexts.get(id as usize)
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

/// The member names the R4 schema knows (every child's JSON name, choice types spelled out,
/// and `resourceType`), for the readers to share instead of allocating one `String` per
/// member ([`crate::tree::Name`]). Built once from the [`index`]; the same open addressing
/// as [`Context`]'s children.
pub struct Names {
    /// `(name_key, name_tail, name)` per slot; at most half the slots are used.
    slots: Vec<Option<(u64, u64, &'static str)>>,
    bits: u32,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").field("slots", &self.slots.len()).finish()
    }
}

impl Names {
    fn build(index: &'static Index) -> Names {
        let all: Vec<&'static str> = std::iter::once("resourceType")
            .chain(index.contexts.iter().flat_map(|c| c.children.iter().map(|c| c.json_name.as_str())))
            .collect();
        let mut bits = 1;
        while (1usize << bits) < 2 * all.len() {
            bits += 1;
        }
        let mut names = Names { slots: vec![None; 1 << bits], bits };
        for name in all {
            if names.get(name).is_some() {
                continue;
            }
            let key = name_key(name);
            let mask = names.slots.len() - 1;
            let mut at = slot_of(key, name.len(), bits);
            while names.slots[at].is_some() {
                at = (at + 1) & mask;
            }
            names.slots[at] = Some((key, name_tail(name), name));
        }
        for c in &index.contexts {
            c.index_addresses(&names);
        }
        names
    }

    /// The schema's copy of `name`, if the schema knows the name.
    #[inline(always)]
    pub fn get(&self, name: &str) -> Option<&'static str> {
        let key = name_key(name);
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = slot_of(key, name.len(), self.bits);
        loop {
            let (k, tail, known) = (*self.slots.get(at)?)?;
            if same_name(known, k, tail, name, key) {
                return Some(known);
            }
            at = (at + 1) & mask;
        }
    }
}

/// The member names of the bundled R4 schema.
pub fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| Names::build(index()))
}

fn upper_first(code: &str) -> String {
    let mut c = code.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::schema;

    /// What [`Context::child`] must answer: the first child of that JSON name, by a scan.
    fn scan<'c>(ctx: &'c Context, name: &str) -> Option<&'c Child> {
        ctx.children.iter().find(|c| c.json_name == name)
    }

    #[test]
    fn the_slot_table_finds_what_a_scan_finds() {
        let idx = index();
        for ctx in &idx.contexts {
            for c in &ctx.children {
                let name = c.json_name.as_str();
                let cut = name.char_indices().last().map_or(0, |(at, _)| at);
                for probe in [name.to_string(), format!("{name}x"), name[..cut].to_string(), format!("_{name}")] {
                    let want = scan(ctx, &probe).map(|c| c as *const Child);
                    assert_eq!(ctx.child(&probe).map(|c| c as *const Child), want, "{probe}");
                    // By address when borrowed from the names table, by text when owned or
                    // borrowed from elsewhere: the same child.
                    let by_name = |n: &crate::tree::Name| ctx.child_named(n).map(|c| c as *const Child);
                    if let Some(known) = names().get(&probe) {
                        assert_eq!(by_name(&std::borrow::Cow::Borrowed(known)), want, "{probe}");
                    }
                    let elsewhere: &'static str = Box::leak(probe.clone().into_boxed_str());
                    assert_eq!(by_name(&std::borrow::Cow::Borrowed(elsewhere)), want, "{probe}");
                    assert_eq!(by_name(&std::borrow::Cow::Owned(probe.clone())), want, "{probe}");
                }
            }
        }
    }

    #[test]
    fn names_holds_every_child_name_and_nothing_else() {
        let names = names();
        let idx = index();
        let mut known = std::collections::HashSet::new();
        known.insert("resourceType");
        for c in idx.contexts.iter().flat_map(|c| &c.children) {
            known.insert(c.json_name.as_str());
        }
        for name in &known {
            assert_eq!(names.get(name), Some(*name));
            for other in [format!("{name}x"), format!("_{name}"), name[..name.len() - 1].to_string()] {
                assert_eq!(names.get(&other).is_some(), known.contains(other.as_str()), "{other}");
            }
        }
        assert_eq!(names.get(""), None);
    }

    proptest::proptest! {
        #[test]
        fn name_key_is_the_zero_padded_prefix(name in "\\PC{0,12}") {
            let mut word = [0u8; 8];
            let n = name.len().min(8);
            word[..n].copy_from_slice(&name.as_bytes()[..n]);
            proptest::prop_assert_eq!(name_key(&name), u64::from_le_bytes(word));
        }

        #[test]
        fn lookups_agree_with_a_scan(name in "(_?[a-z]{0,3}(value|Quantity|code|id|status|extension|name)?[A-Z]?[a-z]{0,4})") {
            let idx = index();
            for context in ["Observation", "Extension", "Patient", "Bundle.entry", "Element", "Questionnaire.item"] {
                let ctx = idx.context(context).unwrap();
                let got = ctx.child(&name).map(|c| c as *const Child);
                proptest::prop_assert_eq!(got, scan(ctx, &name).map(|c| c as *const Child));
            }
        }
    }

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
