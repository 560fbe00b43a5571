//! Pack manifests (`kind: pack`, `pack.yaml` at a pack's root): a pack's name, version, the
//! base pack it builds on and the schemas it targets.
//!
//! This module reads what is written; the driver ([`crate::compile`]) checks the pack's
//! mappings against it: each reads and writes declared schemas (SL209), and extends only
//! mappings of the pack or of its base packs (SL210).

use super::reader::{self, Cx, Spanned};
use super::schema_ref;
use super::shape;
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::fhir::BUNDLE_SCHEMA as FHIR_BUNDLE;
use crate::yaml::Node;

pub struct Pack {
    pub name: String,
    /// The base pack's folder, as written (relative to the manifest).
    pub extends: Option<Spanned>,
    /// The schema names as written (`hl7v2/2.5.1`), each known.
    pub schemas: Vec<Spanned>,
}

/// `MAJOR.MINOR.PATCH`, optionally with a `-pre.release` or `+build` suffix.
pub fn is_version(text: &str) -> bool {
    let core = text.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The `extends` of a manifest's tree, read without reporting anything (for walking a chain of
/// base packs, each checked on its own).
pub fn extends_of(node: &Node) -> Option<Spanned> {
    let crate::yaml::Value::Map(top) = &node.value else { return None };
    top.iter()
        .find(|(k, _)| k.as_str() == Some("extends"))
        .and_then(|(_, v)| v.as_str().map(|s| Spanned { text: s.to_string(), span: v.span }))
}

pub fn read(cx: &mut Cx, node: &Node) -> Option<Pack> {
    let obj = reader::object(cx, node, &shape::PACK, "the pack manifest")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`"))?.text;
    if let Some(v) = obj.get("version").and_then(|n| reader::string(cx, n, "`version`"))
        && !is_version(&v.text)
    {
        cx.push(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a version", v.text))
                .label(v.span, "expected MAJOR.MINOR.PATCH")
                .help("write a semantic version such as `1.4.0`; bump MAJOR when a change breaks what the pack's sinks receive"),
        );
    }
    let extends = obj.get("extends").and_then(|n| reader::string(cx, n, "`extends`"));
    let mut schemas = Vec::new();
    if let Some(list) = obj.get("schemas") {
        let crate::yaml::Value::Seq(items) = &list.value else {
            cx.push(
                Diagnostic::error(codes::WRONG_TYPE, "`schemas` must be a list of schema names")
                    .label(list.span, "not a list")
                    .help("write `schemas: [hl7v2/2.5.1, canonical/patient-event@1]`"),
            );
            return None;
        };
        for item in items {
            // `fhir/r4/Bundle` is a mapping output too, though not a schema of its own here.
            // So are Stripe objects (`stripe/charge`), QuickBooks entities
            // (`quickbooks/Purchase`) and Plaid objects (`plaid/transaction`), mapping inputs.
            if let Some(s) = item.as_str().filter(|s| {
                *s == FHIR_BUNDLE
                    || crate::stripe::schema_object(s).is_some()
                    || crate::quickbooks::schema_entity(s).is_some()
                    || crate::plaid::schema_object(s).is_some()
            }) {
                schemas.push(Spanned { text: s.to_string(), span: item.span });
            } else if let Some(s) = item.as_str().filter(|s| s.starts_with(crate::x12::MAPPING_SCHEMA_PREFIX)) {
                // An X12 guide a mapping reads (`x12/005010X222A1`).
                match crate::x12::mapping_guide(s, item.span) {
                    Ok(_) => schemas.push(Spanned { text: s.to_string(), span: item.span }),
                    Err(d) => cx.push(d),
                }
            } else if let Some((_, s)) = schema_ref(cx, item) {
                schemas.push(s);
            }
        }
    }
    Some(Pack { name, extends, schemas })
}
