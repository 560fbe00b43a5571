//! The `format: x12` files source: X12 interchanges cut into one record per transaction set
//! (reader thread, [`pieces`]), each validated against its implementation guide on the way,
//! then each accepted set read into a record document (worker, [`decode`]). With `acks:`, a
//! functional acknowledgment (999 for 5010, 997 for 4010, TA1 for an interchange rejected at
//! its envelope) is written for every interchange read.
//!
//! Why one record per set by default: the set is what X12 accepts or rejects (IK5/AK5), so a
//! record, its DLQ entry and its line in the 999 are the same thing. When the plan says so
//! (`split`: a map stage downstream maps `each: loop(2300)`), the sets of that guide are cut
//! into one record per occurrence of the loop (`sluice_x12::cut`: the claim with its context;
//! `each: loop(2000C, 2000D)`: each subscriber and dependent of a 271, `cut_any`; a
//! partner's sets are placed in its copy of the guide, as they were validated),
//! each with its own index and offset (its first segment's), so claims are counted, delivered
//! and sent to the DLQ one by one; the set's verdict (its guide and envelope errors) is each
//! claim's, as the 999 rejects or accepts the set whole.
//!
//! Invariants:
//! - Nothing is lost, nothing panics: every transaction set becomes exactly one record (or,
//!   cut, one per occurrence of the loop; a set without one is one record, to the DLQ with
//!   `RT143`), and bytes outside any interchange become one record each (straight to the DLQ,
//!   `RT141`). A set
//!   with an error (its own, its functional group's or its interchange's; strict mode: any
//!   envelope or guide error, lenient: only what lenient X12 checks still call an error) goes
//!   to the DLQ as `RT140` with one finding per error (its `X12nnn` code and where: segment
//!   number, position, loop), and the other sets of the file go on. Sets whose guide is not in
//!   `guides` count as filtered, broken or not: rejecting them is the job of the source that
//!   reads their guide, so two sources over one file (one per guide) put a broken set in the
//!   DLQ once. So a run balances: in = delivered + DLQ + filtered.
//! - With a trading-partner profile (`partners`), the checker knows the partners
//!   (`sluice_x12::partner`): a set of an unknown sender, of a transaction set or version its
//!   partner is not configured for, is rejected like any other (its findings are errors the
//!   profile's `processing` cannot downgrade), with RT178, RT180 or RT179 instead of RT140, so
//!   per-partner problems are told apart in the DLQ; records carry `interchange.partner`;
//!   acknowledgments are written with the partner's delimiters.
//! - No value from the data reaches a reason, a finding or a warning: the X12 checks name
//!   codes, positions and offsets only, and identifiers are echoed only from the envelopes
//!   (control numbers, versions).
//! - A record's bytes (what the DLQ keeps, encrypted) are a one-set interchange: the original
//!   ISA and GS, the set as read, then a GE and an IEA counting one. It reads alone, so a DLQ
//!   entry is a file `sluice validate --format x12` can check.
//! - Memory: the sets of one interchange wait for its IEA (whether a set is accepted depends on
//!   its group's and interchange's trailers, which come last), in memory up to
//!   [`HOLD_IN_MEMORY`] bytes, beyond it parked in a spill file ([`crate::spill`]: unnamed,
//!   sealed under a key held in memory only); a settled set is cut into its pieces only when
//!   the previous set's pieces have been taken, so a file of one huge interchange costs the
//!   budget plus one set and its pieces, whatever its size. A set longer than
//!   [`READ_SET_IN_PARTS_BEYOND`] is read in parts of whole segments (checked a segment at a
//!   time, each part kept like a set); cut at a loop, it is surveyed as it is read and cut in a
//!   second pass over its parts, one part at a time as its pieces are taken
//!   (`sluice_x12::cut_stream`), so one huge set costs its open loops, not its size; of a guide
//!   the source does not read, only its ST is kept (its record is filtered). Only a long set
//!   that is one record whole (no `split`, or no occurrence of its loop) is joined back. Neither
//!   the budget nor the read limit changes what is read: the same pieces, in the same order,
//!   with the same indexes (a filtered set's piece holds its ST alone).
//! - The acknowledgment says what the source accepted (envelopes and guide); a set rejected
//!   later by a `validate` stage or a mapping is still acknowledged as accepted, as X12 means
//!   a 999 to answer syntax and guide conformance only. Its control numbers (ISA13, GS06) are
//!   allocated from the state store ([`crate::state::Store::x12_control_numbers`]), per
//!   acknowledgment sender id, so they never repeat across runs; a resumed run writes the
//!   acknowledgments of the files it reads again with new numbers.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sluice_compiler::plan::{Mode, StateTarget, X12SourcePlan};
use sluice_x12::codec::Segment;
use sluice_x12::envelope::{Checker, Finding as X12Finding, InterchangeResult, Severity};
use sluice_x12::split::{Item, RawSet, Splitter};

use crate::dlq::{Finding, Rejection};
use crate::error::RunError;
use crate::findings;
use crate::record::Doc;

/// An X12 source as prepared once per plan.
#[derive(Debug)]
pub struct X12Source {
    /// Guide ids read (empty: all); sets of other guides are filtered.
    guides: Vec<String>,
    lenient: bool,
    acks: Option<Acks>,
    /// Guides whose sets are cut into one record per occurrence of a loop.
    split: Vec<sluice_compiler::plan::X12Split>,
    /// The trading partners of the source's profile (`None`: no profile).
    partners: Option<Arc<sluice_x12::partner::Partners>>,
}

/// Where acknowledgments go and where their control numbers come from.
struct Acks {
    dir: PathBuf,
    state: StateTarget,
    /// Opened at the first acknowledgment (unlocked, like shared throttles: the run holds the
    /// pipeline's lock on its own connection).
    store: Mutex<Option<crate::state::Store>>,
    /// The clock the run uses (a fixed clock makes acknowledgments' dates deterministic).
    clock: crate::time::Clock,
}

impl X12Source {
    /// `state`: the pipeline's state store (the compiler refuses `acks` without one: SL262).
    pub fn new(
        plan: &X12SourcePlan,
        state: Option<&StateTarget>,
        clock: &crate::time::Clock,
    ) -> Result<Self, RunError> {
        let acks = match (&plan.acks, state) {
            (None, _) => None,
            (Some(dir), Some(state)) => Some(Acks {
                dir: PathBuf::from(dir),
                state: state.clone(),
                store: Mutex::new(None),
                clock: clock.clone(),
            }),
            (Some(_), None) => {
                return Err(RunError::new(
                    findings::PLAN_INVALID,
                    "an X12 source writes acknowledgments, but the plan has no state store for their control numbers",
                ));
            }
        };
        let partners = match &plan.partners {
            None => None,
            Some(p) => Some(Arc::new(sluice_compiler::spec::x12_profile::to_partners(p).map_err(|why| {
                RunError::new(findings::PLAN_INVALID, format!("the X12 trading-partner profile cannot be used: {why}"))
            })?)),
        };
        Ok(X12Source {
            guides: plan.guides.clone(),
            lenient: plan.mode == Mode::Lenient,
            acks,
            split: plan.split.clone(),
            partners,
        })
    }

    fn mode(&self) -> sluice_x12::envelope::Mode {
        if self.lenient { sluice_x12::envelope::Mode::Lenient } else { sluice_x12::envelope::Mode::Strict }
    }

    /// The checker of every interchange: with the profile's partners when there is one.
    fn checker(&self) -> Checker {
        match &self.partners {
            Some(p) => Checker::with_partners(self.mode(), p.clone()),
            None => Checker::with_guides(self.mode()),
        }
    }

    /// The acknowledgment delimiters of the partner that sent `ic`.
    fn delimiters_for(&self, ic: &InterchangeResult) -> Option<sluice_x12::partner::OutputDelimiters> {
        let partners = self.partners.as_deref()?;
        partners.by_name(ic.partner.as_deref()?)?.delimiters
    }
}

/// One record's worth of an X12 file, as the reader thread cuts it.
#[derive(Debug)]
pub struct Piece {
    /// Byte offset in the file (of `ST`, or of stray bytes).
    pub offset: u64,
    /// 0-based: the set's (or stray run's) index in the file.
    pub index: u64,
    pub bytes: Vec<u8>,
    /// Set when the piece cannot be a record (it goes straight to the DLQ).
    pub problem: Option<Rejection>,
}

/// A set read, waiting for its interchange's end.
struct Pending {
    /// The set; its bytes are empty while they are parked in the spill file, or when it was
    /// read in `parts`.
    set: RawSet,
    /// Where the set's bytes are when they were spilled.
    parked: Option<crate::spill::Parked>,
    /// A set longer than the read limit: its parts (whole segments), each with its offset in
    /// the set, in memory or parked.
    parts: Vec<(usize, Chunk)>,
    /// A set read in parts and cut at a loop: what the first pass found for the second.
    two_pass: Option<Box<TwoPass>>,
    /// The ISA and GS around it, without terminators (empty when missing).
    isa: Vec<u8>,
    gs: Vec<u8>,
}

/// Bytes kept until their interchange ends: in memory, or parked in the spill file.
enum Chunk {
    Held(Vec<u8>),
    Parked(crate::spill::Parked),
}

/// How a set read in parts is cut: the guide it is placed in, the loops, and the survey of its
/// first pass (`sluice_x12::cut_stream`).
struct TwoPass {
    guide: &'static sluice_x12::guide::Guide,
    loops: Vec<String>,
    plan: sluice_x12::cut_stream::Plan,
}

/// A set longer than the read limit, while its parts come.
struct Reading {
    pending: Pending,
    survey: Option<(sluice_x12::cut_stream::Survey, &'static sluice_x12::guide::Guide, Vec<String>)>,
    /// A set of a guide the source does not read: the record is filtered whatever the set
    /// holds, so only its ST is kept (the worker reads its guide from it).
    st_only: bool,
}

/// A settled set read in parts, being cut at its loop in a second pass over its parts, one
/// part at a time as its pieces are taken.
struct Cutting {
    cutter: sluice_x12::cut_stream::Cutter,
    parts: std::collections::VecDeque<(usize, Chunk)>,
    set: RawSet,
    isa: Vec<u8>,
    gs: Vec<u8>,
    problem: Option<Rejection>,
}

/// What the reader hands on, in file order: a settled set (cut into its pieces only when its
/// turn comes, so a file's pieces are never all in memory at once) or bytes outside any
/// interchange.
enum Queued {
    Set { pending: Pending, problem: Option<Rejection> },
    Stray { offset: usize, bytes: Vec<u8>, problem: Rejection },
}

/// Bytes of pending sets held in memory before the next ones are parked in the spill file: a
/// file is usually one interchange, and its sets wait for its IEA.
const HOLD_IN_MEMORY: usize = 8 << 20;

/// A set longer than this is read in parts of about this size: checked a segment at a time,
/// kept part by part, and, when it is cut at a loop, cut in two passes (surveyed while it is
/// read, cut as its pieces are taken), so one huge set is never held whole unless it is one
/// record.
const READ_SET_IN_PARTS_BEYOND: usize = 1 << 20;

/// The pieces of one X12 file (or object: `open` gives its bytes; `path` names it and its
/// acknowledgments), read as they are needed.
pub fn pieces<'s>(
    open: &crate::source::Opener,
    path: &Path,
    src: &'s X12Source,
) -> Result<Box<dyn Iterator<Item = std::io::Result<Piece>> + Send + 's>, RunError> {
    let bytes = open()?;
    let reader = BufReader::with_capacity(64 * 1024, bytes);
    Ok(Box::new(Pieces::new(reader, path, src, HOLD_IN_MEMORY, std::env::temp_dir(), READ_SET_IN_PARTS_BEYOND)))
}

struct Pieces<'s, R> {
    splitter: Splitter<R>,
    checker: Checker,
    src: &'s X12Source,
    file: PathBuf,
    isa: Vec<u8>,
    gs: Vec<u8>,
    /// Sets of interchanges not yet ended.
    pending: Vec<Pending>,
    /// Bytes of `pending` held in memory (the others are parked in `spill`).
    held: usize,
    /// The most `held` may reach before sets are parked.
    hold_in_memory: usize,
    /// Made at the first set parked, in `spill_dir`.
    spill: Option<crate::spill::Spill>,
    spill_dir: PathBuf,
    queued: std::collections::VecDeque<Queued>,
    /// The set being read in parts.
    reading: Option<Reading>,
    /// The set read in parts being cut.
    cutting: Option<Cutting>,
    /// The pieces of the set being handed on.
    ready: std::collections::VecDeque<Piece>,
    index: u64,
    end: usize,
    done: bool,
}

impl<'s, R: std::io::Read> Pieces<'s, R> {
    fn new(
        reader: R,
        path: &Path,
        src: &'s X12Source,
        hold_in_memory: usize,
        spill_dir: PathBuf,
        set_limit: usize,
    ) -> Self {
        Pieces {
            splitter: Splitter::with_set_limit(reader, set_limit),
            checker: src.checker(),
            src,
            file: path.to_path_buf(),
            isa: Vec::new(),
            gs: Vec::new(),
            pending: Vec::new(),
            held: 0,
            hold_in_memory,
            spill: None,
            spill_dir,
            queued: std::collections::VecDeque::new(),
            reading: None,
            cutting: None,
            ready: std::collections::VecDeque::new(),
            index: 0,
            end: 0,
            done: false,
        }
    }

    /// Keeps `bytes` until their interchange ends: in memory while the pending sets fit in
    /// `hold_in_memory`, else parked in the spill file.
    fn keep(&mut self, bytes: Vec<u8>) -> std::io::Result<Chunk> {
        if self.held + bytes.len() <= self.hold_in_memory {
            self.held += bytes.len();
            return Ok(Chunk::Held(bytes));
        }
        let spill = match &mut self.spill {
            Some(s) => s,
            None => self
                .spill
                .insert(crate::spill::Spill::new_in(&self.spill_dir).map_err(|e| spill_failed(&self.spill_dir, &e))?),
        };
        Ok(Chunk::Parked(spill.put(bytes).map_err(|e| spill_failed(&self.spill_dir, &e))?))
    }

    /// Keeps a set read whole until its interchange ends.
    fn hold(&mut self, mut set: RawSet) -> std::io::Result<()> {
        let parked = match self.keep(std::mem::take(&mut set.bytes))? {
            Chunk::Held(bytes) => {
                set.bytes = bytes;
                None
            }
            Chunk::Parked(p) => Some(p),
        };
        let (isa, gs) = (self.isa.clone(), self.gs.clone());
        self.pending.push(Pending { set, parked, parts: Vec::new(), two_pass: None, isa, gs });
        Ok(())
    }

    /// Keeps one part of a set longer than the read limit; when the set is cut at a loop, its
    /// first pass ([`sluice_x12::cut_stream::Survey`]) reads the part's segments.
    fn read_part(&mut self, part: RawSet, first: bool, last: bool) -> std::io::Result<()> {
        if first || self.reading.is_none() {
            // A set left unfinished (which the splitter never does) is kept as it is.
            if let Some(r) = self.reading.take() {
                self.pending.push(r.finish());
            }
            let st = part.segments().next();
            let d = part.delimiters;
            let st_only = st.is_some_and(|st| of_another_guide(self.src, &self.isa, &self.gs, d, st));
            let at = st.filter(|_| !st_only).and_then(|st| cut_target(self.src, &self.isa, &self.gs, d, &st));
            let survey = at.map(|(guide, split)| {
                let loops: Vec<&str> = split.loops.iter().map(String::as_str).collect();
                (sluice_x12::cut_stream::Survey::new(guide, &loops), guide, split.loops.clone())
            });
            let bytes = st.filter(|_| st_only).map(|st| st.raw.to_vec()).unwrap_or_default();
            let set = RawSet { offset: part.offset, delimiters: d, bytes, closed: false };
            let (isa, gs) = (self.isa.clone(), self.gs.clone());
            let pending = Pending { set, parked: None, parts: Vec::new(), two_pass: None, isa, gs };
            self.reading = Some(Reading { pending, survey, st_only });
        }
        let Some(mut reading) = self.reading.take() else { return Ok(()) };
        if reading.st_only {
            if last {
                self.pending.push(reading.finish());
            } else {
                self.reading = Some(reading);
            }
            return Ok(());
        }
        let at = part.offset.saturating_sub(reading.pending.set.offset);
        if let Some((survey, _, _)) = &mut reading.survey {
            for seg in sluice_x12::codec::segments(&part.bytes, part.delimiters, at) {
                survey.push(&seg);
            }
        }
        let closed = part.closed;
        let chunk = self.keep(part.bytes)?;
        reading.pending.parts.push((at, chunk));
        if last {
            reading.pending.set.closed = closed;
            self.pending.push(reading.finish());
        } else {
            self.reading = Some(reading);
        }
        Ok(())
    }
}

impl Reading {
    fn finish(self) -> Pending {
        let Reading { mut pending, survey, .. } = self;
        pending.two_pass =
            survey.map(|(survey, guide, loops)| Box::new(TwoPass { guide, loops, plan: survey.finish() }));
        pending
    }
}

impl<R: std::io::Read> Iterator for Pieces<'_, R> {
    type Item = std::io::Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.ready.pop_front() {
                return Some(Ok(p));
            }
            if self.cutting.is_some() {
                if let Err(e) = self.cut_more() {
                    return self.fail(e);
                }
                continue;
            }
            match self.queued.pop_front() {
                Some(Queued::Set { pending, problem }) => {
                    if let Err(e) = self.hand_on(pending, problem) {
                        return self.fail(e);
                    }
                    continue;
                }
                Some(Queued::Stray { offset, bytes, problem }) => {
                    let index = self.next_index();
                    return Some(Ok(Piece { offset: offset as u64, index, bytes, problem: Some(problem) }));
                }
                None => {}
            }
            if self.done {
                return None;
            }
            let item = match self.splitter.next() {
                Some(Ok(item)) => item,
                Some(Err(e)) => return self.fail(e),
                None => {
                    self.done = true;
                    self.checker.finish(self.end);
                    if let Err(e) = self.settle() {
                        return self.fail(e);
                    }
                    continue;
                }
            };
            self.end = item.offset();
            self.checker.check(&item);
            match item {
                Item::Envelope { bytes, .. } => {
                    let is = |id: &[u8]| {
                        bytes.starts_with(id) && !bytes.get(id.len()).is_some_and(u8::is_ascii_alphanumeric)
                    };
                    if is(b"ISA") {
                        self.isa = bytes;
                        self.gs.clear();
                    } else if is(b"GS") {
                        self.gs = bytes;
                    }
                }
                Item::Set(set) => {
                    if let Err(e) = self.hold(set) {
                        return self.fail(e);
                    }
                }
                Item::SetPart { part, first, last } => {
                    if let Err(e) = self.read_part(part, first, last) {
                        return self.fail(e);
                    }
                }
                Item::Stray { offset, bytes, code, reason } => {
                    let why =
                        format!("{} bytes at file offset {offset} are not an X12 interchange: {reason}", bytes.len());
                    let problem = Rejection {
                        code: findings::X12_UNREADABLE,
                        findings: vec![Finding { code, rule: None, path: None, message: why.clone() }],
                        reason: why,
                        attempts: 1,
                    };
                    // Sets read before it are settled first, to keep the file's order.
                    if let Err(e) = self.settle() {
                        return self.fail(e);
                    }
                    self.queued.push_back(Queued::Stray { offset, bytes, problem });
                }
            }
            if let Err(e) = self.settle() {
                return self.fail(e);
            }
        }
    }
}

impl<R> Pieces<'_, R> {
    /// Ends the read with `e`: nothing more is handed on after an error.
    fn fail(&mut self, e: std::io::Error) -> Option<std::io::Result<Piece>> {
        self.done = true;
        self.queued.clear();
        self.ready.clear();
        self.reading = None;
        self.cutting = None;
        Some(Err(e))
    }

    /// The next record index in the file (0-based, in file order).
    fn next_index(&mut self) -> u64 {
        let i = self.index;
        self.index += 1;
        i
    }

    /// The parts of a set whose guide the source cuts at a loop (`split`): the loop and one
    /// part per occurrence (`sluice_x12::cut`). `None`: the set is a record whole.
    fn cut(&self, p: &Pending) -> Option<(String, Vec<sluice_x12::cut::Part>)> {
        let d = p.set.delimiters;
        let st = sluice_x12::codec::segments(&p.set.bytes, d, 0).next()?;
        let (guide, split) = cut_target(self.src, &p.isa, &p.gs, d, &st)?;
        let all: Vec<Segment> = sluice_x12::codec::segments(&p.set.bytes, d, 0).collect();
        let identified = sluice_x12::loops::identify(guide, all, p.set.closed);
        let loops: Vec<&str> = split.loops.iter().map(String::as_str).collect();
        Some((loops.join(" or "), sluice_x12::cut::cut_any(&identified, &loops)))
    }

    /// Queues the pending sets of every completed interchange, with their verdicts, and writes
    /// the interchanges' acknowledgments.
    fn settle(&mut self) -> std::io::Result<()> {
        for ic in self.checker.take_done() {
            // Sets before this interchange's ISA cannot exist (the splitter keeps order), and
            // those of the next one are read only after this one's end: every pending set is
            // this interchange's (any other is settled with it, so none is lost).
            for pending in std::mem::take(&mut self.pending) {
                let problem = verdict(&ic, pending.set.offset);
                self.queued.push_back(Queued::Set { pending, problem });
            }
            self.held = 0;
            if let Some(acks) = &self.src.acks {
                acks.write(&self.file, &ic, self.src.delimiters_for(&ic)).map_err(|e| {
                    let e = RunError::new(
                        findings::X12_ACK_FAILED,
                        format!("the X12 acknowledgment cannot be written: {}", e.message),
                    );
                    std::io::Error::other(e)
                })?;
            }
        }
        Ok(())
    }

    /// Kept bytes, read back from the spill file if they were parked there.
    fn bytes_of(&mut self, chunk: Chunk) -> std::io::Result<Vec<u8>> {
        match chunk {
            Chunk::Held(bytes) => Ok(bytes),
            Chunk::Parked(parked) => {
                let dir = &self.spill_dir;
                let gone = || std::io::Error::other("the spill file is gone");
                let spill = self.spill.as_mut().ok_or_else(|| spill_failed(dir, &gone()))?;
                spill.take(parked).map_err(|e| spill_failed(dir, &e))
            }
        }
    }

    /// Turns one settled set into its pieces (one, or one per occurrence of the loop it is cut
    /// at), reading it back from the spill file if it was parked there. A set read in parts
    /// and cut at a loop is cut in a second pass, part by part ([`Pieces::cut_more`]); read
    /// in parts and a record whole (or holding no occurrence of its loop), it is joined.
    fn hand_on(&mut self, mut p: Pending, problem: Option<Rejection>) -> std::io::Result<()> {
        if let Some(parked) = p.parked.take() {
            p.set.bytes = self.bytes_of(Chunk::Parked(parked))?;
        }
        if let Some(two) = p.two_pass.take().filter(|t| t.plan.occurrences() > 0) {
            let loops: Vec<&str> = two.loops.iter().map(String::as_str).collect();
            let cutter = sluice_x12::cut_stream::Cutter::new(two.guide, &loops, two.plan);
            let parts = std::mem::take(&mut p.parts).into();
            self.cutting = Some(Cutting { cutter, parts, set: p.set, isa: p.isa, gs: p.gs, problem });
            return Ok(());
        }
        for (_, chunk) in std::mem::take(&mut p.parts) {
            let bytes = self.bytes_of(chunk)?;
            p.set.bytes.extend_from_slice(&bytes);
        }
        match self.cut(&p) {
            None => {
                let bytes = one_set_interchange(&p.isa, &p.gs, &p.set);
                // Another guide's set goes on to be filtered, broken or not: the source
                // that reads its guide is the one to reject it.
                let st = sluice_x12::codec::segments(&p.set.bytes, p.set.delimiters, 0).next();
                let another = st.is_some_and(|st| of_another_guide(self.src, &p.isa, &p.gs, p.set.delimiters, st));
                let problem = problem.filter(|_| !another);
                let index = self.next_index();
                self.ready.push_back(Piece { offset: p.set.offset as u64, index, bytes, problem });
            }
            Some((loop_id, parts)) if parts.is_empty() => {
                let bytes = one_set_interchange(&p.isa, &p.gs, &p.set);
                let why = format!(
                    "the transaction set holds no loop {loop_id}, which its records are cut at (one record per occurrence)"
                );
                let mut r = Rejection::single(findings::X12_LOOP_ABSENT, None, why);
                if let Some(own) = problem {
                    r.findings.extend(own.findings);
                }
                let index = self.next_index();
                self.ready.push_back(Piece { offset: p.set.offset as u64, index, bytes, problem: Some(r) });
            }
            Some((_, parts)) => {
                for part in parts {
                    self.hand_on_part(&p.isa, &p.gs, &p.set, part, problem.clone());
                }
            }
        }
        Ok(())
    }

    /// One occurrence of the loop a set is cut at, as a piece.
    fn hand_on_part(
        &mut self,
        isa: &[u8],
        gs: &[u8],
        whole: &RawSet,
        part: sluice_x12::cut::Part,
        problem: Option<Rejection>,
    ) {
        let set = RawSet {
            offset: whole.offset + part.offset,
            bytes: part.bytes,
            delimiters: whole.delimiters,
            closed: true,
        };
        let bytes = one_set_interchange(isa, gs, &set);
        let index = self.next_index();
        self.ready.push_back(Piece { offset: set.offset as u64, index, bytes, problem });
    }

    /// The second pass over a set read in parts: its next part is read back and cut; the
    /// occurrences it ends become pieces.
    fn cut_more(&mut self) -> std::io::Result<()> {
        let Some(mut c) = self.cutting.take() else { return Ok(()) };
        let more = match c.parts.pop_front() {
            Some((at, chunk)) => {
                let bytes = self.bytes_of(chunk)?;
                for seg in sluice_x12::codec::segments(&bytes, c.set.delimiters, at) {
                    c.cutter.push(&seg);
                }
                true
            }
            None => {
                c.cutter.finish();
                false
            }
        };
        while let Some(part) = c.cutter.next_part() {
            self.hand_on_part(&c.isa, &c.gs, &c.set, part, c.problem.clone());
        }
        if more {
            self.cutting = Some(c);
        }
        Ok(())
    }
}

/// The guide a set is placed in and the loops it is cut at (`split`), from its ISA, GS and ST;
/// `None`: the set is a record whole.
fn cut_target<'s>(
    src: &'s X12Source,
    isa: &[u8],
    gs: &[u8],
    d: sluice_x12::codec::Delimiters,
    st: &Segment,
) -> Option<(&'static sluice_x12::guide::Guide, &'s sluice_compiler::plan::X12Split)> {
    if src.split.is_empty() {
        return None;
    }
    let isa = Segment { offset: 0, raw: isa, delimiters: d };
    let gs = Segment { offset: 0, raw: gs, delimiters: d };
    let selector = sluice_x12::guide::Selector {
        isa12: isa.element_str(12),
        gs01: gs.element_str(1),
        gs08: gs.element_str(8),
        st01: st.element_str(1),
        st03: st.element_str(3),
    };
    let guide = sluice_x12::guide::select(&selector).ok()?;
    // The plan names a guide as a mapping does (`005010X279A1/271` where the 270 and the 271
    // share the id).
    let split = src.split.iter().find(|s| s.guide == guide.schema_name())?;
    // A partner's sets are placed in its copy of the guide, as they were validated.
    let sender = src.partners.as_deref().and_then(|p| p.identify(isa.element_str(5).trim(), isa.element_str(6).trim()));
    Some((sender.map_or(guide, |p| p.guide_for(guide)), split))
}

/// The run error (RT146) for a spill file in `dir` that cannot be made, written or read back,
/// carried in the reader's `io::Error`.
fn spill_failed(dir: &Path, e: &std::io::Error) -> std::io::Error {
    let e = RunError::new(
        findings::X12_SPILL_FAILED,
        format!(
            "the X12 source cannot park transaction sets in a spill file in {} while it waits for their interchange's end: {e}",
            dir.display()
        ),
    )
    .with_help("set TMPDIR to a writable directory with room for the largest interchange read, then run again");
    std::io::Error::other(e)
}

/// The rejection of the set at `offset` in `ic`, if it has (or its group, or the interchange
/// has) an error.
fn verdict(ic: &InterchangeResult, offset: usize) -> Option<Rejection> {
    let found = ic.groups.iter().find_map(|g| g.sets.iter().find(|s| s.offset == offset).map(|s| (g, s)));
    let Some((group, set)) = found else {
        let why = "the transaction set is not inside a functional group (GS..GE)".to_string();
        let mut errors: Vec<&X12Finding> = errors_of(&ic.findings).collect();
        errors.truncate(20);
        let mut r = Rejection::single(findings::X12_REJECTED, None, why);
        r.findings.extend(errors.into_iter().map(finding));
        return Some(r);
    };
    let mut errors: Vec<&X12Finding> = errors_of(&set.findings).collect();
    let own = errors.len();
    errors.extend(errors_of(&group.findings));
    errors.extend(errors_of(&ic.findings));
    let first = errors.first()?;
    let whose = if own > 0 {
        "the transaction set"
    } else if errors_of(&group.findings).next().is_some() {
        "its functional group"
    } else {
        "its interchange"
    };
    let mut reason = format!(
        "X12 transaction set {} (control {}) rejected: {} error(s) in {whose}; first {} at {}",
        sluice_x12_echo(&set.id),
        sluice_x12_echo(&set.control),
        errors.len(),
        first.code,
        location(first)
    );
    // A partner check decides the code (who may send outranks how well it was sent); its
    // message names positions and the profile's partner names and ids only.
    let by_partner = [
        (&["X12068", "X12071"][..], findings::X12_UNKNOWN_PARTNER),
        (&["X12070"][..], findings::X12_PARTNER_VERSION),
        (&["X12069"][..], findings::X12_PARTNER_SET),
    ];
    let mut code = findings::X12_REJECTED;
    if let Some((f, c)) =
        by_partner.iter().find_map(|(codes, c)| errors.iter().find(|f| codes.contains(&f.code)).map(|f| (f, *c)))
    {
        code = c;
        reason = format!(
            "X12 transaction set {} (control {}) rejected by the trading-partner profile: {} at {}: {} ({} error(s) in all)",
            sluice_x12_echo(&set.id),
            sluice_x12_echo(&set.control),
            f.code,
            location(f),
            f.message,
            errors.len()
        );
    }
    Some(Rejection { code, findings: errors.into_iter().map(finding).collect(), reason, attempts: 1 })
}

/// An envelope identifier as echoed in reasons: only when it looks like one (digits and
/// letters, at most 9), else a placeholder (a shifted element could hold data).
fn sluice_x12_echo(v: &str) -> &str {
    if !v.is_empty() && v.len() <= 9 && v.bytes().all(|b| b.is_ascii_alphanumeric()) { v } else { "(unnamed)" }
}

fn errors_of(fs: &[X12Finding]) -> impl Iterator<Item = &X12Finding> {
    fs.iter().filter(|f| f.severity == Severity::Error)
}

/// Where a finding is: `segment 12 CLM05-1 (loop 2300)`, or the envelope position.
fn location(f: &X12Finding) -> String {
    let mut at = String::new();
    if f.segment_number > 0 {
        at.push_str(&format!("segment {}", f.segment_number));
    }
    if !f.position.is_empty() {
        if !at.is_empty() {
            at.push(' ');
        }
        at.push_str(&f.position);
    }
    if let Some(g) = f.guide.as_ref().filter(|g| !g.loop_id.is_empty()) {
        at.push_str(&format!(" (loop {})", g.loop_id));
    }
    if at.is_empty() {
        at = format!("byte {}", f.offset);
    }
    at
}

fn finding(f: &X12Finding) -> Finding {
    Finding { code: f.code, rule: None, path: Some(location(f)), message: f.message.clone() }
}

/// The implementation guide a set's envelopes and ST name (`None`: they name none Sluice has).
fn guide_of(isa: &[String], gs: &[String], st: Option<Segment<'_>>) -> Option<String> {
    let selector = sluice_x12::guide::Selector {
        isa12: isa.get(11).map_or("", String::as_str),
        gs01: gs.first().map_or("", String::as_str),
        gs08: gs.get(7).map_or("", String::as_str),
        st01: st.map_or("", |s| s.element_str(1)),
        st03: st.map_or("", |s| s.element_str(3)),
    };
    sluice_x12::guide::select(&selector).ok().map(|g| g.id.clone())
}

/// Whether the set `st` begins, in the interchange and group of `isa` and `gs` (without
/// terminators; an empty ISA: no interchange, so no guide to tell), is of a guide `src` does
/// not read (one not in its `guides`).
fn of_another_guide(src: &X12Source, isa: &[u8], gs: &[u8], d: sluice_x12::codec::Delimiters, st: Segment) -> bool {
    if src.guides.is_empty() || isa.is_empty() {
        return false;
    }
    let elements = |raw: &[u8]| -> Vec<String> {
        let s = Segment { offset: 0, raw, delimiters: d };
        s.elements().map(|e| String::from_utf8_lossy(e).trim().to_string()).collect()
    };
    guide_of(&elements(isa), &elements(gs), Some(st)).is_some_and(|g| !src.guides.contains(&g))
}

/// The set alone in an interchange: its ISA and GS, the set, `GE*1*<GS06>` and
/// `IEA*1*<ISA13>`.
fn one_set_interchange(isa: &[u8], gs: &[u8], set: &RawSet) -> Vec<u8> {
    let d = set.delimiters;
    let mut out = Vec::with_capacity(isa.len() + gs.len() + set.bytes.len() + 48);
    fn seg(s: &[u8], d: sluice_x12::codec::Delimiters) -> Segment<'_> {
        Segment { offset: 0, raw: s, delimiters: d }
    }
    if !isa.is_empty() {
        out.extend_from_slice(isa);
        out.push(d.segment);
    }
    if !gs.is_empty() {
        out.extend_from_slice(gs);
        out.push(d.segment);
    }
    out.extend_from_slice(&set.bytes);
    if !set.closed {
        out.push(d.segment);
    }
    let e = d.element as char;
    let t = d.segment as char;
    if !gs.is_empty() {
        out.extend_from_slice(format!("GE{e}1{e}{}{t}", seg(gs, d).element_str(6)).as_bytes());
    }
    if !isa.is_empty() {
        out.extend_from_slice(format!("IEA{e}1{e}{}{t}", seg(isa, d).element_str(13)).as_bytes());
    }
    out
}

impl std::fmt::Debug for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acks").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Acks {
    /// Writes the acknowledgment of `ic` (read from `file`) as
    /// `<dir>/<file name>.<ISA13>.<999|997|ta1>`.
    fn write(
        &self,
        file: &Path,
        ic: &InterchangeResult,
        delimiters: Option<sluice_x12::partner::OutputDelimiters>,
    ) -> Result<(), RunError> {
        if ic.isa.len() < 16 {
            return Ok(()); // bytes outside any interchange: nobody to answer
        }
        let (isa13, gs06) = {
            let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                *guard = Some(crate::state::Store::open(&self.state, None)?);
            }
            guard.as_ref().expect("opened above").x12_ack_control_numbers(ic)?
        };
        let stamp = crate::time::rfc3339_to_hl7(&self.clock.now());
        let options = sluice_x12::ack::AckOptions {
            date: stamp.get(..8).unwrap_or("").to_string(),
            time: stamp.get(8..12).unwrap_or("").to_string(),
            interchange_control: isa13,
            group_control: gs06,
            delimiters,
        };
        let Some(text) = sluice_x12::ack::acknowledge(ic, &options) else { return Ok(()) };
        let e = delimiters.map_or('*', |d| char::from(d.element));
        let kind = if ic.has_errors() {
            "ta1"
        } else if text.contains(&format!("ST{e}999{e}")) {
            "999"
        } else if text.contains(&format!("ST{e}997{e}")) {
            "997"
        } else {
            "ta1"
        };
        let name = file.file_name().map_or_else(|| "input".into(), |n| n.to_string_lossy().into_owned());
        let control: String = ic.isa_element(13).chars().filter(char::is_ascii_alphanumeric).take(9).collect();
        std::fs::create_dir_all(&self.dir).map_err(|e| RunError::io("create", &self.dir, &e))?;
        let path = self.dir.join(format!("{name}.{control}.{kind}"));
        let tmp = self.dir.join(format!(".{name}.{control}.{kind}.tmp"));
        std::fs::write(&tmp, text.as_bytes()).map_err(|e| RunError::io("write", &tmp, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| RunError::io("write", &path, &e))?;
        tracing::info!(kind, "X12 acknowledgment written");
        Ok(())
    }
}

/// A set that passed the source step.
#[derive(Debug)]
pub struct Decoded {
    pub doc: Doc,
    /// Envelope and guide warnings (lenient: what strict mode would have rejected).
    pub warnings: Vec<crate::record::Issue>,
    /// `ISA13/GS06/ST02`: control numbers, never data.
    pub id: String,
    /// ST01 (`837`).
    pub set_id: String,
}

/// Reads one piece (a one-set interchange) into its record document, checking it again
/// (envelopes and guide, in the source's mode): the reader already rejected what its
/// interchange made wrong, so this finds errors only in what did not come from the reader (a
/// DLQ entry replayed) and gives the record its warnings. `Ok(None)`: the set's guide is not
/// one the source reads (filtered).
pub fn decode(bytes: &[u8], src: &X12Source) -> Result<Option<Decoded>, Rejection> {
    let mut isa = None;
    let mut gs = None;
    let mut set = None;
    let mut checker = src.checker();
    let mut end = 0;
    for item in Splitter::new(bytes) {
        if let Ok(item) = &item {
            checker.check(item);
            end = item.offset();
        }
        match item {
            Ok(Item::Envelope { offset, delimiters, bytes }) => {
                let s = Segment { offset, raw: &bytes, delimiters };
                let elements: Vec<String> =
                    s.elements().map(|e| String::from_utf8_lossy(e).trim().to_string()).collect();
                match s.id() {
                    b"ISA" => isa = Some(elements),
                    b"GS" => gs = Some(elements),
                    _ => {}
                }
            }
            Ok(Item::Set(s)) if set.is_none() => set = Some(s),
            _ => {}
        }
    }
    let Some(set) = set else {
        return Err(Rejection::single(
            findings::X12_UNREADABLE,
            None,
            "the record holds no X12 transaction set (ST..SE inside an ISA interchange)",
        ));
    };
    let (isa, gs) = (isa.unwrap_or_default(), gs.unwrap_or_default());
    // Another guide's set is not this source's to judge, broken or not: filtered, so a file
    // two sources read (one per guide) puts a broken set in the DLQ once, not once per source.
    let guide = guide_of(&isa, &gs, set.segments().next());
    if !src.guides.is_empty() && guide.as_ref().is_some_and(|g| !src.guides.contains(g)) {
        return Ok(None);
    }
    checker.finish(end);
    let results = checker.take_done();
    let mut warnings = Vec::new();
    let mut partner = None;
    for ic in &results {
        if ic.groups.iter().flat_map(|g| &g.sets).any(|s| s.offset == set.offset) {
            partner = ic.partner.clone();
        }
        if let Some(r) =
            ic.groups.iter().flat_map(|g| &g.sets).find(|s| s.offset == set.offset).and(verdict(ic, set.offset))
        {
            return Err(r);
        }
        let all = ic
            .findings
            .iter()
            .chain(ic.groups.iter().flat_map(|g| g.findings.iter().chain(g.sets.iter().flat_map(|s| &s.findings))));
        warnings.extend(
            all.filter(|f| f.severity == Severity::Warning)
                .map(|f| crate::record::Issue::new(f.code, location(f), f.message.clone())),
        );
    }
    if results.is_empty()
        || results.iter().all(|ic| ic.groups.iter().all(|g| g.sets.iter().all(|s| s.offset != set.offset)))
    {
        return Err(Rejection::single(
            findings::X12_REJECTED,
            None,
            "the transaction set is not inside an interchange and a functional group (ISA/GS)",
        ));
    }
    let el = |v: &[String], n: usize| v.get(n - 1).cloned().unwrap_or_default();
    let st = set.segments().next();
    let st_el = |n| st.map(|s| s.element_str(n).to_string()).unwrap_or_default();
    let guide = guide.unwrap_or_default();
    if !src.guides.is_empty() && !src.guides.contains(&guide) {
        return Ok(None);
    }
    let s = |v: String| Doc::Str(v);
    let obj = |pairs: Vec<(&str, Doc)>| Doc::Obj(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    let segments: Vec<Doc> =
        set.segments().map(|seg| Doc::from_json(&sluice_x12::json::segment_to_json(&seg))).collect();
    let id = format!("{}/{}/{}", el(&isa, 13), el(&gs, 6), st_el(2));
    let doc = obj(vec![
        (
            "interchange",
            obj(vec![
                ("control", s(el(&isa, 13))),
                ("sender_qualifier", s(el(&isa, 5))),
                ("sender_id", s(el(&isa, 6))),
                ("receiver_qualifier", s(el(&isa, 7))),
                ("receiver_id", s(el(&isa, 8))),
                ("version", s(el(&isa, 12))),
                ("usage", s(el(&isa, 15))),
            ]
            .into_iter()
            .chain(src.partners.is_some().then(|| ("partner", partner.clone().map_or(Doc::Null, Doc::Str))))
            .collect()),
        ),
        (
            "group",
            obj(vec![
                ("functional_id", s(el(&gs, 1))),
                ("sender", s(el(&gs, 2))),
                ("receiver", s(el(&gs, 3))),
                ("control", s(el(&gs, 6))),
                ("version", s(el(&gs, 8))),
            ]),
        ),
        ("set", obj(vec![("id", s(st_el(1))), ("control", s(st_el(2))), ("guide", s(guide))])),
        ("segments", Doc::Arr(segments)),
    ]);
    Ok(Some(Decoded { doc, warnings, id, set_id: st_el(1) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn src(guides: &[&str], lenient: bool) -> X12Source {
        X12Source {
            guides: guides.iter().map(|g| g.to_string()).collect(),
            lenient,
            acks: None,
            split: Vec::new(),
            partners: None,
        }
    }

    fn temp(text: &[u8]) -> PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-x12-source-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.x12");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read_all(text: &[u8], s: &X12Source) -> Vec<Piece> {
        let path = temp(text);
        let out = pieces(&|| crate::source::open_local(&path), &path, s).unwrap().map(Result::unwrap).collect();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        out
    }

    const ISA: &str =
        "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*00501*000000101*0*T*:~";

    fn set_997(control: &str, bad: bool) -> String {
        // A 997 (004010 guide not used here: 5010 999 guide is; a minimal 999 set).
        let ik5 = if bad { "IK5*Q" } else { "IK5*A" };
        format!(
            "ST*999*{control}*005010X231A1~AK1*HC*1*005010X222A1~AK2*837*0001*005010X222A1~{ik5}~AK9*A*1*1*1~SE*6*{control}~"
        )
    }

    #[test]
    fn a_bad_set_goes_to_the_dlq_and_the_others_are_delivered() {
        let text = format!(
            "{ISA}GS*FA*SENDER*RECEIVER*20240101*1200*7*X*005010X231A1~{}{}{}GE*3*7~IEA*1*000000101~junk after",
            set_997("0001", false),
            set_997("0002", true),
            set_997("0003", false)
        );
        let pieces = read_all(text.as_bytes(), &src(&[], false));
        let outcomes: Vec<String> = pieces
            .iter()
            .map(|p| match &p.problem {
                Some(r) => format!("{} {}", r.code, r.findings.len()),
                None => decode(&p.bytes, &src(&[], false)).unwrap().unwrap().id,
            })
            .collect();
        assert_eq!(outcomes[0], "000000101/7/0001");
        assert!(outcomes[1].starts_with("RT140"), "{outcomes:?}");
        assert_eq!(outcomes[2], "000000101/7/0003");
        assert!(outcomes[3].starts_with("RT141"), "{outcomes:?}");
        assert_eq!(pieces.len(), 4);
        // The DLQ bytes are a one-set interchange that reads alone.
        let r = sluice_x12::envelope::check_stream(&pieces[1].bytes[..], sluice_x12::envelope::Mode::Strict).unwrap();
        assert_eq!(r.len(), 1);
        assert!(!r[0].has_errors(), "{:?}", r[0].findings);
        // Filtered by guide.
        assert!(decode(&pieces[0].bytes, &src(&["005010X222A1"], false)).unwrap().is_none());
        assert!(decode(&pieces[0].bytes, &src(&["005010X231A1"], false)).unwrap().is_some());
    }

    #[test]
    fn a_broken_group_rejects_its_sets() {
        let text = format!(
            "{ISA}GS*FA*SENDER*RECEIVER*20240101*1200*7*X*005010X231A1~{}GE*5*7~IEA*1*000000101~",
            set_997("0001", false)
        );
        let pieces = read_all(text.as_bytes(), &src(&[], false));
        assert_eq!(pieces.len(), 1);
        let r = pieces[0].problem.as_ref().unwrap();
        assert!(r.reason.contains("functional group"), "{}", r.reason);
    }

    /// Segments an 837P and a partner's additions to it hold, well and badly formed.
    const PARTNER_SEGMENTS: &[&str] = &[
        "HL*1**20*1~",
        "HL*2*1*22*0~",
        "SBR*P*18*******CI~",
        "NM1*IL*1*DOE*J****MI*1~",
        "CLM*A1*100***11:B:1*Y*A*Y*Y~",
        "REF*ZZ*CH7781~",
        "REF*ZZ~",
        "REF*G2*RP1~",
        "NTE*ADD*X~",
        "NTE~",
        "NM1*ZZ*2*REPRICER~",
        "NM1*ZZ~",
        "ZZ1*A*B*C~",
        "HI*ABK:R079~",
        "LX*1~",
        "SV1*HC:99213*100*UN*1***1~",
        "SE*5*0001~",
        "ST*837*0002*005010X222A1~",
        "*~~",
    ];

    /// The 837P with what a partner adds: a REF*ZZ, NTE repeats, a segment the dictionary
    /// lacks and a loop started by NM1*ZZ.
    fn partner_guide() -> &'static sluice_x12::guide::Guide {
        use sluice_x12::guide::{ElementType, Usage};
        use sluice_x12::partner::{Addition, NewElement, NewSegment, Overlay, overlaid};
        let overlays = vec![
            Overlay { path: "2300/REF(ZZ)".into(), add: Some(Addition::Segment(vec![])), ..Overlay::default() },
            Overlay { path: "2300/NTE".into(), max_use: Some(3), ..Overlay::default() },
            Overlay {
                path: "2400/ZZ1".into(),
                max_use: Some(2),
                add: Some(Addition::Segment(vec![NewElement {
                    position: 1,
                    usage: Some(Usage::Required),
                    ty: Some(ElementType::Id),
                    min_length: Some(1),
                    max_length: Some(2),
                    codes: vec!["A".into()],
                    ..NewElement::default()
                }])),
                ..Overlay::default()
            },
            Overlay {
                path: "2300/2310Z".into(),
                after: Some("2310F".into()),
                add: Some(Addition::Loop(vec![
                    NewSegment { segment: "NM1(ZZ)".into(), ..NewSegment::default() },
                    NewSegment { segment: "REF(G2)".into(), ..NewSegment::default() },
                ])),
                ..Overlay::default()
            },
        ];
        overlaid(sluice_x12::guide::by_id("005010X222A1").unwrap(), &overlays).unwrap()
    }

    /// Two interchanges of 837P sets (the fixture's set, copied with new control numbers; the
    /// second copy's SE01 miscounts), with bytes that are no interchange between them.
    fn several_interchanges() -> Vec<u8> {
        let fixture = include_str!("../../specs/x12/tests/fixtures/claims-837p.x12");
        let st = fixture.find("ST*837*").unwrap();
        let se = fixture.find("SE*62*0001~").unwrap();
        let (head, set) = (&fixture[..st], &fixture[st..se]);
        let copy = |control: &str, count: &str| {
            format!("{}SE*{count}*{control}~", set.replacen("ST*837*0001*", &format!("ST*837*{control}*"), 1))
        };
        let interchange =
            format!("{head}{}{}{}GE*3*1~IEA*1*000000001~", copy("0001", "62"), copy("0002", "61"), copy("0003", "62"));
        format!("{interchange}\nnot X12 at all\n{interchange}").into_bytes()
    }

    /// What a piece says: where, which, its bytes, and why it was rejected (code, reason,
    /// number of findings).
    type Outline = (u64, u64, Vec<u8>, Option<(&'static str, String, usize)>);

    fn outline(p: &Piece) -> Outline {
        (p.offset, p.index, p.bytes.clone(), p.problem.as_ref().map(|r| (r.code, r.reason.clone(), r.findings.len())))
    }

    fn outlines(input: &[u8], s: &X12Source, hold_in_memory: usize) -> Vec<Outline> {
        outlines_read(input, s, hold_in_memory, usize::MAX)
    }

    /// `outlines` with sets longer than `set_limit` read in parts.
    fn outlines_read(input: &[u8], s: &X12Source, hold_in_memory: usize, set_limit: usize) -> Vec<Outline> {
        Pieces::new(input, Path::new("in.x12"), s, hold_in_memory, std::env::temp_dir(), set_limit)
            .map(|p| outline(&p.unwrap()))
            .collect()
    }

    /// A profile of one partner, `SENDER`, sending 837s (`validate_gs`: `lenient`; with
    /// `overlays`, its copy of the 837P with added segments and a loop).
    fn one_partner(lenient: bool, overlays: bool) -> sluice_x12::partner::Partners {
        use sluice_x12::partner::{Partner, Partners, Processing};
        let partner = Partner {
            name: "sender".into(),
            id: "SENDER".into(),
            qualifier: None,
            gs_id: Some("A".into()),
            transaction_sets: vec!["837".into()],
            version: "5010".into(),
            processing: Processing { validate_isa: false, validate_gs: lenient, strict_segment_order: false },
            guides: if overlays { vec![partner_guide()] } else { vec![] },
            delimiters: None,
        };
        Partners { partners: vec![partner], accept_unknown: false }
    }

    fn per_claim(guides: &[&str]) -> X12Source {
        let mut s = src(guides, false);
        s.split = vec![sluice_compiler::plan::X12Split { guide: "005010X222A1".into(), loops: vec!["2300".into()] }];
        s
    }

    /// One interchange of one 837P set of `claims` claims (two service lines each, a
    /// subscriber per two claims), valid.
    fn long_set(claims: usize) -> Vec<u8> {
        let mut set = String::from(
            "ST*837*0001*005010X222A1~BHT*0019*00*1*20240101*1200*CH~NM1*41*2*SUBMITTER*****46*S1~\
PER*IC*JANE*TE*5555551212~NM1*40*2*RECEIVER*****46*R1~HL*1**20*1~NM1*85*2*PROVIDER*****XX*1000000001~\
N3*1 MAIN ST~N4*TOWN*NY*10001~REF*EI*123456789~",
        );
        for c in 0..claims {
            if c % 2 == 0 {
                let hl = c / 2 + 2;
                set.push_str(&format!(
                    "HL*{hl}*1*22*0~SBR*P*18*******CI~NM1*IL*1*LAST*FIRST****MI*M{c}~NM1*PR*2*PAYER*****PI*P1~"
                ));
            }
            set.push_str(&format!("CLM*C{c}*20***11:B:1*Y*A*Y*Y~HI*ABK:J449~"));
            for l in 1..=2 {
                set.push_str(&format!("LX*{l}~SV1*HC:99213*10*UN*1***1~DTP*472*D8*20240101~"));
            }
        }
        let count = set.matches('~').count() + 1;
        set.push_str(&format!("SE*{count}*0001~"));
        format!("{ISA}GS*HC*SENDER*RECEIVER*20240101*1200*1*X*005010X222A1~{set}GE*1*1~IEA*1*000000101~").into_bytes()
    }

    #[test]
    fn a_set_longer_than_the_read_limit_gives_the_pieces_of_the_whole_set_cut_or_not() {
        let input = long_set(300);
        for s in [per_claim(&[]), src(&[], false)] {
            let whole = outlines_read(&input, &s, usize::MAX, usize::MAX);
            assert_eq!(whole.len(), if s.split.is_empty() { 1 } else { 300 });
            assert!(whole.iter().all(|p| p.3.is_none()), "every claim is accepted");
            for (hold, limit) in [(usize::MAX, 1000), (0, 1000), (5000, 333), (usize::MAX, 1)] {
                assert_eq!(outlines_read(&input, &s, hold, limit), whole, "budget {hold}, read limit {limit}");
            }
        }
        // A broken set read in parts: every claim goes to the DLQ with the set's findings.
        let broken =
            String::from_utf8(input).unwrap().replacen("SV1*HC:99213*10*UN*1***1~", "SV1*HC:99213*10*XX*1***1~", 1);
        let s = per_claim(&[]);
        let whole = outlines_read(broken.as_bytes(), &s, usize::MAX, usize::MAX);
        assert!(whole.iter().all(|p| p.3.as_ref().is_some_and(|r| r.0 == findings::X12_REJECTED)), "{:?}", whole[0].3);
        assert_eq!(outlines_read(broken.as_bytes(), &s, 0, 1000), whole);
    }

    #[test]
    fn a_long_set_of_a_guide_the_source_does_not_read_is_filtered_without_being_kept() {
        let input = long_set(2_000);
        let remits = src(&["005010X221A1"], false);
        let mut pieces = Pieces::new(&input[..], Path::new("in.x12"), &remits, 0, std::env::temp_dir(), 4096);
        let piece = pieces.next().unwrap().unwrap();
        assert!(pieces.next().is_none());
        assert!(pieces.spill.is_none(), "nothing was parked");
        assert!(piece.bytes.len() < 300, "the ST alone: {} bytes", piece.bytes.len());
        assert!(piece.problem.is_none());
        assert!(decode(&piece.bytes, &remits).unwrap().is_none(), "filtered, as the whole set is");
        let whole = outlines_read(&input, &remits, usize::MAX, usize::MAX);
        assert!(decode(&whole[0].2, &remits).unwrap().is_none());
        assert_eq!((whole[0].0, whole[0].1), (piece.offset, piece.index));
    }

    #[test]
    fn a_set_read_in_parts_is_cut_one_part_at_a_time() {
        let input = long_set(2_000);
        let s = per_claim(&[]);
        let mut pieces = Pieces::new(&input[..], Path::new("in.x12"), &s, 0, std::env::temp_dir(), 4096);
        let first = pieces.next().unwrap().unwrap();
        assert_eq!(first.index, 0);
        let cutting = pieces.cutting.as_ref().expect("the set is cut in a second pass");
        let parts = cutting.parts.len();
        assert!(parts > 80, "{parts} parts wait in the spill file");
        assert!(pieces.ready.len() < 40, "only the first part's claims are cut: {}", pieces.ready.len());
        let rest = pieces.by_ref().map(Result::unwrap).count();
        assert_eq!(rest, 1_999);
        assert!(pieces.spill.as_ref().unwrap().is_empty(), "every part was taken back");
    }

    #[test]
    fn sets_parked_in_the_spill_file_give_the_pieces_sets_held_in_memory_give() {
        let input = several_interchanges();
        let mut per_claim = src(&[], false);
        per_claim.split =
            vec![sluice_compiler::plan::X12Split { guide: "005010X222A1".into(), loops: vec!["2300".into()] }];
        for s in [src(&[], false), per_claim] {
            let in_memory = outlines(&input, &s, usize::MAX);
            let parked = outlines(&input, &s, 0);
            assert_eq!(in_memory, parked);
            let cut = !s.split.is_empty();
            // 3 sets (3 claims each when cut) per interchange, and the stray bytes.
            assert_eq!(parked.len(), if cut { 19 } else { 7 });
            let rejected: Vec<&str> = parked.iter().filter_map(|p| p.3.as_ref().map(|r| r.0)).collect();
            let bad_set = if cut { 3 } else { 1 };
            assert_eq!(rejected.len(), 2 * bad_set + 1, "{rejected:?}");
            assert!(parked.iter().enumerate().all(|(i, p)| p.1 == i as u64), "indexes in file order");
        }
    }

    #[test]
    fn pending_sets_beyond_the_memory_budget_wait_in_the_spill_file_and_are_cut_one_at_a_time() {
        let input = several_interchanges();
        let mut s = src(&[], false);
        s.split = vec![sluice_compiler::plan::X12Split { guide: "005010X222A1".into(), loops: vec!["2300".into()] }];
        let set_len = 1500; // each set is 1,406 bytes: room for one in memory
        let mut pieces = Pieces::new(&input[..], Path::new("in.x12"), &s, set_len, std::env::temp_dir(), usize::MAX);
        let first = pieces.next().unwrap().unwrap();
        assert_eq!(first.index, 0);
        // The first interchange is settled: its first set (held in memory) cut, two more claims
        // ready; the other two sets (parked in the spill file) queued whole.
        assert_eq!(pieces.ready.len(), 2);
        assert_eq!(pieces.queued.len(), 2);
        let spill = pieces.spill.as_ref().expect("sets beyond the budget are parked");
        assert!(!spill.is_empty());
        assert_eq!(pieces.held, 0);
        let rest: Vec<Piece> = pieces.by_ref().map(Result::unwrap).collect();
        assert_eq!(rest.len(), 18);
        assert!(pieces.spill.as_ref().unwrap().is_empty(), "every parked set was taken back");
    }

    #[test]
    fn a_spill_directory_that_cannot_be_used_stops_the_read_with_rt146_and_says_what_to_do() {
        let input = several_interchanges();
        let s = src(&[], false);
        let missing = std::env::temp_dir().join(format!("sluice-no-such-dir-{}", std::process::id()));
        let mut pieces = Pieces::new(&input[..], Path::new("in.x12"), &s, 0, missing.clone(), usize::MAX);
        let err = pieces.find_map(Result::err).expect("the first set to park fails");
        let run = crate::object_stores::read::run_error_in(&err).expect("a run error inside");
        assert_eq!(run.code, findings::X12_SPILL_FAILED);
        assert!(run.message.contains(&missing.display().to_string()), "{}", run.message);
        assert!(run.help.as_deref().is_some_and(|h| h.contains("TMPDIR")), "{:?}", run.help);
        assert!(pieces.next().is_none(), "nothing more after the failure");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), framed in any::<bool>()) {
            let mut input = Vec::new();
            if framed {
                input.extend_from_slice(ISA.as_bytes());
                input.extend_from_slice(b"GS*HC*A*B*20240101*1200*1*X*005010X222A1~ST*837*0001*005010X222A1~");
            }
            input.extend_from_slice(&bytes);
            let s = src(&[], false);
            let path = temp(&input);
            for piece in pieces(&|| crate::source::open_local(&path), &path, &s).unwrap() {
                let piece = piece.unwrap();
                if piece.problem.is_none() {
                    let _ = decode(&piece.bytes, &s);
                }
            }
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
            let _ = decode(&input, &s);
        }

        #[test]
        fn arbitrary_input_read_in_parts_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            segments in proptest::collection::vec(proptest::sample::select(PARTNER_SEGMENTS), 0..30),
            set_limit in 1..80usize,
            hold_in_memory in 0..300usize,
            guides in any::<bool>(),
        ) {
            // Claim segments then any bytes, read in parts, cut in two passes (or filtered).
            let mut input = ISA.as_bytes().to_vec();
            input.extend_from_slice(b"GS*HC*A*B*20240101*1200*1*X*005010X222A1~ST*837*0001*005010X222A1~");
            for s in &segments {
                input.extend_from_slice(s.as_bytes());
            }
            input.extend_from_slice(&bytes);
            let s = per_claim(if guides { &["005010X221A1"] } else { &[] });
            let read = Pieces::new(&input[..], Path::new("in.x12"), &s, hold_in_memory, std::env::temp_dir(), set_limit);
            for piece in read {
                let piece = piece.unwrap();
                if piece.problem.is_none() {
                    let _ = decode(&piece.bytes, &s);
                }
            }
        }

        #[test]
        fn the_memory_budget_never_changes_the_pieces(
            segments in proptest::collection::vec(proptest::sample::select(PARTNER_SEGMENTS), 0..30),
            cut in proptest::collection::vec(0..4usize, 0..6),
            hold_in_memory in 0..400usize,
            set_limit in 1..600usize,
            partner in any::<bool>(),
        ) {
            // Interchanges of sets of claim segments in any order, ended or cut short anywhere.
            let mut input = Vec::new();
            for (n, end) in cut.iter().enumerate() {
                input.extend_from_slice(ISA.as_bytes());
                input.extend_from_slice(b"GS*HC*A*B*20240101*1200*1*X*005010X222A1~");
                input.extend_from_slice(format!("ST*837*{n:04}*005010X222A1~").as_bytes());
                for s in &segments {
                    input.extend_from_slice(s.as_bytes());
                }
                let tail = format!("SE*{}*{n:04}~GE*1*1~IEA*1*000000101~", segments.len() + 2);
                input.extend_from_slice(&tail.as_bytes()[..tail.len() * end / 3]);
            }
            let mut s = per_claim(&[]);
            if partner {
                // The sender's sets are placed in its copy of the guide, segment order lenient.
                s.partners = Some(Arc::new(one_partner(false, true)));
            }
            let whole = outlines(&input, &s, usize::MAX);
            prop_assert_eq!(&whole, &outlines(&input, &s, hold_in_memory));
            prop_assert_eq!(&whole, &outlines_read(&input, &s, hold_in_memory, set_limit));
        }

        #[test]
        fn arbitrary_input_never_panics_with_partners(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            segments in proptest::collection::vec(proptest::sample::select(PARTNER_SEGMENTS), 0..40),
            lenient in any::<bool>(),
            overlays in any::<bool>(),
        ) {
            let mut input = ISA.as_bytes().to_vec();
            input.extend_from_slice(b"GS*HC*A*B*20240101*1200*1*X*005010X222A1~ST*837*0001*005010X222A1~");
            // Segments of claims and of the partner's additions in any order, then any bytes.
            for s in &segments {
                input.extend_from_slice(s.as_bytes());
            }
            input.extend_from_slice(&bytes);
            let mut s = src(&[], lenient);
            s.partners = Some(Arc::new(one_partner(lenient, overlays)));
            let path = temp(&input);
            for piece in pieces(&|| crate::source::open_local(&path), &path, &s).unwrap() {
                let piece = piece.unwrap();
                if piece.problem.is_none() {
                    let _ = decode(&piece.bytes, &s);
                }
            }
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
        }
    }
}
