//! `sluice run --log-level/--log-format`: the events a run logs, as JSON lines, and that no
//! patient data reaches them: not through fields (the layer redacts every field outside its
//! allowlist; unit tests in src/logging.rs), and not through messages (scanned here: the
//! runtime's log calls never format a value into their message).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{root, text, workspace};

#[test]
fn a_run_logs_its_lifecycle_and_rejections_as_json_without_patient_data() {
    let dir = workspace("logs");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["run", "pipelines/quickstart.yaml", "--summary", "json", "--log-level", "debug", "--log-format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}")))
        .collect();
    let messages: Vec<&str> = events.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(messages.first(), Some(&"run started"));
    assert_eq!(messages.last(), Some(&"run ended"));
    let rejected: Vec<&serde_json::Value> = events.iter().filter(|e| e["message"] == "record rejected").collect();
    assert_eq!(rejected.len(), 6, "one per DLQ record of the examples");
    assert!(rejected.iter().all(|e| e["code"].as_str().is_some_and(|c| !c.is_empty()) && e["record_id"].is_string()));
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let end = events.last().unwrap();
    assert_eq!(end["records_in"], summary["records_in"]);
    assert_eq!(end["run_id"], summary["run_id"]);
    // No name or SSN of the input anywhere in the log.
    let inputs: Vec<PathBuf> =
        ["feed-2024-01-15.hl7", "rejects.hl7"].iter().map(|f| dir.join("examples/hl7").join(f)).collect();
    let phi = common::phi_values(&inputs);
    assert!(phi.len() > 20, "names and SSNs to look for: {}", phi.len());
    let log = text(&out.stderr);
    for value in &phi {
        assert!(!log.contains(value.as_str()), "a patient value reached the log");
    }
}

#[test]
fn the_default_level_keeps_a_clean_run_quiet() {
    let dir = workspace("logs-quiet");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["run", "pipelines/quickstart.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "", "warn and above only, and a clean run warns of nothing");
}

/// Every `tracing` call in the runtime, as source text: from the macro name to its `;`.
fn log_calls(dir: &Path, calls: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            log_calls(&path, calls);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for level in ["trace!(", "debug!(", "info!(", "warn!(", "error!("] {
            let needle = format!("tracing::{level}");
            let mut rest = source.as_str();
            while let Some(at) = rest.find(&needle) {
                let call = &rest[at..];
                let end = call.find(");").unwrap_or(call.len());
                calls.push((path.clone(), call[..end].to_string()));
                rest = &call[needle.len()..];
            }
        }
    }
}

#[test]
fn log_messages_are_fixed_strings() {
    let mut calls = Vec::new();
    log_calls(&root().join("runtime/src"), &mut calls);
    assert!(calls.len() >= 5, "the runtime logs its lifecycle: {}", calls.len());
    for (file, call) in &calls {
        // The message is the call's last string literal; a `{` in it would format a value in.
        let message = call.rsplit('"').nth(1).unwrap_or("");
        assert!(!message.contains('{'), "{}: a log message formats a value: {call}", file.display());
    }
}
