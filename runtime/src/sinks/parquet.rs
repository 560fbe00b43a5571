//! `parquet` sinks: a directory of Parquet files (Snappy-compressed), with the columns of a
//! `postgres` table of the same records (`sluice_compiler::plan::pg_table::columns`), typed by
//! the plan's Parquet schema (`ParquetSinkPlan::schema`): `bigint` -> int64, `numeric` ->
//! double, `boolean`, `date` -> DATE (int32 days), `timestamptz` -> TIMESTAMP (int64 UTC
//! microseconds), everything else (text, lists and structs as JSON) -> UTF-8 strings.
//!
//! A worker turns each record into a row of typed [`Cell`]s ([`row_line`]); a value its
//! column type cannot hold sends the record to the DLQ (`RT609`). The writer thread buffers
//! the rows of each open file and writes a row group every [`ROW_GROUP`] rows.
//!
//! Files and crashes (Parquet files cannot be appended to):
//! - A file is written under a hidden temporary name (`.<name>.tmp`, which Parquet readers
//!   skip), closed when it holds `roll_rows` rows, or when the row groups written to it reach
//!   `roll_bytes` bytes (checked after each row group; the footer comes on top), or at a
//!   checkpoint, and renamed to
//!   `<run_id>-<seq>.parquet` (`seq`: its first record's number, 12 digits) at the next
//!   checkpoint or at the end of the run, never before: a visible file is always complete,
//!   and holds only records a checkpoint covers (or, between the renames and the save of that
//!   checkpoint, records it is about to cover).
//! - At the start of a run the sink deletes this run id's temporary files; a new run also
//!   deletes this run id's finished files (a run again with `--fixed-clock` gives the same
//!   files); a resumed run deletes the finished files whose first record is after its
//!   checkpoint (renamed by a checkpoint that was not saved). Each file starts after the
//!   checkpoint before it, so a resume writes every record after its checkpoint again, into
//!   new files, and each record is in exactly one visible file. A live feed keeps all files.
//! - Errors name the sink's directory, never a file in it: a partition directory's name is a
//!   value of the records.
//! - With `partition_by`, files go into `<column>=<value>/` directories (Hive style); the
//!   value is percent-encoded outside `[A-Za-z0-9._-]` (and a leading `.`), a missing one is
//!   `__HIVE_DEFAULT_PARTITION__`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde::{Deserialize, Serialize};
use sluice_compiler::plan::ParquetSinkPlan;

use super::column_values;
use crate::error::RunError;
use crate::findings;
use crate::record::Doc;

/// Rows per row group.
pub const ROW_GROUP: usize = 8192;

/// The partition directory of a row without a value there (Hive's name).
pub const NO_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One value of a row, typed as its column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Micros(i64),
}

/// The row of a finalized record, as the JSON of its cells; `Err` names the column whose
/// value its type cannot hold (never the value: it may be PHI).
pub fn row_line(doc: &Doc, record_id: &str, plan: &ParquetSinkPlan) -> Result<String, String> {
    let mut row = Vec::with_capacity(plan.columns.len());
    for (c, v) in plan.columns.iter().zip(column_values(doc, record_id, &plan.columns)) {
        let Some(v) = v else {
            row.push(Cell::Null);
            continue;
        };
        let bad = || format!("the value of column `{}` is not a valid {}", c.name, c.sql_type);
        row.push(match c.sql_type.as_str() {
            "bigint" => Cell::Int(v.trim().parse().map_err(|_| bad())?),
            "numeric" => Cell::Float(v.trim().parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(bad)?),
            "boolean" => Cell::Bool(v.parse().map_err(|_| bad())?),
            "date" => Cell::Date(date_days(&v).ok_or_else(bad)?),
            "timestamptz" => Cell::Micros(timestamp_micros(&v).ok_or_else(bad)?),
            _ => Cell::Text(v),
        });
    }
    Ok(serde_json::to_string(&row).unwrap_or_default())
}

/// `YYYY-MM-DD` -> days since 1970-01-01.
fn date_days(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if text.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = text[0..4].parse().ok()?;
    let m: u32 = text[5..7].parse().ok()?;
    let d: u32 = text[8..10].parse().ok()?;
    let days = crate::time::days_from_civil(y, m, d);
    // A date that does not exist (02-30) comes back as another one.
    (crate::time::civil_from_days(days) == (y, m, d)).then_some(days as i32)
}

/// RFC 3339 -> microseconds since the epoch (a fraction beyond microseconds is cut).
fn timestamp_micros(text: &str) -> Option<i64> {
    let utc = crate::time::normalize_rfc3339(text)?; // `YYYY-MM-DDTHH:MM:SS[.f]Z`
    let days = date_days(&utc[0..10])? as i64;
    let (h, mi, s): (i64, i64, i64) = (utc[11..13].parse().ok()?, utc[14..16].parse().ok()?, utc[17..19].parse().ok()?);
    let frac = utc[19..].trim_end_matches('Z').strip_prefix('.').unwrap_or("");
    let mut micros = 0i64;
    for ch in frac.chars().chain(std::iter::repeat('0')).take(6) {
        micros = micros * 10 + i64::from(ch.to_digit(10)?);
    }
    Some(((days * 24 + h) * 60 + mi) * 60 * 1_000_000 + s * 1_000_000 + micros)
}

/// The record number at the end of a record id (`<run_id>-<seq>`).
fn seq_of(record_id: &str) -> u64 {
    record_id.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A partition directory's name for a cell.
fn partition_dir(column: &str, cell: &Cell) -> String {
    let value = match cell {
        Cell::Null => return format!("{column}={NO_PARTITION}"),
        Cell::Text(s) => s.clone(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Date(d) => {
            let (y, m, d) = crate::time::civil_from_days(i64::from(*d));
            format!("{y:04}-{m:02}-{d:02}")
        }
        Cell::Micros(us) => us.to_string(),
    };
    let mut out = format!("{column}=");
    for (i, b) in value.bytes().enumerate() {
        // A leading `.` is encoded too: no `..` directory, no hidden one.
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A file being written.
struct Open {
    writer: SerializedFileWriter<File>,
    tmp: PathBuf,
    done: PathBuf,
    rows: u64,
    buffered: Vec<Vec<Cell>>,
    /// The rows' lines' length, summed: what the buffered rows hold, roughly, uncompressed.
    buffered_bytes: usize,
}

/// One `parquet` sink of a run.
pub struct ParquetSink {
    name: Arc<str>,
    dir: PathBuf,
    plan: ParquetSinkPlan,
    schema: Arc<Type>,
    props: Arc<WriterProperties>,
    run_id: String,
    partition_col: Option<usize>,
    /// Open files by partition directory ("" without `partition_by`).
    open: BTreeMap<String, Open>,
    /// Closed files waiting for the next checkpoint to be renamed: (temporary, final).
    closed: Vec<(PathBuf, PathBuf)>,
}

/// How the sink starts: what it deletes of earlier runs ([`ParquetSink::open`]).
#[derive(Clone, Copy)]
pub enum Start {
    New,
    Resume { records: u64 },
    Live,
}

impl ParquetSink {
    /// Creates the directory and cleans it up for this run (see the module header).
    pub fn open(
        name: &Arc<str>,
        dir: &str,
        plan: &ParquetSinkPlan,
        run_id: &str,
        start: Start,
    ) -> Result<ParquetSink, RunError> {
        let schema = parquet::schema::parser::parse_message_type(&plan.schema()).map_err(|e| {
            RunError::new(findings::INTERNAL, format!("parquet sink `{name}`: its schema does not parse: {e}"))
        })?;
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).map_err(|e| RunError::io("create", &dir, &e))?;
        let prefix = format!("{run_id}-");
        for entry in walkdir::WalkDir::new(&dir).into_iter().filter_map(Result::ok) {
            let file_name = entry.file_name().to_string_lossy();
            let doomed = if let Some(tmp) = file_name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
                tmp.starts_with(&prefix)
            } else if let Some(seq) = file_name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".parquet")) {
                match start {
                    Start::New => true,
                    Start::Resume { records } => seq.parse::<u64>().is_ok_and(|s| s > records),
                    Start::Live => false,
                }
            } else {
                false
            };
            if doomed && entry.file_type().is_file() {
                std::fs::remove_file(entry.path()).map_err(|e| RunError::io("remove", &dir, &e))?;
            }
        }
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let partition_col = plan.partition_by.as_ref().and_then(|p| plan.columns.iter().position(|c| &c.name == p));
        Ok(ParquetSink {
            name: Arc::clone(name),
            dir,
            plan: plan.clone(),
            schema: Arc::new(schema),
            props: Arc::new(props),
            run_id: run_id.to_string(),
            partition_col,
            open: BTreeMap::new(),
            closed: Vec::new(),
        })
    }

    /// Adds rows (each a [`row_line`]) in record order.
    pub fn write(&mut self, lines: &[&str]) -> Result<(), RunError> {
        for line in lines {
            let row: Vec<Cell> = serde_json::from_str(line).map_err(|_| {
                RunError::new(findings::INTERNAL, format!("a row for parquet sink `{}` is not readable", self.name))
            })?;
            let part = match self.partition_col {
                Some(i) => partition_dir(&self.plan.columns[i].name, row.get(i).unwrap_or(&Cell::Null)),
                None => String::new(),
            };
            if !self.open.contains_key(&part) {
                let seq = match row.first() {
                    Some(Cell::Text(id)) => seq_of(id),
                    _ => 0,
                };
                let folder = self.dir.join(&part);
                std::fs::create_dir_all(&folder).map_err(|e| RunError::io("create", &self.dir, &e))?;
                let base = format!("{}-{seq:012}.parquet", self.run_id);
                let tmp = folder.join(format!(".{base}.tmp"));
                let file = File::create(&tmp).map_err(|e| RunError::io("create", &self.dir, &e))?;
                let writer = SerializedFileWriter::new(file, Arc::clone(&self.schema), Arc::clone(&self.props))
                    .map_err(|e| self.failed(&e))?;
                self.open.insert(
                    part.clone(),
                    Open { writer, tmp, done: folder.join(base), rows: 0, buffered: Vec::new(), buffered_bytes: 0 },
                );
            }
            let Some(open) = self.open.get_mut(&part) else { continue };
            open.buffered.push(row);
            open.buffered_bytes += line.len();
            open.rows += 1;
            // With a byte limit, row groups are also cut by size, so the bytes on disk are
            // known often enough to roll near it: when the rows waiting, as JSON, reach the
            // limit (Snappy-compressed columns take about a fifth of that here, so a file gets
            // about five row groups; fewer, larger groups keep the footer small, as it holds
            // about 120 bytes per column per group).
            let group_full = open.buffered.len() >= ROW_GROUP
                || self.plan.roll_bytes.is_some_and(|limit| open.buffered_bytes as u64 >= limit);
            if group_full {
                let columns = &self.plan.columns;
                write_group(open, columns).map_err(|e| failed(&self.name, &self.dir, &e))?;
            }
            let too_big = self.plan.roll_bytes.is_some_and(|limit| open.writer.bytes_written() as u64 >= limit);
            if open.rows >= self.plan.roll_rows || too_big {
                self.close(&part)?;
            }
        }
        Ok(())
    }

    fn failed(&self, e: &parquet::errors::ParquetError) -> RunError {
        failed(&self.name, &self.dir, e)
    }

    /// Closes the open file of partition `part` (it is renamed at the next checkpoint).
    fn close(&mut self, part: &str) -> Result<(), RunError> {
        if let Some(mut open) = self.open.remove(part) {
            write_group(&mut open, &self.plan.columns).map_err(|e| self.failed(&e))?;
            let file = open.writer.into_inner().map_err(|e| self.failed(&e))?;
            file.sync_all().map_err(|e| RunError::io("write", &self.dir, &e))?;
            self.closed.push((open.tmp, open.done));
        }
        Ok(())
    }

    /// Closes every open file and renames every closed one to its final name (call before a
    /// checkpoint is saved, and at the end of a run).
    pub fn finish_files(&mut self) -> Result<(), RunError> {
        let parts: Vec<String> = self.open.keys().cloned().collect();
        for part in parts {
            self.close(&part)?;
        }
        let mut folders = Vec::new();
        for (tmp, done) in self.closed.drain(..) {
            std::fs::rename(&tmp, &done).map_err(|e| RunError::io("rename", &self.dir, &e))?;
            if let Some(folder) = done.parent()
                && !folders.contains(&folder.to_path_buf())
            {
                folders.push(folder.to_path_buf());
            }
        }
        // The renames are durable before the checkpoint that counts on them is saved.
        for folder in folders {
            if let Ok(d) = File::open(&folder) {
                d.sync_all().map_err(|e| RunError::io("write", &self.dir, &e))?;
            }
        }
        Ok(())
    }
}

fn failed(name: &str, dir: &Path, e: &parquet::errors::ParquetError) -> RunError {
    RunError::new(findings::PARQUET_WRITE_FAILED, format!("parquet sink `{name}`: cannot write a file in `{}`: {e}", dir.display()))
        .with_help("check the sink's directory (space, permissions); `sluice run --resume` writes the records after the last checkpoint again")
}

/// Writes the buffered rows of `open` as one row group.
fn write_group(
    open: &mut Open,
    columns: &[sluice_compiler::plan::pg_table::PgColumn],
) -> Result<(), parquet::errors::ParquetError> {
    if open.buffered.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(&mut open.buffered);
    open.buffered_bytes = 0;
    let mut group = open.writer.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = group.next_column()? {
        let cells = rows.iter().map(|r| r.get(i).unwrap_or(&Cell::Null));
        let defs: Vec<i16> = cells.clone().map(|c| i16::from(*c != Cell::Null)).collect();
        let required = columns.get(i).is_some_and(|c| c.path.is_empty());
        let defs = if required { None } else { Some(defs.as_slice()) };
        match columns.get(i).map_or("text", |c| c.sql_type.as_str()) {
            "bigint" => {
                let v: Vec<i64> = cells.filter_map(|c| if let Cell::Int(x) = c { Some(*x) } else { None }).collect();
                col.typed::<Int64Type>().write_batch(&v, defs, None)?;
            }
            "timestamptz" => {
                let v: Vec<i64> = cells.filter_map(|c| if let Cell::Micros(x) = c { Some(*x) } else { None }).collect();
                col.typed::<Int64Type>().write_batch(&v, defs, None)?;
            }
            "numeric" => {
                let v: Vec<f64> = cells.filter_map(|c| if let Cell::Float(x) = c { Some(*x) } else { None }).collect();
                col.typed::<DoubleType>().write_batch(&v, defs, None)?;
            }
            "boolean" => {
                let v: Vec<bool> = cells.filter_map(|c| if let Cell::Bool(x) = c { Some(*x) } else { None }).collect();
                col.typed::<BoolType>().write_batch(&v, defs, None)?;
            }
            "date" => {
                let v: Vec<i32> = cells.filter_map(|c| if let Cell::Date(x) = c { Some(*x) } else { None }).collect();
                col.typed::<Int32Type>().write_batch(&v, defs, None)?;
            }
            _ => {
                let v: Vec<ByteArray> = cells
                    .filter_map(|c| if let Cell::Text(x) = c { Some(ByteArray::from(x.as_str())) } else { None })
                    .collect();
                col.typed::<ByteArrayType>().write_batch(&v, defs, None)?;
            }
        }
        col.close()?;
        i += 1;
    }
    group.close()?;
    Ok(())
}

/// Every `parquet` sink of a run, by component index.
pub type ParquetSinks = super::SinkSet<ParquetSink>;

impl ParquetSinks {
    /// Writes one batch: `records` are each record's sink lines (component, line), in order.
    pub fn write_batch<'l>(
        &mut self,
        records: impl Iterator<Item = &'l [(usize, String)]> + Clone,
    ) -> Result<(), RunError> {
        for (component, sink) in self.iter_mut() {
            let lines: Vec<&str> =
                records.clone().flatten().filter(|(c, _)| *c == component).map(|(_, l)| l.as_str()).collect();
            if !lines.is_empty() {
                sink.write(&lines)?;
            }
        }
        Ok(())
    }

    /// [`ParquetSink::finish_files`] for every sink.
    pub fn finish_files(&mut self) -> Result<(), RunError> {
        self.iter_mut().try_for_each(|(_, s)| s.finish_files())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps_convert_and_bad_ones_do_not() {
        assert_eq!(date_days("1970-01-02"), Some(1));
        assert_eq!(date_days("2024-02-30"), None);
        assert_eq!(date_days("20240101"), None);
        assert_eq!(timestamp_micros("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(timestamp_micros("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(timestamp_micros("yesterday"), None);
    }

    #[test]
    fn partition_directories_are_encoded() {
        assert_eq!(partition_dir("d", &Cell::Date(0)), "d=1970-01-01");
        assert_eq!(partition_dir("s", &Cell::Text("a/b".into())), "s=a%2Fb");
        assert_eq!(partition_dir("s", &Cell::Text("..".into())), "s=%2E.");
        assert_eq!(partition_dir("s", &Cell::Null), format!("s={NO_PARTITION}"));
    }
}
