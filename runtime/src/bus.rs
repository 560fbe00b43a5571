//! What the message-bus sources ([`crate::kafka`], [`crate::amqp`]) share: running the
//! pipeline over their consumers ([`Driver`]), one consumer thread per source.
//!
//! Invariants:
//! - The executor ends when every consumer has stopped (a signal, or the server ending the
//!   consumer), or on an error of its own: then every consumer is told to stop too, and each
//!   acknowledges (commits) only what was made durable before it closes.
//! - A consumer's failure is reported once every consumer thread has ended, never in place of
//!   the executor's own error (which came first).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_compiler::plan::{ComponentKind, SourcePlan};

use crate::compile::Compiled;
use crate::error::RunError;
use crate::executor::{self, Feed, RawInput, Totals};
use crate::findings;
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
