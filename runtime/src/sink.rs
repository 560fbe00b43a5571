//! Sinks: JSON Lines files, and the finalisation of canonical records.
//!
//! Finalisation (records whose schema starts with `canonical/`): sets
//! `metadata.processed_at` (the run clock, RFC 3339 UTC), `metadata.validation_status`
//! (`error` when the record has errors, else `warning` when it has warnings, else `valid`),
//! `errors` and `warnings` (`[{code, path, message}]`) and `compliance`:
//! - `pii_masked`: the record passed a mask stage and every classed leaf got a masking action
//!   other than `keep` (true when the record has no classed leaf at all);
//! - `hipaa_compliant`: the record passed a mask stage and every classed leaf was handled by an
//!   explicit policy decision: masked by a field or class rule, or kept under a rule with a
//!   written reason (true when the record has no classed leaf). A leaf nulled only because no
//!   rule covered it is not a decision;
//! - `audit_log_id`: `<run_id>-<seq>`, the id of the record's audit entry.
//!
//! HL7 records are written in the compact JSON shape of `sluice_hl7v2::json`.
//!
//! Invariants:
//! - Lines are rendered on the CPU workers but written by the writer thread only, in record
//!   order: same input, plan and clock give byte-identical files.
//! - Files are truncated at the start of a run and flushed and synced at its end; resuming from
//!   checkpoints (and idempotent sinks) comes with the runtime issue.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::RunError;
use crate::hl7;
use crate::record::{Doc, Issue, Payload, Record};

fn issues(list: &[Issue]) -> Doc {
    Doc::Arr(
        list.iter()
            .map(|i| {
                Doc::Obj(vec![
                    ("code".into(), Doc::Str(i.code.into())),
                    ("path".into(), Doc::Str(i.path.clone())),
                    ("message".into(), Doc::Str(i.message.clone())),
                ])
            })
            .collect(),
    )
}

/// The line a sink writes for a record (no line break).
pub fn render(rec: &Record, run_id: &str, processed_at: &str) -> String {
    match &rec.payload {
        Payload::Hl7(m) => serde_json::to_string(&hl7::to_json(m.tree())).unwrap_or_default(),
        Payload::Doc(doc) if !rec.schema.starts_with("canonical/") => doc.to_json_string(),
        Payload::Doc(doc) => {
            let mut doc = doc.clone();
            if !matches!(doc, Doc::Obj(_)) {
                doc = Doc::Obj(vec![("value".into(), doc)]);
            }
            let env = &rec.env;
            let status = if !env.errors.is_empty() {
                "error"
            } else if !env.warnings.is_empty() {
                "warning"
            } else {
                "valid"
            };
            if let Some(meta) = doc.object_at("metadata") {
                meta.set("processed_at", Doc::Str(processed_at.into()));
                meta.set("validation_status", Doc::Str(status.into()));
            }
            let (masked, compliant) = match &env.masking {
                Some(outcomes) => (
                    outcomes.values().all(|o| o.action != sluice_compiler::plan::MaskAction::Keep),
                    outcomes.values().all(|o| o.explicit),
                ),
                None => (false, false),
            };
            doc.set(
                "compliance",
                Doc::Obj(vec![
                    ("hipaa_compliant".into(), Doc::Bool(compliant)),
                    ("pii_masked".into(), Doc::Bool(masked)),
                    ("audit_log_id".into(), Doc::Str(format!("{run_id}-{}", env.seq))),
                ]),
            );
            doc.set("errors", issues(&env.errors));
            doc.set("warnings", issues(&env.warnings));
            doc.to_json_string()
        }
    }
}

/// Creates (truncates) an output file, with its parent directories.
pub fn create(path: &str) -> Result<BufWriter<File>, RunError> {
    let p = Path::new(path);
    if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| RunError::io("create directory", parent, &e))?;
    }
    let f = File::create(p).map_err(|e| RunError::io("create", p, &e))?;
    Ok(BufWriter::with_capacity(256 * 1024, f))
}

/// Writes one line.
pub fn write_line(w: &mut BufWriter<File>, line: &str, path: &str) -> Result<(), RunError> {
    w.write_all(line.as_bytes())
        .and_then(|_| w.write_all(b"\n"))
        .map_err(|e| RunError::io("write", Path::new(path), &e))
}

/// Flushes and syncs a file at the end of the run.
pub fn finish(mut w: BufWriter<File>, path: &str) -> Result<(), RunError> {
    w.flush().map_err(|e| RunError::io("flush", Path::new(path), &e))?;
    w.get_ref().sync_all().map_err(|e| RunError::io("sync", Path::new(path), &e))
}
