//! Which offset of each partition may be committed: the lowest one whose record is not yet
//! durable (or the one after the last read, when every record read is durable).
//!
//! The consumer thread marks each message as read ([`Offsets::read`]) before handing it to
//! the executor; the writer thread marks it done ([`Offsets::done`]) from the record's
//! completion, once its sink lines and DLQ entries are synced. Completions arrive in record
//! order, but the tracker does not rely on it.
//!
//! Invariants:
//! - A committed offset never passes a record that is not durable: per partition, the
//!   committable offset is `min(in flight)`, or `last read + 1` when nothing is in flight.
//! - Committable offsets only grow within one assignment of a partition.
//! - A partition revoked and assigned again starts a new epoch: completions of records read
//!   under an older assignment are ignored (their partition may have moved to another
//!   process meanwhile, which reads them again: at least once, never a skipped record).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};

/// A topic and partition.
pub type Tp = (Arc<str>, i32);

#[derive(Default)]
struct Part {
    epoch: u64,
    in_flight: BTreeSet<i64>,
    /// One past the highest offset read under this epoch; `None` before the first read.
    next: Option<i64>,
    /// The offset last committed (or found committed) under this epoch.
    committed: Option<i64>,
}

#[derive(Default)]
pub struct Offsets {
    parts: Mutex<(u64, HashMap<Tp, Part>)>,
    /// Notified whenever a record is done (a revocation waits on it).
    moved: Condvar,
}

impl Offsets {
    /// Starts tracking `tp` afresh (assigned to this process); returns its epoch.
    pub fn assign(&self, tp: Tp) -> u64 {
        let Ok(mut g) = self.parts.lock() else { return 0 };
        g.0 += 1;
        let epoch = g.0;
        g.1.insert(tp, Part { epoch, ..Part::default() });
        epoch
    }

    /// Stops tracking `tp` (revoked): completions of its records in flight are ignored.
    pub fn revoke(&self, tp: &Tp) {
        if let Ok(mut g) = self.parts.lock() {
            g.1.remove(tp);
        }
    }

    /// The epoch under which `tp` is tracked, starting one if it is not yet (a partition
    /// assigned without a rebalance callback, as with a static assignment).
    pub fn epoch(&self, tp: &Tp) -> u64 {
        let known = self.parts.lock().ok().and_then(|g| g.1.get(tp).map(|p| p.epoch));
        known.unwrap_or_else(|| self.assign(tp.clone()))
    }

    /// Marks `offset` of `tp` read and in flight.
    pub fn read(&self, tp: &Tp, epoch: u64, offset: i64) {
        let Ok(mut g) = self.parts.lock() else { return };
        if let Some(p) = g.1.get_mut(tp).filter(|p| p.epoch == epoch) {
            p.in_flight.insert(offset);
            p.next = Some(p.next.map_or(offset + 1, |n| n.max(offset + 1)));
        }
    }

    /// Marks `offset` of `tp` durable (from the record's completion).
    pub fn done(&self, tp: &Tp, epoch: u64, offset: i64) {
        if let Ok(mut g) = self.parts.lock()
            && let Some(p) = g.1.get_mut(tp).filter(|p| p.epoch == epoch)
        {
            p.in_flight.remove(&offset);
        }
        self.moved.notify_all();
    }

    /// The partitions whose committable offset moved past what was committed, with that
    /// offset (the next one the group should read).
    pub fn to_commit(&self) -> Vec<(Tp, i64)> {
        let Ok(g) = self.parts.lock() else { return Vec::new() };
        let mut out: Vec<(Tp, i64)> =
            g.1.iter()
                .filter_map(|(tp, p)| {
                    let at = p.in_flight.first().copied().or(p.next)?;
                    (p.committed.is_none_or(|c| at > c)).then(|| (tp.clone(), at))
                })
                .collect();
        out.sort();
        out
    }

    /// Records that `offsets` were committed.
    pub fn committed(&self, offsets: &[(Tp, i64)]) {
        let Ok(mut g) = self.parts.lock() else { return };
        for (tp, at) in offsets {
            if let Some(p) = g.1.get_mut(tp) {
                p.committed = Some(p.committed.map_or(*at, |c| c.max(*at)));
            }
        }
    }

    /// Records in flight, over the partitions in `which` (all when `None`).
    pub fn in_flight(&self, which: Option<&[Tp]>) -> usize {
        let Ok(g) = self.parts.lock() else { return 0 };
        g.1.iter().filter(|(tp, _)| which.is_none_or(|w| w.contains(tp))).map(|(_, p)| p.in_flight.len()).sum()
    }

    /// Waits until no record of `which` is in flight, at most `limit`. Returns whether none is.
    pub fn wait_drained(&self, which: Option<&[Tp]>, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.in_flight(which) == 0 {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let Ok(g) = self.parts.lock() else { return false };
            // Woken by `done`; the timeout bounds a wake-up missed between the check and here.
            let _ = self.moved.wait_timeout(g, (deadline - now).min(std::time::Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        (Arc::from("adt"), p)
    }

    #[test]
    fn commits_only_up_to_the_lowest_record_not_yet_durable() {
        let o = Offsets::default();
        let e = o.assign(tp(0));
        for off in 10..15 {
            o.read(&tp(0), e, off);
        }
        assert_eq!(o.to_commit(), vec![(tp(0), 10)], "nothing durable: the first record read");
        o.committed(&o.to_commit());
        assert!(o.to_commit().is_empty(), "nothing moved");
        o.done(&tp(0), e, 11);
        o.done(&tp(0), e, 12);
        assert!(o.to_commit().is_empty(), "10 is still in flight: 11 and 12 wait behind it");
        o.done(&tp(0), e, 10);
        assert_eq!(o.to_commit(), vec![(tp(0), 13)]);
        o.committed(&o.to_commit());
        o.done(&tp(0), e, 13);
        o.done(&tp(0), e, 14);
        assert_eq!(o.to_commit(), vec![(tp(0), 15)], "all durable: one past the last read");
        assert_eq!(o.in_flight(None), 0);
    }

    #[test]
    fn partitions_are_independent_and_a_new_epoch_ignores_old_completions() {
        let o = Offsets::default();
        let (e0, e1) = (o.assign(tp(0)), o.assign(tp(1)));
        o.read(&tp(0), e0, 5);
        o.read(&tp(1), e1, 7);
        o.done(&tp(1), e1, 7);
        assert_eq!(o.to_commit(), vec![(tp(0), 5), (tp(1), 8)]);
        o.revoke(&tp(0));
        let again = o.assign(tp(0));
        o.done(&tp(0), e0, 5);
        assert!(o.to_commit().iter().all(|(t, _)| *t != tp(0)), "nothing read under the new epoch yet");
        o.read(&tp(0), again, 5);
        assert_eq!(o.in_flight(Some(&[tp(0)])), 1, "the old completion did not clear the new read");
        assert!(!o.wait_drained(Some(&[tp(0)]), std::time::Duration::from_millis(10)));
        o.done(&tp(0), again, 5);
        assert!(o.wait_drained(Some(&[tp(0)]), std::time::Duration::from_millis(10)));
    }
}
