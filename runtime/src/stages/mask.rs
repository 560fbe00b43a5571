//! The mask stage: applies the masking policy to every output leaf that carries PHI classes.
//!
//! Decision per classed leaf: a field rule first (the most specific rule whose dotted path is
//! the leaf's pattern, `patient.identifiers[*].value`, or a parent of it; list indices in rules
//! may be written `[*]` or left out), else the strongest class rule among the leaf's classes
//! (null > redact > hash > partial > keep). A leaf no rule covers is set to null (fail safe)
//! with warning `RT401`; the compiler should make that impossible.
//!
//! Actions: `keep`; `partial` (keep the last N letters/digits, other letters/digits become `*`,
//! separators stay: `123-45-6789` -> `***-**-6789`); `hash` (`h:` + hex HMAC-SHA256 under the
//! policy's key); `redact` (`[REDACTED]`); `null`. Lists are masked element by element.
//!
//! Invariants:
//! - Fail safe: a classed value either gets an explicit policy decision or becomes null.
//! - The hash key is resolved before any record is processed (a missing key stops the run);
//!   the same key and value always give the same pseudonym (joins across runs).
//! - The outcome per leaf (action, explicit or not) is kept on the record for the sink's
//!   `compliance` block.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_compiler::plan::{MaskAction, MaskPlan, Treatment};

use super::Step;
use crate::findings;
use crate::record::{Doc, Issue, LeafOutcome, Payload, Record};
use crate::secrets::Secret;

/// Whether a mask plan needs a hash key.
pub fn uses_hash(plan: &MaskPlan) -> bool {
    plan.fields.iter().map(|(_, t)| t).chain(plan.classes.iter().map(|(_, t)| t)).any(|t| t.action == MaskAction::Hash)
}

fn strip_indexes(p: &str) -> String {
    p.replace("[*]", "")
}

/// How specific a field rule is for a leaf pattern; `None` when it does not apply.
fn rule_match(rule: &str, pattern: &str) -> Option<usize> {
    let (r, p) = (strip_indexes(rule), strip_indexes(pattern));
    if p == r || (p.starts_with(&r) && p[r.len()..].starts_with('.')) { Some(r.len()) } else { None }
}

fn decide<'a>(plan: &'a MaskPlan, pattern: &str, classes: &[sluice_spec_core::PhiClass]) -> Option<&'a Treatment> {
    let by_field = plan
        .fields
        .iter()
        .filter_map(|(rule, t)| rule_match(rule, pattern).map(|n| (n, t)))
        .max_by_key(|(n, _)| *n)
        .map(|(_, t)| t);
    by_field
        .or_else(|| plan.classes.iter().filter(|(c, _)| classes.contains(c)).map(|(_, t)| t).max_by_key(|t| t.action))
}

/// `123-45-6789`, keep 4 -> `***-**-6789`.
pub fn partial(text: &str, keep_last: usize) -> String {
    let total = text.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    text.chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            seen += 1;
            if total - seen < keep_last { c } else { '*' }
        })
        .collect()
}

pub fn hash(key: &[u8], text: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(text.as_bytes());
    format!("h:{}", hex::encode(mac.finalize().into_bytes()))
}

fn apply(doc: &mut Doc, t: Option<&Treatment>, key: Option<&Secret>) {
    match doc {
        Doc::Null => {}
        Doc::Arr(items) => items.iter_mut().for_each(|i| apply(i, t, key)),
        Doc::Obj(members) => members.iter_mut().for_each(|(_, v)| apply(v, t, key)),
        Doc::Bool(_) | Doc::Num(_) | Doc::Str(_) => {
            // Borrowed from the leaf: it is read, then replaced.
            let text: Cow<'_, str> = match doc {
                Doc::Bool(b) => Cow::Owned(b.to_string()),
                Doc::Num(n) | Doc::Str(n) => Cow::Borrowed(n),
                _ => Cow::Borrowed(""),
            };
            *doc = match t.map(|t| (t.action, t.keep_last)) {
                Some((MaskAction::Keep, _)) => return,
                Some((MaskAction::Partial, n)) => Doc::Str(partial(&text, n.unwrap_or(4))),
                Some((MaskAction::Hash, _)) => match key {
                    Some(k) => Doc::Str(hash(k.expose(), &text)),
                    None => Doc::Null,
                },
                Some((MaskAction::Redact, _)) => Doc::Str("[REDACTED]".into()),
                Some((MaskAction::Null, _)) | None => Doc::Null,
            };
        }
    }
}

pub fn run<'p>(plan: &MaskPlan, key: Option<&Secret>, mut rec: Record) -> Step<'p> {
    let Payload::Doc(doc) = &mut rec.payload else {
        // An HL7 record has no classed output leaves: nothing to mask.
        rec.env.masking.get_or_insert_with(BTreeMap::new);
        return Step::Next(rec, None);
    };
    let mut outcomes = rec.env.masking.take().unwrap_or_default();
    for (pointer, leaf) in &rec.env.classes {
        let t = decide(plan, &leaf.pattern, &leaf.classes);
        if t.is_none() {
            rec.env.warnings.push(Issue::new(
                findings::CLASSED_LEAF_UNRULED,
                leaf.pattern.clone(),
                format!("no masking rule of policy `{}` covers this PHI field; it was set to null", plan.policy),
            ));
        }
        if let Some(v) = doc.pointer_mut(pointer) {
            apply(v, t, key);
        }
        let outcome = LeafOutcome {
            action: t.map_or(MaskAction::Null, |t| t.action),
            explicit: t.is_some_and(|t| {
                t.action != MaskAction::Keep || t.reason.as_deref().is_some_and(|r| !r.trim().is_empty())
            }),
        };
        match outcomes.get_mut(pointer) {
            Some(prev) => {
                *prev =
                    LeafOutcome { action: prev.action.max(outcome.action), explicit: prev.explicit && outcome.explicit }
            }
            None => {
                outcomes.insert(pointer.clone(), outcome);
            }
        }
    }
    rec.env.masking = Some(outcomes);
    if *rec.schema == *sluice_compiler::plan::fhir::BUNDLE_SCHEMA {
        crate::fhir_output::drop_nulled(&mut rec);
    }
    Step::Next(rec, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_masking() {
        assert_eq!(partial("123-45-6789", 4), "***-**-6789");
        assert_eq!(partial("AB12", 0), "****");
        assert_eq!(partial("12", 4), "12");
        assert_eq!(partial("", 4), "");
        assert_eq!(partial("Müller-Ö", 2), "*****r-Ö");
    }

    #[test]
    fn hashing_is_keyed_and_stable() {
        let a = hash(b"k1", "123");
        assert_eq!(a, hash(b"k1", "123"));
        assert_ne!(a, hash(b"k2", "123"));
        assert!(a.starts_with("h:") && a.len() == 66);
    }

    #[test]
    fn rule_matching() {
        assert_eq!(rule_match("patient.identifiers[*].value", "patient.identifiers[*].value"), Some(25));
        assert!(rule_match("patient.identifiers", "patient.identifiers[*].value").is_some());
        assert!(rule_match("patient.id", "patient.identifiers[*].value").is_none());
        assert!(rule_match("patient.name", "patient.name").is_some());
    }
}
