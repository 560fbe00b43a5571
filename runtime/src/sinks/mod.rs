//! Sinks that write a table's columns: `postgres` (into a database table), `csv` (into a
//! file) and `parquet` (into a directory of files). The JSON Lines file sink is `crate::sink`, the HTTP sink `crate::http_sink`. The
//! writer thread calls the `postgres` sinks once per batch, before anything of the batch is
//! written to the DLQ or the audit log, so the rows they refuse go to the DLQ instead
//! (`crate::executor`).
//!
//! All take their columns from the records' output schema
//! (`sluice_compiler::plan::pg_table::columns`), and their values from [`column_values`].

pub mod csv;
pub mod parquet;
pub mod postgres;

use sluice_compiler::plan::pg_table::PgColumn;

use crate::record::Doc;

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
            match doc.get_dotted(&c.path)? {
                Doc::Null => None,
                Doc::Str(s) | Doc::Num(s) => Some(s.clone()),
                Doc::Bool(b) => Some(b.to_string()),
                other => Some(other.to_json_string()),
            }
        })
        .collect()
}
