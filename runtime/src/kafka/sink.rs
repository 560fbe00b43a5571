//! The `kafka` sink: each record as a JSON message (the line a `jsonl` sink would write) to
//! one topic, produced by the writer thread once per batch and flushed before the batch
//! counts as delivered.
//!
//! Invariants:
//! - Durable before acknowledged: [`KafkaSinks::write_batch`] returns only once the brokers
//!   acknowledged every message of the batch (acks from all in-sync replicas, the
//!   idempotent producer's setting), before the writer syncs, checkpoints or calls a
//!   source's completion. So a `kafka` source's offsets pass a record only once its message
//!   is in the sink's topic.
//! - Order per key: the idempotent producer keeps each partition's messages in send order
//!   through retries; the key (the `key` field's value, or else the key of the Kafka message
//!   the record came from) picks the partition, so one patient's records stay in order.
//! - Nothing lost: a message the broker refuses for its content (too large, invalid) goes to
//!   the DLQ (RT611) and the rest of the batch is delivered; any other failure (brokers gone
//!   past the delivery timeout, a fatal producer error) stops the run (RT612) before the
//!   batch counts, so its records are read again.
//! - The source message's headers travel on with the record (names and values as they
//!   came); neither keys nor header values are ever logged.
//! - `format: hl7v2` (`relay_hl7`) relays an HL7 v2 message as it was read: its bytes, not
//!   its text as decoded, so a `kafka` source reading the topic decodes it under the same
//!   charset rules; the key is the first value at an HL7 v2 path (`PID-3.1`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde::{Deserialize, Serialize};
use sluice_compiler::plan::kafka::KafkaSinkPlan;

use super::LastError;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::findings;
use crate::record::{Doc, Payload, Record};

/// How long a batch may wait for its acknowledgements (also librdkafka's delivery timeout).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// What a worker hands the writer for one record: key and header values in base64, the
/// message value as text, or (a relayed HL7 v2 message) as bytes in base64.
/// Also what the `amqp` sink publishes from (the key is then the routing key).
#[derive(Serialize, Deserialize)]
pub(crate) struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) headers: Vec<(String, Option<String>)>,
    #[serde(default)]
    pub(crate) value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) raw: Option<String>,
}

/// The line of a record for sink `plan` (in a worker). `hl7_key`: the sink's `key` parsed as
/// an HL7 v2 path, for a sink relaying HL7 v2 (parsed once, in [`crate::compile::Prep`]).
pub fn line(
    rec: &Record,
    run_id: &str,
    processed_at: &str,
    plan: &KafkaSinkPlan,
    hl7_key: Option<&sluice_hl7v2::path::Path>,
) -> String {
    bus_line(rec, run_id, processed_at, plan.key.as_deref(), plan.relay_hl7, hl7_key)
}

/// The [`Line`] of a record for a message bus sink (`kafka`, `amqp`): keyed by the field
/// `key_field` (or, relaying HL7 v2, the first value at `hl7_key`), else by the key of the
/// bus message the record came from.
pub(crate) fn bus_line(
    rec: &Record,
    run_id: &str,
    processed_at: &str,
    key_field: Option<&str>,
    relay_hl7: bool,
    hl7_key: Option<&sluice_hl7v2::path::Path>,
) -> String {
    let declared = match &rec.payload {
        Payload::Doc(doc) => key_field.and_then(|path| match doc.get_dotted(path)? {
            Doc::Str(s) | Doc::Num(s) => Some(s.as_bytes().to_vec()),
            Doc::Bool(b) => Some(b.to_string().into_bytes()),
            _ => None,
        }),
        Payload::Hl7(m) => {
            hl7_key.and_then(|path| crate::hl7::Reader::new(m).first(path)).map(|v| v.as_bytes().to_vec())
        }
    };
    let bus = rec.env.bus.as_deref();
    let key = declared.or_else(|| bus.and_then(|b| b.key.clone()));
    let headers = bus
        .map(|b| b.headers.iter().map(|(n, v)| (n.clone(), v.as_ref().map(|v| B64.encode(v)))).collect())
        .unwrap_or_default();
    let (value, raw) = match &rec.payload {
        Payload::Hl7(_) if relay_hl7 => (String::new(), Some(B64.encode(&rec.raw))),
        _ => (crate::sink::render(rec, run_id, processed_at), None),
    };
    let line = Line { key: key.map(|k| B64.encode(k)), headers, value, raw };
    serde_json::to_string(&line).unwrap_or_default()
}

/// A [`Line`] decoded for the producer: key, relayed bytes, headers.
type Decoded = (Option<Vec<u8>>, Option<Vec<u8>>, OwnedHeaders);

/// Delivery reports of the batch being flushed: (position, error) of each failed message.
struct Reports {
    name: Arc<str>,
    last: LastError,
    failed: Mutex<Vec<(usize, KafkaError)>>,
}

impl ClientContext for Reports {
    // librdkafka's log lines may quote broker replies: not passed on, only sorted.
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, message: &str) {
        self.last.note_log(message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.last.note(&error, reason);
        let code = error.rdkafka_error_code().map(|c| format!("{c:?}")).unwrap_or_default();
        tracing::warn!(component = %self.name, code = %code, "kafka producer error");
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, position: usize) {
        if let (Err((e, _)), Ok(mut failed)) = (result, self.failed.lock()) {
            failed.push((position, e.clone()));
        }
    }
}

/// One `kafka` sink, connected, its topic checked.
pub struct KafkaSink {
    name: Arc<str>,
    plan: KafkaSinkPlan,
    producer: BaseProducer<Reports>,
}

impl KafkaSink {
    pub fn open(name: &Arc<str>, plan: &KafkaSinkPlan) -> Result<KafkaSink, RunError> {
        let mut config = super::client_config(name, &plan.brokers, plan.security.as_ref())?;
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .set("linger.ms", "5");
        let reports = Reports { name: Arc::clone(name), last: LastError::default(), failed: Mutex::new(Vec::new()) };
        let producer: BaseProducer<Reports> = config.create_with_context(reports).map_err(|e| {
            RunError::new(
                findings::KAFKA_UNREACHABLE,
                format!("`{name}`: cannot create the Kafka producer: {}", code_name(&e)),
            )
            .with_help("check the sink's `brokers` and `security` settings")
        })?;
        let last = &producer.context().last;
        let metadata = super::metadata(
            last,
            |wait| producer.client().fetch_metadata(Some(&plan.topic), wait),
            || {
                producer.poll(Duration::ZERO);
            },
        )
        .ok_or_else(|| last.startup_error(name, &plan.brokers, plan.security.as_ref()))?;
        super::check_topic(&metadata, name, &plan.topic)?;
        Ok(KafkaSink { name: Arc::clone(name), plan: plan.clone(), producer })
    }

    /// Produces `lines` (this sink's [`line`]s) and waits for every acknowledgement. Returns
    /// the messages the brokers refused for their content (their positions, why).
    fn write(&mut self, lines: &[Line]) -> Result<Vec<(usize, Rejection)>, RunError> {
        if let Ok(mut failed) = self.producer.context().failed.lock() {
            failed.clear();
        }
        let decoded: Vec<Decoded> = lines
            .iter()
            .map(|l| {
                let key = l.key.as_ref().and_then(|k| B64.decode(k).ok());
                let raw = l.raw.as_ref().and_then(|r| B64.decode(r).ok());
                let mut headers = OwnedHeaders::new_with_capacity(l.headers.len());
                for (name, value) in &l.headers {
                    let value = value.as_ref().and_then(|v| B64.decode(v).ok());
                    headers = headers.insert(Header { key: name, value: value.as_deref() });
                }
                (key, raw, headers)
            })
            .collect();
        for (pos, (l, (key, raw, headers))) in lines.iter().zip(decoded).enumerate() {
            let payload = raw.as_deref().unwrap_or(l.value.as_bytes());
            let mut record = BaseRecord::with_opaque_to(&self.plan.topic, pos).payload(payload).headers(headers);
            if let Some(k) = &key {
                record = record.key(k.as_slice());
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                match self.producer.send(r) {
                    Ok(()) => {}
                    // The local queue is full: serve delivery reports, then try again.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        self.producer.poll(Duration::from_millis(50));
                        record = Some(r);
                    }
                    Err((e, _)) if refused_for_content(&e) => {
                        if let Ok(mut failed) = self.producer.context().failed.lock() {
                            failed.push((pos, e));
                        }
                    }
                    Err((e, _)) => return Err(self.failed_batch(&e)),
                }
            }
        }
        self.await_acknowledgements()?;
        let failed = self.producer.context().failed.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        let mut refused = Vec::new();
        for (pos, e) in failed {
            if !refused_for_content(&e) {
                return Err(self.failed_batch(&e));
            }
            let why = format!("kafka sink `{}`: the broker refused the message: {}", self.name, code_name(&e));
            refused.push((pos, Rejection::single(findings::KAFKA_SINK_REFUSED, None, why)));
        }
        Ok(refused)
    }

    /// Waits until the brokers acknowledged (or refused) every message produced, serving the
    /// delivery reports as they arrive. Not rdkafka's `flush`: it polls in steps of 100 ms
    /// that always run to their end, so every batch cost at least 100 ms (a live feed of
    /// one-message batches went at 10 messages a second).
    fn await_acknowledgements(&self) -> Result<(), RunError> {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        // A flush that does not wait: it only tells librdkafka to send what lingers now.
        let _ = self.producer.flush(Duration::ZERO);
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err(self.failed_batch(&KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut)));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        Ok(())
    }

    fn failed_batch(&self, e: &KafkaError) -> RunError {
        RunError::new(
            findings::KAFKA_SINK_FAILED,
            format!("kafka sink `{}`: a batch could not be delivered to topic `{}`: {}", self.name, self.plan.topic, code_name(e)),
        )
        .with_help("check that the brokers are up; the records of the batch were not counted and are read again by the next run")
    }
}

/// A failure tied to one message's content: retrying it cannot help.
fn refused_for_content(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

fn code_name(e: &KafkaError) -> String {
    e.rdkafka_error_code().map_or_else(|| "client error".to_string(), |c| format!("{c:?}"))
}

pub type KafkaSinks = crate::sinks::SinkSet<KafkaSink>;

impl KafkaSinks {
    /// Produces a batch's lines for every `kafka` sink, each flushed before the next. Returns
    /// per record position the sinks that refused it.
    pub fn write_batch<'l>(
        &mut self,
        records: impl Iterator<Item = &'l [(usize, String)]> + Clone,
    ) -> Result<crate::sinks::Refusals, RunError> {
        let mut refused = crate::sinks::Refusals::new();
        for (component, sink) in self.iter_mut() {
            let mut positions = Vec::new();
            let mut lines = Vec::new();
            for (pos, record_lines) in records.clone().enumerate() {
                for (_, text) in record_lines.iter().filter(|(c, _)| *c == component) {
                    let line: Line = serde_json::from_str(text).map_err(|_| {
                        RunError::new(
                            findings::INTERNAL,
                            format!("a message for kafka sink `{}` is not readable", sink.name),
                        )
                    })?;
                    positions.push(pos);
                    lines.push(line);
                }
            }
            if lines.is_empty() {
                continue;
            }
            for (i, why) in sink.write(&lines)? {
                crate::sinks::refuse(&mut refused, positions[i], component, || why);
            }
        }
        Ok(refused)
    }
}
