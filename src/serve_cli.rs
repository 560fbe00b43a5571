//! `sluice serve PIPELINE`: serves the pipeline's `webhook` sources over HTTP(S) until Ctrl-C
//! or SIGTERM, then prints the summary of what this process processed; `--sync-requests`
//! lists the sync requests Plaid and FHIR subscription deliveries recorded instead.
//!
//! Invariants: stderr says where it listens, each endpoint (source, provider, path), and when it
//! stops; never a payload, a header or a secret.

use std::path::{Path, PathBuf};

use clap::Args;
use sluice_runtime::webhooks::{ServeEvent, ServeOptions};

use crate::commands::{self, FAILED, OK, USAGE};

#[derive(Args, Debug)]
pub struct ServeArgs {
    pub pipeline: PathBuf,
    /// Address to listen on, `ip:port`; port 0 picks a free port (printed on stderr).
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDRESS")]
    pub listen: String,
    /// Serve HTTPS with this certificate chain (PEM file); needs `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM file, never printed).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Pin the clock (RFC 3339) of records, DLQ and audit entries (signatures are always
    /// checked against the real time); for tests.
    #[arg(long)]
    pub fixed_clock: Option<String>,
    /// Worker threads for CPU stages (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// How to print the summary: `text` or `json` (one object, as `sluice run --summary json`).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub summary: String,
    /// Print the sync requests recorded by Plaid and FHIR subscription deliveries (JSON, one
    /// per line) and exit, instead of serving.
    #[arg(long)]
    pub sync_requests: bool,
}

fn describe(e: &ServeEvent) -> String {
    match e {
        ServeEvent::Recovered { events } => {
            format!("queue: {events} event(s) accepted before the last stop are processed first")
        }
        ServeEvent::Listening { address, tls, endpoints } => {
            let scheme = if *tls { "https" } else { "http" };
            let mut lines = format!("serve: listening on {scheme}://{address} (stop with Ctrl-C or SIGTERM)");
            for (source, provider, path) in endpoints {
                lines.push_str(&format!("\n  source {source}: {provider} webhooks at {scheme}://{address}{path}"));
            }
            lines
        }
        ServeEvent::Stopping { signal } => {
            format!("{signal}: no new deliveries; finishing those in flight (the rest stay queued)")
        }
        ServeEvent::Unencrypted => {
            "queue: webhook bodies are kept in plain text in the state store (the DLQ's `plaintext_reason`)".to_string()
        }
        ServeEvent::Sealed { events } => {
            format!("queue: {events} queued event(s) re-encrypted under the current key")
        }
    }
}

fn sync_requests(pipeline: &Path) -> u8 {
    let plan = match commands::compile(pipeline, sluice_compiler::diagnostics::Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(target) = &plan.state else {
        eprintln!("error: pipeline `{}` has no state store, so no sync requests", plan.pipeline);
        return USAGE;
    };
    let listed = sluice_runtime::state::Store::open(target, None).and_then(|store| {
        store.prepare_webhooks()?;
        store.sync_requests(&plan.pipeline)
    });
    match listed {
        Ok(requests) => {
            for r in requests {
                println!("{}", serde_json::to_string(&r).expect("a sync request serializes"));
            }
            OK
        }
        Err(e) => {
            commands::print_run_error(&e);
            FAILED
        }
    }
}

pub fn serve(args: ServeArgs) -> u8 {
    if args.sync_requests {
        return sync_requests(&args.pipeline);
    }
    let plan = match commands::compile(&args.pipeline, sluice_compiler::diagnostics::Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(sluice_compiler::plan::TlsPlan {
            cert: cert.display().to_string(),
            key: format!("${{file:{}}}", key.display()),
        }),
        _ => None,
    };
    let serve = ServeOptions { listen: args.listen.clone(), tls };
    let summary = args.summary.clone();
    let (events, listen_events) = std::sync::mpsc::channel();
    let printer = std::thread::spawn(move || {
        for e in listen_events {
            eprintln!("{}", describe(&e));
        }
    });
    let options = sluice_runtime::RunOptions {
        fixed_clock: args.fixed_clock,
        threads: args.threads,
        start: sluice_runtime::Start::New,
        stop: None,
        progress: None,
    };
    let result = sluice_runtime::serve_with_events(&plan, &options, &serve, Some(events));
    let _ = printer.join();
    match result {
        Ok(s) if summary == "json" => {
            println!("{}", serde_json::to_string(&s).expect("summary serializes"));
            if s.balanced { OK } else { FAILED }
        }
        Ok(s) => {
            println!("serve {} of pipeline {} (plan {})", s.run_id, s.pipeline, s.plan_hash);
            for (name, n) in &s.per_source {
                println!("  source {name}: {n} records (events processed and deliveries refused)");
            }
            for (name, n) in &s.per_sink {
                println!("  sink {name}: {n} records written");
            }
            println!(
                "  in {} = delivered {} + dlq {} + filtered {} ({})",
                s.records.records_in,
                s.records.delivered,
                s.records.dlq,
                s.records.filtered,
                if s.balanced { "balanced" } else { "NOT BALANCED" },
            );
            if s.balanced { OK } else { FAILED }
        }
        Err(e) => {
            commands::print_run_error(&e);
            FAILED
        }
    }
}
