//! DLQ replay (`sluice dlq replay`): sends the raw messages of DLQ records through the
//! pipeline's current plan again, typically after a fix to a mapping, rule or profile.
//!
//! A replay is a run of its own (its own run id, audit entries and a final
//! `dlq_replay_completed` entry) whose records are the DLQ records chosen, each once (a record
//! with several entries, one per failing path, is one message). Its outputs are appended to
//! the pipeline's sinks, DLQ and audit log: a record that fails again gets a new DLQ entry, with
//! a new id; the old entries stay where they are and are marked replayed in the state store.
//!
//! Invariants:
//! - Nothing is lost if the replay fails: it is all or nothing. The state store records the
//!   outputs' lengths before it starts (and, for a DLQ in the state store, the table's highest
//!   key for the pipeline, as the output [`DLQ_TABLE`]); the records are marked replayed (with
//!   their outcomes) only after every output is synced and every DLQ row committed, in one
//!   transaction. A replay that fails, or was killed, is undone (each output cut back to its
//!   length, the replay's DLQ rows above the recorded key deleted) before anything else is
//!   replayed, so its records are still pending and none is delivered twice.
//! - A record is replayed with the key and headers it came with, when its entry kept them
//!   (`envelope`, [`crate::dlq`]): a Kafka sink gets its key and headers again, a mapping its
//!   `envelope(...)` values.
//! - A record is replayed at most once: an id already replayed is refused; if it failed again,
//!   its new entry is the one to replay.
//! - A lone part of a record (a segment `bad_segments: drop` cut out, `StoredEntry::part`) is
//!   never fed to the pipeline: it is not a message. Named by id, the replay refuses (RT025)
//!   before doing anything; replaying every pending record skips them and counts them in
//!   `skipped_parts`.
//! - It never runs beside a run of the same pipeline (the state store's lock) nor while a run
//!   is unfinished (a resume would cut the outputs back past the replay's records).

use std::sync::{Arc, Mutex};

use sluice_compiler::plan::{ComponentKind, Plan};

use crate::dlq::{self, StoredEntry};
use crate::error::RunError;
use crate::executor::{self, Completion, Event, Feed, RawInput};
use crate::state::Store;
use crate::{RunOptions, compile, findings, time};

/// What a replay did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplaySummary {
    pub pipeline: String,
    pub run_id: String,
    /// DLQ records replayed (messages, not entries).
    pub replayed: u64,
    pub delivered: u64,
    pub dlq: u64,
    pub filtered: u64,
    /// An earlier replay that had not completed was undone first.
    pub undid_incomplete_replay: bool,
    /// DLQ entries left alone because each holds a part dropped from a record (a segment), not
    /// a message.
    pub skipped_parts: u64,
    /// Each replayed record's id and outcome, in replay order.
    pub outcomes: Vec<(String, &'static str)>,
}

/// The DLQ records of `entries`, one per id (its first entry), in file order.
pub fn records(entries: &[StoredEntry]) -> Vec<&StoredEntry> {
    let mut seen = std::collections::HashSet::new();
    entries.iter().filter(|e| seen.insert(e.id.as_str())).collect()
}

fn replay_error(code: &'static str, message: String, help: &str) -> RunError {
    RunError::new(code, message).with_help(help)
}

/// The name, among a replay's recorded outputs, of the DLQ in the state store; its "length" is
/// the table's highest key for the pipeline when the replay started. (Not a file name: no
/// output path of a plan has this form.)
pub const DLQ_TABLE: &str = "state store: dlq_entries";

/// Cuts each output back to its recorded length (undoing a replay's appends), and deletes the
/// rows replay `run_id` added to a DLQ in the state store. An output already shorter is left
/// as it is: the replay's own opening may have cut a partial last line a crash had left, which
/// was no record.
fn cut_back(store: &Store, pipeline: &str, run_id: &str, outputs: &[(String, u64)]) -> Result<(), RunError> {
    for (path, len) in outputs {
        if path == DLQ_TABLE {
            store.dlq_undo(pipeline, run_id, *len)?;
            continue;
        }
        let p = std::path::Path::new(path);
        let Ok(meta) = std::fs::metadata(p) else { continue };
        if meta.len() > *len {
            let f = std::fs::OpenOptions::new().write(true).open(p).map_err(|e| RunError::io("open", p, &e))?;
            f.set_len(*len).map_err(|e| RunError::io("truncate", p, &e))?;
            f.sync_all().map_err(|e| RunError::io("sync", p, &e))?;
        }
    }
    Ok(())
}

/// The length of each output file the plan writes, once a partial last line a crash left is
/// cut away (as the replay's own appending would), so that undoing the replay gives back whole
/// lines only; and for a DLQ in the state store, its highest key ([`DLQ_TABLE`]).
fn output_lengths(plan: &Plan, store: &Store) -> Result<Vec<(String, u64)>, RunError> {
    let mut paths: Vec<String> = plan
        .components
        .iter()
        .filter_map(|c| match &c.kind {
            // An `http` sink has no file.
            ComponentKind::Sink(s) if !s.path.is_empty() => Some(s.path.clone()),
            _ => None,
        })
        .collect();
    paths.extend(plan.dlq.iter().filter(|d| !d.in_state_store()).map(|d| d.path.clone()));
    paths.extend(plan.audit.iter().map(|a| a.path.clone()));
    paths.sort();
    paths.dedup();
    let mut lengths = paths
        .into_iter()
        .map(|p| {
            drop(crate::sink::append(&p)?);
            Ok((p.clone(), std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)))
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    if plan.dlq.as_ref().is_some_and(|d| d.in_state_store()) {
        lengths.push((DLQ_TABLE.to_string(), store.dlq_mark(&plan.pipeline)?));
    }
    Ok(lengths)
}

/// Replays the DLQ records `ids` (all that are not replayed yet when empty).
pub fn replay(plan: &Plan, options: &RunOptions, ids: &[String]) -> Result<ReplaySummary, RunError> {
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    let compiled = compile::Compiled::new(plan, &clock)?;
    let Some(target) = &plan.state else {
        return Err(replay_error(
            findings::REPLAY_NEEDS_STATE,
            format!("pipeline `{}` has no state store, so a replay could not be recorded", plan.pipeline),
            "add `state: {path: ...}` to the pipeline: it records which DLQ records were replayed and undoes a replay that fails",
        ));
    };
    let mut store = Store::open(target, Some(&plan.pipeline))?;
    if let Some(row) = store.unfinished(&plan.pipeline)? {
        return Err(replay_error(
            findings::RUN_UNFINISHED,
            format!("run {} of pipeline `{}` did not finish ({})", row.run_id, plan.pipeline, row.status.as_str()),
            "finish it first (`sluice run --resume`) or start over (`--restart`): a resume cuts the outputs back past anything replayed meanwhile",
        ));
    }
    let undid_incomplete_replay = match store.pending_replay(&plan.pipeline)? {
        Some(pending) => {
            cut_back(&store, &plan.pipeline, &pending.run_id, &pending.outputs)?;
            store.end_replay(pending.id, "undone", &clock.now())?;
            true
        }
        None => false,
    };
    let dlq_shown = plan.dlq.as_ref().map(|d| d.shown(plan.state.as_ref())).unwrap_or_default();
    let entries = dlq::read_plan_entries(plan)?;
    let replayed = store.replayed()?;
    let all = records(&entries);
    let mut skipped_parts = 0;
    let chosen: Vec<&StoredEntry> = if ids.is_empty() {
        let pending = all.iter().filter(|e| !replayed.contains_key(&e.id));
        skipped_parts = pending.clone().filter(|e| e.is_part()).count() as u64;
        pending.filter(|e| !e.is_part()).copied().collect()
    } else {
        let mut chosen = Vec::new();
        for id in ids {
            if let Some(outcome) = replayed.get(id) {
                return Err(replay_error(
                    findings::DLQ_UNKNOWN_RECORD,
                    format!("DLQ record {id} was already replayed ({outcome})"),
                    "a record that failed again has a new DLQ entry with a new id: replay that one (`sluice dlq list`)",
                ));
            }
            match all.iter().find(|e| &e.id == id) {
                Some(e) if e.is_part() => {
                    let of = e.part.as_ref().map(|p| p.record.to_string()).unwrap_or_default();
                    return Err(replay_error(
                        findings::DLQ_PART_NOT_REPLAYABLE,
                        format!(
                            "DLQ entry {id} is a segment dropped from record {of}, not a whole message: it cannot be replayed on its own"
                        ),
                        "read it with `sluice dlq show PIPELINE ID --raw`; have the sender correct and resend the message if the segment mattered, then `sluice dlq purge PIPELINE ID`",
                    ));
                }
                Some(e) if !chosen.iter().any(|c: &&StoredEntry| c.id == e.id) => chosen.push(*e),
                Some(_) => {}
                None => {
                    return Err(replay_error(
                        findings::DLQ_UNKNOWN_RECORD,
                        format!("no DLQ record {id} in {dlq_shown}"),
                        "`sluice dlq list PIPELINE` shows the ids",
                    ));
                }
            }
        }
        chosen
    };
    let run_id = crate::run_id(&plan.hash, &format!("replay{}", clock.seed()));
    let mut summary = ReplaySummary {
        pipeline: plan.pipeline.clone(),
        run_id: run_id.clone(),
        replayed: 0,
        delivered: 0,
        dlq: 0,
        filtered: 0,
        undid_incomplete_replay,
        skipped_parts,
        outcomes: Vec::new(),
    };
    if chosen.is_empty() {
        return Ok(summary);
    }

    let outcomes: Arc<Mutex<Vec<(usize, Event)>>> = Arc::default();
    let mut inputs = Vec::with_capacity(chosen.len());
    for (n, e) in chosen.iter().enumerate() {
        let Some(source) =
            plan.components.iter().position(|c| c.name == e.source && matches!(c.kind, ComponentKind::Source(_)))
        else {
            return Err(replay_error(
                findings::DLQ_UNKNOWN_RECORD,
                format!("DLQ record {} came from source `{}`, which the pipeline no longer has", e.id, e.source),
                "restore the source, or leave the record in the DLQ",
            ));
        };
        let unreadable = |m: String| {
            RunError::new(findings::DLQ_UNREADABLE, format!("DLQ {dlq_shown}: {m}")).with_help(
                "an encrypted entry opens only with the key the run used (`dlq.encryption_key`), and only if unaltered",
            )
        };
        let bytes = e.raw_bytes(compiled.dlq_key.as_ref()).map_err(unreadable)?;
        // The key and headers the record first came with (a Kafka key, a finance source's
        // provenance such as `plaid.item`): the pipeline sees the record as it was.
        let bus = e.bus_meta(compiled.dlq_key.as_ref()).map_err(unreadable)?;
        let sink = Arc::clone(&outcomes);
        inputs.push(RawInput {
            source,
            file: Arc::from(e.file.as_str()),
            offset: e.offset,
            index: e.message_index,
            seq: 0,
            bytes,
            problem: None,
            completion: Some(Completion::new(move |d| {
                if let Ok(mut o) = sink.lock() {
                    o.push((n, d.event));
                }
            })),
            bus: bus.map(Arc::new),
        });
    }
    let before = output_lengths(plan, &store)?;
    let replay_key = store.begin_replay(&run_id, &plan.pipeline, &clock.now(), &before)?;
    let result = executor::execute(
        &compiled,
        &clock,
        &run_id,
        options.threads,
        Feed::Records(inputs),
        executor::RunControl::default(),
    );
    let t = match result {
        Ok(t) => t,
        Err(e) => {
            // All or nothing: the records stay pending. If the outputs cannot be cut back now,
            // the replay stays `running` and the next one undoes it first.
            if cut_back(&store, &plan.pipeline, &run_id, &before).is_ok() {
                let _ = store.end_replay(replay_key, "undone", &clock.now());
            }
            return Err(e);
        }
    };
    let mut got =
        std::mem::take(&mut *outcomes.lock().map_err(|_| RunError::new(findings::INTERNAL, "replay outcomes lost"))?);
    got.sort_by_key(|(n, _)| *n);
    if got.len() != chosen.len() {
        cut_back(&store, &plan.pipeline, &run_id, &before)?;
        store.end_replay(replay_key, "undone", &clock.now())?;
        return Err(RunError::new(findings::INTERNAL, "a replayed record got no outcome; the replay was undone"));
    }
    summary.outcomes = got
        .iter()
        .map(|(n, event)| {
            let outcome = match event {
                Event::Delivered => "delivered",
                Event::Dlq => "dlq",
                Event::Filtered => "filtered",
            };
            (chosen[*n].id.clone(), outcome)
        })
        .collect();
    store.complete_replay(replay_key, &clock.now(), &summary.outcomes)?;
    summary.replayed = t.records.records_in;
    summary.delivered = t.records.delivered;
    summary.dlq = t.records.dlq;
    summary.filtered = t.records.filtered;
    Ok(summary)
}
