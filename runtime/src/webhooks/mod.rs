//! `sluice serve`: the `webhook` sources of a pipeline as HTTP endpoints (axum on hyper and
//! tokio, TLS by rustls when given a certificate), each delivery verified on its raw bytes,
//! made durable in the state store's queue, answered, then processed into the pipeline.
//!
//! ```text
//! tokio: accept ─▶ http (limits, verify, split) ─▶ Store::enqueue_webhook ─▶ 200
//!                        │ refusal (4xx): RawInput with a problem, no bytes ─────────┐
//! feeder thread: queued rows ─RawInput─▶ executor reader ─▶ CPU ─▶ writer ─▶ sinks/DLQ/audit
//! marker thread: ◀── Completion (after sync) ── row `processed`, body dropped ◀──────┘
//! ```
//!
//! Modules: [`http`] serves requests; [`verify`] and [`plaid`] check signatures; [`event`]
//! cuts verified bodies into events and reads queued ones into records.
//!
//! Invariants:
//! - A delivery is answered 200 only after its events are committed to the queue; a crash
//!   (even `kill -9`) after that loses nothing: the next `sluice serve` feeds every row still
//!   `queued`. Records reach the sinks at least once, and the queue deduplicates deliveries by
//!   event id (a redelivery is answered 200 and inserts nothing).
//! - Nothing parses a body before its signature verified; a refused delivery (4xx) reaches the
//!   DLQ and the audit log as a record with a reason and no bytes.
//! - No payload, header value or secret reaches stderr, an error, the DLQ reason or the audit.
//! - Queued bodies are encrypted at rest under the current key of the DLQ's `encryption_key`
//!   ([`queue_seal`], [`crate::state::webhooks::BodySeal`]); without a key `sluice serve`
//!   refuses to start (RT045), unless the DLQ declares `plaintext_reason` (synthetic or test
//!   data: then the queue keeps plain text too, and says so on start). Rows an older Sluice
//!   left in plain text are sealed before anything listens.
//! - Shutdown (SIGINT, SIGTERM): stop accepting, finish the requests in flight, stop feeding;
//!   the records in flight finish and are marked processed; the rest stay queued for the next
//!   start.

pub mod event;
pub mod http;
pub mod plaid;
pub mod verify;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_compiler::plan::webhook::WebhookSourcePlan;
use sluice_compiler::plan::{ComponentKind, Plan, TlsPlan};
use tokio::sync::watch;

use crate::compile::Compiled;
use crate::error::RunError;
use crate::executor::{self, Completion, Feed, RawInput, Totals};
use crate::findings;
use crate::keys::KeyRing;
use crate::state::Store;
use crate::state::webhooks::BodySeal;
use crate::time::Clock;

/// How `sluice serve` listens.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `ip:port` (port 0: any free port).
    pub listen: String,
    /// The certificate chain (PEM file) and a secret reference to the private key.
    pub tls: Option<TlsPlan>,
}

/// Something `sluice serve` reports (for the CLI to print; never data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeEvent {
    /// Events left queued by an earlier process are being processed.
    Recovered { events: u64 },
    /// Serving; one line per endpoint: (source, provider, path).
    Listening { address: SocketAddr, tls: bool, endpoints: Vec<(String, String, String)> },
    /// A shutdown signal arrived.
    Stopping { signal: &'static str },
    /// Queued bodies are kept in plain text (the DLQ's `plaintext_reason`).
    Unencrypted,
    /// Queued bodies an older Sluice kept in plain text (or sealed under an earlier key) were
    /// re-encrypted under the current key before serving.
    Sealed { events: u64 },
}

/// How the queue of `plan` keeps bodies: sealed under the DLQ's `encryption_key` ring, or in
/// plain text when the DLQ declares `plaintext_reason`; with neither, an error (RT045) saying
/// how to set a key. Checked before anything else, so the refusal names the webhook queue.
pub fn queue_seal(plan: &Plan) -> Result<BodySeal, RunError> {
    let dlq = plan.dlq.as_ref();
    match (dlq.and_then(|d| d.encryption_key.as_ref()), dlq.and_then(|d| d.plaintext_reason.as_ref())) {
        (Some(reference), _) => {
            let ring = KeyRing::resolve(reference, "the DLQ's `encryption_key`")?;
            Ok(BodySeal::Keys { ring, reference: reference.clone() })
        }
        (None, Some(_)) => Ok(BodySeal::Plain),
        (None, None) => Err(RunError::new(
            findings::WEBHOOK_UNENCRYPTED,
            format!(
                "pipeline `{}` would keep webhook bodies, which hold customer and patient data, unencrypted in its state store",
                plan.pipeline
            ),
        )
        .with_help(
            "add `encryption_key: ${SLUICE_DLQ_KEY}` (or `${file:dlq.key}`) to `dlq`, with 32 random bytes as 64 hex \
             digits (`openssl rand -hex 32`): it encrypts the queued webhook bodies and the DLQ",
        )),
    }
}

/// The plan's webhook sources: component index and settings.
pub fn endpoints_of(plan: &Plan) -> Vec<(usize, &WebhookSourcePlan)> {
    plan.components
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.kind {
            ComponentKind::Source(s) => s.webhook.as_deref().map(|w| (i, w)),
            _ => None,
        })
        .collect()
}

/// Whether the plan's sources are webhook endpoints (served by `sluice serve`).
pub fn serves(plan: &Plan) -> bool {
    !endpoints_of(plan).is_empty()
}

fn serve_error(message: impl Into<String>) -> RunError {
    RunError::new(findings::WEBHOOK_SERVE, message)
}

/// The lock name of the queue: the pipeline's own lock stays free for other commands
/// (`sluice keys rotate` takes both).
pub(crate) fn queue_lock(pipeline: &str) -> String {
    format!("{pipeline}#webhooks")
}

/// Runs the pipeline fed by its webhook endpoints until SIGINT or SIGTERM (or until the
/// executor stops on an error), then drains and returns the totals. `seal` is how the queue
/// keeps bodies ([`queue_seal`]).
#[allow(clippy::too_many_arguments)]
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    options: &ServeOptions,
    seal: BodySeal,
    events: Option<std::sync::mpsc::Sender<ServeEvent>>,
    progress: Option<Arc<crate::progress::Progress>>,
) -> Result<Totals, RunError> {
    let plan = c.plan;
    if !serves(plan) {
        return Err(serve_error(format!("pipeline `{}` has no webhook source", plan.pipeline))
            .with_help("`sluice serve` serves `type: webhook` sources; run other pipelines with `sluice run`"));
    }
    let target = plan.state.as_ref().ok_or_else(|| {
        serve_error(format!("pipeline `{}` has no state store for its webhook queue", plan.pipeline))
            .with_help("add `state: {path: state/webhooks.db}`")
    })?;
    let store = Arc::new(Store::open(target, Some(&queue_lock(&plan.pipeline)))?);
    store.prepare_webhooks()?;
    let seal = Arc::new(seal);
    let sealed = store.reseal_webhooks(&plan.pipeline, &seal)?;
    let (queued, _) = store.webhook_counts(&plan.pipeline)?;
    let (tx, rx) = crossbeam_channel::bounded::<RawInput>(1024);
    let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
    let app = http::App::new(c, clock.clone(), Arc::clone(&store), Arc::clone(&seal), tx.clone(), wake_tx)?;
    let acceptor = options.tls.as_ref().map(|t| crate::mllp::tls::acceptor("serve", t)).transpose()?;
    let addr: SocketAddr = options.listen.parse().map_err(|_| {
        serve_error(format!("`{}` is not an address to listen on", options.listen))
            .with_help("write `ip:port`, e.g. `--listen 127.0.0.1:8443` (port 0: any free port)")
    })?;
    let socket = std::net::TcpListener::bind(addr).map_err(|e| {
        serve_error(format!("cannot listen on {addr}: {}", e.kind()))
            .with_help("pick a free port, or stop the process using it")
    })?;
    socket.set_nonblocking(true).map_err(|e| serve_error(format!("cannot set up the socket: {}", e.kind())))?;
    let local = socket.local_addr().map_err(|e| serve_error(format!("cannot read the address: {}", e.kind())))?;
    let notify = move |e: ServeEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    if matches!(*seal, BodySeal::Plain) {
        notify(ServeEvent::Unencrypted);
    }
    if sealed > 0 {
        notify(ServeEvent::Sealed { events: sealed });
    }
    if queued > 0 {
        notify(ServeEvent::Recovered { events: queued });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| serve_error(format!("cannot start the network runtime: {}", e.kind())))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let feeding = Arc::new(AtomicBool::new(true));
    let listening = ServeEvent::Listening {
        address: local,
        tls: acceptor.is_some(),
        endpoints: endpoints_of(plan)
            .iter()
            .map(|(i, w)| (plan.components[*i].name.clone(), w.provider.clone(), w.path.clone()))
            .collect(),
    };
    let net = {
        let feeding = Arc::clone(&feeding);
        std::thread::Builder::new()
            .name("sluice-serve".into())
            .spawn(move || {
                runtime.block_on(http::run(app, socket, acceptor, stop_rx, listening, notify));
                feeding.store(false, Ordering::SeqCst);
            })
            .map_err(|_| RunError::new(findings::INTERNAL, "cannot start the server thread"))?
    };
    // Marks rows processed once the writer made their records durable.
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<i64>();
    let marker = {
        let (store, clock) = (Arc::clone(&store), clock.clone());
        std::thread::Builder::new()
            .name("sluice-serve-marker".into())
            .spawn(move || mark_processed(&store, &clock, &done_rx))
            .map_err(|_| RunError::new(findings::INTERNAL, "cannot start the queue thread"))?
    };
    let feeder = {
        let (store, feeding) = (Arc::clone(&store), Arc::clone(&feeding));
        let sources: Vec<(String, usize)> =
            endpoints_of(plan).iter().map(|(i, _)| (plan.components[*i].name.clone(), *i)).collect();
        let pipeline = plan.pipeline.clone();
        std::thread::Builder::new()
            .name("sluice-serve-feeder".into())
            .spawn(move || feed(&store, &seal, &pipeline, &sources, &feeding, &wake_rx, &tx, &done_tx))
            .map_err(|_| RunError::new(findings::INTERNAL, "cannot start the queue thread"))?
    };
    let control = executor::RunControl { progress, ..Default::default() };
    let totals = executor::execute(c, clock, run_id, threads, Feed::Live(vec![rx]), control);
    // The executor ends once the server and the feeder are gone (after a signal), or on an
    // error: then stop them too.
    let _ = stop_tx.send(true);
    feeding.store(false, Ordering::SeqCst);
    let served = net.join().map_err(|_| RunError::new(findings::INTERNAL, "the server thread failed"));
    let fed = feeder.join().map_err(|_| RunError::new(findings::INTERNAL, "the queue thread failed"));
    let marked = marker.join().map_err(|_| RunError::new(findings::INTERNAL, "the queue thread failed"));
    let totals = totals?;
    served?;
    fed??;
    marked??;
    Ok(totals)
}

/// Feeds queued rows to the executor, oldest first, until `feeding` goes false; woken by each
/// accepted delivery, and looks again every half second anyway.
#[allow(clippy::too_many_arguments)]
fn feed(
    store: &Store,
    seal: &BodySeal,
    pipeline: &str,
    sources: &[(String, usize)],
    feeding: &AtomicBool,
    wake: &crossbeam_channel::Receiver<()>,
    tx: &crossbeam_channel::Sender<RawInput>,
    done: &crossbeam_channel::Sender<i64>,
) -> Result<(), RunError> {
    let queue: Arc<str> = Arc::from("webhook-queue");
    let mut after = 0;
    while feeding.load(Ordering::SeqCst) {
        let rows = store.queued_webhooks(pipeline, after, 256, seal)?;
        if rows.is_empty() {
            let _ = wake.recv_timeout(Duration::from_millis(500));
            continue;
        }
        for row in rows {
            after = row.id;
            // A row of a source the pipeline no longer has stays queued (its source may come back).
            let Some(&(_, source)) = sources.iter().find(|(name, _)| *name == row.source) else { continue };
            let done = done.clone();
            let id = row.id;
            let raw = RawInput {
                source,
                file: Arc::clone(&queue),
                offset: u64::try_from(id).unwrap_or_default(),
                index: u64::try_from(id).unwrap_or_default(),
                seq: 0,
                // A body that does not open is fed empty: unreadable, to the DLQ (RT043).
                bytes: row.body.map(String::into_bytes).unwrap_or_default(),
                problem: None,
                completion: Some(Completion::new(move |_| {
                    let _ = done.send(id);
                })),
                bus: None,
            };
            if tx.send(raw).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Marks processed the rows whose records are durable, in batches, until every completion is
/// gone (the executor ended).
fn mark_processed(store: &Store, clock: &Clock, done: &crossbeam_channel::Receiver<i64>) -> Result<(), RunError> {
    while let Ok(first) = done.recv() {
        let mut ids = vec![first];
        ids.extend(done.try_iter().take(1023));
        store.webhooks_processed(&ids, &clock.now())?;
    }
    Ok(())
}
