//! Mapping overlays (`extends:` in a mapping): a customer's mapping written as the changes to a
//! base mapping, merged into one YAML tree that is then checked exactly like a whole mapping.
//!
//! The overlay's top-level keys replace the base's, except `fields`, merged field by field
//! (nested objects key by key, a field's value replaced whole), and `tables`, merged table by
//! table; `extends` itself is not part of the result.
//!
//! Invariants:
//! - Every node keeps the span of the file it was written in, so a diagnostic about an
//!   inherited field points at the base file, and one about an override at the overlay.
//! - Every output field of the result has its provenance: where it is set, and the places it
//!   overrides, most recent first (`sluice plan --explain FIELD`).

use crate::source::Span;
use crate::yaml::{Node, Value};

/// Where one output field of a merged mapping is set: its place first, then what it replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub field: String,
    pub chain: Vec<Span>,
}

/// The `extends` value of a mapping's tree, if written (a string), with its span.
pub fn extends_of(node: &Node) -> Option<(String, Span)> {
    let Value::Map(top) = &node.value else { return None };
    top.iter()
        .find(|(k, _)| k.as_str() == Some("extends"))
        .and_then(|(_, v)| v.as_str().map(|s| (s.to_string(), v.span)))
}

/// Every output field of a mapping tree (dotted path, nested objects walked) with where it is
/// set.
pub fn provenance(node: &Node) -> Vec<Provenance> {
    let mut out = Vec::new();
    if let Some(fields) = get(node, "fields") {
        walk(fields, "", &mut out);
    }
    out
}

fn walk(node: &Node, prefix: &str, out: &mut Vec<Provenance>) {
    let Value::Map(entries) = &node.value else { return };
    for (k, v) in entries {
        let Some(key) = k.as_str() else { continue };
        let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
        match &v.value {
            Value::Map(_) if !is_producer(v) => walk(v, &path, out),
            _ => out.push(Provenance { field: path, chain: vec![v.span] }),
        }
    }
}

/// A list producer object (`{each: ..., item: ...}`) is a field's value, not a nesting level.
fn is_producer(node: &Node) -> bool {
    matches!(&node.value, Value::Map(entries) if entries.iter().any(|(k, _)| matches!(k.as_str(), Some("each" | "item" | "when" | "var" | "value"))))
}

fn get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    let Value::Map(entries) = &node.value else { return None };
    entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

/// `over` laid on `base` (itself already merged), and the fields' provenance: the base's, with
/// each field `over` sets put first.
pub fn overlay(base: &Node, base_provenance: &[Provenance], over: &Node) -> (Node, Vec<Provenance>) {
    let (Value::Map(b), Value::Map(o)) = (&base.value, &over.value) else {
        return (over.clone(), provenance(over));
    };
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in b {
        let key = k.as_str();
        match o.iter().find(|(ok, _)| ok.as_str() == key) {
            Some((ok, ov)) if matches!(key, Some("fields" | "tables")) => {
                merged.push((ok.clone(), merge_maps(v, ov, key == Some("fields"))));
            }
            Some((ok, ov)) => merged.push((ok.clone(), ov.clone())),
            None => merged.push((k.clone(), v.clone())),
        }
    }
    for (k, v) in o {
        let key = k.as_str();
        if key == Some("extends") || b.iter().any(|(bk, _)| bk.as_str() == key) {
            continue;
        }
        merged.push((k.clone(), v.clone()));
    }
    let node = Node { value: Value::Map(merged), span: over.span };
    let mut chains: Vec<Provenance> = base_provenance.to_vec();
    for p in provenance(over) {
        match chains.iter_mut().find(|c| c.field == p.field) {
            Some(c) => c.chain.insert(0, p.chain[0]),
            None => chains.push(p),
        }
    }
    (node, chains)
}

/// Two mappings (`fields` or `tables`): keys of `over` replace the base's; with `nested`,
/// objects present on both sides (and not list producers) are merged key by key.
fn merge_maps(base: &Node, over: &Node, nested: bool) -> Node {
    let (Value::Map(b), Value::Map(o)) = (&base.value, &over.value) else { return over.clone() };
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in b {
        match o.iter().find(|(ok, _)| ok.as_str().is_some() && ok.as_str() == k.as_str()) {
            Some((ok, ov)) if nested && is_object(v) && is_object(ov) => {
                merged.push((ok.clone(), merge_maps(v, ov, true)))
            }
            Some((ok, ov)) => merged.push((ok.clone(), ov.clone())),
            None => merged.push((k.clone(), v.clone())),
        }
    }
    for (k, v) in o {
        if !b.iter().any(|(bk, _)| bk.as_str().is_some() && bk.as_str() == k.as_str()) {
            merged.push((k.clone(), v.clone()));
        }
    }
    Node { value: Value::Map(merged), span: over.span }
}

fn is_object(node: &Node) -> bool {
    matches!(node.value, Value::Map(_)) && !is_producer(node)
}
