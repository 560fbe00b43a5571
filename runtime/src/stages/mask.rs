//! The mask stage: applies the masking policy to every output leaf that carries PHI classes.
//!
//! Decision per classed leaf: a field rule first (the most specific rule whose dotted path is
//! the leaf's pattern, `patient.identifiers[*].value`, or a parent of it; list indices in rules
//! may be written `[*]` or left out), else the strongest class rule among the leaf's classes
//! (null > redact > hash > tokenize > generalize > shift_date > partial > keep). A leaf no rule covers is set to null (fail safe)
//! with warning `RT401`; the compiler should make that impossible.
//!
//! Actions: `keep`; `partial` (keep the last N letters/digits, other letters/digits become `*`,
//! separators stay: `123-45-6789` -> `***-**-6789`); `shift_date` (by the keyed days of the
//! record's subject); `generalize` (`zip3`, `year`, `age`, `birth_year`: the year, or `90+` for
//! a person 90 or older on the run's date); `hash` (`h:` + hex HMAC-SHA256 under
//! the policy's key); `tokenize` (a random `t:` token kept with the value, encrypted, in the
//! state store's vault: [`crate::vault`]); `redact` (`[REDACTED]`); `null`. The value transforms are in
//! [`super::deidentify`]. Lists are masked element by element. A value a transform cannot
//! mask (not a ZIP, not a date; no subject to shift by) is set to null with warning `RT402`.
//!
//! Invariants:
//! - Fail safe: a classed value either gets an explicit policy decision or becomes null.
//! - The hash key (and for `tokenize` the vault and its keys) is resolved before any record is
//!   processed (a missing key stops the run); the same key and value always give the same
//!   pseudonym (joins across runs), and the same vault the same token.
//! - A value the vault cannot tokenize sends its record to the DLQ (RT403): never on in clear.
//! - `birth_year` measures ages on one day for the whole run: the UTC date of the run clock
//!   when the stage is prepared (`--fixed-clock` pins it), so a run's output does not depend
//!   on when a record happens to be processed; a replay measures on its own run's date.
//! - The outcome per leaf (action, explicit or not) is kept on the record for the sink's
//!   `compliance` block.
//! - Stages only mask more: a leaf an earlier mask stage decided (a stage before a sink's
//!   audience mask) is left as it is unless this stage's rule is stronger.

use std::borrow::Cow;
use std::collections::BTreeMap;

use sluice_compiler::plan::{Generalization, MaskAction, MaskPlan, StateTarget, Treatment};

use super::{Step, deidentify};
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::findings;
use crate::keys::KeyRing;
use crate::record::{Doc, Issue, LeafOutcome, Payload, Record};
use crate::secrets::{self, Secret};
use crate::time::Clock;
use crate::vault::Vault;

/// What a mask stage needs beyond its plan, resolved once before the run.
#[derive(Debug, Default)]
pub struct Keys {
    /// For `hash`, `shift_date` and the vault's lookups.
    pub hash_key: Option<Secret>,
    /// For `tokenize`.
    pub vault: Option<Vault>,
    /// For `generalize: birth_year`: the run's date (days since 1970-01-01, UTC). `None`
    /// nulls such values (fail safe).
    pub today: Option<i64>,
}

/// The day (since 1970-01-01) of an RFC 3339 UTC instant from [`crate::time::Clock::now`].
fn day_of(instant: &str) -> Option<i64> {
    let date = instant.get(..10)?;
    let (y, m, d) = (date.get(..4)?.parse().ok()?, date.get(5..7)?.parse().ok()?, date.get(8..10)?.parse().ok()?);
    Some(crate::time::days_from_civil(y, m, d))
}

/// Resolves the keys of mask stage `name`, opens its vault (in the pipeline's state store) and
/// takes the run's date from `clock`.
pub fn prepare(name: &str, plan: &MaskPlan, state: Option<&StateTarget>, clock: &Clock) -> Result<Keys, RunError> {
    let today = day_of(&clock.now());
    let mut keys = prepare_keys(name, plan, state)?;
    keys.today = today;
    Ok(keys)
}

fn prepare_keys(name: &str, plan: &MaskPlan, state: Option<&StateTarget>) -> Result<Keys, RunError> {
    let invalid = |what: &str| {
        RunError::new(findings::PLAN_INVALID, format!("mask `{name}`: policy `{}` {what}", plan.policy))
            .with_help("re-run `sluice check`; if it passes, please report this")
    };
    if !needs_key(plan) {
        return Ok(Keys::default());
    }
    let Some(reference) = &plan.hash_key else {
        return Err(invalid("hashes, shifts or tokenizes values but has no hash_key"));
    };
    let hash_key = secrets::resolve(reference, &format!("hash_key of mask `{name}`"))?;
    let vault = if plan.uses(MaskAction::Tokenize) {
        let (Some(reference), Some(state)) = (&plan.vault_key, state) else {
            return Err(invalid("tokenizes values but has no vault_key or the pipeline no state store"));
        };
        let ring = KeyRing::resolve(reference, &format!("vault_key of mask `{name}`"))?;
        Some(Vault::open(crate::state::Store::open(state, None)?, &hash_key, ring)?)
    } else {
        None
    };
    Ok(Keys { hash_key: Some(hash_key), vault, today: None })
}

fn treatments(plan: &MaskPlan) -> impl Iterator<Item = &Treatment> {
    plan.fields.iter().map(|(_, t)| t).chain(plan.classes.iter().map(|(_, t)| t))
}

/// Whether a mask plan needs the policy's key (`hash`, `shift_date`, `tokenize`).
pub fn needs_key(plan: &MaskPlan) -> bool {
    treatments(plan).any(|t| matches!(t.action, MaskAction::Hash | MaskAction::ShiftDate | MaskAction::Tokenize))
}

/// The distinct `shift_date` subjects of a plan, with their largest shift.
fn shift_subjects(plan: &MaskPlan) -> impl Iterator<Item = (&str, u32)> {
    let mut seen: Vec<&str> = Vec::new();
    treatments(plan).filter_map(|t| t.shift.as_ref()).filter_map(move |s| {
        if seen.contains(&s.subject.as_str()) {
            return None;
        }
        seen.push(s.subject.as_str());
        Some((s.subject.as_str(), s.max_days))
    })
}

/// The distinct `subject` fields of the plan's `tokenize` rules.
fn token_subjects(plan: &MaskPlan) -> impl Iterator<Item = &str> {
    let mut seen: Vec<&str> = Vec::new();
    treatments(plan).filter_map(|t| t.subject.as_deref()).filter(move |s| {
        let new = !seen.contains(s);
        seen.push(s);
        new
    })
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

/// A shift subject's value (before masking), read by its dotted output path
/// (`patient.id`; a list takes its first element).
fn subject_value(doc: &mut Doc, path: &str) -> Option<String> {
    let mut pointer = String::new();
    for part in path.split('.') {
        let (name, list) = match part.strip_suffix("[*]") {
            Some(n) => (n, true),
            None => (part, false),
        };
        pointer.push('/');
        pointer.push_str(&crate::record::pointer_token(name));
        if list {
            pointer.push_str("/0");
        }
    }
    match doc.pointer_mut(&pointer)? {
        Doc::Str(s) | Doc::Num(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Masks a leaf (element by element for lists). Returns how many values could not be masked
/// as the rule says (a malformed value, a missing shift subject) and were nulled instead; an
/// error when the vault could not tokenize a value (the leaf is then nulled).
fn apply(
    doc: &mut Doc,
    t: Option<&Treatment>,
    keys: &Keys,
    shift_days: Option<i64>,
    subject: Option<&str>,
) -> Result<usize, RunError> {
    match doc {
        Doc::Null => Ok(0),
        Doc::Arr(items) => items.iter_mut().map(|i| apply(i, t, keys, shift_days, subject)).sum(),
        Doc::Obj(members) => members.iter_mut().map(|(_, v)| apply(v, t, keys, shift_days, subject)).sum(),
        Doc::Bool(_) | Doc::Num(_) | Doc::Str(_) => {
            let number = matches!(doc, Doc::Num(_));
            // Borrowed from the leaf: it is read, then replaced.
            let text: Cow<'_, str> = match doc {
                Doc::Bool(b) => Cow::Owned(b.to_string()),
                Doc::Num(n) | Doc::Str(n) => Cow::Borrowed(n),
                _ => Cow::Borrowed(""),
            };
            let Some(t) = t else {
                *doc = Doc::Null;
                return Ok(0);
            };
            let key = keys.hash_key.as_ref();
            let masked = match t.action {
                MaskAction::Keep => return Ok(0),
                MaskAction::Partial => Some(Doc::Str(deidentify::partial(&text, t.keep_last.unwrap_or(4)))),
                MaskAction::Hash => key.map(|k| Doc::Str(deidentify::hash(k.expose(), &text))),
                MaskAction::Tokenize => match keys.vault.as_ref().map(|v| v.token(&text, subject)) {
                    Some(Ok(token)) => Some(Doc::Str(token)),
                    Some(Err(e)) => {
                        *doc = Doc::Null;
                        return Err(e);
                    }
                    None => None,
                },
                MaskAction::Redact => Some(Doc::Str("[REDACTED]".into())),
                MaskAction::Null => Some(Doc::Null),
                MaskAction::ShiftDate => shift_days.and_then(|d| deidentify::shift_date(&text, d)).map(Doc::Str),
                MaskAction::Generalize => match t.to {
                    Some(Generalization::Zip3) => deidentify::zip3(&text).map(Doc::Str),
                    Some(Generalization::Year) => deidentify::year(&text).map(Doc::Str),
                    Some(Generalization::BirthYear) => {
                        keys.today.and_then(|today| deidentify::birth_year(&text, today)).map(Doc::Str)
                    }
                    Some(Generalization::Age) => {
                        deidentify::age(&text, number).map(|a| if number { Doc::Num(a) } else { Doc::Str(a) })
                    }
                    None => None,
                },
            };
            let failed = masked.is_none() && t.action != MaskAction::Hash;
            *doc = masked.unwrap_or(Doc::Null);
            Ok(usize::from(failed))
        }
    }
}

pub fn run<'p>(plan: &MaskPlan, keys: &Keys, mut rec: Record) -> Step<'p> {
    let key = keys.hash_key.as_ref();
    let Payload::Doc(doc) = &mut rec.payload else {
        // An HL7 record has no classed output leaves: nothing to mask.
        rec.env.masking.get_or_insert_with(BTreeMap::new);
        return Step::Next(rec, None);
    };
    let mut outcomes = rec.env.masking.take().unwrap_or_default();
    // Subjects are read before any leaf is masked: the subject itself may be masked.
    let shifts: Vec<(&str, Option<i64>)> = shift_subjects(plan)
        .map(|(subject, max_days)| {
            let days =
                key.zip(subject_value(doc, subject)).map(|(k, v)| deidentify::shift_days(k.expose(), &v, max_days));
            (subject, days)
        })
        .collect();
    // Likewise the people `tokenize` links its tokens to (read before anything is masked).
    let token_subjects: Vec<(&str, Option<String>)> =
        token_subjects(plan).map(|field| (field, subject_value(doc, field))).collect();
    for (pointer, leaf) in &rec.env.classes {
        let t = decide(plan, &leaf.pattern, &leaf.classes);
        // A leaf an earlier mask stage decided is masked again only by a stronger action (a
        // sink audience's policy over a stage's `keep`, say): the compiler's matrix shows the
        // stronger decision, and a weaker one would only mangle the masked value.
        if let Some(prev) = outcomes.get(pointer)
            && t.is_none_or(|t| t.action <= prev.action)
        {
            continue;
        }
        if t.is_none() {
            rec.env.warnings.push(Issue::new(
                findings::CLASSED_LEAF_UNRULED,
                leaf.pattern.clone(),
                format!("no masking rule of policy `{}` covers this PHI field; it was set to null", plan.policy),
            ));
        }
        let shift_days = t
            .and_then(|t| t.shift.as_ref())
            .and_then(|s| shifts.iter().find(|(subject, _)| *subject == s.subject))
            .and_then(|(_, days)| *days);
        let subject = t
            .and_then(|t| t.subject.as_deref())
            .and_then(|field| token_subjects.iter().find(|(f, _)| *f == field))
            .and_then(|(_, v)| v.as_deref());
        let nulled = match doc.pointer_mut(pointer).map(|v| apply(v, t, keys, shift_days, subject)) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                // The store's message names the store and the statement, never a value.
                let r = Rejection::single(
                    findings::TOKENIZE_FAILED,
                    Some(&leaf.pattern),
                    format!("the token vault could not tokenize this field: {}", e.message),
                );
                return Step::Dlq(rec, r);
            }
        };
        if nulled > 0
            && let Some(t) = t
        {
            let why = match t.action {
                MaskAction::ShiftDate if shift_days.is_none() => "its shift subject has no value",
                MaskAction::ShiftDate => "it is not a date",
                _ => "it is not of the kind this action masks",
            };
            rec.env.warnings.push(Issue::new(
                findings::MASK_VALUE_NULLED,
                leaf.pattern.clone(),
                format!(
                    "{} value(s) could not be masked with `{}` ({why}) and were set to null",
                    nulled,
                    t.action.as_str()
                ),
            ));
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
    fn rule_matching() {
        assert_eq!(rule_match("patient.identifiers[*].value", "patient.identifiers[*].value"), Some(25));
        assert!(rule_match("patient.identifiers", "patient.identifiers[*].value").is_some());
        assert!(rule_match("patient.id", "patient.identifiers[*].value").is_none());
        assert!(rule_match("patient.name", "patient.name").is_some());
    }

    #[test]
    fn the_run_date_is_the_clock_day_in_utc() {
        let clock = Clock::new(Some("2024-01-15T23:30:00-05:00")).unwrap();
        assert_eq!(day_of(&clock.now()), Some(crate::time::days_from_civil(2024, 1, 16)));
        assert_eq!(day_of("2024-01-15T10:30:00.123Z"), Some(crate::time::days_from_civil(2024, 1, 15)));
        assert_eq!(day_of("garbage"), None);
    }
}
