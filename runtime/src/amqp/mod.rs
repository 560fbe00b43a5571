//! AMQP 0-9-1 (RabbitMQ): the `amqp` source (a queue consumer with manual acknowledgements,
//! feeding the executor live) and the `amqp` sink (a publisher with confirms, called by the
//! writer once per batch). Built like [`crate::kafka`], with acknowledgements per message in
//! place of committed offsets.
//!
//! ```text
//! consumer thread: deliver ─RawInput (routing key, headers, completion)─▶ executor ─▶ writer
//!        ▲  basic.ack (that one delivery tag)                                         │
//!        └────────────── the record's completion, after its sinks and DLQ sync ◀──────┘
//! ```
//!
//! Invariants:
//! - At least once end to end: a message is acknowledged only from its record's completion,
//!   which the writer calls once the record's sink lines and DLQ entries are synced. A crash
//!   or a stop leaves the rest unacknowledged; the server delivers them again (to this or
//!   another consumer), so a record may be written twice but is never skipped. Into an
//!   idempotent sink (a `postgres` upsert by key) that is exactly once.
//! - A sink's batch counts only once the server confirmed every message of it (publisher
//!   confirms; persistent messages, so a confirm means the queues have them on disk).
//! - Nothing is declared: a queue or exchange that is not there stops the run at start
//!   (RT131); the broker operator owns their durability and bindings.
//! - No data and no secret in errors or events: components by name, servers by host, port
//!   and virtual host (never the user or password); routing keys, header values and bodies
//!   never reach a log.
//! - `amqps://` always verifies the server's certificate (see [`tls`]); a failed handshake
//!   stops the run at start with its cause (RT176), unusable TLS settings before it connects
//!   (RT177).
//! - lapin runs its I/O on its own thread and its timers and tasks on [`runtime`], one
//!   shared tokio runtime with one worker; sources and sinks block on it from their threads.

pub mod sink;
pub mod source;
mod tls;

use std::sync::OnceLock;
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use sluice_compiler::plan::amqp::{AmqpTlsPlan, describe_url, server_of_url};
use sluice_compiler::plan::{ComponentKind, Plan};

use crate::error::RunError;
use crate::findings;

/// How long the run waits for the server when it starts.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the plan's sources are AMQP consumers (and the run lasts until stopped).
pub fn consumes(plan: &Plan) -> bool {
    plan.components.iter().any(|c| matches!(&c.kind, ComponentKind::Source(s) if s.amqp.is_some()))
}

/// The tokio runtime lapin's tasks run on (heartbeats, confirms), shared by every AMQP
/// source and sink of the process.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, RunError> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("sluice-amqp")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| RunError::new(findings::INTERNAL, "cannot start the AMQP client's runtime"))
}

/// The URL to connect to: the reference resolved, or the URL as written (no password).
fn resolve_url(component: &str, url: &str) -> Result<String, RunError> {
    if !url.starts_with("${") {
        return Ok(url.to_string());
    }
    let secret = crate::secrets::resolve(url, &format!("the `url` of `{component}`"))?;
    let text = std::str::from_utf8(secret.expose())
        .map_err(|_| {
            RunError::new(findings::AMQP_UNREACHABLE, format!("the `url` of `{component}` is not UTF-8 text"))
        })?
        .trim()
        .to_string();
    if !(text.starts_with("amqp://") || text.starts_with("amqps://")) {
        return Err(RunError::new(
            findings::AMQP_UNREACHABLE,
            format!("the `url` secret of `{component}` ({url}) is not an amqp:// or amqps:// URL"),
        )
        .with_help("set the secret to `amqp://user:password@host:5672/vhost` (`%2f` for the vhost `/`)"));
    }
    Ok(text)
}

/// What went wrong, without the server's reply text or any data: the AMQP reply code and
/// its name, or the I/O error's kind.
pub(crate) fn reason(e: &lapin::Error) -> String {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => format!("AMQP {} {:?}", p.get_id(), p.kind()),
        lapin::ErrorKind::IOError(io) => format!("{:?}", io.kind()),
        lapin::ErrorKind::InvalidChannelState(state, _) => format!("channel {state:?}"),
        lapin::ErrorKind::InvalidConnectionState(state) => format!("connection {state:?}"),
        lapin::ErrorKind::MissingHeartbeatError => "no heartbeat from the server".to_string(),
        lapin::ErrorKind::ParsingError(_) => "a frame the client could not read".to_string(),
        lapin::ErrorKind::InvalidProtocolVersion(_) => "the server speaks another AMQP version".to_string(),
        _ => "client error".to_string(),
    }
}

/// The AMQP reply code of a protocol error (404 NOT_FOUND, 403 ACCESS_REFUSED...).
pub(crate) fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => Some(p.get_id()),
        _ => None,
    }
}

/// Opens a connection for `component` (RT130 when it cannot, within [`CONNECT_TIMEOUT`];
/// RT176 when the TLS handshake fails, RT177 when `tls` cannot be used). Returns the
/// connection and the server's description (for messages).
pub(crate) fn connect(component: &str, url: &str, tls: Option<&AmqpTlsPlan>) -> Result<(Connection, String), RunError> {
    let server = describe_url(url);
    let target = resolve_url(component, url)?;
    let shown = describe_url(&target);
    let tls_config = tls::config(component, tls, &target)?;
    let client_cert = tls_config.identity.is_some();
    let properties = ConnectionProperties::default().with_connection_name(format!("sluice-{component}").into());
    let rt = runtime()?;
    let attempt = rt.block_on(async {
        let runtime = lapin::runtime::default_runtime()?;
        let connecting = lapin::Connect::connect_with_config(target.as_str(), properties, tls_config, runtime);
        Ok::<_, lapin::Error>(tokio::time::timeout(CONNECT_TIMEOUT, connecting).await)
    });
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(e) => Ok(Err(e)),
    };
    let unreachable = |why: String| {
        RunError::new(
            findings::AMQP_UNREACHABLE,
            format!("`{component}`: cannot connect to the AMQP server {shown}: {why}"),
        )
        .with_help("check that the server runs, and the `url` (host, port, virtual host, user and password)")
    };
    match attempt {
        Err(_) => Err(unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
        Ok(Err(e)) if reply_code(&e) == Some(403) || matches!(e.kind(), lapin::ErrorKind::AuthProviderError(_)) => {
            Err(RunError::new(
                findings::AMQP_UNREACHABLE,
                format!("`{component}`: the AMQP server {shown} refused the login (or the virtual host)"),
            )
            .with_help(format!(
                "check the user name and password in {server}, and the user's access to the virtual host"
            )))
        }
        Ok(Err(e)) => {
            match tls::failure(&e, server_of_url(&target).map_or("", |s| s.host), client_cert)
                .filter(|_| target.starts_with("amqps://"))
            {
                Some(failure) => Err(RunError::new(
                    findings::AMQP_TLS_HANDSHAKE,
                    format!("`{component}`: TLS handshake with the AMQP server {shown} failed: {}", failure.cause),
                )
                .with_help(failure.help)),
                None => Err(unreachable(reason(&e))),
            }
        }
        Ok(Ok(conn)) => Ok((conn, shown)),
    }
}

/// RT131 for a queue or exchange the server does not have (404) or refuses (403).
pub(crate) fn not_found(component: &str, what: &str, name: &str, server: &str, e: &lapin::Error) -> RunError {
    match reply_code(e) {
        Some(404) => RunError::new(
            findings::AMQP_NOT_FOUND,
            format!("`{component}`: {what} `{name}` does not exist on {server}"),
        )
        .with_help(format!("declare the {what} first (Sluice does not declare queues or exchanges), or fix its name")),
        Some(403) => RunError::new(
            findings::AMQP_NOT_FOUND,
            format!("`{component}`: the user may not use {what} `{name}` on {server}"),
        )
        .with_help("grant the user configure/read/write permissions that match the name"),
        _ => RunError::new(
            findings::AMQP_UNREACHABLE,
            format!("`{component}`: cannot check {what} `{name}` on {server}: {}", reason(e)),
        )
        .with_help("check that the server runs and the connection is allowed"),
    }
}
