//! `sluice reconcile SPEC`: runs a `kind: reconciliation` spec over its JSON Lines inputs and
//! writes the matched pairs, the review output and the summary, and, with
//! `outputs.statements`, one financial document per account and the unassigned output.
//!
//! Invariants:
//! - A blocking job: every input is read to its end before anything is matched (a match may
//!   pair the first line of one file with the last of another). Memory grows with the inputs;
//!   there is no checkpoint or `--resume`: a run that stops writes nothing, and running it
//!   again from the start gives the same outputs byte for byte.
//! - Outputs are written to temporary files beside their targets (`<name>.partial`: each
//!   output its own, SL299 keeps an output off another's) and renamed into place once all of
//!   them are complete, so a reader never sees half a run.
//! - With `outputs.ledger`, the tables are updated in one transaction that commits only once
//!   every file is staged; the files are renamed into place after the commit. A database
//!   failure (RT123, RT124, RT168) rolls the tables back and removes the staged files: the
//!   files and the tables stay as the previous run left them. Only a rename failing after the
//!   commit leaves the tables ahead of the files; a rerun writes the same files and changes
//!   nothing in the tables.
//! - Nothing is lost: the summary line checks `in = matched + review` (and, with statements,
//!   `transactions = listed + duplicate copies + unassigned`) and the command fails (exit 1)
//!   if it did not hold (it always should).
//! - stdout and stderr carry counts, codes, rule names and file paths, never a record's value.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sluice_compiler::diagnostics::Format;
use sluice_compiler::spec::reconcile::ReconcilePlan;
use sluice_runtime::findings;
use sluice_runtime::sinks::ledger;
use sluice_runtime::stages::reconcile::{self, Read};
use sluice_runtime::stages::statements::{self, Accounts};

use crate::commands::{FAILED, OK, USAGE};

fn io_error(what: &str, path: &str, e: &std::io::Error) -> u8 {
    eprintln!("error[{}]: cannot {what} {path}: {}", findings::RECONCILE_IO, e.kind());
    FAILED
}

/// Where an output is written before it is put in place: its whole name plus `.partial`
/// (`summary.json` -> `summary.json.partial`), so outputs that differ only by their extension
/// do not share one.
fn staging_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Output files complete beside their targets, not yet in place.
struct Staged(Vec<(PathBuf, String)>);

impl Staged {
    /// Writes every file to its staging path; on a failure removes what it staged.
    fn write(files: &[(&str, String)]) -> Result<Staged, u8> {
        let mut staged = Staged(Vec::new());
        for (path, body) in files {
            let target = Path::new(path);
            if let Some(dir) = target.parent()
                && let Err(e) = std::fs::create_dir_all(dir)
            {
                staged.discard();
                return Err(io_error("create the folder of", path, &e));
            }
            let tmp = staging_path(target);
            if let Err(e) = std::fs::write(&tmp, body) {
                staged.discard();
                return Err(io_error("write", path, &e));
            }
            staged.0.push((tmp, path.to_string()));
        }
        Ok(staged)
    }

    fn discard(self) {
        for (tmp, _) in self.0 {
            let _ = std::fs::remove_file(tmp);
        }
    }

    /// Renames every file into place.
    fn publish(self) -> Result<(), (String, std::io::Error)> {
        let mut files = self.0.into_iter();
        while let Some((tmp, path)) = files.next() {
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                Staged(files.collect()).discard();
                return Err((path, e));
            }
        }
        Ok(())
    }
}

/// The summary's `ledger` block: per table, what was written and the keys it lacks.
fn ledger_summary(plan: &ReconcilePlan, tables: &[ledger::TableRows], written: &[ledger::TableWritten]) -> Value {
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
fn report_ledger(plan: &ReconcilePlan, tables: &[ledger::TableRows], written: &[ledger::TableWritten]) {
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
fn report_unassigned(input: &str, file: &str, c: &statements::Counts) {
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

/// The checked plan of the reconciliation at `spec`, its diagnostics printed; the exit code
/// when there is none (`what` names the command's output in the message).
fn checked_plan(spec: &Path, diagnostics: Format, what: &str) -> Result<ReconcilePlan, u8> {
    let mut c = crate::commands::compiler();
    let plan = c.reconciliation(spec).map_err(|e| {
        eprintln!("error: {e}");
        USAGE
    })?;
    crate::commands::print_diagnostics(&c, diagnostics, &[]);
    plan.ok_or_else(|| {
        eprintln!("no {what}: {}", crate::commands::counts(&c));
        FAILED
    })
}

pub fn reconcile(spec: &Path, diagnostics: Format, json: bool) -> u8 {
    let plan = match checked_plan(spec, diagnostics, "reconciliation") {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut read = Read::default();
    for (role, input) in plan.inputs.iter().enumerate() {
        for (path, written) in input.paths.iter().zip(&input.written_paths) {
            match std::fs::read_to_string(path) {
                Ok(body) => reconcile::read_lines(&plan, role, written, &body, &mut read),
                Err(e) => return io_error("read", path, &e),
            }
        }
    }
    let mut accounts = Accounts::default();
    if let Some(st) = &plan.statements {
        match std::fs::read_to_string(&st.accounts) {
            Ok(body) => accounts.read(&st.written_accounts, &body),
            Err(e) => return io_error("read", &st.accounts, &e),
        }
    }
    let outcome = reconcile::reconcile(&plan, read);
    let built = plan.statements.as_ref().map(|st| (st, statements::build(&plan, st, &outcome, &accounts)));
    let ledger_rows = plan.ledger.as_ref().map(|l| ledger::rows(l, &outcome)).unwrap_or_default();
    // The summary and every file, given what the ledger update did.
    let outputs = |written: Option<&[ledger::TableWritten]>| {
        let mut summary = outcome.summary(&plan);
        if let Some(m) = summary.as_object_mut() {
            if let Some((_, b)) = &built {
                m.insert("statements".into(), b.counts.to_json());
            }
            if let Some(w) = written {
                m.insert("ledger".into(), ledger_summary(&plan, &ledger_rows, w));
            }
        }
        let mut summary_text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        summary_text.push('\n');
        let mut files = vec![
            (plan.matched.as_str(), outcome.matched_lines(&plan)),
            (plan.review.as_str(), outcome.review_lines(&plan)),
            (plan.summary.as_str(), summary_text.clone()),
        ];
        if let Some((st, b)) = &built {
            files.push((st.path.as_str(), b.documents.clone()));
            files.push((st.unassigned.as_str(), b.unassigned.clone()));
        }
        (summary, summary_text, files)
    };
    let (summary, summary_text, staged, written) = match &plan.ledger {
        None => {
            let (summary, text, files) = outputs(None);
            match Staged::write(&files) {
                Ok(staged) => (summary, text, staged, None),
                Err(code) => return code,
            }
        }
        Some(l) => {
            let mut done = None;
            let result = ledger::write(l, &ledger_rows, |written| {
                let (summary, text, files) = outputs(Some(written));
                done = Some((summary, text, Staged::write(&files)?));
                Ok(())
            });
            match (result, done) {
                (Ok(Ok(written)), Some((summary, text, staged))) => (summary, text, staged, Some(written)),
                (Ok(Err(code)), _) => return code,
                (Err(e), done) => {
                    if let Some((_, _, staged)) = done {
                        staged.discard();
                    }
                    crate::commands::print_run_error(&e);
                    return FAILED;
                }
                (Ok(Ok(_)), None) => {
                    eprintln!("error[{}]: the ledger committed without the files staged", findings::INTERNAL);
                    return FAILED;
                }
            }
        }
    };
    if let Err((path, e)) = staged.publish() {
        let code = io_error("put in place", &path, &e);
        if written.is_some() {
            eprintln!(
                "  the ledger tables were updated; running `sluice reconcile` again writes the files and changes nothing in the tables"
            );
        }
        return code;
    }
    let review = outcome.review.len() as u64;
    let statements_balanced = built.as_ref().is_none_or(|(_, b)| b.counts.balanced());
    let balanced = outcome.records_in == outcome.matched_records() + review && statements_balanced;
    if let Some((st, b)) = &built {
        report_unassigned(&plan.inputs[st.input].name, &st.unassigned, &b.counts);
    }
    if let Some(w) = &written {
        report_ledger(&plan, &ledger_rows, w);
    }
    if json {
        print!("{summary_text}");
    } else {
        let r = &summary["reconciliation"];
        println!(
            "reconciled `{}`: {} records in = {} matched ({} pairs) + {} to review{}",
            plan.name,
            outcome.records_in,
            outcome.matched_records(),
            outcome.pairs.len(),
            review,
            if balanced { "" } else { "  (does not add up)" }
        );
        println!(
            "  reconciliation: matched {}, unmatched {}, duplicates {}",
            r["matched"], r["unmatched"], r["duplicates"]
        );
        for (rule, n) in summary["pairs_by_rule"].as_object().into_iter().flatten() {
            println!("  pairs by rule `{rule}`: {n}");
        }
        for (reason, n) in summary["review_by_reason"].as_object().into_iter().flatten() {
            println!("  review `{reason}`: {n}");
        }
        if let Some((st, b)) = &built {
            let c = &b.counts;
            println!(
                "  statements: {} accounts, {} transactions of `{}` = {} listed + {} duplicate copies + {} unassigned{}",
                c.accounts,
                c.transactions_in,
                plan.inputs[st.input].name,
                c.listed,
                c.duplicate_copies,
                c.unassigned_transactions(),
                if statements_balanced { "" } else { "  (does not add up)" }
            );
        }
        for (t, w) in ledger_rows.iter().zip(written.iter().flatten()) {
            println!(
                "  ledger `{}`: {} rows = {} updated + {} unchanged + {} missing; {} records without a key",
                t.table,
                t.rows.len(),
                w.updated,
                w.unchanged,
                w.missing.len(),
                t.no_key
            );
        }
    }
    if balanced { OK } else { FAILED }
}

/// `sluice plan` of a reconciliation: its inputs, ladder and outputs, and what `outputs.ledger`
/// will update. The ledger's URL shows as its secret reference; nothing is connected to.
pub fn plan(spec: &Path, diagnostics: Format, json: bool) -> u8 {
    let plan = match checked_plan(spec, diagnostics, "plan") {
        Ok(p) => p,
        Err(code) => return code,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&plan).unwrap_or_default());
        return OK;
    }
    println!("reconciliation `{}`", plan.name);
    for i in &plan.inputs {
        println!(
            "  {} `{}`: {} (id `{}`, amount `{}`, date `{}` in {})",
            i.role,
            i.name,
            i.written_paths.join(", "),
            i.id,
            i.amount,
            i.date,
            i.time_zone
        );
    }
    for (n, r) in plan.rules.iter().enumerate() {
        println!("  rule {}: `{}`", n + 1, r.name);
    }
    println!("  outputs: matched {}, review {}, summary {}", plan.matched, plan.review, plan.summary);
    if let Some(st) = &plan.statements {
        println!(
            "  statements of `{}` by account (source + id) from {}: {}, unassigned {}",
            plan.inputs[st.input].name, st.written_accounts, st.path, st.unassigned
        );
    }
    if let Some(l) = &plan.ledger {
        println!("  ledger {}: one transaction, committed once the files are staged", l.url);
        for t in &l.tables {
            println!(
                "    `{}` -> table `{}`: UPDATE SET {} = true (matched) / false (review) WHERE ({}) = the record's fields of those names, when it differs",
                plan.inputs[t.input].name,
                t.table,
                sluice_compiler::spec::reconcile::RECONCILED_COLUMN,
                t.key.join(", ")
            );
        }
    }
    OK
}
