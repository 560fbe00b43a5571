//! Kafka: the `kafka` source (a consumer group member feeding the executor live) and the
//! `kafka` sink (an idempotent producer called by the writer once per batch).
//!
//! ```text
//! consumer thread: poll ─RawInput (key, headers, completion)─▶ executor reader ─▶ CPU ─▶ writer
//!        ▲  commit (per partition, up to the lowest offset not yet durable)              │
//!        └────────────── Offsets::done (the record's completion, after sync) ◀───────────┘
//! ```
//!
//! Modules: [`offsets`] decides what may be committed; [`source`] runs the consumer;
//! [`sink`] produces; [`tls`] sets the TLS files and names why a TLS connection failed.
//!
//! Invariants:
//! - At least once end to end: an offset is committed only once every record before it in
//!   its partition has its sink lines and DLQ entries synced ([`offsets`]); a crash re-reads
//!   from the last commit, so a record may be written twice but is never skipped. Into an
//!   idempotent sink (a `postgres` upsert by key) that is exactly once.
//! - Order per key: a partition's messages enter the executor in offset order on one
//!   channel, and the executor keeps channel order, so records with one key (one partition)
//!   are written in the order they were produced.
//! - Shutdown (SIGINT, SIGTERM): stop polling, let the records in flight become durable,
//!   commit, leave the group; the run then ends normally (exit 0 when balanced).
//! - No data and no secret in errors or events: components are named by name, brokers by
//!   address, partitions by topic and number; a SASL password is resolved from its reference
//!   when the run starts and never printed; keys and header values never reach a log.

pub mod offsets;
pub mod sink;
pub mod source;
mod tls;

use std::sync::Mutex;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use sluice_compiler::plan::kafka::KafkaSecurityPlan;
use sluice_compiler::plan::{ComponentKind, Plan};

use crate::error::RunError;
use crate::findings;

/// How long the run waits for the brokers' metadata when it starts.
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the plan's sources are Kafka consumers (and the run lasts until stopped).
pub fn consumes(plan: &Plan) -> bool {
    plan.components.iter().any(|c| matches!(&c.kind, ComponentKind::Source(s) if s.kafka.is_some()))
}

/// The client settings shared by consumers and producers: brokers, client id, security.
pub(crate) fn client_config(
    component: &str,
    brokers: &[String],
    security: Option<&KafkaSecurityPlan>,
) -> Result<ClientConfig, RunError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers.join(","))
        .set("client.id", format!("sluice-{component}"))
        // A broker that is not there is reported through the error callback; the run's own
        // timeouts decide when to give up.
        .set("socket.connection.setup.timeout.ms", "10000");
    // Connection failures (TLS, SASL) as log lines, which the contexts sort without passing
    // them on ([`LastError::note_log`]); rdkafka would otherwise take the level from the `log`
    // crate, which this binary does not use, and librdkafka would say nothing.
    config.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    if let Some(s) = security {
        config.set("security.protocol", &s.protocol);
        if s.protocol.starts_with("sasl_") {
            config.set("sasl.mechanisms", s.mechanism.as_deref().unwrap_or("PLAIN"));
            if let Some(user) = &s.username {
                config.set("sasl.username", user);
            }
            if let Some(reference) = &s.password {
                let secret = crate::secrets::resolve(reference, &format!("the SASL password of `{component}`"))?;
                let text = std::str::from_utf8(secret.expose()).map_err(|_| {
                    RunError::new(
                        findings::SECRET_MISSING,
                        format!("the SASL password of `{component}` is not UTF-8 text"),
                    )
                })?;
                config.set("sasl.password", text.trim_end_matches(['\r', '\n']));
            }
        }
        if s.protocol.ends_with("ssl") {
            tls::configure(&mut config, component, s)?;
        }
    }
    Ok(config)
}

/// The last client-level error librdkafka reported (all brokers down, authentication, TLS),
/// kept to explain a failure that surfaces later as a timeout. A TLS failure is kept apart:
/// later errors of the same connection attempts (a transport error, "all brokers down") would
/// otherwise hide it.
#[derive(Default)]
pub(crate) struct LastError(Mutex<(Option<RDKafkaErrorCode>, Option<tls::Failure>)>);

impl LastError {
    /// Notes `error` with librdkafka's `reason` (only its TLS cause is kept, never the text).
    pub(crate) fn note(&self, error: &KafkaError, reason: &str) {
        if let Ok(mut last) = self.0.lock() {
            if let Some(code) = error.rdkafka_error_code() {
                last.0 = Some(code);
            }
            if let Some(failure) = tls::failure(reason) {
                last.1 = Some(failure);
            }
        }
    }

    /// Notes what a librdkafka log line says about a failed connection: its TLS cause, or a
    /// refused SASL login. A consumer's errors reach its context only through polls, which do
    /// not happen while the run waits for metadata; log lines come at once. The line itself
    /// (it may quote a broker's reply) is never kept or passed on.
    pub(crate) fn note_log(&self, message: &str) {
        if let Ok(mut last) = self.0.lock() {
            if let Some(failure) = tls::failure(message) {
                last.1 = Some(failure);
            }
            if message.contains("SASL authentication error") || message.contains("SASL authentication failed") {
                last.0 = Some(RDKafkaErrorCode::Authentication);
            }
        }
    }

    fn get(&self) -> (Option<RDKafkaErrorCode>, Option<tls::Failure>) {
        self.0.lock().map(|l| *l).unwrap_or((None, None))
    }

    /// The run error for a client that could not talk to its brokers when starting.
    pub(crate) fn startup_error(
        &self,
        component: &str,
        brokers: &[String],
        security: Option<&KafkaSecurityPlan>,
    ) -> RunError {
        let (code, tls_failure) = self.get();
        let user = security.and_then(|s| s.username.as_deref());
        if code.is_some_and(is_auth) {
            return RunError::new(
                findings::KAFKA_AUTH,
                format!(
                    "`{component}`: the brokers {} refused the credentials of user `{}`",
                    brokers.join(", "),
                    user.unwrap_or("(none)")
                ),
            )
            .with_help("check the secret the `security.password` reference names, the mechanism, and the ACLs");
        }
        if let Some(failure) = tls_failure.filter(|_| security.is_some_and(|s| s.protocol.ends_with("ssl"))) {
            return tls::handshake_error(component, brokers, failure, security);
        }
        RunError::new(
            findings::KAFKA_UNREACHABLE,
            format!(
                "`{component}`: no broker of {} answered within {} s",
                brokers.join(", "),
                CONNECT_TIMEOUT.as_secs()
            ),
        )
        .with_help("check that the brokers run and that `brokers` (and `security.protocol`) are right")
    }
}

/// How long one metadata request waits before the client's events are served again.
const METADATA_STEP: std::time::Duration = std::time::Duration::from_millis(500);

/// The brokers' metadata (`fetch`, given how long it may wait), asked for in short steps up to
/// [`CONNECT_TIMEOUT`] with `serve` (a poll of the client) between them: librdkafka queues its
/// error and log events until the client is polled, so without it a refused login or a failed
/// TLS handshake would only show as a timeout. Stops early once `last` holds such a cause;
/// `None` when no metadata came (`last` then says why).
pub(crate) fn metadata(
    last: &LastError,
    fetch: impl Fn(std::time::Duration) -> rdkafka::error::KafkaResult<rdkafka::metadata::Metadata>,
    serve: impl Fn(),
) -> Option<rdkafka::metadata::Metadata> {
    let deadline = std::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if let Ok(m) = fetch(left.min(METADATA_STEP)) {
            return Some(m);
        }
        serve();
        let (code, tls_failure) = last.get();
        if tls_failure.is_some() || code.is_some_and(is_auth) || std::time::Instant::now() >= deadline {
            return None;
        }
    }
}

pub(crate) fn is_auth(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
    )
}

/// Fails with RT126 when `topic` is not on the brokers (Sluice never creates topics).
pub(crate) fn check_topic(
    metadata: &rdkafka::metadata::Metadata,
    component: &str,
    topic: &str,
) -> Result<(), RunError> {
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
        Some(t) if t.error().is_some_and(|e| is_auth(RDKafkaErrorCode::from(e))) => Err(RunError::new(
            findings::KAFKA_AUTH,
            format!("`{component}`: not authorized for topic `{topic}`"),
        )
        .with_help("grant the user access to the topic (and, for a source, to its consumer group)")),
        _ => Err(RunError::new(findings::KAFKA_TOPIC_MISSING, format!("`{component}`: topic `{topic}` does not exist"))
            .with_help("create the topic first (Sluice does not create topics: the partition count sets how far a group scales out)")),
    }
}
