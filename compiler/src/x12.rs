//! `format: x12` files sources at compile time: their `guides` checked against the bundled
//! implementation guides (`sluice_x12::guide`), their plan, and the diagnostics that belong to
//! X12 records (SL260-SL262).
//!
//! What an X12 source emits ([`SCHEMA`]) is one record per transaction set: the envelope
//! context and the segments as read. Such records carry PHI (subscriber and patient names,
//! member ids, dates of birth), so the PHI-flow proof treats them as raw messages: a sink
//! receiving them needs `phi_allowed` (SL601). Mappings over X12 paths (`2300/CLM-01`, checked
//! by `sluice_x12::path::check`) are not wired in yet; stages that read paths refuse X12
//! records with SL260.
//!
//! Invariants: diagnostics quote only what the spec wrote (guide ids, names), never data.

use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::X12SourcePlan;
use crate::source::Span;
use crate::spec::pipeline::X12Files;

/// The schema name of the records an X12 source emits.
pub const SCHEMA: &str = "x12/transaction-set";

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
    .help("X12 sets are validated by their source (`mode`); mappings over X12 paths are not supported yet: write the sets to a `jsonl` sink with `phi: {allowed: true, reason: ...}`")
}
