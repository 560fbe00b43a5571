//! One function per subcommand: each returns the process exit code.

use std::io::{BufReader, IsTerminal, Write};

use sluice_hl7v2::ack::{self, AckFinding, AckMode, AckOptions, ErrSeverity, Outcome, Status};
use sluice_hl7v2::batch;
use sluice_hl7v2::charset::{self, CharsetPolicy};
use std::path::{Path, PathBuf};

use sluice_compiler::compile::Compiler;
use sluice_compiler::diagnostics::{self, Format, Severity};
use sluice_compiler::plan::render;
use sluice_hl7v2::codec::{EncodingCharacters, ParseOptions, Parsed, parse_message_with};
use sluice_hl7v2::schema::Version;
use sluice_hl7v2::validate::{Finding, Options, Severity as HSeverity, validate};

use sluice_runtime::mllp::ListenEvent;

use crate::PlanFormat;
use crate::metrics::{MetricsError, MetricsServer, RunNames};
use crate::progress_line::ProgressLine;

/// The exit codes every command shares.
pub(crate) const OK: u8 = 0;
pub(crate) const FAILED: u8 = 1;
pub(crate) const USAGE: u8 = 2;
/// A run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// The diagnostics on stderr (human) or stdout (for tools); `files`: what was checked, for the
/// JUnit report's test cases.
pub(crate) fn print_diagnostics(c: &Compiler, format: Format, files: &[String]) {
    let mut out = crate::stdout::lock_direct();
    let mut err = std::io::stderr().lock();
    if format.is_document() {
        let _ = write!(out, "{}", diagnostics::render_document(c.diags.items(), &c.sources, format, files));
        return;
    }
    for d in c.diags.items() {
        let text = diagnostics::render(d, &c.sources, format);
        let _ = match format {
            Format::Human => writeln!(err, "{text}"),
            _ => writeln!(out, "{text}"),
        };
    }
}

pub(crate) fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

pub(crate) fn counts(c: &Compiler) -> String {
    let (e, w) = (c.diags.count(Severity::Error), c.diags.count(Severity::Warning));
    format!("{}, {}", plural(e, "error"), plural(w, "warning"))
}

/// The environment of this invocation (`--env`), set once by `main`.
static ENVIRONMENT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

pub fn set_environment(env: Option<String>) {
    let _ = ENVIRONMENT.set(env);
}

/// This invocation's `--env`, if any.
pub fn environment() -> Option<String> {
    ENVIRONMENT.get().cloned().flatten()
}

/// A compiler for this invocation's environment.
pub(crate) fn compiler() -> Compiler {
    let mut c = Compiler::default();
    c.env = environment();
    c
}

pub fn check(mut paths: Vec<PathBuf>, format: Format) -> u8 {
    if paths.is_empty() {
        paths = ["pipelines", "mappings"].iter().map(PathBuf::from).filter(|p| p.exists()).collect();
        if paths.is_empty() {
            paths.push(PathBuf::from("."));
        }
    }
    let mut c = compiler();
    let report = match c.check_paths(&paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    print_diagnostics(&c, format, &report.files);
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
pub(crate) fn compile(pipeline: &Path, diag_format: Format) -> Result<sluice_compiler::plan::Plan, u8> {
    let mut c = compiler();
    let plan = c.plan(pipeline).map_err(|e| {
        eprintln!("error: {e}");
        USAGE
    })?;
    print_diagnostics(&c, diag_format, &[]);
    plan.ok_or_else(|| {
        eprintln!("no plan: {}", counts(&c));
        FAILED
    })
}

/// `sluice plan` options beyond the format.
pub struct PlanOptions {
    pub out: Option<PathBuf>,
    pub diff: Option<String>,
    pub detailed_exitcode: bool,
    pub explain: Option<String>,
}

pub fn plan(pipeline: &Path, format: PlanFormat, diag_format: Format, options: &PlanOptions) -> u8 {
    if let Some(field) = &options.explain {
        return explain_field(pipeline, field, diag_format);
    }
    if compiler().file_kind(pipeline).as_deref() == Some("reconciliation") {
        return match format {
            PlanFormat::Text | PlanFormat::Json => {
                crate::reconcile_cli::plan(pipeline, diag_format, matches!(format, PlanFormat::Json))
            }
            _ => {
                eprintln!("error: a reconciliation's plan prints as text or json");
                USAGE
            }
        };
    }
    let plan = match compile(pipeline, diag_format) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(out) = &options.out
        && let Err(e) = std::fs::write(out, render::json(&plan))
    {
        eprintln!("error: cannot write {}: {}", out.display(), e.kind());
        return FAILED;
    }
    if let Some(base) = &options.diff {
        return crate::plan_diff::print(pipeline, base, &plan, format, options.detailed_exitcode);
    }
    let text = match format {
        PlanFormat::Text => render::text(&plan),
        PlanFormat::Json => render::json(&plan),
        PlanFormat::Dot => render::dot(&plan),
        PlanFormat::Mermaid => render::mermaid(&plan),
        PlanFormat::Markdown => {
            eprintln!("error: `--format markdown` is for `--diff BASE`; a plan prints as text, json, dot or mermaid");
            return USAGE;
        }
    };
    print!("{text}");
    OK
}

/// `sluice plan --explain FIELD`: per mapping of the pipeline that sets the field, the place
/// that sets it and those it overrides.
fn explain_field(pipeline: &Path, field: &str, diag_format: Format) -> u8 {
    let mut c = compiler();
    let plan = match c.plan(pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    print_diagnostics(&c, diag_format, &[]);
    let Some(plan) = plan else {
        eprintln!("no plan: {}", counts(&c));
        return FAILED;
    };
    let used: Vec<&str> = plan
        .components
        .iter()
        .filter_map(|comp| match &comp.kind {
            sluice_compiler::plan::ComponentKind::Map(m) => Some(m.mapping_file.as_str()),
            _ => None,
        })
        .collect();
    let found: Vec<(String, Vec<String>)> =
        c.explain(field).into_iter().filter(|(file, _)| used.contains(&file.as_str())).collect();
    if found.is_empty() {
        eprintln!("error: no mapping of pipeline `{}` sets `{field}` (mappings: {})", plan.pipeline, used.join(", "));
        return FAILED;
    }
    for (file, chain) in found {
        let mut line = format!("{field} in {file}: set at {}", chain[0]);
        for overridden in &chain[1..] {
            line.push_str(&format!(", overrides {overridden}"));
        }
        println!("{line}");
    }
    OK
}

/// The flag a file run watches: the first SIGINT or SIGTERM sets it (the run drains, saves a
/// checkpoint and stops); a second one, with the flag already set, exits at once with 130.
/// An abort cannot corrupt state: a checkpoint is saved in one state store transaction, and a
/// resume cuts the outputs back to the last one.
fn stop_on_signals() -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // The order matters: the conditional exit must see the flag before this signal sets it.
        signal_hook::flag::register_conditional_shutdown(signal, i32::from(INTERRUPTED), std::sync::Arc::clone(&stop))
            .ok()?;
        signal_hook::flag::register(signal, std::sync::Arc::clone(&stop)).ok()?;
    }
    Some(stop)
}

/// `sluice run PIPELINE`: runs it, with a progress line on a terminal and an optional metrics
/// endpoint watching it, then prints the summary.
pub fn run(pipeline: &Path, flags: RunFlags) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(saved) = &flags.saved_plan
        && let Err(e) = crate::plan_diff::same_as_saved(&plan, saved)
    {
        print_run_error(&e);
        return FAILED;
    }
    let show_line = !flags.quiet && std::io::stderr().is_terminal();
    // The writer publishes its counts only when someone watches.
    let progress =
        (show_line || flags.metrics.is_some()).then(|| std::sync::Arc::new(sluice_runtime::progress::Progress::new()));
    let metrics = match (&flags.metrics, &progress) {
        (Some(address), Some(progress)) => {
            match MetricsServer::start(address, RunNames::of(&plan), std::sync::Arc::clone(progress)) {
                Ok(server) => {
                    eprintln!("metrics: http://{}/metrics", server.address());
                    Some(server)
                }
                Err(e) => {
                    let (code, message) = match e {
                        MetricsError::BadAddress(m) => (USAGE, m),
                        MetricsError::Bind(m) => (FAILED, m),
                    };
                    print_run_error(
                    &sluice_runtime::RunError::new(sluice_runtime::findings::METRICS_ADDRESS, message)
                        .with_help("give an IP address and a free port, e.g. `--metrics 127.0.0.1:9464` (port 0: any free port)"),
                );
                    return code;
                }
            }
        }
        _ => None,
    };
    let line = ProgressLine::start(progress.clone().filter(|_| show_line));
    {
        let out = line.printer();
        let (level, json) = flags.log;
        crate::logging::install(level, json, std::sync::Arc::new(move |l: &str| out.eprintln(l)));
    }
    // A listening source reports when it listens and stops; say so on stderr (no data in it),
    // above the progress line.
    let (events, listen_events) = std::sync::mpsc::channel();
    let printer = {
        let out = line.printer();
        std::thread::spawn(move || {
            for e in listen_events {
                out.eprintln(&match e {
                    ListenEvent::Listening { source, address } => {
                        format!("source {source}: listening on {address} (MLLP); stop with Ctrl-C or SIGTERM")
                    }
                    ListenEvent::Consuming { source, topics, group } => format!(
                        "source {source}: consuming {} as group {group} (Kafka); stop with Ctrl-C or SIGTERM",
                        topics.join(", ")
                    ),
                    ListenEvent::ConsumingQueue { source, queue } => {
                        format!("source {source}: consuming queue {queue} (AMQP); stop with Ctrl-C or SIGTERM")
                    }
                    ListenEvent::Stopping { signal } => {
                        format!("{signal}: no new connections; finishing the messages in flight")
                    }
                });
            }
        })
    };
    // A listening source handles its own signals (tokio); a file run watches this flag.
    let stop = if !sluice_runtime::mllp::listens(&plan) { stop_on_signals() } else { None };
    let options = sluice_runtime::RunOptions {
        fixed_clock: flags.fixed_clock,
        threads: flags.threads,
        start: flags.start,
        stop,
        progress,
    };
    let result = sluice_runtime::run_with_events(&plan, &options, Some(events));
    let _ = printer.join();
    line.finish();
    if let Some(m) = metrics {
        m.stop();
    }
    match result {
        Ok(s) => {
            // The pipeline's reconciliations, once every source has been read to its end.
            let finished = !s.interrupted && s.balanced;
            let mut reconciled = Vec::new();
            let mut failed = false;
            for r in &plan.reconciliations {
                if !finished {
                    eprintln!(
                        "reconciliation `{}` not run: the run {}",
                        r.plan.name,
                        if s.interrupted { "stopped before its sources ended" } else { "does not add up" }
                    );
                    continue;
                }
                match crate::reconcile_cli::run(&r.plan) {
                    Ok(done) => {
                        failed |= !done.balanced;
                        reconciled.push(done);
                    }
                    Err(_) => {
                        eprintln!(
                            "  reconciliation `{}` of {} failed after the run; the run's outputs are complete, and `sluice run` again runs both",
                            r.plan.name, r.spec
                        );
                        failed = true;
                    }
                }
            }
            if flags.json {
                let mut summary = serde_json::to_value(&s).expect("summary serializes");
                if let (Some(m), false) = (summary.as_object_mut(), plan.reconciliations.is_empty()) {
                    m.insert("reconciliations".into(), reconciled.iter().map(|d| d.summary.clone()).collect());
                }
                println!("{}", serde_json::to_string(&summary).expect("summary serializes"));
            } else {
                print_run_summary(&s, &plan, pipeline);
                for line in reconciled.iter().flat_map(|d| &d.lines) {
                    println!("{line}");
                }
            }
            if s.interrupted {
                INTERRUPTED
            } else if s.balanced && !failed {
                OK
            } else {
                FAILED
            }
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}

/// How `sluice run` runs and reports.
pub struct RunFlags {
    /// `--summary json`.
    pub json: bool,
    pub fixed_clock: Option<String>,
    pub threads: Option<usize>,
    pub start: sluice_runtime::Start,
    /// `--metrics ADDRESS`: serve Prometheus metrics there while the run goes.
    pub metrics: Option<String>,
    /// `--quiet`: no progress line, even on a terminal.
    pub quiet: bool,
    /// `--log-level` and whether `--log-format json`.
    pub log: (tracing::Level, bool),
    /// `--plan FILE`: the reviewed plan the specs must still compile to.
    pub saved_plan: Option<PathBuf>,
}

fn print_run_summary(s: &sluice_runtime::RunSummary, plan: &sluice_compiler::plan::Plan, pipeline: &Path) {
    println!("run {} of pipeline {} (plan {})", s.run_id, s.pipeline, s.plan_hash);
    if let Some(n) = s.resumed_from {
        println!("  resumed after record {n} (the counts below are the whole run's)");
    }
    for (name, n) in &s.per_source {
        println!("  source {name}: {n} records read");
    }
    for (name, n) in &s.per_sink {
        match s.per_sink_retries.iter().find(|(r, _)| r == name) {
            Some((_, retries)) => println!("  sink {name}: {n} records delivered, {retries} retries"),
            None => println!("  sink {name}: {n} records written"),
        }
    }
    println!(
        "  in {} = delivered {} + dlq {} + filtered {} ({}), {} with warnings",
        s.records.records_in,
        s.records.delivered,
        s.records.dlq,
        s.records.filtered,
        if s.balanced { "balanced" } else { "NOT BALANCED" },
        s.records.warnings
    );
    if s.records.parts_dropped > 0 {
        println!(
            "  {} dropped from records that went on (bad_segments: drop), each in the DLQ",
            plural(s.records.parts_dropped as usize, "segment")
        );
    }
    println!("  {} ms, {:.0} records/s", s.elapsed_ms, s.records_per_second);
    if let Some(d) = &plan.dlq {
        println!("  dlq: {}", if d.in_state_store() { d.shown(plan.state.as_ref()) } else { d.path.clone() });
    }
    if let Some(a) = &plan.audit {
        println!("  audit: {}", a.path);
    }
    if s.interrupted {
        match &plan.state {
            Some(st) => println!(
                "  interrupted: checkpoint saved in {}; continue with `sluice run --resume {}`",
                // The SQLite file, or the PostgreSQL URL as written (never a password).
                st.shown(),
                pipeline.display()
            ),
            None => println!(
                "  interrupted: the outputs hold the records up to here; without a state store (`state:`) the run cannot be resumed"
            ),
        }
    }
}

pub(crate) fn print_run_error(e: &sluice_runtime::RunError) {
    eprintln!("error[{}]: {}", e.code, e.message);
    if let Some(h) = &e.help {
        eprintln!("  help: {h}");
    }
}

/// The DLQ entries of a compiled pipeline, or the exit code after printing why not.
fn dlq_entries(plan: &sluice_compiler::plan::Plan) -> Result<Vec<sluice_runtime::dlq::StoredEntry>, u8> {
    sluice_runtime::dlq::read_plan_entries(plan).map_err(|e| {
        print_run_error(&e);
        FAILED
    })
}

/// The compiled pipeline and its DLQ entries, or the exit code after printing why not.
fn plan_and_dlq(pipeline: &Path) -> Result<(sluice_compiler::plan::Plan, Vec<sluice_runtime::dlq::StoredEntry>), u8> {
    let plan = compile(pipeline, Format::Human)?;
    let entries = dlq_entries(&plan)?;
    Ok((plan, entries))
}

/// `sluice dlq list PIPELINE`.
pub fn dlq_list(pipeline: &Path, json: bool) -> u8 {
    let (plan, entries) = match plan_and_dlq(pipeline) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // Read without the lock, so the DLQ can be listed while a run goes on.
    let replayed = match &plan.state {
        Some(st) => match sluice_runtime::state::Store::replayed_in(st) {
            Ok(replayed) => replayed,
            Err(e) => {
                print_run_error(&e);
                return FAILED;
            }
        },
        None => Default::default(),
    };
    let records = sluice_runtime::replay::records(&entries);
    let (mut pending, mut parts) = (0, 0);
    for e in &records {
        let entries_of = entries.iter().filter(|x| x.id == e.id).count();
        let status = match (&e.part, replayed.get(&e.id)) {
            // A segment cut out of a record that went on: not a message, never replayed.
            (Some(part), _) => {
                parts += 1;
                format!("dropped segment {} of {}", part.segment, part.record)
            }
            (None, Some(outcome)) => format!("replayed: {outcome}"),
            (None, None) => {
                pending += 1;
                "pending".to_string()
            }
        };
        if json {
            let mut line = serde_json::json!({
                "id": e.id, "status": status, "stage": e.stage, "code": e.code, "reason": e.reason,
                "source": e.source, "file": e.file, "message_index": e.message_index, "entries": entries_of,
            });
            if let (Some(part), Some(obj)) = (&e.part, line.as_object_mut()) {
                obj.insert("part".into(), serde_json::to_value(part).expect("parts serialize"));
            }
            println!("{line}");
        } else {
            println!("{}  {status}  {}  {}  {}  ({}#{})", e.id, e.stage, e.code, e.reason, e.file, e.message_index);
        }
    }
    if !json {
        print!("{} in the DLQ, {pending} pending replay", plural(records.len() - parts, "record"));
        if parts > 0 {
            print!("; {} dropped from records that went on (not replayable)", plural(parts, "segment"));
        }
        println!();
    }
    OK
}

/// `sluice dlq show PIPELINE ID [--raw]`.
pub fn dlq_show(pipeline: &Path, id: &str, raw: bool, who: &crate::keys_cli::RoleArgs) -> u8 {
    let (plan, entries) = match plan_and_dlq(pipeline) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if raw && let Err(code) = crate::keys_cli::authorize(&plan, sluice_runtime::access::Operation::DlqRaw, who, None) {
        return code;
    }
    let of_id: Vec<_> = entries.iter().filter(|e| e.id == id).collect();
    if of_id.is_empty() {
        eprintln!(
            "error[{}]: no DLQ record {id} in pipeline `{}`",
            sluice_runtime::findings::DLQ_UNKNOWN_RECORD,
            plan.pipeline
        );
        eprintln!("  help: `sluice dlq list {}` shows the ids", pipeline.display());
        return FAILED;
    }
    let key = match (raw, &plan.dlq) {
        (true, Some(target)) => match sluice_runtime::dlq::key_for(target) {
            Ok(key) => key,
            Err(e) => {
                print_run_error(&e);
                return FAILED;
            }
        },
        _ => None,
    };
    for e in of_id {
        let mut value = serde_json::to_value(e).expect("entries serialize");
        if let Some(obj) = value.as_object_mut() {
            obj.remove("raw");
            obj.remove("raw_encoding");
            obj.remove("envelope");
            obj.insert("raw_bytes".into(), e.raw_len().into());
            if raw {
                match e.raw_bytes(key.as_ref()).and_then(|bytes| Ok((bytes, e.bus_meta(key.as_ref())?))) {
                    Ok((bytes, bus)) => {
                        obj.insert("raw".into(), String::from_utf8_lossy(&bytes).into_owned().into());
                        if let Some(bus) = bus {
                            obj.insert("envelope".into(), shown_envelope(&bus));
                        }
                    }
                    Err(m) => {
                        print_run_error(
                            &sluice_runtime::RunError::new(sluice_runtime::findings::DLQ_UNREADABLE, m).with_help(
                                "an encrypted entry opens only with the key the run used (`dlq.encryption_key`); check that it is the same",
                            ),
                        );
                        return FAILED;
                    }
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&value).expect("entries serialize"));
    }
    if let Some(part) = entries.iter().find(|e| e.id == id).and_then(|e| e.part.as_ref()) {
        eprintln!(
            "(not a whole message: segment {} dropped from record {}, which went on without it; `sluice dlq replay` does not replay it, {})",
            part.segment,
            part.record,
            sluice_runtime::findings::DLQ_PART_NOT_REPLAYABLE
        );
    }
    if !raw {
        eprintln!(
            "(the raw message, and the key and headers it came with, are left out; `--raw` prints them: they may hold patient data)"
        );
    }
    OK
}

/// `sluice dlq replay PIPELINE [ID...]`.
pub fn dlq_replay(
    pipeline: &Path,
    ids: &[String],
    json: bool,
    fixed_clock: Option<String>,
    who: &crate::keys_cli::RoleArgs,
) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let op = sluice_runtime::access::Operation::DlqReplay;
    if let Err(code) = crate::keys_cli::authorize(&plan, op, who, fixed_clock.as_deref()) {
        return code;
    }
    let options = sluice_runtime::RunOptions { fixed_clock, ..Default::default() };
    match sluice_runtime::replay::replay(&plan, &options, ids) {
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string(&s).expect("summary serializes"));
            } else {
                if s.undid_incomplete_replay {
                    println!("an earlier replay had not completed: it was undone first");
                }
                if s.skipped_parts > 0 {
                    println!(
                        "skipped {}: each holds a segment dropped from a record, not a message (RT025)",
                        if s.skipped_parts == 1 {
                            "1 DLQ entry".to_string()
                        } else {
                            format!("{} DLQ entries", s.skipped_parts)
                        }
                    );
                }
                if s.replayed == 0 {
                    println!("nothing to replay: no pending record in the DLQ of pipeline {}", s.pipeline);
                } else {
                    println!(
                        "replay {} of pipeline {}: {} replayed = delivered {} + dlq {} + filtered {}",
                        s.run_id,
                        s.pipeline,
                        plural(s.replayed as usize, "record"),
                        s.delivered,
                        s.dlq,
                        s.filtered
                    );
                    for (id, outcome) in &s.outcomes {
                        println!("  {id}: {outcome}");
                    }
                }
            }
            OK
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}

/// `sluice dlq purge PIPELINE (ID... | --replayed)`.
pub fn dlq_purge(pipeline: &Path, choice: &sluice_runtime::purge::Choice, who: &crate::keys_cli::RoleArgs) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = crate::keys_cli::authorize(&plan, sluice_runtime::access::Operation::DlqPurge, who, None) {
        return code;
    }
    match sluice_runtime::purge::purge(&plan, &sluice_runtime::RunOptions::default(), choice) {
        Ok(s) => {
            println!(
                "purged {} ({} {}) from the DLQ of pipeline {}; {} left",
                plural(s.purged as usize, "record"),
                s.entries,
                if s.entries == 1 { "entry" } else { "entries" },
                s.pipeline,
                plural(s.left as usize, "record")
            );
            OK
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}

/// Which entries `sluice audit export` prints.
pub struct ExportFilter {
    pub run: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The CSV columns of `sluice audit export`: what every kind of entry may carry.
const EXPORT_COLUMNS: &[&str] = &[
    "seq",
    "at",
    "run_id",
    "plan_hash",
    "event",
    "record",
    "offset",
    "message_id",
    "component",
    "sinks",
    "masked",
    "records_in",
    "delivered",
    "dlq",
    "filtered",
    "hash",
];

/// One CSV field (RFC 4180: quoted when it holds a comma, quote or line break).
fn csv_field(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)).collect::<Vec<_>>().join(";")
        }
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// `sluice audit export FILE`.
pub fn audit_export(file: &Path, csv: bool, filter: &ExportFilter) -> u8 {
    if let Err(e) = sluice_runtime::verify_audit_chain(file) {
        print_run_error(&chain_broken(file, &e).with_help(
            "a log whose chain is broken is not exported; `sluice explain RT024` says what the reason means",
        ));
        return FAILED;
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {}", file.display(), e.kind());
            return FAILED;
        }
    };
    let mut out = crate::stdout::lock();
    if csv {
        let _ = writeln!(out, "{}", EXPORT_COLUMNS.join(","));
    }
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let at = entry["at"].as_str().unwrap_or("");
        let wanted = filter.run.as_deref().is_none_or(|r| entry["run_id"] == r)
            && filter.from.as_deref().is_none_or(|f| at >= f)
            && filter.to.as_deref().is_none_or(|t| at < t);
        if !wanted {
            continue;
        }
        let _ = if csv {
            let row: Vec<String> = EXPORT_COLUMNS.iter().map(|c| csv_field(&entry[*c])).collect();
            writeln!(out, "{}", row.join(","))
        } else {
            writeln!(out, "{line}")
        };
    }
    OK
}

/// `sluice audit verify FILE`.
pub fn audit_verify(file: &Path) -> u8 {
    match sluice_runtime::verify_audit_chain(file) {
        Ok(n) => {
            println!("{}: {n} {} intact, chain unbroken", file.display(), if n == 1 { "entry" } else { "entries" });
            OK
        }
        Err(e) => {
            print_run_error(&chain_broken(file, &e));
            FAILED
        }
    }
}

/// RT024 for `file`, with the verifier's reason (a line number and what does not fit).
fn chain_broken(file: &Path, why: &str) -> sluice_runtime::RunError {
    sluice_runtime::RunError::new(
        sluice_runtime::findings::AUDIT_CHAIN_BROKEN,
        format!("audit log `{}`: {why}", file.display()),
    )
    .with_help(
        "keep the file as evidence and compare it with a backup; `sluice explain RT024` says what each reason means",
    )
}

pub fn schema() -> u8 {
    let schema = sluice_compiler::jsonschema::spec_schema();
    println!("{}", serde_json::to_string_pretty(&schema).expect("schema serializes"));
    OK
}

/// A message file as the splitter reads it: UTF-16 files are transcoded to UTF-8 as they stream
/// (the splitter cuts at CR/LF bytes); everything else passes through untouched. A file that
/// cannot even be sniffed reads as empty, and the read error surfaces from the splitter.
fn utf8_input<'a, R: std::io::Read + 'a>(file: R) -> BufReader<Box<dyn std::io::Read + 'a>> {
    match charset::Utf8Stream::new(file) {
        Ok((stream, _)) => BufReader::new(Box::new(stream)),
        Err(e) => BufReader::new(Box::new(FailingRead(Some(e)))),
    }
}

/// Yields one error, then end of input.
struct FailingRead(Option<std::io::Error>);

impl std::io::Read for FailingRead {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        self.0.take().map_or(Ok(0), Err)
    }
}

/// Prints each message of each file as a JSON line; problems go to stderr with the file, the
/// message number and the byte offset, never the message content.
pub fn parse_hl7(files: &[PathBuf], full: bool, profile: Option<&Path>) -> u8 {
    if files.is_empty() {
        eprintln!("error: give at least one file to parse");
        return USAGE;
    }
    // Without a profile: BOM, UTF-16, MSH-18, else UTF-8 (`encoding: auto`), strict MSH-2.
    let reading = match profile.map(profile_options).transpose() {
        Ok(r) => r.unwrap_or_default(),
        Err(code) => return code,
    };
    let mut failed = false;
    let mut out = crate::stdout::lock();
    for path in files {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read {}: {}", path.display(), e.kind());
                return USAGE;
            }
        };
        for raw in sluice_hl7v2::split::MessageSplitter::new(utf8_input(file)) {
            let raw = match raw {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {}: read failed: {}", path.display(), e.kind());
                    failed = true;
                    break;
                }
            };
            let decoded = match charset::decode(&raw.bytes, &reading.policy) {
                Ok(d) => d,
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
                    continue;
                }
            };
            match parse_message_with(&decoded.text, reading.parse) {
                Ok(Parsed { message: m, warnings, .. }) => {
                    for w in warnings {
                        eprintln!("warning[{}]: {} message {}: {}", w.code, path.display(), raw.index + 1, w.message);
                    }
                    let json = sluice_hl7v2::json::message_to_json(&m, full);
                    let _ = writeln!(out, "{json}");
                }
                Err(e) => {
                    eprintln!(
                        "error[{}]: {} message {} (byte {}): {}",
                        e.code,
                        path.display(),
                        raw.index + 1,
                        raw.offset + decoded.source_offset(e.offset),
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

/// `sluice validate --profile P`: the validation options a parser profile implies.
/// How `sluice validate` and `sluice ack` read messages: the profile's checks, character set
/// and encoding-character reading (the same settings `sluice run` uses).
#[derive(Default)]
struct Reading {
    options: Options,
    policy: CharsetPolicy,
    parse: ParseOptions,
}

fn profile_options(path: &Path) -> Result<Reading, u8> {
    let mut c = Compiler::default();
    let profile = c.load_profile(path).map_err(|e| {
        eprintln!("error: {e}");
        USAGE
    })?;
    print_diagnostics(&c, Format::Human, &[]);
    let Some(p) = profile else {
        eprintln!("error: the profile has errors: {}", counts(&c));
        return Err(USAGE);
    };
    let unexpected = match p.unexpected_segments.as_str() {
        "fail" => HSeverity::Error,
        "skip" => HSeverity::Warning,
        _ => HSeverity::Info,
    };
    let options = Options {
        default_version: Version::parse(&p.version),
        unexpected_segments: unexpected,
        z_segments: Some(p.z_segments.iter().map(|z| z.id.clone()).collect()),
        ..Options::default()
    };
    // The compiler only accepts encodings and readings the codec knows, so these cannot fail
    // for a checked profile.
    let policy = CharsetPolicy::from_name(&p.encoding).unwrap_or_default();
    let encoding_characters = EncodingCharacters::from_name(&p.encoding_characters).unwrap_or_default();
    Ok(Reading { options, policy, parse: ParseOptions { encoding_characters, ..ParseOptions::default() } })
}

/// One line of `sluice validate` output. Never holds a field value: paths, codes and fixed
/// texts only (MSH-10, the message control id, is not PHI and identifies the message).
struct Reported<'a> {
    file: &'a str,
    /// 1-based number of the message in its file.
    message_index: usize,
    control_id: Option<String>,
    byte_offset: usize,
    severity: HSeverity,
    code: &'static str,
    path: String,
    segment: Option<usize>,
    message: String,
}

impl Reported<'_> {
    fn render(&self, json: bool) -> String {
        if json {
            return serde_json::json!({
                "file": self.file,
                "message_index": self.message_index,
                "control_id": self.control_id,
                "byte_offset": self.byte_offset,
                "severity": self.severity.as_str(),
                "code": self.code,
                "path": self.path,
                "segment": self.segment,
                "message": self.message,
            })
            .to_string();
        }
        let id = self.control_id.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
        let at = if self.path.is_empty() { format!("byte {}", self.byte_offset) } else { self.path.clone() };
        format!(
            "{}:message {}{id} {} {} {at}: {}",
            self.file, self.message_index, self.severity, self.code, self.message
        )
    }
}

#[derive(Default)]
struct Tally {
    messages: usize,
    invalid: usize,
    by_severity: [usize; 3],
}

/// What reading one message of a file gave.
enum Checked<'m> {
    /// The file could not be read on (the rest of it is skipped).
    ReadFailed(std::io::ErrorKind),
    /// The bytes did not decode or parse: a code, the byte offset in the file, a text without
    /// data values.
    Unreadable { code: &'static str, byte_offset: usize, message: String },
    /// Parsed (ADD segments joined) and validated.
    Parsed { message: &'m sluice_hl7v2::codec::Message<'m>, findings: Vec<sluice_hl7v2::validate::Finding> },
}

/// Opens the files and, for each message of each (split, charset-decoded, parsed, validated
/// as `sluice validate` does), calls `visit(file name, raw message, what it gave)`. Returns the
/// number of files, or the exit code when a file cannot be opened.
fn check_hl7_files(
    files: &[PathBuf],
    reading: &Reading,
    mut visit: impl FnMut(&str, &sluice_hl7v2::split::RawMessage, Checked<'_>),
) -> Result<usize, u8> {
    let mut opened = Vec::new();
    for path in files {
        match std::fs::File::open(path) {
            Ok(f) => opened.push((path.display().to_string(), f)),
            Err(e) => {
                eprintln!("error: cannot read {}: {}", path.display(), e.kind());
                return Err(USAGE);
            }
        }
    }
    for (name, file) in &opened {
        for raw in sluice_hl7v2::split::MessageSplitter::new(utf8_input(file)) {
            let raw = match raw {
                Ok(r) => r,
                Err(e) => {
                    let none = sluice_hl7v2::split::RawMessage { offset: 0, index: 0, bytes: Vec::new() };
                    visit(name, &none, Checked::ReadFailed(e.kind()));
                    break;
                }
            };
            match charset::decode(&raw.bytes, &reading.policy) {
                Err(e) => {
                    let c =
                        Checked::Unreadable { code: e.code, byte_offset: raw.offset + e.offset, message: e.message };
                    visit(name, &raw, c)
                }
                // ADD segments continue the segment before them; validate the joined message.
                Ok(decoded) => match parse_message_with(&batch::join_add_segments(&decoded.text), reading.parse) {
                    Err(e) => {
                        let c = Checked::Unreadable {
                            code: e.code,
                            byte_offset: raw.offset + decoded.source_offset(e.offset),
                            message: e.message,
                        };
                        visit(name, &raw, c)
                    }
                    Ok(Parsed { message: m, warnings, .. }) => {
                        // What a tolerant profile accepted is said first, as a warning on MSH-2.
                        let mut findings: Vec<Finding> = warnings
                            .into_iter()
                            .map(|w| Finding::new(HSeverity::Warning, w.code, "MSH-2", 1, w.message))
                            .collect();
                        findings.extend(validate(&m, &reading.options));
                        visit(name, &raw, Checked::Parsed { message: &m, findings })
                    }
                },
            }
        }
    }
    Ok(opened.len())
}

/// Splits, decodes, parses and validates every message of every file; prints the findings
/// (stdout) and a summary (stderr). Exit 0 when no message has an error.
pub fn validate_hl7(files: &[PathBuf], profile: Option<&Path>, json: bool) -> u8 {
    let reading = match profile.map(profile_options).transpose() {
        Ok(r) => r.unwrap_or_default(),
        Err(code) => return code,
    };
    let mut out = crate::stdout::lock();
    let mut tally = Tally::default();
    let checked = check_hl7_files(files, &reading, |name, raw, checked| {
        let mut found = Vec::new();
        let base = Reported {
            file: name,
            message_index: raw.index + 1,
            control_id: None,
            byte_offset: raw.offset,
            severity: HSeverity::Error,
            code: "",
            path: String::new(),
            segment: None,
            message: String::new(),
        };
        match checked {
            Checked::ReadFailed(kind) => {
                eprintln!("error: {name}: read failed: {kind}");
                tally.invalid += 1;
                return;
            }
            Checked::Unreadable { code, byte_offset, message } => {
                found.push(Reported { code, byte_offset, message, ..base })
            }
            Checked::Parsed { message: m, findings } => {
                let control_id = m.control_id().map(str::to_string);
                for f in findings {
                    let seg_offset = f.segment.checked_sub(1).and_then(|i| m.segments.get(i)).map_or(0, |s| s.offset);
                    found.push(Reported {
                        control_id: control_id.clone(),
                        byte_offset: raw.offset + seg_offset,
                        severity: f.severity,
                        code: f.code,
                        path: f.path,
                        segment: Some(f.segment),
                        message: f.message,
                        ..base
                    });
                }
            }
        }
        tally.messages += 1;
        if found.iter().any(|f| f.severity == HSeverity::Error) {
            tally.invalid += 1;
        }
        for f in &found {
            tally.by_severity[f.severity as usize] += 1;
            let _ = writeln!(out, "{}", f.render(json));
        }
    });
    let files_read = match checked {
        Ok(n) => n,
        Err(code) => return code,
    };
    let _ = out.flush();
    let [info, warnings, errors] = tally.by_severity;
    eprintln!(
        "validated {} in {}: {} valid, {} with errors ({}, {}, {} info)",
        plural(tally.messages, "message"),
        plural(files_read, "file"),
        tally.messages - tally.invalid.min(tally.messages),
        tally.invalid,
        plural(errors, "error"),
        plural(warnings, "warning"),
        info
    );
    if tally.invalid > 0 { FAILED } else { OK }
}

/// `sluice ack`: the acknowledgement(s) for each message of each file, one per line (segments
/// separated by CR, ACKs by a newline). A message with validation errors gets AE (CE) with an
/// ERR segment per error; one that does not decode or parse gets AR (CR) with what can be
/// salvaged of its MSH. Exit 0 when every message is accepted, 1 otherwise.
pub fn ack_hl7(files: &[PathBuf], profile: Option<&Path>, mode: AckMode, fixed_clock: Option<String>) -> u8 {
    let reading = match profile.map(profile_options).transpose() {
        Ok(r) => r.unwrap_or_default(),
        Err(code) => return code,
    };
    let clock = match sluice_runtime::time::Clock::new(fixed_clock.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error[{}]: {}", e.code, e.message);
            return USAGE;
        }
    };
    let now = clock.now();
    let timestamp = sluice_runtime::time::rfc3339_to_hl7(&now);
    let mut out = crate::stdout::lock();
    let (mut messages, mut not_accepted) = (0usize, 0usize);
    let checked = check_hl7_files(files, &reading, |name, raw, checked| {
        let (header, outcome) = match checked {
            Checked::ReadFailed(kind) => {
                eprintln!("error: {name}: read failed: {kind}");
                not_accepted += 1;
                return;
            }
            Checked::Unreadable { code, byte_offset, message } => {
                let finding = AckFinding {
                    hl7_code: ack::hl7_error_code(code),
                    code: code.to_string(),
                    location: None,
                    message: format!("{message} (byte {byte_offset})"),
                    severity: ErrSeverity::Error,
                };
                (ack::Header::salvage(&raw.bytes), Outcome { status: Status::Rejected, findings: vec![finding] })
            }
            Checked::Parsed { message, findings } => {
                let errors: Vec<AckFinding> = findings
                    .into_iter()
                    .filter(|f| f.severity == HSeverity::Error)
                    .map(|f| AckFinding {
                        hl7_code: ack::hl7_error_code(f.code),
                        code: f.code.to_string(),
                        location: (!f.path.is_empty()).then_some(f.path),
                        message: f.message,
                        severity: ErrSeverity::Error,
                    })
                    .collect();
                let status = if errors.is_empty() { Status::Accepted } else { Status::Error };
                (ack::Header::from_message(message), Outcome { status, findings: errors })
            }
        };
        messages += 1;
        if outcome.status != Status::Accepted {
            not_accepted += 1;
        }
        let Some(header) = header else {
            eprintln!(
                "error: {name} message {} (byte {}): no MSH segment, no acknowledgement can be built",
                raw.index + 1,
                raw.offset
            );
            return;
        };
        let seed = format!("{now}|{name}|{}", raw.index);
        let acks = ack::acknowledge(&header, &outcome, &AckOptions { mode, timestamp: &timestamp, seed: &seed });
        for a in acks.accept.iter().chain(acks.application.iter()) {
            let _ = writeln!(out, "{}", a.text);
        }
        for why in &acks.not_due {
            eprintln!("{name} message {}: {why}", raw.index + 1);
        }
    });
    if let Err(code) = checked {
        return code;
    }
    let _ = out.flush();
    eprintln!(
        "acknowledged {}: {} accepted, {} not accepted",
        plural(messages, "message"),
        messages - not_accepted.min(messages),
        not_accepted
    );
    if not_accepted > 0 { FAILED } else { OK }
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
    let hl7 = sluice_hl7v2::codec::ERROR_CODES.iter().chain(sluice_hl7v2::validate::CODES);
    if let Some((c, title, explanation)) = hl7.into_iter().find(|(c, _, _)| c.eq_ignore_ascii_case(code)) {
        println!("{c}: {title}\n\n{explanation}");
        return OK;
    }
    if let Some(text) = crate::x12_cli::explain(code) {
        println!("{text}");
        return OK;
    }
    if let Some((c, title, explanation)) =
        sluice_fhir::codes::CODES.iter().find(|(c, _, _)| c.eq_ignore_ascii_case(code))
    {
        println!("{c}: {title}\n\n{explanation}");
        return OK;
    }
    eprintln!("error: no diagnostic code `{code}`; codes look like SL201 (see docs/diagnostics.md)");
    USAGE
}

/// A record's key and headers as `sluice dlq show --raw` prints them: as text (bytes that are
/// not UTF-8 shown with replacement characters, as `raw` is).
fn shown_envelope(bus: &sluice_runtime::record::BusMeta) -> serde_json::Value {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut obj = serde_json::Map::new();
    obj.insert("key".into(), bus.key.as_deref().map(text).into());
    let headers: Vec<serde_json::Value> =
        bus.headers.iter().map(|(name, value)| serde_json::json!([name, value.as_deref().map(text)])).collect();
    obj.insert("headers".into(), headers.into());
    if bus.deleted {
        obj.insert("deleted".into(), true.into());
    }
    serde_json::Value::Object(obj)
}
