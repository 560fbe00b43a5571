//! The JSON shape of a parsed HL7 v2 message, as printed by `sluice parse --format hl7v2`.
//!
//! ```json
//! {"segments": [["MSH", "|", "^~\\&", "APP", ...], ["PID", "1", "", ["123", "", "", "MRN"], ...]]}
//! ```
//!
//! Each segment is a list: its id, then its fields in order (field 1 first). Values are decoded
//! (escape sequences resolved, see [`crate::codec`]).
//!
//! - Full shape (`full = true`): every field is a list of repetitions, each a list of
//!   components, each a list of subcomponent strings. An empty field is `[]`, an empty
//!   repetition `[]`, an empty component `[]`. MSH-1 and MSH-2 are the literal separator strings
//!   wrapped like any value: `[[["|"]]]`, `[[["^~\\&"]]]`.
//! - Compact shape (`full = false`): singletons collapse. A field with one repetition becomes
//!   that repetition; a repetition with one component becomes that component; a component with
//!   one subcomponent becomes the string; an empty list at any level becomes `""` (so an empty
//!   field is `""`). The compact shape is for reading; it cannot always be read back.
//!
//! - Spellings (full shape only, and only when there are some): a value written in the text
//!   otherwise than [`crate::codec::escape`] writes it (a stray escape character, lower-case hex,
//!   ...) is listed under `"spellings"` with where it is and how it was written, so the message
//!   can be written back byte for byte (see "Spellings" in [`crate::codec`]):
//!   `{"segments": [...], "spellings": [{"at": [1, 3, 0, 0, 0], "raw": "C:\\temp"}]}`. `at` is
//!   the index path of the value in `segments`: segment, field (1 for field 1, as in the segment
//!   list), repetition, component, subcomponent.
//!
//! [`json_to_message`] reads the full shape back (a string anywhere a list is expected counts as
//! a one-element list). Invariant: `json_to_message(&message_to_json(m, true))` equals `m` for a
//! message `m` parsed from CR-separated text, spellings included, so it encodes to the same text.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::codec::{Component, Field, Message, Repetition, Segment, SegmentSeparator, Spelling, encode, parse_message};

fn list<T>(items: &[T], full: bool, f: impl Fn(&T) -> Value) -> Value {
    if !full {
        match items {
            [] => return Value::String(String::new()),
            [one] => return f(one),
            _ => {}
        }
    }
    Value::Array(items.iter().map(f).collect())
}

fn field_to_json(field: &Field, full: bool) -> Value {
    list(&field.repetitions, full, |r| {
        list(&r.components, full, |c| list(&c.subcomponents, full, |s| Value::String(s.to_string())))
    })
}

/// The message as JSON; see the module docs for the shape.
pub fn message_to_json(m: &Message, full: bool) -> Value {
    let segments: Vec<Value> = m
        .segments
        .iter()
        .map(|seg| {
            let mut items = Vec::with_capacity(seg.fields.len() + 1);
            items.push(Value::String(seg.id.to_string()));
            items.extend(seg.fields.iter().map(|f| field_to_json(f, full)));
            Value::Array(items)
        })
        .collect();
    let spellings: Vec<Value> = if full {
        m.segments
            .iter()
            .enumerate()
            .flat_map(|(i, seg)| {
                seg.spellings.iter().map(move |s| {
                    let [f, r, c, sub] = s.at;
                    json!({ "at": [i, f + 1, r, c, sub], "raw": s.raw })
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    if spellings.is_empty() {
        json!({ "segments": segments })
    } else {
        json!({ "segments": segments, "spellings": spellings })
    }
}

/// Reads one entry of `"spellings"`: the segment index and the spelling.
fn spelling_from(v: &Value) -> Option<(usize, Spelling<'static>)> {
    let at = v.get("at")?.as_array()?;
    let index = |i: usize| at.get(i)?.as_u64().and_then(|n| usize::try_from(n).ok());
    if at.len() != 5 {
        return None;
    }
    let field = index(1)?.checked_sub(1)?;
    let raw = v.get("raw")?.as_str()?.to_string();
    Some((index(0)?, Spelling { at: [field, index(2)?, index(3)?, index(4)?], raw: Cow::Owned(raw) }))
}

fn as_list(v: &Value) -> Option<Vec<&Value>> {
    match v {
        Value::Array(items) => Some(items.iter().collect()),
        Value::String(_) => Some(vec![v]),
        _ => None,
    }
}

fn component_from(v: &Value) -> Option<Component<'static>> {
    let mut subcomponents: Vec<Cow<'static, str>> = Vec::new();
    for s in as_list(v)? {
        subcomponents.push(Cow::Owned(s.as_str()?.to_string()));
    }
    if subcomponents.len() == 1 && subcomponents[0].is_empty() {
        subcomponents.clear();
    }
    Some(Component { subcomponents })
}

fn repetition_from(v: &Value) -> Option<Repetition<'static>> {
    let mut components = Vec::new();
    for c in as_list(v)? {
        components.push(component_from(c)?);
    }
    if components.len() == 1 && components[0].subcomponents.is_empty() {
        components.clear();
    }
    Some(Repetition { components })
}

fn field_from(v: &Value) -> Option<Field<'static>> {
    let mut repetitions = Vec::new();
    for r in as_list(v)? {
        repetitions.push(repetition_from(r)?);
    }
    if repetitions.len() == 1 && repetitions[0].components.is_empty() {
        repetitions.clear();
    }
    Some(Field { repetitions })
}

/// Reads the full shape back into a message (CR-separated; offsets and segment numbers as in
/// its encoded text). `None` if the shape is wrong or the first segment is not an MSH with
/// valid delimiters.
pub fn json_to_message(v: &Value) -> Option<Message<'static>> {
    let mut segments = Vec::new();
    for (i, seg) in v.get("segments")?.as_array()?.iter().enumerate() {
        let items = seg.as_array()?;
        let (id, fields) = items.split_first()?;
        let id = id.as_str()?.to_string();
        let fields = fields.iter().map(field_from).collect::<Option<Vec<_>>>()?;
        segments.push(Segment { id: Cow::Owned(id), fields, offset: 0, line: i + 1, spellings: Vec::new() });
    }
    if let Some(spellings) = v.get("spellings") {
        for entry in spellings.as_array()? {
            let (i, spelling) = spelling_from(entry)?;
            segments.get_mut(i)?.spellings.push(spelling);
        }
        for seg in &mut segments {
            seg.spellings.sort_by_key(|s| s.at);
        }
    }
    let msh = segments.first().filter(|s| s.id == "MSH")?;
    let separator = msh.field(1)?.first()?;
    let encoding = msh.field(2)?.first()?;
    let delimiters = parse_message(&format!("MSH{separator}{encoding}")).ok()?.delimiters;
    let mut message = Message { delimiters, segments, segment_separator: SegmentSeparator::Cr };
    let mut offset = 0;
    for i in 0..message.segments.len() {
        message.segments[i].offset = offset;
        let one = Message { delimiters, segments: vec![message.segments[i].clone()], ..Message::default() };
        offset += encode(&one).len() + 1;
    }
    Some(message)
}
