//! Sinks that write a table's columns: `postgres` (into a database table), `csv` (into a
//! file) and `parquet` (into a directory of files). The JSON Lines file sink is `crate::sink`, the HTTP sink `crate::http_sink`. The
//! writer thread calls the `postgres` sinks once per batch, before anything of the batch is
//! written to the DLQ or the audit log, so the rows they refuse go to the DLQ instead
//! (`crate::executor`).
//!
//! All take their columns from the records' output schema
//! (`sluice_compiler::plan::pg_table::columns`), and their values from [`column_values`].

pub mod csv;
pub mod ledger;
pub mod parquet;
pub mod postgres;

use sluice_compiler::plan::pg_table::{DELETED_COLUMN, PgColumn};

use crate::dlq::Rejection;
use crate::record::Doc;

/// The sinks of one kind in a run (`http`, `postgres`, `parquet`), each with its component
/// index and its slot in the run's `per_sink` counts. Each kind adds its own batch method.
pub struct SinkSet<S> {
    entries: Vec<(usize, usize, S)>,
}

impl<S> Default for SinkSet<S> {
    fn default() -> Self {
        SinkSet { entries: Vec::new() }
    }
}

impl<S> SinkSet<S> {
    pub fn add(&mut self, component: usize, slot: usize, sink: S) {
        self.entries.push((component, slot, sink));
    }

    /// The `per_sink` slot of component `component`, when it is one of these sinks.
    pub fn slot(&self, component: usize) -> Option<usize> {
        self.entries.iter().find(|(c, _, _)| *c == component).map(|(_, s, _)| *s)
    }

    /// The sinks, in plan order.
    pub fn iter(&self) -> impl Iterator<Item = &S> {
        self.entries.iter().map(|(_, _, s)| s)
    }

    /// The sinks with their component index, in plan order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut S)> {
        self.entries.iter_mut().map(|(c, _, s)| (*c, s))
    }
}

/// Per record of a batch (by position), the sinks that refused it: (component, why).
pub type Refusals = Vec<Vec<(usize, Rejection)>>;

/// Records that sink `component` refused the record at `pos`: once per record and sink, even
/// when the record sent that sink several lines.
pub fn refuse(refused: &mut Refusals, pos: usize, component: usize, why: impl FnOnce() -> Rejection) {
    if refused.len() <= pos {
        refused.resize_with(pos + 1, Vec::new);
    }
    if !refused[pos].iter().any(|(c, _)| *c == component) {
        refused[pos].push((component, why()));
    }
}

/// The values of `columns` in a finalized record (`crate::sink::finalized`), as text: the
/// record id for the column without a path, numbers as written, booleans `true`/`false`,
/// lists and objects as their JSON, `None` for a missing or null value.
pub fn column_values(doc: &Doc, record_id: &str, columns: &[PgColumn]) -> Vec<Option<String>> {
    columns
        .iter()
        .map(|c| {
            if c.path.is_empty() {
                return Some(record_id.to_string());
            }
            if c.path == DELETED_COLUMN {
                // Only a deletion's record has the member (`crate::sink::finalized`).
                return Some(doc.get_dotted(DELETED_COLUMN).is_some().to_string());
            }
            match doc.get_dotted(&c.path)? {
                Doc::Null => None,
                Doc::Str(s) | Doc::Num(s) => Some(s.clone()),
                Doc::Bool(b) => Some(b.to_string()),
                other => Some(other.to_json_string()),
            }
        })
        .collect()
}
