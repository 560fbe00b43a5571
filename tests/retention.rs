//! Retention and erasure through the real binary (`sluice purge`): the quick start with
//! `retention: {dlq: 30d}` and a policy that tokenizes the patient id. Purging 40 days after
//! the run removes every DLQ record (they expired); `--subject ID` removes the DLQ records whose
//! message names the id and the id's vault row, and nothing else; both leave audit entries that
//! hold neither the id nor any value, and the chain verifies. With `tokenize` rules naming
//! their `subject`, `--subject ID` also removes the tokens of that person's other values (the
//! name), and leaves other people's. `retention.audit` removes archived audit logs whose newest
//! entry expired, never the live one; `retention.state` removes old run records but the newest.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::text;

const PIPELINE: &str = "pipelines/quickstart.yaml";
const RUN_AT: &str = "2024-01-15T10:30:01Z";

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(args)
        .env("SLUICE_MASK_KEY", "a-test-key-for-purges")
        .env("SLUICE_TEST_VAULT_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        .output()
        .unwrap()
}

fn dlq_ids(dir: &Path) -> Vec<String> {
    text(&sluice(dir, &["dlq", "list", PIPELINE, "--output", "json"]).stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["id"].as_str().map(String::from))
        .collect()
}

fn setup(dir: &Path) {
    setup_tokenizing(dir, "  mrn: tokenize");
}

/// The quick start with retention periods, its policy's `mrn:` line replaced by `mrn_rule`
/// (and a `name:` rule after it, which then replaces the policy's), run once at [`RUN_AT`].
fn setup_tokenizing(dir: &Path, mrn_rule: &str) {
    let path = dir.join(PIPELINE);
    let spec = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{spec}retention:\n  dlq: 30d\n  audit: 6y\n  state: 90d\n")).unwrap();
    let policy = dir.join("mappings/base/policies/quickstart.yaml");
    let written = std::fs::read_to_string(&policy).unwrap();
    // The quick start keeps MRNs; tokenized here, so each patient id has a vault row.
    let mut tokenizing: String = written
        .lines()
        .filter(|l| !(l.starts_with("  name:") && mrn_rule.contains("\n  name:")))
        .map(|l| if l.trim_start().starts_with("mrn:") { mrn_rule } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    tokenizing.push_str("\nhash_key: ${SLUICE_MASK_KEY}\nvault_key: ${SLUICE_TEST_VAULT_KEY}\n");
    assert!(tokenizing.contains(mrn_rule), "{written}");
    std::fs::write(&policy, tokenizing).unwrap();
    let run = sluice(dir, &["run", PIPELINE, "--fixed-clock", RUN_AT]);
    assert!(run.status.success(), "{}", text(&run.stderr));
}

#[test]
fn expired_dlq_records_are_purged() {
    let dir = common::workspace("retention-expiry");
    setup(&dir);
    let before = dlq_ids(&dir);
    assert!(before.len() > 2);
    let early = sluice(&dir, &["purge", PIPELINE, "--fixed-clock", "2024-02-01T00:00:00Z"]);
    assert!(early.status.success(), "{}", text(&early.stderr));
    assert_eq!(dlq_ids(&dir), before, "17 days later nothing has expired");
    let late = sluice(&dir, &["purge", PIPELINE, "--fixed-clock", "2024-02-25T00:00:00Z"]);
    assert!(late.status.success(), "{}", text(&late.stderr));
    assert!(text(&late.stdout).contains(&format!("{} expired DLQ records", before.len())), "{}", text(&late.stdout));
    assert!(dlq_ids(&dir).is_empty());
    let verify = sluice(&dir, &["audit", "verify", "out/quickstart/audit.jsonl"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

#[test]
fn a_subject_is_purged_from_the_dlq_and_the_vault_without_its_id_in_the_audit() {
    let dir = common::workspace("retention-subject");
    setup(&dir);
    // The patient of a rejected message (its PID-3), read from the input.
    let rejects = std::fs::read_to_string(dir.join("examples/hl7/rejects.hl7")).unwrap();
    let subject = rejects
        .split(['\r', '\n'])
        .filter(|l| l.starts_with("PID|"))
        .filter_map(|l| l.split('|').nth(3)?.split('^').next().map(String::from))
        .find(|id| !id.is_empty())
        .expect("a rejected message with a patient id");
    let before = dlq_ids(&dir);
    let out = sluice(&dir, &["purge", PIPELINE, "--subject", &subject, "--fixed-clock", "2024-01-16T00:00:00Z"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = dlq_ids(&dir);
    assert!(after.len() < before.len() && !after.is_empty(), "{} -> {}", before.len(), after.len());
    let said = text(&out.stdout);
    assert!(said.contains("naming the subject") && !said.contains(&subject), "{said}");
    let audit = std::fs::read_to_string(dir.join("out/quickstart/audit.jsonl")).unwrap();
    let purged = audit.lines().rev().find(|l| l.contains("\"event\":\"purged\"")).expect("audited");
    assert!(purged.contains("\"subject\":true"), "{purged}");
    assert!(!audit.contains(&format!("\"{subject}\"")) && !text(&out.stderr).contains(&subject));
    let verify = sluice(&dir, &["audit", "verify", "out/quickstart/audit.jsonl"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));

    // A delivered patient: the id's token leaves the vault.
    let events = std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    let token = first["patient"]["id"].as_str().unwrap().to_string();
    assert!(sluice_runtime::vault::is_token(&token), "{token}");
    let back = text(&sluice(&dir, &["detokenize", PIPELINE, &token]).stdout);
    let id = back.trim_end().split('\t').nth(1).unwrap().to_string();
    let out = sluice(&dir, &["purge", PIPELINE, "--subject", &id, "--fixed-clock", "2024-01-16T00:00:00Z"]);
    assert!(out.status.success() && text(&out.stdout).contains("1 vault row"), "{}", text(&out.stdout));
    let gone = sluice(&dir, &["detokenize", PIPELINE, &token]);
    assert!(text(&gone.stderr).contains("not in the vault"), "{}", text(&gone.stderr));
}

/// The values of `sluice detokenize` (`TOKEN<TAB>VALUE` lines), or the error.
fn detokenized(dir: &Path, token: &str) -> Result<String, String> {
    let out = sluice(dir, &["detokenize", PIPELINE, token]);
    let said = text(&out.stdout);
    match said.trim_end().split('\t').nth(1) {
        Some(v) if out.status.success() => Ok(v.to_string()),
        _ => Err(text(&out.stderr)),
    }
}

#[test]
fn a_subject_s_linked_tokens_are_purged_and_no_one_else_s() {
    let dir = common::workspace("retention-linked");
    setup_tokenizing(
        &dir,
        "  mrn: {action: tokenize, subject: patient.id}\n  name: {action: tokenize, subject: patient.id}",
    );
    let events = std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = events.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first = &records[0];
    let (id_token, name_token) =
        (first["patient"]["id"].as_str().unwrap().to_string(), first["patient"]["name"].as_str().unwrap().to_string());
    assert!(sluice_runtime::vault::is_token(&name_token), "{name_token}");
    let other = records
        .iter()
        .find(|r| r["patient"]["id"] != first["patient"]["id"] && r["patient"]["name"].is_string())
        .expect("a second patient");
    let other_name = other["patient"]["name"].as_str().unwrap().to_string();
    let id = detokenized(&dir, &id_token).unwrap();
    assert!(detokenized(&dir, &name_token).is_ok() && detokenized(&dir, &other_name).is_ok());

    let out = sluice(&dir, &["purge", PIPELINE, "--subject", &id, "--fixed-clock", "2024-01-16T00:00:00Z"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: u64 = said
        .split(", ")
        .find_map(|p| p.trim().strip_suffix(" vault rows")?.parse().ok())
        .unwrap_or_else(|| panic!("a count of vault rows: {said}"));
    assert!(rows >= 2, "the id's row and its name's: {said}");
    assert!(!said.contains(&id), "{said}");
    assert!(detokenized(&dir, &id_token).unwrap_err().contains("not in the vault"));
    assert!(detokenized(&dir, &name_token).unwrap_err().contains("not in the vault"), "the name's token is gone");
    assert!(detokenized(&dir, &other_name).is_ok(), "another patient's tokens stay");
    let audit = std::fs::read_to_string(dir.join("out/quickstart/audit.jsonl")).unwrap();
    assert!(!audit.contains(&format!("\"{id}\"")));
}

#[test]
fn expired_audit_archives_and_run_records_are_purged() {
    let dir = common::workspace("retention-audit-state");
    setup(&dir);
    // A second run archives the first run's log as `audit.jsonl.1`.
    let second = sluice(&dir, &["run", PIPELINE, "--fixed-clock", "2024-03-01T00:00:00Z"]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let archive = dir.join("out/quickstart/audit.jsonl.1");
    assert!(archive.exists());

    // Within 6 years of both: nothing of the audit log expires; 90 days after the first run,
    // its run record does (the second, the newest, stays).
    let out = sluice(&dir, &["purge", PIPELINE, "--fixed-clock", "2024-06-01T00:00:00Z"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said.contains("0 archived audit logs (0 entries)") && said.contains("1 run record from"), "{said}");
    assert!(archive.exists());

    // Past 6 years (2196 days) after the first run's last entry, before the second's.
    let out = sluice(&dir, &["purge", PIPELINE, "--fixed-clock", "2030-02-01T00:00:00Z"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said.contains("1 archived audit log (") && said.contains("0 run records from"), "{said}");
    assert!(!archive.exists(), "the expired archive is deleted whole");
    let live = std::fs::read_to_string(dir.join("out/quickstart/audit.jsonl")).unwrap();
    let purged = live.lines().rev().find(|l| l.contains("\"event\":\"purged\"")).expect("audited");
    assert!(purged.contains("\"expired_audit_files\":1") && purged.contains("\"expired_state_runs\":0"), "{purged}");
    let verify = sluice(&dir, &["audit", "verify", "out/quickstart/audit.jsonl"]);
    assert!(verify.status.success(), "the live chain is whole: {}", text(&verify.stdout));

    // The newest run record is kept: the pipeline runs on.
    let again = sluice(&dir, &["run", PIPELINE, "--fixed-clock", "2030-02-02T00:00:00Z"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
}
