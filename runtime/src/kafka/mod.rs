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
//! [`sink`] produces.
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
    }
    Ok(config)
}

/// The last client-level error librdkafka reported (all brokers down, authentication...),
/// kept to explain a failure that surfaces later as a timeout.
#[derive(Default)]
pub(crate) struct LastError(Mutex<Option<RDKafkaErrorCode>>);

impl LastError {
    pub(crate) fn note(&self, error: &KafkaError) {
        if let (Some(code), Ok(mut last)) = (error.rdkafka_error_code(), self.0.lock()) {
            *last = Some(code);
        }
    }

    fn get(&self) -> Option<RDKafkaErrorCode> {
        self.0.lock().ok().and_then(|l| *l)
    }

    /// The run error for a client that could not talk to its brokers when starting.
    pub(crate) fn startup_error(&self, component: &str, brokers: &[String], user: Option<&str>) -> RunError {
        if self.get().is_some_and(is_auth) {
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
