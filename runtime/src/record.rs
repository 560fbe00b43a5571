//! The record: one unit flowing through the DAG, a payload plus its envelope.
//!
//! Invariants:
//! - The envelope holds provenance (source, file, byte offset, message index, run sequence
//!   number, control id) and findings (`errors`, `warnings`: code, path, fixed message), never a
//!   data value. Only the payload and `raw` hold data.
//! - `raw` is the message's bytes as read, kept for the DLQ only.
//! - `classes` maps each output leaf the map stage wrote (a JSON pointer) to the PHI classes the
//!   plan says flow into it; the mask stage consumes it and records what it did in `masking`.
//! - [`Doc`] keeps object keys in insertion order and decimals as written (`72.50`), so output
//!   is byte-for-byte deterministic.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use sluice_compiler::plan::MaskAction;
// A byte-loop `str::split`: dotted paths and pointers are split per record.
use sluice_hl7v2::view::parts;
use sluice_spec_core::PhiClass;

/// A finding on a record: `{code, path, message}`; `message` is fixed text, never a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub code: &'static str,
    pub path: String,
    pub message: String,
}

impl Issue {
    pub fn new(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue { code, path: path.into(), message: message.into() }
    }
}

/// PHI classes of one output leaf, with its field pattern (`patient.identifiers[*].value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassedLeaf {
    pub pattern: String,
    pub classes: Vec<PhiClass>,
}

/// What a mask stage did to one classed leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafOutcome {
    pub action: MaskAction,
    /// The action came from a policy rule (field or class), with a reason when it is `keep`.
    pub explicit: bool,
}

#[derive(Clone, Debug)]
pub struct Envelope {
    pub source: Arc<str>,
    pub file: Arc<str>,
    /// Byte offset of the message in its file.
    pub offset: u64,
    /// 0-based index of the message in its file.
    pub index: u64,
    /// 1-based sequence number of the record in the run (reading order).
    pub seq: u64,
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    /// The profile's time zone, normalised (`Z`, `-05:00`), for HL7 times without an offset.
    pub timezone: Arc<str>,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// Output leaves with PHI classes, by JSON pointer (`/patient/identifiers/1/value`).
    pub classes: BTreeMap<String, ClassedLeaf>,
    /// Set once the record passed a mask stage: the outcome per classed leaf.
    pub masking: Option<BTreeMap<String, LeafOutcome>>,
    /// The message key and headers a message bus gave the record (Kafka); `None` for files
    /// and MLLP. Data (a key is often a patient id): never logged or audited.
    pub bus: Option<Arc<BusMeta>>,
}

impl Envelope {
    /// Whether the record stands for a deletion ([`BusMeta::deleted`]).
    pub fn deleted(&self) -> bool {
        self.bus.as_ref().is_some_and(|b| b.deleted)
    }
}

/// A bus message's key and headers, as the producer sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusMeta {
    pub key: Option<Vec<u8>>,
    /// Header names with their values (`None`: a header without a value), in message order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The record stands for a resource deleted at its source (a `fhir.rest` cdc table's
    /// `_history`): its payload holds only what identifies it. Set by that source alone, never
    /// from a message's own headers. Sinks delete the row (`postgres` upsert) or mark the
    /// record `"_deleted": true`.
    pub deleted: bool,
}

/// The payload: an HL7 message (its text, read through the lazy view; shared between fan-out
/// copies) or an output document.
#[derive(Clone, Debug)]
pub enum Payload {
    Hl7(Arc<crate::hl7::Hl7Message>),
    Doc(Doc),
}

#[derive(Clone, Debug)]
pub struct Record {
    pub env: Envelope,
    pub payload: Payload,
    /// The schema the payload is in (`hl7v2/2.5.1`, `canonical/patient-event@1`).
    pub schema: Arc<str>,
    pub raw: Arc<[u8]>,
}

/// An output document: JSON with ordered keys and decimals kept as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Doc {
    Null,
    Bool(bool),
    /// A JSON number, as its text (`72.50`).
    Num(String),
    Str(String),
    Arr(Vec<Doc>),
    Obj(Vec<(String, Doc)>),
}

impl Doc {
    pub fn from_json(v: &serde_json::Value) -> Doc {
        match v {
            serde_json::Value::Null => Doc::Null,
            serde_json::Value::Bool(b) => Doc::Bool(*b),
            serde_json::Value::Number(n) => Doc::Num(n.to_string()),
            serde_json::Value::String(s) => Doc::Str(s.clone()),
            serde_json::Value::Array(a) => Doc::Arr(a.iter().map(Doc::from_json).collect()),
            serde_json::Value::Object(o) => Doc::Obj(o.iter().map(|(k, v)| (k.clone(), Doc::from_json(v))).collect()),
        }
    }

    /// Compact JSON text.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Doc::Null => out.push_str("null"),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Num(n) => out.push_str(n),
            Doc::Str(s) => write_str(s, out),
            Doc::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Doc::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    pub fn to_json_string(&self) -> String {
        // A record line is usually well under 1 KiB: one allocation instead of a dozen regrowths.
        let mut s = String::with_capacity(1024);
        self.write_json(&mut s);
        s
    }

    pub fn is_empty_value(&self) -> bool {
        match self {
            Doc::Null => true,
            Doc::Str(s) => s.is_empty(),
            Doc::Arr(a) => a.is_empty(),
            _ => false,
        }
    }

    /// Member of an object.
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets an object member, in place if present, else appended. No-op on non-objects.
    pub fn set(&mut self, key: &str, value: Doc) {
        if let Doc::Obj(m) = self {
            match m.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => m.push((key.to_string(), value)),
            }
        }
    }

    /// The member `key`, created as an empty object when missing (or replaced when it is not
    /// an object). `self` must be an object.
    pub fn object_at(&mut self, key: &str) -> Option<&mut Doc> {
        let Doc::Obj(m) = self else { return None };
        let i = match m.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                m.push((key.to_string(), Doc::Obj(Vec::new())));
                m.len() - 1
            }
        };
        if !matches!(m[i].1, Doc::Obj(_)) {
            m[i].1 = Doc::Obj(Vec::new());
        }
        Some(&mut m[i].1)
    }

    /// A dotted path (`metadata.message_type`, `patient.identifiers.0.value`,
    /// `patient.identifiers[0].value`).
    pub fn get_dotted(&self, path: &str) -> Option<&Doc> {
        let mut cur = self;
        for part in parts(path, '.') {
            let (name, indexes) = split_indexes(part);
            if !name.is_empty() {
                cur = match cur {
                    Doc::Obj(_) => cur.get(name)?,
                    Doc::Arr(a) => a.get(name.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            for i in indexes {
                cur = match cur {
                    Doc::Arr(a) => a.get(i)?,
                    _ => return None,
                };
            }
        }
        Some(cur)
    }

    /// RFC 6901 pointer, mutable.
    pub fn pointer_mut(&mut self, pointer: &str) -> Option<&mut Doc> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut cur = self;
        for token in parts(pointer.strip_prefix('/')?, '/') {
            let token = unpointer_token(token);
            cur = match cur {
                Doc::Obj(m) => m.iter_mut().find(|(k, _)| k.as_str() == token.as_ref()).map(|(_, v)| v)?,
                Doc::Arr(a) => a.get_mut(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

fn split_indexes(part: &str) -> (&str, Vec<usize>) {
    match part.find('[') {
        None => (part, Vec::new()),
        Some(i) => {
            let idx = part[i..].split(['[', ']']).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
            (&part[..i], idx)
        }
    }
}

/// Escapes one JSON pointer token (borrowed when there is nothing to escape, the usual case).
pub fn pointer_token(s: &str) -> Cow<'_, str> {
    // A byte loop: `contains` with a set of chars runs a general searcher on these short keys.
    if s.bytes().any(|b| b == b'~' || b == b'/') {
        Cow::Owned(s.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Reads one JSON pointer token (borrowed when there is nothing to unescape).
fn unpointer_token(s: &str) -> Cow<'_, str> {
    if s.contains('~') { Cow::Owned(s.replace("~1", "/").replace("~0", "~")) } else { Cow::Borrowed(s) }
}

/// Writes `s` as a JSON string, byte for byte what `serde_json::to_string` writes (`"` and `\`
/// escaped, control characters as `\n`-style or `\u00xx` escapes, nothing else), without an
/// intermediate allocation.
pub(crate) fn write_str(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Runs without a byte to escape are found a word at a time (most strings are one run).
    while let Some(found) = sluice_hl7v2::bytes::find_any_or_below(&bytes[start..], [b'"', b'\\'], 0x20) {
        let i = start + found;
        let b = bytes[i];
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        // Only ASCII bytes end a run, so `start..i` is on char boundaries.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A decimal written in HL7 (`+012.50`, `.5`) as a JSON number (`12.50`, `0.5`), keeping the
/// digits as written; `None` when it is not a decimal.
pub fn json_decimal(text: &str) -> Option<String> {
    let t = text.trim();
    let (neg, body) = match t.as_bytes().first()? {
        b'+' => (false, &t[1..]),
        b'-' => (true, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) || (int.is_empty() && frac.is_none_or(str::is_empty)) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(int);
    if let Some(f) = frac.filter(|f| !f.is_empty()) {
        out.push('.');
        out.push_str(f);
    }
    if out == "-0" || (out.starts_with("-0.") && out[3..].bytes().all(|b| b == b'0')) {
        out.remove(0);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn json_strings_are_written_as_serde_json_writes_them(s in any::<String>(), c in 0u8..0x80) {
            let s = format!("{s}{}{s}", char::from(c));
            let mut out = String::from("x");
            write_str(&s, &mut out);
            prop_assert_eq!(&out[1..], serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn pointer_tokens_round_trip(s in "[a-z~/01]{0,8}") {
            let token = pointer_token(&s);
            prop_assert_eq!(unpointer_token(&token), s.as_str());
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(json_decimal("72.50").unwrap(), "72.50");
        assert_eq!(json_decimal("+007.5").unwrap(), "7.5");
        assert_eq!(json_decimal(".5").unwrap(), "0.5");
        assert_eq!(json_decimal("5.").unwrap(), "5");
        assert_eq!(json_decimal("-0").unwrap(), "0");
        assert_eq!(json_decimal("-12").unwrap(), "-12");
        for bad in ["", ".", "+", "1e5", "1.2.3", "abc", "--1", " "] {
            assert!(json_decimal(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn doc_paths_and_json() {
        let v = serde_json::json!({"a": {"b": [1, {"c": "x/y"}]}, "d": 2.5});
        let mut d = Doc::from_json(&v);
        assert_eq!(d.get_dotted("a.b[1].c"), Some(&Doc::Str("x/y".into())));
        assert_eq!(d.get_dotted("a.b.0"), Some(&Doc::Num("1".into())));
        *d.pointer_mut("/a/b/1/c").unwrap() = Doc::Num("72.50".into());
        d.object_at("meta").unwrap().set("k", Doc::Bool(true));
        assert_eq!(d.to_json_string(), r#"{"a":{"b":[1,{"c":72.50}]},"d":2.5,"meta":{"k":true}}"#);
    }
}
