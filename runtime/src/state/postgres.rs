//! The PostgreSQL backend of the state store (`state: {url}`), for several instances (on one
//! or several machines) sharing one store.
//!
//! Invariants:
//! - One process per pipeline and store: [`Conn::open`] with a pipeline takes a session-level
//!   advisory lock keyed on the pipeline's name (`pg_try_advisory_lock`), held by the
//!   connection for the store's lifetime. The server releases it when the connection ends,
//!   however the process ends (`kill -9` included), so a crashed run is told apart from one
//!   still running.
//! - Tables are created once, under a transaction-level advisory lock, so instances starting
//!   together do not race on `CREATE TABLE`.
//! - Plain connections only (no TLS): the URL is checked ([`sluice_compiler::plan::pg_url`])
//!   before connecting, and an `sslmode` other than `disable` is refused, never downgraded.
//! - The URL's password never reaches a message: errors show the URL without it.
//! - Every statement runs in autocommit (one statement: one transaction, synchronous commit)
//!   unless several are given to [`Conn::transaction`].

use postgres::types::{ToSql, Type};

use super::Value;

/// Key of the transaction-level advisory lock taken while creating the tables.
const SCHEMA_LOCK: i64 = 0x736c_7569_6365_0001;

pub struct Conn {
    client: postgres::Client,
}

pub enum OpenError {
    /// Another session holds the pipeline's lock.
    Held,
    Other(String),
}

impl Conn {
    /// Connects (the URL already checked); with `lock_key`, takes that advisory lock.
    pub fn open(url: &str, lock_key: Option<i64>) -> Result<Conn, OpenError> {
        // The parser's message may quote the URL: it is replaced, not passed on.
        let config: postgres::Config =
            url.parse().map_err(|_| OpenError::Other("its URL cannot be parsed".to_string()))?;
        let client = config.connect(postgres::NoTls).map_err(|e| OpenError::Other(describe(&e)))?;
        let mut conn = Conn { client };
        if let Some(key) = lock_key {
            let rows = conn.query("SELECT pg_try_advisory_lock($1)", &[Value::Int(key)]).map_err(OpenError::Other)?;
            if !matches!(rows.first().and_then(|r| r.first()), Some(Value::Bool(true))) {
                return Err(OpenError::Held);
            }
        }
        Ok(conn)
    }

    /// Creates the tables (if missing) and returns the store's version (written as `version`
    /// for a new store, raised to it for an older one), in one transaction under
    /// [`SCHEMA_LOCK`]. A newer store's version is returned as it is, for the caller to refuse
    /// (its DDL changed nothing: every statement is `IF NOT EXISTS`).
    pub fn create(&mut self, ddl: &str, version: i64) -> Result<i64, String> {
        let mut tx = self.client.transaction().map_err(|e| e.to_string())?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).map_err(|e| e.to_string())?;
        tx.batch_execute(ddl).map_err(|e| e.to_string())?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS sluice_store (version BIGINT NOT NULL)")
            .map_err(|e| e.to_string())?;
        let found: Option<i64> = tx
            .query_one("SELECT max(version) FROM sluice_store", &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| e.to_string())?;
        match found {
            None => {
                tx.execute("INSERT INTO sluice_store (version) VALUES ($1)", &[&version]).map_err(|e| e.to_string())?;
            }
            // An older store: the DDL above added what it lacked.
            Some(old) if old < version => {
                tx.execute("UPDATE sluice_store SET version = $1", &[&version]).map_err(|e| e.to_string())?;
            }
            Some(_) => {}
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(found.map_or(version, |old| old.max(version)))
    }

    pub fn has_table(&mut self, table: &str) -> Result<bool, String> {
        let rows = self.query("SELECT to_regclass($1) IS NOT NULL", &[Value::Text(table.to_string())])?;
        Ok(matches!(rows.first().and_then(|r| r.first()), Some(Value::Bool(true))))
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        query(&mut self.client, sql, params)
    }

    pub fn transaction(&mut self, statements: &[(&str, Vec<Value>)]) -> Result<(), String> {
        let mut tx = self.client.transaction().map_err(|e| e.to_string())?;
        for (sql, params) in statements {
            query(&mut tx, sql, params)?;
        }
        tx.commit().map_err(|e| e.to_string())
    }
}

/// A NULL of whatever type the statement's parameter has: `None::<String>` would be refused
/// for a `BIGINT` column.
#[derive(Debug)]
struct AnyNull;

impl ToSql for AnyNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(postgres::types::IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn query(client: &mut impl postgres::GenericClient, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, String> {
    let bound: Vec<Box<dyn ToSql + Sync>> = params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                Value::Int(i) => Box::new(*i),
                Value::Text(s) => Box::new(s.clone()),
                Value::Bool(b) => Box::new(*b),
                Value::Null => Box::new(AnyNull),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
    let rows = client.query(sql, &refs).map_err(|e| describe(&e))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(row.len());
        for (i, column) in row.columns().iter().enumerate() {
            let value = match *column.type_() {
                Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int)),
                Type::INT4 => row.try_get::<_, Option<i32>>(i).map(|v| v.map(|n| Value::Int(n.into()))),
                Type::BOOL => row.try_get::<_, Option<bool>>(i).map(|v| v.map(Value::Bool)),
                _ => row.try_get::<_, Option<String>>(i).map(|v| v.map(Value::Text)),
            };
            values.push(value.map_err(|e| e.to_string())?.unwrap_or(Value::Null));
        }
        out.push(values);
    }
    Ok(out)
}

/// A server error with its message (never holding the URL), or the client's.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}
