//! Validation rules (`kind: rules`): required paths, conditions, value sets, formats.

use super::reader::{self, Cx, Spanned};
use super::shape;
use super::{SchemaRef, schema_ref};
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::expr::ast::Expr;
use crate::expr::check::{self, Env, Scope};
use crate::hl7::Hl7Env;
use crate::plan::{Hl7Checks, Mode, RuleCheck, RulePlan};
use crate::yaml::{Node, Value};
use sluice_spec_core::ValueType;

pub struct Rules {
    pub name: String,
    pub input: Option<(SchemaRef, Spanned)>,
    pub mode: Mode,
    pub message_types: Vec<String>,
    pub rules: Vec<RulePlan>,
    pub hl7_checks: Option<Hl7Checks>,
}

/// Checks `ADT^A01` / `ADT^*` forms, reporting SL703.
pub fn message_types(cx: &mut Cx, node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for s in reader::string_list(cx, node, "`message_types`", false) {
        let ok = s.text.split_once('^').is_some_and(|(code, event)| {
            code.len() == 3
                && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && (event == "*"
                    || (event.len() == 3 && event.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())))
        });
        if ok {
            out.push(s.text);
        } else {
            cx.push(
                Diagnostic::error(codes::INVALID_MESSAGE_TYPE, format!("`{}` is not a message type", s.text))
                    .label(s.span, "expected `CODE^EVENT`")
                    .help("write message types like `ADT^A01`, or `ADT^*` for every ADT event"),
            );
        }
    }
    out
}

pub fn read(cx: &mut Cx, node: &Node) -> Option<Rules> {
    let obj = reader::object(cx, node, &shape::RULES, "the rules file")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
    let input = obj.get("input").and_then(|n| schema_ref(cx, n));
    let mode = match obj.get("mode").and_then(|n| reader::one_of(cx, n, shape::MODES, "validation mode")) {
        Some(s) if s.text == "lenient" => Mode::Lenient,
        _ => Mode::Strict,
    };
    let message_types = obj.get("message_types").map(|n| message_types(cx, n)).unwrap_or_default();
    let hl7_checks = obj.get("hl7_checks").and_then(|n| {
        let o = reader::object(cx, n, &shape::HL7_CHECKS, "`hl7_checks`")?;
        let mut flag = |key: &str, default: bool| o.get(key).map_or(Some(default), |v| reader::boolean(cx, v, key));
        let (structure, lengths, tables) = (flag("structure", true)?, flag("lengths", false)?, flag("tables", true)?);
        let version = match &input {
            Some((SchemaRef::Hl7(v), _)) => v.as_str().to_string(),
            _ => "2.5.1".to_string(),
        };
        Some(Hl7Checks { version, structure, lengths, tables })
    });
    let mut rules = Vec::new();
    let hl7 = match &input {
        Some((SchemaRef::Hl7(v), _)) => Some(Hl7Env { schema: sluice_hl7v2::schema::schema(*v), z_segments: &[] }),
        Some((SchemaRef::Output(_), s)) => {
            cx.push(
                Diagnostic::error(codes::UNKNOWN_SCHEMA, format!("rules check HL7 v2 messages, not `{}`", s.text))
                    .label(s.span, "an output schema")
                    .help("write `input: hl7v2/<version>`"),
            );
            None
        }
        None => None,
    };
    match obj.get("rules") {
        Some(Node { value: Value::Seq(items), .. }) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(r) = rule(cx, item, &name, i + 1, hl7) {
                    rules.push(r);
                }
            }
        }
        Some(n) => cx.push(
            Diagnostic::error(codes::WRONG_TYPE, format!("`rules` must be a list, found {}", n.kind_name()))
                .label(n.span, "expected a list of rules"),
        ),
        None => {}
    }
    Some(Rules { name, input, mode, message_types, rules, hl7_checks })
}

fn rule(cx: &mut Cx, node: &Node, rules_name: &str, n: usize, hl7: Option<Hl7Env>) -> Option<RulePlan> {
    let obj = reader::object(cx, node, &shape::RULE, &format!("rule {n}"))?;
    let id = obj.get("id").and_then(|v| reader::string(cx, v, "`id`")).map_or(format!("{rules_name}.{n}"), |s| s.text);
    let checks: Vec<&str> =
        ["require", "in", "format", "pattern", "max_length"].into_iter().filter(|k| obj.get(k).is_some()).collect();
    if checks.len() != 1 {
        let msg = if checks.is_empty() {
            format!("rule `{id}` has no check")
        } else {
            format!("rule `{id}` has {} checks: {}", checks.len(), checks.join(", "))
        };
        cx.push(
            Diagnostic::error(codes::INVALID_RULE, msg)
                .label(obj.anchor(), "this rule")
                .help("give each rule exactly one of `require`, `in`, `format`, `pattern`, `max_length`; split it into several rules"),
        );
        return None;
    }
    let check_name = checks[0];
    let path_node = if check_name == "require" { obj.get("require") } else { obj.get("path") };
    let Some(path_node) = path_node else {
        cx.push(
            Diagnostic::error(codes::INVALID_RULE, format!("rule `{id}` checks `{check_name}` but names no `path`"))
                .label(obj.key_span(check_name).unwrap_or(obj.anchor()), "which path?")
                .help(format!("add `path:` with the HL7 path whose values `{check_name}` checks, e.g. `path: PID-8`")),
        );
        return None;
    };
    let path = reader::string(cx, path_node, "the rule's path")?;
    let hl7 = hl7?;
    let env = Env { scope: Scope::Hl7(hl7), vars: vec![], tables: vec![] };
    let value = match hl7.resolve(&path.text, path.span) {
        Ok(r) => Expr::Hl7 { path: r.path.to_string(), value_type: ValueType::String, multi: true },
        Err(d) => {
            cx.push(d);
            return None;
        }
    };
    let when = match obj.get("when") {
        Some(w) => {
            let t = check::check_node(cx.sources, cx.diags, w, &env)?;
            if !check::check_fits(cx.diags, &t, &ValueType::Boolean, w.span, "a rule's `when`") {
                return None;
            }
            Some(t.expr)
        }
        None => None,
    };
    let check = match check_name {
        "require" => RuleCheck::Required { value },
        "in" => {
            let values = reader::string_list(cx, obj.get("in")?, "`in`", false).into_iter().map(|s| s.text).collect();
            RuleCheck::ValueSet { value, values }
        }
        "format" => {
            let f = reader::one_of(cx, obj.get("format")?, &["date", "datetime", "integer", "decimal"], "format")?;
            RuleCheck::Format { value, format: f.text }
        }
        "pattern" => {
            let p = reader::string(cx, obj.get("pattern")?, "`pattern`")?;
            if let Err(e) = regex_syntax::Parser::new().parse(&p.text) {
                cx.push(
                    Diagnostic::error(codes::INVALID_PATTERN, "the pattern is not a valid regular expression")
                        .label(p.span, first_line(&e.to_string()))
                        .help("patterns use Rust regex syntax; look-around and backreferences are not supported"),
                );
                return None;
            }
            RuleCheck::Pattern { value, pattern: p.text }
        }
        _ => {
            let max = reader::integer(cx, obj.get("max_length")?, "`max_length`")? as usize;
            RuleCheck::MaxLength { value, max }
        }
    };
    let message = obj.get("message").and_then(|m| reader::string(cx, m, "`message`")).map(|s| s.text);
    Some(RulePlan { id, path: path.text, when, check, message })
}

fn first_line(s: &str) -> String {
    let line = s.lines().rev().find(|l| l.trim_start().starts_with("error:")).unwrap_or("invalid pattern").trim();
    line.strip_prefix("error:").unwrap_or(line).trim().to_string()
}
