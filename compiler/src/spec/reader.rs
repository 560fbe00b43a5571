//! Reading YAML nodes into spec values, reporting every problem with its span.
//!
//! Shapes come from [`super::shape`]; this module checks keys against them (unknown keys with
//! did-you-mean, duplicates, missing required keys) and reads typed scalars.

use crate::codes;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::source::{FileId, SourceMap, Span};
use crate::yaml::{Node, Value};

use super::shape::Shape;

/// What a reader needs: the file being read and where diagnostics go.
pub struct Cx<'a> {
    pub sources: &'a SourceMap,
    pub file: FileId,
    pub diags: &'a mut Diagnostics,
}

impl Cx<'_> {
    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

/// A spanned string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned {
    pub text: String,
    pub span: Span,
}

/// A YAML mapping whose keys were checked against a shape.
pub struct Obj<'n> {
    pub node: &'n Node,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Obj<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _, _)| *k == key).map(|(_, _, v)| *v)
    }

    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries.iter().find(|(k, _, _)| *k == key).map(|(_, k, _)| k.span)
    }

    /// Span for "missing key" labels: the first key of the mapping, else the mapping itself.
    pub fn anchor(&self) -> Span {
        self.entries.first().map_or(self.node.span, |(_, k, _)| k.span)
    }
}

/// Entries of a YAML mapping with string keys; reports non-string and duplicate keys.
pub fn entries<'n>(cx: &mut Cx, node: &'n Node, what: &str) -> Option<Vec<(&'n str, &'n Node, &'n Node)>> {
    let Value::Map(map) = &node.value else {
        cx.push(
            Diagnostic::error(codes::WRONG_TYPE, format!("{what} must be a mapping, found {}", node.kind_name()))
                .label(node.span, "expected `key: value` entries here")
                .help("write each entry as `key: value` on its own line, indented under its parent key"),
        );
        return None;
    };
    let mut out: Vec<(&str, &Node, &Node)> = Vec::new();
    for (k, v) in map {
        let Some(name) = k.as_str() else {
            cx.push(
                Diagnostic::error(
                    codes::WRONG_TYPE,
                    format!("keys in {what} must be strings, found {}", k.kind_name()),
                )
                .label(k.span, "this key"),
            );
            continue;
        };
        if let Some((_, first, _)) = out.iter().find(|(n, _, _)| *n == name) {
            cx.push(
                Diagnostic::error(codes::DUPLICATE_KEY, format!("key `{name}` appears twice in {what}"))
                    .label(k.span, "second occurrence")
                    .label(first.span, "first occurrence")
                    .help("remove one of them; YAML would silently keep only the last"),
            );
            continue;
        }
        out.push((name, k, v));
    }
    Some(out)
}

/// Reads a mapping of the given shape: unknown keys (with did-you-mean) and missing required
/// keys are reported; the object is returned even when some keys are wrong.
pub fn object<'n>(cx: &mut Cx, node: &'n Node, shape: &Shape, what: &str) -> Option<Obj<'n>> {
    let entries = entries(cx, node, what)?;
    for (name, key, _) in &entries {
        if shape.key(name).is_none() {
            let d = Diagnostic::error(codes::UNKNOWN_KEY, format!("unknown key `{name}` in {what}"))
                .label(key.span, format!("not a key of {what}"));
            let d = match crate::diagnostics::did_you_mean(name, shape.key_names()) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help(format!(
                    "known keys: {}",
                    shape.key_names().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                )),
            };
            cx.push(d);
        }
    }
    let obj = Obj { node, entries };
    for key in shape.keys.iter().filter(|k| k.required) {
        if obj.get(key.name).is_none() {
            cx.push(
                Diagnostic::error(codes::MISSING_KEY, format!("{what} is missing the required key `{}`", key.name))
                    .label(obj.anchor(), format!("add `{}` here", key.name))
                    .help(format!("`{}`: {}", key.name, key.doc)),
            );
        }
    }
    Some(obj)
}

/// A string (numbers and booleans written unquoted are read as their text, so `version: 2.5`
/// works).
pub fn string(cx: &mut Cx, node: &Node, what: &str) -> Option<Spanned> {
    let file = cx.sources.get(cx.file);
    match node.scalar_text(file) {
        Some(text) => Some(Spanned { text, span: node.span }),
        None => {
            cx.push(
                Diagnostic::error(codes::WRONG_TYPE, format!("{what} must be a string, found {}", node.kind_name()))
                    .label(node.span, "expected a string")
                    .help("write a single value here; quote it if it contains `:` or starts with a special character"),
            );
            None
        }
    }
}

pub fn one_of(cx: &mut Cx, node: &Node, allowed: &[&str], what: &str) -> Option<Spanned> {
    let s = string(cx, node, what)?;
    if allowed.contains(&s.text.as_str()) {
        return Some(s);
    }
    let list = allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
    let d = Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a valid {what}", s.text))
        .label(s.span, format!("expected one of {list}"));
    cx.push(match crate::diagnostics::did_you_mean(&s.text, allowed.iter().copied()) {
        Some(best) => d.help(format!("did you mean `{best}`?")),
        None => d.help(format!("use one of {list}")),
    });
    None
}

/// A list of strings; a single string is accepted as a list of one when `single_ok`.
pub fn string_list(cx: &mut Cx, node: &Node, what: &str, single_ok: bool) -> Vec<Spanned> {
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(|i| string(cx, i, &format!("each entry of {what}"))).collect(),
        Value::Str { .. } if single_ok => string(cx, node, what).into_iter().collect(),
        _ => {
            cx.push(
                Diagnostic::error(codes::WRONG_TYPE, format!("{what} must be a list, found {}", node.kind_name()))
                    .label(node.span, "expected a list such as `[a, b]`")
                    .help("write `[a, b]`, or one `- item` per line"),
            );
            Vec::new()
        }
    }
}

pub fn integer(cx: &mut Cx, node: &Node, what: &str) -> Option<u64> {
    match node.value {
        Value::Int(i) if i >= 0 => Some(i as u64),
        _ => {
            cx.push(
                Diagnostic::error(
                    codes::WRONG_TYPE,
                    format!("{what} must be a non-negative integer, found {}", node.kind_name()),
                )
                .label(node.span, "expected a whole number")
                .help("write a number without quotes or units, e.g. `4`"),
            );
            None
        }
    }
}

pub fn boolean(cx: &mut Cx, node: &Node, what: &str) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            cx.push(
                Diagnostic::error(
                    codes::WRONG_TYPE,
                    format!("`{what}` must be true or false, found {}", node.kind_name()),
                )
                .label(node.span, "expected `true` or `false`")
                .help("write `true` or `false` without quotes"),
            );
            None
        }
    }
}

/// `200ms`, `5s`, `2m`, `1h` -> milliseconds.
pub fn duration(cx: &mut Cx, node: &Node, what: &str) -> Option<u64> {
    let s = string(cx, node, what)?;
    let text = s.text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let factor = match unit.trim() {
        "ms" => Some(1),
        "s" => Some(1000),
        "m" | "min" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    };
    match (num.parse::<u64>(), factor) {
        (Ok(n), Some(f)) => Some(n.saturating_mul(f)),
        _ => {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{text}` is not a valid duration for {what}"))
                    .label(s.span, "expected a number and a unit")
                    .help("write durations like `200ms`, `5s`, `2m` or `1h`"),
            );
            None
        }
    }
}

/// `50/min`, `10/s`, `500/h` -> (permits, seconds).
pub fn rate(cx: &mut Cx, node: &Node, what: &str) -> Option<(u64, u64)> {
    let s = string(cx, node, what)?;
    let parsed = s.text.split_once('/').and_then(|(n, unit)| {
        let n = n.trim().parse::<u64>().ok().filter(|n| *n > 0)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "day" => 86_400,
            _ => return None,
        };
        Some((n, per))
    });
    if parsed.is_none() {
        cx.push(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a valid rate for {what}", s.text))
                .label(s.span, "expected permits per unit")
                .help("write rates like `10/s`, `50/min`, `500/h` or `10000/day`"),
        );
    }
    parsed
}

/// A secret reference, `${VARIABLE}` (environment), `${file:path}` (a key file) or
/// `${aws-sm:NAME}` / `${aws-sm:NAME#key}` (AWS Secrets Manager); anything else is refused so
/// secrets never sit in git.
pub fn secret(cx: &mut Cx, node: &Node, what: &str) -> Option<Spanned> {
    let s = string(cx, node, what)?;
    let inner = s.text.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
    let ok = inner.is_some_and(|v| {
        if let Some(path) = v.strip_prefix("file:") {
            return !path.trim().is_empty();
        }
        if let Some(name) = v.strip_prefix("aws-sm:") {
            let (name, key) = name.rsplit_once('#').map_or((name, None), |(n, k)| (n, Some(k)));
            return !name.trim().is_empty() && key.is_none_or(|k| !k.trim().is_empty());
        }
        !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if ok {
        return Some(s);
    }
    cx.push(
        Diagnostic::error(codes::INLINE_SECRET, format!("{what} must reference a secret, not contain one"))
            .label(s.span, "a secret value written into the spec")
            .help("write `${VARIABLE}` (set in the environment where Sluice runs), `${file:/path/to/key}` or `${aws-sm:secret-name}`"),
    );
    None
}
