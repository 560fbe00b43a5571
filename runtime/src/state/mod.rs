//! The state store: per pipeline, a row per run, with the run's frozen input list and its
//! latest checkpoint, so an interrupted run can be resumed (`sluice run --resume`); the DLQ
//! replays (`sluice dlq replay`): each replay with the output lengths it started from, and each
//! replayed DLQ record with its outcome; and the buckets of shared throttles
//! ([`crate::throttle`]). Two backends behind one [`Store`]: SQLite (`state: {path}`,
//! [`sqlite`]) on one machine, PostgreSQL (`state: {url}`, [`postgres`]) for several
//! instances. The statements are written once, here, for both.
//!
//! A checkpoint says: the first `records` records of the run (in reading order) are durable in
//! every output, and each output file was `len` bytes long at that moment. The writer saves one
//! only after flushing and `sync_data`-ing every output, so the bytes it counts are on disk; a
//! resume cuts each output back to its length (dropping whatever a crash left after it, partial
//! lines included) and reads on from record `records + 1`. Hence exactly once, for append-only
//! file outputs, whatever moment a crash hits.
//!
//! Invariants:
//! - One process per pipeline and store at a time: [`Store::open`] takes the pipeline's lock (a
//!   lock file per pipeline for SQLite, a session advisory lock for PostgreSQL), released when
//!   the process dies, even by `kill -9`, so a crashed run is told apart from one still
//!   running. Other pipelines (and shared throttles) may use the same store meanwhile.
//! - A checkpoint row is replaced in one statement (one transaction; SQLite with
//!   `synchronous = FULL`, PostgreSQL with synchronous commit): after a crash the store holds
//!   the last complete checkpoint, never half of one.
//! - A replay is all or nothing: its records are marked replayed, with the replay marked
//!   completed, in one transaction after its outputs are synced; a replay that did not
//!   complete is undone (outputs cut back to its start lengths) before the next one.
//! - Nothing here holds a data value: paths, counts, hashes, lengths, ids and times only; and
//!   no message shows a PostgreSQL password (`StateTarget::shown` is the URL as written: a
//!   secret reference, or a URL the compiler checked has none).

pub mod connection_tokens;
pub mod cursors;
pub mod dlq;
pub mod object_tags;
pub mod postgres;
pub mod sqlite;
pub mod vault;
pub mod webhooks;
pub mod x12;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_compiler::plan::{StateTarget, pg_url};

use crate::error::RunError;
use crate::findings;

/// Version of the tables below, kept in `PRAGMA user_version` (SQLite) or the `sluice_store`
/// table (PostgreSQL). 2 added `dlq_entries`: a store of version 1 gets the table (every
/// statement is `IF NOT EXISTS`) and its version raised when this Sluice opens it; an older
/// Sluice then refuses it as newer rather than ignore a DLQ it cannot see.
const SCHEMA_VERSION: i64 = 2;

/// The tables, for both backends: `{id}` is each backend's auto-numbered key; `BIGINT` has
/// SQLite's integer affinity.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          {id},
    run_id      TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    plan_hash   TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    resumes     BIGINT NOT NULL DEFAULT 0,
    inputs      TEXT NOT NULL,
    checkpoint  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, id);
CREATE TABLE IF NOT EXISTS replays (
    id          {id},
    run_id      TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    outputs     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replayed (
    entry_id    TEXT PRIMARY KEY,
    replay      BIGINT NOT NULL REFERENCES replays (id),
    outcome     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS throttles (
    name          TEXT PRIMARY KEY,
    next_start_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS dlq_entries (
    id          {id},
    pipeline    TEXT NOT NULL,
    entry_id    TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    stage       TEXT NOT NULL,
    code        TEXT NOT NULL,
    at          TEXT NOT NULL,
    entry       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dlq_entries_by_pipeline ON dlq_entries (pipeline, id);
CREATE INDEX IF NOT EXISTS dlq_entries_by_run ON dlq_entries (pipeline, run_id, seq);
CREATE INDEX IF NOT EXISTS dlq_entries_by_entry ON dlq_entries (pipeline, entry_id);
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
    /// An object's ETag (`path` is then its `s3://`, `az://` or `gs://` URL); absent for a
    /// local file, so the rows written before it existed read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl InputFile {
    pub fn stat(source: usize, path: &Path) -> Result<InputFile, RunError> {
        let meta = std::fs::metadata(path).map_err(|e| RunError::io("read", path, &e))?;
        Ok(InputFile {
            source,
            path: path.to_string_lossy().into_owned(),
            size: meta.len(),
            modified_ns: mtime_ns(&meta),
            etag: None,
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
    #[serde(flatten)]
    pub records: crate::counts::RecordCounts,
    pub per_source: Vec<u64>,
    pub per_sink: Vec<u64>,
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
    /// With the DLQ in the state store: how many DLQ rows the run had committed (its rows of
    /// records up to `records`); a resume checks the table still holds them. Left out for a
    /// DLQ file, whose length is in `outputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq_rows: Option<u64>,
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

/// A replay that started and did not complete.
#[derive(Clone, Debug)]
pub struct PendingReplay {
    pub id: i64,
    pub run_id: String,
    /// Each output and its length when the replay started.
    pub outputs: Vec<(String, u64)>,
}

/// A value bound to, or read from, a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Text(String),
    Bool(bool),
    Null,
}

impl Value {
    fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// A connection to one backend.
enum Conn {
    Sqlite(sqlite::Conn),
    /// Boxed: the client is several times the size of a SQLite handle.
    Postgres(Box<postgres::Conn>),
}

impl Conn {
    /// Runs one statement (`$1`-style parameters), returning its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        match self {
            Conn::Sqlite(c) => c.query(sql, params),
            Conn::Postgres(c) => c.query(sql, params),
        }
    }

    /// Runs the statements in one transaction.
    fn transaction(&mut self, statements: &[(&str, Vec<Value>)]) -> Result<(), String> {
        match self {
            Conn::Sqlite(c) => c.transaction(statements),
            Conn::Postgres(c) => c.transaction(statements),
        }
    }

    fn has_table(&mut self, table: &str) -> Result<bool, String> {
        match self {
            Conn::Sqlite(c) => c.has_table(table),
            Conn::Postgres(c) => c.has_table(table),
        }
    }
}

/// A short, stable name for `text` (lock files, advisory lock keys).
pub(crate) fn hash_name(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The advisory lock key of a pipeline's runs in a PostgreSQL store.
fn pipeline_lock_key(pipeline: &str) -> i64 {
    let digest = Sha256::digest(format!("sluice pipeline {pipeline}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// An open state store: locked for one pipeline (runs, replays, purges), or unlocked (shared
/// throttles, reading).
pub struct Store {
    /// Behind a mutex only so that `&Store` methods can take the connection (the PostgreSQL
    /// client needs `&mut`); one thread uses a store at a time.
    conn: Mutex<Conn>,
    /// The store as messages show it ([`StateTarget::shown`]).
    shown: String,
    /// The `state.path` or `state.url` key, for help texts.
    key: &'static str,
}

fn store_error(shown: &str, key: &str, what: &str, e: impl std::fmt::Display) -> RunError {
    let help = if key == "state.url" {
        "check that the PostgreSQL server in `state.url` is running and reachable, and that its user may create \
         tables in the database"
    } else {
        "check that the `state.path` directory is writable and the file is a Sluice state store; move a damaged \
         file aside to start over"
    };
    RunError::new(findings::STATE, format!("state store `{shown}`: cannot {what}: {e}")).with_help(help)
}

fn locked_error(shown: &str, pipeline: &str) -> RunError {
    RunError::new(
        findings::STATE_LOCKED,
        format!("state store `{shown}` is in use by another `sluice run` of pipeline `{pipeline}`"),
    )
    .with_help("wait for that run to finish, or stop it (Ctrl-C or SIGTERM lets it checkpoint)")
}

/// The PostgreSQL URL of `target`, its secret resolved and checked.
fn postgres_url(target: &StateTarget) -> Result<String, RunError> {
    let written = target.shown();
    let url = crate::secrets::resolve(written, "`state.url`")?;
    let url = String::from_utf8(url.expose().to_vec()).map_err(|_| {
        RunError::new(findings::STATE, format!("state store `{written}`: the URL is not UTF-8 text"))
            .with_help("set it to `postgres://user:password@host:port/database`")
    })?;
    match pg_url::check(&url, true) {
        Ok(()) => Ok(url),
        Err(problem) => {
            let why = match problem {
                pg_url::Problem::NotPostgres => "is not a PostgreSQL URL".to_string(),
                pg_url::Problem::Password => "holds a password".to_string(),
                pg_url::Problem::SslMode(mode) => format!("asks for `sslmode={mode}`, and Sluice connects without TLS"),
            };
            Err(RunError::new(findings::STATE, format!("state store `{written}`: the URL {why}")).with_help(
                "write `postgres://user:password@host:port/database`, with `sslmode=disable` or no `sslmode`",
            ))
        }
    }
}

impl Store {
    /// Opens (creating its tables if needed) the store of `target` and locks it for
    /// `pipeline`; without a pipeline, unlocked (shared throttles).
    pub fn open(target: &StateTarget, pipeline: Option<&str>) -> Result<Store, RunError> {
        let shown = target.shown().to_string();
        let key = if target.url.is_some() { "state.url" } else { "state.path" };
        let fail = |what: &str, e: String| store_error(&shown, key, what, e);
        let newer = |version: i64| {
            RunError::new(
                findings::STATE,
                format!(
                    "state store `{shown}` was written by a newer Sluice (store version {version}, this one reads {SCHEMA_VERSION})"
                ),
            )
            .with_help(format!("run the newer Sluice, or point `{key}` at a new store"))
        };
        let conn = if target.url.is_some() {
            let url = postgres_url(target)?;
            let mut conn = match postgres::Conn::open(&url, pipeline.map(pipeline_lock_key)) {
                Ok(c) => c,
                Err(postgres::OpenError::Held) => return Err(locked_error(&shown, pipeline.unwrap_or_default())),
                Err(postgres::OpenError::Other(e)) => return Err(fail("connect", e)),
            };
            let version = conn
                .create(&SCHEMA.replace("{id}", "BIGSERIAL PRIMARY KEY"), SCHEMA_VERSION)
                .map_err(|e| fail("create its tables", e))?;
            if version > SCHEMA_VERSION {
                return Err(newer(version));
            }
            Conn::Postgres(Box::new(conn))
        } else {
            let path = Path::new(&target.path);
            let conn = match sqlite::Conn::open(path, pipeline) {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(fail("open it", e)),
                Err(sqlite::LockError::Held) => return Err(locked_error(&shown, pipeline.unwrap_or_default())),
                Err(sqlite::LockError::Io(p, e)) => return Err(RunError::io("lock", &p, &e)),
            };
            let version = conn.version().map_err(|e| fail("read it", e))?;
            if version > SCHEMA_VERSION {
                return Err(newer(version));
            }
            conn.create(&SCHEMA.replace("{id}", "INTEGER PRIMARY KEY AUTOINCREMENT"), SCHEMA_VERSION)
                .map_err(|e| fail("create its tables", e))?;
            Conn::Sqlite(conn)
        };
        Ok(Store { conn: Mutex::new(conn), shown, key })
    }

    /// The store as messages show it: its file, or its URL as written.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> RunError {
        store_error(&self.shown, self.key, what, e)
    }

    fn query(&self, what: &str, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, RunError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query(sql, params).map_err(|e| self.err(what, e))
    }

    /// The pipeline's latest run that did not complete and was not abandoned, if any.
    pub fn unfinished(&self, pipeline: &str) -> Result<Option<RunRow>, RunError> {
        let rows = self.query(
            "read its runs",
            "SELECT id, run_id, plan_hash, status, resumes, inputs, checkpoint FROM runs
             WHERE pipeline = $1 ORDER BY id DESC LIMIT 1",
            &[text(pipeline)],
        )?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let bad = || self.err("read its runs", "a row is not as this Sluice wrote it");
        let status = Status::parse(row[3].text().ok_or_else(bad)?);
        if matches!(status, Status::Completed | Status::Abandoned) {
            return Ok(None);
        }
        let inputs =
            serde_json::from_str(row[5].text().ok_or_else(bad)?).map_err(|e| self.err("read a run's inputs", e))?;
        let checkpoint =
            serde_json::from_str(row[6].text().ok_or_else(bad)?).map_err(|e| self.err("read a checkpoint", e))?;
        Ok(Some(RunRow {
            id: row[0].int().ok_or_else(bad)?,
            run_id: row[1].text().ok_or_else(bad)?.to_string(),
            plan_hash: row[2].text().ok_or_else(bad)?.to_string(),
            status,
            resumes: row[4].int().ok_or_else(bad)?.try_into().unwrap_or(u32::MAX),
            inputs,
            checkpoint,
        }))
    }

    /// The first column of the first row, an integer (`RETURNING id`).
    fn returned(&self, what: &str, rows: Vec<Vec<Value>>) -> Result<i64, RunError> {
        rows.first().and_then(|r| r.first()).and_then(Value::int).ok_or_else(|| self.err(what, "no row returned"))
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
        let rows = self.query(
            "write a run",
            "INSERT INTO runs (run_id, pipeline, plan_hash, status, started_at, updated_at, inputs, checkpoint)
             VALUES ($1, $2, $3, 'running', $4, $4, $5, $6) RETURNING id",
            &[text(run_id), text(pipeline), text(plan_hash), text(at), Value::Text(inputs), Value::Text(checkpoint)],
        )?;
        self.returned("write a run", rows)
    }

    /// The objects (URL and ETag) the pipeline's runs took, every run but the abandoned ones
    /// (`--restart`): what a new run of an object-store source leaves out. Read from the runs'
    /// input lists, which [`Store::begin`] writes in the statement that records the run, so
    /// a run is never recorded without the objects it takes.
    pub fn taken_objects(&self, pipeline: &str) -> Result<std::collections::HashSet<(String, String)>, RunError> {
        let rows = self.query(
            "read its runs",
            "SELECT inputs FROM runs WHERE pipeline = $1 AND status <> 'abandoned' AND inputs LIKE '%\"etag\"%'",
            &[text(pipeline)],
        )?;
        let mut taken = std::collections::HashSet::new();
        for row in rows {
            let Some(json) = row.first().and_then(Value::text) else { continue };
            let inputs: Vec<InputFile> = serde_json::from_str(json).map_err(|e| self.err("read a run's inputs", e))?;
            taken.extend(inputs.into_iter().filter_map(|i| i.etag.map(|etag| (i.path, etag))));
        }
        Ok(taken)
    }

    /// The pipeline's run records (their input lists and checkpoints) last written before
    /// `cutoff` (RFC 3339 UTC, compared as text), for `retention.state`. Left out whatever
    /// their age: the newest run (a resume or an incremental run starts from it), runs not
    /// completed or abandoned (they may still be resumed), and runs that took objects from an
    /// object store (their input lists are what keeps a later run from taking them again,
    /// [`Store::taken_objects`]).
    pub fn expired_runs(&self, pipeline: &str, cutoff: &str) -> Result<Vec<i64>, RunError> {
        let rows = self.query(
            "read its runs",
            "SELECT id FROM runs WHERE pipeline = $1 AND updated_at < $2
               AND status IN ('completed', 'abandoned') AND inputs NOT LIKE '%\"etag\"%'
               AND id <> (SELECT MAX(id) FROM runs WHERE pipeline = $1)
             ORDER BY id",
            &[text(pipeline), text(cutoff)],
        )?;
        Ok(rows.iter().filter_map(|r| r.first().and_then(Value::int)).collect())
    }

    /// Deletes run records by key, in one transaction.
    pub fn delete_runs(&self, ids: &[i64]) -> Result<(), RunError> {
        let statements: Vec<(&str, Vec<Value>)> =
            ids.iter().map(|id| ("DELETE FROM runs WHERE id = $1", vec![Value::Int(*id)])).collect();
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| self.err("delete expired runs", e))
    }

    /// Marks run `id` as running again and counts the resume.
    pub fn resumed(&self, id: i64, at: &str) -> Result<u32, RunError> {
        let rows = self.query(
            "write a run",
            "UPDATE runs SET status = 'running', resumes = resumes + 1, updated_at = $2 WHERE id = $1
             RETURNING resumes",
            &[Value::Int(id), text(at)],
        )?;
        Ok(self.returned("write a run", rows)?.try_into().unwrap_or(u32::MAX))
    }

    /// Replaces run `id`'s checkpoint (one statement: one transaction, synced).
    pub fn save(&self, id: i64, checkpoint: &Checkpoint) -> Result<(), RunError> {
        let json = serde_json::to_string(checkpoint).map_err(|e| self.err("write a checkpoint", e))?;
        self.query(
            "write a checkpoint",
            "UPDATE runs SET checkpoint = $2, updated_at = $3 WHERE id = $1",
            &[Value::Int(id), Value::Text(json), text(&checkpoint.at)],
        )?;
        Ok(())
    }

    pub fn set_status(&self, id: i64, status: Status, at: &str) -> Result<(), RunError> {
        self.query(
            "write a run",
            "UPDATE runs SET status = $2, updated_at = $3 WHERE id = $1",
            &[Value::Int(id), text(status.as_str()), text(at)],
        )?;
        Ok(())
    }

    /// The outcome of every replayed DLQ record of `target`, by entry id (`delivered`, `dlq`,
    /// `filtered`), read without the lock (`sluice dlq list` while a run goes on), and without
    /// creating a store that is not there yet.
    pub fn replayed_in(target: &StateTarget) -> Result<HashMap<String, String>, RunError> {
        match Store::open_for_reading(target)? {
            Some(store) => store.replayed(),
            None => Ok(HashMap::new()),
        }
    }

    /// The store of `target`, unlocked, to read: a SQLite file is opened read-only, and not
    /// created (`None` when there is none yet).
    pub fn open_for_reading(target: &StateTarget) -> Result<Option<Store>, RunError> {
        if target.url.is_some() {
            return Store::open(target, None).map(Some);
        }
        let path = Path::new(&target.path);
        let fail = |e: String| store_error(target.shown(), "state.path", "open it", e);
        Ok(sqlite::Conn::open_read_only(path).map_err(fail)?.map(|conn| Store {
            conn: Mutex::new(Conn::Sqlite(conn)),
            shown: target.path.clone(),
            key: "state.path",
        }))
    }

    /// See [`Store::replayed_in`].
    pub fn replayed(&self) -> Result<HashMap<String, String>, RunError> {
        let exists = {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.has_table("replayed").map_err(|e| self.err("read its replays", e))?
        };
        if !exists {
            return Ok(HashMap::new());
        }
        let rows = self.query(
            "read its replays",
            "SELECT entry_id, outcome FROM replayed JOIN replays ON replays.id = replayed.replay
             WHERE replays.status = 'completed'",
            &[],
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.first()?.text()?.to_string(), r.get(1)?.text()?.to_string())))
            .collect())
    }

    /// The pipeline's replay that started and neither completed nor was undone, if any.
    pub fn pending_replay(&self, pipeline: &str) -> Result<Option<PendingReplay>, RunError> {
        let rows = self.query(
            "read its replays",
            "SELECT id, run_id, outputs FROM replays WHERE pipeline = $1 AND status = 'running'
             ORDER BY id DESC LIMIT 1",
            &[text(pipeline)],
        )?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let bad = || self.err("read its replays", "a row is not as this Sluice wrote it");
        let outputs = serde_json::from_str(row[2].text().ok_or_else(bad)?).map_err(|e| self.err("read a replay", e))?;
        Ok(Some(PendingReplay {
            id: row[0].int().ok_or_else(bad)?,
            run_id: row[1].text().ok_or_else(bad)?.to_string(),
            outputs,
        }))
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
        let rows = self.query(
            "write a replay",
            "INSERT INTO replays (run_id, pipeline, status, started_at, updated_at, outputs)
             VALUES ($1, $2, 'running', $3, $3, $4) RETURNING id",
            &[text(run_id), text(pipeline), text(at), Value::Text(outputs)],
        )?;
        self.returned("write a replay", rows)
    }

    /// Marks replay `id` undone (its outputs were cut back) or failed.
    pub fn end_replay(&self, id: i64, status: &str, at: &str) -> Result<(), RunError> {
        self.query(
            "write a replay",
            "UPDATE replays SET status = $2, updated_at = $3 WHERE id = $1",
            &[Value::Int(id), text(status), text(at)],
        )?;
        Ok(())
    }

    /// Completes replay `id`: every replayed record with its outcome, in one transaction.
    pub fn complete_replay(&mut self, id: i64, at: &str, outcomes: &[(String, &str)]) -> Result<(), RunError> {
        let mut statements: Vec<(&str, Vec<Value>)> = outcomes
            .iter()
            .map(|(entry, outcome)| {
                (
                    "INSERT INTO replayed (entry_id, replay, outcome) VALUES ($1, $2, $3)
                     ON CONFLICT (entry_id) DO UPDATE SET replay = excluded.replay, outcome = excluded.outcome",
                    vec![text(entry), Value::Int(id), text(outcome)],
                )
            })
            .collect();
        statements.push((
            "UPDATE replays SET status = 'completed', updated_at = $2 WHERE id = $1",
            vec![Value::Int(id), text(at)],
        ));
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| store_error(&self.shown, self.key, "write a replay", e))
    }

    /// Takes a token of the shared throttle `name` (one start every `interval`): reserves the
    /// next start in one atomic statement and returns how long to wait before it. See
    /// [`crate::throttle`] for the clock each backend uses.
    pub fn take_token(&self, name: &str, interval: Duration) -> Result<Duration, RunError> {
        let interval_ns = i64::try_from(interval.as_nanos()).unwrap_or(i64::MAX / 4).max(1);
        let horizon_ns = interval_ns.saturating_mul(crate::throttle::SHARED_HORIZON_INTERVALS);
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let (now, params) = match &*conn {
            Conn::Sqlite(_) => ("$2".to_string(), vec![text(name), Value::Int(crate::throttle::wall_clock_ns())]),
            Conn::Postgres(_) => {
                ("CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000000 AS BIGINT)".to_string(), vec![text(name)])
            }
        };
        let sql = format!(
            "INSERT INTO throttles (name, next_start_ns) VALUES ($1, {now} + {interval_ns})
             ON CONFLICT (name) DO UPDATE SET next_start_ns = CASE
                 WHEN throttles.next_start_ns > {now} AND throttles.next_start_ns <= {now} + {horizon_ns}
                 THEN throttles.next_start_ns ELSE {now} END + {interval_ns}
             RETURNING next_start_ns - {interval_ns} - ({now})"
        );
        let rows = conn.query(&sql, &params).map_err(|e| self.err("take a throttle token", e))?;
        drop(conn);
        let wait = self.returned("take a throttle token", rows)?;
        Ok(Duration::from_nanos(wait.max(0) as u64))
    }
}

/// Tests: a SQLite store at `path`.
#[cfg(test)]
pub(crate) fn sqlite_target(path: &Path) -> StateTarget {
    StateTarget { kind: "sqlite".into(), path: path.display().to_string(), url: None, checkpoint_every_ms: 1000 }
}

/// Tests: an empty folder of this process for `name`.
#[cfg(test)]
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_checkpoints_round_trip() {
        let dir = temp_dir("round");
        let path = dir.join("state.db");
        let store = Store::open(&sqlite_target(&path), Some("p")).unwrap();
        assert!(store.unfinished("p").unwrap().is_none());
        let input = dir.join("in.hl7");
        std::fs::write(&input, "MSH|^~\\&|\r").unwrap();
        let inputs = vec![InputFile::stat(0, &input).unwrap()];
        let id = store.begin("r1", "p", "sha256:a", "t0", &inputs, &Checkpoint::default()).unwrap();
        let cp = Checkpoint {
            records: 64,
            counts: Counts {
                records: crate::counts::RecordCounts {
                    records_in: 64,
                    delivered: 60,
                    dlq: 1,
                    filtered: 3,
                    ..Default::default()
                },
                ..Counts::default()
            },
            outputs: vec![("out.jsonl".into(), 1234)],
            audit_head: "ab".repeat(32),
            at: "t1".into(),
            dlq_rows: None,
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
        let dir = temp_dir("lock");
        let path = dir.join("state.db");
        let first = Store::open(&sqlite_target(&path), Some("p")).unwrap();
        // A second open file description of the lock file: the lock is per description, so
        // this stands for another process.
        let second = Store::open(&sqlite_target(&path), Some("p")).err().unwrap();
        assert_eq!(second.code, findings::STATE_LOCKED);
        // Another pipeline may use the store meanwhile.
        let other = Store::open(&sqlite_target(&path), Some("other")).unwrap();
        drop(first);
        assert!(Store::open(&sqlite_target(&path), Some("p")).is_ok());
        drop(other);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused() {
        let dir = temp_dir("newer");
        let path = dir.join("state.db");
        rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        let e = Store::open(&sqlite_target(&path), Some("p")).err().unwrap();
        assert_eq!(e.code, findings::STATE);
        assert!(e.message.contains("newer"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[test]
    fn shared_tokens_are_spaced_across_connections() {
        let dir = temp_dir("throttle");
        let target = sqlite_target(&dir.join("state.db"));
        // Two unlocked connections stand for two processes.
        let a = Store::open(&target, None).unwrap();
        let b = Store::open(&target, None).unwrap();
        let interval = Duration::from_secs(10);
        let waits: Vec<Duration> =
            (0..4).map(|i| if i % 2 == 0 { &a } else { &b }.take_token("api", interval).unwrap()).collect();
        assert_eq!(waits[0], Duration::ZERO);
        // No real time passes between the takes worth a 10 s interval: each waits one more.
        for (i, w) in waits.iter().enumerate().skip(1) {
            let expected = interval * i as u32;
            assert!(*w <= expected && *w + Duration::from_secs(1) > expected, "take {i} waits {w:?}");
        }
        // Another name has its own bucket.
        assert_eq!(a.take_token("other", interval).unwrap(), Duration::ZERO);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
