//! `sluice reconcile SPEC`: runs a `kind: reconciliation` spec over its JSON Lines inputs and
//! writes the matched pairs, the review output and the summary.
//!
//! Invariants:
//! - A blocking job: every input is read to its end before anything is matched (a match may
//!   pair the first line of one file with the last of another). Memory grows with the inputs;
//!   there is no checkpoint or `--resume`: a run that stops writes nothing, and running it
//!   again from the start gives the same outputs byte for byte.
//! - Outputs are written to temporary files beside their targets and renamed into place once
//!   all three are complete, so a reader never sees half a run.
//! - Nothing is lost: the summary line checks `in = matched + review` and the command fails
//!   (exit 1) if it did not hold (it always should).
//! - stdout and stderr carry counts, codes, rule names and file paths, never a record's value.

use std::path::{Path, PathBuf};

use sluice_compiler::diagnostics::Format;
use sluice_runtime::findings;
use sluice_runtime::stages::reconcile::{self, Read};

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
    let outcome = reconcile::reconcile(&plan, read);
    let summary = outcome.summary(&plan);
    let mut summary_text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    summary_text.push('\n');
    if let Err(code) = write_atomically(&[
        (&plan.matched, outcome.matched_lines(&plan)),
        (&plan.review, outcome.review_lines(&plan)),
        (&plan.summary, summary_text.clone()),
    ]) {
        return code;
    }
    let review = outcome.review.len() as u64;
    let balanced = outcome.records_in == outcome.matched_records() + review;
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
    }
    if balanced { OK } else { FAILED }
}
