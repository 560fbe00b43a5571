//! `phi_proof: lenient`: the PHI proof's SL601 becomes a warning (the pipeline compiles and the
//! plan's masking matrix shows the field kept in clear, decided by the `phi_proof` line), where
//! the default, strict, refuses the pipeline.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::text;

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().unwrap()
}

#[test]
fn a_lenient_pipeline_warns_about_a_leak_and_the_plan_says_where_it_was_allowed() {
    let dir = common::scratch("phi-lenient");
    common::copy_dir(&common::root().join("tests/ui/SL601-phi-unmasked"), &dir);
    let strict = sluice(&dir, &["check", "pipeline.yaml"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(text(&strict.stderr).contains("× `patient.name` carries PHI class `name`"), "{}", text(&strict.stderr));

    let spec = std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap();
    std::fs::write(dir.join("pipeline.yaml"), format!("{spec}phi_proof: lenient\n")).unwrap();
    let lenient = sluice(&dir, &["check", "pipeline.yaml"]);
    let err = text(&lenient.stderr);
    assert_eq!(lenient.status.code(), Some(0), "{err}");
    assert!(err.contains("SL601") && err.contains("⚠ `patient.name` carries PHI class `name`"), "{err}");
    let plan = text(&sluice(&dir, &["plan", "pipeline.yaml"]).stdout);
    let row = plan.lines().find(|l| l.contains("patient.name") && l.contains("keep")).unwrap_or_default();
    assert!(row.contains("pipeline.yaml:") && row.contains("(phi_proof: lenient)"), "{plan}");

    std::fs::write(dir.join("pipeline.yaml"), format!("{spec}phi_proof: loose\n")).unwrap();
    let bad = sluice(&dir, &["check", "pipeline.yaml"]);
    assert!(text(&bad.stderr).contains("SL203"), "{}", text(&bad.stderr));
}
