//! The DLQ in the state store (`dlq: {store: state}`): the `dlq_entries` table, one row per
//! DLQ entry, for both backends. A row holds the entry exactly as the DLQ file would hold its
//! line (`entry`: the same JSON, `raw` sealed the same way, the entry id as associated data),
//! plus the columns that find it: the pipeline, the entry id, the run and the record's `seq`
//! in it, the stage, the code and the time. `id` is the store's own key, in insertion order:
//! entries read back in that order are in the order the file would hold them.
//!
//! Invariants (with [`crate::dlq::Out`], which writes the rows, and [`crate::replay`]):
//! - A batch of rows is one transaction ([`Store::append_dlq`]): after a crash the table holds
//!   whole batches only. The writer commits its pending rows before anything claims them (an
//!   ACK, a checkpoint, the end of the run), so a checkpoint that counts record `n` is saved
//!   after every row of records `1..=n` is committed.
//! - A resume deletes the run's rows of records after its checkpoint ([`Store::dlq_cut_back`]:
//!   `seq > records`), the counterpart of cutting a file back to its checkpoint length; a new
//!   file run starts the pipeline's DLQ over ([`Store::dlq_clear`]), as it truncates a DLQ file.
//!   So `kill -9` at any moment and `--resume` give each entry exactly once.
//! - A replay records the table's highest key for the pipeline before it starts
//!   ([`Store::dlq_mark`]); undoing it deletes the replay's rows above that key
//!   ([`Store::dlq_undo`]), as cutting files back undoes its appends.
//! - A purge deletes its rows in one transaction ([`Store::dlq_purge`]): all or none; so does a
//!   key rotation replace the entries it re-encrypts ([`Store::dlq_replace`]).
//! - Rows are only ever the pipeline's own: every statement names the pipeline.

use super::{Store, Value, store_error, text};
use crate::error::RunError;
use sluice_compiler::plan::StateTarget;

/// Rows per `INSERT` statement (several statements per transaction when a batch holds more):
/// few round trips to PostgreSQL, few statements to prepare for SQLite, and far below either's
/// limit on parameters.
const ROWS_PER_INSERT: usize = 100;

/// One DLQ entry as a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqRow {
    pub entry_id: String,
    pub run_id: String,
    /// The record's number in its run (a part entry has its record's).
    pub seq: u64,
    pub stage: String,
    pub code: String,
    pub at: String,
    /// The entry's JSON, as the DLQ file's line.
    pub entry: String,
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Store {
    /// Inserts `rows` for `pipeline`, in order, in one transaction.
    pub fn append_dlq(&mut self, pipeline: &str, rows: &[DlqRow]) -> Result<(), RunError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql: Vec<String> = rows
            .chunks(ROWS_PER_INSERT)
            .map(|chunk| {
                let values: Vec<String> = (0..chunk.len())
                    .map(|r| {
                        let b = r * 7 + 1;
                        format!(
                            "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO dlq_entries (pipeline, entry_id, run_id, seq, stage, code, at, entry) VALUES {}",
                    values.join(", ")
                )
            })
            .collect();
        let statements: Vec<(&str, Vec<Value>)> = sql
            .iter()
            .zip(rows.chunks(ROWS_PER_INSERT))
            .map(|(sql, chunk)| {
                let mut params = Vec::with_capacity(1 + chunk.len() * 7);
                params.push(text(pipeline));
                for row in chunk {
                    params.extend([
                        text(&row.entry_id),
                        text(&row.run_id),
                        int(row.seq),
                        text(&row.stage),
                        text(&row.code),
                        text(&row.at),
                        text(&row.entry),
                    ]);
                }
                (sql.as_str(), params)
            })
            .collect();
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| store_error(&self.shown, self.key, "write DLQ entries", e))
    }

    /// Deletes every DLQ entry of `pipeline` (a new file run starts its DLQ over).
    pub fn dlq_clear(&self, pipeline: &str) -> Result<(), RunError> {
        self.query("clear the DLQ", "DELETE FROM dlq_entries WHERE pipeline = $1", &[text(pipeline)])?;
        Ok(())
    }

    /// Deletes run `run_id`'s entries of records after `records` (a resume, back to its
    /// checkpoint), and returns how many of the run's entries are left.
    pub fn dlq_cut_back(&self, pipeline: &str, run_id: &str, records: u64) -> Result<u64, RunError> {
        self.query(
            "cut the DLQ back to the checkpoint",
            "DELETE FROM dlq_entries WHERE pipeline = $1 AND run_id = $2 AND seq > $3",
            &[text(pipeline), text(run_id), int(records)],
        )?;
        let rows = self.query(
            "read the DLQ",
            "SELECT count(*) FROM dlq_entries WHERE pipeline = $1 AND run_id = $2",
            &[text(pipeline), text(run_id)],
        )?;
        Ok(self.returned("read the DLQ", rows)?.max(0) as u64)
    }

    /// The highest key of `pipeline`'s entries (0 for none): a replay's rows will be above it.
    pub fn dlq_mark(&self, pipeline: &str) -> Result<u64, RunError> {
        let rows = self.query(
            "read the DLQ",
            "SELECT CAST(COALESCE(max(id), 0) AS BIGINT) FROM dlq_entries WHERE pipeline = $1",
            &[text(pipeline)],
        )?;
        Ok(self.returned("read the DLQ", rows)?.max(0) as u64)
    }

    /// Deletes the entries replay `run_id` added above `mark` (undoing it).
    pub fn dlq_undo(&self, pipeline: &str, run_id: &str, mark: u64) -> Result<(), RunError> {
        self.query(
            "undo a replay's DLQ entries",
            "DELETE FROM dlq_entries WHERE pipeline = $1 AND run_id = $2 AND id > $3",
            &[text(pipeline), text(run_id), int(mark)],
        )?;
        Ok(())
    }

    /// Deletes every entry of `pipeline` with one of `ids`, in one transaction.
    pub fn dlq_purge(&mut self, pipeline: &str, ids: &[String]) -> Result<(), RunError> {
        let statements: Vec<(&str, Vec<Value>)> = ids
            .iter()
            .map(|id| ("DELETE FROM dlq_entries WHERE pipeline = $1 AND entry_id = $2", vec![text(pipeline), text(id)]))
            .collect();
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| store_error(&self.shown, self.key, "purge DLQ entries", e))
    }

    /// Replaces the JSON of rows by their store key (a key rotation's re-sealed entries), in
    /// one transaction.
    pub fn dlq_replace(&mut self, pipeline: &str, rows: &[(i64, String)]) -> Result<(), RunError> {
        let statements: Vec<(&str, Vec<Value>)> = rows
            .iter()
            .map(|(key, entry)| {
                (
                    "UPDATE dlq_entries SET entry = $1 WHERE pipeline = $2 AND id = $3",
                    vec![text(entry), text(pipeline), Value::Int(*key)],
                )
            })
            .collect();
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| store_error(&self.shown, self.key, "re-encrypt DLQ entries", e))
    }

    /// Every entry of `pipeline`, in the order written: its key and its JSON.
    pub fn dlq_entries(&self, pipeline: &str) -> Result<Vec<(i64, String)>, RunError> {
        let exists = {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.has_table("dlq_entries").map_err(|e| self.err("read the DLQ", e))?
        };
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "read the DLQ",
            "SELECT id, entry FROM dlq_entries WHERE pipeline = $1 ORDER BY id",
            &[text(pipeline)],
        )?;
        let bad = || self.err("read the DLQ", "a row is not as this Sluice wrote it");
        rows.into_iter()
            .map(|r| match (r.first().and_then(Value::int), r.get(1).and_then(Value::text)) {
                (Some(id), Some(entry)) => Ok((id, entry.to_string())),
                _ => Err(bad()),
            })
            .collect()
    }

    /// [`Store::dlq_entries`] of the store of `target`, read without the lock (`sluice dlq
    /// list` while a run goes on), and without creating a store that is not there yet.
    pub fn dlq_entries_in(target: &StateTarget, pipeline: &str) -> Result<Vec<(i64, String)>, RunError> {
        match Store::open_for_reading(target)? {
            Some(store) => store.dlq_entries(pipeline),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dir: &std::path::Path) -> StateTarget {
        StateTarget {
            kind: "sqlite".into(),
            path: dir.join("state.db").display().to_string(),
            url: None,
            checkpoint_every_ms: 1000,
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-dlq-table-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn row(run: &str, seq: u64) -> DlqRow {
        DlqRow {
            entry_id: format!("{run}-{seq}"),
            run_id: run.into(),
            seq,
            stage: "validate".into(),
            code: "RT207".into(),
            at: "t".into(),
            entry: format!("{{\"id\":\"{run}-{seq}\"}}"),
        }
    }

    fn ids(store: &Store, pipeline: &str) -> Vec<String> {
        store.dlq_entries(pipeline).unwrap().into_iter().map(|(_, e)| e[7..e.len() - 2].to_string()).collect()
    }

    #[test]
    fn rows_are_appended_cut_back_undone_and_purged_per_pipeline() {
        let dir = temp("ops");
        let mut store = Store::open(&target(&dir), Some("p")).unwrap();
        // More rows than one INSERT holds, in one transaction, in order.
        let rows: Vec<DlqRow> = (1..=250).map(|seq| row("r", seq)).collect();
        store.append_dlq("p", &rows).unwrap();
        store.append_dlq("other", &[row("r", 1)]).unwrap();
        assert_eq!(ids(&store, "p").len(), 250);
        assert_eq!(ids(&store, "p")[249], "r-250");
        // A resume back to record 100: the run keeps its first 100 rows; others are untouched.
        assert_eq!(store.dlq_cut_back("p", "r", 100).unwrap(), 100);
        assert_eq!(ids(&store, "other"), ["r-1"]);
        // A replay above the mark, undone.
        let mark = store.dlq_mark("p").unwrap();
        store.append_dlq("p", &[row("replay", 101), row("replay", 102)]).unwrap();
        assert_eq!(ids(&store, "p").len(), 102);
        store.dlq_undo("p", "replay", mark).unwrap();
        assert_eq!(ids(&store, "p").len(), 100);
        // A purge.
        store.dlq_purge("p", &["r-1".into(), "r-2".into()]).unwrap();
        assert_eq!(ids(&store, "p")[0], "r-3");
        // Read without the lock, as `sluice dlq list` does.
        assert_eq!(Store::dlq_entries_in(&target(&dir), "p").unwrap().len(), 98);
        store.dlq_clear("p").unwrap();
        assert!(ids(&store, "p").is_empty());
        assert_eq!(ids(&store, "other").len(), 1);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_of_version_1_gets_the_table_and_version_2() {
        let dir = temp("migrate");
        let path = dir.join("state.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, pipeline TEXT NOT NULL,
                 plan_hash TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                 resumes BIGINT NOT NULL DEFAULT 0, inputs TEXT NOT NULL, checkpoint TEXT NOT NULL);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        // Reading an older store that has no table yet finds no entries.
        assert!(Store::dlq_entries_in(&target(&dir), "p").unwrap().is_empty());
        let mut store = Store::open(&target(&dir), Some("p")).unwrap();
        store.append_dlq("p", &[row("r", 1)]).unwrap();
        assert_eq!(ids(&store, "p"), ["r-1"]);
        drop(store);
        let version: i64 =
            rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
