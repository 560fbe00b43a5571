//! The `kafka` source: one consumer-group member per source, on its own thread, handing each
//! message to the executor's live feed and committing offsets as records become durable.
//!
//! Invariants (see also [`super`] and [`super::offsets`]):
//! - A message becomes one record (an X12 interchange one per transaction set:
//!   [`crate::bus::Payloads`]): its value goes through the same source step as a file's of
//!   its `format` (HL7 v2: decode, parse, profile; X12 and FHIR: their readers; DLQ on
//!   reject); its key and headers go into the record's envelope ([`BusMeta`]); a message
//!   without a value goes to the DLQ (RT129). The completion of its (last) record marks its
//!   offset durable.
//! - Commits: every [`COMMIT_EVERY`] while consuming, on a revocation (after waiting up to
//!   [`REVOKE_WAIT`] for the revoked partitions' records in flight, so the next owner reads
//!   few of them again), and at shutdown once every record read is durable.
//! - Backpressure: the channel to the executor is bounded; a full channel stops polling
//!   (librdkafka keeps the group membership alive on its own threads).
//! - Auto-commit and the client's own offset store are off: only [`super::offsets`] decides.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_compiler::plan::kafka::KafkaSourcePlan;

use super::LastError;
use super::offsets::{Offsets, Tp};
use crate::compile::Compiled;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::executor::{Completion, RawInput, Totals};
use crate::findings;
use crate::record::BusMeta;
use crate::time::Clock;
use sluice_compiler::plan::ComponentKind;

/// How often offsets that moved are committed while consuming.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// How long a revocation waits for the revoked partitions' records in flight.
pub const REVOKE_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// What the consumer's callbacks share with its thread.
struct Ctx {
    name: Arc<str>,
    offsets: Arc<Offsets>,
    last: LastError,
}

impl ClientContext for Ctx {
    // librdkafka's log lines may quote broker replies: not passed on, only sorted.
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, message: &str) {
        self.last.note_log(message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.last.note(&error, reason);
        let code = error.rdkafka_error_code().map(|c| format!("{c:?}")).unwrap_or_default();
        tracing::warn!(component = %self.name, code = %code, "kafka client error");
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let revoked = partitions(list);
                // The records still in flight become durable in the writer; commit them
                // before the partitions move, so their next owner does not read them again.
                self.offsets.wait_drained(Some(&revoked), REVOKE_WAIT);
                if let Err(e) = commit(consumer, &self.offsets) {
                    tracing::warn!(component = %self.name, code = %kind(&e), "commit on revocation failed");
                }
                for tp in &revoked {
                    self.offsets.revoke(tp);
                }
                tracing::info!(component = %self.name, partitions = revoked.len(), "kafka partitions revoked");
            }
            Rebalance::Assign(list) => {
                let assigned = partitions(list);
                for tp in &assigned {
                    self.offsets.assign(tp.clone());
                }
                tracing::info!(component = %self.name, partitions = assigned.len(), "kafka partitions assigned");
            }
            Rebalance::Error(e) => {
                tracing::warn!(component = %self.name, code = %kind(e), "kafka rebalance error");
            }
        }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<Tp> {
    list.elements().iter().map(|e| (Arc::from(e.topic()), e.partition())).collect()
}

/// An error's code name, never librdkafka's text (which may quote a broker's reply).
fn kind(e: &KafkaError) -> String {
    e.rdkafka_error_code().map_or_else(|| "client error".to_string(), |c| format!("{c:?}"))
}

/// Commits what [`Offsets`] says is durable (nothing when nothing moved).
fn commit(consumer: &BaseConsumer<Ctx>, offsets: &Offsets) -> Result<(), KafkaError> {
    let due = offsets.to_commit();
    if due.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), at) in &due {
        list.add_partition_offset(topic, *partition, Offset::Offset(*at))?;
    }
    consumer.commit(&list, CommitMode::Sync)?;
    offsets.committed(&due);
    Ok(())
}

/// One source's consumer, connected and subscribed.
struct Member {
    source: usize,
    name: Arc<str>,
    consumer: BaseConsumer<Ctx>,
    offsets: Arc<Offsets>,
    payloads: crate::bus::Payloads,
    tx: crossbeam_channel::Sender<RawInput>,
}

/// Connects one source: checks the brokers answer and every topic exists, then subscribes.
fn join(
    c: &Compiled<'_>,
    clock: &Clock,
    source: usize,
    plan: &KafkaSourcePlan,
) -> Result<(Member, crossbeam_channel::Receiver<RawInput>), RunError> {
    let name: Arc<str> = Arc::clone(&c.names[source]);
    let mut config = super::client_config(&name, &plan.brokers, plan.security.as_ref())?;
    config
        .set("group.id", &plan.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &plan.start)
        .set("session.timeout.ms", plan.session_timeout_ms.to_string());
    let offsets = Arc::new(Offsets::default());
    let ctx = Ctx { name: Arc::clone(&name), offsets: Arc::clone(&offsets), last: LastError::default() };
    let consumer: BaseConsumer<Ctx> = config.create_with_context(ctx).map_err(|e| {
        RunError::new(findings::KAFKA_UNREACHABLE, format!("`{name}`: cannot create the Kafka client: {}", kind(&e)))
            .with_help("check the source's `brokers` and `security` settings")
    })?;
    for topic in &plan.topics {
        let last = &consumer.context().last;
        // Not subscribed yet: a poll serves the client's events, it fetches no message.
        let metadata = super::metadata(
            last,
            |wait| consumer.fetch_metadata(Some(topic), wait),
            || {
                let _ = consumer.poll(Duration::ZERO);
            },
        )
        .ok_or_else(|| last.startup_error(&name, &plan.brokers, plan.security.as_ref()))?;
        super::check_topic(&metadata, &name, topic)?;
    }
    let topics: Vec<&str> = plan.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| {
        RunError::new(findings::KAFKA_CONSUMER_FAILED, format!("`{name}`: cannot subscribe: {}", kind(&e)))
    })?;
    tracing::info!(component = %name, topics = plan.topics.len(), "kafka consumer joined its group");
    // Bounded, one channel per source: a slow pipeline stops the polling, not memory.
    let (tx, rx) = crossbeam_channel::bounded::<RawInput>(1024);
    let payloads = match &c.plan.components[source].kind {
        ComponentKind::Source(s) => crate::bus::Payloads::of(s, clock)?,
        _ => return Err(RunError::new(findings::PLAN_INVALID, "a kafka source is not a source")),
    };
    Ok((Member { source, name, consumer, offsets, payloads, tx }, rx))
}

/// Runs the pipeline fed by its Kafka sources until `stop` is set (SIGINT, SIGTERM) or the
/// executor stops on an error; then lets the records in flight become durable, commits,
/// leaves the group and returns the totals.
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
    progress: Option<Arc<crate::progress::Progress>>,
    events: Option<std::sync::mpsc::Sender<crate::mllp::ListenEvent>>,
) -> Result<Totals, RunError> {
    let sources = crate::bus::sources_of(c, |s| s.kafka.as_deref(), |k: &KafkaSourcePlan| &k.priority);
    // The executor ends when every consumer has stopped (a signal), or on an error: then the
    // consumers stop too, committing only what was made durable.
    let driver = crate::bus::Driver { c, clock, run_id, threads, progress, bus: "kafka" };
    let join = |source, plan: &KafkaSourcePlan| {
        let (member, rx) = join(c, clock, source, plan)?;
        if let Some(events) = &events {
            // Topic and group names, never a message: for the CLI's stderr line.
            let _ = events.send(crate::mllp::ListenEvent::Consuming {
                source: member.name.to_string(),
                topics: plan.topics.clone(),
                group: plan.group.clone(),
            });
        }
        let name = Arc::clone(&member.name);
        Ok((member, name, rx))
    };
    driver.join_and_run(stop, sources, join, consume)
}

/// One member's loop: poll, hand on, commit; at the end wait for the records in flight,
/// commit and leave the group.
fn consume(m: Member, stop: &AtomicBool, executor_gone: &AtomicBool) -> Result<(), RunError> {
    let Member { source, name, consumer, offsets, payloads, tx } = m;
    let mut labels: HashMap<Tp, Arc<str>> = HashMap::new();
    let mut last_commit = Instant::now();
    let mut failure = None;
    while !stop.load(Ordering::Relaxed) && !executor_gone.load(Ordering::Relaxed) {
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(message)) => {
                let message = message_of(source, &message, &offsets, &mut labels);
                if payloads.records(message).into_iter().any(|raw| tx.send(raw).is_err()) {
                    break;
                }
            }
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) => {
                failure = Some(
                    RunError::new(
                        findings::KAFKA_CONSUMER_FAILED,
                        format!("`{name}`: fatal consumer error: {}", kind(&e)),
                    )
                    .with_help("the records read so far are finished and committed; start the run again"),
                );
                break;
            }
            Some(Err(e)) => tracing::warn!(component = %name, code = %kind(&e), "kafka consumer error"),
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            last_commit = Instant::now();
            if let Err(e) = commit(&consumer, &offsets) {
                tracing::warn!(component = %name, code = %kind(&e), "kafka commit failed; retried");
            }
        }
    }
    // No more records from this member: once every member is done, the feed ends and the
    // executor drains. Wait for what is in flight to become durable, then commit it.
    drop(tx);
    while offsets.in_flight(None) > 0 && !executor_gone.load(Ordering::Relaxed) {
        offsets.wait_drained(None, Duration::from_millis(50));
    }
    let committed = commit(&consumer, &offsets);
    if let Err(e) = &committed {
        tracing::warn!(component = %name, code = %kind(e), "kafka commit at shutdown failed");
    }
    consumer.unsubscribe();
    tracing::info!(component = %name, "kafka consumer left its group");
    failure.map_or(Ok(()), Err)
}

/// One message, read; its completion marks the offset durable.
fn message_of(
    source: usize,
    message: &BorrowedMessage<'_>,
    offsets: &Arc<Offsets>,
    labels: &mut HashMap<Tp, Arc<str>>,
) -> crate::bus::Message {
    let tp: Tp = (Arc::from(message.topic()), message.partition());
    let label = Arc::clone(
        labels.entry(tp.clone()).or_insert_with(|| Arc::from(format!("{}/{}", message.topic(), message.partition()))),
    );
    let offset = message.offset();
    let epoch = offsets.epoch(&tp);
    offsets.read(&tp, epoch, offset);
    let headers = message
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default();
    let bus = BusMeta { key: message.key().map(<[u8]>::to_vec), headers, deleted: false };
    let problem = message
        .payload()
        .is_none()
        .then(|| Rejection::single(findings::KAFKA_EMPTY_MESSAGE, None, "the Kafka message has no value"));
    let done = Arc::clone(offsets);
    crate::bus::Message {
        source,
        label,
        at: u64::try_from(offset).unwrap_or(0),
        bytes: message.payload().unwrap_or_default().to_vec(),
        problem,
        completion: Completion::new(move |_| done.done(&tp, epoch, offset)),
        bus: Arc::new(bus),
    }
}
