//! Cutting a transaction set at a repeating loop as its segments come, for a set too long to
//! hold whole (an 835 of 100,000 claim payments, an 834 of a million members): the parts are
//! exactly [`crate::cut::cut_any`]'s, but memory is the open loops, not the set.
//!
//! # Why two passes
//!
//! A part holds, beside its occurrence, what the set says around it (see [`crate::cut`]), and
//! some of that comes *after* the occurrence: the set level's trailer (SE, an 835's PLB
//! adjustments), or anything else of an enclosing loop placed after it. [`Survey`], the first
//! pass over the set (a reader makes it while it validates the set), keeps those later segments
//! (normally a handful), counts how many later HLs name each HL (so the second pass knows when
//! an HL can no longer be anyone's parent) and counts the segments. [`Cutter`], the second pass
//! over the same segments, gives each part as soon as its occurrence ends, in document order.
//!
//! # Which segments a part keeps
//!
//! Each loop instance has an *anchor*: itself or, when it is context of its parent by
//! [`crate::cut`]'s rule (not an HL level, unable to hold a cut loop, and not repeating content
//! below another occurrence), its parent's anchor. Part `k` keeps a segment when its instance
//! is `k` or below `k`, or when the instance's anchor is in `k`'s chain (`k`, its enclosing
//! instances and the HL parents their HL02 name, transitively): the segments `cut_any` finds
//! by walking context out from the chain. So the cutter keeps, for each instance that may
//! still be in a chain, the segments anchored to it; an instance is forgotten once it has
//! closed and no later HL can name it or anything below it.
//!
//! Invariants: fed the segments its survey saw, the cutter gives `cut_any`'s parts for the same
//! guide and loops, in the same order (`tests/cut_stream_props.rs` compares them); total on any
//! input (fed other segments, it gives wrong parts, never a panic); memory is the open loops'
//! segments, the HL parents still to be named, the survey's later segments and one entry per HL
//! id of the set, never the set.

use std::collections::{BTreeMap, HashMap};

use crate::codec::{Delimiters, Segment};
use crate::cut::Part;
use crate::guide::{Guide, Loop};
use crate::hl_ids::HlIds;
use crate::loops::Identifier;

/// Segments kept in one buffer: their index in the set and their bytes as sent.
#[derive(Debug, Default)]
struct Kept {
    index: Vec<usize>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl Kept {
    fn push(&mut self, index: usize, raw: &[u8]) {
        self.bytes.extend_from_slice(raw);
        self.index.push(index);
        self.ends.push(self.bytes.len());
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.index.iter().zip(starts.zip(self.ends.iter())).map(|(&i, (s, &e))| (i, &self.bytes[s..e]))
    }
}

/// One open loop instance, with what [`crate::cut`]'s rule says of it as it opens.
struct Open {
    instance: usize,
    is_cut: bool,
    /// It is a cut occurrence or below one.
    meets_cut: bool,
    /// Walking up to the nearest cut occurrence, every loop occurs at most once.
    once_to_cut: bool,
    /// Position in the stack of its anchor (see the module docs).
    anchor: usize,
    /// A cut occurrence opened below it (the survey's mark).
    cut_below: bool,
}

/// What both passes share: loop identification, and the cut rule applied to each instance as
/// it opens.
struct Walk {
    identifier: Identifier,
    loops: Vec<String>,
    /// Whether a loop of the guide (by address) is, or can hold, a cut loop.
    holds: HashMap<usize, bool>,
    /// The open instances, the set level first: the enclosing instances of the segment last
    /// placed.
    stack: Vec<Open>,
    /// The survey's: HL01 -> the first HL instance with that id, for every HL of the set.
    all_ids: HlIds<u32>,
    /// The cutter's: HL01 -> the first HL instance with that id, only for those a later HL
    /// names, while it may still be named.
    hl_ids: HashMap<Box<[u8]>, usize>,
    /// Segments pushed.
    count: usize,
}

/// What one segment did to the open instances.
struct Step {
    /// Instances closed before it was placed, innermost first.
    closed: Vec<Open>,
    /// It opened an instance (then the stack's top), with the HL parent its HL02 names.
    opened: Option<Option<usize>>,
    /// The HL01 it registered as the id of the instance it opened.
    registered: Option<Box<[u8]>>,
}

impl Walk {
    fn new(guide: &'static Guide, loops: &[&str]) -> Walk {
        let root = &guide.root;
        let is_cut = loops.contains(&root.id.as_str());
        let open = Open {
            instance: 0,
            is_cut,
            meets_cut: is_cut,
            once_to_cut: is_cut || root.max == Some(1),
            anchor: 0,
            cut_below: false,
        };
        Walk {
            // Placement does not depend on how the set ended, only its findings do.
            identifier: Identifier::new(guide, true, true, false),
            loops: loops.iter().map(|l| l.to_string()).collect(),
            holds: HashMap::new(),
            stack: vec![open],
            all_ids: HlIds::default(),
            hl_ids: HashMap::new(),
            count: 0,
        }
    }

    /// Places `seg`; an HL it opens is registered under its HL01 when `named` is `None` (the
    /// survey: any HL may be named later) or says a later HL names it (the cutter: an HL no
    /// one names is never looked up, as the survey counted every lookup).
    fn push(&mut self, seg: &Segment, named: Option<&HashMap<usize, u32>>) -> Step {
        self.count += 1;
        let placed = self.identifier.push(seg);
        let keep = placed.depth.saturating_sub(usize::from(placed.opened)).max(1);
        let mut closed = Vec::new();
        while self.stack.len() > keep {
            closed.extend(self.stack.pop());
        }
        if !placed.opened {
            return Step { closed, opened: None, registered: None };
        }
        let def = placed.loop_def;
        let Some(parent) = self.stack.last() else { return Step { closed, opened: None, registered: None } };
        let is_cut = self.loops.contains(&def.id);
        let loops = &self.loops;
        let holds = *self
            .holds
            .entry(def as *const Loop as usize)
            .or_insert_with(|| loops.iter().any(|id| def.id == *id || def.find(id).is_some()));
        let meets_cut = is_cut || parent.meets_cut;
        let once_to_cut = is_cut || (def.max == Some(1) && parent.once_to_cut);
        let context = !def.is_hierarchical() && !holds && (!meets_cut || once_to_cut);
        let anchor = if context { parent.anchor } else { self.stack.len() };
        let (mut hl_parent, mut registered) = (None, None);
        if def.is_hierarchical() {
            let named_by = seg.element(2).filter(|p| !p.is_empty());
            let own = seg.element(1).filter(|p| !p.is_empty());
            match named {
                None => {
                    hl_parent = named_by.and_then(|p| self.all_ids.get(p)).map(|i| i as usize);
                    // Instance numbers past u32 are not kept (no set has four billion loops).
                    let instance = u32::try_from(placed.instance).ok();
                    if let (Some(own), Some(instance)) = (own, instance)
                        && !self.all_ids.contains(own)
                    {
                        self.all_ids.insert(own, instance);
                    }
                }
                Some(named) => {
                    hl_parent = named_by.and_then(|p| self.hl_ids.get(p)).copied();
                    let wanted = named.contains_key(&placed.instance);
                    if let Some(own) = own.filter(|p| wanted && !self.hl_ids.contains_key(*p)) {
                        self.hl_ids.insert(own.into(), placed.instance);
                        registered = Some(own.into());
                    }
                }
            }
        }
        self.stack.push(Open { instance: placed.instance, is_cut, meets_cut, once_to_cut, anchor, cut_below: false });
        Step { closed, opened: Some(hl_parent), registered }
    }
}

/// The first pass over a set: what the [`Cutter`] needs to know from later in the set.
pub struct Survey {
    walk: Walk,
    plan: Plan,
}

/// What a [`Survey`] found, for the [`Cutter`] of the same set.
#[derive(Debug, Default)]
pub struct Plan {
    /// Segments in the set.
    count: usize,
    /// Per instance enclosing a cut occurrence: the segments anchored to it from the first
    /// such occurrence on.
    later: HashMap<usize, Kept>,
    /// Per HL instance named by later HLs: how many.
    named: HashMap<usize, u32>,
    /// Occurrences of the cut loops.
    occurrences: usize,
}

impl Plan {
    /// Occurrences of the cut loops in the set: the parts the cutter will give.
    pub fn occurrences(&self) -> usize {
        self.occurrences
    }
}

impl Survey {
    /// A survey of one set of `guide`, to be cut at `loops`.
    pub fn new(guide: &'static Guide, loops: &[&str]) -> Survey {
        let walk = Walk::new(guide, loops);
        let occurrences = usize::from(walk.stack[0].is_cut);
        Survey { walk, plan: Plan { occurrences, ..Plan::default() } }
    }

    /// The set's next segment (the first is its ST).
    pub fn push(&mut self, seg: &Segment) {
        let index = self.walk.count;
        let step = self.walk.push(seg, None);
        if let Some(hl_parent) = step.opened {
            if let Some(p) = hl_parent {
                *self.plan.named.entry(p).or_insert(0) += 1;
            }
            let stack = &mut self.walk.stack;
            if stack.last().is_some_and(|o| o.is_cut) {
                self.plan.occurrences += 1;
                let below = stack.len() - 1;
                for o in stack[..below].iter_mut().rev() {
                    if o.cut_below {
                        break;
                    }
                    o.cut_below = true;
                }
            }
        }
        let Some(top) = self.walk.stack.last() else { return };
        let Some(anchor) = self.walk.stack.get(top.anchor) else { return };
        if anchor.cut_below {
            self.plan.later.entry(anchor.instance).or_default().push(index, seg.raw);
        }
    }

    /// What the cutter needs.
    pub fn finish(self) -> Plan {
        Plan { count: self.walk.count, ..self.plan }
    }
}

/// What the cutter keeps of one instance while it may be in a chain.
#[derive(Default)]
struct Held {
    instance: usize,
    /// The HL01 it is registered under, to be dropped with it.
    hl_id: Option<Box<[u8]>>,
    parent: Option<usize>,
    hl_parent: Option<usize>,
    /// Why it is still needed once closed: later HLs that will or may name it (not finished
    /// yet), and its closed children that are still needed.
    pins: u32,
    /// It pinned its parent when it closed.
    pinned_parent: bool,
    /// The segments anchored to it.
    kept: Kept,
    /// For a cut occurrence: its number (1-based), its first segment's offset and every
    /// segment below it.
    occurrence: usize,
    offset: usize,
    below: Kept,
}

/// The second pass over a set: each part of `cut_any`, as soon as its occurrence ends.
pub struct Cutter {
    walk: Walk,
    plan: Plan,
    /// One per open instance (as `walk.stack`).
    open: Vec<Held>,
    /// Closed instances still needed.
    closed: HashMap<usize, Held>,
    /// Cut occurrences opened so far.
    occurrences: usize,
    /// Parts made, by occurrence, until the earlier ones are made.
    made: BTreeMap<usize, Part>,
    /// The next occurrence to hand on.
    next: usize,
    delimiters: Option<Delimiters>,
}

impl Cutter {
    /// The cutter of the set `plan` surveyed, at the same `loops`.
    pub fn new(guide: &'static Guide, loops: &[&str], plan: Plan) -> Cutter {
        let walk = Walk::new(guide, loops);
        let root = Held::default();
        let mut cutter = Cutter {
            walk,
            plan,
            open: vec![root],
            closed: HashMap::new(),
            occurrences: 0,
            made: BTreeMap::new(),
            next: 1,
            delimiters: None,
        };
        if cutter.walk.stack[0].is_cut {
            cutter.occurrences = 1;
            cutter.open[0].occurrence = 1;
        }
        cutter
    }

    /// The set's next segment (the first is its ST).
    pub fn push(&mut self, seg: &Segment) {
        let index = self.walk.count;
        if index == 0 {
            self.delimiters = Some(seg.delimiters);
            if let Some(root) = self.open.first_mut() {
                root.offset = seg.offset;
            }
        }
        let step = self.walk.push(seg, Some(&self.plan.named));
        for o in step.closed {
            self.close(o.instance, index);
        }
        if let Some(hl_parent) = step.opened {
            let Some(top) = self.walk.stack.last() else { return };
            let mut held = Held {
                instance: top.instance,
                hl_id: step.registered,
                parent: self.open.last().map(|h| h.instance),
                hl_parent,
                pins: self.plan.named.get(&top.instance).copied().unwrap_or(0),
                ..Held::default()
            };
            if top.is_cut {
                self.occurrences += 1;
                held.occurrence = self.occurrences;
                held.offset = seg.offset;
            }
            self.open.push(held);
        }
        let Some(top) = self.walk.stack.last() else { return };
        if let Some(anchor) = self.open.get_mut(top.anchor) {
            anchor.kept.push(index, seg.raw);
        }
        for held in self.open.iter_mut().filter(|h| h.occurrence > 0) {
            held.below.push(index, seg.raw);
        }
    }

    /// Ends the set: its open loops close (their parts are made).
    pub fn finish(&mut self) {
        let end = self.walk.count;
        while self.open.len() > 1 {
            let instance = self.open.last().map_or(0, |h| h.instance);
            self.close(instance, end);
        }
        if self.open.first().is_some_and(|h| h.occurrence > 0) {
            let root = self.open.pop().unwrap_or_default();
            self.make(&root, end);
        }
    }

    /// The next part, in document order, once made.
    pub fn next_part(&mut self) -> Option<Part> {
        let part = self.made.remove(&self.next)?;
        self.next += 1;
        Some(part)
    }

    /// The innermost open instance closes before the segment numbered `end` (0-based).
    fn close(&mut self, instance: usize, end: usize) {
        let Some(mut held) = self.open.pop() else { return };
        debug_assert_eq!(held.instance, instance);
        if held.occurrence > 0 {
            self.make(&held, end);
            held.below = Kept::default();
        }
        if held.pins == 0 {
            self.forget(held);
            return;
        }
        if let Some(parent) = self.open.last_mut() {
            parent.pins += 1;
            held.pinned_parent = true;
        }
        self.closed.insert(held.instance, held);
    }

    /// `held` is no longer needed: what it pinned is released, transitively.
    fn forget(&mut self, held: Held) {
        let mut work = vec![held];
        while let Some(h) = work.pop() {
            if let Some(id) = &h.hl_id {
                self.walk.hl_ids.remove(id);
            }
            let releases = [h.hl_parent, h.parent.filter(|_| h.pinned_parent)];
            for x in releases.into_iter().flatten() {
                if let Some(o) = self.open.iter_mut().find(|o| o.instance == x) {
                    o.pins = o.pins.saturating_sub(1);
                } else if let Some(c) = self.closed.get_mut(&x) {
                    c.pins = c.pins.saturating_sub(1);
                    if c.pins == 0 {
                        work.extend(self.closed.remove(&x));
                    }
                }
            }
        }
    }

    fn held(&self, instance: usize) -> Option<&Held> {
        self.open.iter().rev().find(|h| h.instance == instance).or_else(|| self.closed.get(&instance))
    }

    /// The part of occurrence `k`, which ends before the segment numbered `end`.
    fn make(&mut self, k: &Held, end: usize) {
        let mut segments: Vec<(usize, &[u8])> = k.below.iter().collect();
        // The chain: enclosing instances and HL parents, transitively.
        let mut seen = vec![k.instance];
        let mut work: Vec<usize> = [k.parent, k.hl_parent].into_iter().flatten().collect();
        while let Some(x) = work.pop() {
            if seen.contains(&x) {
                continue;
            }
            seen.push(x);
            let Some(h) = self.held(x) else { continue };
            segments.extend(h.kept.iter());
            work.extend([h.parent, h.hl_parent].into_iter().flatten());
        }
        // What the open enclosing instances hold after the occurrence.
        for h in &self.open {
            if let Some(later) = self.plan.later.get(&h.instance) {
                segments.extend(later.iter().filter(|(i, _)| *i >= end));
            }
        }
        segments.sort_unstable_by_key(|(i, _)| *i);
        segments.dedup_by_key(|(i, _)| *i);
        let Some(d) = self.delimiters else { return };
        let last = self.plan.count.checked_sub(1);
        let mut bytes = Vec::new();
        for &(i, raw) in &segments {
            let seg = Segment { offset: 0, raw, delimiters: d };
            if Some(i) == last && seg.id() == b"SE" {
                bytes.extend_from_slice(b"SE");
                bytes.push(d.element);
                bytes.extend_from_slice(segments.len().to_string().as_bytes());
                bytes.push(d.element);
                bytes.extend_from_slice(seg.element(2).unwrap_or(b""));
            } else {
                bytes.extend_from_slice(raw);
            }
            bytes.push(d.segment);
        }
        let part = Part { bytes, offset: k.offset, occurrence: k.occurrence, segment_count: segments.len() };
        self.made.insert(k.occurrence, part);
    }
}

/// `cut_any` by the two passes, over segments held in memory (for tests and comparisons).
pub fn cut_any_streaming(guide: &'static Guide, segments: &[Segment], loops: &[&str]) -> Vec<Part> {
    let mut survey = Survey::new(guide, loops);
    for seg in segments {
        survey.push(seg);
    }
    let mut cutter = Cutter::new(guide, loops, survey.finish());
    let mut parts = Vec::new();
    for seg in segments {
        cutter.push(seg);
        parts.extend(std::iter::from_fn(|| cutter.next_part()));
    }
    cutter.finish();
    parts.extend(std::iter::from_fn(|| cutter.next_part()));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    /// An 837P set of `subscribers` subscribers under one billing provider, two claims each.
    fn claims(subscribers: usize) -> String {
        let mut s = String::from(
            "ST*837*0001*005010X222A1~BHT*0019*00*1*20240101*1200*CH~NM1*41*2*SUBMITTER*****46*S1~\
PER*IC*JANE*TE*5555551212~NM1*40*2*RECEIVER*****46*R1~HL*1**20*1~NM1*85*2*PROVIDER*****XX*1000000001~\
N3*1 MAIN ST~N4*TOWN*NY*10001~REF*EI*123456789~",
        );
        for m in 0..subscribers {
            let hl = format!("{:05}", m + 2);
            s.push_str(&format!(
                "HL*{hl}*1*22*0~SBR*P*18*******CI~NM1*IL*1*LAST*FIRST****MI*M{m:05}~NM1*PR*2*PAYER*****PI*P1~"
            ));
            for c in 0..2 {
                s.push_str(&format!("CLM*C{m:05}X{c}*10***11:B:1*Y*A*Y*Y~HI*ABK:J449~LX*1~SV1*HC:99213*10*UN*1***1~"));
            }
        }
        let count = s.matches('~').count() + 1;
        s.push_str(&format!("SE*{count}*0001~"));
        s
    }

    /// The most the cutter held at once over the set: closed instances and HL ids kept, and
    /// bytes kept.
    fn most_held(subscribers: usize) -> (usize, usize, usize) {
        let text = claims(subscribers);
        let guide = crate::guide::by_id("005010X222A1").expect("bundled");
        let segments: Vec<Segment> = codec::segments(text.as_bytes(), Delimiters::default(), 0).collect();
        let mut survey = Survey::new(guide, &["2300"]);
        segments.iter().for_each(|s| survey.push(s));
        let mut cutter = Cutter::new(guide, &["2300"], survey.finish());
        let (mut closed, mut bytes, mut parts) = (0, 0, 0);
        for seg in &segments {
            cutter.push(seg);
            parts += std::iter::from_fn(|| cutter.next_part()).count();
            closed = closed.max(cutter.closed.len() + cutter.walk.hl_ids.len());
            let kept: usize = cutter
                .open
                .iter()
                .chain(cutter.closed.values())
                .map(|h| h.kept.bytes.len() + h.below.bytes.len())
                .sum();
            bytes = bytes.max(kept + cutter.made.values().map(|p| p.bytes.len()).sum::<usize>());
        }
        cutter.finish();
        parts += std::iter::from_fn(|| cutter.next_part()).count();
        (closed, bytes, parts)
    }

    #[test]
    fn what_the_cutter_holds_does_not_grow_with_the_set() {
        let (closed_small, bytes_small, parts_small) = most_held(10);
        let (closed_big, bytes_big, parts_big) = most_held(2_000);
        assert_eq!((parts_small, parts_big), (20, 4_000));
        // The billing provider waits for its last subscriber, under its HL id; nothing else is
        // kept closed, and no subscriber's id (no HL names one).
        assert_eq!((closed_small, closed_big), (2, 2));
        assert_eq!(bytes_small, bytes_big, "the largest hold is one claim with its context");
    }
}
