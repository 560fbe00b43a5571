//! Lookup tables for loop identification ([`crate::loops`]): for each loop of a guide, which of
//! its places start with a given segment id, and which places are required. Loop
//! identification asks "which places of this loop could take an `NM1`?" for every segment and
//! every open loop; walking all of a loop's places (80 in an 837P 2300) to compare ids was most
//! of its cost.
//!
//! Invariants:
//! - Same answers as the walk: a loop's candidates for an id are exactly the places whose
//!   starting segment has that id, in the guide's order (so the first fitting place found is
//!   the one the walk found). An id that cannot be packed into a key (longer than 7 bytes, on
//!   either side) gets every place, and the caller's id comparison decides as before.
//! - Built once per guide and kept for the process: guides are `'static` and never change once
//!   made (a trading partner's copy is a new guide), so a guide's address names its tables.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::guide::{Guide, Loop, Usage};

/// One loop's tables.
#[derive(Debug)]
pub struct LoopIndex {
    /// Packed segment id -> indices of the places starting with it, ascending. Sorted by id.
    by_id: Vec<(u64, Box<[usize]>)>,
    /// Every place, for ids that do not pack.
    all: Box<[usize]>,
    /// Indices of the required places, ascending.
    pub required: Box<[usize]>,
}

impl LoopIndex {
    fn new(l: &Loop) -> LoopIndex {
        let mut by_id: Vec<(u64, Vec<usize>)> = Vec::new();
        let mut all = Vec::with_capacity(l.children.len());
        for (i, node) in l.children.iter().enumerate() {
            all.push(i);
            let Some(key) = node.trigger().and_then(|t| pack(t.id.as_bytes())) else { continue };
            match by_id.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) => list.push(i),
                None => by_id.push((key, vec![i])),
            }
        }
        // A place whose id does not pack is a candidate for every id.
        let odd: Vec<usize> = l
            .children
            .iter()
            .enumerate()
            .filter(|(_, n)| n.trigger().is_some_and(|t| pack(t.id.as_bytes()).is_none()))
            .map(|(i, _)| i)
            .collect();
        if !odd.is_empty() {
            for (_, list) in &mut by_id {
                list.extend(&odd);
                list.sort_unstable();
            }
        }
        by_id.sort_unstable_by_key(|(k, _)| *k);
        let required =
            l.children.iter().enumerate().filter(|(_, n)| n.usage() == Usage::Required).map(|(i, _)| i).collect();
        LoopIndex {
            by_id: by_id.into_iter().map(|(k, v)| (k, v.into_boxed_slice())).collect(),
            all: all.into_boxed_slice(),
            required,
        }
    }

    /// The places of the loop that may start with segment `id`, ascending.
    pub fn candidates(&self, id: &[u8]) -> &[usize] {
        match pack(id) {
            None => &self.all,
            Some(key) => match self.by_id.binary_search_by_key(&key, |(k, _)| *k) {
                Ok(at) => &self.by_id[at].1,
                Err(_) => &[],
            },
        }
    }
}

/// A segment id of 1 to 7 bytes as one number (its length in the low byte, so `AB` and `AB\0`
/// differ); `None` otherwise.
fn pack(id: &[u8]) -> Option<u64> {
    if id.is_empty() || id.len() > 7 {
        return None;
    }
    Some(id.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) << 8 | id.len() as u64)
}

/// Every loop's tables of one guide, by the loop's address.
#[derive(Debug)]
pub struct GuideIndex {
    /// (address of the loop, its tables), sorted by address.
    loops: Vec<(usize, LoopIndex)>,
}

impl GuideIndex {
    fn new(guide: &Guide) -> GuideIndex {
        fn walk(l: &Loop, out: &mut Vec<(usize, LoopIndex)>) {
            out.push((std::ptr::from_ref(l) as usize, LoopIndex::new(l)));
            for node in &l.children {
                if let crate::guide::Node::Loop(inner) = node {
                    walk(inner, out);
                }
            }
        }
        let mut loops = Vec::new();
        walk(&guide.root, &mut loops);
        loops.sort_unstable_by_key(|(at, _)| *at);
        GuideIndex { loops }
    }

    /// The tables of `l`, a loop of this index's guide.
    pub fn of(&self, l: &Loop) -> &LoopIndex {
        let at = std::ptr::from_ref(l) as usize;
        match self.loops.binary_search_by_key(&at, |(a, _)| *a) {
            Ok(i) => &self.loops[i].1,
            // Not reachable for a loop of the guide (every loop was walked); a loop from
            // elsewhere gets tables of its own, leaked once like the guides they serve.
            Err(_) => Box::leak(Box::new(LoopIndex::new(l))),
        }
    }
}

/// The tables of `guide`, built on first use.
pub fn index(guide: &'static Guide) -> &'static GuideIndex {
    static CACHE: OnceLock<Mutex<HashMap<usize, &'static GuideIndex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = std::ptr::from_ref(guide) as usize;
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(key).or_insert_with(|| Box::leak(Box::new(GuideIndex::new(guide))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_pack_apart_and_long_ones_do_not_pack() {
        assert_ne!(pack(b"AB"), pack(b"AB\0"));
        assert_ne!(pack(b"NM1"), pack(b"N1"));
        assert_eq!(pack(b""), None);
        assert_eq!(pack(b"ABCDEFGH"), None);
        assert!(pack(b"ABCDEFG").is_some());
    }

    #[test]
    fn candidates_are_the_places_starting_with_the_id_in_order() {
        for guide in crate::guide::bundled() {
            let gi = index(guide);
            fn check(l: &Loop, gi: &GuideIndex) {
                let li = gi.of(l);
                for id in ["NM1", "HL", "REF", "DTP", "CLM", "SE", "ZZZ", "LONGSEGMENTID"] {
                    let walk: Vec<usize> = l
                        .children
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| id.len() > 7 || n.trigger().is_some_and(|t| t.id == id))
                        .map(|(i, _)| i)
                        .collect();
                    assert_eq!(li.candidates(id.as_bytes()), walk.as_slice(), "loop {} id {id}", l.id);
                }
                for node in &l.children {
                    if let crate::guide::Node::Loop(inner) = node {
                        check(inner, gi);
                    }
                }
            }
            check(&guide.root, gi);
        }
    }
}
