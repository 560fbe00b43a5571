//! Retention and erasure (`sluice purge`): removes the DLQ records older than the pipeline's
//! `retention.dlq`, the archived audit logs older than `retention.audit`, the run records
//! older than `retention.state`, and with `--subject ID` everything Sluice keeps about one
//! person: the DLQ records whose message names the id in PID-3 (or whose message key or a
//! header value, kept in the entry's `envelope`, is the id), and in every token vault the
//! pipeline tokenizes into, the id's own row and the rows of every value a `tokenize` rule
//! with a `subject` linked to the id (a value other people's tokens share too is kept, and
//! counted).
//!
//! What expiry means for the hash-chained audit log: whole archived files only. A new file run
//! archives the previous log as `<path>.<n>` ([`crate::audit::archive`]); an archive whose
//! newest entry is older than the retention is deleted whole, so every file left still
//! verifies on its own and the live log (the current chain) is never cut. The live log's
//! `purged` entry counts the files and entries removed. An entry is thus kept at least as
//! long as `retention.audit`, and at most until its file's newest entry expires.
//!
//! What expiry means for the state store: run records (input lists and checkpoints) last
//! written before the retention, except those a later run still needs
//! ([`crate::state::Store::expire_runs`]). DLQ rows follow `retention.dlq`; vault rows are
//! removed per subject only, since a token in a sink must stay detokenizable.
//!
//! Invariants:
//! - Audited without the id: DLQ records go through [`crate::purge`] (atomic, its own
//!   `dlq_purged` entry with record ids); the whole action is recorded first as `purged`
//!   (`expired_dlq_records`, `subject_dlq_records`, `subject_vault_rows`; the subject given or
//!   not, never its value).
//! - Never beside a run: [`crate::purge`] and the vault deletion take the pipeline's lock.
//! - Expiry compares the entry's `at` (RFC 3339 UTC, written by the run's clock) with the
//!   clock's now minus the retention, as text: both are `YYYY-MM-DDTHH:MM:SS...Z`.
//! - A DLQ message that does not parse as HL7 is searched token by token (the text split at
//!   HL7 delimiters) for the id, so a message too broken to parse is not kept by mistake.

use std::collections::BTreeSet;

use serde::Serialize;
use sluice_compiler::plan::{ComponentKind, Plan};

use crate::error::RunError;
use crate::findings;
use crate::purge::{self, Choice};
use crate::state::Store;
use crate::{RunOptions, time};

/// What `sluice purge` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Purged {
    pub pipeline: String,
    /// DLQ records removed because they expired.
    pub expired_dlq_records: u64,
    /// DLQ records removed because they name the subject.
    pub subject_dlq_records: u64,
    /// Vault rows of the subject removed: its id's own, and those of the values linked to it.
    pub subject_vault_rows: u64,
    /// Vault rows linked to the subject kept because other people's tokens share them.
    pub subject_vault_rows_shared: u64,
    /// Archived audit files removed (`retention.audit`), and the entries they held.
    pub expired_audit_files: u64,
    pub expired_audit_entries: u64,
    /// Run records removed from the state store (`retention.state`).
    pub expired_state_runs: u64,
}

#[derive(Serialize)]
struct Entry {
    event: &'static str,
    subject: bool,
    expired_dlq_records: u64,
    subject_dlq_records: u64,
    /// Present when `retention.audit` is declared, so other entries read as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    expired_audit_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expired_audit_entries: Option<u64>,
    /// Present when `retention.state` is declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    expired_state_runs: Option<u64>,
}

/// The archived audit logs of `path` (`<path>.<n>`) whose newest entry is older than `cutoff`,
/// with their entry counts. An archive whose last entry cannot be read is kept (and not
/// counted): it is never deleted on a guess.
fn expired_archives(path: &std::path::Path, cutoff: &str) -> Result<Vec<(std::path::PathBuf, u64)>, RunError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let prefix = format!("{name}.");
    let listing = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunError::io("read", &dir, &e)),
    };
    let mut expired = Vec::new();
    for entry in listing.filter_map(Result::ok) {
        let file = entry.file_name();
        let Some(n) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let archive = entry.path();
        let Ok(text) = std::fs::read_to_string(&archive) else { continue };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let newest = lines
            .last()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|e| e.get("at").and_then(|a| a.as_str()).map(str::to_string));
        if newest.is_some_and(|at| at.as_str() < cutoff) {
            expired.push((archive, lines.len() as u64));
        }
    }
    expired.sort();
    Ok(expired)
}

/// The instant `days` days before `now` (RFC 3339 UTC), in the same format.
pub fn days_before(now: &str, days: u32) -> Option<String> {
    let (y, m, d) = (now.get(0..4)?.parse().ok()?, now.get(5..7)?.parse().ok()?, now.get(8..10)?.parse().ok()?);
    let (y, m, d) = time::civil_from_days(time::days_from_civil(y, m, d) - i64::from(days));
    Some(format!("{y:04}-{m:02}-{d:02}{}", now.get(10..)?))
}

/// Whether a raw message names `subject` as a patient identifier (PID-3, any repetition);
/// a message that does not parse, whether any of its HL7 tokens is `subject`.
pub fn names_subject(raw: &[u8], subject: &str) -> bool {
    let text = String::from_utf8_lossy(raw);
    let pid3 = sluice_hl7v2::path::Path::parse("PID-3[*].1").ok();
    match (sluice_hl7v2::view::MessageView::parse(&text), pid3) {
        (Ok(view), Some(path)) => view.select(&path).iter().any(|v| v.trim() == subject),
        _ => text.split(['|', '^', '~', '&', '\r', '\n']).any(|t| t.trim() == subject),
    }
}

/// Whether a record's message key or one of its header values is `subject` (a Kafka topic
/// keyed by patient id).
fn bus_names_subject(bus: &crate::record::BusMeta, subject: &str) -> bool {
    let is_subject = |v: &[u8]| std::str::from_utf8(v).is_ok_and(|t| t.trim() == subject);
    bus.key.as_deref().is_some_and(is_subject) || bus.headers.iter().any(|(_, v)| v.as_deref().is_some_and(is_subject))
}

/// Removes what expired, and with `subject` that person's data. See the module header.
pub fn purge(plan: &Plan, options: &RunOptions, subject: Option<&str>) -> Result<Purged, RunError> {
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    let now = clock.now();
    let mut report = Purged { pipeline: plan.pipeline.clone(), ..Purged::default() };
    let dlq_days = plan.retention.as_ref().and_then(|r| r.dlq_days);
    let audit_days = plan.retention.as_ref().and_then(|r| r.audit_days);
    let state_days = plan.retention.as_ref().and_then(|r| r.state_days);
    if dlq_days.is_none() && audit_days.is_none() && state_days.is_none() && subject.is_none() {
        return Err(RunError::new(
            findings::NOTHING_TO_PURGE,
            format!("pipeline `{}` has no `retention` period and no `--subject` was given", plan.pipeline),
        )
        .with_help(
            "add `retention: {dlq: 30d, audit: 6y, state: 90d}` to the pipeline, or give `--subject PATIENT_ID`",
        ));
    }
    let cutoff = |days: u32| {
        days_before(&now, days).ok_or_else(|| RunError::new(findings::BAD_CLOCK, "the clock's time is not RFC 3339"))
    };
    let archives = match (audit_days, &plan.audit) {
        (Some(days), Some(a)) => expired_archives(std::path::Path::new(&a.path), &cutoff(days)?)?,
        _ => Vec::new(),
    };
    // Counted under the pipeline's lock, which is let go before the DLQ purge takes it.
    let runs = match (state_days, &plan.state) {
        (Some(days), Some(target)) => {
            Store::open(target, Some(&plan.pipeline))?.expired_runs(&plan.pipeline, &cutoff(days)?)?
        }
        _ => Vec::new(),
    };
    report.expired_state_runs = runs.len() as u64;
    report.expired_audit_files = archives.len() as u64;
    report.expired_audit_entries = archives.iter().map(|(_, n)| n).sum();
    let entries = crate::dlq::read_plan_entries(plan)?;
    let mut expired: BTreeSet<String> = BTreeSet::new();
    if let Some(days) = dlq_days {
        let cutoff = cutoff(days)?;
        expired.extend(
            entries.iter().filter(|e| e.at.as_deref().is_some_and(|at| at < cutoff.as_str())).map(|e| e.id.clone()),
        );
    }
    let mut of_subject: BTreeSet<String> = BTreeSet::new();
    if let Some(subject) = subject {
        let key = match &plan.dlq {
            Some(d) => crate::dlq::key_for(d)?,
            None => None,
        };
        for e in entries.iter().filter(|e| !expired.contains(&e.id) && !e.is_part()) {
            let unreadable = |m: String| RunError::new(findings::DLQ_UNREADABLE, format!("DLQ {m}"));
            let raw = e.raw_bytes(key.as_ref()).map_err(unreadable)?;
            let bus = e.bus_meta(key.as_ref()).map_err(unreadable)?;
            if names_subject(&raw, subject) || bus.is_some_and(|b| bus_names_subject(&b, subject)) {
                of_subject.insert(e.id.clone());
            }
        }
        // A dropped part belongs to its record's person: it goes with the record.
        for e in entries.iter().filter(|e| e.is_part()) {
            if e.part.as_ref().is_some_and(|p| of_subject.contains(p.record.as_ref())) {
                of_subject.insert(e.id.clone());
            }
        }
    }
    report.expired_dlq_records = expired.len() as u64;
    report.subject_dlq_records = of_subject.len() as u64;
    crate::operator::record(
        plan,
        &clock,
        "retention",
        Entry {
            event: "purged",
            subject: subject.is_some(),
            expired_dlq_records: report.expired_dlq_records,
            subject_dlq_records: report.subject_dlq_records,
            expired_audit_files: audit_days.map(|_| report.expired_audit_files),
            expired_audit_entries: audit_days.map(|_| report.expired_audit_entries),
            expired_state_runs: state_days.map(|_| report.expired_state_runs),
        },
    )?;
    // After the entry that records it (audited first); a crash between the two leaves the
    // files, and the purge can be run again.
    for (archive, _) in &archives {
        std::fs::remove_file(archive).map_err(|e| RunError::io("remove", archive, &e))?;
    }
    let ids: Vec<String> = expired.into_iter().chain(of_subject).collect();
    if !ids.is_empty() {
        purge::purge(plan, options, &Choice::Ids(ids))?;
    }
    if let (Some(_), Some(target)) = (state_days, &plan.state)
        && !runs.is_empty()
    {
        Store::open(target, Some(&plan.pipeline))?.delete_runs(&runs)?;
    }
    if let (Some(subject), Some(target)) = (subject, &plan.state) {
        let store = Store::open(target, Some(&plan.pipeline))?;
        for c in &plan.components {
            if let ComponentKind::Mask(m) = &c.kind
                && m.vault_key.is_some()
                && let Some(reference) = &m.hash_key
            {
                let hash_key = crate::secrets::resolve(reference, &format!("hash_key of mask `{}`", c.name))?;
                if store.vault_forget(&crate::vault::lookup(&hash_key, subject))? {
                    report.subject_vault_rows += 1;
                }
                // The tokens linked to the person (`tokenize` with a `subject`).
                let (removed, shared) = store.vault_forget_subject(&crate::vault::subject_hash(&hash_key, subject))?;
                report.subject_vault_rows += removed;
                report.subject_vault_rows_shared += shared;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keyed_or_headed_by_the_subject_names_it() {
        let bus = |key: Option<&[u8]>, header: Option<&[u8]>| crate::record::BusMeta {
            key: key.map(<[u8]>::to_vec),
            headers: vec![("trace".into(), None), ("patient".into(), header.map(<[u8]>::to_vec))],
            deleted: false,
        };
        assert!(bus_names_subject(&bus(Some(b"MRN-42"), None), "MRN-42"));
        assert!(bus_names_subject(&bus(None, Some(b" MRN-42 ")), "MRN-42"));
        assert!(!bus_names_subject(&bus(Some(b"MRN-420"), Some(b"xMRN-42")), "MRN-42"), "whole values only");
        assert!(!bus_names_subject(&bus(Some(&[0xff, 0xfe]), None), "MRN-42"));
    }

    #[test]
    fn cutoffs_are_days_earlier_at_the_same_time() {
        assert_eq!(days_before("2024-03-01T10:00:00Z", 1).as_deref(), Some("2024-02-29T10:00:00Z"));
        assert_eq!(days_before("2024-01-15T10:30:01.250Z", 30).as_deref(), Some("2023-12-16T10:30:01.250Z"));
        assert_eq!(days_before("garbage", 1), None);
    }

    #[test]
    fn a_message_names_its_patient_ids() {
        let msg = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||12345^^^H^MR~999^^^S||DOE^JANE\r";
        assert!(names_subject(msg, "12345") && names_subject(msg, "999"));
        assert!(!names_subject(msg, "DOE") && !names_subject(msg, "1234"));
        assert!(names_subject(b"garbage|12345|x", "12345"), "a message that does not parse: by token");
    }
}
