//! `sluice test [PATHS]`: finds `*.test.yaml` files, runs every case offline
//! (`sluice_runtime::testing`), compares what came out with the case's `expect`, and reports:
//! text with a per-field diff for people, JUnit XML for CI; `--update` rewrites expectations.
//!
//! Invariants:
//! - Exit 0 when every case passed, 1 when a case failed (or could not run), 2 when a test
//!   file is broken (its coded diagnostics are printed, as `sluice check` prints them) or a
//!   path cannot be read.
//! - Nothing is printed but what the test files hold (their messages and expected records are
//!   synthetic by definition) and what the pipeline made of them: diffs show values, which is
//!   their point; nothing is logged anywhere else, and no output file of the pipeline is
//!   touched (cases run in a temporary directory).
//! - `--update` rewrites only the `expect` of the cases that failed, in place: the rest of the
//!   file (other keys, other cases, comments outside the rewritten `expect`) stays byte for byte.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_compiler::compile::Compiler;
use sluice_compiler::diagnostics::{self, Format};
use sluice_compiler::plan::Plan;
use sluice_compiler::source::display_path;
use sluice_compiler::spec::test::{Case, Expect, TestFile};
use sluice_runtime::testing::{CaseInput, Outcome, run_case};

use crate::test_yaml;

use crate::commands::{FAILED, OK, USAGE};

/// How `sluice test` reports.
pub struct TestFlags {
    pub junit: bool,
    /// `--output FILE` for the JUnit XML (default: stdout).
    pub output: Option<PathBuf>,
    pub update: bool,
}

/// One case's result.
struct CaseResult {
    name: String,
    /// `None`: passed. Else the diff, or why the case could not run.
    failure: Option<Failure>,
    millis: u128,
}

enum Failure {
    Differs(String),
    /// The case could not run (a run error with its code).
    Error(String),
}

/// One file's results.
struct FileResult {
    /// The test file, as given (relative to the working directory when inside it).
    path: String,
    /// Its `name`, else its path.
    name: String,
    /// The rendered diagnostics when the file is broken.
    broken: Option<String>,
    cases: Vec<CaseResult>,
}

pub fn test(paths: Vec<PathBuf>, flags: &TestFlags) -> u8 {
    if flags.output.is_some() && !flags.junit {
        eprintln!("error: `--output` writes the JUnit report: use it with `--format junit`");
        return USAGE;
    }
    let paths = if paths.is_empty() { vec![PathBuf::from(".")] } else { paths };
    let files = match discover(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    if files.is_empty() {
        eprintln!("error: no test files (`*.test.yaml`) under {}", list(&paths));
        eprintln!(
            "  help: write one next to the mapping or pipeline it tests; see docs/user-guide.md, \"Testing mappings\""
        );
        return USAGE;
    }
    let text = !flags.junit;
    let mut results = Vec::new();
    for path in &files {
        let r = test_file(path, flags.update, text);
        results.push(r);
    }
    let (cases, failed, broken) = tally(&results);
    let summary = format!(
        "ran {} in {}: {} passed, {} failed{}",
        plural(cases, "case"),
        plural(files.len(), "file"),
        cases - failed,
        failed,
        if broken > 0 { format!(", {} broken", plural(broken, "file")) } else { String::new() }
    );
    if flags.junit {
        let xml = junit(&results);
        match &flags.output {
            Some(out) => {
                if let Err(e) = std::fs::write(out, xml) {
                    eprintln!("error: cannot write {}: {}", out.display(), e.kind());
                    return USAGE;
                }
            }
            None => print!("{xml}"),
        }
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if broken > 0 {
        USAGE
    } else if failed > 0 {
        FAILED
    } else {
        OK
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn tally(results: &[FileResult]) -> (usize, usize, usize) {
    let cases = results.iter().map(|r| r.cases.len()).sum();
    let failed = results.iter().flat_map(|r| &r.cases).filter(|c| c.failure.is_some()).count();
    let broken = results.iter().filter(|r| r.broken.is_some()).count();
    (cases, failed, broken)
}

/// `*.test.yaml` / `*.test.yml` files under the paths (files as given), sorted; hidden
/// directories and `target/` are skipped.
fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = std::collections::BTreeSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("cannot read {}: {}", p.display(), e.kind()))?;
        if meta.is_file() {
            out.insert(p.clone());
            continue;
        }
        let mut stack = vec![p.clone()];
        while let Some(dir) = stack.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {}", dir.display(), e.kind()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    if !name.starts_with('.') && name != "target" {
                        stack.push(path);
                    }
                } else if name.ends_with(".test.yaml") || name.ends_with(".test.yml") {
                    out.insert(path);
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

fn test_file(path: &Path, update: bool, text: bool) -> FileResult {
    let name = display_path(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let mut c = Compiler::default();
    let loaded = c.load_test(path);
    let mut rendered: Vec<String> =
        c.diags.items().iter().map(|d| diagnostics::render(d, &c.sources, Format::Human)).collect();
    // PHI reaching the sink of the pipeline built around a mapping: the fix is in the test file.
    let built =
        |d: &&diagnostics::Diagnostic| d.primary().is_some_and(|s| c.sources.get(s.file).name.ends_with("#pipeline"));
    if c.diags.items().iter().filter(built).any(|d| d.code == sluice_compiler::codes::PHI_UNMASKED) {
        rendered.push(format!(
            "note: `{name}#pipeline` is the pipeline `sluice test` builds around the mapping; name the masking policy its output goes through with `policy:` in the test file"
        ));
    }
    let (file, plan) = match loaded {
        Ok(Some(t)) => t,
        Ok(None) => {
            let all = rendered.join("\n");
            if text {
                eprintln!("{all}");
                println!("BROKEN {name}: the test file has errors (above)");
            }
            return FileResult { path: name.clone(), name, broken: Some(all), cases: Vec::new() };
        }
        Err(e) => {
            if text {
                eprintln!("error: {e}");
                println!("BROKEN {name}");
            }
            return FileResult { path: name.clone(), name, broken: Some(e), cases: Vec::new() };
        }
    };
    // Warnings (an unencrypted DLQ and the like) are `sluice check`'s business, not the test's.
    let mut results = Vec::new();
    let mut rewrites: Vec<(&Case, Outcome)> = Vec::new();
    for case in &file.cases {
        let started = std::time::Instant::now();
        let (failure, outcome) = run_one(&file, &plan, case);
        let millis = started.elapsed().as_millis();
        if text {
            match &failure {
                None => println!("ok     {name} :: {}", case.name.text),
                Some(Failure::Differs(_)) if update => println!("update {name} :: {}", case.name.text),
                Some(Failure::Differs(diff)) => println!("FAIL   {name} :: {}\n{diff}", case.name.text),
                Some(Failure::Error(why)) => println!("ERROR  {name} :: {}\n  {why}", case.name.text),
            }
        }
        if update && let (Some(Failure::Differs(_)), Some(o)) = (&failure, outcome) {
            rewrites.push((case, o));
        }
        results.push(CaseResult { name: case.name.text.clone(), failure, millis });
    }
    if update && !rewrites.is_empty() {
        let source = c.sources.get(file.cases[0].name.span.file);
        let new_text = test_yaml::rewrite(&source.text, &file, &rewrites);
        match std::fs::write(path, new_text) {
            Ok(()) => {
                if text {
                    println!("updated {} in {name}", plural(rewrites.len(), "expectation"));
                }
                // The rewritten cases now pass; errors (cases that could not run) remain.
                for r in &mut results {
                    if matches!(r.failure, Some(Failure::Differs(_))) {
                        r.failure = None;
                    }
                }
            }
            Err(e) => eprintln!("error: cannot write {name}: {}", e.kind()),
        }
    }
    FileResult { name: file.name.clone().unwrap_or_else(|| name.clone()), path: name, broken: None, cases: results }
}

/// Runs one case and compares; the outcome is returned for `--update`.
fn run_one(file: &TestFile, plan: &Plan, case: &Case) -> (Option<Failure>, Option<Outcome>) {
    let input = CaseInput {
        source: case.source.as_ref().map(|s| s.text.as_str()),
        bytes: &case.hl7v2,
        connection: case.connection.as_ref().map(|c| c.text.as_str()),
        envelope: case.envelope.iter().map(|(n, v)| (n.text.as_str(), v.text.as_str())).collect(),
    };
    match run_case(plan, &input, &file.clock, file.mask_key.as_deref()) {
        Err(e) => {
            let help = e.help.as_deref().map(|h| format!("\n  help: {h}")).unwrap_or_default();
            (Some(Failure::Error(format!("error[{}]: {}{help}", e.code, e.message))), None)
        }
        Ok(outcome) => {
            let diff = diff(&case.expect, &outcome);
            ((!diff.is_empty()).then_some(Failure::Differs(diff)), Some(outcome))
        }
    }
}

/// A readable diff of expected against actual, empty when they agree: per sink and record,
/// field by field (`-` expected, `+` actual).
fn diff(expect: &Expect, actual: &Outcome) -> String {
    let mut out = String::new();
    let mut sinks: Vec<&str> = actual.outputs.iter().map(|(s, _)| s.as_str()).collect();
    for (s, _) in &expect.outputs {
        if !sinks.contains(&s.text.as_str()) {
            sinks.push(&s.text);
        }
    }
    let empty = Vec::new();
    for sink in sinks {
        let want = expect.outputs.iter().find(|(s, _)| s.text == sink).map_or(&empty, |(_, r)| r);
        let got = actual.outputs.iter().find(|(s, _)| s == sink).map_or(&empty, |(_, r)| r);
        diff_list(&mut out, &format!("outputs.{sink}"), want, got);
    }
    diff_list(&mut out, "dlq", &expect.dlq, &actual.dlq);
    if expect.filtered != actual.filtered {
        out += &format!("  filtered:\n    - {}\n    + {}\n", expect.filtered, actual.filtered);
    }
    out
}

fn diff_list(out: &mut String, what: &str, want: &[Value], got: &[Value]) {
    if want.len() != got.len() {
        *out += &format!("  {what}: expected {}, got {}\n", want.len(), got.len());
    }
    for i in 0..want.len().max(got.len()) {
        match (want.get(i), got.get(i)) {
            (Some(w), Some(g)) if w == g => {}
            (Some(w), Some(g)) => {
                *out += &format!("  {what}[{i}]:\n");
                let (wf, gf) = (flatten(w), flatten(g));
                for (path, wv) in &wf {
                    match gf.iter().find(|(p, _)| p == path) {
                        Some((_, gv)) if gv == wv => {}
                        Some((_, gv)) => *out += &format!("    - {path}: {wv}\n    + {path}: {gv}\n"),
                        None => *out += &format!("    - {path}: {wv}\n"),
                    }
                }
                for (path, gv) in gf.iter().filter(|(p, _)| !wf.iter().any(|(q, _)| q == p)) {
                    *out += &format!("    + {path}: {gv}\n");
                }
            }
            (Some(w), None) => *out += &format!("  {what}[{i}]: expected, not produced\n    - {w}\n"),
            (None, Some(g)) => *out += &format!("  {what}[{i}]: produced, not expected\n    + {g}\n"),
            (None, None) => {}
        }
    }
}

/// Leaves of a JSON value as (`a.b[0].c`, JSON text), in document order.
fn flatten(v: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    walk(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{path}[{i}]"), out);
                }
            }
            _ => out.push((if path.is_empty() { ".".into() } else { path }, v.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// JUnit XML: one `<testsuite>` per file, one `<testcase>` per case; a broken file is one
/// testcase with an `<error>` holding its diagnostics.
fn junit(results: &[FileResult]) -> String {
    let (cases, failed, broken) = tally(results);
    let failures =
        results.iter().flat_map(|r| &r.cases).filter(|c| matches!(c.failure, Some(Failure::Differs(_)))).count();
    let errors = failed - failures + broken;
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x += &format!(
        "<testsuites name=\"sluice test\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n",
        cases + broken
    );
    for r in results {
        let (suite, class) = (xml(&r.name), xml(&r.path));
        if let Some(diags) = &r.broken {
            x += &format!("  <testsuite name=\"{suite}\" tests=\"1\" failures=\"0\" errors=\"1\">\n");
            x += &format!(
                "    <testcase classname=\"{class}\" name=\"(test file)\">\n      <error message=\"the test file has errors\">{}</error>\n    </testcase>\n",
                xml(diags)
            );
            x += "  </testsuite>\n";
            continue;
        }
        let f = r.cases.iter().filter(|c| matches!(c.failure, Some(Failure::Differs(_)))).count();
        let e = r.cases.iter().filter(|c| matches!(c.failure, Some(Failure::Error(_)))).count();
        x += &format!("  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\">\n", r.cases.len());
        for c in &r.cases {
            let time = format!("{:.3}", c.millis as f64 / 1000.0);
            x += &format!("    <testcase classname=\"{class}\" name=\"{}\" time=\"{time}\"", xml(&c.name));
            match &c.failure {
                None => x += "/>\n",
                Some(Failure::Differs(d)) => {
                    x += &format!(
                        ">\n      <failure message=\"output differs from expect\">{}</failure>\n    </testcase>\n",
                        xml(d)
                    )
                }
                Some(Failure::Error(e)) => {
                    x += &format!(
                        ">\n      <error message=\"the case could not run\">{}</error>\n    </testcase>\n",
                        xml(e)
                    )
                }
            }
        }
        x += "  </testsuite>\n";
    }
    x += "</testsuites>\n";
    x
}

/// Text as XML character data or attribute value; characters XML 1.0 cannot hold (terminal
/// colour escapes, other control characters) are dropped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\n' | '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
