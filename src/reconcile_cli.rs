//! `sluice reconcile SPEC`: runs a `kind: reconciliation` spec over its JSON Lines inputs and
//! writes the matched pairs, the review output and the summary, and, with
//! `outputs.statements`, one financial document per account and the unassigned output.
//!
//! Invariants:
//! - A blocking job: every input is read to its end before anything is matched (a match may
//!   pair the first line of one file with the last of another). Memory grows with the inputs;
//!   there is no checkpoint or `--resume`: a run that stops writes nothing, and running it
//!   again from the start gives the same outputs byte for byte.
//! - Outputs are written to temporary files beside their targets and renamed into place once
//!   all of them are complete, so a reader never sees half a run.
//! - Nothing is lost: the summary line checks `in = matched + review` (and, with statements,
//!   `transactions = listed + duplicate copies + unassigned`) and the command fails (exit 1)
//!   if it did not hold (it always should).
//! - stdout and stderr carry counts, codes, rule names and file paths, never a record's value.

use std::path::{Path, PathBuf};

use sluice_compiler::diagnostics::Format;
use sluice_runtime::findings;
use sluice_runtime::stages::reconcile::{self, Read};
use sluice_runtime::stages::statements::{self, Accounts};

use crate::commands::{FAILED, OK, USAGE};

fn io_error(what: &str, path: &str, e: &std::io::Error) -> u8 {
    eprintln!("error[{}]: cannot {what} {path}: {}", findings::RECONCILE_IO, e.kind());
    FAILED
}

fn write_atomically(files: &[(&str, String)]) -> Result<(), u8> {
    let mut staged: Vec<(PathBuf, &str)> = Vec::new();
    for (path, body) in files {
        let target = Path::new(path);
        if let Some(dir) = target.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return Err(io_error("create the folder of", path, &e));
        }
        let tmp = target.with_extension("partial");
        if let Err(e) = std::fs::write(&tmp, body) {
            return Err(io_error("write", path, &e));
        }
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        if let Err(e) = std::fs::rename(&tmp, path) {
            return Err(io_error("write", path, &e));
        }
    }
    Ok(())
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
    if c.no_account > 0 {
        eprintln!(
            "warning[{}]: {} transactions of `{input}` have no account id: listed in {file}",
            findings::STATEMENTS_NO_ACCOUNT,
            c.no_account,
        );
    }
}

pub fn reconcile(spec: &Path, diagnostics: Format, json: bool) -> u8 {
    let mut c = crate::commands::compiler();
    let plan = match c.reconciliation(spec) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    crate::commands::print_diagnostics(&c, diagnostics, &[]);
    let Some(plan) = plan else {
        eprintln!("no reconciliation: {}", crate::commands::counts(&c));
        return FAILED;
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
    let mut summary = outcome.summary(&plan);
    if let (Some((_, b)), Some(m)) = (&built, summary.as_object_mut()) {
        m.insert("statements".into(), b.counts.to_json());
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
    if let Err(code) = write_atomically(&files) {
        return code;
    }
    let review = outcome.review.len() as u64;
    let statements_balanced = built.as_ref().is_none_or(|(_, b)| b.counts.balanced());
    let balanced = outcome.records_in == outcome.matched_records() + review && statements_balanced;
    if let Some((st, b)) = &built {
        report_unassigned(&plan.inputs[st.input].name, &st.unassigned, &b.counts);
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
    }
    if balanced { OK } else { FAILED }
}
