//! `outputs.ledger` of a reconciliation: each record's outcome written back into the row it
//! came from, `reconciled = true` for a record of a matched pair and `false` for one in
//! review, in the PostgreSQL tables the inputs were loaded from (`canonical/financial-
//! transaction@1` rows, as a ledger pipeline's `postgres` sink writes them). Not a pipeline
//! sink: `sluice reconcile` calls [`write`] once its output files are staged.
//!
//! Invariants:
//! - All or nothing: every table is updated in one transaction, and the caller's files are
//!   staged (complete, beside their targets) before it commits; a failure anywhere rolls the
//!   transaction back, so no table holds part of a run.
//! - Idempotent: a row is only written when its value differs (`IS DISTINCT FROM`); a rerun
//!   over the same files and table updates nothing, and says so (`updated` 0).
//! - A row is found by the table's key columns, each read from the record's top-level field
//!   of the same name. A table is refused (RT124) unless a unique index or primary key lies
//!   within those columns, so a key names one row at most.
//! - Several records of one row (a second copy of an id, the same row on both sides of one
//!   table) give one value: true when any of them matched.
//! - Nothing is silent: records without a key (RT170) and keys the table lacks (RT169) are
//!   counted; the missing keys are listed in [`TableWritten::missing`] for the summary file.
//! - Messages name the table, columns and SQLSTATE, never a key value nor PostgreSQL's text
//!   (it may quote one); the URL shows as its secret reference. The connection is the
//!   `postgres` sink's ([`super::postgres::connect`]).

use std::collections::BTreeMap;

use postgres::error::SqlState;
use postgres::types::ToSql;
use sluice_compiler::plan::pg_table::quoted;
use sluice_compiler::spec::reconcile::{LedgerPlan, LedgerTable, RECONCILED_COLUMN};

use crate::error::RunError;
use crate::findings;
use crate::stages::reconcile::Outcome;

/// What one table is to receive: each key once with its value, and the records that had no key.
#[derive(Clone, Debug)]
pub struct TableRows {
    /// Index into [`LedgerPlan::tables`] of the first table it stands for.
    pub tables: Vec<usize>,
    pub table: String,
    pub key: Vec<String>,
    /// Key values (in `key`'s order) and `reconciled`, sorted by key.
    pub rows: Vec<(Vec<String>, bool)>,
    /// Records of the inputs with this table (read or not).
    pub records: u64,
    /// Records without a value for a key column (RT170).
    pub no_key: u64,
}

/// What the update did to one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableWritten {
    /// Rows whose value changed.
    pub updated: u64,
    /// Rows found with the value already.
    pub unchanged: u64,
    /// Keys the table has no row for, sorted.
    pub missing: Vec<Vec<String>>,
}

/// The rows each table receives from `outcome`: one entry per distinct (table, key columns),
/// so two inputs loaded into one table update it together.
pub fn rows(ledger: &LedgerPlan, outcome: &Outcome) -> Vec<TableRows> {
    let mut fate: Vec<Option<bool>> = vec![None; outcome.items.len()];
    for p in &outcome.pairs {
        fate[p.a] = Some(true);
        fate[p.b] = Some(true);
    }
    for r in &outcome.review {
        if let Some(i) = r.item {
            fate[i].get_or_insert(false);
        }
    }
    let mut out: Vec<(TableRows, BTreeMap<Vec<String>, bool>)> = Vec::new();
    for (t, LedgerTable { input, table, key }) in ledger.tables.iter().enumerate() {
        let at = match out.iter().position(|(e, _)| &e.table == table && &e.key == key) {
            Some(at) => at,
            None => {
                let entry = TableRows {
                    tables: Vec::new(),
                    table: table.clone(),
                    key: key.clone(),
                    rows: Vec::new(),
                    records: 0,
                    no_key: 0,
                };
                out.push((entry, BTreeMap::new()));
                out.len() - 1
            }
        };
        let (entry, merged) = &mut out[at];
        entry.tables.push(t);
        let items = outcome.items.iter().enumerate().filter(|(_, it)| it.role == *input);
        let keyed = items.map(|(i, it)| (it.ledger_key.as_ref(), fate[i].unwrap_or(false)));
        let unread = outcome.unread.iter().filter(|u| u.role == *input).map(|u| (u.ledger_key.as_ref(), false));
        for (k, reconciled) in keyed.chain(unread) {
            entry.records += 1;
            match k {
                Some(k) => *merged.entry(k.clone()).or_insert(false) |= reconciled,
                None => entry.no_key += 1,
            }
        }
    }
    out.into_iter()
        .map(|(mut entry, merged)| {
            entry.rows = merged.into_iter().collect();
            entry
        })
        .collect()
}

/// Updates every table in one transaction. `before_commit` runs once all updates are done and
/// before the commit, with what they did (the caller stages its files there); its error rolls
/// everything back and is returned as is. A database failure is a [`RunError`] (RT123, RT124,
/// RT168), with nothing written.
pub fn write<E>(
    ledger: &LedgerPlan,
    tables: &[TableRows],
    before_commit: impl FnOnce(&[TableWritten]) -> Result<(), E>,
) -> Result<Result<Vec<TableWritten>, E>, RunError> {
    let target = super::postgres::Target {
        who: "the reconciliation's ledger".to_string(),
        url_key: "`url` of `outputs.ledger`".to_string(),
        code: findings::LEDGER_UNREACHABLE,
    };
    let mut client = super::postgres::connect(&ledger.url, &target)?;
    let mut tx = client.transaction().map_err(|e| failed("", "start a transaction", &e))?;
    let mut written = Vec::new();
    for t in tables {
        let types = inspect(&mut tx, t)?;
        written.push(update(&mut tx, t, &types)?);
    }
    if let Err(e) = before_commit(&written) {
        // Dropping the transaction rolls it back.
        return Ok(Err(e));
    }
    tx.commit().map_err(|e| failed("", "commit", &e))?;
    Ok(Ok(written))
}

/// Checks that the table can take the outcome; the SQL type of each key column.
fn inspect(tx: &mut postgres::Transaction<'_>, t: &TableRows) -> Result<Vec<String>, RunError> {
    let name = quoted(&t.table);
    let step = |what: &str, e: &postgres::Error| failed(&t.table, what, e);
    let unusable = |why: String, help: String| {
        RunError::new(findings::LEDGER_TABLE_UNUSABLE, format!("ledger table `{}` {why}", t.table)).with_help(help)
    };
    let Some(columns) = super::postgres::existing_columns(tx, &name).map_err(|(what, e)| step(what, &e))? else {
        return Err(unusable(
            "does not exist".into(),
            "name the table the ledger pipeline's `postgres` sink writes (`table:`), with its schema if it is not on the search path".into(),
        ));
    };
    match columns.get(RECONCILED_COLUMN).map(String::as_str) {
        Some("boolean") => {}
        Some(other) => {
            return Err(unusable(
                format!("has a `{RECONCILED_COLUMN}` column of type `{other}`"),
                format!(
                    "the outcome is a boolean: `ALTER TABLE {name} ALTER COLUMN \"{RECONCILED_COLUMN}\" TYPE boolean USING \"{RECONCILED_COLUMN}\"::boolean`"
                ),
            ));
        }
        None => {
            return Err(unusable(
                format!("has no `{RECONCILED_COLUMN}` column"),
                format!(
                    "add it (`ALTER TABLE {name} ADD COLUMN \"{RECONCILED_COLUMN}\" boolean`; a table of `canonical/financial-transaction@1` rows has it), or name the table that holds the input's rows"
                ),
            ));
        }
    }
    let mut types = Vec::new();
    for k in &t.key {
        match columns.get(k) {
            Some(ty) => types.push(ty.clone()),
            None => {
                return Err(unusable(
                    format!("has no key column `{k}`"),
                    "list the table's key columns in `key` (`[source, id]` for canonical financial transactions)"
                        .into(),
                ));
            }
        }
    }
    let unique: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::text::regclass AND i.indisunique \
             AND i.indpred IS NULL AND i.indexprs IS NULL \
             AND ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = i.indrelid \
                       AND attnum = ANY(i.indkey)) <@ $2::text[])",
            &[&name, &t.key],
        )
        .and_then(|r| r.try_get(0))
        .map_err(|e| step("read the table's indexes", &e))?;
    if !unique {
        return Err(unusable(
            format!("has no unique index or primary key within its key columns ({})", t.key.join(", ")),
            "a key could name several rows: list the columns of the table's primary key in `key`, or give the table a unique index on them".into(),
        ));
    }
    Ok(types)
}

/// Locks the rows of the keys found, then writes those whose value differs.
fn update(tx: &mut postgres::Transaction<'_>, t: &TableRows, types: &[String]) -> Result<TableWritten, RunError> {
    let name = quoted(&t.table);
    let n = t.key.len();
    let params: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
    let aliases: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let matches: Vec<String> =
        t.key.iter().zip(types).enumerate().map(|(i, (k, ty))| format!("t.{} = u.c{i}::{ty}", quoted(k))).collect();
    let find = format!(
        "SELECT u.i FROM unnest({}) WITH ORDINALITY AS u({}, i) JOIN {name} AS t ON {} FOR UPDATE OF t",
        params.join(", "),
        aliases.join(", "),
        matches.join(" AND ")
    );
    let column = quoted(RECONCILED_COLUMN);
    let write = format!(
        "UPDATE {name} AS t SET {column} = u.v FROM unnest({}, ${}::boolean[]) AS u({}, v) WHERE {} AND t.{column} IS DISTINCT FROM u.v",
        params.join(", "),
        n + 1,
        aliases.join(", "),
        matches.join(" AND ")
    );
    let arrays: Vec<Vec<&str>> = (0..n).map(|c| t.rows.iter().map(|(k, _)| k[c].as_str()).collect()).collect();
    let values: Vec<bool> = t.rows.iter().map(|(_, v)| *v).collect();
    let mut args: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    let found: Vec<i64> = tx
        .query(&find, &args)
        .map_err(|e| failed(&t.table, "find the rows", &e))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    args.push(&values);
    let updated = tx.execute(&write, &args).map_err(|e| failed(&t.table, "update the rows", &e))?;
    let mut is_found = vec![false; t.rows.len()];
    for i in &found {
        if let Some(f) = usize::try_from(*i - 1).ok().and_then(|i| is_found.get_mut(i)) {
            *f = true;
        }
    }
    let missing: Vec<Vec<String>> =
        t.rows.iter().zip(&is_found).filter(|(_, f)| !**f).map(|((k, _), _)| k.clone()).collect();
    let found = is_found.iter().filter(|f| **f).count() as u64;
    Ok(TableWritten { updated, unchanged: found.saturating_sub(updated), missing })
}

/// A failure of the update: RT168 with its SQLSTATE (permission denied said so), never
/// PostgreSQL's message.
fn failed(table: &str, what: &str, e: &postgres::Error) -> RunError {
    let on = if table.is_empty() { String::new() } else { format!(" (table `{table}`)") };
    let why = match e.as_db_error() {
        Some(db) if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE => "permission denied".to_string(),
        Some(db) if *db.code() == SqlState::INVALID_TEXT_REPRESENTATION => {
            format!("SQLSTATE {}: a key value is not of its column's type", db.code().code())
        }
        Some(db) => format!("SQLSTATE {}", db.code().code()),
        None => super::postgres::connect_problem(e),
    };
    let help = if e.as_db_error().is_some_and(|db| *db.code() == SqlState::INSUFFICIENT_PRIVILEGE) {
        format!(
            "grant the ledger's user SELECT and UPDATE on `{table}`; nothing was written, and the output files were not replaced"
        )
    } else {
        "the transaction was rolled back: no table changed, and the output files were not replaced; fix the cause and run `sluice reconcile` again".to_string()
    };
    RunError::new(findings::LEDGER_WRITE_FAILED, format!("the reconciliation's ledger could not {what}{on}: {why}"))
        .with_help(help)
}
