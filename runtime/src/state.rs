//! The state store: one SQLite database per pipeline (`state: {path}`) holding a row per run,
//! with the run's frozen input list and its latest checkpoint, so an interrupted run can be
//! resumed (`sluice run --resume`); and the DLQ replays (`sluice dlq replay`): each replay with
//! the output lengths it started from, and each replayed DLQ record with its outcome.
//!
//! A checkpoint says: the first `records` records of the run (in reading order) are durable in
//! every output, and each output file was `len` bytes long at that moment. The writer saves one
//! only after flushing and `sync_data`-ing every output, so the bytes it counts are on disk; a
//! resume cuts each output back to its length (dropping whatever a crash left after it, partial
//! lines included) and reads on from record `records + 1`. Hence exactly once, for append-only
//! file outputs, whatever moment a crash hits.
//!
//! Invariants:
//! - One process per state store at a time: [`Store::open`] takes an exclusive lock on
//!   `<path>.lock` (released by the OS when the process dies, even by `kill -9`), so a crashed
//!   run is told apart from one still running.
//! - A checkpoint row is replaced in one transaction with `synchronous = FULL`: after a crash
//!   the store holds the last complete checkpoint, never half of one.
//! - A replay is all or nothing: its records are marked replayed, with the replay marked
//!   completed, in one transaction after its outputs are synced; a replay that did not
//!   complete is undone (outputs cut back to its start lengths) before the next one.
//! - Nothing here holds a data value: paths, counts, hashes, lengths, ids and times only.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::RunError;
use crate::findings;

/// Version of the tables below, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    plan_hash   TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    resumes     INTEGER NOT NULL DEFAULT 0,
    inputs      TEXT NOT NULL,
    checkpoint  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, id);
CREATE TABLE IF NOT EXISTS replays (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    outputs     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replayed (
    entry_id    TEXT PRIMARY KEY,
    replay      INTEGER NOT NULL REFERENCES replays (id),
    outcome     TEXT NOT NULL
);
";

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Started and not finished: either still running (the store is locked) or killed.
    Running,
    /// Stopped by a signal after a final checkpoint.
    Interrupted,
    /// Stopped by an error; the last checkpoint still holds.
    Failed,
    Completed,
    /// Replaced by a new run (`--restart`).
    Abandoned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Interrupted => "interrupted",
            Status::Failed => "failed",
            Status::Completed => "completed",
            Status::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "interrupted" => Status::Interrupted,
            "failed" => Status::Failed,
            "completed" => Status::Completed,
            "abandoned" => Status::Abandoned,
            _ => Status::Running,
        }
    }
}

/// One input file as it was when the run started: a resume reads the same files, and refuses
/// to if any of them changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Component index of the source.
    pub source: usize,
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 when the file system has none).
    pub modified_ns: u64,
}

impl InputFile {
    pub fn stat(source: usize, path: &Path) -> Result<InputFile, RunError> {
        let meta = std::fs::metadata(path).map_err(|e| RunError::io("read", path, &e))?;
        Ok(InputFile {
            source,
            path: path.to_string_lossy().into_owned(),
            size: meta.len(),
            modified_ns: mtime_ns(&meta),
        })
    }

    /// Why the file is no longer what the run read, if it is not.
    pub fn changed(&self) -> Option<&'static str> {
        match std::fs::metadata(&self.path) {
            Err(_) => Some("is gone"),
            Ok(m) if m.len() != self.size => Some("changed size"),
            Ok(m) if mtime_ns(&m) != self.modified_ns => Some("was modified"),
            Ok(_) => None,
        }
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Counts as the writer keeps them (see [`crate::executor::Totals`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub records_in: u64,
    pub delivered: u64,
    pub dlq: u64,
    pub filtered: u64,
    pub warnings: u64,
    pub per_source: Vec<u64>,
    pub per_sink: Vec<u64>,
    /// Parts dropped from records that went on (absent in older checkpoints).
    #[serde(default)]
    pub parts_dropped: u64,
}

/// The durable point of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Records (in reading order, from the first) whose every output is durable.
    pub records: u64,
    pub counts: Counts,
    /// Each output file (sinks, DLQ, audit) and its length in bytes at the checkpoint.
    pub outputs: Vec<(String, u64)>,
    /// The audit chain's head: the `hash` of the last entry written (or the genesis hash).
    pub audit_head: String,
    pub at: String,
}

/// A run as the store holds it.
#[derive(Clone, Debug)]
pub struct RunRow {
    /// The store's own key for the run.
    pub id: i64,
    pub run_id: String,
    pub plan_hash: String,
    pub status: Status,
    pub resumes: u32,
    pub inputs: Vec<InputFile>,
    pub checkpoint: Checkpoint,
}

/// An open state store, locked for this process.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Held for the store's lifetime: the lock is the file's, released when it is closed.
    _lock: File,
}

fn store_error(path: &Path, what: &str, e: impl std::fmt::Display) -> RunError {
    RunError::new(findings::STATE, format!("state store `{}`: cannot {what}: {e}", path.display())).with_help(
        "check that the `state.path` directory is writable and the file is a Sluice state store; \
         move a damaged file aside to start over",
    )
}

impl Store {
    /// Opens (creating if needed) the store at `path` and locks it for this process.
    pub fn open(path: &Path) -> Result<Store, RunError> {
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| RunError::io("create directory", parent, &e))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| RunError::io("create", &lock_path, &e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(RunError::new(
                    findings::STATE_LOCKED,
                    format!("state store `{}` is in use by another `sluice run`", path.display()),
                )
                .with_help("wait for that run to finish, or stop it (Ctrl-C or SIGTERM lets it checkpoint)"));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(RunError::io("lock", &lock_path, &e)),
        }
        let conn = Connection::open(path).map_err(|e| store_error(path, "open it", e))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(|e| store_error(path, "set it up", e))?;
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| store_error(path, "read it", e))?;
        if version > SCHEMA_VERSION {
            return Err(RunError::new(
                findings::STATE,
                format!(
                    "state store `{}` was written by a newer Sluice (store version {version}, this one reads {SCHEMA_VERSION})",
                    path.display()
                ),
            )
            .with_help("run the newer Sluice, or point `state.path` at a new file"));
        }
        conn.execute_batch(SCHEMA).map_err(|e| store_error(path, "create its tables", e))?;
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(|e| store_error(path, "write its version", e))?;
        Ok(Store { conn, path: path.to_path_buf(), _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> RunError {
        store_error(&self.path, what, e)
    }

    /// The pipeline's latest run that did not complete and was not abandoned, if any.
    pub fn unfinished(&self, pipeline: &str) -> Result<Option<RunRow>, RunError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, run_id, plan_hash, status, resumes, inputs, checkpoint FROM runs
                 WHERE pipeline = ?1 ORDER BY id DESC LIMIT 1",
                params![pipeline],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err("read its runs", e))?;
        let Some((id, run_id, plan_hash, status, resumes, inputs, checkpoint)) = row else { return Ok(None) };
        let status = Status::parse(&status);
        if matches!(status, Status::Completed | Status::Abandoned) {
            return Ok(None);
        }
        let inputs = serde_json::from_str(&inputs).map_err(|e| self.err("read a run's inputs", e))?;
        let checkpoint = serde_json::from_str(&checkpoint).map_err(|e| self.err("read a checkpoint", e))?;
        Ok(Some(RunRow { id, run_id, plan_hash, status, resumes, inputs, checkpoint }))
    }

    /// Records a new run with its inputs and an empty checkpoint; returns its key.
    pub fn begin(
        &self,
        run_id: &str,
        pipeline: &str,
        plan_hash: &str,
        at: &str,
        inputs: &[InputFile],
        checkpoint: &Checkpoint,
    ) -> Result<i64, RunError> {
        let inputs = serde_json::to_string(inputs).map_err(|e| self.err("write a run", e))?;
        let checkpoint = serde_json::to_string(checkpoint).map_err(|e| self.err("write a run", e))?;
        self.conn
            .execute(
                "INSERT INTO runs (run_id, pipeline, plan_hash, status, started_at, updated_at, inputs, checkpoint)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?5, ?6)",
                params![run_id, pipeline, plan_hash, at, inputs, checkpoint],
            )
            .map_err(|e| self.err("write a run", e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks run `id` as running again and counts the resume.
    pub fn resumed(&self, id: i64, at: &str) -> Result<u32, RunError> {
        self.conn
            .query_row(
                "UPDATE runs SET status = 'running', resumes = resumes + 1, updated_at = ?2 WHERE id = ?1
                 RETURNING resumes",
                params![id, at],
                |r| r.get(0),
            )
            .map_err(|e| self.err("write a run", e))
    }

    /// Replaces run `id`'s checkpoint (one transaction, synced).
    pub fn save(&self, id: i64, checkpoint: &Checkpoint) -> Result<(), RunError> {
        let text = serde_json::to_string(checkpoint).map_err(|e| self.err("write a checkpoint", e))?;
        self.conn
            .execute("UPDATE runs SET checkpoint = ?2, updated_at = ?3 WHERE id = ?1", params![id, text, checkpoint.at])
            .map_err(|e| self.err("write a checkpoint", e))?;
        Ok(())
    }

    pub fn set_status(&self, id: i64, status: Status, at: &str) -> Result<(), RunError> {
        self.conn
            .execute("UPDATE runs SET status = ?2, updated_at = ?3 WHERE id = ?1", params![id, status.as_str(), at])
            .map_err(|e| self.err("write a run", e))?;
        Ok(())
    }
}

/// A replay that started and did not complete.
#[derive(Clone, Debug)]
pub struct PendingReplay {
    pub id: i64,
    pub run_id: String,
    /// Each output and its length when the replay started.
    pub outputs: Vec<(String, u64)>,
}

impl Store {
    /// Opens the store to read only, without the lock (`sluice dlq list` while a run goes on).
    /// `None` when there is no store yet.
    pub fn open_read_only(path: &Path) -> Result<Option<Connection>, RunError> {
        if !path.exists() {
            return Ok(None);
        }
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map(Some)
            .map_err(|e| store_error(path, "open it", e))
    }

    /// The outcome of every replayed DLQ record, by entry id (`delivered`, `dlq`, `filtered`).
    pub fn replayed_outcomes(conn: &Connection) -> Result<std::collections::HashMap<String, String>, String> {
        let table_exists: bool = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'replayed'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)
            .map_err(|e| e.to_string())?;
        if !table_exists {
            return Ok(Default::default());
        }
        let mut stmt = conn
            .prepare(
                "SELECT entry_id, outcome FROM replayed JOIN replays ON replays.id = replayed.replay
                 WHERE replays.status = 'completed'",
            )
            .map_err(|e| e.to_string())?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    /// See [`Store::replayed_outcomes`].
    pub fn replayed(&self) -> Result<std::collections::HashMap<String, String>, RunError> {
        Store::replayed_outcomes(&self.conn).map_err(|e| self.err("read its replays", e))
    }

    /// The pipeline's replay that started and neither completed nor was undone, if any.
    pub fn pending_replay(&self, pipeline: &str) -> Result<Option<PendingReplay>, RunError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, run_id, outputs FROM replays WHERE pipeline = ?1 AND status = 'running'
                 ORDER BY id DESC LIMIT 1",
                params![pipeline],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
            )
            .optional()
            .map_err(|e| self.err("read its replays", e))?;
        let Some((id, run_id, outputs)) = row else { return Ok(None) };
        let outputs = serde_json::from_str(&outputs).map_err(|e| self.err("read a replay", e))?;
        Ok(Some(PendingReplay { id, run_id, outputs }))
    }

    /// Records a replay about to start, with its outputs' lengths; returns its key.
    pub fn begin_replay(
        &self,
        run_id: &str,
        pipeline: &str,
        at: &str,
        outputs: &[(String, u64)],
    ) -> Result<i64, RunError> {
        let outputs = serde_json::to_string(outputs).map_err(|e| self.err("write a replay", e))?;
        self.conn
            .execute(
                "INSERT INTO replays (run_id, pipeline, status, started_at, updated_at, outputs)
                 VALUES (?1, ?2, 'running', ?3, ?3, ?4)",
                params![run_id, pipeline, at, outputs],
            )
            .map_err(|e| self.err("write a replay", e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks replay `id` undone (its outputs were cut back) or failed.
    pub fn end_replay(&self, id: i64, status: &str, at: &str) -> Result<(), RunError> {
        self.conn
            .execute("UPDATE replays SET status = ?2, updated_at = ?3 WHERE id = ?1", params![id, status, at])
            .map_err(|e| self.err("write a replay", e))?;
        Ok(())
    }

    /// Completes replay `id`: every replayed record with its outcome, in one transaction.
    pub fn complete_replay(&mut self, id: i64, at: &str, outcomes: &[(String, &str)]) -> Result<(), RunError> {
        let path = self.path.clone();
        let fail = |e: rusqlite::Error| store_error(&path, "write a replay", e);
        let tx = self.conn.transaction().map_err(fail)?;
        {
            let mut insert = tx
                .prepare("INSERT OR REPLACE INTO replayed (entry_id, replay, outcome) VALUES (?1, ?2, ?3)")
                .map_err(fail)?;
            for (entry, outcome) in outcomes {
                insert.execute(params![entry, id, outcome]).map_err(fail)?;
            }
        }
        tx.execute("UPDATE replays SET status = 'completed', updated_at = ?2 WHERE id = ?1", params![id, at])
            .map_err(fail)?;
        tx.commit().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn runs_and_checkpoints_round_trip() {
        let dir = temp("round");
        let path = dir.join("state.db");
        let store = Store::open(&path).unwrap();
        assert!(store.unfinished("p").unwrap().is_none());
        let input = dir.join("in.hl7");
        std::fs::write(&input, "MSH|^~\\&|\r").unwrap();
        let inputs = vec![InputFile::stat(0, &input).unwrap()];
        let id = store.begin("r1", "p", "sha256:a", "t0", &inputs, &Checkpoint::default()).unwrap();
        let cp = Checkpoint {
            records: 64,
            counts: Counts { records_in: 64, delivered: 60, dlq: 1, filtered: 3, ..Counts::default() },
            outputs: vec![("out.jsonl".into(), 1234)],
            audit_head: "ab".repeat(32),
            at: "t1".into(),
        };
        store.save(id, &cp).unwrap();
        let row = store.unfinished("p").unwrap().unwrap();
        assert_eq!((row.run_id.as_str(), row.status, row.resumes), ("r1", Status::Running, 0));
        assert_eq!(row.checkpoint, cp);
        assert_eq!(row.inputs, inputs);
        assert_eq!(row.inputs[0].changed(), None);
        assert!(store.unfinished("other").unwrap().is_none());
        assert_eq!(store.resumed(id, "t2").unwrap(), 1);
        store.set_status(id, Status::Completed, "t3").unwrap();
        assert!(store.unfinished("p").unwrap().is_none());
        std::fs::write(&input, "MSH|^~\\&|x\r").unwrap();
        assert_eq!(inputs[0].changed(), Some("changed size"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_process_is_locked_out() {
        let dir = temp("lock");
        let path = dir.join("state.db");
        let first = Store::open(&path).unwrap();
        // A second open file description of the lock file: the lock is per description, so
        // this stands for another process.
        let second = Store::open(&path).err().unwrap();
        assert_eq!(second.code, findings::STATE_LOCKED);
        drop(first);
        assert!(Store::open(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused() {
        let dir = temp("newer");
        let path = dir.join("state.db");
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        let e = Store::open(&path).err().unwrap();
        assert_eq!(e.code, findings::STATE);
        assert!(e.message.contains("newer"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
