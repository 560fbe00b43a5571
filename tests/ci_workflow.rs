//! The CI integration in `docs/ci/`, run for real: the `run:` steps of the GitHub Actions
//! workflow, as written, in a git repository with a base branch and a pull-request change (a
//! new sink that allows PHI), with `sluice` on the PATH; and the pre-commit hook installed in
//! that repository, refusing a broken spec and letting a good one through.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{root, text};

/// The `run:` command of each named step of the workflow (one-line or `|` block).
fn run_steps(workflow: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = workflow.lines().collect();
    let mut steps = Vec::new();
    let mut name = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if let Some(n) = line.strip_prefix("- name: ") {
            name = Some(n.trim().to_string());
        } else if let Some(command) = line.strip_prefix("run: ") {
            let indent = lines[i].len() - line.len();
            let command = if command.trim() == "|" {
                let mut block = Vec::new();
                while i + 1 < lines.len()
                    && (lines[i + 1].trim().is_empty() || lines[i + 1].len() - lines[i + 1].trim_start().len() > indent)
                {
                    i += 1;
                    block.push(lines[i].trim_start());
                }
                block.join("\n")
            } else {
                command.to_string()
            };
            steps.push((name.take().unwrap_or_default(), command));
        }
        i += 1;
    }
    steps
}

fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Sluice Test", "-c", "user.email=test@sluice.invalid"])
        .args(args)
        .env("PATH", path_with_sluice())
        .output()
        .expect("git runs")
}

fn path_with_sluice() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap().display().to_string();
    format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
}

#[test]
fn the_workflow_steps_and_the_pre_commit_hook_work_on_a_pull_request() {
    let dir = common::workspace("ci-workflow");
    assert!(git(&dir, &["init", "-q", "-b", "main"]).status.success());
    assert!(git(&dir, &["add", "-A"]).status.success());
    assert!(git(&dir, &["commit", "-q", "-m", "base"]).status.success());
    // What `actions/checkout` with fetch-depth 0 leaves: the base branch as a remote ref.
    assert!(git(&dir, &["update-ref", "refs/remotes/origin/main", "HEAD"]).status.success());
    assert!(git(&dir, &["checkout", "-q", "-b", "add-ehr-copy"]).status.success());
    let pipeline = dir.join("pipelines/quickstart.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    let sink = "  ehr_copy:\n    type: jsonl\n    inputs: [to_patient_event]\n    path: ../out/quickstart/ehr-copy.jsonl\n    phi: {allowed: true, reason: \"treatment: the EHR's own copy\"}\ndlq:";
    std::fs::write(&pipeline, spec.replacen("dlq:", sink, 1)).unwrap();

    let workflow = std::fs::read_to_string(root().join("docs/ci/github-workflow.yml")).unwrap();
    let steps = run_steps(&workflow);
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in ["Check specs", "Test mappings", "Plan diff"] {
        assert!(names.contains(&wanted), "the workflow has a `{wanted}` step: {names:?}");
    }
    for (name, command) in steps.iter().filter(|(n, _)| n != "Install sluice") {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", command])
            .current_dir(&*dir)
            .env("PATH", path_with_sluice())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_BASE_REF", "main")
            .output()
            .unwrap();
        assert!(out.status.success(), "step `{name}` failed:\n{command}\n{}{}", text(&out.stdout), text(&out.stderr));
    }
    let report = std::fs::read_to_string(dir.join("sluice-tests.xml")).expect("the JUnit report");
    let report = roxmltree::Document::parse(&report).unwrap();
    assert!(report.descendants().filter(|n| n.has_tag_name("testcase")).count() >= 10);
    assert!(!report.descendants().any(|n| n.has_tag_name("failure")));
    let comment = std::fs::read_to_string(dir.join("plan-diff.md")).unwrap();
    assert!(comment.contains("### Sluice plan diff: `quickstart`"), "{comment}");
    assert!(
        comment.contains("> **PHI newly exposed**") && comment.contains("ehr_copy patient.name (name)"),
        "{comment}"
    );
    assert!(
        comment.contains("### Sluice plan diff: `hl7-message-tables`") && comment.contains("No changes."),
        "{comment}"
    );

    // The hook: a policy with an unknown class is refused at commit time; fixed, it goes in.
    let hook = dir.join(".git/hooks/pre-commit");
    std::fs::copy(root().join("docs/ci/pre-commit"), &hook).unwrap();
    let policy = dir.join("mappings/base/policies/quickstart.yaml");
    let good = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, good.replace("  phone: redact", "  phone_number: redact")).unwrap();
    assert!(git(&dir, &["add", "-A"]).status.success());
    let refused = git(&dir, &["commit", "-q", "-m", "typo"]);
    assert!(!refused.status.success(), "the hook refuses a spec that does not check");
    assert!(text(&refused.stderr).contains("SL603"), "{}", text(&refused.stderr));
    std::fs::write(&policy, good).unwrap();
    assert!(git(&dir, &["add", "-A"]).status.success());
    let accepted = git(&dir, &["commit", "-q", "-m", "add the EHR copy"]);
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    // It showed what the commit does to the plans: the new sink receives PHI in clear.
    let shown = format!("{}{}", text(&accepted.stdout), text(&accepted.stderr));
    assert!(shown.contains("PHI NEWLY EXPOSED:") && shown.contains("ehr_copy patient.name (name)"), "{shown}");
}
