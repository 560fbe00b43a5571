//! The dead-letter queue: one JSON line per failing path of a record.
//!
//! Entry: `{"run_id", "source", "file", "offset", "message_index", "stage", "code", "reason",
//! "findings": [{code, rule, path, message}], "raw"}`. `stage` is the name of the component
//! that rejected the record (a source component for decode and parse failures).
//!
//! Invariants:
//! - Nothing is lost: every record that cannot go on gets an entry, with its raw bytes (lossy
//!   UTF-8), so it can be inspected and replayed.
//! - `reason` and finding messages never hold field values: they name rules, paths and codes.
//!   Only `raw` holds data; that is the point of a DLQ.
//! - Not yet encrypted at rest: DLQ payload encryption (invariant 4) comes with a later issue;
//!   until then the DLQ file must be stored like the input.
//! - Entries are written by the writer thread in record order, so the file is deterministic.

use serde::Serialize;

use crate::record::Envelope;

/// One finding in a DLQ entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub rule: Option<String>,
    pub path: Option<String>,
    pub message: String,
}

/// Why a record goes to the DLQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub reason: String,
    pub findings: Vec<Finding>,
}

impl Rejection {
    /// A rejection with one finding of the same code.
    pub fn single(code: &'static str, path: Option<&str>, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Rejection {
            code,
            findings: vec![Finding { code, rule: None, path: path.map(str::to_string), message: reason.clone() }],
            reason,
        }
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    run_id: &'a str,
    source: &'a str,
    file: &'a str,
    offset: u64,
    message_index: u64,
    stage: &'a str,
    code: &'a str,
    reason: &'a str,
    findings: &'a [Finding],
    raw: &'a str,
}

/// The entry's JSON line (without the line break).
pub fn entry_line(run_id: &str, env: &Envelope, raw: &[u8], stage: &str, r: &Rejection) -> String {
    let raw = String::from_utf8_lossy(raw);
    let entry = Entry {
        run_id,
        source: &env.source,
        file: &env.file,
        offset: env.offset,
        message_index: env.index,
        stage,
        code: r.code,
        reason: &r.reason,
        findings: &r.findings,
        raw: &raw,
    };
    serde_json::to_string(&entry).unwrap_or_default()
}
