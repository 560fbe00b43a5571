//! The generator of `data/r4.txt`: reads the official FHIR R4 StructureDefinitions and the FHIR
//! JSON Schema and writes the compact element table that [`crate::schema`] embeds.
//!
//! Run it with `cargo run -p sluice-fhir --bin gen-fhir-schema` (see `docs/fhir-schema.md`); the
//! test `tests/generated_up_to_date.rs` regenerates the table and fails if the committed file
//! differs.
//!
//! Invariants:
//! - The output is a pure function of the two inputs: types sorted by kind then name, elements
//!   in snapshot order, value sets sorted by URL. Same input, same bytes.
//! - Only base definitions are read: `kind` resource, complex-type or primitive-type with
//!   derivation `specialization` (or none, for `Element` and `Resource`). Profiles
//!   (derivation `constraint`, including extension definitions) and logical models are skipped
//!   and counted in the header.
//! - Codes of required bindings come from the `enum` of the matching property in the JSON
//!   Schema; a value set whose codes are not enumerated there gets no `V` line (the schema says
//!   "codes unknown", never an invented list). Two elements bound to the same value set must
//!   enumerate the same codes, or generation fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Folder of the StructureDefinitions, relative to the corpus root (`../shared/corpus`).
pub const STRUCTURE_DEFINITIONS_DIR: &str = "schemas/hl7-fhir-r4-core-4.0.1";
/// The FHIR R4 JSON Schema, relative to the corpus root.
pub const JSON_SCHEMA_FILE: &str = "schemas/fhir-r4-json-schema-asymmetrik-npm/fhir.schema.json";

const CORE_SD_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";
const FHIRPATH_PREFIX: &str = "http://hl7.org/fhirpath/";

struct TypeOut {
    kind_rank: u8,
    name: String,
    line: String,
    elements: Vec<String>,
}

/// Generates the text of `data/r4.txt` from a corpus root holding [`STRUCTURE_DEFINITIONS_DIR`]
/// and [`JSON_SCHEMA_FILE`].
pub fn generate(corpus_root: &Path) -> Result<String, String> {
    let sd_dir = corpus_root.join(STRUCTURE_DEFINITIONS_DIR);
    let json_schema = read_json(&corpus_root.join(JSON_SCHEMA_FILE))?;
    let definitions =
        json_schema.get("definitions").and_then(Value::as_object).ok_or("JSON Schema has no `definitions`")?;

    let mut files: Vec<_> = std::fs::read_dir(&sd_dir)
        .map_err(|e| format!("cannot read {}: {e}", sd_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("StructureDefinition-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();

    let mut types = Vec::new();
    let mut skipped_profiles = 0usize;
    let mut skipped_logical = 0usize;
    // value set URL -> (codes, first element that enumerated them)
    let mut value_sets: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();

    for file in &files {
        let sd = read_json(file)?;
        if sd.get("resourceType").and_then(Value::as_str) != Some("StructureDefinition") {
            continue;
        }
        let kind = str_field(&sd, "kind");
        let derivation = sd.get("derivation").and_then(Value::as_str);
        if derivation == Some("constraint") {
            skipped_profiles += 1;
            continue;
        }
        let kind_rank = match kind {
            "primitive-type" => 0,
            "complex-type" => 1,
            "resource" => 2,
            _ => {
                skipped_logical += 1;
                continue;
            }
        };
        let name = str_field(&sd, "type").to_string();
        let base = sd.get("baseDefinition").and_then(Value::as_str).map(short_sd_name).unwrap_or_default();
        let is_abstract = sd.get("abstract").and_then(Value::as_bool).unwrap_or(false);
        let line = format!("T|{name}|{kind}|{base}|{}", if is_abstract { "abstract" } else { "" });
        let line = line.trim_end_matches('|').to_string();

        let snapshot = sd
            .pointer("/snapshot/element")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{}: no snapshot", file.display()))?;
        let mut elements = Vec::new();
        for element in snapshot {
            let path = str_field(element, "path");
            if path == name {
                continue; // the root element: the type itself
            }
            elements.push(element_line(element)?);
            if let Some((vs, strength)) = binding(element)
                && strength == "required"
                && let Some(codes) = json_schema_enum(definitions, path)
            {
                check_code_syntax(path, &codes)?;
                match value_sets.get(&vs) {
                    Some((known, first)) if *known != codes => {
                        return Err(format!("value set {vs}: {first} and {path} enumerate different codes"));
                    }
                    Some(_) => {}
                    None => {
                        value_sets.insert(vs, (codes, path.to_string()));
                    }
                }
            }
        }
        types.push(TypeOut { kind_rank, name, line, elements });
    }
    types.sort_by(|a, b| (a.kind_rank, &a.name).cmp(&(b.kind_rank, &b.name)));

    let mut out = String::new();
    out.push_str(HEADER);
    let _ = writeln!(
        out,
        "# Generated from {} StructureDefinitions ({} profiles and {} logical models skipped).\n",
        types.len(),
        skipped_profiles,
        skipped_logical
    );
    for t in &types {
        out.push_str(&t.line);
        out.push('\n');
        for e in &t.elements {
            out.push_str(e);
            out.push('\n');
        }
    }
    out.push_str("\n# Codes of required bindings, from the enums of the FHIR R4 JSON Schema.\n");
    for (url, (codes, _)) in &value_sets {
        let _ = writeln!(out, "V|{url}|{}", codes.join(" "));
    }
    Ok(out)
}

const HEADER: &str = "\
# FHIR R4 (4.0.1) element table: every resource, complex datatype and primitive type.
#
# GENERATED by `cargo run -p sluice-fhir --bin gen-fhir-schema` from the official
# StructureDefinitions (package hl7.fhir.r4.core 4.0.1, CC0-1.0) and, for the codes of required
# bindings, the FHIR R4 JSON Schema (npm package by Asymmetrik, MIT). Do not edit by hand:
# change the generator (specs/fhir/src/generate.rs) and regenerate. The test
# `generated_up_to_date` fails when this file is stale. Format documented in docs/fhir-schema.md.
#
#   T|<type>|<kind>|<base type>|abstract?
#       A type: kind primitive-type, complex-type or resource.
#   E|<path>|<min>..<max>|<types>|<flags>|<binding strength>|<value set URL>
#       An element of the type above, in snapshot order. <path> as in the StructureDefinition
#       (`Observation.value[x]` for a choice). <types> comma-separated: `HumanName`,
#       `Reference(Patient,Group)`, `canonical(ValueSet)`, `Quantity:SimpleQuantity` (a profile
#       on the type), `System.String` (FHIRPath system types of `id` and primitive values), or
#       `@<path>` for a contentReference (same content as that element). <flags>: S in the
#       summary, M modifier. Value set URLs without their `|version`.
#   V|<value set URL>|<code> <code>...
#       The codes of a value set bound with strength required.
";

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: invalid JSON: {e}", path.display()))
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn short_sd_name(url: &str) -> String {
    url.strip_prefix(CORE_SD_PREFIX).unwrap_or(url).to_string()
}

/// `(value set URL without version, strength)` of an element's binding, if it names a value set.
fn binding(element: &Value) -> Option<(String, String)> {
    let binding = element.get("binding")?;
    let vs = binding.get("valueSet").and_then(Value::as_str)?;
    let vs = vs.split('|').next().unwrap_or(vs).to_string();
    Some((vs, str_field(binding, "strength").to_string()))
}

fn element_line(element: &Value) -> Result<String, String> {
    let path = str_field(element, "path");
    let min = element.get("min").and_then(Value::as_u64).ok_or_else(|| format!("{path}: no min"))?;
    let max = str_field(element, "max");
    if max.is_empty() {
        return Err(format!("{path}: no max"));
    }
    let types = if let Some(reference) = element.get("contentReference").and_then(Value::as_str) {
        format!("@{}", reference.trim_start_matches('#'))
    } else {
        let list = element.get("type").and_then(Value::as_array).ok_or_else(|| format!("{path}: no type"))?;
        list.iter().map(type_text).collect::<Vec<_>>().join(",")
    };
    let mut flags = String::new();
    if element.get("isSummary").and_then(Value::as_bool) == Some(true) {
        flags.push('S');
    }
    if element.get("isModifier").and_then(Value::as_bool) == Some(true) {
        flags.push('M');
    }
    let mut line = format!("E|{path}|{min}..{max}|{types}|{flags}");
    if let Some((vs, strength)) = binding(element) {
        let _ = write!(line, "|{strength}|{vs}");
    }
    Ok(line.trim_end_matches('|').to_string())
}

/// `Reference(Patient,Group)`, `Quantity:SimpleQuantity`, `System.String`.
fn type_text(t: &Value) -> String {
    let code = str_field(t, "code");
    let mut text = code.strip_prefix(FHIRPATH_PREFIX).unwrap_or(code).to_string();
    if let Some(profiles) = t.get("profile").and_then(Value::as_array) {
        for p in profiles.iter().filter_map(Value::as_str) {
            text.push(':');
            text.push_str(&short_sd_name(p));
        }
    }
    if let Some(targets) = t.get("targetProfile").and_then(Value::as_array) {
        let names: Vec<String> = targets.iter().filter_map(Value::as_str).map(short_sd_name).collect();
        let _ = write!(text, "({})", names.join(","));
    }
    text
}

/// The `enum` of the JSON Schema property for an element path (`Patient.contact.gender`),
/// following `$ref`s from the type's definition through backbone definitions
/// (`Patient_Contact`).
fn json_schema_enum(definitions: &serde_json::Map<String, Value>, path: &str) -> Option<Vec<String>> {
    let mut parts = path.split('.');
    let mut definition = definitions.get(parts.next()?)?;
    let mut parts = parts.peekable();
    while let Some(part) = parts.next() {
        let property = definition.get("properties")?.get(part)?;
        if parts.peek().is_none() {
            let values = property.get("enum").or_else(|| property.pointer("/items/enum"))?.as_array()?;
            return values.iter().map(|v| v.as_str().map(str::to_string)).collect();
        }
        let reference = property.get("$ref").or_else(|| property.pointer("/items/$ref"))?.as_str()?;
        definition = definitions.get(reference.rsplit('/').next()?)?;
    }
    None
}

fn check_code_syntax(path: &str, codes: &[String]) -> Result<(), String> {
    match codes.iter().find(|c| c.is_empty() || c.contains(|ch: char| ch.is_whitespace() || ch == '|')) {
        Some(bad) => Err(format!("{path}: code {bad:?} cannot be written in the table (space or `|`)")),
        None => Ok(()),
    }
}
