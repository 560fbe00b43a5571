//! `postgres` sinks: each batch's rows written into a table made from the records' output
//! schema (`sluice_compiler::plan::pg_table`), in one transaction.
//!
//! When the run starts, [`PgSink::open`] connects, then (under a transaction-level advisory
//! lock, so instances starting together do not race) creates the table, or adds the columns
//! an older table lacks, and refuses a column of another type (RT606). Rows are sent as one
//! `INSERT ... SELECT ... FROM unnest($1::text[], ...)` per batch: one round trip, whatever
//! the batch size; PostgreSQL converts each text to its column's type.
//!
//! Invariants:
//! - Exactly once with `--resume`: a batch's transaction commits in the writer thread before
//!   the checkpoint that covers it, and a batch written again after a crash changes nothing:
//!   `append` rows are `ON CONFLICT (sluice_record_id) DO NOTHING` (the record id, `<run_id>-
//!   <seq>`, is the same on a resumed run), `upsert` rows `ON CONFLICT (key) DO UPDATE` with
//!   the same values.
//! - Nothing is lost: when the database refuses the batch for one row's data (SQLSTATE class
//!   22 or 23, or 54), the batch is written again row by row, each under a savepoint, in one
//!   transaction: the refused rows are reported ([`PgSinks::write_batch`]) for the DLQ, the
//!   others committed. Any other failure stops the run (RT608) with the batch rolled back.
//! - Within a batch an `upsert` key keeps its last record (PostgreSQL refuses to update a row
//!   twice in one statement), as if the records had been written one by one.
//! - A deletion (a `fhir.rest` cdc table's `_history`, [`deletion_line`]) deletes the row of
//!   its key from an `upsert` table, in the same transaction as the batch's other rows (the
//!   last record of a key wins, deletion or not); an `append` table ignores deletions.
//! - No secret and no data in messages: the URL shows as its secret reference; a refused row
//!   is described by SQLSTATE, column or constraint and type, never by PostgreSQL's message
//!   (which may quote the value).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use sluice_compiler::plan::pg_table::{PgSinkPlan, quoted};
use sluice_compiler::plan::pg_url;

use crate::dlq::Rejection;
use crate::error::RunError;
use crate::findings;
use crate::record::Doc;

/// One `postgres` sink, connected, its table ready.
pub struct PgSink {
    name: Arc<str>,
    plan: PgSinkPlan,
    client: postgres::Client,
    insert: postgres::Statement,
    /// `upsert` tables: deletes the rows of the keys given.
    delete: Option<postgres::Statement>,
}

/// A row of a batch: an upsert or insert, or a deletion by key.
pub struct Row {
    pub values: Vec<Option<String>>,
    pub deleted: bool,
}

/// The row a worker hands the writer for a record: the record id, then each column's value as
/// text (`null` for none), as a JSON array. Lists and objects are their JSON text (`jsonb`).
pub fn row_line(doc: &Doc, record_id: &str, plan: &PgSinkPlan) -> String {
    serde_json::to_string(&super::column_values(doc, record_id, &plan.columns)).unwrap_or_default()
}

/// The line of a deletion: its [`row_line`] as `{"deleted": [...]}`.
pub fn deletion_line(row: &str) -> String {
    format!("{{\"deleted\":{row}}}")
}

/// Reads a [`row_line`] or a [`deletion_line`].
fn read_line(line: &str) -> Option<Row> {
    #[derive(serde::Deserialize)]
    struct Deletion {
        deleted: Vec<Option<String>>,
    }
    if line.starts_with('{') {
        let d: Deletion = serde_json::from_str(line).ok()?;
        return Some(Row { values: d.deleted, deleted: true });
    }
    Some(Row { values: serde_json::from_str(line).ok()?, deleted: false })
}

impl PgSink {
    /// Connects and makes the table ready: created, or given the columns it lacks.
    pub fn open(name: &Arc<str>, plan: &PgSinkPlan) -> Result<PgSink, RunError> {
        let target = Target {
            who: format!("postgres sink `{name}`"),
            url_key: format!("`url` of sink `{name}`"),
            code: findings::PG_SINK_UNREACHABLE,
        };
        let mut client = connect(&plan.url, &target)?;
        migrate(&mut client, name, plan)?;
        let insert = client.prepare(&insert_sql(plan)).map_err(|e| failed(name, plan, "prepare the insert", &e))?;
        let delete = match delete_sql(plan) {
            Some(sql) => Some(client.prepare(&sql).map_err(|e| failed(name, plan, "prepare the delete", &e))?),
            None => None,
        };
        Ok(PgSink { name: Arc::clone(name), plan: plan.clone(), client, insert, delete })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self, what: &str, e: &postgres::Error) -> RunError {
        failed(&self.name, &self.plan, what, e)
    }

    /// Writes `rows` (decoded [`row_line`]s) in one transaction. Returns the rows the
    /// database refused (their positions, why).
    pub fn write(&mut self, rows: &[Row]) -> Result<Vec<(usize, Rejection)>, RunError> {
        let width = self.plan.columns.len();
        if let Some(bad) = rows.iter().position(|r| r.values.len() != width) {
            return Ok(vec![(bad, Rejection::single(findings::INTERNAL, None, "row of the wrong width"))]);
        }
        let chosen = self.last_per_key(rows);
        let (deletes, inserts): (Vec<&Row>, Vec<&Row>) = chosen.iter().map(|&i| &rows[i]).partition(|r| r.deleted);
        let inserts: Vec<&Vec<Option<String>>> = inserts.into_iter().map(|r| &r.values).collect();
        let deletes: Vec<&Vec<Option<String>>> = deletes.into_iter().map(|r| &r.values).collect();
        let delete_keys = self.key_rows(&deletes);
        let first = {
            let mut tx =
                self.client.transaction().map_err(|e| failed(&self.name, &self.plan, "start a transaction", &e))?;
            let deleted = match (&self.delete, deletes.is_empty()) {
                (Some(delete), false) => execute(&mut tx, delete, &delete_keys, self.plan.key.len()),
                _ => Ok(()),
            };
            let written = match deleted {
                Ok(()) if inserts.is_empty() => Ok(()),
                Ok(()) => execute(&mut tx, &self.insert, &inserts, width),
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => tx.commit(),
                Err(e) => Err(e),
            }
        };
        match first {
            Ok(()) => Ok(Vec::new()),
            Err(e) if is_data_error(&e) => self.write_one_by_one(rows),
            Err(e) => Err(self.failed("write a batch", &e)),
        }
    }

    /// Positions of the key columns in a row.
    fn key_positions(&self) -> Vec<usize> {
        self.plan.key.iter().filter_map(|k| self.plan.columns.iter().position(|c| &c.name == k)).collect()
    }

    /// The key values of rows, for the delete statement.
    fn key_rows(&self, rows: &[&Vec<Option<String>>]) -> Vec<Vec<Option<String>>> {
        let key = self.key_positions();
        rows.iter().map(|r| key.iter().map(|&k| r[k].clone()).collect()).collect()
    }

    /// The rows to send in one statement: for an `upsert` table, the last row of each key
    /// (a deletion included); for an `append` table, every row but the deletions.
    fn last_per_key(&self, rows: &[Row]) -> Vec<usize> {
        if self.plan.write != "upsert" {
            return (0..rows.len()).filter(|&i| !rows[i].deleted).collect();
        }
        let key = self.key_positions();
        let mut last: HashMap<Vec<&Option<String>>, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            last.insert(key.iter().map(|&k| &row.values[k]).collect(), i);
        }
        let mut chosen: Vec<usize> = last.into_values().collect();
        chosen.sort_unstable();
        chosen
    }

    /// The batch again, one row per savepoint, in record order: the rows refused for their
    /// data are left out and reported, the others committed together.
    fn write_one_by_one(&mut self, rows: &[Row]) -> Result<Vec<(usize, Rejection)>, RunError> {
        let width = self.plan.columns.len();
        let keys: Vec<Vec<Vec<Option<String>>>> = rows.iter().map(|r| self.key_rows(&[&r.values])).collect();
        let (name, plan) = (Arc::clone(&self.name), &self.plan);
        let fail = |what: &str, e: &postgres::Error| failed(&name, plan, what, e);
        let mut refused = Vec::new();
        let mut tx = self.client.transaction().map_err(|e| fail("start a transaction", &e))?;
        for (i, row) in rows.iter().enumerate() {
            let mut sp = tx.savepoint("sluice_row").map_err(|e| fail("write a row", &e))?;
            let done = match (&self.delete, row.deleted) {
                (Some(delete), true) => execute(&mut sp, delete, &keys[i], plan.key.len()),
                // An `append` table ignores deletions.
                (None, true) => Ok(()),
                (_, false) => execute(&mut sp, &self.insert, &[&row.values], width),
            };
            match done {
                Ok(()) => sp.commit().map_err(|e| fail("write a row", &e))?,
                Err(e) if is_data_error(&e) => {
                    // Dropping the savepoint rolls it back; the transaction goes on.
                    drop(sp);
                    refused.push((i, refusal(&name, plan, &e)));
                }
                Err(e) => return Err(fail("write a row", &e)),
            }
        }
        tx.commit().map_err(|e| fail("commit a batch", &e))?;
        Ok(refused)
    }
}

/// The columns of the table `quoted_table` names (its SQL name, quoted), each with its SQL
/// type as `format_type` writes it; `None` when there is no such table. On failure, the step
/// that failed (for the message) and the error.
pub(crate) fn existing_columns(
    tx: &mut postgres::Transaction<'_>,
    quoted_table: &str,
) -> Result<Option<HashMap<String, String>>, (&'static str, postgres::Error)> {
    let exists: Option<String> = tx
        .query_one("SELECT to_regclass($1::text)::text", &[&quoted_table])
        .and_then(|r| r.try_get(0))
        .map_err(|e| ("look up the table", e))?;
    if exists.is_none() {
        return Ok(None);
    }
    let columns = tx
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&quoted_table],
        )
        .map_err(|e| ("read the table's columns", e))?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Some(columns))
}

/// Creates the table or adds its missing columns; refuses columns of another type.
fn migrate(client: &mut postgres::Client, name: &str, plan: &PgSinkPlan) -> Result<(), RunError> {
    let table = quoted(&plan.table);
    let mut tx = client.transaction().map_err(|e| failed(name, plan, "start a transaction", &e))?;
    let step = |what: &str, e: &postgres::Error| failed(name, plan, what, e);
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&plan.table]).map_err(|e| step("lock", &e))?;
    let Some(found) = existing_columns(&mut tx, &table).map_err(|(what, e)| step(what, &e))? else {
        tx.batch_execute(&plan.create_table()).map_err(|e| step("create the table", &e))?;
        return tx.commit().map_err(|e| step("create the table", &e));
    };
    for c in &plan.columns {
        match found.get(&c.name) {
            Some(t) if compatible(&c.sql_type, t) => {}
            Some(t) => {
                return Err(RunError::new(
                    findings::PG_SINK_COLUMN_TYPE,
                    format!(
                        "postgres sink `{}`: column `{}` of table `{}` is `{t}`, and the records' `{}` needs `{}`",
                        name,
                        c.name,
                        plan.table,
                        if c.path.is_empty() { "record id" } else { &c.path },
                        c.sql_type
                    ),
                )
                .with_help(format!(
                    "change the column (`ALTER TABLE {table} ALTER COLUMN {} TYPE {} USING {}::{}`), or write the sink into another `table`",
                    quoted(&c.name),
                    c.sql_type,
                    quoted(&c.name),
                    c.sql_type
                )));
            }
            None => {
                let sql = format!("ALTER TABLE {table} ADD COLUMN {} {}", quoted(&c.name), c.sql_type);
                tx.batch_execute(&sql).map_err(|e| step("add a column", &e))?;
            }
        }
    }
    // What ON CONFLICT needs, on a table made by someone else: a unique index on exactly the
    // conflict columns (not partial), made when none is there (Sluice's own tables have one).
    let mut conflict = plan.conflict_columns();
    conflict.sort();
    let indexed: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::text::regclass AND i.indisunique \
             AND i.indpred IS NULL AND i.indnkeyatts = cardinality($2::text[]) \
             AND ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = i.indrelid \
                       AND attnum = ANY(i.indkey) ORDER BY 1) = $2::text[])",
            &[&table, &conflict],
        )
        .and_then(|r| r.try_get(0))
        .map_err(|e| step("read the table's indexes", &e))?;
    if !indexed {
        let columns: Vec<String> = conflict.iter().map(|c| quoted(c)).collect();
        let index = plan.table.rsplit('.').next().unwrap_or(&plan.table);
        let sql = format!(
            "CREATE UNIQUE INDEX {} ON {table} ({})",
            quoted(&format!("{index}_sluice_conflict")),
            columns.join(", ")
        );
        tx.batch_execute(&sql).map_err(|e| step("index the table", &e))?;
    }
    tx.commit().map_err(|e| step("migrate the table", &e))
}

/// Runs the insert (or delete) for `rows` (column-major text arrays).
fn execute<R: std::borrow::Borrow<Vec<Option<String>>>>(
    tx: &mut postgres::Transaction<'_>,
    insert: &postgres::Statement,
    rows: &[R],
    width: usize,
) -> Result<(), postgres::Error> {
    let rows: Vec<&Vec<Option<String>>> = rows.iter().map(std::borrow::Borrow::borrow).collect();
    let arrays: Vec<Vec<Option<&str>>> = (0..width).map(|c| rows.iter().map(|r| r[c].as_deref()).collect()).collect();
    let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    tx.execute(insert, &params).map(|_| ())
}

/// `INSERT INTO t (cols) SELECT casts FROM unnest($1::text[], ...) ON CONFLICT ...`.
pub fn insert_sql(plan: &PgSinkPlan) -> String {
    let names: Vec<String> = plan.columns.iter().map(|c| quoted(&c.name)).collect();
    let casts: Vec<String> = plan
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| if c.sql_type == "text" { format!("u.c{i}") } else { format!("u.c{i}::{}", c.sql_type) })
        .collect();
    let params: Vec<String> = (1..=plan.columns.len()).map(|i| format!("${i}::text[]")).collect();
    let aliases: Vec<String> = (0..plan.columns.len()).map(|i| format!("c{i}")).collect();
    let conflict: Vec<String> = plan.conflict_columns().iter().map(|c| quoted(c)).collect();
    let action = if plan.write == "upsert" {
        let sets: Vec<String> = plan
            .columns
            .iter()
            .filter(|c| !plan.key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", quoted(&c.name)))
            .collect();
        format!("DO UPDATE SET {}", sets.join(", "))
    } else {
        "DO NOTHING".to_string()
    };
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({}) ON CONFLICT ({}) {action}",
        quoted(&plan.table),
        names.join(", "),
        casts.join(", "),
        params.join(", "),
        aliases.join(", "),
        conflict.join(", ")
    )
}

/// `DELETE FROM t USING unnest($1::text[], ...) AS u(c0, ...) WHERE t.k = u.c0::type AND ...`
/// for an `upsert` table (by its key); `None` for an `append` table.
pub fn delete_sql(plan: &PgSinkPlan) -> Option<String> {
    if plan.write != "upsert" || plan.key.is_empty() {
        return None;
    }
    let key: Vec<&sluice_compiler::plan::pg_table::PgColumn> =
        plan.key.iter().filter_map(|k| plan.columns.iter().find(|c| &c.name == k)).collect();
    let params: Vec<String> = (1..=key.len()).map(|i| format!("${i}::text[]")).collect();
    let aliases: Vec<String> = (0..key.len()).map(|i| format!("c{i}")).collect();
    let matches: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let value = if c.sql_type == "text" { format!("u.c{i}") } else { format!("u.c{i}::{}", c.sql_type) };
            format!("t.{} = {value}", quoted(&c.name))
        })
        .collect();
    Some(format!(
        "DELETE FROM {} AS t USING unnest({}) AS u({}) WHERE {}",
        quoted(&plan.table),
        params.join(", "),
        aliases.join(", "),
        matches.join(" AND ")
    ))
}

/// Whether an existing column of type `found` (as `format_type` writes it) holds what the sink
/// writes as `wanted`.
fn compatible(wanted: &str, found: &str) -> bool {
    match wanted {
        "text" => found == "text" || found.starts_with("character varying"),
        "numeric" => found.starts_with("numeric"),
        "bigint" => found == "bigint" || found.starts_with("numeric"),
        "timestamptz" => found == "timestamp with time zone",
        "jsonb" => found == "jsonb" || found == "json",
        other => found == other,
    }
}

/// A refusal for this row's data, not for the connection or the settings.
fn is_data_error(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| matches!(&db.code().code()[..2], "22" | "23" | "54"))
}

/// The DLQ reason of a refused row: SQLSTATE, its name, and what PostgreSQL names (column,
/// constraint, type), never its message (it may quote the value).
fn refusal(name: &str, plan: &PgSinkPlan, e: &postgres::Error) -> Rejection {
    let Some(db) = e.as_db_error() else {
        return Rejection::single(findings::PG_SINK_ROW_REFUSED, None, format!("sink `{name}`: the row was refused"));
    };
    let mut what = format!("SQLSTATE {}", db.code().code());
    if let Some(n) = condition_name(db.code()) {
        what.push_str(&format!(" ({n})"));
    }
    let column = db.column().and_then(|col| plan.columns.iter().find(|c| c.name == col));
    if let Some(c) = column {
        what.push_str(&format!(", column `{}`", c.name));
    }
    if let Some(constraint) = db.constraint() {
        what.push_str(&format!(", constraint `{constraint}`"));
    }
    if let Some(t) = db.datatype() {
        what.push_str(&format!(", type `{t}`"));
    }
    let reason = format!("sink `{name}`: PostgreSQL refused the row for table `{}`: {what}", plan.table);
    let path = column.map(|c| c.path.as_str()).filter(|p| !p.is_empty());
    Rejection::single(findings::PG_SINK_ROW_REFUSED, path, reason)
}

fn condition_name(code: &SqlState) -> Option<&'static str> {
    Some(match code {
        c if *c == SqlState::NOT_NULL_VIOLATION => "not_null_violation",
        c if *c == SqlState::CHECK_VIOLATION => "check_violation",
        c if *c == SqlState::UNIQUE_VIOLATION => "unique_violation",
        c if *c == SqlState::FOREIGN_KEY_VIOLATION => "foreign_key_violation",
        c if *c == SqlState::INVALID_DATETIME_FORMAT => "invalid_datetime_format",
        c if *c == SqlState::DATETIME_FIELD_OVERFLOW => "datetime_field_overflow",
        c if *c == SqlState::INVALID_TEXT_REPRESENTATION => "invalid_text_representation",
        c if *c == SqlState::NUMERIC_VALUE_OUT_OF_RANGE => "numeric_value_out_of_range",
        c if *c == SqlState::STRING_DATA_RIGHT_TRUNCATION => "string_data_right_truncation",
        c if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE => "character_not_in_repertoire",
        c if *c == SqlState::UNTRANSLATABLE_CHARACTER => "untranslatable_character",
        c if *c == SqlState::INVALID_PARAMETER_VALUE => "invalid_parameter_value",
        c if *c == SqlState::PROGRAM_LIMIT_EXCEEDED => "program_limit_exceeded",
        _ => return None,
    })
}

/// A failure of the connection or the settings, as a run error: RT605 for a missing privilege,
/// RT608 otherwise.
fn failed(name: &str, plan: &PgSinkPlan, what: &str, e: &postgres::Error) -> RunError {
    let table = &plan.table;
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE => RunError::new(
            findings::PG_SINK_PERMISSION,
            format!("postgres sink `{name}` may not {what} (table `{table}`): permission denied"),
        )
        .with_help(format!(
            "grant the sink's user what it needs on `{table}` (CREATE on its schema to create it, ownership to add columns, INSERT and UPDATE to write), or create the table with the DDL `sluice plan` shows"
        )),
        Some(db) => RunError::new(
            findings::PG_SINK_WRITE_FAILED,
            format!("postgres sink `{name}` could not {what} (table `{table}`): SQLSTATE {}", db.code().code()),
        )
        .with_help("the batch was rolled back; fix the cause, then `sluice run --resume`"),
        None => RunError::new(
            findings::PG_SINK_WRITE_FAILED,
            format!("postgres sink `{name}` could not {what} (table `{table}`): {}", connect_problem(e)),
        )
        .with_help("the batch was rolled back; once the server is back, `sluice run --resume`"),
    }
}

/// Who connects, for [`connect`]'s messages.
pub(crate) struct Target {
    /// `postgres sink `ledger``: the subject of the messages.
    pub who: String,
    /// `` `url` of sink `ledger` ``: what the secret reference is, for secret errors.
    pub url_key: String,
    /// The finding of a server that cannot be reached or a URL that cannot be used.
    pub code: &'static str,
}

/// Connects to the PostgreSQL server a URL secret reference names (resolved here, checked by
/// [`pg_url::check`]: plain connections only, `sslmode` absent or `disable`), within 10
/// seconds unless the URL says otherwise. Messages show the reference, never the URL.
pub(crate) fn connect(url_ref: &str, target: &Target) -> Result<postgres::Client, RunError> {
    let url = resolve_url(url_ref, target)?;
    let Target { who, code, .. } = target;
    let unreachable = |why: String| {
        RunError::new(code, format!("{who} cannot connect to {url_ref}: {why}")).with_help(format!(
            "check that the server runs and that {url_ref} holds `postgres://user:password@host:port/database`"
        ))
    };
    // The parser's message may quote the URL: it is replaced, not passed on.
    let mut config: postgres::Config = url.parse().map_err(|_| unreachable("its URL cannot be parsed".to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.connect(postgres::NoTls).map_err(|e| unreachable(connect_problem(&e)))
}

/// What went wrong while connecting, without the URL.
pub(crate) fn connect_problem(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let what = match db.code() {
            c if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                "authentication failed"
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => "the database does not exist",
            c if *c == SqlState::TOO_MANY_CONNECTIONS => "too many connections",
            _ => "the server refused the connection",
        };
        return format!("{what} (SQLSTATE {})", db.code().code());
    }
    // The client's own texts name the failure (connection refused, timeout), not the URL.
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A URL secret reference, resolved and checked.
fn resolve_url(url_ref: &str, target: &Target) -> Result<String, RunError> {
    let url = crate::secrets::resolve(url_ref, &target.url_key)?;
    let bad = |why: String| {
        RunError::new(target.code, format!("{}: {url_ref} {why}", target.who)).with_help(
            "set it to `postgres://user:password@host:port/database`, with `sslmode=disable` or no `sslmode`",
        )
    };
    let url = String::from_utf8(url.expose().to_vec()).map_err(|_| bad("is not UTF-8 text".into()))?;
    match pg_url::check(&url, true) {
        Ok(()) => Ok(url),
        Err(pg_url::Problem::NotPostgres) => Err(bad("is not a PostgreSQL URL".into())),
        Err(pg_url::Problem::Password) => Err(bad("holds a password where none may be".into())),
        Err(pg_url::Problem::SslMode(mode)) => {
            Err(bad(format!("asks for `sslmode={mode}`, and Sluice connects without TLS")))
        }
    }
}

/// Every `postgres` sink of a run, by component index.
pub type PgSinks = super::SinkSet<PgSink>;

impl PgSinks {
    /// Writes one batch: `records` are each record's sink lines (component, line), in record
    /// order. Returns, per record, the `postgres` sinks that refused it (component, why).
    pub fn write_batch<'l>(
        &mut self,
        records: impl Iterator<Item = &'l [(usize, String)]> + Clone,
    ) -> Result<super::Refusals, RunError> {
        let mut refused = super::Refusals::new();
        for (component, sink) in self.iter_mut() {
            let mut positions = Vec::new();
            let mut rows = Vec::new();
            for (pos, lines) in records.clone().enumerate() {
                for (c, line) in lines.iter().filter(|(c, _)| *c == component) {
                    let row = read_line(line).ok_or_else(|| {
                        let name = sink.name();
                        RunError::new(
                            findings::INTERNAL,
                            format!("a row for postgres sink `{name}` (component {c}) is not readable"),
                        )
                    })?;
                    positions.push(pos);
                    rows.push(row);
                }
            }
            if rows.is_empty() {
                continue;
            }
            for (i, why) in sink.write(&rows)? {
                super::refuse(&mut refused, positions[i], component, || why);
            }
        }
        Ok(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_compiler::plan::pg_table::{self, PgColumn};

    fn plan(write: &str) -> PgSinkPlan {
        let col = |n: &str, p: &str, t: &str| PgColumn { name: n.into(), path: p.into(), sql_type: t.into() };
        PgSinkPlan {
            url: "${U}".into(),
            table: "t".into(),
            write: write.into(),
            key: if write == "upsert" { vec!["id".into()] } else { vec![] },
            columns: vec![
                col(pg_table::RECORD_ID_COLUMN, "", "text"),
                col("id", "id", "text"),
                col("dob", "p.dob", "date"),
                col("ids", "p.ids", "jsonb"),
            ],
        }
    }

    #[test]
    fn rows_pick_columns_by_path() {
        let doc = Doc::Obj(vec![
            ("id".into(), Doc::Str("A1".into())),
            (
                "p".into(),
                Doc::Obj(vec![("ids".into(), Doc::Arr(vec![Doc::Num("1.50".into())])), ("dob".into(), Doc::Null)]),
            ),
        ]);
        assert_eq!(row_line(&doc, "run-7", &plan("append")), r#"["run-7","A1",null,"[1.50]"]"#);
    }

    #[test]
    fn inserts_are_idempotent_by_record_id_or_key() {
        assert_eq!(
            insert_sql(&plan("append")),
            "INSERT INTO \"t\" (\"sluice_record_id\", \"id\", \"dob\", \"ids\") SELECT u.c0, u.c1, u.c2::date, u.c3::jsonb \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c0, c1, c2, c3) \
             ON CONFLICT (\"sluice_record_id\") DO NOTHING"
        );
        assert!(insert_sql(&plan("upsert")).ends_with(
            "ON CONFLICT (\"id\") DO UPDATE SET \"sluice_record_id\" = EXCLUDED.\"sluice_record_id\", \"dob\" = EXCLUDED.\"dob\", \"ids\" = EXCLUDED.\"ids\""
        ));
    }

    #[test]
    fn deletions_delete_by_key_from_upsert_tables_only() {
        assert_eq!(delete_sql(&plan("append")), None);
        assert_eq!(
            delete_sql(&plan("upsert")).unwrap(),
            "DELETE FROM \"t\" AS t USING unnest($1::text[]) AS u(c0) WHERE t.\"id\" = u.c0"
        );
        let row = r#"["run-7","A1",null,null]"#;
        let deleted = read_line(&deletion_line(row)).unwrap();
        assert!(deleted.deleted && deleted.values[1].as_deref() == Some("A1"));
        assert!(!read_line(row).unwrap().deleted);
        assert!(read_line("{not json").is_none());
    }

    #[test]
    fn existing_column_types_are_judged() {
        assert!(compatible("text", "character varying(20)"));
        assert!(compatible("timestamptz", "timestamp with time zone"));
        assert!(!compatible("timestamptz", "timestamp without time zone"));
        assert!(!compatible("date", "text"));
        assert!(compatible("numeric", "numeric(10,2)"));
    }
}
