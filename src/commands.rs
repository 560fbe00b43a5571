//! One function per subcommand: each returns the process exit code.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use sluice_compiler::compile::Compiler;
use sluice_compiler::diagnostics::{self, Format, Severity};
use sluice_compiler::plan::render;

use crate::PlanFormat;

const OK: u8 = 0;
const FAILED: u8 = 1;
const USAGE: u8 = 2;

/// Prints every diagnostic: human ones to stderr, machine formats to stdout.
fn print_diagnostics(c: &Compiler, format: Format) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for d in c.diags.items() {
        let text = diagnostics::render(d, &c.sources, format);
        let _ = match format {
            Format::Human => writeln!(err, "{text}"),
            _ => writeln!(out, "{text}"),
        };
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn counts(c: &Compiler) -> String {
    let (e, w) = (c.diags.count(Severity::Error), c.diags.count(Severity::Warning));
    format!("{}, {}", plural(e, "error"), plural(w, "warning"))
}

pub fn check(mut paths: Vec<PathBuf>, format: Format) -> u8 {
    if paths.is_empty() {
        paths = ["pipelines", "mappings"].iter().map(PathBuf::from).filter(|p| p.exists()).collect();
        if paths.is_empty() {
            paths.push(PathBuf::from("."));
        }
    }
    let mut c = Compiler::default();
    let report = match c.check_paths(&paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    print_diagnostics(&c, format);
    if format == Format::Human {
        eprintln!(
            "checked {} ({}): {}",
            plural(report.files.len(), "file"),
            plural(report.pipelines, "pipeline"),
            counts(&c)
        );
    }
    if c.diags.has_errors() { FAILED } else { OK }
}

/// Compiles a pipeline, printing its diagnostics; the plan, or the exit code to stop with.
fn compile(pipeline: &Path, diag_format: Format) -> Result<sluice_compiler::plan::Plan, u8> {
    let mut c = Compiler::default();
    let plan = c.plan(pipeline).map_err(|e| {
        eprintln!("error: {e}");
        USAGE
    })?;
    print_diagnostics(&c, diag_format);
    plan.ok_or_else(|| {
        eprintln!("no plan: {}", counts(&c));
        FAILED
    })
}

pub fn plan(pipeline: &Path, format: PlanFormat, diag_format: Format) -> u8 {
    let plan = match compile(pipeline, diag_format) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let text = match format {
        PlanFormat::Text => render::text(&plan),
        PlanFormat::Json => render::json(&plan),
        PlanFormat::Dot => render::dot(&plan),
        PlanFormat::Mermaid => render::mermaid(&plan),
    };
    print!("{text}");
    OK
}

pub fn run(pipeline: &Path, json: bool, fixed_clock: Option<String>, threads: Option<usize>) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let options = sluice_runtime::RunOptions { fixed_clock, threads };
    match sluice_runtime::run(&plan, &options) {
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string(&s).expect("summary serializes"));
            } else {
                println!("run {} of pipeline {} (plan {})", s.run_id, s.pipeline, s.plan_hash);
                for (name, n) in &s.per_source {
                    println!("  source {name}: {n} records read");
                }
                for (name, n) in &s.per_sink {
                    println!("  sink {name}: {n} records written");
                }
                println!(
                    "  in {} = delivered {} + dlq {} + filtered {} ({}), {} with warnings",
                    s.records_in,
                    s.delivered,
                    s.dlq,
                    s.filtered,
                    if s.balanced { "balanced" } else { "NOT BALANCED" },
                    s.warnings
                );
                println!("  {} ms, {:.0} records/s", s.elapsed_ms, s.records_per_second);
                if let Some(d) = &plan.dlq {
                    println!("  dlq: {}", d.path);
                }
                if let Some(a) = &plan.audit {
                    println!("  audit: {}", a.path);
                }
            }
            if s.balanced { OK } else { FAILED }
        }
        Err(e) => {
            eprintln!("error[{}]: {}", e.code, e.message);
            if let Some(h) = &e.help {
                eprintln!("  help: {h}");
            }
            FAILED
        }
    }
}

pub fn schema() -> u8 {
    let schema = sluice_compiler::jsonschema::spec_schema();
    println!("{}", serde_json::to_string_pretty(&schema).expect("schema serializes"));
    OK
}

/// Prints each message of each file as a JSON line; problems go to stderr with the file, the
/// message number and the byte offset, never the message content.
pub fn parse_hl7(files: &[PathBuf], full: bool) -> u8 {
    if files.is_empty() {
        eprintln!("error: give at least one file to parse");
        return USAGE;
    }
    let mut failed = false;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for path in files {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read {}: {}", path.display(), e.kind());
                return USAGE;
            }
        };
        for raw in sluice_hl7v2::split::MessageSplitter::new(BufReader::new(file)) {
            let raw = match raw {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {}: read failed: {}", path.display(), e.kind());
                    failed = true;
                    break;
                }
            };
            let text = match std::str::from_utf8(&raw.bytes) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!(
                        "error[HL7010]: {} message {}: not valid UTF-8 at byte {}",
                        path.display(),
                        raw.index + 1,
                        raw.offset + e.valid_up_to()
                    );
                    failed = true;
                    continue;
                }
            };
            match sluice_hl7v2::codec::parse_message(text) {
                Ok(m) => {
                    let json = sluice_hl7v2::json::message_to_json(&m, full);
                    let _ = writeln!(out, "{json}");
                }
                Err(e) => {
                    eprintln!(
                        "error[{}]: {} message {} (byte {}): {}",
                        e.code,
                        path.display(),
                        raw.index + 1,
                        raw.offset + e.offset,
                        e.message
                    );
                    failed = true;
                }
            }
        }
    }
    let _ = out.flush();
    if failed { FAILED } else { OK }
}

pub fn explain(code: &str) -> u8 {
    if let Some(c) = sluice_compiler::codes::find(code) {
        println!("{}: {}\n\n{}", c.code, c.title, c.explanation);
        return OK;
    }
    if let Some(f) = sluice_runtime::FINDINGS.iter().find(|f| f.code.eq_ignore_ascii_case(code)) {
        println!("{}: {}\n\n{}", f.code, f.title, f.explanation);
        return OK;
    }
    eprintln!("error: no diagnostic code `{code}`; codes look like SL201 (see docs/diagnostics.md)");
    USAGE
}
