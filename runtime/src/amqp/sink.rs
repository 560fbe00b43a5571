//! The `amqp` sink: each record as a persistent message (the JSON line a `jsonl` sink would
//! write, or the HL7 v2 bytes as read) published to one exchange on a confirm-mode channel,
//! by the writer thread once per batch.
//!
//! Invariants:
//! - Durable before acknowledged: [`AmqpSinks::write_batch`] returns only once the server
//!   confirmed (basic.ack) every message of the batch, before the writer syncs, checkpoints
//!   or calls a source's completion. So an `amqp` source acknowledges a message only once its
//!   record is in this sink's queues.
//! - Messages are `mandatory`: one the exchange cannot route to any queue comes back instead
//!   of vanishing, and stops the run (RT134) before the batch counts.
//! - Nacked messages are published again, up to [`ATTEMPTS`] times with a growing pause; any
//!   other failure (connection lost, no confirm within [`CONFIRM_TIMEOUT`]) stops the run
//!   (RT134). The batch's records are then read again by the next run (at least once).
//! - Routing key: the constant `routing_key`, else the `routing_key_field`'s value, else the
//!   routing key (or Kafka key) of the message the record came from, else empty. Headers of
//!   the source message travel on. Neither keys nor header values are ever logged.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use sluice_compiler::plan::amqp::AmqpSinkPlan;

use crate::error::RunError;
use crate::findings;
use crate::kafka::sink::Line;
use crate::record::Record;

/// How long a batch may wait for its confirms.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(120);
/// Publishes of one message before a nack stops the run.
const ATTEMPTS: u32 = 3;
/// The pause before the first republish of nacked messages (doubled each time).
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// The line of a record for sink `plan` (in a worker); see [`crate::kafka::sink::bus_line`].
pub fn line(
    rec: &Record,
    run_id: &str,
    processed_at: &str,
    plan: &AmqpSinkPlan,
    hl7_key: Option<&sluice_hl7v2::path::Path>,
) -> String {
    crate::kafka::sink::bus_line(rec, run_id, processed_at, plan.routing_key_field.as_deref(), plan.relay_hl7, hl7_key)
}

/// One message ready to publish.
struct Message {
    routing_key: ShortString,
    body: Vec<u8>,
    properties: BasicProperties,
}

/// One `amqp` sink, connected, its exchange checked, its channel in confirm mode.
pub struct AmqpSink {
    name: Arc<str>,
    plan: AmqpSinkPlan,
    server: String,
    connection: Connection,
    channel: Channel,
}

impl AmqpSink {
    pub fn open(name: &Arc<str>, plan: &AmqpSinkPlan) -> Result<AmqpSink, RunError> {
        let (connection, server) = super::connect(name, &plan.url, plan.tls.as_ref())?;
        let rt = super::runtime()?;
        let channel = rt.block_on(async {
            let failed = |e: &lapin::Error| {
                RunError::new(
                    findings::AMQP_SINK_FAILED,
                    format!("amqp sink `{name}`: cannot open a confirm channel: {}", super::reason(e)),
                )
            };
            let channel = connection.create_channel().await.map_err(|e| failed(&e))?;
            // The default exchange always exists and cannot be declared, even passively.
            if !plan.exchange.is_empty() {
                let passive = ExchangeDeclareOptions { passive: true, ..ExchangeDeclareOptions::default() };
                channel
                    .exchange_declare(
                        plan.exchange.as_str().into(),
                        ExchangeKind::Direct,
                        passive,
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| super::not_found(name, "exchange", &plan.exchange, &server, &e))?;
            }
            channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| failed(&e))?;
            Ok::<_, RunError>(channel)
        })?;
        Ok(AmqpSink { name: Arc::clone(name), plan: plan.clone(), server, connection, channel })
    }

    fn message(&self, line: &Line) -> Message {
        let routing_key = match &self.plan.routing_key {
            Some(constant) => constant.clone(),
            None => line
                .key
                .as_ref()
                .and_then(|k| B64.decode(k).ok())
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .unwrap_or_default(),
        };
        let mut headers = FieldTable::default();
        for (name, value) in &line.headers {
            let value = value.as_ref().and_then(|v| B64.decode(v).ok());
            let value = value.map_or(AMQPValue::Void, |v| AMQPValue::LongString(LongString::from(v)));
            headers.insert(name.as_str().into(), value);
        }
        let (body, content_type) = match line.raw.as_ref().and_then(|r| B64.decode(r).ok()) {
            Some(raw) => (raw, "application/hl7-v2"),
            None => (line.value.as_bytes().to_vec(), "application/json"),
        };
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(content_type.into())
            .with_headers(headers);
        // A routing key is at most 255 bytes: a longer value is cut at a character boundary
        // rather than failing the whole batch.
        let mut routing_key = routing_key;
        while routing_key.len() > 255 {
            routing_key.pop();
        }
        Message { routing_key: routing_key.into(), body, properties }
    }

    /// Publishes `lines` and waits until the server confirmed every message; nacked ones are
    /// published again (up to [`ATTEMPTS`] in all).
    fn write(&mut self, lines: &[Line]) -> Result<(), RunError> {
        let messages: Vec<Message> = lines.iter().map(|l| self.message(l)).collect();
        let rt = super::runtime()?;
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut pause = FIRST_PAUSE;
        for attempt in 1..=ATTEMPTS {
            let nacked = rt.block_on(async {
                tokio::time::timeout(CONFIRM_TIMEOUT, self.publish(&messages, &pending))
                    .await
                    .map_err(|_| self.failed(format!("no confirm within {} s", CONFIRM_TIMEOUT.as_secs())))?
            })?;
            if nacked.is_empty() {
                return Ok(());
            }
            tracing::warn!(component = %self.name, messages = nacked.len(), attempt, "amqp server nacked messages");
            pending = nacked;
            if attempt < ATTEMPTS {
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
        Err(self.failed(format!("the server nacked {} message(s) {ATTEMPTS} times", pending.len())))
    }

    /// Publishes the messages at `which` and awaits their confirms; returns those nacked.
    async fn publish(&self, messages: &[Message], which: &[usize]) -> Result<Vec<usize>, RunError> {
        let mut confirms = Vec::with_capacity(which.len());
        let exchange: ShortString = self.plan.exchange.as_str().into();
        for &i in which {
            let m = &messages[i];
            let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            let confirm = self
                .channel
                .basic_publish(exchange.clone(), m.routing_key.clone(), options, &m.body, m.properties.clone())
                .await
                .map_err(|e| self.failed(super::reason(&e)))?;
            confirms.push((i, confirm));
        }
        let mut nacked = Vec::new();
        for (i, confirm) in confirms {
            match confirm.await.map_err(|e| self.failed(super::reason(&e)))? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_)) => {
                    return Err(
                        self.failed("a message was returned unroutable: no queue is bound for its routing key".into())
                    );
                }
                Confirmation::Nack(_) => nacked.push(i),
                Confirmation::NotRequested => {
                    return Err(self.failed("the channel is not in confirm mode".into()));
                }
            }
        }
        Ok(nacked)
    }

    fn failed(&self, why: String) -> RunError {
        let exchange = if self.plan.exchange.is_empty() { "(default)" } else { self.plan.exchange.as_str() };
        RunError::new(
            findings::AMQP_SINK_FAILED,
            format!("amqp sink `{}`: a batch could not be published to exchange {exchange} on {}: {why}", self.name, self.server),
        )
        .with_help("check the server, the exchange and its bindings; the records of the batch were not counted and are read again by the next run")
    }
}

impl Drop for AmqpSink {
    fn drop(&mut self) {
        if let Ok(rt) = super::runtime() {
            rt.block_on(async {
                let _ = self.channel.close(200, "sluice run ended".into()).await;
                let _ = self.connection.close(200, "sluice run ended".into()).await;
            });
        }
    }
}

pub type AmqpSinks = crate::sinks::SinkSet<AmqpSink>;

impl AmqpSinks {
    /// Publishes a batch's lines for every `amqp` sink, each confirmed before the next.
    pub fn write_batch<'l>(
        &mut self,
        records: impl Iterator<Item = &'l [(usize, String)]> + Clone,
    ) -> Result<(), RunError> {
        for (component, sink) in self.iter_mut() {
            let mut lines = Vec::new();
            for record_lines in records.clone() {
                for (_, text) in record_lines.iter().filter(|(c, _)| *c == component) {
                    let line: Line = serde_json::from_str(text).map_err(|_| {
                        RunError::new(
                            findings::INTERNAL,
                            format!("a message for amqp sink `{}` is not readable", sink.name),
                        )
                    })?;
                    lines.push(line);
                }
            }
            if !lines.is_empty() {
                sink.write(&lines)?;
            }
        }
        Ok(())
    }
}
