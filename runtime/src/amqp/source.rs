//! The `amqp` source: one queue consumer per source, on its own thread, handing each delivery
//! to the executor's live feed and acknowledging it once its record is durable.
//!
//! Invariants (see also [`super`]):
//! - A delivery becomes one record (an X12 interchange one per transaction set:
//!   [`crate::bus::Payloads`]): its body goes through the same source step as a file's of
//!   its `format` (HL7 v2: decode, parse, profile; X12 and FHIR: their readers; DLQ on
//!   reject); its routing key
//!   (as the record's bus key), its `headers` table and its message properties (as
//!   `amqp.*` headers) go into the record's envelope ([`BusMeta`]); an empty body goes to
//!   the DLQ (RT133). The completion of its (last) record sends its delivery tag back to be
//!   acknowledged.
//! - Acknowledgements are single (`multiple: false`): a record finished early never
//!   acknowledges one still in flight.
//! - Backpressure: the server hands over at most `prefetch` unacknowledged messages, and the
//!   channel to the executor holds as many records, so handing on blocks the consumer (which
//!   also sends the acknowledgements that free the prefetch window) only when X12 messages cut
//!   into more sets than that are in flight; the executor drains the channel on its own, so
//!   the wait ends.
//! - Shutdown (SIGINT, SIGTERM) or an executor that stopped: cancel the consumer, wait for
//!   the records in flight to become durable and acknowledge them, close the channel and
//!   connection; the server requeues whatever was delivered but not acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, Consumer};
use sluice_compiler::plan::amqp::AmqpSourcePlan;

use crate::compile::Compiled;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::executor::{Completion, RawInput, Totals};
use crate::findings;
use crate::record::BusMeta;
use crate::time::Clock;
use sluice_compiler::plan::ComponentKind;

/// How often the consumer looks at the stop flag while no message arrives.
const TICK: Duration = Duration::from_millis(100);

/// One source's consumer, connected, its queue checked.
struct Member {
    source: usize,
    name: Arc<str>,
    queue: Arc<str>,
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    payloads: crate::bus::Payloads,
    tx: crossbeam_channel::Sender<RawInput>,
}

/// Connects one source: the server answers, the queue exists (a passive declare), then the
/// prefetch window is set and consuming starts with manual acknowledgements.
fn join(
    c: &Compiled<'_>,
    clock: &Clock,
    source: usize,
    plan: &AmqpSourcePlan,
) -> Result<(Member, crossbeam_channel::Receiver<RawInput>), RunError> {
    let name: Arc<str> = Arc::clone(&c.names[source]);
    let (connection, server) = super::connect(&name, &plan.url, plan.tls.as_ref())?;
    let rt = super::runtime()?;
    let consumer_failed = |what: &str, e: &lapin::Error| {
        RunError::new(findings::AMQP_CONSUMER_FAILED, format!("`{name}`: {what}: {}", super::reason(e)))
    };
    let (channel, consumer) = rt.block_on(async {
        let channel = connection.create_channel().await.map_err(|e| consumer_failed("cannot open a channel", &e))?;
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        channel
            .queue_declare(plan.queue.as_str().into(), passive, FieldTable::default())
            .await
            .map_err(|e| super::not_found(&name, "queue", &plan.queue, &server, &e))?;
        channel
            .basic_qos(plan.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| consumer_failed("cannot set the prefetch window", &e))?;
        let consume = BasicConsumeOptions { no_ack: false, ..BasicConsumeOptions::default() };
        let consumer = channel
            .basic_consume(plan.queue.as_str().into(), format!("sluice-{name}").into(), consume, FieldTable::default())
            .await
            .map_err(|e| super::not_found(&name, "queue", &plan.queue, &server, &e))?;
        Ok::<_, RunError>((channel, consumer))
    })?;
    tracing::info!(component = %name, "amqp consumer started");
    // As many slots as the server may hand over unacknowledged: sending never blocks.
    let (tx, rx) = crossbeam_channel::bounded::<RawInput>(usize::from(plan.prefetch));
    let queue = Arc::from(plan.queue.as_str());
    let payloads = match &c.plan.components[source].kind {
        ComponentKind::Source(s) => crate::bus::Payloads::of(s, clock)?,
        _ => return Err(RunError::new(findings::PLAN_INVALID, "an amqp source is not a source")),
    };
    Ok((Member { source, name, queue, connection, channel, consumer, payloads, tx }, rx))
}

/// Runs the pipeline fed by its AMQP sources until `stop` is set (SIGINT, SIGTERM) or the
/// executor stops on an error; then lets the records in flight become durable, acknowledges
/// them, closes the connections and returns the totals.
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
    progress: Option<Arc<crate::progress::Progress>>,
    events: Option<std::sync::mpsc::Sender<crate::mllp::ListenEvent>>,
) -> Result<Totals, RunError> {
    let sources = crate::bus::sources_of(c, |s| s.amqp.as_deref(), |a: &AmqpSourcePlan| &a.priority);
    let driver = crate::bus::Driver { c, clock, run_id, threads, progress, bus: "amqp" };
    let join = |source, plan: &AmqpSourcePlan| {
        let (member, rx) = join(c, clock, source, plan)?;
        if let Some(events) = &events {
            // The queue's name, never a message: for the CLI's stderr line.
            let _ = events.send(crate::mllp::ListenEvent::ConsumingQueue {
                source: member.name.to_string(),
                queue: plan.queue.clone(),
            });
        }
        let name = Arc::clone(&member.name);
        Ok((member, name, rx))
    };
    driver.join_and_run(stop, sources, join, consume)
}

/// One member's loop on the shared runtime: hand deliveries on, acknowledge finished records;
/// at the end cancel, drain, acknowledge and close.
fn consume(m: Member, stop: &AtomicBool, executor_gone: &AtomicBool) -> Result<(), RunError> {
    let rt = super::runtime()?;
    rt.block_on(consume_async(m, stop, executor_gone))
}

async fn consume_async(m: Member, stop: &AtomicBool, executor_gone: &AtomicBool) -> Result<(), RunError> {
    let Member { source, name, queue, connection, channel, mut consumer, payloads, tx } = m;
    // Delivery tags of records made durable, sent by their completions (on the writer thread).
    let (acks, mut finished) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut in_flight: usize = 0;
    let mut failure = None;
    let failed = |what: &str, why: String| {
        RunError::new(findings::AMQP_CONSUMER_FAILED, format!("`{name}`: {what}: {why}")).with_help(
            "the records read so far are finished; messages not acknowledged are delivered again to the next run",
        )
    };
    while !stop.load(Ordering::Relaxed) && !executor_gone.load(Ordering::Relaxed) {
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    in_flight += 1;
                    let message = message_of(source, &queue, &delivery, acks.clone());
                    if payloads.records(message).into_iter().any(|raw| tx.send(raw).is_err()) {
                        break;
                    }
                }
                Some(Err(e)) => {
                    failure = Some(failed("the consumer stopped", super::reason(&e)));
                    break;
                }
                None => {
                    failure = Some(failed("the server cancelled the consumer", "queue deleted or connection closed".into()));
                    break;
                }
            },
            Some(tag) = finished.recv() => {
                in_flight -= 1;
                if let Err(e) = channel.basic_ack(tag, BasicAckOptions { multiple: false }).await {
                    failure = Some(failed("an acknowledgement could not be sent", super::reason(&e)));
                    break;
                }
            }
            () = tokio::time::sleep(TICK) => {}
        }
    }
    // No new deliveries; the ones the server already sent but nobody read stay unacknowledged
    // and are requeued when the channel closes.
    if failure.is_none() {
        let _ = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
    }
    drop(tx);
    // Wait for the records in flight to become durable, and acknowledge each.
    while in_flight > 0 && failure.is_none() && !executor_gone.load(Ordering::Relaxed) {
        if let Ok(Some(tag)) = tokio::time::timeout(TICK, finished.recv()).await {
            in_flight -= 1;
            if let Err(e) = channel.basic_ack(tag, BasicAckOptions { multiple: false }).await {
                failure = Some(failed("an acknowledgement could not be sent", super::reason(&e)));
            }
        }
    }
    // The executor may have finished the last records just before it ended.
    while let Ok(tag) = finished.try_recv() {
        if failure.is_none() && channel.basic_ack(tag, BasicAckOptions { multiple: false }).await.is_err() {
            break;
        }
    }
    let _ = channel.close(200, "sluice run ended".into()).await;
    let _ = connection.close(200, "sluice run ended".into()).await;
    tracing::info!(component = %name, "amqp consumer closed its connection");
    failure.map_or(Ok(()), Err)
}

/// A header value as bytes: strings as they are, numbers and booleans as text; other kinds
/// (tables, arrays, timestamps) as their JSON-like text.
fn header_bytes(v: &AMQPValue) -> Option<Vec<u8>> {
    Some(match v {
        AMQPValue::LongString(s) => s.as_bytes().to_vec(),
        AMQPValue::ShortString(s) => s.as_str().as_bytes().to_vec(),
        AMQPValue::Boolean(b) => b.to_string().into_bytes(),
        AMQPValue::ShortShortInt(n) => n.to_string().into_bytes(),
        AMQPValue::ShortShortUInt(n) => n.to_string().into_bytes(),
        AMQPValue::ShortInt(n) => n.to_string().into_bytes(),
        AMQPValue::ShortUInt(n) => n.to_string().into_bytes(),
        AMQPValue::LongInt(n) => n.to_string().into_bytes(),
        AMQPValue::LongUInt(n) => n.to_string().into_bytes(),
        AMQPValue::LongLongInt(n) => n.to_string().into_bytes(),
        AMQPValue::Timestamp(t) => t.to_string().into_bytes(),
        AMQPValue::Void => return None,
        other => format!("{other:?}").into_bytes(),
    })
}

/// One delivery, read; its completion sends the delivery tag to be acknowledged.
fn message_of(
    source: usize,
    queue: &Arc<str>,
    delivery: &lapin::message::Delivery,
    acks: tokio::sync::mpsc::UnboundedSender<u64>,
) -> crate::bus::Message {
    let p = &delivery.properties;
    let mut headers: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    if let Some(table) = p.headers() {
        for (k, v) in table.inner() {
            headers.push((k.as_str().to_string(), header_bytes(v)));
        }
    }
    let properties = [
        ("amqp.message_id", p.message_id().as_ref().map(|s| s.as_str().to_string())),
        ("amqp.correlation_id", p.correlation_id().as_ref().map(|s| s.as_str().to_string())),
        ("amqp.content_type", p.content_type().as_ref().map(|s| s.as_str().to_string())),
        ("amqp.type", p.kind().as_ref().map(|s| s.as_str().to_string())),
        ("amqp.app_id", p.app_id().as_ref().map(|s| s.as_str().to_string())),
        ("amqp.timestamp", p.timestamp().map(|t| t.to_string())),
    ];
    for (k, v) in properties {
        if let Some(v) = v {
            headers.push((k.to_string(), Some(v.into_bytes())));
        }
    }
    let bus = BusMeta { key: Some(delivery.routing_key.as_str().as_bytes().to_vec()), headers, deleted: false };
    let problem = delivery
        .data
        .is_empty()
        .then(|| Rejection::single(findings::AMQP_EMPTY_MESSAGE, None, "the AMQP message has an empty body"));
    let tag = delivery.delivery_tag;
    crate::bus::Message {
        source,
        label: Arc::clone(queue),
        at: tag,
        bytes: delivery.data.clone(),
        problem,
        completion: Completion::new(move |_| {
            let _ = acks.send(tag);
        }),
        bus: Arc::new(bus),
    }
}
