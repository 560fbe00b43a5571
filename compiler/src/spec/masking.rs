//! Masking policies (`kind: masking`): what happens to each PHI class or output field.
//!
//! Invariant: keeping PHI in clear is always an explicit, reasoned decision (`keep` needs a
//! `reason`), and `hash` always has a key reference, so the plan can show every decision.

use sluice_spec_core::PhiClass;

use super::profile::phi_class;
use super::reader::{self, Cx};
use super::shape;
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::{MaskAction, MaskPlan, Treatment};
use crate::source::Span;
use crate::yaml::{Node, Value};

/// A field rule with the span of its key, so the compiler can check the field exists.
pub struct FieldRule {
    pub field: String,
    pub span: Span,
    pub treatment: Treatment,
}

pub struct Policy {
    pub plan: MaskPlan,
    pub field_rules: Vec<FieldRule>,
    /// Where each class rule's treatment is written, for diagnostics about it.
    pub class_spans: Vec<(PhiClass, Span)>,
}

fn action_of(text: &str) -> Option<MaskAction> {
    Some(match text {
        "keep" => MaskAction::Keep,
        "partial" => MaskAction::Partial,
        "hash" => MaskAction::Hash,
        "redact" => MaskAction::Redact,
        "null" => MaskAction::Null,
        _ => return None,
    })
}

fn treatment(cx: &mut Cx, node: &Node, what: &str) -> Option<Treatment> {
    let decided_at = cx.sources.location(node.span);
    let (action, keep_last, reason, action_span) = match &node.value {
        Value::Map(_) => {
            let obj = reader::object(cx, node, &shape::TREATMENT, what)?;
            let action_node = obj.get("action")?;
            let action = reader::one_of(cx, action_node, shape::MASK_ACTIONS, "masking action")?;
            let keep_last = obj.get("keep_last").and_then(|n| reader::integer(cx, n, "`keep_last`"));
            let reason = obj.get("reason").and_then(|n| reader::string(cx, n, "`reason`")).map(|s| s.text);
            (action.text, keep_last, reason, action.span)
        }
        Value::Null => {
            // `ssn: null` in YAML means the `null` action.
            ("null".to_string(), None, None, node.span)
        }
        _ => {
            let s = reader::one_of(cx, node, shape::MASK_ACTIONS, "masking action")?;
            (s.text, None, None, s.span)
        }
    };
    let action = action_of(&action)?;
    if action == MaskAction::Keep && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        cx.push(
            Diagnostic::error(codes::KEEP_WITHOUT_REASON, format!("keeping {what} in clear needs a reason"))
                .label(action_span, "`keep` without a reason")
                .help("write `{action: keep, reason: \"why this PHI may leave in clear\"}`"),
        );
        return None;
    }
    let keep_last = match action {
        MaskAction::Partial => Some(keep_last.unwrap_or(4) as usize),
        _ => None,
    };
    Some(Treatment { action, keep_last, reason, decided_at })
}

/// `${file:key}` is resolved like every other path in a spec: relative to the spec's directory.
/// The plan holds the normalized path, so the runtime needs no spec location.
fn key_file_relative_to_spec(cx: &Cx, reference: String) -> String {
    let Some(path) = reference.strip_prefix("${file:").and_then(|r| r.strip_suffix('}')) else {
        return reference;
    };
    let path = std::path::Path::new(path.trim());
    if path.is_absolute() {
        return reference;
    }
    let base = cx.sources.get(cx.file).path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    format!("${{file:{}}}", crate::source::display_path(&base.join(path)))
}

pub fn read(cx: &mut Cx, node: &Node) -> Option<Policy> {
    let obj = reader::object(cx, node, &shape::MASKING, "the masking policy")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
    let hash_key = obj
        .get("hash_key")
        .and_then(|n| reader::secret(cx, n, "`hash_key`"))
        .map(|s| key_file_relative_to_spec(cx, s.text));
    let mut classes = Vec::new();
    let mut class_spans = Vec::new();
    // Where `hash` is first used, for SL604.
    let mut first_hash: Option<Span> = None;
    if let Some(n) = obj.get("classes")
        && let Some(entries) = reader::entries(cx, n, "`classes`")
    {
        for (_, key, value) in entries {
            let Some(class) = phi_class(cx, key) else { continue };
            if let Some(t) = treatment(cx, value, &format!("class `{class}`")) {
                if t.action == MaskAction::Hash {
                    first_hash = first_hash.or(Some(value.span));
                }
                class_spans.push((class, value.span));
                classes.push((class, t));
            }
        }
    }
    let mut field_rules = Vec::new();
    if let Some(n) = obj.get("fields")
        && let Some(entries) = reader::entries(cx, n, "`fields`")
    {
        for (field, key, value) in entries {
            if let Some(t) = treatment(cx, value, &format!("field `{field}`")) {
                if t.action == MaskAction::Hash {
                    first_hash = first_hash.or(Some(value.span));
                }
                field_rules.push(FieldRule { field: field.to_string(), span: key.span, treatment: t });
            }
        }
    }
    // A `hash_key` that is written but invalid was reported already (SL205).
    if let Some(at) = first_hash
        && obj.get("hash_key").is_none()
    {
        cx.push(
            Diagnostic::error(codes::MASK_HASH_KEY, "the policy uses `hash` but has no `hash_key`")
                .label(at, "`hash` needs a key")
                .help("add `hash_key: ${SLUICE_MASK_KEY}` and set the variable where Sluice runs"),
        );
    }
    classes.sort_by_key(|(c, _)| *c);
    let plan = MaskPlan {
        policy: name,
        policy_file: cx.sources.get(cx.file).name.clone(),
        fields: field_rules.iter().map(|f| (f.field.clone(), f.treatment.clone())).collect(),
        classes,
        hash_key,
    };
    Some(Policy { plan, field_rules, class_spans })
}
