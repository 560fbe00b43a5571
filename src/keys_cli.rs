//! `sluice detokenize` and `sluice keys list | rotate`: the CLI side of the token vault and of
//! key rotation ([`sluice_runtime::operator`]); and the `--role`/`--role-key` options of the
//! operations roles govern ([`sluice_runtime::access`]).
//!
//! Invariant: only `detokenize` prints values, on stdout, one per token given; everything else
//! (and every error) names tokens, key ids and counts only. A role key is read from its secret
//! reference and never printed.

use std::io::Write;
use std::path::Path;

use sluice_compiler::diagnostics::Format;
use sluice_compiler::plan::Plan;
use sluice_runtime::RunOptions;
use sluice_runtime::access::{Credentials, Operation};

use crate::commands::{FAILED, OK, compile, plural, print_run_error};

/// Who asks for an operation roles govern.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RoleArgs {
    /// The role to act as, when the pipeline declares `roles:`.
    #[arg(long)]
    pub role: Option<String>,
    /// Where the role's key is: a secret reference (`${VAR}` or `${file:path}`).
    #[arg(long, default_value = "${SLUICE_ROLE_KEY}")]
    pub role_key: String,
}

/// Allows `op` for `who`, or prints the refusal (audited by the runtime) and gives exit code 1.
pub fn authorize(plan: &Plan, op: Operation, who: &RoleArgs, fixed_clock: Option<&str>) -> Result<(), u8> {
    let credentials = who.role.as_ref().map(|role| Credentials {
        role: role.clone(),
        // A key that cannot be read counts as none given: the refusal says so.
        key: sluice_runtime::secrets::resolve(&who.role_key, "`--role-key`").ok(),
    });
    sluice_runtime::access::authorize(plan, fixed_clock, op, credentials.as_ref()).map_err(|e| {
        print_run_error(&e);
        FAILED
    })
}

/// Allows `sluice audit export FILE` for `who` under the roles of the pipeline the log belongs
/// to: `pipeline`, or the `spec_file` its first `run_started` entry names. A log that names
/// no pipeline, with none given, is exported as before roles existed; one that names a
/// pipeline which no longer compiles is refused (exit 2) rather than exported ungoverned.
pub fn authorize_export(file: &Path, pipeline: Option<&Path>, who: &RoleArgs) -> Result<(), u8> {
    let named = match pipeline {
        Some(p) => Some(p.to_path_buf()),
        None => sluice_runtime::audit::spec_file_of(file).map(std::path::PathBuf::from),
    };
    let Some(spec) = named else { return Ok(()) };
    let plan = compile(&spec, Format::Human).map_err(|code| {
        eprintln!(
            "error: cannot tell which roles govern `{}`: its pipeline `{}` does not compile here",
            file.display(),
            spec.display()
        );
        eprintln!("  = help: give the pipeline with `--pipeline PIPELINE` (run from the directory its runs ran in)");
        code.max(2)
    })?;
    authorize(&plan, Operation::AuditExport, who, None)
}

/// `sluice detokenize PIPELINE TOKEN...`: `TOKEN<TAB>VALUE` per token; exit 1 if one is unknown.
pub fn detokenize(pipeline: &Path, tokens: &[String], who: &RoleArgs, fixed_clock: Option<String>) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = authorize(&plan, Operation::Detokenize, who, fixed_clock.as_deref()) {
        return code;
    }
    let options = RunOptions { fixed_clock, ..Default::default() };
    match sluice_runtime::operator::detokenize(&plan, &options, tokens) {
        Ok(values) => {
            let mut out = crate::stdout::lock_direct();
            let mut unknown = 0;
            for (token, value) in tokens.iter().zip(values) {
                match value {
                    Some(v) => {
                        let _ = writeln!(out, "{token}\t{}", String::from_utf8_lossy(&v));
                    }
                    None => {
                        unknown += 1;
                        eprintln!("{token}: not in the vault of pipeline {}", plan.pipeline);
                    }
                }
            }
            if unknown == 0 { OK } else { FAILED }
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}

/// `sluice purge PIPELINE [--subject ID]`: what expired, and one person's data.
pub fn purge(pipeline: &Path, subject: Option<&str>, who: &RoleArgs, fixed_clock: Option<String>) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = authorize(&plan, Operation::Purge, who, fixed_clock.as_deref()) {
        return code;
    }
    let options = RunOptions { fixed_clock, ..Default::default() };
    match sluice_runtime::retention::purge(&plan, &options, subject) {
        Ok(p) => {
            println!(
                "purged from pipeline {}: {} expired DLQ {}",
                p.pipeline,
                p.expired_dlq_records,
                if p.expired_dlq_records == 1 { "record" } else { "records" }
            );
            if plan.retention.as_ref().is_some_and(|r| r.audit_days.is_some()) {
                println!(
                    "  {} archived audit {} ({})",
                    p.expired_audit_files,
                    if p.expired_audit_files == 1 { "log" } else { "logs" },
                    plural(p.expired_audit_entries as usize, "entry").replace("entrys", "entries")
                );
            }
            if plan.retention.as_ref().is_some_and(|r| r.state_days.is_some()) {
                println!("  {} from the state store", plural(p.expired_state_runs as usize, "run record"));
            }
            if subject.is_some() {
                // The subject's id is not repeated: this output may end up in logs.
                println!(
                    "  {} DLQ {} naming the subject, {}",
                    p.subject_dlq_records,
                    if p.subject_dlq_records == 1 { "record" } else { "records" },
                    plural(p.subject_vault_rows as usize, "vault row")
                );
                if p.subject_vault_rows_shared > 0 {
                    println!(
                        "  {} kept: other people's tokens share {}",
                        plural(p.subject_vault_rows_shared as usize, "vault row"),
                        if p.subject_vault_rows_shared == 1 { "it" } else { "them" }
                    );
                }
            }
            OK
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}

/// `sluice keys list PIPELINE`.
pub fn list(pipeline: &Path) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match sluice_runtime::operator::list(&plan) {
        Ok(sluice_runtime::operator::KeyReport { rings, vault_rows: counts }) => {
            for ring in &rings {
                println!("{} {}: {} (current first)", ring.what, ring.reference, ring.keys.join(", "));
            }
            if rings.is_empty() {
                println!("pipeline {} has no encryption keys", plan.pipeline);
            }
            for (id, n) in &counts {
                let known = rings.iter().any(|r| r.what == "vault_key" && r.keys.contains(id));
                println!(
                    "  {id}: {}{}",
                    plural(*n as usize, "vault row"),
                    if known { "" } else { " (key not configured)" }
                );
            }
            OK
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}

/// `sluice keys rotate PIPELINE`.
pub fn rotate(pipeline: &Path, who: &RoleArgs, fixed_clock: Option<String>) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = authorize(&plan, Operation::KeysRotate, who, fixed_clock.as_deref()) {
        return code;
    }
    let options = RunOptions { fixed_clock, ..Default::default() };
    match sluice_runtime::operator::rotate(&plan, &options) {
        Ok(s) => {
            for (reference, current, n) in &s.vaults {
                println!("vault_key {reference}: re-encrypted {} under {current}", plural(*n as usize, "vault row"));
            }
            if let Some((current, n)) = &s.dlq {
                println!(
                    "dlq: re-encrypted {} under {current}",
                    plural(*n as usize, "entry").replace("entrys", "entries")
                );
            }
            if let Some((current, n)) = &s.webhooks {
                println!(
                    "webhook queue: re-encrypted {n} queued {} under {current}",
                    if *n == 1 { "body" } else { "bodies" }
                );
            }
            if s.vaults.is_empty() && s.dlq.is_none() {
                println!("pipeline {} keeps nothing encrypted", s.pipeline);
            }
            OK
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}
