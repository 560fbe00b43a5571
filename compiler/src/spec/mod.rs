//! The spec language: one module per file kind, each reading YAML nodes into checked values.
//!
//! [`shape`] describes every object (keys, types, docs); [`reader`] checks nodes against it.

pub mod amqp;
pub mod bus;
pub mod connections;
pub mod fhir_output;
pub mod kafka;
pub mod mapping;
pub mod masking;
pub mod overlay;
pub mod pack;
pub mod pipeline;
pub mod profile;
pub mod reader;
pub mod reconcile;
pub mod retention;
pub mod roles;
pub mod rules;
pub mod secret_scan;
pub mod shape;
pub mod test;
pub mod webhook;
pub mod x12_profile;

use sluice_canonical::OutputSchema;
use sluice_hl7v2::schema::Version;

use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::yaml::Node;
use reader::{Cx, Spanned};

/// A schema named in a spec: an input standard or an output schema.
#[derive(Clone, Copy, Debug)]
pub enum SchemaRef {
    Hl7(Version),
    Output(&'static OutputSchema),
}

impl SchemaRef {
    pub fn name(&self) -> String {
        match self {
            SchemaRef::Hl7(v) => format!("hl7v2/{v}"),
            SchemaRef::Output(o) => o.name.to_string(),
        }
    }
}

/// Reads `hl7v2/2.5.1` or `canonical/patient-event@1`, reporting SL401 with suggestions.
pub fn schema_ref(cx: &mut Cx, node: &Node) -> Option<(SchemaRef, Spanned)> {
    let s = reader::string(cx, node, "a schema name")?;
    if let Some(v) = s.text.strip_prefix("hl7v2/").and_then(Version::parse) {
        return Some((SchemaRef::Hl7(v), s));
    }
    if let Some(o) = sluice_canonical::schema(&s.text) {
        return Some((SchemaRef::Output(o), s));
    }
    let mut known: Vec<String> = Version::ALL.iter().map(|v| format!("hl7v2/{v}")).collect();
    known.extend(sluice_canonical::names().map(String::from));
    let d = Diagnostic::error(codes::UNKNOWN_SCHEMA, format!("unknown schema `{}`", s.text))
        .label(s.span, "not a bundled schema");
    let d = match crate::diagnostics::did_you_mean(&s.text, known.iter().map(String::as_str)) {
        Some(best) => d.help(format!("did you mean `{best}`?")),
        None => d.help(format!("bundled schemas: {}", known.join(", "))),
    };
    cx.push(d);
    None
}

/// The `kind` of a spec file, reporting SL104 when it is missing or unknown.
pub fn kind_of(cx: &mut Cx, node: &Node) -> Option<String> {
    let entries = reader::entries(cx, node, "a spec file")?;
    let Some((_, _, kind)) = entries.iter().find(|(k, _, _)| *k == "kind") else {
        let at = entries.first().map_or(node.span, |(_, k, _)| k.span);
        cx.push(
            Diagnostic::error(codes::UNKNOWN_KIND, "the file has no `kind`")
                .label(at, "add `kind:` before this")
                .help("start the file with `kind: pipeline` (or mapping, profile, rules, masking, test, pack, reconciliation)"),
        );
        return None;
    };
    let s = reader::string(cx, kind, "`kind`")?;
    if shape::KINDS.contains(&s.text.as_str()) {
        return Some(s.text);
    }
    let d = Diagnostic::error(codes::UNKNOWN_KIND, format!("`{}` is not a kind of spec file", s.text))
        .label(s.span, "unknown kind");
    cx.push(match crate::diagnostics::did_you_mean(&s.text, shape::KINDS.iter().copied()) {
        Some(best) => d.help(format!("did you mean `{best}`?")),
        None => d.help("kinds: pipeline, mapping, profile, rules, masking, test, pack, reconciliation"),
    });
    None
}
