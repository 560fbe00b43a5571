//! Running a bundled pipeline in a test and checking its outputs: the run with its JSON
//! summary (which must balance), the record counts, every output text (for PHI greps), and
//! rows compared without the fields a run sets (processing time, compliance).

use std::path::Path;

use serde_json::{Value, json};

use super::{sluice_debug as sluice, text};

/// `sluice run PIPELINE` at the fixed clock `clock`, JSON logs; asserts it succeeded and its
/// summary balances.
pub fn run(dir: &Path, pipeline: &str, clock: &str) -> (std::process::Output, Value) {
    let out = sluice(dir, &["run", pipeline, "--summary", "json", "--fixed-clock", clock, "--log-format", "json"]);
    assert!(out.status.success(), "run failed: {}{}", text(&out.stdout), text(&out.stderr));
    let summary: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(summary["balanced"], Value::Bool(true), "{summary}");
    (out, summary)
}

/// Records in, delivered, in the DLQ, filtered.
pub fn counts(summary: &Value) -> [u64; 4] {
    ["records_in", "delivered", "dlq", "filtered"].map(|k| summary[k].as_u64().unwrap())
}

/// The stdout and stderr of `out`, and every file under `dir`: (name, text).
pub fn outputs(out: &std::process::Output, dir: &Path) -> Vec<(String, String)> {
    let mut texts = vec![("stdout".to_string(), text(&out.stdout)), ("stderr".to_string(), text(&out.stderr))];
    for f in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        texts.push((f.path().display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    texts
}

/// [`outputs`] of the run, plus what `sluice plan PIPELINE` prints in both formats (which must
/// succeed): everything a PHI grep of a run and its plan reads.
pub fn outputs_and_plans(
    out: &std::process::Output,
    dir: &Path,
    written: &Path,
    pipeline: &str,
) -> Vec<(String, String)> {
    let mut texts = outputs(out, written);
    for format in ["json", "text"] {
        let plan = sluice(dir, &["plan", pipeline, "--format", format]);
        assert!(plan.status.success(), "{}", text(&plan.stderr));
        texts.push((format!("plan --format {format}"), text(&plan.stdout) + &text(&plan.stderr)));
    }
    texts
}

/// No value of `phi` in `texts` (name, text).
pub fn assert_absent(texts: &[(String, String)], phi: &[String]) {
    for (what, t) in texts {
        for v in phi {
            assert!(!t.contains(v.as_str()), "`{v}` (PHI from the data) in {what}");
        }
    }
}

/// A row without what the run sets (processing time, compliance).
pub fn mapped(row: &Value) -> Value {
    let mut row = row.clone();
    let o = row.as_object_mut().unwrap();
    for k in ["metadata", "compliance", "errors", "warnings"] {
        o.remove(k);
    }
    row
}

/// `v` with `fields` set over it.
pub fn with(mut v: Value, fields: Value) -> Value {
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// Every number as a float, so `12` and `12.0` compare equal.
pub fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), normalized(x))).collect()),
        other => other.clone(),
    }
}
