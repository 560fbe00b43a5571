//! `sluice reconcile SPEC`: runs a `kind: reconciliation` spec over its JSON Lines inputs and
//! writes the matched pairs, the review output and the summary, and, with
//! `outputs.statements`, one financial document per account and the unassigned output.
//! [`run`] is the job itself: `sluice run` calls it too, for a pipeline's `reconcile:` entries
//! once the run's sources have ended (their sides reading the pipeline's sinks' files).
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

use std::path::Path;

use sluice_compiler::diagnostics::Format;
use sluice_compiler::spec::reconcile::ReconcilePlan;
use sluice_runtime::findings;
use sluice_runtime::sinks::ledger;
use sluice_runtime::stages::reconcile::{self, Read};
use sluice_runtime::stages::statements::{self, Accounts};

use crate::commands::{FAILED, OK, USAGE};

mod report;
mod staged;

use report::{ledger_summary, report_ledger, report_unassigned};
use staged::Staged;

/// An I/O failure of the command (RT162): what failed and the path, never content.
fn io_error(what: &str, path: &str, e: &std::io::Error) -> u8 {
    eprintln!("error[{}]: cannot {what} {path}: {}", findings::RECONCILE_IO, e.kind());
    FAILED
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
    match run(&plan) {
        Ok(done) => {
            if json {
                print!("{}", done.summary_text);
            } else {
                for line in &done.lines {
                    println!("{line}");
                }
            }
            if done.balanced { OK } else { FAILED }
        }
        Err(code) => code,
    }
}

/// What a reconciliation that ran wrote and found.
pub struct Reconciled {
    /// The summary (what `outputs.summary` holds).
    pub summary: serde_json::Value,
    /// The same, as the file holds it.
    pub summary_text: String,
    /// The human report: counts, rule and reason names, paths; never a value.
    pub lines: Vec<String>,
    /// Every record is in exactly one place (and every statement transaction).
    pub balanced: bool,
}

/// Runs a checked reconciliation: reads its inputs, matches, writes every output (staged, then
/// put in place together) and, with `outputs.ledger`, updates the tables. Problems are printed
/// to stderr; the exit code is returned when it could not complete. `sluice reconcile` and a
/// pipeline's `reconcile:` (after `sluice run`) both call it.
pub fn run(plan: &ReconcilePlan) -> Result<Reconciled, u8> {
    let mut read = Read::default();
    for (role, input) in plan.inputs.iter().enumerate() {
        for (path, written) in input.paths.iter().zip(&input.written_paths) {
            match std::fs::read_to_string(path) {
                Ok(body) => reconcile::read_lines(plan, role, written, &body, &mut read),
                Err(e) => return Err(io_error("read", path, &e)),
            }
        }
    }
    let mut accounts = Accounts::default();
    if let Some(st) = &plan.statements {
        match std::fs::read_to_string(&st.accounts) {
            Ok(body) => accounts.read(&st.written_accounts, &body),
            Err(e) => return Err(io_error("read", &st.accounts, &e)),
        }
    }
    let outcome = reconcile::reconcile(plan, read);
    let built = plan.statements.as_ref().map(|st| (st, statements::build(plan, st, &outcome, &accounts)));
    let ledger_rows = plan.ledger.as_ref().map(|l| ledger::rows(l, &outcome)).unwrap_or_default();
    // The summary and every file, given what the ledger update did.
    let outputs = |written: Option<&[ledger::TableWritten]>| {
        let mut summary = outcome.summary(plan);
        if let Some(m) = summary.as_object_mut() {
            if let Some((_, b)) = &built {
                m.insert("statements".into(), b.counts.to_json());
            }
            if let Some(w) = written {
                m.insert("ledger".into(), ledger_summary(plan, &ledger_rows, w));
            }
        }
        let mut summary_text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        summary_text.push('\n');
        let mut files = vec![
            (plan.matched.as_str(), outcome.matched_lines(plan)),
            (plan.review.as_str(), outcome.review_lines(plan)),
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
                Err(code) => return Err(code),
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
                (Ok(Err(code)), _) => return Err(code),
                (Err(e), done) => {
                    if let Some((_, _, staged)) = done {
                        staged.discard();
                    }
                    crate::commands::print_run_error(&e);
                    return Err(FAILED);
                }
                (Ok(Ok(_)), None) => {
                    eprintln!("error[{}]: the ledger committed without the files staged", findings::INTERNAL);
                    return Err(FAILED);
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
        return Err(code);
    }
    let review = outcome.review.len() as u64;
    let statements_balanced = built.as_ref().is_none_or(|(_, b)| b.counts.balanced());
    let balanced = outcome.records_in == outcome.matched_records() + review && statements_balanced;
    if let Some((st, b)) = &built {
        report_unassigned(&plan.inputs[st.input].name, &st.unassigned, &b.counts);
    }
    if let Some(w) = &written {
        report_ledger(plan, &ledger_rows, w);
    }
    let mut lines = Vec::new();
    let r = &summary["reconciliation"];
    lines.push(format!(
        "reconciled `{}`: {} records in = {} matched ({} pairs) + {} to review{}",
        plan.name,
        outcome.records_in,
        outcome.matched_records(),
        outcome.pairs.len(),
        review,
        if balanced { "" } else { "  (does not add up)" }
    ));
    lines.push(format!(
        "  reconciliation: matched {}, unmatched {}, duplicates {}",
        r["matched"], r["unmatched"], r["duplicates"]
    ));
    for (rule, n) in summary["pairs_by_rule"].as_object().into_iter().flatten() {
        lines.push(format!("  pairs by rule `{rule}`: {n}"));
    }
    for (reason, n) in summary["review_by_reason"].as_object().into_iter().flatten() {
        lines.push(format!("  review `{reason}`: {n}"));
    }
    if let Some((st, b)) = &built {
        let c = &b.counts;
        lines.push(format!(
            "  statements: {} accounts, {} transactions of `{}` = {} listed + {} duplicate copies + {} unassigned{}",
            c.accounts,
            c.transactions_in,
            plan.inputs[st.input].name,
            c.listed,
            c.duplicate_copies,
            c.unassigned_transactions(),
            if statements_balanced { "" } else { "  (does not add up)" }
        ));
    }
    for (t, w) in ledger_rows.iter().zip(written.iter().flatten()) {
        lines.push(format!(
            "  ledger `{}`: {} rows = {} updated + {} unchanged + {} missing; {} records without a key",
            t.table,
            t.rows.len(),
            w.updated,
            w.unchanged,
            w.missing.len(),
            t.no_key
        ));
    }
    Ok(Reconciled { summary, summary_text, lines, balanced })
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
    for r in &plan.exchange_rates {
        let day = r.date.as_deref().map_or("every other day".to_string(), |d| format!("on {d}"));
        println!("  exchange rate: 1 {} = {} {} {day} (and back)", r.from, r.rate, r.to);
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
