//! The validate stage: message-type gate, then each rule whose `when` holds, over the raw text
//! of its values.
//!
//! Invariants:
//! - Strict mode: any failure sends the record to the DLQ with every failure listed (rule id,
//!   path, code); lenient mode: failures become entries in the record's `errors` and it goes on.
//! - Rules read HL7 values as raw text (no type conversion), so `format` rules see what was
//!   sent; a rule on a plain HL7 path reads them straight from the message, without the
//!   evaluator (a property test compares the two). `when` conditions are evaluated like mapping
//!   expressions (converted values).
//! - Regular expressions are compiled once per plan; a pattern must match the whole value.
//! - Findings never hold values.
//! - With `hl7_checks`, the standard's own checks (`sluice_hl7v2::validate`) run first: their
//!   errors count as rule failures (strict: DLQ; lenient: `errors`), their warnings become
//!   record warnings, and informational findings are dropped.

use std::borrow::Cow;

use regex::Regex;
use sluice_compiler::expr::ast::Expr;
use sluice_compiler::plan::{Hl7Checks, Mode, RuleCheck, RulePlan, ValidatePlan};
use sluice_hl7v2::schema::Version;
use sluice_hl7v2::validate::{self as hl7_validate, Severity};

use super::{Step, message_type_accepted};
use crate::dlq::{Finding, Rejection};
use crate::eval::{Prepared, Scope, Val};
use crate::findings;
use crate::hl7::Reader;
use crate::record::{Issue, Payload, Record};
use crate::time;

/// Compiles the rule patterns (anchored); the error names the rule.
pub fn compile_patterns(plan: &ValidatePlan) -> Result<Vec<Option<Regex>>, String> {
    plan.rules
        .iter()
        .map(|r| match &r.check {
            RuleCheck::Pattern { pattern, .. } => Regex::new(&format!("^(?:{pattern})$"))
                .map(Some)
                .map_err(|_| format!("rule `{}`: invalid regular expression", r.id)),
            _ => Ok(None),
        })
        .collect()
}

/// The non-empty texts of a value, lists flattened, in order.
fn texts(v: Val) -> Vec<String> {
    let mut out = Vec::new();
    push_texts(v, &mut out);
    out
}

fn push_texts(v: Val, out: &mut Vec<String>) {
    match v {
        Val::List(items) => items.into_iter().for_each(|i| push_texts(i, out)),
        // Strings move (`Val::text` would copy them).
        Val::Str(s) | Val::Dec(s) => {
            if !s.is_empty() {
                out.push(s);
            }
        }
        other => out.extend(other.text().filter(|t| !t.is_empty())),
    }
}

/// The values a rule checks: an HL7 path's values read straight from the message (what
/// evaluating it raw gives, without a `Val` per value), any other expression's texts.
fn rule_values<'m>(scope: &Scope<'m>, expr: &Expr, ignored: &mut Vec<Issue>) -> Vec<Cow<'m, str>> {
    if let (Expr::Hl7 { path, multi, .. }, Some(msg)) = (expr, scope.msg) {
        return match scope.prepared.path(path) {
            Some(p) if *multi => msg.select(p),
            Some(p) => msg.first(p).into_iter().collect(),
            None => Vec::new(),
        };
    }
    texts(scope.eval(expr, ignored)).into_iter().map(Cow::Owned).collect()
}

fn check(rule: &RulePlan, regex: Option<&Regex>, values: &[Cow<'_, str>]) -> Option<(&'static str, String)> {
    let fail = |code, text: &str| Some((code, rule.message.clone().unwrap_or_else(|| text.to_string())));
    match &rule.check {
        RuleCheck::Required { .. } => {
            if values.is_empty() {
                fail(findings::REQUIRED_MISSING, "a value is required")
            } else {
                None
            }
        }
        RuleCheck::ValueSet { values: allowed, .. } => {
            if values.iter().all(|v| allowed.iter().any(|a| a == v)) {
                None
            } else {
                fail(findings::NOT_IN_VALUE_SET, "a value is not in the value set")
            }
        }
        RuleCheck::Format { format, .. } => {
            let ok = |v: &Cow<'_, str>| match format.as_str() {
                "date" => time::is_hl7_date(v),
                "datetime" => time::is_hl7_datetime(v),
                "integer" => crate::eval::parse_int(v).is_some(),
                "decimal" => crate::record::json_decimal(v).is_some(),
                _ => true,
            };
            if values.iter().all(ok) {
                None
            } else {
                fail(findings::BAD_FORMAT, &format!("a value is not a valid {format}"))
            }
        }
        RuleCheck::Pattern { .. } => match regex {
            Some(re) if !values.iter().all(|v| re.is_match(v)) => {
                fail(findings::PATTERN_MISMATCH, "a value does not match the pattern")
            }
            _ => None,
        },
        RuleCheck::MaxLength { max, .. } => {
            if values.iter().all(|v| v.chars().count() <= *max) {
                None
            } else {
                fail(findings::TOO_LONG, &format!("a value is longer than {max} characters"))
            }
        }
    }
}

/// The HL7 v2 standard's checks: errors join `failures`, warnings go on the record.
fn standard_checks(
    checks: &Hl7Checks,
    msg: &sluice_hl7v2::codec::Message<'_>,
    failures: &mut Vec<Finding>,
    warnings: &mut Vec<Issue>,
) {
    let options = hl7_validate::Options {
        default_version: Version::parse(&checks.version),
        structure: checks.structure,
        lengths: checks.lengths,
        tables: checks.tables,
        // Unknown segments were already handled by the source profile's policy.
        unexpected_segments: Severity::Warning,
        ..hl7_validate::Options::default()
    };
    for f in hl7_validate::validate(msg, &options) {
        match f.severity {
            Severity::Error => failures.push(Finding {
                code: f.code,
                rule: Some("hl7_checks".into()),
                path: Some(f.path),
                message: f.message,
            }),
            Severity::Warning => warnings.push(Issue::new(f.code, f.path, f.message)),
            Severity::Info => {}
        }
    }
}

fn value_expr(c: &RuleCheck) -> &Expr {
    match c {
        RuleCheck::Required { value }
        | RuleCheck::ValueSet { value, .. }
        | RuleCheck::Format { value, .. }
        | RuleCheck::Pattern { value, .. }
        | RuleCheck::MaxLength { value, .. } => value,
    }
}

pub fn run<'p>(
    component: &str,
    plan: &ValidatePlan,
    regexes: &[Option<Regex>],
    prepared: &Prepared<'_>,
    mut rec: Record,
) -> Step<'p> {
    if !message_type_accepted(&plan.message_types, rec.env.message_type.as_deref()) {
        let r = Rejection::single(
            findings::MESSAGE_TYPE_NOT_ACCEPTED,
            Some("MSH-9"),
            format!("message type (MSH-9) is not accepted by validate stage `{component}`"),
        );
        return Step::Dlq(rec, r);
    }
    let mut failures = Vec::new();
    {
        let (reader, doc) = match &rec.payload {
            Payload::Hl7(m) => (Some(Reader::new(m)), None),
            Payload::Doc(d) => (None, Some(d)),
        };
        let msg = reader.as_ref();
        if let (Some(checks), Some(m)) = (&plan.hl7_checks, msg) {
            standard_checks(checks, m.tree(), &mut failures, &mut rec.env.warnings);
        }
        for (i, rule) in plan.rules.iter().enumerate() {
            let mut scope = Scope::root(prepared, msg, doc, None, &rec.env.timezone, &rule.path);
            let mut ignored = Vec::new();
            if let Some(when) = &rule.when
                && !scope.eval(when, &mut ignored).truthy()
            {
                continue;
            }
            scope.raw = true;
            let values = rule_values(&scope, value_expr(&rule.check), &mut ignored);
            if let Some((code, message)) = check(rule, regexes.get(i).and_then(Option::as_ref), &values) {
                failures.push(Finding { code, rule: Some(rule.id.clone()), path: Some(rule.path.clone()), message });
            }
        }
    }
    if failures.is_empty() {
        return Step::Next(rec, None);
    }
    match plan.mode {
        Mode::Strict => {
            let list: Vec<String> = failures
                .iter()
                .map(|f| {
                    format!("{} ({}, {})", f.rule.as_deref().unwrap_or(""), f.path.as_deref().unwrap_or(""), f.code)
                })
                .collect();
            let reason =
                format!("{} rule(s) failed in validate stage `{component}`: {}", failures.len(), list.join("; "));
            Step::Dlq(rec, Rejection { code: findings::VALIDATION_FAILED, reason, findings: failures, attempts: 1 })
        }
        Mode::Lenient => {
            for f in failures {
                let message = format!("rule `{}`: {}", f.rule.unwrap_or_default(), f.message);
                rec.env.errors.push(Issue::new(f.code, f.path.unwrap_or_default(), message));
            }
            Step::Next(rec, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::{Hl7Message, Reader};
    use proptest::prelude::*;
    use sluice_spec_core::ValueType;

    const PATHS: &[(&str, bool)] = &[
        ("MSH-10", false),
        ("PID-3", true),
        ("PID-3[*]", true),
        ("PID-3[*].4", true),
        ("PID-5.1", false),
        ("PID-8", false),
        ("PID[*]-5[*]", true),
        ("ZZ1-1", false),
    ];

    proptest! {
        /// Reading a rule's HL7 values straight from the message gives what evaluating the
        /// path raw and flattening its texts gives.
        #[test]
        fn rule_values_are_the_raw_texts(fields in proptest::collection::vec("[A-C0-9|^~&\\\\FSTRE]{0,10}", 1..5)) {
            let text = format!(
                "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C{}|P|2.5.1\rPID|{}\rPID|{}",
                fields[0],
                fields.join("|"),
                fields.join("~"),
            );
            if sluice_hl7v2::codec::parse_message(&text).is_err() {
                return Ok(());
            }
            let exprs: Vec<Expr> = PATHS
                .iter()
                .map(|(p, multi)| Expr::Hl7 { path: (*p).into(), value_type: ValueType::String, multi: *multi })
                .collect();
            let mut prepared = Prepared::default();
            for e in &exprs {
                prepared.prepare(e).unwrap();
            }
            let held = Hl7Message::new(text.clone(), Default::default());
            let reader = Reader::new(&held);
            let mut scope = Scope::root(&prepared, Some(&reader), None, None, "Z", "rule");
            scope.raw = true;
            for e in &exprs {
                let mut ignored = Vec::new();
                let fast: Vec<String> = rule_values(&scope, e, &mut ignored).into_iter().map(Cow::into_owned).collect();
                prop_assert_eq!(fast, texts(scope.eval(e, &mut ignored)), "{:?}", e);
            }
        }
    }
}
