//! The runtime's one door to the HL7 v2 crate: reading streams (batch envelopes,
//! continuations), character sets, parsing, selecting values, iterating repetitions for `each`,
//! schema look-ups and the JSON shape written by sinks.
//!
//! Invariants:
//! - Values are selected exactly as `sluice_hl7v2::path` defines (0-based `[n]`, no component
//!   meaning component 1, empty values omitted), so the runtime reads what the compiler checked.
//! - Nothing here formats a value into an error.

use sluice_hl7v2::codec::{Message, Repetition};
use sluice_hl7v2::path::{Index, Path};

pub use sluice_hl7v2::batch::{BatchReader, Item, Problem, join_add_segments};
pub use sluice_hl7v2::charset::{self, CharsetPolicy};
pub use sluice_hl7v2::codec::{ParseError, SegmentSeparator, parse_message, parse_message_owned};

/// One repetition bound to a loop variable: components, each a list of subcomponents
/// (decoded text).
pub type Binding = Vec<Vec<String>>;

pub fn parse_path(text: &str) -> Result<Path, String> {
    Path::parse(text).map_err(|e| e.to_string())
}

/// Values at `path`, in message order.
pub fn select<'m>(msg: &'m Message<'_>, path: &Path) -> Vec<&'m str> {
    msg.select(path)
}

fn pick<T>(items: &[T], index: Index) -> &[T] {
    match index {
        Index::All => items,
        Index::First => items.get(..1).unwrap_or(&[]),
        Index::Nth(n) => items.get(n..n.saturating_add(1)).unwrap_or(&[]),
    }
}

fn binding_of(rep: &Repetition<'_>) -> Binding {
    rep.components.iter().map(|c| c.subcomponents.iter().map(|s| s.to_string()).collect()).collect()
}

/// The repetitions a multi path iterates over (`PID-3[*]`, `OBX[*]-5`), in message order,
/// empty repetitions left out. When the path names a component (`PID-3[*].4`), each binding
/// holds that component only (so `var.1` is it, `var.1.2` its second subcomponent).
pub fn repetitions(msg: &Message<'_>, path: &Path) -> Vec<Binding> {
    repetitions_among(msg, None, path)
}

/// [`repetitions`] among some segments only (a segment group instance's, by index).
pub fn repetitions_among(msg: &Message<'_>, among: Option<&[usize]>, path: &Path) -> Vec<Binding> {
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
            let b = binding_of(rep);
            match path.component {
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
    }
    out
}

/// Values at `path` among the segments `among` (indices, in message order).
pub fn select_among<'m>(msg: &'m Message<'_>, among: &[usize], path: &Path) -> Vec<&'m str> {
    msg.select_in(among.iter().filter_map(|&i| msg.segments.get(i)), path)
}

/// Reads component `component` (1-based, default 1), subcomponent `sub` (default 1) of a
/// binding; empty text is `None`.
pub fn binding_value(b: &Binding, component: Option<usize>, sub: Option<usize>) -> Option<&str> {
    let c = b.get(component.unwrap_or(1).checked_sub(1)?)?;
    c.get(sub.unwrap_or(1).checked_sub(1)?).map(String::as_str).filter(|s| !s.is_empty())
}

/// Whether the schema of `version` defines segment `id`; `None` when the version has no schema.
pub fn segment_defined(version: &str, id: &str) -> Option<bool> {
    let v = sluice_hl7v2::schema::Version::parse(version)?;
    Some(sluice_hl7v2::schema::schema(v).segment(id).is_some())
}

/// The compact JSON shape of a message, written by sinks for HL7 records.
pub fn to_json(msg: &Message<'_>) -> serde_json::Value {
    sluice_hl7v2::json::message_to_json(msg, false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
