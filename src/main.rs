//! The `sluice` command line: parses arguments, calls the compiler and the runtime, renders
//! their results for terminals and tools, and turns outcomes into exit codes.
//!
//! Exit codes: 0 success, 1 the input has errors (diagnostics, invalid messages, a failed run),
//! 2 usage errors (bad flags, unreadable paths). Only this crate knows about terminals and
//! exit codes (DESIGN.md, invariant 1).

mod commands;
mod connect_cli;
mod fhir_cli;
mod keys_cli;
mod logging;
mod metrics;
mod plan_diff;
mod progress_line;
mod reconcile_cli;
mod serve_cli;
mod stdout;
mod test_runner;
mod test_yaml;
mod x12_cli;

#[global_allocator]
static ALLOCATOR: sluice_alloc::Allocator = sluice_alloc::Allocator;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "sluice", version, about = "Compiler and runtime for healthcare and financial data pipelines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Compile for this environment: mask stages apply their `environments.NAME` policy (at least
    /// as strict as their own) instead of `policy`; the plan says which.
    #[arg(long, global = true, value_name = "NAME")]
    env: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiagFormat {
    Human,
    Json,
    Github,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// JUnit XML, a test case per checked file, for CI test reports.
    Junit,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    Dot,
    Mermaid,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum)]
enum SummaryFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Standard {
    /// HL7 v2.x messages (pipe-delimited ER7, MLLP-framed or batched).
    Hl7v2,
    /// ASC X12 EDI (5010 and 4010 interchanges).
    X12,
    /// FHIR R4: JSON, XML or Bulk Data NDJSON.
    Fhir,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl From<LogLevel> for tracing::Level {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum TestFormat {
    Text,
    Junit,
}

#[derive(Clone, Copy, ValueEnum)]
enum AckModeArg {
    Original,
    Enhanced,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    Compact,
    Full,
}

#[derive(Subcommand)]
enum Command {
    /// Type-check specs (pipelines, mappings, profiles, rules, masking policies) without running.
    Check {
        /// Files or directories (searched for .yaml/.yml). Default: pipelines/ and mappings/.
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "human")]
        format: DiagFormat,
    },
    /// Compile a pipeline and print its plan, or what changed since BASE (`--diff`).
    Plan {
        pipeline: PathBuf,
        /// `text`, `json`, `dot`, `mermaid`; with `--diff`: `text`, `json` or `markdown` (for a
        /// pull-request comment).
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
        /// Format for diagnostics, if the pipeline does not compile.
        #[arg(long, value_enum, default_value = "human")]
        diagnostics: DiagFormat,
        /// Also save the plan as JSON to this file (for `--diff` or `sluice run --plan` later).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print what changed from BASE: a saved plan (JSON file) or a git revision (`main`,
        /// `HEAD~1`), whose specs are compiled the same way.
        #[arg(long, value_name = "BASE")]
        diff: Option<String>,
        /// With `--diff`: exit 2 when something changed, 0 when nothing did.
        #[arg(long, requires = "diff")]
        detailed_exitcode: bool,
        /// Instead of the plan: where output field FIELD (`patient.dob`) is set in the
        /// pipeline's mappings, and which mappings' settings it overrides (`extends`).
        #[arg(long, value_name = "FIELD", conflicts_with = "diff")]
        explain: Option<String>,
    },
    /// Serve a pipeline's `webhook` sources over HTTP(S) until Ctrl-C or SIGTERM: each
    /// delivery verified, queued durably in the state store, answered, then processed.
    Serve(serve_cli::ServeArgs),
    /// Compile and run a pipeline.
    Run {
        pipeline: PathBuf,
        /// How to print the run summary.
        #[arg(long, value_enum, default_value = "text")]
        summary: SummaryFormat,
        /// Pin the clock (RFC 3339) so output is byte-identical across runs; for tests.
        #[arg(long)]
        fixed_clock: Option<String>,
        /// Worker threads for CPU stages (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Continue the pipeline's unfinished run from its last checkpoint (needs `state:`).
        #[arg(long, conflicts_with = "restart")]
        resume: bool,
        /// Abandon the pipeline's unfinished run, if any, and start over (outputs truncated).
        #[arg(long)]
        restart: bool,
        /// Serve Prometheus metrics (counts only) at http://ADDRESS/metrics while the run goes,
        /// e.g. 127.0.0.1:9464; port 0 picks a free port (the address is printed on stderr).
        #[arg(long, value_name = "ADDRESS")]
        metrics: Option<String>,
        /// No progress line (it is drawn only when stderr is a terminal anyway).
        #[arg(long, short)]
        quiet: bool,
        /// Log events on stderr at this level and above: run start and end, resumes and
        /// `fail_if` at `info`, checkpoints and rejected records (id, component, code) at
        /// `debug`. Never a data value: fields outside an allowlist are redacted.
        #[arg(long, value_enum, default_value = "warn")]
        log_level: LogLevel,
        /// `json`: one object per line (`at`, `level`, `target`, `message`, fields).
        #[arg(long, value_enum, default_value = "text")]
        log_format: OutputFormat,
        /// Run only if the specs still compile to this saved plan (`sluice plan --out`): the
        /// plan that was reviewed is the plan that runs.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Run test files (`*.test.yaml`) offline: feed each case's messages through the pipeline
    /// or mapping it names and compare what comes out with its `expect`. Exit 0 all passed, 1
    /// a case failed, 2 a test file is broken.
    Test {
        /// Test files or directories searched for `*.test.yaml` (default: the current directory).
        paths: Vec<PathBuf>,
        /// `junit`: JUnit XML for CI systems (on stdout, or in `--output`).
        #[arg(long, value_enum, default_value = "text")]
        format: TestFormat,
        /// Write the JUnit XML to this file instead of stdout.
        #[arg(long, value_name = "FILE", requires = "format")]
        output: Option<PathBuf>,
        /// Rewrite the `expect` of every failing case with what the case produces now (review
        /// the diff before committing it).
        #[arg(long)]
        update: bool,
    },
    /// Print the JSON Schema of the spec language (for editors).
    Schema,
    /// Parse message files and print each message as one JSON line.
    Parse {
        #[arg(long, value_enum)]
        format: Standard,
        /// `full`: every field is a list of repetitions of components of subcomponents.
        #[arg(long, value_enum, default_value = "compact")]
        shape: Shape,
        /// A parser profile (`kind: profile`): its `encoding` and `encoding_characters` say how
        /// messages are read (as in `sluice run`). Default: detected charset, strict MSH-2.
        /// With `--format x12`, a trading-partner profile: each set's `loops` are placed in
        /// its sender's copy of the guide (with the segments and loops its overlays add), and
        /// each set names its `partner`.
        #[arg(long)]
        profile: Option<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// Validate message files: structure, required fields, datatypes, tables. Exit 0 when
    /// every message is valid (warnings allowed), 1 when any has an error.
    Validate {
        #[arg(long, value_enum)]
        format: Standard,
        /// A parser profile (`kind: profile`): its `version` is used when MSH-12 is empty, its
        /// `z_segments` are the Z-segments allowed, `unexpected_segments` sets their severity,
        /// `encoding` and `encoding_characters` say how messages are read (as in `sluice run`).
        /// With `--format x12`: a trading-partner profile (`format: x12`): each interchange's
        /// sender must be a partner, its sets and version the partner's, its guides the
        /// partner's overlaid copies; JSON findings carry `partner`.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// `json`: one finding per line, for tools.
        #[arg(long, value_enum, default_value = "text")]
        output: OutputFormat,
        /// FHIR: unknown elements and wrong JSON shapes are warnings, not errors. X12: envelope
        /// errors are warnings and the sets are accepted (unreadable ISA headers still fail).
        #[arg(long)]
        lenient: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the HL7 v2 acknowledgement (ACK) for each message of the files, one per line
    /// (segments separated by CR). Messages are checked as `sluice validate` checks them: AA
    /// when valid, AE with ERR segments when not, AR when unreadable. Exit 0 when all are
    /// accepted, 1 otherwise.
    Ack {
        /// `x12`: a TA1 for envelope errors, else a 999 (5010) or 997 (4010) per functional
        /// group (see docs/x12.md); `--mode` is for HL7 v2 only.
        #[arg(long, value_enum, default_value = "hl7v2")]
        format: Standard,
        /// A parser profile (`kind: profile`), as for `sluice validate`. With `--format x12`, a
        /// trading-partner profile: acknowledgments follow its checks and are written with
        /// each partner's `delimiters`.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// `original`: AA/AE/AR; `enhanced`: accept ACK (CA/CE/CR) per MSH-15 and application
        /// ACK per MSH-16.
        #[arg(long, value_enum, default_value = "original")]
        mode: AckModeArg,
        /// Pin the clock (RFC 3339): MSH-7 and the ACK control ids are then deterministic.
        #[arg(long)]
        fixed_clock: Option<String>,
        /// `x12` only: take each acknowledgment's ISA13 and GS06 from this state store, the
        /// counters a pipeline's `acks:` use: a SQLite file, or a PostgreSQL URL as in a
        /// spec's `state.url` (`'${VAR}'`, `'${file:PATH}'`, or a URL without a password).
        #[arg(long, value_name = "STORE")]
        state: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Inspect and replay a pipeline's dead-letter queue.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Check an audit log's hash chain: exit 0 when every entry is intact and in order, 1 with
    /// the first bad line otherwise.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Explain a diagnostic code (`sluice explain SL201`).
    Explain { code: String },
    /// Authorize a connection of the pipeline's `connections:` (OAuth 2.0 authorization code
    /// with PKCE: prints the URL to open and waits on 127.0.0.1 for the browser; client
    /// credentials: gets a token). Tokens are kept encrypted in the state store.
    Connect {
        /// The connection's name under `connections:`.
        name: String,
        pipeline: PathBuf,
        /// Show whether the connection is authorized and until when (never a token).
        #[arg(long, conflicts_with = "refresh")]
        status: bool,
        /// Refresh the access token now.
        #[arg(long)]
        refresh: bool,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        /// How long to wait for the browser to come back, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Print the values of tokens a `tokenize` rule wrote (`TOKEN<TAB>VALUE`), read from the
    /// pipeline's token vault; recorded in the audit log (`detokenized`, a count only).
    Detokenize {
        pipeline: PathBuf,
        #[arg(required = true)]
        tokens: Vec<String>,
        #[command(flatten)]
        who: keys_cli::RoleArgs,
        /// Pin the clock (RFC 3339) of the audit entry.
        #[arg(long)]
        fixed_clock: Option<String>,
    },
    /// Remove what the pipeline's `retention:` says expired (DLQ records, archived audit logs,
    /// old run records), and with `--subject` one person's data everywhere Sluice keeps it (DLQ
    /// records naming the id in PID-3, the id's token vault row and the tokens linked to the
    /// person). Recorded in the audit log (`purged`, counts only, never the id).
    Purge {
        pipeline: PathBuf,
        /// A patient id (PID-3.1): remove this person's data.
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        who: keys_cli::RoleArgs,
        /// Pin the clock (RFC 3339): what expired is counted from it.
        #[arg(long)]
        fixed_clock: Option<String>,
    },
    /// The encryption keys of a pipeline's token vault: their ids, and re-encryption under the
    /// current key after a new one is put first (`sluice keys rotate`).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Run a `kind: reconciliation` spec: match its `left` and `right` JSON Lines inputs by
    /// its ladder of rules, write matched pairs, the review output and the summary.
    Reconcile {
        spec: PathBuf,
        /// `json`: print the summary document instead of the text lines.
        #[arg(long, value_enum, default_value = "text")]
        summary: SummaryFormat,
        /// Format for diagnostics, if the spec does not compile.
        #[arg(long, value_enum, default_value = "human")]
        diagnostics: DiagFormat,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// The configured key ids (current first) and how many vault rows each key id encrypts.
    List { pipeline: PathBuf },
    /// Re-encrypt every vault row under the current key (the first of `vault_key`); then the
    /// previous keys can be removed. Recorded in the audit log (`keys_rotated`).
    Rotate {
        pipeline: PathBuf,
        #[command(flatten)]
        who: keys_cli::RoleArgs,
        /// Pin the clock (RFC 3339) of the audit entry.
        #[arg(long)]
        fixed_clock: Option<String>,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// One line per DLQ record (message): id, status (pending, or the outcome of its replay),
    /// stage, code and reason. Never the message itself.
    List {
        pipeline: PathBuf,
        /// `json`: one object per record, for tools.
        #[arg(long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Every entry of one DLQ record. The raw message is left out unless `--raw` is given (it
    /// is the one place patient data lives).
    Show {
        pipeline: PathBuf,
        id: String,
        /// Print the raw message too.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        who: keys_cli::RoleArgs,
    },
    /// Send DLQ records through the pipeline's current plan again (all pending ones, or the
    /// ids given), appending to its sinks, DLQ and audit log. All or nothing; needs `state:`.
    Replay {
        pipeline: PathBuf,
        ids: Vec<String>,
        #[command(flatten)]
        who: keys_cli::RoleArgs,
        #[arg(long, value_enum, default_value = "text")]
        summary: SummaryFormat,
        /// Pin the clock (RFC 3339), as for `sluice run`.
        #[arg(long)]
        fixed_clock: Option<String>,
    },
    /// Remove DLQ records from the DLQ file: the ids given, or with `--replayed` every record
    /// already replayed. Atomic; recorded in the audit log (`dlq_purged`); needs `state:`.
    Purge {
        pipeline: PathBuf,
        #[arg(required_unless_present = "replayed", conflicts_with = "replayed")]
        ids: Vec<String>,
        /// Every record `sluice dlq replay` has replayed.
        #[arg(long)]
        replayed: bool,
        #[command(flatten)]
        who: keys_cli::RoleArgs,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute every entry's hash and check every link (`prev`) and the order (`seq`).
    Verify { file: PathBuf },
    /// Verify the chain, then print its entries for other tools: CSV (one row per entry, the
    /// common columns) or JSON Lines (the entries as they are), optionally one run's or a
    /// time range's. Exit 1, printing nothing, when the chain does not verify.
    Export {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Only the entries of this run id.
        #[arg(long)]
        run: Option<String>,
        /// Only entries at or after this time (RFC 3339, compared as text in UTC: `2024-01-15T00:00:00Z`).
        #[arg(long)]
        from: Option<String>,
        /// Only entries before this time.
        #[arg(long)]
        to: Option<String>,
        /// The pipeline whose `roles:` govern the export (default: the `spec_file` of the log's
        /// first `run_started` entry). With `roles:`, the export needs a role that may
        /// `audit_export`; a refusal is recorded in the pipeline's audit log.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        #[command(flatten)]
        who: keys_cli::RoleArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Jsonl,
}

/// `sluice dlq list | head`, `sluice schema > /dev/full`: std's `print!` panics when stdout
/// cannot be written ("failed printing to stdout: Broken pipe"). A command-line tool stops as
/// [`stdout::Output`] does instead: quietly for a reader that went away, with an error otherwise.
/// Only that panic is caught: SIGPIPE itself stays ignored, so a peer closing a socket (MLLP,
/// HTTP sinks) is still an error the runtime handles, never a silent kill.
fn stop_cleanly_when_stdout_fails() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") {
            stdout::stop_on(message.contains("Broken pipe"), message.rsplit(": ").next().unwrap_or(message));
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    stop_cleanly_when_stdout_fails();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    commands::set_environment(cli.env);
    let code = match cli.command {
        Command::Check { paths, format } => commands::check(paths, format.into()),
        Command::Plan { pipeline, format, diagnostics, out, diff, detailed_exitcode, explain } => {
            let options = commands::PlanOptions { out, diff, detailed_exitcode, explain };
            commands::plan(&pipeline, format, diagnostics.into(), &options)
        }
        Command::Run {
            pipeline,
            summary,
            fixed_clock,
            threads,
            resume,
            restart,
            metrics,
            quiet,
            log_level,
            log_format,
            plan: saved_plan,
        } => {
            let start = match (resume, restart) {
                (true, _) => sluice_runtime::Start::Resume,
                (_, true) => sluice_runtime::Start::Restart,
                _ => sluice_runtime::Start::New,
            };
            let json = matches!(summary, SummaryFormat::Json);
            let log = (log_level.into(), matches!(log_format, OutputFormat::Json));
            commands::run(
                &pipeline,
                commands::RunFlags { json, fixed_clock, threads, start, metrics, quiet, log, saved_plan },
            )
        }
        // A test file names the masking policy its cases run under (`policy:`); silently
        // ignoring `--env` would pass tests the environment's stricter policy might fail.
        Command::Test { .. } if commands::environment().is_some() => {
            eprintln!(
                "error: `sluice test` does not take `--env`: a test file names the masking policy its cases run under with `policy:`; point it at the environment's policy file to test under that policy"
            );
            commands::USAGE
        }
        Command::Test { paths, format, output, update } => {
            let flags = test_runner::TestFlags { junit: matches!(format, TestFormat::Junit), output, update };
            test_runner::test(paths, &flags)
        }
        Command::Serve(args) => serve_cli::serve(args),
        Command::Schema => commands::schema(),
        Command::Parse { format: Standard::X12, files, profile, .. } => x12_cli::parse(&files, profile.as_deref()),
        Command::Validate { format: Standard::X12, output, lenient, files, profile } => {
            x12_cli::validate(&files, lenient, matches!(output, OutputFormat::Json), profile.as_deref())
        }
        Command::Parse { format: Standard::Hl7v2, shape, profile, files } => {
            commands::parse_hl7(&files, matches!(shape, Shape::Full), profile.as_deref())
        }
        Command::Validate { format: Standard::Hl7v2, lenient: true, .. } => {
            eprintln!("error: --lenient is for --format fhir or x12; HL7 v2 leniency is set in the parser profile");
            2
        }
        Command::Validate { format: Standard::Hl7v2, profile, output, files, .. } => {
            commands::validate_hl7(&files, profile.as_deref(), matches!(output, OutputFormat::Json))
        }
        Command::Parse { format: Standard::Fhir, profile: Some(_), .. } => {
            eprintln!(
                "error: --profile is for HL7 v2 parsing; `sluice validate --format fhir --profile SD.json` checks FHIR profiles"
            );
            2
        }
        Command::Parse { format: Standard::Fhir, files, .. } => fhir_cli::parse(&files),
        Command::Validate { format: Standard::Fhir, profile, output, lenient, files } => {
            fhir_cli::validate_files(&files, profile.as_deref(), lenient, matches!(output, OutputFormat::Json))
        }
        Command::Ack { format: Standard::Fhir, .. } => {
            eprintln!("error: FHIR has no acknowledgement message; `sluice ack` answers --format hl7v2 or x12");
            2
        }
        Command::Ack { format: Standard::X12, fixed_clock, state, files, profile, .. } => {
            x12_cli::ack(&files, fixed_clock, state.as_deref(), profile.as_deref())
        }
        Command::Ack { format: Standard::Hl7v2, state: Some(_), .. } => {
            eprintln!("error: `--state` is for `--format x12`: HL7 v2 ACK control ids come from the clock");
            2
        }
        Command::Ack { format: Standard::Hl7v2, profile, mode, fixed_clock, files, state: None } => {
            let mode = match mode {
                AckModeArg::Original => sluice_hl7v2::ack::AckMode::Original,
                AckModeArg::Enhanced => sluice_hl7v2::ack::AckMode::Enhanced,
            };
            commands::ack_hl7(&files, profile.as_deref(), mode, fixed_clock)
        }
        Command::Audit { action: AuditAction::Verify { file } } => commands::audit_verify(&file),
        Command::Audit { action: AuditAction::Export { file, format, run, from, to, pipeline, who } } => {
            match keys_cli::authorize_export(&file, pipeline.as_deref(), &who) {
                Ok(()) => {
                    let filter = commands::ExportFilter { run, from, to };
                    commands::audit_export(&file, matches!(format, ExportFormat::Csv), &filter)
                }
                Err(code) => code,
            }
        }
        Command::Dlq { action: DlqAction::List { pipeline, output } } => {
            commands::dlq_list(&pipeline, matches!(output, OutputFormat::Json))
        }
        Command::Dlq { action: DlqAction::Show { pipeline, id, raw, who } } => {
            commands::dlq_show(&pipeline, &id, raw, &who)
        }
        Command::Dlq { action: DlqAction::Purge { pipeline, ids, replayed, who } } => {
            let choice = if replayed {
                sluice_runtime::purge::Choice::Replayed
            } else {
                sluice_runtime::purge::Choice::Ids(ids)
            };
            commands::dlq_purge(&pipeline, &choice, &who)
        }
        Command::Dlq { action: DlqAction::Replay { pipeline, ids, who, summary, fixed_clock } } => {
            commands::dlq_replay(&pipeline, &ids, matches!(summary, SummaryFormat::Json), fixed_clock, &who)
        }
        Command::Explain { code } => commands::explain(&code),
        Command::Reconcile { spec, summary, diagnostics } => {
            reconcile_cli::reconcile(&spec, diagnostics.into(), matches!(summary, SummaryFormat::Json))
        }
        Command::Connect { name, pipeline, status, refresh, json, timeout } => connect_cli::connect(
            &name,
            &pipeline,
            &connect_cli::ConnectFlags { status, refresh, json, timeout: std::time::Duration::from_secs(timeout) },
        ),
        Command::Detokenize { pipeline, tokens, who, fixed_clock } => {
            keys_cli::detokenize(&pipeline, &tokens, &who, fixed_clock)
        }
        Command::Keys { action: KeysAction::List { pipeline } } => keys_cli::list(&pipeline),
        Command::Purge { pipeline, subject, who, fixed_clock } => {
            keys_cli::purge(&pipeline, subject.as_deref(), &who, fixed_clock)
        }
        Command::Keys { action: KeysAction::Rotate { pipeline, who, fixed_clock } } => {
            keys_cli::rotate(&pipeline, &who, fixed_clock)
        }
    };
    ExitCode::from(code)
}

impl From<DiagFormat> for sluice_compiler::diagnostics::Format {
    fn from(f: DiagFormat) -> Self {
        match f {
            DiagFormat::Human => Self::Human,
            DiagFormat::Json => Self::Json,
            DiagFormat::Github => Self::Github,
            DiagFormat::Sarif => Self::Sarif,
            DiagFormat::Junit => Self::Junit,
        }
    }
}
