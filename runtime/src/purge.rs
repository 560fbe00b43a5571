//! DLQ purge (`sluice dlq purge`): removes DLQ records from the pipeline's DLQ (its file or
//! the state store's table), by id or all of those already replayed, and records the operator
//! action in the audit log.
//!
//! Invariants:
//! - Atomic: the DLQ file is rewritten to a temporary file beside it, synced, and renamed over
//!   it; a crash leaves either the old file or the new one, never a mix. In the state store,
//!   the rows are deleted in one transaction.
//! - Audited: a `dlq_purged` entry (the purged record ids and their count, never a value) is
//!   chained onto the pipeline's audit log before the new file replaces the old one, so every
//!   removal is on record. (A crash between the two leaves the entry and the old file: the
//!   records are still there, and the purge can be run again.)
//! - Never beside a run: it takes the state store's lock, and refuses while a run is
//!   unfinished (its checkpoint counts the DLQ's length, which a purge would change).

use std::collections::BTreeSet;

use serde::Serialize;
use sluice_compiler::plan::Plan;

use crate::dlq;
use crate::error::RunError;
use crate::findings;
use crate::state::Store;
use crate::{RunOptions, time};

/// Which DLQ records to purge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Those `sluice dlq replay` has replayed (whatever the outcome: a record that failed
    /// again has a new entry).
    Replayed,
    /// These ids.
    Ids(Vec<String>),
}

/// What a purge did.
#[derive(Clone, Debug, Serialize)]
pub struct PurgeSummary {
    pub pipeline: String,
    /// Records removed (messages, not entries).
    pub purged: u64,
    /// DLQ entries removed (a record has one per failing path).
    pub entries: u64,
    /// Records left in the DLQ.
    pub left: u64,
}

#[derive(Serialize)]
struct Purged<'a> {
    event: &'a str,
    records: u64,
    ids: &'a [String],
}

pub fn purge(plan: &Plan, options: &RunOptions, choice: &Choice) -> Result<PurgeSummary, RunError> {
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    let Some(target) = &plan.state else {
        return Err(RunError::new(
            findings::REPLAY_NEEDS_STATE,
            format!("pipeline `{}` has no state store, so a purge could not be kept from a run", plan.pipeline),
        )
        .with_help("add `state: {path: ...}` to the pipeline: its lock keeps runs and DLQ operations apart"));
    };
    let mut store = Store::open(target, Some(&plan.pipeline))?;
    if let Some(row) = store.unfinished(&plan.pipeline)? {
        return Err(RunError::new(
            findings::RUN_UNFINISHED,
            format!("run {} of pipeline `{}` did not finish ({})", row.run_id, plan.pipeline, row.status.as_str()),
        )
        .with_help("finish it first (`sluice run --resume`) or start over (`--restart`): its checkpoint counts the DLQ as it is"));
    }
    let dlq_path = plan.dlq.as_ref().map(|d| d.path.clone()).unwrap_or_default();
    let in_table = plan.dlq.as_ref().is_some_and(|d| d.in_state_store());
    let dlq_shown = plan.dlq.as_ref().map(|d| d.shown(plan.state.as_ref())).unwrap_or_default();
    let entries = dlq::read_plan_entries(plan)?;
    let known: BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let chosen: BTreeSet<String> = match choice {
        Choice::Replayed => store.replayed()?.into_keys().filter(|id| known.contains(id.as_str())).collect(),
        Choice::Ids(ids) => {
            for id in ids {
                if !known.contains(id.as_str()) {
                    return Err(RunError::new(
                        findings::DLQ_UNKNOWN_RECORD,
                        format!("no DLQ record {id} in {dlq_shown}"),
                    )
                    .with_help("`sluice dlq list PIPELINE` shows the ids"));
                }
            }
            ids.iter().cloned().collect()
        }
    };
    let records_before = known.len() as u64;
    if chosen.is_empty() {
        return Ok(PurgeSummary { pipeline: plan.pipeline.clone(), purged: 0, entries: 0, left: records_before });
    }

    // The audit entry first: a removal is never unrecorded.
    let ids: Vec<String> = chosen.iter().cloned().collect();
    crate::operator::record(
        plan,
        &clock,
        "purge",
        Purged { event: "dlq_purged", records: ids.len() as u64, ids: &ids },
    )?;

    let summary = |removed: u64| PurgeSummary {
        pipeline: plan.pipeline.clone(),
        purged: chosen.len() as u64,
        entries: removed,
        left: records_before - chosen.len() as u64,
    };
    if in_table {
        store.dlq_purge(&plan.pipeline, &ids)?;
        return Ok(summary(entries.iter().filter(|e| chosen.contains(&e.id)).count() as u64));
    }

    // Then the new DLQ file, atomically.
    let text =
        std::fs::read_to_string(&dlq_path).map_err(|e| RunError::io("read", std::path::Path::new(&dlq_path), &e))?;
    let mut kept = String::with_capacity(text.len());
    let mut removed = 0u64;
    for (line, entry) in text.lines().filter(|l| !l.is_empty()).zip(&entries) {
        if chosen.contains(&entry.id) {
            removed += 1;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    crate::operator::replace_file(&dlq_path, kept.as_bytes())?;
    Ok(summary(removed))
}
