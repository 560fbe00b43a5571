//! Loop identification: places every segment of a transaction set in a loop of its
//! implementation guide ([`crate::guide`]), and reports the structural problems found on the
//! way (unexpected segments, missing required segments and loops, too many repeats, broken HL
//! hierarchy).
//!
//! # How a segment is placed
//!
//! The engine keeps the open loops, innermost last, each with the place of its last segment.
//! A segment goes to the first place, searching the innermost loop from its current place
//! forward, then each enclosing loop from the place of the loop just left, where the guide has
//! a segment (or a loop starting with a segment) with the same id whose *key* element holds one
//! of its codes (`NM1*IL` vs `NM1*PR`). Entering a place again repeats it (a new `2300`, a new
//! `LX`); places the guide lists one after another for the same segment id (one position
//! of the standard, once per qualifier: the 2300 `DTP`s) may come in any order, as X12 does not
//! order the repeats of one position; loops started by `HL` may come in any order, as the hierarchy (HL01/HL02, checked
//! here) says where they belong. When no place has room left, the segment goes where it
//! matched, with a "too many repeats" finding; when no key matches, to a segment of the same id
//! ahead in the innermost loop (its element check then reports the code); otherwise it is
//! unexpected and stays in the innermost loop. Leaving a loop reports its required segments
//! and loops that never came. The places a segment id could take in a loop, and a loop's
//! required places, come from [`crate::loop_index`] (built once per guide) instead of a walk
//! over every place of every open loop for every segment.
//!
//! The engine is [`Identifier`], fed one segment at a time: [`identify`] runs it over a whole
//! set and records every placement and loop instance (for paths and cuts); validation runs it
//! without recording, checking each segment as it is placed, so it holds the open loops and
//! the set's HL ids, not a record per segment.
//!
//! Invariants: total on any input (no panic, bounded work per segment: the guide's depth times
//! its widest loop); every segment is placed in exactly one loop instance; HL ids are scoped to
//! the set; findings name segment ids, positions and loop ids, never values.

use crate::codec::Segment;
use crate::envelope::{Finding, GuideDetail, default_severity};
use crate::guide::{Guide, Loop, Node, SegmentUse, Usage};
use crate::hl_ids::HlIds;
use crate::loop_index::{self, GuideIndex, LoopIndex};

/// One occurrence of a loop in the set (index 0: the set itself).
#[derive(Clone, Debug)]
pub struct LoopInstance {
    pub def: &'static Loop,
    pub parent: Option<usize>,
    /// Indices into [`Identified::segments`] placed directly in this instance, in order.
    pub segments: Vec<usize>,
    /// Child instances, in order.
    pub children: Vec<usize>,
}

/// Where one segment was placed.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// Index into [`Identified::instances`].
    pub instance: usize,
    /// The guide's place for it; `None` for an unexpected segment.
    pub use_: Option<&'static SegmentUse>,
}

/// A transaction set with every segment placed.
#[derive(Clone, Debug)]
pub struct Identified<'a> {
    pub guide: &'static Guide,
    pub segments: Vec<Segment<'a>>,
    /// One per segment.
    pub placements: Vec<Placement>,
    pub instances: Vec<LoopInstance>,
    /// Structural findings (element checks are [`crate::elements`]'s).
    pub findings: Vec<Finding>,
}

impl Identified<'_> {
    /// The loop id of the instance holding segment `i` (empty for the set level).
    pub fn loop_of(&self, i: usize) -> &str {
        self.placements.get(i).and_then(|p| self.instances.get(p.instance)).map_or("", |l| l.def.id.as_str())
    }
}

struct Frame {
    def: &'static Loop,
    /// The loop's places by segment id ([`crate::loop_index`]).
    index: &'static LoopIndex,
    instance: usize,
    /// Index in `def.children` of the last place used.
    pos: usize,
    counts: Vec<u32>,
}

impl Frame {
    /// A frame for a new occurrence of `def`, its counts in `counts` (a vector of a closed
    /// frame, reused: a set opens a loop per claim, line and name, and allocating the counts
    /// each time showed in profiles).
    fn new(def: &'static Loop, index: &'static GuideIndex, instance: usize, mut counts: Vec<u32>) -> Frame {
        counts.clear();
        counts.resize(def.children.len(), 0);
        if let Some(c) = counts.first_mut() {
            *c = 1;
        }
        Frame { def, index: index.of(def), instance, pos: 0, counts }
    }
}

/// One segment's key element values, read once: several places often share an id and key
/// on the same element (`NM101` of every `NM1` place), and each read walks the elements.
struct Keys<'s, 'a> {
    seg: &'s Segment<'a>,
    /// The last element and component read, and its value.
    last: Option<KeyRead<'a>>,
}

/// An element and component of a segment (component 0: the whole element), and its value.
type KeyRead<'a> = ((usize, usize), Option<&'a [u8]>);

impl<'s, 'a> Keys<'s, 'a> {
    fn new(seg: &'s Segment<'a>) -> Self {
        Keys { seg, last: None }
    }

    /// The value of `use_`'s key element.
    fn value(&mut self, use_: &SegmentUse) -> Option<&'a [u8]> {
        let (e, c, _) = use_.key.as_ref()?;
        let at = (*e, *c);
        match self.last {
            Some((read, value)) if read == at => value,
            _ => {
                let value = if *c == 0 { self.seg.element(*e) } else { self.seg.component(*e, *c) };
                self.last = Some((at, value));
                value
            }
        }
    }
}

/// Whether `node` starts with segment `id` (read once per segment: this is the engine's inner
/// loop) and, with `keys`, its key fits.
fn fits(node: &Node, id: &[u8], keys: Option<&mut Keys>) -> bool {
    node.trigger().is_some_and(|t| same_id(t.id.as_bytes(), id) && keys.is_none_or(|k| t.key_matches(k.value(t))))
}

/// Segment ids are two or three bytes: compared without a call to `memcmp`.
fn same_id(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Places the segments of one set (ST first) in `guide`'s loops. `closed`: the set ended with
/// SE (when not, a missing SE is not reported again).
pub fn identify<'a>(guide: &'static Guide, segments: Vec<Segment<'a>>, closed: bool) -> Identified<'a> {
    identify_with(guide, segments, closed, true)
}

/// [`identify`]; with `strict_order` false (a trading partner's `strict_segment_order:
/// false`), a segment that comes after its place in the innermost loop is still placed there
/// (its elements checked, a required place counted as present) when that place has room, and
/// its X12053 (IK304 7) is still reported, for the caller to make a warning.
pub fn identify_with<'a>(
    guide: &'static Guide,
    segments: Vec<Segment<'a>>,
    closed: bool,
    strict_order: bool,
) -> Identified<'a> {
    let mut identifier = Identifier::new(guide, closed, strict_order, true);
    identifier.out.placements.reserve(segments.len());
    for seg in &segments {
        identifier.push(seg);
    }
    let mut out = identifier.finish();
    out.segments = segments;
    out
}

/// Where [`Identifier::push`] placed a segment.
#[derive(Clone, Copy, Debug)]
pub struct Placed {
    /// The guide's place for it; `None` for an unexpected segment.
    pub use_: Option<&'static SegmentUse>,
    /// The loop it was placed in (the guide's root for the set level).
    pub loop_def: &'static Loop,
    /// The loop instance it was placed in, numbered in the order instances open (0: the set
    /// itself), as [`Identified::instances`] numbers them when recording.
    pub instance: usize,
    /// Loops open after it was placed, the set level included (the instance it went to is the
    /// innermost): the loops beyond that depth before it have closed.
    pub depth: usize,
    /// It opened its instance (a loop's first segment).
    pub opened: bool,
}

/// Loop identification one segment at a time: [`Identifier::push`] each segment of a set in
/// order, then [`Identifier::finish`]. Without `record`, it keeps the open loops, the set's
/// HL ids and the structural findings only (no placement per segment, no loop instances), so
/// a caller that checks segments as they are placed (validation) holds little beside the set.
pub struct Identifier {
    guide: &'static Guide,
    index: &'static GuideIndex,
    closed: bool,
    strict_order: bool,
    /// Keep placements and loop instances in `out`.
    record: bool,
    frames: Vec<Frame>,
    /// Counts vectors of closed frames, for the next ones.
    spare: Vec<Vec<u32>>,
    /// HL01 -> its loop. Owned ids ([`HlIds`]: a value per HL numbered in order, a key and a
    /// value for any other), so the segments need not outlive their push: a set may come in
    /// parts.
    hl_ids: HlIds<&'static str>,
    /// Segments pushed.
    count: usize,
    /// Loop instances opened (the set itself is instance 0).
    instances: usize,
    /// Offset of the last segment pushed: where the loops still open at the end are closed.
    last: Option<usize>,
    out: Identified<'static>,
}

impl Identifier {
    /// An identifier of one set of `guide` (`closed`, `strict_order`: as for
    /// [`identify_with`]); with `record`, [`Identifier::finish`] gives every placement and
    /// loop instance.
    pub fn new(guide: &'static Guide, closed: bool, strict_order: bool, record: bool) -> Self {
        let index = loop_index::index(guide);
        let root = LoopInstance { def: &guide.root, parent: None, segments: Vec::new(), children: Vec::new() };
        Identifier {
            guide,
            index,
            closed,
            strict_order,
            record,
            frames: vec![Frame::new(&guide.root, index, 0, Vec::new())],
            spare: Vec::new(),
            hl_ids: HlIds::default(),
            count: 0,
            instances: 1,
            last: None,
            out: Identified {
                guide,
                placements: Vec::new(),
                instances: if record { vec![root] } else { Vec::new() },
                findings: Vec::new(),
                segments: Vec::new(),
            },
        }
    }

    /// Places the next segment of the set (the first is its ST).
    pub fn push(&mut self, seg: &Segment) -> Placed {
        let i = self.count;
        self.count += 1;
        self.last = Some(seg.offset);
        let number = i + 1;
        let guide = self.guide;
        if i == 0 {
            // ST: the root's first place.
            return self.place(i, 0, guide.root.trigger(), &guide.root);
        }
        let id = seg.id();
        let hit = search(&self.frames, id, seg);
        let (depth, child, over) = match hit {
            Search::Fits(d, c) => (d, c, false),
            Search::Full(d, c) => (d, c, true),
            Search::None => match fallback(&self.frames, id) {
                Some(c) => (self.frames.len() - 1, c, false),
                None => return self.unexpected(seg, number),
            },
        };
        while self.frames.len() > depth + 1 {
            let f = self.frames.pop().expect("deeper than depth");
            self.out.close(&f, seg.offset, number, self.closed);
            self.spare.push(f.counts);
        }
        let f = self.frames.last_mut().expect("depth exists");
        f.counts[child] += 1;
        f.pos = child;
        let def: &'static Loop = f.def;
        let node = &def.children[child];
        let parent_instance = f.instance;
        match node {
            Node::Segment(s) => {
                if over {
                    let (code, ik) = ("X12055", "5");
                    let msg = format!("{} repeats more than the {} times the guide allows", s.id, s.max.unwrap_or(0));
                    self.out.finding(code, seg, number, &def.id, ik, msg);
                }
                self.place(i, parent_instance, Some(s), def)
            }
            Node::Loop(l) => {
                if over {
                    let msg =
                        format!("loop {} repeats more than the {} times the guide allows", l.id, l.max.unwrap_or(0));
                    self.out.finding("X12056", seg, number, &l.id, "4", msg);
                }
                let instance = self.instances;
                self.instances += 1;
                if self.record {
                    self.out.instances.push(LoopInstance {
                        def: l,
                        parent: Some(parent_instance),
                        segments: Vec::new(),
                        children: Vec::new(),
                    });
                    self.out.instances[parent_instance].children.push(instance);
                }
                let counts = self.spare.pop().unwrap_or_default();
                self.frames.push(Frame::new(l, self.index, instance, counts));
                let placed = self.place(i, instance, l.trigger(), l);
                if l.is_hierarchical() {
                    self.out.hierarchy(seg, number, l, &mut self.hl_ids);
                }
                Placed { opened: true, ..placed }
            }
        }
    }

    /// A segment no place fits: reported, and kept in the innermost loop (or, with
    /// `strict_order` false, at an earlier place of it that has room).
    fn unexpected(&mut self, seg: &Segment, number: usize) -> Placed {
        let i = number - 1;
        let id = seg.id();
        let guide = self.guide;
        let top = self.frames.last_mut().expect("root stays");
        let code = if !guide.root.uses_segment(id) {
            ("X12052", "6", "the segment is not in this implementation guide")
        } else if top.def.children.iter().take(top.pos).any(|n| fits(n, id, None)) {
            ("X12053", "7", "the segment is out of order in its loop")
        } else {
            ("X12053", "2", "the segment is not expected here")
        };
        let def: &'static Loop = top.def;
        self.out.finding(code.0, seg, number, &def.id, code.1, code.2.to_string());
        let mut keys = Keys::new(seg);
        let earlier = (!self.strict_order && code.1 == "7")
            .then(|| {
                def.children.iter().enumerate().take(top.pos).skip(1).find(|(j, n)| {
                    matches!(n, Node::Segment(_))
                        && fits(n, id, Some(&mut keys))
                        && n.max().is_none_or(|m| top.counts[*j] < m)
                })
            })
            .flatten();
        let instance = top.instance;
        match earlier {
            Some((j, Node::Segment(s))) => {
                top.counts[j] += 1;
                self.place(i, instance, Some(s), def)
            }
            _ => self.place(i, instance, None, def),
        }
    }

    fn place(
        &mut self,
        i: usize,
        instance: usize,
        use_: Option<&'static SegmentUse>,
        loop_def: &'static Loop,
    ) -> Placed {
        if self.record {
            self.out.placements.push(Placement { instance, use_ });
            self.out.instances[instance].segments.push(i);
        }
        Placed { use_, loop_def, instance, depth: self.frames.len(), opened: false }
    }

    /// Closes the loops still open (their missing required places are reported at the last
    /// segment) and gives the result; `segments` is left empty (the caller has them).
    pub fn finish<'a>(mut self) -> Identified<'a> {
        while let Some(f) = self.frames.pop() {
            if let Some(end) = self.last {
                self.out.close(&f, end, self.count + 1, self.closed);
            }
        }
        self.out
    }

    /// Says how the set ended, when that was not known at [`Identifier::new`] (a set read in
    /// parts): `closed`, by its SE. It matters when the set level closes, at the end.
    pub fn ended(&mut self, closed: bool) {
        self.closed = closed;
    }
}

enum Search {
    Fits(usize, usize),
    /// Matches only where the repeats are used up.
    Full(usize, usize),
    None,
}

fn search(frames: &[Frame], id: &[u8], seg: &Segment) -> Search {
    let mut full = None;
    let mut keys = Keys::new(seg);
    for depth in (0..frames.len()).rev() {
        let f = &frames[depth];
        // Places behind the current one are closed, except loops started by HL and the other
        // places of the current one's standard position (see `one_position`), which needs
        // the current place to be a segment with this id.
        let reopens = matches!(f.def.children.get(f.pos), Some(Node::Segment(s)) if same_id(s.id.as_bytes(), id));
        for &i in f.index.candidates(id).iter().filter(|i| **i >= 1) {
            let node = &f.def.children[i];
            let behind = i < f.pos
                && !matches!(node, Node::Loop(l) if l.is_hierarchical())
                && !(reopens && one_position(&f.def.children[i..=f.pos], id));
            if behind || !fits(node, id, Some(&mut keys)) {
                continue;
            }
            if node.max().is_none_or(|m| f.counts[i] < m) {
                return Search::Fits(depth, i);
            }
            if full.is_none() {
                full = Some((depth, i));
            }
        }
    }
    full.map_or(Search::None, |(d, i)| Search::Full(d, i))
}

/// Whether `run` (from an earlier place to the current one) is one segment id only: the guide
/// lists one position of the standard several times, once per qualifier (the 2300 `DTP`s, the
/// 2010AA `REF`s), and X12 does not order the repeats of one position, so `DTP*439` may come
/// before `DTP*454` although the guide lists 454 first.
fn one_position(run: &[Node], id: &[u8]) -> bool {
    run.iter().all(|n| matches!(n, Node::Segment(s) if same_id(s.id.as_bytes(), id)))
}

/// A segment of the same id ahead in the innermost loop, whatever its key.
fn fallback(frames: &[Frame], id: &[u8]) -> Option<usize> {
    let f = frames.last()?;
    let from = f.pos.max(1);
    f.index
        .candidates(id)
        .iter()
        .copied()
        .find(|&i| i >= from && matches!(&f.def.children[i], n @ Node::Segment(_) if fits(n, id, None)))
}

impl<'a> Identified<'a> {
    fn finding(
        &mut self,
        code: &'static str,
        seg: &Segment,
        number: usize,
        loop_id: &str,
        ik304: &'static str,
        message: String,
    ) {
        let id = if crate::codec::is_segment_id(seg.id()) { seg.id_str() } else { "" };
        let where_ = if loop_id.is_empty() { String::new() } else { format!(" (loop {loop_id})") };
        self.findings.push(Finding {
            severity: default_severity(code),
            code,
            offset: seg.offset,
            position: if id.is_empty() { format!("segment {number}") } else { id.to_string() },
            segment_number: number,
            message: format!("{message}{where_}"),
            guide: Some(GuideDetail {
                segment_id: id.to_string(),
                loop_id: loop_id.to_string(),
                segment_code: ik304,
                element: None,
                element_code: None,
            }),
        });
    }

    /// Leaving a loop: its required places that never came.
    fn close(&mut self, f: &Frame, at: usize, number: usize, closed: bool) {
        for &i in f.index.required.iter() {
            let node = &f.def.children[i];
            if f.counts[i] > 0 || node.usage() != Usage::Required {
                continue;
            }
            let (what, seg_id, loop_id) = match node {
                Node::Segment(s) if s.id == "SE" && !closed => continue,
                Node::Segment(s) => (format!("required segment {} is missing", s.id), s.id.clone(), f.def.id.clone()),
                Node::Loop(l) => (
                    format!("required loop {} is missing", l.id),
                    l.trigger().map_or(String::new(), |t| t.id.clone()),
                    l.id.clone(),
                ),
            };
            let where_ = if loop_id.is_empty() { String::new() } else { format!(" (loop {loop_id})") };
            self.findings.push(Finding {
                severity: default_severity("X12054"),
                code: "X12054",
                offset: at,
                position: seg_id.clone(),
                segment_number: number,
                message: format!("{what}{where_}"),
                guide: Some(GuideDetail {
                    segment_id: seg_id,
                    loop_id,
                    segment_code: "3",
                    element: None,
                    element_code: None,
                }),
            });
        }
    }

    /// HL01 unique in the set; HL02 names an earlier HL of the loop the guide says is the parent.
    fn hierarchy(&mut self, seg: &Segment, number: usize, l: &'static Loop, ids: &mut HlIds<&'static str>) {
        let id = seg.element(1).unwrap_or(b"");
        let mut problems = Vec::new();
        if !id.is_empty() && ids.insert(id, l.id.as_str()) {
            problems.push((1, "HL01 repeats the id of an earlier HL in this set".to_string()));
        }
        if let Some(parent) = &l.parent {
            let named = seg.element(2).filter(|p| !p.is_empty());
            match named.map(|p| ids.get(p)) {
                None => {} // a missing HL02 is an element finding
                Some(None) => problems.push((2, "HL02 does not name an earlier HL of this set".to_string())),
                Some(Some(found)) if found != parent => {
                    problems.push((2, format!("HL02 names a loop {found} HL; a {} HL belongs under {parent}", l.id)))
                }
                Some(Some(_)) => {}
            }
        }
        for (element, message) in problems {
            self.findings.push(Finding {
                severity: default_severity("X12066"),
                code: "X12066",
                offset: seg.offset,
                position: format!("HL{element:02}"),
                segment_number: number,
                message: format!("{message} (loop {})", l.id),
                guide: Some(GuideDetail {
                    segment_id: "HL".into(),
                    loop_id: l.id.clone(),
                    segment_code: "8",
                    element: Some((element, 0)),
                    element_code: Some("I12"),
                }),
            });
        }
    }
}
