//! Writing expectations back into test files (`sluice test --update`): JSON values as
//! block-style YAML, and the in-place rewrite of a case's `expect`.
//!
//! Invariants:
//! - What is written reads back as the same JSON (strings that YAML would read as something
//!   else, such as `true`, `null`, `012` or `2024-01-01`, are quoted; keys too).
//! - Only the `expect` of the rewritten cases changes: the text before and after it, comment
//!   lines between cases included, is kept byte for byte. A case without `expect` gets one
//!   after its last key.

use serde_json::Value;
use sluice_compiler::spec::test::{Case, TestFile};
use sluice_runtime::testing::Outcome;

/// The file's text with the `expect` of each given case replaced by its outcome.
pub fn rewrite(text: &str, file: &TestFile, updates: &[(&Case, Outcome)]) -> String {
    let mut edits: Vec<(usize, usize, String)> = updates
        .iter()
        .map(|(case, outcome)| {
            let indent = column(text, case.key_spans.first().map_or(case.span.start, |s| s.start));
            let body = expect_yaml(outcome, indent);
            match case.expect_at {
                Some((key, value)) => {
                    let end = region_end(text, file, case, value.start);
                    if case.key_spans.first().is_some_and(|k| k.start == key.start) {
                        // `- expect:` opens the case: keep the dash, replace from the key on.
                        (key.start, end, body[indent..].to_string())
                    } else {
                        (line_start(text, key.start), end, body)
                    }
                }
                None => {
                    let after = case.key_spans.last().map_or(case.span.end, |s| s.start);
                    let at = region_end(text, file, case, after);
                    (at, at, body)
                }
            }
        })
        .collect();
    // A last line without its newline: the new text starts on a line of its own.
    for (start, _, body) in &mut edits {
        if *start == text.len() && !text.is_empty() && !text.ends_with('\n') {
            body.insert(0, '\n');
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_string();
    for (start, end, body) in edits {
        out.replace_range(start..end, &body);
    }
    out
}

/// Where the text belonging to a case's key that starts before `from` ends: the start of the
/// line of whatever comes next (a later key of the case, the next case, a top-level key, the
/// end of the file), less the blank and comment lines just before it.
fn region_end(text: &str, file: &TestFile, case: &Case, from: usize) -> usize {
    let next = case
        .key_spans
        .iter()
        .map(|s| s.start)
        .chain(file.cases.iter().map(|c| c.span.start))
        .chain(file.top_keys.iter().copied())
        .filter(|&s| s > from)
        .map(|s| line_start(text, s))
        .filter(|&s| s > from)
        .min()
        .unwrap_or(text.len());
    let mut end = next;
    // Keep comment and blank lines that lead into what comes next.
    loop {
        let before = &text[..end];
        let before = before.strip_suffix('\n').unwrap_or(before);
        let prev = before.rfind('\n').map_or(0, |i| i + 1);
        if prev >= end || prev <= from {
            break;
        }
        let line = text[prev..end].trim();
        if line.is_empty() || line.starts_with('#') {
            end = prev;
        } else {
            break;
        }
    }
    end
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1)
}

fn column(text: &str, at: usize) -> usize {
    text[line_start(text, at)..at].chars().count()
}

/// `expect:` for an outcome, at `indent` spaces, ending with a newline.
pub fn expect_yaml(outcome: &Outcome, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut body = serde_json::Map::new();
    let outputs: serde_json::Map<String, Value> = outcome
        .outputs
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(s, r)| (s.clone(), Value::Array(r.clone())))
        .collect();
    if !outputs.is_empty() {
        body.insert("outputs".into(), Value::Object(outputs));
    }
    if !outcome.dlq.is_empty() {
        body.insert("dlq".into(), Value::Array(outcome.dlq.clone()));
    }
    if outcome.filtered > 0 {
        body.insert("filtered".into(), outcome.filtered.into());
    }
    if body.is_empty() {
        return format!("{pad}expect: {{}}\n");
    }
    let mut out = format!("{pad}expect:\n");
    map_lines(&body, indent + 2, &mut out);
    out
}

fn map_lines(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (k, v) in m {
        let key = key_text(k);
        match v {
            Value::Object(o) if !o.is_empty() => {
                *out += &format!("{pad}{key}:\n");
                map_lines(o, indent + 2, out);
            }
            Value::Array(a) if !a.is_empty() => {
                *out += &format!("{pad}{key}:\n");
                seq_lines(a, indent + 2, out);
            }
            _ => *out += &format!("{pad}{key}: {}\n", scalar(v)),
        }
    }
}

fn seq_lines(a: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for v in a {
        let mut item = String::new();
        match v {
            Value::Object(o) if !o.is_empty() => map_lines(o, indent + 2, &mut item),
            Value::Array(x) if !x.is_empty() => seq_lines(x, indent + 2, &mut item),
            _ => {
                *out += &format!("{pad}- {}\n", scalar(v));
                continue;
            }
        }
        // The item's first line goes on the dash: `- key: value`.
        *out += &pad;
        *out += "- ";
        *out += &item[indent + 2..];
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => string_text(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn key_text(k: &str) -> String {
    let plain = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !reserved(k);
    if plain { k.to_string() } else { Value::String(k.to_string()).to_string() }
}

/// A string plain when YAML reads it back as the same string, JSON-quoted otherwise.
fn string_text(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_alphabetic())
        && !s.ends_with(' ')
        && s.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | '/' | '(' | ')' | '^' | '+' | '@' | ',')
        })
        && !s.contains(" -")
        && !reserved(s);
    if plain { s.to_string() } else { Value::String(s.to_string()).to_string() }
}

/// Words some YAML reader would take for a boolean or null.
fn reserved(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~" | "nan" | "inf"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_compiler::diagnostics::Diagnostics;
    use sluice_compiler::source::{FileId, SourceFile};
    use std::path::Path;

    #[test]
    fn strings_that_would_change_type_are_quoted() {
        assert_eq!(string_text("hl7"), "hl7");
        assert_eq!(string_text("ADT^A01"), "ADT^A01");
        assert_eq!(string_text("true"), "\"true\"");
        assert_eq!(string_text("2024-01-01"), "\"2024-01-01\"");
        assert_eq!(string_text("00123"), "\"00123\"");
        assert_eq!(string_text("a: b"), "\"a: b\"");
        assert_eq!(string_text("x #y"), "\"x #y\"");
        assert_eq!(string_text(""), "\"\"");
    }

    /// JSON values with integers in YAML's range, and strings of any characters.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[a-zA-Z0-9 ./:#'\"-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What `--update` writes reads back (through the compiler's YAML reader) as the same
        /// records, whatever the strings hold.
        #[test]
        fn written_records_read_back_the_same(records in prop::collection::vec(json(), 1..3)) {
            let o = Outcome { outputs: vec![("sink".into(), records.clone())], dlq: records.clone(), filtered: 0 };
            let text = format!("root:\n{}", expect_yaml(&o, 2));
            let file = SourceFile::new(Path::new("t.yaml"), text.clone());
            let mut diags = Diagnostics::default();
            let node = sluice_compiler::yaml::parse(FileId(0), &file, &mut diags);
            prop_assert!(node.is_some(), "does not parse: {:?}\n{}", diags.items().first().map(|d| &d.message), text);
            let json = sluice_compiler::yaml::to_json(&node.unwrap());
            prop_assert_eq!(&json["root"]["expect"]["outputs"]["sink"], &Value::Array(records.clone()), "{}", text);
            prop_assert_eq!(&json["root"]["expect"]["dlq"], &Value::Array(records), "{}", text);
        }
    }

    #[test]
    fn nested_values_are_block_yaml() {
        let o = Outcome {
            outputs: vec![("out".into(), vec![serde_json::json!({"a": {"b": [1, "x"]}, "c": [], "d": [{"e": null}]})])],
            dlq: vec![],
            filtered: 2,
        };
        assert_eq!(
            expect_yaml(&o, 4),
            "    expect:\n      outputs:\n        out:\n          - a:\n              b:\n                - 1\n                - x\n            c: []\n            d:\n              - e: null\n      filtered: 2\n"
        );
    }
}
