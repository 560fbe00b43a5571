//! What the message-bus sources ([`crate::kafka`], [`crate::amqp`]) share: running the
//! pipeline over their consumers ([`Driver`]), one consumer thread per source; and making
//! records of their messages by `format` ([`Payloads`]).
//!
//! Invariants:
//! - A message becomes at least one record (delivered, filtered or in the DLQ): an X12
//!   message one per transaction set (the files source's cutting, so the same records, DLQ
//!   entries and codes), or the whole message to the DLQ when none can be cut (RT145).
//! - A message is acknowledged (committed) once, when every record of it is durable: its
//!   records share its completion.
//! - The executor ends when every consumer has stopped (a signal, or the server ending the
//!   consumer), or on an error of its own: then every consumer is told to stop too, and each
//!   acknowledges (commits) only what was made durable before it closes.
//! - A consumer's failure is reported once every consumer thread has ended, never in place of
//!   the executor's own error (which came first).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_compiler::plan::{ComponentKind, SourcePlan};

use crate::compile::Compiled;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::executor::{self, Completion, Feed, RawInput, Totals};
use crate::findings;
use crate::record::BusMeta;
use crate::time::Clock;

/// A bus's consumer loop: runs until `stop` or `executor_gone` is set, then finishes what is
/// in flight and closes.
pub type Consume<M> = fn(M, &AtomicBool, &AtomicBool) -> Result<(), RunError>;

/// The plan's sources of one bus (those `pick` finds a plan of), most urgent `priority`
/// first (plan order among equals).
pub fn sources_of<'p, P>(
    c: &Compiled<'p>,
    pick: impl Fn(&'p SourcePlan) -> Option<&'p P>,
    priority: impl Fn(&P) -> &str,
) -> Vec<(usize, &'p P)> {
    let mut sources: Vec<(usize, &P)> = c
        .plan
        .components
        .iter()
        .enumerate()
        .filter_map(|(i, comp)| match &comp.kind {
            ComponentKind::Source(s) => pick(s).map(|p| (i, p)),
            _ => None,
        })
        .collect();
    let rank = |p: &str| sluice_compiler::spec::shape::PRIORITIES.iter().position(|x| *x == p).unwrap_or(1);
    sources.sort_by_key(|(_, p)| rank(priority(p)));
    sources
}

/// How the pipeline runs over a bus's consumers.
pub struct Driver<'a, 'p> {
    pub c: &'a Compiled<'p>,
    pub clock: &'a Clock,
    pub run_id: &'a str,
    pub threads: Option<usize>,
    pub progress: Option<Arc<crate::progress::Progress>>,
    /// The bus's name, for thread names and errors (`kafka`, `amqp`).
    pub bus: &'static str,
}

impl Driver<'_, '_> {
    /// Joins each of `sources` (`join` gives the member, the name it goes by and the channel
    /// it feeds), then [`Self::run`]s them; a plan without a source of this bus is an error.
    pub fn join_and_run<P, M: Send + 'static>(
        self,
        stop: Option<Arc<AtomicBool>>,
        sources: Vec<(usize, &P)>,
        mut join: impl FnMut(usize, &P) -> Result<(M, Arc<str>, crossbeam_channel::Receiver<RawInput>), RunError>,
        consume: Consume<M>,
    ) -> Result<Totals, RunError> {
        if sources.is_empty() {
            return Err(RunError::new(findings::PLAN_INVALID, format!("the plan has no {} source", self.bus)));
        }
        let mut members = Vec::with_capacity(sources.len());
        let mut feeds = Vec::with_capacity(sources.len());
        for (source, plan) in sources {
            let (member, name, rx) = join(source, plan)?;
            members.push((name, member));
            feeds.push(rx);
        }
        self.run(stop, members, feeds, consume)
    }

    /// Starts one thread per member running `consume`, runs the executor over `feeds` (one
    /// channel per member, most urgent first) until it ends, then stops the members and
    /// returns the totals (or the first failure).
    pub fn run<M: Send + 'static>(
        self,
        stop: Option<Arc<AtomicBool>>,
        members: Vec<(Arc<str>, M)>,
        feeds: Vec<crossbeam_channel::Receiver<RawInput>>,
        consume: Consume<M>,
    ) -> Result<Totals, RunError> {
        let Driver { c, clock, run_id, threads, progress, bus } = self;
        let stop = stop.unwrap_or_default();
        let executor_gone = Arc::new(AtomicBool::new(false));
        let mut threads_of_members = Vec::with_capacity(members.len());
        for (name, m) in members {
            let (stop, gone) = (Arc::clone(&stop), Arc::clone(&executor_gone));
            let handle = std::thread::Builder::new()
                .name(format!("sluice-{bus}-{name}"))
                .spawn(move || consume(m, &stop, &gone))
                .map_err(|_| RunError::new(findings::INTERNAL, format!("cannot start the {bus} consumer thread")))?;
            threads_of_members.push(handle);
        }
        let control = executor::RunControl { progress, ..Default::default() };
        let totals = executor::execute(c, clock, run_id, threads, Feed::Live(feeds), control);
        executor_gone.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        let mut failure = None;
        for t in threads_of_members {
            let ended = t.join().unwrap_or_else(|_| {
                Err(RunError::new(findings::INTERNAL, format!("the {bus} consumer thread failed")))
            });
            if let Err(e) = ended {
                failure.get_or_insert(e);
            }
        }
        let totals = totals?;
        failure.map_or(Ok(totals), Err)
    }
}

/// One message as a bus source read it, before it becomes records.
pub struct Message {
    /// Component index of the source.
    pub source: usize,
    /// Where it came from (`topic/partition`, the queue).
    pub label: Arc<str>,
    /// Its place there (the Kafka offset, the AMQP delivery tag): every record of it has it
    /// as its offset and index.
    pub at: u64,
    pub bytes: Vec<u8>,
    /// What the source already found wrong with it (no value, an empty body).
    pub problem: Option<Rejection>,
    /// Acknowledges (commits) the message; run once every record of it is durable.
    pub completion: Completion,
    pub bus: Arc<BusMeta>,
}

/// How a bus source's messages become records: one record a message, except `format: x12`,
/// whose interchange is cut into one record per transaction set on the consumer thread, as
/// a `files` source's reader cuts a file ([`crate::x12_source::pieces`]).
pub struct Payloads {
    x12: Option<crate::x12_source::X12Source>,
}

impl Payloads {
    /// How source `plan`'s messages are read (X12 acknowledgments are a `files` source's
    /// only: a bus source's spec has no `acks`).
    pub fn of(plan: &SourcePlan, clock: &Clock) -> Result<Payloads, RunError> {
        let x12 = match &plan.x12 {
            Some(x) => Some(crate::x12_source::X12Source::new(x, None, clock)?),
            None => None,
        };
        Ok(Payloads { x12 })
    }

    /// The records of one message, never none: each holds a share of the message's
    /// completion, which runs once all of them have run.
    pub fn records(&self, m: Message) -> Vec<RawInput> {
        let Message { source, label, at, bytes, problem, completion, bus } = m;
        let parts = match (&self.x12, problem) {
            (Some(src), None) => interchange_parts(src, &label, bytes),
            (_, problem) => vec![(bytes, problem)],
        };
        let completions = shared_completion(completion, parts.len());
        parts
            .into_iter()
            .zip(completions)
            .map(|((bytes, problem), completion)| RawInput {
                source,
                file: Arc::clone(&label),
                offset: at,
                index: at,
                seq: 0,
                bytes,
                problem,
                completion: Some(completion),
                bus: Some(Arc::clone(&bus)),
            })
            .collect()
    }
}

/// The transaction sets of one X12 message, each with its problem; the message whole, to
/// the DLQ, when no set can be cut from it (RT145).
fn interchange_parts(
    src: &crate::x12_source::X12Source,
    label: &str,
    bytes: Vec<u8>,
) -> Vec<(Vec<u8>, Option<Rejection>)> {
    let shared: Arc<[u8]> = Arc::from(bytes.as_slice());
    let open = || -> Result<Box<dyn std::io::Read + Send>, RunError> {
        Ok(Box::new(std::io::Cursor::new(Arc::clone(&shared))))
    };
    let mut parts = Vec::new();
    let mut failed = false;
    match crate::x12_source::pieces(&open, std::path::Path::new(label), src) {
        Ok(pieces) => {
            for piece in pieces {
                match piece {
                    Ok(p) => parts.push((p.bytes, p.problem)),
                    Err(_) => failed = true,
                }
            }
        }
        Err(_) => failed = true,
    }
    if failed || parts.is_empty() {
        // Nothing of the message is lost: it goes to the DLQ whole.
        let why = if failed {
            "the X12 message could not be cut into its transaction sets"
        } else {
            "the X12 message is an interchange holding no transaction set (ST..SE)"
        };
        return vec![(bytes, Some(Rejection::single(findings::BUS_NO_RECORD, None, why)))];
    }
    parts
}

/// `n` completions that run `done` once, when the last of them has run.
fn shared_completion(done: Completion, n: usize) -> Vec<Completion> {
    if n <= 1 {
        return vec![done];
    }
    let left = Arc::new(std::sync::Mutex::new((n, Some(done))));
    (0..n)
        .map(|_| {
            let left = Arc::clone(&left);
            Completion::new(move |delivery| {
                let last = left.lock().ok().and_then(|mut l| {
                    l.0 -= 1;
                    if l.0 == 0 { l.1.take() } else { None }
                });
                if let Some(done) = last {
                    done.complete(delivery);
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn a_shared_completion_runs_once_after_the_last_share() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let shares = shared_completion(
            Completion::new(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
            3,
        );
        let delivery = || executor::Delivery {
            event: executor::Event::Delivered,
            rejected_at_source: false,
            findings: Vec::new(),
            warnings: Vec::new(),
        };
        let mut shares = shares.into_iter();
        for _ in 0..2 {
            shares.next().unwrap().complete(delivery());
            assert_eq!(ran.load(Ordering::SeqCst), 0, "not before the last share");
        }
        shares.next().unwrap().complete(delivery());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
