//! `sluice plan --out`, `--diff BASE` (a saved plan, or a git revision of a real repository made
//! here) and `sluice run --plan`, through the real binary: a change that weakens masking is
//! called out first; field, rule and component changes follow; the exit code says whether
//! anything changed; a run refuses a plan that is not the reviewed one.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::text;

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().expect("sluice runs")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Sluice Test", "-c", "user.email=test@sluice.invalid"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_pull_request_diff_calls_out_weaker_masking_first() {
    let dir = common::workspace("plan-diff");
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "base"]);
    let pipeline = "pipelines/quickstart.yaml";
    let saved = sluice(&dir, &["plan", pipeline, "--out", "reviewed-plan.json"]);
    assert!(saved.status.success(), "{}", text(&saved.stderr));

    let unchanged = sluice(&dir, &["plan", pipeline, "--diff", "HEAD", "--detailed-exitcode"]);
    assert_eq!(unchanged.status.code(), Some(0), "{}", text(&unchanged.stderr));
    assert!(text(&unchanged.stdout).contains("no changes"));

    // The change under review: SSNs kept in clear, a field and a rule dropped, a mapping
    // expression changed, a bigger batch.
    edit(
        &dir.join("mappings/base/policies/quickstart.yaml"),
        "ssn: {action: partial, keep_last: 4}",
        "ssn: {action: keep, reason: billing}",
    );
    edit(&dir.join("mappings/base/hl7v2-patient-event.yaml"), "dob: date(PID-7)", "dob: date(coalesce(PID-7, PID-29))");
    edit(&dir.join("pipelines/quickstart.yaml"), "batch_size: 64", "batch_size: 128");

    let changed = sluice(&dir, &["plan", pipeline, "--diff", "HEAD", "--detailed-exitcode"]);
    let out = text(&changed.stdout);
    assert_eq!(changed.status.code(), Some(2), "{out}{}", text(&changed.stderr));
    let first_section = out.lines().find(|l| l.ends_with(':') && !l.starts_with("pipeline")).unwrap();
    assert_eq!(first_section, "PHI NEWLY EXPOSED:", "{out}");
    assert!(out.contains("! patient_events patient.identifiers[*].value (ssn): partial at"), "{out}");
    assert!(
        out.contains("~ to_patient_event: patient.dob: date(PID-7) (date) -> date(coalesce(PID-7, PID-29)) (date)"),
        "{out}"
    );
    assert!(out.contains("~ mask: class ssn: partial (last 4)") && out.contains("keep (reason: billing)"), "{out}");
    assert!(out.contains("~ defaults:"), "{out}");

    let json = sluice(&dir, &["plan", pipeline, "--diff", "HEAD", "--format", "json"]);
    let d: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(d["changes"][0]["section"], "phi_exposure");
    assert_ne!(d["base_hash"], d["head_hash"]);
    let markdown = text(&sluice(&dir, &["plan", pipeline, "--diff", "HEAD", "--format", "markdown"]).stdout);
    assert!(
        markdown.contains("> **PHI newly exposed**")
            && markdown.contains("| ⚠ | `patient_events patient.identifiers[*].value (ssn)`"),
        "{markdown}"
    );

    // The same against the saved plan file; and the run refuses to run what was not reviewed.
    let from_file = text(&sluice(&dir, &["plan", pipeline, "--diff", "reviewed-plan.json"]).stdout);
    assert_eq!(from_file, out, "a saved plan and the git revision give the same diff");
    let refused = sluice(&dir, &["run", pipeline, "--plan", "reviewed-plan.json"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("RT026"), "{}", text(&refused.stderr));
    assert!(!dir.join("out/quickstart/patient-events.jsonl").exists(), "nothing ran");
    assert!(sluice(&dir, &["plan", pipeline, "--out", "reviewed-plan.json"]).status.success());
    let accepted = sluice(&dir, &["run", pipeline, "--plan", "reviewed-plan.json"]);
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));

    let missing = sluice(&dir, &["plan", pipeline, "--diff", "no-such-branch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("neither a saved plan file nor a git revision"));
}
