//! Conformance over the official R4 examples (`../shared/corpus/fhir/hl7-r4-official-examples`):
//! every element name in every JSON example resolves in the schema, through the public path
//! API (`Bundle.entry.resource.as(Patient).name.family`, `Observation.valueQuantity.value`,
//! `Patient._birthDate.extension`). Prints a report per resource type; fails listing every
//! unknown element.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_fhir::{Kind, schema};

#[derive(Default)]
struct Tally {
    files: usize,
    elements: usize,
    unknown: Vec<String>,
}

#[test]
fn every_element_of_every_official_example_resolves() {
    let Some(root) = common::corpus_root("fhir/hl7-r4-official-examples") else {
        return;
    };
    let dir = root.join("fhir/hl7-r4-official-examples/json");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no JSON examples in {}", dir.display());

    let mut by_type: BTreeMap<String, Tally> = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(resource_type) = json.get("resourceType").and_then(Value::as_str) else {
            panic!("{name}: no resourceType");
        };
        let tally = by_type.entry(resource_type.to_string()).or_default();
        tally.files += 1;
        walk_resource(&json, resource_type.to_string(), &name, tally);
    }

    println!("\nFHIR R4 official examples: element names resolved per resource type");
    println!("{:<32} {:>6} {:>9} {:>8}", "resource type", "files", "elements", "unknown");
    let (mut total_files, mut total_elements, mut unknown) = (0, 0, Vec::new());
    for (t, tally) in &by_type {
        println!("{t:<32} {:>6} {:>9} {:>8}", tally.files, tally.elements, tally.unknown.len());
        total_files += tally.files;
        total_elements += tally.elements;
        unknown.extend(tally.unknown.iter().cloned());
    }
    println!("{:<32} {total_files:>6} {total_elements:>9} {:>8}\n", "total", unknown.len());
    for u in &unknown {
        println!("  unknown: {u}");
    }
    assert!(unknown.is_empty(), "{} unknown elements:\n{}", unknown.len(), unknown.join("\n"));
}

/// Walks a resource object whose path so far is `path` (`Patient`, or
/// `Bundle.entry.resource.as(Patient)` for a nested one).
fn walk_resource(object: &Value, path: String, file: &str, tally: &mut Tally) {
    walk_object(object, &path, true, file, tally);
}

/// Walks the members of an object at `path`; `resourceType` is the type of a resource, and an
/// element elsewhere (`ExampleScenario.instance.resourceType`).
fn walk_object(object: &Value, path: &str, is_resource: bool, file: &str, tally: &mut Tally) {
    let Some(map) = object.as_object() else {
        return;
    };
    for (key, value) in map {
        if is_resource && key == "resourceType" {
            continue;
        }
        // `_birthDate`: the id and extensions of a primitive; they live on the element itself.
        let (element_name, is_primitive_extension) = match key.strip_prefix('_') {
            Some(name) => (name, true),
            None => (key.as_str(), false),
        };
        let child = format!("{path}.{element_name}");
        tally.elements += 1;
        let resolved = match schema().resolve(&child) {
            Ok(r) => r,
            Err(e) => {
                tally.unknown.push(format!("{file}: {child}: {e}"));
                continue;
            }
        };
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items.into_iter().filter(|v| v.is_object()) {
            let holds_resources =
                resolved.types.iter().any(|t| schema().type_def(t).is_some_and(|d| d.kind == Kind::Resource));
            if is_primitive_extension {
                walk_object(item, &child, false, file, tally);
            } else if holds_resources && let Some(nested) = item.get("resourceType").and_then(Value::as_str) {
                walk_resource(item, format!("{child}.as({nested})"), file, tally);
            } else if resolved.types.iter().all(|t| schema().type_def(t).is_some_and(|d| d.kind != Kind::Primitive)) {
                walk_object(item, &child, false, file, tally);
            } else {
                tally.unknown.push(format!("{file}: {child}: an object where {:?} is expected", resolved.types));
            }
        }
    }
}
