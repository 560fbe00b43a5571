//! YAML to a tree that remembers where every node came from.
//!
//! Built on saphyr's marked loader. saphyr reports positions as (line, character column);
//! this module converts them to byte offsets once, so the rest of the compiler works in bytes.
//!
//! Invariants: any input text gives a tree or a diagnostic (never a panic); mapping keys keep
//! their order and duplicates are reported, not silently merged.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::codes;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::source::{FileId, SourceFile, Span};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string scalar; `quoted` is true when it was written in quotes.
    Str {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The scalar as text, whatever its YAML type (`2.5` written unquoted is still "2.5").
    pub fn scalar_text(&self, file: &SourceFile) -> Option<String> {
        match &self.value {
            Value::Str { text, .. } => Some(text.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                file.text.get(self.span.start..self.span.end).map(|s| s.trim().to_string())
            }
            _ => None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str { .. } => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document. Returns `None` (with a diagnostic) when the text is not YAML.
pub fn parse(file_id: FileId, file: &SourceFile, diags: &mut Diagnostics) -> Option<Node> {
    let docs = match MarkedYaml::load_from_str(&file.text) {
        Ok(docs) => docs,
        Err(e) => {
            let m = e.marker();
            let at = file.offset_of(m.line(), m.col());
            if e.info() == "duplicated key in mapping" {
                diags.push(duplicate_key(file_id, file, at));
                return None;
            }
            diags.push(
                Diagnostic::error(codes::YAML_SYNTAX, format!("invalid YAML: {}", e.info()))
                    .label(Span::new(file_id, at, at + 1), "the YAML parser stopped here")
                    .help("check indentation, quotes and the `:` after each key"),
            );
            return None;
        }
    };
    let mut docs = docs.into_iter();
    let Some(first) = docs.next() else {
        diags.push(
            Diagnostic::error(codes::WRONG_TYPE, "the file is empty")
                .label(Span::new(file_id, 0, 0), "expected a mapping with a `kind` key")
                .help("start the file with `kind: pipeline` (or mapping, profile, rules, masking)"),
        );
        return None;
    };
    if let Some(second) = docs.next() {
        let at = file.offset_of(second.span.start.line(), second.span.start.col());
        diags.push(
            Diagnostic::error(codes::YAML_SYNTAX, "a spec file holds exactly one YAML document")
                .label(Span::new(file_id, at, at + 1), "a second document starts here")
                .help("put each spec in its own file"),
        );
    }
    Some(convert(&first, file_id, file))
}

/// SL105 for a key the YAML loader found twice (it refuses duplicates, so the tree never holds
/// them); `at` is the second key. The first occurrence is searched for among the earlier
/// lines of the same block mapping: same indentation, no shallower line in between.
fn duplicate_key(file_id: FileId, file: &SourceFile, at: usize) -> Diagnostic {
    let line_start = file.text[..at].rfind('\n').map_or(0, |i| i + 1);
    let indent = at - line_start;
    let rest = &file.text[at..];
    let key = rest[..rest.find([':', '\n']).unwrap_or(rest.len())].trim_end();
    let mut first = None;
    let mut pos = line_start;
    while pos > 0 {
        let start = file.text[..pos - 1].rfind('\n').map_or(0, |i| i + 1);
        let line = &file.text[start..pos - 1];
        pos = start;
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let line_indent = line.len() - content.len();
        if line_indent < indent {
            break;
        }
        if line_indent == indent && content.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':')) {
            first = Some(start + line_indent);
            break;
        }
    }
    let mut d = Diagnostic::error(codes::DUPLICATE_KEY, format!("key `{key}` appears twice in one mapping"))
        .label(Span::new(file_id, at, at + key.len().max(1)), "second occurrence");
    if let Some(first) = first {
        d = d.label(Span::new(file_id, first, first + key.len().max(1)), "first occurrence");
    }
    d.help("remove or merge one of them; YAML would silently keep only the last")
}

fn span_of(n: &MarkedYaml, file_id: FileId, file: &SourceFile) -> Span {
    let start = file.offset_of(n.span.start.line(), n.span.start.col());
    let end = file.offset_of(n.span.end.line(), n.span.end.col());
    let mut span = Span::new(file_id, start, end);
    // Block collections end at the start of the next line; trim trailing whitespace so labels
    // point at the content.
    let trimmed = file.text.get(span.start..span.end).map(|s| s.trim_end().len());
    if let Some(len) = trimmed {
        span.end = span.start + len;
    }
    // Flow collections end where their closing bracket starts: include the bracket.
    let bytes = file.text.as_bytes();
    let close = match bytes.get(span.start) {
        Some(b'[') => Some(b']'),
        Some(b'{') => Some(b'}'),
        _ => None,
    };
    if let Some(close) = close {
        let at = span.end + bytes[span.end.min(bytes.len())..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        if bytes.get(at) == Some(&close) {
            span.end = at + 1;
        }
    }
    span
}

fn convert(n: &MarkedYaml, file_id: FileId, file: &SourceFile) -> Node {
    let span = span_of(n, file_id, file);
    let value = match &n.data {
        YamlData::Value(s) => scalar(s, span, file),
        YamlData::Representation(text, _, _) => Value::Str { text: text.to_string(), quoted: true },
        YamlData::Sequence(items) => Value::Seq(items.iter().map(|i| convert(i, file_id, file)).collect()),
        YamlData::Mapping(map) => {
            let mut entries: Vec<(Node, Node)> = Vec::new();
            for (k, v) in map {
                let key = convert(k, file_id, file);
                let value = convert(v, file_id, file);
                entries.push((key, value));
            }
            Value::Map(entries)
        }
        YamlData::Tagged(_, inner) => return convert(inner, file_id, file),
        YamlData::Alias(_) | YamlData::BadValue => Value::Null,
    };
    Node { value, span }
}

fn scalar(s: &Scalar, span: Span, file: &SourceFile) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Int(*i),
        Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
        Scalar::String(text) => {
            let first = file.text.get(span.start..).and_then(|s| s.chars().next());
            Value::Str { text: text.to_string(), quoted: matches!(first, Some('"' | '\'')) }
        }
    }
}

/// The node as JSON (for validating specs against the JSON Schema in tests and tools).
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str { text, .. } => J::String(text.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().map_or_else(|| format!("{:?}", k.value), String::from), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> (Option<Node>, Diagnostics) {
        let file = SourceFile::new(Path::new("t.yaml"), text.into());
        let mut d = Diagnostics::default();
        (parse(FileId(0), &file, &mut d), d)
    }

    #[test]
    fn spans_are_bytes() {
        let (node, d) = load("bé: x\nc: \"q\"\n");
        assert!(d.is_empty());
        let Value::Map(entries) = node.unwrap().value else { panic!() };
        assert_eq!(entries[0].0.span.start, 0);
        assert_eq!(entries[0].1.span.start, 5);
        assert_eq!(entries[1].1.value, Value::Str { text: "q".into(), quoted: true });
    }

    #[test]
    fn flow_collections_include_their_brackets() {
        let text = "k: [[a], {b: c} ]\ne: []\n";
        let (node, d) = load(text);
        assert!(d.is_empty());
        let Value::Map(entries) = node.unwrap().value else { panic!() };
        let outer = &entries[0].1;
        assert_eq!(&text[outer.span.start..outer.span.end], "[[a], {b: c} ]");
        let Value::Seq(items) = &outer.value else { panic!() };
        assert_eq!(&text[items[0].span.start..items[0].span.end], "[a]");
        assert_eq!(&text[items[1].span.start..items[1].span.end], "{b: c}");
        assert_eq!(&text[entries[1].1.span.start..entries[1].1.span.end], "[]");
    }

    #[test]
    fn duplicate_key_is_sl105() {
        let (node, d) = load("a:\n  b: 1\n  # c\n  c: 2\n  b: 3\n");
        assert!(node.is_none());
        let diag = &d.items()[0];
        assert_eq!(diag.code.code, "SL105");
        assert_eq!(diag.message, "key `b` appears twice in one mapping");
    }

    #[test]
    fn syntax_error_is_a_diagnostic() {
        let (node, d) = load("a: [1,\n b: c");
        assert!(node.is_none());
        assert_eq!(d.items()[0].code.code, "SL101");
    }
}
