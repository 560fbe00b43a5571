//! What the sync sources (`fhir.rest`, `stripe`, `quickbooks`, `plaid`) share: the state store
//! their cursors live in ([`open_store`], [`load_cursor`], [`save_cursor`]), one thread per
//! source fetching pages from an API while the executor runs the pipeline on what they hand on
//! ([`feed`], [`drive`]), and the count of records handed on and not yet durable ([`Pending`],
//! [`hand_on`]).
//!
//! Invariants:
//! - A sync source saves a cursor only after [`Pending::drain`] returned `true` for the
//!   records that cursor covers, so a run that stops early never moves a cursor past a record
//!   that was not made durable.
//! - Every record handed on is counted pending before it is sent and uncounted when it is
//!   durable or when the executor is gone (the send failed), so a drain never waits forever.
//! - [`drive`] returns only once every sync thread ended; the executor's error wins over a
//!   sync's, and a sync's error is returned once the records it handed on are durable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::compile::Compiled;
use crate::error::RunError;
use crate::executor::{self, Completion, Feed, RawInput, Totals};
use crate::findings;
use crate::state::Store;
use crate::time::Clock;

/// The state store of a run of `kind` sources (`stripe`), which keep their cursors there.
pub fn open_store(c: &Compiled<'_>, kind: &str) -> Result<Arc<Store>, RunError> {
    let Some(target) = c.plan.state.as_ref() else {
        return Err(RunError::new(
            findings::PLAN_INVALID,
            format!("a {kind} source needs a state store for its cursors"),
        ));
    };
    Ok(Arc::new(Store::open(target, Some(&c.plan.pipeline))?))
}

/// The channel a sync thread hands records on through. Bounded: a slow pipeline slows the
/// fetching, not memory.
pub fn feed() -> (crossbeam_channel::Sender<RawInput>, crossbeam_channel::Receiver<RawInput>) {
    crossbeam_channel::bounded::<RawInput>(256)
}

/// A source's saved cursor under `key`. A cursor that does not read (written by another
/// version) is read as none: its data is read again from the start, and an idempotent sink
/// absorbs it.
pub fn load_cursor<T: serde::de::DeserializeOwned>(
    store: &Store,
    pipeline: &str,
    source: &str,
    key: &str,
) -> Result<Option<T>, RunError> {
    let saved = store.fhir_cursor(pipeline, source, key)?;
    Ok(saved.as_deref().and_then(|s| serde_json::from_str(s).ok()))
}

/// Saves a source's cursor under `key` at `at` (call only once the records it covers are
/// durable: [`Pending::drain`]).
pub fn save_cursor<T: serde::Serialize>(
    store: &Store,
    pipeline: &str,
    source: &str,
    key: &str,
    cursor: &T,
    at: &str,
) -> Result<(), RunError> {
    let json = serde_json::to_string(cursor)
        .map_err(|_| RunError::new(findings::INTERNAL, format!("the cursor of `{source}` cannot be written")))?;
    store.save_fhir_cursor(pipeline, source, key, &json, at)
}

/// Records handed on and not yet durable.
#[derive(Default)]
pub struct Pending {
    count: Mutex<u64>,
    moved: Condvar,
}

impl Pending {
    pub fn add(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    pub fn done(&self) {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *c = c.saturating_sub(1);
        self.moved.notify_all();
    }

    /// Waits until none is pending, or the executor is gone; returns whether none is.
    pub fn drain(&self, gone: &AtomicBool) -> bool {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *c > 0 {
            if gone.load(Ordering::Relaxed) {
                return false;
            }
            c = self.moved.wait_timeout(c, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

/// Sends `raw` (its `completion` is set here) to the executor, counted pending in `pending`
/// until durable. `false`: the executor is gone, nothing was sent.
pub fn hand_on(tx: &crossbeam_channel::Sender<RawInput>, pending: &Arc<Pending>, mut raw: RawInput) -> bool {
    pending.add();
    let done = Arc::clone(pending);
    raw.completion = Some(Completion::new(move |_| done.done()));
    if tx.send(raw).is_err() {
        pending.done();
        return false;
    }
    true
}

/// One sync source's thread: its name (for the thread and messages) and what it runs, given
/// the state store, the pipeline's name, the run's start time and the executor's "gone" flag.
pub type SyncJob = (Arc<str>, Box<dyn FnOnce(&Store, &str, &str, &AtomicBool) -> Result<(), RunError> + Send>);

/// Runs the pipeline on the records the `jobs` hand on through `feeds` (one bounded channel
/// each), one thread per job, and returns the totals once every thread ended. `kind` names
/// the sources in messages (`fhir.rest`, `stripe`).
#[allow(clippy::too_many_arguments)]
pub fn drive(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    progress: Option<Arc<crate::progress::Progress>>,
    store: Arc<Store>,
    feeds: Vec<crossbeam_channel::Receiver<RawInput>>,
    jobs: Vec<SyncJob>,
    kind: &str,
) -> Result<Totals, RunError> {
    if jobs.is_empty() {
        return Err(RunError::new(findings::PLAN_INVALID, format!("the plan has no {kind} source")));
    }
    let gone = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (name, job) in jobs {
        let (store, gone, pipeline, at) = (Arc::clone(&store), Arc::clone(&gone), c.plan.pipeline.clone(), clock.now());
        let handle = std::thread::Builder::new()
            .name(format!("sluice-{}-{name}", kind.replace('.', "-")))
            .spawn(move || job(&store, &pipeline, &at, &gone))
            .map_err(|_| RunError::new(findings::INTERNAL, format!("cannot start the {kind} sync thread")))?;
        handles.push(handle);
    }
    let control = executor::RunControl { progress, ..Default::default() };
    let totals = executor::execute(c, clock, run_id, threads, Feed::Live(feeds), control);
    gone.store(true, Ordering::Relaxed);
    let mut failure = None;
    for h in handles {
        let ended =
            h.join().unwrap_or_else(|_| Err(RunError::new(findings::INTERNAL, format!("a {kind} sync thread failed"))));
        if let Err(e) = ended {
            failure.get_or_insert(e);
        }
    }
    let totals = totals?;
    failure.map_or(Ok(totals), Err)
}
