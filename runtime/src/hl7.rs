//! The runtime's one door to the HL7 v2 crate: reading streams (batch envelopes,
//! continuations), character sets, parsing, selecting values, iterating repetitions for `each`,
//! schema look-ups and the JSON shape written by sinks.
//!
//! Invariants:
//! - Values are selected exactly as `sluice_hl7v2::path` defines (0-based `[n]`, no component
//!   meaning component 1, empty values omitted), so the runtime reads what the compiler checked.
//! - Nothing here formats a value into an error.
//! - A record's message ([`Hl7Message`]) is read through the lazy view when its text is what
//!   the record holds, and through the full tree otherwise; both give the same values (the view
//!   selects what the tree selects, a property of `sluice_hl7v2::view`, and [`Reader`]'s
//!   repetitions are tested against the tree's).
//! - Each step's view is rebuilt from the index the source step took, which also locates every
//!   field separator: a field is found without scanning the fields before it, and the values
//!   read are the same as through a freshly parsed view (tested both ways).

use std::borrow::Cow;
use std::sync::OnceLock;

use sluice_hl7v2::codec::{Delimiters, Message, ParseOptions, Repetition, unescape};
use sluice_hl7v2::path::{Index, Path};
use sluice_hl7v2::view::{self, MessageView, ViewIndex, parts};

pub use sluice_hl7v2::batch::{BatchReader, Item, Problem, join_add_segments};
pub use sluice_hl7v2::charset::{self, CharsetPolicy};
pub use sluice_hl7v2::codec::{ParseError, SegmentSeparator, parse_message, parse_message_owned};

/// One repetition bound to a loop variable: components, each a list of subcomponents
/// (decoded text, borrowed from the message unless an escape was decoded).
pub type Binding<'m> = Vec<Vec<Cow<'m, str>>>;

pub fn parse_path(text: &str) -> Result<Path, String> {
    Path::parse(text).map_err(|e| e.to_string())
}

/// Values at `path`, in message order.
pub fn select<'m>(msg: &'m Message<'_>, path: &Path) -> Vec<&'m str> {
    msg.select(path)
}

/// An HL7 message as a record carries it: its text, checked by the source step. Steps read
/// values through the lazy view ([`Reader`]); the full tree is only built, once, by a step that
/// needs it (the standard's checks, segment groups, FHIR output, sinks writing HL7 JSON).
#[derive(Debug)]
pub struct Hl7Message {
    text: Box<str>,
    options: ParseOptions,
    /// Where the source step found the segments, so later steps need not scan again.
    index: Option<ViewIndex>,
    tree: OnceLock<Message<'static>>,
    /// The tree no longer matches the text (the profile skipped segments): values are read
    /// from the tree.
    edited: bool,
}

impl Hl7Message {
    /// A message whose text the source step parsed with `options` without error.
    pub fn new(text: String, options: ParseOptions) -> Hl7Message {
        Hl7Message { text: text.into_boxed_str(), options, index: None, tree: OnceLock::new(), edited: false }
    }

    /// [`Hl7Message::new`] with the index of the view the source step parsed from the same
    /// text ([`MessageView::index`]).
    pub fn with_index(text: String, options: ParseOptions, index: Option<ViewIndex>) -> Hl7Message {
        Hl7Message { index, ..Hl7Message::new(text, options) }
    }

    /// This message with its tree replaced by an edited one (segments skipped).
    pub fn into_edited(self, tree: Message<'static>) -> Hl7Message {
        Hl7Message { tree: OnceLock::from(tree), edited: true, ..self }
    }

    /// The view over the text; `None` when values must be read from the tree.
    pub fn view(&self) -> Option<MessageView<'_>> {
        if self.edited {
            return None;
        }
        match &self.index {
            Some(index) => Some(MessageView::from_index(&self.text, index)),
            None => MessageView::parse_with(&self.text, self.options).ok(),
        }
    }

    /// The full tree, parsed on first use. The source step accepted the same text with the
    /// same options (the view and the parser share one scan, property-tested), so parsing
    /// cannot fail here. If it ever did, this panics with a fixed text (no message content):
    /// steps run inside the executor's per-record `catch_unwind`, so the record goes to the DLQ
    /// (`RT008`) instead of reaching a sink with every value missing.
    pub fn tree(&self) -> &Message<'static> {
        self.tree.get_or_init(|| match sluice_hl7v2::codec::parse_message_owned(&self.text, self.options) {
            Ok(parsed) => parsed.message,
            Err(e) => panic!("a message the source step accepted does not parse again ({})", e.code),
        })
    }
}

/// One step's access to a record's message: the view, located once per step, or the tree.
pub struct Reader<'m> {
    msg: &'m Hl7Message,
    view: Option<MessageView<'m>>,
}

impl<'m> Reader<'m> {
    pub fn new(msg: &'m Hl7Message) -> Reader<'m> {
        Reader { msg, view: msg.view() }
    }

    pub fn message(&self) -> &'m Hl7Message {
        self.msg
    }

    /// The full tree (built on first use).
    pub fn tree(&self) -> &'m Message<'static> {
        self.msg.tree()
    }

    /// Values at `path`, in message order, decoded.
    pub fn select(&self, path: &Path) -> Vec<Cow<'m, str>> {
        match &self.view {
            Some(v) => v.select(path),
            None => self.tree().select(path).into_iter().map(Cow::Borrowed).collect(),
        }
    }

    /// The first value at `path`, decoded: `select(path)`'s first, without collecting the rest.
    pub fn first(&self, path: &Path) -> Option<Cow<'m, str>> {
        match &self.view {
            Some(v) => v.first(path),
            None => self.tree().select(path).into_iter().next().map(Cow::Borrowed),
        }
    }

    /// [`repetitions`], read from the view when there is one.
    pub fn repetitions(&self, path: &Path) -> Vec<Binding<'m>> {
        match &self.view {
            // MSH-1 and MSH-2 are literal values: the tree has their one shape.
            Some(v) if !(is_header(&path.segment) && path.field <= 2) => view_repetitions(v, path),
            _ => repetitions(self.tree(), path),
        }
    }
}

fn is_header(id: &str) -> bool {
    matches!(id, "MSH" | "FHS" | "BHS")
}

/// [`repetitions`] over the view: the same bindings, cut from the text and decoded.
fn view_repetitions<'m>(view: &MessageView<'m>, path: &Path) -> Vec<Binding<'m>> {
    let d = &view.delimiters;
    let segments = view.named(&path.segment);
    let mut out = Vec::new();
    for seg in view::pick(segments, path.occurrence) {
        let Some(raw) = view.raw_field(seg, path.field) else {
            continue;
        };
        for rep in view::pick(parts(raw, d.repetition), path.repetition) {
            let b = split_repetition(rep, d);
            if b.iter().all(|c| c.iter().all(|s| s.is_empty())) {
                continue;
            }
            push_binding(&mut out, b, path.component);
        }
    }
    out
}

/// A repetition as the tree holds it: an empty component has no subcomponents.
fn split_repetition<'m>(rep: &'m str, d: &Delimiters) -> Binding<'m> {
    let component = |c: &'m str| match c {
        "" => Vec::new(),
        c => parts(c, d.subcomponent).map(|s| unescape(s, d)).collect(),
    };
    // Sized once: a repetition often has several components.
    let mut b = Vec::with_capacity(parts(rep, d.component).count());
    b.extend(parts(rep, d.component).map(component));
    b
}

/// Adds a non-empty repetition's binding to `out`: whole, or only the component the path names
/// (1-based) when that component is not empty.
fn push_binding<'m>(out: &mut Vec<Binding<'m>>, b: Binding<'m>, component: Option<usize>) {
    match component {
        None => out.push(b),
        Some(c) => {
            if let Some(comp) = b.into_iter().nth(c.saturating_sub(1))
                && comp.iter().any(|s| !s.is_empty())
            {
                out.push(vec![comp]);
            }
        }
    }
}

fn pick<T>(items: &[T], index: Index) -> &[T] {
    match index {
        Index::All => items,
        Index::First => items.get(..1).unwrap_or(&[]),
        Index::Nth(n) => items.get(n..n.saturating_add(1)).unwrap_or(&[]),
    }
}

fn binding_of<'m>(rep: &'m Repetition<'_>) -> Binding<'m> {
    rep.components.iter().map(|c| c.subcomponents.iter().map(|s| Cow::Borrowed(s.as_ref())).collect()).collect()
}

/// The repetitions a multi path iterates over (`PID-3[*]`, `OBX[*]-5`), in message order,
/// empty repetitions left out. When the path names a component (`PID-3[*].4`), each binding
/// holds that component only (so `var.1` is it, `var.1.2` its second subcomponent).
pub fn repetitions<'m>(msg: &'m Message<'_>, path: &Path) -> Vec<Binding<'m>> {
    repetitions_among(msg, None, path)
}

/// [`repetitions`] among some segments only (a segment group instance's, by index).
pub fn repetitions_among<'m>(msg: &'m Message<'_>, among: Option<&[usize]>, path: &Path) -> Vec<Binding<'m>> {
    let segments: Vec<_> = match among {
        None => msg.segments.iter().filter(|s| s.id == path.segment.as_str()).collect(),
        Some(idx) => {
            idx.iter().filter_map(|&i| msg.segments.get(i)).filter(|s| s.id == path.segment.as_str()).collect()
        }
    };
    let mut out = Vec::new();
    for seg in pick(&segments, path.occurrence) {
        let Some(field) = seg.field(path.field) else {
            continue;
        };
        for rep in pick(&field.repetitions, path.repetition) {
            if rep.components.iter().all(|c| c.subcomponents.iter().all(|s| s.is_empty())) {
                continue;
            }
            push_binding(&mut out, binding_of(rep), path.component);
        }
    }
    out
}

/// Values at `path` among the segments `among` (indices, in message order).
pub fn select_among<'m>(msg: &'m Message<'_>, among: &[usize], path: &Path) -> Vec<&'m str> {
    msg.select_in(among.iter().filter_map(|&i| msg.segments.get(i)), path)
}

/// Reads component `component` (1-based, default 1), subcomponent `sub` (default 1) of a
/// binding; empty text is `None`.
pub fn binding_value<'b>(b: &'b Binding<'_>, component: Option<usize>, sub: Option<usize>) -> Option<&'b str> {
    let c = b.get(component.unwrap_or(1).checked_sub(1)?)?;
    c.get(sub.unwrap_or(1).checked_sub(1)?).map(|s| s.as_ref()).filter(|s| !s.is_empty())
}

/// The bundled schema of `version`; `None` when there is none.
pub fn schema_of(version: &str) -> Option<&'static sluice_hl7v2::schema::Schema> {
    sluice_hl7v2::schema::Version::parse(version).map(sluice_hl7v2::schema::schema)
}

/// The compact JSON shape of a message, written by sinks for HL7 records.
pub fn to_json(msg: &Message<'_>) -> serde_json::Value {
    sluice_hl7v2::json::message_to_json(msg, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PATHS: &[&str] = &[
        "PID-3",
        "PID-3[*]",
        "PID-3[*].2",
        "PID-3[1].1.2",
        "PID[*]-5[*]",
        "PID[1]-3[*].4",
        "OBX[*]-5",
        "MSH-9[*]",
        "MSH-9.2",
        "MSH-10",
        "ZZ1-1[*]",
        "PID-40[*]",
    ];

    proptest! {
        /// The reader's view gives the values and repetitions the tree gives, escapes and
        /// empty parts included.
        #[test]
        fn reader_reads_what_the_tree_holds(
            fields in proptest::collection::vec("[A-C0-9|^~&\\\\FSTRE.X]{0,12}", 1..6),
        ) {
            let text = format!(
                "MSH|^~\\&|A|B|C|D|20240101||ADT^A01^ADT_A01~X|C{}|P|2.5.1\rPID|{}\rOBX|{}\rPID|{}",
                fields[0],
                fields.join("|"),
                fields.join("~"),
                fields.iter().rev().cloned().collect::<Vec<_>>().join("^")
            );
            let Ok(tree) = parse_message(&text) else { return Ok(()) };
            // Without an index (segments located again) and with the source step's index
            // (fields found through its separator offsets).
            let index = MessageView::parse(&text).ok().and_then(|v| v.index(&text));
            prop_assert!(index.is_some());
            for held in [
                Hl7Message::new(text.clone(), ParseOptions::default()),
                Hl7Message::with_index(text.clone(), ParseOptions::default(), index),
            ] {
                let reader = Reader::new(&held);
                prop_assert!(reader.view.is_some());
                for p in PATHS {
                    let p = parse_path(p).unwrap();
                    let from_tree: Vec<Cow<'_, str>> = select(&tree, &p).into_iter().map(Cow::Borrowed).collect();
                    prop_assert_eq!(reader.first(&p), from_tree.first().cloned(), "{:?}", p);
                    prop_assert_eq!(reader.select(&p), from_tree, "{:?}", p);
                    prop_assert_eq!(reader.repetitions(&p), repetitions(&tree, &p), "{:?}", p);
                }
            }
        }
    }

    const MSG: &str = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\rPID|1||111^^^H^MR~222^^^S^SS&x||DOE^JOHN\rOBX|1|NM|a||5\rOBX|2|NM|b||6";

    #[test]
    fn repetitions_and_values() {
        let m = parse_message(MSG).unwrap();
        let p = parse_path("PID-3[*]").unwrap();
        let reps = repetitions(&m, &p);
        assert_eq!(reps.len(), 2);
        assert_eq!(binding_value(&reps[1], Some(5), None), Some("SS"));
        assert_eq!(binding_value(&reps[1], Some(5), Some(2)), Some("x"));
        assert_eq!(binding_value(&reps[0], None, None), Some("111"));
        let obx = repetitions(&m, &parse_path("OBX[*]-5").unwrap());
        assert_eq!(obx.len(), 2);
        let comp = repetitions(&m, &parse_path("PID-3[*].4").unwrap());
        assert_eq!(binding_value(&comp[0], None, None), Some("H"));
        assert_eq!(select(&m, &parse_path("PID-5.2").unwrap()), vec!["JOHN"]);
    }
}
