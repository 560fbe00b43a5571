//! Finding ASCII bytes eight at a time: the text is read as little-endian `u64` words and a
//! word's matching bytes are found with a few arithmetic operations, instead of one compare and
//! branch per byte. Used where whole messages are scanned (segment ends, field separators,
//! escape characters) and by the runtime's JSON writer (bytes that need escaping).
//!
//! Invariant: every function returns what the plain byte loop returns (property tests compare
//! them); the per-byte mask is exact, so no match is invented or missed.

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that equals `b`, and no other bit. Exact: a byte's sum
/// `(t & 0x7f) + 0x7f` is at most `0xfe`, so no carry crosses into the next byte.
#[inline]
fn eq_mask(word: u64, b: u8) -> u64 {
    let t = word ^ (LOW * u64::from(b));
    !(((t & !HIGH) + !HIGH) | t) & HIGH
}

/// The high bit of each byte of `word` below `n` (`n <= 0x80`), and no other bit. Exact: each
/// byte of `word | HIGH` is at least `0x80 >= n`, so the subtraction borrows across no byte.
#[inline]
fn below_mask(word: u64, n: u8) -> u64 {
    !((word | HIGH) - LOW * u64::from(n)) & !word & HIGH
}

#[inline]
fn word(chunk: &[u8]) -> u64 {
    // `chunks_exact(8)` only yields 8-byte chunks; the fallback is never taken.
    u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]))
}

/// Calls `f` with the index of each byte of `s` equal to `b`, in order.
pub(crate) fn for_each(s: &[u8], b: u8, mut f: impl FnMut(usize)) {
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut m = eq_mask(word(chunk), b);
        while m != 0 {
            f(base + (m.trailing_zeros() / 8) as usize);
            m &= m - 1;
        }
        base += 8;
    }
    for (i, &x) in chunks.remainder().iter().enumerate() {
        if x == b {
            f(base + i);
        }
    }
}

/// The index of the first byte of `s` equal to one of `needles`.
#[inline]
pub(crate) fn find_any<const N: usize>(s: &[u8], needles: [u8; N]) -> Option<usize> {
    find_any_or_below(s, needles, 0)
}

/// The index of the first byte of `s` equal to one of `needles` or below `below` (at most
/// `0x80`; 0: none is below). Inlined, so that constant needles and bounds fold.
#[inline]
pub fn find_any_or_below<const N: usize>(s: &[u8], needles: [u8; N], below: u8) -> Option<usize> {
    let below = below.min(0x80);
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let w = word(chunk);
        let m = needles.iter().fold(if below == 0 { 0 } else { below_mask(w, below) }, |m, &b| m | eq_mask(w, b));
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks.remainder().iter().position(|x| *x < below || needles.contains(x)).map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes drawn mostly from a few values (so matches are frequent), lengths across several
    /// words and remainders.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(b'|'), Just(b'\r'), Just(b'\n'), Just(0x7c ^ 0x80), any::<u8>()],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn for_each_finds_what_a_byte_loop_finds(s in bytes(), b in prop_oneof![Just(b'|'), Just(b'\r'), any::<u8>()]) {
            let mut found = Vec::new();
            for_each(&s, b, |i| found.push(i));
            let expected: Vec<usize> = s.iter().enumerate().filter(|(_, x)| **x == b).map(|(i, _)| i).collect();
            prop_assert_eq!(found, expected);
        }

        #[test]
        fn find_any_is_position(s in bytes(), a in prop_oneof![Just(b'\r'), any::<u8>()], b in prop_oneof![Just(b'\n'), any::<u8>()], c in any::<u8>()) {
            prop_assert_eq!(find_any(&s, [a]), s.iter().position(|&x| x == a));
            prop_assert_eq!(find_any(&s, [a, b]), s.iter().position(|&x| x == a || x == b));
            prop_assert_eq!(find_any(&s, [a, b, c]), s.iter().position(|&x| x == a || x == b || x == c));
        }

        #[test]
        fn find_any_or_below_is_position(s in bytes(), a in any::<u8>(), below in prop_oneof![Just(0x20u8), 0u8..=0x80]) {
            prop_assert_eq!(find_any_or_below(&s, [a], below), s.iter().position(|&x| x == a || x < below));
        }
    }
}
