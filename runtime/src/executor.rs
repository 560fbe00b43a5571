//! The executor: a reader thread, CPU workers on the rayon pool, a writer thread, joined by
//! bounded channels.
//!
//! ```text
//! reader ──numbered batches──▶ workers (each takes whole batches) ──numbered results──▶ writer
//!         (bounded: backpressure)                                    (bounded)   reorders; sinks, DLQ, audit
//! ```
//!
//! Invariants:
//! - Order: the reader numbers records (`seq`, 1-based, going on after the audit log's last
//!   entry for a live feed) and batches in reading order; a worker processes a batch's records
//!   in order; the writer writes batches in their numbers' order (holding the few that arrive
//!   early), and only the writer writes. So sink, DLQ and audit files are byte-identical
//!   across runs with a fixed clock, whatever the thread count. (Workers take whole batches,
//!   with no barrier between batches: splitting each batch across the pool left the cores
//!   idle a quarter of the time, waiting for the slower half.)
//! - Memory is bounded by the channel capacities times the batch size, plus one batch per
//!   worker and the batches held for reordering, not by the input: a worker does not take a
//!   batch more than a [`Window`] (2 per worker plus the channel's capacity) ahead of the last
//!   one written, even when one batch is slow.
//! - Exactly one disposition per source record: `delivered` (reached at least one sink),
//!   `dlq` (at least one DLQ entry; one entry per failing path) or `filtered`. A record that
//!   reached a sink on one branch and the DLQ on another counts as `dlq` (its sink lines are
//!   still written). Hence `records_in == delivered + dlq + filtered`. `http` sinks are
//!   sent a batch's records first ([`HttpSinks::send_batch`]), before anything of the batch is
//!   written: a record whose request the sink gave up on gets a DLQ entry there and then and
//!   is `dlq`, not `delivered`, so each record still has one disposition, and its audit entry
//!   names the sink.
//! - A panic while processing one record is caught and that record goes to the DLQ with
//!   `RT008`; it does not take the run down.
//! - Sources are a [`Feed`]: files (read in the reader thread) or live channels (MLLP
//!   listeners and Kafka consumers send [`RawInput`]s), one per source in priority order: the
//!   reader always takes the next record from the most urgent channel holding one, so
//!   interactive work overtakes a backfill that is queued (not dropped) behind a busy
//!   pipeline. Order is kept per channel (hence per connection, and per Kafka partition), not
//!   across sources. On a live feed the reader never waits for a
//!   full batch: a partial batch leaves after [`LINGER`] without a new record.
//! - A record may carry a [`Completion`]: the writer calls it with the record's [`Delivery`]
//!   only after its sink lines, DLQ entries and audit entry are written, flushed and synced to
//!   disk (`sync_data`), once per batch. That is what lets an ACK mean "durable".
//! - Checkpoints ([`RunControl`], `crate::state`): with a state store, the writer syncs every
//!   output and then saves the count of durable records, the output lengths and the audit
//!   head, every `checkpoint_every`; a resumed run reopens the outputs cut back to those
//!   lengths and the reader skips the durable records, so each record is written once. A
//!   stop flag (a signal) ends the reading early: the run drains, checkpoints and reports
//!   `interrupted`. Only a run whose input ended writes `run_completed` (with each `http`
//!   sink's retries). An `http` sink has no length to cut back: its requests are answered
//!   before the checkpoint that covers them, so a resume may send them again (at least
//!   once, under the same idempotency key; `crate::http_sink`). A `postgres` sink commits
//!   each batch's transaction before that checkpoint too, and a batch written again changes
//!   nothing (`crate::sinks::postgres`): exactly once. The rows its database refuses go to
//!   the DLQ like the records an `http` sink gave up on.
//! - The DLQ is a file or the state store's `dlq_entries` table ([`dlq::Out`]): the table's
//!   pending rows are committed wherever a file would be flushed or synced (before
//!   completions, checkpoints and the end), so every guarantee above holds for both; a
//!   checkpoint counts the run's rows, and a resume deletes its rows after the checkpoint
//!   instead of cutting a file back (`crate::dlq` has the crash analysis).
//! - A live feed and a replay append to their outputs (never truncating what was
//!   acknowledged or delivered), and their writer flushes its buffers to the OS whenever it
//!   has caught up: a record never waits in memory for records that may not come.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use sluice_compiler::plan::{ComponentKind, FailIfPlan, MaskAction};

use crate::audit::{self, Chain};
use crate::compile::{Compiled, Prep};
use crate::dlq::{self, Rejection};
use crate::error::RunError;
use crate::findings;
use crate::hl7::{BatchReader, Item};
use crate::http_sink::{HttpSink, HttpSinks};
use crate::progress::Progress;
use crate::record::{Envelope, Payload, Record};
use crate::sink;
use crate::sinks::parquet::{ParquetSink, ParquetSinks, Start as ParquetStart};
use crate::sinks::postgres::{PgSink, PgSinks};
use crate::source;
use crate::stages::{self, Step};
use crate::state::{self, Checkpoint, InputFile, Status, Store};
use crate::time::Clock;

const CHANNEL_BATCHES: usize = 4;

/// How long a live feed's reader waits for more records before it hands on a partial batch.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// One record as a source read it.
pub struct RawInput {
    /// Component index of the source.
    pub source: usize,
    /// Where it came from: a file path, or an MLLP peer and connection number.
    pub file: Arc<str>,
    pub offset: u64,
    pub index: u64,
    /// Set by the reader thread (reading order).
    pub seq: u64,
    pub bytes: Vec<u8>,
    /// Set for an item that goes straight to the DLQ (envelope, continuation or framing
    /// problems).
    pub problem: Option<Rejection>,
    /// Called by the writer once the record's outputs are durable.
    pub completion: Option<Completion>,
    /// Key and headers of a bus message (Kafka), carried into the record's envelope.
    pub bus: Option<Arc<crate::record::BusMeta>>,
}

/// What became of a record, for whoever waits on it (an MLLP connection, to build its ACK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub event: Event,
    /// The record was rejected by its source step (decode, parse, profile, framing): an AR,
    /// where a rejection later in the pipeline is an AE.
    pub rejected_at_source: bool,
    /// The DLQ findings (codes, paths, messages; never values).
    pub findings: Vec<dlq::Finding>,
    /// What the sender should hear of a record that went on: the segments dropped from it
    /// (`bad_segments: drop`), each with its DLQ entry.
    pub warnings: Vec<dlq::Finding>,
}

/// A callback the writer runs with the record's [`Delivery`] once its outputs are synced.
pub struct Completion(Box<dyn FnOnce(Delivery) + Send>);

impl Completion {
    pub fn new(f: impl FnOnce(Delivery) + Send + 'static) -> Completion {
        Completion(Box::new(f))
    }

    /// Runs the callback (a record's outputs are synced).
    pub fn complete(self, delivery: Delivery) {
        (self.0)(delivery);
    }
}

/// Where the records come from.
pub enum Feed {
    /// The plan's file sources' files ([`file_inputs`]: plan order, files sorted, as they were
    /// when the run started).
    Files(Vec<InputFile>),
    /// Records sent by live sources (such as MLLP listeners) until every sender is dropped:
    /// one channel per source, most urgent first. When several hold records, the reader takes
    /// from the first (a priority queue); the others wait in their bounded channels.
    Live(Vec<crossbeam_channel::Receiver<RawInput>>),
    /// Records given whole (a DLQ replay).
    Records(Vec<RawInput>),
}

impl Feed {
    /// A live feed or a replay adds to what earlier runs wrote (acknowledged or delivered
    /// records); a file run starts its outputs over (or resumes them).
    fn appends(&self) -> bool {
        !matches!(self, Feed::Files(_))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Delivered,
    Dlq,
    Filtered,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Delivered => "delivered",
            Event::Dlq => "dlq",
            Event::Filtered => "filtered",
        }
    }
}

pub struct Processed {
    seq: u64,
    source: usize,
    file: Arc<str>,
    index: u64,
    /// Byte offset of the message in its file (or stream).
    offset: u64,
    /// PHI leaves masked (not kept) in the record a sink wrote (the most over its sinks).
    masked: u32,
    /// The code of its first DLQ entry, if it has one (for the log).
    code: Option<&'static str>,
    control_id: Option<String>,
    sink_lines: Vec<(usize, String)>,
    dlq_lines: Vec<dlq::Line>,
    /// DLQ entries of parts the source step dropped (`bad_segments: drop`), and what the audit
    /// says of them. They do not make the record a DLQ record.
    part_lines: Vec<dlq::Line>,
    dropped: Vec<audit::Dropped>,
    event: Event,
    component: Arc<str>,
    sinks: Vec<String>,
    warned: bool,
    completion: Option<Completion>,
    rejected_at_source: bool,
    findings: Vec<dlq::Finding>,
    /// Kept when the record reached an `http`, `postgres` or `kafka` sink: if the endpoint,
    /// database or broker refuses it, the writer gives it a DLQ entry.
    raw: Option<Refusable>,
}

/// What the DLQ entry of a record a sink refuses after the fact needs: its raw message, the
/// message's offset, and the key and headers it came with (a replay gives them back).
struct Refusable {
    raw: Arc<[u8]>,
    offset: u64,
    bus: Option<Arc<crate::record::BusMeta>>,
}

#[derive(Default)]
struct Acc {
    sink_lines: Vec<(usize, String)>,
    sinks: Vec<String>,
    dlq_lines: Vec<dlq::Line>,
    dlq_component: Option<Arc<str>>,
    filtered_by: Option<Arc<str>>,
    warned: bool,
    control_id: Option<String>,
    /// See [`Processed::masked`].
    masked: u32,
    /// The code of the record's first DLQ entry.
    code: Option<&'static str>,
    /// Findings of the DLQ entries (handed on only to a record's completion, if it has one).
    findings: Vec<dlq::Finding>,
    rejected_at_source: bool,
    /// The record reached a sink that may refuse it in the writer (`http`, `postgres`).
    refusable: bool,
}

struct Ctx<'c, 'p> {
    c: &'c Compiled<'p>,
    run_id: &'c str,
    now: &'c str,
}

impl Ctx<'_, '_> {
    /// What this batch's DLQ entries share.
    fn dlq(&self) -> dlq::Writing<'_> {
        dlq::Writing { run_id: self.run_id, plan_hash: &self.c.plan.hash, at: self.now, key: self.c.dlq_key.as_ref() }
    }

    fn reject(&self, idx: usize, rec: &Record, r: &Rejection, acc: &mut Acc) {
        let name = &self.c.names[idx];
        acc.dlq_lines.push(dlq::entry_line(&self.dlq(), &rec.env, &rec.raw, name, r));
        acc.dlq_component.get_or_insert_with(|| Arc::clone(name));
        acc.code.get_or_insert(r.code);
        acc.findings.extend(r.findings.iter().cloned());
        acc.rejected_at_source |= matches!(self.c.plan.components[idx].kind, ComponentKind::Source(_));
    }

    /// The DLQ entries of the parts source `idx` dropped from the record `env` describes, and
    /// their audit descriptions. Written whatever becomes of the record, so that what was cut
    /// out of it is always in the DLQ on its own.
    #[cold]
    fn dropped_parts(
        &self,
        idx: usize,
        env: &Envelope,
        dropped: &[source::DroppedPart],
    ) -> (Vec<dlq::Line>, Vec<audit::Dropped>) {
        let stage = &self.c.names[idx];
        dropped
            .iter()
            .map(|part| {
                let line = dlq::part_entry_line(&self.dlq(), env, part, stage);
                let dlq = line.id.clone();
                (line, audit::Dropped { segment: part.segment, offset: part.offset, code: part.code, dlq })
            })
            .unzip()
    }

    /// The source step of a `format: fhir` source, then the rest of the graph
    /// (`crate::fhir_source`): a resource of another type, or an entry without one, is
    /// filtered at the source.
    fn fhir_record(
        &self,
        idx: usize,
        index: u64,
        src: &crate::fhir_source::FhirSource,
        mut rec: Record,
        acc: &mut Acc,
    ) {
        let decoded = if rec.env.deleted() {
            crate::fhir_source::decode_deletion(&rec.raw).map(Some)
        } else {
            crate::fhir_source::decode(&rec.raw, rec.env.offset, index, src)
        };
        match decoded {
            Err(r) => self.reject(idx, &rec, &r, acc),
            Ok(None) => {
                acc.filtered_by.get_or_insert_with(|| Arc::clone(&self.c.names[idx]));
            }
            Ok(Some(d)) => {
                acc.control_id.clone_from(&d.id);
                rec.env.control_id = d.id;
                rec.env.message_type = Some(d.resource_type);
                rec.env.warnings = d.warnings;
                rec.payload = Payload::Doc(d.resource);
                self.walk(idx, rec, acc);
            }
        }
    }

    /// The source step of a `webhook` source: a queued event read into its record
    /// (`crate::webhooks::event`), then the rest of the graph.
    fn webhook_record(&self, idx: usize, rec: Record, acc: &mut Acc) {
        let decoded = crate::webhooks::event::decode(&rec.raw).map(|d| (d.event_id, d.event_type, d.doc));
        self.document_record(idx, rec, acc, decoded);
    }

    /// The source step of a `stripe` source: a list item read into its record
    /// (`crate::finance::source::decode`), then the rest of the graph.
    fn stripe_record(
        &self,
        idx: usize,
        lists: &[sluice_compiler::stripe::StripeObjectPlan],
        rec: Record,
        acc: &mut Acc,
    ) {
        let decoded = crate::finance::source::decode(&rec.raw, lists).map(|d| (d.id, d.object, d.doc));
        self.document_record(idx, rec, acc, decoded);
    }

    /// The source step of a `quickbooks` source: an entity read into its record
    /// (`crate::finance::quickbooks_source::decode`), then the rest of the graph.
    fn quickbooks_record(&self, idx: usize, entities: &[String], rec: Record, acc: &mut Acc) {
        let named = bus_header(&rec, crate::finance::quickbooks_source::ENTITY_HEADER);
        let decoded = crate::finance::quickbooks_source::decode(&rec.raw, named.as_deref(), entities)
            .map(|d| (d.id, d.entity, d.doc));
        self.document_record(idx, rec, acc, decoded);
    }

    /// The source step of a `plaid` source: an account or a transaction read into its record
    /// (`crate::finance::plaid_source::decode`), then the rest of the graph.
    fn plaid_record(&self, idx: usize, objects: &[String], rec: Record, acc: &mut Acc) {
        let named = bus_header(&rec, crate::finance::plaid_source::OBJECT_HEADER);
        let decoded =
            crate::finance::plaid_source::decode(&rec.raw, named.as_deref(), objects).map(|d| (d.id, d.object, d.doc));
        self.document_record(idx, rec, acc, decoded);
    }

    /// A JSON document a source step decoded (its id, its type, the document) becomes the
    /// record's payload, id and message type before the rest of the graph; a rejection goes to
    /// the DLQ.
    fn document_record(
        &self,
        idx: usize,
        mut rec: Record,
        acc: &mut Acc,
        decoded: Result<(String, String, crate::record::Doc), Rejection>,
    ) {
        match decoded {
            Err(r) => self.reject(idx, &rec, &r, acc),
            Ok((id, kind, doc)) => {
                acc.control_id = Some(id.clone());
                rec.env.control_id = Some(id);
                rec.env.message_type = Some(kind);
                rec.payload = Payload::Doc(doc);
                self.walk(idx, rec, acc);
            }
        }
    }

    /// The provenance of the finance source a record came from, for `connection()` and
    /// `envelope(...)`; found by the record's source, so a replayed record has it too.
    fn provenance_of(&self, rec: &Record) -> Option<&crate::compile::SourceProvenance> {
        self.c.provenance[self.source_index(rec)?].as_ref()
    }

    /// The component index of the source a record came from (its envelope names it).
    fn source_index(&self, rec: &Record) -> Option<usize> {
        self.c.names.iter().position(|n| *n == rec.env.source)
    }

    /// The Bundle a FHIR record came from, indexed by its source for `resolve()`.
    fn bundle_of(&self, rec: &Record) -> Option<Arc<crate::fhir_source::BundleIndex>> {
        match &self.c.preps[self.source_index(rec)?] {
            Prep::FhirSource(src) => src.bundle(&rec.env.file),
            _ => None,
        }
    }

    /// The source step of a `format: x12` source, then the rest of the graph
    /// (`crate::x12_source`): a set of a guide the source does not read is filtered.
    fn x12_record(&self, idx: usize, src: &crate::x12_source::X12Source, mut rec: Record, acc: &mut Acc) {
        match crate::x12_source::decode(&rec.raw, src) {
            Err(r) => self.reject(idx, &rec, &r, acc),
            Ok(None) => {
                acc.filtered_by.get_or_insert_with(|| Arc::clone(&self.c.names[idx]));
            }
            Ok(Some(d)) => {
                acc.control_id = Some(d.id.clone());
                rec.env.control_id = Some(d.id);
                rec.env.message_type = Some(d.set_id);
                rec.env.warnings = d.warnings;
                rec.payload = Payload::Doc(d.doc);
                self.walk(idx, rec, acc);
            }
        }
    }

    /// Runs the record through component `idx` and everything downstream of it.
    fn walk(&self, idx: usize, rec: Record, acc: &mut Acc) {
        let c = self.c;
        let comp = &c.plan.components[idx];
        let name = &*c.names[idx];
        let step = match (&comp.kind, &c.preps[idx]) {
            (ComponentKind::Validate(v), Prep::Validate(re)) => stages::validate::run(name, v, re, &c.prepared, rec),
            (ComponentKind::Map(m), Prep::Map(t, guide)) => {
                let bundle = self.bundle_of(&rec);
                let provenance = self.provenance_of(&rec);
                let input = stages::map::Origin { bundle: bundle.as_deref(), provenance, x12_guide: *guide };
                stages::map::run(name, &c.emits[idx], m, t, &c.prepared, rec, input)
            }
            (ComponentKind::Mask(m), Prep::Mask(keys)) => stages::mask::run(m, keys, rec),
            (ComponentKind::Filter(f), _) => stages::route::filter(name, f, &c.prepared, rec),
            (ComponentKind::Route(r), _) => stages::route::route(name, r, &c.prepared, rec),
            (ComponentKind::Sink(s), _) => {
                acc.refusable |= s.http.is_some() || s.postgres.is_some() || s.kafka.is_some();
                acc.warned |= !rec.env.warnings.is_empty();
                if let Some(outcomes) = &rec.env.masking {
                    let masked = outcomes.values().filter(|o| o.action != MaskAction::Keep).count();
                    acc.masked = acc.masked.max(masked as u32);
                }
                let line = match &s.postgres {
                    // The compiler lets only records of an output schema reach a table.
                    Some(pg) => match sink::finalized(&rec, self.run_id, self.now) {
                        Some(doc) => {
                            let row =
                                crate::sinks::postgres::row_line(&doc, &format!("{}-{}", self.run_id, rec.env.seq), pg);
                            if rec.env.deleted() { crate::sinks::postgres::deletion_line(&row) } else { row }
                        }
                        None => {
                            let r = Rejection::single(findings::INTERNAL, None, "an HL7 message reached a table sink");
                            self.reject(idx, &rec, &r, acc);
                            return;
                        }
                    },
                    None if s.kafka.is_some() => {
                        let Some(k) = &s.kafka else { return };
                        let hl7_key = match &c.preps[idx] {
                            Prep::RelayKey(path) => Some(path),
                            _ => None,
                        };
                        crate::kafka::sink::line(&rec, self.run_id, self.now, k, hl7_key)
                    }
                    None if s.amqp.is_some() => {
                        let Some(a) = &s.amqp else { return };
                        let hl7_key = match &c.preps[idx] {
                            Prep::RelayKey(path) => Some(path),
                            _ => None,
                        };
                        crate::amqp::sink::line(&rec, self.run_id, self.now, a, hl7_key)
                    }
                    None if s.parquet.is_some() => {
                        let Some(pq) = &s.parquet else { return };
                        let row = match sink::finalized(&rec, self.run_id, self.now) {
                            Some(doc) => {
                                crate::sinks::parquet::row_line(&doc, &format!("{}-{}", self.run_id, rec.env.seq), pq)
                                    .map_err(|why| Rejection::single(findings::PARQUET_VALUE, None, why))
                            }
                            None => Err(Rejection::single(
                                findings::INTERNAL,
                                None,
                                "an HL7 message reached a Parquet sink",
                            )),
                        };
                        match row {
                            Ok(row) => row,
                            Err(r) => {
                                self.reject(idx, &rec, &r, acc);
                                return;
                            }
                        }
                    }
                    None => match &s.csv {
                        Some(csv) => match sink::finalized(&rec, self.run_id, self.now) {
                            Some(doc) => {
                                crate::sinks::csv::line(&doc, &format!("{}-{}", self.run_id, rec.env.seq), &csv.columns)
                            }
                            None => {
                                let r =
                                    Rejection::single(findings::INTERNAL, None, "an HL7 message reached a CSV sink");
                                self.reject(idx, &rec, &r, acc);
                                return;
                            }
                        },
                        None => sink::render(&rec, self.run_id, self.now),
                    },
                };
                acc.sink_lines.push((idx, line));
                acc.sinks.push(name.to_string());
                return;
            }
            (_, _) => Step::Next(rec, None),
        };
        match step {
            Step::Next(rec, branch) => {
                let kids: Vec<usize> =
                    c.children[idx].iter().filter(|(_, b)| b.is_none() || *b == branch).map(|(k, _)| *k).collect();
                if kids.is_empty() {
                    let r = Rejection::single(
                        findings::DANGLING_COMPONENT,
                        None,
                        format!("component `{name}` feeds no other component and is not a sink"),
                    );
                    self.reject(idx, &rec, &r, acc);
                    return;
                }
                let last = kids.len() - 1;
                let mut rec = Some(rec);
                for (i, k) in kids.into_iter().enumerate() {
                    let r = if i == last { rec.take() } else { rec.clone() };
                    if let Some(r) = r {
                        self.walk(k, r, acc);
                    }
                }
            }
            Step::Dlq(rec, r) => {
                acc.warned |= !rec.env.warnings.is_empty();
                self.reject(idx, &rec, &r, acc);
            }
            Step::Filtered(_) => {
                acc.filtered_by.get_or_insert_with(|| Arc::clone(&c.names[idx]));
            }
        }
    }

    fn process(&self, mut raw: RawInput) -> Processed {
        let completion = raw.completion.take();
        let c = self.c;
        let env = Envelope {
            source: Arc::clone(&c.names[raw.source]),
            file: Arc::clone(&raw.file),
            offset: raw.offset,
            index: raw.index,
            seq: raw.seq,
            control_id: None,
            message_type: None,
            timezone: match &c.preps[raw.source] {
                Prep::Source(p) => Arc::clone(&p.zone),
                _ => Arc::from("Z"),
            },
            errors: Vec::new(),
            warnings: Vec::new(),
            classes: Default::default(),
            masking: None,
            bus: raw.bus.take(),
        };
        let rec = Record {
            env,
            payload: Payload::Doc(crate::record::Doc::Null),
            schema: Arc::clone(&c.emits[raw.source]),
            raw: raw.bytes.into(),
        };
        let mut acc = Acc::default();
        let mut parts = (Vec::new(), Vec::new());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut acc = Acc::default();
            let mut rec = rec.clone();
            if let (None, Prep::FhirSource(src)) = (&raw.problem, &c.preps[raw.source]) {
                self.fhir_record(raw.source, raw.index, src, rec, &mut acc);
                return acc;
            }
            if let (None, Prep::X12Source(src)) = (&raw.problem, &c.preps[raw.source]) {
                self.x12_record(raw.source, src, rec, &mut acc);
                return acc;
            }
            if let (None, Prep::WebhookSource) = (&raw.problem, &c.preps[raw.source]) {
                self.webhook_record(raw.source, rec, &mut acc);
                return acc;
            }
            if let (None, Prep::PlaidSource(objects)) = (&raw.problem, &c.preps[raw.source]) {
                self.plaid_record(raw.source, objects, rec, &mut acc);
                return acc;
            }
            if let (None, Prep::QuickBooksSource(entities)) = (&raw.problem, &c.preps[raw.source]) {
                self.quickbooks_record(raw.source, entities, rec, &mut acc);
                return acc;
            }
            if let (None, Prep::StripeSource(lists)) = (&raw.problem, &c.preps[raw.source]) {
                self.stripe_record(raw.source, lists, rec, &mut acc);
                return acc;
            }
            let decoded = match (&raw.problem, &c.preps[raw.source]) {
                (Some(problem), _) => Err(problem.clone()),
                (None, Prep::Source(profile)) => source::decode(&rec.raw, raw.offset, profile),
                _ => Err(Rejection::single(findings::INTERNAL, None, "record entered at a non-source component")),
            };
            match decoded {
                Err(r) => self.reject(raw.source, &rec, &r, &mut acc),
                Ok(d) => {
                    acc.control_id.clone_from(&d.control_id);
                    rec.env.control_id = d.control_id;
                    if !d.dropped.is_empty() {
                        parts = self.dropped_parts(raw.source, &rec.env, &d.dropped);
                    }
                    rec.env.message_type = d.message_type;
                    rec.env.warnings = d.warnings;
                    rec.payload = Payload::Hl7(Arc::new(d.message));
                    self.walk(raw.source, rec, &mut acc);
                }
            }
            acc
        }));
        match outcome {
            Ok(a) => acc = a,
            Err(_) => {
                let r = Rejection::single(findings::INTERNAL, None, "internal error while processing the record");
                self.reject(raw.source, &rec, &r, &mut acc);
            }
        }
        let (event, component) = if !acc.dlq_lines.is_empty() {
            (Event::Dlq, acc.dlq_component.clone().unwrap_or_else(|| Arc::clone(&c.names[raw.source])))
        } else if !acc.sinks.is_empty() {
            (Event::Delivered, Arc::from(acc.sinks[0].as_str()))
        } else {
            (Event::Filtered, acc.filtered_by.clone().unwrap_or_else(|| Arc::clone(&c.names[raw.source])))
        };
        Processed {
            seq: raw.seq,
            source: raw.source,
            file: raw.file,
            index: raw.index,
            offset: raw.offset,
            masked: acc.masked,
            code: acc.code,
            control_id: acc.control_id,
            sink_lines: acc.sink_lines,
            dlq_lines: acc.dlq_lines,
            part_lines: parts.0,
            dropped: parts.1,
            event,
            component,
            sinks: acc.sinks,
            warned: acc.warned,
            rejected_at_source: acc.rejected_at_source,
            findings: if completion.is_some() { acc.findings } else { Vec::new() },
            completion,
            raw: acc.refusable.then(|| Refusable {
                raw: Arc::clone(&rec.raw),
                offset: raw.offset,
                bus: rec.env.bus.clone(),
            }),
        }
    }
}

/// Counts the writer keeps (over the whole run: a resumed run starts from its checkpoint's).
#[derive(Default, Debug)]
pub struct Totals {
    pub records: crate::counts::RecordCounts,
    pub per_source: Vec<(String, u64)>,
    pub per_sink: Vec<(String, u64)>,
    /// Retries per `http` sink, in this invocation (not kept in checkpoints).
    pub per_sink_retries: Vec<(String, u64)>,
    /// The run stopped on a signal before its input ended.
    pub interrupted: bool,
}

impl Totals {
    fn counts(&self) -> state::Counts {
        state::Counts {
            records: self.records,
            per_source: self.per_source.iter().map(|(_, n)| *n).collect(),
            per_sink: self.per_sink.iter().map(|(_, n)| *n).collect(),
        }
    }

    /// Starts from a checkpoint's counts (the names are the plan's, already in place).
    fn restore(&mut self, c: &state::Counts) {
        self.records = c.records;
        for (slot, n) in self.per_source.iter_mut().zip(&c.per_source) {
            slot.1 = *n;
        }
        for (slot, n) in self.per_sink.iter_mut().zip(&c.per_sink) {
            slot.1 = *n;
        }
    }
}

/// How a run starts, keeps its place, stops, and reports its progress.
#[derive(Default)]
pub struct RunControl {
    /// Where the run starts: the default (nothing done) for a new run, the last checkpoint for
    /// a resumed one.
    pub start: Checkpoint,
    /// How many times the run was resumed (counted in the audit's `run_completed`).
    pub resumes: u32,
    /// The state store, the run's key in it, and how often to save a checkpoint.
    pub store: Option<(Store, i64, Duration)>,
    /// Set (by a signal handler) to stop reading: the run drains what is in flight, saves a
    /// checkpoint and ends as interrupted.
    pub stop: Option<Arc<AtomicBool>>,
    /// Where the writer publishes its counts after each batch.
    pub progress: Option<Arc<Progress>>,
}

/// The input files of the plan's file sources, in reading order, as they are now; for an
/// object-store source, the objects a listing finds now, but those in `taken` (URL and ETag:
/// what earlier runs took, [`crate::state::Store::taken_objects`]).
pub fn file_inputs(
    c: &Compiled<'_>,
    taken: &std::collections::HashSet<(String, String)>,
) -> Result<Vec<InputFile>, RunError> {
    let mut inputs = Vec::new();
    for (i, comp) in c.plan.components.iter().enumerate() {
        if let ComponentKind::Source(s) = &comp.kind {
            if let Some(remote) = c.stores.get(i) {
                inputs.extend(crate::object_stores::list::list(remote, i, &comp.name, &s.paths, taken)?);
                continue;
            }
            for path in source::expand(&comp.name, &s.paths)? {
                inputs.push(InputFile::stat(i, &path)?);
            }
        }
    }
    Ok(inputs)
}

/// How far ahead of the writer the workers may go: a worker waits before taking batch `n` on
/// while `n >= written + size`. That bounds the batches the writer holds for reordering when
/// one batch is slow (a huge message) while the other workers go on.
struct Window {
    written: std::sync::Mutex<u64>,
    moved: std::sync::Condvar,
    size: u64,
}

impl Window {
    /// Waits until batch `n` is inside the window; `false` if `give_up` turned true meanwhile.
    fn wait_for(&self, n: u64, give_up: impl Fn() -> bool) -> bool {
        let Ok(mut written) = self.written.lock() else { return false };
        while n >= *written + self.size {
            if give_up() {
                return false;
            }
            match self.moved.wait_timeout(written, Duration::from_millis(20)) {
                Ok((w, _)) => written = w,
                Err(_) => return false,
            }
        }
        true
    }

    /// The writer has written every batch before `next`.
    fn advance(&self, next: u64) {
        if let Ok(mut written) = self.written.lock() {
            *written = next;
        }
        self.moved.notify_all();
    }
}

/// A batch of raw records as the reader hands it on: numbered, so the writer can put the
/// workers' results back in reading order.
type RawBatch = (u64, Result<Vec<RawInput>, RunError>);

/// Numbers the batches the reader sends.
struct BatchSender {
    tx: crossbeam_channel::Sender<RawBatch>,
    next: u64,
}

impl BatchSender {
    /// `false` when nobody receives any more (the run is stopping).
    fn send(&mut self, batch: Result<Vec<RawInput>, RunError>) -> bool {
        let n = self.next;
        self.next += 1;
        self.tx.send((n, batch)).is_ok()
    }
}

/// How the CPU step tells the writer the run ended.
enum End {
    /// The input ended: write `run_completed`.
    Completed,
    /// A signal stopped the reader: save a checkpoint, no `run_completed`.
    Interrupted,
    /// The reader or the CPU step failed: the last checkpoint stands.
    Failed,
}

enum ToWriter {
    /// Batch number `n`'s results (batches may arrive out of order).
    Batch(u64, Vec<Processed>),
    End(End),
}

struct Outputs {
    /// Unique sink files: path and writer.
    files: Vec<(String, std::io::BufWriter<std::fs::File>)>,
    /// Component index -> (index into `files`, index into `per_sink`).
    sink_of: Vec<Option<(usize, usize)>>,
    /// The DLQ: a file, or the state store's table ([`dlq::Out`]).
    dlq: dlq::Out,
    audit: Option<(String, std::io::BufWriter<std::fs::File>)>,
    /// `http` sinks: no file, nothing to sync; each request is answered before the writer
    /// goes on.
    http: HttpSinks,
    /// `postgres` sinks: each batch committed before the writer goes on.
    pg: PgSinks,
    /// `parquet` sinks: their files are finished (renamed) at each checkpoint.
    parquet: ParquetSinks,
    /// `kafka` sinks: each batch acknowledged by the brokers before the writer goes on.
    kafka: crate::kafka::sink::KafkaSinks,
    /// `amqp` sinks: each batch confirmed by the server before the writer goes on.
    amqp: crate::amqp::sink::AmqpSinks,
}

impl Outputs {
    /// Second handles on every output file, for [`flush_in_background`].
    fn handles(&self) -> Vec<std::fs::File> {
        self.files
            .iter()
            .map(|(path, w)| (path, w))
            .chain(self.dlq.file())
            .chain(self.audit.iter().map(|(path, w)| (path, w)))
            .filter_map(|(_, w)| w.get_ref().try_clone().ok())
            .collect()
    }
}

/// How often [`flush_in_background`] pushes written data to disk.
const BACKGROUND_FLUSH: Duration = Duration::from_millis(250);

/// Pushes what the writer has written to disk (`sync_data` on second handles) every
/// [`BACKGROUND_FLUSH`] until `done` is set, so the page cache never holds much unwritten
/// output: the syncs the writer itself must wait for (before ACKs, checkpoints and at the end)
/// then have little left to do, instead of writing the whole run's output at the end (about
/// 0.4 s for a million records). Errors are left to the writer's own syncs to report.
fn flush_in_background(files: Vec<std::fs::File>, done: &AtomicBool) {
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited >= BACKGROUND_FLUSH {
            waited = Duration::ZERO;
            for f in &files {
                let _ = f.sync_data();
            }
        }
    }
}

/// Opens the outputs: created empty for a new file run (the audit log's previous file kept
/// as an archive, [`audit::archive`]), cut back to the checkpoint's lengths for
/// a resumed one, appended to when the run adds to earlier runs' outputs (`live`: a live
/// feed, whose records were acknowledged, or a new run of object-store sources, which reads
/// only objects no earlier run took). A DLQ in the state store is treated alike
/// ([`dlq::TableStart`]). An object-store sink's staging file is an exception: it holds one
/// run's records, uploaded as one object when the run completes. The audit log is another:
/// only a live feed (`chain_goes_on`) goes on with the log's chain; a run of object-store
/// sources keeps the previous log as an archive, as a new file run does, since its records
/// are numbered from 1 like any file run's.
fn open_outputs(
    c: &Compiled<'_>,
    run_id: &str,
    totals: &mut Totals,
    start: &Checkpoint,
    live: bool,
    chain_goes_on: bool,
) -> Result<Outputs, RunError> {
    let resuming = !live && (start.records > 0 || !start.outputs.is_empty());
    let open = |path: &str| -> Result<std::io::BufWriter<std::fs::File>, RunError> {
        if live {
            return sink::append(path);
        }
        if !resuming {
            return sink::create(path);
        }
        match start.outputs.iter().find(|(p, _)| p == path) {
            Some((_, len)) => sink::reopen(path, *len),
            None => Err(RunError::new(
                findings::RESUME_INPUT_CHANGED,
                format!("output `{path}` is not in the checkpoint of the run being resumed"),
            )
            .with_help("the outputs changed since the run stopped; start over with `sluice run --restart`")),
        }
    };
    let mut files: Vec<(String, std::io::BufWriter<std::fs::File>)> = Vec::new();
    let mut sink_of = vec![None; c.plan.components.len()];
    let mut http = HttpSinks::default();
    let mut pg = PgSinks::default();
    let mut parquet = ParquetSinks::default();
    let mut kafka = crate::kafka::sink::KafkaSinks::default();
    let mut amqp = crate::amqp::sink::AmqpSinks::default();
    let parquet_start = if live {
        ParquetStart::Live
    } else if resuming {
        ParquetStart::Resume { records: start.records }
    } else {
        ParquetStart::New
    };
    for (i, comp) in c.plan.components.iter().enumerate() {
        match &comp.kind {
            ComponentKind::Sink(s) if s.http.is_some() => {
                if let Some(plan) = &s.http {
                    http.add(i, totals.per_sink.len(), HttpSink::open(&c.names[i], plan, c.plan.state.as_ref())?);
                }
                totals.per_sink.push((comp.name.clone(), 0));
            }
            ComponentKind::Sink(s) if s.postgres.is_some() => {
                if let Some(plan) = &s.postgres {
                    pg.add(i, totals.per_sink.len(), PgSink::open(&c.names[i], plan)?);
                }
                totals.per_sink.push((comp.name.clone(), 0));
            }
            ComponentKind::Sink(s) if s.kafka.is_some() => {
                if let Some(plan) = &s.kafka {
                    kafka.add(i, totals.per_sink.len(), crate::kafka::sink::KafkaSink::open(&c.names[i], plan)?);
                }
                totals.per_sink.push((comp.name.clone(), 0));
            }
            ComponentKind::Sink(s) if s.amqp.is_some() => {
                if let Some(plan) = &s.amqp {
                    amqp.add(i, totals.per_sink.len(), crate::amqp::sink::AmqpSink::open(&c.names[i], plan)?);
                }
                totals.per_sink.push((comp.name.clone(), 0));
            }
            ComponentKind::Sink(s) if s.parquet.is_some() => {
                if let Some(plan) = &s.parquet {
                    let sink = ParquetSink::open(&c.names[i], &s.path, plan, run_id, parquet_start)?;
                    parquet.add(i, totals.per_sink.len(), sink);
                }
                totals.per_sink.push((comp.name.clone(), 0));
            }
            ComponentKind::Sink(s) => {
                let f = match files.iter().position(|(p, _)| *p == s.path) {
                    Some(f) => f,
                    None => {
                        let mut w =
                            if s.object.is_some() && !resuming { sink::create(&s.path)? } else { open(&s.path)? };
                        if let Some(csv) = &s.csv {
                            crate::sinks::csv::write_or_check_header(&mut w, &comp.name, &s.path, &csv.columns)?;
                        }
                        files.push((s.path.clone(), w));
                        files.len() - 1
                    }
                };
                sink_of[i] = Some((f, totals.per_sink.len()));
                totals.per_sink.push((comp.name.clone(), 0));
            }
            ComponentKind::Source(_) => totals.per_source.push((comp.name.clone(), 0)),
            _ => {}
        }
    }
    let table_start = match (live, resuming) {
        (true, _) => dlq::TableStart::Append,
        (false, false) => dlq::TableStart::Fresh,
        (false, true) => dlq::TableStart::Resume { run_id, records: start.records, rows: start.dlq_rows },
    };
    let dlq = dlq::Out::open(c.plan, open, table_start)?;
    let audit = match &c.plan.audit {
        Some(a) => {
            if !chain_goes_on && !resuming {
                audit::archive(std::path::Path::new(&a.path)).map_err(|e| {
                    RunError::new(findings::IO, format!("audit log `{}`: cannot archive it: {}", a.path, e.kind()))
                        .with_help(
                            "a new run keeps the previous audit log as `<path>.<n>`; make its directory writable",
                        )
                })?;
            }
            Some((a.path.clone(), open(&a.path)?))
        }
        None => None,
    };
    totals.restore(&start.counts);
    totals.per_sink_retries = http.retries();
    Ok(Outputs { files, sink_of, dlq, audit, http, pg, parquet, kafka, amqp })
}

/// One record of a file as its source cuts it: offset, index in the file, bytes, and the
/// rejection of a piece that cannot be a record.
type FileItem = (u64, usize, Vec<u8>, Option<Rejection>);

/// Reads the input files into batches on `raw_tx`. Records numbered up to `skip` (durable in
/// the checkpoint being resumed) are read again, to number the rest exactly as the first run
/// did (batch envelopes included), but not sent. Returns `true` when `stop` ended the reading
/// early.
fn read_files(
    inputs: &[InputFile],
    preps: &[Prep],
    stores: &crate::object_stores::Stores,
    batch_size: usize,
    skip: u64,
    stop: [Option<&AtomicBool>; 2],
    raw_tx: &mut BatchSender,
) -> bool {
    let mut seq = 0u64;
    let mut batch = Vec::with_capacity(batch_size);
    let stopped = || stop.iter().flatten().any(|s| s.load(Ordering::Relaxed));
    for input in inputs {
        let path = std::path::Path::new(&input.path);
        let file: Arc<str> = Arc::from(input.path.as_str());
        let remote = stores.get(input.source);
        let open = || -> Result<Box<dyn std::io::Read + Send>, RunError> {
            match remote {
                Some(remote) => Ok(Box::new(crate::object_stores::read::open(remote, input))),
                None => source::open_local(path),
            }
        };
        let items: Result<Box<dyn Iterator<Item = std::io::Result<FileItem>>>, RunError> = match preps.get(input.source)
        {
            Some(Prep::FhirSource(src)) => crate::fhir_source::pieces(&open, path, src).map(|pieces| {
                Box::new(pieces.map(|p| p.map(|p| (p.offset, p.index as usize, p.bytes, p.problem)))) as _
            }),
            Some(Prep::X12Source(src)) => crate::x12_source::pieces(&open, path, src).map(|pieces| {
                Box::new(pieces.map(|p| p.map(|p| (p.offset, p.index as usize, p.bytes, p.problem)))) as _
            }),
            // Stripe objects, QuickBooks entities and Plaid objects from a file (`sluice
            // test`): one JSON object a line.
            Some(Prep::StripeSource(_) | Prep::QuickBooksSource(_) | Prep::PlaidSource(_)) => open().map(|bytes| {
                Box::new(crate::finance::source::lines(bytes).map(|l| l.map(|(o, i, b)| (o, i, b, None)))) as _
            }),
            _ => open().and_then(|bytes| source::open_stream(bytes, path)).map(|reader| {
                Box::new(BatchReader::new(reader).map(|item| {
                    item.map(|item| match item {
                        Item::Message(raw) => (raw.offset as u64, raw.index, raw.bytes, None),
                        Item::Problem(p) => {
                            let r = source::problem_rejection(&p, p.offset as u64);
                            (p.offset as u64, p.index, p.bytes, Some(r))
                        }
                    })
                })) as _
            }),
        };
        let items = match items {
            Ok(items) => items,
            // Changed since the listing before a record of it was read (RT137): nothing of it
            // is taken; the next run lists and reads its new version.
            Err(e) if e.code == findings::OBJECT_VANISHED => {
                tracing::warn!(code = findings::OBJECT_VANISHED, "an object vanished before it was read");
                continue;
            }
            Err(e) => {
                raw_tx.send(Err(e));
                return false;
            }
        };
        for item in items {
            if stopped() {
                tracing::info!(records = seq, "reading stopped early (a signal, or fail_if)");
                if !batch.is_empty() {
                    raw_tx.send(Ok(batch));
                }
                return true;
            }
            let (offset, index, bytes, problem) = match item {
                Ok(item) => item,
                // An object deleted or overwritten mid-read (RT137): what was read of it goes
                // on; the rest of that version is gone, and the run goes on with the next object.
                Err(e) if crate::object_stores::read::vanished(&e) => {
                    tracing::warn!(code = findings::OBJECT_VANISHED, "an object vanished while it was read");
                    break;
                }
                Err(e) => {
                    raw_tx.send(Err(source::read_error(path, &e)));
                    return false;
                }
            };
            seq += 1;
            if seq <= skip {
                continue;
            }
            batch.push(RawInput {
                source: input.source,
                file: Arc::clone(&file),
                offset,
                index: index as u64,
                seq,
                bytes,
                problem,
                completion: None,
                bus: None,
            });
            if batch.len() >= batch_size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                if !raw_tx.send(Ok(full)) {
                    return false;
                }
            }
        }
    }
    if !batch.is_empty() {
        raw_tx.send(Ok(batch));
    }
    false
}

/// The next record of a live feed: from the first (most urgent) channel holding one, waiting
/// for one at most `wait` (`None`: as long as it takes). A channel is dropped from `channels`
/// once it is empty and its senders are gone; `Disconnected` means every one is.
fn next_live(
    channels: &mut Vec<crossbeam_channel::Receiver<RawInput>>,
    wait: Option<Duration>,
) -> Result<RawInput, crossbeam_channel::RecvTimeoutError> {
    use crossbeam_channel::{RecvTimeoutError, Select, TryRecvError};
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        let mut i = 0;
        while i < channels.len() {
            match channels[i].try_recv() {
                Ok(raw) => return Ok(raw),
                Err(TryRecvError::Empty) => i += 1,
                Err(TryRecvError::Disconnected) => {
                    channels.remove(i);
                }
            }
        }
        if channels.is_empty() {
            return Err(RecvTimeoutError::Disconnected);
        }
        // Wait until any channel has a record (or is closed), then take by priority again.
        let mut select = Select::new();
        for rx in channels.iter() {
            select.recv(rx);
        }
        let ready = match deadline {
            Some(d) => select.ready_deadline(d).is_ok(),
            None => {
                select.ready();
                true
            }
        };
        if !ready {
            return Err(RecvTimeoutError::Timeout);
        }
    }
}

/// Batches a live feed: a batch leaves when full, or [`LINGER`] after its last record. Records
/// are numbered from `after + 1`.
fn read_live(
    mut channels: Vec<crossbeam_channel::Receiver<RawInput>>,
    batch_size: usize,
    after: u64,
    raw_tx: &mut BatchSender,
) {
    let mut seq = after;
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        let next = next_live(&mut channels, if batch.is_empty() { None } else { Some(LINGER) });
        match next {
            Ok(mut raw) => {
                seq += 1;
                raw.seq = seq;
                batch.push(raw);
                if batch.len() < batch_size {
                    continue;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
        if !raw_tx.send(Ok(full)) {
            return;
        }
    }
    if !batch.is_empty() {
        raw_tx.send(Ok(batch));
    }
}

/// Flushes every output and syncs it to disk (before completions are called, before a
/// checkpoint is saved).
fn sync_outputs(
    files: &mut [(String, std::io::BufWriter<std::fs::File>)],
    dlq: &mut dlq::Out,
    audit: &mut Option<(String, std::io::BufWriter<std::fs::File>)>,
) -> Result<(), RunError> {
    flush_outputs(files, dlq, audit, true)
}

/// Hands what every output's buffer holds to the OS, and with `sync` to the disk.
fn flush_outputs(
    files: &mut [(String, std::io::BufWriter<std::fs::File>)],
    dlq: &mut dlq::Out,
    audit: &mut Option<(String, std::io::BufWriter<std::fs::File>)>,
    sync: bool,
) -> Result<(), RunError> {
    use std::io::Write;
    dlq.flush(sync)?;
    for (path, w) in files.iter_mut().chain(audit.iter_mut()) {
        w.flush()
            .and_then(|_| if sync { w.get_ref().sync_data() } else { Ok(()) })
            .map_err(|e| RunError::io("write", std::path::Path::new(path), &e))?;
    }
    Ok(())
}

/// The outputs' lengths, for a checkpoint (call after [`sync_outputs`]).
fn output_lengths(
    files: &[(String, std::io::BufWriter<std::fs::File>)],
    dlq: &dlq::Out,
    audit: &Option<(String, std::io::BufWriter<std::fs::File>)>,
) -> Result<Vec<(String, u64)>, RunError> {
    files
        .iter()
        .map(|(path, w)| (path, w))
        .chain(dlq.file())
        .chain(audit.iter().map(|(path, w)| (path, w)))
        .map(|(path, w)| {
            let len = w.get_ref().metadata().map_err(|e| RunError::io("read", std::path::Path::new(path), &e))?.len();
            Ok((path.clone(), len))
        })
        .collect()
}

/// Runs the plan until its feed ends (or `control.stop` is set), saving checkpoints in the
/// state store if there is one.
pub fn execute(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    feed: Feed,
    control: RunControl,
) -> Result<Totals, RunError> {
    let plan = c.plan;
    let RunControl { mut start, resumes, store, stop, progress } = control;
    // Object-store sources read only the objects no earlier run took, so a new run adds to
    // the earlier runs' outputs and DLQ as a live feed does, where a run of local files (which
    // reads them all again) starts them over; a resume still cuts back to its checkpoint. Only
    // a live feed goes on with the audit log's chain (see `open_outputs`).
    let incremental = matches!(feed, Feed::Files(_))
        && plan.components.iter().any(|comp| matches!(&comp.kind, ComponentKind::Source(s) if s.store.is_some()));
    let resumed = start.records > 0 || !start.outputs.is_empty();
    let feed_is_live = feed.appends();
    let live = feed_is_live || (incremental && !resumed);
    let events = if matches!(feed, Feed::Records(_)) {
        ("dlq_replay_started", "dlq_replay_completed")
    } else {
        ("run_started", "run_completed")
    };
    let mut totals = Totals::default();
    let resuming = !live && (start.records > 0 || !start.outputs.is_empty());
    let opened = open_outputs(c, run_id, &mut totals, &start, live, feed_is_live).and_then(|outputs| {
        // A live feed or a replay goes on numbering and chaining after the audit log's last
        // entry.
        match &plan.audit {
            Some(a) if feed_is_live => match audit::last_entry(std::path::Path::new(&a.path)) {
                Ok(Some((seq, hash))) => Ok((outputs, Some(seq), hash)),
                Ok(None) => Ok((outputs, None, String::new())),
                Err(e) => Err(RunError::new(findings::IO, format!("audit log: {e}"))
                    .with_help("move the file aside: the run then starts a new chain in a new file")),
            },
            _ => Ok((outputs, None, start.audit_head.clone())),
        }
    });
    let (outputs, last_in_log) = match opened {
        Ok((outputs, last, head)) => {
            start.audit_head = head;
            (outputs, last)
        }
        Err(e) => {
            // The run never started writing: the checkpoint it had still holds.
            if let Some((store, id, _)) = &store {
                let _ = store.set_status(*id, Status::Failed, &clock.now());
            }
            return Err(e);
        }
    };
    // The `run_started` entry's number (none for a resumed run, whose entry was written when
    // it first started); the records are numbered after it.
    let started_seq = match (resuming, last_in_log) {
        (true, _) => None,
        (false, Some(last)) => Some(last + 1),
        (false, None) => Some(0),
    };
    let first_seq_after = started_seq.unwrap_or(start.records);
    let input_files = match &feed {
        Feed::Files(inputs) => inputs.len(),
        _ => 0,
    };
    let source_slot: Vec<usize> = {
        let mut slot = vec![0; plan.components.len()];
        let sources =
            plan.components.iter().enumerate().filter(|(_, comp)| matches!(comp.kind, ComponentKind::Source(_)));
        for (n, (i, _)) in sources.enumerate() {
            slot[i] = n;
        }
        slot
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.or(plan.defaults.workers).unwrap_or(0))
        .build()
        .map_err(|_| RunError::new(findings::INTERNAL, "cannot build the worker thread pool"))?;
    let batch_size = if plan.defaults.batch_size == 0 { 256 } else { plan.defaults.batch_size };
    let skip = start.records;
    // Set by the writer when `fail_if` trips (file runs only).
    let halt = &AtomicBool::new(false);
    // Set once the writer has ended: stops the background flusher.
    let writer_done = &AtomicBool::new(false);
    // Set by the writer thread itself when it ends (also on an error), so no worker waits on
    // the window for it.
    let writer_gone = &AtomicBool::new(false);
    let window = &Window {
        written: std::sync::Mutex::new(0),
        moved: std::sync::Condvar::new(),
        size: (2 * pool.current_num_threads() + CHANNEL_BATCHES) as u64,
    };
    let fail_if = match &feed {
        Feed::Files(_) => plan.fail_if.clone().map(ErrorRate::new),
        _ => None,
    };

    std::thread::scope(|s| {
        let (tx, raw_rx) = bounded::<RawBatch>(CHANNEL_BATCHES);
        let mut raw_tx = BatchSender { tx, next: 0 };
        let (out_tx, out_rx) = bounded::<ToWriter>(CHANNEL_BATCHES);

        let reader = s.spawn(move || match feed {
            Feed::Files(inputs) => {
                read_files(&inputs, &c.preps, &c.stores, batch_size, skip, [stop.as_deref(), Some(halt)], &mut raw_tx)
            }
            Feed::Live(channels) => {
                read_live(channels, batch_size, first_seq_after, &mut raw_tx);
                false
            }
            Feed::Records(records) => {
                let mut seq = first_seq_after;
                let mut records = records.into_iter().peekable();
                while records.peek().is_some() {
                    let batch: Vec<RawInput> = records
                        .by_ref()
                        .take(batch_size)
                        .map(|mut r| {
                            seq += 1;
                            r.seq = seq;
                            r
                        })
                        .collect();
                    if !raw_tx.send(Ok(batch)) {
                        break;
                    }
                }
                false
            }
        });

        let handles = outputs.handles();
        s.spawn(move || flush_in_background(handles, writer_done));
        let writer = s.spawn(move || -> Result<Totals, RunError> {
            let mut w = Writer {
                plan,
                run_id,
                dlq_key: c.dlq_key.as_ref(),
                stores: &c.stores,
                clock,
                outputs,
                source_slot,
                chain: Chain::resume(run_id, &plan.hash, &start.audit_head),
                last_seq: first_seq_after,
                started: started_seq.map(|seq| (seq, input_files)),
                window,
                events,
                progress,
                checkpoints: 0,
                fail_if,
                halt,
                totals,
                store,
                last_checkpoint: Instant::now(),
                flush_when_idle: feed_is_live,
            };
            let result = w.run(out_rx, resumes);
            writer_gone.store(true, Ordering::Relaxed);
            window.moved.notify_all();
            if result.is_err()
                && let Some((store, id, _)) = &w.store
            {
                // The last checkpoint stands; resuming starts from it.
                let _ = store.set_status(*id, Status::Failed, &clock.now());
            }
            result.map(|()| w.totals)
        });

        // The CPU step: each worker takes whole batches and hands on their results, numbered;
        // the writer puts them back in order. No barrier between batches, so a worker never
        // waits for another to finish its half of a batch.
        let failure: std::sync::Mutex<Option<RunError>> = std::sync::Mutex::new(None);
        let stopping = AtomicBool::new(false);
        let work = || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, batch)) = raw_rx.recv() else { break };
                let give_up = || stopping.load(Ordering::Relaxed) || writer_gone.load(Ordering::Relaxed);
                if !window.wait_for(n, give_up) {
                    stopping.store(true, Ordering::Relaxed);
                    break;
                }
                match batch {
                    Ok(batch) => {
                        let now = clock.now();
                        let ctx = Ctx { c, run_id, now: &now };
                        let processed: Vec<Processed> = batch.into_iter().map(|r| ctx.process(r)).collect();
                        if out_tx.send(ToWriter::Batch(n, processed)).is_err() {
                            stopping.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        stopping.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        pool.scope(|scope| {
            for _ in 0..pool.current_num_threads() {
                scope.spawn(|_| work());
            }
        });
        // Unblocks a reader still sending after the workers stopped on a failure.
        drop(raw_rx);
        let failure = failure.into_inner().ok().flatten();
        let reader = reader.join();
        let end = match (&failure, &reader) {
            (None, Ok(false)) => End::Completed,
            (None, Ok(true)) => End::Interrupted,
            _ => End::Failed,
        };
        let _ = out_tx.send(ToWriter::End(end));
        drop(out_tx);
        let written =
            writer.join().unwrap_or_else(|_| Err(RunError::new(findings::INTERNAL, "the writer thread failed")));
        writer_done.store(true, Ordering::Relaxed);
        if let Some(e) = failure {
            return Err(e);
        }
        if reader.is_err() {
            return Err(RunError::new(findings::INTERNAL, "the reader thread failed"));
        }
        written
    })
}

/// The `run_completed` entry, with the retries of each `http` sink (`[[name, count]]`, left
/// out when the pipeline has none).
#[derive(serde::Serialize)]
struct WithRetries<'a, T: serde::Serialize> {
    #[serde(flatten)]
    completed: T,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    sink_retries: &'a [(String, u64)],
}

/// The DLQ entry of a record that `http` sink `sink` gave up on, or that `postgres` sink
/// `sink`'s database refused (its raw message, as every DLQ entry holds it).
fn refused_entry(
    w: &dlq::Writing<'_>,
    plan: &sluice_compiler::plan::Plan,
    p: &Processed,
    sink: &str,
    why: &Rejection,
) -> dlq::Line {
    let (raw, offset, bus) = match &p.raw {
        Some(r) => (Arc::clone(&r.raw), r.offset, r.bus.clone()),
        None => (Arc::from(&[][..]), 0, None),
    };
    let env = Envelope {
        source: Arc::from(plan.components[p.source].name.as_str()),
        file: Arc::clone(&p.file),
        offset,
        index: p.index,
        seq: p.seq,
        control_id: p.control_id.clone(),
        message_type: None,
        timezone: Arc::from("Z"),
        errors: Vec::new(),
        warnings: Vec::new(),
        classes: Default::default(),
        masking: None,
        bus,
    };
    dlq::entry_line(w, &env, &raw, sink, why)
}

/// `fail_if`: DLQ outcomes among the last `window` records written, as a ring of flags.
struct ErrorRate {
    plan: FailIfPlan,
    ring: std::collections::VecDeque<bool>,
    dlq_in_window: u64,
    /// Set once, when the rate first went above the limit.
    tripped: Option<Tripped>,
}

#[derive(Clone, Copy)]
struct Tripped {
    dlq_in_window: u64,
}

impl ErrorRate {
    fn new(plan: FailIfPlan) -> ErrorRate {
        let cap = plan.window.min(1 << 20) as usize;
        ErrorRate { plan, ring: std::collections::VecDeque::with_capacity(cap), dlq_in_window: 0, tripped: None }
    }

    /// Adds one record's outcome; `true` when this record trips the limit. The rate is only
    /// judged over a full window, so the first failures of a run do not stop it.
    fn record(&mut self, dlq: bool) -> bool {
        self.ring.push_back(dlq);
        self.dlq_in_window += u64::from(dlq);
        if self.ring.len() as u64 > self.plan.window && self.ring.pop_front() == Some(true) {
            self.dlq_in_window -= 1;
        }
        let full = self.ring.len() as u64 == self.plan.window;
        let over = self.dlq_in_window as f64 > self.plan.max_error_rate * self.plan.window as f64;
        if full && over && self.tripped.is_none() {
            self.tripped = Some(Tripped { dlq_in_window: self.dlq_in_window });
            return true;
        }
        false
    }
}

/// The writer thread's state: the only place outputs, the audit chain and checkpoints are
/// written.
struct Writer<'a> {
    plan: &'a sluice_compiler::plan::Plan,
    run_id: &'a str,
    /// For the DLQ entries of records an `http` sink gave up on.
    dlq_key: Option<&'a dlq::DlqKey>,
    /// Clients of the sinks that upload their file to an object store when the run completes.
    stores: &'a crate::object_stores::Stores,
    clock: &'a Clock,
    outputs: Outputs,
    /// Component index of a source -> its slot in `totals.per_source`.
    source_slot: Vec<usize>,
    chain: Chain,
    /// The `seq` of the last record written (the audit's `run_completed` takes the next).
    last_seq: u64,
    /// The `run_started` entry to write first, if any: its `seq` and the number of input files.
    started: Option<(u64, usize)>,
    /// Told after each batch written, so workers may go on.
    window: &'a Window,
    /// The events of the first and last audit entries: `run_started` and `run_completed`, or
    /// `dlq_replay_started` and `dlq_replay_completed`.
    events: (&'static str, &'static str),
    progress: Option<Arc<Progress>>,
    /// Checkpoints saved so far.
    checkpoints: u64,
    fail_if: Option<ErrorRate>,
    /// Stops the reader when `fail_if` trips.
    halt: &'a AtomicBool,
    totals: Totals,
    store: Option<(Store, i64, Duration)>,
    last_checkpoint: Instant,
    /// A live feed (or a replay): once caught up, flush the buffers, since the next records
    /// may not come for hours and what was written (under `on_receipt`, acknowledged) must
    /// not wait for them.
    flush_when_idle: bool,
}

impl Writer<'_> {
    fn run(&mut self, batches: crossbeam_channel::Receiver<ToWriter>, resumes: u32) -> Result<(), RunError> {
        let result = self.announce().and_then(|()| self.consume(batches)).and_then(|end| self.finish(end, resumes));
        self.publish(true);
        result
    }

    /// Writes batches, in their numbers' order, until the end is announced (or the channel
    /// closes: a failure).
    fn consume(&mut self, batches: crossbeam_channel::Receiver<ToWriter>) -> Result<End, RunError> {
        let mut waiting = Vec::new();
        // Batches that arrived before an earlier one (bounded by the workers in flight).
        let mut early: std::collections::BTreeMap<u64, Vec<Processed>> = Default::default();
        let mut next = 0u64;
        for msg in batches.iter() {
            match msg {
                ToWriter::Batch(n, batch) => {
                    early.insert(n, batch);
                }
                ToWriter::End(end) => {
                    if !early.is_empty() && !matches!(end, End::Failed) {
                        return Err(RunError::new(findings::INTERNAL, "a batch of records went missing"));
                    }
                    return Ok(end);
                }
            }
            while let Some(batch) = early.remove(&next) {
                next += 1;
                self.write_batch(batch, &mut waiting)?;
                self.window.advance(next);
                if !waiting.is_empty() {
                    let Outputs { files, dlq, audit, .. } = &mut self.outputs;
                    sync_outputs(files, dlq, audit)?;
                    for (done, delivery) in waiting.drain(..) {
                        let Completion(done) = done;
                        done(delivery);
                    }
                }
                if self.store.as_ref().is_some_and(|(_, _, every)| self.last_checkpoint.elapsed() >= *every) {
                    self.checkpoint()?;
                }
                self.publish(false);
            }
            if self.flush_when_idle && batches.is_empty() {
                let Outputs { files, dlq, audit, .. } = &mut self.outputs;
                flush_outputs(files, dlq, audit, false)?;
            }
        }
        Ok(End::Failed)
    }

    /// Writes the `run_started` entry (a new run, a listener's start, a replay).
    fn announce(&mut self) -> Result<(), RunError> {
        let (Some((seq, inputs)), Some((path, w))) = (self.started, &mut self.outputs.audit) else { return Ok(()) };
        let plan = self.plan;
        let body = audit::Started {
            event: self.events.0,
            pipeline: &plan.pipeline,
            spec_file: &plan.spec_file,
            plan_format: plan.plan_format,
            sluice_version: env!("CARGO_PKG_VERSION"),
            input_files: inputs,
        };
        self.chain
            .write(w, seq, &self.clock.now(), body)
            .map_err(|e| RunError::io("write", std::path::Path::new(path), &e))
    }

    /// Hands the counts to the watcher, if there is one.
    fn publish(&self, done: bool) {
        let Some(p) = &self.progress else { return };
        let t = &self.totals;
        p.publish(|s| {
            s.records = t.records;
            s.per_source.clone_from(&t.per_source);
            s.per_sink.clone_from(&t.per_sink);
            s.checkpoints = self.checkpoints;
            s.done = done;
        });
    }

    fn finish(&mut self, end: End, resumes: u32) -> Result<(), RunError> {
        if let Some(tripped) = self.fail_if.as_ref().and_then(|r| r.tripped) {
            // The records read before the reader stopped are written; the run can be resumed
            // or restarted once the cause is fixed.
            self.checkpoint()?;
            self.set_status(Status::Failed)?;
            let limit = self
                .fail_if
                .as_ref()
                .map(|r| r.plan.clone())
                .unwrap_or_else(|| FailIfPlan { max_error_rate: 0.0, window: 0 });
            return Err(RunError::new(
                findings::ERROR_RATE_EXCEEDED,
                format!(
                    "{} of the last {} records went to the DLQ ({:.2}%), above `fail_if` ({}%): the run stopped after record {}",
                    tripped.dlq_in_window,
                    limit.window,
                    tripped.dlq_in_window as f64 * 100.0 / limit.window as f64,
                    limit.max_error_rate * 100.0,
                    self.totals.records.records_in
                ),
            )
            .with_help(
                "the DLQ holds the rejected records with their reasons (`sluice dlq list PIPELINE`); fix the cause, then \
                 `sluice run --restart` (or `--resume`, if neither the specs nor the input changed)",
            ));
        }
        match end {
            End::Completed => self.complete(resumes),
            End::Interrupted => {
                self.totals.interrupted = true;
                self.checkpoint()?;
                self.set_status(Status::Interrupted)
            }
            End::Failed => {
                // Whatever was written after the last checkpoint is cut away by a resume.
                Err(RunError::new(findings::INTERNAL, "the run stopped before its input ended"))
            }
        }
    }

    fn write_batch(
        &mut self,
        batch: Vec<Processed>,
        waiting: &mut Vec<(Completion, Delivery)>,
    ) -> Result<(), RunError> {
        let plan = self.plan;
        // `http` sinks first: the records of a request they gave up on go to the DLQ instead,
        // so their disposition is known before anything of the batch is written.
        let lines = batch.iter().map(|p| (p.seq, p.sink_lines.as_slice()));
        let mut refused = self.outputs.http.send_batch(self.run_id, lines);
        // Then `postgres` sinks: one transaction each, committed here, before the checkpoint
        // that covers the batch; the rows the database refused go to the DLQ the same way.
        let by_table = self.outputs.pg.write_batch(batch.iter().map(|p| p.sink_lines.as_slice()))?;
        for (i, more) in by_table.into_iter().enumerate().filter(|(_, m)| !m.is_empty()) {
            if refused.len() <= i {
                refused.resize_with(i + 1, Vec::new);
            }
            refused[i].extend(more);
        }
        // `kafka` sinks: every message acknowledged; those the brokers refused go to the DLQ.
        let by_topic = self.outputs.kafka.write_batch(batch.iter().map(|p| p.sink_lines.as_slice()))?;
        for (i, more) in by_topic.into_iter().enumerate().filter(|(_, m)| !m.is_empty()) {
            if refused.len() <= i {
                refused.resize_with(i + 1, Vec::new);
            }
            refused[i].extend(more);
        }
        // `amqp` sinks: every message confirmed by the server, or the run stops here.
        self.outputs.amqp.write_batch(batch.iter().map(|p| p.sink_lines.as_slice()))?;
        // `parquet` sinks take every row: a value that does not fit went to the DLQ in a worker.
        self.outputs.parquet.write_batch(batch.iter().map(|p| p.sink_lines.as_slice()))?;
        let now = if refused.iter().any(|r| !r.is_empty()) { self.clock.now() } else { String::new() };
        let writing = dlq::Writing { run_id: self.run_id, plan_hash: &plan.hash, at: &now, key: self.dlq_key };
        let Outputs { files, sink_of, dlq, audit, http, pg, parquet, kafka, amqp } = &mut self.outputs;
        let t = &mut self.totals;
        for (i, mut p) in batch.into_iter().enumerate() {
            let refused = refused.get(i).map_or(&[][..], Vec::as_slice);
            for (comp, why) in refused {
                let name = &plan.components[*comp].name;
                p.dlq_lines.push(refused_entry(&writing, plan, &p, name, why));
                p.sinks.retain(|s| s != name);
                p.code.get_or_insert(why.code);
                if p.event == Event::Delivered {
                    p.event = Event::Dlq;
                    p.component = Arc::from(name.as_str());
                }
                if p.completion.is_some() {
                    p.findings.extend(why.findings.iter().cloned());
                }
            }
            if let Some(done) = p.completion.take() {
                let warnings = p
                    .dropped
                    .iter()
                    .map(|d| dlq::Finding {
                        code: findings::SEGMENT_DROPPED,
                        rule: None,
                        path: None,
                        message: format!(
                            "segment {} could not be parsed ({}) and was dropped; it is in the DLQ as {}",
                            d.segment, d.code, d.dlq
                        ),
                    })
                    .collect();
                let delivery = Delivery {
                    event: p.event,
                    rejected_at_source: p.rejected_at_source,
                    findings: std::mem::take(&mut p.findings),
                    warnings,
                };
                waiting.push((done, delivery));
            }
            t.records.records_in += 1;
            t.per_source[self.source_slot[p.source]].1 += 1;
            self.last_seq = p.seq;
            for (comp, line) in &p.sink_lines {
                if let Some((f, slot)) = sink_of[*comp] {
                    let (path, w) = &mut files[f];
                    sink::write_line(w, line, path)?;
                    t.per_sink[slot].1 += 1;
                } else if let Some(slot) = http
                    .slot(*comp)
                    .or_else(|| pg.slot(*comp))
                    .or_else(|| parquet.slot(*comp))
                    .or_else(|| kafka.slot(*comp))
                    .or_else(|| amqp.slot(*comp))
                    && !refused.iter().any(|(c, _)| c == comp)
                {
                    t.per_sink[slot].1 += 1;
                }
            }
            for line in p.dlq_lines.iter().chain(&p.part_lines) {
                dlq.write(line, self.run_id, p.seq)?;
            }
            t.records.parts_dropped += p.part_lines.len() as u64;
            match p.event {
                Event::Delivered => t.records.delivered += 1,
                Event::Dlq => t.records.dlq += 1,
                Event::Filtered => t.records.filtered += 1,
            }
            if p.event == Event::Dlq {
                tracing::debug!(
                    record_id = %format_args!("{}-{}", self.run_id, p.seq),
                    component = %p.component,
                    code = p.code.unwrap_or(""),
                    "record rejected"
                );
            }
            if let Some(rate) = &mut self.fail_if
                && rate.record(p.event == Event::Dlq)
            {
                tracing::warn!(window = rate.plan.window, dlq = rate.dlq_in_window, "fail_if tripped: stopping");
                self.halt.store(true, Ordering::Relaxed);
            }
            t.records.warnings += u64::from(p.warned);
            if let Some((path, w)) = audit {
                let body = audit::RecordEvent {
                    record: format!("{}:{}#{}", plan.components[p.source].name, p.file, p.index),
                    offset: p.offset,
                    masked: p.masked,
                    message_id: p.control_id.as_deref(),
                    event: p.event.as_str(),
                    component: &p.component,
                    sinks: &p.sinks,
                    dropped: &p.dropped,
                };
                self.chain
                    .write(w, p.seq, &self.clock.now(), body)
                    .map_err(|e| RunError::io("write", std::path::Path::new(path), &e))?;
            }
        }
        t.per_sink_retries = http.retries();
        Ok(())
    }

    /// Syncs every output, then saves their lengths and the counts in the state store.
    fn checkpoint(&mut self) -> Result<(), RunError> {
        self.last_checkpoint = Instant::now();
        let Some((store, id, _)) = &self.store else {
            let Outputs { files, dlq, audit, parquet, .. } = &mut self.outputs;
            sync_outputs(files, dlq, audit)?;
            return parquet.finish_files();
        };
        let Outputs { files, dlq, audit, parquet, .. } = &mut self.outputs;
        sync_outputs(files, dlq, audit)?;
        parquet.finish_files()?;
        let checkpoint = Checkpoint {
            records: self.totals.records.records_in,
            counts: self.totals.counts(),
            outputs: output_lengths(files, dlq, audit)?,
            audit_head: self.chain.head().to_string(),
            at: self.clock.now(),
            dlq_rows: dlq.table_rows(),
        };
        store.save(*id, &checkpoint)?;
        self.checkpoints += 1;
        tracing::debug!(records = checkpoint.records, "checkpoint saved");
        Ok(())
    }

    fn set_status(&self, status: Status) -> Result<(), RunError> {
        match &self.store {
            Some((store, id, _)) => store.set_status(*id, status, &self.clock.now()),
            None => Ok(()),
        }
    }

    /// The input ended: `run_completed`, every output synced, the run marked completed.
    fn complete(&mut self, resumes: u32) -> Result<(), RunError> {
        let t = &self.totals;
        if let Some((path, w)) = &mut self.outputs.audit {
            let body = audit::Completed {
                event: self.events.1,
                records_in: t.records.records_in,
                delivered: t.records.delivered,
                dlq: t.records.dlq,
                filtered: t.records.filtered,
                warnings: t.records.warnings,
                balanced: t.records.balanced(),
                resumes,
                parts_dropped: t.records.parts_dropped,
            };
            let body = WithRetries { completed: body, sink_retries: &t.per_sink_retries };
            self.chain
                .write(w, self.last_seq + 1, &self.clock.now(), body)
                .map_err(|e| RunError::io("write", std::path::Path::new(path), &e))?;
        }
        let Outputs { files, dlq, audit, parquet, .. } = &mut self.outputs;
        parquet.finish_files()?;
        dlq.finish()?;
        for (path, w) in files.iter_mut().chain(audit.iter_mut()) {
            sink::finish(w, path)?;
        }
        // Sinks with an object URL: their finished file goes up before the run counts as
        // completed (a failed upload leaves it resumable).
        for (i, comp) in self.plan.components.iter().enumerate() {
            if let (ComponentKind::Sink(s), Some(remote)) = (&comp.kind, self.stores.get(i))
                && let Some(object) = &s.object
            {
                let url = object.url.replace("{run_id}", self.run_id);
                crate::object_stores::upload::upload(remote, &s.path, &url)?;
                tracing::info!(sink = %comp.name, "sink file uploaded");
            }
        }
        self.set_status(Status::Completed)
    }
}

/// The text of a record's bus header `name`: the kind of object a finance sync read it as
/// (`quickbooks.entity`, `plaid.object`); none for a line fed by `sluice test`.
fn bus_header(rec: &Record, name: &str) -> Option<String> {
    let bus = rec.env.bus.as_ref()?;
    let (_, value) = bus.headers.iter().find(|(k, _)| k == name)?;
    value.as_deref().and_then(|v| std::str::from_utf8(v).ok()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(source: usize, index: u64) -> RawInput {
        RawInput {
            source,
            file: Arc::from("peer/conn1"),
            offset: 0,
            index,
            seq: 0,
            bytes: vec![],
            problem: None,
            completion: None,
            bus: None,
        }
    }

    #[test]
    fn a_live_feed_takes_the_most_urgent_waiting_record_first_and_keeps_each_channel_in_order() {
        let (urgent_tx, urgent) = crossbeam_channel::bounded(8);
        let (backfill_tx, backfill) = crossbeam_channel::bounded(8);
        for i in 1..=5 {
            backfill_tx.send(raw(1, i)).unwrap();
        }
        let mut channels = vec![urgent, backfill];
        let next = |channels: &mut Vec<_>| next_live(channels, Some(Duration::ZERO)).map(|r| (r.source, r.index));
        assert_eq!(next(&mut channels), Ok((1, 1)), "nothing urgent waits: the backfill goes on");
        urgent_tx.send(raw(0, 1)).unwrap();
        urgent_tx.send(raw(0, 2)).unwrap();
        assert_eq!(next(&mut channels), Ok((0, 1)), "an urgent record overtakes the queued backfill");
        assert_eq!(next(&mut channels), Ok((0, 2)));
        assert_eq!(next(&mut channels), Ok((1, 2)), "the backfill resumes where it was");
        drop(urgent_tx);
        assert_eq!(next(&mut channels), Ok((1, 3)));
        assert_eq!(channels.len(), 1, "a closed, empty channel is let go");
        assert_eq!(next(&mut channels), Ok((1, 4)));
        assert_eq!(next(&mut channels), Ok((1, 5)));
        assert_eq!(next(&mut channels), Err(crossbeam_channel::RecvTimeoutError::Timeout), "open but empty");
        // A record sent while the reader waits wakes it.
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                backfill_tx.send(raw(1, 6)).unwrap();
            });
            assert_eq!(next_live(&mut channels, None).map(|r| r.index), Ok(6));
        });
        drop(backfill_tx);
        assert_eq!(next(&mut channels), Err(crossbeam_channel::RecvTimeoutError::Disconnected));
        assert!(channels.is_empty());
    }

    #[test]
    fn workers_wait_for_the_writer_beyond_the_window() {
        let w = Window { written: std::sync::Mutex::new(0), moved: std::sync::Condvar::new(), size: 3 };
        assert!(w.wait_for(2, || false), "inside the window");
        assert!(!w.wait_for(3, || true), "outside, and told to give up");
        std::thread::scope(|s| {
            let waiter = s.spawn(|| w.wait_for(5, || false));
            std::thread::sleep(Duration::from_millis(30));
            w.advance(3);
            assert!(waiter.join().unwrap(), "let in once the writer moved on");
        });
    }

    #[test]
    fn error_rate_is_judged_over_a_full_sliding_window_and_trips_once() {
        let mut r = ErrorRate::new(FailIfPlan { max_error_rate: 0.2, window: 5 });
        // Failures before the window is full do not trip it.
        assert!(!r.record(true) && !r.record(true));
        assert!(!r.record(false) && !r.record(false));
        // Window full: 2 of 5 = 40% > 20%.
        assert!(r.record(false));
        assert_eq!(r.tripped.map(|t| t.dlq_in_window), Some(2));
        assert!(!r.record(true), "trips once");

        let mut r = ErrorRate::new(FailIfPlan { max_error_rate: 0.2, window: 5 });
        // Exactly 20% is not above the limit, and the oldest outcome leaves the window.
        for dlq in [true, false, false, false, false, true] {
            assert!(!r.record(dlq));
        }
        assert_eq!(r.dlq_in_window, 1, "the first failure left the window");
        assert!(r.record(true), "2 of the last 5");
    }
}
