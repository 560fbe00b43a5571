//! Custom profiles: a StructureDefinition (constraint on a resource type) read from its
//! `differential` (or, without one, its `snapshot`) into rules the validator applies to every
//! resource of that type: tighter cardinality (US Core Patient requires `identifier`, `name`
//! and `gender`), fewer choice types, `fixed[x]` and `pattern[x]` values, required bindings
//! whose codes are bundled, and reference aggregation `bundled` (the target must be in the
//! Bundle).
//!
//! Not supported (said in docs/fhir.md): slicing (elements with a `sliceName` are skipped and
//! counted in [`Profile::skipped`]), invariants written in FHIRPath, and profiles on datatypes.
//!
//! Invariants: loading never panics; every differential path is checked against the R4 schema
//! and an unknown one makes the profile unusable (FHIR123) rather than silently ignored;
//! findings never quote data values.

use std::collections::HashMap;

use crate::codes;
use crate::model;
use crate::schema::{Max, schema};
use crate::tree::{Name, Node};
use crate::validate::{Finding, Severity};

/// A profile's rules, ready to apply.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Canonical URL (`http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient`).
    pub url: String,
    /// Name for messages (`name`, else the URL).
    pub name: String,
    /// The constrained resource type (`Patient`).
    pub type_name: String,
    rules: Vec<Rule>,
    /// Rule indexes by the path of the object they apply in (`Patient`, `Patient.name`).
    by_parent: HashMap<String, Vec<usize>>,
    /// Differential elements skipped because they are slices.
    pub skipped: usize,
}

#[derive(Clone, Debug)]
struct Rule {
    /// `Patient.name`, `Observation.value[x]`.
    path: String,
    /// Last step without `[x]`.
    name: String,
    choice: bool,
    min: Option<u32>,
    max: Option<Max>,
    /// Allowed types of a choice (empty: unrestricted).
    types: Vec<String>,
    fixed: Option<Node>,
    pattern: Option<Node>,
    /// Codes of a required binding (when bundled).
    codes: Option<Vec<String>>,
    /// A Reference whose target must be in the Bundle.
    bundled: bool,
}

/// A profile finding, located relative to the object checked.
pub(crate) struct Located {
    pub suffix: String,
    pub finding: Finding,
}

impl Profile {
    /// Reads a StructureDefinition (JSON or XML bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Profile, String> {
        let node = crate::read(bytes).map_err(|e| e.to_string())?;
        Profile::from_node(&node)
    }

    /// Reads a StructureDefinition tree. The error says what is wrong with it.
    pub fn from_node(sd: &Node) -> Result<Profile, String> {
        if sd.resource_type() != Some("StructureDefinition") {
            return Err(format!("{}: not a StructureDefinition", codes::PROFILE_UNUSABLE));
        }
        let s = |n: &str| sd.get(n).and_then(Node::as_str).map(str::to_string);
        let type_name =
            s("type").ok_or_else(|| format!("{}: the StructureDefinition has no `type`", codes::PROFILE_UNUSABLE))?;
        if !model::is_concrete_resource(schema(), &type_name) {
            return Err(format!(
                "{}: `type` must be an R4 resource type (profiles on datatypes are not supported)",
                codes::PROFILE_UNUSABLE
            ));
        }
        let url = s("url").unwrap_or_default();
        let name = s("name").unwrap_or_else(|| url.clone());
        let elements = sd
            .get("differential")
            .or_else(|| sd.get("snapshot"))
            .and_then(|d| d.get("element"))
            .and_then(Node::as_array)
            .ok_or_else(|| format!("{}: no differential.element (or snapshot.element)", codes::PROFILE_UNUSABLE))?;
        let mut p = Profile {
            url,
            name,
            type_name: type_name.clone(),
            rules: Vec::new(),
            by_parent: HashMap::new(),
            skipped: 0,
        };
        let mut errors = Vec::new();
        for el in elements {
            if el.get("sliceName").is_some() || el.get("id").and_then(Node::as_str).is_some_and(|id| id.contains(':')) {
                p.skipped += 1;
                continue;
            }
            let Some(path) = el.get("path").and_then(Node::as_str) else {
                errors.push("an element without `path`".to_string());
                continue;
            };
            if !path.contains('.') {
                continue; // the root element
            }
            match rule(&type_name, path, el) {
                Ok(r) => p.rules.push(r),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(format!("{}: {}", codes::PROFILE_UNUSABLE, errors.join("; ")));
        }
        for (i, r) in p.rules.iter().enumerate() {
            let parent = r.path.rsplit_once('.').map_or("", |(a, _)| a).to_string();
            p.by_parent.entry(parent).or_default().push(i);
        }
        Ok(p)
    }

    /// Whether a Reference at `ppath` (`Observation.subject` or `….subject.reference`) must
    /// resolve inside the Bundle.
    pub fn requires_bundled(&self, ppath: &str) -> bool {
        let path = ppath.strip_suffix(".reference").unwrap_or(ppath);
        self.rules.iter().any(|r| r.bundled && r.path == path)
    }

    /// Checks the rules that apply in the object at profile path `ppath`.
    pub(crate) fn check_object(&self, ppath: &str, members: &[(Name, Node)]) -> Vec<Located> {
        let mut out = Vec::new();
        let Some(indexes) = self.by_parent.get(ppath) else { return out };
        for &i in indexes {
            let r = &self.rules[i];
            let matching: Vec<(&Name, &Node)> = members
                .iter()
                .filter(|(k, _)| {
                    let k = k.strip_prefix('_').unwrap_or(k);
                    if r.choice { k.starts_with(r.name.as_str()) && k.len() > r.name.len() } else { *k == r.name }
                })
                .map(|(k, v)| (k, v))
                .collect();
            let count = matching
                .iter()
                .filter(|(k, _)| !k.starts_with('_') || !matching.iter().any(|(o, _)| !o.starts_with('_')))
                .map(|(_, v)| v.as_array().map_or(1, <[Node]>::len))
                .max()
                .unwrap_or(0);
            let label = if r.choice { format!("{}[x]", r.name) } else { r.name.clone() };
            let mut push = |suffix: String, severity, code, message: String| {
                out.push(Located { suffix, finding: Finding { severity, code, location: String::new(), message } })
            };
            if let Some(min) = r.min
                && count < min as usize
            {
                push(
                    String::new(),
                    Severity::Error,
                    codes::PROFILE_REQUIRED,
                    format!("`{label}` is required by profile {} (min {min}), found {count}", self.name),
                );
            }
            if let Some(max) = r.max {
                let over = match max {
                    Max::N(n) => count > n as usize,
                    Max::Many => false,
                };
                if over {
                    push(
                        format!(".{}", matching.first().map_or(label.as_str(), |(k, _)| k.as_ref())),
                        Severity::Error,
                        codes::PROFILE_LIMIT,
                        format!("profile {} allows at most {max} `{label}`, found {count}", self.name),
                    );
                }
            }
            for (key, value) in matching.iter().filter(|(k, _)| !k.starts_with('_')) {
                if r.choice && !r.types.is_empty() {
                    let t = &key[r.name.len()..];
                    if !r.types.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                        push(
                            format!(".{key}"),
                            Severity::Error,
                            codes::PROFILE_LIMIT,
                            format!("profile {} allows `{label}` only as {}", self.name, r.types.join(", ")),
                        );
                    }
                }
                let items: Vec<(String, &Node)> = match value {
                    Node::Array(a) => a.iter().enumerate().map(|(i, v)| (format!(".{key}[{i}]"), v)).collect(),
                    v => vec![(format!(".{key}"), v)],
                };
                for (suffix, item) in items {
                    if let Some(f) = &r.fixed
                        && item.canonical() != f.canonical()
                    {
                        push(
                            suffix.clone(),
                            Severity::Error,
                            codes::PROFILE_VALUE,
                            format!("the value differs from the one profile {} fixes", self.name),
                        );
                    }
                    if let Some(pt) = &r.pattern
                        && !contains(item, pt)
                    {
                        push(
                            suffix.clone(),
                            Severity::Error,
                            codes::PROFILE_VALUE,
                            format!("the value does not match the pattern of profile {}", self.name),
                        );
                    }
                    if let (Some(codes_allowed), Some(code)) = (&r.codes, item.as_str())
                        && !codes_allowed.iter().any(|c| c == code)
                    {
                        push(
                            suffix,
                            Severity::Error,
                            codes::PROFILE_VALUE,
                            format!("the code is not in the value set profile {} requires", self.name),
                        );
                    }
                }
            }
        }
        out
    }
}

/// Whether `value` holds everything `pattern` has (FHIR pattern[x] semantics: objects by
/// member, arrays by some matching item, primitives equal).
fn contains(value: &Node, pattern: &Node) -> bool {
    match (value, pattern) {
        (Node::Object(v), Node::Object(p)) => {
            p.iter().all(|(k, pv)| v.iter().find(|(vk, _)| vk == k).is_some_and(|(_, vv)| contains(vv, pv)))
        }
        (Node::Array(v), Node::Array(p)) => p.iter().all(|pi| v.iter().any(|vi| contains(vi, pi))),
        (Node::Array(v), p) => v.iter().any(|vi| contains(vi, p)),
        (v, p) => v == p,
    }
}

/// One differential element as a rule; checks its path against the schema.
fn rule(type_name: &str, path: &str, el: &Node) -> Result<Rule, String> {
    let s = schema();
    let mut steps = path.split('.');
    if steps.next() != Some(type_name) {
        return Err(format!("`{path}` does not start with `{type_name}`"));
    }
    let steps: Vec<&str> = steps.collect();
    let mut context = type_name.to_string();
    let mut norm = type_name.to_string();
    let el_types: Vec<String> = el
        .get("type")
        .and_then(Node::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(|t| t.get("code").and_then(Node::as_str))
        .map(str::to_string)
        .collect();
    for (i, step) in steps.iter().enumerate() {
        let is_last = i + 1 == steps.len();
        let (def, picked) = if let Some(base) = step.strip_suffix("[x]") {
            let def = s
                .children(&context)
                .find(|d| d.choice && d.name == base)
                .ok_or_else(|| format!("`{path}`: `{step}` is not a choice element of `{context}`"))?;
            let picked = if el_types.len() == 1 && !is_last { Some(el_types[0].clone()) } else { None };
            (def, picked)
        } else {
            let f = model::child(s, &context, step)
                .ok_or_else(|| format!("`{path}`: `{step}` is not an element of `{context}`"))?;
            let picked = f.def.choice.then(|| f.type_code.to_string());
            (f.def, picked)
        };
        norm.push('.');
        norm.push_str(&def.name);
        if def.choice {
            norm.push_str("[x]");
        }
        if !is_last {
            context = if def.content_reference.is_some() {
                def.content_reference.clone().unwrap_or_default()
            } else if s.has_children(&def.path) {
                def.path.clone()
            } else if let Some(t) = picked.clone().or_else(|| (def.types.len() == 1).then(|| def.types[0].code.clone()))
            {
                t
            } else {
                return Err(format!("`{path}`: `{step}` has several types; name one (`{}Quantity`)", def.name));
            };
        }
        if is_last {
            let min = el.get("min").and_then(|n| match n {
                Node::Number(t) => t.parse().ok(),
                _ => None,
            });
            let max = el.get("max").and_then(Node::as_str).and_then(|m| match m {
                "*" => Some(Max::Many),
                n => n.parse().ok().map(Max::N),
            });
            let (name, choice) = (def.name.clone(), def.choice);
            let mut types = el_types.clone();
            if let Some(p) = picked
                && types.is_empty()
            {
                types.push(p);
            }
            if !choice {
                types.clear();
            }
            let value_of = |prefix: &str| {
                el.as_object()
                    .and_then(|m| m.iter().find(|(k, _)| k.starts_with(prefix) && k.len() > prefix.len()))
                    .map(|(_, v)| v.clone())
            };
            let codes = el.get("binding").and_then(|b| {
                let strength = b.get("strength").and_then(Node::as_str);
                let vs = b.get("valueSet").and_then(Node::as_str)?;
                let vs = vs.split('|').next().unwrap_or(vs);
                (strength == Some("required")).then(|| s.value_set_codes(vs).map(<[String]>::to_vec)).flatten()
            });
            let bundled = el.get("type").and_then(Node::as_array).is_some_and(|ts| {
                ts.iter().any(|t| {
                    t.get("aggregation")
                        .and_then(Node::as_array)
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("bundled")))
                })
            });
            return Ok(Rule {
                path: norm,
                name,
                choice,
                min,
                max,
                types,
                fixed: value_of("fixed"),
                pattern: value_of("pattern"),
                codes,
                bundled,
            });
        }
    }
    Err(format!("`{path}` names no element"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us_core_patient() -> Profile {
        let sd = br#"{"resourceType":"StructureDefinition","url":"http://example.org/us-core-patient","name":"USCorePatientLike","type":"Patient",
          "differential":{"element":[{"path":"Patient"},{"path":"Patient.identifier","min":1},{"path":"Patient.identifier.system","min":1},
          {"path":"Patient.name","min":1},{"path":"Patient.gender","min":1},{"id":"Patient.extension:race","path":"Patient.extension","sliceName":"race"},
          {"path":"Patient.deceased[x]","type":[{"code":"boolean"}]},{"path":"Patient.active","fixedBoolean":true}]}}"#;
        Profile::from_bytes(sd).unwrap()
    }

    #[test]
    fn reads_differential() {
        let p = us_core_patient();
        assert_eq!((p.type_name.as_str(), p.skipped, p.rules.len()), ("Patient", 1, 6));
        let members =
            crate::json::parse(br#"{"identifier":[{"value":"1"}],"deceasedDateTime":"2020","active":false}"#).unwrap();
        let found = p.check_object("Patient", members.as_object().unwrap());
        let codes: Vec<_> = found.iter().map(|f| (f.finding.code, f.suffix.as_str())).collect();
        assert_eq!(
            codes,
            [
                (codes::PROFILE_REQUIRED, ""),
                (codes::PROFILE_REQUIRED, ""),
                (codes::PROFILE_LIMIT, ".deceasedDateTime"),
                (codes::PROFILE_VALUE, ".active")
            ]
        );
        let id = crate::json::parse(br#"{"value":"1"}"#).unwrap();
        assert_eq!(p.check_object("Patient.identifier", id.as_object().unwrap()).len(), 1);
    }

    #[test]
    fn unknown_paths_make_the_profile_unusable() {
        let sd = br#"{"resourceType":"StructureDefinition","type":"Patient","differential":{"element":[{"path":"Patient.nmae","min":1}]}}"#;
        let e = Profile::from_bytes(sd).unwrap_err();
        assert!(e.starts_with("FHIR123") && e.contains("nmae"), "{e}");
    }
}
