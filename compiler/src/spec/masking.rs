//! Masking policies (`kind: masking`): what happens to each PHI class or output field.
//!
//! Invariant: keeping PHI in clear is always an explicit, reasoned decision (`keep` needs a
//! `reason`), the keyed actions (`hash`, `shift_date`, `tokenize`) always have a key reference
//! (and `tokenize` a `vault_key` too: SL610), and every
//! action has what it needs (`generalize` its `to`, `shift_date` its `subject`), so the plan can
//! show every decision.

use sluice_spec_core::PhiClass;

use super::profile::phi_class;
use super::reader::{self, Cx, Spanned};
use super::shape;
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::{DateShift, Generalization, MaskAction, MaskPlan, Treatment};

/// `shift_date`'s default and largest `max_days` (a shift of years would move ages).
const DEFAULT_MAX_SHIFT_DAYS: u32 = 365;
const MAX_SHIFT_DAYS: u32 = 3650;
use crate::source::Span;
use crate::yaml::{Node, Value};

/// A field rule with the span of its key, so the compiler can check the field exists.
#[derive(Clone)]
pub struct FieldRule {
    pub field: String,
    pub span: Span,
    pub treatment: Treatment,
}

#[derive(Clone)]
pub struct Policy {
    pub plan: MaskPlan,
    pub field_rules: Vec<FieldRule>,
    /// The `subject` fields of `shift_date` rules, where written.
    pub subjects: Vec<(String, Span)>,
    /// Where each class rule's treatment is written, for diagnostics about it.
    pub class_spans: Vec<(PhiClass, Span)>,
    /// The policies it builds on, as written (resolved by the driver, which merges them with
    /// [`Policy::over`]).
    pub extends: Vec<Spanned>,
    /// Where a keyed action (`hash`, `shift_date`) is first used: the driver's SL604 check of
    /// a merged policy.
    pub first_keyed: Option<(MaskAction, Span)>,
    /// Where `tokenize` is first used: the driver's SL610 check of a merged policy.
    pub first_tokenize: Option<Span>,
}

/// SL610: `tokenize` without a `vault_key` (`inherited` says where else it was looked for).
pub fn vault_key_missing(at: Span, inherited: &str) -> Diagnostic {
    Diagnostic::error(codes::MASK_VAULT_KEY, format!("the policy uses `tokenize` but{inherited} has no `vault_key`"))
        .label(at, "`tokenize` keeps the value, encrypted, in the vault")
        .help(
            "add `vault_key: ${SLUICE_VAULT_KEY}` (32 random bytes as 64 hex digits: `openssl rand -hex 32`) and \
             set the variable where Sluice runs",
        )
}

/// The built-in policies, by name: their YAML, compiled like a user's file.
pub const BUILTIN: &[(&str, &str)] = &[
    ("hipaa_safe_harbor", include_str!("../policies/hipaa_safe_harbor.yaml")),
    ("limited_data_set", include_str!("../policies/limited_data_set.yaml")),
    ("pci", include_str!("../policies/pci.yaml")),
];

impl Policy {
    /// This policy with `base` under it: a class or field rule here replaces the base's for
    /// the same class or field; the base's other rules stay. The name, file and key are this
    /// policy's (the key falls back to the base's).
    pub fn over(self, base: Policy) -> Policy {
        fn merge<K: PartialEq + Clone, V>(base: Vec<(K, V)>, top: Vec<(K, V)>) -> Vec<(K, V)> {
            let mut out: Vec<(K, V)> = base.into_iter().filter(|(k, _)| !top.iter().any(|(t, _)| t == k)).collect();
            out.extend(top);
            out
        }
        let Policy { plan, field_rules, subjects, class_spans, extends, first_keyed, first_tokenize } = self;
        let mut classes = merge(base.plan.classes, plan.classes);
        classes.sort_by_key(|(c, _)| *c);
        let as_pairs = |rules: Vec<FieldRule>| rules.into_iter().map(|r| (r.field.clone(), r)).collect::<Vec<_>>();
        let field_rules: Vec<FieldRule> =
            merge(as_pairs(base.field_rules), as_pairs(field_rules)).into_iter().map(|(_, r)| r).collect();
        let fields = field_rules.iter().map(|f| (f.field.clone(), f.treatment.clone())).collect();
        let mut class_spans = merge(base.class_spans, class_spans);
        class_spans.sort_by_key(|(c, _)| *c);
        Policy {
            plan: MaskPlan {
                environment: plan.environment,
                policy: plan.policy,
                policy_file: plan.policy_file,
                fields,
                classes,
                hash_key: plan.hash_key.or(base.plan.hash_key),
                vault_key: plan.vault_key.or(base.plan.vault_key),
            },
            field_rules,
            subjects: base.subjects.into_iter().chain(subjects).collect(),
            class_spans,
            extends,
            first_keyed: first_keyed.or(base.first_keyed),
            first_tokenize: first_tokenize.or(base.first_tokenize),
        }
    }
}

fn action_of(text: &str) -> Option<MaskAction> {
    Some(match text {
        "keep" => MaskAction::Keep,
        "partial" => MaskAction::Partial,
        "shift_date" => MaskAction::ShiftDate,
        "generalize" => MaskAction::Generalize,
        "tokenize" => MaskAction::Tokenize,
        "hash" => MaskAction::Hash,
        "redact" => MaskAction::Redact,
        "null" => MaskAction::Null,
        _ => return None,
    })
}

/// The keys of a treatment object beyond `action`.
#[derive(Default)]
struct Options {
    keep_last: Option<u64>,
    reason: Option<String>,
    to: Option<Generalization>,
    subject: Option<(String, Span)>,
    max_days: Option<(u64, Span)>,
}

/// A treatment as written, with where its `shift_date` subject is written (for the compiler's
/// check that the field exists).
fn treatment(cx: &mut Cx, node: &Node, what: &str) -> Option<(Treatment, Option<Span>)> {
    let decided_at = cx.sources.location(node.span);
    let (action, o, action_span) = match &node.value {
        Value::Map(_) => {
            let obj = reader::object(cx, node, &shape::TREATMENT, what)?;
            let action_node = obj.get("action")?;
            let action = reader::one_of(cx, action_node, shape::MASK_ACTIONS, "masking action")?;
            let o = Options {
                keep_last: obj.get("keep_last").and_then(|n| reader::integer(cx, n, "`keep_last`")),
                reason: obj.get("reason").and_then(|n| reader::string(cx, n, "`reason`")).map(|s| s.text),
                to: obj
                    .get("to")
                    .and_then(|n| reader::one_of(cx, n, Generalization::NAMES, "generalization"))
                    .and_then(|t| Generalization::parse(&t.text)),
                subject: obj.get("subject").and_then(|n| reader::string(cx, n, "`subject`")).map(|s| (s.text, s.span)),
                max_days: obj.get("max_days").and_then(|n| reader::integer(cx, n, "`max_days`").map(|v| (v, n.span))),
            };
            (action.text, o, action.span)
        }
        Value::Null => {
            // `ssn: null` in YAML means the `null` action.
            ("null".to_string(), Options::default(), node.span)
        }
        _ => {
            let s = reader::one_of(cx, node, shape::MASK_ACTIONS, "masking action")?;
            (s.text, Options::default(), s.span)
        }
    };
    let Options { keep_last, reason, to, subject, max_days } = o;
    let action = action_of(&action)?;
    let missing = |cx: &mut Cx, key: &str, help: &str| {
        cx.push(
            Diagnostic::error(codes::MISSING_KEY, format!("`{}` on {what} needs `{key}`", action.as_str()))
                .label(action_span, format!("add `{key}` beside this action"))
                .help(help.to_string()),
        );
    };
    if action == MaskAction::Generalize && to.is_none() {
        missing(cx, "to", "write `{action: generalize, to: zip3}` (or `to: year`, `to: age`)");
        return None;
    }
    let shift = match action {
        MaskAction::ShiftDate => {
            let Some((subject, span)) = subject.clone() else {
                missing(
                    cx,
                    "subject",
                    "write `{action: shift_date, subject: patient.id}`: the field naming the person whose dates move together",
                );
                return None;
            };
            let max_days = match max_days {
                None => DEFAULT_MAX_SHIFT_DAYS,
                Some((v, span)) => match u32::try_from(v).ok().filter(|d| (1..=MAX_SHIFT_DAYS).contains(d)) {
                    Some(d) => d,
                    None => {
                        cx.push(
                            Diagnostic::error(
                                codes::INVALID_VALUE,
                                format!("`max_days` must be 1 to {MAX_SHIFT_DAYS}"),
                            )
                            .label(span, format!("{v}"))
                            .help(format!("the default is {DEFAULT_MAX_SHIFT_DAYS}")),
                        );
                        return None;
                    }
                },
            };
            Some((DateShift { max_days, subject }, span))
        }
        _ => None,
    };
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
    let to = to.filter(|_| action == MaskAction::Generalize);
    let (shift, shift_span) = shift.unzip();
    // `tokenize` may name its subject: the vault links each token to that person.
    let (subject, subject_span) = match (action, subject) {
        (MaskAction::Tokenize, Some((field, span))) => (Some(field), Some(span)),
        _ => (None, shift_span),
    };
    Some((Treatment { action, keep_last, reason, decided_at, to, shift, subject }, subject_span))
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
    let vault_key = obj
        .get("vault_key")
        .and_then(|n| reader::secret(cx, n, "`vault_key`"))
        .map(|s| key_file_relative_to_spec(cx, s.text));
    let mut classes = Vec::new();
    let mut class_spans = Vec::new();
    // Where a keyed action (`hash`, `shift_date`, `tokenize`) is first used, for SL604; where
    // `tokenize` is, for SL610.
    let mut first_keyed: Option<(MaskAction, Span)> = None;
    let mut first_tokenize: Option<Span> = None;
    let mut subjects = Vec::new();
    let mut note = |t: &Treatment, at: Span, subject: Option<Span>| {
        if matches!(t.action, MaskAction::Hash | MaskAction::ShiftDate | MaskAction::Tokenize) {
            first_keyed = first_keyed.or(Some((t.action, at)));
        }
        if t.action == MaskAction::Tokenize {
            first_tokenize = first_tokenize.or(Some(at));
        }
        let field = t.shift.as_ref().map(|s| &s.subject).or(t.subject.as_ref());
        if let (Some(field), Some(span)) = (field, subject) {
            subjects.push((field.clone(), span));
        }
    };
    if let Some(n) = obj.get("classes")
        && let Some(entries) = reader::entries(cx, n, "`classes`")
    {
        for (_, key, value) in entries {
            let Some(class) = phi_class(cx, key) else { continue };
            if let Some((t, subject)) = treatment(cx, value, &format!("class `{class}`")) {
                note(&t, value.span, subject);
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
            if let Some((t, subject)) = treatment(cx, value, &format!("field `{field}`")) {
                note(&t, value.span, subject);
                field_rules.push(FieldRule { field: field.to_string(), span: key.span, treatment: t });
            }
        }
    }
    let extends = obj.get("extends").map(|n| reader::string_list(cx, n, "`extends`", true)).unwrap_or_default();
    // A `hash_key` that is written but invalid was reported already (SL205). A policy that
    // extends others may inherit its key: the driver checks the merged policy.
    if let Some((action, at)) = first_keyed
        && obj.get("hash_key").is_none()
        && extends.is_empty()
    {
        let action = action.as_str();
        cx.push(
            Diagnostic::error(codes::MASK_HASH_KEY, format!("the policy uses `{action}` but has no `hash_key`"))
                .label(at, format!("`{action}` needs a key"))
                .help("add `hash_key: ${SLUICE_MASK_KEY}` and set the variable where Sluice runs"),
        );
    }
    if let Some(at) = first_tokenize
        && obj.get("vault_key").is_none()
        && extends.is_empty()
    {
        cx.push(vault_key_missing(at, ""));
    }
    classes.sort_by_key(|(c, _)| *c);
    let plan = MaskPlan {
        environment: None,
        policy: name,
        policy_file: cx.sources.get(cx.file).name.clone(),
        fields: field_rules.iter().map(|f| (f.field.clone(), f.treatment.clone())).collect(),
        classes,
        hash_key,
        vault_key,
    };
    Some(Policy { plan, field_rules, subjects, class_spans, extends, first_keyed, first_tokenize })
}
