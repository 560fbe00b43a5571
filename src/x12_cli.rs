//! The X12 branches of `sluice parse`, `sluice validate` and `sluice ack` (`--format x12`).
//!
//! Files are read through the streaming splitter of `sluice_x12::split`, so memory stays flat
//! whatever their size. Output never quotes a value of the data outside `sluice parse` (whose
//! job is to print it): findings name element positions and offsets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_x12::envelope::{Checker, Finding, InterchangeResult, Mode};
use sluice_x12::json::{SetContext, set_to_json_for};
use sluice_x12::partner::Partners;
use sluice_x12::split::{Item, Splitter};

use crate::commands::{FAILED, OK, USAGE};

/// The control numbers and version of the envelopes around the next set.
#[derive(Default)]
struct Context {
    /// ISA05 and ISA06, trimmed: who sent the interchange.
    isa05: String,
    isa06: String,
    isa12: String,
    interchange_control: String,
    group_control: String,
    functional_id: String,
    version: String,
    /// The trading partner of the interchange, when a profile is given (`None` inside: the
    /// sender is none of its partners).
    partner: Option<Option<String>>,
}

impl Context {
    fn update(&mut self, item: &Item) {
        let Item::Envelope { offset, delimiters, bytes } = item else { return };
        let seg = sluice_x12::codec::Segment { offset: *offset, raw: bytes, delimiters: *delimiters };
        match seg.id() {
            b"ISA" => {
                *self = Context {
                    isa05: seg.element_str(5).trim().to_string(),
                    isa06: seg.element_str(6).trim().to_string(),
                    isa12: seg.element_str(12).to_string(),
                    interchange_control: seg.element_str(13).to_string(),
                    partner: self.partner.as_ref().map(|_| None),
                    ..Context::default()
                };
            }
            b"GS" => {
                self.group_control = seg.element_str(6).to_string();
                self.functional_id = seg.element_str(1).to_string();
                self.version = seg.element_str(8).to_string();
            }
            _ => {}
        }
    }
}

fn open(path: &PathBuf) -> Result<std::fs::File, u8> {
    std::fs::File::open(path).map_err(|e| {
        eprintln!("error: cannot read {}: {}", path.display(), e.kind());
        USAGE
    })
}

/// The trading partners of an X12 profile file (`--profile`), its diagnostics printed; the
/// exit code of a usage error when it cannot be used.
pub fn load_partners(path: &Path) -> Result<Arc<Partners>, u8> {
    let mut c = sluice_compiler::compile::Compiler::default();
    let plan = c.load_x12_profile(path).map_err(|e| {
        eprintln!("error: {e}");
        USAGE
    })?;
    crate::commands::print_diagnostics(&c, sluice_compiler::diagnostics::Format::Human, &[]);
    let Some(plan) = plan else {
        eprintln!("error: the profile has errors");
        return Err(USAGE);
    };
    sluice_compiler::spec::x12_profile::to_partners(&plan).map(Arc::new).map_err(|e| {
        eprintln!("error: the profile cannot be used: {e}");
        USAGE
    })
}

/// `sluice parse --format x12`: one JSON line per transaction set; with a trading-partner
/// profile, its loops placed in the sender's copy of the guide and its `partner` named (every
/// set is printed, whoever sent it: a sender that is no partner gets the bundled guides and
/// `partner: null`).
pub fn parse(files: &[PathBuf], profile: Option<&Path>) -> u8 {
    if files.is_empty() {
        eprintln!("error: give at least one file to parse");
        return USAGE;
    }
    let partners = match profile.map(load_partners).transpose() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut failed = false;
    let mut out = crate::stdout::lock();
    for path in files {
        let file = match open(path) {
            Ok(f) => f,
            Err(code) => return code,
        };
        let name = path.display().to_string();
        let mut ctx = Context::default();
        for item in Splitter::new(file) {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {name}: read failed: {}", e.kind());
                    failed = true;
                    break;
                }
            };
            ctx.update(&item);
            match &item {
                Item::Set(set) => {
                    let sc = SetContext {
                        interchange_control: &ctx.interchange_control,
                        group_control: &ctx.group_control,
                        functional_id: &ctx.functional_id,
                        version: &ctx.version,
                        isa12: &ctx.isa12,
                    };
                    let partner = partners.as_deref().and_then(|p| p.identify(&ctx.isa05, &ctx.isa06));
                    let mut v = set_to_json_for(set, &sc, partner);
                    v["file"] = serde_json::Value::String(name.clone());
                    if partners.is_some() {
                        v["partner"] = serde_json::json!(partner.map(|p| p.name.as_str()));
                    }
                    let _ = writeln!(out, "{v}");
                }
                Item::Stray { offset, bytes, code, reason } => {
                    eprintln!("error: {name}: byte {offset}: {code}: {} bytes not read: {reason}", bytes.len());
                    failed = true;
                }
                // Without a set limit the splitter hands on whole sets only.
                Item::Envelope { .. } | Item::SetPart { .. } => {}
            }
        }
    }
    let _ = out.flush();
    if failed { FAILED } else { OK }
}

/// The longest transaction set `sluice validate` and `sluice ack` hold whole (bytes); a longer
/// one is read and checked in parts.
const SET_LIMIT: usize = 1 << 20;

/// Counts over all files.
#[derive(Default)]
struct Tally {
    sets: usize,
    accepted: usize,
    /// Errors outside any set (unreadable bytes, broken envelopes with no set).
    envelope_errors: usize,
    by_severity: [usize; 3],
}

impl Tally {
    fn add(&mut self, done: &[InterchangeResult]) {
        for ic in done {
            self.sets += ic.total_sets();
            self.accepted += ic.accepted_sets();
            if ic.total_sets() == 0 && ic.has_errors() {
                self.envelope_errors += 1;
            }
        }
    }
}

/// Reads every file through the splitter and the envelope checker; `on_finding` sees each
/// finding with its set number (1-based in the file, 0 outside sets), `on_done` each completed
/// interchange. Returns the tally, or the exit code of a usage error.
fn check_files(
    files: &[PathBuf],
    mode: Mode,
    partners: Option<&Arc<Partners>>,
    mut on_finding: impl FnMut(&str, usize, &Context, &Finding),
    mut on_done: impl FnMut(&str, &InterchangeResult),
) -> Result<Tally, u8> {
    let mut tally = Tally::default();
    for path in files {
        let file = open(path)?;
        let name = path.display().to_string();
        let mut checker = match partners {
            Some(p) => Checker::with_partners(mode, p.clone()),
            None => Checker::with_guides(mode),
        };
        let mut ctx = Context { partner: partners.map(|_| None), ..Context::default() };
        let mut set_number = 0;
        let mut end = 0;
        let mut record = |checker: &mut Checker, tally: &mut Tally| {
            let done = checker.take_done();
            for ic in &done {
                on_done(&name, ic);
            }
            tally.add(&done);
        };
        // A set longer than this is checked in parts, as it is read: memory does not grow
        // with the set either.
        for item in Splitter::with_set_limit(file, SET_LIMIT) {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {name}: read failed: {}", e.kind());
                    tally.envelope_errors += 1;
                    break;
                }
            };
            ctx.update(&item);
            end = item.offset();
            let in_set = matches!(item, Item::Set(_) | Item::SetPart { .. });
            if matches!(item, Item::Set(_) | Item::SetPart { first: true, .. }) {
                set_number += 1;
            }
            let found = checker.check(&item);
            if ctx.partner.is_some() {
                ctx.partner = Some(checker.partner().map(|p| p.name.clone()));
            }
            for f in found {
                tally.by_severity[f.severity as usize] += 1;
                on_finding(&name, if in_set { set_number } else { 0 }, &ctx, &f);
            }
            record(&mut checker, &mut tally);
        }
        for f in checker.finish(end) {
            tally.by_severity[f.severity as usize] += 1;
            on_finding(&name, 0, &ctx, &f);
        }
        record(&mut checker, &mut tally);
    }
    Ok(tally)
}

fn render(file: &str, set: usize, ctx: &Context, f: &Finding, json: bool) -> String {
    if json {
        let mut v = serde_json::json!({
            "file": file,
            "set_index": if set == 0 { None } else { Some(set) },
            "interchange_control": ctx.interchange_control,
            "byte_offset": f.offset,
            "severity": f.severity.as_str(),
            "code": f.code,
            "position": f.position,
            "segment": if f.segment_number == 0 { None } else { Some(f.segment_number) },
            "message": f.message,
        });
        if let Some(partner) = &ctx.partner {
            v["partner"] = serde_json::json!(partner);
        }
        return v.to_string();
    }
    let at = if set == 0 { "envelope".to_string() } else { format!("set {set}") };
    let pos = if f.position.is_empty() {
        format!("byte {}", f.offset)
    } else {
        format!("{} (byte {})", f.position, f.offset)
    };
    format!("{file}:{at} {} {} {pos}: {}", f.severity, f.code, f.message)
}

/// `sluice validate --format x12`: findings, one per line; exit 0 when every transaction set is
/// accepted and nothing outside the sets has an error. `lenient` reports envelope problems as
/// warnings ([`Mode::Lenient`]).
pub fn validate(files: &[PathBuf], lenient: bool, json: bool, profile: Option<&Path>) -> u8 {
    let partners = match profile.map(load_partners).transpose() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut out = crate::stdout::lock();
    let tally = check_files(
        files,
        if lenient { Mode::Lenient } else { Mode::Strict },
        partners.as_ref(),
        |file, set, ctx, f| {
            let _ = writeln!(out, "{}", render(file, set, ctx, f, json));
        },
        |_, _| {},
    );
    let _ = out.flush();
    let tally = match tally {
        Ok(t) => t,
        Err(code) => return code,
    };
    let [info, warnings, errors] = tally.by_severity;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "validated {} in {}: {} accepted, {} rejected ({}, {}, {} info)",
        plural(tally.sets, "transaction set"),
        plural(files.len(), "file"),
        tally.accepted,
        tally.sets - tally.accepted,
        plural(errors, "error"),
        plural(warnings, "warning"),
        info
    );
    if tally.accepted == tally.sets && tally.envelope_errors == 0 && errors == 0 { OK } else { FAILED }
}

/// The state store of `sluice ack --state`: a PostgreSQL store when the value is a URL or a
/// secret reference (`${VAR}`, `${file:PATH}`), else a SQLite file. A password written on the
/// command line is refused: it would show in the process list and the shell's history.
fn open_state(written: &str) -> Result<sluice_runtime::state::Store, sluice_runtime::RunError> {
    use sluice_compiler::plan::{StateTarget, pg_url};
    let is_url = written.starts_with("${") || written.contains("://");
    if is_url && !written.starts_with("${") && pg_url::check(written, false) == Err(pg_url::Problem::Password) {
        return Err(sluice_runtime::RunError::new(
            sluice_runtime::findings::STATE,
            "`--state`: the URL holds a password, which would show in the process list",
        )
        .with_help("put the URL in an environment variable and pass `--state '${VAR}'`"));
    }
    let target = StateTarget {
        kind: if is_url { "postgres" } else { "sqlite" }.to_string(),
        path: if is_url { String::new() } else { written.to_string() },
        url: is_url.then(|| written.to_string()),
        checkpoint_every_ms: 0,
    };
    sluice_runtime::state::Store::open(&target, None)
}

/// The entry of an `X12xxx` code for `sluice explain`.
pub fn explain(code: &str) -> Option<String> {
    let all = sluice_x12::codec::ERROR_CODES
        .iter()
        .copied()
        .chain(sluice_x12::envelope::CODES.iter().map(|(c, _, t, e)| (*c, *t, *e)));
    all.into_iter().find(|(c, _, _)| c.eq_ignore_ascii_case(code)).map(|(c, t, e)| format!("{c}: {t}\n\n{e}"))
}

/// `sluice ack --format x12`: the acknowledgment interchange for each interchange of each file
/// (TA1 for envelope errors, else a 999 or 997 per functional group), one after the other.
/// Without `state`, its ISA13 repeats the received ISA13 and its GS06 counts from 1, so the
/// output is deterministic with `--fixed-clock`; with it, both are reserved in that state
/// store, from the counters a pipeline's `acks:` use. Exit 0 when every transaction set is
/// accepted.
pub fn ack(files: &[PathBuf], fixed_clock: Option<String>, state: Option<&str>, profile: Option<&Path>) -> u8 {
    let partners = match profile.map(load_partners).transpose() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let clock = match sluice_runtime::time::Clock::new(fixed_clock.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error[{}]: {}", e.code, e.message);
            return USAGE;
        }
    };
    let store = match state.map(open_state).transpose() {
        Ok(store) => store,
        Err(e) => {
            crate::commands::print_run_error(&e);
            return USAGE;
        }
    };
    // YYYYMMDDHHMMSS...
    let stamp = sluice_runtime::time::rfc3339_to_hl7(&clock.now());
    let (date, time) = (stamp.get(..8).unwrap_or("").to_string(), stamp.get(8..12).unwrap_or("").to_string());
    let mut out = crate::stdout::lock();
    // A store that fails mid-way stops the acknowledgments: none is written without numbers
    // reserved for it.
    let mut store_failed = None;
    let tally = check_files(
        files,
        Mode::Strict,
        partners.as_ref(),
        |_, _, _, _| {},
        |file, ic| {
            if store_failed.is_some() {
                return;
            }
            let (interchange_control, group_control) = match &store {
                None => (ic.isa_element(13).parse().unwrap_or(0), 1),
                Some(store) => match store.x12_ack_control_numbers(ic) {
                    Ok(numbers) => numbers,
                    Err(e) => {
                        store_failed = Some(e);
                        return;
                    }
                },
            };
            let options = sluice_x12::ack::AckOptions {
                date: date.clone(),
                time: time.clone(),
                interchange_control,
                group_control,
                delimiters: partners
                    .as_deref()
                    .zip(ic.partner.as_deref())
                    .and_then(|(ps, name)| ps.by_name(name))
                    .and_then(|p| p.delimiters),
            };
            match sluice_x12::ack::acknowledge(ic, &options) {
                Some(text) => {
                    let _ = write!(out, "{text}");
                }
                None => eprintln!("error: {file}: byte {}: bytes outside any interchange, not acknowledged", ic.offset),
            }
        },
    );
    let _ = out.flush();
    if let Some(e) = store_failed {
        crate::commands::print_run_error(&e);
        return FAILED;
    }
    let tally = match tally {
        Ok(t) => t,
        Err(code) => return code,
    };
    eprintln!("acknowledged {} transaction sets: {} accepted", tally.sets, tally.accepted);
    let [_, _, errors] = tally.by_severity;
    if tally.accepted == tally.sets && tally.envelope_errors == 0 && errors == 0 { OK } else { FAILED }
}
