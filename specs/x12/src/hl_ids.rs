//! The HL01 ids of one transaction set, each with a value (the loop it opened, its loop
//! instance), kept small: HL02 may name any earlier HL of the set, so every id is kept until
//! the set ends, and a set read in parts may hold millions of them.
//!
//! Nearly every sender numbers its HLs 1, 2, 3, ... in order; those ids cost one value each in
//! a vector indexed by the number, with no key stored. Any other id (`A1`, `007`, a number out
//! of order or repeated) goes to a map. The two never hold the same id: the vector holds
//! exactly the ids `1..=len`, and an id is pushed there only when it is `len + 1` and not in
//! the map already.
//!
//! Invariants: behaves as a map from id bytes to values (the tests compare it with one on
//! random ids); total on any bytes.

use std::collections::HashMap;

/// A map from HL01 ids to values (see the module docs).
#[derive(Clone, Debug)]
pub struct HlIds<V> {
    /// The values of ids `1`, `2`, ... `len`, in order.
    numbered: Vec<V>,
    other: HashMap<Box<[u8]>, V>,
}

impl<V> Default for HlIds<V> {
    fn default() -> Self {
        HlIds { numbered: Vec::new(), other: HashMap::new() }
    }
}

/// The id as a number when it is written as one without leading zeros (`7`, not `07`), and small.
fn number(id: &[u8]) -> Option<usize> {
    if id.is_empty() || id.len() > 9 || id[0] == b'0' || !id.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(id.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

impl<V: Copy> HlIds<V> {
    pub fn get(&self, id: &[u8]) -> Option<V> {
        match number(id) {
            Some(n) if n <= self.numbered.len() => Some(self.numbered[n - 1]),
            _ => self.other.get(id).copied(),
        }
    }

    pub fn contains(&self, id: &[u8]) -> bool {
        self.get(id).is_some()
    }

    /// Sets the value of `id`; returns whether `id` was there already (its value replaced).
    pub fn insert(&mut self, id: &[u8], value: V) -> bool {
        match number(id) {
            Some(n) if n <= self.numbered.len() => {
                self.numbered[n - 1] = value;
                true
            }
            Some(n) if n == self.numbered.len() + 1 && !self.other.contains_key(id) => {
                self.numbered.push(value);
                false
            }
            _ => self.other.insert(id.into(), value).is_some(),
        }
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.numbered.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_numbered_in_order_take_no_key() {
        let mut ids = HlIds::default();
        for n in 1..=1000u32 {
            assert!(!ids.insert(n.to_string().as_bytes(), n));
        }
        assert_eq!((ids.numbered.len(), ids.other.len()), (1000, 0));
        assert_eq!(ids.get(b"417"), Some(417));
        assert_eq!(ids.get(b"0417"), None);
        assert!(ids.insert(b"5", 50), "a repeated id is reported");
        assert_eq!(ids.get(b"5"), Some(50));
    }

    proptest! {
        #[test]
        fn it_behaves_as_a_map(ops in proptest::collection::vec(("(0|1|2|3|4|5|6|7|8|9|10|11|01|A1|){1,2}", any::<bool>()), 0..200)) {
            let mut ids = HlIds::default();
            let mut map: HashMap<Vec<u8>, usize> = HashMap::new();
            for (i, (id, write)) in ops.iter().enumerate() {
                let id = id.as_bytes();
                if *write {
                    prop_assert_eq!(ids.insert(id, i), map.insert(id.to_vec(), i).is_some());
                } else {
                    prop_assert_eq!(ids.get(id), map.get(id).copied());
                }
                prop_assert_eq!(ids.len(), map.len());
            }
        }
    }
}
