//! Sinks: JSON Lines files, and the finalisation of canonical records (the lines of every
//! sink, `http` sinks' included: those are sent by `crate::http_sink`).
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
//! - Files are truncated at the start of a new file run and flushed and synced at its end. A
//!   resumed run reopens them cut back to their checkpoint lengths ([`reopen`]), so every
//!   record is in them exactly once (`crate::state`). A listening source's run appends
//!   ([`append`]): what it wrote was acknowledged to its peers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::RunError;
use crate::hl7;
use crate::record::{Doc, Issue, Payload, Record, write_str};

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
///
/// A deletion (`Envelope::deleted`) is a tombstone: the record its mapping made from what
/// identifies the resource, with `"_deleted": true` as its last member.
pub fn render(rec: &Record, run_id: &str, processed_at: &str) -> String {
    static DELETED: Doc = Doc::Bool(true);
    let tombstone: &[(&str, Over<'_>)] = if rec.env.deleted() { &[("_deleted", Over::Value(&DELETED))] } else { &[] };
    match &rec.payload {
        Payload::Hl7(m) => serde_json::to_string(&hl7::to_json(m.tree())).unwrap_or_default(),
        Payload::Doc(doc) if !rec.schema.starts_with("canonical/") => match doc {
            Doc::Obj(members) if !tombstone.is_empty() => {
                let mut out = String::with_capacity(256);
                write_merged(members, tombstone, &mut out);
                out
            }
            _ => doc.to_json_string(),
        },
        Payload::Doc(doc) => {
            let m = RuntimeMembers::of(rec, run_id, processed_at);
            let metadata =
                [("processed_at", Over::Value(&m.processed_at)), ("validation_status", Over::Value(&m.status))];
            // The tombstone member last, when there is one; no allocation per record.
            let all = [
                ("metadata", Over::Merge(&metadata)),
                ("compliance", Over::Value(&m.compliance)),
                ("errors", Over::Value(&m.errors)),
                ("warnings", Over::Value(&m.warnings)),
                ("_deleted", Over::Value(&DELETED)),
            ];
            let overrides = if tombstone.is_empty() { &all[..4] } else { &all[..] };
            let mut out = String::with_capacity(1024);
            match doc {
                Doc::Obj(members) => write_merged(members, overrides, &mut out),
                // Not an object: wrapped as `{"value": ...}` first.
                other => write_merged(&[("value".into(), other.clone())], overrides, &mut out),
            }
            out
        }
    }
}

/// The record a sink writes, as a document: what [`render`] writes, for sinks that pick
/// fields (`crate::sinks::postgres`). HL7 messages are `None` (no table sink takes them).
pub fn finalized(rec: &Record, run_id: &str, processed_at: &str) -> Option<Doc> {
    let Payload::Doc(doc) = &rec.payload else { return None };
    let mut doc = doc.clone();
    if !rec.schema.starts_with("canonical/") {
        return Some(doc);
    }
    if !matches!(doc, Doc::Obj(_)) {
        doc = Doc::Obj(vec![("value".into(), doc)]);
    }
    let m = RuntimeMembers::of(rec, run_id, processed_at);
    if let Some(meta) = doc.object_at("metadata") {
        meta.set("processed_at", m.processed_at);
        meta.set("validation_status", m.status);
    }
    doc.set("compliance", m.compliance);
    doc.set("errors", m.errors);
    doc.set("warnings", m.warnings);
    if rec.env.deleted() {
        doc.set(sluice_compiler::plan::pg_table::DELETED_COLUMN, Doc::Bool(true));
    }
    Some(doc)
}

/// The members the sink sets on a canonical record (see the module header).
struct RuntimeMembers {
    processed_at: Doc,
    status: Doc,
    compliance: Doc,
    errors: Doc,
    warnings: Doc,
}

impl RuntimeMembers {
    fn of(rec: &Record, run_id: &str, processed_at: &str) -> RuntimeMembers {
        let env = &rec.env;
        let status = if !env.errors.is_empty() {
            "error"
        } else if !env.warnings.is_empty() {
            "warning"
        } else {
            "valid"
        };
        let (masked, compliant) = match &env.masking {
            Some(outcomes) => (
                outcomes.values().all(|o| o.action != sluice_compiler::plan::MaskAction::Keep),
                outcomes.values().all(|o| o.explicit),
            ),
            None => (false, false),
        };
        RuntimeMembers {
            processed_at: Doc::Str(processed_at.into()),
            status: Doc::Str(status.into()),
            compliance: Doc::Obj(vec![
                ("hipaa_compliant".into(), Doc::Bool(compliant)),
                ("pii_masked".into(), Doc::Bool(masked)),
                ("audit_log_id".into(), Doc::Str(format!("{run_id}-{}", env.seq))),
            ]),
            errors: issues(&env.errors),
            warnings: issues(&env.warnings),
        }
    }
}

/// What the sink puts at a member of a canonical record: a value, or members merged into the
/// object there.
#[derive(Clone, Copy)]
enum Over<'a> {
    Value(&'a Doc),
    Merge(&'a [(&'a str, Over<'a>)]),
}

/// Writes the object `members` with `overrides` applied as `Doc::set` / `Doc::object_at` would
/// apply them in order (the first member of that name replaced in place, else the member
/// appended), without copying the document. A property test holds it to those calls.
fn write_merged(members: &[(String, Doc)], overrides: &[(&str, Over<'_>)], out: &mut String) {
    let mut done = vec![false; overrides.len()];
    out.push('{');
    let mut first = true;
    let mut member = |key: &str, out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
        write_str(key, out);
        out.push(':');
    };
    for (key, value) in members {
        member(key, out);
        match overrides.iter().position(|(k, _)| k == key).filter(|&i| !done[i]) {
            Some(i) => {
                done[i] = true;
                match &overrides[i].1 {
                    Over::Value(v) => v.write_json(out),
                    Over::Merge(inner) => match value {
                        Doc::Obj(m) => write_merged(m, inner, out),
                        _ => write_merged(&[], inner, out),
                    },
                }
            }
            None => value.write_json(out),
        }
    }
    for ((key, over), done) in overrides.iter().zip(done) {
        if done {
            continue;
        }
        member(key, out);
        match over {
            Over::Value(v) => v.write_json(out),
            Over::Merge(inner) => write_merged(&[], inner, out),
        }
    }
    out.push('}');
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

/// Opens an existing output for a resumed run: cut back to `len` bytes (the checkpoint's; what
/// a crash left after it goes) and positioned at its end. An output shorter than `len` was
/// changed since the checkpoint, and is refused.
pub fn reopen(path: &str, len: u64) -> Result<BufWriter<File>, RunError> {
    use std::io::{Seek, SeekFrom};
    let p = Path::new(path);
    let changed = |what: String| {
        RunError::new(crate::findings::RESUME_INPUT_CHANGED, format!("output `{path}` {what} since the run stopped"))
            .with_help("restore the file, or start over with `sluice run --restart`")
    };
    let mut f = match std::fs::OpenOptions::new().write(true).open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(changed("was removed".into())),
        Err(e) => return Err(RunError::io("open", p, &e)),
    };
    let actual = f.metadata().map_err(|e| RunError::io("read", p, &e))?.len();
    if actual < len {
        return Err(changed(format!("is shorter than its checkpoint ({actual} bytes, checkpoint {len})")));
    }
    f.set_len(len).map_err(|e| RunError::io("truncate", p, &e))?;
    f.seek(SeekFrom::End(0)).map_err(|e| RunError::io("seek", p, &e))?;
    Ok(BufWriter::with_capacity(256 * 1024, f))
}

/// Opens an output to append to (a listening source's: its records were acknowledged, so a new
/// run must not truncate them), created if missing. A partial last line, which only a crash
/// mid-write leaves, is cut away: it belonged to a record that was never acknowledged, so its
/// peer sends it again.
pub fn append(path: &str) -> Result<BufWriter<File>, RunError> {
    use std::io::{Read, Seek, SeekFrom};
    let p = Path::new(path);
    if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| RunError::io("create directory", parent, &e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .map_err(|e| RunError::io("open", p, &e))?;
    let len = f.metadata().map_err(|e| RunError::io("read", p, &e))?.len();
    // Walk back from the end to the last line break.
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let complete = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        f.seek(SeekFrom::Start(start)).and_then(|_| f.read_exact(buf)).map_err(|e| RunError::io("read", p, &e))?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if complete < len {
        f.set_len(complete).map_err(|e| RunError::io("truncate", p, &e))?;
    }
    f.seek(SeekFrom::End(0)).map_err(|e| RunError::io("seek", p, &e))?;
    Ok(BufWriter::with_capacity(256 * 1024, f))
}

#[cfg(test)]
mod append_tests {
    use super::*;

    #[test]
    fn append_cuts_only_a_partial_last_line() {
        let dir = std::env::temp_dir().join(format!("sluice-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        let p = path.to_str().unwrap();
        // A last line break further back than one read chunk.
        let long = format!("{{\"a\":1}}\n{}", "x".repeat(200_000));
        for (before, after) in [
            ("", ""),
            ("{\"a\":1}\n", "{\"a\":1}\n"),
            ("{\"a\":1}\n{\"b\":", "{\"a\":1}\n"),
            ("no line break at all", ""),
            (long.as_str(), "{\"a\":1}\n"),
        ] {
            std::fs::write(&path, before).unwrap();
            let mut w = append(p).unwrap();
            write_line(&mut w, "{\"c\":3}", p).unwrap();
            finish(&mut w, p).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{after}{{\"c\":3}}\n"));
        }
        std::fs::remove_file(&path).unwrap();
        let mut w = append(p).unwrap();
        finish(&mut w, p).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "created when missing");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Flushes and syncs a file at the end of the run.
pub fn finish(w: &mut BufWriter<File>, path: &str) -> Result<(), RunError> {
    w.flush().map_err(|e| RunError::io("flush", Path::new(path), &e))?;
    w.get_ref().sync_all().map_err(|e| RunError::io("sync", Path::new(path), &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The merge as the sink used to do it: copy, then `object_at` / `set`.
    fn merged_by_copy(doc: &Doc, meta: &[(&str, Doc)], tail: &[(&str, Doc)]) -> String {
        let mut doc = doc.clone();
        if !matches!(doc, Doc::Obj(_)) {
            doc = Doc::Obj(vec![("value".into(), doc)]);
        }
        if let Some(m) = doc.object_at("metadata") {
            for (k, v) in meta {
                m.set(k, v.clone());
            }
        }
        for (k, v) in tail {
            doc.set(k, v.clone());
        }
        doc.to_json_string()
    }

    fn doc() -> impl Strategy<Value = Doc> {
        let key = proptest::sample::select(vec!["metadata", "errors", "processed_at", "a", "compliance", "warnings"]);
        let leaf = prop_oneof![Just(Doc::Null), "[a-z\"]{0,3}".prop_map(Doc::Str), Just(Doc::Num("1.50".into()))];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Doc::Arr),
                proptest::collection::vec((key.clone().prop_map(String::from), inner), 0..5).prop_map(Doc::Obj),
            ]
        })
    }

    proptest! {
        #[test]
        fn merging_while_writing_is_copy_then_set(d in doc()) {
            let (p, s) = (Doc::Str("2024".into()), Doc::Str("valid".into()));
            let (c, e, w) = (Doc::Bool(true), Doc::Arr(vec![]), Doc::Num("7".into()));
            let meta = [("processed_at", Over::Value(&p)), ("validation_status", Over::Value(&s))];
            let overrides = [
                ("metadata", Over::Merge(&meta)),
                ("compliance", Over::Value(&c)),
                ("errors", Over::Value(&e)),
                ("warnings", Over::Value(&w)),
            ];
            let mut out = String::new();
            match &d {
                Doc::Obj(m) => write_merged(m, &overrides, &mut out),
                other => write_merged(&[("value".into(), other.clone())], &overrides, &mut out),
            }
            let expected = merged_by_copy(
                &d,
                &[("processed_at", p.clone()), ("validation_status", s.clone())],
                &[("compliance", c.clone()), ("errors", e.clone()), ("warnings", w.clone())],
            );
            prop_assert_eq!(out, expected);
        }
    }
}
