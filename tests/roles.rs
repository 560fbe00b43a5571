//! Roles through the real binary: the quick start with `roles:` declared. Without a role, with
//! a role that may not, with the wrong key, the operator actions (`dlq show --raw`, `dlq
//! replay`, `dlq purge`, `keys rotate`) are refused with RT034, each refusal is in the audit log
//! (`access_refused`, never the key) and the chain still verifies; with the right role and key
//! (from `SLUICE_ROLE_KEY` or `--role-key ${file:...}`) they run. A `may` naming no operation
//! is refused by `sluice check`.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::text;

const OPERATOR_KEY: &str = "operator-key-0b6f1c2e9d";
const AUDITOR_KEY: &str = "auditor-key-77a0c3";
const PIPELINE: &str = "pipelines/quickstart.yaml";

fn sha256(s: &str) -> String {
    sluice_runtime::access::key_sha256(s.as_bytes())
}

fn sluice(dir: &Path, role_key: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(args).env_remove("SLUICE_ROLE_KEY");
    if let Some(k) = role_key {
        c.env("SLUICE_ROLE_KEY", k);
    }
    c.output().unwrap()
}

fn with_roles(dir: &Path, may: &str) {
    let path = dir.join(PIPELINE);
    let spec = std::fs::read_to_string(&path).unwrap();
    let roles = format!(
        "roles:\n  operator:\n    key_sha256: {}\n    may: [{may}]\n  auditor:\n    key_sha256: {}\n    may: [detokenize]\n",
        sha256(OPERATOR_KEY),
        sha256(AUDITOR_KEY)
    );
    std::fs::write(&path, format!("{spec}{roles}")).unwrap();
}

fn refused(out: &Output, why: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error[RT034]") && err.contains(why), "{err}");
    assert!(!err.contains(OPERATOR_KEY) && !err.contains(AUDITOR_KEY), "no key in errors");
}

#[test]
fn operator_actions_need_a_role_that_may_and_its_key() {
    let dir = common::workspace("roles");
    with_roles(&dir, "dlq_raw, dlq_replay, dlq_purge, keys_rotate");
    let run = sluice(&dir, None, &["run", PIPELINE]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let list = text(&sluice(&dir, None, &["dlq", "list", PIPELINE, "--output", "json"]).stdout);
    let id = list
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["id"].as_str().map(String::from))
        .expect("the quick start rejects records");

    // Listing and showing without the message need no role.
    assert!(sluice(&dir, None, &["dlq", "show", PIPELINE, &id]).status.success());
    let raw = ["dlq", "show", PIPELINE, &id, "--raw"];
    refused(&sluice(&dir, None, &raw), "no role given");
    refused(&sluice(&dir, Some(AUDITOR_KEY), &[&raw[..], &["--role", "auditor"]].concat()), "the role may not");
    refused(&sluice(&dir, Some(AUDITOR_KEY), &[&raw[..], &["--role", "operator"]].concat()), "wrong key");
    refused(&sluice(&dir, None, &[&raw[..], &["--role", "operator"]].concat()), "no key given");
    refused(&sluice(&dir, Some(OPERATOR_KEY), &[&raw[..], &["--role", "admin"]].concat()), "no such role");
    refused(&sluice(&dir, None, &["dlq", "replay", PIPELINE]), "no role given");
    refused(&sluice(&dir, None, &["dlq", "purge", PIPELINE, "--replayed"]), "no role given");
    refused(&sluice(&dir, None, &["keys", "rotate", PIPELINE]), "no role given");
    let detokenize = sluice(&dir, None, &["detokenize", PIPELINE, "t:00000000000000000000000000000000"]);
    refused(&detokenize, "roles that may: auditor");

    let shown = sluice(&dir, Some(OPERATOR_KEY), &[&raw[..], &["--role", "operator"]].concat());
    assert!(shown.status.success() && text(&shown.stdout).contains("\"raw\""), "{}", text(&shown.stderr));
    let key_file = dir.join("operator.key");
    std::fs::write(&key_file, format!("{OPERATOR_KEY}\n")).unwrap();
    let from_file = format!("${{file:{}}}", key_file.display());
    let replay = sluice(&dir, None, &["dlq", "replay", PIPELINE, "--role", "operator", "--role-key", &from_file]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));

    let audit = std::fs::read_to_string(dir.join("out/quickstart/audit.jsonl")).unwrap();
    let refusals: Vec<&str> = audit.lines().filter(|l| l.contains("\"access_refused\"")).collect();
    assert!(refusals.len() >= 9, "every refusal is audited: {}", refusals.len());
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("\"operation\":\"dlq_raw\",\"role\":\"auditor\",\"why\":\"the role may not\""))
    );
    assert!(!audit.contains(OPERATOR_KEY) && !audit.contains(AUDITOR_KEY) && !audit.contains(&sha256(OPERATOR_KEY)));
    let verify = sluice(&dir, None, &["audit", "verify", "out/quickstart/audit.jsonl"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

#[test]
fn a_role_may_only_name_governed_operations() {
    let dir = common::workspace("roles-check");
    with_roles(&dir, "dlq_replya");
    let out = sluice(&dir, None, &["check", PIPELINE]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("SL203") && err.contains("no operation `dlq_replya`") && err.contains("dlq_replay"), "{err}");
}

#[test]
fn audit_export_needs_a_role_that_may() {
    let dir = common::workspace("roles-export");
    with_roles(&dir, "audit_export");
    let run = sluice(&dir, None, &["run", PIPELINE]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let log = "out/quickstart/audit.jsonl";
    // The log names its pipeline (`spec_file`), whose roles govern the export.
    let export = ["audit", "export", log, "--format", "jsonl"];
    let out = sluice(&dir, None, &export);
    refused(&out, "no role given");
    assert!(out.stdout.is_empty(), "nothing exported");
    refused(&sluice(&dir, Some(AUDITOR_KEY), &[&export[..], &["--role", "auditor"]].concat()), "the role may not");
    let explicit = [&export[..], &["--pipeline", PIPELINE]].concat();
    refused(&sluice(&dir, None, &explicit), "no role given");
    let ok = sluice(&dir, Some(OPERATOR_KEY), &[&export[..], &["--role", "operator"]].concat());
    assert!(ok.status.success() && text(&ok.stdout).contains("run_started"), "{}", text(&ok.stderr));
    let audit = std::fs::read_to_string(dir.join(log)).unwrap();
    assert!(audit.lines().filter(|l| l.contains("\"operation\":\"audit_export\"")).count() >= 3, "{audit}");
    assert!(sluice(&dir, None, &["audit", "verify", log]).status.success());

    // A log whose pipeline is not where it says cannot be exported ungoverned.
    std::fs::rename(dir.join(PIPELINE), dir.join("moved.yaml")).unwrap();
    let out = sluice(&dir, Some(OPERATOR_KEY), &[&export[..], &["--role", "operator"]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--pipeline"), "{}", text(&out.stderr));
}
