//! Running one test case (`sluice test`): a compiled plan, the case's messages, and what came
//! out of each sink and the DLQ.
//!
//! The case runs through the real executor (every stage, masking included), on a copy of the
//! plan whose inputs and outputs are moved into a fresh temporary directory:
//!
//! Invariants:
//! - Offline and harmless: sources read the case's messages from a file in the temporary
//!   directory (MLLP listeners become file sources: nothing listens), `http` and `postgres`
//!   sinks write JSON Lines there instead of POSTing or inserting, and the DLQ, audit log and
//!   state store of the pipeline are never opened. The user's `out/` is never written. The directory is removed afterwards.
//! - Reproducible: the clock is fixed, one worker thread, and the plan hash is replaced by a
//!   constant so run ids (and `audit_log_id`s) do not change every time a spec is edited.
//! - A finance case's `connection` and `envelope` values become its source's own (its
//!   connection's name, QuickBooks `realm_id`, Plaid Item), which `connection()` and
//!   `envelope(...)` read as they read a replayed record's: nothing is fetched either way.
//! - No real secret is read for masking: a policy that hashes or shifts dates gets the test
//!   file's test-only `mask_key`, or the case fails with RT002 naming the missing key.
//! - DLQ entries are reported without their raw message, ids, plan hash, time, attempts, files
//!   or offsets: the stage, code, reason and findings (paths and codes, never values) are what
//!   a test asserts on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use sluice_compiler::plan::{ComponentKind, DlqTarget, Plan};

use crate::error::RunError;
use crate::findings;

/// The run id seed every test run uses in place of the plan hash.
const TEST_PLAN_HASH: &str = "sluice-test";

/// Keys of a DLQ entry a test does not assert on: they name this run, its plan and time, or
/// where the input was; `attempts` is always 1 (no sink is retried in a test); `raw` is the
/// input itself.
const DLQ_UNSTABLE_KEYS: &[&str] =
    &["id", "run_id", "plan_hash", "at", "attempts", "source", "file", "offset", "raw", "raw_encoding"];

/// What one case produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Every sink of the plan, in plan order, with the records it received.
    pub outputs: Vec<(String, Vec<Value>)>,
    /// DLQ entries without [`DLQ_UNSTABLE_KEYS`].
    pub dlq: Vec<Value>,
    pub filtered: u64,
}

/// The messages of a case: which source reads them (`None`: the plan's first source).
pub struct CaseInput<'a> {
    pub source: Option<&'a str>,
    pub bytes: &'a [u8],
    /// The connection name the finance records were read through (`connection()`); `None`:
    /// the source's own.
    pub connection: Option<&'a str>,
    /// Envelope values the finance records carry (`envelope(...)`), in place of the source's.
    pub envelope: Vec<(&'a str, &'a str)>,
}

/// Runs `input` through `plan` in a temporary directory and returns what came out.
pub fn run_case(plan: &Plan, input: &CaseInput<'_>, clock: &str, mask_key: Option<&str>) -> Result<Outcome, RunError> {
    let dir = TempDir::new()?;
    let plan = isolate(plan, input, &dir.0, mask_key)?;
    let options = crate::RunOptions { fixed_clock: Some(clock.to_string()), threads: Some(1), ..Default::default() };
    let summary = crate::run(&plan, &options)?;
    let mut outcome = Outcome { filtered: summary.records.filtered, ..Outcome::default() };
    for comp in &plan.components {
        if let ComponentKind::Sink(s) = &comp.kind {
            outcome.outputs.push((comp.name.clone(), read_lines(Path::new(&s.path))?));
        }
    }
    let dlq_path = plan.dlq.as_ref().map(|d| d.path.clone()).unwrap_or_default();
    outcome.dlq = read_lines(Path::new(&dlq_path))?
        .into_iter()
        .map(|mut entry| {
            if let Some(obj) = entry.as_object_mut() {
                obj.retain(|k, _| !DLQ_UNSTABLE_KEYS.contains(&k.as_str()));
            }
            entry
        })
        .collect();
    Ok(outcome)
}

/// Source `i` reads the file of the case's messages (`bytes`; empty for the other sources).
fn read_case_file(
    s: &mut sluice_compiler::plan::SourcePlan,
    dir: &Path,
    i: usize,
    bytes: &[u8],
) -> Result<(), RunError> {
    // A `stripe` source keeps its plan (its records are read as Stripe objects, one a line)
    // but reads the file: nothing is fetched.
    let ext = if s.stripe.is_some() { "jsonl" } else { "hl7" };
    let file = dir.join(format!("input-{i}.{ext}"));
    std::fs::write(&file, bytes).map_err(|e| RunError::io("write", &file, &e))?;
    s.kind = "files".into();
    s.mllp = None;
    s.paths = vec![path_text(&file)];
    Ok(())
}

/// The case's `connection` and `envelope` values become the finance source's own, as if it had
/// read the records through that connection, company or Item (the compiler checked the names
/// fit the source, SL475).
fn given_provenance(s: &mut sluice_compiler::plan::SourcePlan, input: &CaseInput<'_>) {
    if let Some(name) = input.connection {
        if let Some(q) = s.quickbooks.as_mut() {
            q.connection = name.to_string();
        }
        if let Some(p) = s.plaid.as_mut() {
            p.connection = name.to_string();
        }
        if let Some(st) = s.stripe.as_mut() {
            st.connection = name.to_string();
        }
    }
    for (name, value) in &input.envelope {
        match (*name, s.quickbooks.as_mut(), s.plaid.as_mut()) {
            (sluice_finance::QUICKBOOKS_REALM, Some(q), _) => q.realm_id = value.to_string(),
            (sluice_finance::PLAID_ITEM, _, Some(p)) => {
                p.items = vec![sluice_compiler::plaid::PlaidItemPlan {
                    name: value.to_string(),
                    access_token: String::new(),
                }];
            }
            _ => {}
        }
    }
}

/// A copy of `plan` that reads the case's messages and writes only into `dir`.
fn isolate(plan: &Plan, input: &CaseInput<'_>, dir: &Path, mask_key: Option<&str>) -> Result<Plan, RunError> {
    let mut plan = plan.clone();
    plan.hash = TEST_PLAN_HASH.to_string();
    plan.audit = None;
    plan.state = None;
    plan.fail_if = None;
    plan.dlq = Some(DlqTarget {
        path: path_text(&dir.join("dlq.jsonl")),
        // A test's DLQ is a file in its directory, wherever the pipeline keeps its own.
        store: None,
        encryption_key: None,
        plaintext_reason: Some("sluice test: synthetic test data".into()),
    });
    let first_source = plan.components.iter().position(|c| matches!(c.kind, ComponentKind::Source(_)));
    let chosen = match input.source {
        Some(name) => plan.components.iter().position(|c| c.name == name && matches!(c.kind, ComponentKind::Source(_))),
        None => first_source,
    };
    let Some(chosen) = chosen else {
        return Err(RunError::new(
            findings::INTERNAL,
            format!("pipeline `{}` has no source `{}`", plan.pipeline, input.source.unwrap_or("(any)")),
        ));
    };
    for (i, comp) in plan.components.iter_mut().enumerate() {
        match &mut comp.kind {
            ComponentKind::Source(s) if i == chosen => {
                given_provenance(s, input);
                read_case_file(s, dir, i, input.bytes)?;
            }
            ComponentKind::Source(s) => read_case_file(s, dir, i, &[])?,
            ComponentKind::Sink(s) => {
                s.kind = "jsonl".into();
                s.http = None;
                s.postgres = None;
                s.csv = None;
                s.path = path_text(&dir.join(format!("sink-{i}.jsonl")));
            }
            ComponentKind::Mask(m) if m.hash_key.is_some() => match mask_key {
                // A plain reference is the key itself (crate::secrets): nothing is read.
                Some(key) => m.hash_key = Some(key.to_string()),
                None => {
                    return Err(RunError::new(
                        findings::SECRET_MISSING,
                        format!(
                            "mask `{}`: policy `{}` hashes or shifts dates with a key, and the test file gives no `mask_key`",
                            comp.name, m.policy
                        ),
                    )
                    .with_help("add `mask_key: <any test-only text>` to the test file; never a real key"));
                }
            },
            _ => {}
        }
    }
    Ok(plan)
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// The JSON lines of an output file (none when it was never created).
fn read_lines(path: &Path) -> Result<Vec<Value>, RunError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunError::io("read", path, &e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|_| {
                RunError::new(findings::INTERNAL, format!("`{}` holds a line that is not JSON", path.display()))
            })
        })
        .collect()
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, RunError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("sluice-test-{}-{nanos}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| RunError::io("create", &dir, &e))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
