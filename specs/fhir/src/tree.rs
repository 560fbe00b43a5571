//! The one tree FHIR resources are read into, whether they came as JSON or XML: the shape of
//! FHIR JSON (objects, arrays, strings, numbers, booleans, null), with numbers kept as their
//! exact source text so `72.50` stays `72.50`, and object members kept in the order they came.
//!
//! Invariants:
//! - Lossless for FHIR JSON: [`Node::to_json`] of a tree read by [`crate::json::parse`] is the
//!   same JSON value (member order, number spelling, strings, empty arrays and objects, nulls);
//!   only insignificant whitespace and string escape spellings are normalized.
//! - Trees are bounded in depth by the readers ([`crate::json::Limits`]), so the recursive
//!   functions here (writing, comparing, dropping) cannot overflow the stack.
//! - Nothing here panics.
//! - A member name is a [`Name`]: the readers borrow the names the R4 schema knows (nearly
//!   every name of nearly every document) from the schema's own strings instead of
//!   allocating each one; other names are owned. Either way it is the same text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// An object member's name: `Cow::Borrowed` for a name of the R4 schema (shared, not
/// allocated per member), `Cow::Owned` for any other. Compares, hashes and prints as its text.
pub type Name = Cow<'static, str>;

/// A FHIR JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Null,
    Bool(bool),
    /// The number exactly as written (`72.50`, `1e3`, `-0`).
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in source order. Duplicate names are refused by the readers.
    Object(Vec<(Name, Node)>),
}

impl Node {
    /// The member `name` of an object.
    pub fn get(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(Name, Node)]> {
        match self {
            Node::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node]> {
        match self {
            Node::Array(a) => Some(a),
            _ => None,
        }
    }

    /// `resourceType` of a resource object.
    pub fn resource_type(&self) -> Option<&str> {
        self.get("resourceType").and_then(Node::as_str)
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends compact JSON text to `out`.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Number(n) => out.push_str(n),
            Node::String(s) => write_string(s, out),
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Node::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The same value with every object's members sorted by name: two trees that differ only
    /// in member order have the same canonical form (used to compare XML-derived JSON with
    /// the official JSON).
    pub fn canonical(&self) -> Node {
        match self {
            Node::Array(items) => Node::Array(items.iter().map(Node::canonical).collect()),
            Node::Object(members) => {
                let mut m: Vec<(Name, Node)> = members.iter().map(|(k, v)| (k.clone(), v.canonical())).collect();
                m.sort_by(|a, b| a.0.cmp(&b.0));
                Node::Object(m)
            }
            other => other.clone(),
        }
    }

    /// Converts to a `serde_json::Value` (numbers through their text; one that serde_json
    /// cannot hold as a number becomes a string).
    pub fn to_serde(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => serde_json::from_str(n).unwrap_or_else(|_| Value::String(n.clone())),
            Node::String(s) => Value::String(s.clone()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_serde).collect()),
            Node::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.to_string(), v.to_serde())).collect()),
        }
    }
}

/// Writes `s` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\t`... or
/// `\u00XX`; everything else (non-ASCII included) as is.
pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_what_json_requires() {
        let mut out = String::new();
        write_string("a\"b\\c\nd\u{1}é", &mut out);
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn canonical_sorts_members_only() {
        let t = Node::Object(vec![
            ("b".into(), Node::Array(vec![Node::Number("2".into()), Node::Number("1".into())])),
            ("a".into(), Node::Null),
        ]);
        assert_eq!(t.canonical().to_json(), r#"{"a":null,"b":[2,1]}"#);
    }
}
