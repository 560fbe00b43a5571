//! The HTTP side of `sluice serve`: one axum router whose endpoints are the pipeline's webhook
//! sources, served over hyper's HTTP/1.1 on tokio, each connection behind TLS when configured.
//!
//! A request goes: endpoint by path (404), `POST` only (405), rate limit (429), size limit from
//! `Content-Length` and while reading (413), verification on the raw bytes (400, 401; 503 when
//! Plaid's key cannot be fetched), split into events (400), committed to the queue (503 if the
//! store fails), answered `200 {"accepted": n, "duplicates": m}`.
//!
//! Invariants:
//! - Each refusal but 404, 405 and 429 (which read nothing of the body) is audited: a record
//!   with the refusal as its problem and no bytes goes to the executor, hence to the DLQ and the
//!   audit chain, written by the writer thread like every other record.
//! - Blocking work (the store, Plaid's key endpoint) runs on blocking threads, never on the
//!   runtime's workers.
//! - Requests in flight at shutdown finish (graceful HTTP/1.1 shutdown); nothing is accepted
//!   after.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use sluice_compiler::plan::webhook::WebhookSourcePlan;
use tokio::sync::watch;

use super::event;
use super::plaid;
use super::verify::{self, Refusal};
use super::{ServeEvent, endpoints_of};
use crate::compile::Compiled;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::executor::RawInput;
use crate::findings;
use crate::secrets::{self, Secret};
use crate::state::Store;
use crate::state::webhooks::{BodySeal, NewEvent};
use crate::time::Clock;

/// How a source verifies its deliveries.
enum Verifier {
    Stripe(Secret),
    QuickBooks(Secret),
    Plaid(Arc<plaid::Keys>),
    Authorization(Secret),
}

/// A token bucket: `rate` deliveries per `per` (bursts up to `rate`).
struct Bucket {
    capacity: f64,
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: u64, per_secs: u64) -> Bucket {
        let capacity = rate.max(1) as f64;
        Bucket { capacity, per_sec: capacity / per_secs.max(1) as f64, state: Mutex::new((capacity, Instant::now())) }
    }

    fn take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.per_sec).min(self.capacity);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Endpoint {
    source: usize,
    name: String,
    plan: WebhookSourcePlan,
    verifier: Verifier,
    bucket: Bucket,
    /// Refused deliveries of this source, numbering their DLQ records.
    refused: AtomicU64,
}

/// What every request shares.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    pipeline: String,
    endpoints: HashMap<String, Endpoint>,
    clock: Clock,
    store: Arc<Store>,
    seal: Arc<BodySeal>,
    tx: crossbeam_channel::Sender<RawInput>,
    wake: crossbeam_channel::Sender<()>,
}

impl App {
    /// The endpoints of the plan, their secrets resolved (before anything listens).
    pub fn new(
        c: &Compiled<'_>,
        clock: Clock,
        store: Arc<Store>,
        seal: Arc<BodySeal>,
        tx: crossbeam_channel::Sender<RawInput>,
        wake: crossbeam_channel::Sender<()>,
    ) -> Result<App, RunError> {
        let mut endpoints = HashMap::new();
        for (source, w) in endpoints_of(c.plan) {
            let name = c.plan.components[source].name.clone();
            let secret = |reference: &Option<String>, what: &str| -> Result<Secret, RunError> {
                let reference = reference
                    .as_deref()
                    .ok_or_else(|| RunError::new(findings::PLAN_INVALID, format!("source `{name}` has no {what}")))?;
                secrets::resolve(reference, &format!("the {what} of source `{name}`"))
            };
            let verifier = match w.provider.as_str() {
                "stripe" => Verifier::Stripe(secret(&w.secret, "signing secret")?),
                "quickbooks" => Verifier::QuickBooks(secret(&w.secret, "verifier token")?),
                "plaid" => {
                    let text = |s: Secret, what: &str| {
                        String::from_utf8(s.expose().to_vec()).map_err(|_| {
                            RunError::new(
                                findings::SECRET_MISSING,
                                format!("the {what} of source `{name}` is not text"),
                            )
                        })
                    };
                    let key_url = w.key_url.clone().ok_or_else(|| {
                        RunError::new(findings::PLAN_INVALID, format!("source `{name}` has no key_url"))
                    })?;
                    let client_id = text(secret(&w.client_id, "Plaid client id")?, "Plaid client id")?;
                    let api_secret = text(secret(&w.secret, "Plaid secret")?, "Plaid secret")?;
                    Verifier::Plaid(Arc::new(plaid::Keys::new(key_url, client_id, api_secret)))
                }
                _ => Verifier::Authorization(secret(&w.secret, "Authorization value")?),
            };
            endpoints.insert(
                w.path.clone(),
                Endpoint {
                    source,
                    name,
                    plan: w.clone(),
                    verifier,
                    bucket: Bucket::new(w.rate, w.rate_per_secs),
                    refused: AtomicU64::new(0),
                },
            );
        }
        Ok(App(Arc::new(Inner { pipeline: c.plan.pipeline.clone(), endpoints, clock, store, seal, tx, wake })))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn answer(status: u16, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Sends a refusal to the executor as a record with no bytes (DLQ and audit), and answers it.
async fn refuse(app: &App, e: &Endpoint, r: Refusal) -> Response {
    let n = e.refused.fetch_add(1, Ordering::Relaxed);
    let raw = RawInput {
        source: e.source,
        file: Arc::from(format!("refused {}", e.plan.path)),
        offset: 0,
        index: n,
        seq: 0,
        bytes: Vec::new(),
        problem: Some(Rejection::single(
            findings::WEBHOOK_REFUSED,
            None,
            format!("{} delivery refused ({}): {}", e.plan.provider, r.status, r.reason),
        )),
        completion: None,
        bus: None,
    };
    let tx = app.0.tx.clone();
    // A closed channel means the executor stopped: the run is ending anyway.
    let _ = tokio::task::spawn_blocking(move || tx.send(raw).is_ok()).await;
    tracing::warn!(source = %e.name, status = r.status, "webhook delivery refused");
    answer(r.status, serde_json::json!({"error": r.reason}))
}

fn header_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// Every request: routed by path to its endpoint.
async fn handle(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(e) = app.0.endpoints.get(parts.uri.path()) else {
        return answer(404, serde_json::json!({"error": "no webhook endpoint at this path"}));
    };
    if parts.method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")], "").into_response();
    }
    if !e.bucket.take() {
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "").into_response();
    }
    let max = usize::try_from(e.plan.max_body).unwrap_or(usize::MAX);
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > e.plan.max_body) {
        return refuse(&app, e, Refusal::new(413, "the body is larger than `max_body`")).await;
    }
    let bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(_) => return refuse(&app, e, Refusal::new(413, "the body is larger than `max_body`")).await,
    };
    let now = unix_now();
    let tolerance = i64::try_from(e.plan.tolerance_ms / 1000).unwrap_or(i64::MAX);
    let headers = &parts.headers;
    let verified: Result<Option<i64>, Refusal> = match &e.verifier {
        Verifier::Stripe(s) => {
            verify::stripe(header_bytes(headers, "stripe-signature"), &bytes, s.expose(), now, tolerance).map(|()| None)
        }
        Verifier::QuickBooks(s) => {
            verify::quickbooks(header_bytes(headers, "intuit-signature"), &bytes, s.expose()).map(|()| None)
        }
        Verifier::Authorization(s) => {
            verify::fhir_subscription(header_bytes(headers, "authorization"), s.expose()).map(|()| None)
        }
        Verifier::Plaid(keys) => {
            let (keys, token, body) =
                (Arc::clone(keys), header_bytes(headers, "plaid-verification").map(<[u8]>::to_vec), bytes.clone());
            tokio::task::spawn_blocking(move || keys.verify(token.as_deref(), &body, now, tolerance))
                .await
                .unwrap_or_else(|_| Err(Refusal::new(500, "verification failed")))
                .map(Some)
        }
    };
    let signed_at = match verified {
        Ok(t) => t,
        Err(r) => return refuse(&app, e, r).await,
    };
    let received_at = app.0.clock.now();
    let events = match event::split(&e.plan, &bytes, signed_at, &received_at) {
        Ok(events) => events,
        Err(r) => return refuse(&app, e, r).await,
    };
    let accepted = {
        let (app, source, provider) = (app.clone(), e.name.clone(), e.plan.provider.clone());
        tokio::task::spawn_blocking(move || {
            let bodies: Vec<(String, Option<String>)> = events
                .iter()
                .map(|q| {
                    let body = String::from_utf8_lossy(&q.bytes).into_owned();
                    let account = q.sync.then(|| sync_account(&q.bytes)).flatten();
                    (body, account)
                })
                .collect();
            let rows: Vec<NewEvent<'_>> = events
                .iter()
                .zip(&bodies)
                .map(|(q, (body, account))| NewEvent {
                    event_id: &q.event_id,
                    event_type: &q.event_type,
                    body,
                    sync: q.sync.then_some(account.as_deref()),
                })
                .collect();
            let new =
                app.0.store.enqueue_webhook(&app.0.pipeline, &source, &provider, &received_at, &app.0.seal, &rows)?;
            Ok::<_, RunError>((new, rows.len() - new))
        })
        .await
    };
    match accepted {
        Ok(Ok((new, duplicates))) => {
            let _ = app.0.wake.try_send(());
            answer(200, serde_json::json!({"accepted": new, "duplicates": duplicates}))
        }
        Ok(Err(err)) => {
            tracing::error!(source = %e.name, code = err.code, "webhook queue unavailable");
            answer(503, serde_json::json!({"error": "the queue is unavailable; retry later"}))
        }
        Err(_) => answer(500, serde_json::json!({"error": "internal error"})),
    }
}

/// The account a sync request names (Plaid's item, a FHIR subscription), from its record.
fn sync_account(queued: &[u8]) -> Option<String> {
    let d = event::decode(queued).ok()?;
    let crate::record::Doc::Obj(fields) = d.doc else { return None };
    fields.into_iter().find(|(k, _)| k == "account").and_then(|(_, v)| match v {
        crate::record::Doc::Str(s) => Some(s),
        _ => None,
    })
}

/// Serves until `stop` (or a signal), then finishes the requests in flight.
pub async fn run(
    app: App,
    socket: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    listening: ServeEvent,
    notify: impl Fn(ServeEvent),
) {
    // The handlers are installed here, before `listening` is announced: a signal right after
    // it stops the server gracefully instead of killing the process.
    let signal = crate::mllp::shutdown_signal();
    tokio::pin!(signal);
    let Ok(listener) = tokio::net::TcpListener::from_std(socket) else { return };
    let router = axum::Router::new().fallback(handle).with_state(app);
    notify(listening);
    let (close_tx, close_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            s = &mut signal => {
                notify(ServeEvent::Stopping { signal: s });
                break;
            }
            _ = stop.changed() => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok((tcp, _peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (acceptor, close) = (acceptor.clone(), close_rx.clone());
        connections.spawn(async move {
            match acceptor {
                None => serve_connection(tcp, service, close).await,
                Some(a) => {
                    if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), a.accept(tcp)).await {
                        serve_connection(tls, service, close).await;
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = close_tx.send(true);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S>(stream: S, service: TowerToHyperService<axum::Router>, mut close: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = close.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The address a test or the CLI connects to, when `listen` said port 0.
pub fn shown(address: &SocketAddr, tls: bool) -> String {
    format!("{}://{address}", if tls { "https" } else { "http" })
}
