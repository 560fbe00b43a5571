//! Retention and erasure (`sluice purge`): removes the DLQ records older than the pipeline's
//! `retention.dlq`, and with `--subject ID` everything Sluice keeps about one person: the DLQ
//! records whose message names the id in PID-3, and the id's own row in every token vault the
//! pipeline tokenizes into.
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
    /// Vault rows of the subject's id removed.
    pub subject_vault_rows: u64,
}

#[derive(Serialize)]
struct Entry {
    event: &'static str,
    subject: bool,
    expired_dlq_records: u64,
    subject_dlq_records: u64,
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

/// Removes what expired, and with `subject` that person's data. See the module header.
pub fn purge(plan: &Plan, options: &RunOptions, subject: Option<&str>) -> Result<Purged, RunError> {
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    let now = clock.now();
    let mut report = Purged { pipeline: plan.pipeline.clone(), ..Purged::default() };
    let dlq_days = plan.retention.as_ref().and_then(|r| r.dlq_days);
    if dlq_days.is_none() && subject.is_none() {
        return Err(RunError::new(
            findings::NOTHING_TO_PURGE,
            format!("pipeline `{}` has no `retention.dlq` and no `--subject` was given", plan.pipeline),
        )
        .with_help("add `retention: {dlq: 30d}` to the pipeline, or give `--subject PATIENT_ID`"));
    }
    let entries = crate::dlq::read_plan_entries(plan)?;
    let mut expired: BTreeSet<String> = BTreeSet::new();
    if let Some(days) = dlq_days {
        let cutoff = days_before(&now, days)
            .ok_or_else(|| RunError::new(findings::BAD_CLOCK, "the clock's time is not RFC 3339"))?;
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
            let raw =
                e.raw_bytes(key.as_ref()).map_err(|m| RunError::new(findings::DLQ_UNREADABLE, format!("DLQ {m}")))?;
            if names_subject(&raw, subject) {
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
        },
    )?;
    let ids: Vec<String> = expired.into_iter().chain(of_subject).collect();
    if !ids.is_empty() {
        purge::purge(plan, options, &Choice::Ids(ids))?;
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
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

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
