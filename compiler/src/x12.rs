//! `format: x12` files sources at compile time: their `guides` checked against the bundled
//! implementation guides (`sluice_x12::guide`), their plan, and the diagnostics that belong to
//! X12 records (SL260-SL262).
//!
//! What an X12 source emits ([`SCHEMA`]) is one record per transaction set: the envelope
//! context and the segments as read. Such records carry PHI (subscriber and patient names,
//! member ids, dates of birth), so the PHI-flow proof treats them as raw messages: a sink
//! receiving them needs `phi_allowed` (SL601), unless a map stage reads them first.
//!
//! Mappings with `input: {schema: x12/<guide>}` read the sets with X12 paths (`2300/CLM-01`,
//! `2010BA/NM1-03`, `2400[*]/SV1-01-2`): [`X12Env::resolve`] checks each against the guide
//! with `sluice_x12::path::check` (SL414 with a did-you-mean at the exact characters) and
//! gives its value type, whether it yields a list, and its PHI class, which feeds the
//! PHI-flow proof like an HL7 path's. Other stages that read paths refuse X12 records (SL260).
//!
//! Invariants: diagnostics quote only what the spec wrote (guide ids, names, paths), never
//! data. The path the plan carries is the text as written (the runtime parses it again with
//! `sluice_x12::path::parse`, which accepted it here).

use sluice_spec_core::{PhiClass, ValueType};
use sluice_x12::guide::Guide;

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plan::X12SourcePlan;
use crate::source::Span;
use crate::spec::pipeline::X12Files;

/// The schema name of the records an X12 source emits.
pub const SCHEMA: &str = "x12/transaction-set";

/// The prefix of a mapping's X12 input schema: `x12/005010X222A1`.
pub const MAPPING_SCHEMA_PREFIX: &str = "x12/";

/// What X12 paths are checked against: one implementation guide.
#[derive(Clone, Copy, Debug)]
pub struct X12Env {
    pub guide: &'static Guide,
}

/// What an X12 path addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The path as written.
    pub path: String,
    /// The type of one value.
    pub value_type: ValueType,
    pub phi: Option<PhiClass>,
    /// Several values (`[*]`).
    pub multi: bool,
}

impl X12Env {
    /// Resolves `text` written at `span` (the span of the path's characters).
    pub fn resolve(&self, text: &str, span: Span) -> Result<Resolved, Diagnostic> {
        match sluice_x12::path::check(self.guide, text) {
            Ok(info) => {
                Ok(Resolved { path: text.to_string(), value_type: info.value_type, phi: info.phi, multi: info.many })
            }
            Err(e) => {
                let at = if span.end - span.start == text.len() {
                    let end = (e.offset + e.len).min(text.len());
                    Span::new(span.file, span.start + e.offset.min(end), span.start + end)
                } else {
                    span
                };
                // An element candidate is `SEG-EE`: compare it with the last step as written.
                let wrong = if e.candidates.iter().any(|c| c.contains('-')) {
                    text.rsplit('/').next().unwrap_or(text)
                } else {
                    text.get(e.offset..(e.offset + e.len).min(text.len())).unwrap_or(text)
                };
                let valid = match e.candidates.len() {
                    0 => "X12 paths are written `LOOP/SEG-EE[-CC]`, e.g. `2300/CLM-01`, `2010BA/NM1-03`, `2400[*]/SV1-01-2`; docs/user-guide.md lists them".to_string(),
                    1..=16 => format!("valid here: {}", e.candidates.join(", ")),
                    n => format!("valid here: {}, ... ({n} in all)", e.candidates[..12].join(", ")),
                };
                let help = match did_you_mean(wrong, e.candidates.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`? {}", capitalized(&valid)),
                    None => valid,
                };
                Err(Diagnostic::error(
                    codes::X12_UNKNOWN_PATH,
                    format!("`{text}` is not a path of X12 guide {}: {}", self.guide.id, e.message),
                )
                .label(at, "not in the implementation guide here")
                .help(help))
            }
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// The bundled guide a mapping's `input.schema` names (`x12/005010X222A1`), or SL261 with the
/// closest id.
pub fn mapping_guide(schema: &str, span: Span) -> Result<&'static Guide, Diagnostic> {
    let id = schema.strip_prefix(MAPPING_SCHEMA_PREFIX).unwrap_or(schema);
    sluice_x12::guide::by_id(id).ok_or_else(|| {
        let known = guide_ids();
        Diagnostic::error(codes::X12_UNKNOWN_GUIDE, format!("`{schema}` names no bundled X12 implementation guide"))
            .label(span, "not a guide id")
            .help(format!(
                "write `x12/<guide>`; the bundled guides are {}",
                known.iter().map(|g| format!("x12/{g}")).collect::<Vec<_>>().join(", ")
            ))
            .suggest(id, known.iter().copied())
    })
}

/// SL415: a map stage whose mapping reads `guide` sets gets `wrong` records.
pub fn map_input_mismatch(stage: &str, guide: &str, wrong: &str, input_at: Span, mapping_at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::X12_MAP_INPUT_MISMATCH,
        format!("map stage `{stage}` maps X12 {guide} transaction sets, but its input emits {wrong}"),
    )
    .label(input_at, format!("emits {wrong}"))
    .label(mapping_at, format!("the mapping reads x12/{guide}"))
    .help(format!("feed it from a `format: x12` source reading {guide} (`guides: [{guide}]`)"))
}

/// The ids of the bundled guides (`005010X222A1`, ...).
pub fn guide_ids() -> Vec<&'static str> {
    sluice_x12::guide::bundled().iter().map(|g| g.id.as_str()).collect()
}

/// Checks an X12 source's keys; returns its plan (`acks`: the resolved directory).
pub fn source_plan(
    diags: &mut crate::diagnostics::Diagnostics,
    spec: &X12Files,
    acks: Option<String>,
) -> Option<X12SourcePlan> {
    let known = guide_ids();
    let mut ok = true;
    let mut guides = Vec::new();
    for g in &spec.guides {
        if known.contains(&g.text.as_str()) {
            guides.push(g.text.clone());
            continue;
        }
        ok = false;
        let d = Diagnostic::error(
            codes::X12_UNKNOWN_GUIDE,
            format!("`{}` is not a bundled X12 implementation guide", g.text),
        )
        .label(g.span, "not a guide id")
        .help(format!("the bundled guides are {}", known.join(", ")));
        diags.push(d.suggest(&g.text, known.iter().copied()));
    }
    ok.then_some(X12SourcePlan { guides, mode: spec.mode, acks })
}

/// SL262: `acks` without a state store for the control numbers.
pub fn acks_need_state(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::X12_ACKS_NEED_STATE,
        format!("source `{source}` writes X12 acknowledgments, and the pipeline has no state store for their control numbers"),
    )
    .label(at, "acknowledgments need control numbers that never repeat")
    .help("add `state: {path: state/sluice.db}` (or `state: {url: ...}`) to the pipeline, or remove `acks`")
}

/// SL260: a stage or sink `name` that cannot take X12 transaction sets (`what` it needs).
pub fn input_mismatch(kind: &str, name: &str, what: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::X12_INPUT_MISMATCH,
        format!("{kind} `{name}` needs {what}, but its input emits raw X12 transaction sets"),
    )
    .label(at, format!("emits {SCHEMA}"))
    .help("X12 sets are validated by their source (`mode`) and read by a map stage whose mapping has `input: {schema: x12/<guide>}` (paths such as `2300/CLM-01`); or write the raw sets to a `jsonl` sink with `phi: {allowed: true, reason: ...}`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    fn env() -> X12Env {
        X12Env { guide: sluice_x12::guide::by_id("005010X222A1").expect("bundled") }
    }

    fn span(text: &str) -> Span {
        Span::new(FileId(0), 100, 100 + text.len())
    }

    #[test]
    fn paths_give_types_lists_and_phi_classes() {
        let r = env().resolve("2010BA/NM1-03", span("2010BA/NM1-03")).unwrap();
        assert_eq!((r.value_type, r.phi, r.multi), (ValueType::String, Some(PhiClass::Name), false));
        let r = env().resolve("2300[*]/CLM-02", span("2300[*]/CLM-02")).unwrap();
        assert_eq!((r.value_type, r.multi), (ValueType::Decimal, true));
        assert_eq!(env().resolve("2010BA/DMG-02", span("2010BA/DMG-02")).unwrap().phi, Some(PhiClass::Dob));
    }

    #[test]
    fn wrong_paths_point_at_the_wrong_characters_with_the_closest() {
        let text = "2010BA/NM1-33";
        let d = env().resolve(text, span(text)).unwrap_err();
        assert_eq!(d.code.code, "SL414");
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (111, 113));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("did you mean `NM1-03`")), "{:?}", d.help);
        let text = "2301/CLM-01";
        let d = env().resolve(text, span(text)).unwrap_err();
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (100, 104));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("`2300`")), "{:?}", d.help);
        let text = "2300/CLX-01";
        let d = env().resolve(text, span(text)).unwrap_err();
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (105, 108));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("`CLM`")), "{:?}", d.help);
        assert!(mapping_guide("x12/005010X222A2", span("x")).is_err());
        assert!(mapping_guide("x12/005010X221A1", span("x")).is_ok());
    }
}
