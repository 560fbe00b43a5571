//! The global allocator of every Sluice binary (`sluice`, and the timing tools of the spec
//! crates, so that they measure what the product runs): mimalloc, called through its plain
//! entry points (`mi_malloc`, `mi_zalloc`, `mi_realloc`) whenever the requested alignment is at
//! most 8 bytes, and through the aligned ones otherwise.
//!
//! Why not the `mimalloc` crate's allocator: it passes every request to `mi_malloc_aligned`.
//! mimalloc 3 serves that from its fast path only when the rounded block size is a power of two;
//! any other size (a 56-byte tree member, a 24-byte string, most `Vec` buffers) takes the
//! over-allocating aligned path: more instructions per allocation and a larger block. Parsing
//! and validating a 1,000-entry FHIR Bundle makes about 250,000 allocations.
//!
//! Invariants:
//! - Every pointer returned satisfies the layout's alignment: mimalloc's blocks are all at least
//!   8-byte aligned (its size classes are multiples of the word size and its pages start
//!   aligned), so the plain entry points serve alignments up to 8, and anything stricter goes to
//!   the aligned entry points, which honour any alignment. A property test checks this over
//!   sizes and alignments.
//! - Memory from either entry point is freed by `mi_free`, which accepts both.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The largest alignment every mimalloc block has without asking for one.
const PLAIN_ALIGN: usize = 8;

/// mimalloc as the global allocator: `#[global_allocator] static A: sluice_alloc::Allocator =
/// sluice_alloc::Allocator;`.
pub struct Allocator;

// SAFETY: each method hands the request to mimalloc with the layout's size, and its alignment
// whenever that is above what every mimalloc block already has (module invariants); mimalloc
// returns null on failure, as `GlobalAlloc` requires.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain mimalloc calls; see the impl's comment.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its alignment.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every block is aligned as asked, holds its bytes through a reallocation, and comes
        /// back zeroed from `alloc_zeroed`.
        #[test]
        fn blocks_are_aligned_and_keep_their_bytes(
            size in 1usize..70_000,
            align_log in 0u32..13,
            grow in 1usize..70_000,
            zeroed: bool,
        ) {
            let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
            let a = Allocator;
            // SAFETY: the layout has a non-zero size; the block is used within its size and
            // freed once, with the layout it was allocated with (after realloc, the new size).
            unsafe {
                let p = if zeroed { a.alloc_zeroed(layout) } else { a.alloc(layout) };
                proptest::prop_assert!(!p.is_null());
                proptest::prop_assert_eq!(p as usize % layout.align(), 0);
                if zeroed {
                    proptest::prop_assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                }
                for i in 0..size {
                    *p.add(i) = i as u8;
                }
                let q = a.realloc(p, layout, grow);
                proptest::prop_assert!(!q.is_null());
                proptest::prop_assert_eq!(q as usize % layout.align(), 0);
                for i in 0..size.min(grow) {
                    proptest::prop_assert_eq!(*q.add(i), i as u8);
                }
                a.dealloc(q, Layout::from_size_align(grow, layout.align()).unwrap());
            }
        }
    }
}
