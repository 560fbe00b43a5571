//! `sluice plan --diff BASE` and `sluice run --plan FILE`: the plan a change is compared with,
//! read from a saved plan or compiled from the specs at a git revision, and the printed diff
//! (`sluice_compiler::plan::diff`).
//!
//! Invariants:
//! - A git BASE is compiled by this same binary, from the revision's files (`git archive`)
//!   in a temporary directory, from the same directory relative to the repository root and
//!   with the same `--env`: only the specs differ, so only their changes show. The directory
//!   is removed afterwards.
//! - Nothing here reads or prints data: plans and plan diffs only.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_compiler::plan::Plan;
use sluice_compiler::plan::diff::{self, PlanDiff};
use sluice_runtime::RunError;
use sluice_runtime::findings;

use crate::PlanFormat;

use crate::commands::{FAILED, OK, USAGE};

/// `--detailed-exitcode`: something changed.
const CHANGED: u8 = 2;

/// Prints the diff from `base` to `head` in `format`; the exit code.
pub fn print(pipeline: &Path, base: &str, head: &Plan, format: PlanFormat, detailed_exitcode: bool) -> u8 {
    let base_plan = match base_plan(pipeline, base) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return FAILED;
        }
    };
    let d: PlanDiff = diff::diff(&base_plan, head);
    let text = match format {
        PlanFormat::Text => diff::text(&d),
        PlanFormat::Markdown => diff::markdown(&d),
        PlanFormat::Json => serde_json::to_string_pretty(&d).unwrap_or_default() + "\n",
        PlanFormat::Dot | PlanFormat::Mermaid => {
            eprintln!("error: a plan diff prints as text, markdown or json");
            return USAGE;
        }
    };
    print!("{text}");
    if detailed_exitcode && !d.is_empty() { CHANGED } else { OK }
}

/// RT026 unless `plan` is the plan saved in `saved` (same hash).
pub fn same_as_saved(plan: &Plan, saved: &Path) -> Result<(), RunError> {
    let saved_plan = read_plan(saved).map_err(|e| {
        RunError::new(findings::PLAN_CHANGED, format!("cannot use the saved plan: {e}"))
            .with_help("save one with `sluice plan PIPELINE --out FILE`")
    })?;
    if saved_plan.hash == plan.hash {
        return Ok(());
    }
    Err(RunError::new(
        findings::PLAN_CHANGED,
        format!(
            "the specs compile to plan {}, not to the saved plan {} ({})",
            plan.hash,
            saved_plan.hash,
            saved.display()
        ),
    )
    .with_help(format!(
        "see what changed with `sluice plan {} --diff {}`; review it and save the new plan",
        plan.spec_file,
        saved.display()
    )))
}

fn read_plan(path: &Path) -> Result<Plan, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a saved plan (`sluice plan --out`): {e}", path.display()))
}

/// The plan to compare with: a saved plan file, else the pipeline compiled at git revision
/// `base`.
fn base_plan(pipeline: &Path, base: &str) -> Result<Plan, String> {
    if Path::new(base).is_file() {
        return read_plan(Path::new(base));
    }
    plan_at_revision(pipeline, base)
}

fn git(args: &[&str], dir: &Path) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run git: {}", e.kind()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Removes its directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn plan_at_revision(pipeline: &Path, revision: &str) -> Result<Plan, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {}", e.kind()))?;
    let not_found = |why: String| {
        format!("`{revision}` is neither a saved plan file nor a git revision of this repository ({why})")
    };
    let top = git(&["rev-parse", "--show-toplevel"], &cwd).map_err(not_found)?;
    let commit = git(&["rev-parse", "--verify", "--quiet", &format!("{revision}^{{commit}}")], &cwd)
        .map_err(|_| not_found("no such revision".into()))?;
    let top =
        PathBuf::from(top).canonicalize().map_err(|e| format!("cannot read the repository root: {}", e.kind()))?;
    let relative =
        cwd.canonicalize().ok().and_then(|c| c.strip_prefix(&top).ok().map(Path::to_path_buf)).unwrap_or_default();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = TempDir(std::env::temp_dir().join(format!("sluice-plan-base-{}-{nanos}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| format!("cannot make a temporary directory: {}", e.kind()))?;
    let archive = dir.0.join("base.tar");
    git(&["archive", "--format=tar", "-o", &archive.to_string_lossy(), &commit], &top)?;
    let tree = dir.0.join("tree");
    std::fs::create_dir_all(&tree).map_err(|e| format!("cannot make a temporary directory: {}", e.kind()))?;
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .status()
        .map_err(|e| format!("cannot run tar: {}", e.kind()))?;
    if !untar.success() {
        return Err(format!("cannot unpack the files of {revision}"));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the sluice binary: {}", e.kind()))?;
    let mut command = Command::new(exe);
    command.current_dir(tree.join(&relative)).arg("plan").arg(pipeline).args(["--format", "json"]);
    if let Some(env) = crate::commands::environment() {
        command.args(["--env", &env]);
    }
    let out = command.output().map_err(|e| format!("cannot compile the base: {}", e.kind()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let first = why.lines().find(|l| !l.trim().is_empty()).unwrap_or("it does not compile");
        return Err(format!("{} at {revision} does not compile: {first}", pipeline.display()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the plan of {revision} cannot be read: {e}"))
}
