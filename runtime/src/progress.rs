//! Live counters of a run, for whoever watches it from another thread (a progress line on a
//! terminal, a metrics endpoint). The writer thread publishes its totals once per batch; a
//! reader takes a [`Snapshot`].
//!
//! Invariants:
//! - Counts only, names of components, and times: never a value from a record.
//! - A snapshot is consistent (taken under one lock), and its counts never go down during a
//!   run; `done` is set once, after the last batch.
//! - The run id is set once, as soon as the run knows it (before its first record).

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

/// The counts at one moment (over the whole run; a resumed run starts from its checkpoint's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub records: crate::counts::RecordCounts,
    pub per_source: Vec<(String, u64)>,
    pub per_sink: Vec<(String, u64)>,
    /// Checkpoints saved by this invocation.
    pub checkpoints: u64,
    /// The run has ended (its last batch is written).
    pub done: bool,
}

/// Shared between the writer (which publishes) and any watcher.
#[derive(Debug)]
pub struct Progress {
    current: Mutex<Snapshot>,
    started: Instant,
    run_id: OnceLock<String>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { current: Mutex::new(Snapshot::default()), started: Instant::now(), run_id: OnceLock::new() }
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress::default()
    }

    /// The latest published counts.
    pub fn snapshot(&self) -> Snapshot {
        self.current.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// When the watcher was created (for rates).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The id of the run, once the run has started (a resumed run keeps its first id).
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.get().map(String::as_str)
    }

    /// Records the run id (the first call wins).
    pub(crate) fn set_run_id(&self, run_id: &str) {
        let _ = self.run_id.set(run_id.to_string());
    }

    /// Replaces the counts (the writer, once per batch).
    pub(crate) fn publish(&self, update: impl FnOnce(&mut Snapshot)) {
        if let Ok(mut s) = self.current.lock() {
            update(&mut s);
        }
    }
}
