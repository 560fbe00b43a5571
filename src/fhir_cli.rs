//! `sluice parse --format fhir` and `sluice validate --format fhir`: FHIR JSON, XML and Bulk
//! Data NDJSON files in, FHIR JSON lines or findings out.
//!
//! Invariants:
//! - Nothing printed quotes a data value: findings and codec errors name codes, locations,
//!   types and byte offsets only (resources carry PHI); `parse` prints the resources
//!   themselves on stdout, which is its job.
//! - Exit codes: 0 all valid (warnings allowed), 1 any resource with an error or unreadable,
//!   2 a file that cannot be opened or a profile that cannot be used.
//! - JSON and XML Bundles larger than [`STREAM_ABOVE`] are validated entry by entry
//!   ([`sluice_fhir::stream::validate_streaming`]); NDJSON always line by line; other JSON
//!   Bundles are validated entry by entry as they are read ([`sluice_fhir::validate_document`],
//!   the whole tree never held): the findings are those of reading the whole tree, then
//!   validating it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sluice_fhir::profile::Profile;
use sluice_fhir::stream::NdjsonReader;
use sluice_fhir::validate::{Finding, Options, Severity, validate};
use sluice_fhir::{CodecError, Limits, Node};

use crate::commands::{FAILED, OK, USAGE};

/// JSON and XML files above this size are validated as a stream of Bundle entries.
const STREAM_ABOVE: u64 = 32 * 1024 * 1024;

/// How a file is laid out.
enum Layout {
    Xml,
    Json,
    Ndjson,
}

/// Looks at a file's name and first bytes.
fn layout(path: &Path, file: &mut BufReader<std::fs::File>) -> std::io::Result<Layout> {
    let head = file.fill_buf()?.to_vec();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    Ok(if ext == "ndjson" || ext == "jsonl" {
        Layout::Ndjson
    } else if sluice_fhir::is_xml(&head) {
        Layout::Xml
    } else if sluice_fhir::stream::looks_like_ndjson(&head) {
        Layout::Ndjson
    } else {
        Layout::Json
    })
}

fn open(path: &Path) -> Result<(BufReader<std::fs::File>, u64), u8> {
    let file = std::fs::File::open(path).map_err(|e| {
        eprintln!("error: cannot read {}: {}", path.display(), e.kind());
        USAGE
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((BufReader::with_capacity(64 * 1024, file), size))
}

/// Where in a file a resource or an error is: `line 3` in NDJSON, nothing otherwise.
fn at(line: Option<usize>) -> String {
    line.map(|n| format!(":line {n}")).unwrap_or_default()
}

fn codec_error(file: &str, line: Option<usize>, e: &CodecError) {
    eprintln!("error[{}]: {file}{} (byte {}): {}", e.code, at(line), e.offset, e.message);
}

/// What [`each_piece`] hands out of a file.
enum Piece<'b> {
    /// An NDJSON line (its number) read as a resource.
    Line(usize, Result<Node, CodecError>),
    /// A JSON or XML document's bytes.
    Document(&'b [u8]),
}

/// Reads every resource of a file: `visit(line, resource or error)`.
fn each_resource(path: &Path, mut visit: impl FnMut(Option<usize>, Result<Node, CodecError>)) -> Result<(), u8> {
    each_piece(path, |piece| match piece {
        Piece::Line(number, resource) => visit(Some(number), resource),
        Piece::Document(bytes) => visit(None, sluice_fhir::read(bytes)),
    })
}

/// Reads a file: each NDJSON line as a resource, or the whole JSON or XML document's bytes.
fn each_piece(path: &Path, mut visit: impl FnMut(Piece<'_>)) -> Result<(), u8> {
    let (mut file, _) = open(path)?;
    let name = path.display().to_string();
    let read_failed = |e: std::io::Error| {
        eprintln!("error: {name}: read failed: {}", e.kind());
        FAILED
    };
    match layout(path, &mut file).map_err(read_failed)? {
        Layout::Ndjson => {
            for line in NdjsonReader::new(file, Limits::default()) {
                let line = line.map_err(read_failed)?;
                visit(Piece::Line(line.number, line.resource.and_then(sluice_fhir::require_resource)));
            }
        }
        Layout::Xml | Layout::Json => {
            let mut bytes = Vec::new();
            let limit = Limits::default().max_bytes as u64 + 1;
            file.take(limit).read_to_end(&mut bytes).map_err(read_failed)?;
            visit(Piece::Document(&bytes));
        }
    }
    Ok(())
}

/// `sluice parse --format fhir`: each resource as one line of FHIR JSON.
pub fn parse(files: &[PathBuf]) -> u8 {
    if files.is_empty() {
        eprintln!("error: give at least one file to parse");
        return USAGE;
    }
    let mut out = crate::stdout::lock();
    let mut failed = false;
    for path in files {
        let name = path.display().to_string();
        let mut line_out = String::new();
        let r = each_resource(path, |line, resource| match resource {
            Ok(r) => {
                line_out.clear();
                r.write_json(&mut line_out);
                let _ = writeln!(out, "{line_out}");
            }
            Err(e) => {
                codec_error(&name, line, &e);
                failed = true;
            }
        });
        if let Err(code) = r {
            if code == USAGE {
                return code;
            }
            failed = true;
        }
    }
    let _ = out.flush();
    if failed { FAILED } else { OK }
}

/// One line of `sluice validate --format fhir` output.
fn render(file: &str, line: Option<usize>, f: &Finding, json: bool) -> String {
    if json {
        let mut o = serde_json::json!({
            "file": file,
            "severity": f.severity.as_str(),
            "code": f.code,
            "location": f.location,
            "message": f.message,
        });
        if let Some(n) = line {
            o["line"] = n.into();
        }
        return o.to_string();
    }
    format!("{file}{} {} {} {}: {}", at(line), f.severity, f.code, f.location, f.message)
}

/// `sluice validate --format fhir`: findings per resource; exit 0 when none has an error.
pub fn validate_files(files: &[PathBuf], profile: Option<&Path>, lenient: bool, json: bool) -> u8 {
    let profiles: Vec<Profile> = match profile {
        None => Vec::new(),
        Some(p) => match std::fs::read(p) {
            Err(e) => {
                eprintln!("error: cannot read {}: {}", p.display(), e.kind());
                return USAGE;
            }
            Ok(bytes) => match Profile::from_bytes(&bytes) {
                Ok(profile) => {
                    if profile.skipped > 0 {
                        eprintln!(
                            "note: {}: {} sliced element(s) of the profile are not checked (slicing is not supported)",
                            p.display(),
                            profile.skipped
                        );
                    }
                    vec![profile]
                }
                Err(e) => {
                    eprintln!("error[{}]: {}: {e}", sluice_fhir::codes::PROFILE_UNUSABLE, p.display());
                    return USAGE;
                }
            },
        },
    };
    let options = Options { lenient, profiles: &profiles };
    let mut out = crate::stdout::lock();
    let (mut resources, mut invalid) = (0usize, 0usize);
    let mut by_severity = [0usize; 3];
    for path in files {
        let name = path.display().to_string();
        let mut report = |line: Option<usize>, findings: Vec<Finding>| {
            resources += 1;
            if findings.iter().any(|f| f.severity == Severity::Error) {
                invalid += 1;
            }
            for f in &findings {
                by_severity[f.severity as usize] += 1;
                let _ = writeln!(out, "{}", render(&name, line, f, json));
            }
        };
        let unreadable = |e: CodecError| Finding {
            severity: Severity::Error,
            code: e.code,
            location: String::new(),
            message: format!("{} (byte {})", e.message, e.offset),
        };
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let is_big_bundle = size > STREAM_ABOVE && {
            match open(path) {
                Ok((mut f, _)) => matches!(layout(path, &mut f), Ok(Layout::Json | Layout::Xml)),
                Err(code) => return code,
            }
        };
        if is_big_bundle {
            let (file, _) = match open(path) {
                Ok(f) => f,
                Err(code) => return code,
            };
            match sluice_fhir::stream::validate_streaming(file, Limits::default(), &options) {
                Ok(Ok(findings)) => report(None, findings),
                Ok(Err(e)) => report(None, vec![unreadable(e)]),
                Err(e) => {
                    eprintln!("error: {name}: read failed: {}", e.kind());
                    invalid += 1;
                }
            }
            continue;
        }
        let r = each_piece(path, |piece| match piece {
            Piece::Line(number, Ok(r)) => report(Some(number), validate(&r, &options)),
            Piece::Line(number, Err(e)) => report(Some(number), vec![unreadable(e)]),
            Piece::Document(bytes) => match sluice_fhir::validate_document(bytes, Limits::default(), &options) {
                Ok(findings) => report(None, findings),
                Err(e) => report(None, vec![unreadable(e)]),
            },
        });
        match r {
            Ok(()) => {}
            Err(USAGE) => return USAGE,
            Err(_) => invalid += 1,
        }
    }
    let _ = out.flush();
    let [errors, warnings, info] = by_severity;
    eprintln!(
        "validated {} in {}: {} valid, {} with errors ({}, {}, {} info)",
        crate::commands::plural(resources, "resource"),
        crate::commands::plural(files.len(), "file"),
        resources.saturating_sub(invalid),
        invalid,
        crate::commands::plural(errors, "error"),
        crate::commands::plural(warnings, "warning"),
        info
    );
    if invalid > 0 { FAILED } else { OK }
}
