//! Cutting one transaction set at a repeating loop (`2300` claims of an 837, `2100` claim
//! payments of an 835): one smaller set per occurrence of the loop, holding that occurrence
//! and the context it belongs to, so each claim can be a record of its own.
//!
//! # What a part holds
//!
//! For occurrence `k` of loop `L`, a part keeps, in the set's order:
//! - every segment of the set level (ST, BHT, BPR, TRN, PLB, ...), with SE01 counting the
//!   segments of the part;
//! - the occurrence itself and every loop below it (service lines, providers);
//! - its enclosing loops (`2000B` around a `2300`; `2000` around a `2100`) and, for HL loops,
//!   the HL parents its HL02 names, up to the top (`2000A`, the billing provider);
//! - the loops hanging off those that cannot hold `L` and are not HL levels (`1000A`,
//!   `2010AA`, `2010BA`, `2010BB`: submitter, billing provider, subscriber, payer).
//!
//! Dropped: the other occurrences of `L`, loops that could hold one (another `2000` of an
//! 835), and HL levels outside the chain (another subscriber, another billing provider).
//! Paths of a mapping then read the part as they read a whole set: `2300/CLM-01` is this
//! claim's, `2010BA/NM1-03` its subscriber's, `BPR-02` the payment's.
//!
//! # Several HL levels: one part per person
//!
//! [`cut_any`] cuts at several loops at once, each occurrence of any of them a part (a 271's
//! subscribers `2000C` and dependents `2000D`). A dependent's part then holds its subscriber's
//! level as an HL parent; from that level (an occurrence of a cut loop other than the part's
//! own) it keeps what identifies the subscriber, the loops that occur once (`2100C`: name,
//! member id), and not its repeating content (`2110C`: the subscriber's own benefits, which
//! are the subscriber's part). With one loop this never applies: an occurrence of `L` is never
//! the HL parent of another.
//!
//! Invariants: total on any identified set (no panic); every occurrence of `L` gives exactly
//! one part, in document order, and a set without `L` gives none; a part's segments are the
//! set's bytes as sent (SE01 is the only element rewritten); nothing here reads values but
//! HL01/HL02 ids and segment ids.

use std::collections::HashMap;

use crate::guide::Loop;
use crate::loops::Identified;

/// One occurrence of the loop, as a set of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// ST..SE, each segment followed by the set's terminator.
    pub bytes: Vec<u8>,
    /// Offset of the occurrence's first segment (as the set's segments count offsets).
    pub offset: usize,
    /// 1-based: which occurrence of the loop in the set.
    pub occurrence: usize,
    /// Segments in the part, SE included.
    pub segment_count: usize,
}

/// The instances of loop `id` in `set`, in document order.
pub fn occurrences(set: &Identified, id: &str) -> Vec<usize> {
    (0..set.instances.len()).filter(|&i| set.instances[i].def.id == id).collect()
}

/// One part per occurrence of loop `id` in `set` (see the module docs); none when the set
/// holds no such loop.
pub fn cut(set: &Identified, id: &str) -> Vec<Part> {
    cut_any(set, &[id])
}

/// One part per occurrence of any of the loops `ids` in `set`, in document order (see "Several
/// HL levels" in the module docs); none when the set holds none of them.
pub fn cut_any(set: &Identified, ids: &[&str]) -> Vec<Part> {
    let shape = Shape::of(set, ids);
    let mut marks = vec![0usize; set.instances.len()];
    shape.cut_at.iter().enumerate().filter_map(|(n, &k)| part(set, &shape, k, n + 1, &mut marks)).collect()
}

/// What every part of one set is made from, worked out once per set, so that cutting a set
/// costs about the size of its parts: a part's context is found from its chain, not by
/// looking at every loop of the set (a set of 20,000 claims would make that quadratic).
struct Shape {
    /// The occurrences of the cut loops, in document order.
    cut_at: Vec<usize>,
    /// For each HL loop instance, the instance its HL02 names.
    hl_parents: HashMap<usize, usize>,
    /// For each instance, its children that are context wherever it is kept: not an HL level,
    /// unable to hold a cut loop, and not repeating content below another occurrence (see
    /// "Several HL levels" in the module docs).
    context: Vec<Vec<usize>>,
}

impl Shape {
    fn of(set: &Identified, ids: &[&str]) -> Shape {
        let n = set.instances.len();
        let is_cut: Vec<bool> = set.instances.iter().map(|i| ids.contains(&i.def.id.as_str())).collect();
        // Whether a loop can hold a cut loop, once per loop of the guide.
        let mut holds_by_def: HashMap<*const Loop, bool> = HashMap::new();
        // Walking up from an instance: whether a cut occurrence is met (at it or above), and
        // whether every loop before it occurs at most once. Instances are numbered in document
        // order, a parent before its children, so one pass fills both.
        let mut meets_cut = vec![false; n];
        let mut once_to_cut = vec![true; n];
        let mut context = vec![Vec::new(); n];
        for (j, inst) in set.instances.iter().enumerate() {
            let parent = inst.parent.filter(|&p| p < j);
            meets_cut[j] = is_cut[j] || parent.is_some_and(|p| meets_cut[p]);
            once_to_cut[j] = is_cut[j] || (inst.def.max == Some(1) && parent.is_none_or(|p| once_to_cut[p]));
            let Some(p) = parent else { continue };
            let def: &'static Loop = inst.def;
            let holds = *holds_by_def
                .entry(def as *const Loop)
                .or_insert_with(|| ids.iter().any(|id| def.id == *id || def.find(id).is_some()));
            let identifies = !meets_cut[j] || once_to_cut[j];
            if !def.is_hierarchical() && !holds && identifies {
                context[p].push(j);
            }
        }
        Shape { cut_at: (0..n).filter(|&j| is_cut[j]).collect(), hl_parents: hl_parents(set), context }
    }
}

/// For each HL loop instance, the instance its HL02 names (an earlier HL of the set).
fn hl_parents(set: &Identified) -> HashMap<usize, usize> {
    let mut by_id: HashMap<&[u8], usize> = HashMap::new();
    let mut parents = HashMap::new();
    for (i, inst) in set.instances.iter().enumerate() {
        if !inst.def.is_hierarchical() {
            continue;
        }
        let Some(hl) = inst.segments.first().and_then(|&s| set.segments.get(s)) else { continue };
        if let Some(parent) = hl.element(2).filter(|p| !p.is_empty()).and_then(|p| by_id.get(p)) {
            parents.insert(i, *parent);
        }
        if let Some(own) = hl.element(1).filter(|p| !p.is_empty()) {
            by_id.entry(own).or_insert(i);
        }
    }
    parents
}

/// The part of occurrence `k`; `marks` (one per instance) says which instances are kept: those
/// marked with this part's `occurrence`.
fn part(set: &Identified, shape: &Shape, k: usize, occurrence: usize, marks: &mut [usize]) -> Option<Part> {
    let n = set.instances.len();
    let mut kept = Vec::new();
    let keep = |x: usize, marks: &mut [usize], kept: &mut Vec<usize>| {
        let new = x < n && marks[x] != occurrence;
        if new {
            marks[x] = occurrence;
            kept.push(x);
        }
        new
    };
    // The chain: the occurrence, its enclosing instances and the HL parents, transitively.
    let mut work = vec![k];
    while let Some(x) = work.pop() {
        if !keep(x, marks, &mut kept) {
            continue;
        }
        work.extend(set.instances[x].parent);
        work.extend(shape.hl_parents.get(&x).copied());
    }
    // Beside the chain, its context (and the context's own context); below the occurrence,
    // everything.
    let mut work: Vec<(usize, bool)> = kept.iter().map(|&x| (x, x == k)).collect();
    while let Some((x, below)) = work.pop() {
        let children = if below { &set.instances[x].children } else { &shape.context[x] };
        for &c in children {
            if keep(c, marks, &mut kept) {
                work.push((c, below));
            }
        }
    }
    let first = set.instances[k].segments.first().and_then(|&s| set.segments.get(s))?;
    let offset = first.offset;
    let terminator = first.delimiters.segment;
    // Each segment is placed in exactly one instance: the kept instances' segments, in
    // document order.
    let mut segments: Vec<usize> = kept.iter().flat_map(|&x| set.instances[x].segments.iter().copied()).collect();
    segments.sort_unstable();
    let mut bytes = Vec::new();
    for &s in &segments {
        let Some(seg) = set.segments.get(s) else { continue };
        if s + 1 == set.segments.len() && seg.id() == b"SE" {
            let e = seg.delimiters.element;
            bytes.extend_from_slice(b"SE");
            bytes.push(e);
            bytes.extend_from_slice(segments.len().to_string().as_bytes());
            bytes.push(e);
            bytes.extend_from_slice(seg.element(2).unwrap_or(b""));
        } else {
            bytes.extend_from_slice(seg.raw);
        }
        bytes.push(terminator);
    }
    Some(Part { bytes, offset, occurrence, segment_count: segments.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, Delimiters};

    const SET: &str = "ST*837*0001*005010X222A1~BHT*0019*00*1*20240101*1200*CH~\
NM1*41*2*SUBMITTER*****46*S1~PER*IC*JANE*TE*5555551212~NM1*40*2*RECEIVER*****46*R1~\
HL*1**20*1~NM1*85*2*BILLING ONE*****XX*1234567893~N3*1 MAIN ST~N4*TOWN*NY*10001~REF*EI*123456789~\
HL*2*1*22*0~SBR*P*18*******CI~NM1*IL*1*DOE*JOHN****MI*M123~NM1*PR*2*PAYER*****PI*P1~\
CLM*A1*100***11:B:1*Y*A*Y*Y~HI*ABK:J449~LX*1~SV1*HC:99213*100*UN*1***1~DTP*472*D8*20240101~\
CLM*A2*50***11:B:1*Y*A*Y*Y~HI*ABK:J449~LX*1~SV1*HC:85025*50*UN*1***1~DTP*472*D8*20240101~\
HL*3**20*1~NM1*85*2*BILLING TWO*****XX*1234567894~N3*2 MAIN ST~N4*TOWN*NY*10001~REF*EI*987654321~\
HL*4*3*22*0~SBR*P*18*******CI~NM1*IL*1*ROE*JANE****MI*M456~NM1*PR*2*PAYER*****PI*P1~\
CLM*B1*70***11:B:1*Y*A*Y*Y~HI*ABK:J449~LX*1~SV1*HC:99214*70*UN*1***1~DTP*472*D8*20240101~\
SE*39*0001~";

    fn identified(text: &str) -> Identified<'_> {
        let guide = crate::guide::by_id("005010X222A1").expect("bundled");
        let segs: Vec<_> = codec::segments(text.as_bytes(), Delimiters::default(), 0).collect();
        crate::loops::identify(guide, segs, true)
    }

    fn ids(part: &Part, seg: &str, n: usize) -> Vec<String> {
        let s = String::from_utf8(part.bytes.clone()).unwrap();
        s.split('~')
            .filter(|x| x.starts_with(&format!("{seg}*")))
            .map(|x| x.split('*').nth(n).unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn each_claim_keeps_its_own_context_only() {
        let set = identified(SET);
        assert!(set.findings.is_empty(), "{:?}", set.findings);
        let parts = cut(&set, "2300");
        assert_eq!(parts.len(), 3);
        assert_eq!(ids(&parts[0], "CLM", 1), ["A1"]);
        assert_eq!(ids(&parts[1], "CLM", 1), ["A2"]);
        assert_eq!(ids(&parts[2], "CLM", 1), ["B1"]);
        assert_eq!(ids(&parts[0], "SV1", 1), ["HC:99213"]);
        // Billing provider and subscriber of each claim, not the others'.
        assert_eq!(ids(&parts[1], "NM1", 3), ["SUBMITTER", "RECEIVER", "BILLING ONE", "DOE", "PAYER"]);
        assert_eq!(ids(&parts[2], "NM1", 3), ["SUBMITTER", "RECEIVER", "BILLING TWO", "ROE", "PAYER"]);
        // SE01 counts the part; each part identifies again without structural errors.
        for p in &parts {
            assert_eq!(ids(p, "SE", 1), [p.segment_count.to_string()]);
            let again = identified(std::str::from_utf8(&p.bytes).unwrap());
            assert!(again.findings.is_empty(), "{:?}", again.findings);
            assert_eq!(occurrences(&again, "2300").len(), 1);
        }
        assert!(parts[0].offset < parts[1].offset && parts[1].offset < parts[2].offset);
        assert!(cut(&set, "2330A").is_empty());
    }

    const RESPONSE: &str = "ST*271*0001*005010X279A1~BHT*0022*11*R1*20260115*0931~\
HL*1**20*1~NM1*PR*2*PLAN*****PI*99999~HL*2*1*21*1~NM1*1P*2*CLINIC*****XX*1999999984~\
HL*3*2*22*1~NM1*IL*1*SUBLAST*SUBFIRST****MI*M1~DMG*D8*19800101*F~EB*1*IND*30~EB*C*IND*30***23*500~\
HL*4*2*22*0~NM1*IL*1*LONE*SUB****MI*M2~EB*6*IND*30~\
HL*5*3*23*0~NM1*03*1*SUBLAST*CHILD~DMG*D8*20100202*M~EB*1*DEP*30~\
SE*19*0001~";

    #[test]
    fn people_of_a_271_are_one_part_each_with_their_own_benefits() {
        let guide = crate::guide::by_schema_name("005010X279A1/271").expect("bundled");
        let segs: Vec<_> = codec::segments(RESPONSE.as_bytes(), Delimiters::default(), 0).collect();
        let set = crate::loops::identify(guide, segs, true);
        assert!(set.findings.is_empty(), "{:?}", set.findings);
        let parts = cut_any(&set, &["2000C", "2000D"]);
        assert_eq!(parts.len(), 3);
        // Document order: HL 3 (subscriber with a dependent), HL 4, then HL 5 (the dependent).
        assert_eq!(ids(&parts[0], "HL", 1), ["1", "2", "3"]);
        assert_eq!(ids(&parts[0], "EB", 1), ["1", "C"]);
        assert_eq!(ids(&parts[1], "HL", 1), ["1", "2", "4"]);
        assert_eq!(ids(&parts[1], "EB", 1), ["6"]);
        // The dependent keeps its subscriber's name loop (the member id), not the subscriber's
        // benefits, nor the other subscriber.
        assert_eq!(ids(&parts[2], "HL", 1), ["1", "2", "3", "5"]);
        assert_eq!(ids(&parts[2], "NM1", 9), ["99999", "1999999984", "M1", ""]);
        assert_eq!(ids(&parts[2], "EB", 1), ["1"]);
        assert_eq!(ids(&parts[2], "EB", 2), ["DEP"]);
        for p in &parts {
            let segs: Vec<_> = codec::segments(&p.bytes, Delimiters::default(), 0).collect();
            let again = crate::loops::identify(guide, segs, true);
            assert!(again.findings.is_empty(), "{:?}", again.findings);
            assert_eq!(ids(p, "SE", 1), [p.segment_count.to_string()]);
        }
        // One loop: the subscribers only, each without the dependent.
        let subscribers = cut(&set, "2000C");
        assert_eq!(subscribers.len(), 2);
        assert!(ids(&subscribers[0], "HL", 1).iter().all(|h| h != "5"));
    }
}
