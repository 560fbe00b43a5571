//! The audit log: append-only JSON lines, hash-chained, one entry per record disposition plus a
//! final `run_completed` entry with the summary counts.
//!
//! First entry of a run: `{"seq", "run_id", "plan_hash", "at", "event": "run_started"
//! (`dlq_replay_started` for a replay), "pipeline", "spec_file", "plan_format",
//! "sluice_version", "input_files", "prev", "hash"}`, numbered 0 in a new file (a resumed run
//! has none of its own: its entry was written when it first started).
//!
//! Record entry: `{"seq", "run_id", "plan_hash", "at", "record": "<source>:<file>#<index>",
//! "offset", "masked", "message_id", "event": "delivered|dlq|filtered", "component", "sinks",
//! "prev", "hash"}`: `offset` is the message's byte offset in its file, `masked` the number of
//! PHI values the mask stage masked in what a sink wrote. A record that went on without some of
//! its parts (`bad_segments: drop`) also has `"dropped": [{"segment", "offset", "code",
//! "dlq"}]`: each part's segment number, byte offset, code and DLQ entry id (left out when
//! nothing was dropped, so other entries are as before); `run_completed` then counts them in
//! `parts_dropped`.
//! `seq` is the record's sequence number in the run (1-based, reading order), so a record's
//! `audit_log_id` (`<run_id>-<seq>`) names its entry; `run_completed` takes the next number.
//! `hash` is the hex SHA-256 of the entry's line up to, not including, `,"hash":...`, closed
//! with `}` — i.e. of the entry serialised without its `hash` member. `hash` is always last.
//! `prev` is the previous entry's `hash` (64 zeros for the first). Since `hash` covers every
//! other member, `prev` included, and the verifier recomputes it, linking to it pins the whole
//! previous line as a hash of that line would, with one SHA-256 per entry instead of two.
//! (Format 2; in format 1, before the speed work of issue 3, `prev` was the SHA-256 of the
//! previous full line.)
//!
//! Invariants:
//! - Never a field value: entries hold ids, names, counts, codes and the message control id
//!   (MSH-10, which is not PHI).
//! - Written by the writer thread only, in record order, so the chain is deterministic under a
//!   fixed clock.
//! - A listening source's run appends to the file and goes on from its last entry
//!   ([`last_entry`]: its hash and `seq`), so restarting a listener keeps one chain.
//! - A new file run starts a new file (a new chain from [`GENESIS`]) and never destroys the old
//!   one: a non-empty log left by an earlier run, with any operator entries appended to it since
//!   (`dlq_purged`, `access_refused`, ...), is first renamed to `<path>.<n>` ([`archive`]), `n`
//!   one more than the highest already there. A resumed run cuts the current file back to its
//!   checkpoint and goes on from the head saved with it ([`Chain::resume`]), so the chain of an
//!   interrupted and resumed run verifies as one; its `run_completed` counts the `resumes`.

use std::io::{BufRead, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Serialize)]
pub struct RecordEvent<'a> {
    pub record: String,
    /// Byte offset of the message in its file (or its connection's stream).
    pub offset: u64,
    /// PHI leaves the record's mask stage masked (not kept) in what a sink wrote.
    pub masked: u32,
    pub message_id: Option<&'a str>,
    pub event: &'a str,
    pub component: &'a str,
    pub sinks: &'a [String],
    /// Parts of the record left out of it and kept in the DLQ (`bad_segments: drop`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub dropped: &'a [Dropped],
}

/// One part a record went on without.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// 1-based number of the segment in the message.
    pub segment: usize,
    /// Byte offset of the segment in its file (or stream).
    pub offset: u64,
    /// Why (the codec's code, `HL7004`).
    pub code: &'static str,
    /// The id of its DLQ entry.
    pub dlq: String,
}

/// The first entry of a run: what ran, before any record.
#[derive(Serialize)]
pub struct Started<'a> {
    pub event: &'a str,
    pub pipeline: &'a str,
    pub spec_file: &'a str,
    pub plan_format: u32,
    pub sluice_version: &'a str,
    /// Input files of a file run (0 for a listener or a replay).
    pub input_files: usize,
}

#[derive(Serialize)]
pub struct Completed<'a> {
    pub event: &'a str,
    pub records_in: u64,
    pub delivered: u64,
    pub dlq: u64,
    pub filtered: u64,
    pub warnings: u64,
    pub balanced: bool,
    /// How many times the run was resumed after an interruption (left out when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub resumes: u32,
    /// Parts (segments) left out of records that went on, each kept in the DLQ (left out when
    /// none). Not part of `records_in = delivered + dlq + filtered`: those count records.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub parts_dropped: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct Head<'a, T: Serialize> {
    seq: u64,
    run_id: &'a str,
    plan_hash: &'a str,
    at: &'a str,
    #[serde(flatten)]
    body: T,
    prev: &'a str,
}

/// Builds the chain; the caller writes the lines.
pub struct Chain {
    run_id: String,
    plan_hash: String,
    prev: String,
}

impl Chain {
    pub fn new(run_id: &str, plan_hash: &str) -> Chain {
        Chain::resume(run_id, plan_hash, GENESIS)
    }

    /// A chain that goes on after the entry whose hash is `head` (a checkpoint's); an empty
    /// `head` starts a new chain.
    pub fn resume(run_id: &str, plan_hash: &str, head: &str) -> Chain {
        let prev = if head.is_empty() { GENESIS } else { head };
        Chain { run_id: run_id.into(), plan_hash: plan_hash.into(), prev: prev.into() }
    }

    /// The hash of the last entry built (the genesis hash before the first).
    pub fn head(&self) -> &str {
        &self.prev
    }

    /// The next entry's line (no line break), chained to the previous one.
    pub fn entry<T: Serialize>(&mut self, seq: u64, at: &str, body: T) -> String {
        let head = Head { seq, run_id: &self.run_id, plan_hash: &self.plan_hash, at, body, prev: &self.prev };
        // An entry is a few hundred bytes: sized once rather than regrown.
        let mut buf = Vec::with_capacity(512);
        let mut line = match serde_json::to_writer(&mut buf, &head) {
            Ok(()) => String::from_utf8(buf).unwrap_or_else(|_| "{}".into()),
            Err(_) => "{}".into(),
        };
        let hash = sha_hex(line.as_bytes());
        line.pop();
        line.push_str(",\"hash\":\"");
        line.push_str(&hash);
        line.push_str("\"}");
        self.prev = hash;
        line
    }

    pub fn write<W: Write, T: Serialize>(&mut self, out: &mut W, seq: u64, at: &str, body: T) -> std::io::Result<()> {
        let line = self.entry(seq, at, body);
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")
    }
}

/// The `seq` and `hash` of the last complete entry of an audit file (a torn last line is
/// skipped, see [`crate::sink::append`]); `None` for a missing or empty file. A run that
/// appends to the file goes on from there, so the file stays one chain.
pub fn last_entry(path: &std::path::Path) -> Result<Option<(u64, String)>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open `{}`: {}", path.display(), e.kind())),
    };
    let len = f.metadata().map_err(|e| format!("cannot read `{}`: {}", path.display(), e.kind()))?.len();
    // An entry is a few hundred bytes; the last one is in the last 64 KiB.
    let start = len.saturating_sub(64 * 1024);
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.read_to_end(&mut tail))
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), e.kind()))?;
    let text = String::from_utf8_lossy(&tail);
    // A last line without its line break is a write a crash cut short (the next append cuts
    // it away, `crate::sink::append`): the chain's head is the entry before it.
    let whole = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let Some(last) = whole.rsplit('\n').next().filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let entry: serde_json::Value = serde_json::from_str(last)
        .map_err(|_| format!("the last line of `{}` is not an audit entry", path.display()))?;
    match (entry.get("seq").and_then(|s| s.as_u64()), entry.get("hash").and_then(|h| h.as_str())) {
        (Some(seq), Some(hash)) => Ok(Some((seq, hash.to_string()))),
        _ => Err(format!("the last line of `{}` is not an audit entry", path.display())),
    }
}

/// The `spec_file` of the first `run_started` (or `dlq_replay_started`) entry of an audit
/// log: the pipeline the log belongs to, as its runs were given it. `None` when the file
/// cannot be read or has no such entry.
pub fn spec_file_of(path: &std::path::Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    std::io::BufReader::new(file).lines().map_while(Result::ok).find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(&line).ok()?;
        entry.get("spec_file")?.as_str().map(str::to_string)
    })
}

/// Moves a non-empty audit log out of the way of a new file run: renames it to `<path>.<n>`,
/// `n` one more than the highest archive number beside it (1 for the first), and returns the
/// new name. A missing or empty file is left alone (`None`). Archives are never overwritten:
/// each still verifies on its own (`sluice audit verify <path>.<n>`).
pub fn archive(path: &std::path::Path) -> std::io::Result<Option<std::path::PathBuf>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let prefix = format!("{name}.");
    let highest = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let target = dir.join(format!("{name}.{}", highest + 1));
    std::fs::rename(path, &target)?;
    Ok(Some(target))
}

/// Checks an audit file's chain: every entry's `hash`, every `prev` link, increasing `seq`.
/// Returns the number of entries; the error names the first bad line (1-based).
pub fn verify_audit_chain(path: impl AsRef<std::path::Path>) -> Result<u64, String> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {}", path.display(), e.kind()))?;
    let mut prev = GENESIS.to_string();
    let mut last_seq: Option<u64> = None;
    let mut count = 0u64;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("line {n}: cannot read: {}", e.kind()))?;
        const TAIL: usize = ",\"hash\":\"\"}".len() + 64;
        if line.len() < TAIL || !line.is_char_boundary(line.len() - TAIL) {
            return Err(format!("line {n}: not an audit entry"));
        }
        let (body, tail) = line.split_at(line.len() - TAIL);
        let hash = tail
            .strip_prefix(",\"hash\":\"")
            .and_then(|t| t.strip_suffix("\"}"))
            .ok_or_else(|| format!("line {n}: `hash` is not the last member"))?;
        if sha_hex(format!("{body}}}").as_bytes()) != hash {
            return Err(format!("line {n}: hash does not match the entry (entry altered)"));
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|_| format!("line {n}: not valid JSON"))?;
        if value.get("prev").and_then(|p| p.as_str()) != Some(prev.as_str()) {
            return Err(format!(
                "line {n}: `prev` does not match the previous entry (entry removed, inserted or reordered)"
            ));
        }
        let seq = value.get("seq").and_then(|s| s.as_u64()).ok_or_else(|| format!("line {n}: no `seq`"))?;
        if last_seq.is_some_and(|l| seq <= l) {
            return Err(format!("line {n}: `seq` does not increase"));
        }
        last_seq = Some(seq);
        prev = hash.to_string();
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_keeps_every_earlier_log_under_the_next_number() {
        let dir = std::env::temp_dir().join(format!("sluice-audit-archive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        assert_eq!(archive(&path).unwrap(), None, "no log yet: nothing to keep");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(archive(&path).unwrap(), None, "an empty log is not worth an archive");
        std::fs::write(&path, b"first\n").unwrap();
        assert_eq!(archive(&path).unwrap(), Some(dir.join("audit.jsonl.1")));
        std::fs::write(&path, b"second\n").unwrap();
        assert_eq!(archive(&path).unwrap(), Some(dir.join("audit.jsonl.2")));
        // A gap (an archive removed by hand) never makes a newer log take an older number.
        std::fs::remove_file(dir.join("audit.jsonl.1")).unwrap();
        std::fs::write(&path, b"third\n").unwrap();
        assert_eq!(archive(&path).unwrap(), Some(dir.join("audit.jsonl.3")));
        assert_eq!(std::fs::read(dir.join("audit.jsonl.2")).unwrap(), b"second\n");
        assert_eq!(std::fs::read(dir.join("audit.jsonl.3")).unwrap(), b"third\n");
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_last_entry_skips_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("sluice-audit-last-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let mut chain = Chain::new("r1", "sha256:x");
        let mut out = Vec::new();
        for seq in 0..2 {
            let ev = RecordEvent {
                record: format!("s:f#{seq}"),
                offset: 0,
                masked: 0,
                message_id: None,
                event: "delivered",
                component: "out",
                sinks: &[],
                dropped: &[],
            };
            chain.write(&mut out, seq, "2024-01-01T00:00:00Z", ev).unwrap();
        }
        let head = chain.head().to_string();
        std::fs::write(&path, &out).unwrap();
        assert_eq!(last_entry(&path), Ok(Some((1, head.clone()))));
        out.extend_from_slice(b"{\"seq\":2,\"run_id\":\"r1\",\"pla");
        std::fs::write(&path, &out).unwrap();
        assert_eq!(last_entry(&path), Ok(Some((1, head))), "the torn line is no entry");
        std::fs::write(&path, b"{\"seq\":0,\"ru").unwrap();
        assert_eq!(last_entry(&path), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let dir = std::env::temp_dir().join(format!("sluice-audit-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let mut chain = Chain::new("r1", "sha256:x");
        let mut out = Vec::new();
        for seq in 1..=3 {
            let ev = RecordEvent {
                record: format!("s:f#{seq}"),
                offset: 0,
                masked: 0,
                message_id: Some("C1"),
                event: "delivered",
                component: "out",
                sinks: &[],
                dropped: &[],
            };
            chain.write(&mut out, seq, "2024-01-01T00:00:00Z", ev).unwrap();
        }
        std::fs::write(&path, &out).unwrap();
        assert_eq!(verify_audit_chain(&path), Ok(3));
        let text = String::from_utf8(out).unwrap();
        std::fs::write(&path, text.replace("\"delivered\"", "\"filtered\"")).unwrap();
        assert!(verify_audit_chain(&path).unwrap_err().contains("line 1"));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(verify_audit_chain(&path).unwrap_err().contains("line 2"));
        // An entry edited and re-hashed still breaks the next entry's link.
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        let old_hash = first["hash"].as_str().unwrap();
        let body = &lines[0][..lines[0].len() - ",\"hash\":\"\"}".len() - 64];
        let edited = body.replace("\"delivered\"", "\"filtered\"");
        let forged = format!("{edited},\"hash\":\"{}\"}}", sha_hex(format!("{edited}}}").as_bytes()));
        assert_ne!(forged, lines[0]);
        assert!(!forged.contains(old_hash));
        std::fs::write(&path, format!("{forged}\n{}\n{}\n", lines[1], lines[2])).unwrap();
        assert!(verify_audit_chain(&path).unwrap_err().contains("line 2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
