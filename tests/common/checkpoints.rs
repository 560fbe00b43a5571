//! Checkpoint tests shared by tests/resume.rs (SQLite) and tests/pg_state.rs (PostgreSQL): a
//! workspace whose pipeline `resume.yaml` is the quick start's over the examples repeated, and
//! the checks that every record was written exactly once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use super::{text, workspace};

/// Records per copy of the examples, and how they end.
pub const PER_COPY: (u64, u64, u64, u64) = (66, 39, 6, 21);

/// A workspace whose pipeline `resume.yaml` is the quick start's, reading `input/` (the
/// examples repeated `copies` times into one file) and checkpointing every `every`.
pub fn setup(name: &str, copies: usize, every: &str) -> super::Workspace {
    let dir = workspace(name);
    let mut one = Vec::new();
    for file in ["feed-2024-01-15.hl7", "rejects.hl7"] {
        one.extend(std::fs::read(dir.join("examples/hl7").join(file)).unwrap());
        one.extend_from_slice(b"\r\n");
    }
    std::fs::create_dir_all(dir.join("input")).unwrap();
    std::fs::write(dir.join("input/feed.hl7"), one.repeat(copies)).unwrap();
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let pipeline = quickstart
        .replace("name: quickstart", "name: resume-test")
        .replace("../examples/hl7/*.hl7", "../input/*.hl7")
        .replace("../out/quickstart/", "../out/")
        .replace("path: ../out/state.db", &format!("path: ../out/state.db\n  checkpoint_every: {every}"));
    assert!(pipeline.contains("checkpoint_every"), "the quick start keeps a state store");
    std::fs::write(dir.join("pipelines/resume.yaml"), pipeline).unwrap();
    dir
}

pub fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_str(text(&out.stdout).trim())
        .unwrap_or_else(|_| panic!("no summary: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// The code of the error `sluice` printed (after any log lines).
pub fn error_code(out: &Output) -> String {
    let err = text(&out.stderr);
    err.lines().find_map(|l| l.strip_prefix("error[")).and_then(|e| e.split(']').next()).unwrap_or_default().to_string()
}

pub fn expect_totals(s: &serde_json::Value, copies: u64) {
    let (n, delivered, dlq, filtered) = PER_COPY;
    assert_eq!(s["records_in"], n * copies, "{s}");
    assert_eq!(s["delivered"], delivered * copies, "{s}");
    assert_eq!(s["dlq"], dlq * copies, "{s}");
    assert_eq!(s["filtered"], filtered * copies, "{s}");
    assert_eq!(s["balanced"], true);
}

pub fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Every record exactly once: the audit chain verifies and numbers its entries 0..=N+1 with no
/// gap or repeat (run_started, the records, run_completed), the sink holds one line per delivered entry (by `audit_log_id`), and the DLQ
/// one line per rejected message of the input.
pub fn expect_exactly_once(dir: &Path, copies: u64) {
    let out = dir.join("out");
    let n = PER_COPY.0 * copies;
    assert_eq!(sluice_runtime::verify_audit_chain(out.join("audit.jsonl")), Ok(n + 2));
    let audit = std::fs::read_to_string(out.join("audit.jsonl")).unwrap();
    let mut delivered = BTreeSet::new();
    for (i, line) in audit.lines().enumerate() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["seq"], i as u64, "audit entries numbered without gap or repeat");
        if e["event"] == "delivered" {
            delivered.insert(format!("{}-{}", e["run_id"].as_str().unwrap(), e["seq"]));
        }
    }
    let sink = std::fs::read_to_string(out.join("patient-events.jsonl")).unwrap();
    let ids: Vec<String> = sink
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("every sink line whole");
            r["compliance"]["audit_log_id"].as_str().unwrap().to_string()
        })
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "no record twice in the sink");
    assert_eq!(unique, delivered, "the sink holds exactly the delivered records");
    let dlq = std::fs::read_to_string(out.join("dlq.jsonl")).unwrap();
    let dlq_entries = dlq.lines().inspect(|l| assert!(serde_json::from_str::<serde_json::Value>(l).is_ok())).count();
    assert_eq!(dlq_entries as u64, PER_COPY.2 * copies, "one DLQ entry per rejected message");
}
