//! What `sluice reconcile` says about the ledger and the statements: the summary's `ledger`
//! block and the warnings on stderr.
//!
//! Invariant: counts, codes, table and input names and file paths only, never a record's value
//! or key (the keys a table lacks go to the summary file, which the user's spec names).

use serde_json::{Value, json};
use sluice_compiler::spec::reconcile::ReconcilePlan;
use sluice_runtime::findings;
use sluice_runtime::sinks::ledger;
use sluice_runtime::stages::statements;

/// The summary's `ledger` block: per table, what was written and the keys it lacks.
pub(super) fn ledger_summary(
    plan: &ReconcilePlan,
    tables: &[ledger::TableRows],
    written: &[ledger::TableWritten],
) -> Value {
    let Some(l) = &plan.ledger else { return Value::Null };
    let entries: Vec<Value> = tables
        .iter()
        .zip(written)
        .map(|(t, w)| {
            let inputs: Vec<&str> = t.tables.iter().map(|&i| plan.inputs[l.tables[i].input].name.as_str()).collect();
            let missing: Vec<Value> = w
                .missing
                .iter()
                .map(|k| Value::Object(t.key.iter().cloned().zip(k.iter().map(|v| json!(v))).collect()))
                .collect();
            json!({
                "table": t.table,
                "inputs": inputs,
                "key": t.key,
                "records": t.records,
                "no_key": t.no_key,
                "rows": t.rows.len(),
                "updated": w.updated,
                "unchanged": w.unchanged,
                "missing": w.missing.len(),
                "missing_keys": missing,
            })
        })
        .collect();
    json!({"tables": entries})
}

/// Warnings (stderr) for what the ledger could not write: counts, never a key.
pub(super) fn report_ledger(plan: &ReconcilePlan, tables: &[ledger::TableRows], written: &[ledger::TableWritten]) {
    let Some(l) = &plan.ledger else { return };
    for (t, w) in tables.iter().zip(written) {
        let inputs: Vec<String> =
            t.tables.iter().map(|&i| format!("`{}`", plan.inputs[l.tables[i].input].name)).collect();
        let inputs = inputs.join(" and ");
        if !w.missing.is_empty() {
            eprintln!(
                "warning[{}]: {} rows named by {inputs} are not in ledger table `{}`: their keys are listed in {}",
                findings::LEDGER_ROWS_MISSING,
                w.missing.len(),
                t.table,
                plan.summary,
            );
        }
        if t.no_key > 0 {
            eprintln!(
                "warning[{}]: {} records of {inputs} have no value for a key column of ledger table `{}` ({}): not written back",
                findings::LEDGER_NO_KEY,
                t.no_key,
                t.table,
                t.key.join(", "),
            );
        }
    }
}

/// Warnings (stderr) for what the statements could not place: counts and the file, never an
/// account id.
pub(super) fn report_unassigned(input: &str, file: &str, c: &statements::Counts) {
    if c.account_unknown + c.account_closed > 0 {
        eprintln!(
            "warning[{}]: {} transactions of `{input}` name an account the accounts file does not hold ({} unknown, {} closed): listed in {file}",
            findings::STATEMENTS_ACCOUNT_UNKNOWN,
            c.account_unknown + c.account_closed,
            c.account_unknown,
            c.account_closed,
        );
    }
    if c.unreadable_accounts > 0 {
        eprintln!(
            "warning[{}]: {} lines of the accounts file are not accounts: listed in {file}",
            findings::STATEMENTS_ACCOUNT_UNREADABLE,
            c.unreadable_accounts,
        );
    }
    if c.no_source > 0 {
        eprintln!(
            "warning[{}]: {} transactions of `{input}` have no provider (no `source` value, no `default_source`): listed in {file}",
            findings::STATEMENTS_NO_SOURCE,
            c.no_source,
        );
    }
    if c.no_account > 0 {
        eprintln!(
            "warning[{}]: {} transactions of `{input}` have no account id: listed in {file}",
            findings::STATEMENTS_NO_ACCOUNT,
            c.no_account,
        );
    }
}
