//! Sluice runtime: executes a compiled [`Plan`]: sources, stages, sinks, DLQ and audit.
//!
//! Modules, one job each:
//! - [`executor`]: reader thread, rayon CPU step, writer thread, bounded channels.
//! - [`compile`]: prepares the plan once (DAG edges, paths, templates, regexes, secrets).
//! - [`source`]: file discovery and the source step (decode, parse, profile checks).
//! - [`stages`]: validate, map, mask, filter, route.
//! - [`eval`]: expression evaluation, HL7 value conversion, functions, lookups, templates.
//! - [`record`]: the record envelope and the output document type.
//! - [`mllp`]: the MLLP listener source (tokio), feeding the executor live, answering ACKs.
//! - [`sink`], [`dlq`], [`audit`]: what gets written.
//! - [`findings`]: every finding code the runtime emits ([`FINDINGS`]).
//! - [`secrets`], [`time`], [`hl7`]: secret references, clock and HL7 time conversions, the
//!   door to the HL7 crate.
//!
//! Invariants kept here: every record that enters leaves through a sink, the DLQ or a filter,
//! and [`RunSummary::balanced`] checks `records_in == delivered + dlq + filtered`; no data value
//! appears in errors, DLQ reasons or the audit log; with a fixed clock, output is byte-identical
//! across runs. Not yet: checkpoints and resume (outputs are truncated at the start of a run),
//! retries, throttles, tokio I/O sinks, DLQ encryption at rest.

pub mod audit;
pub mod compile;
pub mod dlq;
pub mod error;
pub mod eval;
pub mod executor;
pub mod fhir_output;
pub mod findings;
pub mod groups;
pub mod hl7;
pub mod mllp;
pub mod plain_template;
pub mod record;
pub mod secrets;
pub mod sink;
pub mod source;
pub mod stages;
pub mod time;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_compiler::plan::Plan;

pub use audit::verify_audit_chain;
pub use error::RunError;
pub use findings::{FINDINGS, FindingInfo};

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// RFC 3339; pins `processed_at`, audit timestamps and the run id (for tests).
    pub fixed_clock: Option<String>,
    /// Worker threads for the CPU step; `None` lets rayon choose.
    pub threads: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub plan_hash: String,
    pub run_id: String,
    pub records_in: u64,
    /// Records that reached at least one sink and no DLQ.
    pub delivered: u64,
    /// Records with at least one DLQ entry (even if another branch reached a sink).
    pub dlq: u64,
    /// Records dropped by a filter or a route without a matching branch.
    pub filtered: u64,
    /// Records that carried at least one warning when they reached a sink or the DLQ.
    pub warnings: u64,
    pub per_source: Vec<(String, u64)>,
    /// Lines written per sink component.
    pub per_sink: Vec<(String, u64)>,
    pub elapsed_ms: u64,
    pub records_per_second: f64,
    /// `records_in == delivered + dlq + filtered`.
    pub balanced: bool,
}

/// The run id: the first 12 hex characters of sha256(plan hash + clock seed); deterministic
/// under a fixed clock.
pub fn run_id(plan_hash: &str, clock_seed: &str) -> String {
    let digest = Sha256::digest(format!("{plan_hash}{clock_seed}").as_bytes());
    hex::encode(digest)[..12].to_string()
}

/// Executes `plan` to completion.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<RunSummary, RunError> {
    run_with_events(plan, options, None)
}

/// [`run`], with a channel on which a listening source (`mllp`) reports that it listens (and
/// on which address) and that it stops. A pipeline with a listening source runs until SIGINT
/// or SIGTERM.
pub fn run_with_events(
    plan: &Plan,
    options: &RunOptions,
    events: Option<std::sync::mpsc::Sender<mllp::ListenEvent>>,
) -> Result<RunSummary, RunError> {
    let started = std::time::Instant::now();
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    let compiled = compile::Compiled::new(plan)?;
    let run_id = run_id(&plan.hash, &clock.seed());
    let t = match mllp::listener_of(plan) {
        Some(_) => mllp::serve(&compiled, &clock, &run_id, options.threads, events)?,
        None => executor::execute(&compiled, &clock, &run_id, options.threads, executor::Feed::Files)?,
    };
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64();
    Ok(RunSummary {
        pipeline: plan.pipeline.clone(),
        plan_hash: plan.hash.clone(),
        run_id,
        records_in: t.records_in,
        delivered: t.delivered,
        dlq: t.dlq,
        filtered: t.filtered,
        warnings: t.warnings,
        per_source: t.per_source,
        per_sink: t.per_sink,
        elapsed_ms: elapsed.as_millis() as u64,
        records_per_second: if secs > 0.0 { t.records_in as f64 / secs } else { 0.0 },
        balanced: t.records_in == t.delivered + t.dlq + t.filtered,
    })
}
