//! The dead-letter queue: one JSON line per failing path of a record.
//!
//! Entry: `{"id", "run_id", "source", "file", "offset", "message_index", "stage", "code",
//! "reason", "findings": [{code, rule, path, message}], "raw"}` (and `"raw_encoding": "base64"`
//! when the bytes are not UTF-8). `id` is the record's, `<run_id>-<seq>`, as its audit entry's. `stage` is the name of the component
//! that rejected the record (a source component for decode and parse failures).
//!
//! Invariants:
//! - Nothing is lost: every record that cannot go on gets an entry, with its raw bytes exactly
//!   (as text when they are UTF-8, else base64), so it can be inspected and replayed
//!   (`sluice dlq replay`, `crate::replay`).
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
    /// The record's id, `<run_id>-<seq>`: its audit entry is `seq` of that run. Every entry of
    /// one record (one per failing path) has the same id; a replay replays the record once.
    id: &'a str,
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
    /// `base64` when the bytes are not UTF-8 (`raw` is then their base64), so nothing is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_encoding: Option<&'static str>,
}

/// The entry's JSON line (without the line break).
pub fn entry_line(run_id: &str, env: &Envelope, raw: &[u8], stage: &str, r: &Rejection) -> String {
    use base64::Engine;
    let (raw, raw_encoding) = match std::str::from_utf8(raw) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), None),
        Err(_) => (std::borrow::Cow::Owned(base64::engine::general_purpose::STANDARD.encode(raw)), Some("base64")),
    };
    let id = format!("{run_id}-{}", env.seq);
    let entry = Entry {
        id: &id,
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
        raw_encoding,
    };
    serde_json::to_string(&entry).unwrap_or_default()
}

/// A DLQ entry read back (`sluice dlq`).
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
pub struct StoredEntry {
    pub id: String,
    pub run_id: String,
    pub source: String,
    pub file: String,
    pub offset: u64,
    pub message_index: u64,
    pub stage: String,
    pub code: String,
    pub reason: String,
    pub findings: Vec<serde_json::Value>,
    pub raw: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_encoding: Option<String>,
}

impl StoredEntry {
    /// The message's bytes as they were received.
    pub fn raw_bytes(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        match self.raw_encoding.as_deref() {
            None => Ok(self.raw.clone().into_bytes()),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(&self.raw)
                .map_err(|_| format!("entry {}: `raw` is not valid base64", self.id)),
            Some(other) => Err(format!("entry {}: unknown `raw_encoding` `{other}`", self.id)),
        }
    }
}

/// Reads every entry of a DLQ file, in order. A missing file has none. A line that is not an
/// entry is an error naming its line number (never its content).
pub fn read_entries(path: &std::path::Path) -> Result<Vec<StoredEntry>, String> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot open `{}`: {}", path.display(), e.kind())),
    };
    let mut entries = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("`{}` line {}: cannot read: {}", path.display(), i + 1, e.kind()))?;
        if line.is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&line).map_err(|_| {
            format!("`{}` line {}: not a DLQ entry of this version of Sluice (no `id`?)", path.display(), i + 1)
        })?;
        entries.push(entry);
    }
    Ok(entries)
}
