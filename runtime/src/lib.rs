//! Sluice runtime: executes a compiled [`Plan`]: sources, stages, sinks, DLQ and audit.
//!
//! Modules, one job each:
//! - [`executor`]: reader thread, CPU workers (whole batches), writer thread (reorders, writes,
//!   checkpoints), bounded channels.
//! - [`compile`]: prepares the plan once (DAG edges, paths, templates, regexes, secrets).
//! - [`source`]: file discovery and the source step (decode, parse, profile checks).
//! - [`stages`]: validate, map, mask, filter, route.
//! - [`eval`]: expression evaluation, HL7 value conversion, functions, lookups, templates.
//! - [`record`]: the record envelope and the output document type.
//! - [`mllp`]: the MLLP listener source (tokio), feeding the executor live, answering ACKs.
//! - [`amqp`]: the AMQP 0-9-1 source (a queue consumer acknowledging each message once its
//!   record is durable) and sink (a publisher with confirms).
//! - [`bus`]: what the `kafka` and `amqp` sources share: running the pipeline over their
//!   consumer threads.
//! - [`kafka`]: the Kafka source (a consumer group member feeding the executor live,
//!   committing offsets once records are durable) and the Kafka sink (idempotent producer).
//! - [`sink`], [`dlq`], [`audit`]: what gets written.
//! - [`spill`]: an unnamed temporary file, sealed under a key held in memory only, where the
//!   X12 source parks an interchange's transaction sets until its trailers come.
//! - [`http_sink`]: `http` sinks (JSON Lines POSTed per batch), with [`retry`] (backoff with
//!   full jitter) and [`throttle`] (a token bucket per sink, or shared through the state store).
//! - [`object_stores`]: S3, Azure Blob and GCS: object-store `files` sources (listing, once per
//!   object version across runs, streamed reads) and uploads of `jsonl`/`csv` sinks.
//! - [`sinks`]: `postgres` sinks (a table per output schema, one transaction per batch).
//! - [`findings`]: every finding code the runtime emits ([`FINDINGS`]).
//! - [`state`]: the state store (SQLite or PostgreSQL): runs, their inputs and checkpoints;
//!   DLQ replays; shared throttle buckets.
//! - [`replay`], [`purge`]: `sluice dlq replay` (all or nothing) and `sluice dlq purge`
//!   (atomic, audited).
//! - [`testing`]: one `sluice test` case through the real executor, isolated in a temporary
//!   directory.
//! - [`progress`]: live counts of a run for watchers on other threads.
//! - [`secrets`], [`time`], [`hl7`]: secret references, clock and HL7 time conversions, the
//!   door to the HL7 crate.
//!
//! Invariants kept here: every record that enters leaves through a sink, the DLQ or a filter,
//! and [`RunSummary::balanced`] checks `records_in == delivered + dlq + filtered`; no data value
//! appears in errors, DLQ reasons or the audit log; with a fixed clock, output is byte-identical
//! across runs. With a state store, a file run saves checkpoints and an interrupted run resumes
//! with every record in its outputs exactly once ([`state`]); `http` sinks are at least once
//! (a resume may send again what was sent after the last checkpoint, under the same
//! idempotency key); `postgres` sinks are exactly once (a batch written again is skipped by
//! record id or updated by key). A request an `http` sink gives up on sends its records to the DLQ: they
//! count as `dlq`, not delivered, and the run goes on.

pub mod access;
pub mod amqp;
pub mod audit;
pub mod bus;
pub mod compile;
pub mod counts;
pub mod dlq;
pub mod error;
pub mod eval;
pub mod executor;
pub mod fhir_output;
pub mod fhir_path;
pub mod fhir_rest;
pub mod fhir_source;
pub mod finance;
pub mod findings;
pub mod groups;
pub mod hl7;
pub mod http_sink;
pub mod kafka;
pub mod keys;
pub mod mllp;
pub mod oauth;
pub mod object_stores;
pub mod operator;
pub(crate) mod pem_files;
pub mod plain_template;
pub mod progress;
pub mod purge;
pub mod record;
pub mod replay;
pub mod retention;
pub mod retry;
pub mod secrets;
pub mod sink;
pub mod sinks;
pub mod source;
pub mod spill;
pub mod stages;
pub mod state;
pub mod sync_source;
pub mod testing;
pub mod throttle;
pub mod time;
pub(crate) mod tls_cause;
pub mod vault;
pub mod webhooks;
pub mod x12_path;
pub mod x12_source;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
    /// New run, resume of an unfinished one, or new run replacing an unfinished one.
    pub start: Start,
    /// Set it (from a signal handler) to stop a file run: it drains, saves a checkpoint and
    /// returns a summary with `interrupted`. Listening sources handle SIGINT and SIGTERM
    /// themselves.
    pub stop: Option<Arc<AtomicBool>>,
    /// Where the run publishes its counts after each batch, for a watcher on another thread
    /// (a progress line, a metrics endpoint).
    pub progress: Option<Arc<progress::Progress>>,
}

/// How `sluice run` starts, with respect to an unfinished run in the state store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// A new run; refused (RT012) while the state store holds an unfinished one.
    #[default]
    New,
    /// Continue the unfinished run from its checkpoint (`--resume`).
    Resume,
    /// Abandon the unfinished run, if any, and start a new one (`--restart`).
    Restart,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub plan_hash: String,
    pub run_id: String,
    #[serde(flatten)]
    pub records: counts::RecordCounts,
    pub per_source: Vec<(String, u64)>,
    /// Lines written per sink component (for an `http` sink: records the endpoint accepted).
    pub per_sink: Vec<(String, u64)>,
    /// Retries per `http` sink (attempts after the first of each request), in this invocation.
    pub per_sink_retries: Vec<(String, u64)>,
    pub elapsed_ms: u64,
    pub records_per_second: f64,
    /// `records_in == delivered + dlq + filtered`.
    pub balanced: bool,
    /// A signal stopped the run before its input ended; with a state store, `sluice run
    /// --resume` continues it.
    pub interrupted: bool,
    /// For a resumed run: the records already durable when this invocation started (the
    /// counts above cover the whole run, from its first record).
    pub resumed_from: Option<u64>,
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
    if webhooks::serves(plan) {
        return Err(RunError::new(
            findings::WEBHOOK_SERVE,
            format!("pipeline `{}` has webhook sources: it is served, not run", plan.pipeline),
        )
        .with_help("serve it with `sluice serve PIPELINE --listen 127.0.0.1:8443`"));
    }
    let compiled = compile::Compiled::new(plan, &clock)?;
    let (run_id, t, resumed_from) = if mllp::listens(plan) {
        refuse_resume(
            options,
            plan,
            "listens for MLLP: there is no position to resume from",
            "peers resend every message they got no ACK for",
        )?;
        let run_id = run_id(&plan.hash, &clock.seed());
        announce_run_id(options, &run_id);
        let t = mllp::serve(&compiled, &clock, &run_id, options.threads, events, options.progress.clone())?;
        (run_id, t, None)
    } else if finance::plaid_source::syncs(plan) {
        refuse_resume(
            options,
            plan,
            "syncs from Plaid: its positions are its Items' cursors",
            "each Item goes on from its last saved /transactions/sync cursor",
        )?;
        let run_id = run_id(&plan.hash, &clock.seed());
        announce_run_id(options, &run_id);
        let t = finance::plaid_source::serve(&compiled, &clock, &run_id, options.threads, options.progress.clone())?;
        (run_id, t, None)
    } else if finance::quickbooks_source::syncs(plan) {
        refuse_resume(
            options,
            plan,
            "syncs from QuickBooks Online: its positions are its entities' cursors",
            "each entity goes on from its last saved cursor",
        )?;
        let run_id = run_id(&plan.hash, &clock.seed());
        announce_run_id(options, &run_id);
        let t =
            finance::quickbooks_source::serve(&compiled, &clock, &run_id, options.threads, options.progress.clone())?;
        (run_id, t, None)
    } else if finance::source::syncs(plan) {
        refuse_resume(
            options,
            plan,
            "syncs from Stripe: its positions are its object lists' cursors",
            "each list goes on from its last saved cursor",
        )?;
        let run_id = run_id(&plan.hash, &clock.seed());
        announce_run_id(options, &run_id);
        let t = finance::source::serve(&compiled, &clock, &run_id, options.threads, options.progress.clone())?;
        (run_id, t, None)
    } else if fhir_rest::syncs(plan) {
        refuse_resume(
            options,
            plan,
            "syncs from a FHIR server: its positions are its tables' cursors",
            "each table goes on from its last saved cursor",
        )?;
        let run_id = run_id(&plan.hash, &clock.seed());
        announce_run_id(options, &run_id);
        let t = fhir_rest::serve(&compiled, &clock, &run_id, options.threads, options.progress.clone())?;
        (run_id, t, None)
    } else if amqp::consumes(plan) {
        refuse_resume(
            options,
            plan,
            "consumes from an AMQP queue: its positions are the server's unacknowledged messages",
            "the server delivers again every message not acknowledged",
        )?;
        let run_id = run_id(&plan.hash, &clock.seed());
        announce_run_id(options, &run_id);
        let stop = options.stop.clone();
        let t =
            amqp::source::serve(&compiled, &clock, &run_id, options.threads, stop, options.progress.clone(), events)?;
        (run_id, t, None)
    } else if kafka::consumes(plan) {
        refuse_resume(
            options,
            plan,
            "consumes from Kafka: its positions are the consumer group's offsets",
            "the group goes on from its last committed offsets",
        )?;
        let run_id = run_id(&plan.hash, &clock.seed());
        announce_run_id(options, &run_id);
        let stop = options.stop.clone();
        let t =
            kafka::source::serve(&compiled, &clock, &run_id, options.threads, stop, options.progress.clone(), events)?;
        (run_id, t, None)
    } else {
        let (run_id, inputs, control) = start_files_run(&compiled, &clock, options)?;
        announce_run_id(options, &run_id);
        let resumed_from = (options.start == Start::Resume).then_some(control.start.records);
        tracing::info!(
            run_id = %run_id,
            pipeline = %plan.pipeline,
            plan_hash = %plan.hash,
            inputs = inputs.len(),
            resumed_from = resumed_from.unwrap_or(0),
            "run started"
        );
        let objects: Vec<state::InputFile> = inputs.iter().filter(|i| i.etag.is_some()).cloned().collect();
        let t = executor::execute(&compiled, &clock, &run_id, options.threads, executor::Feed::Files(inputs), control)?;
        if !t.interrupted {
            move_read_objects(&compiled, &clock, &run_id, &objects)?;
        }
        (run_id, t, resumed_from)
    };
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64();
    let this_invocation = t.records.records_in - resumed_from.unwrap_or(0);
    tracing::info!(
        run_id = %run_id,
        records_in = t.records.records_in,
        delivered = t.records.delivered,
        dlq = t.records.dlq,
        filtered = t.records.filtered,
        interrupted = t.interrupted,
        elapsed_ms = elapsed.as_millis() as u64,
        "run ended"
    );
    Ok(RunSummary {
        pipeline: plan.pipeline.clone(),
        plan_hash: plan.hash.clone(),
        run_id,
        records: t.records,
        per_source: t.per_source,
        per_sink: t.per_sink,
        per_sink_retries: t.per_sink_retries,
        elapsed_ms: elapsed.as_millis() as u64,
        records_per_second: if secs > 0.0 { this_invocation as f64 / secs } else { 0.0 },
        balanced: t.records.balanced(),
        interrupted: t.interrupted,
        resumed_from,
    })
}

/// `sluice serve`: serves the pipeline's webhook endpoints until SIGINT or SIGTERM
/// ([`webhooks::serve`]), then returns the summary of what this process processed.
pub fn serve_with_events(
    plan: &Plan,
    options: &RunOptions,
    serve: &webhooks::ServeOptions,
    events: Option<std::sync::mpsc::Sender<webhooks::ServeEvent>>,
) -> Result<RunSummary, RunError> {
    let started = std::time::Instant::now();
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    // Before the DLQ's own check: without a key, the refusal names the webhook queue (RT045).
    let seal = webhooks::queue_seal(plan)?;
    let compiled = compile::Compiled::new(plan, &clock)?;
    let run_id = run_id(&plan.hash, &clock.seed());
    announce_run_id(options, &run_id);
    let t =
        webhooks::serve(&compiled, &clock, &run_id, options.threads, serve, seal, events, options.progress.clone())?;
    let secs = started.elapsed().as_secs_f64();
    Ok(RunSummary {
        pipeline: plan.pipeline.clone(),
        plan_hash: plan.hash.clone(),
        run_id,
        records: t.records,
        per_source: t.per_source,
        per_sink: t.per_sink,
        per_sink_retries: t.per_sink_retries,
        elapsed_ms: started.elapsed().as_millis() as u64,
        records_per_second: if secs > 0.0 { t.records.records_in as f64 / secs } else { 0.0 },
        balanced: t.records.balanced(),
        interrupted: t.interrupted,
        resumed_from: None,
    })
}

/// `after: {move_to, tag}` of object-store sources, once a run has completed: this run's
/// objects (`this_run`) and those earlier runs took that are still in place
/// ([`object_stores::after`]). The objects tagged are recorded in the state store, so later
/// runs do not tag them again; this run's objects found gone are recorded in the audit log.
fn move_read_objects(
    compiled: &compile::Compiled<'_>,
    clock: &time::Clock,
    run_id: &str,
    this_run: &[state::InputFile],
) -> Result<(), RunError> {
    let plan = compiled.plan;
    let acts = plan.components.iter().any(|c| match &c.kind {
        sluice_compiler::plan::ComponentKind::Source(s) => {
            s.store.as_ref().is_some_and(|p| p.move_to.is_some() || !p.tags.is_empty())
        }
        _ => false,
    });
    if !acts {
        return Ok(());
    }
    let store = plan.state.as_ref().map(|target| state::Store::open(target, Some(&plan.pipeline))).transpose()?;
    let mut taken: std::collections::HashSet<(String, String)> =
        this_run.iter().filter_map(|i| Some((i.path.clone(), i.etag.clone()?))).collect();
    let mut tagged = std::collections::HashSet::new();
    if let Some(store) = &store {
        taken.extend(store.taken_objects(&plan.pipeline)?);
        tagged = store.tagged_objects(&plan.pipeline)?;
    }
    let done = object_stores::after::after_taken(compiled, this_run, &taken, &tagged);
    for gone in &done.gone {
        // The log line does not name the object (a key may hold a name); the audit log, which
        // names every object records came from, does.
        let entry = ObjectGone {
            event: "object_gone",
            run: run_id,
            component: &gone.component,
            object: &gone.url,
            etag: &gone.etag,
            reason: gone.reason,
        };
        if let Err(e) = operator::record(plan, clock, "object_gone", entry) {
            tracing::warn!(code = e.code, error = %e.message, "an object gone not recorded in the audit log");
        }
    }
    if let Some(store) = &store {
        for (url, etag) in &done.tagged {
            // Not recorded: the next run asks the store again and finds the tags there.
            if let Err(e) = store.record_tagged(&plan.pipeline, url, etag) {
                tracing::warn!(code = e.code, error = %e.message, "a tagged object not recorded in the state store");
            }
        }
    }
    tracing::info!(moved = done.moved, tagged = done.tagged.len(), "objects handled after the run");
    Ok(())
}

/// The audit entry of an object of a run found gone at its `after` step (RT184).
#[derive(serde::Serialize)]
struct ObjectGone<'a> {
    event: &'static str,
    /// The run whose `after` step found it gone (the one that read it, unless a 404 came to
    /// an earlier run's object).
    run: &'a str,
    component: &'a str,
    /// Its URL, as record entries name it.
    object: &'a str,
    etag: &'a str,
    reason: &'static str,
}

/// Tells the watcher, if any, which run this is.
fn announce_run_id(options: &RunOptions, run_id: &str) {
    if let Some(p) = &options.progress {
        p.set_run_id(run_id);
    }
}

/// `--resume` continues a file run from its checkpoint; a listening or syncing source keeps its
/// own positions (ACKs, cursors, offsets), so there is nothing to resume and a plain run goes on
/// where the last one stopped. `why` follows "pipeline `NAME` ..."; `instead` says what a plain
/// run does.
fn refuse_resume(options: &RunOptions, plan: &Plan, why: &str, instead: &str) -> Result<(), RunError> {
    if options.start != Start::Resume {
        return Ok(());
    }
    Err(RunError::new(findings::NOTHING_TO_RESUME, format!("pipeline `{}` {why}", plan.pipeline))
        .with_help(format!("run it without `--resume`: {instead}")))
}

/// Decides where a file run starts (new, resumed, restarted), checks that a resume reads what
/// the interrupted run read, and records the run in the state store. Returns the run id, the
/// input files and the run's [`executor::RunControl`].
fn start_files_run(
    compiled: &compile::Compiled<'_>,
    clock: &time::Clock,
    options: &RunOptions,
) -> Result<(String, Vec<state::InputFile>, executor::RunControl), RunError> {
    let plan = compiled.plan;
    let stop = options.stop.clone();
    let Some(target) = &plan.state else {
        if options.start == Start::Resume {
            return Err(RunError::new(
                findings::NOTHING_TO_RESUME,
                format!("pipeline `{}` has no state store, so no run of it can be resumed", plan.pipeline),
            )
            .with_help("add `state: {path: ...}` to the pipeline to keep checkpoints; run without `--resume` now"));
        }
        let control = executor::RunControl { stop, progress: options.progress.clone(), ..Default::default() };
        let inputs = executor::file_inputs(compiled, &Default::default())?;
        return Ok((run_id(&plan.hash, &clock.seed()), inputs, control));
    };
    let store = state::Store::open(target, Some(&plan.pipeline))?;
    let every = std::time::Duration::from_millis(target.checkpoint_every_ms.max(1));
    let unfinished = store.unfinished(&plan.pipeline)?;
    match (options.start, unfinished) {
        (Start::Resume, None) => Err(RunError::new(
            findings::NOTHING_TO_RESUME,
            format!("pipeline `{}` has no unfinished run in `{}`", plan.pipeline, target.shown()),
        )
        .with_help("its last run completed (or none ran); run without `--resume`")),
        (Start::New, Some(row)) => Err(RunError::new(
            findings::RUN_UNFINISHED,
            format!(
                "run {} of pipeline `{}` did not finish ({}, {} records durable at its last checkpoint)",
                row.run_id,
                plan.pipeline,
                row.status.as_str(),
                row.checkpoint.records
            ),
        )
        .with_help(
            "`sluice run --resume` continues it; `sluice run --restart` abandons it and starts over (its outputs are truncated)",
        )),
        (Start::Resume, Some(row)) => {
            if row.plan_hash != plan.hash {
                return Err(RunError::new(
                    findings::RESUME_PLAN_CHANGED,
                    format!(
                        "run {} was started with plan {}, and the pipeline now compiles to plan {}",
                        row.run_id, row.plan_hash, plan.hash
                    ),
                )
                .with_help("undo the change to the specs (and run from the same directory) to resume, or start over with `--restart`"));
            }
            for input in &row.inputs {
                let changed = match compiled.stores.get(input.source) {
                    Some(remote) => object_stores::list::changed(remote, input)?,
                    None => input.changed(),
                };
                if let Some(why) = changed {
                    return Err(RunError::new(
                        findings::RESUME_INPUT_CHANGED,
                        format!("input `{}` {why} since run {} started", input.path, row.run_id),
                    )
                    .with_help("restore the file to resume, or start over with `--restart`"));
                }
            }
            let resumes = store.resumed(row.id, &clock.now())?;
            tracing::info!(run_id = %row.run_id, records = row.checkpoint.records, resumes, "resuming from the last checkpoint");
            let control = executor::RunControl {
                start: row.checkpoint,
                resumes,
                store: Some((store, row.id, every)),
                stop,
                progress: options.progress.clone(),
            };
            Ok((row.run_id, row.inputs, control))
        }
        (Start::New | Start::Restart, unfinished) => {
            if let Some(row) = unfinished {
                store.set_status(row.id, state::Status::Abandoned, &clock.now())?;
            }
            let run_id = run_id(&plan.hash, &clock.seed());
            // Object-store sources leave out the objects earlier runs took.
            let reads_objects = plan.components.iter().enumerate().any(|(i, _)| compiled.stores.get(i).is_some());
            let taken = if reads_objects { store.taken_objects(&plan.pipeline)? } else { Default::default() };
            let inputs = executor::file_inputs(compiled, &taken)?;
            let start = state::Checkpoint::default();
            let id = store.begin(&run_id, &plan.pipeline, &plan.hash, &clock.now(), &inputs, &start)?;
            let control = executor::RunControl {
                start,
                resumes: 0,
                store: Some((store, id, every)),
                stop,
                progress: options.progress.clone(),
            };
            Ok((run_id, inputs, control))
        }
    }
}
