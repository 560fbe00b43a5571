//! The MLLP source: a tokio listener whose connections feed the executor's live [`Feed`], and
//! send back an HL7 ACK for every frame.
//!
//! ```text
//! tokio thread: accept ─▶ connection task (framer, ACKs) ─RawInput─▶ executor reader ─▶ CPU ─▶ writer
//!                                 ▲                                                           │
//!                                 └──────────── Delivery (on_commit, after sync_data) ◀───────┘
//! ```
//!
//! Modules: [`conn`] serves one connection; [`tls`] loads the certificate and key.
//!
//! Invariants:
//! - Every frame, truncated frame, oversize frame and run of garbage is one record: it reaches
//!   the sink or the DLQ through the executor, so the run balances.
//! - `on_commit`: a frame's ACK is written only after the writer has synced the record's sink
//!   lines or DLQ entry to disk. `on_receipt`: as soon as it is framed and parsed.
//! - Nothing blocks forever: reads time out after `idle_timeout`; frames are bounded by
//!   `max_frame_bytes` (the framer never holds more); connections beyond `max_connections` wait
//!   to be accepted.
//! - Shutdown (SIGINT, SIGTERM): stop accepting, stop reading, let in-flight records finish and
//!   their ACKs leave, close connections; then the feed ends, the executor drains and writes its
//!   summary. The run then ends normally (exit 0 when balanced).
//! - No data values in errors or events: peers are named by address and connection number.

pub mod conn;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_compiler::plan::{ComponentKind, MllpPlan, Plan};
use sluice_hl7v2::ack::AckMode;
use sluice_hl7v2::charset::CharsetPolicy;
use tokio::sync::{Semaphore, watch};

use crate::compile::Compiled;
use crate::error::RunError;
use crate::executor::{self, Feed, RawInput, Totals};
use crate::findings;
use crate::source::Profile;
use crate::time::Clock;

/// Something a running listener reports (for the CLI to print; the runtime prints nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenEvent {
    /// The source is accepting connections on this address (the real port when `listen` said 0).
    Listening { source: String, address: SocketAddr },
    /// A shutdown signal arrived: no new connections; in-flight records are being finished.
    Stopping { signal: &'static str },
    /// A `kafka` source joined its consumer group and subscribed to its topics.
    Consuming { source: String, topics: Vec<String>, group: String },
    /// An `amqp` source started consuming its queue.
    ConsumingQueue { source: String, queue: String },
}

/// The plan's MLLP sources, most urgent `priority` first (plan order among equals): their
/// component indexes and settings.
pub fn listeners_of(plan: &Plan) -> Vec<(usize, &MllpPlan)> {
    let mut listeners: Vec<(usize, &MllpPlan)> = plan
        .components
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.kind {
            ComponentKind::Source(s) => s.mllp.as_deref().map(|m| (i, m)),
            _ => None,
        })
        .collect();
    listeners.sort_by_key(|(_, m)| priority_rank(&m.priority));
    listeners
}

/// Whether the plan's sources listen (and the run lasts until stopped).
pub fn listens(plan: &Plan) -> bool {
    !listeners_of(plan).is_empty()
}

/// 0 for the most urgent priority (`spec::shape::PRIORITIES` order).
fn priority_rank(priority: &str) -> usize {
    sluice_compiler::spec::shape::PRIORITIES.iter().position(|p| *p == priority).unwrap_or(1)
}

/// What every connection task shares.
pub(crate) struct Shared {
    pub source: usize,
    pub profile: Profile,
    pub policy: CharsetPolicy,
    pub mode: AckMode,
    pub on_commit: bool,
    pub max_frame_bytes: usize,
    pub idle: std::time::Duration,
    pub clock: Clock,
    pub run_id: String,
}

fn resolve_listen(text: &str) -> Option<SocketAddr> {
    match text.strip_prefix("localhost:") {
        Some(port) => port.parse::<u16>().ok().map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
        None => text.parse().ok(),
    }
}

/// One source's bound socket, with what its connections share.
struct Listener {
    name: String,
    socket: std::net::TcpListener,
    local: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    max_connections: usize,
    tx: crossbeam_channel::Sender<RawInput>,
}

/// Binds one MLLP source (before anything starts, so a taken port fails the run at once).
fn bind(
    c: &Compiled<'_>,
    source: usize,
    plan: &MllpPlan,
    clock: &Clock,
    run_id: &str,
) -> Result<(Listener, crossbeam_channel::Receiver<RawInput>), RunError> {
    let name = c.plan.components[source].name.clone();
    let ComponentKind::Source(sp) = &c.plan.components[source].kind else {
        return Err(RunError::new(findings::PLAN_INVALID, "the mllp component is not a source"));
    };
    let listen_err = |what: String| RunError::new(findings::LISTEN, format!("source `{name}`: {what}"));
    let acceptor = plan.tls.as_ref().map(|t| tls::acceptor(&name, t)).transpose()?;
    let addr =
        resolve_listen(&plan.listen).ok_or_else(|| listen_err(format!("`{}` is not an address", plan.listen)))?;
    let socket = std::net::TcpListener::bind(addr)
        .map_err(|e| listen_err(format!("cannot listen on {addr}: {}", e.kind())))
        .map_err(|e| e.with_help("pick a free port, or stop the process using it"))?;
    socket.set_nonblocking(true).map_err(|e| listen_err(format!("cannot set up the socket: {}", e.kind())))?;
    let local = socket.local_addr().map_err(|e| listen_err(format!("cannot read the address: {}", e.kind())))?;
    let shared = Arc::new(Shared {
        source,
        profile: Profile::new(&sp.profile),
        policy: CharsetPolicy::from_name(&sp.profile.encoding).unwrap_or_default(),
        mode: AckMode::parse(&plan.ack_mode).unwrap_or_default(),
        on_commit: plan.ack_timing != "on_receipt",
        max_frame_bytes: usize::try_from(plan.max_frame_bytes).unwrap_or(usize::MAX),
        idle: std::time::Duration::from_millis(plan.idle_timeout_ms.max(1)),
        clock: clock.clone(),
        run_id: run_id.to_string(),
    });
    let max_connections = usize::try_from(plan.max_connections).unwrap_or(usize::MAX).clamp(1, Semaphore::MAX_PERMITS);
    // Bounded, one channel per source: a slow pipeline slows that source's connections down
    // instead of filling memory, and the executor picks from the most urgent channel first.
    let (tx, rx) = crossbeam_channel::bounded::<RawInput>(1024);
    Ok((Listener { name, socket, local, acceptor, shared, max_connections, tx }, rx))
}

/// Runs the pipeline fed by its MLLP sources until SIGINT or SIGTERM (or until the executor
/// stops on an error), then drains and returns the totals.
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    events: Option<std::sync::mpsc::Sender<ListenEvent>>,
    progress: Option<Arc<crate::progress::Progress>>,
) -> Result<Totals, RunError> {
    let sources = listeners_of(c.plan);
    if sources.is_empty() {
        return Err(RunError::new(findings::PLAN_INVALID, "the plan has no mllp source"));
    }
    let mut listeners = Vec::with_capacity(sources.len());
    let mut feeds = Vec::with_capacity(sources.len());
    for (source, plan) in sources {
        let (listener, rx) = bind(c, source, plan, clock, run_id)?;
        listeners.push(listener);
        feeds.push(rx);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| RunError::new(findings::LISTEN, format!("cannot start the network runtime: {}", e.kind())))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let net = std::thread::Builder::new()
        .name("sluice-mllp".into())
        .spawn(move || runtime.block_on(supervise(listeners, stop_rx, events)))
        .map_err(|_| RunError::new(findings::INTERNAL, "cannot start the listener thread"))?;
    let control = executor::RunControl { progress, ..Default::default() };
    let totals = executor::execute(c, clock, run_id, threads, Feed::Live(feeds), control);
    // The executor ends when every sender is gone (after a signal), or on an error: then stop
    // the listeners too.
    let _ = stop_tx.send(true);
    let accepted = net.join().map_err(|_| RunError::new(findings::INTERNAL, "the listener thread failed"))?;
    let totals = totals?;
    accepted?;
    Ok(totals)
}

/// Serves every listener until a signal, the executor's stop, or a listener's failure; then
/// closes them all and waits for their connections to finish.
async fn supervise(
    listeners: Vec<Listener>,
    mut stop: watch::Receiver<bool>,
    events: Option<std::sync::mpsc::Sender<ListenEvent>>,
) -> Result<(), RunError> {
    let notify = |e: ListenEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    // The handlers are installed here, before we say we listen: a signal right after is caught.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let (halt_tx, halt_rx) = watch::channel(false);
    let mut loops = tokio::task::JoinSet::new();
    for l in listeners {
        notify(ListenEvent::Listening { source: l.name.clone(), address: l.local });
        loops.spawn(accept_loop(l, halt_rx.clone()));
    }
    let mut failure = None;
    tokio::select! {
        s = &mut signal => notify(ListenEvent::Stopping { signal: s }),
        _ = stop.changed() => {}
        // Only a listener that fails ends before the halt.
        Some(r) = loops.join_next() => failure = accept_failure(r),
    }
    let _ = halt_tx.send(true);
    while let Some(r) = loops.join_next().await {
        failure = failure.or(accept_failure(r));
    }
    failure.map_or(Ok(()), Err)
}

fn accept_failure(joined: Result<Result<(), RunError>, tokio::task::JoinError>) -> Option<RunError> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(RunError::new(findings::INTERNAL, "a listener task failed")),
    }
}

/// Installs the SIGINT and SIGTERM handlers at once, and returns a future that resolves with
/// the name of the first of them to arrive. The handlers exist from the call on, before the
/// future is first polled: a caller that announces "listening" after calling this never lets
/// a signal fall through to the default action (dying without a summary). Call it inside the
/// tokio runtime.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = &'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
        async move {
            match handlers {
                (Ok(mut int), Ok(mut term)) => tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                },
                _ => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Accepts one source's connections until `halt`, then closes them and waits for each to
/// finish its in-flight records.
async fn accept_loop(l: Listener, mut halt: watch::Receiver<bool>) -> Result<(), RunError> {
    let Listener { name, socket, acceptor, shared, max_connections, tx, .. } = l;
    let listener = tokio::net::TcpListener::from_std(socket)
        .map_err(|e| RunError::new(findings::LISTEN, format!("source `{name}`: cannot listen: {}", e.kind())))?;
    let (close_tx, close_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut tasks = tokio::task::JoinSet::new();
    let mut number = 0u64;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = halt.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = halt.changed() => break,
        };
        while tasks.try_join_next().is_some() {}
        let (socket, peer) = match accepted {
            Ok(a) => a,
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        number += 1;
        let _ = socket.set_nodelay(true);
        let label: Arc<str> = Arc::from(format!("{peer}/conn{number}"));
        let (shared, tx, close) = (Arc::clone(&shared), tx.clone(), close_rx.clone());
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => conn::serve(socket, label, shared, tx, close).await,
                Some(a) => {
                    let idle = shared.idle;
                    if let Ok(Ok(stream)) = tokio::time::timeout(idle, a.accept(socket)).await {
                        conn::serve(stream, label, shared, tx, close).await;
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = close_tx.send(true);
    drop(tx);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
