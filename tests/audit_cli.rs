//! `sluice audit verify` and `sluice audit export` on the quick start's audit log.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{text, workspace};

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().unwrap()
}

#[test]
fn export_verifies_then_prints_csv_or_jsonl_and_refuses_a_broken_chain() {
    let dir = workspace("audit-cli");
    let run = sluice(&dir, &["run", "pipelines/quickstart.yaml", "--fixed-clock", "2024-01-01T00:00:00Z"]);
    assert!(run.status.success());
    let audit = "out/quickstart/audit.jsonl";
    let verify = sluice(&dir, &["audit", "verify", audit]);
    assert!(verify.status.success());
    assert!(text(&verify.stdout).contains("68 entries intact"), "{}", text(&verify.stdout));

    let csv = sluice(&dir, &["audit", "export", audit]);
    assert!(csv.status.success(), "{}", text(&csv.stderr));
    let rows: Vec<String> = text(&csv.stdout).lines().map(String::from).collect();
    assert_eq!(rows.len(), 1 + 68, "a header and one row per entry");
    assert!(rows[0].starts_with("seq,at,run_id,plan_hash,event,record,offset,"), "{}", rows[0]);
    assert!(rows[1].contains(",run_started,"), "{}", rows[1]);
    assert!(rows[68].contains(",run_completed,"), "{}", rows[68]);
    let columns = rows[0].split(',').count();
    assert!(rows.iter().all(|r| r.split(',').count() == columns), "no value needed quoting here");

    let jsonl = sluice(&dir, &["audit", "export", audit, "--format", "jsonl", "--to", "2023-12-31T00:00:00Z"]);
    assert_eq!(text(&jsonl.stdout), "", "every entry is at the fixed clock, after --to");
    let run_id = rows[1].split(',').nth(2).unwrap().to_string();
    let one_run = sluice(&dir, &["audit", "export", audit, "--format", "jsonl", "--run", &run_id]);
    assert_eq!(text(&one_run.stdout), std::fs::read_to_string(dir.join(audit)).unwrap());

    // One altered byte: verify names the line, export prints nothing.
    let path = dir.join(audit);
    let tampered = std::fs::read_to_string(&path).unwrap().replacen("\"delivered\"", "\"filtered\"", 1);
    std::fs::write(&path, tampered).unwrap();
    let verify = sluice(&dir, &["audit", "verify", audit]);
    assert_eq!(verify.status.code(), Some(1));
    let err = text(&verify.stderr);
    assert!(err.starts_with("error[RT024]") && err.contains("line 2: hash does not match the entry"), "{err}");
    assert!(err.contains("help: "), "{err}");
    let export = sluice(&dir, &["audit", "export", audit]);
    assert_eq!(export.status.code(), Some(1));
    assert_eq!(text(&export.stdout), "");
    assert!(text(&export.stderr).starts_with("error[RT024]"), "{}", text(&export.stderr));
}
