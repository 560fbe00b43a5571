//! Mapping paths into X12 transaction sets: `2300/CLM-01`, `2400[*]/SV1-01-2`,
//! `2010BA/NM1-09`, `2010AA/REF(EI)-02`.
//!
//! # Syntax
//!
//! `LOOP[/LOOP...]/SEG-EE[-CC]`: loop ids as the guide names them, each optionally indexed
//! (`[*]` every occurrence, `[2]` the second, none: the first); then a segment id, optionally
//! with a qualifier in parentheses (the value of the segment's key element at that place:
//! `REF(EI)`, `DTP(472)`) and an index; then the element position (2 digits) and optionally a
//! component (1-based). Without a loop step the segment is one of the set level (`BHT-04`).
//! Each loop step is looked for below the previous one, at any depth (`2300` finds the claims
//! under both 2000B and 2000C; `2000C/2300` only the patients' claims).
//!
//! # Semantics
//!
//! [`Path::resolve`] returns the non-empty values in document order: at most one unless a step
//! has `[*]`. Each repetition of a repeated element (5010, ISA11) is one value, so without
//! `[*]` a path gives the first repetition, never the repetitions run together. [`check`] tells, without data, whether a path exists in a guide and what it
//! gives: the element's type, the Sluice value type, whether it may give several values, and
//! its PHI class (subscriber and patient names, member ids, SSNs, dates of birth, addresses,
//! patient account numbers are classified in the guide files).
//!
//! Invariants: parsing and resolving are total (errors carry a byte offset and length into the
//! path text); resolving only reads the identified set.

use std::fmt;

use sluice_spec_core::{PhiClass, ValueType};

use crate::guide::{ElementType, ElementUse, Guide, Loop, Node, SegmentUse, Usage};
use crate::loops::Identified;

/// Which occurrences a step takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    First,
    All,
    /// 1-based.
    Nth(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopStep {
    pub id: String,
    pub index: Index,
    /// Byte offset of the step in the path text.
    pub offset: usize,
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub loops: Vec<LoopStep>,
    pub segment: String,
    pub qualifier: Option<String>,
    pub segment_index: Index,
    /// 1-based element position.
    pub element: usize,
    /// 1-based component; 0 for the whole element.
    pub component: usize,
    segment_offset: usize,
    text: String,
}

/// A path that does not parse or does not fit a guide: where (byte offset and length in the
/// path text) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
    /// What the guide has at the wrong place (loop ids, segment ids, element paths), for a
    /// did-you-mean; empty for a syntax error.
    pub candidates: Vec<String>,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn error(offset: usize, len: usize, message: impl Into<String>) -> PathError {
    PathError { offset, len: len.max(1), message: message.into(), candidates: Vec::new() }
}

impl PathError {
    fn with_candidates(mut self, candidates: Vec<String>) -> PathError {
        self.candidates = candidates;
        self
    }
}

/// The ids of the loops at any depth below `at`, in guide order.
fn loop_ids(at: &Loop, out: &mut Vec<String>) {
    for c in &at.children {
        if let Node::Loop(l) = c {
            out.push(l.id.clone());
            loop_ids(l, out);
        }
    }
}

/// Splits `NAME[idx]` into the name and its index.
fn indexed(step: &str, offset: usize) -> Result<(&str, Index), PathError> {
    let Some(open) = step.find('[') else { return Ok((step, Index::First)) };
    let inner = step[open + 1..]
        .strip_suffix(']')
        .ok_or_else(|| error(offset + open, step.len() - open, "`[` without its `]` at the end of the step"))?;
    let index = match inner {
        "*" => Index::All,
        n => match n.parse::<usize>() {
            Ok(n) if n > 0 => Index::Nth(n),
            _ => return Err(error(offset + open, step.len() - open, "an index is `[*]` or a number from 1")),
        },
    };
    Ok((&step[..open], index))
}

/// Parses a path.
pub fn parse(text: &str) -> Result<Path, PathError> {
    let mut steps: Vec<(usize, &str)> = Vec::new();
    let mut start = 0;
    for part in text.split('/') {
        steps.push((start, part));
        start += part.len() + 1;
    }
    let (seg_offset, last) = steps.pop().unwrap_or((0, ""));
    let mut loops = Vec::new();
    for (offset, step) in steps {
        let (id, index) = indexed(step, offset)?;
        if id.is_empty() || id.len() > 6 || !id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(error(offset, step.len(), "a loop step is a loop id such as 2300 or 2010BA"));
        }
        loops.push(LoopStep { id: id.to_string(), index, offset });
    }
    // SEG[(QUAL)][[idx]]-EE[-CC]
    let (head, element_part) = match last.find('-') {
        Some(i) => (&last[..i], &last[i + 1..]),
        None => {
            return Err(error(
                seg_offset,
                last.len(),
                "the last step is a segment and element, such as CLM-01 or SV1-01-2",
            ));
        }
    };
    let (head, segment_index) = indexed(head, seg_offset)?;
    let (segment, qualifier) = match head.find('(') {
        Some(i) => {
            let q = head[i + 1..]
                .strip_suffix(')')
                .ok_or_else(|| error(seg_offset + i, head.len() - i, "`(` without its `)`"))?;
            if q.is_empty() {
                return Err(error(seg_offset + i, head.len() - i, "an empty qualifier"));
            }
            (&head[..i], Some(q.to_string()))
        }
        None => (head, None),
    };
    if !crate::codec::is_segment_id(segment.as_bytes()) {
        return Err(error(seg_offset, segment.len(), "a segment id is 2 or 3 uppercase letters or digits"));
    }
    let el_offset = seg_offset + last.len() - element_part.len();
    let mut numbers = element_part.split('-');
    let element = numbers.next().unwrap_or("");
    if element.len() != 2 || !element.bytes().all(|b| b.is_ascii_digit()) || element == "00" {
        return Err(error(el_offset, element.len(), "the element is 2 digits from 01 (CLM-01)"));
    }
    let component = match numbers.next() {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n > 0 && !c.starts_with('+') => n,
            _ => return Err(error(el_offset + 3, c.len(), "the component is a number from 1 (SV1-01-2)")),
        },
    };
    if numbers.next().is_some() {
        return Err(error(el_offset, element_part.len(), "at most an element and a component (SV1-01-2)"));
    }
    Ok(Path {
        loops,
        segment: segment.to_string(),
        qualifier,
        segment_index,
        element: element.parse().unwrap_or(1),
        component,
        segment_offset: seg_offset,
        text: text.to_string(),
    })
}

fn take<T: Copy>(items: Vec<T>, index: Index) -> Vec<T> {
    match index {
        Index::All => items,
        Index::First => items.into_iter().take(1).collect(),
        Index::Nth(n) => items.into_iter().nth(n - 1).into_iter().collect(),
    }
}

impl Path {
    /// Whether the path may give several values (some step has `[*]`).
    pub fn many(&self) -> bool {
        self.segment_index == Index::All || self.loops.iter().any(|l| l.index == Index::All)
    }

    /// The non-empty values at this path in `set`, in document order.
    pub fn resolve<'a>(&self, set: &Identified<'a>) -> Vec<&'a [u8]> {
        self.resolve_at(set, None)
    }

    /// [`Path::resolve`] inside loop instance `at` (an index into [`Identified::instances`],
    /// bound by a mapping's `each: loop(ID)`): a path naming that loop, or a loop below it,
    /// reads that instance; a path to a loop enclosing it, or beside it, reads from the
    /// nearest enclosing instance that holds such a loop (the set level at the top).
    pub fn resolve_at<'a>(&self, set: &Identified<'a>, at: Option<usize>) -> Vec<&'a [u8]> {
        let (start, skip) = self.start(set, at);
        let mut current = vec![start];
        for step in self.loops.iter().skip(skip) {
            let mut found = Vec::new();
            for &i in &current {
                descendants(set, i, &step.id, &mut found);
            }
            current = take(found, step.index);
        }
        let mut values = Vec::new();
        for &inst in &current {
            let segs: Vec<usize> = set.instances[inst]
                .segments
                .iter()
                .copied()
                .filter(|&s| set.segments[s].id() == self.segment.as_bytes() && self.qualifier_fits(set, s))
                .collect();
            for s in take(segs, self.segment_index) {
                let seg = &set.segments[s];
                let Some(element) = seg.element(self.element) else { continue };
                // Each repetition of a repeated element (5010) is one value.
                let repetitions: Vec<&'a [u8]> = match seg.delimiters.repetition {
                    Some(r) => element.split(move |&b| b == r).collect(),
                    None => vec![element],
                };
                for rep in repetitions {
                    let v = if self.component == 0 {
                        Some(rep)
                    } else {
                        rep.split(|&b| b == seg.delimiters.component).nth(self.component - 1)
                    };
                    if let Some(v) = v.filter(|v| !v.is_empty()) {
                        values.push(v);
                    }
                }
            }
        }
        if self.many() { values } else { values.into_iter().take(1).collect() }
    }

    /// Where resolving starts from `at` (see [`Path::resolve_at`]): the instance, and how
    /// many loop steps it stands for.
    fn start(&self, set: &Identified, at: Option<usize>) -> (usize, usize) {
        let (Some(mut x), Some(first)) = (at, self.loops.first()) else { return (0, 0) };
        while let Some(inst) = set.instances.get(x) {
            if inst.def.id == first.id {
                return (x, 1);
            }
            if inst.def.find(&first.id).is_some() {
                return (x, 0);
            }
            match inst.parent {
                Some(p) => x = p,
                None => break,
            }
        }
        (0, 0)
    }

    /// [`Path::resolve`] as text (lossy UTF-8).
    pub fn resolve_strings(&self, set: &Identified) -> Vec<String> {
        self.resolve(set).into_iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect()
    }

    fn qualifier_fits(&self, set: &Identified, s: usize) -> bool {
        let Some(q) = &self.qualifier else { return true };
        let Some((e, c, _)) = set.placements[s].use_.and_then(|u| u.key.as_ref()) else { return false };
        let seg = &set.segments[s];
        let v = if *c == 0 { seg.element(*e) } else { seg.component(*e, *c) };
        v == Some(q.as_bytes())
    }
}

/// Instances with loop id `id` below instance `from`, in document order.
fn descendants(set: &Identified, from: usize, id: &str, out: &mut Vec<usize>) {
    for &c in &set.instances[from].children {
        if set.instances[c].def.id == id {
            out.push(c);
        } else {
            descendants(set, c, id, out);
        }
    }
}

/// What a path gives, per the guide.
#[derive(Clone, Debug, PartialEq)]
pub struct PathInfo {
    /// The loop the segment is in (empty: the set level).
    pub loop_id: String,
    /// The X12 type of the element (or component); `C` for a whole composite.
    pub ty: ElementType,
    pub value_type: ValueType,
    /// Several values possible (`[*]`).
    pub many: bool,
    pub phi: Option<PhiClass>,
    /// Codes the guide allows, when it lists them.
    pub codes: Option<Vec<String>>,
    /// Whether the guide requires the element where the segment is (it may still be absent
    /// when the segment or loop is situational).
    pub required: bool,
}

/// Checks `text` against `guide`: the loops exist (each below the previous), the segment is in
/// the last loop (with that qualifier), and the element (component) is used there.
pub fn check(guide: &Guide, text: &str) -> Result<PathInfo, PathError> {
    let path = parse(text)?;
    let mut at: &Loop = &guide.root;
    for step in &path.loops {
        at = at.find(&step.id).ok_or_else(|| {
            // At the top the caller's message names the guide already.
            let within = if at.id.is_empty() { "the guide".to_string() } else { format!("loop {}", at.id) };
            let mut ids = Vec::new();
            loop_ids(at, &mut ids);
            error(step.offset, step.id.len(), format!("{within} has no loop {}", step.id)).with_candidates(ids)
        })?;
    }
    let here = if at.id.is_empty() { "the set level".to_string() } else { format!("loop {}", at.id) };
    let seg_len = path.segment.len();
    let uses: Vec<&SegmentUse> = at
        .children
        .iter()
        .filter_map(|n| match n {
            Node::Segment(s) if s.id == path.segment => Some(s),
            _ => None,
        })
        .collect();
    if uses.is_empty() {
        let ids: Vec<&str> = at
            .children
            .iter()
            .filter_map(|n| match n {
                Node::Segment(s) => Some(s.id.as_str()),
                Node::Loop(_) => None,
            })
            .collect();
        return Err(error(
            path.segment_offset,
            seg_len,
            format!("{here} has no segment {} (it has {})", path.segment, ids.join(", ")),
        )
        .with_candidates(ids.iter().map(|s| s.to_string()).collect()));
    }
    let uses: Vec<&SegmentUse> = match &path.qualifier {
        None => uses,
        Some(q) => {
            let fit: Vec<&SegmentUse> =
                uses.into_iter().filter(|u| u.key.as_ref().is_some_and(|(_, _, c)| c.iter().any(|c| c == q))).collect();
            if fit.is_empty() {
                return Err(error(
                    path.segment_offset,
                    seg_len,
                    format!("no {} in {here} has the qualifier {q}", path.segment),
                ));
            }
            fit
        }
    };
    let el_offset = path.segment_offset + text[path.segment_offset..].find('-').unwrap_or(0) + 1;
    let mut found: Option<&ElementUse> = None;
    let mut phi = None;
    let mut required = false;
    for u in &uses {
        let Some(e) = u.elements.get(path.element - 1) else { continue };
        let target = if path.component == 0 { Some(e) } else { e.components.get(path.component - 1) };
        let Some(t) = target else { continue };
        if t.usage == Usage::NotUsed || (path.component > 0 && e.usage == Usage::NotUsed) {
            continue;
        }
        phi = phi.or(t.phi).or(e.phi);
        required |= t.usage == Usage::Required && (path.component == 0 || e.usage == Usage::Required);
        found = found.or(Some(t));
    }
    let Some(t) = found else {
        let what = if path.component == 0 {
            format!("{}{:02}", path.segment, path.element)
        } else {
            format!("{}{:02}-{}", path.segment, path.element, path.component)
        };
        let used: Vec<String> = uses
            .iter()
            .flat_map(|u| {
                u.elements
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.usage != Usage::NotUsed)
                    .map(|(i, _)| format!("{}-{:02}", u.id, i + 1))
            })
            .collect();
        return Err(error(
            el_offset,
            text.len() - el_offset,
            format!("{what} does not exist or is not used in {here}"),
        )
        .with_candidates(used));
    };
    Ok(PathInfo {
        loop_id: at.id.clone(),
        ty: t.ty,
        value_type: t.ty.value_type(),
        many: path.many(),
        phi,
        codes: t.codes.as_ref().map(|c| c.as_ref().clone()),
        required,
    })
}
