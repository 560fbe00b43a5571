//! The SQLite backend of the state store (`state: {path}`): a database file on this machine.
//!
//! Invariants:
//! - One process per pipeline and store: [`Conn::open`] with a pipeline takes an exclusive
//!   lock on `<path>.<pipeline>.lock` (released by the OS when the process dies, even by
//!   `kill -9`). Runs of other pipelines, and shared throttles, use the same file from other
//!   processes at the same time: SQLite serialises their writes (WAL, with a busy timeout).
//! - `synchronous = FULL`: a committed statement (a checkpoint) survives a power cut.
//! - Statements are written once for both backends with `$1`-style parameters, which SQLite
//!   reads as `?1`: the same numbered parameter, whatever the order it appears in.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;

use super::Value;

/// How long a statement waits for another process's write to finish before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Conn {
    conn: rusqlite::Connection,
    /// Held while the connection is open: the pipeline's lock (none for throttles and reads).
    _lock: Option<File>,
}

/// The lock file of a pipeline's runs in the store at `path`. A name that is not plain letters,
/// digits, `-` and `_` is replaced by a hash of it (it may hold `/`).
pub fn lock_path(path: &Path, pipeline: &str) -> PathBuf {
    let plain = !pipeline.is_empty() && pipeline.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    let name = if plain { pipeline.to_string() } else { super::hash_name(pipeline) };
    PathBuf::from(format!("{}.{name}.lock", path.display()))
}

/// What went wrong while taking the lock.
pub enum LockError {
    Held,
    Io(PathBuf, std::io::Error),
}

impl Conn {
    /// Opens (creating if needed) the database; with `pipeline`, first locks it for that
    /// pipeline.
    pub fn open(path: &Path, pipeline: Option<&str>) -> Result<Result<Conn, String>, LockError> {
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| LockError::Io(parent.to_path_buf(), e))?;
        }
        let lock = match pipeline {
            Some(pipeline) => {
                let lock_path = lock_path(path, pipeline);
                let lock = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| LockError::Io(lock_path.clone(), e))?;
                match lock.try_lock() {
                    Ok(()) => Some(lock),
                    Err(std::fs::TryLockError::WouldBlock) => return Err(LockError::Held),
                    Err(std::fs::TryLockError::Error(e)) => return Err(LockError::Io(lock_path, e)),
                }
            }
            None => None,
        };
        let open = || -> Result<Conn, rusqlite::Error> {
            let conn = rusqlite::Connection::open(path)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // Two processes opening a new store at once both switch it to WAL; SQLite answers
            // the loser SQLITE_BUSY at once, without the busy handler (the switch takes the
            // file whole). Wait for the winner, as the busy timeout would.
            let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
            loop {
                match conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;") {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    done => break done?,
                }
            }
            Ok(Conn { conn, _lock: lock })
        };
        Ok(open().map_err(|e| e.to_string()))
    }

    /// Opens an existing database to read only, without a lock; `None` when there is none.
    pub fn open_read_only(path: &Path) -> Result<Option<Conn>, String> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
        Ok(Some(Conn { conn, _lock: None }))
    }

    /// The store's version (`PRAGMA user_version`).
    pub fn version(&self) -> Result<i64, String> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| e.to_string())
    }

    /// Creates the tables (if missing) and sets the version.
    pub fn create(&self, ddl: &str, version: i64) -> Result<(), String> {
        self.conn.execute_batch(ddl).map_err(|e| e.to_string())?;
        self.conn.execute_batch(&format!("PRAGMA user_version = {version}")).map_err(|e| e.to_string())
    }

    pub fn has_table(&self, table: &str) -> Result<bool, String> {
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)
            .map_err(|e| e.to_string())
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        query(&self.conn, sql, params)
    }

    pub fn transaction(&mut self, statements: &[(&str, Vec<Value>)]) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        for (sql, params) in statements {
            query(&tx, sql, params)?;
        }
        tx.commit().map_err(|e| e.to_string())
    }
}

/// Runs one statement (with or without rows), returning its rows.
fn query(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, String> {
    let sql = sql.replace('$', "?");
    let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let columns = stmt.column_count();
    let bound = params.iter().map(|p| match p {
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Value::Null => rusqlite::types::Value::Null,
    });
    let mut rows = stmt.query(rusqlite::params_from_iter(bound)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Null => Value::Null,
                ValueRef::Real(f) => Value::Int(f as i64),
                ValueRef::Blob(_) => return Err("unexpected binary value".to_string()),
            });
        }
        out.push(values);
    }
    Ok(out)
}
