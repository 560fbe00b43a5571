//! UI tests: one broken spec per diagnostic code under `tests/ui/<CODE>-<name>/`, with the
//! exact human output of `sluice check` beside it in `expected.txt`.
//!
//! Each case must fail with its own code (the folder's prefix) as its first error, and the
//! rendered output — message, `file:line:column`, labels, help — must match byte for byte.
//! Run with `SLUICE_BLESS=1` to rewrite `expected.txt` after an intended change (then review
//! the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root().join("tests/ui"))
        .expect("tests/ui exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// `sluice check` of a case; a case's `args` file (one argument a line) adds options, such as
/// `--env staging` for what only an environment reveals.
fn check(case: &Path, format: &str) -> (Option<i32>, String, String) {
    let rel = case.strip_prefix(root()).unwrap();
    let extra = std::fs::read_to_string(case.join("args")).unwrap_or_default();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(root())
        .args(["check", "--format", format])
        .args(extra.lines().filter(|l| !l.trim().is_empty()))
        .arg(rel)
        .output()
        .expect("sluice runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_case_reports_its_code_exactly() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let code = name.split('-').next().unwrap().to_string();
        let (status, _, stderr) = check(&case, "human");
        let is_warning = sluice_registry_is_warning(&code);
        if !is_warning && status != Some(1) {
            failures.push(format!("{name}: expected exit 1, got {status:?}"));
        }
        if !stderr.contains(&format!("\n{code}\n")) && !stderr.starts_with(&format!("{code}\n")) {
            failures.push(format!("{name}: output does not report {code}:\n{stderr}"));
        }
        let (_, json, _) = check(&case, "json");
        let first: serde_json::Value =
            json.lines().next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
        if first["code"] != code.as_str() || first["line"].as_u64().is_none() || first["column"].as_u64().is_none() {
            failures.push(format!("{name}: first JSON diagnostic is not {code} with a position: {first}"));
        }
        let expected_path = case.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == stderr => {}
            Ok(expected) => {
                failures.push(format!("{name}: output differs\n--- expected\n{expected}\n--- actual\n{stderr}"))
            }
            Err(_) => failures.push(format!("{name}: no expected.txt (run with SLUICE_BLESS=1)")),
        }
    }
    assert!(failures.is_empty(), "{} UI case(s) failed:\n{}", failures.len(), failures.join("\n\n"));
}

fn sluice_registry_is_warning(code: &str) -> bool {
    matches!(code, "SL304" | "SL606")
}

#[test]
fn every_code_has_a_case() {
    let names: Vec<String> = cases().iter().map(|c| c.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let missing: Vec<&str> = sluice_compiler::codes::ALL
        .iter()
        .filter(|c| !names.iter().any(|n| n == &format!("{}-{}", c.code, c.name)))
        .map(|c| c.code)
        .collect();
    assert!(missing.is_empty(), "codes without a tests/ui/<CODE>-<name>/ case: {missing:?}");
}
